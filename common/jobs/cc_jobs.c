/* cc_jobs.c - offline check, escalation and daily report passes (see cc_jobs.h), on
 * SQLite and PostgreSQL through cc_dbi.h. The daily report's JSON is built by the
 * database in each dialect's words (a pair of texts): SQLite's text is the one it always
 * ran, so its reports stay byte for byte what they were. */
#include "cc_jobs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cc_alert_ops.h"
#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "cc_role.h"
#include "cc_time.h"

/* The due queries: $1 the cutoff (the day for reports), $2 the batch, $3 the customer
 * role (reports). */
static const char sql_offline_due[] =
    "SELECT d.id, d.cold_cell_id, d.last_seen_at FROM devices d"
    " WHERE d.last_seen_at IS NOT NULL AND d.last_seen_at <= $1"
    " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.device_id = d.id"
    " AND a.type = 'SENSOR_ERROR' AND (a.status = 'ACTIVE' OR a.first_triggered_at >="
    " d.last_seen_at)) ORDER BY d.id LIMIT $2";
static const char sql_offline_mark[] = "UPDATE devices SET status = 'OFFLINE' WHERE id = $1";
static const char sql_escalate_due[] =
    "SELECT id FROM alerts WHERE status = 'ACTIVE' AND escalated_at IS NULL"
    " AND first_triggered_at <= $1 ORDER BY first_triggered_at LIMIT $2";
static const char sql_escalate_mark[] =
    "UPDATE alerts SET escalated_at = $2 WHERE id = $1 AND escalated_at IS NULL"
    " AND status = 'ACTIVE'";
static const char sql_report_due[] =
    "SELECT u.id FROM users u WHERE u.role = $3 AND u.disabled = 0"
    " AND NOT EXISTS (SELECT 1 FROM daily_reports r WHERE r.customer_id = u.id"
    " AND r.day = $1) ORDER BY u.id LIMIT $2";
/* $1 customer, $2 day start, $3 day end, $4 day "YYYY-MM-DD". Minutes out of range:
 * each reading outside min..max counts until the cell's next reading of the day. */
static const char sql_report_build[] =
    "WITH cells AS (SELECT c.id, c.name, l.id AS lid, l.name AS lname, c.min_temp, c.max_temp"
    "  FROM cold_cells c JOIN locations l ON l.id = c.location_id WHERE l.customer_id = $1),"
    " seq AS (SELECT r.cold_cell_id AS cid, r.temperature AS t, r.ts,"
    "  lead(r.ts) OVER (PARTITION BY r.cold_cell_id ORDER BY r.ts) AS nts FROM readings r"
    "  WHERE r.cold_cell_id IN (SELECT id FROM cells) AND r.ts >= $2 AND r.ts < $3),"
    " stats AS (SELECT s.cid, min(s.t) AS mn, max(s.t) AS mx, avg(s.t) AS av, count(*) AS n,"
    "  sum(CASE WHEN s.nts IS NOT NULL AND (s.t < c.min_temp OR s.t > c.max_temp)"
    "  THEN s.nts - s.ts ELSE 0 END) AS oor FROM seq s JOIN cells c ON c.id = s.cid"
    "  GROUP BY s.cid),"
    " rows AS (SELECT json_object('coldCellId', c.id, 'name', c.name, 'locationId', c.lid,"
    "  'locationName', c.lname, 'minTemp', c.min_temp, 'maxTemp', c.max_temp,"
    "  'count', coalesce(st.n, 0), 'min', st.mn, 'max', st.mx, 'avg', round(st.av, 2),"
    "  'minutesOutOfRange', round(coalesce(st.oor, 0) / 60000.0, 1),"
    "  'alertsRaised', (SELECT count(*) FROM alerts a WHERE a.cold_cell_id = c.id"
    "  AND a.first_triggered_at >= $2 AND a.first_triggered_at < $3)) AS j"
    "  FROM cells c LEFT JOIN stats st ON st.cid = c.id ORDER BY c.lid, c.id)"
    " SELECT json_object('customerId', $1, 'day', $4, 'from', " CC_SQL_ISO(
        "$2") ","
              " 'to', " CC_SQL_ISO("$3") ", 'cells', (SELECT json_group_array(json(j)) FROM rows))";
