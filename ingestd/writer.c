/* writer.c - group-committing writer thread of ingestd (see writer.h). */
#include "writer.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cc_config.h"
#include "cc_crypto.h"
#include "cc_errcap.h"
#include "cc_error.h"
#include "cc_ingest.h"
#include "cc_ingest_cache.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_time.h"
#include "disk.h"

#define RETRY_SLEEP_MS 200 /* after a failed transaction */
/* Between two transactions when more messages wait: the moment in which apid's writes
 * (other processes wait for the lock, polling every millisecond) get their turn
 * while ingestd drains a backlog. ~1-2% of a 4096-message batch's time. */
#define INGEST_WRITER_YIELD_MS 2

struct item {
    struct item *next;
    int64_t received_at;
    struct cc_journal_pos pos;
    size_t topic_len;
    size_t len;
    char *topic;   /* NUL-terminated, inside the same allocation */
    char *payload; /* NUL-terminated too (cJSON does not need it, logs may) */
};

_Static_assert(CC_SERIAL_MAX <= CC_ERRCAP_KEY_MAX, "cc_errcap must tell every serial apart");

/* An error object to publish once its dead letter is committed (if its device's cap
 * allows: decided after the commit, so a batch retried after a failed commit does not
 * spend a device's replies twice). */
struct outgoing {
    struct outgoing *next;
    char serial[CC_SERIAL_MAX + 1];
    char topic[CC_SERIAL_MAX + 32];
    cJSON *err;
};

struct ingest_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t has_items;
    pthread_cond_t has_space;
    pthread_cond_t drained;
    struct item *head, *tail;
    size_t queued;
    size_t queued_bytes; /* ingest_writer_item_bytes of the queued messages */
    int busy;            /* a batch is being committed */
    int stopping;
    struct cc_store *st;
    int cache_kib; /* st's page cache, read back at start (0 on PostgreSQL) */
    struct cc_journal *journal;
    struct ingest_disk *disk;
    struct cc_journal_pos checkpoint;
    char client_id[CC_INGEST_CLIENT_ID_MAX + 1]; /* the checkpoint's key (cfg's) */
    ingest_publish_fn publish;
    void *publish_ctx;
    ingest_fence_fn fence; /* under mu when set; read by the writer thread */
    void *fence_ctx;
    struct ingest_stats stats; /* under mu */
    struct ingest_lag *lag;    /* under mu */
    struct cc_errcap *errcap;  /* error replies per device; the writer thread's alone */
    /* Staged by ingest_writer_stage, not yet handed over: the staging thread's alone. */
    struct item *staged_head, *staged_tail;
    size_t staged;
    size_t staged_bytes;
};

static int code_index(const cJSON *err)
{
    const char *code = cc_error_code(err);
    if (strcmp(code, "BAD_JSON") == 0)
        return 0;
    if (strcmp(code, "VALIDATION_ERROR") == 0)
        return 1;
    if (strcmp(code, "NOT_FOUND") == 0)
        return 2;
    return 3;
}

static void free_outgoing(struct outgoing *o)
{
    while (o) {
        struct outgoing *next = o->next;
        cJSON_Delete(o->err);
        free(o);
        o = next;
    }
}

struct batch_result {
    unsigned long long accepted, duplicates, late, rejected, by_code[4];
    struct outgoing *out, **out_tail;
    int64_t lag_ts[INGEST_BATCH_MAX];            /* reading ts of each message, or -1 */
    struct cc_ingest_msg msgs[INGEST_BATCH_MAX]; /* the batch as cc_ingest_batch takes it */
};

/* Tallies one stored message and queues its error reply. CC_OK or CC_ERR_NOMEM. */
static int account(struct batch_result *br, const struct item *it, struct cc_ingest_msg *m,
                   size_t idx)
{
    struct cc_ingest_result *res = &m->res;

    br->accepted += res->accepted;
    br->duplicates += res->duplicates;
    br->late += res->late;
    br->lag_ts[idx] = (res->has_last && res->last.ts_given) ? res->last.ts_ms : -1;
    if (res->error == NULL)
        return CC_OK;
    br->rejected++;
    br->by_code[code_index(res->error)]++;
    cc_log_info("message_rejected", "topic=%s code=%s reason=%s", it->topic,
                cc_error_code(res->error), cc_error_message(res->error));
    if (m->serial[0] != '\0') {
        struct outgoing *o = calloc(1, sizeof(*o));
        if (o == NULL)
            return CC_ERR_NOMEM;
        snprintf(o->serial, sizeof(o->serial), "%s", m->serial);
        snprintf(o->topic, sizeof(o->topic), "devices/%s/errors", m->serial);
        o->err = res->error; /* the reply owns the tree now */
        res->error = NULL;
        *br->out_tail = o;
        br->out_tail = &o->next;
    }
    return CC_OK;
}

