/* server.c - apid's civetweb glue: the request pipeline, answers, per-thread stores. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cc_crypto.h"
#include "cc_error.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "dbpool.h"

#define HEAD_MAX 1024 /* bytes of an answer's status line and headers */

static const char oom_body[] = "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"out of memory\"}}";

/* Set on this worker thread once civetweb answered the connection's request with its own
 * error page; read and cleared when the connection closes (api_civet_close). A worker
 * serves one connection at a time, from its first request to its close. */
static __thread int civet_answered;

static const char cors_headers[] = "Authorization, Content-Type, X-Device-Key";

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "OK";
    }
}

/* The RFC 7231 date of now, formatted at most once a second per thread. */
static const char *http_date(void)
{
    static _Thread_local char buf[40];
    static _Thread_local time_t at = -1;
    time_t now = time(NULL);

    if (now != at) {
        struct tm tm;

        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        at = now;
    }
    return buf;
}

/* Whether the client asked to keep the connection (civetweb's should_keep_alive). */
static int client_keep_alive(const struct api_req *r)
{
    const char *c = mg_get_header(r->conn, "Connection");

    if (c != NULL)
        return strcasestr(c, "keep-alive") != NULL;
    return r->ri->http_version != NULL && strcmp(r->ri->http_version, "1.1") == 0;
}

void api_add_header(struct api_req *r, const char *name, const char *value)
{
    size_t used = strlen(r->extra_headers);

    snprintf(r->extra_headers + used, sizeof r->extra_headers - used, "%s: %s\r\n", name, value);
}

/* Sends the whole answer, status line, headers and body, in one write: two small
 * writes would meet Nagle and delayed ACK. Returns status. */
