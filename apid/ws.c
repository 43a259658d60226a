/* ws.c - the live feed at /api/ws (docs/websocket.md): the handshake, and MQTT in.
 *
 * apid subscribes to devices/+/readings and alerts/+ (QoS 0, clean session, client id
 * "coldchain-apid-<pid>-<random>") under the operator account MQTT_USERNAME /
 * MQTT_PASSWORD, and hands every message to common/api/cc_feed, which filters by access and
 * queues per connection. When the broker is away apid keeps serving HTTP and reconnects
 * in the background (BACKOFF_MIN_MS doubling to BACKOFF_MAX_MS).
 *
 * A connection: GET /api/ws?token=<access token> goes through the normal pipeline to
 * api_ws_get (rate limit, token: 401 with the SPEC body; at most CC_FEED_PER_USER_MAX
 * feeds per user: 429; API_WS_MAX in all: 503). There we answer the RFC 6455 handshake
 * ourselves instead of civetweb: civetweb 1.15 reads each whole frame into a buffer of
 * the length the client announces (read_websocket) and holds a worker per WebSocket. We
 * find the worker's socket (civetweb exposes none: the descriptor whose peer and local
 * port are the request's), take it with a duplicate, put an unconnected socket in its
 * place so that civetweb's closing of "its" connection touches nothing of the client's,
 * send 101 and give the socket to the feed's event loop (ws_loop.c), which owns it from
 * then on. The worker is free as soon as the 101 is written.
 *
 * Bytes a client sends before it has read our 101 may already sit in civetweb's request
 * buffer, where we cannot reach them: RFC 6455 4.1 forbids sending them, and they are
 * lost (a whole frame is simply missing; a cut one makes the next bytes fail the parser:
 * close 1002, or 1009 if they announce too much). An upgrade request with a body is
 * refused (400) for the same reason. The query string (the token) is never logged. */
#include "api.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>
#include <openssl/crypto.h>

#include "cc_crypto.h"
#include "cc_feed.h"
#include "cc_jwt.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "cc_wsframe.h"
#include "ws_loop.h"

#define BACKOFF_MIN_MS 250   /* first reconnect delay */
#define BACKOFF_MAX_MS 10000 /* longest reconnect delay */
#define KEEPALIVE_S 20       /* MQTT keep-alive */

static struct {
    const struct api_app *app;
    struct cc_store *st; /* the feed's, used on Paho's thread */
    struct cc_feed *feed;
    MQTTClient client;
    int client_created;
    pthread_t mqtt_thread;
    int mqtt_started;
    atomic_int stop;
    atomic_int connected;
    atomic_int ready; /* feed and loop are up: workers may use ws.feed (set after mg_start) */
    char client_id[80];
    char password[CC_CONFIG_STR];
} ws;

/* ---- authentication ------------------------------------------------------------------ */

/* Checks the token query parameter like a bearer header: CC_OK with *who and *expires_ms,
 * CC_ERR_UNAUTHORIZED or CC_ERR_TOKEN_EXPIRED (refresh tokens are refused), CC_ERR_DB. */
static int authorize(struct cc_store *st, const char *query, struct cc_principal *who,
                     int64_t *expires_ms, int64_t *token_ver)
{
    char header[CC_JWT_MAX_LEN + 16];
    struct cc_jwt_claims claims;
    const char *token = header + 7;
    int n, rc;

    if (query == NULL)
        return CC_ERR_UNAUTHORIZED;
    memcpy(header, "Bearer ", 7);
    n = mg_get_var(query, strlen(query), "token", header + 7, sizeof header - 7);
    if (n <= 0)
        return CC_ERR_UNAUTHORIZED;
    rc = cc_auth_bearer(st, &ws.app->auth, header, who);
    if (rc == CC_OK)
        rc = cc_jwt_verify(ws.app->auth.secret, ws.app->auth.secret_len, token, CC_JWT_ACCESS,
                           cc_now_ms() / 1000, &claims);
    if (rc == CC_OK) {
        *expires_ms = claims.exp_s * 1000;
        *token_ver = claims.ver;
    }
    OPENSSL_cleanse(header, sizeof header);
    return rc;
}

/* ---- the handshake ------------------------------------------------------------------- */

/* 1 if the comma-separated header value has token (case-insensitive). */
static int has_token(const char *value, const char *token)
{
    size_t n = strlen(token);

    while (value != NULL && *value != '\0') {
        while (*value == ' ' || *value == '\t' || *value == ',')
            value++;
        if (strncasecmp(value, token, n) == 0 &&
            (value[n] == '\0' || value[n] == ',' || value[n] == ' ' || value[n] == '\t'))
            return 1;
        value = strchr(value, ',');
    }
    return 0;
}

