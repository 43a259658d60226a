/* test_dbi.c - cc_dbi.h on both backends: every test runs once on SQLite (a temp file)
 * and once on PostgreSQL 15 (a throwaway cluster, tools/pgtest.sh, started by the PG
 * group's setup; the unit tests run from the repository root). A PostgreSQL that cannot
 * start fails the group: it is not skipped. */
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
#include "fixture.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"

#define PG_PORT "55401" /* this suite's socket name (tools/pgtest.sh PORT) */

static char pg_dir[64];
static char pg_url[256];

struct fx {
    struct cc_store *st;
    char path[64]; /* SQLite: the temp file; "" for PostgreSQL */
};

/* The test table in each dialect: the same columns, the two names of a byte string. */
static const char ddl_lite[] =
    "CREATE TABLE t (id BIGINT PRIMARY KEY, i BIGINT, d DOUBLE PRECISION, s TEXT, b BLOB,"
    " u TEXT UNIQUE, c BIGINT CHECK (c >= 0), k TEXT CHECK (length(k) < 5))";
static const char ddl_pg[] =
    "DROP TABLE IF EXISTS t; CREATE TABLE t (id BIGINT PRIMARY KEY, i BIGINT,"
    " d DOUBLE PRECISION, s TEXT, b BYTEA, u TEXT UNIQUE, c BIGINT CHECK (c >= 0),"
    " k TEXT CHECK (length(k) < 5))";

static int pg_group_teardown(void **state)
{
    (void)state;
    return fixture_pg_stop(pg_dir);
}

static int pg_group_setup(void **state)
{
    (void)state;
    return fixture_pg_start("dbi", PG_PORT, pg_dir, sizeof pg_dir, pg_url, sizeof pg_url);
}

static int lite_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    int fd;

    assert_non_null(f);
    snprintf(f->path, sizeof f->path, "/tmp/cc-test-dbi-XXXXXX");
    fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(cc_store_open(f->path, CC_STORE_CREATE, &f->st), CC_OK);
    assert_int_equal(cc_store_exec(f->st, ddl_lite), CC_OK);
    *state = f;
    return 0;
}

static int pg_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    assert_non_null(f);
    assert_int_equal(cc_store_open(pg_url, 0, &f->st), CC_OK);
    assert_int_equal(cc_store_exec(f->st, ddl_pg), CC_OK);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    char side[96];

    cc_store_close(f->st);
    if (f->path[0] != '\0') {
        unlink(f->path);
        snprintf(side, sizeof side, "%s-wal", f->path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", f->path);
        unlink(side);
    }
    free(f);
    return 0;
}

static struct cc_store *store(void **state)
{
    return ((struct fx *)*state)->st;
}

/* Runs a no-parameter query that returns one integer. */
static int64_t query_int(struct cc_store *st, const char *sql)
{
    struct cc_stmt *s = NULL;
    int64_t v;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    v = cc_stmt_column_int64(s, 0);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    return v;
}

static const char sql_count[] = "SELECT count(*) FROM t";
static const char sql_insert_id[] = "INSERT INTO t (id) VALUES ($1)";

static void insert_id(struct cc_store *st, int64_t id)
{
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_stmt_prepare(st, sql_insert_id, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, id), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
}

static void test_dbi_dialect(void **state)
{
    struct fx *f = *state;

    assert_int_equal(cc_store_dialect(f->st),
                     f->path[0] != '\0' ? CC_DIALECT_SQLITE : CC_DIALECT_PG);
}

/* $2 before $1 and $1 twice: SQLite numbers them by first appearance, so without the
 * name map $2 would get the value bound to 1. */
static void test_dbi_params_out_of_order_and_repeated(void **state)
{
    static const char sql_ins[] = "INSERT INTO t (i, id, s) VALUES ($2, $1, $3)";
    static const char sql_sel[] =
        "SELECT i - CAST($2 AS bigint), id * CAST($1 AS bigint), s FROM t WHERE id = $1";
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_stmt_prepare(st, sql_ins, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 3, "three"), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 7), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 2, 100), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);

    assert_int_equal(cc_stmt_prepare(st, sql_sel, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 2, 40), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 7), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(s, 0), 60); /* i = 100 went to column i */
    assert_int_equal(cc_stmt_column_int64(s, 1), 49); /* $1 used twice: id 7 * 7 */
    assert_string_equal(cc_stmt_column_text(s, 2), "three");
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
}

static const char sql_ins_all[] = "INSERT INTO t (id, i, d, s, b) VALUES ($1, $2, $3, $4, $5)";
static const char sql_sel_all[] = "SELECT i, d, s, b FROM t WHERE id = $1";

static void insert_all(struct cc_store *st, int64_t id, int64_t i, double d, const char *text,
                       const void *blob, size_t blob_len)
{
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_stmt_prepare(st, sql_ins_all, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, id), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 2, i), CC_OK);
    assert_int_equal(cc_stmt_bind_double(s, 3, d), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 4, text), CC_OK);
    assert_int_equal(cc_stmt_bind_blob(s, 5, blob, blob_len), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    assert_int_equal(cc_stmt_changes(s), 1);
    cc_stmt_release(s);
}

/* Every bind and column type, the extremes of each. */
static void test_dbi_types_round_trip(void **state)
{
    static const unsigned char blob[] = {0x00, 'a', 0x00, 0xff, '\\', 'x', 0x00};
    static const char text[] = "K\xc3\xbchlzelle \xe2\x84\x83 'quoted' \"double\" \\ ;--";
    static const struct {
        int64_t i;
        double d;
    } row[] = {{INT64_MAX, 0.1}, {INT64_MIN, -273.15},        {0, 1e300}, {-1, -0.0},
               {2, 1.0 / 3.0}, /* needs all 17 digits */
               {3, 0.1 + 0.2},   {4, 2.2250738585072014e-308}};
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;

    for (size_t k = 0; k < sizeof row / sizeof row[0]; k++)
        insert_all(st, (int64_t)k + 1, row[k].i, row[k].d, text, blob, sizeof blob);
    for (size_t k = 0; k < sizeof row / sizeof row[0]; k++) {
        assert_int_equal(cc_stmt_prepare(st, sql_sel_all, &s), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 1, (int64_t)k + 1), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_ROW);
        assert_true(cc_stmt_column_int64(s, 0) == row[k].i);
        /* Bit for bit: "%.17g" on the way in, strtod on the way out. */
        assert_true(cc_stmt_column_double(s, 1) == row[k].d);
        assert_string_equal(cc_stmt_column_text(s, 2), text);
        assert_memory_equal(cc_stmt_column_blob(s, 3), blob, sizeof blob);
        assert_int_equal(cc_stmt_column_bytes(s, 3), sizeof blob);
        assert_false(cc_stmt_column_is_null(s, 0));
        cc_stmt_release(s);
    }
}

