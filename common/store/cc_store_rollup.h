/* cc_store_rollup.h - the write side of the rollup tables (readings_5m, readings_30m):
 * the exact upserts of the ingest path and the rebuilds from raw readings. The terms
 * are cc_rollup_math.h's; the read side is api/cc_query.h (docs/queries.md).
 *
 * Ownership: a cc_rollup_batch is its creator's (cc_rollup_batch_free). Thread: the
 * caller's store or connection, inside its write transaction; statements come from
 * cc_store_stmt (cached per store) or cc_sql_prepare. Codes: CC_OK, CC_ERR_DB,
 * CC_ERR_NOMEM, CC_ERR_VALIDATION (bad rebuild span). */
#ifndef CC_STORE_ROLLUP_H
#define CC_STORE_ROLLUP_H

#include <stdint.h>

#include "cc_rollup_math.h"
#include "cc_store.h"

/* A transaction's rollup terms summed per cell and bucket in memory, written with one
 * upsert per bucket when the transaction commits (cc_store_commit) instead of two per
 * reading: the same sums, exactly (docs/queries.md). Outside such a transaction a
 * reading is a batch of one, flushed at once. CC_ROLLUP_BATCH_MAX buckets of each
 * size at most; past that the table is written early, inside the same transaction. */
#define CC_ROLLUP_BATCH_MAX 256 /* buckets of each size held before an early write */
struct cc_rollup_batch;
int cc_rollup_batch_new(struct cc_rollup_batch **out); /* CC_OK or CC_ERR_NOMEM */
void cc_rollup_batch_free(struct cc_rollup_batch *b);  /* NULL: no-op */
/* Adds one stored reading. CC_OK, or CC_ERR_DB when an early write failed. */
int cc_rollup_batch_add(struct cc_store *st, struct cc_rollup_batch *b, int64_t cell_id,
                        int64_t ts_ms, double t);
/* Writes and empties the batch (empty even when it fails). CC_OK or CC_ERR_DB. */
int cc_rollup_batch_flush(struct cc_store *st, struct cc_rollup_batch *b);
/* Forgets the batch (its transaction was rolled back). */
void cc_rollup_batch_clear(struct cc_rollup_batch *b);

/* Rebuilds readings_5m and readings_30m from raw readings: of one cell, or of every
 * cell when cell_id is 0. Rows of buckets with no raw reading are left alone, but a
 * bucket that retention has thinned is rewritten from what is left: use it after bulk
 * loads, not on old data. The caller holds a write transaction. CC_OK or CC_ERR_DB. */
/* struct sqlite3, not sqlite3.h: sqlite3.h's typedef names the same type, and a caller that
 * only rebuilds spans (bench_query) then includes no database header (issue 14). */
struct sqlite3;
int cc_store_rollup_rebuild(struct sqlite3 *db, int64_t cell_id);
/* Rewrites one cell's rollups over the half-hours covering from_ts..to_ts from the raw
 * readings left there (after a device and its readings were deleted), on SQLite or
 * PostgreSQL (cc_dbi.h): the terms are computed in C as on the ingest path, so the rows
 * are exact on both. The caller holds a write transaction. CC_OK, CC_ERR_VALIDATION,
 * CC_ERR_DB or CC_ERR_CONFLICT (a bucket written meanwhile: roll back). */
int cc_store_rollup_rebuild_span(struct cc_store *st, int64_t cell_id, int64_t from_ts,
                                 int64_t to_ts);

#endif
