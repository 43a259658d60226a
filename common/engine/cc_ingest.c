/* cc_ingest.c - the one ingestion path of MQTT and HTTP, see cc_ingest.h. */
#include "cc_ingest.h"

#include <stdlib.h>
#include <string.h>

#include "cc_alert.h"
#include "cc_error.h"
#include "cc_rc.h"

#define TOPIC_PREFIX "devices/"

enum topic_kind { TOPIC_READINGS, TOPIC_STATUS };

/* A valid reading and its position in the payload, for a stable sort by ts. */
struct item {
    struct cc_reading r;
    size_t pos;
};

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;

    if (x->r.ts_ms != y->r.ts_ms)
        return x->r.ts_ms < y->r.ts_ms ? -1 : 1;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

void cc_ingest_result_clear(struct cc_ingest_result *res)
{
    if (res == NULL)
        return;
    cJSON_Delete(res->error);
    memset(res, 0, sizeof *res);
}

/* Number of payload items named by the details of a validation error: "[3].ts" and
 * "[3].temperature" are one item; a field without "[i]" means the payload was one
 * object. Details come in item order. */
static size_t refused_items(const cJSON *err)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(err, "error");
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(e, "details");
    const cJSON *d;
    size_t n = 0;
    unsigned long prev = 0;

    cJSON_ArrayForEach(d, details)
    {
        const char *f = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "field"));
        unsigned long i;

        if (f == NULL || f[0] != '[')
            return 1;
        i = strtoul(f + 1, NULL, 10);
        if (n == 0 || i != prev)
            n++;
        prev = i;
    }
    return n > 0 ? n : 1;
}

/* Sets res->error to a new error object. CC_OK or CC_ERR_NOMEM. */
static int set_error(struct cc_ingest_result *res, int code, const char *message)
{
    cJSON_Delete(res->error);
    res->error = cc_error_new(code, message);
    return res->error != NULL ? CC_OK : CC_ERR_NOMEM;
}

int cc_ingest_readings(struct cc_store *st, const char *serial, const char *payload, size_t len,
                       int64_t received_at, int mode, struct cc_ingest_result *res)
{
    struct cc_device dev;
    struct cc_device cur;
    struct cc_reading *rs = NULL;
    struct item *items = NULL;
    cJSON *err = NULL;
    size_t n = 0;
    size_t refused = 0;
    int rc;

    memset(res, 0, sizeof *res);
    rc = cc_store_device_by_serial(st, serial != NULL ? serial : "", &dev);
    if (rc == CC_ERR_NOT_FOUND) {
        res->rejected = 1;
        if (set_error(res, CC_ERR_NOT_FOUND, "device not found") != CC_OK)
            rc = CC_ERR_NOMEM;
        goto fail;
    }
    if (rc != CC_OK)
        goto fail;

    rc = cc_validate_readings(payload, len, received_at, &rs, &n, NULL, &err);
    if (rc != CC_OK) {
        /* Not JSON, or a wrong shape as a whole (or out of memory: err is NULL). */
        res->rejected = 1;
        res->error = err;
        err = NULL;
        goto fail;
    }
    if (err != NULL) {
        refused = refused_items(err);
        if (mode == CC_INGEST_ALL_OR_NOTHING || n == 0) {
            res->rejected = n + refused;
            res->error = err;
            err = NULL;
            rc = CC_ERR_VALIDATION;
            goto fail;
        }
    }

    items = malloc(n * sizeof *items);
    if (items == NULL) {
        rc = CC_ERR_NOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        items[i].r = rs[i];
        items[i].pos = i;
    }
    /* Alert state follows timestamps, not arrival: a backfill array may be in any
     * order. */
    qsort(items, n, sizeof *items, item_cmp);

    cur = dev; /* has_newest/newest_ts advance as readings are applied */
    for (size_t i = 0; i < n; i++) {
        const struct cc_reading *r = &items[i].r;
        int inserted = 0;

        rc = cc_store_reading_insert(st, &dev, r, received_at, &inserted);
        if (rc != CC_OK)
            goto fail;
        if (!inserted) {
            res->duplicates++;
            continue;
        }
        res->accepted++;
        if (cur.has_newest && r->ts_ms < cur.newest_ts)
            continue; /* stored, but older than what the alerts already saw */
        rc = cc_alert_on_reading(st, &cur, r, 1, received_at);
        if (rc != CC_OK)
            goto fail;
        cur.has_newest = 1;
        cur.newest_ts = r->ts_ms;
    }
    rc = cc_store_device_seen(st, dev.id, received_at, cur.has_newest, cur.newest_ts);
    if (rc != CC_OK)
        goto fail;

    res->rejected = refused;
    res->error = err; /* items refused in PARTIAL mode, or NULL */
    res->last = rs[n - 1];
    res->has_last = 1;
    free(items);
    free(rs);
    return CC_OK;

fail:
    if (res->error == NULL) {
        /* A failure with no refusal to report (database, memory, the alert engine, or
         * the device row gone mid-transaction): the caller rolls back. */
        cc_ingest_result_clear(res);
        if (rc != CC_ERR_NOMEM)
            rc = CC_ERR_DB;
    }
    cJSON_Delete(err);
    free(items);
    free(rs);
    return rc;
}