static void test_dbi_nulls(void **state)
{
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_stmt_prepare(st, sql_ins_all, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 1), CC_OK);
    assert_int_equal(cc_stmt_bind_null(s, 2), CC_OK);
    assert_int_equal(cc_stmt_bind_null(s, 3), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 4, NULL), CC_OK); /* NULL text is SQL NULL */
    /* $5 left unbound: NULL as well. */
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    /* An empty blob is not NULL. */
    insert_all(st, 2, 0, 0.0, "", NULL, 0);

    assert_int_equal(cc_stmt_prepare(st, sql_sel_all, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 1), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    for (int col = 0; col < 4; col++)
        assert_true(cc_stmt_column_is_null(s, col));
    assert_int_equal(cc_stmt_column_int64(s, 0), 0);
    assert_true(cc_stmt_column_double(s, 1) == 0.0);
    assert_null(cc_stmt_column_text(s, 2));
    assert_null(cc_stmt_column_blob(s, 3));
    assert_int_equal(cc_stmt_column_bytes(s, 3), 0);
    cc_stmt_release(s);

    assert_int_equal(cc_stmt_prepare(st, sql_sel_all, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 2), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_false(cc_stmt_column_is_null(s, 2));
    assert_string_equal(cc_stmt_column_text(s, 2), "");
    assert_false(cc_stmt_column_is_null(s, 3));
    assert_int_equal(cc_stmt_column_bytes(s, 3), 0);
    cc_stmt_release(s);
}

/* A boolean reads as 1/0 (PostgreSQL sends 't'/'f'); the literal differs by dialect. */
static void test_dbi_bool_and_dialect_text(void **state)
{
    static const char sql_lite[] = "SELECT 1 = 1, 1 = 2";
    static const char sql_pg[] = "SELECT true, false";
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;
    cJSON *o = cJSON_CreateObject();

    assert_non_null(o);
    assert_int_equal(
        cc_stmt_prepare(st, cc_store_dialect(st) == CC_DIALECT_PG ? sql_pg : sql_lite, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(s, 0), 1);
    assert_int_equal(cc_stmt_column_int64(s, 1), 0);
    assert_int_equal(cc_dbi_json_bool(o, "yes", s, 0), CC_OK);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "yes")));
    cc_stmt_release(s);
    cJSON_Delete(o);
}

static void test_dbi_row_then_ok(void **state)
{
    static const char sql[] = "SELECT id FROM t ORDER BY id";
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;

    insert_id(st, 1);
    insert_id(st, 2);
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(s, 0), 1);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(s, 0), 2);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK); /* stays done until the release */
    assert_int_equal(cc_stmt_changes(s), 0);  /* a query changes nothing */
    cc_stmt_release(s);
    /* The same statement again runs from the start. */
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(s, 0), 1);
    cc_stmt_release(s);
}

static void test_dbi_unique_violation_is_conflict(void **state)
{
    static const char sql_u[] = "INSERT INTO t (id, u) VALUES ($1, $2)";
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;

    insert_id(st, 1);
    assert_int_equal(cc_stmt_prepare(st, sql_insert_id, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 1), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ERR_CONFLICT); /* primary key */
    cc_stmt_release(s);

    assert_int_equal(cc_stmt_prepare(st, sql_u, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 2), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 2, "x"), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    assert_int_equal(cc_stmt_prepare(st, sql_u, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 3), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 2, "x"), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ERR_CONFLICT); /* UNIQUE column */
    cc_stmt_release(s);
    assert_int_equal(query_int(st, sql_count), 2);
}

/* Runs fn's statement with stderr sent to a file; returns what was logged (static). */
static const char *logged_by(void (*fn)(struct cc_store *), struct cc_store *st)
{
    static char buf[4096];
    char path[] = "/tmp/cc-test-dbi-log-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    fn(st);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return buf;
}

static void check_violation(struct cc_store *st)
{
    static const char sql[] = "INSERT INTO t (id, k) VALUES ($1, $2)";
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 1), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 2, "SECRET-VALUE"), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ERR_DB);
    cc_stmt_release(s);
}

static void bad_integer_text(struct cc_store *st)
{
    static const char sql[] = "INSERT INTO t (id) VALUES ($1)";
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 1, "SECRET-VALUE"), CC_OK);
    /* PostgreSQL: 22P02 invalid input syntax, whose message quotes the value. SQLite
     * stores the text (type affinity), a success. */
    assert_int_equal(cc_stmt_step(s), cc_store_dialect(st) == CC_DIALECT_PG ? CC_ERR_DB : CC_OK);
    cc_stmt_release(s);
}

/* A failed step is CC_ERR_DB, logged with the statement's first words but no value. */
static void test_dbi_failed_step_is_db_error_without_values(void **state)
{
    struct cc_store *st = store(state);
    const char *log = logged_by(check_violation, st);

    assert_non_null(strstr(log, "db_step_failed"));
    assert_non_null(strstr(log, "INSERT INTO t (id, k) VALUES ($1, $2)"));
    assert_null(strstr(log, "SECRET"));
    log = logged_by(bad_integer_text, st);
    assert_null(strstr(log, "SECRET"));
    if (cc_store_dialect(st) == CC_DIALECT_PG)
        assert_non_null(strstr(log, "SQLSTATE 22P02"));
}

static void test_dbi_syntax_error_is_db_error(void **state)
{
    static const char sql_bad[] = "SELEC id FROM t";
    static const char sql_no_table[] = "SELECT id FROM no_such_table";
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;
    int64_t before = cc_store_stmt_prepares(st);

    assert_int_equal(cc_stmt_prepare(st, sql_bad, &s), CC_ERR_DB);
    assert_null(s);
    assert_int_equal(cc_stmt_prepare(st, sql_no_table, &s), CC_ERR_DB);
    assert_int_equal(cc_store_stmt_prepares(st), before); /* nothing cached or counted */
    assert_int_equal(cc_store_exec(st, "CREATE TABLEX u (a int)"), CC_ERR_DB);
    /* The store still works. */
    assert_int_equal(query_int(st, sql_count), 0);
}

/* cc_stmt_track_insert: on SQLite the rowid a statement inserted, and 0 for an upsert that
 * updated and for DO NOTHING, even though the connection's last insert rowid is still the
 * earlier insert's (cc_alert_raise tells a new alert from a re-trigger by it); on
 * PostgreSQL always 0; never without the opt-in. */
static void test_dbi_inserted_id(void **state)
{
    static const char sql_upsert[] = "INSERT INTO t (id, i) VALUES ($1, 1) ON CONFLICT (id)"
                                     " DO UPDATE SET i = t.i + 1";
    static const char sql_ignore[] = "INSERT INTO t (id) VALUES ($1) ON CONFLICT (id) DO NOTHING";
    static const int64_t ids[] = {7, 7, 8};
    static const char *const texts[] = {sql_upsert, sql_upsert, sql_ignore};
    int pg = cc_store_dialect(store(state)) == CC_DIALECT_PG;
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;

    insert_id(st, 8);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cc_stmt_prepare(st, texts[i], &s), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 1, ids[i]), CC_OK);
        assert_int_equal(cc_stmt_track_insert(s), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_OK);
        /* t's id is a BIGINT key, not the rowid: row 7 is the table's second row. */
        assert_int_equal(cc_stmt_inserted_id(s), i == 0 && !pg ? 2 : 0);
        assert_int_equal(cc_stmt_changes(s), i < 2 ? 1 : 0);
        cc_stmt_release(s);
    }
    assert_int_equal(cc_stmt_prepare(st, sql_upsert, &s), CC_OK); /* no opt-in */
    assert_int_equal(cc_stmt_bind_int64(s, 1, 9), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    assert_int_equal(cc_stmt_inserted_id(s), 0);
    assert_int_equal(cc_stmt_track_insert(s), CC_ERR_INTERNAL); /* it has run */
    cc_stmt_release(s);
}

