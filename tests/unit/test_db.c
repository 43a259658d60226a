/* test_db.c - cc_db: opening, pragmas, migrations and the schema's own guarantees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
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
    assert_int_equal(query_int(db, "PRAGMA cache_size"), -8192);
    cc_db_close(db);
}

struct holder {
    sqlite3 *db;
    long hold_ms;
};

static void *hold_then_commit(void *arg)
{
    struct holder *h = arg;
    struct timespec ts = {0, h->hold_ms * 1000000L};

    nanosleep(&ts, NULL);
    cc_db_commit(h->db);
    return NULL;
}

/* Every connection waits for a lock another one holds (cc_db.c busy_poll) instead of
 * failing with SQLITE_BUSY at once, and gives up after CC_DB_BUSY_TIMEOUT_MS. */
static void test_db_waits_for_a_held_lock(void **state)
{
    struct tmp *t = *state;
    sqlite3 *a = NULL, *b = NULL;
    struct holder h;
    pthread_t th;
    struct timespec t0, t1;
    long waited_ms;

    assert_int_equal(cc_db_open(t->path, CC_DB_CREATE | CC_DB_MIGRATE, &a), CC_OK);
    assert_int_equal(cc_db_open(t->path, 0, &b), CC_OK);
    assert_int_equal(cc_db_begin(a), CC_OK);
    h.db = a;
    h.hold_ms = 60;
    assert_int_equal(pthread_create(&th, NULL, hold_then_commit, &h), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(cc_db_begin(b), CC_OK); /* waits for a's commit */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(th, NULL);
    waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(waited_ms >= 30);
    assert_int_equal(cc_db_commit(b), CC_OK);
    cc_db_close(b);
    cc_db_close(a);
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

/* A database of schema version v, as the releases before migration v + 1 left it. */
static sqlite3 *open_at(int v)
{
    sqlite3 *db = NULL;
    char pragma[48];

    assert_int_equal(cc_db_open(":memory:", 0, &db), CC_OK);
    exec_ok(db, "PRAGMA foreign_keys=OFF"); /* as cc_db_migrate runs them */
    for (int i = 0; i < cc_migrations_count && cc_migrations[i].version <= v; i++) {
        exec_ok(db, "BEGIN");
        exec_ok(db, cc_migrations[i].sql);
        exec_ok(db, "COMMIT");
    }
    exec_ok(db, "PRAGMA foreign_keys=ON");
    snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", v);
    exec_ok(db, pragma);
    return db;
}

static sqlite3 *open_v5(void)
{
    return open_at(5);
}

/* Every schema object as text, in name order, with what migrations 0006 and 0007 are
 * allowed to change taken out: AUTOINCREMENT, the quotes ALTER TABLE RENAME puts around a
 * table's name, the columns and the alert event they add, and the objects they add; the
 * two alert-counting triggers 0012 drops and deliveries_count_update, which 0013 rewrites;
 * and what 0010 and 0011 change put back as it was (later). What is left must be identical. */
/* s with every from replaced by to; s is freed. */
static char *replace_all(char *s, const char *from, const char *to)
{
    size_t nf = strlen(from), nt = strlen(to), n = 0;
    char *out, *o;

    for (const char *p = strstr(s, from); p != NULL; p = strstr(p + nf, from))
        n++;
    out = malloc(strlen(s) + n * nt + 1);
    assert_non_null(out);
    o = out;
    for (const char *p = s, *q; *p != '\0'; p = q + nf) {
        q = strstr(p, from);
        if (q == NULL) {
            strcpy(o, p);
            o += strlen(p);
            break;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, nt);
        o += nt;
    }
    *o = '\0';
    free(s);
    return out;
}

/* What later migrations change in the objects 0006 and 0007 made, and what it was: 0010
 * makes the due indexes partial, 0011 writes the CHECKs' IN lists as comparisons. */
static const char *const later[][2] = {
    {"notifications (next_attempt_at) WHERE status = 'PENDING'",
     "notifications (status, next_attempt_at)"},
    {"alert_events (next_attempt_at) WHERE status = 'PENDING'",
     "alert_events (status, next_attempt_at)"},
    {"status = 'ONLINE' OR status = 'OFFLINE' OR status = 'NEVER_SEEN'",
     "status IN ('ONLINE', 'OFFLINE', 'NEVER_SEEN')"},
    {"type = 'HIGH_TEMP' OR type = 'LOW_TEMP' OR type = 'POWER_LOSS' OR type = 'SENSOR_ERROR'",
     "type IN ('HIGH_TEMP', 'LOW_TEMP', 'POWER_LOSS', 'SENSOR_ERROR')"},
    {"kind = 'ALERT' OR kind = 'ALERT_RESOLVED' OR kind = 'ESCALATION' OR kind = 'DAILY_REPORT'"
     " OR kind = 'SYSTEM'",
     "kind IN ('ALERT', 'ALERT_RESOLVED', 'ESCALATION', 'DAILY_REPORT', 'SYSTEM')"},
    {"status = 'PENDING' OR status = 'SENT' OR status = 'FAILED'",
     "status IN ('PENDING', 'SENT', 'FAILED')"},
    {"event = 'CREATED' OR event = 'ESCALATED' OR event = 'RESOLVED' OR event = 'ACKNOWLEDGED'",
     "event IN ('CREATED', 'ESCALATED', 'RESOLVED')"},
    {"channel = 'mqtt' OR channel = 'webhook' OR channel = 'email'",
     "channel IN ('mqtt', 'webhook', 'email')"},
};

static char *schema_text(sqlite3 *db)
{
    static const char sql[] =
        "SELECT group_concat(x, char(10) || '~~' || char(10)) FROM ("
        " SELECT type || ' ' || name || ': ' || replace(replace(replace(replace(replace(sql,"
        "  ' AUTOINCREMENT', ''), ', ''ACKNOWLEDGED''', ''),"
        "  'CREATE TABLE \"' || name || '\"', 'CREATE TABLE ' || name),"
        "  ',' || char(10) || '    token_version INTEGER NOT NULL DEFAULT 0', ''),"
        "  ', device_id INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0', '') AS x"
        " FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT IN ('sqlite_sequence',"
        "  'users_password_changed', 'rejected_messages_device_seq',"
        "  'alert_events_count_update', 'ingest_checkpoints', 'leases',"
        "  'alerts_count_raised', 'alerts_count_resolved', 'deliveries_count_update')"
        " ORDER BY type, name)";
    sqlite3_stmt *stmt = NULL;
    char *out;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    out = strdup((const char *)sqlite3_column_text(stmt, 0));
    assert_non_null(out);
    sqlite3_finalize(stmt);
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
        out = replace_all(out, later[i][0], later[i][1]);
    return out;
}

/* Rows of every table a v5 database can hold, ids with gaps (user 4 was deleted, and
 * only the audit log remembers it). */
static void insert_v5_data(sqlite3 *db)
{
    exec_ok(db, "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
                " (1, 't@example.com', 'h1', 'TECHNICIAN', 'T', 10),"
                " (2, 'c@example.com', 'h2', 'CUSTOMER', 'C', 20),"
                " (3, 'a@example.com', 'h3', 'ADMIN', 'A', 30);"
                "INSERT INTO audit_log (ts, actor_user_id, action, entity, entity_id) VALUES"
                " (40, 3, 'create', 'user', 4), (41, 3, 'delete', 'user', 4),"
                " (42, 2, 'create', 'device', 9);"
                "INSERT INTO technician_customers VALUES (1, 2);"
                "INSERT INTO locations (id, customer_id, name, created_at) VALUES (5, 2, 'L', 0);"
                "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at)"
                " VALUES (6, 5, 'F', -25, -15, 0);"
                "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
                " api_key_prefix, created_at) VALUES (7, 'SN7', 6, 'k', 'p', 0);"
                "INSERT INTO readings (device_id, cold_cell_id, ts, temperature, received_at)"
                " VALUES (7, 6, 1000, -18.5, 1001), (7, 6, 2000, -10, 2001);"
                "INSERT INTO alerts (id, cold_cell_id, device_id, type, status, message,"
                " first_triggered_at, last_triggered_at, acknowledged_by, resolved_by)"
                " VALUES (8, 6, 7, 'HIGH_TEMP', 'RESOLVED', 'hot', 2000, 2000, 1, 3);"
                "INSERT INTO alert_events (alert_id, cold_cell_id, event, payload,"
                " next_attempt_at, created_at) VALUES (8, 6, 'CREATED', '{}', 0, 0);"
                "INSERT INTO notifications (id, user_id, alert_id, kind, channel, payload,"
                " next_attempt_at, created_at) VALUES (11, 2, 8, 'ALERT', 'inbox', '{}', 0, 0);"
                "INSERT INTO notification_deliveries (notification_id, channel, next_attempt_at)"
                " VALUES (11, 'webhook', 0);"
                "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at,"
                " expires_at) VALUES (12, 2, 'fam', 'hash', 0, 99);"
                "INSERT INTO daily_reports (customer_id, day, payload, created_at)"
                " VALUES (2, '2026-01-01', '{}', 0);"
                "INSERT INTO alert_pending VALUES (7, 'LOW_TEMP', 5);"
                "INSERT INTO rejected_messages (received_at, topic, payload, payload_size,"
                " error_code, error_message) VALUES"
                " (1, 'devices/SN7/readings', x'00', 1, 'BAD_JSON', 'm'),"
                " (2, 'devices/GONE/readings', x'00', 1, 'NOT_FOUND', 'm'),"
                " (3, 'devices/SN7/status', x'00', 1, 'BAD_JSON', 'm'),"
                " (4, 'other', x'00', 1, 'VALIDATION_ERROR', 'm');");
}

static void test_db_0006_rebuild_keeps_schema_and_data(void **state)
{
    sqlite3 *db = open_v5();
    char *before, *after;
    int v = 0;

    (void)state;
    insert_v5_data(db);
    before = schema_text(db);
    assert_int_equal(cc_db_migrate(db), CC_OK);
    assert_int_equal(cc_db_user_version(db, &v), CC_OK);
    assert_int_equal(v, cc_db_latest_version());
    after = schema_text(db);
    assert_string_equal(before, after); /* every index, trigger, constraint and CHECK */
    free(before);
    free(after);
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1); /* back on */
    assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    {
        char ok[16];
        query_text(db, "PRAGMA integrity_check", ok, sizeof ok);
        assert_string_equal(ok, "ok");
    }
    /* AUTOINCREMENT on every table whose id is in a token or a URL. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND"
                                   " sql LIKE '%AUTOINCREMENT%' AND name IN ('users', 'locations',"
                                   " 'cold_cells', 'devices', 'alerts', 'notifications',"
                                   " 'refresh_tokens')"),
                     7);
    /* Data preserved, foreign keys intact: nothing cascaded away. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM users"), 3);
    assert_int_equal(query_int(db, "SELECT count(*) FROM technician_customers"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings WHERE device_id = 7"), 2);
    assert_int_equal(query_int(db, "SELECT acknowledged_by * 10 + resolved_by FROM alerts"
                                   " WHERE id = 8"),
                     13);
    assert_int_equal(query_int(db, "SELECT count(*) FROM alert_events WHERE alert_id = 8"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM notification_deliveries"), 1);
    assert_int_equal(query_int(db, "SELECT alert_id FROM notifications WHERE id = 11"), 8);
    assert_int_equal(query_int(db, "SELECT expires_at FROM refresh_tokens WHERE id = 12"), 99);
    assert_int_equal(query_int(db, "SELECT count(*) FROM daily_reports"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM alert_pending"), 1);
    assert_int_equal(query_int(db, "SELECT sum(token_version) FROM users"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM stat_counters"
                                   " WHERE name = 'rejected_dropped'"),
                     1);
    /* Dead letters: the device the topic names (0 for none known), seq per device. */
    {
        char dl[64];
        query_text(db,
                   "SELECT group_concat(x, ',') FROM (SELECT device_id || ':' || seq AS x"
                   " FROM rejected_messages ORDER BY id)",
                   dl, sizeof dl);
        assert_string_equal(dl, "7:1,0:1,7:2,0:2");
    }
    /* Ids are never reused: not the newest id deleted before the migration (the audit
     * log's user 4), nor one deleted after. */
    exec_ok(db, "INSERT INTO users (email, password_hash, role, name, created_at)"
                " VALUES ('n@example.com', 'h', 'ADMIN', 'N', 50)");
    assert_int_equal(query_int(db, "SELECT max(id) FROM users"), 5);
    exec_ok(db, "DELETE FROM users WHERE id = 5");
    exec_ok(db, "INSERT INTO users (email, password_hash, role, name, created_at)"
                " VALUES ('m@example.com', 'h', 'ADMIN', 'M', 60)");
    assert_int_equal(query_int(db, "SELECT max(id) FROM users"), 6);
    exec_ok(db, "INSERT INTO devices (serial_number, cold_cell_id, api_key_hash,"
                " api_key_prefix, created_at) VALUES ('SN-NEW', 6, 'k', 'p', 0)");
    assert_int_equal(query_int(db, "SELECT id FROM devices WHERE serial_number = 'SN-NEW'"), 10);
    exec_ok(db, "DELETE FROM alerts WHERE id = 8");
    exec_ok(db, "INSERT INTO alerts (cold_cell_id, device_id, type, message, first_triggered_at,"
                " last_triggered_at) VALUES (6, 7, 'LOW_TEMP', 'cold', 0, 0)");
    assert_int_equal(query_int(db, "SELECT max(id) FROM alerts"), 9);
    /* The cascades still work after the rebuild. */
    exec_ok(db, "DELETE FROM users WHERE id = 2");
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM refresh_tokens"), 0);
    cc_db_close(db);
}

static void test_db_password_change_bumps_token_version(void **state)
{
    sqlite3 *db = NULL;

    (void)state;
    assert_int_equal(cc_db_open(":memory:", CC_DB_MIGRATE, &db), CC_OK);
    insert_fixture(db);
    exec_ok(db, "INSERT INTO refresh_tokens (user_id, family_id, token_hash, created_at,"
                " expires_at) VALUES (1, 'f', 'a', 0, 9e15), (1, 'f', 'b', 0, 9e15);"
                "UPDATE refresh_tokens SET revoked_at = 5 WHERE token_hash = 'b'");
    /* Naming the column without changing it (coalesce(NULL, password_hash)) is no change. */
    exec_ok(db, "UPDATE users SET password_hash = coalesce(NULL, password_hash), name = 'N'");
    assert_int_equal(query_int(db, "SELECT token_version FROM users WHERE id = 1"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"),
                     1);
    exec_ok(db, "UPDATE users SET password_hash = 'new' WHERE id = 1");
    assert_int_equal(query_int(db, "SELECT token_version FROM users WHERE id = 1"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"),
                     0);
    assert_int_equal(query_int(db, "SELECT revoked_at FROM refresh_tokens WHERE token_hash = 'b'"),
                     5); /* an earlier revocation is kept */
    assert_true(query_int(db, "SELECT revoked_at FROM refresh_tokens WHERE token_hash = 'a'") >
                1700000000000LL);
    exec_ok(db, "UPDATE users SET password_hash = 'newer' WHERE id = 1");
    assert_int_equal(query_int(db, "SELECT token_version FROM users WHERE id = 1"), 2);
    cc_db_close(db);
}

static void test_db_migration_refuses_broken_foreign_keys(void **state)
{
    sqlite3 *db = open_v5();
    int v = 0;

    (void)state;
    /* A child row whose parent is gone (written with foreign keys off): the migration
     * must not commit a schema over it. */
    exec_ok(db, "PRAGMA foreign_keys=OFF");
    exec_ok(db, "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 99, 'L', 0)");
    exec_ok(db, "PRAGMA foreign_keys=ON");
    assert_int_equal(cc_db_migrate(db), CC_ERR_DB);
    assert_int_equal(cc_db_user_version(db, &v), CC_OK);
    assert_int_equal(v, 5);
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_table_info('users')"
                                   " WHERE name = 'token_version'"),
                     0); /* rolled back */
    cc_db_close(db);
}

/* Migration 0007 (MQTT carries alert events only): the mqtt deliveries still queued at
 * upgrade are dropped and their notifications made due (the worker recomputes them), the
 * sent ones kept; alert_events keeps its rows and takes ACKNOWLEDGED; alert events count
 * as the mqtt channel's deliveries from then on. */
static void test_db_0007_alerts_only_over_mqtt(void **state)
{
    sqlite3 *db = open_at(6);
    int v = 0;

    (void)state;
    insert_v5_data(db); /* notification 11: a PENDING webhook delivery; alert event CREATED */
    exec_ok(db, "INSERT INTO notifications (id, user_id, alert_id, kind, channel, payload,"
                " status, next_attempt_at, created_at) VALUES"
                " (13, 2, 8, 'ALERT_RESOLVED', 'inbox', '{}', 'PENDING', 500, 0),"
                " (14, 1, 8, 'ALERT', 'inbox', '{}', 'SENT', 0, 0);"
                "UPDATE notifications SET status = 'PENDING', next_attempt_at = 700 WHERE id = 11;"
                "INSERT INTO notification_deliveries (notification_id, channel, status,"
                " next_attempt_at) VALUES (11, 'mqtt', 'PENDING', 700),"
                " (13, 'mqtt', 'PENDING', 500), (13, 'email', 'SENT', 600),"
                " (14, 'mqtt', 'SENT', 0);");
    assert_int_equal(cc_db_migrate(db), CC_OK);
    assert_int_equal(cc_db_user_version(db, &v), CC_OK);
    assert_int_equal(v, cc_db_latest_version());
    assert_int_equal(query_int(db, "SELECT count(*) FROM notification_deliveries WHERE"
                                   " channel = 'mqtt' AND status = 'PENDING'"),
                     0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM notification_deliveries"), 3);
    assert_int_equal(query_int(db, "SELECT count(*) FROM notification_deliveries WHERE"
                                   " notification_id = 14 AND channel = 'mqtt'"),
                     1);
    assert_int_equal(query_int(db, "SELECT sum(next_attempt_at) FROM notifications"
                                   " WHERE id IN (11, 13)"),
                     0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM alert_events WHERE alert_id = 8 AND"
                                   " event = 'CREATED' AND payload = '{}'"),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    exec_ok(db, "INSERT INTO alert_events (alert_id, cold_cell_id, event, payload,"
                " next_attempt_at, created_at) VALUES (8, 6, 'ACKNOWLEDGED', '{}', 0, 0)");
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO alert_events (alert_id, cold_cell_id, event,"
                                  " payload, next_attempt_at, created_at)"
                                  " VALUES (8, 6, 'SNOOZED', '{}', 0, 0)",
                                  NULL, NULL, NULL),
                     SQLITE_CONSTRAINT_CHECK);
    exec_ok(db, "UPDATE alert_events SET status = 'SENT';"
                "UPDATE alert_events SET status = 'SENT';" /* no change: counted once */
                "UPDATE alert_events SET status = 'FAILED' WHERE event = 'ACKNOWLEDGED'");
    /* notification 14's delivery (counted by 0004); not the two events: since 0012 the
     * delivery worker counts the events it sends (cc_notify_deliver.c), no trigger does */
    assert_int_equal(query_int(db, "SELECT value FROM stat_counters WHERE"
                                   " name = 'deliveries_sent' AND label = 'mqtt'"),
                     1);
    assert_int_equal(query_int(db, "SELECT value FROM stat_counters WHERE"
                                   " name = 'deliveries_failed' AND label = 'mqtt'"),
                     0);
    exec_ok(db, "DELETE FROM alerts WHERE id = 8"); /* the cascade still reaches the events */
    assert_int_equal(query_int(db, "SELECT count(*) FROM alert_events"), 0);
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
        cmocka_unit_test_setup_teardown(test_db_waits_for_a_held_lock, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_db_newer_version_refused, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_db_foreign_keys_on),
        cmocka_unit_test(test_db_alerts_one_active_per_cell_device_type),
        cmocka_unit_test(test_db_audit_log_append_only),
        cmocka_unit_test_setup_teardown(test_db_readonly_cannot_write, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_db_open_missing_without_create, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test(test_db_transactions),
        cmocka_unit_test(test_db_rc_mapping),
        cmocka_unit_test(test_db_0006_rebuild_keeps_schema_and_data),
        cmocka_unit_test(test_db_0007_alerts_only_over_mqtt),
        cmocka_unit_test(test_db_password_change_bumps_token_version),
        cmocka_unit_test(test_db_migration_refuses_broken_foreign_keys),
    };

    cc_log_init("test_db", CC_LOG_ERROR, 0); /* expected failures log errors only */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
