/* metrics.c - apid's GET /metrics: Prometheus text exposition (format 0.0.4).
 *
 * Every counter is a relaxed atomic in a fixed array indexed by route (the routing
 * table's position; one extra slot, route="other", for unmatched paths and OPTIONS),
 * method and status: a request costs a few atomic adds and no lock. The latency
 * histogram keeps per-bucket counts and is made cumulative at scrape time, so its
 * buckets are monotonic and +Inf equals _count in every scrape.
 * Loopback only by default: another client (the TCP peer; X-Forwarded-For is not
 * trusted here) gets 403 FORBIDDEN unless METRICS_ALLOW_REMOTE=1 (read once at start). Never rate
 * limited (routes.c). */
#include "api.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "dbpool.h"

#define MAX_ROUTES 96          /* routing table entries counted, + "other" */
#define BODY_MAX (1024 * 1024) /* bytes of exposition text */
#define N_METHODS 8
#define N_BUCKETS 14 /* the bounds below, then +Inf */

static const char *const methods[N_METHODS] = {"GET",    "POST", "PUT",     "PATCH",
                                               "DELETE", "HEAD", "OPTIONS", "OTHER"};
/* The statuses apid sends; anything else is counted under its class ("5xx"). */
static const int statuses[] = {101, 200, 201, 204, 304, 400, 401, 403,
                               404, 405, 409, 413, 426, 429, 500, 503};
#define N_STATUS (sizeof statuses / sizeof statuses[0])
#define N_STATUS_SLOTS (N_STATUS + 5) /* + 1xx..5xx */
static const double bounds_s[N_BUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,  5};

static atomic_uint_fast64_t requests[MAX_ROUTES + 1][N_METHODS][N_STATUS_SLOTS];
static atomic_uint_fast64_t buckets[MAX_ROUTES + 1][N_BUCKETS];
static atomic_uint_fast64_t sum_ns[MAX_ROUTES + 1];
static atomic_uint_fast64_t rate_limited;
static atomic_int_fast64_t ws_connections;
static atomic_uint_fast64_t ws_sent;
static int allow_remote;

int api_metrics_init(char *err, size_t errlen)
{
    const char *v = getenv("METRICS_ALLOW_REMOTE");

    if (api_route_count() > MAX_ROUTES) {
        snprintf(err, errlen, "metrics: more than %d routes", MAX_ROUTES);
        return CC_ERR_CONFIG;
    }
    if (v == NULL || strcmp(v, "") == 0 || strcmp(v, "0") == 0)
        allow_remote = 0;
    else if (strcmp(v, "1") == 0)
        allow_remote = 1;
    else {
        snprintf(err, errlen, "METRICS_ALLOW_REMOTE: must be 0 or 1");
        return CC_ERR_CONFIG;
    }
    return CC_OK;
}

static size_t method_slot(const char *m)
{
    for (size_t i = 0; i < N_METHODS - 1; i++) {
        if (strcmp(m, methods[i]) == 0)
            return i;
    }
    return N_METHODS - 1;
}

static size_t status_slot(int status)
{
    for (size_t i = 0; i < N_STATUS; i++) {
        if (statuses[i] == status)
            return i;
    }
    if (status < 100 || status > 599)
        status = 500;
    return N_STATUS + (size_t)(status / 100 - 1);
}

static size_t route_slot(const struct api_route *route)
{
    size_t n = api_route_count();

    for (size_t i = 0; route != NULL && i < n; i++) {
        if (api_route_at(i) == route)
            return i;
    }
    return MAX_ROUTES; /* "other" */
}

