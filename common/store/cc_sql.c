/* cc_sql.c - lent prepared statements with an optional per-thread cache, row helpers. */
#include "cc_sql.h"

#include <stddef.h>
#include <stdlib.h>

#include "cc_db.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"

struct cached {
    sqlite3 *db;
    const char *sql; /* address of the literal: the key */
    sqlite3_stmt *stmt;
};

struct cc_sql_cache {
    int on;
    int n;
    struct cached e[CC_SQL_CACHE_MAX];
};

/* The thread's own cache, and the one in use: the thread's, or one installed with
 * cc_sql_cache_use for a connection that moves between threads. */
static _Thread_local struct cc_sql_cache thread_cache;
static _Thread_local struct cc_sql_cache *in_use;

static struct cc_sql_cache *current(void)
{
    return in_use != NULL ? in_use : &thread_cache;
}

void cc_sql_cache_clear(sqlite3 *db)
{
    struct cc_sql_cache *c = current();
    int keep = 0;

    for (int i = 0; i < c->n; i++) {
        if (db == NULL || c->e[i].db == db)
            sqlite3_finalize(c->e[i].stmt);
        else
            c->e[keep++] = c->e[i];
    }
    c->n = keep;
}

int cc_sql_cache_new(struct cc_sql_cache **out)
{
    struct cc_sql_cache *c = calloc(1, sizeof *c);

    if (c == NULL)
        return CC_ERR_NOMEM;
    c->on = 1;
    *out = c;
    return CC_OK;
}

void cc_sql_cache_free(struct cc_sql_cache *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->n; i++)
        sqlite3_finalize(c->e[i].stmt);
    free(c);
}

void cc_sql_cache_use(struct cc_sql_cache *c)
{
    in_use = c;
}

int cc_sql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    struct cc_sql_cache *c = current();
    sqlite3_stmt *stmt = NULL;
    unsigned flags = 0;

    if (c->on) {
        for (int i = 0; i < c->n; i++) {
            if (c->e[i].sql == sql && c->e[i].db == db) {
                *out = c->e[i].stmt;
                return CC_OK;
            }
        }
        flags = SQLITE_PREPARE_PERSISTENT;
    }
    if (sqlite3_prepare_v3(db, sql, -1, flags, &stmt, NULL) != SQLITE_OK) {
        cc_log_error("db_prepare_failed", "%s: %s", sql, sqlite3_errmsg(db));
        sqlite3_finalize(stmt);
        return CC_ERR_DB;
    }
    if (c->on && c->n < CC_SQL_CACHE_MAX) {
        c->e[c->n].db = db;
        c->e[c->n].sql = sql;
        c->e[c->n].stmt = stmt;
        c->n++;
    }
    *out = stmt;
    return CC_OK;
}

void cc_sql_release(sqlite3_stmt *stmt)
{
    struct cc_sql_cache *c = current();

    if (stmt == NULL)
        return;
    for (int i = 0; i < c->n; i++) {
        if (c->e[i].stmt == stmt) {
            sqlite3_reset(stmt);
            sqlite3_clear_bindings(stmt);
            return;
        }
    }
    sqlite3_finalize(stmt);
}

int cc_sql_step_rc(sqlite3 *db, int src, const char *what)
{
    int rc = cc_db_rc(src, sqlite3_extended_errcode(db));

    if (rc != CC_ERR_CONFLICT)
        cc_log_error("db_step_failed", "%s: %s", what, sqlite3_errmsg(db));
    return rc;
}

int cc_sql_exec(sqlite3 *db, sqlite3_stmt *stmt)
{
    int src = sqlite3_step(stmt);

    if (src == SQLITE_DONE || src == SQLITE_ROW)
        return CC_OK;
    return cc_sql_step_rc(db, src, sqlite3_sql(stmt));
}

static const char sql_read_begin[] = "BEGIN";
static const char sql_read_end[] = "COMMIT";

int cc_sql_read_begin(sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;
    int rc = cc_sql_prepare(db, sql_read_begin, &stmt);

    if (rc == CC_OK)
        rc = cc_sql_exec(db, stmt);
    cc_sql_release(stmt);
    return rc;
}

void cc_sql_read_end(sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;

    if (sqlite3_get_autocommit(db))
        return;
    if (cc_sql_prepare(db, sql_read_end, &stmt) == CC_OK && cc_sql_exec(db, stmt) != CC_OK)
        cc_db_rollback(db);
    cc_sql_release(stmt);
}
