/* test_http.c - cc_http: error bodies (shape, details, production masking), request
 * bodies, query strings, ids, paging, client addresses and CORS origins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_error.h"
#include "cc_http.h"
#include "cc_json.h"
#include "cc_rc.h"

static void test_http_error_body_shape(void **state)
{
    char *s;

    (void)state;
    s = cc_http_error_body(CC_ERR_NOT_FOUND, NULL, NULL, 0);
    assert_string_equal(s, "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"not found\"}}");
    free(s);
    s = cc_http_error_body(CC_ERR_RATE_LIMITED, "slow down", NULL, 1);
    assert_string_equal(s, "{\"error\":{\"code\":\"RATE_LIMITED\",\"message\":\"slow down\"}}");
    free(s);
}

static void test_http_error_body_details_kept(void **state)
{
    cJSON *err = cc_error_new(CC_ERR_VALIDATION, "name required");
    char *s;

    (void)state;
    cc_error_add_detail(err, "name", "required");
    cc_error_add_detail(err, "minTemp", "must be a number");
    s = cc_http_error_body(CC_ERR_VALIDATION, NULL, err, 1);
    assert_string_equal(s, "{\"error\":{\"code\":\"VALIDATION_ERROR\",\"message\":\"name "
                           "required\",\"details\":[{\"field\":\"name\",\"issue\":\"required\"},"
                           "{\"field\":\"minTemp\",\"issue\":\"must be a number\"}]}}");
    free(s);
    cJSON_Delete(err);
}

static void test_http_error_body_production_hides_internals(void **state)
{
    cJSON *err = cc_error_new(CC_ERR_DB, "SQLITE_CORRUPT in table users");
    char *s;

    (void)state;
    s = cc_http_error_body(CC_ERR_DB, "disk I/O error at /var/lib/x", err, 1);
    assert_string_equal(s, "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"internal error\"}}");
    free(s);
    s = cc_http_error_body(CC_ERR_DB, "database unavailable", NULL, 0);
    assert_non_null(strstr(s, "database unavailable"));
    free(s);
    s = cc_http_error_body(CC_OK, NULL, NULL, 1);
    assert_non_null(strstr(s, "INTERNAL"));
    free(s);
    cJSON_Delete(err);
}

static void test_http_parse_body(void **state)
{
    cJSON *out = NULL, *err = NULL;

    (void)state;
    assert_int_equal(cc_http_parse_body("{\"a\":1}", 7, &out, &err), CC_OK);
    assert_non_null(out);
    cJSON_Delete(out);
    out = NULL;
    assert_int_equal(cc_http_parse_body("  {\"a\":1} \n", 11, &out, &err), CC_OK);
    cJSON_Delete(out);
    out = NULL;
    static const char *const bad[] = {"", "{", "{\"a\":}", "nope", "{} {}", "{\"a\":1}x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cc_http_parse_body(bad[i], strlen(bad[i]), &out, &err), CC_ERR_BAD_JSON);
        assert_string_equal(cc_error_code(err), "BAD_JSON");
        cJSON_Delete(err);
        err = NULL;
    }
    assert_int_equal(cc_http_parse_body(NULL, 0, &out, &err), CC_ERR_BAD_JSON);
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(cc_http_parse_body("[1]", 3, &out, &err), CC_ERR_VALIDATION);
    cJSON_Delete(err);
    err = NULL;
    /* Only the given length is read, even without a NUL. */
    assert_int_equal(cc_http_parse_body("{\"a\":1}GARBAGE", 7, &out, &err), CC_OK);
    cJSON_Delete(out);
}

/* Bodies nesting past CC_JSON_MAX_DEPTH are BAD_JSON before cJSON recurses on them
 * (apid parses on a 100 KiB worker stack); exactly the limit is still parsed. */