/* The same on PostgreSQL: json_build_object, json_agg in the same order ('[]' for no
 * cell, as json_group_array gives), round on numeric (PostgreSQL has no round of a
 * double to n places), and types for the parameters where the context gives none. */
static const char sql_report_build_pg[] =
    "WITH cells AS (SELECT c.id, c.name, l.id AS lid, l.name AS lname, c.min_temp, c.max_temp"
    "  FROM cold_cells c JOIN locations l ON l.id = c.location_id"
    "  WHERE l.customer_id = CAST($1 AS bigint)),"
    " seq AS (SELECT r.cold_cell_id AS cid, r.temperature AS t, r.ts,"
    "  lead(r.ts) OVER (PARTITION BY r.cold_cell_id ORDER BY r.ts) AS nts FROM readings r"
    "  WHERE r.cold_cell_id IN (SELECT id FROM cells) AND r.ts >= CAST($2 AS bigint)"
    "  AND r.ts < CAST($3 AS bigint)),"
    " stats AS (SELECT s.cid, min(s.t) AS mn, max(s.t) AS mx, avg(s.t) AS av, count(*) AS n,"
    "  sum(CASE WHEN s.nts IS NOT NULL AND (s.t < c.min_temp OR s.t > c.max_temp)"
    "  THEN s.nts - s.ts ELSE 0 END) AS oor FROM seq s JOIN cells c ON c.id = s.cid"
    "  GROUP BY s.cid),"
    " cellrows AS (SELECT c.lid, c.id, json_build_object('coldCellId', c.id, 'name', c.name,"
    "  'locationId', c.lid, 'locationName', c.lname, 'minTemp', c.min_temp,"
    "  'maxTemp', c.max_temp, 'count', coalesce(st.n, 0), 'min', st.mn, 'max', st.mx,"
    "  'avg', round(CAST(st.av AS numeric), 2),"
    "  'minutesOutOfRange', round(coalesce(st.oor, 0) / 60000.0, 1),"
    "  'alertsRaised', (SELECT count(*) FROM alerts a WHERE a.cold_cell_id = c.id"
    "  AND a.first_triggered_at >= CAST($2 AS bigint)"
    "  AND a.first_triggered_at < CAST($3 AS bigint))) AS j"
    "  FROM cells c LEFT JOIN stats st ON st.cid = c.id)"
    " SELECT CAST(json_build_object('customerId', CAST($1 AS bigint), 'day', CAST($4 AS text),"
    " 'from', " CC_SQL_ISO_PG(
        "CAST($2 AS bigint)") ","
                              " 'to', " CC_SQL_ISO_PG(
                                  "CAST($3 AS bigint)") ","
                                                        " 'cells', (SELECT coalesce(json_agg(j "
                                                        "ORDER BY lid, id), CAST('[]' AS json))"
                                                        " FROM cellrows)) AS text)";
static const char sql_report_insert[] =
    "INSERT INTO daily_reports (customer_id, day, payload, created_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (customer_id, day) DO NOTHING";
/* A pass's lock on PostgreSQL, held until its transaction ends (cc_jobs_pass_lock). */
static const char sql_try_lock[] = "SELECT pg_try_advisory_xact_lock(CAST($1 AS bigint))";

/* CC_OK, CC_ERR_NOMEM or CC_ERR_DB for any other failure (cc_dbi logged it). */
static int db_rc(int rc)
{
    return rc == CC_OK || rc == CC_ERR_NOMEM ? rc : CC_ERR_DB;
}

int cc_jobs_pass_lock(struct cc_store *st, int64_t key, int *got)
{
    struct cc_stmt *stmt = NULL;
    int rc;

    *got = 1;
    if (cc_store_dialect(st) != CC_DIALECT_PG)
        return CC_OK; /* BEGIN IMMEDIATE already made this the only writer */
    *got = 0;
    rc = cc_stmt_prepare(st, sql_try_lock, &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, key);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) {
        *got = cc_stmt_column_int64(stmt, 0) != 0;
        rc = cc_stmt_step(stmt);
    }
    cc_stmt_release(stmt);
    return db_rc(rc);
}

