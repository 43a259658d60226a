/* bench_store.c - the ingest path's store on SQLite and on PostgreSQL, the same load on
 * both (issue 14: PostgreSQL ingest >= 0.9 of SQLite's): BENCH_STORE_READINGS readings
 * (200,000) from 1,000 devices in 100 cells, one reading per MQTT message, in batches of
 * BENCH_STORE_BATCH messages (1,000, one per device; a divisor of 1,000: ingestd's closed
 * loop commits ~50-150 at a time, where each cell gets about one reading per commit), the
 * devices in turn, each batch through cc_ingest_batch in one transaction
 * (cc_store_begin .. cc_store_commit), as ingestd's writer stores a batch. Readings stay
 * within the cells' thresholds: no alert changes, only the state lookups.
 *   SQLite: a fresh temporary file (WAL, synchronous=NORMAL: the daemons' settings);
 *   PostgreSQL: the URL given (tools/bench_store.sh starts a tools/pgtest.sh cluster with
 *   a production server's durability settings), a fresh schema migrated by the store.
 * The two stores' batches are interleaved, batch r on one and then on the other (the first
 * of the pair alternating), so that the machine's other users slow both alike; with
 * BENCH_STORE_ORDER=sequential every SQLite batch runs first, then every PostgreSQL one.
 * Only the batches are timed (payloads are built before). The machine is shared, so
 * besides the rate it prints the CPU seconds per 100k readings that the batches cost this
 * process (CLOCK_PROCESS_CPUTIME_ID) and, on PostgreSQL, the server backend serving it
 * (utime + stime of /proc/PID/stat for pg_backend_pid(): the cluster runs on this machine),
 * which other load disturbs less than the rate. Prints "bench:" lines; asserts nothing.
 * Usage: bench_store SQLITE_PATH [POSTGRES_URL]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_proc.h"
#include "cc_db.h"
#include "cc_dbi.h"
#include "cc_ingest.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"

#define DEVICES 1000
#define CELLS 100
#define BATCH 1000             /* messages per transaction at most, one per device */
#define T0 1795600000000LL     /* ms, 2026-11-26: readings of round r at T0 + r min */
#define PAYLOAD_MAX 96         /* bytes of one message's JSON */
#define SQL_MAX (DEVICES * 96) /* the seed's device INSERT */
#define PER_READINGS 100000.0  /* CPU figures are seconds per this many readings */

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_self_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The PostgreSQL backend's pid of st, 0 on SQLite or a failure. */
static long backend_pid(struct cc_store *st)
{
    static const char sql[] = "SELECT pg_backend_pid()";
    struct cc_stmt *s = NULL;
    long pid = 0;

    if (cc_store_dialect(st) != CC_DIALECT_PG)
        return 0;
    if (cc_stmt_prepare(st, sql, &s) == CC_OK && cc_stmt_step(s) == CC_ROW)
        pid = (long)cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return pid;
}

/* The customer, cells and devices, in SQL both dialects run. CC_OK or a code. */
static int seed(struct cc_store *st)
{
    char *sql = malloc(SQL_MAX);
    size_t n = 0;
    int rc;

    if (sql == NULL)
        return CC_ERR_NOMEM;
    n += (size_t)snprintf(sql + n, SQL_MAX - n,
                          "INSERT INTO users (id, email, password_hash, role, name, created_at)"
                          " VALUES (1, 'bench@example.com', '!', 'CUSTOMER', 'Bench', 0);"
                          "INSERT INTO locations (id, customer_id, name, created_at)"
                          " VALUES (1, 1, 'Bench', 0);"
                          "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp,"
                          " created_at) VALUES");
    for (int c = 1; c <= CELLS; c++)
        n += (size_t)snprintf(sql + n, SQL_MAX - n, "%s (%d, 1, 'Cell %d', 2, 8, 0)",
                              c > 1 ? "," : "", c, c);
    n += (size_t)snprintf(sql + n, SQL_MAX - n,
                          "; INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
                          " api_key_prefix, created_at) VALUES");
    for (int d = 1; d <= DEVICES; d++)
        n += (size_t)snprintf(sql + n, SQL_MAX - n, "%s (%d, 'BENCH-%04d', %d, 'h', 'p', 0)",
                              d > 1 ? "," : "", d, d, 1 + (d - 1) % CELLS);
    rc = n < SQL_MAX ? cc_store_exec(st, sql) : CC_ERR_INTERNAL;
    free(sql);
    return rc;
}

