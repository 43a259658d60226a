/* test_validate.c - every SPEC §3 rule of cc_validate, with its boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_error.h"
#include "cc_json.h"
#include "cc_rc.h"
#include "cc_validate.h"

#define R 1764135900000LL /* 2025-11-26T05:45:00.000Z: "received" in every test */
#define DAY_MS (24LL * 3600 * 1000)

struct result {
    int rc;
    struct cc_reading *rs;
    size_t n;
    size_t *idx;
    cJSON *err;
};

/* Validates the len bytes of s from an exact-size heap copy (no NUL after it), so
 * ASan catches any read past the payload. */
static struct result run_len(const char *s, size_t len)
{
    struct result res = {0};
    char *copy = malloc(len > 0 ? len : 1);

    assert_non_null(copy);
    memcpy(copy, s, len);
    res.rc = cc_validate_readings(copy, len, R, &res.rs, &res.n, &res.idx, &res.err);
    free(copy);
    return res;
}

static struct result run(const char *s)
{
    return run_len(s, strlen(s));
}

static void done(struct result *res)
{
    free(res->rs);
    free(res->idx);
    cJSON_Delete(res->err);
    memset(res, 0, sizeof *res);
}

static const cJSON *detail(const cJSON *err, int i)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(err, "error");

    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "details"), i);
}

/* Asserts that detail i of err names field with issue. */
static void assert_detail(const cJSON *err, int i, const char *field, const char *issue)
{
    const cJSON *d = detail(err, i);

    assert_non_null(d);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "field")), field);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "issue")), issue);
}

/* The payload is accepted as one valid reading. */
static struct cc_reading accept_one(const char *s)
{
    struct result res = run(s);
    struct cc_reading r;

    assert_int_equal(res.rc, CC_OK);
    if (res.err != NULL)
        fail_msg("unexpected error for %s: %s", s, cc_error_message(res.err));
    assert_int_equal(res.n, 1);
    r = res.rs[0];
    done(&res);
    return r;
}

/* The payload (one object) is refused with exactly one detail field/issue. */
static void refuse_one(const char *s, const char *field, const char *issue)
{
    struct result res = run(s);

    assert_int_equal(res.rc, CC_OK); /* parsed; the item is invalid */
    assert_int_equal(res.n, 0);
    if (res.err == NULL)
        fail_msg("payload accepted but should be refused: %s", s);
    assert_string_equal(cc_error_code(res.err), "VALIDATION_ERROR");
    assert_int_equal(cc_error_detail_count(res.err), 1);
    assert_detail(res.err, 0, field, issue);
    done(&res);
}

static void test_validate_minimal_reading_defaults(void **state)
{
    struct cc_reading r = accept_one("{\"temperature\":4.5}");

    (void)state;
    assert_true(r.temperature == 4.5);
    assert_int_equal(r.ts_ms, R);
    assert_int_equal(r.ts_given, 0);
    assert_int_equal(r.has_humidity, 0);
    assert_int_equal(r.has_battery, 0);
    assert_int_equal(r.power_status, CC_ABSENT);
    assert_int_equal(r.door_status, CC_ABSENT);
}

static void test_validate_full_reading(void **state)
{
    struct cc_reading r =
        accept_one("{\"temperature\":-18.4,\"humidity\":45,\"powerStatus\":true,"
                   "\"doorStatus\":false,\"batteryLevel\":87,\"ts\":1764135800000}");

    (void)state;
    assert_true(r.temperature == -18.4);
    assert_true(r.has_humidity && r.humidity == 45.0);
    assert_true(r.has_battery && r.battery_level == 87.0);
    assert_int_equal(r.power_status, CC_TRUE);
    assert_int_equal(r.door_status, CC_FALSE);
    assert_int_equal(r.ts_ms, 1764135800000LL);
    assert_int_equal(r.ts_given, 1);
}

