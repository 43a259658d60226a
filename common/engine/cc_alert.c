/* cc_alert.c - the alert engine (SPEC §4), see cc_alert.h.
 *
 * Per device and batch: one cached SELECT gathers the cell's thresholds, the device's ACTIVE
 * alerts and its pending excursions (three indexed lookups); writes happen only when
 * something changes or an ACTIVE alert is re-triggered. The start of an excursion that
 * waits for alarm_delay_s is kept in alert_pending, measured in reading time, so a
 * restart does not reset it. Raising and resolving go through cc_alert_ops.c, which
 * writes the notifications in the same transaction. */
#include "cc_alert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_alert_ops.h"
#include "cc_dbi.h"
#include "cc_pg_array.h"
#include "cc_rc.h"

/* Portable SQL ($N, the same text on SQLite and PostgreSQL): each branch of the UNION
 * has its own columns, NULL elsewhere, because PostgreSQL will not put a cell's min_temp
 * and an alert's type in one column. Columns: kind, min_temp, max_temp, hysteresis,
 * alarm_delay_s, type, ref (kind 1: the ACTIVE alert's id; kind 2: the pending since_ts). */
static const char sql_state[] =
    "SELECT 0, min_temp, max_temp, hysteresis, alarm_delay_s, NULL, NULL"
    " FROM cold_cells WHERE id = $1"
    " UNION ALL SELECT 1, NULL, NULL, NULL, NULL, type, id FROM alerts"
    " WHERE cold_cell_id = $1 AND device_id = $2 AND status = 'ACTIVE'"
    " UNION ALL SELECT 2, NULL, NULL, NULL, NULL, type, since_ts FROM alert_pending"
    " WHERE device_id = $2";
/* PostgreSQL: sql_state for a whole batch in one round trip, each row led by the 1-based
 * position of its device in the two arrays ($1 device ids, $2 their cells). */
static const char sql_states_pg[] =
    "WITH d AS (SELECT * FROM unnest(CAST($1 AS bigint[]), CAST($2 AS bigint[]))"
    " WITH ORDINALITY AS u (device_id, cell_id, ord))"
    " SELECT d.ord, 0, c.min_temp, c.max_temp, c.hysteresis, c.alarm_delay_s, NULL, NULL"
    " FROM d JOIN cold_cells c ON c.id = d.cell_id"
    " UNION ALL SELECT d.ord, 1, NULL, NULL, NULL, NULL, a.type, a.id FROM d JOIN alerts a"
    " ON a.cold_cell_id = d.cell_id AND a.device_id = d.device_id AND a.status = 'ACTIVE'"
    " UNION ALL SELECT d.ord, 2, NULL, NULL, NULL, NULL, p.type, p.since_ts FROM d"
    " JOIN alert_pending p ON p.device_id = d.device_id";
static const char sql_pending_set[] =
    "INSERT INTO alert_pending (device_id, type, since_ts) VALUES ($1, $2, $3)"
    " ON CONFLICT (device_id, type) DO NOTHING";
static const char sql_pending_clear[] =
    "DELETE FROM alert_pending WHERE device_id = $1 AND type = $2";

/* Adds the current row of a state query to s: its columns from off on are sql_state's. */
static void state_row(struct cc_stmt *stmt, int off, struct cc_alert_state *s)
{
    int64_t kind = cc_stmt_column_int64(stmt, off);
    int type;

    if (kind == 0) {
        s->have_cell = 1;
        s->min_temp = cc_stmt_column_double(stmt, off + 1);
        s->max_temp = cc_stmt_column_double(stmt, off + 2);
        s->hysteresis = cc_stmt_column_double(stmt, off + 3);
        s->delay_ms = cc_stmt_column_int64(stmt, off + 4) * 1000;
        return;
    }
    type = cc_alert_type_parse(cc_stmt_column_text(stmt, off + 5));
    if (type < 0)
        return; /* the schema's CHECK makes this impossible for alerts */
    if (kind == 1) {
        s->active[type] = cc_stmt_column_int64(stmt, off + 6);
    } else {
        s->has_pending[type] = 1;
        s->pending_since[type] = cc_stmt_column_int64(stmt, off + 6);
    }
}

/* One device's state. The SQL texts are cached per store, so a batch pays one step per
 * device on SQLite (no round trip); PostgreSQL answers a whole batch at once (below). */
