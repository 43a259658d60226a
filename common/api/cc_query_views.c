/* cc_query_views.c - the latest reading, the CSV export and the two dashboards
 * (cc_query.h). Every view applies the access rule (cc_access.h). */
#include "cc_query.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_alerts_api.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_resource.h"
#include "cc_time.h"

/* -- latest -------------------------------------------------------------------------- */

#define READING_COLS                                                                               \
    "r.cold_cell_id, r.device_id, d.serial_number, r.ts, r.temperature, r.humidity,"               \
    " r.power_status, r.door_status, r.battery_level, r.received_at"

/* Newest by timestamp, not by arrival; ties by the later insert. */
static const char latest_sql[] =
    "SELECT " READING_COLS " FROM readings r JOIN devices d ON d.id = r.device_id"
    " WHERE r.cold_cell_id = $1 ORDER BY r.ts DESC, r.id DESC LIMIT 1";

/* A reading row (READING_COLS) as the API shows it. */
static cJSON *reading_row(struct cc_stmt *stmt)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    if (cc_dbi_json_int(o, "coldCellId", stmt, 0) != CC_OK ||
        cc_dbi_json_int(o, "deviceId", stmt, 1) != CC_OK ||
        cc_dbi_json_text(o, "serialNumber", stmt, 2) != CC_OK ||
        cc_dbi_json_time(o, "ts", stmt, 3) != CC_OK ||
        cc_dbi_json_num(o, "temperature", stmt, 4) != CC_OK ||
        cc_dbi_json_num(o, "humidity", stmt, 5) != CC_OK ||
        cc_dbi_json_bool(o, "powerStatus", stmt, 6) != CC_OK ||
        cc_dbi_json_bool(o, "doorStatus", stmt, 7) != CC_OK ||
        cc_dbi_json_num(o, "batteryLevel", stmt, 8) != CC_OK ||
        cc_dbi_json_time(o, "receivedAt", stmt, 9) != CC_OK) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The latest reading of a cell, or JSON null. No access check. */
static int latest_of(struct cc_store *st, int64_t cell_id, cJSON **out)
{
    struct cc_stmt *s = NULL;
    cJSON *o = NULL;
    int rc;

    rc = cc_stmt_prepare(st, latest_sql, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, cell_id);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_ROW)
        o = reading_row(s);
    else if (rc == CC_OK)
        o = cJSON_CreateNull();
    cc_stmt_release(s);
    if (rc != CC_ROW && rc != CC_OK)
        return rc;
    if (o == NULL)
        return CC_ERR_NOMEM;
    *out = o;
    return CC_OK;
}

int cc_query_latest(struct cc_store *st, const struct cc_principal *p, int64_t cell_id, cJSON **out)
{
    int rc = cc_access_check(st, p, CC_ENTITY_COLDCELL, cell_id, CC_ACCESS_READ);

    if (rc != CC_OK)
        return rc;
    return latest_of(st, cell_id, out);
}

/* -- CSV ----------------------------------------------------------------------------- */

struct csv {
    char buf[CC_CSV_CHUNK];
    size_t len;
    cc_query_write_fn write;
    void *ctx;
    int failed;
};

static void csv_flush(struct csv *c)
{
    if (c->len > 0 && !c->failed && c->write(c->ctx, c->buf, c->len) != 0)
        c->failed = 1;
    c->len = 0;
}

/* Appends s (n bytes); a field longer than the chunk goes out in pieces. */
static void csv_put(struct csv *c, const char *s, size_t n)
{
    while (n > 0 && !c->failed) {
        size_t room = sizeof c->buf - c->len;
        size_t k = n < room ? n : room;

        memcpy(c->buf + c->len, s, k);
        c->len += k;
        s += k;
        n -= k;
        if (c->len == sizeof c->buf)
            csv_flush(c);
    }
}

