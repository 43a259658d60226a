/* cc_validate.c - reading and status payload validation (SPEC §3), see cc_validate.h. */
#include "cc_validate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_json.h"
#include "cc_rc.h"
#include "cc_time.h"

#define FIELD_MAX 64     /* bytes in a detail's field name ("[999].batteryLevel") */
#define MESSAGE_MAX 160  /* bytes in an error message */
#define TS_STRING_MAX 64 /* bytes in an ISO-8601 ts string we try to parse */

/* Issues, shared so tests and callers see the same wording. */
#define ISSUE_REQUIRED "required"
#define ISSUE_NUMBER "must be a number"
#define ISSUE_BOOLEAN "must be a boolean"
#define ISSUE_STRING "must be a string"
#define ISSUE_OBJECT "must be an object"
#define ISSUE_TS_TYPE "must be an integer epoch in milliseconds or an ISO-8601 string"
#define ISSUE_TS_INT "must be a non-negative integer epoch in milliseconds"
#define ISSUE_TS_ISO "must be a valid ISO-8601 timestamp"
#define ISSUE_TS_FUTURE "must not be more than 5 minutes in the future"
#define ISSUE_TS_OLD "must not be older than 30 days"

/* Returns 1 if the n bytes at s are well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF), else 0. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t more;
        unsigned char lo = 0x80, hi = 0xBF;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return 0;
        }
        if (n - i - 1 < more)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= more; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        }
        i += more + 1;
    }
    return 1;
}

/* Appends {"field": prefix+name, "issue": issue} to details. CC_OK or CC_ERR_NOMEM.
 * prefix is "" or "[3]."; with name "" the field is the item itself ("[3]"). */
static int add_detail(cJSON *details, const char *prefix, const char *name, const char *issue)
{
    char field[FIELD_MAX];
    cJSON *d = NULL;
    size_t plen = strlen(prefix);

    if (name[0] == '\0' && plen > 0 && prefix[plen - 1] == '.')
        plen--; /* "[3]." names the item as "[3]" */
    snprintf(field, sizeof field, "%.*s%s", (int)plen, prefix, name);
    d = cJSON_CreateObject();
    if (d == NULL)
        return CC_ERR_NOMEM;
    if (cJSON_AddStringToObject(d, "field", field) == NULL ||
        cJSON_AddStringToObject(d, "issue", issue) == NULL) {
        cJSON_Delete(d);
        return CC_ERR_NOMEM;
    }
    if (!cJSON_AddItemToArray(details, d)) {
        cJSON_Delete(d);
        return CC_ERR_NOMEM;
    }
    return CC_OK;
}

/* Checks an optional or required number in [lo, hi]. *present tells whether it was
 * given; *bad is set when a detail was added. CC_OK or CC_ERR_NOMEM. */
static int check_number(const cJSON *obj, const char *name, int required, double lo, double hi,
                        const char *range_issue, const char *prefix, cJSON *details, int *present,
                        double *value, int *bad)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

    *present = 0;
    if (it == NULL) {
        if (required) {
            *bad = 1;
            return add_detail(details, prefix, name, ISSUE_REQUIRED);
        }
        return CC_OK;
    }
    if (!cJSON_IsNumber(it)) {
        *bad = 1;
        return add_detail(details, prefix, name, ISSUE_NUMBER);
    }
    /* cJSON turns 1e999 into inf; a comparison with NaN is false, so test finiteness
     * first. */
    if (!isfinite(it->valuedouble) || it->valuedouble < lo || it->valuedouble > hi) {
        *bad = 1;
        return add_detail(details, prefix, name, range_issue);
    }
    *present = 1;
    *value = it->valuedouble;
    return CC_OK;
}

