/* test_ingest_mqtt.c - ingestd's broker connection (ingestd/mqtt.c) before it has ever
 * connected: the bound on its own QoS 1 publishes, INGEST_PUBLISH_PENDING_MAX. Error
 * replies and alert events published while the broker is away are queued by libmosquitto
 * (it would queue without limit); past the bound publish refuses and counts the refusal.
 * No broker is needed: nothing here connects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <mosquitto.h>

#include "../../ingestd/mqtt.h"
#include "cc_notify.h"

static int on_message(void *ctx, const char *topic, size_t topic_len, const void *payload,
                      size_t len)
{
    (void)ctx;
    (void)topic;
    (void)topic_len;
    (void)payload;
    (void)len;
    return 0;
}

static void test_ingest_mqtt_publish_pending_bounded(void **state)
{
    struct ingest_mqtt_options o = {
        .url = "tcp://127.0.0.1:1", .client_id = "coldchain-ingestd", .on_message = on_message};
    struct ingest_mqtt *m = NULL;
    struct ingest_mqtt_counters *c;

    (void)state;
    assert_int_equal(ingest_mqtt_new(&o, &m), 0);
    c = ingest_mqtt_counters(m);
    for (int i = 0; i < INGEST_PUBLISH_PENDING_MAX; i++)
        assert_int_equal(ingest_mqtt_publish(m, "alerts/1", "{\"type\":\"x\"}", 12), 0);
    assert_int_equal(c->publish_pending, INGEST_PUBLISH_PENDING_MAX);
    assert_int_equal(c->publish_refused, 0);
    /* One more, of either kind, is refused and counted; the pending count stays. */
    assert_int_equal(ingest_mqtt_publish(m, "alerts/1", "{}", 2), -1);
    assert_int_equal(ingest_mqtt_publish(m, "devices/SN-1/errors", "{}", 2), -1);
    assert_int_equal(c->publish_pending, INGEST_PUBLISH_PENDING_MAX);
    assert_int_equal(c->publish_refused, 2);
    ingest_mqtt_free(m);
}

/* The alert events held for their PUBACK (pubacks.h) are bounded by INGEST_PUBLISH_WINDOW:
 * past it an event's publish refuses before queueing anything, and an event held already
 * is not queued twice (CC_NOTIFY_HELD). */
static void test_ingest_mqtt_events_held_bounded(void **state)
{
    struct ingest_mqtt_options o = {
        .url = "tcp://127.0.0.1:1", .client_id = "coldchain-ingestd", .on_message = on_message};
    struct ingest_mqtt *m = NULL;
    struct ingest_mqtt_counters *c;
    struct cc_notify_event ids[8];

    (void)state;
    assert_int_equal(ingest_mqtt_new(&o, &m), 0);
    c = ingest_mqtt_counters(m);
    for (int i = 0; i < INGEST_PUBLISH_WINDOW; i++)
        assert_int_equal(
            ingest_mqtt_publish_event(m, "alerts/1", "{}", 2, (struct cc_notify_event){100 + i, 1}),
            0);
    assert_int_equal(c->publish_pending, INGEST_PUBLISH_WINDOW);
    assert_int_equal(ingest_mqtt_publish_room(m), 0);
    assert_int_equal(
        ingest_mqtt_publish_event(m, "alerts/1", "{}", 2, (struct cc_notify_event){100, 1}),
        CC_NOTIFY_HELD);
    assert_int_equal(
        ingest_mqtt_publish_event(m, "alerts/1", "{}", 2, (struct cc_notify_event){99, 1}), -1);
    assert_int_equal(c->publish_pending, INGEST_PUBLISH_WINDOW);
    assert_int_equal(c->publish_refused, 1);
    /* Nothing was acknowledged (no broker): nothing to mark SENT. */
    assert_int_equal(ingest_mqtt_take_acked(m, ids, 8), 0);
    /* An error reply is no event: it still goes (up to INGEST_PUBLISH_PENDING_MAX). */
    assert_int_equal(ingest_mqtt_publish(m, "devices/SN-1/errors", "{}", 2), 0);
    ingest_mqtt_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_mqtt_publish_pending_bounded),
        cmocka_unit_test(test_ingest_mqtt_events_held_bounded),
    };
    int rc;

    mosquitto_lib_init();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    mosquitto_lib_cleanup();
    return rc;
}