static void test_http_parse_body_depth(void **state)
{
    char buf[20100];
    cJSON *out = NULL, *err = NULL;
    const cJSON *msg;
    size_t n;
    int i;

    (void)state;
    for (int depth = CC_JSON_MAX_DEPTH; depth <= CC_JSON_MAX_DEPTH + 1; depth++) {
        n = (size_t)snprintf(buf, sizeof buf, "{\"a\":");
        for (i = 1; i < depth; i++)
            buf[n++] = '[';
        for (i = 1; i < depth; i++)
            buf[n++] = ']';
        buf[n++] = '}';
        buf[n] = '\0';
        if (depth == CC_JSON_MAX_DEPTH) {
            assert_int_equal(cc_http_parse_body(buf, n, &out, &err), CC_OK);
            cJSON_Delete(out);
            out = NULL;
        } else {
            assert_int_equal(cc_http_parse_body(buf, n, &out, &err), CC_ERR_BAD_JSON);
            assert_string_equal(cc_error_code(err), "BAD_JSON");
            msg = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(err, "error"),
                                                   "message");
            assert_true(cJSON_IsString(msg) && strstr(msg->valuestring, "32") != NULL);
            cJSON_Delete(err);
            err = NULL;
        }
    }
    memset(buf, '[', 10000);
    assert_int_equal(cc_http_parse_body(buf, 10000, &out, &err), CC_ERR_BAD_JSON);
    assert_null(out);
    cJSON_Delete(err);
}

static void test_http_query_param(void **state)
{
    char v[16];

    (void)state;
    assert_int_equal(cc_http_query_param("a=1&bb=two&c", "bb", v, sizeof v), 1);
    assert_string_equal(v, "two");
    assert_int_equal(cc_http_query_param("a=1&bb=two&c", "c", v, sizeof v), 1);
    assert_string_equal(v, "");
    assert_int_equal(cc_http_query_param("a=1&bb=two", "b", v, sizeof v), 0);
    assert_int_equal(cc_http_query_param(NULL, "a", v, sizeof v), 0);
    assert_int_equal(cc_http_query_param("q=a%20b+c%2F", "q", v, sizeof v), 1);
    assert_string_equal(v, "a b c/");
    assert_int_equal(cc_http_query_param("q=%zz", "q", v, sizeof v), -1);
    assert_int_equal(cc_http_query_param("q=%2", "q", v, sizeof v), -1);
    assert_int_equal(cc_http_query_param("q=%00", "q", v, sizeof v), -1);
    assert_int_equal(cc_http_query_param("q=0123456789abcdefXYZ", "q", v, sizeof v), -1);
    /* Given twice: refused, whatever the values (a reader taking the last one differs). */
    assert_int_equal(cc_http_query_param("a=1&a=2", "a", v, sizeof v), -1);
    assert_int_equal(cc_http_query_param("a=1&b=2&a=1", "a", v, sizeof v), -1);
    assert_int_equal(cc_http_query_param("a=1&a", "a", v, sizeof v), -1);
    assert_int_equal(cc_http_query_param("a&a=1", "a", v, sizeof v), -1);
    assert_int_equal(cc_http_query_param("ab=1&a=2&ba=3&a2=4", "a", v, sizeof v), 1);
    assert_string_equal(v, "2");
    assert_int_equal(cc_http_query_param("a=1&", "a", v, sizeof v), 1);
    assert_string_equal(v, "1");
}

static void test_http_parse_id(void **state)
{
    int64_t id = 0;

    (void)state;
    assert_true(cc_http_parse_id("1", &id) && id == 1);
    assert_true(cc_http_parse_id("9223372036854775807", &id) && id == INT64_MAX);
    assert_false(cc_http_parse_id("9223372036854775808", &id));
    assert_false(cc_http_parse_id("0", &id));
    assert_false(cc_http_parse_id("01", &id));
    assert_false(cc_http_parse_id("-1", &id));
    assert_false(cc_http_parse_id("1a", &id));
    assert_false(cc_http_parse_id("", &id));
    assert_false(cc_http_parse_id(NULL, &id));
}

