/* jobs.c - the timer thread of ingestd (see jobs.h). Each tick runs the passes that are
 * due; the rules are in common/ (cc_jobs_*, cc_notify_deliver, cc_retention_run), each
 * idempotent and safe with two ingestd at once. A failed pass is logged and retried at
 * the next tick. */
#include "jobs.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

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

struct ingest_jobs {
    struct cc_worker w; /* its thread, lock, condition and stop flag */
    const struct cc_config *cfg;
    ingest_publish_fn publish;
    void *ctx;
    struct cc_store *st;
    int64_t report_day_done;   /* day (epoch ms) whose reports are made, -1 if none */
    int64_t retention_next_ms; /* monotonic time of the next retention pass */
};

static void log_failed(const char *job, int rc)
{
    cc_log_warn("job_failed", "%s: %s; retrying at the next tick", job, cc_rc_code(rc));
}

/* One tick: every pass that is due. */
static void tick(struct ingest_jobs *j)
{
    const struct cc_config *cfg = j->cfg;
    struct cc_notify_channels ch = {
#ifdef CC_BENCH_NO_MQTT_NOTIFY /* the bench's build (Makefile): no MQTT channel */
        .publish = NULL,
#else
        .publish = j->publish,
#endif
        .publish_ctx = j->ctx,
        .webhook_url = cfg->webhook_url,
        .webhook_secret = cfg->webhook_secret,
        .smtp_url = cfg->smtp_url,
        .smtp_from = cfg->smtp_from,
    };
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
    rc = cc_notify_deliver(j->st, &ch, cc_now_ms(), DELIVER_MAX_ROWS, NULL);
    if (rc != CC_OK)
        log_failed("notify_deliver", rc);
}

static void *run(void *arg)
{
    struct ingest_jobs *j = arg;

    pthread_mutex_lock(&j->w.mu);
    while (!j->w.stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += TICK_MS / 1000;
        pthread_cond_timedwait(&j->w.wake, &j->w.mu, &until);
        if (j->w.stopping)
            break;
        pthread_mutex_unlock(&j->w.mu);
        tick(j);
        pthread_mutex_lock(&j->w.mu);
    }
    pthread_mutex_unlock(&j->w.mu);
    return NULL;
}

int ingest_jobs_start(const struct cc_config *cfg, struct cc_gate *gate, struct cc_walckpt *ckpt,
                      ingest_publish_fn publish, void *ctx, struct ingest_jobs **out)
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
    j->ctx = ctx;
    j->report_day_done = -1;
    j->retention_next_ms = cc_mono_ms();
    rc = cc_store_open(cfg->db_path, 0, &j->st);
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

void ingest_jobs_stop(struct ingest_jobs *j)
{
    if (j == NULL)
        return;
    cc_worker_stop(&j->w);
    cc_store_close(j->st);
    curl_global_cleanup();
    free(j);
}
