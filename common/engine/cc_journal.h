/* cc_journal.h - ingestd's receive journal: segmented, append-only, checksummed.
 *
 * Why it exists: Paho hands a message to the application after the broker has been
 * told it was delivered. ingestd appends each message here (one write(2), so it
 * survives kill -9 once the call returns) before it lets Paho forget it, and the
 * writer thread commits readings to the database together with the journal position
 * it has reached (cc_store_checkpoint_set). After a crash, everything after the
 * committed position is replayed; the unique (device_id, ts) index absorbs repeats.
 *
 * Layout: a directory of segments "journal.<gen, 16 hex digits>", each a 16-byte header
 * ("CCJ1", 4 reserved bytes, gen as little-endian int64) followed by records
 * [u32 body length][u32 CRC-32 of body][body], body = [i64 received_at][u16 topic
 * length][topic][payload]. A position is (gen, offset of the end of a record).
 * A segment is closed when it passes CC_JOURNAL_SEGMENT_MAX; segments older than
 * the committed position are deleted by cc_journal_trim.
 *
 * Thread-safety: all functions lock an internal mutex; append and trim may run in
 * different threads. Codes: CC_OK, CC_ERR_IO, CC_ERR_NOMEM, CC_ERR_VALIDATION. */
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