/* A text field, quoted when it holds a comma, a quote, CR or LF (RFC 4180). */
static void csv_text(struct csv *c, const char *s)
{
    if (s == NULL)
        return;
    if (strpbrk(s, ",\"\r\n") == NULL) {
        csv_put(c, s, strlen(s));
        return;
    }
    csv_put(c, "\"", 1);
    for (const char *q = s; *q; q++) {
        if (*q == '"')
            csv_put(c, "\"\"", 2);
        else
            csv_put(c, q, 1);
    }
    csv_put(c, "\"", 1);
}

/* The shortest %g that reads back as the same double (as cJSON prints numbers). */
static void csv_num(struct csv *c, struct cc_stmt *stmt, int col)
{
    char b[40];
    double v;
    int n;

    if (cc_stmt_column_is_null(stmt, col))
        return;
    v = cc_stmt_column_double(stmt, col);
    n = snprintf(b, sizeof b, "%.15g", v);
    if (strtod(b, NULL) != v)
        n = snprintf(b, sizeof b, "%.17g", v);
    if (n > 0 && (size_t)n < sizeof b)
        csv_put(c, b, (size_t)n);
}

static void csv_time(struct csv *c, struct cc_stmt *stmt, int col)
{
    char b[CC_ISO8601_LEN];

    if (cc_stmt_column_is_null(stmt, col) ||
        cc_time_format_iso8601(cc_stmt_column_int64(stmt, col), b, sizeof b) != CC_OK)
        return;
    csv_put(c, b, strlen(b));
}

static void csv_bool(struct csv *c, struct cc_stmt *stmt, int col)
{
    if (cc_stmt_column_is_null(stmt, col))
        return;
    if (cc_stmt_column_int64(stmt, col) != 0)
        csv_put(c, "true", 4);
    else
        csv_put(c, "false", 5);
}

/* Keyset pagination on (ts, device_id), unique with the readings' (device_id, ts) key:
 * each page starts after the last row of the one before, so rows neither repeat nor go
 * missing when others are inserted in between; readings_cell_ts serves the ts range. */
static const char csv_page_sql[] =
    "SELECT " READING_COLS " FROM readings r JOIN devices d ON d.id = r.device_id"
    " WHERE r.cold_cell_id = $1 AND r.ts >= $2 AND r.ts < $3"
    " AND (r.ts > $2 OR r.device_id > $4)"
    " ORDER BY r.ts, r.device_id LIMIT $5";
static const char csv_header[] = "ts,coldCellId,deviceId,serialNumber,temperature,humidity,"
                                 "powerStatus,doorStatus,batteryLevel,receivedAt\r\n";

/* One CSV line for the row stmt is on (READING_COLS). */
static void csv_row(struct csv *c, struct cc_stmt *stmt)
{
    char id[24];

    csv_time(c, stmt, 3);
    csv_put(c, ",", 1);
    snprintf(id, sizeof id, "%lld,", (long long)cc_stmt_column_int64(stmt, 0));
    csv_put(c, id, strlen(id));
    snprintf(id, sizeof id, "%lld,", (long long)cc_stmt_column_int64(stmt, 1));
    csv_put(c, id, strlen(id));
    csv_text(c, cc_stmt_column_text(stmt, 2));
    csv_put(c, ",", 1);
    csv_num(c, stmt, 4);
    csv_put(c, ",", 1);
    csv_num(c, stmt, 5);
    csv_put(c, ",", 1);
    csv_bool(c, stmt, 6);
    csv_put(c, ",", 1);
    csv_bool(c, stmt, 7);
    csv_put(c, ",", 1);
    csv_num(c, stmt, 8);
    csv_put(c, ",", 1);
    csv_time(c, stmt, 9);
    csv_put(c, "\r\n", 2);
}

int cc_query_csv_page(struct cc_store *st, int64_t cell_id, int64_t from_ms, int64_t to_ms,
                      struct cc_query_csv_cursor *cur, cc_query_write_fn write, void *ctx)
{
    struct cc_stmt *stmt = NULL;
    struct cc_query_csv_cursor next = *cur;
    struct csv *c = NULL;
    int64_t rows = 0;
    int rc;