/* Parses "devices/{serial}/readings" or "devices/{serial}/status" strictly: the
 * serial has 1..CC_SERIAL_MAX bytes, none of them '/', '+', '#' or a control
 * character. 1 (and serial, kind) on a match, else 0. */
static int parse_topic(const char *topic, char serial[CC_SERIAL_MAX + 1], int *kind)
{
    const char *s, *slash;
    size_t n;

    if (topic == NULL || strncmp(topic, TOPIC_PREFIX, strlen(TOPIC_PREFIX)) != 0)
        return 0;
    s = topic + strlen(TOPIC_PREFIX);
    slash = strchr(s, '/');
    if (slash == NULL)
        return 0;
    n = (size_t)(slash - s);
    if (n < 1 || n > CC_SERIAL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '+' || c == '#' || c < 0x20 || c == 0x7F)
            return 0;
    }
    if (strcmp(slash + 1, "readings") == 0)
        *kind = TOPIC_READINGS;
    else if (strcmp(slash + 1, "status") == 0)
        *kind = TOPIC_STATUS;
    else
        return 0;
    memcpy(serial, s, n);
    serial[n] = '\0';
    return 1;
}

/* Handles a status message. CC_OK (res->error set if refused) or a database code. */
static int ingest_status(struct cc_store *st, const char *serial, const char *payload, size_t len,
                         int64_t received_at, struct cc_ingest_result *res)
{
    struct cc_device dev;
    char firmware[CC_FIRMWARE_MAX + 1];
    cJSON *err = NULL;
    int online = 0;
    int rc;

    rc = cc_store_device_by_serial(st, serial, &dev);
    if (rc == CC_ERR_NOT_FOUND) {
        res->rejected = 1;
        return set_error(res, CC_ERR_NOT_FOUND, "device not found");
    }
    if (rc != CC_OK)
        return rc;
    rc = cc_validate_status(payload, len, &online, firmware, &err);
    if (rc != CC_OK) {
        if (err == NULL)
            return CC_ERR_NOMEM;
        res->rejected = 1;
        res->error = err;
        return CC_OK;
    }
    rc = cc_store_device_status(st, dev.id, online, firmware, received_at);
    if (rc == CC_ERR_NOT_FOUND)
        rc = CC_ERR_DB; /* looked up a moment ago in the same transaction */
    return rc;
}

int cc_ingest_mqtt(struct cc_store *st, const char *topic, const char *payload, size_t len,
                   int64_t received_at, struct cc_ingest_result *res,
                   char serial_out[CC_SERIAL_MAX + 1])
{
    char serial[CC_SERIAL_MAX + 1];
    int kind = 0;
    int rc;

    memset(res, 0, sizeof *res);
    serial_out[0] = '\0';
    if (!parse_topic(topic, serial, &kind)) {
        res->rejected = 1;
        rc = set_error(res, CC_ERR_VALIDATION, "unknown topic");
        if (rc != CC_OK)
            goto fail;
    } else {
        memcpy(serial_out, serial, sizeof serial);
        if (kind == TOPIC_READINGS)
            rc = cc_ingest_readings(st, serial, payload, len, received_at, CC_INGEST_PARTIAL, res);
        else
            rc = ingest_status(st, serial, payload, len, received_at, res);
        if (rc == CC_ERR_DB || rc == CC_ERR_NOMEM || rc == CC_ERR_INTERNAL)
            goto fail;
    }
    if (res->error != NULL) {
        /* Whole message or some items refused: keep the message as a dead letter. */
        rc = cc_store_dead_letter(st, received_at, topic != NULL ? topic : "", payload, len,
                                  cc_error_code(res->error), cc_error_message(res->error));
        if (rc != CC_OK)
            goto fail;
    }
    return CC_OK;

fail:
    cc_ingest_result_clear(res);
    return rc;
}
