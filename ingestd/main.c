/* main.c - ingestd: receives the devices' messages, journals every one before it is
 * acknowledged, and hands it to the writer, which commits readings in group transactions.
 *
 * Durability (README "Architecture / Durability"): the subscription is QoS 1 in a
 * persistent session; the broker connection (mqtt.c, libmosquitto in threaded mode)
 * writes a message's PUBACK only after on_round below has written its read round to the
 * journal (one writev for the round's messages, which on_message staged; and, with
 * INGEST_FSYNC=1, after the journal was fdatasync'd for the whole read round).
 * The writer commits the journal position with the rows. Kill -9 at any instant loses
 * nothing: what was acknowledged is in the journal, what is in the journal but not
 * committed is replayed at start, what was not acknowledged the broker sends again, and
 * (device_id, ts) is unique. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cc_config.h"
#include "cc_gate.h"
#include "cc_journal.h"
#include "cc_kvlog.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_time.h"
#include "cc_walckpt.h"
#include "disk.h"
#include "jobs.h"
#include "leader.h"
#include "metrics.h"
#include "mqtt.h"
#include "paho_legacy.h"
#include "writer.h"

#define CLIENT_ID_DEFAULT "coldchain-ingestd"
#define APPEND_RETRY_MS 1000   /* between journal writes that failed (not for lack of space) */
#define APPEND_REMIND_MS 60000 /* the "still failing" log line */
/* The WAL checkpointer (cc_walckpt.h), in pages of 4 KiB: a run every 4,000 pages not yet
 * copied, the WAL started over by 8,000 at the latest (32 MiB), and past 32,000 the
 * commits checkpoint in place. 4,000 rather than SQLite's 1,000: the index and rollup
 * pages every commit rewrites are copied once per run, so fewer runs copy fewer pages
 * (checkpointer CPU per reading about halved, README "What limits ingest now"); readers
 * search a WAL index of at most 8,000 pages either way. */
#define WAL_CKPT_STEP 4000
#define WAL_CKPT_RESTART 8000
#define WAL_CKPT_LIMIT 32000

/* The round written when the disk is full must fit in the space the reserve gives back. */
_Static_assert(CC_JOURNAL_STAGE_MAX <= INGEST_DISK_RESERVE, "a journal stage must fit the reserve");

static volatile sig_atomic_t stop_requested;

struct ingestd {
    struct cc_config cfg;
    char client_id[128];
    struct cc_journal *journal;
    struct ingest_disk *disk;
    struct ingest_writer *writer;
    struct ingest_metrics *metrics;
    struct ingest_jobs *jobs;
    struct cc_gate gate; /* the writer and the jobs take turns at write transactions */
    struct cc_walckpt *ckpt;
    struct ingest_mqtt *mqtt;
    struct ingest_leader *leader;
};

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Blocks the broker loop while the disk is full; this thread is then the one that
 * notices space coming back (ingest_disk_poll). */
static void wait_for_space(struct ingestd *d)
{
    while (ingest_disk_full(d->disk) && !stop_requested) {
        ingest_disk_poll(d->disk);
        ingest_disk_wait(d->disk, INGEST_DISK_POLL_MS / 4);
    }
}

/* Writes the read round's staged records to the journal (one writev), retrying until it
 * succeeds or ingestd stops, then hands them to the writer. Waiting here, inside the broker
 * loop's read round, is what stops ingestd acknowledging: the round's PUBACKs are written
 * only after on_round returns (mqtt.h). */
static int write_round(struct ingestd *d)
{
    struct cc_journal_pos base;
    int64_t first = 0, reminded = 0;
    int rc;

    if (cc_journal_staged(d->journal) == 0)
        return CC_OK;
    for (;;) {
        rc = cc_journal_write_staged(d->journal, &base);
        if (rc == CC_OK || stop_requested)
            break;
        int err = errno;
        if (ingest_disk_failed(d->disk, "journal", err))
            continue; /* the reserve was released just now: there is room for this round */
        if (ingest_disk_check(d->disk, "journal")) {
            wait_for_space(d);
            continue;
        }
        int64_t t = cc_mono_ms();
        if (first == 0 || t - reminded >= APPEND_REMIND_MS) {
            cc_log_error("journal_append_failed",
                         "%zu bytes of messages: %s; not acknowledging them until it succeeds",
                         cc_journal_staged(d->journal), strerror(err));
            reminded = t;
            if (first == 0)
                first = t;
        }
        cc_sleep_ms(APPEND_RETRY_MS);
    }
    if (rc == CC_OK)
        ingest_writer_hand_over(d->writer, base);
    return rc;
}

