/* cc_store.c - a store's life and its transactions, for both dialects (cc_store.h,
 * cc_dbi.h): open by path or URL, close, the statement cache's SQLite handles for the
 * modules not yet on cc_dbi.h, the gate, BEGIN / COMMIT / ROLLBACK. */
#include "cc_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cc_db.h"
#include "cc_gate.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_sql.h"
#include "cc_store_impl.h"
#include "cc_time.h"
#include "cc_store_rollup.h"
#include "cc_walckpt.h"

_Static_assert((int)CC_STORE_READONLY == (int)CC_DB_READONLY &&
                   (int)CC_STORE_MIGRATE == (int)CC_DB_MIGRATE &&
                   (int)CC_STORE_CREATE == (int)CC_DB_CREATE,
               "cc_store_open passes its flags on to cc_db_open");
#define DB_FLAGS (CC_STORE_READONLY | CC_STORE_MIGRATE | CC_STORE_CREATE)

/* 1 when path is a PostgreSQL connection URL (libpq takes it as it is). */
static int is_pg_url(const char *path)
{
    return strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0;
}

int cc_store_open(const char *path, int flags, struct cc_store **out)
{
    struct cc_store *st = NULL;
    int rc;

    st = calloc(1, sizeof *st);
    if (st == NULL)
        return CC_ERR_NOMEM;
    if (is_pg_url(path)) {
        st->dialect = CC_DIALECT_PG;
        if ((flags & CC_STORE_READONLY) && (flags & CC_STORE_MIGRATE)) {
            cc_log_error("db_open_failed", "a read-only connection cannot migrate");
            rc = CC_ERR_DB;
            goto fail;
        }
        st->pg_readonly = (flags & CC_STORE_READONLY) != 0;
        rc = cc_dbi_pg_open(path, flags, &st->pg);
        if (rc == CC_OK && (flags & CC_STORE_MIGRATE))
            rc = cc_store_pg_migrate(st);
        if (rc == CC_OK && (flags & CC_STORE_MIGRATE))
            rc = cc_store_maintain(st, cc_now_ms());
        if (rc != CC_OK)
            goto fail;
    } else {
        st->dialect = CC_DIALECT_SQLITE;
        rc = cc_db_open(path, flags & DB_FLAGS, &st->db);
        if (rc != CC_OK)
            goto fail;
        if ((flags & CC_STORE_POOLED) && (rc = cc_sql_cache_new(&st->sql_cache)) != CC_OK)
            goto fail;
    }
    *out = st;
    return CC_OK;

fail:
    cc_dbi_cache_free(st);
    cc_dbi_pg_close(st->pg);
    cc_db_close(st->db);
    free(st);
    return rc;
}

void cc_store_close(struct cc_store *st)
{
    if (st == NULL)
        return;
    cc_sql_cache_free(st->sql_cache); /* its statements before their connection */
    cc_dbi_cache_free(st);
    cc_rollup_batch_free(st->rollups);
    if (st->attachment_free != NULL)
        st->attachment_free(st->attachment);
    if (st->dialect == CC_DIALECT_PG)
        cc_dbi_pg_close(st->pg);
    else
        cc_db_close(st->db);
    free(st);
}

sqlite3 *cc_store_db(struct cc_store *st)
{
    return st->db;
}

void cc_store_tune_process(int heap_limit_mib)
{
    cc_db_tune_process(heap_limit_mib);
}

void cc_store_memory(int64_t *used, int64_t *peak)
{
    cc_db_memory(used, peak);
}

int cc_store_set_cache_kib(struct cc_store *st, int kib)
{
    char sql[48];

    if (kib < 1)
        return CC_ERR_CONFIG; /* 0 or less would read as pages, or not parse */
    if (st->dialect == CC_DIALECT_PG)
        return CC_OK; /* the server's shared_buffers, not ours */
    snprintf(sql, sizeof sql, "PRAGMA cache_size=-%d", kib); /* negative: KiB, not pages */
    return cc_db_exec(st->db, sql);
}

int cc_store_cache_kib(struct cc_store *st, int *kib)
{
    int v, page;
    int rc;

    if (st->dialect == CC_DIALECT_PG) {
        *kib = 0;
        return CC_OK;
    }
    rc = cc_db_pragma_int(st->db, "PRAGMA cache_size", &v);
    if (rc == CC_OK && v > 0) { /* pages, not KiB */
        rc = cc_db_pragma_int(st->db, "PRAGMA page_size", &page);
        v = -(int)((int64_t)v * page / 1024);
    }
    if (rc == CC_OK)
        *kib = -v;
    return rc;
}

int cc_store_schema_version(struct cc_store *st, int *out)
{
    if (st->dialect == CC_DIALECT_PG)
        return cc_store_pg_schema_version(st, out);
    return cc_db_user_version(st->db, out);
}

