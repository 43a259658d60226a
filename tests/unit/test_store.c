/* test_store.c - cc_store on SQLite: devices, readings, dead letters, checkpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_db.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_retention.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "fixture.h"

#define T0 1764135900000LL /* 2025-11-26T05:45:00.000Z */

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
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

static int query_is_null(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int v;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_type(stmt, 0) == SQLITE_NULL;
    sqlite3_finalize(stmt);
    return v;
}

static void query_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *stmt = NULL;
    const char *s;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    s = (const char *)sqlite3_column_text(stmt, 0);
    snprintf(out, outlen, "%s", s != NULL ? s : "(null)");
    sqlite3_finalize(stmt);
}

static void insert_fixture(sqlite3 *db)
{
    exec_ok(db, "INSERT INTO users (id, email, password_hash, role, name, created_at)"
                " VALUES (1, 'c@example.com', 'x', 'CUSTOMER', 'C', 0);"
                "INSERT INTO locations (id, customer_id, name, created_at)"
                " VALUES (1, 1, 'L', 0);"
                "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at)"
                " VALUES (3, 1, 'Fridge', 2, 8, 0);"
                "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
                " api_key_prefix, created_at) VALUES (5, 'SN-1', 3, 'h', 'p', 0);");
}

static struct fixture fx; /* cmocka runs one test at a time */

static int store_setup(void **state)
{
    if (fixture_open(&fx, 0, 0, NULL) != CC_OK)
        return -1;
    insert_fixture(cc_store_db(fx.st));
    *state = fx.st;
    return 0;
}

static int store_teardown(void **state)
{
    (void)state;
    fixture_close(&fx);
    return 0;
}

static struct cc_device device(struct cc_store *st)
{
    struct cc_device d;

    assert_int_equal(cc_store_device_by_serial(st, "SN-1", &d), CC_OK);
    return d;
}

static struct cc_reading reading(int64_t ts, double t)
{
    struct cc_reading r;

    memset(&r, 0, sizeof r);
    r.ts_ms = ts;
    r.ts_given = 1;
    r.temperature = t;
    r.power_status = CC_ABSENT;
    r.door_status = CC_ABSENT;
    return r;
}

static void test_store_device_by_serial(void **state)
{
    struct cc_store *st = *state;
    struct cc_device d;

    memset(&d, 0x55, sizeof d);
    assert_int_equal(cc_store_device_by_serial(st, "SN-1", &d), CC_OK);
    assert_int_equal(d.id, 5);
    assert_int_equal(d.cold_cell_id, 3);
    assert_string_equal(d.serial, "SN-1");
    assert_string_equal(d.status, "NEVER_SEEN");
    assert_int_equal(d.has_newest, 0);

    memset(&d, 0x55, sizeof d);
    assert_int_equal(cc_store_device_by_serial(st, "SN-2", &d), CC_ERR_NOT_FOUND);
    assert_int_equal(d.id, 0x5555555555555555LL); /* untouched */
    assert_int_equal(cc_store_device_by_serial(st, "sn-1", &d), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_store_device_by_serial(st, "", &d), CC_ERR_NOT_FOUND);
}

static void test_store_reading_duplicate_stored_once(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    struct cc_device d = device(st);
    struct cc_reading r = reading(T0, 4.25);
    int inserted = -1;

    r.has_humidity = 1;
    r.humidity = 55.5;
    r.power_status = CC_FALSE;
    r.door_status = CC_TRUE;
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_store_reading_insert(st, &d, &r, T0 + 10, &inserted), CC_OK);
    assert_int_equal(inserted, 1);
    r.temperature = 9.0; /* a redelivery with the same ts keeps the first row */
    assert_int_equal(cc_store_reading_insert(st, &d, &r, T0 + 20, &inserted), CC_OK);
    assert_int_equal(inserted, 0);
    r.ts_ms = T0 + 1;
    assert_int_equal(cc_store_reading_insert(st, &d, &r, T0 + 20, &inserted), CC_OK);
    assert_int_equal(inserted, 1);
    assert_int_equal(cc_store_commit(st), CC_OK);

    assert_int_equal(query_int(db, "SELECT count(*) FROM readings"), 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings WHERE ts = 1764135900000"
                                   " AND temperature = 4.25 AND humidity = 55.5"
                                   " AND power_status = 0 AND door_status = 1"
                                   " AND battery_level IS NULL AND received_at = 1764135900010"
                                   " AND device_id = 5 AND cold_cell_id = 3"),
                     1);
}