/* Commits items [0, n) of the list at head in one transaction: one cc_ingest_batch. */
static int commit_batch(struct ingest_writer *w, struct item *head, size_t n,
                        struct batch_result *br)
{
    struct cc_journal_pos last = {0, 0};
    struct cc_ingest_msg *msgs = br->msgs;
    struct item *it = head;
    int rc;

    memset(br, 0, offsetof(struct batch_result, lag_ts));
    br->out_tail = &br->out;
    for (size_t i = 0; i < n; i++, it = it->next) {
        msgs[i].topic = it->topic;
        msgs[i].payload = it->payload;
        msgs[i].len = it->len;
        msgs[i].received_at = it->received_at;
        last = it->pos;
    }
    rc = cc_store_begin(w->st);
    if (rc == CC_OK)
        rc = cc_ingest_batch(w->st, msgs, n);
    it = head;
    for (size_t i = 0; i < n; i++, it = it->next) {
        if (rc == CC_OK)
            rc = account(br, it, &msgs[i], i);
        cc_ingest_result_clear(&msgs[i].res);
    }
    if (rc == CC_OK)
        rc = cc_store_checkpoint_set(w->st, w->client_id, last.gen, last.offset);
    if (rc == CC_OK && w->fence != NULL)
        rc = w->fence(w->fence_ctx, w->st); /* as late as can be: a fenced active must not commit */
    if (rc == CC_OK)
        rc = cc_store_commit(w->st);
    if (rc != CC_OK) {
        cc_store_rollback(w->st);
        free_outgoing(br->out);
        br->out = NULL;
        return rc;
    }
    w->checkpoint = last;
    return CC_OK;
}

static int sync_committed(void *st)
{
    return cc_store_sync_committed(st);
}

static void record(struct ingest_writer *w, const struct batch_result *br, size_t n, double seconds,
                   int64_t commit_ms)
{
    pthread_mutex_lock(&w->mu);
    w->stats.messages += n;
    w->stats.accepted += br->accepted;
    w->stats.duplicates += br->duplicates;
    w->stats.late += br->late;
    w->stats.rejected += br->rejected;
    for (int i = 0; i < 4; i++)
        w->stats.rejected_by_code[i] += br->by_code[i];
    w->stats.commits++;
    w->stats.commit_seconds_sum += seconds;
    for (size_t i = 0; i < n; i++) {
        if (br->lag_ts[i] >= 0)
            ingest_lag_add(w->lag, commit_ms - br->lag_ts[i]);
    }
    pthread_mutex_unlock(&w->mu);
}

/* Adds "suppressed": n to the error object of err. CC_OK or CC_ERR_NOMEM. */
static int add_suppressed(cJSON *err, unsigned long long n)
{
    cJSON *inner = cJSON_GetObjectItemCaseSensitive(err, "error");

    if (!cJSON_IsObject(inner))
        return CC_ERR_INTERNAL;
    return cJSON_AddNumberToObject(inner, "suppressed", (double)n) != NULL ? CC_OK : CC_ERR_NOMEM;
}

/* Publishes the committed batch's error objects that their devices' caps allow; the rest
 * are counted, and each device's next published reply says how many it missed. */
