/* cc_http.c - error bodies, body parsing, query strings and addresses for apid. */
#include "cc_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_json.h"
#include "cc_crypto.h"
#include "cc_rc.h"

const char *cc_http_default_message(int rc)
{
    switch (rc) {
    case CC_ERR_VALIDATION:
        return "the request is invalid";
    case CC_ERR_BAD_JSON:
        return "the request body is not valid JSON";
    case CC_ERR_UNAUTHORIZED:
        return "authentication required";
    case CC_ERR_TOKEN_EXPIRED:
        return "the access token has expired";
    case CC_ERR_INVALID_CREDENTIALS:
        return "invalid email or password";
    case CC_ERR_FORBIDDEN:
        return "your role may not use this route";
    case CC_ERR_NOT_FOUND:
        return "not found";
    case CC_ERR_METHOD:
        return "method not allowed on this path";
    case CC_ERR_CONFLICT:
    case CC_ERR_DUPLICATE:
        return "the request conflicts with existing data";
    case CC_ERR_TOO_LARGE:
        return "the request body is larger than 65536 bytes";
    case CC_ERR_RATE_LIMITED:
        return "too many requests, retry later";
    default:
        return "internal error";
    }
}

char *cc_http_error_body(int rc, const char *message, const cJSON *err, int production)
{
    cJSON *built = NULL, *use;
    char *s;

    if (rc == CC_OK)
        rc = CC_ERR_INTERNAL;
    if (err != NULL && cc_rc_http_status(rc) < 500) {
        use = (cJSON *)err;
    } else {
        if (cc_rc_http_status(rc) >= 500 && production)
            message = "internal error";
        built = cc_error_new(rc, message ? message : cc_http_default_message(rc));
        if (built == NULL)
            return NULL;
        use = built;
    }
    s = cJSON_PrintUnformatted(use);
    cJSON_Delete(built);
    return s;
}

int cc_http_parse_body(const char *buf, size_t len, cJSON **out, cJSON **err)
{
    cJSON *root;
    int why = 0;

    if (buf == NULL || len == 0) {
        *err = cc_error_new(CC_ERR_BAD_JSON, "the request body must be a JSON object");
        return CC_ERR_BAD_JSON;
    }
    /* Through the depth gate: cJSON recurses per level on a 100 KiB worker stack. */
    root = cc_json_parse_outside(buf, len, &why);
    if (root == NULL) {
        *err = cc_error_new(CC_ERR_BAD_JSON,
                            why == CC_JSON_TOO_DEEP
                                ? "the request body nests deeper than " CC_JSON_MAX_DEPTH_TEXT
                                  " levels"
                            : why == CC_JSON_NUL ? "a string in the request body holds \\u0000"
                                                 : "the request body is not valid JSON");
        return CC_ERR_BAD_JSON;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        *err = cc_error_new(CC_ERR_VALIDATION, "the request body must be a JSON object");
        return CC_ERR_VALIDATION;
    }
    *out = root;
    return CC_OK;
}

/* Decodes n bytes of s (%XX, '+') into out. 1 on success, -1 if bad or too long. */
static int decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= n)
                return -1;
            hi = cc_hex_value(s[i + 1]);
            lo = cc_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 1;
}

/* The next parameter called name in the query string p: its value's start (after '=', or
 * the end of the pair when it has none) in *val and its end in *vend; NULL if none. */
static const char *find_param(const char *p, const char *name, size_t nlen, const char **val,
                              const char **vend)
{
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;

        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            *val = eq ? eq + 1 : end;
            *vend = end;
            return p;
        }
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    return NULL;
}

int cc_http_query_param(const char *qs, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *at, *val = NULL, *vend = NULL, *v2, *e2;

    if (qs == NULL || outlen == 0)
        return 0;
    at = find_param(qs, name, nlen, &val, &vend);
    if (at == NULL)
        return 0;
    /* A second one is refused, not resolved: a proxy or cache that took the last value
     * would see another request than the one answered. */
    if (*vend != '\0' && find_param(vend + 1, name, nlen, &v2, &e2) != NULL)
        return -1;
    return decode(val, (size_t)(vend - val), out, outlen);
}

