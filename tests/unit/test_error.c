/* test_error.c - cc_error: the SPEC §5 error object, exactly as serialized. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_error.h"
#include "cc_rc.h"

/* Serializes err and compares it with the expected JSON text. */
static void assert_json(const cJSON *err, const char *expect)
{
    char *s = cJSON_PrintUnformatted(err);

    assert_non_null(s);
    assert_string_equal(s, expect);
    free(s);
}

static void test_error_new_shape(void **state)
{
    (void)state;
    cJSON *e = cc_error_new(CC_ERR_NOT_FOUND, "no such cold cell");

    assert_non_null(e);
    assert_json(e, "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"no such cold cell\"}}");
    assert_string_equal(cc_error_code(e), "NOT_FOUND");
    assert_string_equal(cc_error_message(e), "no such cold cell");
    assert_int_equal(cc_error_detail_count(e), 0);
    cJSON_Delete(e);
}

static void test_error_codes_follow_rc(void **state)
{
    (void)state;
    static const struct {
        int rc;
        const char *code;
    } cases[] = {
        {CC_ERR_VALIDATION, "VALIDATION_ERROR"},
        {CC_ERR_BAD_JSON, "BAD_JSON"},
        {CC_ERR_UNAUTHORIZED, "UNAUTHORIZED"},
        {CC_ERR_TOKEN_EXPIRED, "TOKEN_EXPIRED"},
        {CC_ERR_INVALID_CREDENTIALS, "INVALID_CREDENTIALS"},
        {CC_ERR_FORBIDDEN, "FORBIDDEN"},
        {CC_ERR_CONFLICT, "CONFLICT"},
        {CC_ERR_TOO_LARGE, "PAYLOAD_TOO_LARGE"},
        {CC_ERR_RATE_LIMITED, "RATE_LIMITED"},
        {CC_ERR_DB, "INTERNAL"},
        {-1, "INTERNAL"},
        {CC_RC_COUNT, "INTERNAL"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *e = cc_error_new(cases[i].rc, "m");

        assert_non_null(e);
        assert_string_equal(cc_error_code(e), cases[i].code);
        cJSON_Delete(e);
    }
}

static void test_error_details_in_order(void **state)
{
    (void)state;
    cJSON *e = cc_error_new(CC_ERR_VALIDATION, "temperature must be a number");

    assert_int_equal(cc_error_add_detail(e, "temperature", "required"), CC_OK);
    assert_int_equal(cc_error_detail_count(e), 1);
    assert_json(e, "{\"error\":{\"code\":\"VALIDATION_ERROR\",\"message\":\"temperature must be "
                   "a number\",\"details\":[{\"field\":\"temperature\",\"issue\":\"required\"}]}}");
    assert_int_equal(cc_error_add_detail(e, "[3].ts", "in the future"), CC_OK);
    assert_int_equal(cc_error_detail_count(e), 2);
    assert_json(e, "{\"error\":{\"code\":\"VALIDATION_ERROR\",\"message\":\"temperature must be "
                   "a number\",\"details\":[{\"field\":\"temperature\",\"issue\":\"required\"},"
                   "{\"field\":\"[3].ts\",\"issue\":\"in the future\"}]}}");
    cJSON_Delete(e);
}

static void test_error_escapes_text(void **state)
{
    (void)state;
    cJSON *e = cc_error_new(CC_ERR_BAD_JSON, "bad \"quote\"\n");

    assert_int_equal(cc_error_add_detail(e, "a\\b", "x"), CC_OK);
    assert_json(e, "{\"error\":{\"code\":\"BAD_JSON\",\"message\":\"bad \\\"quote\\\"\\n\","
                   "\"details\":[{\"field\":\"a\\\\b\",\"issue\":\"x\"}]}}");
    cJSON_Delete(e);
}

static void test_error_null_message_is_empty(void **state)
{
    (void)state;
    cJSON *e = cc_error_new(CC_ERR_INTERNAL, NULL);

    assert_non_null(e);
    assert_string_equal(cc_error_message(e), "");
    assert_json(e, "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"\"}}");
    assert_int_equal(cc_error_add_detail(e, NULL, NULL), CC_OK);
    assert_json(e, "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"\",\"details\":[{\"field\":"
                   "\"\",\"issue\":\"\"}]}}");
    cJSON_Delete(e);
}

static void test_error_accessors_on_foreign_objects(void **state)
{
    (void)state;
    cJSON *o = cJSON_Parse("{\"other\":1}");
    cJSON *wrong = cJSON_Parse("{\"error\":\"string\"}");

    assert_string_equal(cc_error_code(NULL), "INTERNAL");
    assert_string_equal(cc_error_message(NULL), "");
    assert_int_equal(cc_error_detail_count(NULL), 0);
    assert_string_equal(cc_error_code(o), "INTERNAL");
    assert_string_equal(cc_error_message(o), "");
    assert_string_equal(cc_error_code(wrong), "INTERNAL");
    assert_int_equal(cc_error_add_detail(NULL, "f", "i"), CC_ERR_NOMEM);
    assert_int_equal(cc_error_add_detail(o, "f", "i"), CC_ERR_NOMEM);
    assert_json(o, "{\"other\":1}");
    cJSON_Delete(o);
    cJSON_Delete(wrong);
}

static void test_error_round_trips_through_parse(void **state)
{
    (void)state;
    cJSON *e = cc_error_new(CC_ERR_RATE_LIMITED, "slow down");
    char *s = cJSON_PrintUnformatted(e);
    cJSON *back = cJSON_Parse(s);

    assert_non_null(back);
    assert_string_equal(cc_error_code(back), "RATE_LIMITED");
    assert_string_equal(cc_error_message(back), "slow down");
    free(s);
    cJSON_Delete(back);
    cJSON_Delete(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_new_shape),
        cmocka_unit_test(test_error_codes_follow_rc),
        cmocka_unit_test(test_error_details_in_order),
        cmocka_unit_test(test_error_escapes_text),
        cmocka_unit_test(test_error_null_message_is_empty),
        cmocka_unit_test(test_error_accessors_on_foreign_objects),
        cmocka_unit_test(test_error_round_trips_through_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