static void publish_errors(struct ingest_writer *w, struct outgoing *list)
{
    unsigned long long suppressed = 0;

    for (struct outgoing *o = list; o; o = o->next) {
        unsigned long long missed = 0;
        char *json;

        if (!cc_errcap_take(w->errcap, o->serial, cc_mono_ms(), &missed)) {
            suppressed++;
            continue;
        }
        if (missed > 0) {
            /* At most one line per allowed reply: bounded by the cap like the replies. */
            cc_log_info("error_replies_suppressed", "serial=%s suppressed=%llu", o->serial, missed);
            if (add_suppressed(o->err, missed) != CC_OK)
                cc_log_warn("error_reply_incomplete", "serial=%s: suppressed count left out",
                            o->serial);
        }
        json = cJSON_PrintUnformatted(o->err);
        if (json == NULL) {
            cc_log_error("writer_nomem", "cannot print the error reply for %s", o->serial);
            continue;
        }
        if (w->publish)
            w->publish(w->publish_ctx, o->topic, json, strlen(json));
        cJSON_free(json);
    }
    if (suppressed > 0) {
        pthread_mutex_lock(&w->mu);
        w->stats.errors_suppressed += suppressed;
        pthread_mutex_unlock(&w->mu);
    }
}

size_t ingest_writer_item_bytes(size_t topic_len, size_t len)
{
    return sizeof(struct item) + topic_len + 1 + len + 1;
}

static size_t item_bytes(const struct item *it)
{
    return ingest_writer_item_bytes(it->topic_len, it->len);
}

static void free_items(struct item *it, size_t n)
{
    for (size_t i = 0; i < n && it; i++) {
        struct item *next = it->next;
        free(it);
        it = next;
    }
}

static void *run(void *arg)
{
    struct ingest_writer *w = arg;
    struct batch_result *br = malloc(sizeof(*br));

    /* Told apart from the broker loop (the main thread) in top, perf and bench_ingest.sh. */
    pthread_setname_np(pthread_self(), "ingestd-writer");

    if (br == NULL) {
        cc_log_error("writer_nomem", "cannot allocate the batch state");
        abort(); /* nothing sensible to do: the journal keeps every message */
    }
    for (;;) {
        struct item *head;
        size_t n = 0;

        pthread_mutex_lock(&w->mu);
        while (w->head == NULL && !w->stopping)
            pthread_cond_wait(&w->has_items, &w->mu);
        if (w->head == NULL && w->stopping) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        head = w->head;
        size_t bytes = 0;
        for (struct item *it = head; it && n < INGEST_BATCH_MAX; it = it->next) {
            size_t b = item_bytes(it);
            if (n > 0 && bytes + b > INGEST_BATCH_BYTES_MAX)
                break;
            bytes += b;
            n++;
        }
        w->busy = 1;
        pthread_mutex_unlock(&w->mu);

        int64_t t0 = cc_mono_ms();
        int rc;
        int attempt = 0;
        while ((rc = commit_batch(w, head, n, br)) != CC_OK) {
            pthread_mutex_lock(&w->mu);
            w->stats.db_errors++;
            int stopping = w->stopping;
            pthread_mutex_unlock(&w->mu);
            if (attempt++ % 25 == 0)
                cc_log_error("commit_failed", "batch of %zu messages: %s; retrying", n,
                             cc_rc_code(rc));
            if (stopping)
                break;
            /* On a full disk a retry only fails again (and would eat the reserve that
             * is there for the journal): wait until space has returned. */
            if (!ingest_disk_check(w->disk, "database") ||
                ingest_disk_wait(w->disk, RETRY_SLEEP_MS))
                cc_sleep_ms(RETRY_SLEEP_MS);
        }
        if (rc != CC_OK) {
            /* Stopping with a batch the database will not take: every message of the
             * queue is in the journal after the committed position, so the next start
             * replays it. */
            pthread_mutex_lock(&w->mu);
            size_t left = w->queued;
            pthread_mutex_unlock(&w->mu);
            cc_log_error("commit_abandoned", "%zu messages left to the journal for the next start",
                         left);
            break;
        }
        int64_t now = cc_now_ms();
        record(w, br, n, (double)(cc_mono_ms() - t0) / 1000.0, now);
        publish_errors(w, br->out);
        free_outgoing(br->out);
        br->out = NULL;
        /* Segments go only once the commits that hold their messages are on disk. */
        cc_journal_trim_durable(w->journal, w->checkpoint, sync_committed, w->st);

        pthread_mutex_lock(&w->mu);
        struct item *rest = head;
        for (size_t i = 0; i < n; i++)
            rest = rest->next;
        w->head = rest;
        if (rest == NULL)
            w->tail = NULL;
        w->queued -= n;
        w->queued_bytes -= bytes;
        w->busy = 0;
        pthread_cond_broadcast(&w->has_space);
        if (w->head == NULL)
            pthread_cond_broadcast(&w->drained);
        int more = w->head != NULL;
        pthread_mutex_unlock(&w->mu);
        free_items(head, n);
        if (more)
            cc_sleep_ms(INGEST_WRITER_YIELD_MS);
    }
    free(br);
    return NULL;
}

