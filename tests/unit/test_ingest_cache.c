/* test_ingest_cache.c - the ingest cache (cc_ingest_cache.h) never serves what the database
 * no longer holds: a second connection on the same file (apid, ingestd's jobs, another
 * ingestd) changes a threshold, moves a device, resolves an alert, deletes a device and
 * provisions its serial again, and the very next reading through the cached store sees
 * it; a transaction rolled back leaves nothing behind in the cache; a cache past
 * CC_INGEST_CACHE_DEVICES starts over and still answers right. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_ingest.h"
#include "cc_ingest_cache.h"
#include "cc_rc.h"
#include "cc_store.h"

#define T0 1764135900000LL
#define S 1000LL

#include "fixture.h"

#define FAILED_COMMIT 2 /* reading_tx: the COMMIT fails */

struct icfx {
    struct fixture db;      /* the writer's connection (db.st), cache on */
    struct cc_store *other; /* everyone else's, on the same file */
    int64_t ts;             /* the next reading's ts */
};

static void exec_ok(struct cc_store *st, const char *sql)
{
    assert_int_equal(fixture_exec(st, sql), CC_OK);
}

/* The one integer the query answers. */
static int64_t q(struct cc_store *st, const char *sql)
{
    int64_t v = -1;

    assert_int_equal(fixture_int(st, sql, &v), CC_OK);
    return v;
}

static const char seed[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 'c1@example.com', 'x', 'CUSTOMER', 'C1', 0);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'L', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, hysteresis,"
    " alarm_delay_s, created_at) VALUES (2, 1, 'Fridge', 2, 8, 0.5, 0, 0),"
    " (4, 1, 'Other', 2, 8, 0.5, 0, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
    " api_key_prefix, created_at) VALUES (7, 'SN-F', 2, 'h', 'p', 0);";

static int setup(void **state)
{
    struct icfx *f = calloc(1, sizeof *f);

    if (f == NULL || fixture_open(&f->db, FIXTURE_FILE, 0, seed) != CC_OK ||
        cc_ingest_cache_enable(f->db.st) != CC_OK ||
        cc_store_open(f->db.path, 0, &f->other) != CC_OK)
        return -1;
    f->ts = T0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct icfx *f = *state;

    cc_store_close(f->other);
    fixture_close(&f->db);
    free(f);
    return 0;
}

/* One reading of serial at temp in a transaction of its own (ingestd's writer's shape);
 * commit 0 rolls it back instead, FAILED_COMMIT has the COMMIT fail (a deferred foreign
 * key broken first; SQLITE_FULL at COMMIT takes the same path). The message's result. */
static struct cc_ingest_result reading_tx(struct icfx *f, const char *serial, double temp,
                                          int commit)
{
    char topic[96], payload[96];
    struct cc_ingest_msg m = {0};

    snprintf(topic, sizeof topic, "devices/%s/readings", serial);
    snprintf(payload, sizeof payload, "{\"ts\":%lld,\"temperature\":%.1f}", (long long)f->ts, temp);
    f->ts += S;
    m.topic = topic;
    m.payload = payload;
    m.len = strlen(payload);
    m.received_at = f->ts;
    assert_int_equal(cc_store_begin(f->db.st), CC_OK);
    assert_int_equal(cc_ingest_batch(f->db.st, &m, 1), CC_OK);
    if (commit == FAILED_COMMIT)
        exec_ok(f->db.st,
                "PRAGMA defer_foreign_keys = ON;"
                "INSERT INTO alert_events (alert_id, cold_cell_id, event, payload,"
                " next_attempt_at, created_at) VALUES (999999, 2, 'CREATED', '{}', 0, 0)");
    if (commit == FAILED_COMMIT)
        assert_int_not_equal(cc_store_commit(f->db.st), CC_OK);
    else if (commit)
        assert_int_equal(cc_store_commit(f->db.st), CC_OK);
    else
        cc_store_rollback(f->db.st);
    return m.res;
}

static void reading(struct icfx *f, const char *serial, double temp)
{
    struct cc_ingest_result res = reading_tx(f, serial, temp, 1);

    assert_int_equal(res.accepted, 1);
    cc_ingest_result_clear(&res);
}

static int64_t active(struct icfx *f)
{
    return q(f->db.st, "SELECT count(*) FROM alerts WHERE status = 'ACTIVE'");
}

