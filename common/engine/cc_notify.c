/* cc_notify.c - the outbox writers: one notifications row per event and recipient (one
 * INSERT ... SELECT over the recipients) and one alert_events row per alert event.
 *
 * The JSON of the payloads is built by the database, in each dialect's words (SQLite's
 * json_object, PostgreSQL's json_build_object), so the texts that build JSON come in
 * pairs picked by cc_store_dialect: SQLite's are the texts it always ran, so its payloads
 * stay byte for byte what they were (a double as 9.0, no blanks). */
#include "cc_notify.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_alert_json.h"
#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_role.h"

/* The alert object is built once per alert change (a JSON object with five timestamps
 * formatted) and bound as text to the event row and to every recipient's notification,
 * instead of once per row. */
static const char sql_alert_json[] =
    "SELECT a.cold_cell_id, " CC_ALERT_JSON_SQL " FROM alerts a WHERE a.id = $1";
static const char sql_alert_json_pg[] =
    "SELECT a.cold_cell_id, " CC_ALERT_JSON_SQL_PG " FROM alerts a WHERE a.id = $1";

/* INSERT ... SELECT over the alert, its cell, location and the recipients u; $1 alert
 * id, $2 kind, $3 title prefix, $4 now, $5 the alert object (JSON text), $6 the admin role
 * (in the recipients that name it: struct recipients.role). Disabled users get nothing.
 * PAYLOAD is the payload's JSON in the dialect's words. A recipient set of two kinds is
 * one NOTIFY_SELECT per kind joined by UNION ALL, not one join ON (x OR u.id IN (SELECT
 * ...)): SQLite builds a temporary b-tree of the IN list on every execution, about a
 * tenth of an alert change's instructions (test_alert:
 * alert_writes_build_no_temporary_btree). A user in both sets would come twice;
 * notifications_once makes the second row a no-op (ON CONFLICT DO NOTHING). PostgreSQL
 * keeps the one join (_PG_ below): it has no such cost, and it would type the untyped
 * parameters of a UNION's select list as text. */
#define NOTIFY_SELECT(payload, recipients)                                                         \
    " SELECT u.id, a.id, $2, 'inbox', " payload ", 'PENDING', $4, $4"                              \
    " FROM alerts a JOIN cold_cells c ON c.id = a.cold_cell_id"                                    \
    " JOIN locations l ON l.id = c.location_id " recipients " WHERE a.id = $1 AND u.disabled = 0"
#define NOTIFY_INSERT(selects)                                                                     \
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, status,"                \
    " next_attempt_at, created_at)" selects " ON CONFLICT DO NOTHING"
/* SQLite's payload is json_object('title', ..., 'alert', json($5)) written out: the same
 * bytes (json_object quotes its strings as json_quote does, and json() of the alert object,
 * which json_object made, gives it back unchanged), without json() parsing the alert object
 * again for every recipient (test_notify: payload_is_json_objects_text). */
#define PAYLOAD_LITE                                                                               \
    "'{\"title\":' || json_quote($3 || ': ' || a.type || ' in ' || c.name || ' (' || l.name"       \
    " || ')') || ',\"message\":' || json_quote(a.message) || ',\"coldCellName\":'"                 \
    " || json_quote(c.name) || ',\"locationName\":' || json_quote(l.name) || ',\"alert\":'"        \
    " || coalesce($5, 'null') || '}'"
#define PAYLOAD_PG                                                                                 \
    "CAST(json_build_object('title', CAST($3 AS text) || ': ' || a.type || ' in ' || c.name"       \
    " || ' (' || l.name || ')', 'message', a.message, 'coldCellName', c.name,"                     \
    " 'locationName', l.name, 'alert', CAST($5 AS json)) AS text)"
#define TO_CUSTOMER "JOIN users u ON u.id = l.customer_id"
#define TO_TECHNICIANS                                                                             \
    "JOIN technician_customers tc ON tc.customer_id = l.customer_id"                               \
    " JOIN users u ON u.id = tc.technician_id"
#define TO_ADMINS "JOIN users u ON u.role = $6"
#define TO_CUSTOMER_AND_TECHNICIANS_LITE                                                           \
    NOTIFY_SELECT(PAYLOAD_LITE, TO_CUSTOMER)                                                       \
    " UNION ALL" NOTIFY_SELECT(PAYLOAD_LITE, TO_TECHNICIANS)
