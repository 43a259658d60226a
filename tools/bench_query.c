/* bench_query.c - the readings query benchmark (issue 5), driven by bench_query.sh.
 *
 *   bench_query build DB   makes DB (if it is not already complete): 1000 devices in
 *                          1000 cells, over 10 million readings in 30 days; the
 *                          benchmark cell has one reading a minute (43,200); rollups
 *                          rebuilt from the raw rows. Prints "cell FROM TO".
 *   bench_query run DB     times the 30-day query of that cell: 100 runs through
 *                          cc_query_readings, the raw computation and the plain GROUP BY,
 *                          and checks that the answers agree. Prints "bench:" lines.
 * Run it on a database nothing else writes to. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cc_crypto.h"
#include "bench_proc.h"
#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_query.h"
#include "cc_rc.h"
#include "cc_role.h"

#include "cc_store.h"
#include "cc_store_rollup.h"
#include "cc_time.h"
#include "cc_validate.h"

#define DEVICES 1000
#define SPAN_MS (30LL * 86400000)
#define MAIN_EVERY_MS 60000LL   /* the benchmark cell: one reading a minute */
#define OTHER_EVERY_MS 259000LL /* the 999 others: about 10,000 readings each */
#define COMMIT_EVERY 500000     /* rows per transaction while building */
#define RUNS 100
#define GROUPBY_RUNS 20
#define WARMUP 5      /* untimed runs first: the page cache warms up */
#define CPU_RUNS 500  /* runs of the CPU-time loop: /proc counts in 10 ms ticks */
#define PG_BATCH 5000 /* readings per cc_store_readings_insert and transaction (pg) */
/* pg without BENCH_QUERY_PG_FULL=1: the 999 other devices report this many times less
 * often (about 500 readings each instead of 10,000; the benchmark cell is unchanged), so
 * that the load fits a test session; the figures then carry "_pg_small" in their names. */
#define PG_SMALL_FACTOR 20
#define PG_SEED_SQL_MAX (DEVICES * 128) /* pg: the seed's cells and devices INSERTs */

static double now_ms_f(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    int i = (int)ceil(p / 100.0 * n) - 1;

    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[i < 0 ? 0 : i];
}

/* The first column of sql's first row through the store (either dialect), or -1. */
static int64_t store_int(struct cc_store *st, const char *sql)
{
    struct cc_stmt *s = NULL;
    int64_t v = -1;

    if (cc_stmt_prepare(st, sql, &s) == CC_OK && cc_stmt_step(s) == CC_ROW)
        v = cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return v;
}

/* Runs sql (no parameter, no row wanted); the store logs the database's message. */
static int exec(struct cc_store *st, const char *sql)
{
    if (cc_store_exec(st, sql) != CC_OK) {
        fprintf(stderr, "bench_query: %s: failed\n", sql);
        return -1;
    }
    return 0;
}

/* Steps s, bound, an INSERT ... RETURNING id (both dialects: no last-insert-rowid call),
 * to its end and releases it: the new row's id, or -1. */
static int64_t returning_id(struct cc_stmt *s)
{
    int64_t id = -1;

    if (cc_stmt_step(s) == CC_ROW) {
        id = cc_stmt_column_int64(s, 0);
        if (cc_stmt_step(s) != CC_OK)
            id = -1;
    }
    cc_stmt_release(s);
    return id;
}

/* cc_db_remove_files without the database header: the file and what SQLite keeps beside
 * it (an interrupted build leaves a journal or a WAL). */
static void remove_db_files(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[PATH_MAX + 16];

    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++)
        if (snprintf(p, sizeof p, "%s%s", path, suffix[i]) < (int)sizeof p)
            unlink(p);
}

static uint64_t rng = 0xB5AD4ECEDA1CE2A9ULL;