int cc_store_schema_latest(const struct cc_store *st)
{
    if (st->dialect == CC_DIALECT_PG)
        return cc_store_pg_schema_latest();
    return cc_db_latest_version();
}

int cc_store_maintain(struct cc_store *st, int64_t now_ms)
{
    /* SQLite: one file, nothing to prepare ahead (its upkeep is the WAL checkpointer). */
    if (st->dialect == CC_DIALECT_PG) {
        int rc = cc_store_pg_partitions(st, now_ms);
        int rc_analyze = cc_store_pg_analyze_reference(st, now_ms);

        return rc != CC_OK ? rc : rc_analyze;
    }
    return CC_OK;
}

void cc_store_thread_enter(struct cc_store *st)
{
    if (st->sql_cache != NULL)
        cc_sql_cache_use(st->sql_cache);
}

void cc_store_thread_leave(struct cc_store *st)
{
    if (st->sql_cache != NULL)
        cc_sql_cache_use(NULL);
}

int cc_store_read_begin(struct cc_store *st)
{
    /* One snapshot for every query until the end, as SQLite's read transaction gives. On
     * PostgreSQL the BEGIN goes out with the first statement (cc_dbi_pg_read_begin). */
    if (st->dialect == CC_DIALECT_PG)
        return cc_dbi_ready(st) == CC_OK ? cc_dbi_pg_read_begin(st) : CC_ERR_DB;
    return cc_sql_read_begin(st->db);
}

void cc_store_read_end(struct cc_store *st)
{
    if (st->dialect == CC_DIALECT_SQLITE) {
        cc_sql_read_end(st->db);
        return;
    }
    if (cc_dbi_pg_in_transaction(st) && cc_dbi_pg_commit(st) != CC_OK)
        cc_dbi_pg_exec(st, "ROLLBACK");
    st->pg_read_open = 0;
}

int cc_store_check(struct cc_store *st)
{
    return cc_dbi_ready(st);
}

int cc_store_reconnect(struct cc_store *st)
{
    return cc_dbi_reopen(st, 1);
}

void cc_store_retry_mark(struct cc_store *st)
{
    st->pg_lost = 0;
    st->pg_wrote = 0;
}

int cc_store_retry_safe(struct cc_store *st)
{
    if (st->dialect != CC_DIALECT_PG || st->pg_wrote)
        return 0;
    return st->pg_lost || cc_dbi_pg_lost(st);
}

int cc_store_in_transaction(struct cc_store *st)
{
    if (st->dialect == CC_DIALECT_PG)
        return cc_dbi_pg_in_transaction(st);
    return !sqlite3_get_autocommit(st->db);
}

uint64_t cc_store_tx_id(struct cc_store *st)
{
    /* in_tx alone is not enough: a COMMIT or a reset connection behind the store's back
     * ends the transaction, and with it every row lock it held. */
    return st->in_tx && cc_store_in_transaction(st) ? st->tx_seq : 0;
}

void cc_store_attach_checkpointer(struct cc_store *st, struct cc_walckpt *ckpt)
{
    if (st->dialect == CC_DIALECT_SQLITE)
        cc_walckpt_attach(ckpt, st->db);
}

int cc_store_stmt(struct cc_store *st, const char *sql, sqlite3_stmt **out)
{
    struct cc_stmt *s = NULL;
    int rc;

    if (st->dialect != CC_DIALECT_SQLITE) {
        cc_log_error("db_not_supported", "cc_store_stmt lends SQLite statements only");
        return CC_ERR_INTERNAL;
    }
    rc = cc_stmt_prepare(st, sql, &s);
    if (rc != CC_OK)
        return rc;
    if (!s->cached) {
        /* cc_store_stmt_done gets the SQLite handle only and could not free a transient:
         * past the cache this path fails as it always did. */
        cc_stmt_release(s);
        cc_log_error("db_prepare_failed", "statement cache full (%d)", CC_STMT_CACHE_MAX);
        return CC_ERR_DB;
    }
    s->lent = 0; /* given back by cc_store_stmt_done, which cannot find s */
    *out = s->lite;
    return CC_OK;
}

void cc_store_stmt_done(sqlite3_stmt *stmt)
{
    if (stmt != NULL) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    }
}

int cc_store_stamp(struct cc_store *st, struct cc_store_stamp *out)
{
    static const char sql[] = "PRAGMA data_version";
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (st->dialect != CC_DIALECT_SQLITE || cc_store_tx_id(st) == 0)
        return CC_ERR_INTERNAL;
    out->rollbacks = st->rollbacks;
    if (st->stamp_tx == st->tx_seq) {
        /* Read in this transaction already: its write lock lets no one commit since. */
        out->data_version = st->stamp_data_version;
        return CC_OK;
    }
    rc = cc_store_stmt(st, sql, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        out->data_version = sqlite3_column_int64(stmt, 0);
        st->stamp_data_version = out->data_version;
        st->stamp_tx = st->tx_seq;
    } else {
        cc_log_error("db_step_failed", "%s: %s", sql, sqlite3_errmsg(st->db));
        rc = CC_ERR_DB;
    }
    cc_store_stmt_done(stmt);
    return rc;
}