static int send_answer(struct api_req *r, int status, const char *body, size_t blen)
{
    char head[HEAD_MAX];
    char *buf = NULL;
    int n;

    /* The answer is complete: the connection goes back to the pool before the write,
     * which can take as long as the client makes it (API_REQUEST_TIMEOUT_MS). */
    api_db_give(r);
    if (!client_keep_alive(r))
        r->must_close = 1;
    n = snprintf(head, sizeof head,
                 "HTTP/%s %d %s\r\n"
                 "Date: %s\r\n"
                 "Connection: %s\r\n"
                 "Cache-Control: no-store\r\n"
                 "X-Content-Type-Options: nosniff\r\n"
                 "%s%s%s%s",
                 r->ri->http_version && strcmp(r->ri->http_version, "1.0") == 0 ? "1.0" : "1.1",
                 status, reason(status), http_date(), r->must_close ? "close" : "keep-alive",
                 r->origin ? "Access-Control-Allow-Origin: " : "", r->origin ? r->origin : "",
                 r->origin ? "\r\nVary: Origin\r\nAccess-Control-Expose-Headers: Retry-After\r\n"
                           : "",
                 r->extra_headers);
    if (n < 0 || (size_t)n >= sizeof head - 96) {
        cc_log_error("http_answer", "headers too long");
        n = 0;
        head[0] = '\0';
    }
    if (status != 204)
        n += snprintf(head + n, sizeof head - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", blen);
    else
        n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");

    buf = malloc((size_t)n + blen);
    if (buf != NULL) {
        memcpy(buf, head, (size_t)n);
        if (blen)
            memcpy(buf + n, body, blen);
        mg_write(r->conn, buf, (size_t)n + blen);
        free(buf);
    } else {
        mg_write(r->conn, head, (size_t)n);
        if (blen)
            mg_write(r->conn, body, blen);
    }
    r->status = status;
    return status;
}

int api_reply_empty(struct api_req *r, int status)
{
    return send_answer(r, status, NULL, 0);
}

/* Whether the database failure about to be answered is withheld so that the request runs
 * again: once, when its connection was found lost and nothing the request sent can have
 * committed (cc_store_retry_safe: a read, or a write that failed at its BEGIN or first
 * SELECT). Only CC_ERR_DB: a 503 of its own (a full live feed) is not the database's. */
static int retry_instead(struct api_req *r, int rc)
{
    if (rc != CC_ERR_DB || r->st == NULL || r->status != 0 || r->retried ||
        !cc_store_retry_safe(r->st))
        return 0;
    r->retry_due = 1;
    return 1;
}

/* The error answer with an explicit status (503 for /ready). */
static int reply_error_status(struct api_req *r, int status, int rc, const char *message,
                              cJSON *err)
{
    char *body;
    int sent;

    if (retry_instead(r, rc)) {
        cJSON_Delete(err);
        return status;
    }
    body = cc_http_error_body(rc, message, err, r->app->cfg.production);
    cJSON_Delete(err);
    if (body == NULL)
        return send_answer(r, 500, oom_body, sizeof oom_body - 1);
    sent = send_answer(r, status, body, strlen(body));
    free(body);
    return sent;
}

int api_reply_unavailable(struct api_req *r, const char *message)
{
    return reply_error_status(r, 503, CC_ERR_INTERNAL, message, NULL);
}

int api_reply_error(struct api_req *r, int rc, const char *message, cJSON *err)
{
    int status = cc_rc_http_status(rc);

    if (rc == CC_ERR_UNAUTHORIZED || rc == CC_ERR_TOKEN_EXPIRED)
        api_add_header(r, "WWW-Authenticate",
                       rc == CC_ERR_TOKEN_EXPIRED ? "Bearer error=\"invalid_token\"" : "Bearer");
    return reply_error_status(r, status, rc, message, err);
}

int api_reply_json(struct api_req *r, int status, cJSON *body)
{
    char *s = cJSON_PrintUnformatted(body);
    int sent;

    cJSON_Delete(body);
    if (s == NULL)
        return api_reply_error(r, CC_ERR_NOMEM, NULL, NULL);
    sent = send_answer(r, status, s, strlen(s));
    free(s);
    return sent;
}

int api_answer(struct api_req *r, int rc, cJSON *err, cJSON *ok, int ok_status)
{
    if (rc == CC_OK) {
        cJSON_Delete(err);
        if (ok == NULL)
            return api_reply_empty(r, ok_status);
        return api_reply_json(r, ok_status, ok);
    }
    cJSON_Delete(ok);
    if (retry_instead(r, rc)) {
        cJSON_Delete(err);
        return cc_rc_http_status(rc);
    }
    if (rc == CC_ERR_DB || rc == CC_ERR_NOMEM || rc == CC_ERR_INTERNAL || rc == CC_ERR_IO) {
        /* Method and path are the client's: quoted, so they cannot forge log fields. */
        char qm[CC_LOG_QUOTED_MAX], qp[CC_LOG_QUOTED_MAX];

        cc_log_error("http_internal", "method=%s path=%s failed: %s",
                     cc_log_quote(r->method, qm, sizeof qm), cc_log_quote(r->path, qp, sizeof qp),
                     cc_rc_code(rc));
    }
    return api_reply_error(r, rc, NULL, err);
}

/* Reads the request body, at most CC_MAX_BODY bytes: a larger Content-Length is refused
 * before reading anything, and a chunked body is read only up to the limit. */
static int read_body(struct api_req *r)
{
    long long cl = r->ri->content_length;
    const char *te = mg_get_header(r->conn, "Transfer-Encoding");
    size_t cap = CC_MAX_BODY + 1, len = 0;
    char *buf;
    int n = 0;

    if (cl > CC_MAX_BODY)
        return CC_ERR_TOO_LARGE;
    if (cl <= 0 && te == NULL)
        return CC_OK;
    buf = malloc(cap + 1);
    if (buf == NULL)
        return CC_ERR_NOMEM;
    while (len < cap) {
        n = mg_read(r->conn, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (len > CC_MAX_BODY) {
        free(buf);
        return CC_ERR_TOO_LARGE;
    }
    if (n < 0) {
        free(buf);
        r->must_close = 1;
        return CC_ERR_BAD_JSON;
    }
    buf[len] = '\0';
    r->raw = buf;
    r->raw_len = len;
    return CC_OK;
}

/* OPTIONS: a CORS preflight, or a plain question about the methods of a path. */
static int options(struct api_req *r)
{
    char allow[96], line[128];
    const char *want = mg_get_header(r->conn, "Access-Control-Request-Method");

    if (api_route_find(r, allow, sizeof allow) == API_ROUTE_NO_PATH)
        return api_reply_error(r, CC_ERR_NOT_FOUND, NULL, NULL);
    snprintf(line, sizeof line, "%s, OPTIONS", allow);
    api_add_header(r, "Allow", line);
    if (want != NULL && mg_get_header(r->conn, "Origin") != NULL) {
        if (r->origin == NULL)
            return api_reply_error(r, CC_ERR_FORBIDDEN, "origin not allowed", NULL);
        api_add_header(r, "Access-Control-Allow-Methods", line);
        api_add_header(r, "Access-Control-Allow-Headers", cors_headers);
        snprintf(line, sizeof line, "%d", API_CORS_MAX_AGE_S);
        api_add_header(r, "Access-Control-Max-Age", line);
    }
    return api_reply_empty(r, 204);
}

static int run(struct api_req *r);

/* Whether the body's length has one reading (RFC 9112 6.1, 6.3): at most one Content-Length,
 * at most one Transfer-Encoding and then exactly "chunked", never both. civetweb takes the
 * first Content-Length, and a Transfer-Encoding it does not know as no body; a proxy in
 * front may read the same bytes otherwise, and what one takes for the body the other serves
 * as the next request (smuggling: test_input_limits.py). Returns -1 when unambiguous, else
 * the index of a header that makes it ambiguous (a second Content-Length, or a
 * Transfer-Encoding). */
static int framing_offender(const struct mg_request_info *ri)
{
    int cl = 0, te = -1, offender = -1;

    for (int i = 0; i < ri->num_headers && i < MG_MAX_HEADERS; i++) {
        const char *name = ri->http_headers[i].name;
        const char *value = ri->http_headers[i].value;

        if (name == NULL)
            continue;
        if (strcasecmp(name, "Content-Length") == 0) {
            if (++cl > 1)
                offender = i;
        } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
            if (te >= 0 || value == NULL || strcasecmp(value, "chunked") != 0)
                offender = i;
            te = i;
        }
    }
    if (offender < 0 && cl > 0 && te >= 0)
        offender = te;
    return offender;
}

/* civetweb 1.15 keeps the connection open after a callback's answer when the request's own
 * Connection header allows it and the body it believes in is buffered, and has no call that
 * closes it (must_close is set only by its own error pages). So after an ambiguous request
 * the request's header list, which lives in this connection and is read by civetweb's
 * keep-alive test, is made to say "Connection: close": the bytes that follow, whatever they
 * are, are never read as a request. */
static void request_close(const struct mg_request_info *ri, int offender)
{
    struct mg_request_info *w = (struct mg_request_info *)ri;

    for (int i = 0; i < w->num_headers && i < MG_MAX_HEADERS; i++) {
        if (w->http_headers[i].name != NULL &&
            strcasecmp(w->http_headers[i].name, "Connection") == 0) {
            w->http_headers[i].value = "close";
            return;
        }
    }
    w->http_headers[offender].name = "Connection";
    w->http_headers[offender].value = "close";
}

/* Every step before the handler; returns the status sent. */
static int handle(struct api_req *r)
{
    const struct api_app *app = r->app;
    char allow[96];
    size_t headers_len;
    int rc, status;

    rc = framing_offender(r->ri);
    if (rc >= 0) {
        r->must_close = 1; /* the rest of the stream has no trusted start: never read it */
        request_close(r->ri, rc);
        return api_reply_error(r, CC_ERR_VALIDATION,
                               "ambiguous body length (Content-Length / Transfer-Encoding)", NULL);
    }
    /* With MQTT_AUTH_HTTP_LISTEN, the broker endpoints and the API each have a listener of
     * their own; a request on the other one finds nothing. */
    if (!api_mqtt_auth_served(r->ri->server_port, r->path)) {
        if (r->ri->content_length > CC_MAX_BODY ||
            mg_get_header(r->conn, "Transfer-Encoding") != NULL)
            r->must_close = 1;
        return api_reply_error(r, CC_ERR_NOT_FOUND, "no such route", NULL);
    }
    if (strcmp(r->method, "OPTIONS") == 0)
        return options(r);

    /* A broker asks once per CONNECT and PUBLISH of every device: its endpoints limit only
     * failed secrets (h_mqtt_auth.c). */
    if (!api_route_unlimited(r->path) &&
        !(api_route_is_internal(r->path) && api_mqtt_auth_enabled())) {
        struct cc_ratelimit *rl = api_route_is_auth(r->path) ? app->limit_auth : app->limit_api;
        int64_t retry_s = 1;

        if (cc_ratelimit_hit(rl, r->addr, cc_mono_ms(), &retry_s) == CC_ERR_RATE_LIMITED) {
            char v[24];

            snprintf(v, sizeof v, "%lld", (long long)retry_s);
            api_add_header(r, "Retry-After", v);
            api_metrics_rate_limited();
            if (r->ri->content_length > CC_MAX_BODY ||
                mg_get_header(r->conn, "Transfer-Encoding") != NULL)
                r->must_close = 1; /* do not read what we refuse */
            return api_reply_error(r, CC_ERR_RATE_LIMITED, NULL, NULL);
        }
    }

    rc = read_body(r);
    if (rc == CC_ERR_TOO_LARGE)
        r->must_close = 1; /* the rest of the body stays unread: close after answering */
    if (rc != CC_OK)
        return api_reply_error(r, rc, NULL, NULL);

    switch (api_route_find(r, allow, sizeof allow)) {
    case API_ROUTE_NO_PATH:
        return api_reply_error(r, CC_ERR_NOT_FOUND, "no such route", NULL);
    case API_ROUTE_NO_METHOD:
        api_add_header(r, "Allow", allow);
        return api_reply_error(r, CC_ERR_METHOD, NULL, NULL);
    default:
        break;
    }
    headers_len = strlen(r->extra_headers);
    status = run(r);
    if (r->retry_due) {
        /* Its connection was found lost (a PostgreSQL restart) before anything of it could
         * commit: once more, on the connection opened again (or a 503 if it cannot be). */
        char qm[CC_LOG_QUOTED_MAX], qp[CC_LOG_QUOTED_MAX];

        cc_log_warn("http_retry", "method=%s path=%s: database connection lost, run again",
                    cc_log_quote(r->method, qm, sizeof qm), cc_log_quote(r->path, qp, sizeof qp));
        api_db_give(r);
        r->retry_due = 0;
        r->retried = 1;
        r->extra_headers[headers_len] = '\0';
        memset(&r->who, 0, sizeof r->who);
        cJSON_Delete(r->body);
        r->body = NULL;
        status = run(r);
    }
    return status;
}

/* The request's database part: a connection, the bearer check, the body, the handler;
 * returns the status sent. */
static int run_request(struct api_req *r)
{
    const struct api_app *app = r->app;
    cJSON *err = NULL;
    int rc;

    /* Head and body are in: only now does the request take a database connection.
     * GET routes only read: their queries (bearer check included) share one read
     * transaction, so one WAL snapshot and one round of shared-memory locks serve them. */
    /* The broker endpoints take theirs after the shared secret (h_mqtt_auth.c): a request
     * without it costs no connection. */
    if (r->route->fn != api_health && r->route->fn != api_metrics &&
        !api_route_is_internal(r->path) && api_db_take(r, strcmp(r->method, "GET") == 0) != CC_OK &&
        r->route->fn != api_ready)
        return api_reply_unavailable(r, "database unavailable");

    if (!(r->route->flags & API_PUBLIC)) {
        rc = cc_auth_bearer(r->st, &app->auth, mg_get_header(r->conn, "Authorization"), &r->who);
        if (rc != CC_OK) {
            r->who.user_id = 0;
            return api_reply_error(r, rc, NULL, NULL);
        }
        if (r->route->roles != 0 && !(r->route->roles & r->who.role))
            return api_reply_error(r, CC_ERR_FORBIDDEN, NULL, NULL);
    }

    if (r->route->flags & API_BODY_JSON) {
        rc = cc_http_parse_body(r->raw, r->raw_len, &r->body, &err);
        if (rc != CC_OK)
            return api_reply_error(r, rc, NULL, err);
    }
    return r->route->fn(r);
}

/* run_request, for a route that hashes a password (login) after a password-hash slot: the
 * hash is CPU-bound and at most CC_SCRYPT_CONCURRENT_MAX run at once, so logins waiting
 * their turn used to hold every pooled database connection (150 logins at once from 30
 * addresses: the rest of the API waited API_DB_WAIT_MS and most logins answered 503). Now
 * at most CC_SCRYPT_CONCURRENT_MAX logins hold a connection, for one hash each. */
static int run(struct api_req *r)
{
    int status;

    if (!(r->route->flags & API_KDF))
        return run_request(r);
    cc_password_slot_take();
    status = run_request(r);
    cc_password_slot_give();
    return status;
}

/* 1 if s is safe to echo in a header: printable ASCII, no blanks, bounded. */
static int header_safe(const char *s)
{
    size_t n = 0;

    for (; *s; s++, n++) {
        if (*s < 0x21 || *s > 0x7e || n > 256)
            return 0;
    }
    return n > 0;
}

int api_dispatch(struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct api_req r;
    char qm[CC_LOG_QUOTED_MAX], qp[CC_LOG_QUOTED_MAX], qa[CC_LOG_QUOTED_MAX];
    struct timespec t0, t1;
    const char *origin;
    double secs;
    int status;

    /* WebSocket upgrades take the pipeline too: GET /api/ws (ws.c) checks the token,
     * answers the handshake and hands the socket to the feed's event loop. */
    /* The dashboard's static files go on to civetweb's file handler (static.c). */
    if (api_static_wanted(ri->request_method, ri->local_uri) &&
        !api_mqtt_auth_internal_port(ri->server_port) && framing_offender(ri) < 0)
        return 0;
    civet_answered = 0; /* an earlier page of civetweb's on this connection is not this answer */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(&r, 0, sizeof r);
    r.conn = conn;
    r.ri = ri;
    r.app = mg_get_user_data(mg_get_context(conn));
    r.method = ri->request_method ? ri->request_method : "";
    r.path = ri->local_uri ? ri->local_uri : "/";
    r.query = ri->query_string;
    cc_http_client_addr(ri->remote_addr, mg_get_header(conn, "X-Forwarded-For"),
                        r.app->cfg.trust_proxy, r.addr, sizeof r.addr);
    origin = mg_get_header(conn, "Origin");
    if (origin != NULL && header_safe(origin) &&
        cc_http_origin_allowed(r.app->cfg.cors_origins, origin))
        r.origin = origin;

    status = handle(&r);
    api_db_give(&r); /* a handler that answered nothing, or streamed its answer */
    if (r.status == 0) {
        /* A handler that forgot to answer is a bug; the client still gets one. */
        cc_log_error("http_no_answer", "method=%s path=%s", cc_log_quote(r.method, qm, sizeof qm),
                     cc_log_quote(r.path, qp, sizeof qp));
        status = api_reply_error(&r, CC_ERR_INTERNAL, NULL, NULL);
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (r.route == NULL && status == 429) {
        char allow[96];

        api_route_find(&r, allow, sizeof allow); /* refused before routing: label it anyway */
    }
    api_metrics_request(&r, status, secs);
    /* Every value a client chose is quoted (cc_log_quote): a path of "/x status=200
     * user=4" must not make this line claim another status or user (issue 12 item 9). */
    cc_log_info("http_request", "method=%s path=%s status=%d duration_ms=%.3f user=%lld addr=%s",
                cc_log_quote(r.method, qm, sizeof qm), cc_log_quote(r.path, qp, sizeof qp), status,
                secs * 1e3, (long long)r.who.user_id, cc_log_quote(r.addr, qa, sizeof qa));
    cJSON_Delete(r.body);
    free(r.raw);
    /* A negative answer tells civetweb not to drain an unread body: it closes instead. */
    return r.must_close ? -1 : status;
}

/* An error answer written straight to the connection, outside the request pipeline, in the
 * SPEC §5 shape. Connection: close: what follows a request that was not served is not
 * trusted to start the next one. */
static void raw_error(struct mg_connection *conn, int status, int rc, const char *message)
{
    const struct api_app *app = mg_get_user_data(mg_get_context(conn));
    char *body = cc_http_error_body(rc, message, NULL, app != NULL && app->cfg.production);

    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nDate: %s\r\nConnection: close\r\nCache-Control: no-store\r\n"
              "X-Content-Type-Options: nosniff\r\nContent-Type: application/json\r\n"
              "Content-Length: %zu\r\n\r\n%s",
              status, mg_get_response_code_text(conn, status), http_date(),
              body ? strlen(body) : sizeof oom_body - 1, body ? body : oom_body);
    free(body);
}

int api_civet_error(struct mg_connection *conn, int status, const char *errmsg)
{
    const char *message = NULL;
    int rc;

    (void)errmsg; /* civetweb's wording ("Bad request", "Invalid request body"): not the SPEC's */
    if (status < 400)
        return 1; /* a 304 of the file handler: no error body, civetweb's answer is right */
    switch (status) {
    case 404:
        rc = CC_ERR_NOT_FOUND;
        break;
    case 405:
        rc = CC_ERR_METHOD;
        break;
    case 413:
        rc = CC_ERR_TOO_LARGE;
        break;
    default: /* 505 (a request of HTTP/9.9) is the client's mistake, not the server's */
        rc = status < 500 || status == 505 ? CC_ERR_VALIDATION : CC_ERR_INTERNAL;
        message = rc == CC_ERR_VALIDATION ? "the request is malformed" : NULL;
    }
    civet_answered = 1;
    raw_error(conn, status, rc, message);
    return 0;
}

/* civetweb 1.15 routes a request line in absolute-form (http://host:port/path, RFC 9112
 * 3.2.2) only when its port is the listener's (with enable_auth_domain_check off, main.c:
 * any host), and the asterisk-form (OPTIONS *) never; such a request reaches no callback and
 * its connection was closed without a byte of answer. The request is parsed by then, so
 * here, before the socket closes, a request that was neither routed (no local_uri) nor
 * answered by civetweb gets a 400 in the SPEC shape. */
void api_civet_close(const struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    int answered = civet_answered;
    char qm[CC_LOG_QUOTED_MAX], qt[CC_LOG_QUOTED_MAX];

    civet_answered = 0;
    if (answered || ri == NULL || ri->request_uri == NULL || ri->local_uri != NULL)
        return;
    cc_log_info("http_unrouted", "method=%s target=%s status=400: not a path of this server",
                cc_log_quote(ri->request_method ? ri->request_method : "", qm, sizeof qm),
                cc_log_quote(ri->request_uri, qt, sizeof qt));
    /* The callback is given a const connection only because civetweb expects no writes; the
     * socket is still open and this worker owns it. */
    raw_error((struct mg_connection *)conn, 400, CC_ERR_VALIDATION,
              "the request target must be a path of this server (origin-form /path, or "
              "absolute-form with this server's port)");
}

int api_civet_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    cc_log_warn("civetweb", "%s", message);
    return 1;
}