/* cc_dbi_real_text writes SQLite's digits of a REAL (json_object's), in either dialect. */
static void test_dbi_real_text(void **state)
{
    char buf[CC_DBI_REAL_TEXT_MAX];

    (void)state;
    assert_int_equal(cc_dbi_real_text(-10.0, buf, sizeof buf), CC_OK);
    assert_string_equal(buf, "-10.0");
    assert_int_equal(cc_dbi_real_text(1.0 / 3.0, buf, sizeof buf), CC_OK);
    assert_string_equal(buf, "0.333333333333333");
    assert_int_equal(cc_dbi_real_text(1e20, buf, sizeof buf), CC_OK);
    assert_string_equal(buf, "1.0e+20");
    assert_int_equal(cc_dbi_real_text(1.0, buf, CC_DBI_REAL_TEXT_MAX - 1), CC_ERR_TOO_LARGE);
}

static void test_dbi_changes(void **state)
{
    static const char sql_upd[] = "UPDATE t SET i = $1 WHERE id > $2";
    static const char sql_del[] = "DELETE FROM t WHERE id = $1";
    static const char sql_ins_ign[] =
        "INSERT INTO t (id) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING id";
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;

    for (int64_t id = 1; id <= 3; id++)
        insert_id(st, id);
    assert_int_equal(cc_stmt_prepare(st, sql_upd, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 5), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 2, 1), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    assert_int_equal(cc_stmt_changes(s), 2);
    cc_stmt_release(s);
    assert_int_equal(cc_stmt_prepare(st, sql_del, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 99), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    assert_int_equal(cc_stmt_changes(s), 0);
    cc_stmt_release(s);
    /* ON CONFLICT DO NOTHING and RETURNING, both dialects: a new row returns its id... */
    assert_int_equal(cc_stmt_prepare(st, sql_ins_ign, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 4), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(s, 0), 4);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    assert_int_equal(cc_stmt_changes(s), 1);
    cc_stmt_release(s);
    /* ... a duplicate returns nothing and changes nothing. */
    assert_int_equal(cc_stmt_prepare(st, sql_ins_ign, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 4), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    assert_int_equal(cc_stmt_changes(s), 0);
    cc_stmt_release(s);
}

static void test_dbi_commit_and_rollback(void **state)
{
    struct cc_store *st = store(state);

    assert_false(cc_store_in_transaction(st));
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_true(cc_store_in_transaction(st));
    insert_id(st, 1);
    cc_store_rollback(st);
    assert_false(cc_store_in_transaction(st));
    assert_int_equal(query_int(st, sql_count), 0);

    assert_int_equal(cc_store_begin(st), CC_OK);
    insert_id(st, 2);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_false(cc_store_in_transaction(st));
    assert_int_equal(query_int(st, sql_count), 1);
}

/* A statement that fails inside a transaction: SQLite undoes that statement only, and the
 * rest commits; PostgreSQL aborts the transaction, and its COMMIT reports CC_ERR_DB. */
static void test_dbi_failed_statement_in_transaction(void **state)
{
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;
    int pg = cc_store_dialect(st) == CC_DIALECT_PG;

    insert_id(st, 1);
    assert_int_equal(cc_store_begin(st), CC_OK);
    insert_id(st, 2);
    assert_int_equal(cc_stmt_prepare(st, sql_insert_id, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 1), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ERR_CONFLICT);
    cc_stmt_release(s);
    assert_int_equal(cc_store_commit(st), pg ? CC_ERR_DB : CC_OK);
    assert_false(cc_store_in_transaction(st));
    assert_int_equal(query_int(st, sql_count), pg ? 1 : 2);
}

/* One cache: the same text's address gives the same statement, prepared once. */
static void test_dbi_cache_reuses_statement(void **state)
{
    static const char sql_a[] = "SELECT count(*) FROM t WHERE id > $1";
    static const char sql_b[] = "SELECT count(*) FROM t WHERE id > $1"; /* same text */
    struct cc_store *st = store(state);
    struct cc_stmt *s1 = NULL, *s2 = NULL;
    int64_t before = cc_store_stmt_prepares(st);

    assert_int_equal(cc_stmt_prepare(st, sql_a, &s1), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s1, 1, 0), CC_OK);
    assert_int_equal(cc_stmt_step(s1), CC_ROW);
    cc_stmt_release(s1);
    for (int k = 0; k < 5; k++) {
        assert_int_equal(cc_stmt_prepare(st, sql_a, &s2), CC_OK);
        assert_ptr_equal(s1, s2);
        assert_int_equal(cc_stmt_bind_int64(s2, 1, 0), CC_OK);
        assert_int_equal(cc_stmt_step(s2), CC_ROW);
        cc_stmt_release(s2);
    }
    assert_int_equal(cc_store_stmt_prepares(st), before + 1);
    /* Keyed by address, not text: another literal is another statement. */
    assert_int_equal(cc_stmt_prepare(st, sql_b, &s2), CC_OK);
    assert_ptr_not_equal(s1, s2);
    cc_stmt_release(s2);
    assert_int_equal(cc_store_stmt_prepares(st), before + 2);
    if (cc_store_dialect(st) == CC_DIALECT_PG) {
        /* The server's view: one prepared statement per cached text, none re-prepared. */
        static const char sql_pps[] = "SELECT count(*) FROM pg_prepared_statements";

        assert_int_equal(query_int(st, sql_pps), before + 3); /* + this query */
    }
}

/* The same text used again before its release (a nested use) gets a statement of its
 * own, so neither run disturbs the other. */
static void test_dbi_nested_use_of_same_text(void **state)
{
    static const char sql[] = "SELECT id FROM t WHERE id >= $1 ORDER BY id";
    struct cc_store *st = store(state);
    struct cc_stmt *outer = NULL, *inner = NULL;

    insert_id(st, 1);
    insert_id(st, 2);
    assert_int_equal(cc_stmt_prepare(st, sql, &outer), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(outer, 1, 1), CC_OK);
    assert_int_equal(cc_stmt_step(outer), CC_ROW);
    assert_int_equal(cc_stmt_prepare(st, sql, &inner), CC_OK);
    assert_ptr_not_equal(outer, inner);
    assert_int_equal(cc_stmt_bind_int64(inner, 1, 2), CC_OK);
    assert_int_equal(cc_stmt_step(inner), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(inner, 0), 2);
    cc_stmt_release(inner);
    assert_int_equal(cc_stmt_column_int64(outer, 0), 1);
    assert_int_equal(cc_stmt_step(outer), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(outer, 0), 2);
    assert_int_equal(cc_stmt_step(outer), CC_OK);
    cc_stmt_release(outer);
}

/* Past CC_STMT_CACHE_MAX texts a statement still works but is prepared at each use and
 * freed at its release; the cached ones stay cached. */
static void test_dbi_cache_limit(void **state)
{
    static char sql[CC_STMT_CACHE_MAX + 2][48];
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;
    int64_t before;

    for (int k = 0; k < CC_STMT_CACHE_MAX + 2; k++)
        snprintf(sql[k], sizeof sql[k], "SELECT %d + CAST($1 AS bigint)", k);
    for (int k = 0; k < CC_STMT_CACHE_MAX + 2; k++) {
        assert_int_equal(cc_stmt_prepare(st, sql[k], &s), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 1, 1000), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_ROW);
        assert_int_equal(cc_stmt_column_int64(s, 0), 1000 + k);
        cc_stmt_release(s);
    }
    before = cc_store_stmt_prepares(st);
    for (int k = 0; k < CC_STMT_CACHE_MAX + 2; k++) {
        assert_int_equal(cc_stmt_prepare(st, sql[k], &s), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 1, 1), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_ROW);
        assert_int_equal(cc_stmt_column_int64(s, 0), 1 + k);
        cc_stmt_release(s);
    }
    /* The cache was full before the last two: they alone were prepared again. */
    assert_int_equal(cc_store_stmt_prepares(st), before + 2);
    if (cc_store_dialect(st) == CC_DIALECT_PG) {
        /* Nothing of a transient stays on the server. */
        static const char sql_pps[] = "SELECT count(*) FROM pg_prepared_statements";

        assert_int_equal(query_int(st, sql_pps), CC_STMT_CACHE_MAX);
    } else {
        sqlite3_stmt *raw = NULL;

        /* The old lending path keeps its old answer past the limit. */
        assert_int_equal(cc_store_stmt(st, sql[CC_STMT_CACHE_MAX], &raw), CC_ERR_DB);
        assert_int_equal(cc_store_stmt(st, sql[0], &raw), CC_OK);
        cc_store_stmt_done(raw);
    }
}

