/* cc_jobs.c - offline check, escalation and daily report passes (see cc_jobs.h). */
#include "cc_jobs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cc_alert_ops.h"
#include "cc_db.h"
#include "cc_log.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "cc_role.h"
#include "cc_time.h"

static const char sql_offline_due[] =
    "SELECT d.id, d.cold_cell_id, d.last_seen_at FROM devices d"
    " WHERE d.last_seen_at IS NOT NULL AND d.last_seen_at <= ?1"
    " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.device_id = d.id"
    " AND a.type = 'SENSOR_ERROR' AND (a.status = 'ACTIVE' OR a.first_triggered_at >="
    " d.last_seen_at)) ORDER BY d.id LIMIT ?2";
static const char sql_offline_mark[] = "UPDATE devices SET status = 'OFFLINE' WHERE id = ?1";
static const char sql_escalate_due[] =
    "SELECT id FROM alerts WHERE status = 'ACTIVE' AND escalated_at IS NULL"
    " AND first_triggered_at <= ?1 ORDER BY first_triggered_at LIMIT ?2";
static const char sql_escalate_mark[] =
    "UPDATE alerts SET escalated_at = ?2 WHERE id = ?1 AND escalated_at IS NULL"
    " AND status = 'ACTIVE'";
/* ?1 day, ?2 batch, ?3 the customer role. */
static const char sql_report_due[] =
    "SELECT u.id FROM users u WHERE u.role = ?3 AND u.disabled = 0"
    " AND NOT EXISTS (SELECT 1 FROM daily_reports r WHERE r.customer_id = u.id"
    " AND r.day = ?1) ORDER BY u.id LIMIT ?2";
/* ?1 customer, ?2 day start, ?3 day end, ?4 day "YYYY-MM-DD". Minutes out of range:
 * each reading outside min..max counts until the cell's next reading of the day. */
static const char sql_report_build[] =
    "WITH cells AS (SELECT c.id, c.name, l.id AS lid, l.name AS lname, c.min_temp, c.max_temp"
    "  FROM cold_cells c JOIN locations l ON l.id = c.location_id WHERE l.customer_id = ?1),"
    " seq AS (SELECT r.cold_cell_id AS cid, r.temperature AS t, r.ts,"
    "  lead(r.ts) OVER (PARTITION BY r.cold_cell_id ORDER BY r.ts) AS nts FROM readings r"
    "  WHERE r.cold_cell_id IN (SELECT id FROM cells) AND r.ts >= ?2 AND r.ts < ?3),"
    " stats AS (SELECT s.cid, min(s.t) AS mn, max(s.t) AS mx, avg(s.t) AS av, count(*) AS n,"
    "  sum(CASE WHEN s.nts IS NOT NULL AND (s.t < c.min_temp OR s.t > c.max_temp)"
    "  THEN s.nts - s.ts ELSE 0 END) AS oor FROM seq s JOIN cells c ON c.id = s.cid"
    "  GROUP BY s.cid),"
    " rows AS (SELECT json_object('coldCellId', c.id, 'name', c.name, 'locationId', c.lid,"
    "  'locationName', c.lname, 'minTemp', c.min_temp, 'maxTemp', c.max_temp,"
    "  'count', coalesce(st.n, 0), 'min', st.mn, 'max', st.mx, 'avg', round(st.av, 2),"
    "  'minutesOutOfRange', round(coalesce(st.oor, 0) / 60000.0, 1),"
    "  'alertsRaised', (SELECT count(*) FROM alerts a WHERE a.cold_cell_id = c.id"
    "  AND a.first_triggered_at >= ?2 AND a.first_triggered_at < ?3)) AS j"
    "  FROM cells c LEFT JOIN stats st ON st.cid = c.id ORDER BY c.lid, c.id)"
    " SELECT json_object('customerId', ?1, 'day', ?4, 'from', " CC_SQL_ISO(
        "?2") ","
              " 'to', " CC_SQL_ISO("?3") ", 'cells', (SELECT json_group_array(json(j)) FROM rows))";
static const char sql_report_insert[] =
    "INSERT INTO daily_reports (customer_id, day, payload, created_at) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (customer_id, day) DO NOTHING";

static int fail_step(struct cc_store *st, int src, const char *what)
{
    cc_log_error("db_step_failed", "%s: %s", what, sqlite3_errmsg(cc_store_db(st)));
    return src == SQLITE_NOMEM ? CC_ERR_NOMEM : CC_ERR_DB;
}

/* Steps a one-parameter UPDATE on id (and optionally ?2 = v2). *changed receives
 * whether a row changed. */
