/* cc_access_sqlite.c - the access rule on SQLite handles, for the modules that still
 * prepare their own SQLite statements (cc_access.h names them). Goes with the last. */
#include "cc_access.h"

#include "cc_audit.h"
#include "cc_db.h"
#include "cc_rc.h"
#include "cc_sql.h"

int cc_access_bind(sqlite3_stmt *stmt, const struct cc_principal *p)
{
    int src = sqlite3_bind_int(stmt, 1, p->role);

    if (src == SQLITE_OK)
        src = sqlite3_bind_int64(stmt, 2, p->user_id);
    return src;
}

struct scope {
    const struct cc_principal *p;
    int64_t filter; /* > 0: ?3 */
};

/* Binds the principal and the optional filter shared by a list and its count. */
static int bind_scope(sqlite3_stmt *stmt, const void *ctx)
{
    const struct scope *sc = ctx;

    if (cc_access_bind(stmt, sc->p) != SQLITE_OK ||
        (sc->filter > 0 && sqlite3_bind_int64(stmt, 3, sc->filter) != SQLITE_OK))
        return CC_ERR_DB;
    return CC_OK;
}

int cc_access_list(sqlite3 *db, const char *sql_list, const char *sql_count,
                   const struct cc_principal *p, int64_t filter, const struct cc_page *pg,
                   cJSON *(*rows)(sqlite3_stmt *), cJSON **out)
{
    const struct scope sc = {p, filter};

    return cc_sql_list_page(db, sql_list, sql_count, bind_scope, &sc, 4, pg, rows, out);
}

int cc_access_delete(struct cc_store *st, const struct cc_principal *p, int entity,
                     const char *audit_entity, int64_t id,
                     int (*load)(sqlite3 *db, int64_t id, cJSON **out), const char *sql_delete)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    cJSON *before = NULL;
    int rc;

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, entity, id, CC_ACCESS_WRITE);
    if (rc == CC_OK)
        rc = load(db, id, &before);
    if (rc == CC_OK)
        rc = cc_sql_prepare(db, sql_delete, &stmt);
    if (rc == CC_OK)
        rc = sqlite3_bind_int64(stmt, 1, id) == SQLITE_OK ? cc_sql_exec(db, stmt) : CC_ERR_DB;
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "delete", audit_entity, id, before, NULL);
    cc_sql_release(stmt);
    rc = cc_sql_end(db, rc);
    cJSON_Delete(before);
    return rc;
}
