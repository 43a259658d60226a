/* cc_alert_ops.c - raise, re-trigger and resolve alerts, with their notifications. */
#include "cc_alert_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_notify.h"
#include "cc_rc.h"

static const char *const type_names[CC_ALERT_TYPE_COUNT] = {
    [CC_ALERT_HIGH_TEMP] = "HIGH_TEMP",
    [CC_ALERT_LOW_TEMP] = "LOW_TEMP",
    [CC_ALERT_POWER_LOSS] = "POWER_LOSS",
    [CC_ALERT_SENSOR_ERROR] = "SENSOR_ERROR",
};

/* The partial unique index alerts_one_active is the conflict target (PostgreSQL needs its
 * predicate repeated): two writers can never both insert, and the loser's insert becomes
 * the re-trigger. trigger_count is 1 only for a row this statement inserted. The CASE is
 * the later of two times in both dialects (SQLite's two-argument max is PostgreSQL's
 * GREATEST); the existing row is named by its table, which PostgreSQL requires.
 * RETURNING gives the alert object of a new alert (JSON of the row as written, the text
 * cc_notify would read back), and NULL for a re-trigger, which notifies nobody. */
#define SQL_RAISE(ALERT_JSON)                                                                      \
    "INSERT INTO alerts (cold_cell_id, device_id, type, status, value, threshold, message,"        \
    " first_triggered_at, last_triggered_at, trigger_count)"                                       \
    " VALUES ($1, $2, $3, 'ACTIVE', $4, $5, $6, $7, $7, 1)"                                        \
    " ON CONFLICT (cold_cell_id, device_id, type) WHERE status = 'ACTIVE' DO UPDATE SET"           \
    " last_triggered_at = CASE WHEN excluded.last_triggered_at > alerts.last_triggered_at"         \
    " THEN excluded.last_triggered_at ELSE alerts.last_triggered_at END,"                          \
    " trigger_count = alerts.trigger_count + 1, value = excluded.value"                            \
    " RETURNING id, trigger_count, cold_cell_id,"                                                  \
    " CASE WHEN trigger_count = 1 THEN " ALERT_JSON " END"
static const char sql_raise[] = SQL_RAISE(CC_ALERT_JSON_SQL_OF(""));
static const char sql_raise_pg[] = SQL_RAISE(CC_ALERT_JSON_SQL_PG_OF(""));
/* A row (the cell and the alert object after the change) only when this statement
 * resolved the alert. */
#define SQL_RESOLVE(ALERT_JSON)                                                                    \
    "UPDATE alerts SET status = 'RESOLVED', resolved_at = CASE WHEN CAST($2 AS bigint) >"          \
    " last_triggered_at THEN CAST($2 AS bigint) ELSE last_triggered_at END,"                       \
    " resolved_by = $3, resolution_note = $4 WHERE id = $1 AND status = 'ACTIVE'"                  \
    " RETURNING cold_cell_id, " ALERT_JSON
static const char sql_resolve[] = SQL_RESOLVE(CC_ALERT_JSON_SQL_OF(""));
static const char sql_resolve_pg[] = SQL_RESOLVE(CC_ALERT_JSON_SQL_PG_OF(""));

static const char *pick(struct cc_store *st, const char *lite, const char *pg)
{
    return cc_store_dialect(st) == CC_DIALECT_PG ? pg : lite;
}

const char *cc_alert_type_name(int type)
{
    if (type < 0 || type >= CC_ALERT_TYPE_COUNT)
        return "";
    return type_names[type];
}

int cc_alert_type_parse(const char *s)
{
    for (int i = 0; s != NULL && i < CC_ALERT_TYPE_COUNT; i++) {
        if (strcmp(s, type_names[i]) == 0)
            return i;
    }
    return -1;
}

static int bind_real_or_null(struct cc_stmt *stmt, int n, double v)
{
    if (isnan(v))
        return cc_stmt_bind_null(stmt, n);
    return cc_stmt_bind_double(stmt, n, v);
}