static double unit(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* A freezer at -18 °C with noise and, now and then, a door left open (up to -12). */
static double temp_at(int64_t ts, int dev)
{
    double t = -18.0 + 0.8 * sin((double)ts / 5.4e6 + dev) + 0.4 * (unit() - 0.5);
    int64_t hour = ts / 3600000;

    if ((hour + dev) % 29 == 0 && ts % 3600000 < 900000)
        t += 6.0 * (double)(ts % 3600000) / 900000.0;
    return round(t * 100.0) / 100.0;
}

/* Rebuilds the rollups of every cell of the copy from its raw readings, one cell at a time
 * through cc_store_rollup_rebuild_span (cc_dbi.h, no SQLite handle): each cell has one
 * device, so the rows are the ones the all-cells rebuild wrote. Inside a transaction. */
static int rebuild_rollups(struct cc_store *st, int64_t from_ms, int64_t to_ms)
{
    static int64_t cells[DEVICES];
    struct cc_stmt *s = NULL;
    int n = 0, rc;

    rc = cc_stmt_prepare(st, "SELECT id FROM cold_cells ORDER BY id", &s);
    while (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        if (n == DEVICES) {
            rc = CC_ERR_INTERNAL; /* not a copy this program built */
            break;
        }
        cells[n++] = cc_stmt_column_int64(s, 0);
        rc = CC_OK;
    }
    cc_stmt_release(s);
    for (int i = 0; i < n && rc == CC_OK; i++)
        rc = cc_store_rollup_rebuild_span(st, cells[i], from_ms, to_ms);
    if (rc != CC_OK)
        fprintf(stderr, "bench_query: rollup rebuild failed\n");
    return rc == CC_OK ? 0 : -1;
}

/* The copy's readings of device d (index 0: the benchmark cell) through the cached
 * insert, committing every COMMIT_EVERY rows; *rows counts them. */
static int load_device(struct cc_store *st, int d, int64_t dev, int64_t cell, int64_t from_ms,
                       int64_t end_ms, int64_t *rows)
{
    static const char ins_sql[] =
        "INSERT INTO readings (device_id, cold_cell_id, ts, temperature, humidity,"
        " power_status, door_status, battery_level, received_at)"
        " VALUES ($1, $2, $3, $4, 60, 1, 0, 90, $3)";

    /* Device by device, ts ascending: both indexes grow at their ends. */
    for (int64_t ts = from_ms + (d == 0 ? 0 : (d * 7919) % OTHER_EVERY_MS); ts < end_ms;
         ts += d == 0 ? MAIN_EVERY_MS : OTHER_EVERY_MS) {
        struct cc_stmt *ins = NULL;
        int rc = cc_stmt_prepare(st, ins_sql, &ins);

        if (rc == CC_OK)
            rc = cc_stmt_bind_all(ins, "iiid", dev, cell, ts, temp_at(ts, d));
        if (rc == CC_OK)
            rc = cc_stmt_step(ins);
        cc_stmt_release(ins);
        if (rc != CC_OK) {
            fprintf(stderr, "bench_query: insert failed\n");
            return -1;
        }
        if (++*rows % COMMIT_EVERY == 0 &&
            (cc_store_commit(st) != CC_OK || cc_store_begin(st) != CC_OK))
            return -1;
    }
    return 0;
}

/* The benchmark's cells and devices, the bench_meta row and the readings, in the open
 * transaction. */
static int load(struct cc_store *st, int64_t loc, int64_t from_ms, int64_t end_ms, int64_t *rows)
{
    for (int d = 0; d < DEVICES; d++) {
        struct cc_stmt *s = NULL;
        char name[32];
        int64_t cell = -1, dev = -1;

        snprintf(name, sizeof name, "Bench freezer %d", d);
        if (cc_stmt_prepare(st,
                            "INSERT INTO cold_cells (location_id, name, min_temp, max_temp,"
                            " created_at) VALUES ($1, $2, -25, -15, 0) RETURNING id",
                            &s) == CC_OK &&
            cc_stmt_bind_all(s, "it", loc, name) == CC_OK)
            cell = returning_id(s);
        else
            cc_stmt_release(s);
        s = NULL;
        snprintf(name, sizeof name, "BENCH-%04d", d);
        if (cell > 0 &&
            cc_stmt_prepare(st,
                            "INSERT INTO devices (serial_number, cold_cell_id, api_key_hash,"
                            " api_key_prefix, status, created_at)"
                            " VALUES ($1, $2, '-', '-', 'ONLINE', 0) RETURNING id",
                            &s) == CC_OK &&
            cc_stmt_bind_all(s, "ti", name, cell) == CC_OK)
            dev = returning_id(s);
        else
            cc_stmt_release(s);
        s = NULL;
        if (dev <= 0) {
            fprintf(stderr, "bench_query: cannot insert device %d\n", d);
            return -1;
        }
        if (d == 0) {
            int rc = cc_stmt_prepare(st, "INSERT INTO bench_meta VALUES ($1, $2, $3, 0, $4)", &s);

            if (rc == CC_OK)
                rc = cc_stmt_bind_all(s, "iiii", cell, from_ms, end_ms,
                                      (int64_t)cc_store_schema_latest(st));
            if (rc == CC_OK)
                rc = cc_stmt_step(s);
            cc_stmt_release(s);
            if (rc != CC_OK)
                return -1;
        }
        if (load_device(st, d, dev, cell, from_ms, end_ms, rows) != 0)
            return -1;
    }
    return 0;
}

/* 1 when path holds a complete copy (its rollups rebuilt now if the schema moved since),
 * 0 when it must be built, -1 on failure. */
static int reuse(struct cc_store *st)
{
    int64_t from_ms, to_ms;
    char sql[96];

    if (store_int(st, "SELECT count(*) FROM sqlite_master WHERE name = 'bench_meta'") != 1 ||
        store_int(st, "SELECT count(*) FROM bench_meta WHERE complete = 1") != 1)
        return 0;
    /* Reuse the raw rows; rebuild the rollups if the schema moved since. */
    if (store_int(st, "SELECT schema_version FROM bench_meta") == cc_store_schema_latest(st))
        return 1;
    fprintf(stderr, "bench_query: schema changed: rebuilding the rollups\n");
    from_ms = store_int(st, "SELECT from_ms FROM bench_meta");
    to_ms = store_int(st, "SELECT to_ms FROM bench_meta");
    snprintf(sql, sizeof sql, "UPDATE bench_meta SET schema_version = %d",
             cc_store_schema_latest(st));
    if (cc_store_begin(st) != CC_OK)
        return -1;
    if (exec(st, "DELETE FROM readings_5m") || exec(st, "DELETE FROM readings_30m") ||
        rebuild_rollups(st, from_ms, to_ms) || exec(st, sql)) {
        cc_store_rollback(st);
        return -1;
    }
    return cc_store_commit(st) == CC_OK ? 1 : -1;
}

static int build(const char *path)
{
    struct cc_store *st = NULL;
    struct cc_stmt *s = NULL;
    int64_t end_ms, from_ms, rows = 0, loc = -1;
    double t0 = now_ms_f();
    int in_tx = 0, rc = 1;

    if (cc_store_open(path, CC_STORE_CREATE | CC_STORE_MIGRATE, &st) != CC_OK)
        return 1;
    if (cc_store_dialect(st) != CC_DIALECT_SQLITE) {
        fprintf(stderr, "bench_query: build makes a SQLite file, not a PostgreSQL copy\n");
        goto out;
    }
    switch (reuse(st)) {
    case 1:
        rc = 0;
        goto out;
    case 0:
        break;
    default:
        goto out;
    }
    /* Not complete (absent, or an interrupted build): start from an empty file. */
    cc_store_close(st);
    st = NULL;
    remove_db_files(path);
    if (cc_store_open(path, CC_STORE_CREATE | CC_STORE_MIGRATE, &st) != CC_OK)
        return 1;
    /* Bulk load: no journal, no sync; the file is thrown away if this is interrupted. */
    if (exec(st, "PRAGMA journal_mode = OFF") || exec(st, "PRAGMA synchronous = OFF") ||
        exec(st, "PRAGMA cache_size = -262144") ||
        exec(st, "CREATE TABLE bench_meta (cell INTEGER, from_ms INTEGER, to_ms INTEGER,"
                 " complete INTEGER, schema_version INTEGER)"))
        goto out;
    if (store_int(st, "SELECT count(*) FROM users WHERE email = 'bench@example.com'") == 0) {
        int urc = cc_stmt_prepare(st,
                                  "INSERT INTO users (email, password_hash, role, name,"
                                  " created_at) VALUES ('bench@example.com', '-', $1, 'Bench', 0)",
                                  &s);

        /* SQL never spells a role: its name is bound. */
        if (urc == CC_OK)
            urc = cc_stmt_bind_text(s, 1, cc_role_name(CC_ROLE_CUSTOMER));
        if (urc == CC_OK)
            urc = cc_stmt_step(s);
        cc_stmt_release(s);
        s = NULL;
        if (urc != CC_OK) {
            fprintf(stderr, "bench_query: cannot insert the bench user\n");
            goto out;
        }
    }
    if (cc_store_begin(st) != CC_OK)
        goto out;
    in_tx = 1;
    if (cc_stmt_prepare(st,
                        "INSERT INTO locations (customer_id, name, created_at) SELECT id,"
                        " 'Bench warehouse', 0 FROM users WHERE email = 'bench@example.com'"
                        " RETURNING id",
                        &s) == CC_OK)
        loc = returning_id(s);
    else
        cc_stmt_release(s);
    s = NULL;
    if (loc <= 0)
        goto out;
    end_ms = cc_now_ms() / 60000 * 60000;
    from_ms = end_ms - SPAN_MS;
    if (load(st, loc, from_ms, end_ms, &rows) != 0)
        goto out;
    fprintf(stderr, "bench_query: %lld readings in %.1f s; rollups...\n", (long long)rows,
            (now_ms_f() - t0) / 1e3);
    if (rebuild_rollups(st, from_ms, end_ms) || exec(st, "UPDATE bench_meta SET complete = 1"))
        goto out;
    in_tx = 0;
    if (cc_store_commit(st) != CC_OK || exec(st, "ANALYZE") ||
        exec(st, "PRAGMA journal_mode = WAL"))
        goto out;
    fprintf(stderr, "bench_query: built %s in %.1f s\n", path, (now_ms_f() - t0) / 1e3);
    rc = 0;
out:
    if (in_tx)
        cc_store_rollback(st);
    cc_store_close(st);
    return rc;
}

/* Gives the bench user a password, for bench_query.sh's HTTP runs. */
static int set_password(struct cc_store *st, const char *pw)
{
    char hash[CC_PASSWORD_HASH_MAX];
    struct cc_stmt *s = NULL;
    int rc = -1;

    if (cc_password_hash(pw, hash, sizeof hash) != CC_OK)
        return -1;
    if (cc_stmt_prepare(st,
                        "UPDATE users SET password_hash = $1"
                        " WHERE email = 'bench@example.com'",
                        &s) == CC_OK &&
        cc_stmt_bind_text(s, 1, hash) == CC_OK && cc_stmt_step(s) == CC_OK)
        rc = 0;
    cc_stmt_release(s);
    return rc;
}

static int same(const struct cc_query_result *a, const struct cc_query_result *b)
{
    if (a->stats.count != b->stats.count || a->stats.sum_q != b->stats.sum_q ||
        a->stats.mkt_hi != b->stats.mkt_hi || a->stats.mkt_lo != b->stats.mkt_lo ||
        a->stats.oor_ms != b->stats.oor_ms || a->stats.min != b->stats.min ||
        a->stats.max != b->stats.max || a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->series[i].t_ms != b->series[i].t_ms || a->series[i].count != b->series[i].count ||
            a->series[i].sum_q != b->series[i].sum_q || a->series[i].min != b->series[i].min ||
            a->series[i].max != b->series[i].max)
            return 0;
    }
    return 1;
}

