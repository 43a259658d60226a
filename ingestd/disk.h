/* disk.h - ingestd's guard against a full disk: a reserve file and a "full" state.
 *
 * Why: a message the broker loop has read is acknowledged once the callback returns
 * (mqtt.h), so on a full disk the callback must not return before the message is
 * journaled, and no more must be read until space returns.
 *
 * What it does: at start ingestd sets aside INGEST_DISK_RESERVE bytes in a file beside the
 * database. The first write that fails for lack of space (journal or commit) enters the
 * full state: the reserve is deleted, so the message in hand can still be journaled, and
 * the message callback then blocks until space returns, so the loop reads (and
 * acknowledges) nothing more and the broker keeps the rest. Whoever waits polls the free
 * space (ingest_disk_poll; the broker loop also does, once a turn); once
 * INGEST_DISK_RESERVE + INGEST_DISK_RESUME_FREE bytes are free, the reserve is made again
 * and the state ends by itself.
 *
 * Thread-safety: every function may be called from any thread. */
#ifndef INGEST_DISK_H
#define INGEST_DISK_H

#define INGEST_DISK_RESERVE (1024L * 1024)     /* bytes set aside for acknowledged messages */
#define INGEST_DISK_RESUME_FREE (1024L * 1024) /* free bytes beyond the reserve to resume */
#define INGEST_DISK_POLL_MS 1000               /* free-space checks while full */
#define INGEST_DISK_REMIND_MS 60000            /* the "still full" log line */

struct ingest_disk;

/* Makes the reserve file <dir>/<name>.reserve. A disk too full for it is logged and
 * tolerated (there is then nothing to release). CC_OK or CC_ERR_NOMEM/CC_ERR_IO. */
int ingest_disk_open(const char *dir, const char *name, struct ingest_disk **out);
void ingest_disk_close(struct ingest_disk *g);

/* A write of `what` failed with errno err. ENOSPC or EDQUOT enters the full state (once:
 * releases the reserve and logs one error line); returns 1 if the caller may retry at
 * once because space was just released, else 0. NULL g: 0. */
int ingest_disk_failed(struct ingest_disk *g, const char *what, int err);

/* A database write of `what` failed: enters the full state when less than
 * INGEST_DISK_RESERVE bytes are free (SQLite does not say ENOSPC). 1 if now full. */
int ingest_disk_check(struct ingest_disk *g, const char *what);

/* 1 while in the full state. */
int ingest_disk_full(struct ingest_disk *g);

/* Waits up to ms for the full state to end; 1 if still full. */
int ingest_disk_wait(struct ingest_disk *g, long ms);

/* In the full state, at most every INGEST_DISK_POLL_MS: ends it when space has returned
 * (wakes the waiters). Called by the broker loop and by waiters. */
void ingest_disk_poll(struct ingest_disk *g);

#endif
