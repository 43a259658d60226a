/* cc_alerts_api.c - alerts and notifications for the API (see cc_alerts_api.h). The
 * objects are built in C from plain columns, the same SQL on SQLite and PostgreSQL, with
 * the members (names and order) of CC_ALERT_JSON_SQL and CC_NOTIFY_JSON_SQL, the objects
 * the notifications and MQTT messages carry. */
#include "cc_alerts_api.h"

#include <string.h>

#include "cc_alert_ops.h"
#include "cc_error.h"
#include "cc_http.h"
#include "cc_input.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "cc_resource.h"
#include "cc_time.h"

#define ALERT_COLS                                                                                 \
    "a.id, a.cold_cell_id, a.device_id, a.type, a.status, a.value, a.threshold, a.message,"        \
    " a.first_triggered_at, a.last_triggered_at, a.trigger_count, a.acknowledged_at,"              \
    " a.acknowledged_by, a.escalated_at, a.resolved_at, a.resolved_by, a.resolution_note"
#define ALERT_FROM                                                                                 \
    " FROM alerts a JOIN cold_cells c ON c.id = a.cold_cell_id"                                    \
    " JOIN locations l ON l.id = c.location_id WHERE " CC_ACCESS_SQL_N(                            \
        "l.customer_id") " AND (CAST($3 AS text) IS NULL OR a.status = $3) AND (CAST($4 AS text) " \
                         "IS NULL OR"                                                              \
                         " a.type = $4) AND (CAST($5 AS bigint) IS NULL OR a.cold_cell_id = $5)"
/* The payload three times: its title, its message, itself. */
#define NOTIFY_COLS                                                                                \
    "n.id, n.user_id, n.kind, n.alert_id, n.payload, n.payload, n.payload, n.status,"              \
    " n.created_at, n.sent_at, n.read_at"

static const char sql_list[] = "SELECT " ALERT_COLS ALERT_FROM
                               " ORDER BY a.first_triggered_at DESC, a.id DESC LIMIT $6 OFFSET $7";
static const char sql_count[] = "SELECT count(*)" ALERT_FROM;
static const char sql_get[] = "SELECT " ALERT_COLS " FROM alerts a WHERE a.id = $1";
static const char sql_ack[] =
    "UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, $2),"
    " acknowledged_by = CASE WHEN acknowledged_at IS NULL THEN $3 ELSE acknowledged_by END"
    " WHERE id = $1 AND status = 'ACTIVE'";
/* $1 (the role) is bound but unused: notifications are their recipient's alone. */
static const char sql_n_list[] = "SELECT " NOTIFY_COLS " FROM notifications n"
                                 " WHERE n.user_id = $2 AND $1 >= 0"
                                 " ORDER BY n.created_at DESC, n.id DESC LIMIT $3 OFFSET $4";
static const char sql_n_count[] =
    "SELECT count(*) FROM notifications WHERE user_id = $2 AND $1 >= 0";
static const char sql_n_get[] = "SELECT " NOTIFY_COLS " FROM notifications n WHERE n.id = $1";
static const char sql_n_read[] =
    "UPDATE notifications SET read_at = coalesce(read_at, $2) WHERE id = $1 AND user_id = $3";

/* CC_ALERT_JSON_SQL's members. */
static const struct cc_column alert_cols[] = {
    CC_ALERT_COLUMNS_HEAD,       {"acknowledgedBy", CC_COL_INT}, {"escalatedAt", CC_COL_TIME},
    {"resolvedAt", CC_COL_TIME}, {"resolvedBy", CC_COL_INT},     {"resolutionNote", CC_COL_TEXT},
};

/* CC_NOTIFY_JSON_SQL's members: title and message are the payload's own. */
static const struct cc_column notify_cols[] = {
    {"id", CC_COL_INT},       {"userId", CC_COL_INT},        {"kind", CC_COL_TEXT},
    {"alertId", CC_COL_INT},  {"title", CC_COL_JSON_MEMBER}, {"message", CC_COL_JSON_MEMBER},
    {"payload", CC_COL_JSON}, {"status", CC_COL_TEXT},       {"createdAt", CC_COL_TIME},
    {"sentAt", CC_COL_TIME},  {"readAt", CC_COL_TIME},
};

/* An optional text filter: "" in out when absent. Given empty it is refused, not taken
 * for "no filter" (`?status=` listed every alert): the client asked for something. */
