/* test_input.c - cc_input: typed body fields, every problem collected, null and empty
 * handling, limits in characters, and the first problem as the message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_error.h"
#include "cc_input.h"
#include "cc_rc.h"

static void test_input_all_good(void **state)
{
    cJSON *b = cJSON_Parse("{\"name\":\"Caf\\u00e9\",\"t\":-2.5,\"n\":7,\"ok\":true,\"x\":1}");
    struct cc_input in;
    const char *name = NULL;
    double t = 0;
    int64_t n = 0;
    int ok = 0;
    cJSON *err = NULL;

    (void)state;
    cc_input_init(&in, b);
    assert_int_equal(cc_input_text(&in, "name", CC_INPUT_REQUIRED, 4, &name), CC_INPUT_SET);
    assert_string_equal(name, "Caf\xc3\xa9"); /* 4 characters, 5 bytes */
    assert_int_equal(cc_input_number(&in, "t", CC_INPUT_REQUIRED, -100, 150, &t), CC_INPUT_SET);
    assert_int_equal(cc_input_int(&in, "n", 0, 0, 10, &n), CC_INPUT_SET);
    assert_int_equal(cc_input_bool(&in, "ok", 0, &ok), CC_INPUT_SET);
    assert_int_equal(cc_input_text(&in, "absent", 0, 10, &name), CC_INPUT_ABSENT);
    assert_int_equal(cc_input_finish(&in, &err), CC_OK);
    assert_null(err);
    assert_true(t == -2.5 && n == 7 && ok == 1);
    cJSON_Delete(b);
}

static void test_input_every_problem_listed(void **state)
{
    cJSON *b = cJSON_Parse("{\"name\":5,\"t\":\"cold\",\"n\":1.5,\"ok\":\"yes\",\"e\":\"\","
                           "\"big\":500,\"nul\":null,\"ctl\":\"a\\u0001b\"}");
    struct cc_input in;
    const char *s = NULL;
    double t = 0;
    int64_t n = 0;
    int ok = 0;
    cJSON *err = NULL, *d;
    int count = 0;

    (void)state;
    cc_input_init(&in, b);
    assert_int_equal(cc_input_text(&in, "name", 0, 10, &s), CC_INPUT_BAD);
    assert_int_equal(cc_input_number(&in, "t", 0, 0, 1, &t), CC_INPUT_BAD);
    assert_int_equal(cc_input_int(&in, "n", 0, 0, 10, &n), CC_INPUT_BAD);
    assert_int_equal(cc_input_bool(&in, "ok", 0, &ok), CC_INPUT_BAD);
    assert_int_equal(cc_input_text(&in, "e", CC_INPUT_NONEMPTY, 10, &s), CC_INPUT_BAD);
    assert_int_equal(cc_input_int(&in, "big", 0, 0, 100, &n), CC_INPUT_BAD);
    assert_int_equal(cc_input_text(&in, "nul", 0, 10, &s), CC_INPUT_BAD);
    assert_int_equal(cc_input_text(&in, "ctl", 0, 10, &s), CC_INPUT_BAD);
    assert_int_equal(cc_input_text(&in, "req", CC_INPUT_REQUIRED, 10, &s), CC_INPUT_ABSENT);
    assert_int_equal(cc_input_finish(&in, &err), CC_ERR_VALIDATION);
    assert_string_equal(cc_error_code(err), "VALIDATION_ERROR");
    assert_string_equal(cc_error_message(err), "name must be a string");
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(err, "error"), "details")) count++;
    assert_int_equal(count, 9);
    cJSON_Delete(err);
    cJSON_Delete(b);
}

static void test_input_nullable_and_limits(void **state)
{
    cJSON *b = cJSON_Parse("{\"fw\":null,\"long\":\"abcdef\"}");
    struct cc_input in;
    const char *s = NULL;
    cJSON *err = NULL;

    (void)state;
    cc_input_init(&in, b);
    assert_int_equal(cc_input_text(&in, "fw", CC_INPUT_NULLABLE, 10, &s), CC_INPUT_NULL);
    assert_int_equal(cc_input_text(&in, "long", 0, 5, &s), CC_INPUT_BAD);
    assert_int_equal(cc_input_finish(&in, &err), CC_ERR_VALIDATION);
    assert_string_equal(cc_error_message(err), "long must be at most 5 characters");
    cJSON_Delete(err);
    cJSON_Delete(b);
}

static void test_input_utf8_len(void **state)
{
    (void)state;
    assert_int_equal(cc_input_utf8_len(""), 0);
    assert_int_equal(cc_input_utf8_len("abc"), 3);
    assert_int_equal(cc_input_utf8_len("\xe2\x82\xac"), 1);
    assert_int_equal(cc_input_utf8_len("\xf0\x9f\x98\x80"), 1);
    assert_int_equal(cc_input_utf8_len("\xc0\xaf"), -1);     /* overlong */
    assert_int_equal(cc_input_utf8_len("\xed\xa0\x80"), -1); /* surrogate */
    assert_int_equal(cc_input_utf8_len("\xe2\x82"), -1);     /* cut */
    assert_int_equal(cc_input_utf8_len("a\tb"), -1);         /* control */
    assert_int_equal(cc_input_utf8_len("\x7f"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_all_good),
        cmocka_unit_test(test_input_every_problem_listed),
        cmocka_unit_test(test_input_nullable_and_limits),
        cmocka_unit_test(test_input_utf8_len),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
