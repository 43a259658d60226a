/* test_dbi_binary.c - cc_stmt_set_binary_results: PostgreSQL's binary result format
 * decoded by the column accessors (cc_dbi.h), on a throwaway PostgreSQL 15 cluster
 * (tools/pgtest.sh, started by the group's setup; a cluster that cannot start fails the
 * group). Each type is read in binary and compared with the same statement's text-format
 * reading; NULLs, a wrong length, types that cannot be decoded and the opt-in's life are
 * checked too, and that SQLite ignores the opt-in. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_impl.h"
#include "fixture.h"

#define PG_PORT "55431" /* this suite's socket name (tools/pgtest.sh PORT) */

static char pg_dir[64];
static char pg_url[256];

static int pg_group_setup(void **state)
{
    (void)state;
    return fixture_pg_start("dbibin", PG_PORT, pg_dir, sizeof pg_dir, pg_url, sizeof pg_url);
}

static int pg_group_teardown(void **state)
{
    (void)state;
    return fixture_pg_stop(pg_dir);
}

static int pg_setup(void **state)
{
    struct cc_store *st = NULL;

    assert_int_equal(cc_store_open(pg_url, 0, &st), CC_OK);
    *state = st;
    return 0;
}

static int st_teardown(void **state)
{
    cc_store_close(*state);
    return 0;
}

/* stderr (the log) into a temp file between capture_begin and capture_end. */
static int cap_fd = -1, cap_saved = -1;

static void capture_begin(void)
{
    char path[] = "/tmp/cc-test-dbibin-log-XXXXXX";

    cap_fd = mkstemp(path);
    assert_true(cap_fd >= 0);
    unlink(path);
    cap_saved = dup(STDERR_FILENO);
    assert_true(cap_saved >= 0);
    assert_true(dup2(cap_fd, STDERR_FILENO) >= 0);
}

