/* test_query.c - readings statistics (rollups vs raw), range parsing, MKT,
 * minutesOutOfRange, retention, latest, CSV and dashboards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_access.h"
#include "cc_db.h"
#include "cc_devices.h"
#include "cc_error.h"
#include "cc_log.h"
#include "cc_query.h"
#include "cc_rc.h"
#include "cc_retention.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "cc_store_rollup.h"
#include "cc_time.h"
#include "fixture.h"

#define T0 1764115200000LL /* 2025-11-26T00:00:00.000Z, a multiple of every bucket */
#define MIN_MS 60000LL
#define DAY_MS 86400000LL
#define CELL 3
#define LO 2.0
#define HI 8.0

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

/* Customer 1 (locations 1: cell 3 with devices 5, 6, 7) and customer 2 (location 2:
 * cell 4 with device 8); technician 10 linked to customer 1; admin 11. */
static const char seed[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 'c1@example.com', 'x', 'CUSTOMER', 'C1', 0),"
    " (2, 'c2@example.com', 'x', 'CUSTOMER', 'C2', 0),"
    " (10, 't@example.com', 'x', 'TECHNICIAN', 'T', 0),"
    " (11, 'a@example.com', 'x', 'ADMIN', 'A', 0);"
    "INSERT INTO technician_customers VALUES (10, 1);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES"
    " (1, 1, 'L1', 0), (2, 2, 'L2', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at)"
    " VALUES (3, 1, 'Fridge', 2, 8, 0), (4, 2, 'Freezer', -25, -15, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
    " api_key_prefix, created_at) VALUES (5, 'SN-5', 3, 'h', 'p', 0),"
    " (6, 'SN-6', 3, 'h', 'p', 0), (7, 'SN,\"7\"', 3, 'h', 'p', 0),"
    " (8, 'SN-8', 4, 'h', 'p', 0);";

static struct fixture fx; /* cmocka runs one test at a time */

static int setup(void **state)
{
    if (fixture_open(&fx, 0, 0, seed) != CC_OK)
        return -1;
    *state = fx.st;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fixture_close(&fx);
    return 0;
}

/* Stores one reading through the ingest store (with its rollup). 1 if inserted. */
static int put(struct cc_store *st, int64_t device_id, int64_t cell_id, int64_t ts, double t)
{
    struct cc_device d;
    struct cc_reading r;
    int inserted = -1;

    memset(&d, 0, sizeof d);
    d.id = device_id;
    d.cold_cell_id = cell_id;
    memset(&r, 0, sizeof r);
    r.ts_ms = ts;
    r.ts_given = 1;
    r.temperature = t;
    r.power_status = CC_ABSENT;
    r.door_status = CC_ABSENT;
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_store_reading_insert(st, &d, &r, ts, &inserted), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    return inserted;
}

static struct cc_query_range range_of(int64_t from, int64_t to, int64_t bucket_ms)
{
    struct cc_query_range rg;

    memset(&rg, 0, sizeof rg);
    rg.from_ms = from;
    rg.to_ms = to;
    rg.bucket_ms = bucket_ms;
    return rg;
}

/* Both paths, and the assertion that they agree bit for bit. */
static void both(struct cc_store *st, const struct cc_query_range *rg, double lo, double hi,
                 struct cc_query_result *fast)
{
    struct cc_query_result raw;