/* The error-reply cap of INGEST_ERROR_REPLY_BURST / INGEST_ERROR_REPLIES_PER_MIN. The hash
 * seed is random so that no one can pick serials that share the table's slots. */
static int errcap_new(const struct cc_config *cfg, struct cc_errcap **out)
{
    uint64_t seed = 0;

    if (cc_random_bytes(&seed, sizeof(seed)) != CC_OK)
        seed = (uint64_t)cc_now_ms(); /* the bound holds whatever the seed */
    return cc_errcap_new(cfg->ingest_error_reply_burst, cfg->ingest_error_replies_per_min,
                         INGEST_ERROR_REPLY_DEVICES, seed, out);
}

int ingest_writer_start(const struct cc_config *cfg, struct cc_journal *j, struct cc_gate *gate,
                        struct cc_walckpt *ckpt, struct ingest_disk *disk, ingest_publish_fn pub,
                        void *pub_ctx, struct ingest_writer **out)
{
    struct ingest_writer *w = calloc(1, sizeof(*w));
    int rc;

    if (w == NULL)
        return CC_ERR_NOMEM;
    w->lag = calloc(1, sizeof(*w->lag));
    if (w->lag == NULL) {
        free(w);
        return CC_ERR_NOMEM;
    }
    snprintf(w->client_id, sizeof(w->client_id), "%s", cfg->ingest_client_id);
    rc = errcap_new(cfg, &w->errcap);
    if (rc == CC_OK)
        rc = cc_store_open(cfg->db_path, CC_STORE_CREATE | CC_STORE_MIGRATE, &w->st);
    if (rc == CC_OK) /* this connection writes devices, cells and alerts only by ingesting */
        rc = cc_ingest_cache_enable(w->st);
    if (rc == CC_OK)
        rc = cc_store_cache_kib(w->st, &w->cache_kib);
    if (rc == CC_OK) {
        cc_store_set_gate(w->st, gate);
        if (ckpt != NULL)
            cc_store_attach_checkpointer(w->st, ckpt);
    }
    if (rc == CC_OK)
        rc =
            cc_store_checkpoint_get(w->st, w->client_id, &w->checkpoint.gen, &w->checkpoint.offset);
    if (rc != CC_OK)
        goto fail;
    w->journal = j;
    w->disk = disk;
    w->publish = pub;
    w->publish_ctx = pub_ctx;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->has_items, NULL);
    pthread_cond_init(&w->has_space, NULL);
    pthread_cond_init(&w->drained, NULL);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        rc = CC_ERR_INTERNAL;
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->has_items);
        pthread_cond_destroy(&w->has_space);
        pthread_cond_destroy(&w->drained);
        goto fail;
    }
    *out = w;
    return CC_OK;
fail:
    cc_store_close(w->st);
    cc_errcap_free(w->errcap);
    free(w->lag);
    free(w);
    return rc;
}

/* One allocation holding the item and copies of its topic and payload. */
static struct item *item_new(int64_t received_at, const char *topic, size_t topic_len,
                             const void *payload, size_t len, struct cc_journal_pos pos)
{
    struct item *it = malloc(ingest_writer_item_bytes(topic_len, len));

    if (it == NULL)
        return NULL;
    it->next = NULL;
    it->received_at = received_at;
    it->pos = pos;
    it->topic_len = topic_len;
    it->len = len;
    it->topic = (char *)(it + 1);
    memcpy(it->topic, topic, topic_len);
    it->topic[topic_len] = '\0';
    it->payload = it->topic + topic_len + 1;
    if (len > 0)
        memcpy(it->payload, payload, len);
    it->payload[len] = '\0';
    return it;
}

/* Appends the list head..tail of n items of bytes in all to the queue, waiting while it
 * is full; one wake-up for the whole list. */
