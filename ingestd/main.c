/* main.c - ingestd: subscribes to the devices' topics, journals every message, and
 * hands it to the writer, which commits readings in group transactions.
 *
 * Durability (README "Architecture"): the subscription is QoS 2 and the broker upgrades
 * the devices' QoS 1 messages to it (upgrade_outgoing_qos), so Paho stores each message
 * in its persistence store (cc_kvlog) before acknowledging it. The message callback
 * appends the message to the journal before returning 1 (which lets Paho forget it);
 * the writer commits the journal position with the rows. Kill -9 at any instant loses
 * nothing: what Paho acknowledged is in its store or in the journal, what is in the
 * journal but not committed is replayed at start, and (device_id, ts) is unique. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>

#include "cc_config.h"
#include "cc_db.h"
#include "cc_gate.h"
#include "cc_journal.h"
#include "cc_kvlog.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "cc_walckpt.h"
#include "disk.h"
#include "jobs.h"
#include "metrics.h"
#include "paho_store.h"
#include "writer.h"

#define CLIENT_ID_DEFAULT "coldchain-ingestd"
#define BACKOFF_MIN_MS 250   /* first reconnect delay */
#define BACKOFF_MAX_MS 10000 /* longest reconnect delay */
#define KEEPALIVE_S 20
#define PUBLISH_RETRIES 50     /* ×10 ms while Paho's outbound window is full */
#define APPEND_RETRY_MS 1000   /* between journal appends that failed (not for lack of space) */
#define APPEND_REMIND_MS 60000 /* the "still failing" log line */
/* QoS 1 publishes (errors, notifications, alert events) awaiting PUBACK. Paho's default
 * is 10, and a publish beyond the window sleeps 100 ms inside MQTTClient_yield when the
 * receive thread runs: measured, that held the delivery worker to ~60 sends/s under the
 * alert-churn bench (and would stall the writer on a burst of bad messages). */
#define PUBLISH_INFLIGHT 1024
/* The WAL checkpointer (cc_walckpt.h), in pages of 4 KiB: a run every 1,000 pages not yet
 * copied (SQLite's own default), the WAL started over by 8,000 at the latest (32 MiB),
 * and past 32,000 the commits checkpoint in place. */
#define WAL_CKPT_STEP 1000
#define WAL_CKPT_RESTART 8000
#define WAL_CKPT_LIMIT 32000

static volatile sig_atomic_t stop_requested;

struct ingestd {
    struct cc_config cfg;
    char client_id[128];
    struct cc_journal *journal;
    struct ingest_paho_store store; /* Paho's persistence (a cc_kvlog) */
    struct ingest_disk *disk;
    struct ingest_writer *writer;
    struct ingest_metrics *metrics;
    struct ingest_jobs *jobs;
    struct cc_gate gate; /* the writer and the jobs take turns at write transactions */
    struct cc_walckpt *ckpt;
    MQTTClient client;
    int client_created;
    struct ingest_mqtt_counters counters;
    volatile int connected;
};

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Appends the message to the journal, retrying until it succeeds or ingestd stops.
 * Waiting here, inside Paho's receive thread, is what stops ingestd acknowledging: Paho
 * reads the next packet (and sends its PUBREC) only after this callback returns, and
 * returning 0 would only make it read the next packet and offer this message again. */
static int journal_until_done(struct ingestd *d, int64_t now, const char *topic, size_t tlen,
                              const void *payload, size_t len, struct cc_journal_pos *pos)
{
    int64_t first = 0, reminded = 0;
    int rc;

    for (;;) {
        rc = cc_journal_append(d->journal, now, topic, tlen, payload, len, pos);
        if (rc == CC_OK || rc == CC_ERR_VALIDATION || stop_requested)
            break;
        int err = errno;
        if (ingest_disk_failed(d->disk, "journal", err))
            continue; /* the reserve was released just now: there is room for this one */
        if (ingest_disk_check(d->disk, "journal")) {
            while (ingest_disk_wait(d->disk, INGEST_DISK_POLL_MS) && !stop_requested)
                ;
            continue;
        }
        int64_t t = cc_mono_ms();
        if (first == 0 || t - reminded >= APPEND_REMIND_MS) {
            cc_log_error("journal_append_failed",
                         "topic=%.*s: %s; not acknowledging more messages until it succeeds",
                         (int)tlen, topic, strerror(err));
            reminded = t;
            if (first == 0)
                first = t;
        }
        sleep_ms(APPEND_RETRY_MS);
    }
    return rc;
}