void cc_store_set_attachment(struct cc_store *st, void *obj, void (*free_fn)(void *))
{
    if (st->attachment_free != NULL)
        st->attachment_free(st->attachment);
    st->attachment = obj;
    st->attachment_free = free_fn;
}

void *cc_store_attachment(struct cc_store *st)
{
    return st->attachment;
}

void cc_store_set_gate(struct cc_store *st, struct cc_gate *gate)
{
    st->gate = gate;
}

static void gate_leave(struct cc_store *st)
{
    if (st->in_gate) {
        st->in_gate = 0;
        cc_gate_leave(st->gate);
    }
}

static int tx_begin(struct cc_store *st)
{
    /* SQLite: BEGIN IMMEDIATE takes the write lock now; PostgreSQL locks rows as it goes. */
    if (st->dialect == CC_DIALECT_PG)
        return cc_dbi_ready(st) == CC_OK ? cc_dbi_pg_exec(st, "BEGIN") : CC_ERR_DB;
    return cc_db_begin(st->db);
}

static int tx_commit(struct cc_store *st)
{
    st->pg_read_open = 0;
    if (st->dialect == CC_DIALECT_PG)
        return cc_dbi_pg_commit(st);
    return cc_db_commit(st->db);
}

static void tx_rollback(struct cc_store *st)
{
    st->pg_read_open = 0;
    if (st->dialect == CC_DIALECT_PG) {
        if (cc_dbi_pg_in_transaction(st))
            cc_dbi_pg_exec(st, "ROLLBACK");
        return;
    }
    cc_db_rollback(st->db);
}

int cc_store_begin(struct cc_store *st)
{
    int rc;

    if (st->in_tx)
        st->rollbacks++; /* the last one never came to commit or rollback: count it lost */
    st->in_tx = 0;       /* so that a connection lost with it may be opened again */
    st->pg_read_open = 0;
    if (st->gate != NULL && !st->in_gate) {
        cc_gate_enter(st->gate);
        st->in_gate = 1;
    }
    rc = tx_begin(st);
    if (rc != CC_OK)
        gate_leave(st);
    st->in_tx = rc == CC_OK;
    if (rc == CC_OK)
        st->tx_seq++;
    if (st->rollups != NULL)
        cc_rollup_batch_clear(st->rollups); /* of a transaction ended behind our back */
    cc_stats_drop(st);
    return rc;
}

int cc_store_commit(struct cc_store *st)
{
    /* PostgreSQL's rollups are written by each readings insert call (cc_store_pg.c):
     * st->rollups stays NULL there, and the SQLite batch must never run on it. */
    int rc = st->in_tx && st->rollups != NULL && st->dialect == CC_DIALECT_SQLITE
                 ? cc_rollup_batch_flush(st, st->rollups)
                 : CC_OK;

    /* The counts of the transaction (cc_stats.h), written in it; dropped whatever happens. */
    if (rc == CC_OK && st->in_tx)
        rc = cc_stats_flush(st);
    cc_stats_drop(st);
    st->in_tx = 0;
    if (rc == CC_OK)
        rc = tx_commit(st);

    /* A failed COMMIT may leave the transaction open: end it here, so the gate is
     * never held past this call whatever the caller does next. */
    if (rc != CC_OK) {
        st->rollbacks++;
        tx_rollback(st);
    }
    gate_leave(st);
    return rc;
}

int cc_store_sync_committed(struct cc_store *st)
{
    const char *path;
    char wal[4096];
    int fd, rc = CC_OK;

    if (st->dialect != CC_DIALECT_SQLITE)
        return CC_OK;
    path = sqlite3_db_filename(st->db, "main");
    if (path == NULL || path[0] == '\0')
        return CC_OK; /* an in-memory database: nothing on disk to sync */
    if ((size_t)snprintf(wal, sizeof wal, "%s-wal", path) >= sizeof wal)
        return CC_ERR_IO;
    /* fdatasync flushes the file's pages whoever wrote them, so SQLite's own descriptor
     * need not be borrowed. No WAL file: every commit is in the database file, which
     * SQLite synced when its checkpoint finished. */
    fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? CC_OK : CC_ERR_IO;
    if (fdatasync(fd) != 0) {
        cc_log_error("wal_sync_failed", "%s: %s", wal, strerror(errno));
        rc = CC_ERR_IO;
    }
    close(fd);
    return rc;
}

void cc_store_rollback(struct cc_store *st)
{
    if (st->rollups != NULL)
        cc_rollup_batch_clear(st->rollups);
    cc_stats_drop(st);
    st->rollbacks++;
    st->in_tx = 0;
    tx_rollback(st);
    gate_leave(st);
}
