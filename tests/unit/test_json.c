/* test_json.c - cc_json: the depth gate in front of cJSON (32 accepted, 33 refused),
 * brackets in strings and escaped quotes, very deep input, empty and garbage input,
 * and cc_json_parse_outside's trailing-byte rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <cmocka.h>

#include "cc_json.h"

/* n '[' then n ']' (malloc'd, NUL-terminated). */
static char *nested(int n, char open, char close)
{
    char *s = malloc((size_t)n * 2 + 1);
    int i;

    assert_non_null(s);
    for (i = 0; i < n; i++) {
        s[i] = open;
        s[n + i] = close;
    }
    s[2 * n] = '\0';
    return s;
}

static int ok(const char *s, int max)
{
    return cc_json_depth_ok(s, strlen(s), max);
}

static void test_json_depth_32_accepted_33_refused(void **state)
{
    char *a32 = nested(CC_JSON_MAX_DEPTH, '[', ']');
    char *a33 = nested(CC_JSON_MAX_DEPTH + 1, '[', ']');
    char *o33 = nested(CC_JSON_MAX_DEPTH + 1, '{', '}');
    int deep = -1;
    cJSON *j;

    (void)state;
    assert_int_equal(ok(a32, CC_JSON_MAX_DEPTH), 1);
    assert_int_equal(ok(a33, CC_JSON_MAX_DEPTH), 0);
    /* Objects count as arrays do (the text is not valid JSON, but the scan refuses
     * it before a parser would). */
    assert_int_equal(ok(o33, CC_JSON_MAX_DEPTH), 0);
    j = cc_json_parse_outside(a32, strlen(a32), &deep);
    assert_non_null(j);
    assert_int_equal(deep, 0);
    cJSON_Delete(j);
    assert_null(cc_json_parse_outside(a33, strlen(a33), &deep));
    assert_int_equal(deep, 1);
    free(a32);
    free(a33);
    free(o33);
}

static void test_json_depth_mixed_and_siblings(void **state)
{
    (void)state;
    assert_int_equal(ok("{\"a\":[{\"b\":[1]}]}", 4), 1);
    assert_int_equal(ok("{\"a\":[{\"b\":[1]}]}", 3), 0);
    /* Siblings do not add up: depth is the deepest path, not the count. */
    assert_int_equal(ok("[[1],[2],[3],{\"x\":[4]}]", 3), 1);
    assert_int_equal(ok("[[1],[2],[3],{\"x\":[4]}]", 2), 0);
    assert_int_equal(ok("1", 0), 1);
    assert_int_equal(ok("[]", 0), 0);
}

static void test_json_strings_do_not_count(void **state)
{
    (void)state;
    assert_int_equal(ok("{\"k\":\"[[[[[[[[{{{{{{\"}", 1), 1);
    /* An escaped quote does not end the string: the brackets after it are text. */
    assert_int_equal(ok("[\"a\\\"[[[[[[\"]", 1), 1);
    /* An escaped backslash does end it: \\" closes, so the '[' after it count. */
    assert_int_equal(ok("[\"a\\\\\",[[]]]", 2), 0);
    assert_int_equal(ok("[\"a\\\\\",[[]]]", 3), 1);
    /* A closer inside a string does not lower the depth. */
    assert_int_equal(ok("[\"]]]]\",[[1]]]", 2), 0);
}

static void test_json_unmatched_closers_buy_nothing(void **state)
{
    char buf[200];

    (void)state;
    /* "]]]]" first must not let 36 '[' through as if depth started at -4. */
    memset(buf, 0, sizeof buf);
    memset(buf, ']', 4);
    memset(buf + 4, '[', CC_JSON_MAX_DEPTH + 1);
    assert_int_equal(ok(buf, CC_JSON_MAX_DEPTH), 0);
}

static void test_json_ten_thousand_brackets_refused(void **state)
{
    char *s = nested(10000, '[', ']');
    int deep = 0;

    (void)state;
    assert_int_equal(ok(s, CC_JSON_MAX_DEPTH), 0);
    /* Unclosed: only the openers, as an attacker would send. */
    s[10000] = '\0';
    assert_int_equal(ok(s, CC_JSON_MAX_DEPTH), 0);
    assert_null(cc_json_parse_outside(s, 10000, &deep));
    assert_int_equal(deep, 1);
    free(s);
}