static void test_http_page(void **state)
{
    struct cc_page pg;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(cc_http_page(NULL, 50, &pg, &err), CC_OK);
    assert_int_equal(pg.limit, 50);
    assert_int_equal(pg.offset, 0);
    assert_int_equal(cc_http_page("limit=500&offset=20", 50, &pg, &err), CC_OK);
    assert_int_equal(pg.limit, 500);
    assert_int_equal(pg.offset, 20);
    assert_int_equal(cc_http_page("limit=501&offset=-1", 50, &pg, &err), CC_ERR_VALIDATION);
    assert_int_equal(cc_error_detail_count(err), 2);
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(cc_http_page("limit=abc", 50, &pg, &err), CC_ERR_VALIDATION);
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(cc_http_page("limit=0", 50, &pg, &err), CC_ERR_VALIDATION);
    cJSON_Delete(err);
}

static void test_http_query_id(void **state)
{
    int64_t id = 7;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(cc_http_query_id("x=1", "coldCellId", &id, &err), CC_OK);
    assert_int_equal(id, 0);
    assert_int_equal(cc_http_query_id("coldCellId=12", "coldCellId", &id, &err), CC_OK);
    assert_int_equal(id, 12);
    assert_int_equal(cc_http_query_id("coldCellId=x", "coldCellId", &id, &err), CC_ERR_VALIDATION);
    cJSON_Delete(err);
}

static void test_http_client_addr(void **state)
{
    char out[CC_ADDR_MAX];

    (void)state;
    cc_http_client_addr("127.0.0.1", "203.0.113.5", 0, out, sizeof out);
    assert_string_equal(out, "127.0.0.1");
    cc_http_client_addr("127.0.0.1", "203.0.113.5", 1, out, sizeof out);
    assert_string_equal(out, "203.0.113.5");
    /* The right-most entry is the one our proxy appended. */
    cc_http_client_addr("127.0.0.1", "1.1.1.1, 198.51.100.7 ", 1, out, sizeof out);
    assert_string_equal(out, "198.51.100.7");
    cc_http_client_addr("127.0.0.1", "2001:db8::1", 1, out, sizeof out);
    assert_string_equal(out, "2001:db8::1");
    cc_http_client_addr("127.0.0.1", "1.2.3.4, evil<script>", 1, out, sizeof out);
    assert_string_equal(out, "127.0.0.1");
    cc_http_client_addr("127.0.0.1", "", 1, out, sizeof out);
    assert_string_equal(out, "127.0.0.1");
    cc_http_client_addr("127.0.0.1", NULL, 1, out, sizeof out);
    assert_string_equal(out, "127.0.0.1");
    cc_http_client_addr("127.0.0.1", "1.2.3.4,", 1, out, sizeof out);
    assert_string_equal(out, "127.0.0.1");
}

static void test_http_origin_allowed(void **state)
{
    (void)state;
    assert_true(cc_http_origin_allowed("https://a.example,https://b.example", "https://b.example"));
    assert_true(cc_http_origin_allowed(" https://a.example/ , x", "https://a.example"));
    assert_false(cc_http_origin_allowed("https://a.example", "https://a.example.evil"));
    assert_false(cc_http_origin_allowed("https://a.example", "https://a.exampl"));
    assert_false(cc_http_origin_allowed("", "https://a.example"));
    assert_false(cc_http_origin_allowed("https://a.example", ""));
    assert_false(cc_http_origin_allowed("https://a.example", NULL));
    assert_true(cc_http_origin_allowed("*", "https://anything.example"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_error_body_shape),
        cmocka_unit_test(test_http_error_body_details_kept),
        cmocka_unit_test(test_http_error_body_production_hides_internals),
        cmocka_unit_test(test_http_parse_body),
        cmocka_unit_test(test_http_parse_body_depth),
        cmocka_unit_test(test_http_query_param),
        cmocka_unit_test(test_http_parse_id),
        cmocka_unit_test(test_http_page),
        cmocka_unit_test(test_http_query_id),
        cmocka_unit_test(test_http_client_addr),
        cmocka_unit_test(test_http_origin_allowed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
