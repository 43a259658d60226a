/* test_ingest_pubacks.c - ingestd's mid -> alert event bookkeeping (ingestd/pubacks.c): an
 * event is given back only once its own publish was acknowledged, held events are known,
 * and both lists stay within INGEST_PUBLISH_WINDOW. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../../ingestd/pubacks.h"

#define ALERT 1 /* the alert of the events below, unless said otherwise */
#define EV(id) ((struct cc_notify_event){(id), ALERT})

static void test_ingest_pubacks_ack_gives_its_event(void **state)
{
    struct ingest_pubacks *p = malloc(sizeof *p);
    struct cc_notify_event ids[4];

    (void)state;
    assert_non_null(p);
    ingest_pubacks_init(p);
    assert_int_equal(ingest_pubacks_add(p, 7, EV(100)), 0);
    assert_int_equal(ingest_pubacks_add(p, 8, EV(101)), 0);
    assert_int_equal(ingest_pubacks_take(p, ids, 4), 0); /* nothing acknowledged yet */
    assert_true(ingest_pubacks_holds(p, EV(100)));
    assert_false(ingest_pubacks_holds(p, EV(102)));
    assert_int_equal(ingest_pubacks_ack(p, 9), 0); /* an error reply's PUBACK: no event */
    assert_int_equal(ingest_pubacks_ack(p, 8), 1);
    assert_true(ingest_pubacks_holds(p, EV(101))); /* acknowledged, not yet taken */
    assert_int_equal(ingest_pubacks_take(p, ids, 4), 1);
    assert_int_equal(ids[0].id, 101);
    assert_false(ingest_pubacks_holds(p, EV(101)));
    assert_int_equal(ingest_pubacks_ack(p, 8), 0); /* a second PUBACK for it: nothing */
    assert_int_equal(ingest_pubacks_take(p, ids, 4), 0);
    /* libmosquitto's ids wrapped round onto a held one: the older event is forgotten (sent
     * again after its lease), never marked by the newer one's PUBACK. */
    assert_int_equal(ingest_pubacks_add(p, 7, EV(102)), 0);
    assert_false(ingest_pubacks_holds(p, EV(100)));
    assert_int_equal(p->forgotten, 1);
    assert_int_equal(ingest_pubacks_ack(p, 7), 1);
    assert_int_equal(ingest_pubacks_take(p, ids, 4), 1);
    assert_int_equal(ids[0].id, 102);
    free(p);
}

/* An event is its id and its alert (cc_notify_event): SQLite gives a deleted row's id to
 * the next event. A new event with the id of one still held is not held (it must be
 * published), and the old message's PUBACK gives back the old event, not the new one. */
static void test_ingest_pubacks_id_of_another_alert_is_another_event(void **state)
{
    struct ingest_pubacks *p = malloc(sizeof *p);
    struct cc_notify_event old = {100, 7}, reused = {100, 8}, ids[4];

    (void)state;
    assert_non_null(p);
    ingest_pubacks_init(p);
    assert_int_equal(ingest_pubacks_add(p, 5, old), 0);
    assert_true(ingest_pubacks_holds(p, old));
    assert_false(ingest_pubacks_holds(p, reused));
    assert_int_equal(ingest_pubacks_add(p, 6, reused), 0);
    assert_int_equal(ingest_pubacks_ack(p, 5), 1);
    assert_true(ingest_pubacks_holds(p, old)); /* acknowledged, not yet taken */
    assert_true(ingest_pubacks_holds(p, reused));
    assert_int_equal(ingest_pubacks_take(p, ids, 4), 1);
    assert_int_equal(ids[0].id, 100);
    assert_int_equal(ids[0].alert_id, 7);
    assert_false(ingest_pubacks_holds(p, old));
    assert_true(ingest_pubacks_holds(p, reused)); /* its own PUBACK still to come */
    assert_int_equal(ingest_pubacks_ack(p, 6), 1);
    assert_int_equal(ingest_pubacks_take(p, ids, 4), 1);
    assert_int_equal(ids[0].alert_id, 8);
    free(p);
}

/* INGEST_PUBACKS_MAX (= INGEST_PUBLISH_WINDOW) events held at most, and as many
 * acknowledged ones waiting; take hands them out max at a time. */
static void test_ingest_pubacks_bounded(void **state)
{
    struct ingest_pubacks *p = malloc(sizeof *p);
    struct cc_notify_event ids[INGEST_PUBACKS_MAX];
    int got = 0, n;

    (void)state;
    assert_non_null(p);
    assert_int_equal(INGEST_PUBACKS_MAX, INGEST_PUBLISH_WINDOW);
    ingest_pubacks_init(p);
    for (int i = 0; i < INGEST_PUBACKS_MAX; i++)
        assert_int_equal(ingest_pubacks_add(p, i + 1, EV(1000 + i)), 0);
    assert_int_equal(ingest_pubacks_add(p, 60000, EV(5)), -1);
    assert_int_equal(p->nheld, INGEST_PUBACKS_MAX);
    assert_false(ingest_pubacks_holds(p, EV(5)));
    for (int i = 0; i < INGEST_PUBACKS_MAX; i++)
        assert_int_equal(ingest_pubacks_ack(p, i + 1), 1);
    assert_int_equal(p->nheld, 0);
    assert_int_equal(p->nacked, INGEST_PUBACKS_MAX);
    /* Held again while the acknowledged wait: the next acknowledgement has no room and is
     * forgotten (its event goes again after its lease), the list stays at its bound. */
    assert_int_equal(ingest_pubacks_add(p, 1, EV(5)), 0);
    assert_int_equal(ingest_pubacks_ack(p, 1), 1);
    assert_int_equal(p->nacked, INGEST_PUBACKS_MAX);
    assert_int_equal(p->forgotten, 1);
    while ((n = ingest_pubacks_take(p, ids + got, 300)) > 0) {
        assert_true(n <= 300);
        got += n;
    }
    assert_int_equal(got, INGEST_PUBACKS_MAX);
    for (int i = 0; i < INGEST_PUBACKS_MAX; i++) {
        int found = 0;

        for (int k = 0; k < got; k++)
            found += ids[k].id == 1000 + i;
        assert_int_equal(found, 1);
    }
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_pubacks_ack_gives_its_event),
        cmocka_unit_test(test_ingest_pubacks_bounded),
        cmocka_unit_test(test_ingest_pubacks_id_of_another_alert_is_another_event),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
