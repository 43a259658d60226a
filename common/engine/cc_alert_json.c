/* cc_alert_json.c - the alert object in C, the same text as SQLite's CC_ALERT_JSON_SQL. */
#include "cc_alert_json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cc_alert_ops.h"
#include "cc_dbi.h"
#include "cc_rc.h"

/* Past every fixed part of the object: 17 member names with quotes and colons (~250
 * bytes), eight integers of at most 20 characters, five times of 24 and two doubles. */
#define FIXED_MAX 1024
#define ESCAPED_MAX CC_ALERT_JSON_ESCAPED_MAX
#define TIME_MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z: CC_SQL_ISO's four digits */

/* A string being written; the capacity was computed up front, so no write overflows. */
struct out {
    char *p;
};

static void put(struct out *o, const char *s)
{
    size_t n = strlen(s);

    memcpy(o->p, s, n);
    o->p += n;
}

char *cc_alert_json_escape(char *dst, const char *s)
{
    static const char special[32] = {
        ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'};
    static const char hex[] = "0123456789abcdef";

    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            *dst++ = '\\';
            *dst++ = (char)*c;
        } else if (*c < 0x20 && special[*c] != 0) {
            *dst++ = '\\';
            *dst++ = special[*c];
        } else if (*c < 0x20) {
            memcpy(dst, "\\u00", 4);
            dst += 4;
            *dst++ = hex[*c >> 4];
            *dst++ = hex[*c & 0xf];
        } else {
            *dst++ = (char)*c;
        }
    }
    return dst;
}

static void put_string(struct out *o, const char *s)
{
    *o->p++ = '"';
    o->p = cc_alert_json_escape(o->p, s);
    *o->p++ = '"';
}

/* Digits by hand: sprintf's format parsing was most of the object's cost. */
static void put_int(struct out *o, int64_t v)
{
    char digits[24];
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    int n = 0;

    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *o->p++ = '-';
    while (n > 0)
        *o->p++ = digits[--n];
}

/* v as exactly width digits, zero-padded (v < 10^width). */
static void put_padded(struct out *o, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o->p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    o->p += width;
}

static void put_int_or_null(struct out *o, int64_t v)
{
    if (v == CC_ALERT_NONE)
        put(o, "null");
    else
        put_int(o, v);
}

static void put_real_or_null(struct out *o, double v)
{
    char text[CC_DBI_REAL_TEXT_MAX];

    if (isnan(v) || cc_dbi_real_text(v, text, sizeof text) != CC_OK)
        put(o, "null");
    else
        put(o, text);
}

/* CC_SQL_ISO: the UTC date and time of whole seconds, then the milliseconds. The date is
 * the proleptic Gregorian day count turned into year, month and day by integer arithmetic
 * (H. Hinnant's days_from_civil inverse), as SQLite's strftime computes it; gmtime_r took
 * the time zone lock and most of the object's instructions. The range was checked: ms is
 * not negative, so every division here rounds down. */