static double cpu_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time per 30-day query, which the load of a shared machine disturbs less than
 * wall time: this process's (the client: cc_query and the driver) and, on PostgreSQL
 * when /proc shows it, the server backend's. */
static int measure_cpu(struct cc_store *st, const char *tag, int64_t cell,
                       const struct cc_query_range *rg)
{
    struct cc_query_result r;
    long backend = 0;
    double c0, s0 = -1, s1 = -1, c1;

    if (cc_store_dialect(st) == CC_DIALECT_PG)
        backend = (long)store_int(st, "SELECT pg_backend_pid()");
    if (backend > 0)
        s0 = bench_proc_cpu_s(backend);
    c0 = cpu_now_s();
    for (int i = 0; i < CPU_RUNS; i++) {
        if (cc_query_readings(st, cell, rg, -25, -15, &r) != CC_OK)
            return 1;
        cc_query_result_free(&r);
    }
    c1 = cpu_now_s();
    if (backend > 0 && s0 >= 0)
        s1 = bench_proc_cpu_s(backend);
    printf("bench: query_30d%s_client_cpu_per_query %.3f ms\n", tag, (c1 - c0) * 1e3 / CPU_RUNS);
    if (s1 >= 0)
        printf("bench: query_30d%s_server_cpu_per_query %.3f ms\n", tag,
               (s1 - s0) * 1e3 / CPU_RUNS);
    return 0;
}

