/* cc_alerts_api.c - alerts and notifications for the API (see cc_alerts_api.h). The
 * JSON objects come from SQL (CC_ALERT_JSON_SQL, CC_NOTIFY_JSON_SQL), the same text the
 * notifications and MQTT messages carry. */
#include "cc_alerts_api.h"

#include <string.h>

#include "cc_alert_ops.h"
#include "cc_audit.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_http.h"
#include "cc_input.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "cc_time.h"

#define ALERT_FROM                                                                                 \
    " FROM alerts a JOIN cold_cells c ON c.id = a.cold_cell_id"                                    \
    " JOIN locations l ON l.id = c.location_id WHERE " CC_ACCESS_SQL(                              \
        "l.customer_id") " AND (?3 IS NULL OR a.status = ?3) AND (?4 IS NULL OR a.type = ?4)"      \
                         " AND (?5 IS NULL OR a.cold_cell_id = ?5)"

static const char sql_list[] =
    "SELECT " CC_ALERT_JSON_SQL ALERT_FROM " ORDER BY a.first_triggered_at DESC, a.id DESC"
    " LIMIT ?6 OFFSET ?7";
static const char sql_count[] = "SELECT count(*)" ALERT_FROM;
static const char sql_get[] = "SELECT " CC_ALERT_JSON_SQL " FROM alerts a WHERE a.id = ?1";
static const char sql_ack[] =
    "UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, ?2),"
    " acknowledged_by = CASE WHEN acknowledged_at IS NULL THEN ?3 ELSE acknowledged_by END"
    " WHERE id = ?1 AND status = 'ACTIVE'";
static const char sql_n_list[] = "SELECT " CC_NOTIFY_JSON_SQL " FROM notifications n"
                                 " WHERE n.user_id = ?1"
                                 " ORDER BY n.created_at DESC, n.id DESC LIMIT ?2 OFFSET ?3";
static const char sql_n_count[] = "SELECT count(*) FROM notifications WHERE user_id = ?1";
static const char sql_n_get[] = "SELECT " CC_NOTIFY_JSON_SQL " FROM notifications n"
                                " WHERE n.id = ?1";
static const char sql_n_read[] =
    "UPDATE notifications SET read_at = coalesce(read_at, ?2) WHERE id = ?1 AND user_id = ?3";

/* A row whose column 0 is JSON text, as a tree. */
static cJSON *json_row(sqlite3_stmt *s)
{
    const char *txt = (const char *)sqlite3_column_text(s, 0);

    return txt != NULL ? cJSON_Parse(txt) : NULL;
}

static int query_param(const char *qs, const char *name, char *out, size_t outlen, cJSON **err)
{
    int got = cc_http_query_param(qs, name, out, outlen);

    if (got < 0) {
        out[0] = '\0';
        *err = cc_error_new(CC_ERR_VALIDATION, "invalid query parameter");
        if (*err == NULL || cc_error_add_detail(*err, name, "invalid") != CC_OK)
            return CC_ERR_NOMEM;
        return CC_ERR_VALIDATION;
    }
    if (got == 0)
        out[0] = '\0';
    return CC_OK;
}

int cc_alerts_filter_parse(const char *qs, struct cc_alert_filter *f, cJSON **err)
{
    int rc;

    memset(f, 0, sizeof *f);
    if (qs == NULL)
        return CC_OK;
    rc = query_param(qs, "status", f->status, sizeof f->status, err);
    if (rc != CC_OK)
        return rc;
    if (f->status[0] != '\0' && strcmp(f->status, "ACTIVE") != 0 &&
        strcmp(f->status, "RESOLVED") != 0) {
        *err = cc_error_new(CC_ERR_VALIDATION, "status must be ACTIVE or RESOLVED");
        if (*err == NULL || cc_error_add_detail(*err, "status", "invalid") != CC_OK)
            return CC_ERR_NOMEM;
        return CC_ERR_VALIDATION;
    }
    rc = query_param(qs, "type", f->type, sizeof f->type, err);
    if (rc != CC_OK)
        return rc;
    if (f->type[0] != '\0' && cc_alert_type_parse(f->type) < 0) {
        *err = cc_error_new(CC_ERR_VALIDATION,
                            "type must be HIGH_TEMP, LOW_TEMP, POWER_LOSS or SENSOR_ERROR");
        if (*err == NULL || cc_error_add_detail(*err, "type", "invalid") != CC_OK)
            return CC_ERR_NOMEM;
        return CC_ERR_VALIDATION;
    }
    return cc_http_query_id(qs, "coldCellId", &f->cold_cell_id, err);
}

struct scope {
    const struct cc_principal *p;
    const struct cc_alert_filter *f;
};

static int bind_filter(sqlite3_stmt *stmt, const void *ctx)
{
    const struct cc_principal *p = ((const struct scope *)ctx)->p;
    const struct cc_alert_filter *f = ((const struct scope *)ctx)->f;

    if (cc_access_bind(stmt, p) != SQLITE_OK ||
        (f->status[0] ? sqlite3_bind_text(stmt, 3, f->status, -1, SQLITE_TRANSIENT)
                      : sqlite3_bind_null(stmt, 3)) != SQLITE_OK ||
        (f->type[0] ? sqlite3_bind_text(stmt, 4, f->type, -1, SQLITE_TRANSIENT)
                    : sqlite3_bind_null(stmt, 4)) != SQLITE_OK ||
        (f->cold_cell_id > 0 ? sqlite3_bind_int64(stmt, 5, f->cold_cell_id)
                             : sqlite3_bind_null(stmt, 5)) != SQLITE_OK)
        return CC_ERR_DB;
    return CC_OK;
}