static void test_validate_temperature_boundaries(void **state)
{
    (void)state;
    assert_true(accept_one("{\"temperature\":-100}").temperature == -100.0);
    assert_true(accept_one("{\"temperature\":150}").temperature == 150.0);
    assert_true(accept_one("{\"temperature\":-100.0}").temperature == -100.0);
    assert_true(accept_one("{\"temperature\":0}").temperature == 0.0);
    refuse_one("{\"temperature\":-100.0001}", "temperature", "must be between -100 and 150");
    refuse_one("{\"temperature\":150.0001}", "temperature", "must be between -100 and 150");
    refuse_one("{\"temperature\":1e999}", "temperature", "must be between -100 and 150");
    refuse_one("{\"temperature\":-1e999}", "temperature", "must be between -100 and 150");
}

static void test_validate_temperature_required(void **state)
{
    struct result res = run("{\"humidity\":10}");

    (void)state;
    assert_int_equal(res.rc, CC_OK);
    assert_int_equal(res.n, 0);
    assert_non_null(res.err);
    assert_detail(res.err, 0, "temperature", "required");
    assert_string_equal(cc_error_message(res.err), "temperature is required");
    done(&res);
    refuse_one("{}", "temperature", "required");
}

static void test_validate_temperature_wrong_types(void **state)
{
    struct result res = run("{\"temperature\":\"4.5\"}");

    (void)state;
    assert_non_null(res.err);
    assert_string_equal(cc_error_message(res.err), "temperature must be a number");
    done(&res);
    refuse_one("{\"temperature\":null}", "temperature", "must be a number");
    refuse_one("{\"temperature\":true}", "temperature", "must be a number");
    refuse_one("{\"temperature\":[1]}", "temperature", "must be a number");
    refuse_one("{\"temperature\":{\"v\":1}}", "temperature", "must be a number");
}

static void test_validate_humidity_boundaries(void **state)
{
    (void)state;
    assert_true(accept_one("{\"temperature\":1,\"humidity\":0}").humidity == 0.0);
    assert_true(accept_one("{\"temperature\":1,\"humidity\":100}").humidity == 100.0);
    refuse_one("{\"temperature\":1,\"humidity\":100.5}", "humidity", "must be between 0 and 100");
    refuse_one("{\"temperature\":1,\"humidity\":-1}", "humidity", "must be between 0 and 100");
    refuse_one("{\"temperature\":1,\"humidity\":null}", "humidity", "must be a number");
    refuse_one("{\"temperature\":1,\"humidity\":\"50\"}", "humidity", "must be a number");
}

static void test_validate_battery_boundaries(void **state)
{
    (void)state;
    assert_true(accept_one("{\"temperature\":1,\"batteryLevel\":0}").battery_level == 0.0);
    assert_true(accept_one("{\"temperature\":1,\"batteryLevel\":100}").battery_level == 100.0);
    refuse_one("{\"temperature\":1,\"batteryLevel\":100.01}", "batteryLevel",
               "must be between 0 and 100");
    refuse_one("{\"temperature\":1,\"batteryLevel\":-0.5}", "batteryLevel",
               "must be between 0 and 100");
    refuse_one("{\"temperature\":1,\"batteryLevel\":false}", "batteryLevel", "must be a number");
}

static void test_validate_booleans(void **state)
{
    struct cc_reading r;

    (void)state;
    r = accept_one("{\"temperature\":1,\"powerStatus\":false,\"doorStatus\":true}");
    assert_int_equal(r.power_status, CC_FALSE);
    assert_int_equal(r.door_status, CC_TRUE);
    refuse_one("{\"temperature\":1,\"powerStatus\":\"true\"}", "powerStatus", "must be a boolean");
    refuse_one("{\"temperature\":1,\"powerStatus\":1}", "powerStatus", "must be a boolean");
    refuse_one("{\"temperature\":1,\"powerStatus\":null}", "powerStatus", "must be a boolean");
    refuse_one("{\"temperature\":1,\"doorStatus\":0}", "doorStatus", "must be a boolean");
    refuse_one("{\"temperature\":1,\"doorStatus\":\"open\"}", "doorStatus", "must be a boolean");
}

