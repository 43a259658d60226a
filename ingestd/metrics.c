/* metrics.c - Prometheus text exposition for ingestd. */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_stats.h"
#include "cc_store.h"
#include "cc_time.h"
#include "cc_walckpt.h"
#include "cc_wake.h"

#define BODY_MAX (64 * 1024) /* bytes of exposition text */
/* The scrapes' read-only connection's SQLite page cache. It reads O(1) totals and, every
 * OUTBOX_EVERY_MS, counts the outbox backlog over an index: with SQLite's default 2 MB it
 * filled while a churn backlog grew, and civetweb's two workers, each in its own malloc
 * arena, held that twice (2.6 + 2.75 MB, make bench, smaps). */
#define INGEST_METRICS_CACHE_KIB 256
#define OUTBOX_EVERY_MS 2000 /* the outbox backlog is counted at most this often */

struct ingest_metrics {
    struct mg_context *ctx;
    int port;           /* the listener, for cc_wake at the stop */
    char db_path[4096]; /* alert and notification totals are read at scrape time */
    /* One read-only connection kept for the scrapes (opening one parses the whole
     * schema: measured, most of a scrape's cost), lent under mu. */
    pthread_mutex_t mu;
    struct cc_store *st;
    int cache_kib;      /* st's page cache as read back when it was opened, under mu */
    int jobs_cache_kib; /* __atomic; 0 until the jobs thread has started */
    int64_t outbox_at;  /* cc_mono_ms of the last outbox count, 0 if none */
    unsigned long long outbox_notifications, outbox_events;
    struct ingest_writer *w;
    struct ingest_mqtt_counters *mq;
    struct cc_walckpt *ckpt;
};

