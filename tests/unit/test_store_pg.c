/* test_store_pg.c - the PostgreSQL store (cc_store_pg.c, cc_store_pg_migrate.c) against
 * the SQLite one: the same script of readings, status and bad messages through
 * cc_ingest_batch on both stores must leave the same readings, rollups, devices, dead
 * letters, dropped counter and checkpoint, and give the same per-message results. Also:
 * migrations run twice and by two threads at once, and serials that need quoting in an
 * array parameter. Readings stay within the cells' thresholds (no alert is raised: the
 * alert writes are another module's, not on PostgreSQL yet).
 * The cluster is a throwaway one (tools/pgtest.sh, started by the group's setup; the unit
 * tests run from the repository root); each test gets a fresh database in it. A
 * PostgreSQL that cannot start fails the group: it is not skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_alert.h"
#include "cc_db.h"
#include "cc_dbi.h"
#include "cc_ingest.h"
#include "cc_log.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "cc_rollup_math.h"
#include "fixture.h"
#include "cc_store.h"
#include "cc_time.h"

#define PG_PORT "55411"    /* this suite's socket name (tools/pgtest.sh PORT) */
#define T0 1764135900000LL /* "received", 2025-11-26 */
#define S 1000LL
#define LINE_MAX_ 512 /* bytes of one dumped row */

static char pg_dir[64];
static char admin_url[256]; /* the cluster's coldchain database */
static int db_seq;          /* databases created so far: t1, t2, ... */

struct fx {
    char path[64]; /* the SQLite file */
    char url[256]; /* this test's PostgreSQL database */
    struct cc_store *lite, *pg;
};

static int group_teardown(void **state)
{
    (void)state;
    return fixture_pg_stop(pg_dir);
}

static int group_setup(void **state)
{
    (void)state;
    return fixture_pg_start("store-pg", PG_PORT, pg_dir, sizeof pg_dir, admin_url,
                            sizeof admin_url);
}

/* A new empty database in the cluster; its URL in url. */
static void fresh_database(char *url, size_t cap)
{
    struct cc_store *admin = NULL;
    char sql[64];

    db_seq++;
    assert_int_equal(cc_store_open(admin_url, 0, &admin), CC_OK);
    snprintf(sql, sizeof sql, "CREATE DATABASE t%d", db_seq);
    assert_int_equal(cc_store_exec(admin, sql), CC_OK);
    cc_store_close(admin);
    snprintf(url, cap, "postgresql:///t%d?host=%s&port=" PG_PORT "&user=coldchain", db_seq, pg_dir);
}

/* Devices 1..4 in cells 1 and 2 (2..8 °C); SN-Q's serial needs quoting in an array. */
static const char seed[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 'c1@example.com', 'x', 'CUSTOMER', 'C1', 0);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'L', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, hysteresis,"
    " alarm_delay_s, created_at) VALUES (1, 1, 'A', 2, 8, 0.5, 0, 0),"
    " (2, 1, 'B', 2, 8, 0.5, 0, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
    " created_at) VALUES (1, 'SN-A', 1, 'h', 'p', 0), (2, 'SN-B', 1, 'h', 'p', 0),"
    " (3, 'SN-C', 2, 'h', 'p', 0), (4, 'q\"b\\c,d{e} NULL', 2, 'h', 'p', 0);";
#define SN_Q "q\"b\\c,d{e} NULL"

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    int fd;

    if (f == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "/tmp/cc-test-store-pg-XXXXXX");
    fd = mkstemp(f->path);
    if (fd < 0)
        return -1;
    close(fd);
    unlink(f->path);
    fresh_database(f->url, sizeof f->url);
    if (cc_store_open(f->path, CC_STORE_CREATE | CC_STORE_MIGRATE, &f->lite) != CC_OK ||
        cc_store_open(f->url, CC_STORE_MIGRATE, &f->pg) != CC_OK ||
        cc_store_exec(f->lite, seed) != CC_OK || cc_store_exec(f->pg, seed) != CC_OK)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    cc_store_close(f->lite);
    cc_store_close(f->pg);
    cc_db_remove_files(f->path);
    free(f);
    return 0;
}

/* A batch of messages: topics and payloads owned here. */
struct script {
    struct cc_ingest_msg *m;
    size_t n, cap;
};

static void add(struct script *sc, const char *topic, int64_t received_at, const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;

    if (sc->n == sc->cap) {
        sc->cap = sc->cap ? 2 * sc->cap : 64;
        sc->m = realloc(sc->m, sc->cap * sizeof *sc->m);
        assert_non_null(sc->m);
    }
    va_start(ap, fmt);
    assert_true(vasprintf(&p, fmt, ap) >= 0);
    va_end(ap);
    memset(&sc->m[sc->n], 0, sizeof sc->m[sc->n]);
    sc->m[sc->n].topic = strdup(topic);
    sc->m[sc->n].payload = p;
    sc->m[sc->n].len = strlen(p);
    sc->m[sc->n].received_at = received_at;
    sc->n++;
}

static void script_free(struct script *sc)
{
    for (size_t i = 0; i < sc->n; i++) {
        free((char *)sc->m[i].topic);
        free((char *)sc->m[i].payload);
        cc_ingest_result_clear(&sc->m[i].res);
    }
    free(sc->m);
    memset(sc, 0, sizeof *sc);
}

/* Runs sc in one transaction on each store (a copy each) and compares the results of
 * every message. Returns the duplicates counted, for the script's own checks. */
static size_t run_both(struct fx *f, struct script *sc)
{
    struct cc_ingest_msg *other = malloc(sc->n * sizeof *other);
    size_t dups = 0;

    assert_non_null(other);
    memcpy(other, sc->m, sc->n * sizeof *other);
    assert_int_equal(cc_store_begin(f->lite), CC_OK);
    assert_int_equal(cc_ingest_batch(f->lite, sc->m, sc->n), CC_OK);
    assert_int_equal(cc_store_commit(f->lite), CC_OK);
    assert_int_equal(cc_store_begin(f->pg), CC_OK);
    assert_int_equal(cc_ingest_batch(f->pg, other, sc->n), CC_OK);
    assert_int_equal(cc_store_commit(f->pg), CC_OK);
    for (size_t i = 0; i < sc->n; i++) {
        const struct cc_ingest_result *a = &sc->m[i].res, *b = &other[i].res;

        assert_int_equal(a->accepted, b->accepted);
        assert_int_equal(a->duplicates, b->duplicates);
        assert_int_equal(a->rejected, b->rejected);
        assert_int_equal(a->error != NULL, b->error != NULL);
        dups += a->duplicates;
        cc_ingest_result_clear(&other[i].res);
    }
    free(other);
    return dups;
}

/* Every row of sql as text lines, columns read by kind: i integer, d double, t text,
 * b blob (hex); NULL as "NULL". The same text on both stores when the rows are equal. */