static void test_store_reading_absent_fields_are_null(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    struct cc_device d = device(st);
    struct cc_reading r = reading(T0, -18.0);
    int inserted = 0;

    r.has_battery = 1;
    r.battery_level = 12.5;
    assert_int_equal(cc_store_reading_insert(st, &d, &r, T0, &inserted), CC_OK);
    assert_int_equal(inserted, 1);
    assert_true(query_is_null(db, "SELECT humidity FROM readings"));
    assert_true(query_is_null(db, "SELECT power_status FROM readings"));
    assert_true(query_is_null(db, "SELECT door_status FROM readings"));
    assert_int_equal(query_int(db, "SELECT battery_level * 10 FROM readings"), 125);
}

static void test_store_device_seen_turns_online(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    struct cc_device d;

    assert_int_equal(cc_store_device_seen(st, 5, T0, 0, 0), CC_OK);
    d = device(st);
    assert_string_equal(d.status, "ONLINE");
    assert_int_equal(d.has_newest, 0);
    assert_int_equal(query_int(db, "SELECT last_seen_at FROM devices WHERE id = 5"), T0);

    assert_int_equal(cc_store_device_seen(st, 5, T0 + 1000, 1, T0 - 5), CC_OK);
    d = device(st);
    assert_int_equal(d.has_newest, 1);
    assert_int_equal(d.newest_ts, T0 - 5);
    /* Neither moves backwards: a journal replay may carry older times. */
    assert_int_equal(cc_store_device_seen(st, 5, T0, 1, T0 - 100), CC_OK);
    d = device(st);
    assert_int_equal(d.newest_ts, T0 - 5);
    assert_int_equal(query_int(db, "SELECT last_seen_at FROM devices WHERE id = 5"), T0 + 1000);
    assert_int_equal(cc_store_device_seen(st, 999, T0, 0, 0), CC_ERR_NOT_FOUND);
}

static void test_store_device_status(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    char buf[64];

    assert_int_equal(cc_store_device_status(st, 5, 1, "1.4.2", T0), CC_OK);
    query_text(db, "SELECT status || ' ' || firmware_version FROM devices", buf, sizeof buf);
    assert_string_equal(buf, "ONLINE 1.4.2");
    assert_int_equal(query_int(db, "SELECT last_seen_at FROM devices"), T0);

    /* Offline (the last will): recorded; firmware and last_seen_at stay. */
    assert_int_equal(cc_store_device_status(st, 5, 0, NULL, T0 + 60000), CC_OK);
    query_text(db, "SELECT status || ' ' || firmware_version FROM devices", buf, sizeof buf);
    assert_string_equal(buf, "OFFLINE 1.4.2");
    assert_int_equal(query_int(db, "SELECT last_seen_at FROM devices"), T0);

    assert_int_equal(cc_store_device_status(st, 5, 1, "", T0 + 120000), CC_OK);
    query_text(db, "SELECT status || ' ' || firmware_version FROM devices", buf, sizeof buf);
    assert_string_equal(buf, "ONLINE 1.4.2");
    assert_int_equal(query_int(db, "SELECT last_seen_at FROM devices"), T0 + 120000);
    assert_int_equal(cc_store_device_status(st, 42, 1, "x", T0), CC_ERR_NOT_FOUND);
}

