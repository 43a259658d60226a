/* bench_store.c - the ingest path's store on SQLite and on PostgreSQL, the same load on
 * both (issue 14: PostgreSQL ingest >= 0.9 of SQLite's): BENCH_STORE_READINGS readings
 * (200,000) from 1,000 devices in 100 cells, one reading per MQTT message, in batches of
 * 1,000 messages (one per device), each batch through cc_ingest_batch in one transaction
 * (cc_store_begin .. cc_store_commit), as ingestd's writer stores a batch. Readings stay
 * within the cells' thresholds: no alert changes, only the state lookups.
 *   SQLite: a fresh temporary file (WAL, synchronous=NORMAL: the daemons' settings);
 *   PostgreSQL: the URL given (tools/bench_store.sh starts a tools/pgtest.sh cluster:
 *   fsync off), a fresh schema migrated by the store.
 * Only the ingest loop is timed (payloads are built before). Prints "bench:" lines;
 * asserts nothing. Usage: bench_store SQLITE_PATH [POSTGRES_URL]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_db.h"
#include "cc_ingest.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"

#define DEVICES 1000
#define CELLS 100
#define BATCH 1000             /* messages per transaction, one per device */
#define T0 1795600000000LL     /* ms, 2026-11-26: readings of round r at T0 + r min */
#define PAYLOAD_MAX 96         /* bytes of one message's JSON */
#define SQL_MAX (DEVICES * 96) /* the seed's device INSERT */

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
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

/* Stores the load on st, a batch per round; readings/s, or -1 on a failure. */
static double run(struct cc_store *st, const struct load *l)
{
    static struct cc_ingest_msg msgs[BATCH];
    long stored = 0;
    double t0 = now_s(), dt;

    for (int r = 0; r < l->rounds; r++) {
        for (int d = 0; d < DEVICES; d++) {
            const char *p = l->payloads + ((size_t)r * DEVICES + d) * PAYLOAD_MAX;

            memset(&msgs[d], 0, sizeof msgs[d]);
            msgs[d].topic = l->topics[d];
            msgs[d].payload = p;
            msgs[d].len = strlen(p);
            msgs[d].received_at = T0 + (long long)r * 60000 + 500;
        }
        if (cc_store_begin(st) != CC_OK || cc_ingest_batch(st, msgs, BATCH) != CC_OK ||
            cc_store_commit(st) != CC_OK) {
            fprintf(stderr, "bench_store: batch %d failed\n", r);
            cc_store_rollback(st);
            return -1;
        }
        for (int d = 0; d < DEVICES; d++) {
            stored += (long)msgs[d].res.accepted;
            cc_ingest_result_clear(&msgs[d].res);
        }
    }
    dt = now_s() - t0;
    if (stored != (long)l->rounds * DEVICES) {
        fprintf(stderr, "bench_store: %ld readings stored of %ld\n", stored,
                (long)l->rounds * DEVICES);
        return -1;
    }
    return (double)stored / dt;
}

/* Opens, migrates and seeds the store at where; runs the load. readings/s or -1. */
static double bench_one(const char *where, const struct load *l)
{
    struct cc_store *st = NULL;
    double rate = -1;

    if (cc_store_open(where, CC_STORE_CREATE | CC_STORE_MIGRATE, &st) != CC_OK) {
        /* Never the URL itself: it may hold a password. */
        fprintf(stderr, "bench_store: cannot open %s\n",
                strncmp(where, "postgres", 8) == 0 ? "the PostgreSQL database" : where);
        return -1;
    }
    /* The load's month (PostgreSQL: its readings partition, as the daily job keeps). */
    if (cc_store_maintain(st, T0) == CC_OK && seed(st) == CC_OK)
        rate = run(st, l);
    cc_store_close(st);
    return rate;
}

int main(int argc, char **argv)
{
    const char *env = getenv("BENCH_STORE_READINGS");
    int readings = env != NULL ? atoi(env) : 200000;
    struct load *l = calloc(1, sizeof *l);
    double lite, pg = -1;

    if (argc < 2 || l == NULL || readings < DEVICES) {
        fprintf(stderr, "usage: bench_store SQLITE_PATH [POSTGRES_URL]\n");
        return 2;
    }
    cc_log_init("bench_store", CC_LOG_WARN, 1);
    if (load_new(l, readings) != CC_OK)
        return 1;
    cc_db_remove_files(argv[1]);
    lite = bench_one(argv[1], l);
    cc_db_remove_files(argv[1]);
    if (lite > 0)
        printf("bench: store_sqlite_ingest_rate %.0f readings/s\n", lite);
    if (argc > 2 && (pg = bench_one(argv[2], l)) > 0)
        printf("bench: store_pg_ingest_rate %.0f readings/s\n", pg);
    if (lite > 0 && pg > 0)
        printf("bench: store_pg_vs_sqlite_ratio %.2f ratio\n", pg / lite);
    free(l->payloads);
    free(l);
    return lite > 0 && (argc < 3 || pg > 0) ? 0 : 1;
}
