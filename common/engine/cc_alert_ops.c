/* cc_alert_ops.c - raise, re-trigger and resolve alerts, with their notifications. */
#include "cc_alert_ops.h"

#include <math.h>
#include <string.h>

#include "cc_log.h"
#include "cc_notify.h"
#include "cc_rc.h"

static const char *const type_names[CC_ALERT_TYPE_COUNT] = {
    [CC_ALERT_HIGH_TEMP] = "HIGH_TEMP",
    [CC_ALERT_LOW_TEMP] = "LOW_TEMP",
    [CC_ALERT_POWER_LOSS] = "POWER_LOSS",
    [CC_ALERT_SENSOR_ERROR] = "SENSOR_ERROR",
};

/* The partial unique index alerts_one_active is the conflict target: two writers can
 * never both insert, and the loser's insert becomes the re-trigger. trigger_count is 1
 * only for a row this statement inserted. */
static const char sql_raise[] =
    "INSERT INTO alerts (cold_cell_id, device_id, type, status, value, threshold, message,"
    " first_triggered_at, last_triggered_at, trigger_count)"
    " VALUES (?1, ?2, ?3, 'ACTIVE', ?4, ?5, ?6, ?7, ?7, 1)"
    " ON CONFLICT (cold_cell_id, device_id, type) WHERE status = 'ACTIVE' DO UPDATE SET"
    " last_triggered_at = max(last_triggered_at, excluded.last_triggered_at),"
    " trigger_count = trigger_count + 1, value = excluded.value"
    " RETURNING id, trigger_count";
static const char sql_resolve[] =
    "UPDATE alerts SET status = 'RESOLVED', resolved_at = max(?2, last_triggered_at),"
    " resolved_by = ?3, resolution_note = ?4 WHERE id = ?1 AND status = 'ACTIVE'";

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

static int bind_real_or_null(sqlite3_stmt *stmt, int idx, double v)
{
    if (isnan(v))
        return sqlite3_bind_null(stmt, idx);
    return sqlite3_bind_double(stmt, idx, v);
}

static int step_rc(struct cc_store *st, int src, const char *what)
{
    cc_log_error("db_step_failed", "%s: %s", what, sqlite3_errmsg(cc_store_db(st)));
    return src == SQLITE_NOMEM ? CC_ERR_NOMEM : CC_ERR_DB;
}

int cc_alert_raise(struct cc_store *st, int64_t cold_cell_id, int64_t device_id, int type,
                   double value, double threshold, const char *message, int64_t at_ms,
                   int64_t now_ms, int64_t *alert_id, int *created)
{
    sqlite3_stmt *stmt = NULL;
    int64_t id = 0, count = 0;
    int src, rc;

    if (type < 0 || type >= CC_ALERT_TYPE_COUNT)
        return CC_ERR_INTERNAL;
    rc = cc_store_stmt(st, sql_raise, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, cold_cell_id) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, device_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 3, type_names[type], -1, SQLITE_STATIC) != SQLITE_OK ||
        bind_real_or_null(stmt, 4, value) != SQLITE_OK ||
        bind_real_or_null(stmt, 5, threshold) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 6, message != NULL ? message : "", -1, SQLITE_STATIC) !=
            SQLITE_OK ||
        sqlite3_bind_int64(stmt, 7, at_ms) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_ROW) {
        rc = step_rc(st, src, "alert raise");
        goto out;
    }
    id = sqlite3_column_int64(stmt, 0);
    count = sqlite3_column_int64(stmt, 1);
    src = sqlite3_step(stmt);
    if (src != SQLITE_DONE) {
        rc = step_rc(st, src, "alert raise");
        goto out;
    }
    cc_store_stmt_done(stmt);
    stmt = NULL;
    if (count == 1) {
        rc = cc_notify_alert_raised(st, id, now_ms);
        if (rc != CC_OK)
            goto out;
        cc_log_info("alert_raised", "id=%lld type=%s cell=%lld device=%lld", (long long)id,
                    type_names[type], (long long)cold_cell_id, (long long)device_id);
    }
    if (alert_id != NULL)
        *alert_id = id;
    if (created != NULL)
        *created = count == 1;
    rc = CC_OK;
out:
    cc_store_stmt_done(stmt);
    return rc;
}

int cc_alert_resolve(struct cc_store *st, int64_t alert_id, int64_t at_ms, int64_t by_user,
                     const char *note, int64_t now_ms, int *resolved)
{
    sqlite3_stmt *stmt = NULL;
    int changed;
    int src, rc;

    rc = cc_store_stmt(st, sql_resolve, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, alert_id) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, at_ms) != SQLITE_OK ||
        (by_user > 0 ? sqlite3_bind_int64(stmt, 3, by_user) : sqlite3_bind_null(stmt, 3)) !=
            SQLITE_OK ||
        (note != NULL ? sqlite3_bind_text(stmt, 4, note, -1, SQLITE_STATIC)
                      : sqlite3_bind_null(stmt, 4)) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_DONE) {
        rc = step_rc(st, src, "alert resolve");
        goto out;
    }
    changed = sqlite3_changes(cc_store_db(st)) > 0;
    cc_store_stmt_done(stmt);
    stmt = NULL;
    if (changed) {
        rc = cc_notify_alert_resolved(st, alert_id, now_ms);
        if (rc != CC_OK)
            goto out;
        cc_log_info("alert_resolved", "id=%lld by=%lld", (long long)alert_id,
                    (long long)(by_user > 0 ? by_user : 0));
    }
    if (resolved != NULL)
        *resolved = changed;
    rc = CC_OK;
out:
    cc_store_stmt_done(stmt);
    return rc;
}