static int update_id(struct cc_store *st, const char *sql, int64_t id, int has_v2, int64_t v2,
                     int *changed)
{
    sqlite3_stmt *stmt = NULL;
    int src, rc = cc_store_stmt(st, sql, &stmt);

    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK ||
        (has_v2 ? sqlite3_bind_int64(stmt, 2, v2) : SQLITE_OK) != SQLITE_OK) {
        rc = CC_ERR_DB;
    } else {
        src = sqlite3_step(stmt);
        if (src != SQLITE_DONE)
            rc = fail_step(st, src, "job update");
        else
            *changed = sqlite3_changes(cc_store_db(st)) > 0;
    }
    cc_store_stmt_done(stmt);
    return rc;
}

int cc_jobs_offline_check(struct cc_store *st, int64_t offline_after_s, int64_t now_ms, int *raised)
{
    sqlite3_stmt *stmt = NULL;
    int64_t ids[CC_JOBS_BATCH], cells[CC_JOBS_BATCH], seen[CC_JOBS_BATCH];
    int n = 0, count = 0, src = SQLITE_DONE;
    int rc = cc_store_begin(st);

    if (rc != CC_OK)
        return rc;
    rc = cc_store_stmt(st, sql_offline_due, &stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_bind_int64(stmt, 1, now_ms - offline_after_s * 1000) != SQLITE_OK ||
        sqlite3_bind_int(stmt, 2, CC_JOBS_BATCH) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    while (n < CC_JOBS_BATCH && (src = sqlite3_step(stmt)) == SQLITE_ROW) {
        ids[n] = sqlite3_column_int64(stmt, 0);
        cells[n] = sqlite3_column_int64(stmt, 1);
        seen[n] = sqlite3_column_int64(stmt, 2);
        n++;
    }
    if (n < CC_JOBS_BATCH && src != SQLITE_DONE) {
        rc = fail_step(st, src, "offline due");
        goto end;
    }
    cc_store_stmt_done(stmt);
    stmt = NULL;
    for (int i = 0; i < n; i++) {
        char msg[CC_ALERT_MESSAGE_MAX], iso[CC_ISO8601_LEN];
        int changed = 0, created = 0;

        rc = update_id(st, sql_offline_mark, ids[i], 0, 0, &changed);
        if (rc != CC_OK)
            goto end;
        if (cc_time_format_iso8601(seen[i], iso, sizeof iso) != CC_OK)
            snprintf(iso, sizeof iso, "?");
        snprintf(msg, sizeof msg, "no reading for %lld s (last seen %s)",
                 (long long)((now_ms - seen[i]) / 1000), iso);
        rc = cc_alert_raise(st, cells[i], ids[i], CC_ALERT_SENSOR_ERROR, NAN,
                            (double)offline_after_s, msg, now_ms, now_ms, NULL, &created);
        if (rc != CC_OK)
            goto end;
        count += created;
        cc_log_info("device_offline", "device=%lld last_seen=%s", (long long)ids[i], iso);
    }
end:
    cc_store_stmt_done(stmt);
    rc = rc == CC_OK ? cc_store_commit(st) : (cc_store_rollback(st), rc);
    if (rc == CC_OK && raised != NULL)
        *raised = count;
    return rc;
}

int cc_jobs_escalate(struct cc_store *st, int64_t escalate_after_s, int64_t now_ms, int *escalated)
{
    sqlite3_stmt *stmt = NULL;
    int64_t ids[CC_JOBS_BATCH];
    int n = 0, count = 0, src = SQLITE_DONE;
    int rc = cc_store_begin(st);

    if (rc != CC_OK)
        return rc;
    rc = cc_store_stmt(st, sql_escalate_due, &stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_bind_int64(stmt, 1, now_ms - escalate_after_s * 1000) != SQLITE_OK ||
        sqlite3_bind_int(stmt, 2, CC_JOBS_BATCH) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    while (n < CC_JOBS_BATCH && (src = sqlite3_step(stmt)) == SQLITE_ROW)
        ids[n++] = sqlite3_column_int64(stmt, 0);
    if (n < CC_JOBS_BATCH && src != SQLITE_DONE) {
        rc = fail_step(st, src, "escalation due");
        goto end;
    }
    cc_store_stmt_done(stmt);
    stmt = NULL;
    for (int i = 0; i < n; i++) {
        int changed = 0;

        rc = update_id(st, sql_escalate_mark, ids[i], 1, now_ms, &changed);
        if (rc != CC_OK)
            goto end;
        if (!changed)
            continue;
        rc = cc_notify_escalation(st, ids[i], now_ms);
        if (rc != CC_OK)
            goto end;
        count++;
        cc_log_info("alert_escalated", "id=%lld", (long long)ids[i]);
    }
end:
    cc_store_stmt_done(stmt);
    rc = rc == CC_OK ? cc_store_commit(st) : (cc_store_rollback(st), rc);
    if (rc == CC_OK && escalated != NULL)
        *escalated = count;
    return rc;
}

int64_t cc_jobs_report_day(int report_minute, int64_t now_ms)
{
    int64_t today = now_ms - (now_ms % CC_DAY_MS);
    int64_t minute = (now_ms - today) / 60000;

    return minute >= report_minute ? today - CC_DAY_MS : today - 2 * CC_DAY_MS;
}

/* The report's summary sentence from its JSON. */
static void summary(const char *json, const char *day, char *msg, size_t msglen)
{
    cJSON *root = cJSON_Parse(json);
    const cJSON *cells = cJSON_GetObjectItemCaseSensitive(root, "cells");
    const cJSON *c;
    double oor = 0;
    int n = 0, alerts = 0;

    cJSON_ArrayForEach(c, cells)
    {
        n++;
        alerts += (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "alertsRaised"));
        oor += cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "minutesOutOfRange"));
    }
    cJSON_Delete(root);
    snprintf(msg, msglen, "%s: %d cold cell%s, %d alert%s raised, %.1f minutes out of range", day,
             n, n == 1 ? "" : "s", alerts, alerts == 1 ? "" : "s", oor);
}