/* The benchmark cell's 30-day range, from bench_meta (either store). */
static int bench_range(struct cc_store *st, int64_t *cell, struct cc_query_range *rg)
{
    *cell = store_int(st, "SELECT cell FROM bench_meta WHERE complete = 1");
    memset(rg, 0, sizeof *rg);
    rg->to_ms = store_int(st, "SELECT to_ms FROM bench_meta") - 123457; /* not on a bucket edge */
    rg->from_ms = rg->to_ms - SPAN_MS;
    rg->bucket_ms = 7200000;
    return *cell > 0 ? 0 : -1;
}

/* Times the 30-day query of the benchmark cell on st (SQLite or PostgreSQL: one code path
 * through cc_dbi.h) and prints the figures, named "query<tag>_..." and "query_30d<tag>_...";
 * *res is the common function's answer (the caller frees it). 0, or 1 on a failure or
 * when the answer is not the raw one. */
static int measure(struct cc_store *st, const char *tag, struct cc_query_result *res)
{
    static const char groupby_sql[] =
        "SELECT ts / 7200000, min(temperature), max(temperature), avg(temperature), count(*)"
        " FROM readings WHERE cold_cell_id = $1 AND ts >= $2 AND ts < $3 GROUP BY ts / 7200000";
    struct cc_query_range rg;
    struct cc_query_result raw;
    double t_common[RUNS], t_raw[GROUPBY_RUNS], t_gb[GROUPBY_RUNS];
    int64_t cell;
    char f[CC_ISO8601_LEN], t[CC_ISO8601_LEN];
    const char *pw;
    int ok;

    if (bench_range(st, &cell, &rg) != 0)
        return 1;
    pw = getenv("BENCH_PASSWORD");
    if (pw != NULL && pw[0] != '\0' && set_password(st, pw) != 0)
        return 1;
    for (int i = 0; i < WARMUP; i++) {
        if (cc_query_readings(st, cell, &rg, -25, -15, res) != CC_OK)
            return 1;
        cc_query_result_free(res);
    }
    for (int i = 0; i < RUNS; i++) {
        double t0 = now_ms_f();

        if (cc_query_readings(st, cell, &rg, -25, -15, res) != CC_OK)
            return 1;
        t_common[i] = now_ms_f() - t0;
        if (i + 1 < RUNS)
            cc_query_result_free(res);
    }
    for (int i = 0; i < GROUPBY_RUNS; i++) {
        double t0 = now_ms_f();

        if (cc_query_readings_raw(st, cell, &rg, -25, -15, &raw) != CC_OK)
            return 1;
        t_raw[i] = now_ms_f() - t0;
        if (i + 1 < GROUPBY_RUNS)
            cc_query_result_free(&raw);
    }
    for (int i = 0; i < GROUPBY_RUNS; i++) {
        struct cc_stmt *gb = NULL;
        double t0 = now_ms_f();
        int src = cc_stmt_prepare(st, groupby_sql, &gb);

        if (src == CC_OK)
            src = cc_stmt_bind_all(gb, "iii", cell, rg.from_ms, rg.to_ms);
        while (src == CC_OK && (src = cc_stmt_step(gb)) == CC_ROW)
            src = CC_OK;
        cc_stmt_release(gb);
        if (src != CC_OK)
            return 1;
        t_gb[i] = now_ms_f() - t0;
    }
    ok = same(res, &raw);
    if (measure_cpu(st, tag, cell, &rg) != 0)
        return 1;

    cc_time_format_iso8601(rg.from_ms, f, sizeof f);
    cc_time_format_iso8601(rg.to_ms, t, sizeof t);
    printf("bench: query%s_db_readings %lld\n", tag,
           (long long)store_int(st, "SELECT max(id) FROM readings"));
    printf("bench: query_30d%s_cell_readings %lld\n", tag, (long long)res->stats.count);
    printf("bench: query_30d%s_common_p50 %.3f ms\n", tag, pct(t_common, RUNS, 50));
    printf("bench: query_30d%s_common_p99 %.3f ms\n", tag, pct(t_common, RUNS, 99));
    printf("bench: query_30d%s_raw_compute_p50 %.3f ms\n", tag, pct(t_raw, GROUPBY_RUNS, 50));
    printf("bench: query_30d%s_raw_groupby_p50 %.3f ms\n", tag, pct(t_gb, GROUPBY_RUNS, 50));
    printf("bench: query_30d%s_groupby_over_common %.1f x\n", tag,
           pct(t_gb, GROUPBY_RUNS, 50) / pct(t_common, RUNS, 50));
    printf("bench: query_30d%s_rows_read %zu\n", tag, res->rows_read);
    printf("bench: query_30d%s_equals_raw %s\n", tag, ok ? "yes" : "NO");
    printf("range %lld %s %s\n", (long long)cell, f, t);
    cc_query_result_free(&raw);
    return ok ? 0 : 1;
}