static void test_json_empty_and_garbage(void **state)
{
    int deep = 7;
    cJSON *j;

    (void)state;
    assert_int_equal(cc_json_depth_ok(NULL, 0, CC_JSON_MAX_DEPTH), 1);
    assert_int_equal(cc_json_depth_ok("", 0, CC_JSON_MAX_DEPTH), 1);
    assert_null(cc_json_parse_outside(NULL, 0, &deep));
    assert_int_equal(deep, 0);
    assert_null(cc_json_parse_outside("", 0, &deep));
    assert_null(cc_json_parse_outside("nope", 4, &deep));
    assert_int_equal(deep, 0);
    assert_null(cc_json_parse_outside("{\"a\":", 5, NULL));
    /* An unterminated string swallows the rest: shallow, and bad JSON. */
    assert_int_equal(ok("[\"[[[[[[[[[[", 2), 1);
    assert_null(cc_json_parse_outside("[\"[[[[", 6, &deep));
    assert_int_equal(deep, 0);
    /* A trailing backslash must not read past the end. */
    assert_int_equal(cc_json_depth_ok("\"\\", 2, 1), 1);
    /* Only blanks may follow the value. */
    j = cc_json_parse_outside("{\"a\":1} \r\n\t", 11, &deep);
    assert_non_null(j);
    cJSON_Delete(j);
    assert_null(cc_json_parse_outside("{\"a\":1} x", 9, &deep));
    assert_null(cc_json_parse_outside("{} {}", 5, &deep));
    /* len bounds the scan: the bytes after it are never read. */
    j = cc_json_parse_outside("[1]]]]", 3, &deep);
    assert_non_null(j);
    cJSON_Delete(j);
}

/* The escape \u0000 decodes to a NUL byte that ends every C string after it: the gate
 * refuses it, and only it (an escaped backslash before "u0000" is text). */
static void test_json_nul_escape_refused(void **state)
{
    static const char *const refused[] = {
        "{\"name\":\"Depot\\u0000 of customer 2\"}",
        "[\"\\u0000\"]",
        "{\"a\\u0000b\":1}",
        "\"x\\\\\\u0000\"",
    };
    static const char *const kept[] = {
        "{\"name\":\"Depot \\\\u0000\"}",
        "[\"\\u0001\",\"\\u1000\"]",
        "[\"\\u0100\"]",
    };
    int why = 7;
    cJSON *j;

    (void)state;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        why = 7;
        assert_null(cc_json_parse_outside(refused[i], strlen(refused[i]), &why));
        assert_int_equal(why, CC_JSON_NUL);
    }
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        why = 7;
        j = cc_json_parse_outside(kept[i], strlen(kept[i]), &why);
        assert_non_null(j);
        assert_int_equal(why, 0);
        cJSON_Delete(j);
    }
    /* Cut inside the escape: the scan must not read past len. */
    assert_null(cc_json_parse_outside("[\"\\u000", 7, &why));
    assert_int_equal(why, 0);
}

#define WORKER_STACK (100 * 1024) /* civetweb's worker stack size, as apid runs it */

struct stack_case {
    const char *s;
    size_t len;
    int parsed;   /* out: a tree came back */
    int too_deep; /* out */
};

static void *parse_on_thread(void *arg)
{
    struct stack_case *sc = arg;
    cJSON *j = cc_json_parse_outside(sc->s, sc->len, &sc->too_deep);

    sc->parsed = j != NULL;
    cJSON_Delete(j);
    return NULL;
}

static struct stack_case parse_small_stack(const char *s, size_t len)
{
    struct stack_case sc = {s, len, -1, -1};
    pthread_attr_t attr;
    pthread_t th;

    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(pthread_attr_setstacksize(&attr, WORKER_STACK), 0);
    assert_int_equal(pthread_create(&th, &attr, parse_on_thread, &sc), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&attr);
    return sc;
}

/* The depth the gate allows is affordable on a civetweb worker's 100 KiB stack, and
 * what it refuses never reaches cJSON there (a crash would kill the test binary). */
static void test_json_worker_stack_affords_the_limit(void **state)
{
    char *ok = malloc(4 * CC_JSON_MAX_DEPTH + 8);
    char *deep = nested(10000, '[', ']');
    struct stack_case sc;
    int i, n = 0;

    (void)state;
    assert_non_null(ok);
    /* Alternating objects and arrays, the heavier of cJSON's two recursions. */
    for (i = 0; i < CC_JSON_MAX_DEPTH; i++) {
        if (i % 2 == 0) {
            memcpy(ok + n, "{\"a\":", 5);
            n += 5;
        } else {
            ok[n++] = '[';
        }
    }
    ok[n++] = '1';
    for (i = CC_JSON_MAX_DEPTH - 1; i >= 0; i--)
        ok[n++] = i % 2 == 0 ? '}' : ']';
    sc = parse_small_stack(ok, (size_t)n);
    assert_int_equal(sc.parsed, 1);
    assert_int_equal(sc.too_deep, 0);
    sc = parse_small_stack(deep, strlen(deep));
    assert_int_equal(sc.parsed, 0);
    assert_int_equal(sc.too_deep, 1);
    free(ok);
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_depth_32_accepted_33_refused),
        cmocka_unit_test(test_json_depth_mixed_and_siblings),
        cmocka_unit_test(test_json_strings_do_not_count),
        cmocka_unit_test(test_json_unmatched_closers_buy_nothing),
        cmocka_unit_test(test_json_ten_thousand_brackets_refused),
        cmocka_unit_test(test_json_empty_and_garbage),
        cmocka_unit_test(test_json_nul_escape_refused),
        cmocka_unit_test(test_json_worker_stack_affords_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
