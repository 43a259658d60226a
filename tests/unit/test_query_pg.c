/* test_query_pg.c - the read side (cc_query.h, cc_feed.h) on PostgreSQL: the same rows in
 * a SQLite store and in a PostgreSQL 15 store (a throwaway cluster, tools/pgtest.sh,
 * started by the group's setup; the unit tests run from the repository root) give the
 * same answers, byte for byte: readings statistics over raw, five-minute and
 * thirty-minute rollup ranges (exact sums included), the dashboards with each cell's
 * latest reading, the CSV export over several pages, and the live feed's access
 * queries. A PostgreSQL that cannot start fails the group: it is not skipped.
 *
 * The rows: written on SQLite by the real ingest path (cc_store_reading_insert, whose
 * rollups use cc_rollup_math's exact terms), then copied column by column into
 * PostgreSQL through cc_dbi.h (schema/pg/0001_init.sql loaded with cc_store_exec until
 * the PostgreSQL migration runner lands). Not here yet, because they call modules not on
 * cc_dbi.h: cc_query_readings_json, cc_query_latest and cc_query_csv_check (the access
 * check, cc_access.c) and the feed's readings (cc_store_device_by_serial on PostgreSQL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_access.h"
#include "cc_dbi.h"
#include "cc_feed.h"
#include "cc_log.h"
#include "cc_query.h"
#include "cc_rc.h"
#include "fixture.h"
#include "cc_store.h"

#define PG_PORT "55414" /* this suite's socket name (tools/pgtest.sh PORT) */

#define T0 1764115200000LL /* 2025-11-26T00:00:00.000Z, a multiple of every bucket */
#define MIN_MS 60000LL
#define DAY_MS 86400000LL
#define SPAN_MS (2 * DAY_MS + 3600000) /* the readings of cell 3: two days and an hour */
#define CELL 3
#define LO 2.0
#define HI 8.0

/* Customers 1 (location 1: cell 3 with devices 5, 6, 7; cell 9, no device) and 2
 * (location 2: cell 4 with device 8); technician 10 linked to customer 1, technician 12
 * (the feed's, disabled by its test) too; admin 11. Alerts of both customers, active
 * and resolved. Portable SQL: the same text seeds both stores. */
static const char seed[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 'c1@example.com', 'x', 'CUSTOMER', 'C1', 0),"
    " (2, 'c2@example.com', 'x', 'CUSTOMER', 'C2', 0),"
    " (10, 't@example.com', 'x', 'TECHNICIAN', 'T', 0),"
    " (11, 'a@example.com', 'x', 'ADMIN', 'A', 0),"
    " (12, 't2@example.com', 'x', 'TECHNICIAN', 'T2', 0);"
    "INSERT INTO technician_customers VALUES (10, 1), (12, 1);"
    "INSERT INTO locations (id, customer_id, name, address, timezone, created_at) VALUES"
    " (1, 1, 'L1', 'Main St 1, \"Dock\"', 'Europe/Berlin', 0), (2, 2, 'L2', '', 'UTC', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at) VALUES"
    " (3, 1, 'Fridge', 2, 8, 0), (4, 2, 'Freezer', -25, -15.5, 0), (9, 1, 'Spare', 0.5, 4, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
    " firmware_version, status, last_seen_at, created_at) VALUES"
    " (5, 'SN-5', 3, 'h', 'p', '1.2.3', 'ONLINE', 1764288000123, 0),"
    " (6, 'SN-6', 3, 'h', 'p', NULL, 'OFFLINE', 1764200000000, 0),"
    " (7, 'SN,\"7\"', 3, 'h', 'p', '2.0', 'NEVER_SEEN', NULL, 0),"
    " (8, 'SN-8', 4, 'h', 'p', '1.0', 'ONLINE', 1764288000000, 0);"
    "INSERT INTO alerts (id, cold_cell_id, device_id, type, status, value, threshold, message,"
    " first_triggered_at, last_triggered_at, trigger_count, acknowledged_at, escalated_at)"
    " VALUES (1, 3, 5, 'HIGH_TEMP', 'ACTIVE', 9.25, 8, 'hot', 1764118800000, 1764119100000,"
    " 3, 1764119000000, NULL),"
    " (2, 4, 8, 'POWER_LOSS', 'ACTIVE', NULL, NULL, 'power', 1764118800000, 1764118800000,"
    " 1, NULL, 1764120600000),"
    " (3, 4, 8, 'LOW_TEMP', 'ACTIVE', -26.5, -25, 'cold', 1764120000000, 1764120000000, 1,"
    " NULL, NULL),"
    " (4, 3, 6, 'LOW_TEMP', 'RESOLVED', 1.5, 2, 'old', 0, 0, 1, NULL, NULL),"
    " (5, 3, 6, 'SENSOR_ERROR', 'ACTIVE', NULL, NULL, 'sensor', 1764118800000,"
    " 1764118800000, 2, NULL, NULL)";