static void enqueue(struct ingest_writer *w, struct item *head, struct item *tail, size_t n,
                    size_t bytes)
{
    pthread_mutex_lock(&w->mu);
    while ((w->queued >= INGEST_QUEUE_MAX || w->queued_bytes >= INGEST_QUEUE_BYTES_MAX) &&
           !w->stopping)
        pthread_cond_wait(&w->has_space, &w->mu);
    if (w->tail)
        w->tail->next = head;
    else
        w->head = head;
    w->tail = tail;
    w->queued += n;
    w->queued_bytes += bytes;
    pthread_cond_signal(&w->has_items);
    pthread_mutex_unlock(&w->mu);
}

int ingest_writer_push(void *writer, int64_t received_at, const char *topic, size_t topic_len,
                       const void *payload, size_t len, struct cc_journal_pos pos)
{
    struct ingest_writer *w = writer;
    struct item *it = item_new(received_at, topic, topic_len, payload, len, pos);

    if (it == NULL)
        return CC_ERR_NOMEM;
    enqueue(w, it, it, 1, item_bytes(it));
    return CC_OK;
}

int ingest_writer_stage(struct ingest_writer *w, int64_t received_at, const char *topic,
                        size_t topic_len, const void *payload, size_t len, int64_t rel_end)
{
    /* The position is relative until the hand-over learns where the stage was written. */
    struct cc_journal_pos rel = {0, rel_end};
    struct item *it = item_new(received_at, topic, topic_len, payload, len, rel);

    if (it == NULL)
        return CC_ERR_NOMEM;
    if (w->staged_tail)
        w->staged_tail->next = it;
    else
        w->staged_head = it;
    w->staged_tail = it;
    w->staged++;
    w->staged_bytes += item_bytes(it);
    return CC_OK;
}

void ingest_writer_hand_over(struct ingest_writer *w, struct cc_journal_pos base)
{
    if (w->staged == 0)
        return;
    for (struct item *it = w->staged_head; it; it = it->next) {
        it->pos.gen = base.gen;
        it->pos.offset += base.offset;
    }
    enqueue(w, w->staged_head, w->staged_tail, w->staged, w->staged_bytes);
    w->staged_head = w->staged_tail = NULL;
    w->staged = 0;
    w->staged_bytes = 0;
}

void ingest_writer_discard_staged(struct ingest_writer *w)
{
    free_items(w->staged_head, w->staged);
    w->staged_head = w->staged_tail = NULL;
    w->staged = 0;
    w->staged_bytes = 0;
}

void ingest_writer_set_fence(struct ingest_writer *w, ingest_fence_fn fn, void *ctx)
{
    pthread_mutex_lock(&w->mu); /* the thread reads them after taking mu for its batch */
    w->fence = fn;
    w->fence_ctx = ctx;
    pthread_mutex_unlock(&w->mu);
}

void ingest_writer_flush(struct ingest_writer *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->head != NULL)
        pthread_cond_wait(&w->drained, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void ingest_writer_stop(struct ingest_writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->has_items);
    pthread_cond_broadcast(&w->has_space);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    free_items(w->head, w->queued); /* left to the journal by a failed last commit */
    ingest_writer_discard_staged(w);
    cc_store_close(w->st);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->has_items);
    pthread_cond_destroy(&w->has_space);
    pthread_cond_destroy(&w->drained);
    cc_errcap_free(w->errcap);
    free(w->lag);
    free(w);
}

int ingest_writer_cache_kib(const struct ingest_writer *w)
{
    return w->cache_kib;
}

struct cc_journal_pos ingest_writer_checkpoint(struct ingest_writer *w)
{
    return w->checkpoint;
}

void ingest_writer_stats(struct ingest_writer *w, struct ingest_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    out->backlog = w->queued;
    out->backlog_bytes = w->queued_bytes;
    pthread_mutex_unlock(&w->mu);
}

void ingest_writer_lag(struct ingest_writer *w, struct ingest_lag_summary *out)
{
    /* mu is the queue's lock too: the summary reads a bounded part of the histogram
     * (lag.h), where a copy of the used buckets (up to 480 KB) held it on every scrape. */
    pthread_mutex_lock(&w->mu);
    ingest_lag_summarize(w->lag, out);
    pthread_mutex_unlock(&w->mu);
}
