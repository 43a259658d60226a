/* cc_notify.c - the outbox writers: one notifications row per event and recipient (one
 * INSERT ... SELECT over the recipients) and one alert_events row per alert event. */
#include "cc_notify.h"

#include <stdlib.h>
#include <string.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_role.h"

/* The alert object is built once per alert change (sql_alert_json: a json_object with
 * five timestamps formatted) and bound as text to the event row and to every
 * recipient's notification, instead of once per row. */
static const char sql_alert_json[] =
    "SELECT a.cold_cell_id, " CC_ALERT_JSON_SQL " FROM alerts a WHERE a.id = ?1";

/* INSERT ... SELECT over the alert, its cell, location and the recipients u; ?1 alert
 * id, ?2 kind, ?3 title prefix, ?4 now, ?5 the alert object (JSON text), ?6 the admin role
 * (in the recipients of the statements that have a ?6). Disabled users get nothing. */
#define NOTIFY_INSERT(recipients)                                                                  \
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, status,"                \
    " next_attempt_at, created_at)"                                                                \
    " SELECT u.id, a.id, ?2, 'inbox', json_object("                                                \
    " 'title', ?3 || ': ' || a.type || ' in ' || c.name || ' (' || l.name || ')',"                 \
    " 'message', a.message, 'coldCellName', c.name, 'locationName', l.name,"                       \
    " 'alert', json(?5)), 'PENDING', ?4, ?4"                                                       \
    " FROM alerts a JOIN cold_cells c ON c.id = a.cold_cell_id"                                    \
    " JOIN locations l ON l.id = c.location_id " recipients                                        \
    " WHERE a.id = ?1 AND u.disabled = 0 ON CONFLICT DO NOTHING"

static const char sql_customer[] = NOTIFY_INSERT("JOIN users u ON u.id = l.customer_id");
static const char sql_customer_and_technicians[] =
    NOTIFY_INSERT("JOIN users u ON (u.id = l.customer_id OR u.id IN (SELECT tc.technician_id FROM"
                  " technician_customers tc WHERE tc.customer_id = l.customer_id))");
static const char sql_technicians_and_admins[] =
    NOTIFY_INSERT("JOIN users u ON (u.role = ?6 OR u.id IN (SELECT tc.technician_id FROM"
                  " technician_customers tc WHERE tc.customer_id = l.customer_id))");

static const char sql_system[] =
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, status,"
    " next_attempt_at, created_at)"
    " SELECT u.id, NULL, 'SYSTEM', 'inbox', json_object('title', ?2, 'message', ?3),"
    " 'PENDING', ?4, ?4 FROM users u WHERE u.id = ?1";
static const char sql_report[] =
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, status,"
    " next_attempt_at, created_at)"
    " SELECT u.id, NULL, 'DAILY_REPORT', 'inbox', json_object('title', ?2, 'message', ?3,"
    " 'report', json(?4)), 'PENDING', ?5, ?5 FROM users u WHERE u.id = ?1";
/* One row (VALUES): ?1 alert id, ?2 event, ?3 now, ?4 cell, ?5 the alert object. */
static const char sql_event[] =
    "INSERT INTO alert_events (alert_id, cold_cell_id, event, payload, status,"
    " next_attempt_at, created_at)"
    " VALUES (?1, ?4, ?2, ?5, 'PENDING', ?3, ?3) ON CONFLICT DO NOTHING";

static const char *const event_names[] = {
    [CC_EVENT_CREATED] = "CREATED",
    [CC_EVENT_ESCALATED] = "ESCALATED",
    [CC_EVENT_RESOLVED] = "RESOLVED",
    [CC_EVENT_ACKNOWLEDGED] = "ACKNOWLEDGED",
};

/* The alert object of alert_id, and its cell. */
struct alert_obj {
    int64_t cold_cell_id;
    char *json; /* malloc'd */
};

static int alert_obj_load(struct cc_store *st, int64_t alert_id, struct alert_obj *out)
{
    sqlite3_stmt *stmt = NULL;
    const unsigned char *text;
    int src, rc;

    out->json = NULL;
    out->cold_cell_id = 0;
    rc = cc_store_stmt(st, sql_alert_json, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, alert_id) != SQLITE_OK) {
        cc_store_stmt_done(stmt);
        return CC_ERR_DB;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_ROW) {
        if (src != SQLITE_DONE)
            cc_log_error("db_step_failed", "alert object: %s", sqlite3_errmsg(cc_store_db(st)));
        cc_store_stmt_done(stmt);
        return src == SQLITE_DONE ? CC_ERR_NOT_FOUND : CC_ERR_DB;
    }
    out->cold_cell_id = sqlite3_column_int64(stmt, 0);
    text = sqlite3_column_text(stmt, 1);
    out->json = strdup(text != NULL ? (const char *)text : "{}");
    cc_store_stmt_done(stmt);
    return out->json != NULL ? CC_OK : CC_ERR_NOMEM;
}

