/* fuzz_validate.c - the reading and status validator (common/engine/cc_validate.c), the first
 * parser every MQTT and HTTP reading payload meets. Input: one mode byte (even: a
 * readings payload, odd: a status payload), then the payload bytes as sent by a device.
 * Invariants: every reading the validator accepts lies inside the SPEC §3 ranges, the
 * indexes of accepted readings are increasing array positions, a refusal always carries
 * a SPEC §5 error object, and an accepted reading can be shown as JSON. Runs on a thread
 * with a civetweb worker's 100 KiB stack: apid validates HTTP-ingested readings there. */
#include <math.h>

#include <cjson/cJSON.h>

#include "cc_rc.h"
#include "cc_validate.h"
#include "fuzz.h"

#define NOW_MS 1764000000000LL /* 2025-11-24: "now" for the ts window, fixed for replay */

/* A SPEC §5 error object: {"error":{"code":"...","message":"..."}}. */
static void check_error(const cJSON *e)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "error");

    FUZZ_CHECK(cJSON_IsObject(in));
    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(in, "code")));
    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(in, "message")));
}

static void check_reading(const struct cc_reading *r)
{
    cJSON *j;

    FUZZ_CHECK(isfinite(r->temperature));
    FUZZ_CHECK(r->temperature >= CC_TEMP_MIN && r->temperature <= CC_TEMP_MAX);
    FUZZ_CHECK(!r->has_humidity || (r->humidity >= 0.0 && r->humidity <= 100.0));
    FUZZ_CHECK(!r->has_battery || (r->battery_level >= 0.0 && r->battery_level <= 100.0));
    FUZZ_CHECK(r->ts_ms >= NOW_MS - CC_TS_MAX_AGE_MS && r->ts_ms <= NOW_MS + CC_TS_MAX_FUTURE_MS);
    FUZZ_CHECK(r->ts_given || r->ts_ms == NOW_MS);
    FUZZ_CHECK(r->power_status >= CC_ABSENT && r->power_status <= CC_TRUE);
    FUZZ_CHECK(r->door_status >= CC_ABSENT && r->door_status <= CC_TRUE);
    j = cc_reading_to_json(r);
    FUZZ_CHECK(j != NULL);
    cJSON_Delete(j);
}

static void readings(const char *p, size_t len)
{
    struct cc_reading *out = NULL;
    size_t n = 0, *idx = NULL;
    cJSON *err = NULL;
    int rc = cc_validate_readings(p, len, NOW_MS, &out, &n, &idx, &err);

    if (rc == CC_OK) {
        FUZZ_CHECK(n <= CC_MAX_BATCH);
        FUZZ_CHECK(err != NULL || n >= 1); /* all valid means at least one reading */
        for (size_t i = 0; i < n; i++) {
            check_reading(&out[i]);
            FUZZ_CHECK(idx[i] < CC_MAX_BATCH);
            FUZZ_CHECK(i == 0 || idx[i] > idx[i - 1]);
        }
        if (err != NULL)
            check_error(err);
        free(out);
        free(idx);
    } else {
        FUZZ_CHECK(rc == CC_ERR_BAD_JSON || rc == CC_ERR_VALIDATION || rc == CC_ERR_NOMEM);
        if (rc != CC_ERR_NOMEM) {
            FUZZ_CHECK(err != NULL);
            check_error(err);
        }
    }
    cJSON_Delete(err);
}

static void status(const char *p, size_t len)
{
    char fw[CC_FIRMWARE_MAX + 1];
    int online = -1;
    cJSON *err = NULL;
    int rc = cc_validate_status(p, len, &online, fw, &err);

    if (rc == CC_OK) {
        FUZZ_CHECK(online == 0 || online == 1);
        FUZZ_CHECK(strnlen(fw, sizeof fw) <= CC_FIRMWARE_MAX);
    } else {
        FUZZ_CHECK(rc == CC_ERR_BAD_JSON || rc == CC_ERR_VALIDATION || rc == CC_ERR_NOMEM);
        if (rc != CC_ERR_NOMEM)
            check_error(err);
    }
    cJSON_Delete(err);
}

struct job {
    const char *p;
    size_t len;
    int status;
};

static void *validate_on_worker(void *arg)
{
    struct job *j = arg;

    if (j->status)
        status(j->p, j->len);
    else
        readings(j->p, j->len);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct job j;
    char *p;

    if (size < 1)
        return 0;
    p = fuzz_dup(data + 1, size - 1); /* exact length: the payload is not NUL-terminated */
    j.p = p;
    j.len = size - 1;
    j.status = data[0] & 1;
    fuzz_on_worker_stack(validate_on_worker, &j);
    free(p);
    return 0;
}