static char *dump(struct cc_store *st, const char *sql, const char *kinds)
{
    struct cc_stmt *s = NULL;
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    int rc;

    assert_non_null(out);
    out[0] = '\0';
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    while ((rc = cc_stmt_step(s)) == CC_ROW) {
        char line[LINE_MAX_ * 20];
        size_t n = 0;

        for (int c = 0; kinds[c] != '\0'; c++) {
            if (cc_stmt_column_is_null(s, c)) {
                n += (size_t)snprintf(line + n, sizeof line - n, "NULL|");
                continue;
            }
            switch (kinds[c]) {
            case 'i':
                n += (size_t)snprintf(line + n, sizeof line - n, "%lld|",
                                      (long long)cc_stmt_column_int64(s, c));
                break;
            case 'd':
                n += (size_t)snprintf(line + n, sizeof line - n, "%.17g|",
                                      cc_stmt_column_double(s, c));
                break;
            case 't':
                n += (size_t)snprintf(line + n, sizeof line - n, "%s|", cc_stmt_column_text(s, c));
                break;
            default: {
                const unsigned char *p = cc_stmt_column_blob(s, c);
                size_t bytes = cc_stmt_column_bytes(s, c);

                for (size_t k = 0; k < bytes && n + 3 < sizeof line; k++)
                    n += (size_t)snprintf(line + n, sizeof line - n, "%02x", p[k]);
                n += (size_t)snprintf(line + n, sizeof line - n, "|");
            }
            }
            assert_true(n < sizeof line);
        }
        while (len + n + 2 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        memcpy(out + len, line, n);
        len += n;
        out[len++] = '\n';
        out[len] = '\0';
    }
    assert_int_equal(rc, CC_OK);
    cc_stmt_release(s);
    return out;
}

static int64_t one_int(struct cc_store *st, const char *sql)
{
    struct cc_stmt *s = NULL;
    int64_t v;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    v = cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return v;
}

static const char sql_readings[] =
    "SELECT device_id, cold_cell_id, ts, temperature, humidity, power_status, door_status,"
    " battery_level, received_at FROM readings ORDER BY device_id, ts";
/* mkt_sum apart: a floating sum whose order differs (compared with a tolerance). */
static const char sql_5m[] =
    "SELECT cold_cell_id, bucket_ts, min_temp, max_temp, sum_temp, count, sum_q, mkt_hi,"
    " mkt_lo, first_ts, last_ts FROM readings_5m ORDER BY cold_cell_id, bucket_ts";
static const char sql_5m_mkt[] = "SELECT mkt_sum FROM readings_5m ORDER BY cold_cell_id, bucket_ts";
static const char sql_30m[] =
    "SELECT cold_cell_id, bucket_ts, min_temp, max_temp, count, sum_q, mkt_hi, mkt_lo,"
    " first_ts, last_ts FROM readings_30m ORDER BY cold_cell_id, bucket_ts";
static const char sql_devices[] =
    "SELECT id, serial_number, status, last_seen_at, newest_ts, firmware_version FROM devices"
    " ORDER BY id";
static const char sql_rejected[] =
    "SELECT received_at, topic, payload, payload_size, error_code, error_message, device_id,"
    " seq FROM rejected_messages ORDER BY device_id, seq";

static void assert_same_text(struct fx *f, const char *sql, const char *kinds)
{
    char *a = dump(f->lite, sql, kinds), *b = dump(f->pg, sql, kinds);

    if (strcmp(a, b) != 0) {
        size_t i = 0;

        while (a[i] == b[i])
            i++;
        while (i > 0 && a[i - 1] != '\n')
            i--;
        fail_msg("%.60s...: SQLite and PostgreSQL differ at\n  sqlite: %.200s\n  pg:     %.200s",
                 sql, a + i, b + i);
    }
    free(a);
    free(b);
}

/* Every table the ingest path writes, equal on both stores. */
static void assert_same_stores(struct fx *f)
{
    int64_t a, b, g1, o1, g2, o2;
    char *ma, *mb, *pa, *pb;

    assert_same_text(f, sql_readings, "iiiddiidi");
    assert_same_text(f, sql_5m, "iidddiiiiii");
    assert_same_text(f, sql_30m, "iiddiiiiii");
    assert_same_text(f, sql_devices, "ittiit");
    assert_same_text(f, sql_rejected, "itbittii");
    ma = dump(f->lite, sql_5m_mkt, "d");
    mb = dump(f->pg, sql_5m_mkt, "d");
    for (pa = ma, pb = mb; *pa != '\0' && *pb != '\0';) {
        double x = strtod(pa, &pa), y = strtod(pb, &pb);

        assert_true(fabs(x - y) <= 1e-12 * fabs(x));
        pa += strspn(pa, "|\n");
        pb += strspn(pb, "|\n");
    }
    assert_true(*pa == '\0' && *pb == '\0');
    free(ma);
    free(mb);
    assert_int_equal(cc_store_dead_letters_dropped(f->lite, &a), CC_OK);
    assert_int_equal(cc_store_dead_letters_dropped(f->pg, &b), CC_OK);
    assert_int_equal(a, b);
    assert_int_equal(cc_store_checkpoint_get(f->lite, "coldchain-ingestd", &g1, &o1), CC_OK);
    assert_int_equal(cc_store_checkpoint_get(f->pg, "coldchain-ingestd", &g2, &o2), CC_OK);
    assert_int_equal(g1, g2);
    assert_int_equal(o1, o2);
}

#define R(dev) "devices/" dev "/readings"
#define ST(dev) "devices/" dev "/status"

/* The first script: several devices and messages per device, duplicates within the
 * batch (one payload, two messages), status messages, bad topics, an unknown device,
 * a partly valid payload, the serial that needs quoting. Temperatures are multiples of
 * 1/64 so that every floating sum is exact in any order. */
static void script_one(struct script *sc)
{
    add(sc, R("SN-A"), T0, "{\"ts\":%lld,\"temperature\":5.25,\"humidity\":40.5}", T0 - 100 * S);
    add(sc, R("SN-B"), T0, "[{\"ts\":%lld,\"temperature\":4.0},{\"ts\":%lld,\"temperature\":6.5}]",
        T0 - 100 * S, T0 - 700 * S);
    add(sc, R("SN-A"), T0 + 1,
        "[{\"ts\":%lld,\"temperature\":6.0,\"powerStatus\":true,\"doorStatus\":false,"
        "\"batteryLevel\":87.5},{\"ts\":%lld,\"temperature\":3.125},"
        "{\"ts\":%lld,\"temperature\":3.125}]",
        T0 - 90 * S, T0 - 80 * S, T0 - 80 * S);
    add(sc, R("SN-A"), T0 + 2, "{\"ts\":%lld,\"temperature\":7.0}", T0 - 90 * S); /* again */
    add(sc, ST("SN-A"), T0 + 3, "{\"online\":true,\"firmwareVersion\":\"2.0.1\"}");
    add(sc, ST("SN-B"), T0 + 3, "{\"online\":false}");
    add(sc, ST("SN-C"), T0 + 3, "{\"online\":\"yes\"}");
    add(sc, "devices/SN-A/other", T0 + 4, "{}");
    add(sc, "nowhere", T0 + 4, "x");
    add(sc, R("SN-X"), T0 + 5, "{\"ts\":%lld,\"temperature\":5.0}", T0 - 60 * S);
    add(sc, R("SN-C"), T0 + 5, "[{\"ts\":%lld,\"temperature\":4.5},{\"temperature\":\"hot\"}]",
        T0 - 30 * S);
    add(sc, R("SN-B"), T0 + 6, "not json");
    add(sc, R(SN_Q), T0 + 6, "{\"ts\":%lld,\"temperature\":4.75}", T0 - 20 * S);
    add(sc, ST(SN_Q), T0 + 7, "{\"online\":true,\"firmwareVersion\":\"1.0-q\"}");
    add(sc, R("SN-C"), T0 + 8, "{\"ts\":%lld,\"temperature\":5.5}", T0 - 10 * S);
}

/* The same script on both stores, in three batches: the first, a redelivery of it with
 * new readings (duplicates against stored rows), and messages of CC_MAX_BATCH readings
 * crossing CC_INGEST_RUN_READINGS_MAX (several runs in one batch). */
static void test_store_pg_ingest_same_as_sqlite(void **state)
{
    struct fx *f = *state;
    struct script sc = {0};
    const int per = CC_MAX_BATCH;
    const int msgs = CC_INGEST_RUN_READINGS_MAX / CC_MAX_BATCH + 2;

    script_one(&sc);
    assert_true(run_both(f, &sc) >= 2); /* 3.125 twice in one payload, 7.0 vs 6.0 */
    assert_same_stores(f);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM devices WHERE status = 'OFFLINE'"), 1);
    script_free(&sc);

    script_one(&sc);
    add(&sc, R("SN-A"), T0 + 20, "{\"ts\":%lld,\"temperature\":2.5}", T0 + 10 * S);
    add(&sc, R("SN-B"), T0 + 20, "{\"ts\":%lld,\"temperature\":7.75}", T0 + 10 * S);
    assert_true(run_both(f, &sc) >= 8);
    /* Moving November's rows out of readings_default on PG changes nothing visible. */
    assert_int_equal(cc_store_maintain(f->pg, T0), CC_OK);
    assert_int_equal(cc_store_maintain(f->lite, T0), CC_OK);
    assert_true(one_int(f->pg, "SELECT count(*) FROM readings_202511") > 0);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings_default"), 0);
    assert_same_stores(f);
    script_free(&sc);

    for (int m = 0; m < msgs; m++) {
        size_t cap = (size_t)per * 64 + 3, len = 0;
        char *p = malloc(cap);
        int64_t base = T0 - (int64_t)(msgs - m) * per * S;

        assert_non_null(p);
        p[len++] = '[';
        for (int i = 0; i < per; i++)
            len += (size_t)snprintf(p + len, cap - len, "%s{\"ts\":%lld,\"temperature\":%.4f}",
                                    i ? "," : "", (long long)(base + i * S + m),
                                    3.0 + (double)((i * 7 + m) % 64) / 16.0);
        p[len++] = ']';
        p[len] = '\0';
        add(&sc, m % 2 ? R("SN-C") : R("SN-B"), T0 + 30 + m, "%s", p);
        free(p);
    }
    add(&sc, R("SN-B"), T0 + 99, "{\"ts\":%lld,\"temperature\":5.0}", T0 - (int64_t)msgs * per * S);
    assert_int_equal(run_both(f, &sc), 1); /* the last message repeats the first reading */
    assert_int_equal(cc_store_begin(f->lite), CC_OK);
    assert_int_equal(cc_store_checkpoint_set(f->lite, "coldchain-ingestd", 3, 12345), CC_OK);
    assert_int_equal(cc_store_commit(f->lite), CC_OK);
    assert_int_equal(cc_store_begin(f->pg), CC_OK);
    assert_int_equal(cc_store_checkpoint_set(f->pg, "coldchain-ingestd", 3, 12345), CC_OK);
    assert_int_equal(cc_store_commit(f->pg), CC_OK);
    assert_same_stores(f);
    /* What the script says it did, on PostgreSQL. */
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings WHERE device_id = 4"), 1);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings"), 10 + msgs * per);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM alerts"), 0);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM devices WHERE firmware_version"
                                    " IS NOT NULL"),
                     2);
    assert_true(one_int(f->pg, "SELECT count(*) FROM rejected_messages") >= 10);
    script_free(&sc);
}