static void test_dbi_param_limits(void **state)
{
    static char sql_max[CC_STMT_PARAMS_MAX * 24 + 32];
    static char sql_over[CC_STMT_PARAMS_MAX * 24 + 64];
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;
    int n = snprintf(sql_max, sizeof sql_max, "SELECT 0");

    for (int k = 1; k <= CC_STMT_PARAMS_MAX; k++)
        n += snprintf(sql_max + n, sizeof sql_max - (size_t)n, " + CAST($%d AS bigint)", k);
    snprintf(sql_over, sizeof sql_over, "%s + CAST($%d AS bigint)", sql_max,
             CC_STMT_PARAMS_MAX + 1);

    assert_int_equal(cc_stmt_prepare(st, sql_max, &s), CC_OK);
    for (int k = 1; k <= CC_STMT_PARAMS_MAX; k++)
        assert_int_equal(cc_stmt_bind_int64(s, k, k), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 0, 1), CC_ERR_DB);
    assert_int_equal(cc_stmt_bind_int64(s, CC_STMT_PARAMS_MAX + 1, 1), CC_ERR_DB);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(s, 0), CC_STMT_PARAMS_MAX * (CC_STMT_PARAMS_MAX + 1) / 2);
    cc_stmt_release(s);
    s = NULL;
    assert_int_equal(cc_stmt_prepare(st, sql_over, &s), CC_ERR_DB);
    assert_null(s);

    /* A number the statement does not use. */
    assert_int_equal(cc_stmt_prepare(st, sql_insert_id, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 2, 1), CC_ERR_DB);
    assert_int_equal(cc_stmt_bind_text(s, 3, "x"), CC_ERR_DB);
    assert_int_equal(cc_stmt_bind_blob(s, 4, "x", 1), CC_ERR_DB);
    assert_int_equal(cc_stmt_bind_null(s, 5), CC_ERR_DB);
    assert_int_equal(cc_stmt_bind_double(s, 6, 1.0), CC_ERR_DB);
    cc_stmt_release(s);
}

/* cc_stmt_bind_all binds by letter; more letters than a statement can have, or a letter it
 * does not know, is a programming error it refuses rather than reading past its arguments. */
static void test_dbi_bind_all_refuses(void **state)
{
    static const char sql[] = "SELECT CAST($1 AS bigint) + CAST($2 AS bigint)";
    char over[CC_STMT_PARAMS_MAX + 2];
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;

    memset(over, 'n', CC_STMT_PARAMS_MAX + 1);
    over[CC_STMT_PARAMS_MAX + 1] = '\0';
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_all(s, "ii", (int64_t)2, (int64_t)3), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(s, 0), 5);
    cc_stmt_release(s);

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_all(s, over), CC_ERR_INTERNAL);
    assert_int_equal(cc_stmt_bind_all(s, "iz", (int64_t)2, (int64_t)3), CC_ERR_INTERNAL);
    cc_stmt_release(s);
}

/* Text is copied at bind time: the caller's buffer may change before the step. */
static void test_dbi_text_is_copied(void **state)
{
    static const char sql[] = "INSERT INTO t (id, s, b) VALUES (1, $1, $2)";
    static const char sql_get[] = "SELECT s, b FROM t WHERE id = 1";
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;
    char buf[16];

    snprintf(buf, sizeof buf, "before");
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 1, buf), CC_OK);
    assert_int_equal(cc_stmt_bind_blob(s, 2, buf, 6), CC_OK);
    snprintf(buf, sizeof buf, "AFTER!");
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    assert_int_equal(cc_stmt_prepare(st, sql_get, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_string_equal(cc_stmt_column_text(s, 0), "before");
    assert_memory_equal(cc_stmt_column_blob(s, 1), "before", 6);
    cc_stmt_release(s);
}

/* Releasing with a row unread ends the statement: no lock or result is left behind, a
 * transaction can follow, and the next use starts over. */
static void test_dbi_release_with_unread_row(void **state)
{
    static const char sql[] = "SELECT id FROM t ORDER BY id";
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;

    insert_id(st, 1);
    insert_id(st, 2);
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    cc_stmt_release(s);
    cc_stmt_release(NULL);
    /* SQLite: an unreset SELECT keeps the connection's read transaction open. */
    assert_false(cc_store_in_transaction(st));
    assert_int_equal(cc_store_begin(st), CC_OK);
    insert_id(st, 3);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(s, 0), 1);
    cc_stmt_release(s);
}

static void test_dbi_json_helpers(void **state)
{
    static const char sql[] =
        "SELECT CAST($1 AS bigint), CAST($2 AS double precision), CAST($3 AS text),"
        " CAST($4 AS bigint),"
        " CAST($5 AS bigint)";
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;
    cJSON *o = cJSON_CreateObject();
    char *text;

    assert_non_null(o);
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 42), CC_OK);
    assert_int_equal(cc_stmt_bind_double(s, 2, -273.15), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 3, "Fridge \"1\""), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 4, 1764135900000LL), CC_OK);
    assert_int_equal(cc_stmt_bind_null(s, 5), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_dbi_json_int(o, "id", s, 0), CC_OK);
    assert_int_equal(cc_dbi_json_num(o, "t", s, 1), CC_OK);
    assert_int_equal(cc_dbi_json_text(o, "name", s, 2), CC_OK);
    assert_int_equal(cc_dbi_json_time(o, "at", s, 3), CC_OK);
    assert_int_equal(cc_dbi_json_int(o, "none", s, 4), CC_OK);
    assert_int_equal(cc_dbi_json_time(o, "never", s, 4), CC_OK);
    assert_int_equal(cc_dbi_json_text(o, "empty", s, 4), CC_OK);
    cc_stmt_release(s);
    text = cJSON_PrintUnformatted(o);
    assert_string_equal(text, "{\"id\":42,\"t\":-273.15,\"name\":\"Fridge \\\"1\\\"\","
                              "\"at\":\"2025-11-26T05:45:00.000Z\",\"none\":null,"
                              "\"never\":null,\"empty\":null}");
    free(text);
    cJSON_Delete(o);
}

