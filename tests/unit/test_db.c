/* test_db.c - cc_db: opening, pragmas, migrations and the schema's own guarantees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_db.h"
#include "cc_log.h"
#include "cc_rc.h"

/* A temporary directory per test, holding sub/dir/cc.db (cc_db_open creates the
 * parents with CC_DB_CREATE). */
struct tmp {
    char dir[64];
    char sub[96];
    char subdir[128];
    char path[160];
};

static int tmp_setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);

    if (t == NULL)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/cc_test_db.XXXXXX");
    if (mkdtemp(t->dir) == NULL) {
        free(t);
        return -1;
    }
    snprintf(t->sub, sizeof t->sub, "%s/sub", t->dir);
    snprintf(t->subdir, sizeof t->subdir, "%s/sub/dir", t->dir);
    snprintf(t->path, sizeof t->path, "%s/sub/dir/cc.db", t->dir);
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    struct tmp *t = *state;
    cc_db_remove_files(t->path);
    rmdir(t->subdir);
    rmdir(t->sub);
    rmdir(t->dir);
    free(t);
    return 0;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

/* Runs sql and returns the extended result code. */
static int exec_rc(sqlite3 *db, const char *sql)
{
    sqlite3_exec(db, sql, NULL, NULL, NULL);
    return sqlite3_extended_errcode(db);
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static void query_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *stmt = NULL;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
}

/* A user, location, cell and device, as the tests of the schema need them. */
static void insert_fixture(sqlite3 *db)
{
    exec_ok(db, "INSERT INTO users (id, email, password_hash, role, name, created_at)"
                " VALUES (1, 'c@example.com', 'x', 'CUSTOMER', 'C', 0);"
                "INSERT INTO locations (id, customer_id, name, created_at)"
                " VALUES (1, 1, 'L', 0);"
                "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at)"
                " VALUES (1, 1, 'Freezer', -25, -15, 0);"
                "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
                " api_key_prefix, created_at) VALUES (1, 'SN1', 1, 'h', 'p', 0);");
}

static void test_db_latest_version_positive(void **state)
{
    (void)state;
    assert_true(cc_db_latest_version() >= 1);
    assert_true(cc_migrations_count >= 1);
    assert_int_equal(cc_migrations[0].version, 1);
}

static void test_db_migrate_memory(void **state)
{
    sqlite3 *db = NULL;
    int v = -1;

    (void)state;
    assert_int_equal(cc_db_open(":memory:", CC_DB_MIGRATE, &db), CC_OK);
    assert_int_equal(cc_db_user_version(db, &v), CC_OK);
    assert_int_equal(v, cc_db_latest_version());
    assert_int_equal(query_int(db, "SELECT count(*) FROM ingest_checkpoint"), 1);
    assert_true(sqlite3_get_autocommit(db)); /* no transaction left open */
    cc_db_close(db);
}