#define TO_TECHNICIANS_AND_ADMINS_LITE                                                             \
    NOTIFY_SELECT(PAYLOAD_LITE, TO_ADMINS)                                                         \
    " UNION ALL" NOTIFY_SELECT(PAYLOAD_LITE, TO_TECHNICIANS)
#define TO_CUSTOMER_AND_TECHNICIANS_PG                                                             \
    "JOIN users u ON (u.id = l.customer_id OR u.id IN (SELECT tc.technician_id FROM"               \
    " technician_customers tc WHERE tc.customer_id = l.customer_id))"
#define TO_TECHNICIANS_AND_ADMINS_PG                                                               \
    "JOIN users u ON (u.role = $6 OR u.id IN (SELECT tc.technician_id FROM"                        \
    " technician_customers tc WHERE tc.customer_id = l.customer_id))"

/* SQLite, a new alert or its resolution (the recipients of customer_and_technicians): the
 * recipients with what the payload names ($1 alert id), then one row each by
 * sql_notify_one, the payload written in C once for all of them (notification_payload).
 * One INSERT ... SELECT made SQLite open a statement journal (a copy of every page the
 * statement writes, in case a later row fails) and concatenate the payload in SQL per
 * row: about half of the statement's instructions. A one-row INSERT ... VALUES with no
 * trigger needs no statement journal. The same rows: a user in both sets comes twice and
 * the second INSERT is a no-op (notifications_once), disabled users are left out. */
#define RECIPIENT_SELECT(recipients)                                                               \
    " SELECT u.id, a.type, a.message, c.name, l.name FROM alerts a"                                \
    " JOIN cold_cells c ON c.id = a.cold_cell_id JOIN locations l ON l.id = "                      \
    "c.location_id " recipients " WHERE a.id = $1 AND u.disabled = 0"
static const char sql_cust_tech_each[] =
    RECIPIENT_SELECT(TO_CUSTOMER) " UNION ALL" RECIPIENT_SELECT(TO_TECHNICIANS);
/* $1 user, $2 alert id, $3 kind, $4 payload, $5 now. */
static const char sql_notify_one[] =
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, status,"
    " next_attempt_at, created_at) VALUES ($1, $2, $3, 'inbox', $4, 'PENDING', $5, $5)"
    " ON CONFLICT DO NOTHING";

/* One recipient set: its statement in each dialect, and the role bound as $6 (NULL: the
 * statement has no $6). */
struct recipients {
    const char *lite, *pg;
    const char *role;
};
static const char sql_customer[] = NOTIFY_INSERT(NOTIFY_SELECT(PAYLOAD_LITE, TO_CUSTOMER));
static const char sql_customer_pg[] = NOTIFY_INSERT(NOTIFY_SELECT(PAYLOAD_PG, TO_CUSTOMER));
static const char sql_cust_tech[] = NOTIFY_INSERT(TO_CUSTOMER_AND_TECHNICIANS_LITE);
static const char sql_cust_tech_pg[] =
    NOTIFY_INSERT(NOTIFY_SELECT(PAYLOAD_PG, TO_CUSTOMER_AND_TECHNICIANS_PG));
static const char sql_tech_admin[] = NOTIFY_INSERT(TO_TECHNICIANS_AND_ADMINS_LITE);
static const char sql_tech_admin_pg[] =
    NOTIFY_INSERT(NOTIFY_SELECT(PAYLOAD_PG, TO_TECHNICIANS_AND_ADMINS_PG));
static const struct recipients customer = {sql_customer, sql_customer_pg, NULL};
static const struct recipients customer_and_technicians = {sql_cust_tech, sql_cust_tech_pg, NULL};
static const struct recipients technicians_and_admins = {sql_tech_admin, sql_tech_admin_pg,
                                                         CC_ROLE_NAME_ADMIN};

/* $1 user, $2 title, $3 message, $4 now. */
static const char sql_system[] =
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, status,"
    " next_attempt_at, created_at)"
    " SELECT u.id, NULL, 'SYSTEM', 'inbox', json_object('title', $2, 'message', $3),"
    " 'PENDING', $4, $4 FROM users u WHERE u.id = $1";