/* A row maker for cc_dbi_collect: {"id":N,"s":text}; NULL (as on out of memory) for id 3. */
static cJSON *collect_row(struct cc_stmt *s)
{
    cJSON *o;

    if (cc_stmt_column_int64(s, 0) == 3)
        return NULL;
    o = cJSON_CreateObject();
    if (o != NULL &&
        (cc_dbi_json_int(o, "id", s, 0) != CC_OK || cc_dbi_json_text(o, "s", s, 1) != CC_OK)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

static void test_dbi_collect_rows(void **state)
{
    static const char sql[] = "SELECT id, s FROM t WHERE id <= $1 ORDER BY id";
    struct cc_store *st = store(state);
    struct cc_stmt *s = NULL;
    cJSON *items = NULL;
    char *text;

    assert_int_equal(cc_store_exec(st, "INSERT INTO t (id, s) VALUES (1, 'a'), (2, NULL),"
                                       " (3, 'c')"),
                     CC_OK);
    /* Every row in order, none: an empty array. */
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 2), CC_OK);
    assert_int_equal(cc_dbi_collect(s, collect_row, &items), CC_OK);
    cc_stmt_release(s);
    text = cJSON_PrintUnformatted(items);
    assert_string_equal(text, "[{\"id\":1,\"s\":\"a\"},{\"id\":2,\"s\":null}]");
    free(text);
    cJSON_Delete(items);
    items = NULL;
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 0), CC_OK);
    assert_int_equal(cc_dbi_collect(s, collect_row, &items), CC_OK);
    cc_stmt_release(s);
    assert_int_equal(cJSON_GetArraySize(items), 0);
    cJSON_Delete(items);
    items = NULL;
    /* A row that cannot be made: CC_ERR_NOMEM, *items untouched, nothing leaks (ASan). */
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 3), CC_OK);
    assert_int_equal(cc_dbi_collect(s, collect_row, &items), CC_ERR_NOMEM);
    cc_stmt_release(s);
    assert_null(items);
}

static void test_dbi_exec_runs_several_statements(void **state)
{
    struct cc_store *st = store(state);

    assert_int_equal(cc_store_exec(st, "INSERT INTO t (id) VALUES (1); INSERT INTO t (id)"
                                       " VALUES (2)"),
                     CC_OK);
    assert_int_equal(query_int(st, sql_count), 2);
    assert_int_equal(cc_store_exec(st, "INSERT INTO t (id) VALUES (1)"), CC_ERR_CONFLICT);
}

/* PostgreSQL only: the SQLite-only machinery says so instead of touching a NULL handle
 * (the typed functions and migrations are test_store_pg.c's). */
static void test_dbi_pg_typed_functions_not_yet(void **state)
{
    struct cc_store *st = store(state);
    struct cc_store *other = NULL;
    int version = -1;
    sqlite3_stmt *raw = NULL;

    assert_null(cc_store_db(st));
    assert_int_equal(cc_store_schema_version(st, &version), CC_OK);
    assert_int_equal(version, 0); /* no migration applied in this database */
    assert_int_equal(cc_store_stmt(st, sql_count, &raw), CC_ERR_INTERNAL);
    assert_int_equal(cc_store_open(pg_url, CC_STORE_MIGRATE | CC_STORE_READONLY, &other),
                     CC_ERR_DB);
    assert_null(other);
    assert_int_equal(cc_store_open("postgresql:///nope?host=/nonexistent&port=1", 0, &other),
                     CC_ERR_DB);
    /* Read-only: a write inside a transaction is refused. */
    assert_int_equal(cc_store_open(pg_url, CC_STORE_READONLY, &other), CC_OK);
    assert_int_equal(cc_store_exec(other, "INSERT INTO t (id) VALUES (9)"), CC_ERR_DB);
    assert_int_equal(cc_store_read_begin(other), CC_OK);
    assert_true(cc_store_in_transaction(other));
    assert_int_equal(query_int(other, sql_count), 0);
    cc_store_read_end(other);
    assert_false(cc_store_in_transaction(other));
    cc_store_close(other);
}

static const char sql_plus1[] = "SELECT CAST($1 AS bigint) + 1";
static const char sql_ids_from[] = "SELECT id FROM t WHERE id >= $1 ORDER BY id";
static const char sql_twice[] = "SELECT CAST($1 AS bigint) * 2";

/* Lends sql with $1 bound to v, sent ahead. */
static struct cc_stmt *sent(struct cc_store *st, const char *sql, int64_t v)
{
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, v), CC_OK);
    assert_int_equal(cc_stmt_send(s), CC_OK);
    return s;
}

/* Steps s: one row whose first column is want, then the end; releases s. */
static void one_row(struct cc_stmt *s, int64_t want)
{
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_int64(s, 0), want);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
}

/* Statements sent ahead (cc_stmt_send) give the rows they give run one by one, stepped in
 * any order, beside statements run on their own; on PostgreSQL the three wait for the
 * server once (one pipeline), not three times. A sent statement released unread leaves
 * the connection working. */
static void test_dbi_send_ahead(void **state)
{
    struct cc_store *st = store(state);
    struct cc_stmt *a, *b, *c;
    int64_t trips;

    insert_id(st, 5);
    insert_id(st, 6);
    one_row(sent(st, sql_plus1, 0), 1); /* prepared now: the round trips below are runs */
    one_row(sent(st, sql_twice, 0), 0);
    b = sent(st, sql_ids_from, 99);
    assert_int_equal(cc_stmt_step(b), CC_OK);
    cc_stmt_release(b);

    trips = cc_store_round_trips(st);
    a = sent(st, sql_plus1, 41);
    b = sent(st, sql_ids_from, 6);
    c = sent(st, sql_twice, 21);
    one_row(c, 42); /* the last first: the two before it are kept */
    one_row(a, 42);
    one_row(b, 6);
    if (cc_store_dialect(st) == CC_DIALECT_PG)
        assert_int_equal(cc_store_round_trips(st) - trips, 1);
    else
        assert_int_equal(cc_store_round_trips(st), 0);

    /* A statement run on its own between the send and the step: the result waits. */
    a = sent(st, sql_plus1, 7);
    assert_int_equal(query_int(st, sql_count), 2);
    insert_id(st, 7);
    one_row(a, 8);
    /* Released unread, then the same statement again. */
    cc_stmt_release(sent(st, sql_plus1, 9));
    one_row(sent(st, sql_plus1, 10), 11);
    assert_int_equal(query_int(st, sql_count), 3);
    /* In a transaction: its writes are seen by the statements sent after them. */
    assert_int_equal(cc_store_begin(st), CC_OK);
    insert_id(st, 8);
    b = sent(st, sql_ids_from, 8);
    one_row(b, 8);
    assert_int_equal(query_int(st, sql_count), 4);
    assert_int_equal(cc_store_commit(st), CC_OK);
}

/* A statement sent ahead that fails reports it at its step; on PostgreSQL the one sent
 * after it in the same round trip fails too (not run), on SQLite it runs. The connection
 * works afterwards, and a statement sent cannot be sent again (PostgreSQL; SQLite's send
 * does nothing). */
static void test_dbi_send_ahead_failure(void **state)
{
    static const char sql_bad[] = "INSERT INTO t (id, c) VALUES ($1, -1)"; /* CHECK (c >= 0) */
    struct cc_store *st = store(state);
    struct cc_stmt *a, *b;

    one_row(sent(st, sql_plus1, 0), 1); /* prepared: a prepare would read a's result first */
    a = sent(st, sql_bad, 1);
    b = sent(st, sql_plus1, 1);
    assert_int_equal(cc_stmt_send(a),
                     cc_store_dialect(st) == CC_DIALECT_PG ? CC_ERR_INTERNAL : CC_OK);
    assert_int_equal(cc_stmt_step(a), CC_ERR_DB);
    if (cc_store_dialect(st) == CC_DIALECT_PG) {
        assert_int_equal(cc_stmt_step(b), CC_ERR_DB);
        cc_stmt_release(b);
    } else {
        one_row(b, 2);
    }
    cc_stmt_release(a);
    assert_int_equal(query_int(st, sql_count), 0);
    one_row(sent(st, sql_plus1, 2), 3);
}

