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

void cc_sql_cache_enable(void)
{
    thread_cache.on = 1;
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

int cc_sql_bind_text_or_null(sqlite3_stmt *stmt, int idx, const char *s)
{
    if (s == NULL)
        return sqlite3_bind_null(stmt, idx);
    return sqlite3_bind_text(stmt, idx, s, -1, SQLITE_TRANSIENT);
}

static int add_or_null(cJSON *obj, const char *name, cJSON *item)
{
    if (item == NULL)
        return CC_ERR_NOMEM;
    if (!cJSON_AddItemToObject(obj, name, item)) {
        cJSON_Delete(item);
        return CC_ERR_NOMEM;
    }
    return CC_OK;
}

int cc_sql_json_int(cJSON *obj, const char *name, sqlite3_stmt *stmt, int col)
{
    if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
        return add_or_null(obj, name, cJSON_CreateNull());
    return add_or_null(obj, name, cJSON_CreateNumber((double)sqlite3_column_int64(stmt, col)));
}

int cc_sql_json_num(cJSON *obj, const char *name, sqlite3_stmt *stmt, int col)
{
    if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
        return add_or_null(obj, name, cJSON_CreateNull());
    return add_or_null(obj, name, cJSON_CreateNumber(sqlite3_column_double(stmt, col)));
}

int cc_sql_json_text(cJSON *obj, const char *name, sqlite3_stmt *stmt, int col)
{
    const unsigned char *s = sqlite3_column_text(stmt, col);

    if (s == NULL)
        return add_or_null(obj, name, cJSON_CreateNull());
    return add_or_null(obj, name, cJSON_CreateString((const char *)s));
}

int cc_sql_json_bool(cJSON *obj, const char *name, sqlite3_stmt *stmt, int col)
{
    if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
        return add_or_null(obj, name, cJSON_CreateNull());
    return add_or_null(obj, name, cJSON_CreateBool(sqlite3_column_int64(stmt, col) != 0));
}

int cc_sql_json_time(cJSON *obj, const char *name, sqlite3_stmt *stmt, int col)
{
    char buf[CC_ISO8601_LEN];

    if (sqlite3_column_type(stmt, col) == SQLITE_NULL ||
        cc_time_format_iso8601(sqlite3_column_int64(stmt, col), buf, sizeof buf) != CC_OK)
        return add_or_null(obj, name, cJSON_CreateNull());
    return add_or_null(obj, name, cJSON_CreateString(buf));
}

int cc_sql_collect(sqlite3 *db, sqlite3_stmt *stmt, cc_sql_row_fn row_fn, cJSON **items)
{
    cJSON *arr = cJSON_CreateArray();
    int src, rc = CC_OK;

    if (arr == NULL)
        return CC_ERR_NOMEM;
    while ((src = sqlite3_step(stmt)) == SQLITE_ROW) {
        cJSON *o = row_fn(stmt);

        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            rc = CC_ERR_NOMEM;
            goto fail;
        }
    }
    if (src != SQLITE_DONE) {
        rc = cc_sql_step_rc(db, src, sqlite3_sql(stmt));
        goto fail;
    }
    *items = arr;
    return CC_OK;
fail:
    cJSON_Delete(arr);
    return rc;
}

int cc_sql_one(sqlite3 *db, sqlite3_stmt *stmt, cc_sql_row_fn row_fn, cJSON **out)
{
    cJSON *o;
    int src = sqlite3_step(stmt);

    if (src == SQLITE_DONE)
        return CC_ERR_NOT_FOUND;
    if (src != SQLITE_ROW)
        return cc_sql_step_rc(db, src, sqlite3_sql(stmt));
    o = row_fn(stmt);
    if (o == NULL)
        return CC_ERR_NOMEM;
    *out = o;
    return CC_OK;
}

int cc_sql_int64(sqlite3 *db, sqlite3_stmt *stmt, int64_t *out)
{
    int src = sqlite3_step(stmt);

    if (src == SQLITE_DONE)
        return CC_ERR_NOT_FOUND;
    if (src != SQLITE_ROW)
        return cc_sql_step_rc(db, src, sqlite3_sql(stmt));
    *out = sqlite3_column_int64(stmt, 0);
    return CC_OK;
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

int cc_sql_end(sqlite3 *db, int rc)
{
    if (rc == CC_OK)
        return cc_db_commit(db) == CC_OK ? CC_OK : CC_ERR_DB;
    cc_db_rollback(db);
    return rc;
}

cJSON *cc_sql_list_new(cJSON *items, int64_t total)
{
    cJSON *root = NULL;

    if (items == NULL)
        return NULL;
    root = cJSON_CreateObject();
    if (root == NULL)
        goto fail;
    if (!cJSON_AddItemToObject(root, "items", items))
        goto fail;
    items = NULL;
    if (cJSON_AddNumberToObject(root, "total", (double)total) == NULL)
        goto fail;
    return root;
fail:
    cJSON_Delete(items);
    cJSON_Delete(root);
    return NULL;
}

/* The answer from a bound list statement and its count statement. rc is the caller's
 * status so far: when it is not CC_OK nothing runs and rc is returned. Both statements
 * are released on every path (either may be NULL). */
static int page(sqlite3 *db, int rc, sqlite3_stmt *list, sqlite3_stmt *count, cc_sql_row_fn row_fn,
                cJSON **out)
{
    cJSON *items = NULL, *page;
    int64_t total = 0;

    if (rc == CC_OK)
        rc = cc_sql_collect(db, list, row_fn, &items);
    if (rc == CC_OK)
        rc = cc_sql_int64(db, count, &total);
    if (rc == CC_OK) {
        page = cc_sql_list_new(items, total);
        items = NULL;
        if (page == NULL)
            rc = CC_ERR_NOMEM;
        else
            *out = page;
    }
    cJSON_Delete(items);
    cc_sql_release(list);
    cc_sql_release(count);
    return rc;
}

int cc_sql_list_page(sqlite3 *db, const char *sql_list, const char *sql_count, cc_sql_bind_fn bind,
                     const void *ctx, int window, const struct cc_page *pg, cc_sql_row_fn row_fn,
                     cJSON **out)
{
    sqlite3_stmt *list = NULL, *count = NULL;
    int rc = cc_sql_prepare(db, sql_list, &list);

    if (rc == CC_OK)
        rc = cc_sql_prepare(db, sql_count, &count);
    if (rc == CC_OK)
        rc = bind(list, ctx);
    if (rc == CC_OK && (sqlite3_bind_int64(list, window, pg->limit) != SQLITE_OK ||
                        sqlite3_bind_int64(list, window + 1, pg->offset) != SQLITE_OK))
        rc = CC_ERR_DB;
    if (rc == CC_OK)
        rc = bind(count, ctx);
    return page(db, rc, list, count, row_fn, out);
}

int cc_sql_get(sqlite3 *db, const char *sql, int64_t id, cc_sql_row_fn row_fn, cJSON **out)
{
    sqlite3_stmt *stmt = NULL;
    int rc = cc_sql_prepare(db, sql, &stmt);

    if (rc == CC_OK)
        rc = sqlite3_bind_int64(stmt, 1, id) == SQLITE_OK ? cc_sql_one(db, stmt, row_fn, out)
                                                          : CC_ERR_DB;
    cc_sql_release(stmt);
    return rc;
}