/* Checks an optional boolean into a cc_tristate. CC_OK or CC_ERR_NOMEM. */
static int check_bool(const cJSON *obj, const char *name, const char *prefix, cJSON *details,
                      int *out, int *bad)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

    *out = CC_ABSENT;
    if (it == NULL)
        return CC_OK;
    if (!cJSON_IsBool(it)) {
        *bad = 1;
        return add_detail(details, prefix, name, ISSUE_BOOLEAN);
    }
    *out = cJSON_IsTrue(it) ? CC_TRUE : CC_FALSE;
    return CC_OK;
}

/* Turns a ts value into epoch ms. Returns NULL and writes *ts_ms, or the issue. */
static const char *ts_value(const cJSON *it, int64_t *ts_ms)
{
    if (cJSON_IsNumber(it)) {
        double v = it->valuedouble;

        /* 9223372036854775808.0 is 2^63, exactly representable: everything below it
         * converts to int64 without overflow. */
        if (!isfinite(v) || v < 0.0 || v >= 9223372036854775808.0 || floor(v) != v)
            return ISSUE_TS_INT;
        *ts_ms = (int64_t)v;
        return NULL;
    }
    if (cJSON_IsString(it) && it->valuestring != NULL) {
        if (strlen(it->valuestring) > TS_STRING_MAX ||
            cc_time_parse_iso8601(it->valuestring, ts_ms) != CC_OK)
            return ISSUE_TS_ISO;
        return NULL;
    }
    return ISSUE_TS_TYPE;
}

/* Checks ts against the window around received_ms. CC_OK or CC_ERR_NOMEM. */
static int check_ts(const cJSON *obj, int64_t received_ms, const char *prefix, cJSON *details,
                    struct cc_reading *r, int *bad)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, "ts");
    const char *issue;
    int64_t ts = 0;

    r->ts_ms = received_ms;
    r->ts_given = 0;
    if (it == NULL)
        return CC_OK;
    issue = ts_value(it, &ts);
    /* Differences in uint64: no signed overflow whatever the two values are. */
    if (issue == NULL && ts > received_ms &&
        (uint64_t)ts - (uint64_t)received_ms > (uint64_t)CC_TS_MAX_FUTURE_MS)
        issue = ISSUE_TS_FUTURE;
    if (issue == NULL && ts < received_ms &&
        (uint64_t)received_ms - (uint64_t)ts > (uint64_t)CC_TS_MAX_AGE_MS)
        issue = ISSUE_TS_OLD;
    if (issue != NULL) {
        *bad = 1;
        return add_detail(details, prefix, "ts", issue);
    }
    r->ts_ms = ts;
    r->ts_given = 1;
    return CC_OK;
}

int cc_validate_reading(const cJSON *obj, int64_t received_ms, const char *prefix,
                        struct cc_reading *out, cJSON *err_details)
{
    struct cc_reading r;
    int bad = 0;
    int present = 0;
    int rc;

    memset(&r, 0, sizeof r);
    if (prefix == NULL)
        prefix = "";
    if (!cJSON_IsObject(obj)) {
        rc = add_detail(err_details, prefix, "", ISSUE_OBJECT);
        return rc != CC_OK ? rc : CC_ERR_VALIDATION;
    }
    rc = check_number(obj, "temperature", 1, CC_TEMP_MIN, CC_TEMP_MAX,
                      "must be between -100 and 150", prefix, err_details, &present, &r.temperature,
                      &bad);
    if (rc == CC_OK)
        rc = check_number(obj, "humidity", 0, 0.0, 100.0, "must be between 0 and 100", prefix,
                          err_details, &r.has_humidity, &r.humidity, &bad);
    if (rc == CC_OK)
        rc = check_bool(obj, "powerStatus", prefix, err_details, &r.power_status, &bad);
    if (rc == CC_OK)
        rc = check_bool(obj, "doorStatus", prefix, err_details, &r.door_status, &bad);
    if (rc == CC_OK)
        rc = check_number(obj, "batteryLevel", 0, 0.0, 100.0, "must be between 0 and 100", prefix,
                          err_details, &r.has_battery, &r.battery_level, &bad);
    if (rc == CC_OK)
        rc = check_ts(obj, received_ms, prefix, err_details, &r, &bad);
    if (rc != CC_OK)
        return rc;
    if (bad)
        return CC_ERR_VALIDATION;
    *out = r;
    return CC_OK;
}