static void test_validate_ts_future_boundary(void **state)
{
    char buf[128];

    (void)state;
    snprintf(buf, sizeof buf, "{\"temperature\":1,\"ts\":%lld}", R + 5 * 60 * 1000);
    assert_int_equal(accept_one(buf).ts_ms, R + 5 * 60 * 1000);
    snprintf(buf, sizeof buf, "{\"temperature\":1,\"ts\":%lld}", R + 5 * 60 * 1000 + 1);
    refuse_one(buf, "ts", "must not be more than 5 minutes in the future");
    refuse_one("{\"temperature\":1,\"ts\":\"2025-11-26T05:50:00.001Z\"}", "ts",
               "must not be more than 5 minutes in the future");
    assert_int_equal(accept_one("{\"temperature\":1,\"ts\":\"2025-11-26T05:50:00Z\"}").ts_ms,
                     R + 5 * 60 * 1000);
}

static void test_validate_ts_age_boundary(void **state)
{
    char buf[128];

    (void)state;
    snprintf(buf, sizeof buf, "{\"temperature\":1,\"ts\":%lld}", R - 30 * DAY_MS);
    assert_int_equal(accept_one(buf).ts_ms, R - 30 * DAY_MS);
    snprintf(buf, sizeof buf, "{\"temperature\":1,\"ts\":%lld}", R - 30 * DAY_MS - 1);
    refuse_one(buf, "ts", "must not be older than 30 days");
    refuse_one("{\"temperature\":1,\"ts\":0}", "ts", "must not be older than 30 days");
    refuse_one("{\"temperature\":1,\"ts\":\"1999-01-01T00:00:00Z\"}", "ts",
               "must not be older than 30 days");
}

static void test_validate_ts_iso_with_offsets(void **state)
{
    (void)state;
    assert_int_equal(accept_one("{\"temperature\":1,\"ts\":\"2025-11-26T05:45:00.000Z\"}").ts_ms,
                     R);
    assert_int_equal(accept_one("{\"temperature\":1,\"ts\":\"2025-11-26T06:45:00+01:00\"}").ts_ms,
                     R);
    assert_int_equal(accept_one("{\"temperature\":1,\"ts\":\"2025-11-26T00:15:00-05:30\"}").ts_ms,
                     R);
    assert_int_equal(accept_one("{\"temperature\":1,\"ts\":\"2025-11-26T05:44:59.5Z\"}").ts_ms,
                     R - 500);
    assert_int_equal(accept_one("{\"temperature\":1,\"ts\":\"2025-11-26T05:45:00\"}").ts_ms, R);
}

static void test_validate_ts_bad_iso(void **state)
{
    (void)state;
    refuse_one("{\"temperature\":1,\"ts\":\"yesterday\"}", "ts",
               "must be a valid ISO-8601 timestamp");
    refuse_one("{\"temperature\":1,\"ts\":\"\"}", "ts", "must be a valid ISO-8601 timestamp");
    refuse_one("{\"temperature\":1,\"ts\":\"2025-11-31T00:00:00Z\"}", "ts",
               "must be a valid ISO-8601 timestamp");
    refuse_one("{\"temperature\":1,\"ts\":\"2025-11-26T25:00:00Z\"}", "ts",
               "must be a valid ISO-8601 timestamp");
    refuse_one("{\"temperature\":1,\"ts\":\"2025-11-26T05:45:00+25:00\"}", "ts",
               "must be a valid ISO-8601 timestamp");
    refuse_one("{\"temperature\":1,\"ts\":\"1764135900000\"}", "ts",
               "must be a valid ISO-8601 timestamp");
}

