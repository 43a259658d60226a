/* fuzz_http_query.c - everything apid reads from a request line and its headers without
 * a body: the route table's path matching with its :id parameters (apid/routes.c),
 * query-string parameters, paging, id filters, the readings range and the alert filter
 * (common/api/cc_http.c, cc_query.c, cc_alerts_api.c), X-Forwarded-For and CORS origins.
 * Input: one selector byte, then the string (query string, path, header value...);
 * for the origin check a 0x00 byte separates the CORS_ORIGINS list from the origin.
 * Invariants: a decoded parameter equals what an independent decoder of SPEC's
 * "a=1&b=2, %XX and +" gives; paging stays within 1..CC_PAGE_MAX; a parsed range is
 * ordered, at most CC_QUERY_MAX_SPAN_MS long, with one of the four bucket sizes; a
 * matched route's id parameters are positive ids; the client address written to logs
 * is short and holds no blank, quote or control byte (issue 12 item 9). */
#include <cjson/cJSON.h>

#include "../../apid/api.h"
#include "cc_alerts_api.h"
#include "cc_http.h"
#include "cc_query.h"
#include "cc_rc.h"
#include "fuzz.h"

#define NOW_MS 1764000000000LL

static const char *const NAMES[] = {"limit",  "offset", "range",      "from",  "to",
                                    "status", "type",   "coldCellId", "token", "a"};

/* 1 if "name" or "name=value" is the segment of slen bytes at seg. */
static int ref_names(const char *seg, size_t slen, const char *name, size_t nlen)
{
    return slen >= nlen && memcmp(seg, name, nlen) == 0 && (slen == nlen || seg[nlen] == '=');
}

/* The segments of qs that name name. */
static int ref_count(const char *qs, const char *name)
{
    size_t nlen = strlen(name);
    int n = 0;

    for (const char *seg = qs; seg != NULL;) {
        const char *amp = strchr(seg, '&');

        n += ref_names(seg, amp ? (size_t)(amp - seg) : strlen(seg), name, nlen);
        seg = amp ? amp + 1 : NULL;
    }
    return n;
}

/* The reference: the "name" or "name=value" segment, value with %XX (not %00) and '+'
 * decoded; 1 found, 0 absent, -1 bad, longer than outlen - 1 bytes or named more than
 * once (docs/api.md "Query parameters"). */
static int ref_param(const char *qs, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);

    if (ref_count(qs, name) > 1)
        return -1;
    for (const char *seg = qs; seg != NULL;) {
        const char *amp = strchr(seg, '&');
        size_t slen = amp ? (size_t)(amp - seg) : strlen(seg);

        if (ref_names(seg, slen, name, nlen)) {
            size_t o = 0;

            for (size_t i = nlen + 1; i < slen; i++) {
                unsigned v;
                char c = seg[i];

                if (c == '%') {
                    char hex[3] = {0};

                    if (i + 2 >= slen || !strchr("0123456789abcdefABCDEF", seg[i + 1]) ||
                        !strchr("0123456789abcdefABCDEF", seg[i + 2]) || seg[i + 1] == '\0' ||
                        seg[i + 2] == '\0')
                        return -1;
                    hex[0] = seg[i + 1];
                    hex[1] = seg[i + 2];
                    v = (unsigned)strtoul(hex, NULL, 16);
                    if (v == 0)
                        return -1;
                    c = (char)v;
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
        seg = amp ? amp + 1 : NULL;
    }
    return 0;
}

static void param(const char *qs, unsigned which)
{
    const char *name = NAMES[which % (sizeof NAMES / sizeof NAMES[0])];
    size_t outlen = (which & 0x40) ? 8 : CC_QUERY_VALUE_MAX;
    char got[CC_QUERY_VALUE_MAX], want[CC_QUERY_VALUE_MAX];
    int rc = cc_http_query_param(qs, name, got, outlen);
    int ref = ref_param(qs, name, want, outlen);

    FUZZ_CHECK(rc == ref);
    if (rc == 1)
        FUZZ_CHECK(strcmp(got, want) == 0);
}

static void error_shape(const cJSON *e)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "error");

    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(in, "code")));
}

