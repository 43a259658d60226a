/* cc_retention.c - raw readings and dead letters retention in small batches, see
 * cc_retention.h. SQLite and PostgreSQL through cc_dbi.h. */
#include "cc_retention.h"

#include "cc_dbi.h"
#include "cc_jobs.h"
#include "cc_log.h"
#include "cc_rc.h"

#define MS_PER_DAY 86400000LL

/* One batch. The IN (SELECT id FROM cold_cells) lets SQLite walk the (cold_cell_id, ts)
 * index cell by cell instead of scanning the table: readings has no index on ts alone,
 * and ingest should not pay for one. */
static const char batch_sql[] =
    "DELETE FROM readings WHERE id IN (SELECT id FROM readings"
    " WHERE cold_cell_id IN (SELECT id FROM cold_cells) AND ts < $1 LIMIT $2)";
/* PostgreSQL: readings.id has no index there, so rows go by their key (device_id, ts);
 * partition pruning keeps the scan to the months before the cutoff, which after
 * coldchain_drop_partitions_before are the cutoff's own month and the default partition
 * (docs/postgresql.md). */
static const char batch_sql_pg[] =
    "DELETE FROM readings WHERE (device_id, ts) IN (SELECT device_id, ts FROM readings"
    " WHERE ts < $1 LIMIT $2)";
/* Whole months before the cutoff: one DROP TABLE each instead of their rows' deletes.
 * Returns the partitions dropped. */
static const char drop_sql_pg[] = "SELECT coldchain_drop_partitions_before(CAST($1 AS bigint))";

/* Dead letters older than the cutoff, oldest first, over rejected_messages_received. */
static const char rejected_sql[] =
    "DELETE FROM rejected_messages WHERE id IN (SELECT id FROM rejected_messages"
    " WHERE received_at < $1 ORDER BY received_at LIMIT $2)";

/* One batch of sql ($1 cutoff, $2 batch) in a transaction of its own, under the pass lock
 * key (PostgreSQL: another process holding it makes *got 0 and deletes nothing). *n gets
 * the rows deleted. */
static int run_batch(struct cc_store *st, const char *sql, int64_t key, int64_t cutoff, int batch,
                     int *got, int64_t *n)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_store_begin(st);

    *n = 0;
    *got = 0;
    if (rc != CC_OK)
        return rc;
    rc = cc_jobs_pass_lock(st, key, got);
    if (rc == CC_OK && *got)
        rc = cc_stmt_prepare(st, sql, &stmt);
    if (rc == CC_OK && *got)
        rc = cc_stmt_bind_int64(stmt, 1, cutoff);
    if (rc == CC_OK && *got)
        rc = cc_stmt_bind_int64(stmt, 2, batch);
    if (rc == CC_OK && *got)
        rc = cc_stmt_step(stmt);
    if (rc == CC_OK && *got)
        *n = cc_stmt_changes(stmt);
    cc_stmt_release(stmt);
    if (rc != CC_OK) {
        cc_store_rollback(st);
        return rc == CC_ERR_NOMEM ? rc : CC_ERR_DB;
    }
    return cc_store_commit(st);
}

/* Runs sql in up to max_batches transactions of its own, until a batch deletes fewer
 * than batch rows. *total gets the rows deleted, *left 1 if the last batch was full. */
static int run_batches(struct cc_store *st, const char *sql, int64_t key, int64_t cutoff, int batch,
                       int max_batches, int64_t *total, int *left)
{
    int rc = CC_OK;

    *total = 0;
    *left = 1;
    for (int i = 0; i < max_batches && *left; i++) {
        int64_t n = 0;
        int got = 0;

        rc = run_batch(st, sql, key, cutoff, batch, &got, &n);
        if (rc != CC_OK)
            break;
        *total += n;
        *left = got && n == batch; /* not got: another process is trimming the same rows */
    }
    return rc;
}

/* PostgreSQL: drops the month partitions that end at or before cutoff, in a transaction
 * of its own under the retention lock. *dropped gets their number. */
static int drop_months(struct cc_store *st, int64_t cutoff, int *dropped)
{
    struct cc_stmt *stmt = NULL;
    int got = 0;
    int rc = cc_store_begin(st);

    *dropped = 0;
    if (rc != CC_OK)
        return rc;
    rc = cc_jobs_pass_lock(st, CC_JOBS_LOCK_RETENTION, &got);
    if (rc == CC_OK && got)
        rc = cc_stmt_prepare(st, drop_sql_pg, &stmt);
    if (rc == CC_OK && got)
        rc = cc_stmt_bind_int64(stmt, 1, cutoff);
    if (rc == CC_OK && got && (rc = cc_stmt_step(stmt)) == CC_ROW) {
        *dropped = (int)cc_stmt_column_int64(stmt, 0);
        rc = cc_stmt_step(stmt);
    }
    cc_stmt_release(stmt);
    if (rc != CC_OK) {
        cc_store_rollback(st);
        return rc == CC_ERR_NOMEM ? rc : CC_ERR_DB;
    }
    return cc_store_commit(st);
}

int cc_retention_run(struct cc_store *st, int64_t now_ms, int days, int batch, int max_batches,
                     int64_t *deleted, int *more)
{
    int64_t cutoff = now_ms - (int64_t)days * MS_PER_DAY;
    int64_t total = 0;
    int left = 1, dropped = 0;
    int pg = cc_store_dialect(st) == CC_DIALECT_PG;
    int rc = CC_OK;

    if (days < 1 || batch < 1 || max_batches < 1)
        return CC_ERR_VALIDATION;
    if (pg)
        rc = drop_months(st, cutoff, &dropped);
    if (dropped > 0)
        cc_log_info("retention_partitions", "dropped=%d days=%d", dropped, days);
    if (rc == CC_OK)
        rc = run_batches(st, pg ? batch_sql_pg : batch_sql, CC_JOBS_LOCK_RETENTION, cutoff, batch,
                         max_batches, &total, &left);
    if (total > 0)
        cc_log_info("retention", "deleted=%lld days=%d more=%d", (long long)total, days, left);
    if (deleted != NULL)
        *deleted = total;
    if (more != NULL)
        *more = rc == CC_OK && left;
    return rc;
}

int cc_retention_rejected_run(struct cc_store *st, int64_t now_ms, int days, int batch,
                              int max_batches, int64_t *deleted, int *more)
{
    int64_t total = 0;
    int left = 1;
    int rc;

    if (days < 1 || batch < 1 || max_batches < 1)
        return CC_ERR_VALIDATION;
    rc = run_batches(st, rejected_sql, CC_JOBS_LOCK_REJECTED, now_ms - (int64_t)days * MS_PER_DAY,
                     batch, max_batches, &total, &left);
    if (total > 0)
        cc_log_info("retention_rejected", "deleted=%lld days=%d more=%d", (long long)total, days,
                    left);
    if (deleted != NULL)
        *deleted = total;
    if (more != NULL)
        *more = rc == CC_OK && left;
    return rc;
}