static void test_validate_ts_not_an_integer(void **state)
{
    const char *issue = "must be a non-negative integer epoch in milliseconds";

    (void)state;
    refuse_one("{\"temperature\":1,\"ts\":1764135900000.5}", "ts", issue);
    refuse_one("{\"temperature\":1,\"ts\":-1}", "ts", issue);
    refuse_one("{\"temperature\":1,\"ts\":-1764135900000}", "ts", issue);
    refuse_one("{\"temperature\":1,\"ts\":1e30}", "ts", issue);
    refuse_one("{\"temperature\":1,\"ts\":1e999}", "ts", issue);
    refuse_one("{\"temperature\":1,\"ts\":9223372036854775808}", "ts", issue);
    /* Within int64 but far ahead: an integer, refused by the window. */
    refuse_one("{\"temperature\":1,\"ts\":4000000000000000000}", "ts",
               "must not be more than 5 minutes in the future");
    /* An integral value written as a float is an integer. */
    assert_int_equal(accept_one("{\"temperature\":1,\"ts\":1764135900000.0}").ts_ms, R);
}

static void test_validate_ts_wrong_type(void **state)
{
    const char *issue = "must be an integer epoch in milliseconds or an ISO-8601 string";

    (void)state;
    refuse_one("{\"temperature\":1,\"ts\":null}", "ts", issue);
    refuse_one("{\"temperature\":1,\"ts\":true}", "ts", issue);
    refuse_one("{\"temperature\":1,\"ts\":[1764135900000]}", "ts", issue);
}

static void test_validate_array_of_1000_accepted(void **state)
{
    size_t cap = 40 * 1000 + 16, len = 0;
    char *buf = malloc(cap);
    struct result res;

    (void)state;
    assert_non_null(buf);
    buf[len++] = '[';
    for (int i = 0; i < CC_MAX_BATCH; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s{\"temperature\":%d,\"ts\":%lld}",
                                i ? "," : "", i % 50, R - i * 1000LL);
    buf[len++] = ']';
    res = run_len(buf, len);
    assert_int_equal(res.rc, CC_OK);
    assert_null(res.err);
    assert_int_equal(res.n, 1000);
    assert_int_equal(res.idx[999], 999);
    assert_int_equal(res.rs[999].ts_ms, R - 999000LL);
    done(&res);

    /* One more item: the whole message is refused. */
    buf[len - 1] = ',';
    len += (size_t)snprintf(buf + len, cap - len, "{\"temperature\":1}]");
    res = run_len(buf, len);
    assert_int_equal(res.rc, CC_ERR_VALIDATION);
    assert_non_null(res.err);
    assert_string_equal(cc_error_code(res.err), "VALIDATION_ERROR");
    assert_int_equal(res.n, 0);
    done(&res);
    free(buf);
}

static void test_validate_array_empty_refused(void **state)
{
    struct result res = run("[]");

    (void)state;
    assert_int_equal(res.rc, CC_ERR_VALIDATION);
    assert_non_null(res.err);
    assert_string_equal(cc_error_code(res.err), "VALIDATION_ERROR");
    done(&res);
    res = run("  [ ]  ");
    assert_int_equal(res.rc, CC_ERR_VALIDATION);
    done(&res);
}

static void test_validate_array_item_errors_named(void **state)
{
    struct result res;
    char buf[512];

    (void)state;
    snprintf(buf, sizeof buf,
             "[{\"temperature\":1},{\"temperature\":2},{\"temperature\":3},"
             "{\"temperature\":4,\"ts\":%lld},{\"temperature\":5}]",
             R + 3600 * 1000LL);
    res = run(buf);
    assert_int_equal(res.rc, CC_OK);
    assert_int_equal(res.n, 4);
    assert_int_equal(res.idx[0], 0);
    assert_int_equal(res.idx[2], 2);
    assert_int_equal(res.idx[3], 4);
    assert_true(res.rs[3].temperature == 5.0);
    assert_non_null(res.err);
    assert_int_equal(cc_error_detail_count(res.err), 1);
    assert_detail(res.err, 0, "[3].ts", "must not be more than 5 minutes in the future");
    assert_string_equal(cc_error_message(res.err),
                        "[3].ts must not be more than 5 minutes in the future");
    done(&res);
}

static void test_validate_array_item_not_object(void **state)
{
    struct result res = run("[1,{\"temperature\":1},null,\"x\",[]]");

    (void)state;
    assert_int_equal(res.rc, CC_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.idx[0], 1);
    assert_int_equal(cc_error_detail_count(res.err), 4);
    assert_detail(res.err, 0, "[0]", "must be an object");
    assert_detail(res.err, 1, "[2]", "must be an object");
    assert_detail(res.err, 2, "[3]", "must be an object");
    assert_detail(res.err, 3, "[4]", "must be an object");
    assert_string_equal(cc_error_message(res.err), "4 fields are invalid");
    done(&res);
}

static void test_validate_not_json(void **state)
{
    const char *bad[] = {"{", "tempera", "{\"temperature\":1} x", "{\"temperature\":1}}",
                         "",  "   ",     "{'temperature':1}",     "[1,]"};

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct result res = run(bad[i]);

        if (res.rc != CC_ERR_BAD_JSON)
            fail_msg("\"%s\": rc %d, expected BAD_JSON", bad[i], res.rc);
        assert_non_null(res.err);
        assert_string_equal(cc_error_code(res.err), "BAD_JSON");
        assert_string_equal(cc_error_message(res.err), "payload is not valid JSON");
        assert_int_equal(res.n, 0);
        done(&res);
    }
}

