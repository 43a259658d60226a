/* cc_retention.c - raw readings and dead letters retention in small batches, see
 * cc_retention.h. */
#include "cc_retention.h"

#include "cc_db.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_sql.h"

#define MS_PER_DAY 86400000LL

/* One batch. The IN (SELECT id FROM cold_cells) lets SQLite walk the (cold_cell_id, ts)
 * index cell by cell instead of scanning the table: readings has no index on ts alone,
 * and ingest should not pay for one. */
static const char batch_sql[] =
    "DELETE FROM readings WHERE id IN (SELECT id FROM readings"
    " WHERE cold_cell_id IN (SELECT id FROM cold_cells) AND ts < ?1 LIMIT ?2)";

/* Dead letters older than the cutoff, oldest first, over rejected_messages_received. */
static const char rejected_sql[] =
    "DELETE FROM rejected_messages WHERE id IN (SELECT id FROM rejected_messages"
    " WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)";

/* Runs sql (?1 cutoff, ?2 batch) in up to max_batches transactions of its own, until a
 * batch deletes fewer than batch rows. *total gets the rows deleted, *left 1 if the
 * last batch was full. */
static int run_batches(struct cc_store *st, const char *sql, int64_t cutoff, int batch,
                       int max_batches, int64_t *total, int *left)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    int rc = CC_OK;

    *total = 0;
    *left = 1;
    for (int i = 0; i < max_batches && *left; i++) {
        int n;

        rc = cc_store_begin(st);
        if (rc != CC_OK)
            break;
        rc = cc_sql_prepare(db, sql, &stmt);
        if (rc == CC_OK && (sqlite3_bind_int64(stmt, 1, cutoff) != SQLITE_OK ||
                            sqlite3_bind_int(stmt, 2, batch) != SQLITE_OK))
            rc = CC_ERR_DB;
        if (rc == CC_OK)
            rc = cc_sql_exec(db, stmt);
        n = rc == CC_OK ? sqlite3_changes(db) : 0;
        cc_sql_release(stmt);
        stmt = NULL;
        if (rc != CC_OK) {
            cc_store_rollback(st);
            break;
        }
        rc = cc_store_commit(st);
        if (rc != CC_OK) {
            cc_store_rollback(st);
            break;
        }
        *total += n;
        *left = n == batch;
    }
    return rc;
}

int cc_retention_run(struct cc_store *st, int64_t now_ms, int days, int batch, int max_batches,
                     int64_t *deleted, int *more)
{
    int64_t total = 0;
    int left = 1;
    int rc;

    if (days < 1 || batch < 1 || max_batches < 1)
        return CC_ERR_VALIDATION;
    rc = run_batches(st, batch_sql, now_ms - (int64_t)days * MS_PER_DAY, batch, max_batches, &total,
                     &left);
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
    rc = run_batches(st, rejected_sql, now_ms - (int64_t)days * MS_PER_DAY, batch, max_batches,
                     &total, &left);
    if (total > 0)
        cc_log_info("retention_rejected", "deleted=%lld days=%d more=%d", (long long)total, days,
                    left);
    if (deleted != NULL)
        *deleted = total;
    if (more != NULL)
        *more = rc == CC_OK && left;
    return rc;
}
