/* cc_alert_ops.c - raise, re-trigger and resolve alerts, with their notifications. */
#include "cc_alert_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cc_alert_json.h"
#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "cc_stats.h"

/* The type's index counts it in cc_stats (the same names in the same order). */
_Static_assert(CC_ALERT_TYPE_COUNT == CC_STATS_ALERT_TYPES, "one stat counter per alert type");

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
 * GREATEST); the existing row is named by its table, which PostgreSQL requires. */
#define SQL_RAISE                                                                                  \
    "INSERT INTO alerts (cold_cell_id, device_id, type, status, value, threshold, message,"        \
    " first_triggered_at, last_triggered_at, trigger_count)"                                       \
    " VALUES ($1, $2, $3, 'ACTIVE', $4, $5, $6, $7, $7, 1)"                                        \
    " ON CONFLICT (cold_cell_id, device_id, type) WHERE status = 'ACTIVE' DO UPDATE SET"           \
    " last_triggered_at = CASE WHEN excluded.last_triggered_at > alerts.last_triggered_at"         \
    " THEN excluded.last_triggered_at ELSE alerts.last_triggered_at END,"                          \
    " trigger_count = alerts.trigger_count + 1, value = excluded.value"
/* What the raise gives back: the id, trigger_count, the cell and the alert object of a
 * new alert (JSON of the row as written, the text cc_notify would read back), NULL for a
 * re-trigger, which notifies nobody. PostgreSQL returns it from the upsert (RETURNING).
 * SQLite runs a plain upsert: SQLite 3.40 puts every RETURNING result in a temporary
 * b-tree before handing out the first row (test_alert:
 * alert_writes_build_no_temporary_btree). A row it inserted is known from what was bound
 * and its id (cc_stmt_inserted_id), its object written in C (cc_alert_json.h); only a
 * re-trigger reads the row back by alerts_one_active, and needs no object. */
static const char sql_raise[] = SQL_RAISE;
static const char sql_retriggered[] =
    "SELECT a.id, a.trigger_count, a.cold_cell_id FROM alerts a WHERE a.cold_cell_id = $1"
    " AND a.device_id = $2 AND a.type = $3 AND a.status = 'ACTIVE'";
static const char sql_raise_pg[] =
    SQL_RAISE " RETURNING id, trigger_count, cold_cell_id, CASE WHEN trigger_count = 1 "
              "THEN " CC_ALERT_JSON_SQL_PG_OF("") " END";
/* Resolves the alert if it is ACTIVE. PostgreSQL returns the cell, the type (which the
 * count of resolved alerts needs) and the alert object after the change; SQLite, for the reason
 * above, reads the row's columns back and writes the object in C. */
#define SQL_RESOLVE                                                                                \
    "UPDATE alerts SET status = 'RESOLVED', resolved_at = CASE WHEN CAST($2 AS bigint) >"          \
    " last_triggered_at THEN CAST($2 AS bigint) ELSE last_triggered_at END,"                       \
    " resolved_by = $3, resolution_note = $4 WHERE id = $1 AND status = 'ACTIVE'"
static const char sql_resolve[] = SQL_RESOLVE;
static const char sql_resolve_pg[] =
    SQL_RESOLVE " RETURNING cold_cell_id, type, " CC_ALERT_JSON_SQL_PG_OF("");

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

/* Binds the cell, device and type as $1..$3 (the raise and its read-back). */
static int bind_key(struct cc_stmt *stmt, int64_t cold_cell_id, int64_t device_id, int type)
{
    int rc = cc_stmt_bind_int64(stmt, 1, cold_cell_id);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 2, device_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 3, type_names[type]);
    return rc;
}

/* The alert as raised: on PostgreSQL the upsert's own row (with the object of a new
 * alert in *json), on SQLite a re-triggered row read back by its key (no object). */
static int raised_row(struct cc_store *st, struct cc_stmt *upsert, int64_t cold_cell_id,
                      int64_t device_id, int type, int64_t *id, int64_t *count, int64_t *cell,
                      char **json)
{
    struct cc_stmt *stmt = upsert;
    int rc = CC_OK;

    if (cc_store_dialect(st) != CC_DIALECT_PG) {
        rc = cc_stmt_prepare(st, sql_retriggered, &stmt);
        if (rc == CC_OK)
            rc = bind_key(stmt, cold_cell_id, device_id, type);
    }
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) {
        rc = CC_OK;
        *id = cc_stmt_column_int64(stmt, 0);
        *count = cc_stmt_column_int64(stmt, 1);
        *cell = cc_stmt_column_int64(stmt, 2);
        if (*count == 1 && stmt == upsert)
            *json = dup_json(stmt, 3, &rc);
        if (rc == CC_OK)
            rc = cc_stmt_step(stmt);
    } else if (rc == CC_OK) {
        rc = CC_ERR_DB; /* an upsert leaves an ACTIVE row on insert and on update alike */
    }
    if (stmt != upsert)
        cc_stmt_release(stmt);
    return rc;
}

/* The values a raise binds, for the object of the row it inserts. */
struct raise_args {
    int64_t cold_cell_id, device_id;
    int type;
    double value, threshold;
    const char *message;
    int64_t at_ms;
};

/* SQLite, after the upsert inserted row id: its object written in C from what was bound
 * (cc_alert_json.h), not read back and built by json_object. CC_ERR_VALIDATION: a time
 * cc_alert_json cannot write; cc_notify then builds the object in SQL. */