/* A round that will not be acknowledged (the connection is dropped): what it staged is
 * forgotten, the broker sends it again. */
static void discard_round(struct ingestd *d)
{
    cc_journal_discard_staged(d->journal);
    ingest_writer_discard_staged(d->writer);
}

/* The broker loop's message callback: stage the message for the round's journal write and
 * for the writer; on_round makes the round safe before its PUBACKs go. */
static int on_message(void *ctx, const char *topic, size_t tlen, const void *payload, size_t len)
{
    struct ingestd *d = ctx;
    int64_t now = cc_now_ms();
    int64_t rel;
    int rc;

    rc = cc_journal_stage(d->journal, now, topic, tlen, payload, len, &rel);
    if (rc == CC_ERR_TOO_LARGE) {
        /* The stage is full (CC_JOURNAL_STAGE_MAX): this round gets a second write. */
        rc = write_round(d);
        if (rc == CC_OK)
            rc = cc_journal_stage(d->journal, now, topic, tlen, payload, len, &rel);
    }
    if (rc == CC_OK)
        rc = ingest_writer_stage(d->writer, now, topic, tlen, payload, len, rel);
    if (rc != CC_OK) {
        /* Stopping, or a message the journal refuses (over CC_JOURNAL_RECORD_MAX, which
         * the broker's message_size_limit rules out): unacknowledged, the broker keeps it. */
        cc_log_error("journal_append_failed", "topic=%.*s: %s; left to the broker", (int)tlen,
                     topic, cc_rc_code(rc));
        discard_round(d);
        return -1;
    }
    return 0;
}

static void on_tick(void *ctx)
{
    struct ingestd *d = ctx;

    ingest_disk_poll(d->disk); /* ends the full state when space has returned */
}

/* Before the round's PUBACKs are written: the round's records are written to the journal
 * (one writev) and handed to the writer. INGEST_FSYNC=1: they reach the disk first.
 * INGEST_ACK=commit: the round is committed first (the writer drained), so
 * nothing the broker will not send again lives only in this box's journal: a standby on
 * another box loses nothing (docs/scaling.md). The writer exits the process rather than
 * commit after losing the lease, so a fenced active acknowledges nothing more either. */
static int on_round(void *ctx)
{
    struct ingestd *d = ctx;
    int rc = write_round(d);

    if (rc == CC_OK && d->cfg.ingest_fsync) {
        rc = cc_journal_sync(d->journal);
        if (rc != CC_OK)
            ingest_disk_failed(d->disk, "journal", errno);
    }
    if (rc != CC_OK) {
        discard_round(d);
        return -1;
    }
    /* The disk is full: the round is journaled, but take no more until space returns
     * (the broker keeps them). */
    wait_for_space(d);
    if (d->cfg.ingest_ack_commit)
        ingest_writer_flush(d->writer);
    return 0;
}

/* <data dir>/<client id>.journal: one per broker session, shared by the ingestd of one box
 * that compete for it (leader.h). */
static int journal_dir(struct ingestd *d, char *out, size_t outlen)
{
    char dir[PATH_MAX];

    cc_config_data_dir(&d->cfg, dir, sizeof(dir));
    return snprintf(out, outlen, "%s/%s.journal", dir, d->client_id) < (int)outlen ? CC_OK
                                                                                   : CC_ERR_IO;
}

