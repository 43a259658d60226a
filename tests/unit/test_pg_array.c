/* test_pg_array.c - array parameters in PostgreSQL's binary format (cc_pg_array): the
 * bounds (element count, text length, INT4 range, UTF-8), the refusals that stick, the
 * exact bytes of a small array, and round trips through a real PostgreSQL 15 (every
 * element comes back as sent: texts with quotes, backslashes, braces and the word NULL,
 * NULL elements, extreme integers, doubles bit for bit, an empty array, the largest
 * array). The cluster is a throwaway one (tools/pgtest.sh); one that cannot start fails
 * the group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_pg_array.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "fixture.h"

#define PG_PORT "55416" /* this suite's socket name (tools/pgtest.sh PORT) */

static char pg_dir[64];
static char pg_url[256];

static int group_setup(void **state)
{
    (void)state;
    cc_log_init("test_pg_array", CC_LOG_ERROR, 1);
    return fixture_pg_start("pg-array", PG_PORT, pg_dir, sizeof pg_dir, pg_url, sizeof pg_url);
}

static int group_teardown(void **state)
{
    (void)state;
    return fixture_pg_stop(pg_dir);
}

/* More than CC_PG_ARRAY_ELEMS_MAX elements are refused at init; exactly that many pass. */
static void test_pg_array_count_limit(void **state)
{
    struct cc_pg_array a;

    (void)state;
    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT8, CC_PG_ARRAY_ELEMS_MAX + 1),
                     CC_ERR_VALIDATION);
    assert_int_equal(cc_pg_array_int(&a, 1), CC_ERR_VALIDATION); /* sticks */
    cc_pg_array_free(&a);
    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT8, CC_PG_ARRAY_ELEMS_MAX), CC_OK);
    for (int i = 0; i < CC_PG_ARRAY_ELEMS_MAX; i++)
        assert_int_equal(cc_pg_array_int(&a, i), CC_OK);
    /* One more than announced is refused, and so is the array from then on. */
    assert_int_equal(cc_pg_array_int(&a, 0), CC_ERR_VALIDATION);
    {
        const void *p;
        size_t len;

        assert_int_equal(cc_pg_array_bytes(&a, &p, &len), CC_ERR_VALIDATION);
    }
    cc_pg_array_free(&a);
}

/* Too few elements, an element of the wrong kind, an INT4 out of range, a text too long
 * or not UTF-8: refused, and every later call too. */
static void test_pg_array_refusals(void **state)
{
    static const char *const bad_utf8[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* a surrogate, U+D800 */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "ab\xe2\x82",       /* cut short */
        "\xff",             /* never in UTF-8 */
    };
    char *long_text = malloc(CC_PG_ARRAY_TEXT_MAX + 2);
    struct cc_pg_array a;
    const void *p;
    size_t len;

    (void)state;
    assert_non_null(long_text);
    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT8, 2), CC_OK);
    assert_int_equal(cc_pg_array_int(&a, 1), CC_OK);
    assert_int_equal(cc_pg_array_bytes(&a, &p, &len), CC_ERR_VALIDATION); /* 1 of 2 */
    cc_pg_array_free(&a);

    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT8, 2), CC_OK);
    assert_int_equal(cc_pg_array_double(&a, 1.5), CC_ERR_VALIDATION);
    assert_int_equal(cc_pg_array_int(&a, 1), CC_ERR_VALIDATION);
    cc_pg_array_free(&a);

    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT4, 3), CC_OK);
    assert_int_equal(cc_pg_array_int(&a, INT32_MIN), CC_OK);
    assert_int_equal(cc_pg_array_int(&a, INT32_MAX), CC_OK);
    assert_int_equal(cc_pg_array_int(&a, (int64_t)INT32_MAX + 1), CC_ERR_VALIDATION);
    cc_pg_array_free(&a);

    memset(long_text, 'x', CC_PG_ARRAY_TEXT_MAX + 1);
    long_text[CC_PG_ARRAY_TEXT_MAX + 1] = '\0';
    assert_int_equal(cc_pg_array_init(&a, CC_PG_TEXT, 2), CC_OK);
    assert_int_equal(cc_pg_array_text(&a, long_text), CC_ERR_VALIDATION);
    cc_pg_array_free(&a);
    long_text[CC_PG_ARRAY_TEXT_MAX] = '\0'; /* exactly the bound: taken */
    assert_int_equal(cc_pg_array_init(&a, CC_PG_TEXT, 1), CC_OK);
    assert_int_equal(cc_pg_array_text(&a, long_text), CC_OK);
    assert_int_equal(cc_pg_array_bytes(&a, &p, &len), CC_OK);
    assert_int_equal(len, 20 + 4 + CC_PG_ARRAY_TEXT_MAX);
    cc_pg_array_free(&a);

    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        assert_false(cc_utf8_valid(bad_utf8[i]));
        assert_int_equal(cc_pg_array_init(&a, CC_PG_TEXT, 1), CC_OK);
        assert_int_equal(cc_pg_array_text(&a, bad_utf8[i]), CC_ERR_VALIDATION);
        assert_int_equal(cc_pg_array_bytes(&a, &p, &len), CC_ERR_VALIDATION);
        cc_pg_array_free(&a);
    }
    assert_true(cc_utf8_valid("\xc3\xa9\xf0\x9f\xa7\x8a")); /* é and a 4-byte character */
    free(long_text);
}