/* One batch of several runs (CC_INGEST_RUN_READINGS_MAX crossed) whose readings are all
 * newer than the device's newest_ts, its last message repeating the newest reading of the
 * first run: the second run must read the newest_ts the first wrote in the same
 * transaction (sql_insert_new is for readings it proves new), so the repeat is a duplicate,
 * not a key violation that loses the batch. Stored once, the stores agree. */
static void test_store_pg_new_readings_repeated_across_runs(void **state)
{
    struct fx *f = *state;
    struct script sc = {0};
    const int per = CC_MAX_BATCH;
    const int msgs = CC_INGEST_RUN_READINGS_MAX / CC_MAX_BATCH + 2;
    const int64_t base0 = T0 + 100 * S;
    const int64_t now = base0 + (int64_t)(msgs + 1) * per * S; /* no reading from the future */

    add(&sc, R("SN-B"), T0, "{\"ts\":%lld,\"temperature\":5.0}", T0);
    assert_int_equal(run_both(f, &sc), 0);
    script_free(&sc);
    for (int m = 0; m < msgs; m++) {
        size_t cap = (size_t)per * 64 + 3, len = 0;
        char *p = malloc(cap);
        int64_t base = base0 + (int64_t)m * per * S;

        assert_non_null(p);
        p[len++] = '[';
        for (int i = 0; i < per; i++)
            len += (size_t)snprintf(p + len, cap - len, "%s{\"ts\":%lld,\"temperature\":5.0}",
                                    i ? "," : "", (long long)(base + i * S));
        p[len++] = ']';
        p[len] = '\0';
        add(&sc, R("SN-B"), now + m, "%s", p);
        free(p);
    }
    add(&sc, R("SN-B"), now + msgs, "{\"ts\":%lld,\"temperature\":5.0}",
        base0 + (int64_t)(per - 1) * S);
    assert_int_equal(run_both(f, &sc), 1);
    assert_same_stores(f);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings WHERE device_id = 2"),
                     1 + msgs * per);
    script_free(&sc);
}

/* Issue 14, ingest cost: the batch insert's server work. coldchain_temp_q is inlined
 * (0005: a STRICT SQL function with a CASE body never is, and ran as a function of its own
 * per reading), and the rollup rows' updates are HOT (0006: fillfactor 50 on readings_5m
 * and readings_30m), as the devices' are (0002). Batches of one reading per device, a
 * minute apart, update the same buckets, as ingestd's do; between the first and the rest,
 * older buckets fill the pages the current ones are on, as the other cells' new buckets
 * do in a real database (a page with room makes any update HOT, fillfactor or not). */
static void test_store_pg_ingest_cheap_paths(void **state)
{
    struct fx *f = *state;
    struct cc_stmt *s = NULL;
    int rc, calls = 0;

    /* A plan's text names the function only when it is called as one. */
    assert_int_equal(cc_stmt_prepare(f->pg,
                                     "EXPLAIN (VERBOSE, COSTS OFF) SELECT coldchain_temp_q(t)"
                                     " FROM (SELECT CAST(g AS double precision) / 3 AS t"
                                     " FROM generate_series(1, 2) g) v",
                                     &s),
                     CC_OK);
    while ((rc = cc_stmt_step(s)) == CC_ROW)
        calls += strstr(cc_stmt_column_text(s, 0), "coldchain_temp_q") != NULL;
    assert_int_equal(rc, CC_OK);
    cc_stmt_release(s);
    assert_int_equal(calls, 0);
    assert_int_equal(one_int(f->pg, "SELECT coldchain_temp_q(2.5 / 1048576)"), 3);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM (SELECT coldchain_temp_q(NULL) q) x"
                                    " WHERE q IS NULL"),
                     1);

    for (int b = 0; b < 5; b++) {
        struct script sc = {0};

        add(&sc, R("SN-A"), T0 + b * 60 * S, "{\"ts\":%lld,\"temperature\":4.5}", T0 + b * 60 * S);
        add(&sc, R("SN-C"), T0 + b * 60 * S, "{\"ts\":%lld,\"temperature\":5.5}", T0 + b * 60 * S);
        run_both(f, &sc);
        script_free(&sc);
        if (b == 0)
            assert_int_equal(
                cc_store_exec(
                    f->pg, "INSERT INTO readings_5m (cold_cell_id, bucket_ts, min_temp,"
                           " max_temp, sum_temp, count, mkt_sum) SELECT 1, g * 300000, 0, 0,"
                           " 0, 1, 0 FROM generate_series(1, 300) g;"
                           "INSERT INTO readings_30m (cold_cell_id, bucket_ts, min_temp,"
                           " max_temp, count, sum_q, mkt_hi, mkt_lo, first_ts, last_ts) SELECT 1,"
                           " g * 1800000, 0, 0, 1, 0, 0, 0, 0, 0 FROM generate_series(1, 300) g"),
                CC_OK);
    }
    /* This session's counters, sent now rather than within the second (PostgreSQL 15). */
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM (SELECT pg_stat_force_next_flush()) x"),
                     1);
    assert_int_equal(cc_store_exec(f->pg, "SELECT 1"), CC_OK);
    assert_int_equal(cc_store_exec(f->pg, "SELECT pg_stat_clear_snapshot()"), CC_OK);
    /* T0 starts a 5-minute bucket, 15 minutes into a 30-minute one: the five batches hit
     * one bucket of each per cell, which the first inserts and the other four update. */
    assert_int_equal(one_int(f->pg, "SELECT n_tup_upd FROM pg_stat_user_tables"
                                    " WHERE relname = 'readings_5m'"),
                     8);
    assert_int_equal(one_int(f->pg, "SELECT n_tup_upd - n_tup_hot_upd FROM pg_stat_user_tables"
                                    " WHERE relname = 'readings_5m'"),
                     0);
    assert_int_equal(one_int(f->pg, "SELECT n_tup_upd FROM pg_stat_user_tables"
                                    " WHERE relname = 'readings_30m'"),
                     8);
    assert_int_equal(one_int(f->pg, "SELECT n_tup_upd - n_tup_hot_upd FROM pg_stat_user_tables"
                                    " WHERE relname = 'readings_30m'"),
                     0);
    assert_int_equal(cc_store_exec(f->pg, "DELETE FROM readings_5m WHERE bucket_ts < 1000000000;"
                                          "DELETE FROM readings_30m WHERE bucket_ts < 1000000000"),
                     CC_OK);
    assert_same_stores(f);
}

/* The rollups the PG store sums in C (cc_store_pg_rollup.c) from the keys its insert
 * returns: 1,200 readings of four devices in two cells over two days, temperatures from
 * -99 to 149 °C (MKT terms from tiny to large: the lo limbs' sums carry many times),
 * shuffled, in three overlapping calls with duplicates inside each, straight through
 * cc_store_readings_insert on both stores. Every rollup column equals SQLite's (its own
 * batch code, cc_store_rollup.c; temperatures are multiples of 1/64, so the floating sums
 * are exact in any order), and readings_30m's integer sums equal a recomputation from the
 * stored readings. A bucket fed twice, or fed by a duplicate, or missing one, fails. */