static char pg_dir[64];
static char pg_url[256];
static struct cc_store *lite, *pg;

/* ---- the two stores ---------------------------------------------------------------- */

/* One reading through the SQLite ingest store (its rollups included). */
static void put(int64_t device_id, int64_t cell_id, int64_t ts, double t, int hum, double h,
                int power, int door, int bat, double b)
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
    r.has_humidity = hum;
    r.humidity = h;
    r.power_status = power;
    r.door_status = door;
    r.has_battery = bat;
    r.battery_level = b;
    assert_int_equal(cc_store_reading_insert(lite, &d, &r, ts + 1500, &inserted), CC_OK);
    assert_int_equal(inserted, 1);
}

/* The readings of the suite: device 5 every minute, in hours that are all in range, all
 * above, mixed, or in range with one excursion (so rollup buckets go every way the query
 * treats them); device 6 every 7 minutes with humidity (some NULL) and battery; device 7
 * every 13 minutes on device 5's timestamps (ties ordered by device) with the statuses;
 * device 8 in another customer's cell. Device 7 also ties device 5's last reading. */
static void load_readings(void)
{
    assert_int_equal(cc_store_begin(lite), CC_OK);
    for (int64_t i = 0; i < SPAN_MS / MIN_MS; i++) {
        int64_t ts = T0 + i * MIN_MS + 1234;
        int64_t hour = i / 60;
        double t;

        switch (hour % 4) {
        case 0:
            t = 4.0 + (double)(i % 7) * 0.3;
            break;
        case 1:
            t = 9.1 + (double)(i % 5) * 0.05;
            break;
        case 2:
            t = 1.5 + (double)((i * 37) % 71) / 10.0;
            break;
        default:
            t = i % 60 == 17 ? 8.01 : 5.5 - (double)(i % 3) * 0.25;
        }
        put(5, CELL, ts, t, 0, 0, CC_ABSENT, CC_ABSENT, 0, 0);
        if (i % 7 == 0)
            put(6, CELL, ts + 17, 5.25 + (double)(i % 9) * 0.125, i % 3 != 0,
                40.5 + (double)(i % 10), CC_ABSENT, CC_ABSENT, 1, 87.5);
        if (i % 13 == 0 || i == SPAN_MS / MIN_MS - 1)
            put(7, CELL, ts, 3.3 + (double)(i % 4) / 3.0, 0, 0, (int)(i % 2),
                i % 5 == 0 ? CC_ABSENT : (int)((i / 13) % 2), 0, 0);
        if (i % 97 == 0)
            put(8, 4, ts, -18.0 - (double)(i % 11) * 0.7, 1, 12.25, CC_TRUE, CC_FALSE, 0, 0);
    }
    assert_int_equal(cc_store_commit(lite), CC_OK);
}

/* Copies every row of a table from SQLite to PostgreSQL: cols are the column names,
 * kinds one letter a column ('i' integer, 'd' double), NULLs kept. */
static void copy_table(const char *select_sql, const char *insert_sql, const char *kinds)
{
    struct cc_stmt *from = NULL, *to = NULL;
    int ncols = (int)strlen(kinds);
    int64_t rows = 0;
    int rc;

    assert_int_equal(cc_stmt_prepare(lite, select_sql, &from), CC_OK);
    while ((rc = cc_stmt_step(from)) == CC_ROW) {
        assert_int_equal(cc_stmt_prepare(pg, insert_sql, &to), CC_OK);
        for (int c = 0; c < ncols; c++) {
            if (cc_stmt_column_is_null(from, c))
                assert_int_equal(cc_stmt_bind_null(to, c + 1), CC_OK);
            else if (kinds[c] == 'd')
                assert_int_equal(cc_stmt_bind_double(to, c + 1, cc_stmt_column_double(from, c)),
                                 CC_OK);
            else
                assert_int_equal(cc_stmt_bind_int64(to, c + 1, cc_stmt_column_int64(from, c)),
                                 CC_OK);
        }
        assert_int_equal(cc_stmt_step(to), CC_OK);
        cc_stmt_release(to);
        rows++;
    }
    assert_int_equal(rc, CC_OK);
    cc_stmt_release(from);
    assert_true(rows > 0);
}

static const char sel_readings[] =
    "SELECT id, device_id, cold_cell_id, ts, temperature, humidity, power_status, door_status,"
    " battery_level, received_at FROM readings ORDER BY id";
static const char ins_readings[] =
    "INSERT INTO readings (id, device_id, cold_cell_id, ts, temperature, humidity,"
    " power_status, door_status, battery_level, received_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