/* A copy of a text column (NULL as "{}"), or NULL with *rc = CC_ERR_NOMEM. */
static char *dup_json(struct cc_stmt *stmt, int col, int *rc)
{
    const char *text = cc_stmt_column_text(stmt, col);
    char *copy = strdup(text != NULL ? text : "{}");

    if (copy == NULL)
        *rc = CC_ERR_NOMEM;
    return copy;
}

int cc_alert_raise(struct cc_store *st, int64_t cold_cell_id, int64_t device_id, int type,
                   double value, double threshold, const char *message, int64_t at_ms,
                   int64_t now_ms, int64_t *alert_id, int *created)
{
    struct cc_stmt *stmt = NULL;
    int64_t id = 0, count = 0, cell = 0;
    char *json = NULL;
    int rc;

    if (type < 0 || type >= CC_ALERT_TYPE_COUNT)
        return CC_ERR_INTERNAL;
    rc = cc_stmt_prepare(st, pick(st, sql_raise, sql_raise_pg), &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, cold_cell_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 2, device_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 3, type_names[type]);
    if (rc == CC_OK)
        rc = bind_real_or_null(stmt, 4, value);
    if (rc == CC_OK)
        rc = bind_real_or_null(stmt, 5, threshold);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 6, message != NULL ? message : "");
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 7, at_ms);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) {
        rc = CC_OK;
        id = cc_stmt_column_int64(stmt, 0);
        count = cc_stmt_column_int64(stmt, 1);
        cell = cc_stmt_column_int64(stmt, 2);
        if (count == 1)
            json = dup_json(stmt, 3, &rc);
        if (rc == CC_OK)
            rc = cc_stmt_step(stmt);
    } else if (rc == CC_OK) {
        rc = CC_ERR_DB; /* RETURNING gives a row on insert and on update alike */
    }
    cc_stmt_release(stmt);
    if (rc == CC_OK && count == 1)
        rc = cc_notify_alert_raised_obj(st, id, cell, json, now_ms);
    free(json);
    if (rc != CC_OK)
        return rc == CC_ERR_NOMEM ? rc : CC_ERR_DB;
    if (count == 1)
        cc_log_info("alert_raised", "id=%lld type=%s cell=%lld device=%lld", (long long)id,
                    type_names[type], (long long)cold_cell_id, (long long)device_id);
    if (alert_id != NULL)
        *alert_id = id;
    if (created != NULL)
        *created = count == 1;
    return CC_OK;
}

int cc_alert_resolve(struct cc_store *st, int64_t alert_id, int64_t at_ms, int64_t by_user,
                     const char *note, int64_t now_ms, int *resolved)
{
    struct cc_stmt *stmt = NULL;
    int64_t cell = 0;
    char *json = NULL;
    int rc;

    rc = cc_stmt_prepare(st, pick(st, sql_resolve, sql_resolve_pg), &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, alert_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 2, at_ms);
    if (rc == CC_OK)
        rc = by_user > 0 ? cc_stmt_bind_int64(stmt, 3, by_user) : cc_stmt_bind_null(stmt, 3);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 4, note); /* NULL binds NULL */
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) { /* it was ACTIVE: this statement resolved it */
        rc = CC_OK;
        cell = cc_stmt_column_int64(stmt, 0);
        json = dup_json(stmt, 1, &rc);
        if (rc == CC_OK)
            rc = cc_stmt_step(stmt);
    }
    cc_stmt_release(stmt);
    if (rc == CC_OK && json != NULL)
        rc = cc_notify_alert_resolved_obj(st, alert_id, cell, json, now_ms);
    if (rc != CC_OK) {
        free(json);
        return rc == CC_ERR_NOMEM ? rc : CC_ERR_DB;
    }
    if (json != NULL)
        cc_log_info("alert_resolved", "id=%lld by=%lld", (long long)alert_id,
                    (long long)(by_user > 0 ? by_user : 0));
    if (resolved != NULL)
        *resolved = json != NULL;
    free(json);
    return CC_OK;
}