#define WIDE_N 1200
static void test_store_pg_rollups_exact_wide(void **state)
{
    struct fx *f = *state;
    static struct cc_reading rd[WIDE_N + 60];
    static struct cc_store_row rows[WIDE_N + 60];
    static unsigned char ins_lite[WIDE_N + 60], ins_pg[WIDE_N + 60];
    struct cc_device dev[4];
    const int64_t base = T0 - 2 * 86400 * S;
    const size_t from[3] = {0, 400, 850}, to[3] = {500, 900, WIDE_N};
    unsigned rnd = 14;
    size_t stored = 0;

    memset(dev, 0, sizeof dev);
    for (int d = 0; d < 4; d++) {
        dev[d].id = d + 1;
        dev[d].cold_cell_id = d < 2 ? 1 : 2; /* the fixture's seed */
    }
    for (int i = 0; i < WIDE_N; i++) {
        memset(&rd[i], 0, sizeof rd[i]);
        rd[i].ts_ms = base + (int64_t)i * 97000 + rand_r(&rnd) % 1000;
        rd[i].ts_given = 1;
        rd[i].temperature = -99.0 + (double)(rand_r(&rnd) % (248 * 64)) / 64.0;
        rows[i] = (struct cc_store_row){.dev = &dev[i % 4], .r = &rd[i], .received_at = T0};
    }
    for (int i = WIDE_N - 1; i > 0; i--) { /* shuffled: no order to rely on */
        int j = rand_r(&rnd) % (i + 1);
        struct cc_store_row t = rows[i];

        rows[i] = rows[j];
        rows[j] = t;
    }
    for (int c = 0; c < 3; c++) {
        size_t n = to[c] - from[c];
        struct cc_store_row *batch = malloc((n + 20) * sizeof *batch);

        assert_non_null(batch);
        memcpy(batch, rows + from[c], n * sizeof *batch);
        /* 20 in-batch duplicates with another temperature: the first occurrence wins. */
        for (int k = 0; k < 20; k++) {
            size_t at = n + (size_t)k;

            rd[WIDE_N + c * 20 + k] = *batch[k * 7].r;
            rd[WIDE_N + c * 20 + k].temperature += 1.0;
            batch[at] = batch[k * 7];
            batch[at].r = &rd[WIDE_N + c * 20 + k];
        }
        assert_int_equal(cc_store_begin(f->lite), CC_OK);
        assert_int_equal(cc_store_readings_insert(f->lite, batch, n + 20, ins_lite), CC_OK);
        assert_int_equal(cc_store_commit(f->lite), CC_OK);
        assert_int_equal(cc_store_begin(f->pg), CC_OK);
        assert_int_equal(cc_store_readings_insert(f->pg, batch, n + 20, ins_pg), CC_OK);
        assert_int_equal(cc_store_commit(f->pg), CC_OK);
        for (size_t i = 0; i < n + 20; i++) {
            assert_int_equal(ins_lite[i], ins_pg[i]);
            stored += ins_pg[i];
        }
        for (size_t i = n; i < n + 20; i++)
            assert_int_equal(ins_pg[i], 0);
        free(batch);
    }
    assert_int_equal(stored, WIDE_N);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings"), WIDE_N);
    assert_same_stores(f);
    /* readings_30m against the stored readings, per bucket: count, sum_q and the MKT
     * limbs (hi * 2^62 + lo, lo < 2^62) recomputed here. */
    {
        struct cc_stmt *s = NULL;
        int64_t cell = -1, bucket = 0, count = 0, sum_q = 0, buckets = 0, want[4] = {0};
        unsigned __int128 mkt = 0;
        int rc;

        assert_int_equal(
            cc_stmt_prepare(f->pg,
                            "SELECT r.cold_cell_id, r.ts - r.ts % 1800000, r.temperature,"
                            " m.count, m.sum_q, m.mkt_hi, m.mkt_lo FROM readings r"
                            " JOIN readings_30m m ON m.cold_cell_id = r.cold_cell_id"
                            " AND m.bucket_ts = r.ts - r.ts % 1800000 ORDER BY 1, 2",
                            &s),
            CC_OK);
        do {
            int64_t c = 0, b = 0;
            uint64_t hi, lo;

            rc = cc_stmt_step(s);
            if (rc == CC_ROW) {
                c = cc_stmt_column_int64(s, 0);
                b = cc_stmt_column_int64(s, 1);
            }
            if (cell >= 0 && (rc != CC_ROW || c != cell || b != bucket)) { /* a bucket ends */
                assert_int_equal(count, want[0]);
                assert_int_equal(sum_q, want[1]);
                assert_true((uint64_t)want[3] < ((uint64_t)1 << CC_QUERY_MKT_LIMB_BITS));
                assert_true(mkt ==
                            (((unsigned __int128)(uint64_t)want[2] << CC_QUERY_MKT_LIMB_BITS) +
                             (uint64_t)want[3]));
                buckets++;
                cell = -1;
            }
            if (rc != CC_ROW)
                break;
            if (cell < 0) {
                cell = c;
                bucket = b;
                count = sum_q = 0;
                mkt = 0;
                for (int k = 0; k < 4; k++)
                    want[k] = cc_stmt_column_int64(s, 3 + k);
            }
            cc_query_mkt_q(cc_stmt_column_double(s, 2), &hi, &lo);
            mkt += ((unsigned __int128)hi << CC_QUERY_MKT_LIMB_BITS) + lo;
            sum_q += cc_query_temp_q(cc_stmt_column_double(s, 2));
            count++;
        } while (rc == CC_ROW);
        assert_int_equal(rc, CC_OK);
        cc_stmt_release(s);
        assert_true(buckets > 40);
        assert_int_equal(buckets, one_int(f->pg, "SELECT count(*) FROM readings_30m"));
        assert_int_equal(one_int(f->pg, "SELECT sum(count) FROM readings_5m"), WIDE_N);
    }
}

/* 1,001 bad messages of one device in one batch: 1,000 kept, the oldest dropped and
 * counted, on both stores alike. */
static void test_store_pg_dead_letter_cap(void **state)
{
    struct fx *f = *state;
    struct script sc = {0};
    int64_t dropped = -1;

    for (int i = 0; i < CC_REJECTED_PER_DEVICE_MAX + 1; i++)
        add(&sc, R("SN-C"), T0 + i, "not json %d", i);
    run_both(f, &sc);
    assert_same_stores(f);
    assert_int_equal(cc_store_dead_letters_dropped(f->pg, &dropped), CC_OK);
    assert_int_equal(dropped, 1);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM rejected_messages WHERE device_id = 3"),
                     CC_REJECTED_PER_DEVICE_MAX);
    assert_int_equal(one_int(f->pg, "SELECT min(received_at) FROM rejected_messages"), T0 + 1);
    script_free(&sc);
}

/* Serials as array elements: quotes, backslashes, commas, braces, blanks, the word NULL
 * and repeats each find their device or none. */
static void test_store_pg_serials_quoted(void **state)
{
    struct fx *f = *state;
    const char *serials[] = {SN_Q, "SN-B", "NULL", "q\"b", "", "SN-B", "{SN-A}", "SN-A"};
    const size_t n = sizeof serials / sizeof serials[0];
    struct cc_device dev[sizeof serials / sizeof serials[0]];
    unsigned char found[sizeof serials / sizeof serials[0]];
    struct cc_device one;

    assert_int_equal(cc_store_devices_by_serial(f->pg, serials, n, dev, found), CC_OK);
    assert_true(found[0] && dev[0].id == 4 && strcmp(dev[0].serial, SN_Q) == 0);
    assert_true(found[1] && dev[1].id == 2 && dev[1].cold_cell_id == 1);
    assert_true(!found[2] && !found[3] && !found[4] && !found[6]);
    assert_true(found[5] && dev[5].id == 2);
    assert_true(found[7] && dev[7].id == 1 && strcmp(dev[7].status, "NEVER_SEEN") == 0);
    assert_false(dev[7].has_newest);
    assert_int_equal(cc_store_device_by_serial(f->pg, SN_Q, &one), CC_OK);
    assert_int_equal(one.id, 4);
    assert_int_equal(cc_store_device_by_serial(f->pg, "SN-Z", &one), CC_ERR_NOT_FOUND);
    /* A device that is not there: not found, as SQLite's loop says. */
    assert_int_equal(cc_store_device_seen(f->pg, 99, T0, 0, 0), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_store_device_status(f->pg, 99, 1, NULL, T0), CC_ERR_NOT_FOUND);
}

/* cc_store_devices_seen alone, on both: times only move forward, a call without a
 * newest reading keeps the stored one, and one device twice in a call takes its largest
 * times. */
