/* test_ingest_writer.c - ingestd's writer queue (ingestd/writer.c) on a real SQLite file and
 * journal: its bounds in bytes. A count alone let INGEST_QUEUE_MAX messages of up to 1 MiB
 * each be queued; the queue now stops taking messages at INGEST_QUEUE_BYTES_MAX of copies,
 * and a transaction takes at most INGEST_BATCH_BYTES_MAX of them.
 *
 * The writer is held inside its first commit (its fence, called just before COMMIT) while
 * another thread pushes large messages: the pushes must stop at the byte bound, and every
 * message must be committed once the writer is let go. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../ingestd/writer.h"
#include "cc_config.h"
#include "cc_journal.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "fixture.h"

#define BIG_PAYLOAD (64 * 1024) /* bytes of each pushed message: 32 of them fill the queue */
#define BIG_MESSAGES 80         /* pushed in all: 5 MiB, more than twice the queue's bound */
#define STILL_MS 300            /* pushes that have not moved for this long are taken as blocked */
#define TOPIC "devices/SN-WRITER-1/readings"

struct held {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int hold;   /* the fence waits while set */
    int inside; /* the writer reached the fence */
};

/* ingest_fence_fn: holds the writer inside its transaction until released. */
static int fence(void *ctx, struct cc_store *tx)
{
    struct held *h = ctx;

    (void)tx;
    pthread_mutex_lock(&h->mu);
    h->inside = 1;
    pthread_cond_broadcast(&h->cv);
    while (h->hold)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    return CC_OK;
}

struct pusher {
    struct ingest_writer *w;
    char *payload;
    int pushed; /* __atomic */
};

static void *push_all(void *arg)
{
    struct pusher *p = arg;

    for (int i = 0; i < BIG_MESSAGES; i++) {
        struct cc_journal_pos pos = {0, i};
        if (ingest_writer_push(p->w, cc_now_ms(), TOPIC, strlen(TOPIC), p->payload, BIG_PAYLOAD,
                               pos) != CC_OK)
            break;
        __atomic_add_fetch(&p->pushed, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* The pushes once they have stopped moving for STILL_MS (or all were made). */
static int pushes_settled(struct pusher *p)
{
    int last = -1, n;
    int64_t since = cc_mono_ms();

    for (;;) {
        n = __atomic_load_n(&p->pushed, __ATOMIC_RELAXED);
        if (n == BIG_MESSAGES)
            return n;
        if (n != last) {
            last = n;
            since = cc_mono_ms();
        } else if (cc_mono_ms() - since >= STILL_MS) {
            return n;
        }
        cc_sleep_ms(10);
    }
}

static void test_ingest_writer_queue_bounded_in_bytes(void **state)
{
    struct fixture fx;
    struct cc_config cfg;
    struct cc_journal *j = NULL;
    struct ingest_writer *w = NULL;
    struct held h = {.hold = 1};
    struct pusher p = {0};
    struct ingest_stats s;
    pthread_t t;
    size_t item = ingest_writer_item_bytes(strlen(TOPIC), BIG_PAYLOAD);

    (void)state;
    assert_int_equal(fixture_open(&fx, FIXTURE_FILE | FIXTURE_NO_STORE, 0, NULL), CC_OK);
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.db_path, sizeof cfg.db_path, "%s", fx.path);
    snprintf(cfg.ingest_client_id, sizeof cfg.ingest_client_id, "%s", "coldchain-test");
    cfg.ingest_error_reply_burst = 1;
    cfg.ingest_error_replies_per_min = 1;
    assert_int_equal(cc_journal_open(fx.dir, &j), CC_OK);
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    assert_int_equal(ingest_writer_start(&cfg, j, NULL, NULL, NULL, NULL, NULL, &w), CC_OK);
    ingest_writer_set_fence(w, fence, &h);
    p.w = w;
    p.payload = malloc(BIG_PAYLOAD);
    assert_non_null(p.payload);
    memset(p.payload, 'x', BIG_PAYLOAD); /* not JSON: each is a dead letter, still committed */
    assert_int_equal(pthread_create(&t, NULL, push_all, &p), 0);

    /* The writer holds its first batch in the fence; the pushes stop at the byte bound. */
    pthread_mutex_lock(&h.mu);
    while (!h.inside)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    int pushed = pushes_settled(&p);
    ingest_writer_stats(w, &s);
    assert_true(pushed < BIG_MESSAGES);
    assert_int_equal(s.backlog, (size_t)pushed); /* nothing committed yet */
    assert_int_equal(s.backlog_bytes, (size_t)pushed * item);
    /* The push that reached the bound was taken; the next one waits. */
    assert_true(s.backlog_bytes >= INGEST_QUEUE_BYTES_MAX);
    assert_true(s.backlog_bytes < INGEST_QUEUE_BYTES_MAX + item);

    /* Let go: every message is committed, in transactions of at most
     * INGEST_BATCH_BYTES_MAX each. */
    pthread_mutex_lock(&h.mu);
    h.hold = 0;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(p.pushed, BIG_MESSAGES);
    ingest_writer_flush(w);
    ingest_writer_stats(w, &s);
    assert_int_equal(s.messages, BIG_MESSAGES);
    assert_int_equal(s.backlog, 0);
    assert_int_equal(s.backlog_bytes, 0);
    size_t per_commit = INGEST_BATCH_BYTES_MAX / item;
    assert_true(s.commits >= (BIG_MESSAGES + per_commit - 1) / per_commit);

    ingest_writer_stop(w);
    cc_journal_close(j);
    free(p.payload);
    pthread_mutex_destroy(&h.mu);
    pthread_cond_destroy(&h.cv);
    fixture_close(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_writer_queue_bounded_in_bytes),
    };

    cc_log_init("test_ingest_writer", CC_LOG_WARN, 1); /* not a line per dead letter */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
