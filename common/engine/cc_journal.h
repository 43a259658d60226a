/* cc_journal.h - ingestd's receive journal: segmented, append-only, checksummed.
 *
 * Why it exists: ingestd acknowledges a message to the broker only once it is here (a
 * write(2) survives kill -9 once the call returns; a read round's messages are written
 * together, see cc_journal_stage), and the writer thread commits readings to the database together
 * with the journal position it has reached (cc_store_checkpoint_set). After a crash, everything
 * after the committed position is replayed; the unique (device_id, ts) index absorbs repeats.
 *
 * Layout: a directory of segments "journal.<gen, 16 hex digits>", each a 16-byte header
 * ("CCJ1", 4 reserved bytes, gen as little-endian int64) followed by records
 * [u32 body length][u32 CRC-32 of body][body], body = [i64 received_at][u16 topic
 * length][topic][payload]. A position is (gen, offset of the end of a record).
 * A segment is closed when it passes CC_JOURNAL_SEGMENT_MAX; segments older than
 * the committed position are deleted by cc_journal_trim.
 *
 * Thread-safety: all functions lock an internal mutex (the stage's excepted, see below);
 * append and trim may run in different threads. Codes: CC_OK, CC_ERR_IO, CC_ERR_NOMEM,
 * CC_ERR_VALIDATION. */
#ifndef CC_JOURNAL_H
#define CC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define CC_JOURNAL_SEGMENT_MAX (64LL * 1024 * 1024) /* bytes before a new segment */
#define CC_JOURNAL_HEADER 16                        /* bytes */
#define CC_JOURNAL_TOPIC_MAX 65535                  /* bytes */
#define CC_JOURNAL_RECORD_MAX (2 * 1024 * 1024)     /* body bytes; the broker caps at 1 MiB */

struct cc_journal;

struct cc_journal_pos {
    int64_t gen;    /* segment */
    int64_t offset; /* end of the record in that segment */
};

/* Called for each record during replay. Return CC_OK to go on, anything else stops
 * the replay and is returned by cc_journal_replay. Buffers are lent for the call. */
typedef int (*cc_journal_fn)(void *ctx, int64_t received_at, const char *topic, size_t topic_len,
                             const void *payload, size_t len, struct cc_journal_pos end);

/* Opens (creating the directory if needed) the journal in dir. Existing segments are
 * kept for cc_journal_replay; appends go to a new segment after the newest one. */
int cc_journal_open(const char *dir, struct cc_journal **out);
void cc_journal_close(struct cc_journal *j);

/* Replays every intact record after position from, in order, across segments.
 * A torn record at the tail of a segment (a crash mid-write) ends that segment. */
int cc_journal_replay(struct cc_journal *j, struct cc_journal_pos from, cc_journal_fn fn,
                      void *ctx);

/* Appends one record; *end receives its position. */
int cc_journal_append(struct cc_journal *j, int64_t received_at, const char *topic,
                      size_t topic_len, const void *payload, size_t len,
                      struct cc_journal_pos *end);

/* Group append: ingestd journals a whole read round with one writev(2) instead of one per
 * message (a system call and a lock per message were a third of the broker loop's CPU when
 * messages trickle in). cc_journal_stage copies a record into memory; *rel_end receives the
 * offset of its end counted from the start of what is staged. Nothing is in the file until
 * cc_journal_write_staged returns CC_OK: only then may the records be acknowledged.
 * The stage holds at most CC_JOURNAL_STAGE_MAX bytes: past that, stage answers
 * CC_ERR_TOO_LARGE and nothing is staged: write the staged records, then stage it again (an
 * empty stage takes any record up to CC_JOURNAL_RECORD_MAX). CC_ERR_VALIDATION as append,
 * CC_ERR_NOMEM. Not locked: one thread stages, writes and discards. */
#define CC_JOURNAL_STAGE_MAX (256 * 1024) /* bytes: a read round of 1000 readings fits */
int cc_journal_stage(struct cc_journal *j, int64_t received_at, const char *topic, size_t topic_len,
                     const void *payload, size_t len, int64_t *rel_end);
/* Bytes staged and not yet written. */
size_t cc_journal_staged(const struct cc_journal *j);
/* Writes everything staged with one writev (in a new segment first if the current one is
 * full: a segment may pass CC_JOURNAL_SEGMENT_MAX by one stage). *base receives where it
 * begins: the record staged with rel_end r ends at {base->gen, base->offset + r}. On failure
 * nothing is left in the file (a partial write is cut off), the records stay staged for
 * another try, and errno tells why (ENOSPC, EDQUOT: a full disk). */
int cc_journal_write_staged(struct cc_journal *j, struct cc_journal_pos *base);
/* Forgets the staged records (a round that will not be acknowledged). */
void cc_journal_discard_staged(struct cc_journal *j);

/* Power-loss safety (INGEST_FSYNC). cc_journal_sync makes every record appended so far
 * durable (fdatasync, and the segment's directory entry once), a no-op when nothing was
 * appended since the last call. With set_sync on, a segment that is closed for a new one
 * is synced first, so one sync after a group of appends covers the whole group. */
void cc_journal_set_sync(struct cc_journal *j, int on);
int cc_journal_sync(struct cc_journal *j);

/* Deletes segments wholly before committed (their records are all in the database). */
int cc_journal_trim(struct cc_journal *j, struct cc_journal_pos committed);
/* cc_journal_trim, but only after durable(ctx) returned CC_OK, and only when a segment is
 * to go: a commit the database has not yet made durable (SQLite's synchronous=NORMAL) must
 * not lose its journal copy. durable's error is returned and nothing is deleted. */
int cc_journal_trim_durable(struct cc_journal *j, struct cc_journal_pos committed,
                            int (*durable)(void *ctx), void *ctx);

/* Number of segment files currently on disk (for metrics and tests). */
int cc_journal_segments(struct cc_journal *j);

/* CRC-32 (IEEE) of n bytes; exposed for tests. */
uint32_t cc_crc32(const void *data, size_t n);

#endif