/* More than CC_STMT_SEND_MAX statements sent: the one over the limit first reads the
 * results on their way (one more round trip on PostgreSQL), and every answer is right. */
static void test_dbi_send_ahead_limit(void **state)
{
    static char texts[CC_STMT_SEND_MAX + 1][48]; /* distinct texts: one cached statement each */
    struct cc_stmt *s[CC_STMT_SEND_MAX + 1];
    struct cc_store *st = store(state);
    int n = CC_STMT_SEND_MAX + 1;
    int64_t trips;

    for (int i = 0; i < n; i++) {
        snprintf(texts[i], sizeof texts[i], "SELECT CAST($1 AS bigint) + %d", i);
        one_row(sent(st, texts[i], 0), i);
    }
    trips = cc_store_round_trips(st);
    for (int i = 0; i < n; i++)
        s[i] = sent(st, texts[i], 100);
    for (int i = n - 1; i >= 0; i--)
        one_row(s[i], 100 + i);
    if (cc_store_dialect(st) == CC_DIALECT_PG)
        assert_int_equal(cc_store_round_trips(st) - trips, 2);
}

#define BOTH(setup)                                                                                \
    cmocka_unit_test_setup_teardown(test_dbi_dialect, setup, fx_teardown),                         \
        cmocka_unit_test_setup_teardown(test_dbi_params_out_of_order_and_repeated, setup,          \
                                        fx_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_dbi_types_round_trip, setup, fx_teardown),            \
        cmocka_unit_test_setup_teardown(test_dbi_nulls, setup, fx_teardown),                       \
        cmocka_unit_test_setup_teardown(test_dbi_bool_and_dialect_text, setup, fx_teardown),       \
        cmocka_unit_test_setup_teardown(test_dbi_row_then_ok, setup, fx_teardown),                 \
        cmocka_unit_test_setup_teardown(test_dbi_unique_violation_is_conflict, setup,              \
                                        fx_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_dbi_failed_step_is_db_error_without_values, setup,    \
                                        fx_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_dbi_syntax_error_is_db_error, setup, fx_teardown),    \
        cmocka_unit_test_setup_teardown(test_dbi_changes, setup, fx_teardown),                     \
        cmocka_unit_test_setup_teardown(test_dbi_inserted_id, setup, fx_teardown),                 \
        cmocka_unit_test_setup_teardown(test_dbi_real_text, setup, fx_teardown),                   \
        cmocka_unit_test_setup_teardown(test_dbi_commit_and_rollback, setup, fx_teardown),         \
        cmocka_unit_test_setup_teardown(test_dbi_failed_statement_in_transaction, setup,           \
                                        fx_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_dbi_cache_reuses_statement, setup, fx_teardown),      \
        cmocka_unit_test_setup_teardown(test_dbi_nested_use_of_same_text, setup, fx_teardown),     \
        cmocka_unit_test_setup_teardown(test_dbi_cache_limit, setup, fx_teardown),                 \
        cmocka_unit_test_setup_teardown(test_dbi_param_limits, setup, fx_teardown),                \
        cmocka_unit_test_setup_teardown(test_dbi_bind_all_refuses, setup, fx_teardown),            \
        cmocka_unit_test_setup_teardown(test_dbi_text_is_copied, setup, fx_teardown),              \
        cmocka_unit_test_setup_teardown(test_dbi_release_with_unread_row, setup, fx_teardown),     \
        cmocka_unit_test_setup_teardown(test_dbi_json_helpers, setup, fx_teardown),                \
        cmocka_unit_test_setup_teardown(test_dbi_collect_rows, setup, fx_teardown),                \
        cmocka_unit_test_setup_teardown(test_dbi_exec_runs_several_statements, setup,              \
                                        fx_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_dbi_send_ahead, setup, fx_teardown),                  \
        cmocka_unit_test_setup_teardown(test_dbi_send_ahead_failure, setup, fx_teardown),          \
        cmocka_unit_test_setup_teardown(test_dbi_send_ahead_limit, setup, fx_teardown)

/* PostgreSQL went away under an idle store (a server restart; here its backend is
 * terminated): the next statement finds it out without a round trip (the socket holds the
 * backend's FATAL and end of file), opens the connection again, prepares its statements
 * anew and succeeds, a read-only store staying read-only; no statement fails (before, the
 * first one did, a 500 for each of apid's pooled connections). Without the revival every
 * later call would fail until the process restarts (the broker plugin, ingestd's writer). */
static void test_dbi_pg_reconnects_after_lost_connection(void **state)
{
    struct cc_store *st = store(state);
    struct cc_store *admin = NULL, *ro = NULL;
    static const char sql_pid[] = "SELECT pg_backend_pid()";
    int64_t pid;

    assert_int_equal(cc_store_open(pg_url, 0, &admin), CC_OK);
    assert_int_equal(cc_store_open(pg_url, CC_STORE_READONLY, &ro), CC_OK);
    for (int round = 0; round < 2; round++) {
        struct cc_store *victim = round == 0 ? st : ro;

        assert_int_equal(query_int(victim, sql_count), 0); /* a cached statement, prepared */
        pid = query_int(victim, sql_pid);
        assert_int_equal(fixture_pg_terminate(admin, pid), CC_OK);
        assert_false(cc_store_in_transaction(victim));     /* not "in a transaction" when dead */
        assert_int_equal(query_int(victim, sql_count), 0); /* revived, re-prepared */
        assert_true(query_int(victim, sql_pid) != pid);
        assert_int_equal(cc_store_begin(victim), CC_OK);
        cc_store_rollback(victim);
    }
    /* Still read-only after its revival. */
    assert_int_equal(cc_store_exec(ro, "INSERT INTO t (id) VALUES (9)"), CC_ERR_DB);
    cc_store_close(ro);
    cc_store_close(admin);
}

/* cc_store_read_begin's BEGIN goes out with the first statement after it: a read
 * transaction of one statement waits for the server twice (with the COMMIT), not three
 * times, and one that ran nothing not at all. It is still a REPEATABLE READ, READ ONLY
 * transaction: a row another connection adds after the first statement is not seen
 * until the end, and a write is refused. */
static void test_dbi_pg_read_begin_goes_with_first_statement(void **state)
{
    struct cc_store *st = store(state);
    struct cc_store *other = NULL;
    int64_t trips;

    assert_int_equal(cc_store_open(pg_url, 0, &other), CC_OK);
    assert_int_equal(query_int(st, sql_count), 0); /* prepared */
    trips = cc_store_round_trips(st);
    assert_int_equal(cc_store_read_begin(st), CC_OK);
    assert_true(cc_store_in_transaction(st));
    cc_store_read_end(st);
    assert_false(cc_store_in_transaction(st));
    assert_int_equal(cc_store_round_trips(st), trips); /* nothing ran: no BEGIN, no COMMIT */

    assert_int_equal(cc_store_read_begin(st), CC_OK);
    assert_int_equal(query_int(st, sql_count), 0);
    assert_int_equal(cc_store_round_trips(st) - trips, 1); /* BEGIN and the count */
    insert_id(other, 1);
    assert_int_equal(query_int(st, sql_count), 0); /* the first statement's snapshot */
    assert_int_equal(cc_store_exec(st, "INSERT INTO t (id) VALUES (2)"), CC_ERR_DB);
    cc_store_read_end(st);
    assert_false(cc_store_in_transaction(st));
    assert_int_equal(query_int(st, sql_count), 1);
    cc_store_close(other);
}