static void test_store_dead_letter_truncated_at_4096(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    size_t len = 5000;
    char *payload = malloc(len);

    assert_non_null(payload);
    for (size_t i = 0; i < len; i++)
        payload[i] = (char)('a' + i % 26);
    assert_int_equal(cc_store_dead_letter(st, T0, "devices/SN-1/readings", payload, len, "BAD_JSON",
                                          "payload is not valid JSON"),
                     CC_OK);
    assert_int_equal(query_int(db, "SELECT length(payload) FROM rejected_messages"),
                     CC_MAX_DEAD_PAYLOAD);
    assert_int_equal(query_int(db, "SELECT payload_size FROM rejected_messages"), 5000);
    assert_int_equal(query_int(db, "SELECT typeof(payload) = 'blob' FROM rejected_messages"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM rejected_messages WHERE"
                                   " error_code = 'BAD_JSON' AND received_at = 1764135900000"
                                   " AND topic = 'devices/SN-1/readings'"
                                   " AND error_message = 'payload is not valid JSON'"
                                   " AND substr(payload, 4096, 1) = x'" /* 4095 % 26 = 13 */
                                   "6e'"),
                     1);

    /* Exactly 4096 bytes are kept whole; an empty payload is an empty blob. */
    exec_ok(db, "DELETE FROM rejected_messages");
    assert_int_equal(cc_store_dead_letter(st, T0, "t", payload, 4096, "X", "m"), CC_OK);
    assert_int_equal(cc_store_dead_letter(st, T0, "t", payload, 0, "X", "m"), CC_OK);
    assert_int_equal(cc_store_dead_letter(st, T0, "t", NULL, 0, "X", "m"), CC_OK);
    assert_int_equal(query_int(db,
                               "SELECT count(*) FROM rejected_messages WHERE length(payload) = 4096"
                               " AND payload_size = 4096"),
                     1);
    assert_int_equal(query_int(db,
                               "SELECT count(*) FROM rejected_messages WHERE length(payload) = 0"
                               " AND payload_size = 0 AND payload IS NOT NULL"),
                     2);
    free(payload);
}

/* The query plan of sql, all rows' details joined by '|'. */
static void plan_of(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *stmt = NULL;
    char q[1024];
    size_t n = 0;

    snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", sql);
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &stmt, NULL), SQLITE_OK);
    out[0] = '\0';
    while (sqlite3_step(stmt) == SQLITE_ROW && n < outlen)
        n += (size_t)snprintf(out + n, outlen - n, "%s|", sqlite3_column_text(stmt, 3));
    sqlite3_finalize(stmt);
}

static void dead_letters(struct cc_store *st, const char *topic, int from, int count)
{
    char payload[32];

    for (int i = from; i < from + count; i++) {
        int n = snprintf(payload, sizeof payload, "bad-%05d", i);

        assert_int_equal(
            cc_store_dead_letter(st, T0 + i, topic, payload, (size_t)n, "BAD_JSON", "not JSON"),
            CC_OK);
    }
}

static void test_store_dead_letter_cap_per_device(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    const int max = CC_REJECTED_PER_DEVICE_MAX;
    char text[512];
    int64_t dropped = -1;

    exec_ok(db, "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
                " api_key_prefix, created_at) VALUES (6, 'SN-2', 3, 'h', 'p', 0)");
    dead_letters(st, "devices/SN-2/readings", 0, 3);
    assert_int_equal(cc_store_begin(st), CC_OK);
    dead_letters(st, "devices/SN-1/readings", 0, max + 5);
    assert_int_equal(cc_store_commit(st), CC_OK);
    /* The newest max of SN-1 stay, oldest dropped first; SN-2 is untouched. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM rejected_messages WHERE device_id = 5"),
                     max);
    query_text(db,
               "SELECT min(payload) || ' ' || max(payload) FROM rejected_messages"
               " WHERE device_id = 5",
               text, sizeof text);
    assert_string_equal(text, "bad-00005 bad-01004");
    assert_int_equal(query_int(db, "SELECT count(*) FROM rejected_messages WHERE device_id = 6"),
                     3);
    assert_int_equal(cc_store_dead_letters_dropped(st, &dropped), CC_OK);
    assert_int_equal(dropped, 5);

    /* Status messages of the device count in its bucket too. */
    dead_letters(st, "devices/SN-1/status", 2000, 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM rejected_messages WHERE device_id = 5"),
                     max);
    query_text(db, "SELECT min(payload) FROM rejected_messages WHERE device_id = 5", text,
               sizeof text);
    assert_string_equal(text, "bad-00007");

    /* Topics naming no known device, or no device at all, share one bucket (0). */
    dead_letters(st, "devices/NOPE/readings", 0, max);
    dead_letters(st, "elsewhere", max, 3);
    dead_letters(st, "devices//readings", max + 3, 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM rejected_messages WHERE device_id = 0"),
                     max);
    assert_int_equal(query_int(db, "SELECT count(*) FROM rejected_messages WHERE device_id = 0"
                                   " AND topic = 'devices/NOPE/readings'"),
                     max - 4);
    assert_int_equal(cc_store_dead_letters_dropped(st, &dropped), CC_OK);
    assert_int_equal(dropped, 5 + 2 + 4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM rejected_messages WHERE device_id = 6"),
                     3);

    /* O(log n) per message, not a scan: both statements search the (device_id, seq) index. */
    plan_of(db, "DELETE FROM rejected_messages WHERE device_id = 5 AND seq <= 9", text,
            sizeof text);
    assert_non_null(strstr(text, "rejected_messages_device_seq (device_id=? AND seq<?)"));
    plan_of(db, "SELECT max(seq) FROM rejected_messages WHERE device_id = 5", text, sizeof text);
    assert_non_null(strstr(text, "rejected_messages_device_seq (device_id=?)"));
    assert_null(strstr(text, "SCAN"));
}