static int run(const char *path)
{
    struct cc_store *st = NULL;
    struct cc_query_result res;
    int rc;

    /* A store, as apid's workers have: its statement cache serves cc_query. */
    if (cc_store_open(path, CC_STORE_MIGRATE, &st) != CC_OK)
        return 1;
    memset(&res, 0, sizeof res);
    rc = measure(st, "", &res);
    cc_query_result_free(&res);
    cc_store_close(st);
    return rc;
}

/* The PostgreSQL copy: the same customer, 1000 cells and devices and the same 30 days as
 * the SQLite database (its bench_meta range; the benchmark cell's readings are the same
 * values, drawn first from the same generator), loaded through cc_store_readings_insert
 * in PG_BATCH-row transactions, so the rollups are the ones ingest writes. The 999 other
 * devices report every other_every_ms. CC_OK or a code. */
static int build_pg(struct cc_store *st, int64_t cell0, int64_t from_ms, int64_t end_ms,
                    int64_t other_every_ms)
{
    static struct cc_device devs[DEVICES];
    static struct cc_reading rd[PG_BATCH];
    static struct cc_store_row rows[PG_BATCH];
    static unsigned char inserted[PG_BATCH];
    char *sql = malloc(PG_SEED_SQL_MAX);
    size_t n = 0, k = 0;
    int64_t total = 0;
    double t0 = now_ms_f();
    int rc = CC_ERR_INTERNAL;

    if (sql == NULL)
        return CC_ERR_NOMEM;
    /* The load's months (readings partitions), as the daily job keeps them. */
    if (cc_store_maintain(st, from_ms) != CC_OK)
        goto out;
    n += (size_t)snprintf(sql + n, PG_SEED_SQL_MAX - n,
                          "CREATE TABLE bench_meta (cell bigint, from_ms bigint, to_ms bigint,"
                          " complete integer, schema_version integer, other_every bigint);"
                          "INSERT INTO bench_meta VALUES (%lld, %lld, %lld, 0, 0, %lld);"
                          "INSERT INTO users (id, email, password_hash, role, name, created_at)"
                          " VALUES (1, 'bench@example.com', '-', '%s', 'Bench', 0);"
                          "INSERT INTO locations (id, customer_id, name, created_at)"
                          " VALUES (1, 1, 'Bench warehouse', 0);"
                          "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp,"
                          " created_at) VALUES",
                          (long long)cell0, (long long)from_ms, (long long)end_ms,
                          (long long)other_every_ms, cc_role_name(CC_ROLE_CUSTOMER));
    for (int d = 0; d < DEVICES && n < PG_SEED_SQL_MAX; d++)
        n += (size_t)snprintf(sql + n, PG_SEED_SQL_MAX - n,
                              "%s (%lld, 1, 'Bench freezer %d', -25, -15, 0)", d ? "," : "",
                              (long long)(cell0 + d), d);
    if (n < PG_SEED_SQL_MAX)
        n += (size_t)snprintf(sql + n, PG_SEED_SQL_MAX - n,
                              "; INSERT INTO devices (id, serial_number, cold_cell_id,"
                              " api_key_hash, api_key_prefix, status, created_at) VALUES");
    for (int d = 0; d < DEVICES && n < PG_SEED_SQL_MAX; d++)
        n += (size_t)snprintf(sql + n, PG_SEED_SQL_MAX - n,
                              "%s (%d, 'BENCH-%04d', %lld, '-', '-', 'ONLINE', 0)", d ? "," : "",
                              d + 1, d, (long long)(cell0 + d));
    if (n >= PG_SEED_SQL_MAX || cc_store_exec(st, sql) != CC_OK)
        goto out;
    for (int d = 0; d < DEVICES; d++) {
        devs[d].id = d + 1;
        devs[d].cold_cell_id = cell0 + d;
        snprintf(devs[d].serial, sizeof devs[d].serial, "BENCH-%04d", d);
    }
    /* Device by device, ts ascending, as the SQLite build; a batch may span devices. */
    for (int d = 0; d < DEVICES; d++) {
        int64_t every = d == 0 ? MAIN_EVERY_MS : other_every_ms;

        for (int64_t ts = from_ms + (d == 0 ? 0 : (d * 7919) % every); ts < end_ms; ts += every) {
            memset(&rd[k], 0, sizeof rd[k]);
            rd[k].ts_ms = ts;
            rd[k].ts_given = 1;
            rd[k].temperature = temp_at(ts, d);
            rd[k].has_humidity = 1;
            rd[k].humidity = 60;
            rd[k].power_status = CC_TRUE;
            rd[k].door_status = CC_FALSE;
            rd[k].has_battery = 1;
            rd[k].battery_level = 90;
            rows[k].dev = &devs[d];
            rows[k].r = &rd[k];
            rows[k].received_at = ts;
            if (++k == PG_BATCH || (d == DEVICES - 1 && ts + every >= end_ms)) {
                if (cc_store_begin(st) != CC_OK ||
                    cc_store_readings_insert(st, rows, k, inserted) != CC_OK ||
                    cc_store_commit(st) != CC_OK) {
                    cc_store_rollback(st);
                    goto out;
                }
                total += (int64_t)k;
                k = 0;
            }
        }
    }
    if (cc_store_exec(st, "UPDATE bench_meta SET complete = 1; ANALYZE") != CC_OK)
        goto out;
    fprintf(stderr, "bench_query: PostgreSQL: %lld readings loaded in %.1f s (%.0f/s)\n",
            (long long)total, (now_ms_f() - t0) / 1e3, (double)total * 1e3 / (now_ms_f() - t0));
    rc = CC_OK;
out:
    free(sql);
    return rc;
}