/* Builds the SPEC §5 object for rc from a details array (not consumed). With one
 * detail the message is "<field> <issue>"; with several, "<n> fields are invalid".
 * NULL on out of memory. */
static cJSON *error_from_details(int rc, const cJSON *details)
{
    char msg[MESSAGE_MAX];
    int n = cJSON_GetArraySize(details);
    const cJSON *d;
    cJSON *err = NULL;

    if (n == 1) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(details->child, "field");
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(details->child, "issue");
        const char *issue = cJSON_GetStringValue(i);

        if (issue != NULL && strcmp(issue, ISSUE_REQUIRED) == 0)
            snprintf(msg, sizeof msg, "%s is required", cJSON_GetStringValue(f));
        else
            snprintf(msg, sizeof msg, "%s %s", cJSON_GetStringValue(f), issue);
    } else {
        snprintf(msg, sizeof msg, "%d fields are invalid", n);
    }
    err = cc_error_new(rc, msg);
    if (err == NULL)
        return NULL;
    cJSON_ArrayForEach(d, details)
    {
        const char *f = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "field"));
        const char *i = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "issue"));

        if (cc_error_add_detail(err, f, i) != CC_OK) {
            cJSON_Delete(err);
            return NULL;
        }
    }
    return err;
}

/* An error object for rc with message and, if field is not NULL, one detail. NULL on
 * out of memory. */
static cJSON *error_simple(int rc, const char *message, const char *field, const char *issue)
{
    cJSON *err = cc_error_new(rc, message);

    if (err != NULL && field != NULL && cc_error_add_detail(err, field, issue) != CC_OK) {
        cJSON_Delete(err);
        err = NULL;
    }
    return err;
}

/* Parses payload (not NUL-terminated) as one JSON value with only whitespace around
 * it. Returns the tree (caller deletes), or NULL with *rc set: CC_ERR_VALIDATION
 * (too large, not UTF-8; *err set), CC_ERR_BAD_JSON (*err set) or CC_ERR_NOMEM. */
static cJSON *parse_payload(const char *payload, size_t len, int *rc, cJSON **err)
{
    cJSON *root = NULL;
    int why = 0;

    *err = NULL;
    if (len > CC_MAX_PAYLOAD) {
        *rc = CC_ERR_VALIDATION;
        *err = error_simple(CC_ERR_VALIDATION, "payload must not be larger than 1 MiB", "payload",
                            "must not be larger than 1048576 bytes");
        goto fail;
    }
    if (payload == NULL || len == 0 || memchr(payload, '\0', len) != NULL) {
        /* A NUL byte is never part of JSON text; cJSON would stop at it. */
        *rc = CC_ERR_BAD_JSON;
        *err = error_simple(CC_ERR_BAD_JSON, "payload is not valid JSON", NULL, NULL);
        goto fail;
    }
    if (!utf8_valid((const unsigned char *)payload, len)) {
        *rc = CC_ERR_VALIDATION;
        *err = error_simple(CC_ERR_VALIDATION, "payload is not valid UTF-8", "payload",
                            "must be valid UTF-8");
        goto fail;
    }
    /* Through the depth gate: a reading nests three levels at most, and cJSON would
     * recurse once per level of whatever a device sends. */
    root = cc_json_parse_outside(payload, len, &why);
    if (root == NULL) {
        *rc = CC_ERR_BAD_JSON;
        *err = error_simple(CC_ERR_BAD_JSON,
                            why == CC_JSON_TOO_DEEP
                                ? "payload nests deeper than " CC_JSON_MAX_DEPTH_TEXT " levels"
                            : why == CC_JSON_NUL ? "a string in the payload holds \\u0000"
                                                 : "payload is not valid JSON",
                            NULL, NULL);
        goto fail;
    }
    return root;

fail:
    cJSON_Delete(root);
    if (*err == NULL)
        *rc = CC_ERR_NOMEM;
    return NULL;
}

