/* api.h - apid's private header: the request, the routing table, the answer helpers.
 *
 * One civetweb callback (api_dispatch, server.c) takes every request through the same
 * steps: CORS preflight, rate limit, body size, route lookup (404/405), bearer token
 * and role (401/403), JSON body (400), then the route's handler, then one log line.
 * Handlers are thin (h_*.c): read the request, call one common/ function, answer.
 * Every handler returns the HTTP status it sent (STYLE 13), never 0.
 * Threads: civetweb workers; a handler borrows a database connection from the pool
 * (dbpool.c) only while it needs one. */
#ifndef API_H
#define API_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include <civetweb.h>
#include <cjson/cJSON.h>

#include "cc_access.h"
#include "cc_auth.h"
#include "cc_config.h"
#include "cc_http.h"
#include "cc_ratelimit.h"
#include "cc_store.h"

#define API_NUM_THREADS 16  /* civetweb workers, each with its own SQLite connection */
#define API_MAX_PARAMS 3    /* :params in one route pattern */
#define API_PARAM_MAX 72    /* bytes of one path parameter, NUL included */
#define API_RATE_KEYS 16384 /* client addresses each limiter tracks at once */
/* The live feed (ws.c, ws_loop.c): its sockets belong to one event loop, not to workers. */
#define API_WS_MAX 2048            /* open live feeds in all (SPEC: at least 1,000) */
#define API_WS_CLOSE_GRACE_MS 5000 /* after our close frame, until the TCP connection is reset */
#define API_WS_VERIFY_MS 15000     /* how often a feed's user is checked (disabled, deleted) */
#define API_WS_TICK_MS 1000        /* the loop's timer: expiry, pings, deadlines */
#define API_WS_SNDBUF (64 * 1024)  /* kernel send buffer of a feed socket, bytes */
#define API_WS_READ_BUDGET (64 * 1024) /* bytes read from one socket per loop turn */
#define API_WS_WRITE_BUDGET 64         /* messages written to one socket per loop turn */
#define API_CORS_MAX_AGE_S 600         /* how long a browser may cache a preflight */
/* Headers civetweb adds to the static files it serves (the dashboard). */
#define API_WEB_HEADERS                                                                            \
    "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"                          \
    "Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' data:; "      \
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/* Process-wide state, written before the server starts and read-only afterwards. */
struct api_app {
    struct cc_config cfg;
    char jwt_secret[CC_CONFIG_STR];
    struct cc_auth_cfg auth;
    struct cc_ratelimit *limit_api;  /* RATE_LIMIT_API per window */
    struct cc_ratelimit *limit_auth; /* RATE_LIMIT_AUTH per window: login, refresh, logout */
    /* The operator's broker password (MQTT_PASSWORD, else the mqtt.secret file; "" when
     * neither): the broker endpoints (h_mqtt_auth.c) check the operator account with it. */
    char mqtt_password[CC_CONFIG_STR];
};

/* Route flags, read by handle() in server.c. Rate limits are not flags: they are chosen
 * by path (api_route_unlimited, api_route_is_auth) before the route lookup and before the
 * body is read, so a flood costs neither. A handler that takes a body other than a JSON
 * object (none, a JSON array, a reading) reads r->raw / r->raw_len itself. */
enum api_route_flags {
    API_PUBLIC = 1 << 0,    /* no bearer token */
    API_BODY_JSON = 1 << 1, /* the body must be a JSON object: r->body */
    API_KDF = 1 << 2,       /* hashes a password: a hash slot before the database connection */
};

struct api_req;
typedef int (*api_handler_fn)(struct api_req *r);

struct cc_resource;

struct api_route {
    const char *method;  /* "GET", ... */
    const char *pattern; /* "/api/users/:id"; a :param ending in "id"/"Id" must be an id */
    api_handler_fn fn;
    unsigned flags;                /* enum api_route_flags */
    int roles;                     /* enum cc_role bits that may use it; 0 = any signed-in user */
    const struct cc_resource *res; /* the api_resource_* handlers' resource, else NULL */
};

