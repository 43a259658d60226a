/* test_mqtt_auth.c - the broker questions over HTTP (common/api/cc_mqtt_auth.c: the plugin's
 * rules for a device, the acl file's for the operator, the constant-time secret compare) and
 * the reading of a broker's request body (cc_mqtt_req.c: JSON and form, every limit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cc_auth_rules.h"
#include "cc_crypto.h"
#include "cc_error.h"
#include "cc_mqtt_auth.h"
#include "cc_mqtt_req.h"
#include "cc_rc.h"
#include "fixture.h"

#define KEY "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY2 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static struct fixture fx; /* cmocka runs one test at a time */
static const struct cc_mqtt_auth_cfg op = {"ingestd", "operator-password"};

/* Devices CC-1 (key KEY), CC-2 (KEY2) and one whose serial is the operator's name (KEY). */
static int setup(void **state)
{
    char h1[CC_SHA256_HEX_LEN], h2[CC_SHA256_HEX_LEN], seed[1024];

    cc_sha256_hex(KEY, strlen(KEY), h1);
    cc_sha256_hex(KEY2, strlen(KEY2), h2);
    snprintf(seed, sizeof seed,
             "INSERT INTO users (id, email, password_hash, role, name, created_at) "
             "VALUES (1, 'o@example.com', 'x', 'CUSTOMER', 'O', 0);"
             "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'L', 0);"
             "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at) "
             "VALUES (1, 1, 'F', 2, 8, 0);"
             "INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, api_key_prefix, "
             "status, created_at) VALUES ('CC-1', 1, '%s', 'aaaaaaaa', 'NEVER_SEEN', 0),"
             "('CC-2', 1, '%s', 'bbbbbbbb', 'NEVER_SEEN', 0),"
             "('ingestd', 1, '%s', 'aaaaaaaa', 'NEVER_SEEN', 0);",
             h1, h2, h1);
    if (fixture_open(&fx, 0, 0, seed) != CC_OK)
        return -1;
    *state = fx.st;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fixture_close(&fx);
    return 0;
}

static int connect_as(const struct cc_mqtt_auth_cfg *cfg, const char *user, const char *pw,
                      const char *cid)
{
    int d = -1;

    assert_int_equal(cc_mqtt_auth_connect(fx.st, cfg, user, pw, cid, &d), CC_OK);
    return d;
}

static int topic_as(const char *user, const char *cid, const char *topic, int access)
{
    int d = -1;

    assert_int_equal(cc_mqtt_auth_topic(fx.st, &op, user, cid, topic, access, &d), CC_OK);
    return d;
}

static void test_mqtt_auth_connect_device(void **state)
{
    (void)state;
    assert_int_equal(connect_as(&op, "CC-1", KEY, "CC-1"), CC_MQTT_ALLOW);
    assert_int_equal(connect_as(&op, "CC-1", KEY2, "CC-1"), CC_MQTT_DENY); /* CC-2's key */
    assert_int_equal(connect_as(&op, "CC-1", "", "CC-1"), CC_MQTT_DENY);
    assert_int_equal(connect_as(&op, "CC-1", NULL, "CC-1"), CC_MQTT_DENY);
    assert_int_equal(connect_as(&op, "CC-1", KEY, "CC-2"), CC_MQTT_DENY);
    assert_int_equal(connect_as(&op, "CC-1", KEY, "coldchain-ingestd"), CC_MQTT_DENY);
    assert_int_equal(connect_as(&op, "CC-1", KEY, NULL), CC_MQTT_DENY);
    assert_int_equal(connect_as(&op, "cc-1", KEY, "cc-1"), CC_MQTT_IGNORE); /* no such row */
}

static void test_mqtt_auth_connect_operator_and_unknown(void **state)
{
    const struct cc_mqtt_auth_cfg none = {"ingestd", ""};

    (void)state;
    assert_int_equal(connect_as(&op, "ingestd", "operator-password", "any"), CC_MQTT_ALLOW);
    assert_int_equal(connect_as(&op, "ingestd", "operator-passwor", "any"), CC_MQTT_DENY);
    /* The device row named like the operator cannot log in as it with the device key. */
    assert_int_equal(connect_as(&op, "ingestd", KEY, "ingestd"), CC_MQTT_DENY);
    assert_int_equal(connect_as(&op, "ingestd", NULL, "any"), CC_MQTT_DENY);
    assert_int_equal(connect_as(&op, "nobody", "x", "nobody"), CC_MQTT_IGNORE);
    assert_int_equal(connect_as(&op, "", "x", "x"), CC_MQTT_IGNORE);
    assert_int_equal(connect_as(&op, NULL, "x", "x"), CC_MQTT_IGNORE);
    assert_int_equal(connect_as(&op, "coldchain-x", "x", "coldchain-x"), CC_MQTT_IGNORE);
    assert_int_equal(connect_as(&op, "a/b", "x", "a/b"), CC_MQTT_IGNORE);
    /* No operator password known: the name is still never the device row of that serial;
     * the broker's other sources decide. */
    assert_int_equal(connect_as(&none, "ingestd", "", "ingestd"), CC_MQTT_IGNORE);
    assert_int_equal(connect_as(&none, "ingestd", KEY, "ingestd"), CC_MQTT_IGNORE);
}