static void put_time_or_null(struct out *o, int64_t ms)
{
    int64_t secs = ms / 1000, days = secs / 86400;
    unsigned sod = (unsigned)(secs % 86400), doe, yoe, doy, mp, day, month;
    int64_t era, year;

    if (ms == CC_ALERT_NONE) {
        put(o, "null");
        return;
    }
    days += 719468; /* days from 0000-03-01 */
    era = days / 146097;
    doe = (unsigned)(days - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    day = doy - (153 * mp + 2) / 5 + 1;
    month = mp < 10 ? mp + 3 : mp - 9;
    year = (int64_t)yoe + era * 400 + (month <= 2);
    *o->p++ = '"';
    put_padded(o, (unsigned)year, 4);
    *o->p++ = '-';
    put_padded(o, month, 2);
    *o->p++ = '-';
    put_padded(o, day, 2);
    *o->p++ = 'T';
    put_padded(o, sod / 3600, 2);
    *o->p++ = ':';
    put_padded(o, sod / 60 % 60, 2);
    *o->p++ = ':';
    put_padded(o, sod % 60, 2);
    *o->p++ = '.';
    put_padded(o, (unsigned)(ms % 1000), 3);
    put(o, "Z\"");
}

static int time_ok(int64_t ms)
{
    return ms == CC_ALERT_NONE || (ms >= 0 && ms <= TIME_MAX_MS);
}

static size_t string_room(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    return n > SIZE_MAX / (8 * ESCAPED_MAX) ? SIZE_MAX : n * ESCAPED_MAX + 2;
}

int cc_alert_json(const struct cc_alert_row *a, char **out)
{
    const char *strings[] = {a->type, a->status, a->message, a->resolution_note};
    size_t cap = FIXED_MAX;
    struct out o;

    *out = NULL;
    if (!time_ok(a->first_triggered_at) || !time_ok(a->last_triggered_at) ||
        !time_ok(a->acknowledged_at) || !time_ok(a->escalated_at) || !time_ok(a->resolved_at))
        return CC_ERR_VALIDATION;
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        size_t room = string_room(strings[i]);

        if (room == SIZE_MAX)
            return CC_ERR_NOMEM;
        cap += room;
    }
    o.p = *out = malloc(cap);
    if (o.p == NULL)
        return CC_ERR_NOMEM;
    put(&o, "{\"id\":");
    put_int(&o, a->id);
    put(&o, ",\"coldCellId\":");
    put_int(&o, a->cold_cell_id);
    put(&o, ",\"deviceId\":");
    put_int(&o, a->device_id);
    put(&o, ",\"type\":");
    put_string(&o, a->type);
    put(&o, ",\"status\":");
    put_string(&o, a->status);
    put(&o, ",\"value\":");
    put_real_or_null(&o, a->value);
    put(&o, ",\"threshold\":");
    put_real_or_null(&o, a->threshold);
    put(&o, ",\"message\":");
    put_string(&o, a->message);
    put(&o, ",\"firstTriggeredAt\":");
    put_time_or_null(&o, a->first_triggered_at);
    put(&o, ",\"lastTriggeredAt\":");
    put_time_or_null(&o, a->last_triggered_at);
    put(&o, ",\"triggerCount\":");
    put_int(&o, a->trigger_count);
    put(&o, ",\"acknowledgedAt\":");
    put_time_or_null(&o, a->acknowledged_at);
    put(&o, ",\"acknowledgedBy\":");
    put_int_or_null(&o, a->acknowledged_by);
    put(&o, ",\"escalatedAt\":");
    put_time_or_null(&o, a->escalated_at);
    put(&o, ",\"resolvedAt\":");
    put_time_or_null(&o, a->resolved_at);
    put(&o, ",\"resolvedBy\":");
    put_int_or_null(&o, a->resolved_by);
    put(&o, ",\"resolutionNote\":");
    if (a->resolution_note != NULL)
        put_string(&o, a->resolution_note);
    else
        put(&o, "null");
    put(&o, "}");
    *o.p = '\0';
    return CC_OK;
}

static const char sql_row[] =
    "SELECT cold_cell_id, device_id, type, status, value, threshold, message,"
    " first_triggered_at, last_triggered_at, trigger_count, acknowledged_at, acknowledged_by,"
    " escalated_at, resolved_at, resolved_by, resolution_note FROM alerts WHERE id = $1";

static int64_t int_or_none(struct cc_stmt *s, int col)
{
    return cc_stmt_column_is_null(s, col) ? CC_ALERT_NONE : cc_stmt_column_int64(s, col);
}

static double real_or_nan(struct cc_stmt *s, int col)
{
    return cc_stmt_column_is_null(s, col) ? NAN : cc_stmt_column_double(s, col);
}

static const char *text_or_empty(struct cc_stmt *s, int col)
{
    const char *t = cc_stmt_column_text(s, col);

    return t != NULL ? t : "";
}

int cc_alert_json_load(struct cc_store *st, int64_t alert_id, int64_t *cold_cell_id, int *type,
                       char **out)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql_row, &s);

    *out = NULL;
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, alert_id);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_ROW) {
        struct cc_alert_row a = {
            .id = alert_id,
            .cold_cell_id = cc_stmt_column_int64(s, 0),
            .device_id = cc_stmt_column_int64(s, 1),
            .type = text_or_empty(s, 2),
            .status = text_or_empty(s, 3),
            .value = real_or_nan(s, 4),
            .threshold = real_or_nan(s, 5),
            .message = text_or_empty(s, 6),
            .first_triggered_at = int_or_none(s, 7),
            .last_triggered_at = int_or_none(s, 8),
            .trigger_count = cc_stmt_column_int64(s, 9),
            .acknowledged_at = int_or_none(s, 10),
            .acknowledged_by = int_or_none(s, 11),
            .escalated_at = int_or_none(s, 12),
            .resolved_at = int_or_none(s, 13),
            .resolved_by = int_or_none(s, 14),
            .resolution_note = cc_stmt_column_text(s, 15),
        };

        *cold_cell_id = a.cold_cell_id;
        *type = cc_alert_type_parse(a.type);
        rc = cc_alert_json(&a, out);
    } else if (rc == CC_OK) {
        rc = CC_ERR_NOT_FOUND;
    }
    cc_stmt_release(s);
    return rc;
}