static const char sql_system_pg[] =
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, status,"
    " next_attempt_at, created_at)"
    " SELECT u.id, NULL, 'SYSTEM', 'inbox', CAST(json_build_object('title', CAST($2 AS text),"
    " 'message', CAST($3 AS text)) AS text), 'PENDING', $4, $4 FROM users u WHERE u.id = $1";
/* $1 customer, $2 title, $3 message, $4 the report (JSON text), $5 now. */
static const char sql_report[] =
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, status,"
    " next_attempt_at, created_at)"
    " SELECT u.id, NULL, 'DAILY_REPORT', 'inbox', json_object('title', $2, 'message', $3,"
    " 'report', json($4)), 'PENDING', $5, $5 FROM users u WHERE u.id = $1";
static const char sql_report_pg[] =
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, status,"
    " next_attempt_at, created_at)"
    " SELECT u.id, NULL, 'DAILY_REPORT', 'inbox', CAST(json_build_object('title',"
    " CAST($2 AS text), 'message', CAST($3 AS text), 'report', CAST($4 AS json)) AS text),"
    " 'PENDING', $5, $5 FROM users u WHERE u.id = $1";
/* One row (VALUES): $1 alert id, $2 event, $3 now, $4 cell, $5 the alert object. */
static const char sql_event[] =
    "INSERT INTO alert_events (alert_id, cold_cell_id, event, payload, status,"
    " next_attempt_at, created_at)"
    " VALUES ($1, $4, $2, $5, 'PENDING', $3, $3) ON CONFLICT DO NOTHING";

static const char *const event_names[] = {
    [CC_EVENT_CREATED] = "CREATED",
    [CC_EVENT_ESCALATED] = "ESCALATED",
    [CC_EVENT_RESOLVED] = "RESOLVED",
    [CC_EVENT_ACKNOWLEDGED] = "ACKNOWLEDGED",
};

/* The alert object of alert_id, and its cell. */
struct alert_obj {
    int64_t cold_cell_id;
    char *json; /* malloc'd by alert_obj_load; borrowed (never freed) in the _obj entry points */
};

static const char *pick(struct cc_store *st, const char *lite, const char *pg)
{
    return cc_store_dialect(st) == CC_DIALECT_PG ? pg : lite;
}

/* The end of a statement that writes: CC_OK, CC_ERR_NOMEM, or CC_ERR_DB (cc_dbi logged
 * it; a conflict too, which the ON CONFLICT clauses leave to a bug). */
static int write_rc(int rc)
{
    return rc == CC_OK || rc == CC_ERR_NOMEM ? rc : CC_ERR_DB;
}

static int alert_obj_load(struct cc_store *st, int64_t alert_id, struct alert_obj *out)
{
    struct cc_stmt *stmt = NULL;
    const char *text;
    int rc;

    out->json = NULL;
    out->cold_cell_id = 0;
    rc = cc_stmt_prepare(st, pick(st, sql_alert_json, sql_alert_json_pg), &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, alert_id);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) {
        out->cold_cell_id = cc_stmt_column_int64(stmt, 0);
        text = cc_stmt_column_text(stmt, 1);
        out->json = strdup(text != NULL ? text : "{}");
        rc = out->json != NULL ? CC_OK : CC_ERR_NOMEM;
    } else if (rc == CC_OK) {
        rc = CC_ERR_NOT_FOUND;
    }
    cc_stmt_release(stmt);
    return rc == CC_OK || rc == CC_ERR_NOT_FOUND ? rc : write_rc(rc);
}

/* Runs one of the NOTIFY_INSERT statements. */
static int insert_for_alert(struct cc_store *st, const struct recipients *to, int64_t alert_id,
                            const char *kind, const char *title, const char *alert_json,
                            int64_t now_ms)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, pick(st, to->lite, to->pg), &stmt);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, alert_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 2, kind);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 3, title);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 4, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 5, alert_json);
    if (rc == CC_OK && to->role != NULL)
        rc = cc_stmt_bind_text(stmt, 6, to->role);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    cc_stmt_release(stmt);
    return write_rc(rc);
}

static int insert_event(struct cc_store *st, int64_t alert_id, const struct alert_obj *a, int event,
                        int64_t now_ms);