/* The load: topics[d] and payloads[r * DEVICES + d] (round r, device d). */
struct load {
    char topics[DEVICES][40];
    char *payloads;
    int rounds;
};

static int load_new(struct load *l, int readings)
{
    l->rounds = readings / DEVICES;
    l->payloads = malloc((size_t)l->rounds * DEVICES * PAYLOAD_MAX);
    if (l->payloads == NULL)
        return CC_ERR_NOMEM;
    for (int d = 0; d < DEVICES; d++)
        snprintf(l->topics[d], sizeof l->topics[d], "devices/BENCH-%04d/readings", d + 1);
    for (int r = 0; r < l->rounds; r++)
        for (int d = 0; d < DEVICES; d++)
            snprintf(l->payloads + ((size_t)r * DEVICES + d) * PAYLOAD_MAX, PAYLOAD_MAX,
                     "{\"ts\":%lld,\"temperature\":%.2f,\"humidity\":55.5}",
                     T0 + (long long)r * 60000, 3.0 + (double)((r + d) % 40) / 10.0);
    return CC_OK;
}

/* One store's run: its open store, the time and CPU its batches took, what they stored. */
struct side {
    struct cc_store *st;
    long pid;         /* the PostgreSQL backend's, 0 on SQLite */
    double wall, cpu; /* seconds spent in this store's batches: wall clock, this process */
    double srv0;      /* the backend's CPU seconds before the first batch, -1 unknown */
    long stored;      /* readings accepted */
    int failed;
};

/* Stores messages [i * n, i * n + n) of the load (round-robin over the devices) on one
 * side, in one transaction, as ingestd's writer stores a batch. */
static void batch(struct side *sd, const struct load *l, int i, int n)
{
    static struct cc_ingest_msg msgs[BATCH];
    double c0, t0;

    if (sd->failed)
        return;
    for (int k = 0; k < n; k++) {
        int m = i * n + k, r = m / DEVICES, d = m % DEVICES;
        const char *p = l->payloads + (size_t)m * PAYLOAD_MAX;

        memset(&msgs[k], 0, sizeof msgs[k]);
        msgs[k].topic = l->topics[d];
        msgs[k].payload = p;
        msgs[k].len = strlen(p);
        msgs[k].received_at = T0 + (long long)r * 60000 + 500;
    }
    c0 = cpu_self_s();
    t0 = now_s();
    if (cc_store_begin(sd->st) != CC_OK || cc_ingest_batch(sd->st, msgs, (size_t)n) != CC_OK ||
        cc_store_commit(sd->st) != CC_OK) {
        fprintf(stderr, "bench_store: batch %d failed\n", i);
        cc_store_rollback(sd->st);
        sd->failed = 1;
    }
    sd->wall += now_s() - t0;
    sd->cpu += cpu_self_s() - c0;
    for (int k = 0; k < n; k++) {
        sd->stored += (long)msgs[k].res.accepted;
        cc_ingest_result_clear(&msgs[k].res);
    }
}

/* Opens, migrates and seeds the store at where into sd. CC_OK or a code. */
static int side_open(struct side *sd, const char *where)
{
    memset(sd, 0, sizeof *sd);
    sd->srv0 = -1;
    if (cc_store_open(where, CC_STORE_CREATE | CC_STORE_MIGRATE, &sd->st) != CC_OK) {
        /* Never the URL itself: it may hold a password. */
        fprintf(stderr, "bench_store: cannot open %s\n",
                strncmp(where, "postgres", 8) == 0 ? "the PostgreSQL database" : where);
        return CC_ERR_DB;
    }
    /* The load's month (PostgreSQL: its readings partition, as the daily job keeps). */
    if (cc_store_maintain(sd->st, T0) != CC_OK || seed(sd->st) != CC_OK)
        return CC_ERR_DB;
    sd->pid = backend_pid(sd->st);
    if (sd->pid > 0)
        sd->srv0 = bench_proc_cpu_s(sd->pid);
    return CC_OK;
}