/* Whether st already holds the copy build_pg would load (a cluster kept between runs,
 * BENCH_QUERY_PG_KEEP): 1 yes, 0 empty, -1 another or an unfinished copy (the caller
 * stops: mixing two loads would time neither). */
static int pg_loaded(struct cc_store *st, int64_t cell0, int64_t from_ms, int64_t end_ms,
                     int64_t other_every_ms)
{
    struct cc_stmt *s = NULL;
    int64_t n = -1;

    if (store_int(st, "SELECT to_regclass('bench_meta') IS NOT NULL") != 1)
        return 0;
    if (cc_stmt_prepare(st,
                        "SELECT count(*) FROM bench_meta WHERE complete = 1 AND cell = $1"
                        " AND from_ms = $2 AND to_ms = $3 AND other_every = $4",
                        &s) == CC_OK &&
        cc_stmt_bind_all(s, "iiii", cell0, from_ms, end_ms, other_every_ms) == CC_OK &&
        cc_stmt_step(s) == CC_ROW)
        n = cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return n == 1 ? 1 : -1;
}

/* bench_query pg URL DB: loads the PostgreSQL copy of DB (built) at URL and times it as
 * `run` does, with "_pg" in the names ("_pg_small" unless BENCH_QUERY_PG_FULL=1), then
 * checks that its answer equals SQLite's for the same cell and range. */