/* apid lowers the maximum: the next reading, in range before, raises HIGH_TEMP. */
static void threshold_change_seen_at_once(void **state)
{
    struct icfx *f = *state;

    reading(f, "SN-F", 5.0);
    reading(f, "SN-F", 5.0); /* served from the cache */
    assert_int_equal(active(f), 0);
    exec_ok(f->other, "UPDATE cold_cells SET max_temp = 4 WHERE id = 2");
    reading(f, "SN-F", 5.0);
    assert_int_equal(active(f), 1);
}

/* The device goes to another cell: its next reading is stored under that cell. */
static void device_move_seen_at_once(void **state)
{
    struct icfx *f = *state;

    reading(f, "SN-F", 5.0);
    exec_ok(f->other, "UPDATE devices SET cold_cell_id = 4 WHERE id = 7");
    reading(f, "SN-F", 5.0);
    assert_int_equal(q(f->db.st, "SELECT count(*) FROM readings WHERE cold_cell_id = 4"), 1);
}

/* ingestd's jobs raise SENSOR_ERROR (the device went silent): the next reading, a sign
 * of life, resolves it. */
static void alert_raised_elsewhere_seen_at_once(void **state)
{
    struct icfx *f = *state;

    reading(f, "SN-F", 5.0);
    exec_ok(f->other, "INSERT INTO alerts (cold_cell_id, device_id, type, status, message,"
                      " first_triggered_at, last_triggered_at, trigger_count)"
                      " VALUES (2, 7, 'SENSOR_ERROR', 'ACTIVE', 'silent', 1, 1, 1)");
    assert_int_equal(active(f), 1);
    reading(f, "SN-F", 5.0);
    assert_int_equal(active(f), 0);
}

/* The device is deleted and its serial provisioned again: the new row, not the old id. */
static void device_replaced_seen_at_once(void **state)
{
    struct icfx *f = *state;

    reading(f, "SN-F", 5.0);
    exec_ok(f->other, "DELETE FROM devices WHERE id = 7;"
                      "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
                      " api_key_prefix, created_at) VALUES (70, 'SN-F', 4, 'h', 'p', 0)");
    reading(f, "SN-F", 5.0);
    assert_int_equal(q(f->db.st, "SELECT count(*) FROM readings WHERE device_id = 70"), 1);
}

/* A high reading 5 s before the last one's ts, stored and late or judged as late says.
 * The ACTIVE alerts after it. */
static int64_t older_high(struct icfx *f, int late)
{
    struct cc_ingest_result res;

    f->ts -= 5 * S;
    res = reading_tx(f, "SN-F", 9.0, 1);
    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.late, late);
    cc_ingest_result_clear(&res);
    return active(f);
}

/* A transaction with a newer reading is undone (how: 0 rolled back, FAILED_COMMIT its
 * COMMIT failed): a reading older than that one but newer than every stored one is judged
 * (the cache must not remember the newest reading the transaction never wrote, which
 * would make this one late). */
static void newer_reading_undone(struct icfx *f, int how)
{
    struct cc_ingest_result res;

    reading(f, "SN-F", 5.0);
    f->ts += 10 * S;
    res = reading_tx(f, "SN-F", 5.0, how);
    cc_ingest_result_clear(&res);
    assert_int_equal(older_high(f, 0), 1);
}

static void rollback_forgotten(void **state)
{
    newer_reading_undone(*state, 0);
}

static void failed_commit_forgotten(void **state)
{
    newer_reading_undone(*state, FAILED_COMMIT);
}

/* One batch: a reading, a status message and two more readings of the same serial
 * (cached between them), then the next transaction: one alert, the newest reading the
 * batch's last, the status the readings' ONLINE. */
static void same_serial_around_status(void **state)
{
    struct icfx *f = *state;
    char p[3][96];
    struct cc_ingest_msg m[4] = {{0}};
    const char *topics[4] = {"devices/SN-F/readings", "devices/SN-F/status",
                             "devices/SN-F/readings", "devices/SN-F/readings"};

    reading(f, "SN-F", 5.0);
    for (int i = 0; i < 3; i++)
        snprintf(p[i], sizeof p[i], "{\"ts\":%lld,\"temperature\":%.1f}",
                 (long long)(f->ts + i * S), i == 0 ? 5.0 : 9.0);
    for (int i = 0; i < 4; i++) {
        m[i].topic = topics[i];
        m[i].payload = i == 1 ? "{\"online\":false}" : p[i == 0 ? 0 : i - 1];
        m[i].len = strlen(m[i].payload);
        m[i].received_at = f->ts;
    }
    f->ts += 3 * S;
    assert_int_equal(cc_store_begin(f->db.st), CC_OK);
    assert_int_equal(cc_ingest_batch(f->db.st, m, 4), CC_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(m[i].res.rejected, 0);
        cc_ingest_result_clear(&m[i].res);
    }
    assert_int_equal(cc_store_commit(f->db.st), CC_OK);
    assert_int_equal(active(f), 1);
    assert_int_equal(q(f->db.st, "SELECT trigger_count FROM alerts"), 2);
    reading(f, "SN-F", 5.0); /* back in range: resolved from the cached state */
    assert_int_equal(active(f), 0);
    assert_int_equal(q(f->db.st, "SELECT newest_ts FROM devices WHERE id = 7"), f->ts - S);
    assert_int_equal(q(f->db.st, "SELECT status = 'ONLINE' FROM devices WHERE id = 7"), 1);
}