static int handle(struct mg_connection *conn, void *data)
{
    struct ingest_metrics *m = data;
    struct ingest_stats s;
    struct ingest_lag_summary lag;
    char *body = malloc(BODY_MAX);
    size_t n = 0;
    static const char *codes[4] = {"BAD_JSON", "VALIDATION_ERROR", "NOT_FOUND", "INTERNAL"};

    if (body == NULL) {
        mg_send_http_error(conn, 500, "%s", "out of memory");
        return 500;
    }
    struct ingest_writer *w = __atomic_load_n(&m->w, __ATOMIC_ACQUIRE);
    struct cc_walckpt *ckpt = __atomic_load_n(&m->ckpt, __ATOMIC_ACQUIRE);
    if (w != NULL) {
        ingest_writer_stats(w, &s);
        ingest_writer_lag(w, &lag);
    } else { /* a standby: nothing received, nothing committed */
        memset(&s, 0, sizeof s);
        memset(&lag, 0, sizeof lag);
    }
#define OUT(...) n += (size_t)snprintf(body + n, n < BODY_MAX ? BODY_MAX - n : 0, __VA_ARGS__)
    OUT("# HELP coldchain_ingest_active 1 when this ingestd holds its client id's lease and "
        "consumes, 0 while it waits as a standby (docs/scaling.md).\n"
        "# TYPE coldchain_ingest_active gauge\ncoldchain_ingest_active %d\n",
        w != NULL);
    OUT("# HELP coldchain_ingest_messages_total MQTT messages committed, any outcome.\n"
        "# TYPE coldchain_ingest_messages_total counter\ncoldchain_ingest_messages_total %llu\n",
        s.messages);
    OUT("# HELP coldchain_ingest_readings_accepted_total Readings stored.\n"
        "# TYPE coldchain_ingest_readings_accepted_total counter\n"
        "coldchain_ingest_readings_accepted_total %llu\n",
        s.accepted);
    OUT("# HELP coldchain_ingest_readings_duplicate_total Redelivered readings stored once.\n"
        "# TYPE coldchain_ingest_readings_duplicate_total counter\n"
        "coldchain_ingest_readings_duplicate_total %llu\n",
        s.duplicates);
    /* Rises when readings of a device arrive out of order: a device's own backfill, or
     * several ingestd sharing a subscription round-robin (docs/scaling.md). */
    OUT("# HELP coldchain_ingest_late_total Readings stored after a newer reading of their "
        "device; the alert engine skips them.\n"
        "# TYPE coldchain_ingest_late_total counter\ncoldchain_ingest_late_total %llu\n",
        s.late);
    OUT("# HELP coldchain_ingest_rejected_total Messages refused, by error code.\n"
        "# TYPE coldchain_ingest_rejected_total counter\n");
    for (int i = 0; i < 4; i++)
        OUT("coldchain_ingest_rejected_total{code=\"%s\"} %llu\n", codes[i], s.rejected_by_code[i]);
    OUT("# HELP coldchain_ingest_commits_total Database transactions committed.\n"
        "# TYPE coldchain_ingest_commits_total counter\ncoldchain_ingest_commits_total %llu\n",
        s.commits);
    OUT("# HELP coldchain_ingest_commit_seconds_sum Time spent in committed transactions.\n"
        "# TYPE coldchain_ingest_commit_seconds_sum counter\n"
        "coldchain_ingest_commit_seconds_sum %.6f\n",
        s.commit_seconds_sum);
    OUT("# HELP coldchain_ingest_db_errors_total Failed transactions (retried).\n"
        "# TYPE coldchain_ingest_db_errors_total counter\ncoldchain_ingest_db_errors_total %llu\n",
        s.db_errors);
    OUT("# HELP coldchain_error_replies_suppressed_total Error replies to devices not published: "
        "over the per-device cap (INGEST_ERROR_REPLY_BURST, INGEST_ERROR_REPLIES_PER_MIN).\n"
        "# TYPE coldchain_error_replies_suppressed_total counter\n"
        "coldchain_error_replies_suppressed_total %llu\n",
        s.errors_suppressed);
    OUT("# HELP coldchain_ingest_queue Messages received and journaled, not yet committed "
        "(at most %d).\n# TYPE coldchain_ingest_queue gauge\ncoldchain_ingest_queue %zu\n",
        INGEST_QUEUE_MAX, s.backlog);
    OUT("# HELP coldchain_ingest_queue_bytes Bytes of the queued messages' copies (at most "
        "%d, passed by one read round at most).\n# TYPE coldchain_ingest_queue_bytes gauge\n"
        "coldchain_ingest_queue_bytes %zu\n",
        INGEST_QUEUE_BYTES_MAX, s.backlog_bytes);
    if (ckpt != NULL) {
        struct cc_walckpt_stats c;
        cc_walckpt_get_stats(ckpt, &c);
        OUT("# HELP coldchain_wal_pages WAL size in pages after the last commit of ingestd.\n"
            "# TYPE coldchain_wal_pages gauge\ncoldchain_wal_pages %lld\n",
            c.last_wal_pages);
        OUT("# HELP coldchain_wal_checkpoints_total Checkpoint runs of the checkpointer thread, "
            "by result.\n# TYPE coldchain_wal_checkpoints_total counter\n"
            "coldchain_wal_checkpoints_total{result=\"ok\"} %llu\n"
            "coldchain_wal_checkpoints_total{result=\"busy\"} %llu\n"
            "coldchain_wal_checkpoints_total{result=\"error\"} %llu\n",
            c.runs - c.busy - c.errors, c.busy, c.errors);
        OUT("# HELP coldchain_wal_checkpoint_frames_total WAL frames copied by the checkpointer "
            "thread.\n# TYPE coldchain_wal_checkpoint_frames_total counter\n"
            "coldchain_wal_checkpoint_frames_total %llu\n",
            c.frames);
        OUT("# HELP coldchain_wal_checkpoint_seconds_sum Time in checkpoint runs, and the part "
            "that held the write gate.\n# TYPE coldchain_wal_checkpoint_seconds_sum counter\n"
            "coldchain_wal_checkpoint_seconds_sum{part=\"all\"} %.6f\n"
            "coldchain_wal_checkpoint_seconds_sum{part=\"gated\"} %.6f\n",
            c.seconds_sum, c.gated_seconds_sum);
        OUT("# HELP coldchain_wal_checkpoint_gated_total Checkpoint runs that copied the last "
            "frames inside the write gate.\n# TYPE coldchain_wal_checkpoint_gated_total counter\n"
            "coldchain_wal_checkpoint_gated_total %llu\n",
            c.gated_runs);
        OUT("# HELP coldchain_wal_inline_checkpoints_total Checkpoints a commit ran itself "
            "because the WAL had outgrown the limit.\n"
            "# TYPE coldchain_wal_inline_checkpoints_total counter\n"
            "coldchain_wal_inline_checkpoints_total %llu\n",
            c.inline_runs);
    }
    OUT("# HELP coldchain_ingest_mqtt_received_total Messages handed over by the broker.\n"
        "# TYPE coldchain_ingest_mqtt_received_total counter\n"
        "coldchain_ingest_mqtt_received_total %llu\n",
        __atomic_load_n(&m->mq->received, __ATOMIC_RELAXED));
    OUT("# HELP coldchain_ingest_retained_skipped_total Retained copies the broker replayed "
        "at a SUBSCRIBE, skipped: their live delivery was handled.\n"
        "# TYPE coldchain_ingest_retained_skipped_total counter\n"
        "coldchain_ingest_retained_skipped_total %llu\n",
        __atomic_load_n(&m->mq->retained_skipped, __ATOMIC_RELAXED));
    OUT("# HELP coldchain_ingest_broker_reconnects_total Connections to the broker after the "
        "first.\n# TYPE coldchain_ingest_broker_reconnects_total counter\n"
        "coldchain_ingest_broker_reconnects_total %llu\n",
        __atomic_load_n(&m->mq->reconnects, __ATOMIC_RELAXED));
    OUT("# HELP coldchain_ingest_errors_published_total Error objects published to devices.\n"
        "# TYPE coldchain_ingest_errors_published_total counter\n"
        "coldchain_ingest_errors_published_total %llu\n",
        __atomic_load_n(&m->mq->errors_published, __ATOMIC_RELAXED));
    double rate;
    __atomic_load(&m->mq->receive_rate, &rate, __ATOMIC_RELAXED);
    OUT("# HELP coldchain_ingest_backlog Messages the broker holds (its message store, "
        "$SYS/broker/store/messages/count, every sys_interval): with ingestd the only "
        "persistent subscriber, its backlog; -1 until the broker has said.\n"
        "# TYPE coldchain_ingest_backlog gauge\ncoldchain_ingest_backlog %lld\n",
        __atomic_load_n(&m->mq->broker_backlog, __ATOMIC_RELAXED));
    OUT("# HELP coldchain_ingest_receive_rate Device messages received per second over the "
        "last %d s (the drain rate while there is a backlog).\n"
        "# TYPE coldchain_ingest_receive_rate gauge\ncoldchain_ingest_receive_rate %.1f\n",
        INGEST_RATE_WINDOW_S, rate);
    OUT("# HELP coldchain_ingest_publish_pending Errors and alert events handed to the broker "
        "connection, not yet acknowledged by the broker (at most %d).\n"
        "# TYPE coldchain_ingest_publish_pending gauge\ncoldchain_ingest_publish_pending %llu\n",
        INGEST_PUBLISH_PENDING_MAX, __atomic_load_n(&m->mq->publish_pending, __ATOMIC_RELAXED));
    OUT("# HELP coldchain_ingest_publish_refused_total Publishes refused because that many "
        "were pending.\n# TYPE coldchain_ingest_publish_refused_total counter\n"
        "coldchain_ingest_publish_refused_total %llu\n",
        __atomic_load_n(&m->mq->publish_refused, __ATOMIC_RELAXED));
    OUT("# HELP coldchain_ingest_read_rounds_total Socket read rounds that delivered messages "
        "(one acknowledgement write each, and with INGEST_FSYNC=1 one fdatasync).\n"
        "# TYPE coldchain_ingest_read_rounds_total counter\n"
        "coldchain_ingest_read_rounds_total %llu\n",
        __atomic_load_n(&m->mq->rounds, __ATOMIC_RELAXED));

    /* Lag from the reading's own ts to its commit, for readings that carry ts. */
    OUT("# HELP coldchain_ingest_publish_lag_seconds Reading ts to commit.\n"
        "# TYPE coldchain_ingest_publish_lag_seconds histogram\n");
    for (size_t b = 0; b < INGEST_LAG_LE_COUNT; b++)
        OUT("coldchain_ingest_publish_lag_seconds_bucket{le=\"%g\"} %llu\n",
            ingest_lag_le_ms[b] / 1000.0, lag.le[b]);
    OUT("coldchain_ingest_publish_lag_seconds_bucket{le=\"+Inf\"} %llu\n", lag.total);
    OUT("coldchain_ingest_publish_lag_seconds_sum %.3f\n", (double)lag.sum_ms / 1000.0);
    OUT("coldchain_ingest_publish_lag_seconds_count %llu\n", lag.total);
    OUT("# HELP coldchain_ingest_publish_lag_quantile_seconds Quantiles of the lag (1 ms "
        "resolution).\n# TYPE coldchain_ingest_publish_lag_quantile_seconds gauge\n");
    OUT("coldchain_ingest_publish_lag_quantile_seconds{quantile=\"0.5\"} %.3f\n",
        lag.p50_ms / 1000.0);
    OUT("coldchain_ingest_publish_lag_quantile_seconds{quantile=\"0.99\"} %.3f\n",
        lag.p99_ms / 1000.0);

    /* Alerts and notifications: stored totals (cc_stats.h), one read-only connection. */
    struct cc_stats cs;
    unsigned long long outbox_n, outbox_e;
    int64_t rejected_dropped = 0;
    int have;

    pthread_mutex_lock(&m->mu);
    if (m->st == NULL) {
        if (cc_store_open(m->db_path, CC_STORE_READONLY, &m->st) != CC_OK)
            m->st = NULL;
        else if (cc_store_set_cache_kib(m->st, INGEST_METRICS_CACHE_KIB) != CC_OK ||
                 cc_store_cache_kib(m->st, &m->cache_kib) != CC_OK) {
            cc_store_close(m->st);
            m->st = NULL;
        }
    }
    have = m->st != NULL && cc_stats_load(m->st, &cs) == CC_OK &&
           cc_store_dead_letters_dropped(m->st, &rejected_dropped) == CC_OK;
    if (have && (m->outbox_at == 0 || cc_mono_ms() - m->outbox_at >= OUTBOX_EVERY_MS)) {
        have = cc_stats_outbox(m->st, &m->outbox_notifications, &m->outbox_events) == CC_OK;
        m->outbox_at = have ? cc_mono_ms() : 0;
    }
    outbox_n = m->outbox_notifications;
    outbox_e = m->outbox_events;
    int caches[3] = {w != NULL ? ingest_writer_cache_kib(w) : 0,
                     __atomic_load_n(&m->jobs_cache_kib, __ATOMIC_RELAXED), m->cache_kib};
    if (!have && m->st != NULL) {
        cc_store_close(m->st); /* opened afresh at the next scrape */
        m->st = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    if (!have) {
        memset(&cs, 0, sizeof cs);
        rejected_dropped = 0;
        cc_log_warn("metrics_stats_failed", "alert and notification totals unavailable");
    }
    OUT("# HELP coldchain_alerts_raised_total Alerts raised, by type (stored rows).\n"
        "# TYPE coldchain_alerts_raised_total counter\n");
    for (int i = 0; i < CC_STATS_ALERT_TYPES; i++)
        OUT("coldchain_alerts_raised_total{type=\"%s\"} %llu\n", cc_stats_alert_types[i],
            cs.alerts_raised[i]);
    OUT("# HELP coldchain_alerts_resolved_total Alerts resolved (manually or automatically), "
        "by type.\n# TYPE coldchain_alerts_resolved_total counter\n");
    for (int i = 0; i < CC_STATS_ALERT_TYPES; i++)
        OUT("coldchain_alerts_resolved_total{type=\"%s\"} %llu\n", cc_stats_alert_types[i],
            cs.alerts_resolved[i]);
    OUT("# HELP coldchain_notifications_sent_total Notification deliveries sent, by channel.\n"
        "# TYPE coldchain_notifications_sent_total counter\n");
    for (int i = 0; i < CC_STATS_CHANNELS; i++)
        OUT("coldchain_notifications_sent_total{channel=\"%s\"} %llu\n", cc_stats_channels[i],
            cs.notifications_sent[i]);
    OUT("# HELP coldchain_notifications_failed_total Notification deliveries given up after "
        "the last attempt and not acknowledged after all, by channel.\n"
        "# TYPE coldchain_notifications_failed_total counter\n");
    for (int i = 0; i < CC_STATS_CHANNELS; i++)
        OUT("coldchain_notifications_failed_total{channel=\"%s\"} %llu\n", cc_stats_channels[i],
            cs.notifications_failed[i]);
    OUT("# HELP coldchain_outbox_pending Notifications and alert events not yet sent on every "
        "channel (counted at most every 2 s).\n# TYPE coldchain_outbox_pending gauge\n"
        "coldchain_outbox_pending{kind=\"notification\"} %llu\n"
        "coldchain_outbox_pending{kind=\"alert_event\"} %llu\n",
        outbox_n, outbox_e);
    OUT("# HELP coldchain_rejected_dropped_total Dead letters deleted by the per-device cap "
        "(CC_REJECTED_PER_DEVICE_MAX), oldest first.\n"
        "# TYPE coldchain_rejected_dropped_total counter\n"
        "coldchain_rejected_dropped_total %lld\n",
        (long long)rejected_dropped);
    /* What bounds each connection's share of ingestd's memory (README "Back-pressure"), as
     * SQLite reports it: none on PostgreSQL, whose cache is the server's. */
    static const char *const conns[3] = {"writer", "jobs", "metrics"};
    if (caches[0] > 0 || caches[1] > 0 || caches[2] > 0) {
        OUT("# HELP coldchain_db_cache_kib SQLite page cache limit of each of ingestd's "
            "connections, in KiB.\n# TYPE coldchain_db_cache_kib gauge\n");
        for (int i = 0; i < 3; i++)
            if (caches[i] > 0)
                OUT("coldchain_db_cache_kib{connection=\"%s\"} %d\n", conns[i], caches[i]);
    }
#undef OUT
    if (n >= BODY_MAX)
        n = BODY_MAX - 1;
    mg_printf(conn,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
              n);
    mg_write(conn, body, n);
    free(body);
    return 200;
}

/* /healthz: the process answers (either role). /readyz: it consumes (the active one). */
static int health(struct mg_connection *conn, void *data, int ready_only)
{
    struct ingest_metrics *m = data;
    int active = __atomic_load_n(&m->w, __ATOMIC_ACQUIRE) != NULL;
    int status = ready_only && !active ? 503 : 200;
    char body[64];
    int n = snprintf(body, sizeof body, "{\"status\":\"%s\",\"role\":\"%s\"}",
                     status == 200 ? "ok" : "unavailable", active ? "active" : "standby");

    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
              "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
              status, status == 200 ? "OK" : "Service Unavailable", n, body);
    return status;
}