static void test_db_migrate_file_creates_dirs_and_uses_wal(void **state)
{
    struct tmp *t = *state;
    sqlite3 *db = NULL;
    char mode[16];
    int v = -1;

    assert_int_equal(cc_db_open(t->path, CC_DB_CREATE | CC_DB_MIGRATE, &db), CC_OK);
    assert_int_equal(access(t->path, F_OK), 0);
    assert_int_equal(cc_db_user_version(db, &v), CC_OK);
    assert_int_equal(v, cc_db_latest_version());
    query_text(db, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
    assert_int_equal(query_int(db, "PRAGMA busy_timeout"), CC_DB_BUSY_TIMEOUT_MS);
    assert_int_equal(query_int(db, "PRAGMA cache_size"), -65536);
    cc_db_close(db);
}

static void test_db_migrate_again_is_noop(void **state)
{
    struct tmp *t = *state;
    sqlite3 *db = NULL;
    int64_t objects;
    int v = -1;

    assert_int_equal(cc_db_open(t->path, CC_DB_CREATE | CC_DB_MIGRATE, &db), CC_OK);
    exec_ok(db, "UPDATE ingest_checkpoint SET journal_gen = 7");
    objects = query_int(db, "SELECT count(*) FROM sqlite_master");
    assert_int_equal(cc_db_migrate(db), CC_OK);
    cc_db_close(db);

    db = NULL;
    assert_int_equal(cc_db_open(t->path, CC_DB_MIGRATE, &db), CC_OK);
    assert_int_equal(cc_db_user_version(db, &v), CC_OK);
    assert_int_equal(v, cc_db_latest_version());
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master"), objects);
    assert_int_equal(query_int(db, "SELECT journal_gen FROM ingest_checkpoint"), 7);
    assert_int_equal(query_int(db, "SELECT count(*) FROM ingest_checkpoint"), 1);
    cc_db_close(db);
}

static void test_db_newer_version_refused(void **state)
{
    struct tmp *t = *state;
    sqlite3 *db = NULL;
    char sql[64];

    assert_int_equal(cc_db_open(t->path, CC_DB_CREATE | CC_DB_MIGRATE, &db), CC_OK);
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", cc_db_latest_version() + 1);
    exec_ok(db, sql);
    assert_int_equal(cc_db_migrate(db), CC_ERR_DB);
    cc_db_close(db);

    db = NULL;
    assert_int_equal(cc_db_open(t->path, CC_DB_MIGRATE, &db), CC_ERR_DB);
    assert_null(db); /* out-parameter untouched on failure */
    /* Without CC_DB_MIGRATE the file opens (tools may inspect it). */
    assert_int_equal(cc_db_open(t->path, 0, &db), CC_OK);
    cc_db_close(db);
}

static void test_db_foreign_keys_on(void **state)
{
    sqlite3 *db = NULL;

    (void)state;
    assert_int_equal(cc_db_open(":memory:", CC_DB_MIGRATE, &db), CC_OK);
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(exec_rc(db, "INSERT INTO devices (serial_number, cold_cell_id,"
                                 " api_key_hash, api_key_prefix, created_at)"
                                 " VALUES ('X', 999, 'h', 'p', 0)"),
                     SQLITE_CONSTRAINT_FOREIGNKEY);
    cc_db_close(db);
}

static void test_db_alerts_one_active_per_cell_device_type(void **state)
{
    sqlite3 *db = NULL;
    const char *active = "INSERT INTO alerts (cold_cell_id, device_id, type, status, message,"
                         " first_triggered_at, last_triggered_at)"
                         " VALUES (1, 1, 'HIGH_TEMP', 'ACTIVE', 'hot', 0, 0)";
    int ext;

    (void)state;
    assert_int_equal(cc_db_open(":memory:", CC_DB_MIGRATE, &db), CC_OK);
    insert_fixture(db);
    exec_ok(db, active);
    ext = exec_rc(db, active);
    assert_int_equal(ext, SQLITE_CONSTRAINT_UNIQUE);
    assert_int_equal(cc_db_rc(SQLITE_CONSTRAINT, ext), CC_ERR_CONFLICT);
    /* A resolved one of the same triple, and an active one of another type, are fine. */
    exec_ok(db, "INSERT INTO alerts (cold_cell_id, device_id, type, status, message,"
                " first_triggered_at, last_triggered_at, resolved_at)"
                " VALUES (1, 1, 'HIGH_TEMP', 'RESOLVED', 'hot', 0, 0, 1)");
    exec_ok(db, "INSERT INTO alerts (cold_cell_id, device_id, type, status, message,"
                " first_triggered_at, last_triggered_at)"
                " VALUES (1, 1, 'LOW_TEMP', 'ACTIVE', 'cold', 0, 0)");
    /* Once the active one is resolved, a new one may be raised. */
    exec_ok(db, "UPDATE alerts SET status = 'RESOLVED' WHERE type = 'HIGH_TEMP'");
    exec_ok(db, active);
    assert_int_equal(query_int(db, "SELECT count(*) FROM alerts WHERE type = 'HIGH_TEMP'"), 3);
    cc_db_close(db);
}

static void test_db_audit_log_append_only(void **state)
{
    sqlite3 *db = NULL;

    (void)state;
    assert_int_equal(cc_db_open(":memory:", CC_DB_MIGRATE, &db), CC_OK);
    exec_ok(db, "INSERT INTO audit_log (ts, action, entity) VALUES (1, 'create', 'user')");
    assert_int_equal(exec_rc(db, "UPDATE audit_log SET action = 'x'"), SQLITE_CONSTRAINT_TRIGGER);
    assert_int_equal(exec_rc(db, "DELETE FROM audit_log"), SQLITE_CONSTRAINT_TRIGGER);
    assert_int_equal(query_int(db, "SELECT count(*) FROM audit_log WHERE action = 'create'"), 1);
    cc_db_close(db);
}

static void test_db_readonly_cannot_write(void **state)
{
    struct tmp *t = *state;
    sqlite3 *db = NULL;
    sqlite3 *ro = NULL;
    char mode[16];

    assert_int_equal(cc_db_open(t->path, CC_DB_CREATE | CC_DB_MIGRATE, &db), CC_OK);
    insert_fixture(db);
    assert_int_equal(cc_db_open(t->path, CC_DB_READONLY, &ro), CC_OK);
    assert_int_equal(query_int(ro, "SELECT count(*) FROM devices"), 1);
    query_text(ro, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    assert_int_equal(exec_rc(ro, "DELETE FROM devices") & 0xff, SQLITE_READONLY);
    cc_db_close(ro);
    ro = NULL;
    assert_int_equal(cc_db_open(t->path, CC_DB_READONLY | CC_DB_MIGRATE, &ro), CC_ERR_DB);
    assert_null(ro);
    cc_db_close(db);
}

static void test_db_open_missing_without_create(void **state)
{
    struct tmp *t = *state;
    sqlite3 *db = NULL;

    assert_int_equal(cc_db_open(t->path, 0, &db), CC_ERR_IO);
    assert_null(db);
    assert_int_equal(cc_db_open(t->path, CC_DB_READONLY, &db), CC_ERR_IO);
    assert_null(db);
    assert_int_equal(access(t->path, F_OK), -1);
}

static void test_db_transactions(void **state)
{
    sqlite3 *db = NULL;

    (void)state;
    assert_int_equal(cc_db_open(":memory:", CC_DB_MIGRATE, &db), CC_OK);
    assert_int_equal(cc_db_begin(db), CC_OK);
    exec_ok(db, "INSERT INTO audit_log (ts, action, entity) VALUES (1, 'a', 'b')");
    cc_db_rollback(db);
    assert_int_equal(query_int(db, "SELECT count(*) FROM audit_log"), 0);
    assert_int_equal(cc_db_begin(db), CC_OK);
    assert_int_equal(cc_db_begin(db), CC_ERR_DB); /* no nesting */
    exec_ok(db, "INSERT INTO audit_log (ts, action, entity) VALUES (1, 'a', 'b')");
    assert_int_equal(cc_db_commit(db), CC_OK);
    assert_int_equal(query_int(db, "SELECT count(*) FROM audit_log"), 1);
    cc_db_rollback(db); /* outside a transaction: harmless */
    assert_int_equal(cc_db_commit(db), CC_ERR_DB);
    assert_int_equal(cc_db_exec(db, "THIS IS NOT SQL"), CC_ERR_DB);
    cc_db_close(db);
}

static void test_db_rc_mapping(void **state)
{
    (void)state;
    assert_int_equal(cc_db_rc(SQLITE_OK, SQLITE_OK), CC_OK);
    assert_int_equal(cc_db_rc(SQLITE_DONE, SQLITE_DONE), CC_OK);
    assert_int_equal(cc_db_rc(SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_UNIQUE), CC_ERR_CONFLICT);
    assert_int_equal(cc_db_rc(SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_PRIMARYKEY), CC_ERR_CONFLICT);
    assert_int_equal(cc_db_rc(SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_FOREIGNKEY), CC_ERR_DB);
    assert_int_equal(cc_db_rc(SQLITE_BUSY, SQLITE_BUSY), CC_ERR_DB);
    cc_db_close(NULL); /* a no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_latest_version_positive),
        cmocka_unit_test(test_db_migrate_memory),
        cmocka_unit_test_setup_teardown(test_db_migrate_file_creates_dirs_and_uses_wal, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_db_migrate_again_is_noop, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_db_newer_version_refused, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_db_foreign_keys_on),
        cmocka_unit_test(test_db_alerts_one_active_per_cell_device_type),
        cmocka_unit_test(test_db_audit_log_append_only),
        cmocka_unit_test_setup_teardown(test_db_readonly_cannot_write, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_db_open_missing_without_create, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test(test_db_transactions),
        cmocka_unit_test(test_db_rc_mapping),
    };

    cc_log_init("test_db", CC_LOG_ERROR, 0); /* expected failures log errors only */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