static int query_param(const char *qs, const char *name, char *out, size_t outlen, cJSON **err)
{
    int got = cc_http_query_param(qs, name, out, outlen);

    if (got < 0 || (got > 0 && out[0] == '\0')) {
        out[0] = '\0';
        *err = cc_error_new(CC_ERR_VALIDATION,
                            got < 0 ? "invalid query parameter" : "empty query parameter");
        if (*err == NULL || cc_error_add_detail(*err, name, got < 0 ? "invalid" : "empty") != CC_OK)
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

/* The filters of an alert list: status $3, type $4, cold cell $5. Texts are copied into
 * out, which must outlive its use. */
static void filter_values(const struct cc_alert_filter *f, struct cc_resource_filter *out)
{
    _Static_assert(sizeof f->status <= CC_RESOURCE_FILTER_TEXT &&
                       sizeof f->type <= CC_RESOURCE_FILTER_TEXT,
                   "an alert filter's texts fit a resource filter");
    memset(out, 0, sizeof *out);
    memcpy(out->text[0], f->status, sizeof f->status);
    memcpy(out->text[1], f->type, sizeof f->type);
    out->v[0] = cc_value_text(out->text[0][0] ? out->text[0] : NULL);
    out->v[1] = cc_value_text(out->text[1][0] ? out->text[1] : NULL);
    if (f->cold_cell_id > 0)
        out->v[2] = cc_value_int(f->cold_cell_id);
}

static int parse_filter(const char *qs, struct cc_resource_filter *f, cJSON **err)
{
    struct cc_alert_filter af;
    int rc = cc_alerts_filter_parse(qs, &af, err);

    if (rc == CC_OK)
        filter_values(&af, f);
    return rc;
}

const struct cc_resource cc_alerts_resource = {
    .name = "alert",
    .entity = CC_ENTITY_ALERT,
    CC_RESOURCE_COLUMNS(alert_cols),
    .sql = {sql_get, sql_list, sql_count, NULL, NULL, NULL},
    .nfilters = 3,
    .page_default = CC_ALERTS_PAGE_DEFAULT,
    .parse_filter = parse_filter,
};

const struct cc_resource cc_notifications_resource = {
    .name = "notification",
    .entity = CC_ENTITY_NOTIFICATION,
    CC_RESOURCE_COLUMNS(notify_cols),
    .sql = {sql_n_get, sql_n_list, sql_n_count, NULL, NULL, NULL},
    .page_default = CC_ALERTS_PAGE_DEFAULT,
};

int cc_alerts_list(struct cc_store *st, const struct cc_principal *p,
                   const struct cc_alert_filter *f, const struct cc_page *pg, cJSON **out)
{
    struct cc_resource_filter v;

    filter_values(f, &v);
    return cc_resource_list(st, &cc_alerts_resource, p, &v, pg, out);
}

int cc_alerts_get(struct cc_store *st, const struct cc_principal *p, int64_t id, cJSON **out)
{
    return cc_resource_get(st, &cc_alerts_resource, p, id, out);
}

/* The conflict error for an alert that is already resolved. */
static int already_resolved(cJSON **err)
{
    *err = cc_error_new(CC_ERR_CONFLICT, "alert is already resolved");
    return *err != NULL ? CC_ERR_CONFLICT : CC_ERR_NOMEM;
}

static int resolve(struct cc_resource_write *w)
{
    int64_t now = cc_now_ms();
    int resolved = 0;
    int rc = cc_alert_resolve(w->st, w->id, now, w->p->user_id, w->arg, now, &resolved);

    if (rc == CC_OK && !resolved)
        rc = already_resolved(w->err);
    return rc;
}

int cc_alerts_resolve(struct cc_store *st, const struct cc_principal *p, int64_t id,
                      const cJSON *body, cJSON **out, cJSON **err)
{
    const char *note = NULL;
    int rc;

    if (body != NULL) {
        struct cc_input in;

        cc_input_init(&in, body);
        cc_input_text(&in, "note", CC_INPUT_NULLABLE, CC_NOTE_MAX, &note);
        rc = cc_input_finish(&in, err);
        if (rc != CC_OK)
            return rc;
    }
    return cc_resource_action(st, &cc_alerts_resource, p, id, "resolve", 0, resolve, note, out,
                              err);
}

static int acknowledge(struct cc_resource_write *w)
{
    const struct cc_value args[3] = {cc_value_int(w->id), cc_value_int(cc_now_ms()),
                                     cc_value_int(w->p->user_id)};
    int64_t changed = 0;
    int rc = cc_resource_exec(w->st, sql_ack, args, 3, &changed);

    if (rc != CC_OK)
        return rc;
    if (changed == 0)
        return already_resolved(w->err); /* it exists (access check) but is not ACTIVE */
    /* alerts/{coldCellId} from ingestd's outbox, at QoS 1 like the other alert events
     * (SPEC §3); a repeated acknowledge writes no second event. */
    return cc_notify_alert_acknowledged(w->st, w->id, cc_now_ms());
}

int cc_alerts_acknowledge(struct cc_store *st, const struct cc_principal *p, int64_t id,
                          cJSON **out, cJSON **err)
{
    return cc_resource_action(st, &cc_alerts_resource, p, id, "acknowledge", 0, acknowledge, NULL,
                              out, err);
}

int cc_notifications_list(struct cc_store *st, const struct cc_principal *p,
                          const struct cc_page *pg, cJSON **out)
{
    return cc_resource_list(st, &cc_notifications_resource, p, NULL, pg, out);
}

static int mark_read(struct cc_resource_write *w)
{
    const struct cc_value args[3] = {cc_value_int(w->id), cc_value_int(cc_now_ms()),
                                     cc_value_int(w->p->user_id)};

    return cc_resource_exec(w->st, sql_n_read, args, 3, NULL);
}

int cc_notifications_read(struct cc_store *st, const struct cc_principal *p, int64_t id,
                          cJSON **out)
{
    cJSON *err = NULL;
    int rc = cc_resource_action(st, &cc_notifications_resource, p, id, "read", CC_ACTION_NO_DETAIL,
                                mark_read, NULL, out, &err);

    cJSON_Delete(err); /* marking read sets none */
    return rc;
}