static void test_mqtt_auth_topic_device(void **state)
{
    (void)state;
    assert_int_equal(topic_as("CC-1", "CC-1", "devices/CC-1/readings", CC_AUTH_WRITE),
                     CC_MQTT_ALLOW);
    assert_int_equal(topic_as("CC-1", NULL, "devices/CC-1/status", CC_AUTH_WRITE), CC_MQTT_ALLOW);
    assert_int_equal(topic_as("CC-1", "CC-1", "devices/CC-1/errors", CC_AUTH_SUBSCRIBE),
                     CC_MQTT_ALLOW);
    assert_int_equal(topic_as("CC-1", "CC-1", "devices/CC-1/errors", CC_AUTH_READ), CC_MQTT_ALLOW);
    assert_int_equal(topic_as("CC-1", "CC-1", "devices/CC-1/readings", CC_AUTH_READ), CC_MQTT_DENY);
    assert_int_equal(topic_as("CC-1", "CC-1", "devices/CC-2/readings", CC_AUTH_WRITE),
                     CC_MQTT_DENY);
    assert_int_equal(topic_as("CC-1", "CC-2", "devices/CC-1/readings", CC_AUTH_WRITE),
                     CC_MQTT_DENY);
    assert_int_equal(topic_as("CC-1", "CC-1", "devices/#", CC_AUTH_SUBSCRIBE), CC_MQTT_DENY);
    assert_int_equal(topic_as("CC-1", "CC-1", "devices/+/errors", CC_AUTH_SUBSCRIBE), CC_MQTT_DENY);
    assert_int_equal(topic_as("CC-1", "CC-1", "devices/CC-1/readings", 0), CC_MQTT_DENY);
    /* A device without a row (deleted) and an unknown name: refused, never ignored. */
    assert_int_equal(topic_as("CC-9", "CC-9", "devices/CC-9/readings", CC_AUTH_WRITE),
                     CC_MQTT_DENY);
    assert_int_equal(topic_as("x y", "x y", "devices/x y/readings", CC_AUTH_WRITE), CC_MQTT_DENY);
    assert_int_equal(topic_as(NULL, "CC-1", "devices/CC-1/readings", CC_AUTH_WRITE), CC_MQTT_DENY);
}

static void test_mqtt_auth_topic_operator(void **state)
{
    (void)state;
    assert_int_equal(
        topic_as("ingestd", "coldchain-ingestd", "devices/+/readings", CC_AUTH_SUBSCRIBE),
        CC_MQTT_ALLOW);
    /* The device row named "ingestd" does not make the operator a device. */
    assert_int_equal(topic_as("ingestd", "coldchain-ingestd", "alerts/3", CC_AUTH_WRITE),
                     CC_MQTT_ALLOW);
    assert_true(cc_mqtt_auth_operator_topic_allowed("devices/#", CC_AUTH_SUBSCRIBE));
    assert_true(cc_mqtt_auth_operator_topic_allowed("devices", CC_AUTH_SUBSCRIBE));
    assert_true(cc_mqtt_auth_operator_topic_allowed("$share/coldchain/devices/+/readings",
                                                    CC_AUTH_SUBSCRIBE));
    assert_true(cc_mqtt_auth_operator_topic_allowed("devices/CC-1/errors", CC_AUTH_WRITE));
    assert_true(cc_mqtt_auth_operator_topic_allowed("devices/CC-1/errors", CC_AUTH_READ));
    assert_true(
        cc_mqtt_auth_operator_topic_allowed("$SYS/broker/clients/connected", CC_AUTH_SUBSCRIBE));
    assert_true(cc_mqtt_auth_operator_topic_allowed("anything", CC_AUTH_UNSUBSCRIBE));
    assert_false(cc_mqtt_auth_operator_topic_allowed("$SYS/broker/x", CC_AUTH_WRITE));
    assert_false(cc_mqtt_auth_operator_topic_allowed("$SYS/other", CC_AUTH_SUBSCRIBE));
    assert_false(cc_mqtt_auth_operator_topic_allowed("#", CC_AUTH_SUBSCRIBE));
    assert_false(cc_mqtt_auth_operator_topic_allowed("+/CC-1/readings", CC_AUTH_SUBSCRIBE));
    assert_false(cc_mqtt_auth_operator_topic_allowed("devicesx/1", CC_AUTH_SUBSCRIBE));
    assert_false(cc_mqtt_auth_operator_topic_allowed("notifications/1", CC_AUTH_WRITE));
    assert_false(cc_mqtt_auth_operator_topic_allowed("$share/devices", CC_AUTH_SUBSCRIBE));
    assert_false(cc_mqtt_auth_operator_topic_allowed("$share//devices/#", CC_AUTH_SUBSCRIBE));
    /* $share is a subscription form only: a publish to it is an ordinary topic, not ours. */
    assert_false(cc_mqtt_auth_operator_topic_allowed("$share/g/devices/x", CC_AUTH_WRITE));
    assert_false(cc_mqtt_auth_operator_topic_allowed(NULL, CC_AUTH_SUBSCRIBE));
    assert_false(cc_mqtt_auth_operator_topic_allowed("devices/x", 0));
}