/* The port of a socket address, or -1. */
static int sa_port(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

/* The descriptor of this request's TCP connection: the one socket whose peer is the
 * request's remote address and port (formatted as civetweb does, getnameinfo
 * NI_NUMERICHOST) and whose local port is the request's server port. A TCP 4-tuple
 * names one live connection, so there is one; -1 if none or (defensively) several. */
static int request_fd(const struct mg_request_info *ri)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = -1, count = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        struct sockaddr_storage peer, local;
        socklen_t plen = sizeof peer, llen = sizeof local;
        char host[64];
        char *end;
        long fd = strtol(e->d_name, &end, 10);

        if (*end != '\0' || end == e->d_name || fd < 0 || fd == dirfd(d))
            continue;
        if (getpeername((int)fd, (struct sockaddr *)&peer, &plen) != 0 ||
            sa_port(&peer) != ri->remote_port)
            continue;
        if (getsockname((int)fd, (struct sockaddr *)&local, &llen) != 0 ||
            sa_port(&local) != ri->server_port)
            continue;
        if (getnameinfo((struct sockaddr *)&peer, plen, host, sizeof host, NULL, 0,
                        NI_NUMERICHOST) != 0 ||
            strcmp(host, ri->remote_addr) != 0)
            continue;
        found = (int)fd;
        count++;
    }
    closedir(d);
    return count == 1 ? found : -1;
}

/* Takes the request's connection from civetweb: returns our own descriptor for it
 * (non-blocking, close-on-exec), and civetweb's descriptor now names an unconnected
 * socket. -1 (civetweb's untouched) on failure. */
static int take_over(const struct mg_request_info *ri)
{
    int fd = request_fd(ri), mine = -1, dummy = -1, sndbuf = API_WS_SNDBUF;

    if (fd < 0)
        return -1;
    mine = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    dummy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (mine < 0 || dummy < 0)
        goto fail;
    /* Atomic: civetweb's number now names the dummy; its shutdown and close hit that. */
    if (dup3(dummy, fd, O_CLOEXEC) < 0)
        goto fail;
    close(dummy);
    if (fcntl(mine, F_SETFL, fcntl(mine, F_GETFL) | O_NONBLOCK) < 0)
        cc_log_warn("ws_nonblock_failed", "%s", strerror(errno));
    /* A feed writes small messages; a bounded send buffer bounds what a client that does
     * not read costs the kernel. */
    setsockopt(mine, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    return mine;

fail:
    if (mine >= 0)
        close(mine);
    if (dummy >= 0)
        close(dummy);
    return -1;
}

/* Sends the 101 on our descriptor. A fresh socket's send buffer takes it whole. */
static int send_101(int fd, const char *accept)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);

    return n > 0 && (size_t)n < sizeof head &&
                   send(fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n
               ? CC_OK
               : CC_ERR_IO;
}

