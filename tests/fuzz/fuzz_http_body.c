/* fuzz_http_body.c - request body parsing (common/api/cc_http.c cc_http_parse_body, then the
 * cc_input getters every handler reads fields with), run on a thread with a civetweb
 * worker's 100 KiB stack, as apid runs it for every route with a JSON body, login
 * included. Input: the body bytes (at most CC_MAX_BODY, as apid reads no more).
 * Invariants: CC_OK gives an object and no error; every refusal gives a SPEC §5 error
 * object with the matching code; a deep body (issue 12 item 1) is refused, not a crash;
 * the getters' answers agree with the field they read. */
#include <math.h>

#include <cjson/cJSON.h>

#include "cc_http.h"
#include "cc_input.h"
#include "cc_rc.h"
#include "fuzz.h"

struct job {
    const char *buf;
    size_t len;
};

static void check_error(const cJSON *e, const char *code)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "error");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(in, "code");

    FUZZ_CHECK(cJSON_IsString(c) && strcmp(c->valuestring, code) == 0);
    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(in, "message")));
}

/* What a handler does with a body: read typed fields, collect the problems. */
static void read_fields(const cJSON *body)
{
    struct cc_input in;
    const char *s = NULL;
    double d = 0;
    int64_t i = 0;
    int b = -1, got, rc;
    cJSON *err = NULL;

    cc_input_init(&in, body);
    got = cc_input_text(&in, "name", CC_INPUT_REQUIRED | CC_INPUT_NONEMPTY, 100, &s);
    if (got == CC_INPUT_SET) {
        long n = cc_input_utf8_len(s);

        FUZZ_CHECK(n >= 1 && n <= 100);
    }
    got = cc_input_text(&in, "email", CC_INPUT_NULLABLE, 254, &s);
    FUZZ_CHECK(got != CC_INPUT_SET || cc_input_utf8_len(s) <= 254);
    got = cc_input_number(&in, "minTemp", 0, -100.0, 150.0, &d);
    FUZZ_CHECK(got != CC_INPUT_SET || (isfinite(d) && d >= -100.0 && d <= 150.0));
    got = cc_input_int(&in, "coldCellId", CC_INPUT_NULLABLE, 1, INT64_MAX, &i);
    FUZZ_CHECK(got != CC_INPUT_SET || i >= 1);
    got = cc_input_bool(&in, "enabled", 0, &b);
    FUZZ_CHECK(got != CC_INPUT_SET || b == 0 || b == 1);
    rc = cc_input_finish(&in, &err);
    FUZZ_CHECK(rc == CC_OK || rc == CC_ERR_VALIDATION || rc == CC_ERR_NOMEM);
    FUZZ_CHECK((rc == CC_ERR_VALIDATION) == (err != NULL));
    if (err != NULL)
        check_error(err, "VALIDATION_ERROR");
    cJSON_Delete(err);
}

static void *parse_on_worker(void *arg)
{
    struct job *j = arg;
    cJSON *out = NULL, *err = NULL;
    int rc = cc_http_parse_body(j->buf, j->len, &out, &err);

    if (rc == CC_OK) {
        FUZZ_CHECK(cJSON_IsObject(out) && err == NULL);
        read_fields(out);
    } else {
        FUZZ_CHECK(out == NULL && err != NULL);
        FUZZ_CHECK(rc == CC_ERR_BAD_JSON || rc == CC_ERR_VALIDATION);
        check_error(err, rc == CC_ERR_BAD_JSON ? "BAD_JSON" : "VALIDATION_ERROR");
    }
    cJSON_Delete(out);
    cJSON_Delete(err);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct job j;
    char *buf;

    if (size > CC_MAX_BODY)
        return 0;
    buf = fuzz_cstr(data, size); /* apid's body buffer is NUL-terminated */
    j.buf = buf;
    j.len = size;
    fuzz_on_worker_stack(parse_on_worker, &j);
    free(buf);
    return 0;
}