/* Begins a pass's transaction and takes its lock. *got 0: another process runs the same
 * pass now (PostgreSQL); the transaction is then rolled back here. */
static int pass_begin(struct cc_store *st, int64_t key, int *got)
{
    int rc = cc_store_begin(st);

    *got = 0;
    if (rc != CC_OK)
        return rc;
    rc = cc_jobs_pass_lock(st, key, got);
    if (rc != CC_OK || !*got)
        cc_store_rollback(st);
    return rc;
}

/* Ends a pass's transaction: commit after rc == CC_OK, else roll back and keep rc. */
static int pass_end(struct cc_store *st, int rc)
{
    if (rc == CC_OK)
        return cc_store_commit(st);
    cc_store_rollback(st);
    return rc;
}

/* Steps an UPDATE on $1 = id (and $2 = v2 when has_v2). *changed receives whether a row
 * changed. */
static int update_id(struct cc_store *st, const char *sql, int64_t id, int has_v2, int64_t v2,
                     int *changed)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, sql, &stmt);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, id);
    if (rc == CC_OK && has_v2)
        rc = cc_stmt_bind_int64(stmt, 2, v2);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_OK)
        *changed = cc_stmt_changes(stmt) > 0;
    cc_stmt_release(stmt);
    return db_rc(rc);
}

/* Reads up to CC_JOBS_BATCH rows of a due query ($1 the cutoff, or day when not NULL; $2
 * the batch; $3 role when not NULL) whose first ncols (<= 3) columns are integers, into
 * cols[c][row]. *n receives the rows read. */
static int due_rows(struct cc_store *st, const char *sql, int64_t cutoff, const char *day,
                    const char *role, int ncols, int64_t cols[][CC_JOBS_BATCH], int *n)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, sql, &stmt);

    *n = 0;
    if (rc == CC_OK)
        rc = day != NULL ? cc_stmt_bind_text(stmt, 1, day) : cc_stmt_bind_int64(stmt, 1, cutoff);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 2, CC_JOBS_BATCH);
    if (rc == CC_OK && role != NULL)
        rc = cc_stmt_bind_text(stmt, 3, role);
    while (rc == CC_OK && *n < CC_JOBS_BATCH && (rc = cc_stmt_step(stmt)) == CC_ROW) {
        for (int c = 0; c < ncols; c++)
            cols[c][*n] = cc_stmt_column_int64(stmt, c);
        (*n)++;
        rc = CC_OK;
    }
    cc_stmt_release(stmt);
    return db_rc(rc);
}

int cc_jobs_offline_check(struct cc_store *st, int64_t offline_after_s, int64_t now_ms, int *raised)
{
    int64_t due[3][CC_JOBS_BATCH]; /* device id, cell id, last_seen_at */
    int n = 0, count = 0, got = 0;
    int rc = pass_begin(st, CC_JOBS_LOCK_OFFLINE, &got);

    if (rc != CC_OK || !got)
        goto done;
    rc = due_rows(st, sql_offline_due, now_ms - offline_after_s * 1000, NULL, NULL, 3, due, &n);
    for (int i = 0; i < n && rc == CC_OK; i++) {
        char msg[CC_ALERT_MESSAGE_MAX], iso[CC_ISO8601_LEN];
        int changed = 0, created = 0;

        rc = update_id(st, sql_offline_mark, due[0][i], 0, 0, &changed);
        if (rc != CC_OK)
            break;
        if (cc_time_format_iso8601(due[2][i], iso, sizeof iso) != CC_OK)
            snprintf(iso, sizeof iso, "?");
        snprintf(msg, sizeof msg, "no reading for %lld s (last seen %s)",
                 (long long)((now_ms - due[2][i]) / 1000), iso);
        rc = cc_alert_raise(st, due[1][i], due[0][i], CC_ALERT_SENSOR_ERROR, NAN,
                            (double)offline_after_s, msg, now_ms, now_ms, NULL, &created);
        if (rc != CC_OK)
            break;
        count += created;
        cc_log_info("device_offline", "device=%lld last_seen=%s", (long long)due[0][i], iso);
    }
    rc = pass_end(st, rc);
done:
    if (rc == CC_OK && raised != NULL)
        *raised = count;
    return rc;
}