/* The bytes of {7, NULL} as int8[]: what array_recv reads. */
static void test_pg_array_bytes(void **state)
{
    static const unsigned char want[] = {
        0,    0,    0,    1,    0, 0, 0, 1, 0, 0, 0, 20, /* ndim 1, has NULLs, int8 */
        0,    0,    0,    2,    0, 0, 0, 1,              /* 2 elements from index 1 */
        0,    0,    0,    8,    0, 0, 0, 0, 0, 0, 0, 7,  /* 8 bytes: 7 */
        0xff, 0xff, 0xff, 0xff,                          /* NULL */
    };
    struct cc_pg_array a;
    const void *p;
    size_t len;

    (void)state;
    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT8, 2), CC_OK);
    assert_int_equal(cc_pg_array_int(&a, 7), CC_OK);
    assert_int_equal(cc_pg_array_null(&a), CC_OK);
    assert_int_equal(cc_pg_array_bytes(&a, &p, &len), CC_OK);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(p, want, sizeof want);
    cc_pg_array_free(&a);
}

/* Runs "SELECT x FROM unnest(CAST($1 AS type[]))" in element order on a; the rows' texts
 * (NULL for NULL) into out[0..cap), their count returned, or -1 when the statement failed. */
static int round_trip(struct cc_store *st, const char *sql, struct cc_pg_array *a, char **out,
                      int cap)
{
    struct cc_stmt *s = NULL;
    int n = 0, rc = cc_stmt_prepare(st, sql, &s);

    if (rc == CC_OK)
        rc = cc_pg_array_bind(s, 1, a);
    while (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        const char *v = cc_stmt_column_is_null(s, 0) ? NULL : cc_stmt_column_text(s, 0);

        rc = CC_OK;
        if (n < cap)
            out[n] = v != NULL ? strdup(v) : NULL;
        n++;
    }
    cc_stmt_release(s);
    return rc == CC_OK ? n : -1;
}

static const char sql_text[] =
    "SELECT x FROM unnest(CAST($1 AS text[])) WITH ORDINALITY AS u (x, i) ORDER BY i";
static const char sql_int8[] =
    "SELECT x FROM unnest(CAST($1 AS bigint[])) WITH ORDINALITY AS u (x, i) ORDER BY i";
static const char sql_int4[] =
    "SELECT x FROM unnest(CAST($1 AS integer[])) WITH ORDINALITY AS u (x, i) ORDER BY i";
static const char sql_float8[] = "SELECT x FROM unnest(CAST($1 AS double precision[]))"
                                 " WITH ORDINALITY AS u (x, i) ORDER BY i";
static const char sql_sum[] =
    "SELECT count(*) || ' ' || sum(x) FROM unnest(CAST($1 AS bigint[])) AS u (x)";

static void free_rows(char **rows, int n)
{
    for (int i = 0; i < n; i++)
        free(rows[i]);
}

