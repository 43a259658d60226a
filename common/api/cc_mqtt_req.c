/* cc_mqtt_req.c - a broker's auth request body, JSON or form, read within bounds. */
#include "cc_mqtt_req.h"

#include <stdio.h>
#include <string.h>

#include "cc_error.h"
#include "cc_http.h"
#include "cc_json.h"
#include "cc_rc.h"

/* The string fields: their names, where they go and how long they may be. */
struct field {
    const char *name;
    const char *alias; /* VerneMQ spells the client id client_id */
    size_t off_has, off_val, cap;
};

#define FIELD(n, a, m)                                                                             \
    {                                                                                              \
        n, a, offsetof(struct cc_mqtt_req, has_##m), offsetof(struct cc_mqtt_req, m),              \
            sizeof(((struct cc_mqtt_req *)0)->m)                                                   \
    }
static const struct field fields[] = {
    FIELD("username", NULL, username),
    FIELD("password", NULL, password),
    FIELD("clientid", "client_id", client_id),
    FIELD("topic", NULL, topic),
    FIELD("action", NULL, action),
};

/* Sets *err to a VALIDATION_ERROR naming field. Returns CC_ERR_VALIDATION or CC_ERR_NOMEM. */
static int invalid(cJSON **err, const char *field, const char *issue)
{
    *err = cc_error_new(CC_ERR_VALIDATION, "invalid broker request");
    if (*err == NULL || cc_error_add_detail(*err, field, issue) != CC_OK)
        return CC_ERR_NOMEM;
    return CC_ERR_VALIDATION;
}

static int bad_json(cJSON **err, const char *message)
{
    *err = cc_error_new(CC_ERR_BAD_JSON, message);
    return *err ? CC_ERR_BAD_JSON : CC_ERR_NOMEM;
}

/* Copies s into cap bytes at dst: 1, or 0 when it does not fit. */
static int copy(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);

    if (n >= cap)
        return 0;
    memcpy(dst, s, n + 1);
    return 1;
}

/* A whole number in 0..255 written as 1 to 3 digits. 1 and *out, or 0. */
static int digits_small(const char *s, int64_t *out)
{
    int64_t n = 0;

    if (s[0] == '\0' || strlen(s) > 3)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        n = n * 10 + (*s - '0');
    }
    if (n > 255)
        return 0;
    *out = n;
    return 1;
}

/* A whole number in 0..255 from a JSON number or a string of digits (EMQX renders every
 * placeholder as a string, "${qos}"). 1 and *out, or 0. */
static int small_int(const cJSON *v, int64_t *out)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;

        if (d < 0 || d > 255 || d != (double)(int64_t)d)
            return 0;
        *out = (int64_t)d;
        return 1;
    }
    return cJSON_IsString(v) && digits_small(v->valuestring, out);
}

/* 1 if the len bytes at s contain the escape \u0000. */
static int has_nul_escape(const char *s, size_t len)
{
    static const char esc[] = "\\u0000";

    for (size_t i = 0; i + sizeof esc - 1 <= len; i++)
        if (memcmp(s + i, esc, sizeof esc - 1) == 0)
            return 1;
    return 0;
}

/* VerneMQ auth_on_subscribe's "topics": [{"topic": "...", "qos": 1}, ...]. */
static int parse_topics(const cJSON *arr, struct cc_mqtt_req *out, cJSON **err)
{
    const cJSON *it;

    if (!cJSON_IsArray(arr))
        return invalid(err, "topics", "must be an array");
    if (cJSON_GetArraySize(arr) > CC_MQTT_AUTH_TOPICS_MAX)
        return invalid(err, "topics", "too many");
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "topic");
        int64_t qos = 0;

        if (!cJSON_IsString(t) ||
            !copy(out->topics[out->n_topics], CC_MQTT_AUTH_TOPIC_MAX + 1, t->valuestring))
            return invalid(err, "topics", "each needs a topic string within the limit");
        if (cJSON_GetObjectItemCaseSensitive(it, "qos") != NULL &&
            !small_int(cJSON_GetObjectItemCaseSensitive(it, "qos"), &qos))
            return invalid(err, "topics", "qos must be a small whole number");
        out->topic_qos[out->n_topics++] = (int)qos;
    }
    return CC_OK;
}

static int parse_json(const char *body, size_t len, struct cc_mqtt_req *out, cJSON **err)
{
    cJSON *doc = NULL;
    const cJSON *v;
    int rc = CC_OK;

    if (!cc_json_depth_ok(body, len, CC_MQTT_AUTH_JSON_DEPTH))
        return bad_json(err, "the request nests too deep");
    doc = cc_json_parse_outside(body, len, NULL);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return bad_json(err, "the request must be a JSON object");
    }
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && rc == CC_OK; i++) {
        const struct field *f = &fields[i];

        v = cJSON_GetObjectItemCaseSensitive(doc, f->name);
        if (v == NULL && f->alias != NULL)
            v = cJSON_GetObjectItemCaseSensitive(doc, f->alias);
        if (v == NULL || cJSON_IsNull(v))
            continue;
        if (!cJSON_IsString(v))
            rc = invalid(err, f->name, "must be a string");
        else if (!copy((char *)out + f->off_val, f->cap, v->valuestring))
            rc = invalid(err, f->name, "too long");
        else
            *(int *)((char *)out + f->off_has) = 1;
    }
    v = cJSON_GetObjectItemCaseSensitive(doc, "acc");
    if (rc == CC_OK && v != NULL) {
        if (!small_int(v, &out->acc))
            rc = invalid(err, "acc", "must be a small whole number");
        else
            out->has_acc = 1;
    }
    v = cJSON_GetObjectItemCaseSensitive(doc, "topics");
    if (rc == CC_OK && v != NULL)
        rc = parse_topics(v, out, err);
    cJSON_Delete(doc);
    return rc;
}

static int parse_form(const char *body, struct cc_mqtt_req *out, cJSON **err)
{
    char acc[8];
    int got;

    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const struct field *f = &fields[i];

        got = cc_http_query_param(body, f->name, (char *)out + f->off_val, f->cap);
        if (got == 0 && f->alias != NULL)
            got = cc_http_query_param(body, f->alias, (char *)out + f->off_val, f->cap);
        if (got < 0)
            return invalid(err, f->name, "too long, badly encoded or repeated");
        *(int *)((char *)out + f->off_has) = got;
    }
    got = cc_http_query_param(body, "acc", acc, sizeof acc);
    if (got != 0) {
        if (got < 0 || !digits_small(acc, &out->acc))
            return invalid(err, "acc", "must be a small whole number");
        out->has_acc = 1;
    }
    return CC_OK;
}

int cc_mqtt_req_parse(const char *body, size_t len, int form, struct cc_mqtt_req *out, cJSON **err)
{
    *err = NULL;
    memset(out, 0, sizeof *out);
    if (len > CC_MQTT_AUTH_BODY_MAX) {
        *err = cc_error_new(CC_ERR_TOO_LARGE, "a broker request over "
                                              "CC_MQTT_AUTH_BODY_MAX bytes");
        return *err ? CC_ERR_TOO_LARGE : CC_ERR_NOMEM;
    }
    if (body == NULL || len == 0)
        return bad_json(err, "the request has no body");
    /* A NUL byte, raw or as \u0000, would end a C string early: "serial\0x" would be read
     * as "serial". No broker sends one (MQTT forbids U+0000 in its strings). */
    if (memchr(body, '\0', len) != NULL || has_nul_escape(body, len))
        return bad_json(err, "the request holds a NUL character");
    return form ? parse_form(body, out, err) : parse_json(body, len, out, err);
}