int cc_jobs_escalate(struct cc_store *st, int64_t escalate_after_s, int64_t now_ms, int *escalated)
{
    int64_t ids[1][CC_JOBS_BATCH];
    int n = 0, count = 0, got = 0;
    int rc = pass_begin(st, CC_JOBS_LOCK_ESCALATE, &got);

    if (rc != CC_OK || !got)
        goto done;
    rc = due_rows(st, sql_escalate_due, now_ms - escalate_after_s * 1000, NULL, NULL, 1, ids, &n);
    for (int i = 0; i < n && rc == CC_OK; i++) {
        int changed = 0;

        rc = update_id(st, sql_escalate_mark, ids[0][i], 1, now_ms, &changed);
        if (rc != CC_OK || !changed)
            continue;
        rc = cc_notify_escalation(st, ids[0][i], now_ms);
        if (rc != CC_OK)
            break;
        count++;
        cc_log_info("alert_escalated", "id=%lld", (long long)ids[0][i]);
    }
    rc = pass_end(st, rc);
done:
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

/* Builds the report of one customer and day: *json (malloc'd) on CC_OK. */
static int report_build(struct cc_store *st, int64_t customer, int64_t day_ms, const char *day,
                        char **json)
{
    struct cc_stmt *stmt = NULL;
    const char *sql =
        cc_store_dialect(st) == CC_DIALECT_PG ? sql_report_build_pg : sql_report_build;
    int rc = cc_stmt_prepare(st, sql, &stmt);

    *json = NULL;
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, customer);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 2, day_ms);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 3, day_ms + CC_DAY_MS);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 4, day);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) {
        const char *text = cc_stmt_column_text(stmt, 0);

        *json = strdup(text != NULL ? text : "{}");
        rc = *json != NULL ? CC_OK : CC_ERR_NOMEM;
    } else if (rc == CC_OK) {
        rc = CC_ERR_DB; /* an aggregate query always has its row */
    }
    cc_stmt_release(stmt);
    return db_rc(rc);
}

/* Builds, stores and notifies one customer's report, inside the caller's transaction. */
static int report_one(struct cc_store *st, int64_t customer, int64_t day_ms, const char *day,
                      int64_t now_ms, int *made)
{
    struct cc_stmt *stmt = NULL;
    char *json = NULL;
    char msg[256], title[64];
    int changed = 0;
    int rc = report_build(st, customer, day_ms, day, &json);

    if (rc != CC_OK)
        return rc;
    rc = cc_stmt_prepare(st, sql_report_insert, &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_all(stmt, "itti", customer, day, json, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_OK)
        changed = cc_stmt_changes(stmt) > 0;
    cc_stmt_release(stmt);
    rc = db_rc(rc);
    if (rc == CC_OK && changed) {
        summary(json, day, msg, sizeof msg);
        snprintf(title, sizeof title, "Daily report %s", day);
        rc = cc_notify_daily_report(st, customer, title, msg, json, now_ms);
        if (rc == CC_OK)
            *made += 1;
    }
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
        int64_t ids[1][CC_JOBS_BATCH];
        int n = 0, got = 0;

        rc = pass_begin(st, CC_JOBS_LOCK_REPORT, &got);
        if (rc != CC_OK || !got)
            break;
        rc = due_rows(st, sql_report_due, 0, day, cc_role_name(CC_ROLE_CUSTOMER), 1, ids, &n);
        for (int i = 0; rc == CC_OK && i < n; i++)
            rc = report_one(st, ids[0][i], day_ms, day, now_ms, &count);
        rc = pass_end(st, rc);
        if (rc != CC_OK || n < CC_JOBS_BATCH)
            break;
    }
    if (count > 0)
        cc_log_info("daily_report", "day=%s reports=%d", day, count);
    if (rc == CC_OK && made != NULL)
        *made = count;
    return rc;
}