static int healthz(struct mg_connection *conn, void *data)
{
    return health(conn, data, 0);
}

static int readyz(struct mg_connection *conn, void *data)
{
    return health(conn, data, 1);
}

static int not_found(struct mg_connection *conn, void *data)
{
    static const char body[] = "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"no such route\"}}";
    (void)data;
    mg_printf(conn,
              "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
              "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
              sizeof(body) - 1, body);
    return 404;
}

int ingest_metrics_start(int port, const char *db_path, struct ingest_writer *w,
                         struct ingest_mqtt_counters *mq, struct cc_walckpt *ckpt,
                         struct ingest_metrics **out)
{
    struct ingest_metrics *m = calloc(1, sizeof(*m));
    char ports[32];
    const char *opts[] = {"listening_ports", ports, "num_threads", "2", NULL};
    struct mg_callbacks cb;

    if (m == NULL)
        return CC_ERR_NOMEM;
    snprintf(ports, sizeof(ports), "127.0.0.1:%d", port);
    m->port = port;
    memset(&cb, 0, sizeof(cb));
    snprintf(m->db_path, sizeof(m->db_path), "%s", db_path);
    m->w = w;
    m->mq = mq;
    m->ckpt = ckpt;
    pthread_mutex_init(&m->mu, NULL);
    m->ctx = mg_start(&cb, m, opts);
    if (m->ctx == NULL) {
        cc_log_error("metrics_start_failed", "cannot listen on %s", ports);
        pthread_mutex_destroy(&m->mu);
        free(m);
        return CC_ERR_IO;
    }
    mg_set_request_handler(m->ctx, "/metrics$", handle, m);
    mg_set_request_handler(m->ctx, "/healthz$", healthz, m);
    mg_set_request_handler(m->ctx, "/readyz$", readyz, m);
    mg_set_request_handler(m->ctx, "/", not_found, m);
    *out = m;
    return CC_OK;
}

void ingest_metrics_set_active(struct ingest_metrics *m, struct ingest_writer *w,
                               struct cc_walckpt *ckpt)
{
    __atomic_store_n(&m->ckpt, ckpt, __ATOMIC_RELEASE);
    __atomic_store_n(&m->w, w, __ATOMIC_RELEASE); /* last: a scrape seeing w sees ckpt */
}

void ingest_metrics_set_jobs_cache_kib(struct ingest_metrics *m, int kib)
{
    __atomic_store_n(&m->jobs_cache_kib, kib, __ATOMIC_RELAXED);
}

void ingest_metrics_stop(struct ingest_metrics *m)
{
    if (m == NULL)
        return;
    /* Without it mg_stop waits out civetweb's 2 s listener poll (cc_wake.h). */
    struct cc_wake *wake = cc_wake_start("127.0.0.1", m->port);

    mg_stop(m->ctx);
    cc_wake_stop(wake);
    cc_store_close(m->st);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