    assert_int_equal(cc_query_readings(st, CELL, rg, lo, hi, fast), CC_OK);
    assert_int_equal(cc_query_readings_raw(st, CELL, rg, lo, hi, &raw), CC_OK);
    assert_int_equal(fast->stats.count, raw.stats.count);
    assert_int_equal(fast->stats.sum_q, raw.stats.sum_q);
    assert_true(fast->stats.mkt_hi == raw.stats.mkt_hi);
    assert_true(fast->stats.mkt_lo == raw.stats.mkt_lo);
    assert_int_equal(fast->stats.oor_ms, raw.stats.oor_ms);
    if (raw.stats.count > 0) {
        assert_true(fast->stats.min == raw.stats.min);
        assert_true(fast->stats.max == raw.stats.max);
    }
    assert_int_equal(fast->n, raw.n);
    for (size_t i = 0; i < raw.n; i++) {
        assert_int_equal(fast->series[i].t_ms, raw.series[i].t_ms);
        assert_int_equal(fast->series[i].count, raw.series[i].count);
        assert_int_equal(fast->series[i].sum_q, raw.series[i].sum_q);
        assert_true(fast->series[i].min == raw.series[i].min);
        assert_true(fast->series[i].max == raw.series[i].max);
    }
    cc_query_result_free(&raw);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int64_t rnd_below(int64_t n)
{
    return (int64_t)(rnd() % (uint64_t)n);
}

/* -- range parsing ------------------------------------------------------------------- */

static void expect_range(const char *qs, int64_t span_ms, int64_t bucket_ms)
{
    struct cc_query_range rg;
    cJSON *err = NULL;

    assert_int_equal(cc_query_parse_range(qs, T0, &rg, &err), CC_OK);
    assert_null(err);
    assert_int_equal(rg.to_ms - rg.from_ms, span_ms);
    assert_int_equal(rg.bucket_ms, bucket_ms);
}

static void expect_bad_range(const char *qs)
{
    struct cc_query_range rg;
    cJSON *err = NULL;

    assert_int_equal(cc_query_parse_range(qs, T0, &rg, &err), CC_ERR_VALIDATION);
    assert_non_null(err);
    assert_string_equal(cc_error_code(err), "VALIDATION_ERROR");
    cJSON_Delete(err);
}

static void test_query_range_bucket_sizes(void **state)
{
    (void)state;
    expect_range(NULL, DAY_MS, 300000);
    expect_range("", DAY_MS, 300000);
    expect_range("range=24h", DAY_MS, 300000);
    expect_range("range=7d", 7 * DAY_MS, 1800000);
    expect_range("range=30d", 30 * DAY_MS, 7200000);
    /* from/to: the bucket follows the span. */
    expect_range("from=2025-11-01T00:00:00Z&to=2025-11-02T00:00:00Z", DAY_MS, 300000);
    expect_range("from=2025-11-01T00:00:00Z&to=2025-11-02T00:00:00.001Z", DAY_MS + 1, 1800000);
    expect_range("from=2025-11-01T00:00:00Z&to=2025-11-08T00:00:00Z", 7 * DAY_MS, 1800000);
    expect_range("from=2025-11-01T00:00:00Z&to=2025-11-20T00:00:00Z", 19 * DAY_MS, 7200000);
    expect_range("from=2025-01-01T00:00:00Z&to=2025-06-01T00:00:00Z", 151 * DAY_MS, DAY_MS);
    expect_range("from=2025-11-01T01:00:00%2B01:00&to=2025-11-01T02:00:00Z", 2 * 3600000, 300000);
}

static void test_query_range_errors(void **state)
{
    (void)state;
    expect_bad_range("range=1h");
    expect_bad_range("range=");
    expect_bad_range("range=24H");
    expect_bad_range("range=24h&from=2025-11-01T00:00:00Z&to=2025-11-02T00:00:00Z");
    expect_bad_range("from=2025-11-01T00:00:00Z");
    expect_bad_range("to=2025-11-01T00:00:00Z");
    expect_bad_range("from=yesterday&to=2025-11-01T00:00:00Z");
    expect_bad_range("from=2025-11-02T00:00:00Z&to=2025-11-01T00:00:00Z");
    expect_bad_range("from=2025-11-01T00:00:00Z&to=2025-11-01T00:00:00Z");
    expect_bad_range("from=2024-01-01T00:00:00Z&to=2025-11-01T00:00:00Z"); /* > 400 days */
    expect_bad_range("from=2025-02-30T00:00:00Z&to=2025-03-01T00:00:00Z");
}

/* -- alignment and stats ------------------------------------------------------------- */

static void test_query_series_alignment(void **state)
{
    static const int64_t buckets[] = {300000, 1800000, 7200000, DAY_MS};
    struct cc_store *st = *state;

    /* A reading every 7 minutes over 3 days, from a time that is on no boundary. */
    for (int64_t ts = T0 + 123456; ts < T0 + 3 * DAY_MS; ts += 7 * MIN_MS)
        put(st, 5, CELL, ts, 4.0 + (double)(ts / MIN_MS % 50) / 10.0);
    for (size_t k = 0; k < sizeof buckets / sizeof buckets[0]; k++) {
        struct cc_query_range rg = range_of(T0 + 1000, T0 + 3 * DAY_MS - 1000, buckets[k]);
        struct cc_query_result res;
        int64_t total = 0;

        both(st, &rg, LO, HI, &res);
        assert_true(res.n > 0);
        for (size_t i = 0; i < res.n; i++) {
            assert_int_equal(res.series[i].t_ms % buckets[k], 0); /* UTC multiple */
            assert_true(i == 0 || res.series[i].t_ms > res.series[i - 1].t_ms);
            assert_true(res.series[i].count > 0); /* empty buckets omitted */
            total += res.series[i].count;
        }
        assert_int_equal(total, res.stats.count);
        /* Buckets of 5 min hold 0 or 1 reading here (one every 7 min): some are empty. */
        if (buckets[k] == 300000)
            assert_true((int64_t)res.n == res.stats.count);
        cc_query_result_free(&res);
    }
}

static void test_query_stats_values(void **state)
{
    static const double temps[] = {3.5, 7.25, 1.5, 9.75, 4.0, 4.125, -0.5, 6.0};
    struct cc_store *st = *state;
    struct cc_query_range rg;
    struct cc_query_result res;
    double sum = 0, mn = 1e9, mx = -1e9;
    cJSON *j, *stats;

    for (size_t i = 0; i < sizeof temps / sizeof temps[0]; i++) {
        put(st, 5 + (int64_t)(i % 2), CELL, T0 + (int64_t)i * 4 * MIN_MS + 17, temps[i]);
        sum += temps[i];
        mn = temps[i] < mn ? temps[i] : mn;
        mx = temps[i] > mx ? temps[i] : mx;
    }
    rg = range_of(T0, T0 + DAY_MS, 300000);
    both(st, &rg, LO, HI, &res);
    assert_int_equal(res.stats.count, 8);
    assert_true(res.stats.min == mn);
    assert_true(res.stats.max == mx);
    assert_true(fabs(cc_query_avg(res.stats.sum_q, res.stats.count) - sum / 8) < 1e-6);
    /* Out of range: 1.5 (4 min), 9.75 (4 min), -0.5 (4 min); the last reading adds
     * nothing. */
    assert_int_equal(res.stats.oor_ms, 12 * MIN_MS);

    j = cc_query_result_json(&res);
    assert_non_null(j);
    stats = cJSON_GetObjectItem(j, "stats");
    assert_true(cJSON_GetObjectItem(stats, "min")->valuedouble == -0.5);
    assert_true(cJSON_GetObjectItem(stats, "max")->valuedouble == 9.75);
    assert_true(fabs(cJSON_GetObjectItem(stats, "avg")->valuedouble - 4.453) < 1e-9);
    assert_int_equal((int)cJSON_GetObjectItem(stats, "count")->valuedouble, 8);
    assert_true(cJSON_GetObjectItem(stats, "minutesOutOfRange")->valuedouble == 12.0);
    assert_int_equal((int)cJSON_GetObjectItem(j, "bucketSeconds")->valuedouble, 300);
    assert_string_equal(cJSON_GetObjectItem(j, "from")->valuestring, "2025-11-26T00:00:00.000Z");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "series")), 6);
    cJSON_Delete(j);
    cc_query_result_free(&res);

    /* No readings: count 0, the statistics null. */
    rg = range_of(T0 + 2 * DAY_MS, T0 + 3 * DAY_MS, 300000);
    both(st, &rg, LO, HI, &res);
    j = cc_query_result_json(&res);
    stats = cJSON_GetObjectItem(j, "stats");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(stats, "min")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(stats, "mkt")));
    assert_int_equal((int)cJSON_GetObjectItem(stats, "count")->valuedouble, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "series")), 0);
    cJSON_Delete(j);
    cc_query_result_free(&res);
}