int api_ws_get(struct api_req *r)
{
    const char *upgrade = mg_get_header(r->conn, "Upgrade");
    const char *version = mg_get_header(r->conn, "Sec-WebSocket-Version");
    char accept[CC_WS_ACCEPT_LEN + 1];
    struct api_ws_conn *c = NULL;
    struct cc_feed_sub *sub = NULL;
    struct cc_principal who;
    int64_t exp_ms, token_ver = 0;
    int rc, fd;

    if (upgrade == NULL || strcasecmp(upgrade, "websocket") != 0 ||
        !has_token(mg_get_header(r->conn, "Connection"), "upgrade"))
        return api_reply_error(r, CC_ERR_VALIDATION,
                               "WebSocket only: send Upgrade: websocket (docs/websocket.md)", NULL);
    if (version == NULL || strcmp(version, "13") != 0) {
        api_add_header(r, "Sec-WebSocket-Version", "13");
        return api_reply_error(r, CC_ERR_VALIDATION, "Sec-WebSocket-Version must be 13", NULL);
    }
    if (cc_ws_accept_key(mg_get_header(r->conn, "Sec-WebSocket-Key"), accept) != CC_OK)
        return api_reply_error(r, CC_ERR_VALIDATION, "bad Sec-WebSocket-Key", NULL);
    if (mg_get_header(r->conn, "Content-Length") != NULL ||
        mg_get_header(r->conn, "Transfer-Encoding") != NULL) {
        r->must_close = 1;
        return api_reply_error(r, CC_ERR_VALIDATION, "an upgrade request has no body", NULL);
    }
    if (!atomic_load(&ws.ready) || !api_ws_loop_running() || r->ri->is_ssl)
        return api_reply_unavailable(r, "live feed unavailable; poll instead");
    rc = authorize(r->st, r->query, &who, &exp_ms, &token_ver);
    if (rc != CC_OK)
        return api_reply_error(r, rc, NULL, NULL);
    r->who = who;

    c = api_ws_conn_new(&who, exp_ms);
    if (c == NULL)
        return api_reply_error(r, CC_ERR_NOMEM, NULL, NULL);
    rc = cc_feed_sub_new(ws.feed, r->st, &who, exp_ms, c, &sub);
    if (rc != CC_OK) {
        api_ws_conn_free(c);
        if (rc == CC_ERR_RATE_LIMITED)
            return api_reply_error(r, rc, "at most 8 live feeds per user", NULL);
        if (rc == CC_ERR_TOO_LARGE)
            return api_reply_unavailable(r, "live feed full; poll instead");
        cc_log_error("ws_subscribe_failed", "user=%lld: %s", (long long)who.user_id,
                     cc_rc_code(rc));
        return api_reply_unavailable(r, "live feed unavailable; poll instead");
    }
    cc_feed_sub_set_token_version(sub, token_ver);
    fd = take_over(r->ri);
    if (fd < 0) {
        cc_log_error("ws_takeover_failed", "user=%lld: the request's socket was not found",
                     (long long)who.user_id);
        api_ws_loop_adopt(c, sub, -1); /* the loop removes the subscriber */
        return api_reply_unavailable(r, "live feed unavailable; poll instead");
    }
    /* From here civetweb's socket is the dummy: every answer goes through fd. */
    r->must_close = 1;
    if (send_101(fd, accept) != CC_OK) {
        cc_log_warn("ws_handshake_failed", "user=%lld: %s", (long long)who.user_id,
                    strerror(errno));
        close(fd);
        api_ws_loop_adopt(c, sub, -1);
        r->status = 500;
        return 500;
    }
    api_ws_loop_adopt(c, sub, fd);
    r->status = 101;
    return 101;
}

/* ---- MQTT -------------------------------------------------------------------------- */

static int on_message(void *ctx, char *topic, int topic_len, MQTTClient_message *msg)
{
    char name[256];
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);

    (void)ctx;
    /* RETAIN=1 marks the copies the broker replays at a SUBSCRIBE (MQTT 3.1.1 3.3.1.3), not a
     * live message: the feed is a live view. Serials are reused, so a device's retained
     * reading replayed at apid's re-subscribe (a broker restart) went to whoever owned the
     * serial now, another customer included. */
    if (!msg->retained && tlen < sizeof name && msg->payloadlen >= 0) {
        memcpy(name, topic, tlen);
        name[tlen] = '\0';
        cc_feed_on_message(ws.feed, name, msg->payload, (size_t)msg->payloadlen, cc_now_ms(), NULL);
    }
    MQTTClient_freeMessage(&msg);
    MQTTClient_free(topic);
    return 1;
}

static void on_connection_lost(void *ctx, char *cause)
{
    (void)ctx;
    atomic_store(&ws.connected, 0);
    cc_log_warn("feed_broker_lost", "%s", cause ? cause : "connection lost");
}

static int connect_and_subscribe(void)
{
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    char *topics[2] = {"devices/+/readings", "alerts/+"};
    int qos[2] = {0, 0};
    int rc;

    opts.keepAliveInterval = KEEPALIVE_S;
    opts.cleansession = 1; /* a live view: nothing to catch up on after a reconnect */
    opts.username = ws.app->cfg.mqtt_username;
    opts.password = ws.password;
    opts.connectTimeout = 3;
    opts.MQTTVersion = MQTTVERSION_3_1_1;
    rc = MQTTClient_connect(ws.client, &opts);
    if (rc != MQTTCLIENT_SUCCESS)
        return rc;
    rc = MQTTClient_subscribeMany(ws.client, 2, topics, qos);
    if (rc != MQTTCLIENT_SUCCESS || qos[0] > 2 || qos[1] > 2) {
        cc_log_error("feed_subscribe_failed", "rc=%d granted=%d,%d", rc, qos[0], qos[1]);
        MQTTClient_disconnect(ws.client, 500);
        return rc != MQTTCLIENT_SUCCESS ? rc : MQTTCLIENT_FAILURE;
    }
    atomic_store(&ws.connected, 1);
    return MQTTCLIENT_SUCCESS;
}