static int run_pg(const char *url, const char *path)
{
    const char *full = getenv("BENCH_QUERY_PG_FULL");
    int is_full = full != NULL && strcmp(full, "1") == 0;
    struct cc_store *pg = NULL, *lite = NULL;
    struct cc_query_result res_pg, res_lite;
    struct cc_query_range rg;
    int64_t cell, from_ms, to_ms, every;
    int loaded, rc = 1;

    memset(&res_pg, 0, sizeof res_pg);
    memset(&res_lite, 0, sizeof res_lite);
    if (cc_store_open(path, 0, &lite) != CC_OK || bench_range(lite, &cell, &rg) != 0) {
        fprintf(stderr, "bench_query: %s is not built\n", path);
        goto out;
    }
    /* Never the URL itself in a message: it may hold a password. */
    if (cc_store_open(url, CC_STORE_MIGRATE, &pg) != CC_OK) {
        fprintf(stderr, "bench_query: cannot open the PostgreSQL database\n");
        goto out;
    }
    from_ms = store_int(lite, "SELECT from_ms FROM bench_meta");
    to_ms = store_int(lite, "SELECT to_ms FROM bench_meta");
    every = is_full ? OTHER_EVERY_MS : OTHER_EVERY_MS * PG_SMALL_FACTOR;
    loaded = pg_loaded(pg, cell, from_ms, to_ms, every);
    if (loaded < 0) {
        fprintf(stderr, "bench_query: the PostgreSQL database holds another or an unfinished"
                        " copy (BENCH_QUERY_PG_KEEP: remove that directory)\n");
        goto out;
    }
    if (loaded == 1) {
        fprintf(stderr, "bench_query: PostgreSQL copy kept from an earlier run, not loaded\n");
    } else if (build_pg(pg, cell, from_ms, to_ms, every) != CC_OK) {
        fprintf(stderr, "bench_query: PostgreSQL load failed\n");
        goto out;
    }
    if (measure(pg, is_full ? "_pg" : "_pg_small", &res_pg) != 0)
        goto out;
    if (cc_query_readings(lite, cell, &rg, -25, -15, &res_lite) != CC_OK)
        goto out;
    printf("bench: query_30d_pg_equals_sqlite %s\n", same(&res_pg, &res_lite) ? "yes" : "NO");
    rc = same(&res_pg, &res_lite) ? 0 : 1;
out:
    cc_query_result_free(&res_pg);
    cc_query_result_free(&res_lite);
    cc_store_close(pg);
    cc_store_close(lite);
    return rc;
}

int main(int argc, char **argv)
{
    cc_log_init("bench_query", CC_LOG_WARN, 0);
    if (argc == 3 && strcmp(argv[1], "build") == 0)
        return build(argv[2]);
    if (argc == 3 && strcmp(argv[1], "run") == 0)
        return run(argv[2]);
    if (argc == 4 && strcmp(argv[1], "pg") == 0)
        return run_pg(argv[2], argv[3]);
    fprintf(stderr, "usage: bench_query build|run DB | bench_query pg URL DB\n");
    return 2;
}