/* Paho's delivery callback: journal, queue, and only then let Paho forget the message. */
static int on_message(void *ctx, char *topic, int topic_len, MQTTClient_message *msg)
{
    struct ingestd *d = ctx;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    int64_t now = cc_now_ms();
    struct cc_journal_pos pos;
    int rc;

    rc = journal_until_done(d, now, topic, tlen, msg->payload, len, &pos);
    if (rc == CC_OK)
        rc = ingest_writer_push(d->writer, now, topic, tlen, msg->payload, len, pos);
    if (rc != CC_OK) {
        /* Stopping, or a message the journal refuses (over CC_JOURNAL_RECORD_MAX, which
         * the broker's message_size_limit rules out): 0 keeps it in Paho and its store. */
        cc_log_error("journal_append_failed", "topic=%.*s: %s; left to Paho", (int)tlen, topic,
                     cc_rc_code(rc));
        sleep_ms(100);
        return 0;
    }
    /* The disk is full: the message is journaled, but take no more until space returns
     * (the broker keeps them). */
    while (ingest_disk_wait(d->disk, INGEST_DISK_POLL_MS) && !stop_requested)
        ;
    __atomic_add_fetch(&d->counters.received, 1, __ATOMIC_RELAXED);
    MQTTClient_freeMessage(&msg);
    MQTTClient_free(topic);
    return 1;
}

static void on_connection_lost(void *ctx, char *cause)
{
    struct ingestd *d = ctx;
    d->connected = 0;
    cc_log_warn("broker_connection_lost", "%s", cause ? cause : "connection lost");
}

/* Publishes an error object or notification at QoS 1 (writer and jobs threads). */
static int publish(void *ctx, const char *topic, const char *payload, size_t len)
{
    struct ingestd *d = ctx;
    int rc = MQTTCLIENT_FAILURE;

    for (int i = 0; i < PUBLISH_RETRIES; i++) {
        rc = MQTTClient_publish(d->client, topic, (int)len, payload, 1, 0, NULL);
        if (rc != MQTTCLIENT_MAX_MESSAGES_INFLIGHT)
            break;
        sleep_ms(10);
    }
    if (rc == MQTTCLIENT_SUCCESS && strncmp(topic, "devices/", 8) == 0)
        __atomic_add_fetch(&d->counters.errors_published, 1, __ATOMIC_RELAXED);
    else if (rc != MQTTCLIENT_SUCCESS)
        cc_log_warn("publish_failed", "topic=%s rc=%d", topic, rc);
    return rc == MQTTCLIENT_SUCCESS ? 0 : -1;
}

static int connect_and_subscribe(struct ingestd *d)
{
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    char *topics[2] = {"devices/+/readings", "devices/+/status"};
    int qos[2] = {2, 2};
    int rc;

    opts.keepAliveInterval = KEEPALIVE_S;
    opts.cleansession = 0; /* persistent session: the broker keeps our backlog */
    opts.reliable = 0;
    opts.maxInflightMessages = PUBLISH_INFLIGHT;
    opts.username = d->cfg.mqtt_username;
    opts.password = d->cfg.mqtt_password;
    opts.connectTimeout = 5;
    opts.MQTTVersion = MQTTVERSION_3_1_1;
    rc = MQTTClient_connect(d->client, &opts);
    if (rc != MQTTCLIENT_SUCCESS)
        return rc;
    rc = MQTTClient_subscribeMany(d->client, 2, topics, qos);
    if (rc != MQTTCLIENT_SUCCESS || qos[0] != 2 || qos[1] != 2) {
        cc_log_error("subscribe_failed", "rc=%d granted=%d,%d", rc, qos[0], qos[1]);
        MQTTClient_disconnect(d->client, 1000);
        return rc != MQTTCLIENT_SUCCESS ? rc : MQTTCLIENT_FAILURE;
    }
    d->connected = 1;
    return MQTTCLIENT_SUCCESS;
}