static void lists(const char *qs)
{
    struct cc_page pg;
    struct cc_query_range rg;
    struct cc_alert_filter f;
    int64_t id = -1;
    cJSON *err = NULL;

    if (cc_http_page(qs, 50, &pg, &err) == CC_OK)
        FUZZ_CHECK(pg.limit >= 1 && pg.limit <= CC_PAGE_MAX && pg.offset >= 0 && err == NULL);
    else
        error_shape(err);
    cJSON_Delete(err);
    err = NULL;
    if (cc_http_query_id(qs, "coldCellId", &id, &err) == CC_OK)
        FUZZ_CHECK(id >= 0 && err == NULL);
    else
        error_shape(err);
    cJSON_Delete(err);
    err = NULL;
    memset(&f, 0x55, sizeof f);
    if (cc_alerts_filter_parse(qs, &f, &err) == CC_OK) {
        FUZZ_CHECK(f.cold_cell_id >= 0);
        FUZZ_CHECK(strcmp(f.status, "") == 0 || strcmp(f.status, "ACTIVE") == 0 ||
                   strcmp(f.status, "RESOLVED") == 0);
        FUZZ_CHECK(strcmp(f.type, "") == 0 || strcmp(f.type, "HIGH_TEMP") == 0 ||
                   strcmp(f.type, "LOW_TEMP") == 0 || strcmp(f.type, "POWER_LOSS") == 0 ||
                   strcmp(f.type, "SENSOR_ERROR") == 0);
    } else {
        error_shape(err);
    }
    cJSON_Delete(err);
    err = NULL;
    if (cc_query_parse_range(qs, NOW_MS, &rg, &err) == CC_OK) {
        FUZZ_CHECK(rg.from_ms < rg.to_ms);
        FUZZ_CHECK(rg.to_ms - rg.from_ms <= CC_QUERY_MAX_SPAN_MS);
        FUZZ_CHECK(rg.bucket_ms == 300000 || rg.bucket_ms == 1800000 || rg.bucket_ms == 7200000 ||
                   rg.bucket_ms == 86400000);
        FUZZ_CHECK((rg.to_ms - rg.from_ms) / rg.bucket_ms <= CC_QUERY_MAX_BUCKETS);
        FUZZ_CHECK(memchr(rg.range, '\0', sizeof rg.range) != NULL);
    } else {
        error_shape(err);
    }
    cJSON_Delete(err);
}

static void route(const char *path, unsigned which)
{
    static const char *const methods[] = {"GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"};
    struct api_req r;
    char allow[128];
    int64_t id;
    int rc;

    memset(&r, 0, sizeof r);
    r.method = methods[which % 6];
    r.path = path;
    rc = api_route_find(&r, allow, sizeof allow);
    FUZZ_CHECK(rc == API_ROUTE_FOUND || rc == API_ROUTE_NO_PATH || rc == API_ROUTE_NO_METHOD);
    FUZZ_CHECK(memchr(allow, '\0', sizeof allow) != NULL);
    if (rc == API_ROUTE_FOUND) {
        const char *p = r.route->pattern;
        int k = 0;

        FUZZ_CHECK(strcmp(r.route->method, r.method) == 0);
        for (; (p = strchr(p, ':')) != NULL; k++) {
            const char *name = ++p;
            size_t n = strcspn(name, "/");

            FUZZ_CHECK(k < API_MAX_PARAMS);
            FUZZ_CHECK(strlen(r.param[k]) >= 1 && strlen(r.param[k]) < API_PARAM_MAX);
            FUZZ_CHECK(strchr(r.param[k], '/') == NULL);
            if ((n == 2 && memcmp(name, "id", 2) == 0) ||
                (n > 2 && memcmp(name + n - 2, "Id", 2) == 0)) {
                FUZZ_CHECK(r.id[k] > 0);
                FUZZ_CHECK(cc_http_parse_id(r.param[k], &id) && id == r.id[k]);
            }
        }
    } else if (rc == API_ROUTE_NO_METHOD) {
        FUZZ_CHECK(allow[0] != '\0');
    }
}

static void addr(const char *xff, unsigned which)
{
    char out[CC_ADDR_MAX];
    const char *peer = "192.0.2.7";

    cc_http_client_addr(peer, xff, which & 1, out, sizeof out);
    FUZZ_CHECK(memchr(out, '\0', sizeof out) != NULL && out[0] != '\0');
    if (!(which & 1))
        FUZZ_CHECK(strcmp(out, peer) == 0);
    for (const char *c = out; *c; c++)
        FUZZ_CHECK((unsigned char)*c > ' ' && *c != '"' && *c != '=' && *c != '\\' &&
                   (unsigned char)*c < 0x7f);
}

static void origin(const uint8_t *d, size_t n)
{
    const uint8_t *rest;
    size_t rn;
    char *list = fuzz_split(d, n, &rest, &rn);
    char *org = fuzz_cstr(rest, rn);
    int ok = cc_http_origin_allowed(list, org);

    FUZZ_CHECK(ok == 0 || ok == 1);
    if (list[0] == '\0')
        FUZZ_CHECK(!ok);
    if (ok && strchr(list, '*') == NULL) /* without a "*" entry: one of the listed ones */
        FUZZ_CHECK(org[0] != '\0' && strstr(list, org) != NULL);
    free(list);
    free(org);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;
    unsigned which;

    if (size < 1 || size > 8192)
        return 0;
    which = data[0];
    if ((which & 7) == 4) {
        origin(data + 1, size - 1);
        return 0;
    }
    s = fuzz_cstr(data + 1, size - 1);
    switch (which & 7) {
    case 0:
    case 1:
        param(s, which >> 1);
        break;
    case 2:
        lists(s);
        break;
    case 3:
    case 5:
        route(s, which >> 3);
        break;
    default:
        addr(s, which >> 3);
        break;
    }
    free(s);
    return 0;
}