static void test_mqtt_auth_secret_matches(void **state)
{
    (void)state;
    assert_true(cc_mqtt_auth_secret_matches("0123456789abcdef", "0123456789abcdef"));
    assert_false(cc_mqtt_auth_secret_matches("0123456789abcdef", "0123456789abcde"));
    assert_false(cc_mqtt_auth_secret_matches("0123456789abcdef", "0123456789abcdefg"));
    assert_false(cc_mqtt_auth_secret_matches("0123456789abcdef", ""));
    assert_false(cc_mqtt_auth_secret_matches("", ""));
    assert_false(cc_mqtt_auth_secret_matches(NULL, "x"));
    assert_false(cc_mqtt_auth_secret_matches("x", NULL));
}

/* Parses text (its own length) and expects rc; on an error, the error object's code. */
static void parse(const char *text, int form, struct cc_mqtt_req *q, int want, const char *code)
{
    cJSON *err = NULL;

    assert_int_equal(cc_mqtt_req_parse(text, strlen(text), form, q, &err), want);
    if (code != NULL) {
        assert_non_null(err);
        assert_string_equal(cc_error_code(err), code);
    } else {
        assert_null(err);
    }
    cJSON_Delete(err);
}

static void test_mqtt_req_json(void **state)
{
    struct cc_mqtt_req q;

    (void)state;
    parse("{\"clientid\":\"CC-1\",\"username\":\"CC-1\",\"password\":\"k\",\"qos\":\"1\","
          "\"retain\":\"false\",\"topic\":\"devices/CC-1/readings\",\"action\":\"publish\"}",
          0, &q, CC_OK, NULL);
    assert_true(q.has_username && q.has_password && q.has_client_id && q.has_topic);
    assert_string_equal(q.client_id, "CC-1");
    assert_string_equal(q.action, "publish");
    assert_false(q.has_acc);
    parse("{\"username\":\"u\",\"client_id\":\"c\",\"acc\":4}", 0, &q, CC_OK, NULL);
    assert_string_equal(q.client_id, "c"); /* VerneMQ's spelling */
    assert_true(q.has_acc);
    assert_int_equal(q.acc, 4);
    assert_false(q.has_password);
    parse("{\"acc\":\"2\",\"password\":null}", 0, &q, CC_OK, NULL);
    assert_int_equal(q.acc, 2);
    assert_false(q.has_password);
    parse("{\"username\":\"u\",\"topics\":[{\"topic\":\"a/b\",\"qos\":1},{\"topic\":\"c\"}]}", 0,
          &q, CC_OK, NULL);
    assert_int_equal(q.n_topics, 2);
    assert_string_equal(q.topics[1], "c");
    assert_int_equal(q.topic_qos[0], 1);
}