static void test_validate_top_level_scalars_are_bad_json(void **state)
{
    const char *bad[] = {"\"hello\"", "42", "null", "true", "-1.5"};

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct result res = run(bad[i]);

        assert_int_equal(res.rc, CC_ERR_BAD_JSON);
        assert_string_equal(cc_error_code(res.err), "BAD_JSON");
        done(&res);
    }
}

static void test_validate_not_nul_terminated(void **state)
{
    const char buf[] = "{\"temperature\":3}  \n{garbage after the payload";
    struct result res;

    (void)state;
    res = run_len(buf, strlen("{\"temperature\":3}  \n"));
    assert_int_equal(res.rc, CC_OK);
    assert_null(res.err);
    assert_int_equal(res.n, 1);
    assert_true(res.rs[0].temperature == 3.0);
    done(&res);
    /* Cut in the middle of the number: "{"temperature":3" is not JSON. */
    res = run_len(buf, strlen("{\"temperature\":3"));
    assert_int_equal(res.rc, CC_ERR_BAD_JSON);
    done(&res);
}

static void test_validate_nul_byte_refused(void **state)
{
    const char buf[] = "{\"temperature\":3}\0";

    (void)state;
    struct result res = run_len(buf, sizeof buf - 1);
    assert_int_equal(res.rc, CC_ERR_BAD_JSON);
    done(&res);
}

/* "{"temperature":1,"x":" + levels-1 '[' ... + "}": an object nesting levels deep. */
static char *deep_reading(int levels)
{
    char *s = malloc((size_t)levels * 2 + 64);
    int n, i;

    assert_non_null(s);
    n = sprintf(s, "{\"temperature\":1,\"x\":");
    for (i = 1; i < levels; i++)
        s[n++] = '[';
    for (i = 1; i < levels; i++)
        s[n++] = ']';
    strcpy(s + n, "}");
    return s;
}

/* Past CC_JSON_MAX_DEPTH a payload is BAD_JSON before cJSON recurses on it; at the
 * limit it is still parsed (the unknown field is ignored). */
