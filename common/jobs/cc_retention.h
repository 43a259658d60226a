/* cc_retention.h - removes raw readings older than RAW_RETENTION_DAYS, and dead letters
 * (rejected_messages) older than REJECTED_RETENTION_DAYS, in small batches; the
 * five-minute rollups (readings_5m) stay, so long-range statistics keep working after
 * the raw rows are gone (docs/queries.md).
 *
 * Each batch is its own short BEGIN IMMEDIATE ... COMMIT, so the ingest writer waits
 * at most one batch. Safe with two processes at once (each batch deletes what is still
 * there). On PostgreSQL the whole months before the cutoff are dropped first
 * (coldchain_drop_partitions_before), the batches delete by key what is left, and each
 * transaction takes the pass's advisory lock (cc_jobs_pass_lock): a process that finds it
 * taken stops, the other one does the work. Thread: the caller's store (ingestd's jobs thread).
 * Codes: CC_OK, CC_ERR_DB, CC_ERR_VALIDATION (days < 1 or batch < 1). */
#ifndef CC_RETENTION_H
#define CC_RETENTION_H

#include <stdint.h>
#include "cc_store.h"

#define CC_RETENTION_BATCH 1000       /* rows deleted per transaction */
#define CC_RETENTION_MAX_BATCHES 100  /* batches per call: a call stays short */
#define CC_RETENTION_EVERY_MS 60000LL /* how often ingestd's jobs run it */

/* Deletes readings with ts < now_ms - days * 86400000, at most batch rows per
 * transaction and max_batches transactions. *deleted (may be NULL) receives the rows
 * removed by the batches (on PostgreSQL not those of dropped months, which are logged as
 * a partition count); *more (may be NULL) is 1 when old rows remain (call again soon). */
int cc_retention_run(struct cc_store *st, int64_t now_ms, int days, int batch, int max_batches,
                     int64_t *deleted, int *more);

/* The same for dead letters: deletes rejected_messages with received_at < now_ms -
 * days * 86400000, oldest first (the received_at index), in the same batches. The
 * per-device cap is kept at insert time (cc_store_dead_letter), not here. */
int cc_retention_rejected_run(struct cc_store *st, int64_t now_ms, int days, int batch,
                              int max_batches, int64_t *deleted, int *more);

#endif
