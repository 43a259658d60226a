/* bench_alerts.c - what the alert engine and the outbox cost the writer, without the
 * broker or Paho: readings go through cc_ingest_readings (the path of both daemons) into
 * a temporary database, 100 per transaction like a busy writer's batches, for 1000
 * devices in 100 freezer cells (-25..-15 °C).
 *   plain: every reading in range, so no alert changes;
 *   churn: each device alternates -20 and -10 °C, so every reading raises or resolves an
 *          alert, with its notification and its alert event.
 * The two alternate for BENCH_ALERT_ROUNDS rounds on fresh databases and the medians
 * are printed, with the ratio plain / churn. Then the delivery worker (cc_notify_deliver)
 * sends the churn run's outbox through a publish function that only counts: its cost per
 * published row. Only alert events are published (SPEC §3: notifications never go over
 * MQTT); the notifications, with no other channel here, are settled in the same passes and
 * their cost is in the figure. Prints "bench:" lines; asserts nothing. Usage: bench_alerts
 * [readings].
 * BENCH_ALERT_PLAIN_ONLY=1, for profiles of the plain path: the churn runs are left out.
 * The store has the ingest cache on (cc_ingest_cache.h) as ingestd's writer has;
 * BENCH_ALERT_NO_CACHE=1 leaves it off, to price it in the same binary.
 * BENCH_ALERT_SQL, for experiments: SQL run on each fresh database after the fixture (in
 * its transaction), e.g. "DROP INDEX alerts_cell_first" to price one index. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cc_db.h"
#include "cc_ingest.h"
#include "cc_ingest_cache.h"
#include "cc_log.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "cc_role.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"

#define DEVICES 1000
#define CELLS 100
#define PER_TXN 100
#define T0 1795600000000LL /* ms; reading i of a device is at T0 + round * 1 s */

static double clock_s(clockid_t id)
{
    struct timespec t;

    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* This process's CPU time: on a shared machine the wall time per reading moves with the
 * other tenants' load (and with the WAL's fsyncs), the CPU time much less. */
