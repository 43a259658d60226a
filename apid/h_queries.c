/* h_queries.c - the read side of a cold cell: GET /api/readings/coldcells/:id/readings
 * (statistics and series), GET /api/coldcells/:id/latest and the streamed CSV export
 * GET /api/readings/coldcells/:id/export.csv. The work is in common/cc_query.h. */
#include "api.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cc_log.h"
#include "cc_query.h"
#include "cc_rc.h"
#include "cc_time.h"

int api_readings_query(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_query_readings_json(r->st, &r->who, r->id[0], r->query, cc_now_ms(), &out, &err);

    return api_answer(r, rc, err, out, 200);
}

int api_coldcells_latest(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_query_latest(r->st, &r->who, r->id[0], &out);

    return api_answer(r, rc, NULL, out, 200);
}

/* The export's sink: chunks for HTTP/1.1, plain bytes (then close) for HTTP/1.0. */
struct csv_out {
    struct mg_connection *conn;
    int chunked;
};

static int csv_write(void *ctx, const char *buf, size_t len)
{
    struct csv_out *o = ctx;

    if (o->chunked)
        return mg_send_chunk(o->conn, buf, (unsigned int)len) > 0 ? 0 : -1;
    return mg_write(o->conn, buf, len) > 0 ? 0 : -1;
}

int api_readings_export_csv(struct api_req *r)
{
    struct csv_out o = {r->conn, 0};
    int64_t from = 0, to = 0;
    cJSON *err = NULL;
    char head[1024], date[40];
    struct tm tm;
    time_t now = time(NULL);
    int n;
    int rc;

    rc = cc_query_csv_check(r->st, &r->who, r->id[0], r->query, &from, &to, &err);
    if (rc != CC_OK)
        return api_answer(r, rc, err, NULL, 200);

    /* The export is streamed, never held whole: chunked transfer on HTTP/1.1; an
     * HTTP/1.0 client gets the bytes and the end of the connection. */
    o.chunked = r->ri->http_version == NULL || strcmp(r->ri->http_version, "1.0") != 0;
    if (!o.chunked)
        r->must_close = 1;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    n = snprintf(head, sizeof head,
                 "HTTP/%s 200 OK\r\n"
                 "Date: %s\r\n"
                 "Content-Type: text/csv; charset=utf-8; header=present\r\n"
                 "Content-Disposition: attachment; filename=\"coldcell-%lld.csv\"\r\n"
                 "Cache-Control: no-store\r\n"
                 "X-Content-Type-Options: nosniff\r\n"
                 "%s%s%s"
                 "%s"
                 "%s\r\n",
                 o.chunked ? "1.1" : "1.0", date, (long long)r->id[0],
                 r->origin ? "Access-Control-Allow-Origin: " : "", r->origin ? r->origin : "",
                 r->origin ? "\r\nVary: Origin\r\n" : "", r->extra_headers,
                 o.chunked ? "Transfer-Encoding: chunked\r\n" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof head)
        return api_reply_error(r, CC_ERR_INTERNAL, NULL, NULL);
    mg_write(r->conn, head, (size_t)n);
    r->status = 200;

    rc = cc_query_csv(r->st, r->id[0], from, to, csv_write, &o);
    if (rc != CC_OK) {
        /* The status is gone: end the connection without the last chunk, so the client
         * sees a truncated transfer, not a short file. */
        cc_log_error("csv_export_failed", "cell=%lld rc=%s", (long long)r->id[0], cc_rc_code(rc));
        r->must_close = 1;
        return 200;
    }
    if (o.chunked)
        mg_write(r->conn, "0\r\n\r\n", 5);
    return 200;
}
