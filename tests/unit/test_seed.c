/* test_seed.c - cc_seed: the SPEC §7 counts, credentials, keys, coherence, idempotence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_crypto.h"
#include "cc_db.h"
#include "cc_log.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_seed.h"
#include "cc_store_rollup.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "fixture.h"

#define NOW 1795671900123LL /* 2026-11-26T05:45:00.123Z */
#define DAY_MS (24LL * 3600 * 1000)
#define REPORT_MAX 8192

/* One seeded database shared by the tests that only read it. */
struct seeded {
    struct cc_store *st;
    struct cc_seed_key keys[CC_SEED_DEVICES];
    char report[REPORT_MAX];
};

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t v;

    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static struct cc_store *open_empty(void)
{
    struct fixture fx;

    assert_int_equal(fixture_open(&fx, 0, 0, NULL), CC_OK);
    return fx.st; /* in memory: the caller's cc_store_close is all fixture_close would do */
}

/* Runs cc_seed_keys and returns what it printed to the report. */
static int seed_capture(struct cc_store *st, int64_t now_ms, int *seeded,
                        struct cc_seed_key keys[CC_SEED_DEVICES], char *out, size_t outlen)
{
    FILE *f = tmpfile();
    size_t n;
    int rc;

    assert_non_null(f);
    rc = cc_seed_keys(st, now_ms, f, seeded, keys);
    rewind(f);
    n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    return rc;
}

static int group_setup(void **state)
{
    struct seeded *s = calloc(1, sizeof *s);
    int seeded = 0;

    if (s == NULL)
        return -1;
    s->st = open_empty();
    if (seed_capture(s->st, NOW, &seeded, s->keys, s->report, sizeof s->report) != CC_OK ||
        !seeded) {
        cc_store_close(s->st);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int group_teardown(void **state)
{
    struct seeded *s = *state;

    cc_store_close(s->st);
    free(s);
    return 0;
}

/* FNV-1a over every row of the tables the seed writes (and some it must not). */
static uint64_t db_checksum(sqlite3 *db)
{
    static const char *const queries[] = {
        "SELECT * FROM users ORDER BY id",
        "SELECT * FROM technician_customers ORDER BY 1, 2",
        "SELECT * FROM locations ORDER BY id",
        "SELECT * FROM cold_cells ORDER BY id",
        "SELECT * FROM devices ORDER BY id",
        "SELECT * FROM readings ORDER BY id",
        "SELECT * FROM readings_5m ORDER BY 1, 2",
        "SELECT * FROM alerts ORDER BY id",
        "SELECT * FROM notifications ORDER BY id",
        "SELECT * FROM audit_log ORDER BY id",
    };
    uint64_t h = 1469598103934665603ULL;

    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        sqlite3_stmt *stmt = NULL;

        assert_int_equal(sqlite3_prepare_v2(db, queries[q], -1, &stmt, NULL), SQLITE_OK);
        while (sqlite3_step(stmt) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(stmt); c++) {
                const unsigned char *t = sqlite3_column_text(stmt, c);

                for (; t != NULL && *t; t++)
                    h = (h ^ *t) * 1099511628211ULL;
                h = (h ^ 0x1f) * 1099511628211ULL; /* column separator */
            }
        }
        sqlite3_finalize(stmt);
    }
    return h;
}