/* -- rollups == raw ------------------------------------------------------------------ */

static void test_query_rollup_equals_raw_random(void **state)
{
    static const int64_t buckets[] = {300000, 1800000, 7200000, DAY_MS};
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    int64_t span = 4 * DAY_MS;
    int inserted = 0, dups = 0;

    /* Three devices, a reading about every 2 minutes each, arriving in random order
     * (late readings land in old buckets), with redelivered duplicates. Temperatures
     * wander across both thresholds, with arbitrary binary fractions. */
    for (int i = 0; i < 9000; i++) {
        int64_t dev = 5 + rnd_below(3);
        int64_t ts = T0 + rnd_below(span / 1000) * 1000 + rnd_below(3);
        double t = 5.0 + 6.0 * sin((double)ts / 3.6e6) + (double)rnd_below(100000) / 33333.3;

        if (put(st, dev, CELL, ts, t))
            inserted++;
        if (rnd_below(10) == 0)
            dups += put(st, dev, CELL, ts, t + 1.0) == 0; /* same (device, ts): ignored */
    }
    assert_true(dups > 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings"), inserted);
    assert_int_equal(query_int(db, "SELECT sum(count) FROM readings_5m"), inserted);

    for (int q = 0; q < 300; q++) {
        int64_t a = T0 - DAY_MS / 2 + rnd_below(span + DAY_MS);
        int64_t b = a + 1 + rnd_below(q % 3 == 0 ? 3600000 : span);
        struct cc_query_range rg = range_of(a, b, buckets[rnd_below(4)]);
        struct cc_query_result res;
        double lo = 2.0 + (double)rnd_below(5), hi = lo + 1.0 + (double)rnd_below(6);

        both(st, &rg, lo, hi, &res);
        cc_query_result_free(&res);
    }
}

static void test_query_device_delete_updates_rollups(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    struct cc_principal admin = {11, CC_ROLE_ADMIN};
    struct cc_query_range rg = range_of(T0 - DAY_MS, T0 + 2 * DAY_MS, 300000);
    struct cc_query_result res;

    /* Two devices share the cell's buckets; device 6 is hotter. */
    for (int i = 0; i < 600; i++) {
        put(st, 5, CELL, T0 + i * 60000, 4.0 + (i % 7) * 0.25);
        put(st, 6, CELL, T0 + i * 60000 + 7, 9.5 + (i % 5) * 0.5);
    }
    assert_int_equal(cc_devices_delete(st, &admin, 6), CC_OK);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings WHERE device_id = 6"), 0);
    /* The rollups forgot device 6: they agree with the raw rows bit for bit ... */
    both(st, &rg, 2.0, 8.0, &res);
    assert_int_equal(res.stats.count, 600);
    assert_true(res.stats.max <= 5.5);
    cc_query_result_free(&res);
    /* ... and hold exactly device 5's readings. */
    assert_int_equal(query_int(db, "SELECT sum(count) FROM readings_5m"), 600);
    assert_int_equal(query_int(db, "SELECT sum(count) FROM readings_30m"), 600);
}

/* Every exact column of a rollup table, in key order, as one string. */
static char *rollup_dump(sqlite3 *db, const char *table)
{
    char sql[512];
    sqlite3_stmt *stmt = NULL;
    char *out;

    snprintf(sql, sizeof sql,
             "SELECT group_concat(cold_cell_id || ':' || bucket_ts || ':' || count || ':' ||"
             " sum_q || ':' || mkt_hi || ':' || mkt_lo || ':' || first_ts || ':' || last_ts ||"
             " ':' || quote(min_temp) || ':' || quote(max_temp), ',') FROM"
             " (SELECT * FROM %s ORDER BY cold_cell_id, bucket_ts)",
             table);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    out = strdup((const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    assert_non_null(out);
    return out;
}

/* The ingest upsert (SQL, 62-bit limbs with carry) equals the C rebuild (128 bits),
 * at both levels. */
static void test_query_rollup_upsert_equals_rebuild(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    char *b5, *b30, *a5, *a30;

    for (int i = 0; i < 3000; i++)
        put(st, 5 + rnd_below(3), CELL, T0 + rnd_below(DAY_MS / 1000) * 1000,
            -100.0 + (double)rnd_below(250000) / 1000.0); /* the whole sensor range */
    b5 = rollup_dump(db, "readings_5m");
    b30 = rollup_dump(db, "readings_30m");
    assert_true(query_int(db, "SELECT max(mkt_hi) FROM readings_30m") > 0);
    assert_int_equal(query_int(db, "SELECT sum(count) FROM readings_30m"),
                     query_int(db, "SELECT count(*) FROM readings"));

    exec_ok(db, "DELETE FROM readings_5m; DELETE FROM readings_30m");
    assert_int_equal(cc_store_rollup_rebuild(db, 0), CC_OK);
    a5 = rollup_dump(db, "readings_5m");
    a30 = rollup_dump(db, "readings_30m");
    assert_string_equal(a5, b5);
    assert_string_equal(a30, b30);
    free(b5);
    free(b30);
    free(a5);
    free(a30);
}

/* Stores one reading inside the caller's transaction. 1 if inserted. */
static int put_in_tx(struct cc_store *st, int64_t device_id, int64_t cell_id, int64_t ts, double t)
{
    struct cc_device d;
    struct cc_reading r;
    int inserted = -1;

    memset(&d, 0, sizeof d);
    d.id = device_id;
    d.cold_cell_id = cell_id;
    memset(&r, 0, sizeof r);
    r.ts_ms = ts;
    r.ts_given = 1;
    r.temperature = t;
    r.power_status = CC_ABSENT;
    r.door_status = CC_ABSENT;
    assert_int_equal(cc_store_reading_insert(st, &d, &r, ts, &inserted), CC_OK);
    return inserted;
}

/* Rollups summed per transaction (cc_rollup_batch, as ingestd's writer commits batches of
 * up to 4,096 readings) equal the C rebuild bit for bit: readings of two cells in random
 * order over four days (1,152 five-minute buckets a cell, far past CC_ROLLUP_BATCH_MAX,
 * so tables are written early inside the transaction), duplicates inside a transaction
 * counted once, and a rolled-back transaction leaving no term behind. */
static void test_query_rollup_batch_equals_rebuild(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    int64_t inserted = 0;
    char *b5, *b30, *a5, *a30;

    for (int tx = 0; tx < 6; tx++) {
        assert_int_equal(cc_store_begin(st), CC_OK);
        for (int i = 0; i < 3000; i++) {
            int64_t dev = 5 + rnd_below(4);
            int64_t cell = dev == 8 ? 4 : CELL;
            int64_t ts = T0 + rnd_below(4 * DAY_MS / 1000) * 1000;
            double t = -100.0 + (double)rnd_below(250000) / 1000.0;
            int n = put_in_tx(st, dev, cell, ts, t);

            if (tx != 3)
                inserted += n;
            if (rnd_below(8) == 0)
                assert_int_equal(put_in_tx(st, dev, cell, ts, t + 1.0), 0);
        }
        if (tx == 3)
            cc_store_rollback(st);
        else
            assert_int_equal(cc_store_commit(st), CC_OK);
    }
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings"), inserted);
    assert_int_equal(query_int(db, "SELECT sum(count) FROM readings_5m"), inserted);
    assert_int_equal(query_int(db, "SELECT sum(count) FROM readings_30m"), inserted);
    assert_true(query_int(db, "SELECT count(*) FROM readings_5m") > 2 * CC_ROLLUP_BATCH_MAX);
    b5 = rollup_dump(db, "readings_5m");
    b30 = rollup_dump(db, "readings_30m");
    exec_ok(db, "DELETE FROM readings_5m; DELETE FROM readings_30m");
    assert_int_equal(cc_store_rollup_rebuild(db, 0), CC_OK);
    a5 = rollup_dump(db, "readings_5m");
    a30 = rollup_dump(db, "readings_30m");
    assert_string_equal(a5, b5);
    assert_string_equal(a30, b30);
    free(b5);
    free(b30);
    free(a5);
    free(a30);
}

/* -- MKT ----------------------------------------------------------------------------- */

static void test_query_mkt_hand_computed(void **state)
{
    struct cc_store *st = *state;
    struct cc_query_range rg = range_of(T0, T0 + DAY_MS, 300000);
    struct cc_query_result res;
    uint64_t hi, lo;

    /* 20 °C and 30 °C: MKT = 10000 / -ln((e^(-10000/293.15) + e^(-10000/303.15)) / 2)
     * - 273.15 = 10000 / 33.6187... - 273.15 = 26.2599 °C (above the mean, 25). */
    put(st, 5, CELL, T0 + MIN_MS, 20.0);
    put(st, 5, CELL, T0 + 2 * MIN_MS, 30.0);
    both(st, &rg, LO, HI, &res);
    assert_true(fabs(cc_query_mkt(res.stats.mkt_hi, res.stats.mkt_lo, res.stats.count) - 26.2599) <
                1e-4);
    cc_query_result_free(&res);

    /* A constant temperature is its own MKT, across the sensor range. */
    for (double t = -100.0; t <= 150.0; t += 12.5) {
        cc_query_mkt_q(t, &hi, &lo);
        assert_true(fabs(cc_query_mkt(hi, lo, 1) - t) < 1e-6);
    }
    /* Many readings: the 124-bit sum holds 100000 readings at 150 °C. */
    cc_query_mkt_q(150.0, &hi, &lo);
    {
        unsigned __int128 v = (((unsigned __int128)hi << 62) + lo) * 100000;

        assert_true(
            fabs(cc_query_mkt((uint64_t)(v >> 62), (uint64_t)(v & ((1ULL << 62) - 1)), 100000) -
                 150.0) < 1e-6);
    }
}

/* The fast path reads rollup rows, not raw ones (cc_query_result.rows_read, which the
 * benchmark prints): two days at one reading a minute, all in range, in two-hour buckets,
 * are 96 half hours; off the bucket edges, the partial five minutes at both ends add their
 * raw rows and the partial half hours their five-minute rows. A straddling half hour adds
 * its six five-minute rows, and a straddling five minutes its raw rows. */
static void test_query_rollups_rows_read(void **state)
{
    struct cc_store *st = *state;
    struct cc_query_range rg;
    struct cc_query_result res;

    for (int64_t i = 0; i < 2 * DAY_MS / MIN_MS; i++)
        put(st, 5, CELL, T0 + i * MIN_MS, 5.0);

    rg = range_of(T0, T0 + 2 * DAY_MS, 7200000);
    both(st, &rg, LO, HI, &res);
    assert_int_equal(res.stats.count, 2880);
    assert_int_equal(res.rows_read, 96);
    cc_query_result_free(&res);

    /* From 0:07:30 to 47:52:30: the raw readings of 0:07:30..0:10 (at 8 and 9 min), the
     * five-minute rows of 0:10..0:30 (4), the 94 half hours of 0:30..47:30, the five-minute
     * rows of 47:30..47:50 (4), the raw readings of 47:50..47:52:30 (50, 51, 52 min). */
    rg = range_of(T0 + 450000, T0 + 2 * DAY_MS - 450000, 7200000);
    both(st, &rg, LO, HI, &res);
    assert_int_equal(res.rows_read, 2 + 4 + 94 + 4 + 3);
    cc_query_result_free(&res);

    /* One excursion at 10:11 (a second device, out of range): its half hour (still one of
     * the 96 rows read) goes down to six five-minute rows, and its five minutes (10:10) to
     * its 5 + 1 raw rows. */
    put(st, 6, CELL, T0 + 10 * 3600000 + 11 * MIN_MS + 1, 9.0);
    rg = range_of(T0, T0 + 2 * DAY_MS, 7200000);
    both(st, &rg, LO, HI, &res);
    assert_int_equal(res.rows_read, 96 + 6 + 6);
    assert_true(res.stats.oor_ms > 0);
    cc_query_result_free(&res);
}

/* -- minutesOutOfRange --------------------------------------------------------------- */

static void test_query_minutes_out_of_range(void **state)
{
    struct cc_store *st = *state;
    struct cc_query_range rg;
    struct cc_query_result res;

    /* Device 5: 5 (in) at 0, 10 (out) at 1 min, 5 at 3 min, 1 (out) at 4 min, 1 at
     * 5 min, then a gap: 9 (out) at 20 min, 4 at 62 min (crosses whole buckets that
     * hold nothing), 8 (in: the limit is inclusive) at 63 min, 8.01 at 64 min, 2 at
     * 64.5 min. Device 6 reports the same ts as device 5 at 1 min with 5.0 (ties go
     * by device id: 5 first). */
    put(st, 5, CELL, T0 + 0, 5.0);
    put(st, 5, CELL, T0 + 1 * MIN_MS, 10.0);
    put(st, 6, CELL, T0 + 1 * MIN_MS, 5.0);
    put(st, 5, CELL, T0 + 3 * MIN_MS, 5.0);
    put(st, 5, CELL, T0 + 4 * MIN_MS, 1.0);
    put(st, 5, CELL, T0 + 5 * MIN_MS, 1.0);
    put(st, 5, CELL, T0 + 20 * MIN_MS, 9.0);
    put(st, 5, CELL, T0 + 62 * MIN_MS, 4.0);
    put(st, 5, CELL, T0 + 63 * MIN_MS, 8.0);
    put(st, 5, CELL, T0 + 64 * MIN_MS, 8.01);
    put(st, 5, CELL, T0 + 64 * MIN_MS + 30000, 2.0);

    rg = range_of(T0, T0 + DAY_MS, 300000);
    both(st, &rg, LO, HI, &res);
    /* 10@1 -> 6@1 (same ts): 0; 1@4 -> 1@5: 1 min; 1@5 -> 9@20: 15 min;
     * 9@20 -> 4@62: 42 min; 8.01@64 -> 2@64.5: 0.5 min. */
    assert_int_equal(res.stats.oor_ms, 58 * MIN_MS + 30000);
    cc_query_result_free(&res);

    /* The range ends inside the gap: the last reading in range (9 at 20 min) adds
     * nothing; readings before from do not count. */
    rg = range_of(T0 + 4 * MIN_MS, T0 + 30 * MIN_MS, 300000);
    both(st, &rg, LO, HI, &res);
    assert_int_equal(res.stats.oor_ms, 16 * MIN_MS);
    cc_query_result_free(&res);

    /* Thresholds are read at query time: with 0..20 nothing is out. */
    rg = range_of(T0, T0 + DAY_MS, 1800000);
    both(st, &rg, 0.0, 20.0, &res);
    assert_int_equal(res.stats.oor_ms, 0);
    cc_query_result_free(&res);

    /* And with 9.5..20 everything but 10 is below range: the whole span but the one
     * interval that starts at 10 (which is 0 long, a tie) and the last reading. */
    both(st, &rg, 9.5, 20.0, &res);
    assert_int_equal(res.stats.oor_ms, 64 * MIN_MS + 30000);
    cc_query_result_free(&res);
}

/* -- retention ----------------------------------------------------------------------- */

static void test_query_retention_keeps_rollups(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    struct cc_query_range rg = range_of(T0, T0 + 2 * DAY_MS, 7200000);
    struct cc_query_result before, after;
    int64_t deleted = 0, rollups;
    int more = 0;

    for (int64_t ts = T0; ts < T0 + 2 * DAY_MS; ts += 10 * MIN_MS) /* 288 readings */
        put(st, 5, CELL, ts, 4.0 + (double)(ts / MIN_MS % 7));
    put(st, 8, 4, T0, -18.0); /* another cell */
    rollups = query_int(db, "SELECT count(*) FROM readings_5m") +
              query_int(db, "SELECT count(*) FROM readings_30m");
    assert_int_equal(cc_query_readings(st, CELL, &rg, LO, HI, &before), CC_OK);

    /* Keep 1 day at now = T0 + 2 days: the first day (144 + 1 readings) goes. */
    assert_int_equal(cc_retention_run(st, T0 + 2 * DAY_MS, 1, 50, 2, &deleted, &more), CC_OK);
    assert_int_equal(deleted, 100); /* two batches of 50, bounded */
    assert_int_equal(more, 1);
    assert_int_equal(cc_retention_run(st, T0 + 2 * DAY_MS, 1, 50, 100, &deleted, &more), CC_OK);
    assert_int_equal(deleted, 45);
    assert_int_equal(more, 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings"), 144);
    assert_int_equal(query_int(db, "SELECT min(ts) FROM readings") - T0, DAY_MS);
    assert_int_equal(query_int(db, "SELECT count(*) FROM readings_5m") +
                         query_int(db, "SELECT count(*) FROM readings_30m"),
                     rollups);

    /* Whole buckets still answer from the rollups: the same statistics. */
    assert_int_equal(cc_query_readings(st, CELL, &rg, LO, HI, &after), CC_OK);
    assert_int_equal(after.stats.count, before.stats.count);
    assert_int_equal(after.stats.sum_q, before.stats.sum_q);
    assert_true(after.stats.mkt_lo == before.stats.mkt_lo);
    assert_int_equal(after.n, before.n);
    cc_query_result_free(&before);
    cc_query_result_free(&after);

    assert_int_equal(cc_retention_run(st, T0, 0, 50, 1, NULL, NULL), CC_ERR_VALIDATION);
}

/* -- latest, CSV, dashboards --------------------------------------------------------- */

static void test_query_latest_by_timestamp(void **state)
{
    struct cc_store *st = *state;
    struct cc_principal c1 = {1, CC_ROLE_CUSTOMER}, c2 = {2, CC_ROLE_CUSTOMER};
    struct cc_principal tech = {10, CC_ROLE_TECHNICIAN};
    cJSON *o = NULL;

    assert_int_equal(cc_query_latest(st, &c1, CELL, &o), CC_OK);
    assert_true(cJSON_IsNull(o)); /* no reading yet */
    cJSON_Delete(o);
    put(st, 5, CELL, T0 + 10 * MIN_MS, 4.5);
    put(st, 6, CELL, T0 + 5 * MIN_MS, 6.5); /* arrives last, but older */
    assert_int_equal(cc_query_latest(st, &tech, CELL, &o), CC_OK);
    assert_true(cJSON_GetObjectItem(o, "temperature")->valuedouble == 4.5);
    assert_string_equal(cJSON_GetObjectItem(o, "ts")->valuestring, "2025-11-26T00:10:00.000Z");
    assert_string_equal(cJSON_GetObjectItem(o, "serialNumber")->valuestring, "SN-5");
    cJSON_Delete(o);
    o = NULL;
    assert_int_equal(cc_query_latest(st, &c2, CELL, &o), CC_ERR_NOT_FOUND);
    assert_null(o);
    assert_int_equal(cc_query_latest(st, &c1, 999, &o), CC_ERR_NOT_FOUND);
}

struct sink {
    char buf[8192];
    size_t len;
    int writes;
};

static int sink_write(void *ctx, const char *b, size_t n)
{
    struct sink *s = ctx;

    if (s->len + n >= sizeof s->buf)
        return -1;
    memcpy(s->buf + s->len, b, n);
    s->len += n;
    s->buf[s->len] = '\0';
    s->writes++;
    return 0;
}

static void test_query_csv_rfc4180(void **state)
{
    struct cc_store *st = *state;
    struct cc_principal c1 = {1, CC_ROLE_CUSTOMER}, c2 = {2, CC_ROLE_CUSTOMER};
    struct sink s;
    int64_t from = 0, to = 0;
    cJSON *err = NULL;

    memset(&s, 0, sizeof s);
    put(st, 7, CELL, T0 + MIN_MS, 4.1);
    put(st, 5, CELL, T0, -0.5);
    put(st, 5, CELL, T0 + DAY_MS, 3.0); /* outside [from, to) */
    assert_int_equal(cc_query_csv_check(st, &c1, CELL,
                                        "from=2025-11-26T00:00:00Z&to=2025-11-27T00:00:00Z", &from,
                                        &to, &err),
                     CC_OK);
    assert_int_equal(cc_query_csv(st, CELL, from, to, sink_write, &s), CC_OK);
    assert_string_equal(s.buf,
                        "ts,coldCellId,deviceId,serialNumber,temperature,humidity,powerStatus,"
                        "doorStatus,batteryLevel,receivedAt\r\n"
                        "2025-11-26T00:00:00.000Z,3,5,SN-5,-0.5,,,,,2025-11-26T00:00:00.000Z\r\n"
                        "2025-11-26T00:01:00.000Z,3,7,\"SN,\"\"7\"\"\",4.1,,,,,"
                        "2025-11-26T00:01:00.000Z\r\n");
    assert_int_equal(cc_query_csv_check(st, &c2, CELL, "from=2025-11-26T00:00:00Z&to=2025-11-27",
                                        &from, &to, &err),
                     CC_ERR_NOT_FOUND);
    assert_int_equal(
        cc_query_csv_check(st, &c1, CELL, "from=2025-11-26T00:00:00Z", &from, &to, &err),
        CC_ERR_VALIDATION);
    cJSON_Delete(err);
}

/* A sink of any size: the paged export of a few thousand rows. */
struct big_sink {
    char *buf;
    size_t len;
};

static int big_write(void *ctx, const char *b, size_t n)
{
    struct big_sink *s = ctx;
    char *nb = realloc(s->buf, s->len + n + 1);

    if (nb == NULL)
        return -1;
    s->buf = nb;
    memcpy(s->buf + s->len, b, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return 0;
}

/* Pages of CC_CSV_PAGE_ROWS rows: a page boundary between two rows of the same ts (two
 * devices) neither repeats nor skips a row; a row inserted behind the cursor between
 * two pages is not exported, one ahead of it is; the whole equals cc_query_csv. */
static void test_query_csv_pages_keyset(void **state)
{
    struct cc_store *st = *state;
    struct cc_query_csv_cursor cur = {0};
    struct big_sink paged = {NULL, 0}, whole = {NULL, 0};
    const int n_ts = CC_CSV_PAGE_ROWS * 3 / 4; /* 2 rows each: a boundary inside a ts */
    const int64_t from = T0, to = T0 + DAY_MS;
    int pages = 0, lines = 0;
    int64_t last_ts = -1, last_dev = -1;

    for (int i = 0; i < n_ts; i++) {
        put(st, 5, CELL, T0 + i * 1000LL, 1.0);
        put(st, 7, CELL, T0 + i * 1000LL, 2.0);
    }
    assert_int_equal(cc_query_csv(st, CELL, from, to, big_write, &whole), CC_OK);

    assert_int_equal(cc_query_csv_page(st, CELL, from, to, &cur, big_write, &paged), CC_OK);
    pages++;
    assert_false(cur.done);
    assert_int_equal(cur.rows, CC_CSV_PAGE_ROWS);
    /* The first page ended inside a ts: (ts of row 1000, device 5). */
    assert_int_equal(cur.ts_ms, T0 + (CC_CSV_PAGE_ROWS / 2 - 1) * 1000LL);
    assert_int_equal(cur.device_id, 7);
    while (!cur.done) {
        assert_int_equal(cc_query_csv_page(st, CELL, from, to, &cur, big_write, &paged), CC_OK);
        pages++;
    }
    assert_int_equal(pages, 2);
    assert_int_equal(cur.rows, 2 * n_ts);
    assert_int_equal(paged.len, whole.len);
    assert_memory_equal(paged.buf, whole.buf, whole.len);
    free(paged.buf);
    paged.buf = NULL;
    paged.len = 0;

    /* Inserts between pages: behind the cursor (not exported), ahead (exported). */
    memset(&cur, 0, sizeof cur);
    assert_int_equal(cc_query_csv_page(st, CELL, from, to, &cur, big_write, &paged), CC_OK);
    put(st, 6, CELL, T0 + 1000LL, 3.0);              /* behind */
    put(st, 6, CELL, T0 + (n_ts - 1) * 1000LL, 4.0); /* ahead, a tie with the last ts */
    while (!cur.done)
        assert_int_equal(cc_query_csv_page(st, CELL, from, to, &cur, big_write, &paged), CC_OK);
    assert_int_equal(cur.rows, 2 * n_ts + 1);
    for (char *line = strstr(paged.buf, "\r\n") + 2; *line; line = strstr(line, "\r\n") + 2) {
        long long ts_line;
        int64_t ts, dev;
        char iso[32];

        assert_int_equal(sscanf(line, "%24[^,],%*d,%lld,", iso, &ts_line), 2);
        assert_int_equal(cc_time_parse_iso8601(iso, &ts), CC_OK);
        dev = ts_line;
        assert_true(ts > last_ts || (ts == last_ts && dev > last_dev)); /* ordered, no repeat */
        last_ts = ts;
        last_dev = dev;
        lines++;
    }
    assert_int_equal(lines, 2 * n_ts + 1);
    assert_int_equal(last_dev, 7);
    assert_non_null(strstr(paged.buf, ",6,SN-6,4,"));
    assert_null(strstr(paged.buf, ",6,SN-6,3,"));
    free(paged.buf);
    free(whole.buf);
}

static void test_query_dashboards(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    struct cc_principal c1 = {1, CC_ROLE_CUSTOMER}, tech = {10, CC_ROLE_TECHNICIAN};
    struct cc_principal admin = {11, CC_ROLE_ADMIN};
    cJSON *o = NULL, *cell;

    exec_ok(db, "UPDATE devices SET status = 'ONLINE' WHERE id = 5;"
                "INSERT INTO alerts (cold_cell_id, device_id, type, message, first_triggered_at,"
                " last_triggered_at) VALUES (3, 5, 'HIGH_TEMP', 'hot', 1, 1),"
                " (4, 8, 'POWER_LOSS', 'power', 2, 2), (4, 8, 'LOW_TEMP', 'cold', 3, 3);"
                "INSERT INTO alerts (cold_cell_id, device_id, type, status, message,"
                " first_triggered_at, last_triggered_at) VALUES"
                " (3, 5, 'LOW_TEMP', 'RESOLVED', 'old', 0, 0);");
    put(st, 5, CELL, T0, 4.5);

    assert_int_equal(cc_dashboard_customer(st, &c1, &o), CC_OK);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "locations")), 1);
    assert_int_equal(
        (int)cJSON_GetObjectItem(cJSON_GetObjectItem(o, "summary"), "devices")->valuedouble, 3);
    assert_int_equal(
        (int)cJSON_GetObjectItem(cJSON_GetObjectItem(o, "summary"), "devicesOnline")->valuedouble,
        1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "activeAlerts")), 1);
    cell = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "locations"), 0),
                            "coldCells"),
        0);
    assert_true(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cell, "latest"), "temperature")->valuedouble ==
        4.5);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cell, "devices")), 3);
    assert_int_equal((int)cJSON_GetObjectItem(cell, "activeAlerts")->valuedouble, 1);
    cJSON_Delete(o);

    assert_int_equal(cc_dashboard_technician(st, &c1, &o), CC_ERR_FORBIDDEN);
    assert_int_equal(cc_dashboard_technician(st, &tech, &o), CC_OK);
    assert_int_equal((int)cJSON_GetObjectItem(o, "customers")->valuedouble, 1);
    assert_int_equal((int)cJSON_GetObjectItem(o, "coldCells")->valuedouble, 1);
    assert_int_equal((int)cJSON_GetObjectItem(o, "activeAlerts")->valuedouble, 1);
    assert_int_equal(
        (int)cJSON_GetObjectItem(cJSON_GetObjectItem(o, "alertsByType"), "HIGH_TEMP")->valuedouble,
        1);
    assert_int_equal(
        (int)cJSON_GetObjectItem(cJSON_GetObjectItem(o, "alertsByType"), "LOW_TEMP")->valuedouble,
        0);
    cJSON_Delete(o);

    assert_int_equal(cc_dashboard_technician(st, &admin, &o), CC_OK);
    assert_int_equal((int)cJSON_GetObjectItem(o, "customers")->valuedouble, 2);
    assert_int_equal((int)cJSON_GetObjectItem(o, "activeAlerts")->valuedouble, 3);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "customerList")), 2);
    assert_int_equal((int)cJSON_GetObjectItem(
                         cJSON_GetArrayItem(cJSON_GetObjectItem(o, "customerList"), 1), "devices")
                         ->valuedouble,
                     1);
    cJSON_Delete(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_range_bucket_sizes),
        cmocka_unit_test(test_query_range_errors),
        cmocka_unit_test_setup_teardown(test_query_series_alignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_stats_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_device_delete_updates_rollups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_rollup_equals_raw_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_rollup_upsert_equals_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_rollup_batch_equals_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_mkt_hand_computed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_rollups_rows_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_minutes_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_retention_keeps_rollups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_latest_by_timestamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_csv_rfc4180, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_csv_pages_keyset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_dashboards, setup, teardown),
    };

    cc_log_init("test_query", CC_LOG_ERROR, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