/* Every element comes back from the server as it was sent. */
static void test_pg_array_round_trip(void **state)
{
    static const char *const texts[] = {
        "q\"b\\c,d{e} NULL",
        "NULL",
        "{}",
        "\"",
        "\\",
        "",
        " a b ",
        "\xc3\xa9t\xc3\xa9 \xf0\x9f\xa7\x8a",
    };
    const size_t nt = sizeof texts / sizeof texts[0];
    static const int64_t ints[] = {INT64_MIN, -1, 0, 1, INT64_MAX};
    static const double dbls[] = {
        -0.0, 0.1, 1e-308, 4.9e-324, -1.7976931348623157e308, 3.0000000000000004};
    struct cc_store *st = NULL;
    struct cc_pg_array a;
    char *rows[16];
    char buf[32];
    int n;

    (void)state;
    assert_int_equal(cc_store_open(pg_url, 0, &st), CC_OK);

    assert_int_equal(cc_pg_array_init(&a, CC_PG_TEXT, nt + 1), CC_OK);
    for (size_t i = 0; i < nt; i++)
        assert_int_equal(cc_pg_array_text(&a, texts[i]), CC_OK);
    assert_int_equal(cc_pg_array_null(&a), CC_OK);
    n = round_trip(st, sql_text, &a, rows, 16);
    assert_int_equal(n, (int)nt + 1);
    for (size_t i = 0; i < nt; i++)
        assert_string_equal(rows[i], texts[i]);
    assert_null(rows[nt]);
    free_rows(rows, n);
    cc_pg_array_free(&a);

    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT8, 5), CC_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cc_pg_array_int(&a, ints[i]), CC_OK);
    n = round_trip(st, sql_int8, &a, rows, 16);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++) {
        snprintf(buf, sizeof buf, "%lld", (long long)ints[i]);
        assert_string_equal(rows[i], buf);
    }
    free_rows(rows, n);
    cc_pg_array_free(&a);

    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT4, 3), CC_OK);
    assert_int_equal(cc_pg_array_int(&a, INT32_MIN), CC_OK);
    assert_int_equal(cc_pg_array_null(&a), CC_OK);
    assert_int_equal(cc_pg_array_int(&a, 1), CC_OK);
    n = round_trip(st, sql_int4, &a, rows, 16);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0], "-2147483648");
    assert_null(rows[1]);
    assert_string_equal(rows[2], "1");
    free_rows(rows, n);
    cc_pg_array_free(&a);

    /* Doubles bit for bit (the server prints the shortest exact form). */
    assert_int_equal(cc_pg_array_init(&a, CC_PG_FLOAT8, 6), CC_OK);
    for (int i = 0; i < 6; i++)
        assert_int_equal(cc_pg_array_double(&a, dbls[i]), CC_OK);
    n = round_trip(st, sql_float8, &a, rows, 16);
    assert_int_equal(n, 6);
    for (int i = 0; i < 6; i++) {
        double back = strtod(rows[i], NULL);

        assert_memory_equal(&back, &dbls[i], sizeof back);
    }
    free_rows(rows, n);
    cc_pg_array_free(&a);

    /* Empty, and the largest. */
    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT8, 0), CC_OK);
    assert_int_equal(round_trip(st, sql_int8, &a, rows, 16), 0);
    cc_pg_array_free(&a);
    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT8, CC_PG_ARRAY_ELEMS_MAX), CC_OK);
    for (int i = 1; i <= CC_PG_ARRAY_ELEMS_MAX; i++)
        assert_int_equal(cc_pg_array_int(&a, i), CC_OK);
    assert_int_equal(round_trip(st, sql_sum, &a, rows, 16), 1);
    snprintf(buf, sizeof buf, "%d %lld", CC_PG_ARRAY_ELEMS_MAX,
             (long long)CC_PG_ARRAY_ELEMS_MAX * (CC_PG_ARRAY_ELEMS_MAX + 1) / 2);
    assert_string_equal(rows[0], buf);
    free_rows(rows, 1);
    cc_pg_array_free(&a);

    /* The element type is checked by the server: an int8 array is no integer[]. */
    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT8, 1), CC_OK);
    assert_int_equal(cc_pg_array_int(&a, 1), CC_OK);
    assert_int_equal(round_trip(st, sql_int4, &a, rows, 16), -1);
    cc_pg_array_free(&a);
    cc_store_close(st);
}

/* SQLite has no arrays: binding one there is the caller's mistake. */
static void test_pg_array_not_on_sqlite(void **state)
{
    char path[] = "/tmp/cc-test-pg-array-XXXXXX";
    struct cc_store *st = NULL;
    struct cc_stmt *s = NULL;
    struct cc_pg_array a;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(cc_store_open(path, CC_STORE_CREATE, &st), CC_OK);
    assert_int_equal(cc_stmt_prepare(st, "SELECT $1", &s), CC_OK);
    assert_int_equal(cc_pg_array_init(&a, CC_PG_INT8, 0), CC_OK);
    assert_int_equal(cc_pg_array_bind(s, 1, &a), CC_ERR_INTERNAL);
    cc_pg_array_free(&a);
    cc_stmt_release(s);
    cc_store_close(st);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_array_count_limit),   cmocka_unit_test(test_pg_array_refusals),
        cmocka_unit_test(test_pg_array_bytes),         cmocka_unit_test(test_pg_array_round_trip),
        cmocka_unit_test(test_pg_array_not_on_sqlite),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
