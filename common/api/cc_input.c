/* cc_input.c - typed request body fields with every problem collected. */
#include "cc_input.h"

#include <math.h>
#include <stdio.h>

#include "cc_error.h"
#include "cc_rc.h"

#define SENTENCE_MAX 256

void cc_input_init(struct cc_input *in, const cJSON *obj)
{
    in->obj = obj;
    in->err = NULL;
    in->count = 0;
    in->nomem = 0;
}

void cc_input_problem(struct cc_input *in, const char *field, const char *issue)
{
    char sentence[SENTENCE_MAX];

    in->count++;
    if (in->nomem)
        return;
    if (in->err == NULL) {
        snprintf(sentence, sizeof sentence, "%s %s", field, issue);
        in->err = cc_error_new(CC_ERR_VALIDATION, sentence);
        if (in->err == NULL) {
            in->nomem = 1;
            return;
        }
    }
    if (cc_error_add_detail(in->err, field, issue) != CC_OK)
        in->nomem = 1;
}

int cc_input_has(const struct cc_input *in, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(in->obj, name) != NULL;
}

/* Looks the field up and handles absent and null. Returns CC_INPUT_SET when the
 * caller must check the value in *item. */
static int lookup(struct cc_input *in, const char *name, unsigned flags, const cJSON **item)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(in->obj, name);

    if (it == NULL || (cJSON_IsNull(it) && !(flags & CC_INPUT_NULLABLE))) {
        if (flags & CC_INPUT_REQUIRED) {
            cc_input_problem(in, name, "required");
            return it == NULL ? CC_INPUT_ABSENT : CC_INPUT_BAD;
        }
        if (it != NULL) {
            cc_input_problem(in, name, "must not be null");
            return CC_INPUT_BAD;
        }
        return CC_INPUT_ABSENT;
    }
    if (cJSON_IsNull(it))
        return CC_INPUT_NULL;
    *item = it;
    return CC_INPUT_SET;
}

long cc_input_utf8_len(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    long n = 0;

    while (*u) {
        unsigned char c = *u;
        int extra;
        unsigned long cp;

        if (c < 0x20 || c == 0x7f)
            return -1;
        if (c < 0x80) {
            u++;
            n++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            extra = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return -1;
        }
        u++;
        for (int i = 0; i < extra; i++, u++) {
            if ((*u & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (*u & 0x3f);
        }
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        n++;
    }
    return n;
}

int cc_input_text(struct cc_input *in, const char *name, unsigned flags, size_t max_chars,
                  const char **out)
{
    const cJSON *it = NULL;
    char issue[64];
    long n;
    int got = lookup(in, name, flags, &it);

    if (got != CC_INPUT_SET)
        return got;
    if (!cJSON_IsString(it) || it->valuestring == NULL) {
        cc_input_problem(in, name, "must be a string");
        return CC_INPUT_BAD;
    }
    n = cc_input_utf8_len(it->valuestring);
    if (n < 0) {
        cc_input_problem(in, name, "must be text without control characters");
        return CC_INPUT_BAD;
    }
    if (n == 0 && (flags & CC_INPUT_NONEMPTY)) {
        cc_input_problem(in, name, (flags & CC_INPUT_REQUIRED) ? "required" : "must not be empty");
        return CC_INPUT_BAD;
    }
    if ((size_t)n > max_chars) {
        snprintf(issue, sizeof issue, "must be at most %zu characters", max_chars);
        cc_input_problem(in, name, issue);
        return CC_INPUT_BAD;
    }
    *out = it->valuestring;
    return CC_INPUT_SET;
}

int cc_input_number(struct cc_input *in, const char *name, unsigned flags, double min, double max,
                    double *out)
{
    const cJSON *it = NULL;
    char issue[96];
    int got = lookup(in, name, flags, &it);

    if (got != CC_INPUT_SET)
        return got;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
        cc_input_problem(in, name, "must be a number");
        return CC_INPUT_BAD;
    }
    if (it->valuedouble < min || it->valuedouble > max) {
        snprintf(issue, sizeof issue, "must be between %g and %g", min, max);
        cc_input_problem(in, name, issue);
        return CC_INPUT_BAD;
    }
    *out = it->valuedouble;
    return CC_INPUT_SET;
}

int cc_input_int(struct cc_input *in, const char *name, unsigned flags, int64_t min, int64_t max,
                 int64_t *out)
{
    const cJSON *it = NULL;
    char issue[96];
    double v;
    int got = lookup(in, name, flags, &it);

    if (got != CC_INPUT_SET)
        return got;
    /* 2^53: beyond it a double no longer holds every integer. */
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) ||
        floor(it->valuedouble) != it->valuedouble || fabs(it->valuedouble) > 9007199254740992.0) {
        cc_input_problem(in, name, "must be an integer");
        return CC_INPUT_BAD;
    }
    v = it->valuedouble;
    if (v < (double)min || v > (double)max) {
        snprintf(issue, sizeof issue, "must be between %lld and %lld", (long long)min,
                 (long long)max);
        cc_input_problem(in, name, issue);
        return CC_INPUT_BAD;
    }
    *out = (int64_t)v;
    return CC_INPUT_SET;
}

int cc_input_bool(struct cc_input *in, const char *name, unsigned flags, int *out)
{
    const cJSON *it = NULL;
    int got = lookup(in, name, flags, &it);

    if (got != CC_INPUT_SET)
        return got;
    if (!cJSON_IsBool(it)) {
        cc_input_problem(in, name, "must be a boolean");
        return CC_INPUT_BAD;
    }
    *out = cJSON_IsTrue(it);
    return CC_INPUT_SET;
}

int cc_input_finish(struct cc_input *in, cJSON **err)
{
    if (in->count == 0)
        return CC_OK;
    if (in->nomem) {
        cJSON_Delete(in->err);
        in->err = NULL;
        return CC_ERR_NOMEM;
    }
    if (err != NULL)
        *err = in->err;
    else
        cJSON_Delete(in->err);
    in->err = NULL;
    return CC_ERR_VALIDATION;
}