    if (cur->done)
        return CC_OK;
    if (!cur->started) {
        next.ts_ms = from_ms;
        next.device_id = INT64_MIN; /* every device at ts == from */
    }
    /* 16 KiB: on the heap, not on a civetweb worker's stack. */
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return CC_ERR_NOMEM;
    c->write = write;
    c->ctx = ctx;
    rc = cc_stmt_prepare(st, csv_page_sql, &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, cell_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 2, next.ts_ms);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 3, to_ms);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 4, next.device_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 5, CC_CSV_PAGE_ROWS);
    if (rc != CC_OK)
        goto out;
    if (!cur->started)
        csv_put(c, csv_header, sizeof csv_header - 1);
    next.started = 1;
    while (!c->failed && (rc = cc_stmt_step(stmt)) == CC_ROW) {
        csv_row(c, stmt);
        next.ts_ms = cc_stmt_column_int64(stmt, 3);
        next.device_id = cc_stmt_column_int64(stmt, 1);
        rows++;
    }
    if (c->failed) {
        rc = CC_ERR_IO;
        goto out;
    }
    if (rc != CC_OK)
        goto out;
    csv_flush(c);
    if (c->failed) {
        rc = CC_ERR_IO;
        goto out;
    }
    next.rows += rows;
    next.done = rows < CC_CSV_PAGE_ROWS;
    *cur = next;
out:
    cc_stmt_release(stmt);
    free(c);
    return rc;
}

int cc_query_csv(struct cc_store *st, int64_t cell_id, int64_t from_ms, int64_t to_ms,
                 cc_query_write_fn write, void *ctx)
{
    struct cc_query_csv_cursor cur = {0};
    int rc = CC_OK;

    while (rc == CC_OK && !cur.done)
        rc = cc_query_csv_page(st, cell_id, from_ms, to_ms, &cur, write, ctx);
    return rc;
}

/* -- dashboards ---------------------------------------------------------------------- */

/* Adds the count to obj, or fails. */
static int add_count(cJSON *obj, const char *name, int64_t n)
{
    return cJSON_AddNumberToObject(obj, name, (double)n) != NULL ? CC_OK : CC_ERR_NOMEM;
}

static const struct cc_column location_cols[] = {
    {"id", CC_COL_INT},       {"customerId", CC_COL_INT}, {"name", CC_COL_TEXT},
    {"address", CC_COL_TEXT}, {"timezone", CC_COL_TEXT},
};
static const struct cc_column cell_cols[] = {
    {"id", CC_COL_INT},      {"locationId", CC_COL_INT}, {"name", CC_COL_TEXT},
    {"minTemp", CC_COL_NUM}, {"maxTemp", CC_COL_NUM},
};
static const struct cc_column device_cols[] = {
    {"id", CC_COL_INT},      {"coldCellId", CC_COL_INT},  {"serialNumber", CC_COL_TEXT},
    {"status", CC_COL_TEXT}, {"lastSeenAt", CC_COL_TIME}, {"firmwareVersion", CC_COL_TEXT},
};
static const struct cc_column alert_cols[] = {
    CC_ALERT_COLUMNS_HEAD,
    {"escalatedAt", CC_COL_TIME},
};
#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* A row of cols, with an empty array member named list (NULL: none) for its children. */
static cJSON *row_with(struct cc_stmt *stmt, const struct cc_column *cols, int ncols,
                       const char *list)
{
    cJSON *o = cc_resource_row(stmt, cols, ncols);

    if (o != NULL && list != NULL && cJSON_AddArrayToObject(o, list) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *location_row(struct cc_stmt *stmt)
{
    return row_with(stmt, location_cols, NCOLS(location_cols), "coldCells");
}

static cJSON *cell_row(struct cc_stmt *stmt)
{
    return row_with(stmt, cell_cols, NCOLS(cell_cols), "devices");
}

static cJSON *device_row(struct cc_stmt *stmt)
{
    return row_with(stmt, device_cols, NCOLS(device_cols), NULL);
}

static cJSON *alert_row(struct cc_stmt *stmt)
{
    return row_with(stmt, alert_cols, NCOLS(alert_cols), NULL);
}

/* Runs a statement built with CC_ACCESS_SQL_N ($1, $2) and collects its rows; role3,
 * unless CC_ROLE_NONE, is the role whose name the statement takes as $3 (SQL does not
 * spell a role). */
static int collect(struct cc_store *st, const char *sql, const struct cc_principal *p, int role3,
                   cc_dbi_row_fn fn, cJSON **items)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql, &s);

    if (rc == CC_OK)
        rc = cc_access_bind_stmt(s, p);
    if (rc == CC_OK && role3 != CC_ROLE_NONE)
        rc = cc_stmt_bind_text(s, 3, cc_role_name(role3));
    if (rc == CC_OK)
        rc = cc_dbi_collect(s, fn, items);
    cc_stmt_release(s);
    return rc;
}