int cc_alerts_list(struct cc_store *st, const struct cc_principal *p,
                   const struct cc_alert_filter *f, const struct cc_page *pg, cJSON **out)
{
    const struct scope sc = {p, f};

    return cc_sql_list_page(cc_store_db(st), sql_list, sql_count, bind_filter, &sc, 6, pg, json_row,
                            out);
}

/* Loads one object by id with a "SELECT <json> ... WHERE x.id = ?1" statement. */
static int load(sqlite3 *db, const char *sql, int64_t id, cJSON **out)
{
    return cc_sql_get(db, sql, id, json_row, out);
}

int cc_alerts_get(struct cc_store *st, const struct cc_principal *p, int64_t id, cJSON **out)
{
    int rc = cc_access_check(st, p, CC_ENTITY_ALERT, id, CC_ACCESS_READ);

    if (rc != CC_OK)
        return rc;
    return load(cc_store_db(st), sql_get, id, out);
}

/* The conflict error for an alert that is already resolved. */
static int already_resolved(cJSON **err)
{
    *err = cc_error_new(CC_ERR_CONFLICT, "alert is already resolved");
    return *err != NULL ? CC_ERR_CONFLICT : CC_ERR_NOMEM;
}

int cc_alerts_resolve(struct cc_store *st, const struct cc_principal *p, int64_t id,
                      const cJSON *body, cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    const char *note = NULL;
    cJSON *alert = NULL;
    int64_t now = cc_now_ms();
    int resolved = 0;
    int rc;

    if (body != NULL) {
        struct cc_input in;

        cc_input_init(&in, body);
        cc_input_text(&in, "note", CC_INPUT_NULLABLE, CC_NOTE_MAX, &note);
        rc = cc_input_finish(&in, err);
        if (rc != CC_OK)
            return rc;
    }
    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_ALERT, id, CC_ACCESS_WRITE);
    if (rc != CC_OK)
        goto end;
    rc = cc_alert_resolve(st, id, now, p->user_id, note, now, &resolved);
    if (rc != CC_OK)
        goto end;
    if (!resolved) {
        rc = already_resolved(err);
        goto end;
    }
    rc = load(db, sql_get, id, &alert);
    if (rc != CC_OK)
        goto end;
    rc = cc_audit_append(st, p->user_id, "resolve", "alert", id, NULL, alert);
end:
    rc = cc_sql_end(db, rc);
    if (rc != CC_OK) {
        cJSON_Delete(alert);
        return rc;
    }
    *out = alert;
    return CC_OK;
}

int cc_alerts_acknowledge(struct cc_store *st, const struct cc_principal *p, int64_t id,
                          cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    cJSON *alert = NULL;
    int rc = cc_db_begin(db);

    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_ALERT, id, CC_ACCESS_WRITE);
    if (rc != CC_OK)
        goto end;
    rc = cc_sql_prepare(db, sql_ack, &stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, cc_now_ms()) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, p->user_id) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    rc = cc_sql_exec(db, stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_changes(db) == 0) {
        rc = already_resolved(err); /* it exists (access check) but is not ACTIVE */
        goto end;
    }
    /* alerts/{coldCellId} from ingestd's outbox, at QoS 1 like the other alert events
     * (SPEC §3); a repeated acknowledge writes no second event. */
    rc = cc_notify_alert_acknowledged(st, id, cc_now_ms());
    if (rc != CC_OK)
        goto end;
    rc = load(db, sql_get, id, &alert);
    if (rc != CC_OK)
        goto end;
    rc = cc_audit_append(st, p->user_id, "acknowledge", "alert", id, NULL, alert);
end:
    cc_sql_release(stmt);
    rc = cc_sql_end(db, rc);
    if (rc != CC_OK) {
        cJSON_Delete(alert);
        return rc;
    }
    *out = alert;
    return CC_OK;
}

static int bind_user(sqlite3_stmt *stmt, const void *ctx)
{
    return sqlite3_bind_int64(stmt, 1, *(const int64_t *)ctx) == SQLITE_OK ? CC_OK : CC_ERR_DB;
}

int cc_notifications_list(struct cc_store *st, const struct cc_principal *p,
                          const struct cc_page *pg, cJSON **out)
{
    return cc_sql_list_page(cc_store_db(st), sql_n_list, sql_n_count, bind_user, &p->user_id, 2, pg,
                            json_row, out);
}

int cc_notifications_read(struct cc_store *st, const struct cc_principal *p, int64_t id,
                          cJSON **out)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    cJSON *n = NULL;
    int rc = cc_db_begin(db);

    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_NOTIFICATION, id, CC_ACCESS_WRITE);
    if (rc != CC_OK)
        goto end;
    rc = cc_sql_prepare(db, sql_n_read, &stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, cc_now_ms()) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, p->user_id) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    rc = cc_sql_exec(db, stmt);
    if (rc != CC_OK)
        goto end;
    rc = load(db, sql_n_get, id, &n);
    if (rc != CC_OK)
        goto end;
    rc = cc_audit_append(st, p->user_id, "read", "notification", id, NULL, NULL);
end:
    cc_sql_release(stmt);
    rc = cc_sql_end(db, rc);
    if (rc != CC_OK) {
        cJSON_Delete(n);
        return rc;
    }
    *out = n;
    return CC_OK;
}