struct api_req {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    const struct api_app *app;
    struct cc_store *st; /* this worker's store, NULL if unavailable */
    const char *method;
    const char *path;       /* decoded path, no query string */
    const char *query;      /* raw query string or NULL */
    char addr[CC_ADDR_MAX]; /* client address for limits and logs */
    const char *origin;     /* allowed CORS origin to echo, or NULL */
    const struct api_route *route;
    char param[API_MAX_PARAMS][API_PARAM_MAX]; /* path parameters, in pattern order */
    int64_t id[API_MAX_PARAMS];                /* the same parsed as ids (0 if not an id) */
    struct cc_principal who;                   /* the signed-in user (user_id 0 if none) */
    char *raw;                                 /* request body (NUL-terminated), or NULL */
    size_t raw_len;
    cJSON *body;             /* parsed body for API_BODY_JSON routes */
    int status;              /* status sent, 0 until an answer went out */
    int must_close;          /* close the connection after the answer */
    char extra_headers[256]; /* "Name: value\r\n" lines added to the answer */
    int retry_due;           /* a 5xx withheld: the request runs again (server.c) */
    int retried;             /* it did: the next answer goes out whatever it is */
};

/* routes.c: the table, and the lookup. API_ROUTE_FOUND with *route and the params
 * filled in; API_ROUTE_NO_PATH (404); API_ROUTE_NO_METHOD (405, allow receives the
 * methods of that path, "GET, POST"). */
enum api_route_result { API_ROUTE_FOUND, API_ROUTE_NO_PATH, API_ROUTE_NO_METHOD };
int api_route_find(struct api_req *r, char *allow, size_t allowlen);
/* The routing table's size and its i-th route (metrics.c labels series with patterns). */
size_t api_route_count(void);
const struct api_route *api_route_at(size_t i);
/* 1 if the path is /health, /ready or /metrics (never rate limited). */
int api_route_unlimited(const char *path);
/* 1 if the path is one of the auth routes (RATE_LIMIT_AUTH). */
int api_route_is_auth(const char *path);
/* 1 if the path is under /internal/ (the broker endpoints, h_mqtt_auth.c): not counted
 * against RATE_LIMIT_API, left out of docs/openapi.yaml. */
int api_route_is_internal(const char *path);
/* Prints the routing table, one "METHOD /pattern/:param" line per route (apid --routes;
 * tests/integration/test_openapi.py compares it with docs/openapi.yaml). Returns how many
 * routes are inconsistent (an api_resource_* handler without a resource, or a resource on
 * another handler), each named on stderr: apid --routes then exits 1. */
int api_routes_print(FILE *out);

/* server.c: answers. Each returns the status it sent. */
/* Sends body (taken: deleted here) as JSON with status. */
int api_reply_json(struct api_req *r, int status, cJSON *body);
/* Sends status with no body (204). */
int api_reply_empty(struct api_req *r, int status);
/* Sends the SPEC §5 error for rc: err (taken) if given, else message (NULL: default). */
int api_reply_error(struct api_req *r, int rc, const char *message, cJSON *err);
/* 503 with the SPEC §5 body (code INTERNAL): the service cannot answer yet. */
int api_reply_unavailable(struct api_req *r, const char *message);
/* The usual end of a handler: rc == CC_OK sends ok (taken) with ok_status, else the
 * error for rc with err (taken); whichever is not sent is deleted. */
int api_answer(struct api_req *r, int rc, cJSON *err, cJSON *ok, int ok_status);
/* Adds one header line to the coming answer. */
void api_add_header(struct api_req *r, const char *name, const char *value);

/* static.c: the web dashboard's files (web/) at `/`. api_static_init resolves the directory
 * (COLDCHAIN_WEB_DIR, else web/ near the binary, else ./web) once before mg_start: CC_OK,
 * or CC_ERR_CONFIG with err naming the variable. api_static_dir: that directory, or NULL
 * when static serving is off. api_static_wanted: 1 if this request is for an existing file
 * there (GET/HEAD, never /api/...), to be left to civetweb's file handler. */
int api_static_init(char *err, size_t errlen);
const char *api_static_dir(void);
int api_static_wanted(const char *method, const char *path);

/* civetweb callbacks (server.c). */
int api_dispatch(struct mg_connection *conn);
int api_civet_log(const struct mg_connection *conn, const char *message);
/* http_error: what civetweb refuses itself (a malformed request line or header, a bad
 * Content-Length) answers in the SPEC §5 error shape, not civetweb's text/plain page. */
