/* cc_dbi_sqlite.c - cc_dbi.h on SQLite.
 *
 * SQLite numbers "$N" parameters by first appearance, not by N ("$2 ... $1" makes $2
 * parameter 1), so prepare reads each parameter's name once and keeps the map $N ->
 * index with the statement; binding by number then costs one array read. */
#include <stdlib.h>
#include <string.h>

#include "cc_db.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store_impl.h"

/* N of a parameter named "$N" or "?N"; 0 for any other name (":x", "@x", "?"). */
static int param_number(const char *name)
{
    char *end;
    long n;

    if (name == NULL || (name[0] != '$' && name[0] != '?') || name[1] < '1' || name[1] > '9')
        return 0;
    n = strtol(name + 1, &end, 10);
    if (*end != '\0' || n < 1 || n > INT32_MAX)
        return 0;
    return (int)n;
}

static int prepare_failed(const char *sql, const char *why)
{
    char head[CC_DBI_HEAD_LEN];

    cc_dbi_sql_head(sql, head, sizeof head);
    cc_log_error("db_prepare_failed", "%s: %s", head, why);
    return CC_ERR_DB;
}

int cc_dbi_lite_exec(struct cc_store *st, const char *sql)
{
    char head[CC_DBI_HEAD_LEN];
    int src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    int rc = cc_db_rc(src, sqlite3_extended_errcode(st->db));

    if (rc == CC_ERR_DB) {
        cc_dbi_sql_head(sql, head, sizeof head);
        cc_log_error("db_exec_failed", "%s: %s", head, sqlite3_errmsg(st->db));
    }
    return rc;
}

int cc_dbi_lite_prepare(struct cc_store *st, struct cc_stmt *s)
{
    /* PERSISTENT: a cached statement lives as long as the store, out of the lookaside. */
    unsigned flags = s->cached ? SQLITE_PREPARE_PERSISTENT : 0;
    int count;

    if (sqlite3_prepare_v3(st->db, s->sql, -1, flags, &s->lite, NULL) != SQLITE_OK)
        return prepare_failed(s->sql, sqlite3_errmsg(st->db));
    if (s->lite == NULL)
        return prepare_failed(s->sql, "no statement in the text");
    count = sqlite3_bind_parameter_count(s->lite);
    for (int i = 1; i <= count; i++) {
        int n = param_number(sqlite3_bind_parameter_name(s->lite, i));

        if (n > CC_STMT_PARAMS_MAX)
            return prepare_failed(s->sql, "a $N above CC_STMT_PARAMS_MAX");
        if (n > 0)
            s->sqlite_index[n] = (unsigned char)i;
    }
    return CC_OK;
}

void cc_dbi_lite_free(struct cc_stmt *s)
{
    sqlite3_finalize(s->lite);
    s->lite = NULL;
}

/* SQLite's index of $n, or 0 (logged) when the statement has no $n. */
static int index_of(struct cc_stmt *s, int n)
{
    char head[CC_DBI_HEAD_LEN];

    if (s->sqlite_index[n] != 0)
        return s->sqlite_index[n];
    cc_dbi_sql_head(s->sql, head, sizeof head);
    cc_log_error("db_bind_failed", "no parameter $%d in: %s", n, head);
    return 0;
}

static int bind_rc(int src)
{
    if (src == SQLITE_OK)
        return CC_OK;
    return src == SQLITE_NOMEM ? CC_ERR_NOMEM : src == SQLITE_TOOBIG ? CC_ERR_TOO_LARGE : CC_ERR_DB;
}

int cc_dbi_lite_bind_int64(struct cc_stmt *s, int n, int64_t v)
{
    int i = index_of(s, n);

    return i == 0 ? CC_ERR_DB : bind_rc(sqlite3_bind_int64(s->lite, i, v));
}

int cc_dbi_lite_bind_double(struct cc_stmt *s, int n, double v)
{
    int i = index_of(s, n);

    return i == 0 ? CC_ERR_DB : bind_rc(sqlite3_bind_double(s->lite, i, v));
}

int cc_dbi_lite_bind_text(struct cc_stmt *s, int n, const char *v, size_t len)
{
    int i = index_of(s, n);

    return i == 0 ? CC_ERR_DB
                  : bind_rc(sqlite3_bind_text(s->lite, i, v, (int)len, SQLITE_TRANSIENT));
}

int cc_dbi_lite_bind_null(struct cc_stmt *s, int n)
{
    int i = index_of(s, n);

    return i == 0 ? CC_ERR_DB : bind_rc(sqlite3_bind_null(s->lite, i));
}

int cc_dbi_lite_bind_blob(struct cc_stmt *s, int n, const void *p, size_t len)
{
    int i = index_of(s, n);

    return i == 0 ? CC_ERR_DB
                  : bind_rc(sqlite3_bind_blob(s->lite, i, p, (int)len, SQLITE_TRANSIENT));
}

int cc_dbi_lite_step(struct cc_stmt *s)
{
    sqlite3 *db = sqlite3_db_handle(s->lite);
    char head[CC_DBI_HEAD_LEN];
    int src, rc;

    /* The connection's last insert rowid is left alone by an upsert that updates and by
     * DO NOTHING (and restored after a trigger's inserts): from 0 it tells whether this
     * statement inserted. */
    if (s->track_insert && !sqlite3_stmt_busy(s->lite))
        sqlite3_set_last_insert_rowid(db, 0);
    src = sqlite3_step(s->lite);
    if (src == SQLITE_ROW)
        return CC_ROW;
    if (src == SQLITE_DONE) {
        /* sqlite3_changes is the connection's last write: a query changed nothing. */
        s->changes = sqlite3_stmt_readonly(s->lite) ? 0 : sqlite3_changes64(db);
        if (s->track_insert)
            s->inserted_id = sqlite3_last_insert_rowid(db);
        return CC_OK;
    }
    rc = cc_db_rc(src, sqlite3_extended_errcode(db));
    if (rc != CC_ERR_CONFLICT) {
        cc_dbi_sql_head(s->sql, head, sizeof head);
        cc_log_error("db_step_failed", "%s: %s", head, sqlite3_errmsg(db));
    }
    return rc;
}

int cc_dbi_lite_real_text(double v, char *buf, size_t cap)
{
    sqlite3_snprintf((int)cap, buf, "%!.15g", v);
    return CC_OK;
}

int cc_dbi_lite_is_null(struct cc_stmt *s, int col)
{
    return sqlite3_column_type(s->lite, col) == SQLITE_NULL;
}

int64_t cc_dbi_lite_int64(struct cc_stmt *s, int col)
{
    return sqlite3_column_int64(s->lite, col);
}

double cc_dbi_lite_double(struct cc_stmt *s, int col)
{
    return sqlite3_column_double(s->lite, col);
}

const char *cc_dbi_lite_text(struct cc_stmt *s, int col)
{
    return (const char *)sqlite3_column_text(s->lite, col);
}

const void *cc_dbi_lite_blob(struct cc_stmt *s, int col)
{
    return sqlite3_column_blob(s->lite, col);
}

size_t cc_dbi_lite_bytes(struct cc_stmt *s, int col)
{
    return (size_t)sqlite3_column_bytes(s->lite, col);
}

void cc_dbi_lite_reset(struct cc_stmt *s)
{
    sqlite3_reset(s->lite);
    sqlite3_clear_bindings(s->lite);
}