static void test_store_dead_letter_retention(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    const int64_t day = 86400000LL;
    int64_t deleted = -1;
    char text[512];
    int more = -1;

    for (int i = 0; i < 5; i++)
        assert_int_equal(cc_store_dead_letter(st, T0 - 8 * day + i, "devices/SN-1/readings", "x", 1,
                                              "BAD_JSON", "m"),
                         CC_OK);
    assert_int_equal(cc_store_dead_letter(st, T0 - 7 * day, "t", "edge", 4, "X", "m"), CC_OK);
    assert_int_equal(cc_store_dead_letter(st, T0 - 1, "t", "young", 5, "X", "m"), CC_OK);

    /* Bounded batches: 2 rows a transaction, 2 transactions a call, then call again. */
    assert_int_equal(cc_retention_rejected_run(st, T0, 7, 2, 2, &deleted, &more), CC_OK);
    assert_int_equal(deleted, 4);
    assert_int_equal(more, 1);
    assert_int_equal(cc_retention_rejected_run(st, T0, 7, 2, 2, &deleted, &more), CC_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(more, 0);
    /* received_at = now - 7 days exactly is kept (strictly older goes). */
    query_text(db,
               "SELECT group_concat(CAST(payload AS TEXT), ',') FROM (SELECT payload FROM"
               " rejected_messages ORDER BY id)",
               text, sizeof text);
    assert_string_equal(text, "edge,young");
    assert_int_equal(cc_retention_rejected_run(st, T0, 0, 2, 2, NULL, NULL), CC_ERR_VALIDATION);
    assert_int_equal(cc_retention_rejected_run(st, T0, 7, 0, 2, NULL, NULL), CC_ERR_VALIDATION);
    assert_int_equal(cc_retention_rejected_run(st, T0, 7, 2, 0, NULL, NULL), CC_ERR_VALIDATION);
    /* The batch walks the received_at index. */
    plan_of(db,
            "SELECT id FROM rejected_messages WHERE received_at < 5 ORDER BY received_at"
            " LIMIT 2",
            text, sizeof text);
    assert_non_null(strstr(text, "rejected_messages_received"));
}

static void test_store_checkpoint_roundtrip(void **state)
{
    struct cc_store *st = *state;
    int64_t gen = -1, off = -1;

    assert_int_equal(cc_store_checkpoint_get(st, "coldchain-a", &gen, &off), CC_OK);
    assert_int_equal(gen, 0);
    assert_int_equal(off, 0);
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_store_checkpoint_set(st, "coldchain-a", 3, 123456), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(cc_store_checkpoint_get(st, "coldchain-a", &gen, &off), CC_OK);
    assert_int_equal(gen, 3);
    assert_int_equal(off, 123456);
}

/* Every ingestd keeps its own journal, so each client id keeps its own position: another
 * member's commit must not move it (a crashed member would replay from the wrong place and
 * skip what it acknowledged). A client id without a row replays its whole journal. */
static void test_store_checkpoint_per_client(void **state)
{
    struct cc_store *st = *state;
    int64_t gen = -1, off = -1;

    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_store_checkpoint_set(st, "coldchain-a", 2, 100), CC_OK);
    assert_int_equal(cc_store_checkpoint_set(st, "coldchain-b", 9, 900), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(cc_store_checkpoint_get(st, "coldchain-a", &gen, &off), CC_OK);
    assert_int_equal(gen, 2);
    assert_int_equal(off, 100);
    assert_int_equal(cc_store_checkpoint_get(st, "coldchain-b", &gen, &off), CC_OK);
    assert_int_equal(gen, 9);
    assert_int_equal(off, 900);
    assert_int_equal(cc_store_checkpoint_get(st, "coldchain-c", &gen, &off), CC_OK);
    assert_int_equal(gen, 0);
    assert_int_equal(off, 0);
    /* The position kept before migration 0008 belongs to the default client id. */
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM ingest_checkpoints"
                                                " WHERE client_id = 'coldchain-ingestd'"),
                     1);
}

