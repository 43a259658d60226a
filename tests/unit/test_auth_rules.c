/* test_auth_rules.c - the broker plugin's pure checks (broker-config/cc_auth_rules.c): device
 * names and the reserved operator prefix, client id = serial, certificate names, the device id
 * a certificate names, topics. */
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

/* cc_auth_cert_device_id over n NUL-terminated URIs. */
static int64_t cert_id(size_t n, const char *const *uris)
{
    size_t lens[CC_AUTH_CERT_URIS_MAX + 2];

    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(uris[i]);
    return cc_auth_cert_device_id(uris, lens, n);
}

static void test_auth_rules_cert_device_id(void **state)
{
    (void)state;
    const char *one[] = {"urn:coldchain:device:42"};
    const char *upper[] = {"URN:ColdChain:DEVICE:42"};
    const char *among[] = {"https://example.com/x", "urn:coldchain:device:7", "urn:other:1"};
    const char *twice_same[] = {"urn:coldchain:device:7", "urn:coldchain:device:7"};
    const char *two_ids[] = {"urn:coldchain:device:7", "urn:coldchain:device:8"};
    /* the second claim is malformed: still two claims, refused */
    const char *claim_and_bad[] = {"urn:coldchain:device:7", "URN:coldchain:device:x"};
    const char *none[] = {"urn:coldchain:devices:7", "urn:coldchain:device", "http://a/7"};
    const char *max[] = {"urn:coldchain:device:9223372036854775807"};
    static const char *const bad[] = {
        "urn:coldchain:device:",                     /* no id */
        "urn:coldchain:device:0",                    /* ids start at 1 */
        "urn:coldchain:device:042",                  /* not canonical: "42" is */
        "urn:coldchain:device:+42",                  /* sign */
        "urn:coldchain:device:-1",                   /* sign */
        "urn:coldchain:device: 42",                  /* space */
        "urn:coldchain:device:42 ",                  /* trailing */
        "urn:coldchain:device:42x",                  /* suffix */
        "urn:coldchain:device:42/1",                 /* path */
        "urn:coldchain:device:9223372036854775808",  /* INT64_MAX + 1 */
        "urn:coldchain:device:18446744073709551658", /* wraps to 42 in uint64 */
        "urn:coldchain:device:00000000000000000042", /* overlong */
        "urn:coldchain:device:99999999999999999999999999999999999999",
    };
    static const char nul_inside[] = "urn:coldchain:device:7\0"
                                     "8";
    static const char nul_in_other[] = "https://a\0urn:coldchain:device:9";
    const char *nul_uri[] = {nul_inside};
    const char *nul_other[] = {"urn:coldchain:device:7", nul_in_other};
    size_t nul_lens[] = {sizeof(nul_inside) - 1};
    size_t nul_other_lens[] = {22, sizeof(nul_in_other) - 1};
    const char *many[CC_AUTH_CERT_URIS_MAX + 1];
    size_t lens[CC_AUTH_CERT_URIS_MAX + 1];

    assert_int_equal(cert_id(1, one), 42);
    assert_int_equal(cert_id(1, upper), 42);
    assert_int_equal(cert_id(3, among), 7);
    assert_int_equal(cert_id(1, max), INT64_MAX);
    assert_int_equal(cert_id(2, twice_same), 0);
    assert_int_equal(cert_id(2, two_ids), 0);
    assert_int_equal(cert_id(2, claim_and_bad), 0);
    assert_int_equal(cert_id(3, none), 0);
    assert_int_equal(cert_id(0, none), 0); /* no URI at all */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cert_id(1, &bad[i]) != 0)
            fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(cc_auth_cert_device_id(nul_uri, nul_lens, 1), 0);
    assert_int_equal(cc_auth_cert_device_id(nul_other, nul_other_lens, 2), 0);
    /* lens, not NUL, delimit a URI: the same bytes one shorter are "...:4" */
    lens[0] = strlen(one[0]) - 1;
    assert_int_equal(cc_auth_cert_device_id(one, lens, 1), 4);
    /* the limit on URIs: CC_AUTH_CERT_URIS_MAX are looked at, one more is refused */
    for (size_t i = 0; i < CC_AUTH_CERT_URIS_MAX + 1; i++) {
        many[i] = i == 0 ? "urn:coldchain:device:5" : "https://example.com/";
        lens[i] = strlen(many[i]);
    }
    assert_int_equal(cc_auth_cert_device_id(many, lens, CC_AUTH_CERT_URIS_MAX), 5);
    assert_int_equal(cc_auth_cert_device_id(many, lens, CC_AUTH_CERT_URIS_MAX + 1), 0);
    assert_int_equal(cc_auth_cert_device_id(NULL, lens, 1), 0);
    assert_int_equal(cc_auth_cert_device_id(many, NULL, 1), 0);
    many[1] = NULL;
    assert_int_equal(cc_auth_cert_device_id(many, lens, 2), 0);
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
        cmocka_unit_test(test_auth_rules_cert_device_id),
        cmocka_unit_test(test_auth_rules_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