static double cpu_s(void)
{
    return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

/* The broker of the delivery phase: it takes every alert event and acknowledges it at once,
 * so each costs the worker what it does in ingestd (the hand-over under a lease, then the
 * acknowledgement marked SENT in a later pass). */
#define BENCH_ACKS_MAX 4096 /* acknowledged, not yet taken: a pass hands over at most 200 */
static struct {
    struct cc_notify_event evs[BENCH_ACKS_MAX];
    int n;
} acks;

static int count_publish(void *ctx, const char *topic, const char *payload, size_t len,
                         struct cc_notify_event ev)
{
    (void)topic;
    (void)payload;
    (void)len;
    if (acks.n >= BENCH_ACKS_MAX)
        return -1;
    acks.evs[acks.n++] = ev;
    (*(long *)ctx)++;
    return 0;
}

static int take_acks(void *ctx, struct cc_notify_event *evs, int max)
{
    int n = acks.n < max ? acks.n : max;

    (void)ctx;
    acks.n -= n;
    memcpy(evs, acks.evs + acks.n, (size_t)n * sizeof *evs);
    return n;
}

static int exec(struct cc_store *st, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(cc_store_db(st), sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "bench_alerts: %s: %s\n", sql, msg != NULL ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Runs one statement whose ?1 is the name of role (SQL never spells a role). */
static int exec_role(sqlite3 *db, const char *sql, int role)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

    if (src == SQLITE_OK)
        src = sqlite3_bind_text(s, 1, cc_role_name(role), -1, SQLITE_STATIC);
    if (src == SQLITE_OK && sqlite3_step(s) != SQLITE_DONE)
        src = sqlite3_errcode(db);
    sqlite3_finalize(s);
    if (src != SQLITE_OK) {
        fprintf(stderr, "%s: %s: %s\n", "bench_alerts", sql, sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* A fresh database with the customer, cells and devices. */
static struct cc_store *setup(const char *path)
{
    struct cc_store *st = NULL;
    char sql[256];

    cc_db_remove_files(path);
    if (cc_store_open(path, CC_DB_CREATE | CC_DB_MIGRATE, &st) != CC_OK)
        return NULL;
    if (exec(st, "BEGIN") != 0 ||
        exec_role(cc_store_db(st),
                  "INSERT INTO users (id, email, password_hash, role, name, created_at)"
                  " VALUES (1, 'bench@example.com', '!', ?1, 'Bench', 0)",
                  CC_ROLE_CUSTOMER) != 0 ||
        exec(st, "INSERT INTO locations (id, customer_id, name, created_at)"
                 " VALUES (1, 1, 'Bench', 0)") != 0)
        goto fail;
    for (int c = 1; c <= CELLS; c++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at)"
                 " VALUES (%d, 1, 'Freezer %d', -25, -15, 0)",
                 c, c);
        if (exec(st, sql) != 0)
            goto fail;
    }
    for (int d = 1; d <= DEVICES; d++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
                 " api_key_prefix, created_at) VALUES (%d, 'BENCH-%05d', %d, 'h', 'p', 0)",
                 d, d, (d - 1) % CELLS + 1);
        if (exec(st, sql) != 0)
            goto fail;
    }
    if (getenv("BENCH_ALERT_SQL") && exec(st, getenv("BENCH_ALERT_SQL")) != 0)
        goto fail;
    if (exec(st, "COMMIT") == 0 &&
        (getenv("BENCH_ALERT_NO_CACHE") != NULL || cc_ingest_cache_enable(st) == CC_OK))
        return st;
fail:
    cc_store_close(st);
    return NULL;
}

/* Stores n readings; µs per reading (wall time), or -1 on a failure. *cpu_us gets the
 * process's CPU µs per reading. */
static double run(struct cc_store *st, int n, int churn, double *cpu_us)
{
    double t = now_s(), c = cpu_s();

    for (int i = 0; i < n;) {
        if (cc_store_begin(st) != CC_OK)
            return -1;
        for (int k = 0; k < PER_TXN && i < n; k++, i++) {
            int round = i / DEVICES;
            int64_t ts = T0 + (int64_t)round * 1000;
            double temp = churn && round % 2 == 1 ? -10.0 : -20.0;
            char serial[16], payload[96];
            struct cc_ingest_result res;

            snprintf(serial, sizeof serial, "BENCH-%05d", i % DEVICES + 1);
            snprintf(payload, sizeof payload, "{\"temperature\":%.1f,\"ts\":%lld}", temp,
                     (long long)ts);
            if (cc_ingest_readings(st, serial, payload, strlen(payload), ts, CC_INGEST_PARTIAL,
                                   &res) != CC_OK) {
                cc_store_rollback(st);
                return -1;
            }
            cc_ingest_result_clear(&res);
        }
        if (cc_store_commit(st) != CC_OK)
            return -1;
    }
    *cpu_us = (cpu_s() - c) * 1e6 / n;
    return (now_s() - t) * 1e6 / n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 40000;
    const char *env = getenv("BENCH_ALERT_ROUNDS");
    int rounds = env != NULL ? atoi(env) : 3;
    int kinds = getenv("BENCH_ALERT_PLAIN_ONLY") != NULL ? 1 : 2;
    char path[] = "/tmp/cc-bench-alerts-XXXXXX";
    double plain[16] = {0}, churn[16] = {0}, plain_cpu[16] = {0}, churn_cpu[16] = {0};
    double deliver_us = -1, deliver_cpu = -1;
    long published = 0;
    int fd;

    if (n < DEVICES * 2 || rounds < 1 || rounds > 16) {
        fprintf(stderr, "usage: bench_alerts [readings >= %d]; BENCH_ALERT_ROUNDS 1..16\n",
                DEVICES * 2);
        return 2;
    }
    cc_log_init("bench_alerts", CC_LOG_WARN, 0);
    cc_db_tune_process(0);
    fd = mkstemp(path);
    if (fd < 0) {
        perror("bench_alerts: mkstemp");
        return 1;
    }
    close(fd);
    for (int r = 0; r < rounds; r++) {
        for (int c = 0; c < kinds; c++) {
            struct cc_store *st = setup(path);
            double cpu_us = 0;
            double us = st != NULL ? run(st, n, c, &cpu_us) : -1;

            if (us < 0) {
                fprintf(stderr, "bench_alerts: %s run failed\n", c ? "churn" : "plain");
                cc_store_close(st);
                cc_db_remove_files(path);
                return 1;
            }
            (c ? churn : plain)[r] = us;
            (c ? churn_cpu : plain_cpu)[r] = cpu_us;
            if (c && r == rounds - 1) {
                struct cc_notify_channels ch = {
                    .publish = count_publish, .publish_ctx = &published, .acked = take_acks};
                double t = now_s(), tc = cpu_s();
                int sent;

                do {
                    sent = 0;
                    if (cc_notify_deliver(st, &ch, T0 + 86400000LL, 1 << 30, &sent) != CC_OK)
                        break;
                } while (sent > 0);
                if (published > 0) {
                    deliver_us = (now_s() - t) * 1e6 / (double)published;
                    deliver_cpu = (cpu_s() - tc) * 1e6 / (double)published;
                }
            }
            cc_store_close(st);
        }
    }
    cc_db_remove_files(path);
    qsort(plain, (size_t)rounds, sizeof plain[0], cmp_double);
    qsort(churn, (size_t)rounds, sizeof churn[0], cmp_double);
    qsort(plain_cpu, (size_t)rounds, sizeof plain_cpu[0], cmp_double);
    qsort(churn_cpu, (size_t)rounds, sizeof churn_cpu[0], cmp_double);
    printf("bench: writer_plain_us_per_reading %.1f us\n", plain[rounds / 2]);
    printf("bench: writer_churn_us_per_reading %.1f us\n", churn[rounds / 2]);
    printf("bench: writer_churn_vs_plain_ratio %.3f ratio\n",
           plain[rounds / 2] / churn[rounds / 2]);
    printf("bench: writer_plain_cpu_us_per_reading %.1f us\n", plain_cpu[rounds / 2]);
    printf("bench: writer_churn_cpu_us_per_reading %.1f us\n", churn_cpu[rounds / 2]);
    printf("bench: writer_churn_vs_plain_cpu_ratio %.3f ratio\n",
           plain_cpu[rounds / 2] / churn_cpu[rounds / 2]);
    printf("bench: outbox_delivered %ld rows\n", published);
    printf("bench: outbox_deliver_us_per_row %.1f us\n", deliver_us);
    printf("bench: outbox_deliver_cpu_us_per_row %.1f us\n", deliver_cpu);
    return 0;
}