int cc_validate_readings(const char *payload, size_t len, int64_t received_ms,
                         struct cc_reading **out, size_t *n_out, size_t **ok_index, cJSON **err)
{
    cJSON *root = NULL;
    cJSON *details = NULL;
    cJSON *e = NULL;
    struct cc_reading *rs = NULL;
    size_t *idx = NULL;
    size_t n_items, n_ok = 0;
    int rc = CC_OK;

    root = parse_payload(payload, len, &rc, &e);
    if (root == NULL)
        goto fail;
    if (cJSON_IsArray(root)) {
        int size = cJSON_GetArraySize(root);

        if (size < 1 || size > CC_MAX_BATCH) {
            rc = CC_ERR_VALIDATION;
            e = error_simple(CC_ERR_VALIDATION, "payload must hold 1 to 1000 readings", "payload",
                             "must hold 1 to 1000 readings");
            goto fail;
        }
        n_items = (size_t)size;
    } else if (cJSON_IsObject(root)) {
        n_items = 1;
    } else {
        rc = CC_ERR_BAD_JSON;
        e = error_simple(CC_ERR_BAD_JSON, "payload is not valid JSON", NULL, NULL);
        goto fail;
    }

    details = cJSON_CreateArray();
    rs = malloc(n_items * sizeof *rs);
    idx = malloc(n_items * sizeof *idx);
    if (details == NULL || rs == NULL || idx == NULL) {
        rc = CC_ERR_NOMEM;
        goto fail;
    }
    if (cJSON_IsObject(root)) {
        rc = cc_validate_reading(root, received_ms, "", &rs[0], details);
        if (rc == CC_OK)
            idx[n_ok++] = 0;
        else if (rc != CC_ERR_VALIDATION)
            goto fail;
    } else {
        const cJSON *item;
        size_t i = 0;

        cJSON_ArrayForEach(item, root)
        {
            char prefix[24];

            snprintf(prefix, sizeof prefix, "[%zu].", i);
            rc = cc_validate_reading(item, received_ms, prefix, &rs[n_ok], details);
            if (rc == CC_OK)
                idx[n_ok++] = i;
            else if (rc != CC_ERR_VALIDATION)
                goto fail;
            i++;
        }
    }
    rc = CC_OK;
    if (cJSON_GetArraySize(details) > 0) {
        e = error_from_details(CC_ERR_VALIDATION, details);
        if (e == NULL) {
            rc = CC_ERR_NOMEM;
            goto fail;
        }
    }

    cJSON_Delete(details);
    cJSON_Delete(root);
    *out = rs;
    *n_out = n_ok;
    if (ok_index != NULL)
        *ok_index = idx;
    else
        free(idx);
    *err = e;
    return CC_OK;

fail:
    cJSON_Delete(details);
    cJSON_Delete(root);
    free(rs);
    free(idx);
    if (rc == CC_ERR_NOMEM) {
        cJSON_Delete(e);
        e = NULL;
    } else if (e == NULL) {
        rc = CC_ERR_NOMEM; /* building the error object failed */
    }
    *err = e;
    return rc;
}

