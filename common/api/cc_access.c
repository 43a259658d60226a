/* cc_access.c - the access rule of SPEC §5, for one object at a time. */
#include "cc_access.h"

#include <string.h>

#include "cc_rc.h"

/* One statement per entity: a row when the object exists and the principal ($1 role,
 * $2 user id) may see it; $3 is the object id, $4 (sql_customer) the customer role. */
static const char sql_user[] = "SELECT 1 FROM users u WHERE u.id = $3 AND ($1 = 4 OR u.id = $2)";
static const char sql_customer[] = "SELECT 1 FROM users u WHERE u.id = $3 AND "
                                   "u.role = $4 AND " CC_ACCESS_SQL_N("u.id");
static const char sql_location[] =
    "SELECT 1 FROM locations l WHERE l.id = $3 AND " CC_ACCESS_SQL_N("l.customer_id");
static const char sql_coldcell[] =
    "SELECT 1 FROM cold_cells c JOIN locations l ON "
    "l.id = c.location_id WHERE c.id = $3 AND " CC_ACCESS_SQL_N("l.customer_id");
static const char sql_device[] =
    "SELECT 1 FROM devices d JOIN cold_cells c ON "
    "c.id = d.cold_cell_id JOIN locations l ON "
    "l.id = c.location_id WHERE d.id = $3 AND " CC_ACCESS_SQL_N("l.customer_id");
static const char sql_alert[] =
    "SELECT 1 FROM alerts a JOIN cold_cells c ON "
    "c.id = a.cold_cell_id JOIN locations l ON "
    "l.id = c.location_id WHERE a.id = $3 AND " CC_ACCESS_SQL_N("l.customer_id");
/* $1 is bound but unused: notifications are their recipient's alone. It still appears,
 * because PostgreSQL must be able to type every parameter up to the highest. */
static const char sql_notification[] =
    "SELECT 1 FROM notifications n WHERE n.id = $3 AND n.user_id = $2 AND $1 >= 0";

int cc_access_bind_stmt(struct cc_stmt *s, const struct cc_principal *p)
{
    int rc = cc_stmt_bind_int64(s, 1, p->role);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 2, p->user_id);
    return rc;
}

int cc_access_check(struct cc_store *st, const struct cc_principal *p, int entity, int64_t id,
                    int mode)
{
    struct cc_stmt *s = NULL;
    const char *sql;
    int rc;

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
    rc = cc_stmt_prepare(st, sql, &s);
    if (rc == CC_OK)
        rc = cc_access_bind_stmt(s, p);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 3, id);
    if (rc == CC_OK && sql == sql_customer)
        rc = cc_stmt_bind_text(s, 4, cc_role_name(CC_ROLE_CUSTOMER));
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_ROW)
        rc = CC_OK;
    else if (rc == CC_OK)
        rc = CC_ERR_NOT_FOUND;
    cc_stmt_release(s);
    return rc;
}