static int inserted_json(const struct raise_args *r, int64_t id, char **json)
{
    struct cc_alert_row a = {
        .id = id,
        .cold_cell_id = r->cold_cell_id,
        .device_id = r->device_id,
        .type = type_names[r->type],
        .status = "ACTIVE",
        .value = r->value,
        .threshold = r->threshold,
        .message = r->message,
        .first_triggered_at = r->at_ms,
        .last_triggered_at = r->at_ms,
        .trigger_count = 1,
        .acknowledged_at = CC_ALERT_NONE,
        .acknowledged_by = CC_ALERT_NONE,
        .escalated_at = CC_ALERT_NONE,
        .resolved_at = CC_ALERT_NONE,
        .resolved_by = CC_ALERT_NONE,
        .resolution_note = NULL,
    };

    return cc_alert_json(&a, json);
}

int cc_alert_raise(struct cc_store *st, int64_t cold_cell_id, int64_t device_id, int type,
                   double value, double threshold, const char *message, int64_t at_ms,
                   int64_t now_ms, int64_t *alert_id, int *created)
{
    struct cc_stmt *stmt = NULL;
    int pg = cc_store_dialect(st) == CC_DIALECT_PG;
    const struct raise_args args = {
        cold_cell_id, device_id, type, value, threshold, message != NULL ? message : "", at_ms};
    int64_t id = 0, count = 0, cell = 0;
    char *json = NULL;
    int rc;

    if (type < 0 || type >= CC_ALERT_TYPE_COUNT || cc_store_tx_id(st) == 0)
        return CC_ERR_INTERNAL; /* outside cc_store_begin nothing would count it */
    rc = cc_stmt_prepare(st, pg ? sql_raise_pg : sql_raise, &stmt);
    if (rc == CC_OK)
        rc = bind_key(stmt, cold_cell_id, device_id, type);
    if (rc == CC_OK)
        rc = bind_real_or_null(stmt, 4, value);
    if (rc == CC_OK)
        rc = bind_real_or_null(stmt, 5, threshold);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 6, args.message);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 7, at_ms);
    if (rc == CC_OK && !pg)
        rc = cc_stmt_track_insert(stmt);
    if (rc == CC_OK && !pg)
        rc = cc_stmt_step(stmt); /* no row: a new row's id, or the re-triggered one read back */
    if (rc == CC_OK && !pg && (id = cc_stmt_inserted_id(stmt)) > 0) {
        count = 1;
        cell = cold_cell_id;
        rc = inserted_json(&args, id, &json);
        if (rc == CC_ERR_VALIDATION)
            rc = CC_OK; /* json stays NULL: built in SQL below */
    } else if (rc == CC_OK) {
        rc = raised_row(st, stmt, cold_cell_id, device_id, type, &id, &count, &cell, &json);
    }
    cc_stmt_release(stmt);
    if (rc == CC_OK && count == 1)
        rc = json != NULL ? cc_notify_alert_raised_obj(st, id, cell, json, now_ms)
                          : cc_notify_alert_raised(st, id, now_ms);
    if (rc == CC_OK && count == 1)
        rc = cc_stats_count(st, CC_STATS_ALERTS_RAISED, type);
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

/* SQLite, after the resolve: its notifications with the object written in C from the
 * row's columns (cc_alert_json_load, which also gives the type), or built in SQL for a
 * time it cannot write. */
static int notify_resolved_lite(struct cc_store *st, int64_t alert_id, int64_t now_ms, int *type)
{
    int64_t cell = 0;
    char *json = NULL;
    int rc = cc_alert_json_load(st, alert_id, &cell, type, &json);

    if (rc == CC_OK)
        rc = cc_notify_alert_resolved_obj(st, alert_id, cell, json, now_ms);
    else if (rc == CC_ERR_VALIDATION)
        rc = cc_notify_alert_resolved(st, alert_id, now_ms);
    free(json);
    return rc;
}

int cc_alert_resolve(struct cc_store *st, int64_t alert_id, int64_t at_ms, int64_t by_user,
                     const char *note, int64_t now_ms, int *resolved)
{
    struct cc_stmt *stmt = NULL;
    int pg = cc_store_dialect(st) == CC_DIALECT_PG;
    int64_t cell = 0;
    char *json = NULL;
    int done = 0, type = -1, rc;

    if (cc_store_tx_id(st) == 0)
        return CC_ERR_INTERNAL; /* outside cc_store_begin nothing would count it */
    rc = cc_stmt_prepare(st, pg ? sql_resolve_pg : sql_resolve, &stmt);
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
    if (rc == CC_ROW) { /* PostgreSQL: it was ACTIVE, this statement resolved it */
        rc = CC_OK;
        done = 1;
        cell = cc_stmt_column_int64(stmt, 0);
        type = cc_alert_type_parse(cc_stmt_column_text(stmt, 1));
        json = dup_json(stmt, 2, &rc);
        if (rc == CC_OK)
            rc = cc_stmt_step(stmt);
    } else if (rc == CC_OK && !pg) {
        done = cc_stmt_changes(stmt) == 1;
    }
    cc_stmt_release(stmt);
    if (rc == CC_OK && done)
        rc = json != NULL ? cc_notify_alert_resolved_obj(st, alert_id, cell, json, now_ms)
                          : notify_resolved_lite(st, alert_id, now_ms, &type);
    if (rc == CC_OK && done)
        rc = cc_stats_count(st, CC_STATS_ALERTS_RESOLVED, type);
    free(json);
    if (rc != CC_OK)
        return rc == CC_ERR_NOMEM ? rc : CC_ERR_DB;
    if (done)
        cc_log_info("alert_resolved", "id=%lld by=%lld", (long long)alert_id,
                    (long long)(by_user > 0 ? by_user : 0));
    if (resolved != NULL)
        *resolved = done;
    return CC_OK;
}