/* Runs one of the NOTIFY_INSERT statements. */
static int insert_for_alert(struct cc_store *st, const char *sql, int64_t alert_id,
                            const char *kind, const char *title, const char *alert_json,
                            int64_t now_ms)
{
    sqlite3_stmt *stmt = NULL;
    int src, rc;

    rc = cc_store_stmt(st, sql, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, alert_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, kind, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 3, title, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 4, now_ms) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 5, alert_json, -1, SQLITE_STATIC) != SQLITE_OK ||
        (sqlite3_bind_parameter_count(stmt) >= 6 &&
         sqlite3_bind_text(stmt, 6, cc_role_name(CC_ROLE_ADMIN), -1, SQLITE_STATIC) != SQLITE_OK)) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_DONE) {
        cc_log_error("db_step_failed", "notify %s: %s", kind, sqlite3_errmsg(cc_store_db(st)));
        rc = src == SQLITE_NOMEM ? CC_ERR_NOMEM : CC_ERR_DB;
        goto out;
    }
    rc = CC_OK;
out:
    cc_store_stmt_done(stmt);
    return rc;
}

static int insert_event(struct cc_store *st, int64_t alert_id, const struct alert_obj *a, int event,
                        int64_t now_ms);

/* Notifications of kind for the recipients of sql (NULL: none), plus the event (-1:
 * none), sharing one alert object. */
static int alert_change(struct cc_store *st, const char *sql, int64_t alert_id, const char *kind,
                        const char *title, int event, int64_t now_ms)
{
    struct alert_obj a;
    int rc = alert_obj_load(st, alert_id, &a);

    if (rc == CC_ERR_NOT_FOUND)
        return CC_OK; /* nothing to tell about an alert that is not there */
    if (rc != CC_OK)
        return rc;
    if (sql != NULL)
        rc = insert_for_alert(st, sql, alert_id, kind, title, a.json, now_ms);
    if (rc == CC_OK && event >= 0)
        rc = insert_event(st, alert_id, &a, event, now_ms);
    free(a.json);
    return rc;
}

int cc_notify_customer_alert(struct cc_store *st, int64_t alert_id, int64_t now_ms)
{
    return alert_change(st, sql_customer, alert_id, "ALERT", "Alert", -1, now_ms);
}

int cc_notify_alert_raised(struct cc_store *st, int64_t alert_id, int64_t now_ms)
{
    return alert_change(st, sql_customer_and_technicians, alert_id, "ALERT", "Alert",
                        CC_EVENT_CREATED, now_ms);
}

int cc_notify_alert_resolved(struct cc_store *st, int64_t alert_id, int64_t now_ms)
{
    return alert_change(st, sql_customer_and_technicians, alert_id, "ALERT_RESOLVED", "Resolved",
                        CC_EVENT_RESOLVED, now_ms);
}

int cc_notify_escalation(struct cc_store *st, int64_t alert_id, int64_t now_ms)
{
    return alert_change(st, sql_technicians_and_admins, alert_id, "ESCALATION", "Escalated",
                        CC_EVENT_ESCALATED, now_ms);
}

int cc_notify_alert_acknowledged(struct cc_store *st, int64_t alert_id, int64_t now_ms)
{
    return alert_change(st, NULL, alert_id, NULL, NULL, CC_EVENT_ACKNOWLEDGED, now_ms);
}

/* Runs a statement whose parameters are already bound, to SQLITE_DONE. */
static int run(struct cc_store *st, sqlite3_stmt *stmt, const char *what)
{
    int src = sqlite3_step(stmt);

    if (src == SQLITE_DONE)
        return CC_OK;
    cc_log_error("db_step_failed", "%s: %s", what, sqlite3_errmsg(cc_store_db(st)));
    return src == SQLITE_NOMEM ? CC_ERR_NOMEM : CC_ERR_DB;
}

int cc_notify_system(struct cc_store *st, int64_t user_id, const char *title, const char *message,
                     int64_t now_ms)
{
    sqlite3_stmt *stmt = NULL;
    int rc = cc_store_stmt(st, sql_system, &stmt);

    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, user_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, title != NULL ? title : "", -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 3, message != NULL ? message : "", -1, SQLITE_TRANSIENT) !=
            SQLITE_OK ||
        sqlite3_bind_int64(stmt, 4, now_ms) != SQLITE_OK)
        rc = CC_ERR_DB;
    else
        rc = run(st, stmt, "notify system");
    cc_store_stmt_done(stmt);
    return rc;
}

int cc_notify_daily_report(struct cc_store *st, int64_t customer_id, const char *title,
                           const char *message, const char *report_json, int64_t now_ms)
{
    sqlite3_stmt *stmt = NULL;
    int rc = cc_store_stmt(st, sql_report, &stmt);

    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, customer_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, title, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 3, message, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 4, report_json, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 5, now_ms) != SQLITE_OK)
        rc = CC_ERR_DB;
    else
        rc = run(st, stmt, "notify daily report");
    cc_store_stmt_done(stmt);
    return rc;
}

static int insert_event(struct cc_store *st, int64_t alert_id, const struct alert_obj *a, int event,
                        int64_t now_ms)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (event < CC_EVENT_CREATED || event > CC_EVENT_ACKNOWLEDGED)
        return CC_ERR_INTERNAL;
    rc = cc_store_stmt(st, sql_event, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, alert_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, event_names[event], -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, now_ms) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 4, a->cold_cell_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 5, a->json, -1, SQLITE_STATIC) != SQLITE_OK)
        rc = CC_ERR_DB;
    else
        rc = run(st, stmt, "alert event");
    cc_store_stmt_done(stmt);
    return rc;
}