static void test_store_pg_devices_seen_keeps_max(void **state)
{
    struct fx *f = *state;
    const struct cc_store_seen first[] = {{1, T0, 1, T0 - 5 * S, 0}, {2, T0, 0, 0, 0}};
    const struct cc_store_seen second[] = {{1, T0 - 10 * S, 1, T0 - 50 * S, 0},
                                           {3, T0 + 1, 1, T0 - 9 * S, 0},
                                           {3, T0, 1, T0 - 2 * S, 0},
                                           {2, T0 - 1, 1, T0 - 7 * S, 0}};
    struct cc_store *both[] = {f->lite, f->pg};

    for (int i = 0; i < 2; i++) {
        assert_int_equal(cc_store_begin(both[i]), CC_OK);
        assert_int_equal(cc_store_devices_seen(both[i], first, 2), CC_OK);
        assert_int_equal(cc_store_devices_seen(both[i], second, 4), CC_OK);
        assert_int_equal(cc_store_device_seen(both[i], 1, T0 - S, 0, 0), CC_OK);
        assert_int_equal(cc_store_device_status(both[i], 3, 0, "", T0 + 9 * S), CC_OK);
        assert_int_equal(cc_store_commit(both[i]), CC_OK);
    }
    assert_same_text(f, sql_devices, "ittiit");
    assert_int_equal(one_int(f->pg, "SELECT newest_ts FROM devices WHERE id = 1"), T0 - 5 * S);
    assert_int_equal(one_int(f->pg, "SELECT last_seen_at FROM devices WHERE id = 1"), T0);
    assert_int_equal(one_int(f->pg, "SELECT newest_ts FROM devices WHERE id = 2"), T0 - 7 * S);
    assert_int_equal(one_int(f->pg, "SELECT newest_ts FROM devices WHERE id = 3"), T0 - 2 * S);
    assert_int_equal(one_int(f->pg, "SELECT last_seen_at FROM devices WHERE id = 3"), T0 + 1);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM devices WHERE status = 'OFFLINE'"
                                    " AND id = 3"),
                     1);
}

/* The seen update skips its lock step only for rows this very transaction locked
 * (cc_store_devices_by_serial inside cc_store_begin): a device read in an earlier
 * transaction, or outside one, holds no lock any more, and the update then locks its rows
 * in id order itself (two writers would otherwise deadlock instead of queueing). Which
 * statement ran shows in the session's prepared statements. */
static const char sql_seen_locking[] =
    "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%UPDATE devices d SET%'"
    " AND statement LIKE '%FOR NO KEY UPDATE%' AND statement NOT LIKE '%pg_prepared%'";
static const char sql_seen_lockfree[] =
    "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%UPDATE devices d SET%'"
    " AND statement NOT LIKE '%FOR NO KEY UPDATE%' AND statement NOT LIKE '%pg_prepared%'";

static void test_store_pg_seen_skips_held_lock(void **state)
{
    struct fx *f = *state;
    const char *serials[] = {"SN-B", "SN-A"};
    struct cc_device d[2], outside[2];
    unsigned char found[2];
    struct cc_store_seen v[2];
    uint64_t tx;

    assert_int_equal(cc_store_tx_id(f->pg), 0);
    assert_int_equal(cc_store_devices_by_serial(f->pg, serials, 2, outside, found), CC_OK);
    assert_true(found[0] && found[1] && outside[0].locked_tx == 0 && outside[1].locked_tx == 0);

    assert_int_equal(cc_store_begin(f->pg), CC_OK);
    tx = cc_store_tx_id(f->pg);
    assert_true(tx != 0);
    assert_int_equal(cc_store_devices_by_serial(f->pg, serials, 2, d, found), CC_OK);
    assert_true(found[0] && found[1] && d[0].locked_tx == tx && d[1].locked_tx == tx);
    for (int i = 0; i < 2; i++)
        v[i] = (struct cc_store_seen){d[i].id, T0 + i, 1, T0 - 10 * S + i, d[i].locked_tx};
    assert_int_equal(cc_store_devices_seen(f->pg, v, 2), CC_OK);
    assert_int_equal(one_int(f->pg, sql_seen_lockfree), 1);
    assert_int_equal(one_int(f->pg, sql_seen_locking), 0);
    assert_int_equal(cc_store_commit(f->pg), CC_OK);
    assert_int_equal(cc_store_tx_id(f->pg), 0);

    /* The same devices in the next transaction: their locks went with the last one. */
    assert_int_equal(cc_store_begin(f->pg), CC_OK);
    assert_true(cc_store_tx_id(f->pg) > tx);
    for (int i = 0; i < 2; i++)
        v[i].seen_at += 5 * S;
    assert_int_equal(cc_store_devices_seen(f->pg, v, 2), CC_OK);
    assert_int_equal(one_int(f->pg, sql_seen_locking), 1);
    /* One device of the call not held is enough to lock them all. */
    assert_int_equal(cc_store_devices_by_serial(f->pg, serials, 1, d, found), CC_OK);
    v[0].locked_tx = d[0].locked_tx;
    v[1].locked_tx = outside[1].locked_tx;
    assert_int_equal(cc_store_devices_seen(f->pg, v, 2), CC_OK);
    assert_int_equal(one_int(f->pg, sql_seen_lockfree), 1);
    assert_int_equal(cc_store_commit(f->pg), CC_OK);
    assert_int_equal(one_int(f->pg, "SELECT last_seen_at FROM devices WHERE serial_number ="
                                    " 'SN-A'"),
                     T0 + 1 + 5 * S);
    assert_int_equal(one_int(f->pg, "SELECT newest_ts FROM devices WHERE serial_number ="
                                    " 'SN-B'"),
                     T0 - 10 * S);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM devices WHERE status = 'ONLINE'"), 2);
}

/* The readings insert leaves out its device lock step only when this transaction holds
 * every device of the chunk (cc_store_devices_by_serial inside cc_store_begin): with a
 * device read in an earlier transaction it locks them itself (ingest.sql), so a device
 * cannot be deleted under the batch. Both store the same rows and rollups. Which
 * statement ran shows in the session's prepared statements. */
static const char sql_insert_locking[] =
    "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%dev AS (%'"
    " AND statement LIKE '%INSERT INTO readings (%' AND statement NOT LIKE '%pg_prepared%'";
static const char sql_insert_lockfree[] =
    "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO readings (%'"
    " AND statement NOT LIKE '%dev AS (%' AND statement NOT LIKE '%pg_prepared%'";

static void test_store_pg_insert_skips_held_lock(void **state)
{
    struct fx *f = *state;
    const char *serials[] = {"SN-B", "SN-A"};
    struct cc_device d[2], old[2];
    unsigned char found[2], ins[3];
    struct cc_reading r[3];
    struct cc_store_row rows[3];

    memset(r, 0, sizeof r);
    for (int i = 0; i < 3; i++) {
        r[i].ts_ms = T0 - (10 - i) * S;
        r[i].temperature = 4.0 + i;
    }
    assert_int_equal(cc_store_begin(f->pg), CC_OK);
    assert_int_equal(cc_store_devices_by_serial(f->pg, serials, 2, old, found), CC_OK);
    assert_int_equal(cc_store_commit(f->pg), CC_OK);

    assert_int_equal(cc_store_begin(f->pg), CC_OK);
    assert_int_equal(cc_store_devices_by_serial(f->pg, serials, 2, d, found), CC_OK);
    assert_true(found[0] && found[1] && d[0].locked_tx == cc_store_tx_id(f->pg));
    rows[0] = (struct cc_store_row){&d[0], &r[0], T0};
    rows[1] = (struct cc_store_row){&d[1], &r[1], T0};
    rows[2] = (struct cc_store_row){&d[0], &r[0], T0}; /* a duplicate */
    assert_int_equal(cc_store_readings_insert(f->pg, rows, 3, ins), CC_OK);
    assert_true(ins[0] && ins[1] && !ins[2]);
    assert_int_equal(one_int(f->pg, sql_insert_lockfree), 1);
    assert_int_equal(one_int(f->pg, sql_insert_locking), 0);
    /* One device of the chunk locked in an earlier transaction: the locking statement. */
    rows[2] = (struct cc_store_row){&old[1], &r[2], T0};
    assert_int_equal(cc_store_readings_insert(f->pg, rows, 3, ins), CC_OK);
    assert_true(!ins[0] && !ins[1] && ins[2]);
    assert_int_equal(one_int(f->pg, sql_insert_locking), 1);
    assert_int_equal(cc_store_commit(f->pg), CC_OK);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings"), 3);
    assert_int_equal(one_int(f->pg, "SELECT sum(count) FROM readings_5m"), 3);
    assert_int_equal(one_int(f->pg, "SELECT sum(count) FROM readings_30m"), 3);
    /* Outside a transaction: the readings and their rollups in one of its own, closed. */
    r[2].ts_ms = T0;
    rows[0] = (struct cc_store_row){&old[1], &r[2], T0};
    assert_int_equal(cc_store_readings_insert(f->pg, rows, 1, ins), CC_OK);
    assert_true(ins[0]);
    assert_int_equal(cc_store_in_transaction(f->pg), 0);
    assert_int_equal(one_int(f->pg, "SELECT sum(count) FROM readings_5m"), 4);
    assert_int_equal(one_int(f->pg, "SELECT sum(count) FROM readings_30m"), 4);
}

/* Readings newer than their held device's newest_ts go in the insert without ON CONFLICT
 * (cc_store_pg.c sql_insert_new), the others (older, equal, a device never seen) in the one
 * with it; an in-batch duplicate is still left out. A reading stored behind the store's
 * back, newer than newest_ts, fails that insert on the primary key: the transaction is
 * lost, and its retry (as ingestd's writer retries) checks every reading and stores each
 * one once. */