/* The item of arr whose field name equals id, or NULL (lists are small). */
static cJSON *find_by(cJSON *arr, const char *name, double id)
{
    cJSON *it;

    cJSON_ArrayForEach(it, arr)
    {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(it, name);

        if (cJSON_IsNumber(v) && v->valuedouble == id)
            return it;
    }
    return NULL;
}

/* Moves every item of from into the array `field` of its parent in parents, matched
 * by key (the item's field naming the parent's id). Items without a parent are
 * dropped. from is consumed. */
static void nest(cJSON *from, cJSON *parents, const char *key, const char *field)
{
    while (cJSON_GetArraySize(from) > 0) {
        cJSON *it = cJSON_DetachItemFromArray(from, 0);
        cJSON *k = cJSON_GetObjectItemCaseSensitive(it, key);
        cJSON *parent = cJSON_IsNumber(k) ? find_by(parents, "id", k->valuedouble) : NULL;
        cJSON *arr = parent ? cJSON_GetObjectItemCaseSensitive(parent, field) : NULL;

        if (arr == NULL || !cJSON_AddItemToArray(arr, it))
            cJSON_Delete(it);
    }
    cJSON_Delete(from);
}

int cc_dashboard_customer(struct cc_store *st, const struct cc_principal *p, cJSON **out)
{
    static const char loc_sql[] =
        "SELECT l.id, l.customer_id, l.name, l.address, l.timezone FROM locations l"
        " WHERE " CC_ACCESS_SQL_N("l.customer_id") " ORDER BY l.id";
    static const char cell_sql[] =
        "SELECT c.id, c.location_id, c.name, c.min_temp, c.max_temp FROM cold_cells c"
        " JOIN locations l ON l.id = c.location_id"
        " WHERE " CC_ACCESS_SQL_N("l.customer_id") " ORDER BY c.id";
    static const char dev_sql[] =
        "SELECT d.id, d.cold_cell_id, d.serial_number, d.status, d.last_seen_at,"
        " d.firmware_version FROM devices d JOIN cold_cells c ON c.id = d.cold_cell_id"
        " JOIN locations l ON l.id = c.location_id"
        " WHERE " CC_ACCESS_SQL_N("l.customer_id") " ORDER BY d.id";
    static const char alert_sql[] =
        "SELECT a.id, a.cold_cell_id, a.device_id, a.type, a.status, a.value, a.threshold,"
        " a.message, a.first_triggered_at, a.last_triggered_at, a.trigger_count,"
        " a.acknowledged_at, a.escalated_at FROM alerts a"
        " JOIN cold_cells c ON c.id = a.cold_cell_id JOIN locations l ON l.id = c.location_id"
        " WHERE a.status = 'ACTIVE' AND " CC_ACCESS_SQL_N(
            "l.customer_id") " ORDER BY a.first_triggered_at DESC, a.id DESC";
    cJSON *root = NULL, *locs = NULL, *cells = NULL, *devs = NULL, *alerts = NULL;
    cJSON *summary, *cell;
    int64_t n_cells, n_devs = 0, n_online = 0;
    int rc;

    rc = collect(st, loc_sql, p, CC_ROLE_NONE, location_row, &locs);
    if (rc == CC_OK)
        rc = collect(st, cell_sql, p, CC_ROLE_NONE, cell_row, &cells);
    if (rc == CC_OK)
        rc = collect(st, dev_sql, p, CC_ROLE_NONE, device_row, &devs);
    if (rc == CC_OK)
        rc = collect(st, alert_sql, p, CC_ROLE_NONE, alert_row, &alerts);
    if (rc != CC_OK)
        goto fail;
    n_cells = cJSON_GetArraySize(cells);
    /* Per cell: latest reading, its active alerts count, state. */
    cJSON_ArrayForEach(cell, cells)
    {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(cell, "id");
        cJSON *latest = NULL, *a;
        int64_t n_alerts = 0;

        rc = latest_of(st, (int64_t)id->valuedouble, &latest);
        if (rc != CC_OK)
            goto fail;
        if (!cJSON_AddItemToObject(cell, "latest", latest)) {
            cJSON_Delete(latest);
            rc = CC_ERR_NOMEM;
            goto fail;
        }
        cJSON_ArrayForEach(a, alerts)
        {
            cJSON *cid = cJSON_GetObjectItemCaseSensitive(a, "coldCellId");

            if (cJSON_IsNumber(cid) && cid->valuedouble == id->valuedouble)
                n_alerts++;
        }
        rc = add_count(cell, "activeAlerts", n_alerts);
        if (rc != CC_OK)
            goto fail;
    }
    {
        cJSON *d;

        cJSON_ArrayForEach(d, devs)
        {
            const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "status"));

            n_devs++;
            n_online += s != NULL && strcmp(s, "ONLINE") == 0;
        }
    }
    nest(devs, cells, "coldCellId", "devices");
    devs = NULL;
    nest(cells, locs, "locationId", "coldCells");
    cells = NULL;

    root = cJSON_CreateObject();
    if (root == NULL)
        goto nomem;
    summary = cJSON_AddObjectToObject(root, "summary");
    if (summary == NULL || add_count(summary, "locations", cJSON_GetArraySize(locs)) != CC_OK ||
        add_count(summary, "coldCells", n_cells) != CC_OK ||
        add_count(summary, "devices", n_devs) != CC_OK ||
        add_count(summary, "devicesOnline", n_online) != CC_OK ||
        add_count(summary, "activeAlerts", cJSON_GetArraySize(alerts)) != CC_OK)
        goto nomem;
    if (!cJSON_AddItemToObject(root, "locations", locs))
        goto nomem;
    locs = NULL;
    if (!cJSON_AddItemToObject(root, "activeAlerts", alerts))
        goto nomem;
    *out = root;
    return CC_OK;