int cc_http_parse_id(const char *s, int64_t *out)
{
    int64_t v = 0;

    if (s == NULL || *s < '1' || *s > '9')
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10)
            return 0;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 1;
}

/* Reads an integer query parameter within [min, max]. 1 set, 0 absent, -1 bad. */
static int query_int(const char *qs, const char *name, int64_t min, int64_t max, int64_t *out)
{
    char buf[32];
    char *end = NULL;
    long long v;
    int got = cc_http_query_param(qs, name, buf, sizeof buf);

    if (got <= 0)
        return got;
    if (buf[0] == '\0' || buf[0] == '+' || buf[0] == ' ')
        return -1;
    v = strtoll(buf, &end, 10);
    if (end == NULL || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 1;
}

int cc_http_page(const char *qs, int64_t def_limit, struct cc_page *pg, cJSON **err)
{
    cJSON *e = NULL;
    int64_t limit = def_limit, offset = 0;

    if (query_int(qs, "limit", 1, CC_PAGE_MAX, &limit) < 0) {
        e = cc_error_new(CC_ERR_VALIDATION, "limit must be an integer from 1 to 500");
        if (e != NULL)
            cc_error_add_detail(e, "limit", "must be an integer from 1 to 500");
    }
    if (query_int(qs, "offset", 0, INT64_MAX / 2, &offset) < 0) {
        if (e == NULL)
            e = cc_error_new(CC_ERR_VALIDATION, "offset must be a non-negative integer");
        if (e != NULL)
            cc_error_add_detail(e, "offset", "must be a non-negative integer");
    }
    if (e != NULL) {
        *err = e;
        return CC_ERR_VALIDATION;
    }
    pg->limit = limit;
    pg->offset = offset;
    return CC_OK;
}

int cc_http_query_id(const char *qs, const char *name, int64_t *out, cJSON **err)
{
    char buf[32];
    char msg[96];
    int got = cc_http_query_param(qs, name, buf, sizeof buf);

    *out = 0;
    if (got == 0)
        return CC_OK;
    if (got > 0 && cc_http_parse_id(buf, out))
        return CC_OK;
    snprintf(msg, sizeof msg, "%s must be a positive integer", name);
    *err = cc_error_new(CC_ERR_VALIDATION, msg);
    if (*err != NULL)
        cc_error_add_detail(*err, name, "must be a positive integer");
    return CC_ERR_VALIDATION;
}

/* 1 if s looks like an IPv4 or IPv6 address (digits, hex, '.', ':'). */
static int plausible_addr(const char *s, size_t n)
{
    if (n == 0 || n >= CC_ADDR_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

void cc_http_client_addr(const char *peer, const char *xff, int trust_proxy, char *out,
                         size_t outlen)
{
    if (trust_proxy && xff != NULL && *xff) {
        const char *end = xff + strlen(xff);
        const char *start;

        while (end > xff && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        start = end;
        while (start > xff && start[-1] != ',')
            start--;
        while (start < end && (*start == ' ' || *start == '\t'))
            start++;
        if (plausible_addr(start, (size_t)(end - start))) {
            snprintf(out, outlen, "%.*s", (int)(end - start), start);
            return;
        }
    }
    snprintf(out, outlen, "%s", peer ? peer : "");
}

int cc_http_origin_allowed(const char *origins, const char *origin)
{
    size_t olen;
    const char *p = origins;

    if (origins == NULL || origin == NULL || *origin == '\0')
        return 0;
    olen = strlen(origin);
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *s = p, *e = end;

        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '/'))
            e--;
        if (e - s == 1 && *s == '*')
            return 1;
        if ((size_t)(e - s) == olen && memcmp(s, origin, olen) == 0)
            return 1;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}