void api_metrics_request(const struct api_req *r, int status, double seconds)
{
    size_t rs = route_slot(r->route), b = 0;

    atomic_fetch_add_explicit(&requests[rs][method_slot(r->method)][status_slot(status)], 1,
                              memory_order_relaxed);
    while (b < N_BUCKETS - 1 && seconds > bounds_s[b])
        b++;
    atomic_fetch_add_explicit(&buckets[rs][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sum_ns[rs], (uint_fast64_t)(seconds * 1e9), memory_order_relaxed);
}

void api_metrics_rate_limited(void)
{
    atomic_fetch_add_explicit(&rate_limited, 1, memory_order_relaxed);
}

void api_metrics_ws_open(int delta)
{
    atomic_fetch_add_explicit(&ws_connections, delta, memory_order_relaxed);
}

void api_metrics_ws_sent(void)
{
    atomic_fetch_add_explicit(&ws_sent, 1, memory_order_relaxed);
}

/* 1 if the peer (never X-Forwarded-For) is a loopback address. */
static int peer_is_loopback(const struct api_req *r)
{
    const char *a = r->ri->remote_addr;

    return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 ||
           strncmp(a, "::ffff:127.", 11) == 0;
}

struct out {
    char *buf;
    size_t n;
    int full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int w;

    if (o->full)
        return;
    va_start(ap, fmt);
    w = vsnprintf(o->buf + o->n, BODY_MAX - o->n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= BODY_MAX - o->n)
        o->full = 1;
    else
        o->n += (size_t)w;
}

static const char *route_name(size_t rs)
{
    return rs == MAX_ROUTES ? "other" : api_route_at(rs)->pattern;
}

static void status_name(size_t ss, char *buf, size_t len)
{
    if (ss < N_STATUS)
        snprintf(buf, len, "%d", statuses[ss]);
    else
        snprintf(buf, len, "%dxx", (int)(ss - N_STATUS + 1));
}

static void render(struct out *o)
{
    size_t nr = api_route_count();
    char st[8];

    put(o, "# HELP coldchain_http_requests_total HTTP requests answered, by route template, "
           "method and status.\n# TYPE coldchain_http_requests_total counter\n");
    for (size_t rs = 0; rs <= MAX_ROUTES; rs++) {
        if (rs >= nr && rs != MAX_ROUTES)
            continue;
        for (size_t m = 0; m < N_METHODS; m++) {
            for (size_t s = 0; s < N_STATUS_SLOTS; s++) {
                uint_fast64_t v = atomic_load_explicit(&requests[rs][m][s], memory_order_relaxed);

                if (v == 0)
                    continue;
                status_name(s, st, sizeof st);
                put(o,
                    "coldchain_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} "
                    "%llu\n",
                    route_name(rs), methods[m], st, (unsigned long long)v);
            }
        }
    }
    put(o, "# HELP coldchain_http_request_duration_seconds Time from request to answer, by route "
           "template.\n# TYPE coldchain_http_request_duration_seconds histogram\n");
    for (size_t rs = 0; rs <= MAX_ROUTES; rs++) {
        uint_fast64_t b[N_BUCKETS], count = 0;

        if (rs >= nr && rs != MAX_ROUTES)
            continue;
        for (size_t i = 0; i < N_BUCKETS; i++) {
            b[i] = atomic_load_explicit(&buckets[rs][i], memory_order_relaxed);
            count += b[i];
        }
        if (count == 0)
            continue;
        uint_fast64_t cum = 0;

        for (size_t i = 0; i < N_BUCKETS - 1; i++) {
            cum += b[i];
            put(o, "coldchain_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                route_name(rs), bounds_s[i], (unsigned long long)cum);
        }
        put(o, "coldchain_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
            route_name(rs), (unsigned long long)count);
        put(o, "coldchain_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n", route_name(rs),
            (double)atomic_load_explicit(&sum_ns[rs], memory_order_relaxed) / 1e9);
        put(o, "coldchain_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route_name(rs),
            (unsigned long long)count);
    }
    put(o,
        "# HELP coldchain_http_rate_limited_total Requests refused with 429 by the rate "
        "limiter.\n# TYPE coldchain_http_rate_limited_total counter\n"
        "coldchain_http_rate_limited_total %llu\n",
        (unsigned long long)atomic_load_explicit(&rate_limited, memory_order_relaxed));
    put(o,
        "# HELP coldchain_ws_connections Open live-feed WebSocket connections.\n"
        "# TYPE coldchain_ws_connections gauge\ncoldchain_ws_connections %lld\n",
        (long long)atomic_load_explicit(&ws_connections, memory_order_relaxed));
    put(o,
        "# HELP coldchain_ws_messages_sent_total Live-feed messages written to WebSockets.\n"
        "# TYPE coldchain_ws_messages_sent_total counter\ncoldchain_ws_messages_sent_total %llu\n",
        (unsigned long long)atomic_load_explicit(&ws_sent, memory_order_relaxed));
    /* What make soak watches: memory apid holds, apart from freed memory malloc keeps for
     * reuse (RSS counts both). mallinfo2 locks each arena in turn: once per scrape. */
    struct mallinfo2 mi = mallinfo2();
    int64_t db_used, db_peak;

    cc_store_memory(&db_used, &db_peak);

    put(o,
        "# HELP coldchain_heap_in_use_bytes Heap memory in use: live allocations and blocks "
        "held in per-thread caches, not freed memory kept for reuse.\n"
        "# TYPE coldchain_heap_in_use_bytes gauge\ncoldchain_heap_in_use_bytes %zu\n",
        mi.uordblks + mi.hblkhd);
    put(o,
        "# HELP coldchain_db_pool_open_connections Pooled SQLite connections opened so far "
        "(at most API_DB_CONNS; each keeps its page and statement caches).\n"
        "# TYPE coldchain_db_pool_open_connections gauge\n"
        "coldchain_db_pool_open_connections %d\n",
        api_db_open_count());
    put(o,
        "# HELP coldchain_sqlite_memory_bytes Memory SQLite holds (page caches, schemas, "
        "statements of every connection), kept near API_DB_HEAP_MIB.\n"
        "# TYPE coldchain_sqlite_memory_bytes gauge\ncoldchain_sqlite_memory_bytes %lld\n"
        "# HELP coldchain_sqlite_memory_peak_bytes The most coldchain_sqlite_memory_bytes "
        "has been since apid started.\n"
        "# TYPE coldchain_sqlite_memory_peak_bytes gauge\ncoldchain_sqlite_memory_peak_bytes "
        "%lld\n",
        (long long)db_used, (long long)db_peak);
}

int api_metrics(struct api_req *r)
{
    struct out o = {NULL, 0, 0};
    char head[512];
    int n;

    if (!allow_remote && !peer_is_loopback(r))
        return api_reply_error(r, CC_ERR_FORBIDDEN, "metrics are served to loopback clients only",
                               NULL);
    o.buf = malloc(BODY_MAX);
    if (o.buf == NULL)
        return api_reply_error(r, CC_ERR_NOMEM, NULL, NULL);
    render(&o);
    if (o.full) {
        free(o.buf);
        cc_log_error("metrics_too_large", "exposition over %d bytes", BODY_MAX);
        return api_reply_error(r, CC_ERR_INTERNAL, NULL, NULL);
    }
    n = snprintf(head, sizeof head,
                 "HTTP/1.1 200 OK\r\n"
                 "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                 "Content-Length: %zu\r\n"
                 "Cache-Control: no-store\r\n"
                 "X-Content-Type-Options: nosniff\r\n"
                 "Connection: close\r\n\r\n",
                 o.n);
    r->must_close = 1;
    mg_write(r->conn, head, (size_t)n);
    mg_write(r->conn, o.buf, o.n);
    free(o.buf);
    r->status = 200;
    return 200;
}