/* name, then s quoted as json_quote does (null for NULL); returns the end. */
static char *put_field(char *p, const char *name, const char *s)
{
    size_t n = strlen(name);

    memcpy(p, name, n);
    p += n;
    if (s == NULL) {
        memcpy(p, "null", 4);
        return p + 4;
    }
    *p++ = '"';
    p = cc_alert_json_escape(p, s);
    *p++ = '"';
    return p;
}

/* PAYLOAD_LITE's text written in C: the same bytes (SQLite's json_quote escapes, its
 * concatenation of NULL is NULL, json_quote(NULL) is null). The columns of the recipient
 * row who: 1 type, 2 message, 3 cell name, 4 location name. */
static int notification_payload(struct cc_stmt *who, const char *title, const char *alert_json,
                                char **out)
{
    const char *type = cc_stmt_column_text(who, 1), *message = cc_stmt_column_text(who, 2);
    const char *cell = cc_stmt_column_text(who, 3), *location = cc_stmt_column_text(who, 4);
    const char *parts[] = {title, type, cell, location, message};
    const char *alert = alert_json != NULL ? alert_json : "null";
    size_t alert_len = strlen(alert), cap = 128 + alert_len; /* 128: the names, quotes, nulls */
    char *p;

    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t n = parts[i] != NULL ? strlen(parts[i]) : 0;

        if (n > (SIZE_MAX - cap) / (2 * CC_ALERT_JSON_ESCAPED_MAX))
            return CC_ERR_NOMEM;
        cap += 2 * n * CC_ALERT_JSON_ESCAPED_MAX; /* cell and location appear twice */
    }
    p = *out = malloc(cap);
    if (p == NULL)
        return CC_ERR_NOMEM;
    memcpy(p, "{\"title\":", 9);
    p += 9;
    if (type == NULL || cell == NULL || location == NULL) {
        memcpy(p, "null", 4);
        p += 4;
    } else {
        *p++ = '"';
        p = cc_alert_json_escape(p, title);
        memcpy(p, ": ", 2);
        p = cc_alert_json_escape(p + 2, type);
        memcpy(p, " in ", 4);
        p = cc_alert_json_escape(p + 4, cell);
        memcpy(p, " (", 2);
        p = cc_alert_json_escape(p + 2, location);
        memcpy(p, ")\"", 2);
        p += 2;
    }
    p = put_field(p, ",\"message\":", message);
    p = put_field(p, ",\"coldCellName\":", cell);
    p = put_field(p, ",\"locationName\":", location);
    memcpy(p, ",\"alert\":", 9);
    memcpy(p + 9, alert, alert_len);
    memcpy(p + 9 + alert_len, "}", 2);
    return CC_OK;
}

/* insert_for_alert for customer_and_technicians on SQLite: sql_cust_tech_each. */
static int insert_each_recipient(struct cc_store *st, int64_t alert_id, const char *kind,
                                 const char *title, const char *alert_json, int64_t now_ms)
{
    struct cc_stmt *who = NULL, *ins = NULL;
    char *payload = NULL;
    int rc = cc_stmt_prepare(st, sql_cust_tech_each, &who);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(who, 1, alert_id);
    while (rc == CC_OK && (rc = cc_stmt_step(who)) == CC_ROW) {
        rc = payload != NULL ? CC_OK : notification_payload(who, title, alert_json, &payload);
        if (rc == CC_OK)
            rc = cc_stmt_prepare(st, sql_notify_one, &ins);
        if (rc == CC_OK)
            rc = cc_stmt_bind_all(ins, "iitti", cc_stmt_column_int64(who, 0), alert_id, kind,
                                  payload, now_ms);
        if (rc == CC_OK)
            rc = cc_stmt_step(ins);
        cc_stmt_release(ins);
        ins = NULL;
    }
    cc_stmt_release(who);
    free(payload);
    return write_rc(rc);
}

/* Notifications of kind for the recipients to (NULL: none), plus the event (-1:
 * none), sharing the alert object a. */
static int alert_change_obj(struct cc_store *st, const struct recipients *to, int64_t alert_id,
                            const struct alert_obj *a, const char *kind, const char *title,
                            int event, int64_t now_ms)
{
    int rc = CC_OK;

    if (to == &customer_and_technicians && cc_store_dialect(st) == CC_DIALECT_SQLITE)
        rc = insert_each_recipient(st, alert_id, kind, title, a->json, now_ms);
    else if (to != NULL)
        rc = insert_for_alert(st, to, alert_id, kind, title, a->json, now_ms);
    if (rc == CC_OK && event >= 0)
        rc = insert_event(st, alert_id, a, event, now_ms);
    return rc;
}