/* Builds, stores and notifies one customer's report, inside the caller's transaction. */
static int report_one(struct cc_store *st, int64_t customer, int64_t day_ms, const char *day,
                      int64_t now_ms, int *made)
{
    sqlite3_stmt *stmt = NULL;
    char *json = NULL;
    char msg[256], title[64];
    int src, changed = 0, rc = cc_store_stmt(st, sql_report_build, &stmt);

    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, customer) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, day_ms) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, day_ms + CC_DAY_MS) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 4, day, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_ROW) {
        rc = fail_step(st, src, "report build");
        goto out;
    }
    json = strdup((const char *)sqlite3_column_text(stmt, 0));
    if (json == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    cc_store_stmt_done(stmt);
    stmt = NULL;
    rc = cc_store_stmt(st, sql_report_insert, &stmt);
    if (rc != CC_OK)
        goto out;
    if (sqlite3_bind_int64(stmt, 1, customer) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, day, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 3, json, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 4, now_ms) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_DONE) {
        rc = fail_step(st, src, "report insert");
        goto out;
    }
    changed = sqlite3_changes(cc_store_db(st)) > 0;
    if (changed) {
        summary(json, day, msg, sizeof msg);
        snprintf(title, sizeof title, "Daily report %s", day);
        rc = cc_notify_daily_report(st, customer, title, msg, json, now_ms);
        if (rc != CC_OK)
            goto out;
        *made += 1;
    }
    rc = CC_OK;
out:
    cc_store_stmt_done(stmt);
    free(json);
    return rc;
}

int cc_jobs_daily_report(struct cc_store *st, int64_t day_ms, int64_t now_ms, int *made)
{
    char day[CC_ISO8601_LEN];
    int count = 0;
    int rc;

    if (cc_time_format_iso8601(day_ms, day, sizeof day) != CC_OK)
        return CC_ERR_INTERNAL;
    day[10] = '\0'; /* YYYY-MM-DD */
    for (;;) {
        sqlite3_stmt *stmt = NULL;
        int64_t ids[CC_JOBS_BATCH];
        int n = 0, src = SQLITE_DONE;

        rc = cc_store_begin(st);
        if (rc != CC_OK)
            break;
        rc = cc_store_stmt(st, sql_report_due, &stmt);
        if (rc == CC_OK && (sqlite3_bind_text(stmt, 1, day, -1, SQLITE_STATIC) != SQLITE_OK ||
                            sqlite3_bind_int(stmt, 2, CC_JOBS_BATCH) != SQLITE_OK ||
                            sqlite3_bind_text(stmt, 3, cc_role_name(CC_ROLE_CUSTOMER), -1,
                                              SQLITE_STATIC) != SQLITE_OK))
            rc = CC_ERR_DB;
        while (rc == CC_OK && n < CC_JOBS_BATCH && (src = sqlite3_step(stmt)) == SQLITE_ROW)
            ids[n++] = sqlite3_column_int64(stmt, 0);
        if (rc == CC_OK && n < CC_JOBS_BATCH && src != SQLITE_DONE)
            rc = fail_step(st, src, "report due");
        cc_store_stmt_done(stmt);
        for (int i = 0; rc == CC_OK && i < n; i++)
            rc = report_one(st, ids[i], day_ms, day, now_ms, &count);
        rc = rc == CC_OK ? cc_store_commit(st) : (cc_store_rollback(st), rc);
        if (rc != CC_OK || n < CC_JOBS_BATCH)
            break;
    }
    if (count > 0)
        cc_log_info("daily_report", "day=%s reports=%d", day, count);
    if (rc == CC_OK && made != NULL)
        *made = count;
    return rc;
}
