/* jobs.c - the timer thread of ingestd (see jobs.h). Each tick runs the passes that are
 * due; the rules are in common/ (cc_jobs_*, cc_notify_deliver, cc_retention_run), each
 * idempotent and safe with two ingestd at once. A failed pass is logged and retried at
 * the next tick. */
#include "jobs.h"

#include <pthread.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "cc_jobs.h"
#include "cc_log.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "cc_retention.h"
#include "cc_store.h"
#include "cc_time.h"
#include "cc_worker.h"

#define TICK_MS 1000          /* how often the timers are looked at */
#define DELIVER_MAX_ROWS 8000 /* sends per tick, so a backlog cannot starve the others */
/* Once a pass has found the client's publish window full (INGEST_PUBLISH_WINDOW), the room
 * is looked at this often and delivery alone runs again as soon as there is some, on what
 * is left of the tick's DELIVER_MAX_ROWS, rather than at the next tick: the window empties
 * in a few ms on a live connection, and a backlog of alert events must not drain at one
 * window a second. Broker down: an atomic load every 20 ms. */
#define DELIVER_RETRY_MS 20
/* This thread's SQLite page cache (the writer has CACHE_SIZE_PRAGMA's 8 MiB). Its passes
 * read a few rows by index: the outbox's due rows, the devices for the offline check. At
 * 8 MiB it held 3.9 MB in the churn bench (make bench, gdb) for no speed. */
#define INGEST_JOBS_CACHE_KIB 1024

struct ingest_jobs {
    struct cc_worker w; /* its thread, lock, condition and stop flag */
    const struct cc_config *cfg;
    cc_notify_publish_fn publish;
    ingest_room_fn room;
    cc_notify_acked_fn acked;
    void *ctx;
    int throttled; /* the publish window was found full in this pass */
    int tick_rows; /* DELIVER_MAX_ROWS less the rows the passes of this tick took */
    struct cc_store *st;
    int cache_kib;             /* st's page cache as read back at start (0 on PostgreSQL) */
    int64_t report_day_done;   /* day (epoch ms) whose reports are made, -1 if none */
    int64_t retention_next_ms; /* monotonic time of the next retention pass */
};

static void log_failed(const char *job, int rc)
{
    cc_log_warn("job_failed", "%s: %s; retrying at the next tick", job, cc_rc_code(rc));
}

/* cc_notify_room_fn: the client's room, noting a full window for run(). */
static int room(void *arg)
{
    struct ingest_jobs *j = arg;
    int n = j->room(j->ctx);

    if (n <= 0)
        j->throttled = 1;
    return n;
}

/* The channels of a delivery pass. */
static struct cc_notify_channels channels(struct ingest_jobs *j)
{
    const struct cc_config *cfg = j->cfg;
    struct cc_notify_channels ch = {
#ifdef CC_BENCH_NO_MQTT_NOTIFY /* the bench's build (Makefile): no MQTT channel */
        .publish = NULL,
#else
        .publish = j->publish,
#endif
        .publish_ctx = j->ctx,
        .acked = j->acked,
        .acked_ctx = j->ctx,
        .publish_room = room,
        .room_ctx = j,
        .webhook_url = cfg->webhook_url,
        .webhook_secret = cfg->webhook_secret,
        .smtp_url = cfg->smtp_url,
        .smtp_from = cfg->smtp_from,
    };

    return ch;
}

/* One delivery pass; j->throttled tells whether it stopped at a full publish window. */
static void deliver(struct ingest_jobs *j)
{
    struct cc_notify_channels ch = channels(j);
    int rc, taken = 0;

    j->throttled = 0;
    rc = cc_notify_deliver_rows(j->st, &ch, cc_now_ms(), j->tick_rows, NULL, &taken);
    j->tick_rows -= taken;
    if (rc != CC_OK)
        log_failed("notify_deliver", rc);
}

