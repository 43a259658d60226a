/* test_auth_rules.c - the broker plugin's pure checks (broker-config/cc_auth_rules.c): device
 * names and the reserved operator prefix, client id = serial, certificate names, topics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cc_auth_rules.h"

static void test_auth_rules_reserved_prefix(void **state)
{
    (void)state;
    assert_true(cc_auth_name_reserved("coldchain-ingestd"));
    assert_true(cc_auth_name_reserved("coldchain-apid-12-abcdef"));
    assert_true(cc_auth_name_reserved("COLDCHAIN-x"));
    assert_true(cc_auth_name_reserved("coldchain-"));
    assert_false(cc_auth_name_reserved("coldchain"));
    assert_false(cc_auth_name_reserved("my-coldchain-1"));
    assert_false(cc_auth_name_reserved(""));
    assert_false(cc_auth_name_reserved(NULL));
}

static void test_auth_rules_device_name(void **state)
{
    char longest[CC_AUTH_SERIAL_MAX + 2];

    (void)state;
    assert_true(cc_auth_is_device_name("CC-FRZ-0001"));
    assert_true(cc_auth_is_device_name("a.b_c-9"));
    assert_false(cc_auth_is_device_name(""));
    assert_false(cc_auth_is_device_name(NULL));
    assert_false(cc_auth_is_device_name("coldchain-ingestd"));
    assert_false(cc_auth_is_device_name("a/b"));
    assert_false(cc_auth_is_device_name("a+"));
    assert_false(cc_auth_is_device_name("#"));
    assert_false(cc_auth_is_device_name("a b"));
    memset(longest, 'x', CC_AUTH_SERIAL_MAX);
    longest[CC_AUTH_SERIAL_MAX] = '\0';
    assert_true(cc_auth_is_device_name(longest)); /* the limit itself */
    longest[CC_AUTH_SERIAL_MAX] = 'x';
    longest[CC_AUTH_SERIAL_MAX + 1] = '\0';
    assert_false(cc_auth_is_device_name(longest));
}

static void test_auth_rules_client_id_is_serial(void **state)
{
    (void)state;
    assert_true(cc_auth_client_id_allowed("CC-1", "CC-1"));
    assert_false(cc_auth_client_id_allowed("CC-1", "coldchain-ingestd"));
    assert_false(cc_auth_client_id_allowed("CC-1", "CC-2"));
    assert_false(cc_auth_client_id_allowed("CC-1", "cc-1"));
    assert_false(cc_auth_client_id_allowed("CC-1", "CC-1x"));
    assert_false(cc_auth_client_id_allowed("CC-1", ""));
    assert_false(cc_auth_client_id_allowed("CC-1", NULL));
    assert_false(cc_auth_client_id_allowed(NULL, "CC-1"));
    assert_false(cc_auth_client_id_allowed("coldchain-ingestd", "coldchain-ingestd"));
}

static void test_auth_rules_cert_name(void **state)
{
    static const char nul_inside[] = "CC-1\0CC-2";

    (void)state;
    assert_true(cc_auth_cert_name_allowed("CC-1", 4, "CC-1"));
    assert_false(cc_auth_cert_name_allowed("CC-2", 4, "CC-1"));
    assert_false(cc_auth_cert_name_allowed("CC-1", 3, "CC-1"));
    assert_false(cc_auth_cert_name_allowed(nul_inside, sizeof(nul_inside) - 1, "CC-1"));
    assert_false(cc_auth_cert_name_allowed("coldchain-x", 11, "coldchain-x"));
    assert_false(cc_auth_cert_name_allowed(NULL, 0, "CC-1"));
    assert_false(cc_auth_cert_name_allowed("CC-1", 4, NULL));
}

static void test_auth_rules_topics(void **state)
{
    (void)state;
    assert_true(cc_auth_topic_allowed("A", "devices/A/readings", CC_AUTH_WRITE));
    assert_true(cc_auth_topic_allowed("A", "devices/A/status", CC_AUTH_WRITE));
    assert_false(cc_auth_topic_allowed("A", "devices/A/errors", CC_AUTH_WRITE));
    assert_false(cc_auth_topic_allowed("A", "devices/B/readings", CC_AUTH_WRITE));
    assert_false(cc_auth_topic_allowed("A", "devices/AB/readings", CC_AUTH_WRITE));
    assert_false(cc_auth_topic_allowed("A", "alerts/1", CC_AUTH_WRITE));
    assert_true(cc_auth_topic_allowed("A", "devices/A/#", CC_AUTH_SUBSCRIBE));
    assert_true(cc_auth_topic_allowed("A", "devices/A/errors", CC_AUTH_READ));
    /* Its own publishes are never delivered back: a device subscribed to devices/A/#
     * that stops reading made the broker queue every 1 MiB reading it sent, without
     * bound (max_queued_messages 0 is there for ingestd's session). */
    assert_false(cc_auth_topic_allowed("A", "devices/A/readings", CC_AUTH_READ));
    assert_false(cc_auth_topic_allowed("A", "devices/A/status", CC_AUTH_READ));
    assert_false(cc_auth_topic_allowed("A", "devices/A/anything/else", CC_AUTH_READ));
    assert_false(cc_auth_topic_allowed("A", "devices/+/readings", CC_AUTH_SUBSCRIBE));
    assert_false(cc_auth_topic_allowed("A", "devices/#", CC_AUTH_SUBSCRIBE));
    assert_false(cc_auth_topic_allowed("A", "devices/A/", CC_AUTH_SUBSCRIBE));
    assert_false(cc_auth_topic_allowed("A", "$share/g/devices/B/errors", CC_AUTH_SUBSCRIBE));
    assert_true(cc_auth_topic_allowed("A", "anything", CC_AUTH_UNSUBSCRIBE));
    assert_false(cc_auth_topic_allowed("A", "devices/A/readings", 0));
    assert_false(cc_auth_topic_allowed("A/B", "devices/A/B/readings", CC_AUTH_WRITE));
    assert_false(cc_auth_topic_allowed("A", NULL, CC_AUTH_READ));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_rules_reserved_prefix),
        cmocka_unit_test(test_auth_rules_device_name),
        cmocka_unit_test(test_auth_rules_client_id_is_serial),
        cmocka_unit_test(test_auth_rules_cert_name),
        cmocka_unit_test(test_auth_rules_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