static void test_mqtt_req_json_refused(void **state)
{
    struct cc_mqtt_req q;
    char big[CC_MQTT_AUTH_BODY_MAX + 64], field[CC_MQTT_AUTH_NAME_MAX + 64];

    (void)state;
    parse("[1]", 0, &q, CC_ERR_BAD_JSON, "BAD_JSON");
    parse("{\"username\":", 0, &q, CC_ERR_BAD_JSON, "BAD_JSON");
    parse("{\"a\":{\"b\":{\"c\":{\"d\":1}}}}", 0, &q, CC_ERR_BAD_JSON, "BAD_JSON"); /* depth 4 */
    parse("{\"username\":\"CC-1\\u0000x\"}", 0, &q, CC_ERR_BAD_JSON, "BAD_JSON");
    parse("{\"username\":5}", 0, &q, CC_ERR_VALIDATION, "VALIDATION_ERROR");
    parse("{\"acc\":2.5}", 0, &q, CC_ERR_VALIDATION, "VALIDATION_ERROR");
    parse("{\"acc\":\"-1\"}", 0, &q, CC_ERR_VALIDATION, "VALIDATION_ERROR");
    parse("{\"topics\":[{\"topic\":\"a\"},{\"topic\":\"b\"},{\"topic\":\"c\"},{\"topic\":\"d\"},"
          "{\"topic\":\"e\"},{\"topic\":\"f\"},{\"topic\":\"g\"},{\"topic\":\"h\"},"
          "{\"topic\":\"i\"}]}",
          0, &q, CC_ERR_VALIDATION, "VALIDATION_ERROR"); /* CC_MQTT_AUTH_TOPICS_MAX + 1 */
    parse("", 0, &q, CC_ERR_BAD_JSON, "BAD_JSON");
    /* A username of the limit is read; one byte more is refused. */
    memset(field, 0, sizeof field);
    memcpy(field, "{\"username\":\"", 13);
    memset(field + 13, 'u', CC_MQTT_AUTH_NAME_MAX);
    memcpy(field + 13 + CC_MQTT_AUTH_NAME_MAX, "\"}", 3);
    parse(field, 0, &q, CC_OK, NULL);
    assert_int_equal(strlen(q.username), CC_MQTT_AUTH_NAME_MAX);
    memset(field + 13, 'u', CC_MQTT_AUTH_NAME_MAX + 1);
    memcpy(field + 13 + CC_MQTT_AUTH_NAME_MAX + 1, "\"}", 3);
    parse(field, 0, &q, CC_ERR_VALIDATION, "VALIDATION_ERROR");
    /* The body limit: one byte over is refused before any parsing. */
    memset(big, ' ', sizeof big);
    big[0] = '{';
    big[CC_MQTT_AUTH_BODY_MAX - 1] = '}';
    big[CC_MQTT_AUTH_BODY_MAX] = '\0';
    parse(big, 0, &q, CC_OK, NULL);
    big[CC_MQTT_AUTH_BODY_MAX - 1] = ' ';
    big[CC_MQTT_AUTH_BODY_MAX] = '}';
    big[CC_MQTT_AUTH_BODY_MAX + 1] = '\0';
    parse(big, 0, &q, CC_ERR_TOO_LARGE, "PAYLOAD_TOO_LARGE");
    {
        cJSON *err = NULL;

        /* A raw NUL byte inside the body. */
        assert_int_equal(cc_mqtt_req_parse("{\"a\":\"\0\"}", 8, 0, &q, &err), CC_ERR_BAD_JSON);
        cJSON_Delete(err);
    }
}

static void test_mqtt_req_form(void **state)
{
    struct cc_mqtt_req q;

    (void)state;
    parse("username=CC-1&password=a%2Bb+c&clientid=CC-1&topic=devices%2FCC-1%2Freadings&acc=2", 1,
          &q, CC_OK, NULL);
    assert_string_equal(q.password, "a+b c");
    assert_string_equal(q.topic, "devices/CC-1/readings");
    assert_int_equal(q.acc, 2);
    assert_true(q.has_client_id);
    parse("username=u", 1, &q, CC_OK, NULL);
    assert_false(q.has_password || q.has_acc);
    parse("acc=x", 1, &q, CC_ERR_VALIDATION, "VALIDATION_ERROR");
    parse("acc=1000", 1, &q, CC_ERR_VALIDATION, "VALIDATION_ERROR");
    parse("username=a%00b", 1, &q, CC_ERR_VALIDATION, "VALIDATION_ERROR");
    parse("username=a%zz", 1, &q, CC_ERR_VALIDATION, "VALIDATION_ERROR");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_mqtt_auth_connect_device),
        T(test_mqtt_auth_connect_operator_and_unknown),
        T(test_mqtt_auth_topic_device),
        T(test_mqtt_auth_topic_operator),
        cmocka_unit_test(test_mqtt_auth_secret_matches),
        cmocka_unit_test(test_mqtt_req_json),
        cmocka_unit_test(test_mqtt_req_json_refused),
        cmocka_unit_test(test_mqtt_req_form),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