static void test_validate_depth_limit(void **state)
{
    char *at = deep_reading(CC_JSON_MAX_DEPTH);
    char *over = deep_reading(CC_JSON_MAX_DEPTH + 1);
    char *brackets = malloc(20000);
    struct result res;

    (void)state;
    accept_one(at);
    res = run(over);
    assert_int_equal(res.rc, CC_ERR_BAD_JSON);
    assert_string_equal(cc_error_code(res.err), "BAD_JSON");
    assert_string_equal(cc_error_message(res.err), "payload nests deeper than 32 levels");
    done(&res);
    assert_non_null(brackets);
    memset(brackets, '[', 10000);
    memset(brackets + 10000, ']', 10000);
    res = run_len(brackets, 20000);
    assert_int_equal(res.rc, CC_ERR_BAD_JSON);
    done(&res);
    res = run_len(brackets, 1000); /* unclosed, as an attacker sends it */
    assert_int_equal(res.rc, CC_ERR_BAD_JSON);
    done(&res);
    free(at);
    free(over);
    free(brackets);
}

static void test_validate_not_utf8(void **state)
{
    const char *bad[] = {"{\"temperature\":1,\"x\":\"\xff\"}",
                         "{\"temperature\":1,\"x\":\"\xc0\xaf\"}",     /* overlong '/' */
                         "{\"temperature\":1,\"x\":\"\xed\xa0\x80\"}", /* surrogate */
                         "{\"temperature\":1,\"x\":\"\xe2\x82\"}"};    /* truncated */
    struct result res;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        res = run(bad[i]);
        assert_int_equal(res.rc, CC_ERR_VALIDATION);
        assert_non_null(res.err);
        assert_string_equal(cc_error_code(res.err), "VALIDATION_ERROR");
        done(&res);
    }
    /* Valid multi-byte UTF-8 is fine. */
    res = run("{\"temperature\":1,\"note\":\"K\xc3\xbchlraum \xe2\x9d\x84 \xf0\x9f\xa7\x8a\"}");
    assert_int_equal(res.rc, CC_OK);
    assert_null(res.err);
    done(&res);
}

static void test_validate_too_large(void **state)
{
    size_t len = CC_MAX_PAYLOAD + 1;
    char *buf = malloc(len);
    struct result res;

    (void)state;
    assert_non_null(buf);
    memset(buf, ' ', len);
    memcpy(buf, "{\"temperature\":1}", 17);
    res = run_len(buf, len);
    assert_int_equal(res.rc, CC_ERR_VALIDATION);
    assert_non_null(res.err);
    done(&res);
    /* Exactly the limit, padded with whitespace, is fine. */
    res = run_len(buf, CC_MAX_PAYLOAD);
    assert_int_equal(res.rc, CC_OK);
    assert_int_equal(res.n, 1);
    done(&res);
    free(buf);
}

static void test_validate_multiple_bad_fields_one_detail_each(void **state)
{
    struct result res = run("{\"temperature\":\"x\",\"humidity\":200,\"powerStatus\":\"no\","
                            "\"batteryLevel\":null,\"ts\":-1}");

    (void)state;
    assert_int_equal(res.rc, CC_OK);
    assert_int_equal(res.n, 0);
    assert_int_equal(cc_error_detail_count(res.err), 5);
    assert_detail(res.err, 0, "temperature", "must be a number");
    assert_detail(res.err, 1, "humidity", "must be between 0 and 100");
    assert_detail(res.err, 2, "powerStatus", "must be a boolean");
    assert_detail(res.err, 3, "batteryLevel", "must be a number");
    assert_detail(res.err, 4, "ts", "must be a non-negative integer epoch in milliseconds");
    assert_string_equal(cc_error_message(res.err), "5 fields are invalid");
    done(&res);

    /* Across array items: one detail per broken field, each named with its item. */
    res = run("[{\"temperature\":999},{\"temperature\":1},{\"humidity\":5,\"doorStatus\":1}]");
    assert_int_equal(res.n, 1);
    assert_int_equal(res.idx[0], 1);
    assert_int_equal(cc_error_detail_count(res.err), 3);
    assert_detail(res.err, 0, "[0].temperature", "must be between -100 and 150");
    assert_detail(res.err, 1, "[2].temperature", "required");
    assert_detail(res.err, 2, "[2].doorStatus", "must be a boolean");
    done(&res);
}