int cc_validate_status(const char *payload, size_t len, int *online,
                       char firmware[CC_FIRMWARE_MAX + 1], cJSON **err)
{
    cJSON *root = NULL;
    cJSON *details = NULL;
    cJSON *e = NULL;
    const cJSON *it;
    const char *fw = "";
    int on = 0;
    int rc = CC_OK;

    root = parse_payload(payload, len, &rc, &e);
    if (root == NULL)
        goto fail;
    if (cJSON_IsArray(root)) {
        rc = CC_ERR_VALIDATION;
        e = error_simple(CC_ERR_VALIDATION, "payload must be a JSON object", "payload",
                         ISSUE_OBJECT);
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        rc = CC_ERR_BAD_JSON;
        e = error_simple(CC_ERR_BAD_JSON, "payload is not valid JSON", NULL, NULL);
        goto fail;
    }
    details = cJSON_CreateArray();
    if (details == NULL) {
        rc = CC_ERR_NOMEM;
        goto fail;
    }

    it = cJSON_GetObjectItemCaseSensitive(root, "online");
    if (it == NULL)
        rc = add_detail(details, "", "online", ISSUE_REQUIRED);
    else if (!cJSON_IsBool(it))
        rc = add_detail(details, "", "online", ISSUE_BOOLEAN);
    else
        on = cJSON_IsTrue(it) ? 1 : 0;
    if (rc != CC_OK)
        goto fail;

    it = cJSON_GetObjectItemCaseSensitive(root, "firmwareVersion");
    if (it != NULL) {
        if (!cJSON_IsString(it) || it->valuestring == NULL) {
            rc = add_detail(details, "", "firmwareVersion", ISSUE_STRING);
        } else if (strlen(it->valuestring) > CC_FIRMWARE_MAX) {
            rc = add_detail(details, "", "firmwareVersion", "must be at most 64 characters");
        } else {
            for (const unsigned char *p = (const unsigned char *)it->valuestring; *p; p++) {
                if (*p < 0x20 || *p == 0x7F) {
                    rc = add_detail(details, "", "firmwareVersion",
                                    "must not contain control characters");
                    break;
                }
            }
            fw = it->valuestring;
        }
        if (rc != CC_OK)
            goto fail;
    }

    if (cJSON_GetArraySize(details) > 0) {
        rc = CC_ERR_VALIDATION;
        e = error_from_details(CC_ERR_VALIDATION, details);
        goto fail;
    }
    *online = on;
    snprintf(firmware, CC_FIRMWARE_MAX + 1, "%s", fw);
    cJSON_Delete(details);
    cJSON_Delete(root);
    *err = NULL;
    return CC_OK;

fail:
    cJSON_Delete(details);
    cJSON_Delete(root);
    if (rc == CC_ERR_NOMEM) {
        cJSON_Delete(e);
        e = NULL;
    } else if (e == NULL) {
        rc = CC_ERR_NOMEM;
    }
    *err = e;
    return rc;
}

/* Adds name: value, or null when absent. 1 on success. */
static int add_opt_number(cJSON *o, const char *name, int present, double v)
{
    return present ? cJSON_AddNumberToObject(o, name, v) != NULL
                   : cJSON_AddNullToObject(o, name) != NULL;
}

static int add_tristate(cJSON *o, const char *name, int v)
{
    if (v == CC_ABSENT)
        return cJSON_AddNullToObject(o, name) != NULL;
    return cJSON_AddBoolToObject(o, name, v == CC_TRUE) != NULL;
}

cJSON *cc_reading_to_json(const struct cc_reading *r)
{
    char ts[CC_ISO8601_LEN];
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    if (cc_time_format_iso8601(r->ts_ms, ts, sizeof ts) == CC_OK) {
        if (cJSON_AddStringToObject(o, "ts", ts) == NULL)
            goto fail;
    } else if (cJSON_AddNumberToObject(o, "ts", (double)r->ts_ms) == NULL) {
        goto fail; /* outside years 0000..9999: validated readings never are */
    }
    if (cJSON_AddNumberToObject(o, "temperature", r->temperature) == NULL ||
        !add_opt_number(o, "humidity", r->has_humidity, r->humidity) ||
        !add_tristate(o, "powerStatus", r->power_status) ||
        !add_tristate(o, "doorStatus", r->door_status) ||
        !add_opt_number(o, "batteryLevel", r->has_battery, r->battery_level))
        goto fail;
    return o;

fail:
    cJSON_Delete(o);
    return NULL;
}
