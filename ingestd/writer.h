/* writer.h - ingestd's writer: a bounded in-memory queue of journaled messages and one
 * thread that commits them to the database in group transactions.
 *
 * Each transaction stores a batch of messages (readings, dead letters, device updates,
 * alert changes) together with the journal position of its last message, so a crash
 * replays exactly what was not committed. A database failure rolls the batch back and
 * retries it; nothing in the queue is ever dropped. push() blocks while the queue is
 * full, which stops the broker loop reading the socket and leaves the backlog with the
 * broker. */
#ifndef INGEST_WRITER_H
#define INGEST_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "cc_journal.h"
#include "lag.h"

#define INGEST_BATCH_MAX 4096 /* messages per transaction */
/* Bytes of message copies per transaction (ingest_writer_item_bytes; a message larger than
 * this is a batch alone). Four thousand readings of ~110 bytes (~210 a copy) fit. */
#define INGEST_BATCH_BYTES_MAX (1024 * 1024)
/* The queue: messages waiting before push() blocks (and the broker loop with it: the
 * backlog then stays in the broker, which holds it anyway), by count and by bytes. Two
 * batches of each: the broker loop reads the next batch while the writer commits one.
 * Four batches by count alone held 17,000 copies (3.8 MB, heaptrack) at the peak of a
 * backlog drain, and a count let 16,384 messages of up to 1 MiB (CC_MAX_PAYLOAD) in. A
 * hand-over may pass either bound by what one hand-over holds: at most INGEST_READ_ROUND_MAX
 * messages, and in bytes one CC_JOURNAL_STAGE_MAX stage of journal records (the stage hands
 * the round over when it fills) with 48 more bytes a copy, or one message alone. */
#define INGEST_QUEUE_MAX (2 * INGEST_BATCH_MAX)
#define INGEST_QUEUE_BYTES_MAX (2 * INGEST_BATCH_BYTES_MAX)
/* Devices whose error-reply buckets are kept at once (cc_errcap.h: 96 bytes each). More
 * devices share slots, and so share buckets; the total stays bounded either way. */
#define INGEST_ERROR_REPLY_DEVICES 4096

/* Publishes at QoS 1: an error object for a refused message (after its commit), or a
 * notification (jobs). 0 when Paho took the message, else non-zero (retry later).
 * Error objects are capped per device (INGEST_ERROR_REPLY_BURST at once, then
 * INGEST_ERROR_REPLIES_PER_MIN; cc_errcap.h): the broker queues every reply a device does
 * not read. A reply over the cap is not published, only counted (errors_suppressed); the
 * device's next reply carries "suppressed": N in its error object. */
typedef int (*ingest_publish_fn)(void *ctx, const char *topic, const char *payload, size_t len);

struct ingest_writer;

struct ingest_stats {
    unsigned long long messages;   /* messages committed (any outcome) */
    unsigned long long accepted;   /* readings inserted */
    unsigned long long duplicates; /* readings already stored */
    unsigned long long late; /* of accepted: older than their device's newest, no alert judged */
    unsigned long long rejected;            /* messages or items refused */
    unsigned long long rejected_by_code[8]; /* BAD_JSON, VALIDATION_ERROR, NOT_FOUND, other */
    unsigned long long commits;
    unsigned long long db_errors;
    double commit_seconds_sum;
    size_t backlog;                       /* messages queued, not yet committed */
    size_t backlog_bytes;                 /* their copies' bytes (ingest_writer_item_bytes) */
    unsigned long long errors_suppressed; /* error replies over the per-device cap */
};

struct cc_config;
struct cc_gate;
struct cc_walckpt;
struct cc_store;
struct ingest_disk;
/* gate: shared with the jobs thread (cc_gate.h), or NULL. ckpt: the checkpointer that
 * takes WAL checkpoints off the writer's commits (cc_walckpt.h), or NULL for SQLite's
 * automatic checkpoint. disk: the full-disk guard (disk.h), or NULL: a commit that fails
 * on a full disk enters its full state and is retried once space has returned. */
/* cfg (read during the call only): the database and the error-reply cap. */
int ingest_writer_start(const struct cc_config *cfg, struct cc_journal *j, struct cc_gate *gate,
                        struct cc_walckpt *ckpt, struct ingest_disk *disk, ingest_publish_fn pub,
                        void *pub_ctx, struct ingest_writer **out);
/* Bytes a queued message of topic_len and len bytes counts against INGEST_QUEUE_BYTES_MAX
 * and INGEST_BATCH_BYTES_MAX: its copy, the queue's bookkeeping included. */
size_t ingest_writer_item_bytes(size_t topic_len, size_t len);
/* Queues a message that is already in the journal at position pos; waits while the queue
 * is full. Thread-safe. */
int ingest_writer_push(void *writer, int64_t received_at, const char *topic, size_t topic_len,
                       const void *payload, size_t len, struct cc_journal_pos pos);
/* Group hand-over (the broker loop's read round, cc_journal_stage): ingest_writer_stage
 * copies a message into a list only the calling thread sees, rel_end being its
 * cc_journal_stage position; ingest_writer_hand_over, once the stage is written at base,
 * queues the whole list with one lock and one wake-up of the writer (a signal per message
 * cost a futex call and a context switch when the writer was idle). Like push, the
 * hand-over waits while the queue is full (INGEST_QUEUE_MAX, INGEST_QUEUE_BYTES_MAX); it
 * then queues all it holds, so the queue may pass the bounds by one round (see
 * INGEST_QUEUE_MAX). One thread
 * stages, hands over and discards. */
int ingest_writer_stage(struct ingest_writer *w, int64_t received_at, const char *topic,
                        size_t topic_len, const void *payload, size_t len, int64_t rel_end);
void ingest_writer_hand_over(struct ingest_writer *w, struct cc_journal_pos base);
/* Forgets what is staged (a round that will not be acknowledged). */
void ingest_writer_discard_staged(struct ingest_writer *w);
/* Called by the writer thread before every commit, inside the transaction on tx (the
 * writer's store): CC_OK when the commit may go ahead; another code rolls the batch back to
 * be retried (the lease cannot be checked now: the database is away); or it ends the
 * process (leader.h, ingest_leader_check: an active ingestd that lost its lease must not
 * commit). */
typedef int (*ingest_fence_fn)(void *ctx, struct cc_store *tx);
/* Sets the check (NULL: none). Before the first push. */
void ingest_writer_set_fence(struct ingest_writer *w, ingest_fence_fn fn, void *ctx);
/* Returns once every message queued so far is committed (used after replay). */
void ingest_writer_flush(struct ingest_writer *w);
/* Commits what is queued, stops the thread and frees the writer. A batch that cannot be
 * committed at that point (a full disk) is left to the journal, replayed at next start. */
void ingest_writer_stop(struct ingest_writer *w);
/* The committed journal position at start (read from the database). */
struct cc_journal_pos ingest_writer_checkpoint(struct ingest_writer *w);
void ingest_writer_stats(struct ingest_writer *w, struct ingest_stats *out);
/* The writer's SQLite page cache limit in KiB (cc_db.c's CACHE_SIZE_PRAGMA), as its
 * connection reported it at start; 0 on PostgreSQL. */
int ingest_writer_cache_kib(const struct ingest_writer *w);
/* The publish-to-commit lag histogram's summary (lag.h), for readings that carry ts: a
 * bounded read under the queue's lock, no copy, no allocation. */
void ingest_writer_lag(struct ingest_writer *w, struct ingest_lag_summary *out);

#endif