int api_civet_error(struct mg_connection *conn, int status, const char *errmsg);
/* connection_close: a request civetweb parsed but neither routed nor answered (an
 * absolute-form target naming another port, the asterisk-form) answers 400 in that shape
 * before the socket closes, instead of nothing (docs/api.md "Absolute-form request targets"). */
void api_civet_close(const struct mg_connection *conn);

/* Handlers (h_*.c). */
int api_health(struct api_req *r);
int api_ready(struct api_req *r);

int api_auth_login(struct api_req *r);
int api_auth_refresh(struct api_req *r);
int api_auth_logout(struct api_req *r);
int api_auth_me(struct api_req *r);

/* h_resource.c: get / list / create / update / delete of the route's resource (res). */
int api_resource_list(struct api_req *r);
int api_resource_get(struct api_req *r);
int api_resource_create(struct api_req *r);
int api_resource_update(struct api_req *r);
int api_resource_delete(struct api_req *r);

int api_users_link(struct api_req *r);
int api_users_unlink(struct api_req *r);
int api_devices_regenerate_key(struct api_req *r);

int api_readings_ingest(struct api_req *r);

/* h_queries.c, h_dashboard.c: the read side (common/api/cc_query.h) */
int api_readings_query(struct api_req *r);
int api_readings_export_csv(struct api_req *r);
int api_coldcells_latest(struct api_req *r);
int api_dashboard_customer(struct api_req *r);
int api_dashboard_technician(struct api_req *r);

/* h_alerts.c, h_notifications.c */
int api_alerts_resolve(struct api_req *r);
int api_alerts_acknowledge(struct api_req *r);
int api_notifications_read(struct api_req *r);

int api_devices_bulk(struct api_req *r); /* h_bulk.c */

/* ws.c: the live feed (docs/websocket.md). api_ws_start starts the feed's event loop and
 * the MQTT subscriber (after mg_start); api_ws_stop ends them (after mg_stop). api_ws_get
 * is the GET /api/ws route: it checks the token, answers the handshake itself (101) and
 * hands the socket to the loop, or answers 400 / 401 / 429 / 503. */
int api_ws_start(struct mg_context *ctx, const struct api_app *app);
void api_ws_stop(void);
int api_ws_get(struct api_req *r);

/* metrics.c: GET /metrics and its counters (lock-free, any thread). api_metrics_init reads
 * METRICS_ALLOW_REMOTE once: CC_OK or CC_ERR_CONFIG with err naming it. */
int api_metrics_init(char *err, size_t errlen);
int api_metrics(struct api_req *r);
void api_metrics_request(const struct api_req *r, int status, double seconds);
void api_metrics_rate_limited(void);
void api_metrics_ws_open(int delta);
void api_metrics_ws_sent(void);
int api_openapi(struct api_req *r); /* h_openapi.c */

/* h_mqtt_auth.c: the broker endpoints (/internal/mqtt/..., docs/scaling.md). api_mqtt_auth_init
 * reads MQTT_AUTH_HTTP_SECRET and MQTT_AUTH_HTTP_LISTEN once at start: CC_OK, or
 * CC_ERR_CONFIG with err naming the variable. api_mqtt_auth_listen: the extra listener
 * ("host:port") or NULL. api_mqtt_auth_served: 0 when a request on server_port for path
 * belongs to the other listener (answer 404). api_mqtt_auth_internal_port: 1 for the
 * internal listener's port (no static files there). */
int api_mqtt_auth_init(const struct cc_config *cfg, char *err, size_t errlen);
/* 1 when MQTT_AUTH_HTTP_SECRET is set; while it is not, /internal/ paths are counted against
 * RATE_LIMIT_API like any other path that answers 404. */
int api_mqtt_auth_enabled(void);
const char *api_mqtt_auth_listen(void);
int api_mqtt_auth_served(int server_port, const char *path);
int api_mqtt_auth_internal_port(int server_port);
int api_mqtt_emqx_authn(struct api_req *r);
int api_mqtt_emqx_authz(struct api_req *r);
int api_mqtt_gauth_user(struct api_req *r);
int api_mqtt_gauth_superuser(struct api_req *r);
int api_mqtt_gauth_acl(struct api_req *r);
int api_mqtt_vmq_register(struct api_req *r);
int api_mqtt_vmq_publish(struct api_req *r);
int api_mqtt_vmq_subscribe(struct api_req *r);

#endif