static void test_validate_unknown_fields_ignored(void **state)
{
    struct cc_reading r = accept_one("{\"temperature\":2,\"foo\":\"bar\",\"nested\":{\"a\":[1]},"
                                     "\"Temperature\":\"ignored: names are case-sensitive\"}");

    (void)state;
    assert_true(r.temperature == 2.0);
}

static void test_validate_reading_single_object_api(void **state)
{
    cJSON *obj = cJSON_Parse("{\"temperature\":1,\"ts\":\"nope\"}");
    cJSON *details = cJSON_CreateArray();
    struct cc_reading r;

    (void)state;
    assert_int_equal(cc_validate_reading(obj, R, "[7].", &r, details), CC_ERR_VALIDATION);
    assert_int_equal(cJSON_GetArraySize(details), 1);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(details, 0), "field")),
        "[7].ts");
    cJSON_Delete(obj);
    obj = cJSON_Parse("{\"temperature\":-3}");
    assert_int_equal(cc_validate_reading(obj, R, "", &r, details), CC_OK);
    assert_true(r.temperature == -3.0);
    assert_int_equal(cJSON_GetArraySize(details), 1);
    cJSON_Delete(obj);
    cJSON_Delete(details);
}

/* Status payloads. */
static int status(const char *s, int *online, char fw[CC_FIRMWARE_MAX + 1], cJSON **err)
{
    size_t len = strlen(s);
    char *copy = malloc(len + 1);
    int rc;

    assert_non_null(copy);
    memcpy(copy, s, len);
    rc = cc_validate_status(copy, len, online, fw, err);
    free(copy);
    return rc;
}

static void test_validate_status_ok(void **state)
{
    char fw[CC_FIRMWARE_MAX + 1];
    cJSON *err = NULL;
    int online = -1;

    (void)state;
    assert_int_equal(status("{\"online\":true,\"firmwareVersion\":\"1.4.2\"}", &online, fw, &err),
                     CC_OK);
    assert_null(err);
    assert_int_equal(online, 1);
    assert_string_equal(fw, "1.4.2");
    assert_int_equal(status("{\"online\":false}", &online, fw, &err), CC_OK);
    assert_int_equal(online, 0);
    assert_string_equal(fw, "");
    assert_int_equal(status(" {\"online\":true,\"extra\":1} ", &online, fw, &err), CC_OK);
}

static void assert_status_refused(const char *s, int rc_expected, const char *field,
                                  const char *issue)
{
    char fw[CC_FIRMWARE_MAX + 1] = "untouched";
    cJSON *err = NULL;
    int online = 42;

    assert_int_equal(status(s, &online, fw, &err), rc_expected);
    assert_non_null(err);
    assert_int_equal(online, 42); /* out-parameters written only on success */
    if (field != NULL) {
        assert_int_equal(cc_error_detail_count(err), 1);
        assert_detail(err, 0, field, issue);
    }
    cJSON_Delete(err);
}

static void test_validate_status_refused(void **state)
{
    char longfw[128];

    (void)state;
    assert_status_refused("{}", CC_ERR_VALIDATION, "online", "required");
    assert_status_refused("{\"online\":\"yes\"}", CC_ERR_VALIDATION, "online", "must be a boolean");
    assert_status_refused("{\"online\":null}", CC_ERR_VALIDATION, "online", "must be a boolean");
    assert_status_refused("{\"online\":true,\"firmwareVersion\":5}", CC_ERR_VALIDATION,
                          "firmwareVersion", "must be a string");
    assert_status_refused("{\"online\":true,\"firmwareVersion\":\"1\\u0001\"}", CC_ERR_VALIDATION,
                          "firmwareVersion", "must not contain control characters");
    snprintf(longfw, sizeof longfw, "{\"online\":true,\"firmwareVersion\":\"%065d\"}", 0);
    assert_status_refused(longfw, CC_ERR_VALIDATION, "firmwareVersion",
                          "must be at most 64 characters");
    assert_status_refused("{\"online\":tru", CC_ERR_BAD_JSON, NULL, NULL);
    assert_status_refused("true", CC_ERR_BAD_JSON, NULL, NULL);
    assert_status_refused("[{\"online\":true}]", CC_ERR_VALIDATION, "payload", "must be an object");
    {
        char *deep = deep_reading(CC_JSON_MAX_DEPTH + 1);

        assert_status_refused(deep, CC_ERR_BAD_JSON, NULL, NULL);
        free(deep);
    }
}