static int load_state(struct cc_store *st, const struct cc_device *dev, struct cc_alert_state *s)
{
    struct cc_stmt *stmt = NULL;
    int rc;

    memset(s, 0, sizeof *s);
    rc = cc_stmt_prepare(st, sql_state, &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, dev->cold_cell_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 2, dev->id);
    while (rc == CC_OK && (rc = cc_stmt_step(stmt)) == CC_ROW) {
        rc = CC_OK;
        state_row(stmt, 0, s);
    }
    cc_stmt_release(stmt);
    return rc == CC_OK ? CC_OK : CC_ERR_DB; /* cc_dbi logged it */
}

/* The states of devs[0..n) in one query: the ids and cells travel as two binary bigint
 * arrays (cc_pg_array.h). CC_OK, CC_ERR_NOMEM or CC_ERR_DB. */
static int load_states_pg(struct cc_store *st, const struct cc_device *const *devs, size_t n,
                          struct cc_alert_state *out)
{
    struct cc_stmt *stmt = NULL;
    struct cc_pg_array arr[2] = {{0}};
    int rc = CC_OK;

    memset(out, 0, n * sizeof *out);
    for (int k = 0; rc == CC_OK && k < 2; k++)
        rc = cc_pg_array_init(&arr[k], CC_PG_INT8, n);
    for (size_t i = 0; rc == CC_OK && i < n; i++) {
        cc_pg_array_int(&arr[0], devs[i]->id);
        rc = cc_pg_array_int(&arr[1], devs[i]->cold_cell_id);
    }
    if (rc == CC_OK)
        rc = cc_stmt_prepare(st, sql_states_pg, &stmt);
    for (int k = 0; rc == CC_OK && k < 2; k++)
        rc = cc_pg_array_bind(stmt, k + 1, &arr[k]);
    while (rc == CC_OK && (rc = cc_stmt_step(stmt)) == CC_ROW) {
        int64_t ord = cc_stmt_column_int64(stmt, 0);

        rc = ord >= 1 && (uint64_t)ord <= n ? CC_OK : CC_ERR_DB;
        if (rc == CC_OK)
            state_row(stmt, 1, &out[ord - 1]);
    }
    cc_stmt_release(stmt);
    cc_pg_array_free(&arr[0]);
    cc_pg_array_free(&arr[1]);
    return rc == CC_OK || rc == CC_ERR_NOMEM ? rc : CC_ERR_DB;
}

static int pending(struct cc_store *st, const char *sql, int64_t device_id, int type,
                   int64_t since_ts)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, sql, &stmt);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, device_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 2, cc_alert_type_name(type));
    if (rc == CC_OK && sql == sql_pending_set)
        rc = cc_stmt_bind_int64(stmt, 3, since_ts);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    cc_stmt_release(stmt);
    return rc == CC_OK ? CC_OK : CC_ERR_DB;
}

int cc_alert_states_load(struct cc_store *st, const struct cc_device *const *devs, size_t n,
                         struct cc_alert_state *out)
{
    if (cc_store_dialect(st) == CC_DIALECT_PG)
        return n > 0 ? load_states_pg(st, devs, n, out) : CC_OK;
    for (size_t i = 0; i < n; i++) {
        int rc = load_state(st, devs[i], &out[i]);
        if (rc != CC_OK)
            return rc;
    }
    return CC_OK;
}

static int pending_set(struct cc_store *st, int64_t device_id, int type, int64_t since_ts,
                       struct cc_alert_state *s)
{
    int rc = pending(st, sql_pending_set, device_id, type, since_ts);

    if (rc == CC_OK) {
        s->has_pending[type] = 1;
        s->pending_since[type] = since_ts;
    }
    return rc;
}

static int pending_clear(struct cc_store *st, int64_t device_id, int type, struct cc_alert_state *s)
{
    int rc = pending(st, sql_pending_clear, device_id, type, 0);

    if (rc == CC_OK)
        s->has_pending[type] = 0;
    return rc;
}

/* Resolves the ACTIVE alert of type (automatically, at the reading's ts). */
static int resolve(struct cc_store *st, int type, int64_t at_ms, int64_t now_ms,
                   struct cc_alert_state *s)
{
    int rc = cc_alert_resolve(st, s->active[type], at_ms, 0, NULL, now_ms, NULL);

    if (rc == CC_OK)
        s->active[type] = 0;
    return rc;
}