static const char sql_insert_unchecked[] =
    "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO readings (%'"
    " AND statement NOT LIKE '%ON CONFLICT%' AND statement NOT LIKE '%pg_prepared%'";
static int insert_held(struct cc_store *st, const char *const *serials, size_t nser,
                       struct cc_device *d, const int *dev_of, const struct cc_reading *r, size_t n,
                       unsigned char *ins)
{
    struct cc_store_row rows[8];
    unsigned char found[4];
    int rc;

    assert_true(n <= 8 && nser <= 4);
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_store_devices_by_serial(st, serials, nser, d, found), CC_OK);
    for (size_t i = 0; i < n; i++)
        rows[i] = (struct cc_store_row){&d[dev_of[i]], &r[i], T0};
    rc = cc_store_readings_insert(st, rows, n, ins);
    if (rc == CC_OK)
        assert_int_equal(cc_store_commit(st), CC_OK);
    else
        cc_store_rollback(st);
    return rc;
}

static void test_store_pg_insert_new_unchecked(void **state)
{
    struct fx *f = *state;
    const char *serials[] = {"SN-A", "SN-B", "SN-C"};
    struct cc_device d[3];
    struct cc_reading r[5];
    unsigned char ins[5];
    /* A: newer than newest, older (late), the newer one again; B: equal to newest and
     * stored already; C (never seen): new. */
    const int dev_of[5] = {0, 0, 0, 1, 2};
    const int64_t ts[5] = {T0 - 5 * S, T0 - 20 * S, T0 - 5 * S, T0 - 10 * S, T0 - 30 * S};

    memset(r, 0, sizeof r);
    for (int i = 0; i < 5; i++) {
        r[i].ts_ms = ts[i];
        r[i].temperature = 4.0 + i;
    }
    assert_int_equal(cc_store_exec(f->pg, "UPDATE devices SET newest_ts = 1764135890000"
                                          " WHERE id IN (1, 2);"
                                          "INSERT INTO readings (device_id, cold_cell_id, ts,"
                                          " temperature, received_at)"
                                          " VALUES (2, 1, 1764135890000, 5, 0)"),
                     CC_OK);
    assert_int_equal(insert_held(f->pg, serials, 3, d, dev_of, r, 5, ins), CC_OK);
    assert_true(d[0].has_newest && d[0].newest_ts == T0 - 10 * S && !d[2].has_newest);
    assert_true(ins[0] && ins[1] && !ins[2] && !ins[3] && ins[4]);
    assert_int_equal(one_int(f->pg, sql_insert_unchecked), 1);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings"), 4);
    assert_int_equal(one_int(f->pg, "SELECT sum(count) FROM readings_5m"), 3);

    /* Stored behind the store's back, newer than A's newest_ts. */
    assert_int_equal(cc_store_exec(f->pg, "INSERT INTO readings (device_id, cold_cell_id, ts,"
                                          " temperature, received_at)"
                                          " VALUES (1, 1, 1764135899000, 5, 0)"),
                     CC_OK);
    r[0].ts_ms = T0 - 1 * S; /* that one */
    r[1].ts_ms = T0;         /* a new one */
    assert_int_equal(insert_held(f->pg, serials, 3, d, dev_of, r, 2, ins), CC_ERR_DB);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings"), 5);
    assert_int_equal(insert_held(f->pg, serials, 3, d, dev_of, r, 2, ins), CC_OK);
    assert_true(!ins[0] && ins[1]);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings"), 6);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings WHERE device_id = 1"
                                    " AND ts = 1764135899000"),
                     1);
    assert_int_equal(one_int(f->pg, "SELECT sum(count) FROM readings_5m"), 4);
}

/* cc_alert_states_load (one query per batch on PostgreSQL, cc_alert.c) gives the same
 * states as SQLite's per-device loop: thresholds, ACTIVE alerts, pending excursions, a
 * device twice, a device of no state. */
static void test_store_pg_alert_states_same(void **state)
{
    struct fx *f = *state;
    static const char rows[] =
        "UPDATE cold_cells SET hysteresis = 0.25, alarm_delay_s = 90 WHERE id = 2;"
        "INSERT INTO alerts (id, cold_cell_id, device_id, type, message, first_triggered_at,"
        " last_triggered_at) VALUES (5, 1, 1, 'HIGH_TEMP', 'm', 1, 1),"
        " (6, 2, 3, 'POWER_LOSS', 'm', 1, 1);"
        "INSERT INTO alerts (id, cold_cell_id, device_id, type, status, message,"
        " first_triggered_at, last_triggered_at) VALUES (7, 1, 1, 'LOW_TEMP', 'RESOLVED', 'm',"
        " 1, 1);"
        "INSERT INTO alert_pending (device_id, type, since_ts) VALUES (3, 'LOW_TEMP', 77),"
        " (2, 'HIGH_TEMP', 78)";
    struct cc_device dev[4];
    const struct cc_device *devs[5];
    struct cc_alert_state a[5], b[5];
    const int64_t ids[] = {1, 2, 3, 4}, cells[] = {1, 1, 2, 2};

    for (int i = 0; i < 4; i++)
        dev[i] = (struct cc_device){.id = ids[i], .cold_cell_id = cells[i]};
    devs[0] = &dev[2];
    devs[1] = &dev[0];
    devs[2] = &dev[3];
    devs[3] = &dev[1];
    devs[4] = &dev[2];
    assert_int_equal(cc_store_exec(f->lite, rows), CC_OK);
    assert_int_equal(cc_store_exec(f->pg, rows), CC_OK);
    assert_int_equal(cc_alert_states_load(f->lite, devs, 5, a), CC_OK);
    assert_int_equal(cc_alert_states_load(f->pg, devs, 5, b), CC_OK);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(a[i].have_cell, b[i].have_cell);
        assert_true(a[i].min_temp == b[i].min_temp && a[i].max_temp == b[i].max_temp);
        assert_true(a[i].hysteresis == b[i].hysteresis);
        assert_int_equal(a[i].delay_ms, b[i].delay_ms);
        for (int t = 0; t < CC_ALERT_TYPE_COUNT; t++) {
            assert_int_equal(a[i].active[t], b[i].active[t]);
            assert_int_equal(a[i].has_pending[t], b[i].has_pending[t]);
            assert_int_equal(a[i].pending_since[t], b[i].pending_since[t]);
        }
    }
    /* What the rows say, read back. */
    assert_true(b[0].have_cell && b[0].delay_ms == 90000 && b[0].hysteresis == 0.25);
    assert_true(b[1].have_cell && b[1].max_temp == 8);
    assert_int_equal(b[0].has_pending[cc_alert_type_parse("LOW_TEMP")], 1);
    assert_int_equal(b[4].pending_since[cc_alert_type_parse("LOW_TEMP")], 77);
    assert_int_equal(b[0].active[cc_alert_type_parse("POWER_LOSS")], 6);
    assert_int_equal(b[1].active[cc_alert_type_parse("HIGH_TEMP")], 5);
    assert_int_equal(b[1].active[cc_alert_type_parse("LOW_TEMP")], 0);
    assert_int_equal(b[3].pending_since[cc_alert_type_parse("HIGH_TEMP")], 78);
    assert_int_equal(b[2].has_pending[cc_alert_type_parse("HIGH_TEMP")], 0);
}

/* Two ingestd on one database (docs/scaling.md): A hands an alert event to its client and
 * holds it; B, once A's lease has run out, retries it until its attempts run out: FAILED;
 * then A's PUBACK arrives: SENT. The event went out once: counted sent once, failed never
 * (cc_notify_deliver.c mark_acked). A delivery of a notification that turns from FAILED to
 * SENT moves the same way (schema/0013_late_ack_moves_failed.sql). */
static struct cc_notify_event held_ev; /* A's hand-over, acknowledged later */
static int held_acked;                 /* 1 once the broker acknowledged it */

static int hold_publish(void *ctx, const char *topic, const char *payload, size_t len,
                        struct cc_notify_event ev)
{
    (void)ctx;
    (void)topic;
    (void)payload;
    (void)len;
    held_ev = ev;
    return 0;
}

static int fail_publish(void *ctx, const char *topic, const char *payload, size_t len,
                        struct cc_notify_event ev)
{
    (void)ctx;
    (void)topic;
    (void)payload;
    (void)len;
    (void)ev;
    return -1;
}

static int late_acked(void *ctx, struct cc_notify_event *evs, int max)
{
    (void)ctx;
    if (!held_acked || max < 1)
        return 0;
    held_acked = 0;
    evs[0] = held_ev;
    return 1;
}

