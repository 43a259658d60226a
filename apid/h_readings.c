/* h_readings.c - POST /api/readings/devices/:serialNumber/readings: HTTP ingestion.
 *
 * The device signs with its API key in x-device-key. The body goes through
 * cc_ingest_readings, the same path as MQTT (validation, storage, device update, alert
 * engine), all or nothing: one bad item refuses the request with every problem listed. */
#include "api.h"

#include "cc_devices.h"
#include "cc_ingest.h"
#include "cc_rc.h"
#include "cc_time.h"

/* 1 if the payload is a JSON array (its first non-blank byte is '['). */
static int is_array(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return s[i] == '[';
    }
    return 0;
}

/* The answer: the stored reading for one object, counts and the last one for an array. */
static cJSON *answer(const struct api_req *r, const struct cc_ingest_result *res)
{
    cJSON *reading = res->has_last ? cc_reading_to_json(&res->last) : cJSON_CreateNull();
    cJSON *o = NULL;

    if (reading == NULL)
        return NULL;
    if (!is_array(r->raw, r->raw_len)) {
        if (cJSON_IsObject(reading) &&
            (cJSON_AddStringToObject(reading, "serialNumber", r->param[0]) == NULL ||
             cJSON_AddBoolToObject(reading, "duplicate", res->duplicates > 0) == NULL)) {
            cJSON_Delete(reading);
            return NULL;
        }
        return reading;
    }
    o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddStringToObject(o, "serialNumber", r->param[0]) == NULL ||
        cJSON_AddNumberToObject(o, "accepted", (double)res->accepted) == NULL ||
        cJSON_AddNumberToObject(o, "duplicates", (double)res->duplicates) == NULL ||
        !cJSON_AddItemToObject(o, "last", reading)) {
        cJSON_Delete(reading);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int api_readings_ingest(struct api_req *r)
{
    const char *key = mg_get_header(r->conn, "x-device-key");
    struct cc_ingest_result res;
    cJSON *err = NULL, *out = NULL;
    int rc;

    rc = cc_devices_authenticate(r->st, r->param[0], key);
    if (rc == CC_ERR_UNAUTHORIZED)
        return api_reply_error(r, rc, "missing or invalid x-device-key", NULL);
    if (rc != CC_OK)
        return api_answer(r, rc, NULL, NULL, 201);
    if (r->raw == NULL)
        return api_reply_error(r, CC_ERR_BAD_JSON,
                               "the request body must be a reading or an "
                               "array of readings",
                               NULL);

    rc = cc_store_begin(r->st);
    if (rc != CC_OK)
        return api_answer(r, rc, NULL, NULL, 201);
    rc = cc_ingest_readings(r->st, r->param[0], r->raw, r->raw_len, cc_now_ms(),
                            CC_INGEST_ALL_OR_NOTHING, &res);
    if (rc == CC_OK) {
        rc = cc_store_commit(r->st);
    } else {
        cc_store_rollback(r->st);
        err = res.error;
        res.error = NULL;
    }
    if (rc == CC_OK) {
        out = answer(r, &res);
        if (out == NULL)
            rc = CC_ERR_NOMEM;
    }
    cc_ingest_result_clear(&res);
    return api_answer(r, rc, err, out, 201);
}