/* Prints a side's lines; its rate (readings/s), or -1 when it failed. */
static double side_report(struct side *sd, const struct load *l, const char *name)
{
    long want = (long)l->rounds * DEVICES;
    double srv1 = sd->pid > 0 ? bench_proc_cpu_s(sd->pid) : -1;

    if (sd->failed || sd->stored != want || sd->wall <= 0) {
        if (!sd->failed)
            fprintf(stderr, "bench_store: %s stored %ld readings of %ld\n", name, sd->stored, want);
        return -1;
    }
    printf("bench: store_%s_ingest_rate %.0f readings/s\n", name, (double)sd->stored / sd->wall);
    printf("bench: store_%s_%scpu_per_100k %.2f s\n", name, sd->pid > 0 ? "client_" : "",
           sd->cpu * PER_READINGS / (double)sd->stored);
    if (sd->srv0 >= 0 && srv1 >= 0)
        printf("bench: store_%s_backend_cpu_per_100k %.2f s\n", name,
               (srv1 - sd->srv0) * PER_READINGS / (double)sd->stored);
    return (double)sd->stored / sd->wall;
}

int main(int argc, char **argv)
{
    const char *env = getenv("BENCH_STORE_READINGS");
    const char *order = getenv("BENCH_STORE_ORDER");
    const char *benv = getenv("BENCH_STORE_BATCH");
    int readings = env != NULL ? atoi(env) : 200000;
    int n = benv != NULL ? atoi(benv) : BATCH;
    int sequential = order != NULL && strcmp(order, "sequential") == 0;
    struct load *l = calloc(1, sizeof *l);
    struct side lite, pg;
    double lite_rate = -1, pg_rate = -1;
    int use_pg = argc > 2;

    if (argc < 2 || l == NULL || readings < DEVICES || n < 1 || n > BATCH || DEVICES % n != 0) {
        fprintf(stderr, "usage: bench_store SQLITE_PATH [POSTGRES_URL]\n");
        return 2;
    }
    cc_log_init("bench_store", CC_LOG_WARN, 1);
    if (load_new(l, readings) != CC_OK)
        return 1;
    cc_db_remove_files(argv[1]);
    if (side_open(&lite, argv[1]) != CC_OK || (use_pg && side_open(&pg, argv[2]) != CC_OK))
        return 1;
    /* Interleaved (the default): batch r on one store, then on the other, the first of the
     * pair alternating, so that both see the same load from the machine's other users and a
     * busy minute slows both, not one; the ratio is then steadier than that of two runs
     * taken one after the other (BENCH_STORE_ORDER=sequential, the old way). */
    if (sequential || !use_pg) {
        for (int i = 0; i < l->rounds * (DEVICES / n); i++)
            batch(&lite, l, i, n);
        for (int i = 0; use_pg && i < l->rounds * (DEVICES / n); i++)
            batch(&pg, l, i, n);
    } else {
        for (int i = 0; i < l->rounds * (DEVICES / n); i++) {
            batch(i % 2 ? &pg : &lite, l, i, n);
            batch(i % 2 ? &lite : &pg, l, i, n);
        }
    }
    lite_rate = side_report(&lite, l, "sqlite");
    if (use_pg)
        pg_rate = side_report(&pg, l, "pg");
    if (lite_rate > 0 && pg_rate > 0)
        printf("bench: store_pg_vs_sqlite_ratio %.2f ratio\n", pg_rate / lite_rate);
    cc_store_close(lite.st);
    if (use_pg)
        cc_store_close(pg.st);
    cc_db_remove_files(argv[1]);
    free(l->payloads);
    free(l);
    return lite_rate > 0 && (!use_pg || pg_rate > 0) ? 0 : 1;
}