static void test_validate_status_firmware_at_limit(void **state)
{
    char buf[128];
    char fw[CC_FIRMWARE_MAX + 1];
    cJSON *err = NULL;
    int online = 0;

    (void)state;
    snprintf(buf, sizeof buf, "{\"online\":true,\"firmwareVersion\":\"%064d\"}", 7);
    assert_int_equal(status(buf, &online, fw, &err), CC_OK);
    assert_int_equal(strlen(fw), 64);
}

static void test_validate_reading_to_json(void **state)
{
    struct cc_reading r = {0};
    cJSON *j;
    char *s;

    (void)state;
    r.ts_ms = R;
    r.temperature = -18.5;
    r.has_humidity = 1;
    r.humidity = 40;
    r.power_status = CC_FALSE;
    r.door_status = CC_ABSENT;
    j = cc_reading_to_json(&r);
    assert_non_null(j);
    s = cJSON_PrintUnformatted(j);
    assert_string_equal(s, "{\"ts\":\"2025-11-26T05:45:00.000Z\",\"temperature\":-18.5,"
                           "\"humidity\":40,\"powerStatus\":false,\"doorStatus\":null,"
                           "\"batteryLevel\":null}");
    free(s);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_minimal_reading_defaults),
        cmocka_unit_test(test_validate_full_reading),
        cmocka_unit_test(test_validate_temperature_boundaries),
        cmocka_unit_test(test_validate_temperature_required),
        cmocka_unit_test(test_validate_temperature_wrong_types),
        cmocka_unit_test(test_validate_humidity_boundaries),
        cmocka_unit_test(test_validate_battery_boundaries),
        cmocka_unit_test(test_validate_booleans),
        cmocka_unit_test(test_validate_ts_future_boundary),
        cmocka_unit_test(test_validate_ts_age_boundary),
        cmocka_unit_test(test_validate_ts_iso_with_offsets),
        cmocka_unit_test(test_validate_ts_bad_iso),
        cmocka_unit_test(test_validate_ts_not_an_integer),
        cmocka_unit_test(test_validate_ts_wrong_type),
        cmocka_unit_test(test_validate_array_of_1000_accepted),
        cmocka_unit_test(test_validate_array_empty_refused),
        cmocka_unit_test(test_validate_array_item_errors_named),
        cmocka_unit_test(test_validate_array_item_not_object),
        cmocka_unit_test(test_validate_not_json),
        cmocka_unit_test(test_validate_top_level_scalars_are_bad_json),
        cmocka_unit_test(test_validate_not_nul_terminated),
        cmocka_unit_test(test_validate_nul_byte_refused),
        cmocka_unit_test(test_validate_depth_limit),
        cmocka_unit_test(test_validate_not_utf8),
        cmocka_unit_test(test_validate_too_large),
        cmocka_unit_test(test_validate_multiple_bad_fields_one_detail_each),
        cmocka_unit_test(test_validate_unknown_fields_ignored),
        cmocka_unit_test(test_validate_reading_single_object_api),
        cmocka_unit_test(test_validate_status_ok),
        cmocka_unit_test(test_validate_status_refused),
        cmocka_unit_test(test_validate_status_firmware_at_limit),
        cmocka_unit_test(test_validate_reading_to_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