static void test_seed_counts_match_spec(void **state)
{
    struct seeded *s = *state;
    sqlite3 *db = cc_store_db(s->st);

    assert_int_equal(query_int(db, "SELECT count(*) FROM users"), 4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM users WHERE role = 'TECHNICIAN'"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM users WHERE role = 'CUSTOMER'"), 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM users WHERE role = 'ADMIN'"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM technician_customers"), 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM technician_customers tc "
                                   "JOIN users t ON t.id = tc.technician_id "
                                   "JOIN users c ON c.id = tc.customer_id "
                                   "WHERE t.email = 'tech@example.com' AND c.role = 'CUSTOMER'"),
                     2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM locations"), 3);
    assert_int_equal(query_int(db, "SELECT count(*) FROM locations l JOIN users u "
                                   "ON u.id = l.customer_id WHERE u.email = "
                                   "'customer1@example.com'"),
                     2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM locations l JOIN users u "
                                   "ON u.id = l.customer_id WHERE u.email = "
                                   "'customer2@example.com'"),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM cold_cells"), 4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM cold_cells WHERE min_temp = -25 AND "
                                   "max_temp = -15 AND hysteresis = 0.5"),
                     2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM cold_cells WHERE min_temp = 2 AND "
                                   "max_temp = 8 AND hysteresis = 0.5"),
                     2);
    /* customer1: a freezer and a fridge in one location, a fridge in the other. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM cold_cells c JOIN locations l ON "
                                   "l.id = c.location_id JOIN users u ON u.id = l.customer_id "
                                   "WHERE u.email = 'customer1@example.com'"),
                     3);
    assert_int_equal(query_int(db, "SELECT count(DISTINCT location_id) FROM cold_cells "
                                   "WHERE min_temp = 2"),
                     2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices"), 4);
    assert_int_equal(query_int(db, "SELECT count(DISTINCT cold_cell_id) FROM devices"), 4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings"), 288);
    assert_int_equal(query_int(db, "SELECT count(*) FROM (SELECT device_id FROM readings "
                                   "GROUP BY device_id HAVING count(*) = 72)"),
                     4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM alerts"), 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM alerts WHERE status = 'RESOLVED' "
                                   "AND resolved_at IS NOT NULL AND resolved_by IS NULL"),
                     2);
    assert_int_equal(query_int(db, "SELECT count(DISTINCT type) FROM alerts"), 2);
    assert_int_equal(query_int(db, "SELECT sum(count) FROM readings_5m"), 288);
}

static void test_seed_readings_cover_last_24h(void **state)
{
    struct seeded *s = *state;
    sqlite3 *db = cc_store_db(s->st);
    int64_t newest = query_int(db, "SELECT max(ts) FROM readings");

    assert_true(newest <= NOW);
    assert_true(newest > NOW - CC_SEED_READING_INTERVAL_MS);
    assert_true(query_int(db, "SELECT min(ts) FROM readings") >= NOW - DAY_MS);
    /* One every 20 minutes: every gap between a device's readings is exactly 20 min. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings a JOIN readings b ON "
                                   "b.device_id = a.device_id AND b.ts = a.ts + 1200000"),
                     4 * 71);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings r JOIN devices d ON "
                                   "d.id = r.device_id WHERE r.cold_cell_id != d.cold_cell_id"),
                     0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings WHERE humidity NOT BETWEEN 0 "
                                   "AND 100 OR battery_level NOT BETWEEN 0 AND 100 OR "
                                   "received_at < ts"),
                     0);
}

static void test_seed_devices_online_with_newest(void **state)
{
    struct seeded *s = *state;
    sqlite3 *db = cc_store_db(s->st);

    assert_int_equal(query_int(db, "SELECT count(*) FROM devices WHERE status = 'ONLINE'"), 4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices d WHERE "
                                   "d.last_seen_at = (SELECT max(ts) FROM readings r WHERE "
                                   "r.device_id = d.id) AND d.newest_ts = d.last_seen_at"),
                     4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices WHERE length(api_key_hash) = "
                                   "64 AND length(api_key_prefix) = 8"),
                     4);
}

/* Readings stay inside the cell's range except during the HIGH_TEMP alert, and mains
 * power is off only during the POWER_LOSS alert. */