/* What was logged since capture_begin (static buffer). */
static const char *capture_end(void)
{
    static char buf[8192];
    ssize_t n;

    assert_true(dup2(cap_saved, STDERR_FILENO) >= 0);
    close(cap_saved);
    n = pread(cap_fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(cap_fd);
    return buf;
}

/* How many times needle occurs in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Lends sql's statement, opted in to binary results when binary, stepped to its row. */
static struct cc_stmt *row_of(struct cc_store *st, const char *sql, int binary)
{
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    if (binary)
        assert_int_equal(cc_stmt_set_binary_results(s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    return s;
}

/* Every fixed-size number type at its extremes: binary reads the same as text format
 * (float4 aside: see below), bit for bit. */
static const char sql_nums[] =
    "SELECT CAST(-9223372036854775808 AS bigint), CAST(9223372036854775807 AS bigint),"
    " CAST(-2147483648 AS integer), CAST(2147483647 AS integer),"
    " CAST(-32768 AS smallint), CAST(32767 AS smallint),"
    " CAST(0.1 AS double precision), CAST(-273.15 AS double precision),"
    " CAST(1e300 AS double precision), CAST('4.9e-324' AS double precision),"
    " CAST('-0' AS double precision), CAST('Infinity' AS double precision),"
    " CAST(-2.9 AS double precision), CAST(1.5 AS real), true, false,"
    " CAST(1 AS double precision) / 3";
#define NUMS_COLS 17

static void test_binary_numbers_equal_text(void **state)
{
    struct cc_store *st = *state;
    struct cc_stmt *b = NULL, *t = NULL;
    const char *log;

    capture_begin();
    b = row_of(st, sql_nums, 1);
    t = row_of(st, sql_nums, 0); /* the same text, lent twice: the second is transient */
    for (int col = 0; col < NUMS_COLS; col++) {
        double bd = cc_stmt_column_double(b, col), td = cc_stmt_column_double(t, col);

        assert_false(cc_stmt_column_is_null(b, col));
        /* No int64 for 1e300 and Infinity (logged in both formats), nor for the
         * subnormal in text format (strtod's ERANGE), both reading 0. */
        if (col != 8 && col != 9 && col != 11)
            assert_true(cc_stmt_column_int64(b, col) == cc_stmt_column_int64(t, col));
        assert_memory_equal(&bd, &td, sizeof bd); /* -0.0 keeps its sign */
    }
    cc_stmt_release(t);
    log = capture_end();
    assert_int_equal(count_of(log, "db_column_type"), 0);
    /* And the values themselves. */
    assert_true(cc_stmt_column_int64(b, 0) == INT64_MIN);
    assert_true(cc_stmt_column_int64(b, 1) == INT64_MAX);
    assert_true(cc_stmt_column_int64(b, 2) == INT32_MIN);
    assert_true(cc_stmt_column_int64(b, 3) == INT32_MAX);
    assert_true(cc_stmt_column_int64(b, 4) == INT16_MIN);
    assert_true(cc_stmt_column_int64(b, 5) == INT16_MAX);
    assert_true(cc_stmt_column_double(b, 0) == -9223372036854775808.0);
    assert_true(cc_stmt_column_double(b, 6) == 0.1);
    assert_true(cc_stmt_column_double(b, 7) == -273.15);
    assert_true(cc_stmt_column_double(b, 8) == 1e300);
    assert_true(cc_stmt_column_double(b, 9) == 4.9e-324);
    assert_true(signbit(cc_stmt_column_double(b, 10)));
    assert_true(isinf(cc_stmt_column_double(b, 11)));
    assert_int_equal(cc_stmt_column_int64(b, 12), -2); /* truncated, as SQLite does */
    assert_true(cc_stmt_column_double(b, 13) == 1.5);
    assert_int_equal(cc_stmt_column_int64(b, 14), 1);
    assert_int_equal(cc_stmt_column_int64(b, 15), 0);
    assert_true(cc_stmt_column_double(b, 14) == 1.0);
    assert_true(cc_stmt_column_double(b, 16) == 1.0 / 3.0);
    cc_stmt_release(b);
}

/* A real reads as the float's exact value in binary; text format gives its shortest
 * decimal, which strtod turns into a different double. */
static void test_binary_float4_is_exact(void **state)
{
    static const char sql[] = "SELECT CAST(-0.1 AS real)";
    struct cc_store *st = *state;
    struct cc_stmt *s = row_of(st, sql, 1);

    assert_true(cc_stmt_column_double(s, 0) == (double)-0.1f);
    cc_stmt_release(s);
    s = row_of(st, sql, 0);
    assert_true(cc_stmt_column_double(s, 0) == -0.1);
    cc_stmt_release(s);
}

/* Text types read as in text format (NUL-terminated, numbers parsed from them); bytea's
 * raw bytes, NULs and all. */
static const char sql_texts[] =
    "SELECT CAST($1 AS text), CAST('ab' AS varchar(5)), CAST('ab' AS char(4)), CAST('' AS text),"
    " CAST('42' AS text), CAST('2.5' AS varchar), CAST($2 AS bytea)";

static void test_binary_text_types_and_bytea(void **state)
{
    static const char text[] = "K\xc3\xbchlzelle \xe2\x84\x83 'q' \\ ;--";
    static const unsigned char blob[] = {0x00, 'a', 0x00, 0xff, '\\', 'x', 0x00};
    struct cc_store *st = *state;

    for (int binary = 1; binary >= 0; binary--) {
        struct cc_stmt *s = NULL;

        assert_int_equal(cc_stmt_prepare(st, sql_texts, &s), CC_OK);
        if (binary)
            assert_int_equal(cc_stmt_set_binary_results(s), CC_OK);
        assert_int_equal(cc_stmt_bind_text(s, 1, text), CC_OK);
        assert_int_equal(cc_stmt_bind_blob(s, 2, blob, sizeof blob), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_ROW);
        assert_string_equal(cc_stmt_column_text(s, 0), text);
        assert_string_equal(cc_stmt_column_text(s, 1), "ab");
        assert_string_equal(cc_stmt_column_text(s, 2), "ab  "); /* char(4) pads */
        assert_string_equal(cc_stmt_column_text(s, 3), "");
        assert_false(cc_stmt_column_is_null(s, 3));
        assert_int_equal(cc_stmt_column_int64(s, 4), 42);
        assert_true(cc_stmt_column_double(s, 5) == 2.5);
        assert_memory_equal(cc_stmt_column_blob(s, 6), blob, sizeof blob);
        assert_int_equal(cc_stmt_column_bytes(s, 6), sizeof blob);
        assert_int_equal(cc_stmt_column_bytes(s, 0), strlen(text));
        assert_memory_equal(cc_stmt_column_blob(s, 0), text, strlen(text));
        cc_stmt_release(s);
    }
}

/* A NULL of every type reads as NULL, 0, 0.0, and logs nothing. */
static void test_binary_nulls(void **state)
{
    static const char sql[] =
        "SELECT CAST(NULL AS bigint), CAST(NULL AS integer), CAST(NULL AS smallint),"
        " CAST(NULL AS double precision), CAST(NULL AS real), CAST(NULL AS boolean),"
        " CAST(NULL AS text), CAST(NULL AS bytea), CAST(NULL AS numeric)";
    struct cc_store *st = *state;
    struct cc_stmt *s = NULL;
    const char *log;

    capture_begin();
    s = row_of(st, sql, 1);
    for (int col = 0; col < 9; col++) {
        assert_true(cc_stmt_column_is_null(s, col));
        assert_int_equal(cc_stmt_column_int64(s, col), 0);
        assert_true(cc_stmt_column_double(s, col) == 0.0);
        assert_null(cc_stmt_column_text(s, col));
        assert_null(cc_stmt_column_blob(s, col));
        assert_int_equal(cc_stmt_column_bytes(s, col), 0);
    }
    cc_stmt_release(s);
    log = capture_end();
    assert_int_equal(count_of(log, "db_column_type"), 0);
}

/* A value whose length is not its type's width is refused (0, logged), never decoded:
 * the lengths below are fed in after the row arrived (no server sends them). */
static void test_binary_wrong_width_refused(void **state)
{
    static const char sql[] = "SELECT CAST(7 AS bigint), CAST(2.5 AS double precision),"
                              " CAST(7 AS integer), CAST(7 AS smallint), true, CAST(1.5 AS real)";
    static const char ff[16] = {0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f,
                                0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f};
    static const int wrong[6] = {4, 9, 8, 1, 2, 8}; /* right: 8, 8, 4, 2, 1, 4 */
    struct cc_store *st = *state;
    struct cc_stmt *s = row_of(st, sql, 1);
    const char *log;

    /* As sent: decoded. */
    assert_int_equal(cc_stmt_column_int64(s, 0), 7);
    assert_true(cc_stmt_column_double(s, 1) == 2.5);
    assert_int_equal(cc_stmt_column_int64(s, 2), 7);
    assert_int_equal(cc_stmt_column_int64(s, 3), 7);
    assert_int_equal(cc_stmt_column_int64(s, 4), 1);
    assert_true(cc_stmt_column_double(s, 5) == 1.5);
    for (int col = 0; col < 6; col++)
        assert_int_equal(cc_dbi_pg_test_set_value(s, col, ff, wrong[col]), CC_OK);
    capture_begin();
    for (int col = 0; col < 6; col++) {
        assert_false(cc_stmt_column_is_null(s, col));
        assert_int_equal(cc_stmt_column_int64(s, col), 0);
        assert_true(cc_stmt_column_double(s, col) == 0.0);
    }
    log = capture_end();
    assert_int_equal(count_of(log, "db_column_type"), 12);
    assert_int_equal(count_of(log, "has the wrong length"), 12);
    assert_null(strstr(log, "7f")); /* the value itself is never logged */
    cc_stmt_release(s);
}

/* Types with no decoder (numeric, timestamptz) are refused by every accessor, and so is
 * _text on a binary number (its bytes are not its digits); in text format the same
 * statement reads them as before. */
static void test_binary_other_types_refused(void **state)
{
    static const char sql[] =
        "SELECT CAST(1.5 AS numeric), CAST('2026-01-01 00:00:00+00' AS timestamptz),"
        " CAST(5 AS bigint), CAST(2.5 AS double precision)";
    struct cc_store *st = *state;
    struct cc_stmt *s = NULL;
    const char *log;

    capture_begin();
    s = row_of(st, sql, 1);
    for (int col = 0; col < 2; col++) {
        assert_false(cc_stmt_column_is_null(s, col));
        assert_int_equal(cc_stmt_column_int64(s, col), 0);
        assert_true(cc_stmt_column_double(s, col) == 0.0);
        assert_null(cc_stmt_column_text(s, col));
        assert_null(cc_stmt_column_blob(s, col));
    }
    assert_null(cc_stmt_column_text(s, 2));
    assert_null(cc_stmt_column_text(s, 3));
    assert_null(cc_stmt_column_blob(s, 2));
    assert_int_equal(cc_stmt_column_int64(s, 2), 5); /* its number still reads */
    cc_stmt_release(s);
    log = capture_end();
    assert_int_equal(count_of(log, "is not a number type read in binary"), 4);
    assert_int_equal(count_of(log, "is not text"), 4);
    assert_int_equal(count_of(log, "is not bytea or text"), 3);
    assert_int_equal(count_of(log, "db_column_type"), 11);

    /* The same cached statement, not opted in this time: text format as before (the
     * opt-in ended with the release). */
    s = row_of(st, sql, 0);
    assert_true(cc_stmt_column_double(s, 0) == 1.5);
    assert_string_equal(cc_stmt_column_text(s, 0), "1.5");
    assert_string_equal(cc_stmt_column_text(s, 2), "5");
    assert_string_equal(cc_stmt_column_text(s, 3), "2.5");
    cc_stmt_release(s);
}

/* The opt-in is for a statement not yet run; rows of a cached and of a transient
 * statement (PQexecPrepared and PQexecParams) are both binary. */
static void test_binary_opt_in_before_step_only(void **state)
{
    static const char sql[] = "SELECT CAST($1 AS bigint) FROM generate_series(1, 3)";
    struct cc_store *st = *state;
    struct cc_stmt *a = NULL, *b = NULL;
    int rows = 0;

    assert_int_equal(cc_stmt_prepare(st, sql, &a), CC_OK); /* cached */
    assert_int_equal(cc_stmt_prepare(st, sql, &b), CC_OK); /* lent already: transient */
    assert_int_equal(cc_stmt_set_binary_results(a), CC_OK);
    assert_int_equal(cc_stmt_set_binary_results(b), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(a, 1, -123456789012345), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(b, 1, 987654321098765), CC_OK);
    while (cc_stmt_step(a) == CC_ROW) {
        assert_int_equal(cc_stmt_step(b), CC_ROW);
        assert_true(cc_stmt_column_int64(a, 0) == -123456789012345);
        assert_true(cc_stmt_column_int64(b, 0) == 987654321098765);
        assert_null(cc_stmt_column_text(a, 0)); /* binary indeed */
        assert_null(cc_stmt_column_text(b, 0));
        assert_int_equal(cc_stmt_set_binary_results(a), CC_ERR_INTERNAL); /* has run */
        rows++;
    }
    assert_int_equal(rows, 3);
    cc_stmt_release(b);
    cc_stmt_release(a);
}

/* SQLite: the opt-in is accepted and changes nothing. */
/* The driver keeps the type and format of a result's first columns at hand and asks libpq
 * for the others: a row of 20 columns reads the same on both sides of that line, numbers,
 * text, NULL and a refused type alike, and the next result's columns are its own. */
static void test_binary_many_columns(void **state)
{
    static const char sql[] =
        "SELECT CAST(1 AS bigint), 2.5::float8, CAST(3 AS int), 'a'::text, 5::int2, 6::bigint,"
        " 7::bigint, 8::bigint, 9::bigint, 10::bigint, 11::bigint, 12::bigint, 13::bigint,"
        " 14::bigint, 15::bigint, 16::bigint, CAST(-17 AS bigint), 18.25::float8, 'b'::text,"
        " 1.5::numeric";
    static const char sql_text[] = "SELECT 'x'::text, 2::bigint";
    struct cc_store *st = *state;
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_set_binary_results(s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_true(cc_stmt_column_int64(s, 0) == 1);
    assert_true(cc_stmt_column_double(s, 1) == 2.5);
    assert_true(cc_stmt_column_int64(s, 2) == 3);
    assert_string_equal(cc_stmt_column_text(s, 3), "a");
    assert_true(cc_stmt_column_int64(s, 4) == 5);
    for (int c = 5; c < 16; c++)
        assert_true(cc_stmt_column_int64(s, c) == c + 1);
    assert_true(cc_stmt_column_int64(s, 16) == -17);
    assert_true(cc_stmt_column_double(s, 17) == 18.25);
    assert_null(cc_stmt_column_text(s, 17)); /* a binary number, past the kept columns too */
    assert_string_equal(cc_stmt_column_text(s, 18), "b");
    assert_true(cc_stmt_column_int64(s, 19) == 0); /* numeric in binary: refused */
    assert_true(cc_stmt_column_int64(s, 20) == 0); /* no such column */
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    /* The same statement object's next result, in text: its own types and formats. */
    assert_int_equal(cc_stmt_prepare(st, sql_text, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_string_equal(cc_stmt_column_text(s, 0), "x");
    assert_string_equal(cc_stmt_column_text(s, 1), "2");
    cc_stmt_release(s);
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK); /* again, in text format */
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_string_equal(cc_stmt_column_text(s, 0), "1");
    assert_string_equal(cc_stmt_column_text(s, 17), "18.25");
    assert_true(cc_stmt_column_int64(s, 16) == -17);
    cc_stmt_release(s);
}

static void test_binary_sqlite_ignores(void **state)
{
    static const char sql[] = "SELECT 9223372036854775807, 0.1, 'x'";
    char path[] = "/tmp/cc-test-dbibin-XXXXXX";
    char side[64];
    struct cc_store *st = NULL;
    struct cc_stmt *s = NULL;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(cc_store_open(path, CC_STORE_CREATE, &st), CC_OK);
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_set_binary_results(s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_true(cc_stmt_column_int64(s, 0) == INT64_MAX);
    assert_true(cc_stmt_column_double(s, 1) == 0.1);
    assert_string_equal(cc_stmt_column_text(s, 2), "x");
    assert_string_equal(cc_stmt_column_text(s, 0), "9223372036854775807");
    cc_stmt_release(s);
    cc_store_close(st);
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

int main(void)
{
    const struct CMUnitTest lite[] = {
        cmocka_unit_test(test_binary_sqlite_ignores),
    };
    const struct CMUnitTest pg[] = {
        cmocka_unit_test_setup_teardown(test_binary_numbers_equal_text, pg_setup, st_teardown),
        cmocka_unit_test_setup_teardown(test_binary_float4_is_exact, pg_setup, st_teardown),
        cmocka_unit_test_setup_teardown(test_binary_text_types_and_bytea, pg_setup, st_teardown),
        cmocka_unit_test_setup_teardown(test_binary_nulls, pg_setup, st_teardown),
        cmocka_unit_test_setup_teardown(test_binary_wrong_width_refused, pg_setup, st_teardown),
        cmocka_unit_test_setup_teardown(test_binary_other_types_refused, pg_setup, st_teardown),
        cmocka_unit_test_setup_teardown(test_binary_opt_in_before_step_only, pg_setup, st_teardown),
        cmocka_unit_test_setup_teardown(test_binary_many_columns, pg_setup, st_teardown),
    };
    int failed;

    cc_log_init("test_dbi_binary", CC_LOG_ERROR, 1);
    failed = cmocka_run_group_tests_name("dbi_binary_sqlite", lite, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("dbi_binary_postgresql", pg, pg_group_setup, pg_group_teardown);
    return failed;
}
