/* cc_access.c - the access rule of SPEC §5, for one object at a time. */
#include "cc_access.h"

#include <string.h>

#include "cc_audit.h"
#include "cc_db.h"
#include "cc_rc.h"
#include "cc_sql.h"

/* One statement per entity: a row when the object exists and the principal (?1 role,
 * ?2 user id) may see it; ?3 is the object id. */
static const char sql_user[] = "SELECT 1 FROM users u WHERE u.id = ?3 AND (?1 = 4 OR u.id = ?2)";
static const char sql_customer[] = "SELECT 1 FROM users u WHERE u.id = ?3 AND "
                                   "u.role = 'CUSTOMER' AND " CC_ACCESS_SQL("u.id");
static const char sql_location[] =
    "SELECT 1 FROM locations l WHERE l.id = ?3 AND " CC_ACCESS_SQL("l.customer_id");
static const char sql_coldcell[] =
    "SELECT 1 FROM cold_cells c JOIN locations l ON "
    "l.id = c.location_id WHERE c.id = ?3 AND " CC_ACCESS_SQL("l.customer_id");
static const char sql_device[] =
    "SELECT 1 FROM devices d JOIN cold_cells c ON "
    "c.id = d.cold_cell_id JOIN locations l ON "
    "l.id = c.location_id WHERE d.id = ?3 AND " CC_ACCESS_SQL("l.customer_id");
static const char sql_alert[] =
    "SELECT 1 FROM alerts a JOIN cold_cells c ON "
    "c.id = a.cold_cell_id JOIN locations l ON "
    "l.id = c.location_id WHERE a.id = ?3 AND " CC_ACCESS_SQL("l.customer_id");
/* ?1 is bound but unused: notifications are their recipient's alone. */
static const char sql_notification[] =
    "SELECT 1 FROM notifications n WHERE n.id = ?3 AND n.user_id = ?2 AND ?1 >= 0";

int cc_role_parse(const char *s)
{
    if (s == NULL)
        return CC_ROLE_NONE;
    if (strcmp(s, "CUSTOMER") == 0)
        return CC_ROLE_CUSTOMER;
    if (strcmp(s, "TECHNICIAN") == 0)
        return CC_ROLE_TECHNICIAN;
    if (strcmp(s, "ADMIN") == 0)
        return CC_ROLE_ADMIN;
    return CC_ROLE_NONE;
}

const char *cc_role_name(int role)
{
    switch (role) {
    case CC_ROLE_CUSTOMER:
        return "CUSTOMER";
    case CC_ROLE_TECHNICIAN:
        return "TECHNICIAN";
    case CC_ROLE_ADMIN:
        return "ADMIN";
    default:
        return "";
    }
}

int cc_access_bind_stmt(struct cc_stmt *s, const struct cc_principal *p)
{
    int rc = cc_stmt_bind_int64(s, 1, p->role);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 2, p->user_id);
    return rc;
}

int cc_access_bind(sqlite3_stmt *stmt, const struct cc_principal *p)
{
    int src = sqlite3_bind_int(stmt, 1, p->role);

    if (src == SQLITE_OK)
        src = sqlite3_bind_int64(stmt, 2, p->user_id);
    return src;
}

int cc_access_check(struct cc_store *st, const struct cc_principal *p, int entity, int64_t id,
                    int mode)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    const char *sql;
    int src, rc;

    (void)mode; /* one rule for reading and changing (SPEC §5) */
    if (p == NULL || p->user_id <= 0 || id <= 0 || cc_role_name(p->role)[0] == '\0')
        return CC_ERR_NOT_FOUND;
    switch (entity) {
    case CC_ENTITY_USER:
        sql = sql_user;
        break;
    case CC_ENTITY_CUSTOMER:
        sql = sql_customer;
        break;
    case CC_ENTITY_LOCATION:
        sql = sql_location;
        break;
    case CC_ENTITY_COLDCELL:
        sql = sql_coldcell;
        break;
    case CC_ENTITY_DEVICE:
        sql = sql_device;
        break;
    case CC_ENTITY_ALERT:
        sql = sql_alert;
        break;
    case CC_ENTITY_NOTIFICATION:
        sql = sql_notification;
        break;
    default:
        return CC_ERR_NOT_FOUND;
    }
    rc = cc_sql_prepare(db, sql, &stmt);
    if (rc != CC_OK)
        return rc;
    if (cc_access_bind(stmt, p) != SQLITE_OK || sqlite3_bind_int64(stmt, 3, id) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src == SQLITE_ROW)
        rc = CC_OK;
    else if (src == SQLITE_DONE)
        rc = CC_ERR_NOT_FOUND;
    else
        rc = cc_sql_step_rc(db, src, "access check");
out:
    cc_sql_release(stmt);
    return rc;
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