static void test_seed_alerts_match_readings(void **state)
{
    struct seeded *s = *state;
    sqlite3 *db = cc_store_db(s->st);

    assert_int_equal(query_int(db, "SELECT count(*) FROM readings r JOIN cold_cells c ON "
                                   "c.id = r.cold_cell_id WHERE (r.temperature > c.max_temp "
                                   "OR r.temperature < c.min_temp) AND NOT EXISTS (SELECT 1 "
                                   "FROM alerts a WHERE a.type = 'HIGH_TEMP' AND a.device_id = "
                                   "r.device_id AND r.ts BETWEEN a.first_triggered_at AND "
                                   "a.last_triggered_at)"),
                     0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings r JOIN alerts a ON "
                                   "a.device_id = r.device_id AND a.type = 'HIGH_TEMP' AND "
                                   "r.ts BETWEEN a.first_triggered_at AND a.last_triggered_at "
                                   "JOIN cold_cells c ON c.id = r.cold_cell_id "
                                   "WHERE r.temperature > c.max_temp"),
                     query_int(db, "SELECT trigger_count FROM alerts WHERE type = "
                                   "'HIGH_TEMP'"));
    /* The HIGH_TEMP value is that of its last trigger; it cleared below max - hysteresis. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM alerts a JOIN readings r ON "
                                   "r.device_id = a.device_id AND r.ts = a.last_triggered_at "
                                   "WHERE a.type = 'HIGH_TEMP' AND r.temperature = a.value"),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM alerts a JOIN readings r ON "
                                   "r.device_id = a.device_id AND r.ts = a.resolved_at "
                                   "JOIN cold_cells c ON c.id = a.cold_cell_id "
                                   "WHERE a.type = 'HIGH_TEMP' AND a.threshold = c.max_temp "
                                   "AND r.temperature <= c.max_temp - c.hysteresis"),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings r WHERE power_status = 0 AND "
                                   "NOT EXISTS (SELECT 1 FROM alerts a WHERE a.type = "
                                   "'POWER_LOSS' AND a.device_id = r.device_id AND r.ts "
                                   "BETWEEN a.first_triggered_at AND a.last_triggered_at)"),
                     0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM alerts a JOIN readings r ON "
                                   "r.device_id = a.device_id AND r.ts = a.resolved_at "
                                   "WHERE a.type = 'POWER_LOSS' AND r.power_status = 1"),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM alerts a JOIN devices d ON "
                                   "d.id = a.device_id WHERE d.cold_cell_id = a.cold_cell_id "
                                   "AND a.first_triggered_at <= a.last_triggered_at AND "
                                   "a.last_triggered_at < a.resolved_at AND a.resolved_at <= "
                                   "d.newest_ts"),
                     2);
}

static void test_seed_passwords_verify(void **state)
{
    static const char *const creds[][2] = {
        {"tech@example.com", "technician123"},
        {"customer1@example.com", "customer123"},
        {"customer2@example.com", "customer123"},
        {"admin@example.com", "admin123"},
    };
    struct seeded *s = *state;
    sqlite3 *db = cc_store_db(s->st);

    for (size_t i = 0; i < sizeof creds / sizeof creds[0]; i++) {
        sqlite3_stmt *stmt = NULL;

        assert_int_equal(sqlite3_prepare_v2(db, "SELECT password_hash FROM users WHERE email = ?1",
                                            -1, &stmt, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(stmt, 1, creds[i][0], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
        assert_int_equal(
            cc_password_verify(creds[i][1], (const char *)sqlite3_column_text(stmt, 0)), CC_OK);
        if (i == 0)
            assert_int_equal(
                cc_password_verify("customer123", (const char *)sqlite3_column_text(stmt, 0)),
                CC_ERR_INVALID_CREDENTIALS);
        sqlite3_finalize(stmt);
    }
}

/* Every key is returned, printed once in the report, and matches its stored hash. */
static void test_seed_keys_reported_and_match_hashes(void **state)
{
    struct seeded *s = *state;
    sqlite3 *db = cc_store_db(s->st);

    for (int d = 0; d < CC_SEED_DEVICES; d++) {
        const struct cc_seed_key *k = &s->keys[d];
        sqlite3_stmt *stmt = NULL;
        const char *hit;

        assert_int_equal(strlen(k->key), CC_API_KEY_LEN - 1);
        assert_true(cc_provision_serial_valid(k->serial));
        hit = strstr(s->report, k->key);
        assert_non_null(hit);
        assert_null(strstr(hit + 1, k->key)); /* once */
        assert_non_null(strstr(s->report, k->serial));
        assert_non_null(strstr(s->report, k->cell_name));

        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT api_key_hash, serial_number, cold_cell_id "
                                            "FROM devices WHERE id = ?1",
                                            -1, &stmt, NULL),
                         SQLITE_OK);
        sqlite3_bind_int64(stmt, 1, k->device_id);
        assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
        assert_int_equal(cc_api_key_matches(k->key, (const char *)sqlite3_column_text(stmt, 0)), 1);
        assert_string_equal((const char *)sqlite3_column_text(stmt, 1), k->serial);
        assert_int_equal(sqlite3_column_int64(stmt, 2), k->cold_cell_id);
        sqlite3_finalize(stmt);
    }
    assert_string_not_equal(s->keys[0].key, s->keys[1].key);
}