/* Ends the backend whose pid is given, from admin, and waits until it is gone: its FATAL
 * and end of file are then on the victim's socket (a 100 ms sleep was not always enough on
 * a loaded host, and the victim's next statement went to the dying backend). */
static void kill_pid(struct cc_store *admin, int64_t pid)
{
    assert_int_equal(fixture_pg_terminate(admin, pid), CC_OK);
}

/* Ends the backend of victim from admin (a server restart, as far as victim can tell). */
static void kill_backend(struct cc_store *admin, struct cc_store *victim)
{
    kill_pid(admin, query_int(victim, "SELECT pg_backend_pid()"));
}

/* PostgreSQL went away while a read transaction's statements were sent ahead (apid's pooled
 * connection at a server restart): the statements fail, the transaction ends, and the next
 * read transaction on the same store reconnects and answers right, in a fresh snapshot. */
static void test_dbi_pg_pipeline_lost_connection(void **state)
{
    struct cc_store *st = store(state);
    struct cc_store *admin = NULL;
    struct cc_stmt *a, *b;

    assert_int_equal(cc_store_open(pg_url, 0, &admin), CC_OK);
    one_row(sent(st, sql_plus1, 0), 1); /* prepared */
    one_row(sent(st, sql_twice, 0), 0);
    assert_int_equal(cc_store_read_begin(st), CC_OK); /* found alive: its BEGIN is due */
    kill_backend(admin, st);
    a = sent(st, sql_plus1, 1);
    b = sent(st, sql_twice, 2);
    assert_int_equal(cc_stmt_step(b), CC_ERR_DB);
    assert_int_equal(cc_stmt_step(a), CC_ERR_DB);
    cc_stmt_release(a);
    cc_stmt_release(b);
    cc_store_read_end(st); /* its COMMIT and ROLLBACK fail: no connection */
    insert_id(admin, 3);
    assert_int_equal(cc_store_read_begin(st), CC_OK);
    a = sent(st, sql_plus1, 1);
    b = sent(st, sql_ids_from, 0);
    one_row(b, 3);
    one_row(a, 2);
    cc_store_read_end(st);
    assert_false(cc_store_in_transaction(st));
    assert_int_equal(query_int(st, sql_count), 1);
    cc_store_close(admin);
}

/* A statement of a read transaction sent ahead fails (here a division by zero): the
 * transaction is aborted, its end rolls it back, and the next read transaction on the same
 * store runs and sees rows committed since (not the failed transaction's snapshot). */
static void test_dbi_pg_pipeline_failure_then_next_request(void **state)
{
    static const char sql_div[] = "SELECT 1 / CAST($1 AS bigint)";
    struct cc_store *st = store(state);
    struct cc_store *other = NULL;
    struct cc_stmt *a, *b, *c;

    assert_int_equal(cc_store_open(pg_url, 0, &other), CC_OK);
    one_row(sent(st, sql_div, 1), 1); /* prepared: a prepare would read the results first */
    one_row(sent(st, sql_plus1, 0), 1);
    c = sent(st, sql_ids_from, 0);
    assert_int_equal(cc_stmt_step(c), CC_OK);
    cc_stmt_release(c);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(cc_store_read_begin(st), CC_OK);
        a = sent(st, sql_plus1, 1);
        b = sent(st, sql_div, 0);
        c = sent(st, sql_ids_from, 0);
        one_row(a, 2);
        assert_int_equal(cc_stmt_step(b), CC_ERR_DB);
        if (round == 0)
            assert_int_equal(cc_stmt_step(c), CC_ERR_DB);
        cc_stmt_release(b);
        cc_stmt_release(c); /* round 1: released unread */
        cc_store_read_end(st);
        assert_false(cc_store_in_transaction(st));
        insert_id(other, 10 + round);
        assert_int_equal(cc_store_read_begin(st), CC_OK);
        assert_int_equal(query_int(st, sql_count), round + 1);
        cc_store_read_end(st);
    }
    cc_store_close(other);
}

/* In a write transaction, a statement sent ahead fails and nothing steps it or the one sent
 * after it (both released unread): the COMMIT must not report success, nothing of the
 * transaction is stored, and the store's next transaction works. */
static void test_dbi_pg_commit_with_failed_results_pending(void **state)
{
    static const char sql_ins_c[] =
        "INSERT INTO t (id, c) VALUES (CAST($1 AS bigint), CAST($1 AS bigint) - 5)"; /* c >= 0 */
    struct cc_store *st = store(state);
    struct cc_stmt *a, *b, *c;

    one_row(sent(st, sql_plus1, 0), 1); /* each text prepared: a prepare reads results first */
    one_row(sent(st, sql_twice, 0), 0);
    a = sent(st, sql_ins_c, 6);
    assert_int_equal(cc_stmt_step(a), CC_OK);
    cc_stmt_release(a);
    assert_int_equal(cc_store_begin(st), CC_OK);
    a = sent(st, sql_twice, 7);
    c = sent(st, sql_ins_c, 7);
    b = sent(st, sql_plus1, 8);
    one_row(a, 14);
    cc_stmt_release(c); /* unread */
    cc_stmt_release(b);
    a = sent(st, sql_ins_c, 1); /* fails the CHECK */
    b = sent(st, sql_plus1, 8);
    cc_stmt_release(b); /* both unread */
    cc_stmt_release(a);
    assert_int_not_equal(cc_store_commit(st), CC_OK);
    assert_false(cc_store_in_transaction(st));
    assert_int_equal(query_int(st, sql_count), 1);
    assert_int_equal(cc_store_begin(st), CC_OK);
    insert_id(st, 9);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(query_int(st, sql_count), 2);
}

/* Runs INSERT INTO t (id) VALUES (id) on st: the step's code (or the prepare's). */
static int try_insert(struct cc_store *st, int64_t id)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql_insert_id, &s);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, id);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    cc_stmt_release(s);
    return rc;
}

/* Runs SELECT count(*) FROM t on st: the step's code (or the prepare's). */
static int try_count(struct cc_store *st)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql_count, &s);

    while (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW)
        ;
    cc_stmt_release(s);
    return rc;
}

/* The connection is lost inside a write transaction (a restart between two of its
 * statements): every later statement of it fails, none runs on its own on a new session
 * (before, the second one after the loss reconnected and stored its row alone, outside the
 * transaction); once the owner rolls back, the store reconnects and nothing of the
 * transaction is stored. */
static void test_dbi_pg_lost_inside_transaction(void **state)
{
    struct cc_store *st = store(state);
    struct cc_store *admin = NULL;

    assert_int_equal(cc_store_open(pg_url, 0, &admin), CC_OK);
    assert_int_equal(try_insert(st, 99), CC_OK); /* prepared */
    assert_int_equal(cc_store_exec(st, "DELETE FROM t"), CC_OK);
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(try_insert(st, 1), CC_OK);
    kill_backend(admin, st);
    assert_int_equal(try_insert(st, 2), CC_ERR_DB);
    assert_int_equal(try_insert(st, 3), CC_ERR_DB); /* still the lost transaction's */
    assert_false(cc_store_in_transaction(st));
    assert_int_not_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(query_int(st, sql_count), 0); /* reconnected: nothing stored */
    assert_int_equal(query_int(admin, sql_count), 0);
    cc_store_close(admin);
}