static int lock_dir(const char *dir)
{
    char path[PATH_MAX];
    int fd;

    if (snprintf(path, sizeof(path), "%s/lock", dir) >= (int)sizeof(path))
        return -1;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd; /* held for the life of the process */
}

static int setup(struct ingestd *d)
{
    char dir[PATH_MAX], path[PATH_MAX + 64];
    struct cc_journal_pos from;
    sqlite3 *db = NULL;
    int rc, recovered = 0;

    /* The database first: a read-only or unusable one is the error to report (cc_db_open
     * names the path), not its effect on the journal beside it. This also migrates. */
    rc = cc_db_open(d->cfg.db_path, CC_DB_CREATE | CC_DB_MIGRATE, &db);
    if (rc != CC_OK) {
        cc_log_error("db_open_failed", "%s: cannot open or migrate the database", d->cfg.db_path);
        return rc;
    }
    cc_db_close(db);
    cc_config_data_dir(&d->cfg, dir, sizeof(dir));
    if (snprintf(path, sizeof(path), "%s/%s.journal", dir, d->client_id) >= (int)sizeof(path))
        return CC_ERR_IO;
    rc = cc_journal_open(path, &d->journal);
    if (rc != CC_OK) {
        cc_log_error("journal_open_failed", "%s: cannot open the receive journal", path);
        return rc;
    }
    if (lock_dir(path) < 0) {
        cc_log_error("journal_locked", "%s is in use by another ingestd with client id %s", path,
                     d->client_id);
        return CC_ERR_IO;
    }
    rc = cc_walckpt_start(d->cfg.db_path, WAL_CKPT_STEP, WAL_CKPT_RESTART, WAL_CKPT_LIMIT, &d->gate,
                          &d->ckpt);
    if (rc != CC_OK) {
        cc_log_error("db_open_failed", "%s: WAL checkpointer: %s", d->cfg.db_path, cc_rc_code(rc));
        return rc;
    }
    rc = ingest_disk_open(dir, d->client_id, &d->disk);
    if (rc != CC_OK)
        return rc;
    rc = ingest_writer_start(d->cfg.db_path, d->journal, &d->gate, d->ckpt, d->disk, publish, d,
                             &d->writer);
    if (rc != CC_OK) {
        cc_log_error("db_open_failed", "%s: %s", d->cfg.db_path, cc_rc_code(rc));
        return rc;
    }
    /* 1. Whatever was journaled but not committed before a crash. */
    from = ingest_writer_checkpoint(d->writer);
    rc = cc_journal_replay(d->journal, from, ingest_writer_push, d->writer);
    if (rc != CC_OK)
        return rc;
    /* 2. QoS 2 messages Paho had acknowledged with PUBCOMP but not yet queued. */
    if (snprintf(d->store.path, sizeof(d->store.path), "%s/%s.paho", dir, d->client_id) >=
        (int)sizeof(d->store.path))
        return CC_ERR_IO;
    d->store.disk = d->disk;
    rc = cc_kvlog_open(d->store.path, &d->store.kv);
    if (rc != CC_OK)
        return rc;
    rc = ingest_recover_received(d->store.kv, d->journal, cc_now_ms(), ingest_writer_push,
                                 d->writer, &recovered);
    if (rc != CC_OK)
        return rc;
    ingest_writer_flush(d->writer);
    cc_log_info("recovered", "journal replayed from %lld:%lld; %d stored QoS 2 messages",
                (long long)from.gen, (long long)from.offset, recovered);
    return CC_OK;
}

