/* h_queries.c - the read side of a cold cell: GET /api/readings/coldcells/:id/readings
 * (statistics and series), GET /api/coldcells/:id/latest and the streamed CSV export
 * GET /api/readings/coldcells/:id/export.csv, page by page, each page read in its own
 * short transaction. The work is in common/api/cc_query.h. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_log.h"
#include "cc_query.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "cc_users.h"
#include "dbpool.h"

/* Bytes one page of the export may take in memory (CC_CSV_PAGE_ROWS rows of about 120
 * bytes; a row is bounded by the serial number's length). */
#define API_CSV_PAGE_MAX (4 * 1024 * 1024)

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

/* One page of the export, gathered in memory while the page's read transaction is open,
 * so that the client's pace never stretches a snapshot (cc_query_csv_page). */
struct csv_page {
    char *buf;
    size_t len, cap;
};

static int page_write(void *ctx, const char *buf, size_t len)
{
    struct csv_page *p = ctx;

    if (p->len + len > API_CSV_PAGE_MAX)
        return -1;
    if (p->len + len > p->cap) {
        size_t cap = p->cap ? p->cap : CC_CSV_CHUNK;
        char *nb;

        while (cap < p->len + len)
            cap *= 2;
        nb = realloc(p->buf, cap);
        if (nb == NULL)
            return -1;
        p->buf = nb;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, buf, len);
    p->len += len;
    return 0;
}

/* Sends one page: a chunk on HTTP/1.1, plain bytes on HTTP/1.0. Each write gives up
 * after API_REQUEST_TIMEOUT_MS (civetweb's request_timeout_ms), so a client that stops
 * reading frees its worker. 0 or -1. */
static int page_send(struct mg_connection *conn, int chunked, const struct csv_page *p)
{
    if (p->len == 0)
        return 0;
    if (chunked)
        return mg_send_chunk(conn, p->buf, (unsigned int)p->len) > 0 ? 0 : -1;
    return mg_write(conn, p->buf, p->len) == (int)p->len ? 0 : -1;
}

/* The request's access, checked again on the page's own connection: an export read page
 * by page can outlive the first check by hours, and a user disabled or deleted, or no
 * longer allowed to see the cell (a technician unlinked, a role changed), must get no
 * further page. The role is the stored one, as for any request. CC_OK or the refusal. */
static int export_still_allowed(struct api_req *r)
{
    struct cc_principal now;
    int rc = cc_users_principal(r->st, r->who.user_id, &now);

    if (rc == CC_OK)
        rc = cc_access_check(r->st, &now, CC_ENTITY_COLDCELL, r->id[0], CC_ACCESS_READ);
    return rc;
}

int api_readings_export_csv(struct api_req *r)
{
    struct cc_query_csv_cursor cur = {0};
    struct csv_page page = {NULL, 0, 0};
    int64_t from = 0, to = 0;
    cJSON *err = NULL;
    char head[1024], date[40];
    struct tm tm;
    time_t now = time(NULL);
    int chunked;
    int n;
    int rc;

    rc = cc_query_csv_check(r->st, &r->who, r->id[0], r->query, &from, &to, &err);
    if (rc != CC_OK)
        return api_answer(r, rc, err, NULL, 200);

    /* The export is streamed, never held whole: chunked transfer on HTTP/1.1; an
     * HTTP/1.0 client gets the bytes and the end of the connection. */
    chunked = r->ri->http_version == NULL || strcmp(r->ri->http_version, "1.0") != 0;
    if (!chunked)
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
                 chunked ? "1.1" : "1.0", date, (long long)r->id[0],
                 r->origin ? "Access-Control-Allow-Origin: " : "", r->origin ? r->origin : "",
                 r->origin ? "\r\nVary: Origin\r\n" : "", r->extra_headers,
                 chunked ? "Transfer-Encoding: chunked\r\n" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof head)
        return api_reply_error(r, CC_ERR_INTERNAL, NULL, NULL);
    /* Between pages the worker holds neither a connection nor a snapshot: the WAL can
     * be checkpointed however slowly the client reads. */
    api_db_give(r);
    r->status = 200;
    if (mg_write(r->conn, head, (size_t)n) != n) {
        rc = CC_ERR_IO;
        goto fail;
    }
    while (!cur.done) {
        page.len = 0;
        rc = api_db_take(r, 1);
        if (rc == CC_OK && cur.started)
            rc = export_still_allowed(r);
        if (rc == CC_OK)
            rc = cc_query_csv_page(r->st, r->id[0], from, to, &cur, page_write, &page);
        api_db_give(r);
        if (rc != CC_OK)
            goto fail;
        if (page_send(r->conn, chunked, &page) != 0) {
            rc = CC_ERR_IO;
            goto fail;
        }
    }
    free(page.buf);
    if (chunked)
        mg_write(r->conn, "0\r\n\r\n", 5);
    return 200;

fail:
    /* The status is gone: end the connection without the last chunk, so the client
     * sees a truncated transfer, not a short file. */
    cc_log_warn("csv_export_failed", "cell=%lld rc=%s rows=%lld", (long long)r->id[0],
                cc_rc_code(rc), (long long)cur.rows);
    free(page.buf);
    r->must_close = 1;
    return 200;
}