static void test_seed_second_run_changes_nothing(void **state)
{
    struct cc_store *st = open_empty();
    char report[REPORT_MAX];
    int seeded = -1;
    uint64_t before;

    (void)state;
    assert_int_equal(cc_seed(st, NOW, NULL, &seeded), CC_OK);
    assert_int_equal(seeded, 1);
    before = db_checksum(cc_store_db(st));

    seeded = -1;
    assert_int_equal(seed_capture(st, NOW + 3600000, &seeded, NULL, report, sizeof report), CC_OK);
    assert_int_equal(seeded, 0);
    assert_string_equal(report, ""); /* no new keys printed */
    assert_true(db_checksum(cc_store_db(st)) == before);
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM readings"), 288);
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM users"), 4);
    cc_store_close(st);
}

static void test_seed_skips_database_with_any_user(void **state)
{
    struct cc_store *st = open_empty();
    sqlite3 *db = cc_store_db(st);
    int seeded = -1;
    uint64_t before;

    (void)state;
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO users (email, password_hash, role, name, "
                                  "created_at) VALUES ('boss@example.com', 'x', 'ADMIN', "
                                  "'Boss', 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    before = db_checksum(db);
    assert_int_equal(cc_seed(st, NOW, NULL, &seeded), CC_OK);
    assert_int_equal(seeded, 0);
    assert_true(db_checksum(db) == before);
    assert_int_equal(query_int(db, "SELECT count(*) FROM locations"), 0);
    cc_store_close(st);
}

/* The readings come from a fixed-seed PRNG: two seeds at the same now agree. */
static void test_seed_readings_deterministic(void **state)
{
    struct seeded *s = *state;
    struct cc_store *st = open_empty();
    int seeded = 0;
    const char *sql = "SELECT sum(ts % 1000003 * temperature), sum(humidity), "
                      "sum(door_status), sum(battery_level) FROM readings";
    sqlite3_stmt *a = NULL, *b = NULL;

    assert_int_equal(cc_seed(st, NOW, NULL, &seeded), CC_OK);
    assert_int_equal(seeded, 1);
    assert_int_equal(sqlite3_prepare_v2(cc_store_db(s->st), sql, -1, &a, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(cc_store_db(st), sql, -1, &b, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(a), SQLITE_ROW);
    assert_int_equal(sqlite3_step(b), SQLITE_ROW);
    for (int c = 0; c < 4; c++)
        assert_true(sqlite3_column_double(a, c) == sqlite3_column_double(b, c));
    sqlite3_finalize(a);
    sqlite3_finalize(b);
    cc_store_close(st);
}

/* The seed writes its readings through the store's insert, so their rollups are the ingest
 * path's: equal, row for row, to a rebuild from the raw readings. */
static void test_seed_rollups_equal_rebuild(void **state)
{
    struct seeded *s = *state;
    sqlite3 *db = cc_store_db(s->st);
    static const char *const tables[] = {"readings_5m", "readings_30m"};
    char sql[256];

    for (int t = 0; t < 2; t++) {
        snprintf(sql, sizeof sql, "CREATE TEMP TABLE seeded_%s AS SELECT * FROM %s", tables[t],
                 tables[t]);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(cc_store_rollup_rebuild(db, 0), CC_OK);
    for (int t = 0; t < 2; t++) {
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT count(*) FROM (SELECT * FROM seeded_%s EXCEPT SELECT * FROM %s))"
                 " + (SELECT count(*) FROM (SELECT * FROM %s EXCEPT SELECT * FROM seeded_%s))",
                 tables[t], tables[t], tables[t], tables[t]);
        assert_int_equal(query_int(db, sql), 0);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[t]);
        assert_true(query_int(db, sql) > 0);
    }
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_counts_match_spec),
        cmocka_unit_test(test_seed_readings_cover_last_24h),
        cmocka_unit_test(test_seed_devices_online_with_newest),
        cmocka_unit_test(test_seed_alerts_match_readings),
        cmocka_unit_test(test_seed_passwords_verify),
        cmocka_unit_test(test_seed_keys_reported_and_match_hashes),
        cmocka_unit_test(test_seed_second_run_changes_nothing),
        cmocka_unit_test(test_seed_skips_database_with_any_user),
        cmocka_unit_test(test_seed_readings_deterministic),
        cmocka_unit_test(test_seed_rollups_equal_rebuild),
    };

    cc_log_init("test_seed", CC_LOG_ERROR, 0);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