/* alert_change_obj with the alert object read from the database. */
static int alert_change(struct cc_store *st, const struct recipients *to, int64_t alert_id,
                        const char *kind, const char *title, int event, int64_t now_ms)
{
    struct alert_obj a;
    int rc = alert_obj_load(st, alert_id, &a);

    if (rc == CC_ERR_NOT_FOUND)
        return CC_OK; /* nothing to tell about an alert that is not there */
    if (rc != CC_OK)
        return rc;
    rc = alert_change_obj(st, to, alert_id, &a, kind, title, event, now_ms);
    free(a.json);
    return rc;
}

int cc_notify_customer_alert(struct cc_store *st, int64_t alert_id, int64_t now_ms)
{
    return alert_change(st, &customer, alert_id, "ALERT", "Alert", -1, now_ms);
}

int cc_notify_alert_raised(struct cc_store *st, int64_t alert_id, int64_t now_ms)
{
    return alert_change(st, &customer_and_technicians, alert_id, "ALERT", "Alert", CC_EVENT_CREATED,
                        now_ms);
}

int cc_notify_alert_resolved(struct cc_store *st, int64_t alert_id, int64_t now_ms)
{
    return alert_change(st, &customer_and_technicians, alert_id, "ALERT_RESOLVED", "Resolved",
                        CC_EVENT_RESOLVED, now_ms);
}

/* The object comes from the statement that made the change (RETURNING): the alert as it
 * is now, without reading it back. The string is not kept. */
int cc_notify_alert_raised_obj(struct cc_store *st, int64_t alert_id, int64_t cold_cell_id,
                               const char *alert_json, int64_t now_ms)
{
    struct alert_obj a = {cold_cell_id, (char *)alert_json};

    return alert_change_obj(st, &customer_and_technicians, alert_id, &a, "ALERT", "Alert",
                            CC_EVENT_CREATED, now_ms);
}

int cc_notify_alert_resolved_obj(struct cc_store *st, int64_t alert_id, int64_t cold_cell_id,
                                 const char *alert_json, int64_t now_ms)
{
    struct alert_obj a = {cold_cell_id, (char *)alert_json};

    return alert_change_obj(st, &customer_and_technicians, alert_id, &a, "ALERT_RESOLVED",
                            "Resolved", CC_EVENT_RESOLVED, now_ms);
}

int cc_notify_escalation(struct cc_store *st, int64_t alert_id, int64_t now_ms)
{
    return alert_change(st, &technicians_and_admins, alert_id, "ESCALATION", "Escalated",
                        CC_EVENT_ESCALATED, now_ms);
}

int cc_notify_alert_acknowledged(struct cc_store *st, int64_t alert_id, int64_t now_ms)
{
    return alert_change(st, NULL, alert_id, NULL, NULL, CC_EVENT_ACKNOWLEDGED, now_ms);
}

int cc_notify_system(struct cc_store *st, int64_t user_id, const char *title, const char *message,
                     int64_t now_ms)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, pick(st, sql_system, sql_system_pg), &stmt);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, user_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 2, title != NULL ? title : "");
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 3, message != NULL ? message : "");
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 4, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    cc_stmt_release(stmt);
    return write_rc(rc);
}

int cc_notify_daily_report(struct cc_store *st, int64_t customer_id, const char *title,
                           const char *message, const char *report_json, int64_t now_ms)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, pick(st, sql_report, sql_report_pg), &stmt);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, customer_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 2, title);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 3, message);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 4, report_json);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 5, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    cc_stmt_release(stmt);
    return write_rc(rc);
}

static int insert_event(struct cc_store *st, int64_t alert_id, const struct alert_obj *a, int event,
                        int64_t now_ms)
{
    struct cc_stmt *stmt = NULL;
    int rc;

    if (event < CC_EVENT_CREATED || event > CC_EVENT_ACKNOWLEDGED)
        return CC_ERR_INTERNAL;
    rc = cc_stmt_prepare(st, sql_event, &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, alert_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 2, event_names[event]);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 3, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 4, a->cold_cell_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 5, a->json);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    cc_stmt_release(stmt);
    return write_rc(rc);
}