/* One tick: every pass that is due. */
static void tick(struct ingest_jobs *j)
{
    const struct cc_config *cfg = j->cfg;
    int64_t now = cc_now_ms();
    int64_t day = cc_jobs_report_day(cfg->daily_report_minute, now);
    int rc;

    rc = cc_jobs_offline_check(j->st, cfg->offline_after_s, now, NULL);
    if (rc != CC_OK)
        log_failed("offline_check", rc);
    rc = cc_jobs_escalate(j->st, cfg->escalate_after_s, now, NULL);
    if (rc != CC_OK)
        log_failed("escalation", rc);
    if (day != j->report_day_done) {
        rc = cc_jobs_daily_report(j->st, day, now, NULL);
        if (rc == CC_OK)
            j->report_day_done = day;
        else
            log_failed("daily_report", rc);
    }
    if (cc_mono_ms() >= j->retention_next_ms) {
        int more = 0, more_rejected = 0;

        /* PostgreSQL: the month partitions ahead (a no-op on SQLite), with every retention
         * pass, so a reading never waits in readings_default for a month to exist. */
        rc = cc_store_maintain(j->st, now);
        if (rc != CC_OK)
            log_failed("partitions", rc);
        rc = cc_retention_run(j->st, now, cfg->raw_retention_days, CC_RETENTION_BATCH,
                              CC_RETENTION_MAX_BATCHES, NULL, &more);
        if (rc != CC_OK)
            log_failed("retention", rc);
        rc = cc_retention_rejected_run(j->st, now, cfg->rejected_retention_days, CC_RETENTION_BATCH,
                                       CC_RETENTION_MAX_BATCHES, NULL, &more_rejected);
        if (rc != CC_OK)
            log_failed("retention_rejected", rc);
        j->retention_next_ms =
            cc_mono_ms() + (more || more_rejected ? TICK_MS : CC_RETENTION_EVERY_MS);
    }
    j->tick_rows = DELIVER_MAX_ROWS;
    deliver(j);
}

static void *run(void *arg)
{
    struct ingest_jobs *j = arg;
    int64_t next_tick = cc_mono_ms() + TICK_MS;

    pthread_mutex_lock(&j->w.mu);
    while (!j->w.stopping) {
        int64_t wait_ms = next_tick - cc_mono_ms();

        if (j->throttled && j->tick_rows > 0 && wait_ms > DELIVER_RETRY_MS)
            wait_ms = DELIVER_RETRY_MS;
        if (wait_ms > 0)
            cc_worker_wait_ms(&j->w, (long)wait_ms);
        if (j->w.stopping)
            break;
        pthread_mutex_unlock(&j->w.mu);
        if (cc_mono_ms() >= next_tick) {
            tick(j);
            next_tick = cc_mono_ms() + TICK_MS;
        } else if (j->throttled && j->tick_rows > 0 && j->room(j->ctx) > 0) {
            deliver(j); /* not before: a pass opens a write transaction */
        }
        pthread_mutex_lock(&j->w.mu);
    }
    pthread_mutex_unlock(&j->w.mu);
    return NULL;
}

int ingest_jobs_start(const struct cc_config *cfg, struct cc_gate *gate, struct cc_walckpt *ckpt,
                      cc_notify_publish_fn publish, ingest_room_fn room_fn,
                      cc_notify_acked_fn acked, void *ctx, struct ingest_jobs **out)
{
    struct ingest_jobs *j = calloc(1, sizeof(*j));
    int rc;

    if (j == NULL)
        return CC_ERR_NOMEM;
    /* libcurl (webhook, SMTP) is used by this thread only; initialise it before. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(j);
        return CC_ERR_INTERNAL;
    }
    j->cfg = cfg;
    j->publish = publish;
    j->room = room_fn;
    j->acked = acked;
    j->ctx = ctx;
    j->report_day_done = -1;
    j->retention_next_ms = cc_mono_ms();
    rc = cc_store_open(cfg->db_path, 0, &j->st);
    if (rc == CC_OK)
        rc = cc_store_set_cache_kib(j->st, INGEST_JOBS_CACHE_KIB);
    if (rc == CC_OK)
        rc = cc_store_cache_kib(j->st, &j->cache_kib);
    if (rc == CC_OK) {
        cc_store_set_gate(j->st, gate);
        if (ckpt != NULL)
            cc_store_attach_checkpointer(j->st, ckpt);
    }
    if (rc != CC_OK) {
        curl_global_cleanup();
        free(j);
        return rc;
    }
    if (cc_worker_start(&j->w, run, j) != CC_OK) {
        cc_store_close(j->st);
        curl_global_cleanup();
        free(j);
        return CC_ERR_INTERNAL;
    }
    *out = j;
    return CC_OK;
}

int ingest_jobs_cache_kib(const struct ingest_jobs *j)
{
    return j->cache_kib;
}

void ingest_jobs_stop(struct ingest_jobs *j)
{
    if (j == NULL)
        return;
    cc_worker_stop(&j->w);
    {
        /* What the broker acknowledged after the last pass: not sent again at the next start. */
        struct cc_notify_channels ch = channels(j);
        int rc = cc_notify_record_acks(j->st, &ch, cc_now_ms(), NULL);

        if (rc != CC_OK)
            log_failed("notify_record_acks", rc);
    }
    cc_store_close(j->st);
    curl_global_cleanup();
    free(j);
}