int main(void)
{
    static struct ingestd d;
    MQTTClient_persistence store;
    char err[512];
    int rc, status = 0;
    long backoff = BACKOFF_MIN_MS;
    int ever_connected = 0;

    if (cc_config_load(&d.cfg, err, sizeof(err)) != CC_OK) {
        fprintf(stderr, "ingestd: configuration error: %s\n", err);
        return 2;
    }
    cc_log_init("ingestd", d.cfg.log_level, d.cfg.log_json);
    cc_db_tune_process();
    cc_gate_init(&d.gate);
    if (cc_config_secret(&d.cfg, "mqtt.secret", 0, d.cfg.mqtt_password, sizeof(d.cfg.mqtt_password),
                         err, sizeof(err)) != CC_OK) {
        fprintf(stderr, "ingestd: configuration error: %s\n", err);
        return 2;
    }
    {
        const char *id = getenv("INGEST_CLIENT_ID");
        if (id && (strlen(id) == 0 || strlen(id) >= sizeof(d.client_id) || strchr(id, '/'))) {
            fprintf(stderr, "ingestd: configuration error: INGEST_CLIENT_ID: 1..127 "
                            "characters without '/'\n");
            return 2;
        }
        snprintf(d.client_id, sizeof(d.client_id), "%s", id ? id : CLIENT_ID_DEFAULT);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (setup(&d) != CC_OK) {
        status = 1;
        goto out;
    }
    if (ingest_metrics_start(d.cfg.ingest_metrics_port, d.cfg.db_path, d.writer, &d.counters,
                             d.ckpt, &d.metrics) != CC_OK) {
        status = 1;
        goto out;
    }
    ingest_paho_store_init(&store, &d.store);
    rc = MQTTClient_create(&d.client, d.cfg.mqtt_url, d.client_id, MQTTCLIENT_PERSISTENCE_USER,
                           &store);
    if (rc != MQTTCLIENT_SUCCESS) {
        cc_log_error("mqtt_create_failed", "rc=%d url=%s", rc, d.cfg.mqtt_url);
        status = 1;
        goto out;
    }
    d.client_created = 1;
    MQTTClient_setCallbacks(d.client, &d, on_connection_lost, on_message, NULL);
    if (ingest_jobs_start(&d.cfg, &d.gate, d.ckpt, publish, &d, &d.jobs) != CC_OK) {
        status = 1;
        goto out;
    }
    cc_log_info("started", "broker=%s client_id=%s metrics=127.0.0.1:%d", d.cfg.mqtt_url,
                d.client_id, d.cfg.ingest_metrics_port);

    while (!stop_requested) {
        ingest_disk_poll(d.disk); /* ends the full state when space has returned */
        if (!d.connected || !MQTTClient_isConnected(d.client)) {
            rc = connect_and_subscribe(&d);
            if (rc == MQTTCLIENT_SUCCESS) {
                if (ever_connected)
                    __atomic_add_fetch(&d.counters.reconnects, 1, __ATOMIC_RELAXED);
                ever_connected = 1;
                backoff = BACKOFF_MIN_MS;
                cc_log_info("broker_connected", "url=%s", d.cfg.mqtt_url);
            } else {
                cc_log_warn("broker_connect_failed", "url=%s rc=%d; retry in %ld ms",
                            d.cfg.mqtt_url, rc, backoff);
                for (long waited = 0; waited < backoff && !stop_requested; waited += 50)
                    sleep_ms(50);
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
        }
        sleep_ms(100);
    }
    cc_log_info("stopping", "finishing the work in hand");

out:
    ingest_jobs_stop(d.jobs);
    if (d.client_created) {
        if (MQTTClient_isConnected(d.client))
            MQTTClient_disconnect(d.client, 2000);
        MQTTClient_destroy(&d.client);
    }
    ingest_metrics_stop(d.metrics);
    ingest_writer_stop(d.writer); /* commits everything already queued */
    cc_walckpt_stop(d.ckpt);      /* after every connection it serves */
    cc_kvlog_close(d.store.kv);
    cc_journal_close(d.journal);
    ingest_disk_close(d.disk);
    cc_log_info("stopped", "exit status %d", status);
    return status;
}