/* Two writers with a cache each on one file (a standby ingestd taking over, or two
 * sharing the subscription): what one raised the other resolves, and a reading older
 * than the other's newest is late, not judged. */
static void two_cached_writers(void **state)
{
    struct icfx *f = *state;
    struct cc_store *a = f->db.st;

    assert_int_equal(cc_ingest_cache_enable(f->other), CC_OK);
    reading(f, "SN-F", 5.0);
    reading(f, "SN-F", 5.0); /* a's cache holds the device and its state */
    f->db.st = f->other;
    reading(f, "SN-F", 9.0); /* b raises */
    f->db.st = a;
    assert_int_equal(active(f), 1);
    reading(f, "SN-F", 5.0); /* a resolves what b raised */
    assert_int_equal(active(f), 0);
    f->db.st = f->other;
    f->ts += 10 * S;
    reading(f, "SN-F", 5.0); /* b's newest */
    f->db.st = a;
    assert_int_equal(older_high(f, 1), 0);
}

/* More devices than the cache holds, twice round: every reading stored under its own
 * device, and the newest reading each one's (a late reading would be judged otherwise). */
static void past_the_bound(void **state)
{
    struct icfx *f = *state;
    const int n = CC_INGEST_CACHE_DEVICES + 100;
    char sql[160];

    exec_ok(f->other, "BEGIN");
    for (int d = 0; d < n; d++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
                 " api_key_prefix, created_at) VALUES (%d, 'B-%d', 4, 'h', 'p', 0)",
                 1000 + d, d);
        exec_ok(f->other, sql);
    }
    exec_ok(f->other, "COMMIT");
    for (int round = 0; round < 2; round++) {
        struct cc_ingest_msg *m = calloc((size_t)n, sizeof *m);
        char(*topic)[32] = calloc((size_t)n, sizeof *topic);
        static const char payload_fmt[] = "{\"ts\":%lld,\"temperature\":5.0}";
        char payload[64];

        assert_non_null(m);
        assert_non_null(topic);
        snprintf(payload, sizeof payload, payload_fmt, (long long)(T0 + round * S));
        assert_int_equal(cc_store_begin(f->db.st), CC_OK);
        for (int d = 0; d < n; d++) {
            snprintf(topic[d], sizeof topic[d], "devices/B-%d/readings", d);
            m[d].topic = topic[d];
            m[d].payload = payload;
            m[d].len = strlen(payload);
            m[d].received_at = T0;
        }
        assert_int_equal(cc_ingest_batch(f->db.st, m, (size_t)n), CC_OK);
        for (int d = 0; d < n; d++) {
            assert_int_equal(m[d].res.accepted, 1);
            cc_ingest_result_clear(&m[d].res);
        }
        assert_int_equal(cc_store_commit(f->db.st), CC_OK);
        free(m);
        free(topic);
    }
    assert_int_equal(q(f->db.st, "SELECT count(*) FROM readings r JOIN devices d"
                                 " ON d.id = r.device_id AND d.serial_number LIKE 'B-%'"),
                     2 * (int64_t)n);
    assert_int_equal(q(f->db.st, "SELECT count(*) FROM devices WHERE serial_number LIKE 'B-%'"
                                 " AND newest_ts = " /* the second round's */
                                 "1764135901000"),
                     n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(threshold_change_seen_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(device_move_seen_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(alert_raised_elsewhere_seen_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(device_replaced_seen_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(rollback_forgotten, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_commit_forgotten, setup, teardown),
        cmocka_unit_test_setup_teardown(same_serial_around_status, setup, teardown),
        cmocka_unit_test_setup_teardown(two_cached_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(past_the_bound, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