static int raise_alert(struct cc_store *st, const struct cc_device *dev, int type, double value,
                       double threshold, const char *msg, const struct cc_reading *r,
                       int64_t now_ms, struct cc_alert_state *s)
{
    int64_t id = 0;
    int rc = cc_alert_raise(st, dev->cold_cell_id, dev->id, type, value, threshold, msg, r->ts_ms,
                            now_ms, &id, NULL);

    if (rc == CC_OK)
        s->active[type] = id;
    return rc;
}

/* One threshold rule (HIGH_TEMP or LOW_TEMP): beyond means the reading is past the
 * limit, cleared that it is back inside by the hysteresis. */
static int apply_threshold(struct cc_store *st, const struct cc_device *dev,
                           const struct cc_reading *r, int64_t now_ms, struct cc_alert_state *s,
                           int type, int beyond, int cleared, double limit)
{
    char msg[CC_ALERT_MESSAGE_MAX];
    int64_t since = r->ts_ms;
    int rc;

    if (!beyond) {
        if (s->has_pending[type]) {
            rc = pending_clear(st, dev->id, type, s);
            if (rc != CC_OK)
                return rc;
        }
        if (cleared && s->active[type] != 0)
            return resolve(st, type, r->ts_ms, now_ms, s);
        return CC_OK;
    }
    if (s->active[type] == 0 && s->delay_ms > 0) {
        if (!s->has_pending[type])
            return pending_set(st, dev->id, type, r->ts_ms, s);
        since = s->pending_since[type];
        if (r->ts_ms - since < s->delay_ms)
            return CC_OK; /* still inside the alarm delay */
        rc = pending_clear(st, dev->id, type, s);
        if (rc != CC_OK)
            return rc;
    }
    if (s->delay_ms > 0 && since < r->ts_ms)
        snprintf(msg, sizeof msg, "temperature %.1f °C %s %.1f °C for %lld s", r->temperature,
                 type == CC_ALERT_HIGH_TEMP ? "above the maximum" : "below the minimum", limit,
                 (long long)((r->ts_ms - since) / 1000));
    else
        snprintf(msg, sizeof msg, "temperature %.1f °C %s %.1f °C", r->temperature,
                 type == CC_ALERT_HIGH_TEMP ? "above the maximum" : "below the minimum", limit);
    return raise_alert(st, dev, type, r->temperature, limit, msg, r, now_ms, s);
}

int cc_alert_apply(struct cc_store *st, const struct cc_device *dev, const struct cc_reading *r,
                   int64_t now_ms, struct cc_alert_state *s)
{
    double t = r->temperature;
    int rc = CC_OK;

    if (!s->have_cell)
        return CC_OK; /* the cell went away in this transaction: nothing to judge */

    /* Any reading is a sign of life. */
    if (s->active[CC_ALERT_SENSOR_ERROR] != 0) {
        rc = resolve(st, CC_ALERT_SENSOR_ERROR, r->ts_ms, now_ms, s);
        if (rc != CC_OK)
            return rc;
    }
    if (r->power_status == CC_FALSE) {
        rc = raise_alert(st, dev, CC_ALERT_POWER_LOSS, t, NAN, "mains power lost", r, now_ms, s);
    } else if (r->power_status == CC_TRUE && s->active[CC_ALERT_POWER_LOSS] != 0) {
        rc = resolve(st, CC_ALERT_POWER_LOSS, r->ts_ms, now_ms, s);
    }
    if (rc != CC_OK)
        return rc;
    rc = apply_threshold(st, dev, r, now_ms, s, CC_ALERT_HIGH_TEMP, t > s->max_temp,
                         t <= s->max_temp - s->hysteresis, s->max_temp);
    if (rc != CC_OK)
        return rc;
    return apply_threshold(st, dev, r, now_ms, s, CC_ALERT_LOW_TEMP, t < s->min_temp,
                           t >= s->min_temp + s->hysteresis, s->min_temp);
}

int cc_alert_on_reading(struct cc_store *st, const struct cc_device *dev,
                        const struct cc_reading *r, int is_newest, int64_t now_ms)
{
    struct cc_alert_state s;
    int rc;

    if (!is_newest)
        return CC_OK; /* stored, but older than what the alerts already saw */
    rc = load_state(st, dev, &s);
    if (rc != CC_OK)
        return rc;
    return cc_alert_apply(st, dev, r, now_ms, &s);
}