static int setup(struct ingestd *d)
{
    char dir[PATH_MAX], path[PATH_MAX + 64], legacy[PATH_MAX + 64], shown[PATH_MAX];
    struct cc_journal_pos from;
    struct cc_store *st = NULL;
    int rc, recovered = 0;

    /* The database first: a read-only or unusable one is the error to report (cc_store_open
     * names the path), not its effect on the journal beside it. This also migrates. */
    cc_config_db_display(&d->cfg, shown, sizeof(shown)); /* a URL's password is not shown */
    rc = cc_store_open(d->cfg.db_path, CC_STORE_CREATE | CC_STORE_MIGRATE, &st);
    if (rc != CC_OK) {
        cc_log_error("db_open_failed", "%s: cannot open or migrate the database", shown);
        return rc;
    }
    cc_store_close(st);
    cc_config_data_dir(&d->cfg, dir, sizeof(dir));
    if (journal_dir(d, path, sizeof(path)) != CC_OK)
        return CC_ERR_IO;
    /* Opened only now that the lease is ours (main): the journal is the dead active's too. */
    rc = cc_journal_open(path, &d->journal);
    if (rc != CC_OK) {
        cc_log_error("journal_open_failed", "%s: cannot open the receive journal", path);
        return rc;
    }
    /* The WAL checkpointer is SQLite's: PostgreSQL checkpoints by itself (d->ckpt NULL). */
    rc = cc_config_db_is_url(&d->cfg)
             ? CC_OK
             : cc_walckpt_start(d->cfg.db_path, WAL_CKPT_STEP, WAL_CKPT_RESTART, WAL_CKPT_LIMIT,
                                &d->gate, &d->ckpt);
    if (rc != CC_OK) {
        cc_log_error("db_open_failed", "%s: WAL checkpointer: %s", shown, cc_rc_code(rc));
        return rc;
    }
    rc = ingest_disk_open(dir, d->client_id, &d->disk);
    if (rc != CC_OK)
        return rc;
    /* The writer's and the jobs' publishes (errors, alert events) go through the broker
     * loop, which main() made before setup. */
    rc = ingest_writer_start(&d->cfg, d->journal, &d->gate, d->ckpt, d->disk, ingest_mqtt_publish,
                             d->mqtt, &d->writer);
    if (rc != CC_OK) {
        cc_log_error("db_open_failed", "%s: %s", shown, cc_rc_code(rc));
        return rc;
    }
    /* A lost lease ends the process before any commit, the replay's included (leader.h). */
    ingest_writer_set_fence(d->writer, ingest_leader_check, d->leader);
    /* 1. Whatever was journaled but not committed before a crash. */
    from = ingest_writer_checkpoint(d->writer);
    rc = cc_journal_replay(d->journal, from, ingest_writer_push, d->writer);
    if (rc != CC_OK)
        return rc;
    /* 2. An older ingestd's Paho store (paho_legacy.h), once. */
    if (snprintf(legacy, sizeof(legacy), "%s/%s.paho", dir, d->client_id) >= (int)sizeof(legacy))
        return CC_ERR_IO;
    if (access(legacy, F_OK) == 0) {
        struct cc_kvlog *kv = NULL;

        rc = cc_kvlog_open(legacy, &kv);
        if (rc == CC_OK)
            rc = ingest_recover_received(kv, d->journal, cc_now_ms(), ingest_writer_push, d->writer,
                                         &recovered);
        cc_kvlog_close(kv);
        if (rc != CC_OK) {
            cc_log_error("recover_failed", "%s: %s", legacy, cc_rc_code(rc));
            return rc;
        }
    }
    ingest_writer_flush(d->writer);
    if (recovered > 0 || access(legacy, F_OK) == 0) {
        if (unlink(legacy) != 0)
            cc_log_warn("recover_unlink_failed", "%s: %s", legacy, strerror(errno));
    }
    cc_log_info("recovered", "journal replayed from %lld:%lld; %d messages from a Paho store",
                (long long)from.gen, (long long)from.offset, recovered);
    return CC_OK;
}

/* PostgreSQL: a paused or frozen active (SIGSTOP, a suspended VM) must not keep its row
 * locks after its lease is gone: the standby on another box would take the lease and then
 * wait on those rows for as long as the pause lasts. ingestd's transactions never wait on
 * anything but the database (the delivery worker sends outside them), so an idle moment
 * inside one longer than INGEST_LEASE_TIMEOUT_MS means the process is not running: PostgreSQL
 * then ends the session (idle_in_transaction_session_timeout) and its locks go. Set through
 * PGOPTIONS, which libpq applies to every connection ingestd opens and to each revival of
 * one, after what the environment already holds; a URL's own options= takes precedence. */
static int pg_session_limits(const struct cc_config *cfg)
{
    char opts[1024];
    const char *had = getenv("PGOPTIONS");

    if (!cc_config_db_is_url(cfg) || cfg->ingest_lease_timeout_ms <= 0)
        return CC_OK;
    if (snprintf(opts, sizeof opts, "%s%s-c idle_in_transaction_session_timeout=%d", had ? had : "",
                 had && *had ? " " : "", cfg->ingest_lease_timeout_ms) >= (int)sizeof opts)
        return CC_ERR_CONFIG;
    return setenv("PGOPTIONS", opts, 1) == 0 ? CC_OK : CC_ERR_NOMEM;
}