static void *mqtt_loop(void *arg)
{
    long backoff_ms = BACKOFF_MIN_MS;
    int warned = 0;

    (void)arg;
    while (!atomic_load(&ws.stop)) {
        if (atomic_load(&ws.connected)) {
            cc_sleep_ms(100);
            continue;
        }
        int rc = connect_and_subscribe();

        if (rc == MQTTCLIENT_SUCCESS) {
            cc_log_info("feed_broker_connected", "broker=%s client_id=%s", ws.app->cfg.mqtt_url,
                        ws.client_id);
            backoff_ms = BACKOFF_MIN_MS;
            warned = 0;
            continue;
        }
        if (!warned)
            cc_log_warn("feed_broker_unavailable", "broker=%s rc=%d; retrying in the background",
                        ws.app->cfg.mqtt_url, rc);
        warned = 1;
        for (long waited = 0; waited < backoff_ms && !atomic_load(&ws.stop); waited += 50)
            cc_sleep_ms(50);
        backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
    }
    if (atomic_load(&ws.connected))
        MQTTClient_disconnect(ws.client, 500);
    return NULL;
}

static int mqtt_start(void)
{
    char err[256];
    unsigned char rnd[6];
    int rc;

    snprintf(ws.password, sizeof ws.password, "%s", ws.app->cfg.mqtt_password);
    if (cc_config_secret(&ws.app->cfg, CC_SECRET_MQTT, 0, ws.password, sizeof ws.password, err,
                         sizeof err) != CC_OK) {
        cc_log_warn("feed_disabled", "no broker password (MQTT_PASSWORD): %s", err);
        return CC_ERR_CONFIG;
    }
    if (cc_random_bytes(rnd, sizeof rnd) != CC_OK)
        memset(rnd, 0, sizeof rnd);
    snprintf(ws.client_id, sizeof ws.client_id, "coldchain-apid-%ld-%02x%02x%02x%02x%02x%02x",
             (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    rc = MQTTClient_create(&ws.client, ws.app->cfg.mqtt_url, ws.client_id,
                           MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTCLIENT_SUCCESS) {
        cc_log_error("feed_disabled", "MQTTClient_create rc=%d", rc);
        return CC_ERR_CONFIG;
    }
    ws.client_created = 1;
    rc = MQTTClient_setCallbacks(ws.client, NULL, on_connection_lost, on_message, NULL);
    if (rc != MQTTCLIENT_SUCCESS || pthread_create(&ws.mqtt_thread, NULL, mqtt_loop, NULL) != 0) {
        cc_log_error("feed_disabled", "cannot start the MQTT thread");
        return CC_ERR_INTERNAL;
    }
    ws.mqtt_started = 1;
    return CC_OK;
}

/* ---- start / stop ------------------------------------------------------------------ */

int api_ws_start(struct mg_context *ctx, const struct api_app *app)
{
    int rc;

    (void)ctx; /* civetweb's websocket handlers are not used: see the top of this file */
    ws.app = app;
    rc = cc_store_open(app->cfg.db_path, 0, &ws.st);
    if (rc == CC_OK)
        rc = cc_feed_new(ws.st, &ws.feed);
    if (rc == CC_OK) {
        cc_feed_set_max(ws.feed, API_WS_MAX);
        rc = api_ws_loop_start(ws.feed, app->cfg.db_path, app->cfg.ws_ping_interval_s);
    }
    if (rc != CC_OK) {
        cc_log_error("feed_disabled", "cannot start the live feed: %s", cc_rc_code(rc));
        cc_feed_free(ws.feed);
        ws.feed = NULL;
        cc_store_close(ws.st);
        ws.st = NULL;
        return rc;
    }
    atomic_store(&ws.ready, 1);
    mqtt_start(); /* without the broker the feed stays open, with nothing to send */
    return CC_OK;
}

void api_ws_stop(void)
{
    atomic_store(&ws.stop, 1);
    atomic_store(&ws.ready, 0);
    if (ws.mqtt_started)
        pthread_join(ws.mqtt_thread, NULL);
    if (ws.client_created)
        MQTTClient_destroy(&ws.client); /* no message reaches the feed after this */
    ws.client_created = ws.mqtt_started = 0;
    api_ws_loop_stop(); /* every subscriber removed */
    cc_feed_free(ws.feed);
    ws.feed = NULL;
    cc_store_close(ws.st);
    ws.st = NULL;
    OPENSSL_cleanse(ws.password, sizeof ws.password);
}