nomem:
    rc = CC_ERR_NOMEM;
fail:
    cJSON_Delete(root);
    cJSON_Delete(locs);
    cJSON_Delete(cells);
    cJSON_Delete(devs);
    cJSON_Delete(alerts);
    return rc;
}

static cJSON *customer_row(struct cc_stmt *stmt)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    if (cc_dbi_json_int(o, "id", stmt, 0) != CC_OK ||
        cc_dbi_json_text(o, "name", stmt, 1) != CC_OK ||
        cc_dbi_json_text(o, "email", stmt, 2) != CC_OK ||
        cc_dbi_json_int(o, "locations", stmt, 3) != CC_OK ||
        cc_dbi_json_int(o, "coldCells", stmt, 4) != CC_OK ||
        cc_dbi_json_int(o, "devices", stmt, 5) != CC_OK ||
        cc_dbi_json_int(o, "activeAlerts", stmt, 6) != CC_OK) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int cc_dashboard_technician(struct cc_store *st, const struct cc_principal *p, cJSON **out)
{
    static const char cust_sql[] =
        "SELECT u.id, u.name, u.email,"
        " (SELECT count(*) FROM locations l WHERE l.customer_id = u.id),"
        " (SELECT count(*) FROM cold_cells c JOIN locations l ON l.id = c.location_id"
        "  WHERE l.customer_id = u.id),"
        " (SELECT count(*) FROM devices d JOIN cold_cells c ON c.id = d.cold_cell_id"
        "  JOIN locations l ON l.id = c.location_id WHERE l.customer_id = u.id),"
        " (SELECT count(*) FROM alerts a JOIN cold_cells c ON c.id = a.cold_cell_id"
        "  JOIN locations l ON l.id = c.location_id"
        "  WHERE l.customer_id = u.id AND a.status = 'ACTIVE')"
        " FROM users u WHERE u.role = $3 AND " CC_ACCESS_SQL_N("u.id") " ORDER BY u.id";
    static const char type_sql[] =
        "SELECT a.type, count(*) FROM alerts a JOIN cold_cells c ON c.id = a.cold_cell_id"
        " JOIN locations l ON l.id = c.location_id JOIN users u ON u.id = l.customer_id"
        " WHERE a.status = 'ACTIVE' AND u.role = $3 AND " CC_ACCESS_SQL_N(
            "u.id") " GROUP BY a.type";
    static const char *const types[] = {"HIGH_TEMP", "LOW_TEMP", "POWER_LOSS", "SENSOR_ERROR"};
    struct cc_stmt *stmt = NULL;
    cJSON *root = NULL, *list = NULL, *by_type, *c;
    int64_t cells = 0, active = 0;
    int rc;

    if (p->role != CC_ROLE_TECHNICIAN && p->role != CC_ROLE_ADMIN)
        return CC_ERR_FORBIDDEN;
    rc = collect(st, cust_sql, p, CC_ROLE_CUSTOMER, customer_row, &list);
    if (rc != CC_OK)
        goto fail;
    cJSON_ArrayForEach(c, list)
    {
        cells += (int64_t)cJSON_GetObjectItemCaseSensitive(c, "coldCells")->valuedouble;
        active += (int64_t)cJSON_GetObjectItemCaseSensitive(c, "activeAlerts")->valuedouble;
    }
    root = cJSON_CreateObject();
    if (root == NULL || add_count(root, "customers", cJSON_GetArraySize(list)) != CC_OK ||
        add_count(root, "coldCells", cells) != CC_OK ||
        add_count(root, "activeAlerts", active) != CC_OK)
        goto nomem;
    by_type = cJSON_AddObjectToObject(root, "alertsByType");
    if (by_type == NULL)
        goto nomem;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (add_count(by_type, types[i], 0) != CC_OK)
            goto nomem;
    }
    rc = cc_stmt_prepare(st, type_sql, &stmt);
    if (rc == CC_OK)
        rc = cc_access_bind_stmt(stmt, p);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 3, cc_role_name(CC_ROLE_CUSTOMER));
    while (rc == CC_OK && (rc = cc_stmt_step(stmt)) == CC_ROW) {
        const char *t = cc_stmt_column_text(stmt, 0);
        cJSON *slot = t != NULL ? cJSON_GetObjectItemCaseSensitive(by_type, t) : NULL;

        if (slot != NULL)
            cJSON_SetNumberValue(slot, (double)cc_stmt_column_int64(stmt, 1));
        rc = CC_OK;
    }
    if (rc != CC_OK)
        goto fail;
    if (!cJSON_AddItemToObject(root, "customerList", list))
        goto nomem;
    list = NULL;
    cc_stmt_release(stmt);
    *out = root;
    return CC_OK;

nomem:
    rc = CC_ERR_NOMEM;
fail:
    cc_stmt_release(stmt);
    cJSON_Delete(root);
    cJSON_Delete(list);
    return rc;
}