static void test_store_rollback_discards(void **state)
{
    struct cc_store *st = *state;
    struct cc_device d = device(st);
    struct cc_reading r = reading(T0, 1.0);
    int64_t gen = -1, off = -1;
    int inserted = 0;

    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_store_reading_insert(st, &d, &r, T0, &inserted), CC_OK);
    assert_int_equal(cc_store_checkpoint_set(st, "coldchain-ingestd", 9, 9), CC_OK);
    assert_int_equal(cc_store_dead_letter(st, T0, "t", "x", 1, "X", "m"), CC_OK);
    cc_store_rollback(st);
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM readings"), 0);
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM rejected_messages"), 0);
    assert_int_equal(cc_store_checkpoint_get(st, "coldchain-ingestd", &gen, &off), CC_OK);
    assert_int_equal(gen, 0);
}

static void test_store_file_db_persists(void **state)
{
    struct fixture file;
    const char *path = file.path;
    struct cc_store *st = NULL;
    struct cc_device d;
    int inserted = 0;

    (void)state;
    assert_int_equal(fixture_open(&file, FIXTURE_FILE, 0, NULL), CC_OK);
    st = file.st;
    file.st = NULL; /* this test closes and reopens it */
    insert_fixture(cc_store_db(st));
    d = device(st);
    assert_int_equal(cc_store_begin(st), CC_OK);
    for (int i = 0; i < 2000; i++) {
        struct cc_reading r = reading(T0 + i, (double)(i % 10));

        assert_int_equal(cc_store_reading_insert(st, &d, &r, T0, &inserted), CC_OK);
        assert_int_equal(inserted, 1);
    }
    assert_int_equal(cc_store_device_seen(st, d.id, T0, 1, T0 + 1999), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    {
        /* The commit sits in the WAL (synchronous=NORMAL), which the sync finds and flushes. */
        char wal[sizeof file.path + 8];
        struct stat sb;

        snprintf(wal, sizeof wal, "%s-wal", path);
        assert_int_equal(stat(wal, &sb), 0);
        assert_true(sb.st_size > 0);
        assert_int_equal(cc_store_sync_committed(st), CC_OK);
    }
    cc_store_close(st);

    st = NULL;
    assert_int_equal(cc_store_open(path, CC_DB_READONLY, &st), CC_OK);
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM readings"), 2000);
    d = device(st);
    assert_int_equal(d.newest_ts, T0 + 1999);
    /* Read-only: any write fails. */
    assert_int_equal(cc_store_device_seen(st, d.id, T0 + 5000, 0, 0), CC_ERR_DB);
    cc_store_close(st);

    fixture_close(&file);
}

static void test_store_open_fails_cleanly(void **state)
{
    struct cc_store *st = NULL;
    struct fixture mem;

    (void)state;
    assert_int_equal(fixture_open(&mem, 0, 0, NULL), CC_OK);
    assert_int_equal(cc_store_sync_committed(mem.st), CC_OK); /* in memory: nothing to sync */
    fixture_close(&mem);
    assert_int_equal(cc_store_open("/nonexistent-dir/x/cc.db", 0, &st), CC_ERR_IO);
    assert_null(st);
    cc_store_close(NULL); /* a no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_device_by_serial, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_reading_duplicate_stored_once, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_reading_absent_fields_are_null, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_device_seen_turns_online, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_device_status, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_dead_letter_truncated_at_4096, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_dead_letter_cap_per_device, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_dead_letter_retention, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_checkpoint_roundtrip, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_checkpoint_per_client, store_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_store_rollback_discards, store_setup, store_teardown),
        cmocka_unit_test(test_store_file_db_persists),
        cmocka_unit_test(test_store_open_fails_cleanly),
    };

    cc_log_init("test_store", CC_LOG_ERROR, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