/* cc_store_retry_safe, apid's "run the request again": after the connection was found lost,
 * yes when only a read transaction's statements went out since the mark, no when an
 * autocommit write or a COMMIT did (it may have committed), and no without a loss. */
static void test_dbi_pg_retry_safe(void **state)
{
    struct cc_store *st = store(state);
    struct cc_store *admin = NULL;

    assert_int_equal(cc_store_open(pg_url, 0, &admin), CC_OK);
    cc_store_retry_mark(st);
    assert_int_equal(query_int(st, sql_count), 0);
    assert_false(cc_store_retry_safe(st)); /* nothing lost */

    assert_int_equal(cc_store_read_begin(st), CC_OK);
    cc_store_retry_mark(st);
    kill_backend(admin, st); /* its pid query runs in the read transaction */
    assert_int_equal(try_count(st), CC_ERR_DB);
    assert_true(cc_store_retry_safe(st)); /* reads only */
    cc_store_read_end(st);

    cc_store_retry_mark(st);
    assert_int_equal(cc_store_begin(st), CC_OK); /* reconnects */
    assert_int_equal(try_insert(st, 5), CC_OK);
    kill_backend(admin, st);
    assert_int_not_equal(cc_store_commit(st), CC_OK);
    assert_false(cc_store_retry_safe(st)); /* a COMMIT went out */

    cc_store_retry_mark(st);
    assert_int_equal(try_insert(st, 6), CC_OK); /* on its own: committed at once */
    assert_int_equal(cc_store_read_begin(st), CC_OK);
    kill_backend(admin, st);
    assert_int_equal(try_count(st), CC_ERR_DB);
    cc_store_read_end(st);
    assert_false(cc_store_retry_safe(st)); /* the insert before the loss counts */
    assert_int_equal(query_int(admin, sql_count), 1);
    cc_store_close(admin);
}

/* A transient statement sent ahead is still waiting for its result when its connection is
 * lost (here: a cached statement sent after it, large enough that libpq writes it at once,
 * meets the closed socket): its step fails, never reads as "done, no rows", and the store
 * works again after. A guard more than a regression test: the revival's own path (a lost
 * connection opened again while a transient waits, which forgot it before) is not reached
 * through the public API here, since libpq reads the backend's FATAL as the waiting
 * statements' results first; cc_dbi_pg_revive and cc_dbi_pg_step fail such a statement
 * anyway. */
static void test_dbi_pg_transient_waiting_at_revival(void **state)
{
    static char fill[CC_STMT_CACHE_MAX - 1][24];
    static const char sql_t[] = "SELECT CAST($1 AS bigint) + 100";
    static const char sql_big[] = "SELECT length(CAST($1 AS text))";
    static const char sql_seven[] = "SELECT 7";
    enum { BIG = 256 * 1024 }; /* past libpq's output buffer threshold (64 KiB): sent now */
    struct cc_store *st = store(state);
    struct cc_store *admin = NULL;
    struct cc_stmt *t = NULL, *big = NULL;
    char *text = malloc(BIG + 1);
    int64_t pid;

    assert_non_null(text);
    memset(text, 'x', BIG);
    text[BIG] = '\0';
    assert_int_equal(cc_store_open(pg_url, 0, &admin), CC_OK);
    pid = query_int(st, "SELECT pg_backend_pid()");
    for (int k = 0; k < CC_STMT_CACHE_MAX - 2; k++) { /* then sql_big: the cache is full */
        snprintf(fill[k], sizeof fill[k], "SELECT %d", k);
        assert_int_equal(query_int(st, fill[k]), k);
    }
    assert_int_equal(cc_stmt_prepare(st, sql_big, &big), CC_OK);
    assert_int_equal(cc_stmt_bind_text(big, 1, "abc"), CC_OK);
    one_row(big, 3);
    t = sent(st, sql_t, 1); /* transient: prepared now, freed at its release */
    kill_pid(admin, pid);
    assert_int_equal(cc_stmt_prepare(st, sql_big, &big), CC_OK); /* cached: no round trip */
    assert_int_equal(cc_stmt_bind_text(big, 1, text), CC_OK);
    cc_stmt_send(big); /* fails or not: the connection is lost either way */
    cc_stmt_release(big);
    assert_int_equal(cc_stmt_step(t), CC_ERR_DB);
    cc_stmt_release(t);
    assert_int_equal(query_int(st, sql_seven), 7); /* on the connection opened again */
    free(text);
    cc_store_close(admin);
}

/* cc_store_set_cache_kib sets the connection's page cache in KiB (ingestd's jobs and /metrics
 * connections, apid's pool: README "Back-pressure", memory budget), on SQLite; PostgreSQL's is
 * the server's. A size below 1 KiB is refused and leaves the cache as it was. */
static void test_dbi_cache_kib(void **state)
{
    struct cc_store *st = store(state);

    int kib = -1;

    assert_int_equal(cc_store_set_cache_kib(st, 256), CC_OK);
    assert_int_equal(query_int(st, "PRAGMA cache_size"), -256);
    assert_int_equal(cc_store_cache_kib(st, &kib), CC_OK);
    assert_int_equal(kib, 256);
    assert_int_equal(cc_store_set_cache_kib(st, 0), CC_ERR_CONFIG);
    assert_int_equal(cc_store_set_cache_kib(st, -5), CC_ERR_CONFIG);
    assert_int_equal(query_int(st, "PRAGMA cache_size"), -256);
    /* A size set in pages (SQLite's other unit) reads back in KiB too. */
    assert_int_equal(fixture_exec(st, "PRAGMA cache_size=100"), CC_OK);
    assert_int_equal(cc_store_cache_kib(st, &kib), CC_OK);
    assert_int_equal(kib, 100 * query_int(st, "PRAGMA page_size") / 1024);
}

int main(void)
{
    const struct CMUnitTest lite[] = {
        BOTH(lite_setup),
        cmocka_unit_test_setup_teardown(test_dbi_cache_kib, lite_setup, fx_teardown),
    };
    const struct CMUnitTest pg[] = {
        BOTH(pg_setup),
        cmocka_unit_test_setup_teardown(test_dbi_pg_typed_functions_not_yet, pg_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dbi_pg_reconnects_after_lost_connection, pg_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_dbi_pg_read_begin_goes_with_first_statement, pg_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_dbi_pg_pipeline_lost_connection, pg_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_dbi_pg_pipeline_failure_then_next_request, pg_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_dbi_pg_commit_with_failed_results_pending, pg_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_dbi_pg_lost_inside_transaction, pg_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dbi_pg_retry_safe, pg_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dbi_pg_transient_waiting_at_revival, pg_setup,
                                        fx_teardown),
    };
    int failed;

    cc_log_init("test_dbi", CC_LOG_ERROR, 1);
    failed = cmocka_run_group_tests_name("dbi_sqlite", lite, NULL, NULL);
    failed += cmocka_run_group_tests_name("dbi_postgresql", pg, pg_group_setup, pg_group_teardown);
    return failed;
}