#define COUNTER(name, label)                                                                       \
    "SELECT value FROM stat_counters WHERE name = '" name "' AND label = '" label "'"

static void late_ack_scenario(struct cc_store *st)
{
    struct cc_notify_channels a = {.publish = hold_publish, .acked = late_acked};
    struct cc_notify_channels b = {.publish = fail_publish};
    int64_t sent0 = one_int(st, COUNTER("deliveries_sent", "mqtt"));
    int64_t failed0 = one_int(st, COUNTER("deliveries_failed", "mqtt"));
    int64_t t = T0;
    int sent = -1;

    assert_int_equal(cc_store_exec(st, "INSERT INTO alerts (id, cold_cell_id, device_id, type,"
                                       " message, first_triggered_at, last_triggered_at)"
                                       " VALUES (5, 1, 1, 'HIGH_TEMP', 'm', 1, 1);"
                                       "INSERT INTO alert_events (alert_id, cold_cell_id,"
                                       " event, payload, next_attempt_at, created_at)"
                                       " VALUES (5, 1, 'CREATED', '{}', 0, 0)"),
                     CC_OK);
    memset(&held_ev, 0, sizeof held_ev);
    held_acked = 0;
    assert_int_equal(cc_notify_deliver(st, &a, t, 100, &sent), CC_OK);
    assert_int_equal(held_ev.alert_id, 5);
    /* B retries whenever the row is due, until its attempts run out. */
    for (int i = 0; i < 2 * CC_NOTIFY_MAX_ATTEMPTS &&
                    one_int(st, "SELECT count(*) FROM alert_events WHERE status = 'PENDING'") > 0;
         i++) {
        t = one_int(st, "SELECT next_attempt_at FROM alert_events");
        assert_int_equal(cc_notify_deliver(st, &b, t, 100, &sent), CC_OK);
    }
    assert_int_equal(one_int(st, "SELECT count(*) FROM alert_events WHERE status = 'FAILED'"), 1);
    assert_int_equal(one_int(st, "SELECT attempts FROM alert_events"), CC_NOTIFY_MAX_ATTEMPTS);
    assert_int_equal(one_int(st, COUNTER("deliveries_failed", "mqtt")), failed0 + 1);
    /* A's PUBACK, late. */
    held_acked = 1;
    assert_int_equal(cc_notify_record_acks(st, &a, t + S, &sent), CC_OK);
    assert_int_equal(sent, 1);
    assert_int_equal(one_int(st, "SELECT count(*) FROM alert_events WHERE status = 'SENT'"), 1);
    assert_int_equal(one_int(st, COUNTER("deliveries_sent", "mqtt")), sent0 + 1);
    assert_int_equal(one_int(st, COUNTER("deliveries_failed", "mqtt")), failed0);

    /* A notification's delivery: FAILED, then SENT after all; SENT again changes nothing. */
    sent0 = one_int(st, COUNTER("deliveries_sent", "webhook"));
    failed0 = one_int(st, COUNTER("deliveries_failed", "webhook"));
    assert_int_equal(
        cc_store_exec(st, "INSERT INTO notifications (id, user_id, alert_id, kind, channel,"
                          " payload, next_attempt_at, created_at)"
                          " VALUES (1, 1, 5, 'ALERT', 'inbox', '{}', 0, 0);"
                          "INSERT INTO notification_deliveries (notification_id, channel,"
                          " next_attempt_at) VALUES (1, 'webhook', 0);"
                          "UPDATE notification_deliveries SET status = 'FAILED';"
                          "UPDATE notification_deliveries SET status = 'SENT';"
                          "UPDATE notification_deliveries SET status = 'SENT'"),
        CC_OK);
    assert_int_equal(one_int(st, COUNTER("deliveries_sent", "webhook")), sent0 + 1);
    assert_int_equal(one_int(st, COUNTER("deliveries_failed", "webhook")), failed0);
}

static void test_store_pg_late_ack_moves_failed_to_sent(void **state)
{
    struct fx *f = *state;

    late_ack_scenario(f->lite);
    late_ack_scenario(f->pg);
}

/* PostgreSQL only (a UTF-8 database; SQLite keeps any bytes): text that is not UTF-8
 * never fails the batch. A firmware version that is not is dropped (the old one stays),
 * a serial that is not finds no device, a topic that is not is kept with '?'. Without
 * the guard each of these fails its statement, the batch, and every redelivery. */
static void test_store_pg_text_not_utf8(void **state)
{
    struct fx *f = *state;
    struct script sc = {0};
    const char *serials[] = {"\xc3\x28", "\xc0\xaf", "\xe2\x82\xac", "SN-A", "\xf4\x90\x80\x80"};
    struct cc_device dev[5];
    unsigned char found[5];
    char *topic;

    add(&sc, ST("SN-A"), T0, "{\"online\":true,\"firmwareVersion\":\"1.0\"}");
    add(&sc, "devices/\xc3\x28/readings", T0 + 2, "{\"ts\":%lld,\"temperature\":5.0}", T0 - S);
    assert_int_equal(cc_store_begin(f->pg), CC_OK);
    assert_int_equal(cc_ingest_batch(f->pg, sc.m, sc.n), CC_OK);
    /* (cc_validate_status refuses such a firmware string today; the store holds anyway.) */
    assert_int_equal(cc_store_device_status(f->pg, 1, 1, "v\xff\xfe", T0 + 3), CC_OK);
    assert_int_equal(cc_store_commit(f->pg), CC_OK);
    topic = dump(f->pg, "SELECT firmware_version, last_seen_at FROM devices WHERE id = 1", "ti");
    assert_string_equal(topic, "1.0|1764135900003|\n");
    free(topic);
    topic = dump(f->pg, "SELECT topic FROM rejected_messages", "t");
    assert_string_equal(topic, "devices/?(/readings|\n"); /* 0xc3 replaced, '(' kept */
    free(topic);
    assert_int_equal(cc_store_devices_by_serial(f->pg, serials, 5, dev, found), CC_OK);
    assert_true(!found[0] && !found[1] && !found[2] && found[3] && !found[4]);
    assert_int_equal(dev[3].id, 1);
    script_free(&sc);
}

/* A second migrating open finds nothing to do; the schema and partitions are there. */
static void test_store_pg_migrate_twice(void **state)
{
    struct fx *f = *state;
    struct cc_store *again = NULL;
    int v = 0;

    assert_int_equal(cc_store_schema_version(f->pg, &v), CC_OK);
    assert_int_equal(v, cc_store_schema_latest(f->pg));
    assert_true(v >= 1);
    assert_int_equal(cc_store_open(f->url, CC_STORE_MIGRATE, &again), CC_OK);
    assert_int_equal(cc_store_schema_version(again, &v), CC_OK);
    assert_int_equal(v, cc_store_schema_latest(again));
    cc_store_close(again);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM schema_migrations"),
                     cc_store_schema_latest(f->pg));
    /* The seed survived: the second open applied nothing. */
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM devices"), 4);
    /* This month and CC_PG_PARTITIONS_AHEAD more. */
    assert_true(one_int(f->pg, "SELECT count(*) FROM pg_inherits WHERE inhparent ="
                               " 'readings'::regclass") >= 1 + 1 + CC_PG_PARTITIONS_AHEAD);
    assert_int_equal(cc_store_schema_latest(f->lite), cc_db_latest_version());
    /* A database migrated by a newer program is refused, not downgraded. */
    assert_int_equal(cc_store_exec(f->pg, "INSERT INTO schema_migrations VALUES (999, 'x', 0)"),
                     CC_OK);
    assert_int_equal(cc_store_open(f->url, CC_STORE_MIGRATE, &again), CC_ERR_DB);
    assert_int_equal(cc_store_open(f->url, 0, &again), CC_OK);
    assert_int_equal(cc_store_schema_version(again, &v), CC_OK);
    assert_int_equal(v, 999);
    cc_store_close(again);
}

struct opener {
    const char *url;
    pthread_barrier_t *go;
    int rc;
};

static void *open_migrating(void *arg)
{
    struct opener *o = arg;
    struct cc_store *st = NULL;

    pthread_barrier_wait(o->go);
    o->rc = cc_store_open(o->url, CC_STORE_MIGRATE, &st);
    cc_store_close(st);
    return NULL;
}

/* Two stores migrating one fresh database at once: both succeed, 0001 applied once
 * (without the advisory lock the second fails on tables the first created). */