static const char sel_5m[] =
    "SELECT cold_cell_id, bucket_ts, min_temp, max_temp, sum_temp, count, mkt_sum, sum_q,"
    " mkt_hi, mkt_lo, first_ts, last_ts FROM readings_5m";
static const char ins_5m[] =
    "INSERT INTO readings_5m (cold_cell_id, bucket_ts, min_temp, max_temp, sum_temp, count,"
    " mkt_sum, sum_q, mkt_hi, mkt_lo, first_ts, last_ts)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
static const char sel_30m[] = "SELECT cold_cell_id, bucket_ts, min_temp, max_temp, count, sum_q,"
                              " mkt_hi, mkt_lo, first_ts, last_ts FROM readings_30m";
static const char ins_30m[] =
    "INSERT INTO readings_30m (cold_cell_id, bucket_ts, min_temp, max_temp, count, sum_q,"
    " mkt_hi, mkt_lo, first_ts, last_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

static int group_teardown(void **state)
{
    char cmd[160];

    (void)state;
    cc_store_close(lite);
    cc_store_close(pg);
    lite = pg = NULL;
    snprintf(cmd, sizeof cmd, "sh tools/pgtest.sh stop %s", pg_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int group_setup(void **state)
{
    char *schema;

    if (fixture_pg_start("qpg", PG_PORT, pg_dir, sizeof pg_dir, pg_url, sizeof pg_url) != 0)
        return -1;
    schema = fixture_pg_schema();
    if (schema == NULL || cc_store_open(":memory:", CC_STORE_MIGRATE, &lite) != CC_OK ||
        cc_store_open(pg_url, 0, &pg) != CC_OK || cc_store_exec(pg, schema) != CC_OK ||
        cc_store_exec(lite, seed) != CC_OK || cc_store_exec(pg, seed) != CC_OK) {
        fprintf(stderr, "test_query_pg: stores not set up (%s)\n", FIXTURE_PG_SCHEMA);
        free(schema);
        group_teardown(state);
        return -1;
    }
    free(schema);
    load_readings();
    copy_table(sel_readings, ins_readings, "iiiiddiidi");
    copy_table(sel_5m, ins_5m, "iidddidiiiii");
    copy_table(sel_30m, ins_30m, "iiddiiiiii");
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------- */

/* The result of a readings query as text: its API JSON and the exact sums behind it. */
static char *result_text(const struct cc_query_result *res)
{
    cJSON *o = cc_query_result_json(res);
    char *json = cJSON_PrintUnformatted(o);
    size_t cap = strlen(json) + 128 + res->n * 64;
    char *out = malloc(cap);
    size_t len;

    assert_non_null(out);
    len =
        (size_t)snprintf(out, cap, "%s|%lld %lld %llu %llu %lld", json, (long long)res->stats.count,
                         (long long)res->stats.sum_q, (unsigned long long)res->stats.mkt_hi,
                         (unsigned long long)res->stats.mkt_lo, (long long)res->stats.oor_ms);
    for (size_t i = 0; i < res->n; i++)
        len += (size_t)snprintf(out + len, cap - len, "|%lld:%lld", (long long)res->series[i].t_ms,
                                (long long)res->series[i].sum_q);
    cJSON_Delete(o);
    free(json);
    return out;
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

/* Runs the fast and the raw computation of rg on both stores: all four answers are the
 * same text. Returns the count of readings in range. */
static int64_t same_readings(int64_t from, int64_t to, int64_t bucket_ms)
{
    struct cc_query_range rg = range_of(from, to, bucket_ms);
    struct cc_query_result fl, fp, rl, rp;
    char *a, *b, *c, *d;
    int64_t n;

    assert_int_equal(cc_query_readings(lite, CELL, &rg, LO, HI, &fl), CC_OK);
    assert_int_equal(cc_query_readings(pg, CELL, &rg, LO, HI, &fp), CC_OK);
    assert_int_equal(cc_query_readings_raw(lite, CELL, &rg, LO, HI, &rl), CC_OK);
    assert_int_equal(cc_query_readings_raw(pg, CELL, &rg, LO, HI, &rp), CC_OK);
    a = result_text(&fl);
    b = result_text(&fp);
    c = result_text(&rl);
    d = result_text(&rp);
    assert_string_equal(b, a); /* PostgreSQL answers as SQLite does */
    assert_string_equal(c, a); /* ...and the rollups as the raw rows do */
    assert_string_equal(d, a);
    /* Both stores read the same rows: the PostgreSQL texts (PG_BUCKET_RAW) differ from
     * SQLite's in plan only, and the raw computation reads every reading in range. */
    assert_int_equal(fp.rows_read, fl.rows_read);
    assert_int_equal(rl.rows_read, (size_t)rl.stats.count);
    assert_int_equal(rp.rows_read, (size_t)rp.stats.count);
    n = fl.stats.count;
    free(a);
    free(b);
    free(c);
    free(d);
    cc_query_result_free(&fl);
    cc_query_result_free(&fp);
    cc_query_result_free(&rl);
    cc_query_result_free(&rp);
    return n;
}

/* Runs fn on both stores: the same code and, on CC_OK, the same JSON (returned, the
 * caller frees; NULL when not CC_OK). */
static char *same_json(int (*fn)(struct cc_store *, const struct cc_principal *, cJSON **),
                       const struct cc_principal *p, int want_rc)
{
    cJSON *ol = NULL, *op = NULL;
    char *a, *b;

    assert_int_equal(fn(lite, p, &ol), want_rc);
    assert_int_equal(fn(pg, p, &op), want_rc);
    if (want_rc != CC_OK)
        return NULL;
    a = cJSON_PrintUnformatted(ol);
    b = cJSON_PrintUnformatted(op);
    assert_string_equal(b, a);
    free(b);
    cJSON_Delete(ol);
    cJSON_Delete(op);
    return a;
}

/* ---- readings ---------------------------------------------------------------------- */

static void test_query_pg_is_postgresql(void **state)
{
    (void)state;
    assert_int_equal(cc_store_dialect(lite), CC_DIALECT_SQLITE);
    assert_int_equal(cc_store_dialect(pg), CC_DIALECT_PG);
}

/* Inside one five-minute bucket: raw rows only. */
static void test_query_pg_raw_range(void **state)
{
    (void)state;
    assert_int_equal(same_readings(T0 + 61000, T0 + 299000, 300000), 4); /* device 5's 1..4 */
    /* In a mixed hour (the third), over threshold crossings. */
    assert_true(same_readings(T0 + 2 * 3600000 + 5000, T0 + 2 * 3600000 + 290000, 300000) > 0);
}

/* A day of five-minute buckets (the 5-minute series uses no half hour), raw edges. */
static void test_query_pg_5m_range(void **state)
{
    (void)state;
    assert_true(same_readings(T0 + 123457, T0 + DAY_MS - 98765, 300000) > 1400);
}

/* Two days in two-hour buckets: half hours, straddling half hours down to five minutes,
 * straddling five minutes down to raw rows; and a week's 30-minute series. */
static void test_query_pg_30m_range(void **state)
{
    (void)state;
    assert_true(same_readings(T0 - 3600000 + 4321, T0 + SPAN_MS + 3600000 - 1234, 7200000) >
                2 * 1440);
    assert_true(same_readings(T0 + DAY_MS - 7 * DAY_MS, T0 + DAY_MS, 1800000) > 1400);
    assert_int_equal(same_readings(T0 - DAY_MS, T0, 1800000), 0); /* before any reading */
}

/* Rows PostgreSQL has read from readings (its partitions) in the current transaction:
 * sequential and index fetches, from pg_stat_xact_user_tables. */
static int64_t pg_readings_read(void)
{
    static const char sql[] =
        "SELECT CAST(coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)"
        " AS bigint) FROM pg_stat_xact_user_tables WHERE relid IN"
        " (SELECT inhrelid FROM pg_inherits WHERE inhparent = CAST('readings' AS regclass))";
    struct cc_stmt *s = NULL;
    int64_t n;

    assert_int_equal(cc_stmt_prepare(pg, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    n = cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return n;
}

/* Raw rows of the cell in [from, to) on SQLite; straddling: only those whose five-minute
 * rollup straddles LO or HI (the rows the query's detail needs). */
static int64_t raw_rows(int64_t from, int64_t to, int straddling)
{
    static const char all_sql[] = "SELECT count(*) FROM readings"
                                  " WHERE cold_cell_id = $1 AND ts >= $2 AND ts < $3";
    static const char straddling_sql[] =
        "SELECT count(*) FROM readings r JOIN readings_5m f ON f.cold_cell_id = r.cold_cell_id"
        " AND r.ts >= f.bucket_ts AND r.ts < f.bucket_ts + 300000"
        " WHERE r.cold_cell_id = $1 AND r.ts >= $2 AND r.ts < $3"
        " AND (f.min_temp < $4 OR f.max_temp > $5) AND f.max_temp >= $4 AND f.min_temp <= $5";
    struct cc_stmt *s = NULL;
    int64_t n;

    assert_int_equal(cc_stmt_prepare(lite, straddling ? straddling_sql : all_sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_all(s, "iii", (int64_t)CELL, from, to), CC_OK);
    if (straddling) {
        assert_int_equal(cc_stmt_bind_double(s, 4, LO), CC_OK);
        assert_int_equal(cc_stmt_bind_double(s, 5, HI), CC_OK);
    }
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    n = cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return n;
}

/* The raw detail of straddling buckets is read bucket by bucket (an index range each):
 * PostgreSQL reads no more raw rows than the straddling five minutes and the partial
 * edges hold, not every raw row of the cell in the range (the plain join's plan read
 * them all: 100-150 ms for 30 days on 10 M readings, docs/queries.md). Planned on real
 * statistics (ANALYZE), as a live database is. */
static void test_query_pg_reads_only_straddling_raw(void **state)
{
    const int64_t from = T0 - 3600000 + 4321, to = T0 + SPAN_MS + 3600000 - 1234;
    const int64_t r0 = from - from % 300000 + 300000, r1 = to - to % 300000;
    struct cc_query_range rg = range_of(from, to, 7200000);
    struct cc_query_result res;
    int64_t before, read, need, all;

    (void)state;
    need = raw_rows(from, r0, 0) + raw_rows(r1, to, 0) + raw_rows(r0, r1, 1);
    all = raw_rows(from, to, 0);
    assert_true(need > 0 && need * 2 < all); /* else the test could not tell the plans apart */
    assert_int_equal(cc_store_exec(pg, "ANALYZE"), CC_OK);
    assert_int_equal(cc_store_read_begin(pg), CC_OK);
    before = pg_readings_read();
    assert_int_equal(cc_query_readings(pg, CELL, &rg, LO, HI, &res), CC_OK);
    read = pg_readings_read() - before;
    cc_store_read_end(pg);
    assert_int_equal(res.stats.count, all);
    cc_query_result_free(&res);
    if (read > need)
        fprintf(stderr,
                "read %lld raw rows, the straddling buckets and edges hold %lld (of %lld)\n",
                (long long)read, (long long)need, (long long)all);
    assert_true(read <= need);
    assert_true(read > 0);
    assert_true(same_readings(from, to, 7200000) == all); /* and still the same answer */
}

/* Scans of readings_30m PostgreSQL has started in the current transaction (sequential or
 * index: the planner picks a sequential one on this small table). */
static int64_t pg_halves_scans(void)
{
    static const char sql[] =
        "SELECT CAST(coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS bigint)"
        " FROM pg_stat_xact_user_tables WHERE relid = CAST('readings_30m' AS regclass)";
    struct cc_stmt *s = NULL;
    int64_t n;

    assert_int_equal(cc_stmt_prepare(pg, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    n = cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return n;
}

/* Half-hour rows of the cell with c0 <= bucket_ts < c1 on SQLite; straddling: only those
 * that straddle LO or HI. */
static int64_t half_rows(int64_t c0, int64_t c1, int straddling)
{
    static const char sql[] =
        "SELECT count(*), coalesce(sum((min_temp < $4 OR max_temp > $5) AND max_temp >= $4"
        " AND min_temp <= $5), 0) FROM readings_30m"
        " WHERE cold_cell_id = $1 AND bucket_ts >= $2 AND bucket_ts < $3 AND count > 0";
    struct cc_stmt *s = NULL;
    int64_t n;

    assert_int_equal(cc_stmt_prepare(lite, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_all(s, "iii", (int64_t)CELL, c0, c1), CC_OK);
    assert_int_equal(cc_stmt_bind_double(s, 4, LO), CC_OK);
    assert_int_equal(cc_stmt_bind_double(s, 5, HI), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    n = cc_stmt_column_int64(s, straddling ? 1 : 0);
    cc_stmt_release(s);
    return n;
}

/* The scans of readings_30m that the 2-hour series of [from, to) starts on PostgreSQL with
 * the list limit at list_max; the answer equals SQLite's and the raw one. */
static int64_t halves_scans_with(int64_t from, int64_t to, size_t list_max)
{
    struct cc_query_range rg = range_of(from, to, 7200000);
    struct cc_query_result res;
    int64_t before, read;

    cc_query_set_pg_list_max(list_max);
    assert_int_equal(cc_store_read_begin(pg), CC_OK);
    before = pg_halves_scans();
    assert_int_equal(cc_query_readings(pg, CELL, &rg, LO, HI, &res), CC_OK);
    read = pg_halves_scans() - before;
    cc_store_read_end(pg);
    cc_query_result_free(&res);
    same_readings(from, to, 7200000);
    cc_query_set_pg_list_max(CC_QUERY_PG_LIST_MAX);
    return read;
}

/* On PostgreSQL the straddling half hours that the half-hour statement returned go to
 * the detail statements as a list (CC_QUERY_PG_LIST_MAX), so readings_30m is scanned
 * once a query, not once more by each of the two detail statements (1,440 rows each for
 * 30 days, docs/queries.md). At the limit the list is used, above it the range texts,
 * with the same answer. Windows starting and ending mid-bucket, one with a single
 * straddling half hour (a list of one), one with none (no detail statement), one with
 * no reading at all. */
static void test_query_pg_half_hours_read_once(void **state)
{
    const int64_t from = T0 - 3600000 + 4321, to = T0 + SPAN_MS + 3600000 - 1234;
    const int64_t c0 = from - from % 1800000 + 1800000, c1 = to - to % 1800000;
    const int64_t h3 = T0 + 3 * 3600000; /* an hour with one excursion (load_readings) */
    int64_t k = half_rows(c0, c1, 1);

    (void)state;
    assert_true(k > 1 && k < half_rows(c0, c1, 0)); /* else nothing tells the ways apart */
    assert_int_equal(cc_store_exec(pg, "ANALYZE"), CC_OK);
    assert_int_equal(halves_scans_with(from, to, CC_QUERY_PG_LIST_MAX), 1);
    assert_int_equal(halves_scans_with(from, to, (size_t)k), 1);     /* at the limit: the list */
    assert_int_equal(halves_scans_with(from, to, (size_t)k - 1), 3); /* above: the ranges */
    assert_int_equal(halves_scans_with(from, to, 0), 3);
    /* One straddling half hour (minute 17 of hour 3 at 8.01): a list of one. */
    assert_int_equal(half_rows(h3, h3 + 3600000, 1), 1);
    assert_int_equal(halves_scans_with(h3 - 4321, h3 + 3600000 + 1234, 1), 1);
    assert_int_equal(halves_scans_with(h3 - 4321, h3 + 3600000 + 1234, 0), 3);
    /* None (every reading of hour 0 in range): no detail statement runs either way. */
    assert_int_equal(half_rows(T0, T0 + 3600000, 1), 0);
    assert_int_equal(halves_scans_with(T0 + 1, T0 + 3600000 + 7, CC_QUERY_PG_LIST_MAX), 1);
    assert_int_equal(halves_scans_with(T0 + 1, T0 + 3600000 + 7, 0), 1);
    /* No reading at all. */
    assert_int_equal(halves_scans_with(T0 - 3 * DAY_MS + 99, T0 - DAY_MS - 99, 0), 1);
}

/* On PostgreSQL a query sends its statements ahead (cc_stmt_send): its transaction's
 * BEGIN, the half hours and the ends' statements go in one round trip, the straddling
 * half hours' detail in a second, the COMMIT in a third, so a 2-hour series over days
 * with straddling half hours waits for the server three times, not once per statement
 * (nine). The answer equals SQLite's and the raw one. */
static void test_query_pg_round_trips(void **state)
{
    const int64_t from = T0 - 3600000 + 4321, to = T0 + SPAN_MS + 3600000 - 1234;
    const int64_t c0 = from - from % 1800000 + 1800000, c1 = to - to % 1800000;
    struct cc_query_range rg = range_of(from, to, 7200000);
    struct cc_query_result res;
    int64_t before;

    (void)state;
    assert_true(half_rows(c0, c1, 1) > 0); /* else the detail's round trip is not needed */
    assert_int_equal(cc_query_readings(pg, CELL, &rg, LO, HI, &res), CC_OK); /* prepares */
    cc_query_result_free(&res);
    before = cc_store_round_trips(pg);
    assert_int_equal(cc_query_readings(pg, CELL, &rg, LO, HI, &res), CC_OK);
    assert_int_equal(cc_store_round_trips(pg) - before, 3);
    cc_query_result_free(&res);
    same_readings(from, to, 7200000);
}

/* ---- dashboards, latest ------------------------------------------------------------ */

static void test_query_pg_dashboards(void **state)
{
    static const struct cc_principal c1 = {1, CC_ROLE_CUSTOMER}, c2 = {2, CC_ROLE_CUSTOMER};
    static const struct cc_principal tech = {10, CC_ROLE_TECHNICIAN};
    static const struct cc_principal admin = {11, CC_ROLE_ADMIN};
    char *j;

    (void)state;
    j = same_json(cc_dashboard_customer, &c1, CC_OK);
    /* Cell 3's latest is device 7's: tied on ts with device 5's, inserted later. */
    assert_non_null(
        strstr(j, "\"latest\":{\"coldCellId\":3,\"deviceId\":7,"
                  "\"serialNumber\":\"SN,\\\"7\\\"\",\"ts\":\"2025-11-28T00:59:01.234Z\""));
    assert_non_null(strstr(j, "\"name\":\"Spare\",\"minTemp\":0.5,\"maxTemp\":4,\"devices\":[],"
                              "\"latest\":null,\"activeAlerts\":0}"));
    assert_non_null(strstr(j, "\"summary\":{\"locations\":1,\"coldCells\":2,\"devices\":3,"
                              "\"devicesOnline\":1,\"activeAlerts\":2}"));
    free(j);
    j = same_json(cc_dashboard_customer, &c2, CC_OK);
    assert_non_null(strstr(j, "\"maxTemp\":-15.5"));
    assert_non_null(strstr(j, "\"humidity\":12.25,\"powerStatus\":true,\"doorStatus\":false"));
    free(j);
    free(same_json(cc_dashboard_customer, &tech, CC_OK));
    j = same_json(cc_dashboard_customer, &admin, CC_OK);
    assert_non_null(strstr(j, "\"summary\":{\"locations\":2,\"coldCells\":3,\"devices\":4,"
                              "\"devicesOnline\":2,\"activeAlerts\":4}"));
    free(j);

    same_json(cc_dashboard_technician, &c1, CC_ERR_FORBIDDEN);
    j = same_json(cc_dashboard_technician, &tech, CC_OK);
    assert_string_equal(j, "{\"customers\":1,\"coldCells\":2,\"activeAlerts\":2,\"alertsByType\":"
                           "{\"HIGH_TEMP\":1,\"LOW_TEMP\":0,\"POWER_LOSS\":0,\"SENSOR_ERROR\":1},"
                           "\"customerList\":[{\"id\":1,\"name\":\"C1\",\"email\":"
                           "\"c1@example.com\",\"locations\":1,\"coldCells\":2,\"devices\":3,"
                           "\"activeAlerts\":2}]}");
    free(j);
    j = same_json(cc_dashboard_technician, &admin, CC_OK);
    assert_non_null(strstr(j, "\"alertsByType\":{\"HIGH_TEMP\":1,\"LOW_TEMP\":1,"
                              "\"POWER_LOSS\":1,\"SENSOR_ERROR\":1}"));
    free(j);
}

/* ---- CSV --------------------------------------------------------------------------- */

struct sink {
    char *buf;
    size_t len;
    int writes;
};

static int sink_write(void *ctx, const char *b, size_t n)
{
    struct sink *s = ctx;
    char *nb = realloc(s->buf, s->len + n + 1);

    if (nb == NULL)
        return -1;
    memcpy(nb + s->len, b, n);
    s->buf = nb;
    s->len += n;
    s->buf[s->len] = '\0';
    s->writes++;
    return 0;
}

/* Counts CRLF-terminated lines. */
static size_t lines(const char *s)
{
    size_t n = 0;

    for (const char *p = strstr(s, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n"))
        n++;
    return n;
}

static void test_query_pg_csv_export(void **state)
{
    struct sink a = {0}, b = {0};

    (void)state;
    assert_int_equal(cc_query_csv(lite, CELL, T0, T0 + SPAN_MS, sink_write, &a), CC_OK);
    assert_int_equal(cc_query_csv(pg, CELL, T0, T0 + SPAN_MS, sink_write, &b), CC_OK);
    assert_true(lines(a.buf) > 3 * CC_CSV_PAGE_ROWS); /* several pages */
    assert_int_equal(b.len, a.len);
    assert_string_equal(b.buf, a.buf);
    /* The tie at the first timestamp by device; empty fields for NULLs; quoting. */
    assert_non_null(strstr(a.buf, "\r\n2025-11-26T00:00:01.234Z,3,5,SN-5,4,,,,,"
                                  "2025-11-26T00:00:02.734Z\r\n"
                                  "2025-11-26T00:00:01.234Z,3,7,\"SN,\"\"7\"\"\",3.3,,false,,,"
                                  "2025-11-26T00:00:02.734Z\r\n"
                                  "2025-11-26T00:00:01.251Z,3,6,SN-6,5.25,,,,87.5,"));
    free(a.buf);
    free(b.buf);
}

/* ---- the live feed ----------------------------------------------------------------- */

/* Takes every queued message of s into one text ("msg\n" each). */
static char *drain(struct cc_feed_sub *s)
{
    struct sink out = {0};
    char *msg;
    size_t len;
    int code = 0;

    while (cc_feed_sub_next(s, 0, &msg, &len, &code) == CC_FEED_MSG) {
        assert_int_equal(sink_write(&out, msg, len), 0);
        assert_int_equal(sink_write(&out, "\n", 1), 0);
        free(msg);
    }
    return out.buf != NULL ? out.buf : strdup("");
}

/* Appends a subscriber's messages and a verify's code to out. */
static void note(struct sink *out, const char *what, struct cc_feed_sub *s, int verify_rc)
{
    char *m = s != NULL ? drain(s) : strdup("");
    char line[64];

    snprintf(line, sizeof line, "%s %s\n", what, cc_rc_code(verify_rc));
    assert_int_equal(sink_write(out, line, strlen(line)), 0);
    assert_int_equal(sink_write(out, m, strlen(m)), 0);
    free(m);
}

/* The feed on one store: hello lists, alerts to the allowed, the user check (token
 * version, disabled). Returns the transcript (malloc'd). Every alert goes to a cell all
 * subscribers then registered may read: a cell outside a subscriber's set would be asked
 * of cc_access_check, which is not on PostgreSQL yet. */
static char *feed_run(struct cc_store *st)
{
    static const struct cc_principal tech2 = {12, CC_ROLE_TECHNICIAN};
    static const struct cc_principal c2 = {2, CC_ROLE_CUSTOMER};
    static const struct cc_principal admin = {11, CC_ROLE_ADMIN};
    struct cc_feed *f = NULL;
    struct cc_feed_sub *t = NULL, *c = NULL, *a = NULL, *t2 = NULL;
    struct sink out = {0};
    size_t queued = 0;

    assert_int_equal(cc_feed_new(st, &f), CC_OK);
    assert_int_equal(cc_feed_sub_new(f, st, &c2, 0, NULL, &c), CC_OK);
    note(&out, "hello c2", c, 0);
    cc_feed_sub_remove(f, c);
    assert_int_equal(cc_feed_sub_new(f, st, &tech2, 0, NULL, &t), CC_OK);
    assert_int_equal(cc_feed_sub_new(f, st, &admin, 0, NULL, &a), CC_OK);
    cc_feed_sub_set_token_version(t, 0);
    /* An old now_ms: each subscriber's set is reloaded first (user check, cells). */
    assert_int_equal(
        cc_feed_on_message(f, "alerts/9", "{\"id\":1,\"coldCellId\":9}", 23, T0 + 1000, &queued),
        CC_OK);
    assert_int_equal(queued, 2);
    assert_int_equal(
        cc_feed_on_message(f, "alerts/3", "{\"id\":2,\"v\":1.5}", 16, T0 + 2000, &queued), CC_OK);
    assert_int_equal(queued, 2);
    note(&out, "tech2", t, cc_feed_sub_verify(t, st));
    note(&out, "admin", a, cc_feed_sub_verify(a, st));
    /* A password change voids tech2's token; a disabled user fails whatever the token. */
    assert_int_equal(cc_store_exec(st, "UPDATE users SET token_version = 1 WHERE id = 12"), CC_OK);
    note(&out, "tech2 new password", NULL, cc_feed_sub_verify(t, st));
    assert_int_equal(cc_store_exec(st, "UPDATE users SET token_version = 0, disabled = 1"
                                       " WHERE id = 12"),
                     CC_OK);
    assert_int_equal(cc_feed_sub_new(f, st, &tech2, 0, NULL, &t2), CC_OK);
    note(&out, "tech2 disabled", NULL, cc_feed_sub_verify(t2, st));
    assert_int_equal(cc_store_exec(st, "UPDATE users SET disabled = 0 WHERE id = 12"), CC_OK);
    note(&out, "admin again", a, cc_feed_sub_verify(a, st));
    cc_feed_free(f);
    return out.buf;
}

static void test_query_pg_feed(void **state)
{
    char *a, *b;

    (void)state;
    a = feed_run(lite);
    b = feed_run(pg);
    assert_string_equal(b, a);
    assert_string_equal(a, "hello c2 OK\n"
                           "{\"type\":\"hello\",\"userId\":2,\"coldCellIds\":[4]}\n"
                           "tech2 OK\n"
                           "{\"type\":\"hello\",\"userId\":12,\"coldCellIds\":[3,9]}\n"
                           "{\"type\":\"alert\",\"alert\":{\"id\":1,\"coldCellId\":9}}\n"
                           "{\"type\":\"alert\",\"alert\":{\"id\":2,\"v\":1.5}}\n"
                           "admin OK\n"
                           "{\"type\":\"hello\",\"userId\":11,\"coldCellIds\":[3,4,9]}\n"
                           "{\"type\":\"alert\",\"alert\":{\"id\":1,\"coldCellId\":9}}\n"
                           "{\"type\":\"alert\",\"alert\":{\"id\":2,\"v\":1.5}}\n"
                           "tech2 new password UNAUTHORIZED\n"
                           "tech2 disabled UNAUTHORIZED\n"
                           "admin again OK\n");
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_pg_is_postgresql),
        cmocka_unit_test(test_query_pg_raw_range),
        cmocka_unit_test(test_query_pg_5m_range),
        cmocka_unit_test(test_query_pg_30m_range),
        cmocka_unit_test(test_query_pg_dashboards),
        cmocka_unit_test(test_query_pg_csv_export),
        cmocka_unit_test(test_query_pg_feed),
        cmocka_unit_test(test_query_pg_reads_only_straddling_raw),
        cmocka_unit_test(test_query_pg_half_hours_read_once),
        cmocka_unit_test(test_query_pg_round_trips),
    };

    cc_log_init("test_query_pg", CC_LOG_ERROR, 0);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