int main(void)
{
    static struct ingestd d;
    struct ingest_mqtt_options mo;
    char err[512];
    int status = 0;

    if (cc_config_load(&d.cfg, err, sizeof(err)) != CC_OK) {
        fprintf(stderr, "ingestd: configuration error: %s\n", err);
        return 2;
    }
    cc_log_init("ingestd", d.cfg.log_level, d.cfg.log_json);
    cc_store_tune_process(0);
    cc_gate_init(&d.gate);
    if (cc_config_secret(&d.cfg, "mqtt.secret", 0, d.cfg.mqtt_password, sizeof(d.cfg.mqtt_password),
                         err, sizeof(err)) != CC_OK) {
        fprintf(stderr, "ingestd: configuration error: %s\n", err);
        return 2;
    }
    {
        const char *id = getenv("INGEST_CLIENT_ID"); /* cc_config_load has checked it */
        snprintf(d.client_id, sizeof(d.client_id), "%s", id ? id : CLIENT_ID_DEFAULT);
    }
    if (pg_session_limits(&d.cfg) != CC_OK) {
        fprintf(stderr, "ingestd: configuration error: PGOPTIONS too long\n");
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The connection object first (it does not connect yet): replayed messages may be
     * refused, and their error replies are queued on it. */
    memset(&mo, 0, sizeof mo);
    mo.url = d.cfg.mqtt_url;
    mo.cafile = getenv("MQTT_TLS_CAFILE");
    mo.client_id = d.client_id;
    mo.username = d.cfg.mqtt_username;
    mo.password = d.cfg.mqtt_password;
    mo.share_group = d.cfg.ingest_share_group;
    mo.on_message = on_message;
    mo.on_round = on_round; /* the round's journal write: always */
    mo.on_tick = on_tick;
    mo.ctx = &d;
    if (ingest_mqtt_new(&mo, &d.mqtt) != CC_OK) {
        status = 1;
        goto out;
    }
    /* The database first: a read-only or unusable one is the error to report (cc_store_open
     * names the path), not its effect on the lease's lock file beside the journal; and a
     * standby learns it at start, not when it takes over. setup() opens it again, to
     * migrate, once the lease is held. */
    {
        char shown[PATH_MAX];
        struct cc_store *probe = NULL;

        cc_config_db_display(&d.cfg, shown, sizeof(shown));
        if (cc_store_open(d.cfg.db_path, CC_STORE_CREATE, &probe) != CC_OK) {
            cc_log_error("db_open_failed", "%s: cannot open the database", shown);
            status = 1;
            goto out;
        }
        cc_store_close(probe);
    }
    /* Failover (leader.h): a standby serves /metrics (coldchain_ingest_active 0) and waits
     * for the lease before it touches the journal or the broker session. */
    {
        char jdir[PATH_MAX];

        if (journal_dir(&d, jdir, sizeof(jdir)) != CC_OK ||
            ingest_leader_new(&d.cfg, d.client_id, jdir, &d.leader) != CC_OK) {
            status = 1;
            goto out;
        }
    }
    if (ingest_metrics_start(d.cfg.ingest_metrics_port, d.cfg.db_path, NULL,
                             ingest_mqtt_counters(d.mqtt), NULL, &d.metrics) != CC_OK) {
        status = 1;
        goto out;
    }
    if (!ingest_leader_acquire(d.leader, &stop_requested))
        goto out; /* stopped while standby */
    if (setup(&d) != CC_OK) {
        status = 1;
        goto out;
    }
    if (d.cfg.ingest_fsync)
        cc_journal_set_sync(d.journal, 1);
    if (ingest_leader_watch(d.leader) != CC_OK) {
        status = 1;
        goto out;
    }
    ingest_metrics_set_active(d.metrics, d.writer, d.ckpt);
    if (ingest_jobs_start(&d.cfg, &d.gate, d.ckpt, ingest_mqtt_publish_event,
                          ingest_mqtt_publish_room, ingest_mqtt_take_acked, d.mqtt,
                          &d.jobs) != CC_OK) {
        status = 1;
        goto out;
    }
    ingest_metrics_set_jobs_cache_kib(d.metrics, ingest_jobs_cache_kib(d.jobs));
    cc_log_info("started", "broker=%s client_id=%s metrics=127.0.0.1:%d fsync=%d ack=%s",
                d.cfg.mqtt_url, d.client_id, d.cfg.ingest_metrics_port, d.cfg.ingest_fsync,
                d.cfg.ingest_ack_commit ? "commit" : "journal");
    ingest_mqtt_run(d.mqtt, &stop_requested);
    cc_log_info("stopping", "finishing the work in hand");

out:
    ingest_jobs_stop(d.jobs);
    ingest_metrics_stop(d.metrics);
    ingest_writer_stop(d.writer); /* commits everything already queued */
    ingest_mqtt_free(d.mqtt);     /* after the writer: it publishes error replies */
    cc_walckpt_stop(d.ckpt);      /* after every connection it serves */
    cc_journal_close(d.journal);
    ingest_disk_close(d.disk);
    ingest_leader_free(d.leader); /* last: the lease outlives every commit */
    cc_log_info("stopped", "exit status %d", status);
    return status;
}