static void test_store_pg_migrate_concurrently(void **state)
{
    char url[256];
    pthread_barrier_t go;
    pthread_t t[2];
    struct opener o[2];
    struct cc_store *st = NULL;

    (void)state;
    for (int round = 0; round < 3; round++) {
        fresh_database(url, sizeof url);
        assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
        for (int i = 0; i < 2; i++) {
            o[i] = (struct opener){.url = url, .go = &go, .rc = -1};
            assert_int_equal(pthread_create(&t[i], NULL, open_migrating, &o[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_join(t[i], NULL), 0);
        pthread_barrier_destroy(&go);
        assert_int_equal(o[0].rc, CC_OK);
        assert_int_equal(o[1].rc, CC_OK);
        assert_int_equal(cc_store_open(url, 0, &st), CC_OK);
        assert_int_equal(one_int(st, "SELECT count(*) FROM schema_migrations"),
                         cc_store_schema_latest(st));
        assert_int_equal(one_int(st, "SELECT count(*) FROM ingest_checkpoint"), 1);
        assert_int_equal(one_int(st, "SELECT count(*) FROM ingest_checkpoints"), 1);
        cc_store_close(st);
    }
}

/* One of two writers of test_store_pg_two_writers: its own store, and per round one
 * batch (a transaction) of the script's messages from mine[round * per] on. */
#define WRITER_ROUNDS 20
struct writer {
    const char *url;
    pthread_barrier_t *go;
    struct script sc;
    size_t per;
    int failed; /* batches that did not commit */
};

static void *write_rounds(void *arg)
{
    struct writer *w = arg;
    struct cc_store *st = NULL;

    if (cc_store_open(w->url, 0, &st) != CC_OK) {
        w->failed = WRITER_ROUNDS;
        return NULL;
    }
    for (int r = 0; r < WRITER_ROUNDS; r++) {
        struct cc_ingest_msg *m = &w->sc.m[(size_t)r * w->per];

        pthread_barrier_wait(w->go); /* both batches of a round at once */
        if (cc_store_begin(st) != CC_OK || cc_ingest_batch(st, m, w->per) != CC_OK ||
            cc_store_commit(st) != CC_OK) {
            cc_store_rollback(st);
            w->failed++;
        }
    }
    cc_store_close(st);
    return NULL;
}

/* Two writers storing batches of the same four devices at the same moment, in opposite
 * message orders, two readings of each round shared by both: every batch commits (the
 * insert locks the batch's devices in id order, and the seen update after it finds them
 * locked: no deadlock, which PostgreSQL would end by failing one batch), each reading is
 * stored once, and the devices and rollups count every reading. */
static void test_store_pg_two_writers(void **state)
{
    struct fx *f = *state;
    const char *serials[] = {"SN-A", "SN-B", "SN-C", SN_Q};
    char topic[96];
    pthread_barrier_t go;
    pthread_t t[2];
    struct writer w[2];

    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    for (int k = 0; k < 2; k++) {
        w[k] = (struct writer){.url = f->url, .go = &go, .per = 6};
        for (int r = 0; r < WRITER_ROUNDS; r++) {
            for (int d = 0; d < 4; d++) {
                int dev = k == 0 ? d : 3 - d; /* writer 1 goes the other way */

                snprintf(topic, sizeof topic, "devices/%s/readings", serials[dev]);
                add(&w[k].sc, topic, T0 + r, "{\"ts\":%lld,\"temperature\":4.5}",
                    T0 + ((int64_t)r * 2 + k) * S);
            }
            /* The same reading from both writers: one stores it, the other skips it. */
            add(&w[k].sc, "devices/SN-B/readings", T0 + r, "{\"ts\":%lld,\"temperature\":5}",
                T0 - ((int64_t)r + 1) * S);
            /* The same reading, newer than the device's newest_ts, from both: the writer
             * that gets the device second reads the newest_ts the first wrote, so its copy
             * goes in the checked insert and is skipped, not refused by the key. */
            add(&w[k].sc, "devices/SN-A/readings", T0 + r, "{\"ts\":%lld,\"temperature\":6}",
                T0 + ((int64_t)r * 2 + 1) * S + 500);
        }
    }
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&t[k], NULL, write_rounds, &w[k]), 0);
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_join(t[k], NULL), 0);
    pthread_barrier_destroy(&go);
    assert_int_equal(w[0].failed, 0);
    assert_int_equal(w[1].failed, 0);
    /* 4 devices x 2 writers x rounds, plus two shared readings per round. */
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM readings"), 10 * WRITER_ROUNDS);
    assert_int_equal(one_int(f->pg, "SELECT sum(count) FROM readings_5m"), 10 * WRITER_ROUNDS);
    assert_int_equal(one_int(f->pg, "SELECT sum(count) FROM readings_30m"), 10 * WRITER_ROUNDS);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM devices WHERE status = 'ONLINE'"
                                    " AND last_seen_at IS NOT NULL"),
                     4);
    assert_int_equal(one_int(f->pg, "SELECT max(newest_ts) FROM devices"),
                     T0 + ((int64_t)(WRITER_ROUNDS - 1) * 2 + 1) * S + 500);
    script_free(&w[0].sc);
    script_free(&w[1].sc);
}

/* The reference tables' statistics: cc_store_maintain analyzes them once they changed
 * (small tables never reach autovacuum's threshold), then not again within
 * CC_PG_ANALYZE_EVERY_S of that analysis, and again after it. A backend hands its change
 * counts to pg_stat_user_tables at most once a second unless told to
 * (pg_stat_force_next_flush, then at the end of that statement): told here, so the counts
 * are there when maintain looks, and the clock given to maintain counts from the analysis
 * itself, never from when the test started. */
#define SQL_DEVICES_ANALYZED_US                                                                    \
    "SELECT coalesce(CAST(extract(epoch FROM last_analyze) * 1000000 AS bigint), 0)"               \
    " FROM pg_stat_user_tables WHERE relname = 'devices'"
#define SQL_DEVICES_MODIFIED                                                                       \
    "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'devices'"
static void flush_stats(struct cc_store *pg)
{
    assert_int_equal(one_int(pg, "SELECT count(*) FROM (SELECT pg_stat_force_next_flush()) AS f"),
                     1);
}

static void test_store_pg_maintain_analyzes_reference(void **state)
{
    struct fx *f = *state;
    int64_t first, first_ms;

    assert_int_equal(one_int(f->pg, SQL_DEVICES_ANALYZED_US), 0);
    assert_int_equal(one_int(f->pg, "SELECT count(*) FROM pg_stats WHERE tablename = 'devices'"),
                     0);
    flush_stats(f->pg); /* the seed's rows */
    assert_true(one_int(f->pg, SQL_DEVICES_MODIFIED) > 0);
    assert_int_equal(cc_store_maintain(f->pg, cc_now_ms()), CC_OK);
    first = one_int(f->pg, SQL_DEVICES_ANALYZED_US);
    assert_true(first > 0);
    first_ms = first / 1000;
    assert_true(one_int(f->pg, "SELECT count(*) FROM pg_stats WHERE tablename = 'devices'") > 0);
    assert_true(one_int(f->pg,
                        "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN"
                        " ('users', 'locations', 'cold_cells') AND last_analyze IS NULL") == 0);

    /* Changed again: not within the hour (a second before its end)... */
    assert_int_equal(cc_store_exec(f->pg, "UPDATE devices SET firmware_version = 'x'"), CC_OK);
    flush_stats(f->pg);
    assert_true(one_int(f->pg, SQL_DEVICES_MODIFIED) > 0);
    assert_int_equal(cc_store_maintain(f->pg, first_ms + (CC_PG_ANALYZE_EVERY_S - 1) * 1000LL),
                     CC_OK);
    assert_int_equal(one_int(f->pg, SQL_DEVICES_ANALYZED_US), first);
    /* ...but after it (a second past its end). */
    assert_int_equal(cc_store_maintain(f->pg, first_ms + (CC_PG_ANALYZE_EVERY_S + 1) * 1000LL),
                     CC_OK);
    assert_true(one_int(f->pg, SQL_DEVICES_ANALYZED_US) > first);
    assert_int_equal(one_int(f->pg, SQL_DEVICES_MODIFIED), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_pg_ingest_same_as_sqlite, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_ingest_cheap_paths, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_rollups_exact_wide, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_dead_letter_cap, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_serials_quoted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_devices_seen_keeps_max, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_seen_skips_held_lock, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_insert_skips_held_lock, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_insert_new_unchecked, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_new_readings_repeated_across_runs, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_alert_states_same, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_text_not_utf8, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_late_ack_moves_failed_to_sent, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_migrate_twice, fx_setup, fx_teardown),
        cmocka_unit_test(test_store_pg_migrate_concurrently),
        cmocka_unit_test_setup_teardown(test_store_pg_two_writers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_pg_maintain_analyzes_reference, fx_setup,
                                        fx_teardown),
    };

    cc_log_init("test_store_pg", CC_LOG_ERROR, 1);
    return cmocka_run_group_tests_name("store_pg", tests, group_setup, group_teardown);
}
