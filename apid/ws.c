/* ws.c - the live feed at /api/ws (docs/websocket.md): civetweb websockets fed by MQTT.
 *
 * apid subscribes to devices/+/readings and alerts/+ (QoS 0, clean session, client id
 * "coldchain-apid-<pid>-<random>") under the operator account MQTT_USERNAME /
 * MQTT_PASSWORD, and hands every message to common/cc_feed, which filters by access and
 * queues per connection. When the broker is away apid keeps serving HTTP and reconnects
 * in the background (BACKOFF_MIN_MS doubling to BACKOFF_MAX_MS).
 *
 * A connection: GET /api/ws?token=<access token> goes through the normal pipeline
 * (api_ws_get: rate limit, token, 401 with the SPEC body, 503 when API_WS_MAX are open),
 * then civetweb's connect handler checks the token again before the handshake and the
 * ready handler registers a cc_feed subscriber and starts the connection's sender thread.
 * The sender is the only writer of feed frames, so a slow client blocks only its own
 * sender: Paho's thread never writes to a socket. A client whose queue overflows
 * (CC_FEED_QUEUE_MAX messages or CC_FEED_QUEUE_BYTES) is dropped: it gets close 1008 and
 * its next frame (or unanswered pings) ends the connection. An expired token, or a user
 * disabled or deleted, gets close 4401. The query string (the token) is never logged. */
#include "api.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

#define BACKOFF_MIN_MS 250   /* first reconnect delay */
#define BACKOFF_MAX_MS 10000 /* longest reconnect delay */
#define KEEPALIVE_S 20       /* MQTT keep-alive */
#define NEXT_WAIT_MS 1000    /* a sender's longest wait, so token expiry is seen */
#define CLIENT_MSG_MAX 256   /* bytes of a client message we look at */

struct ws_conn {
    struct cc_principal who;
    int64_t expires_ms;
    struct cc_feed_sub *sub;
    struct mg_connection *conn;
    pthread_t sender;
    int sender_started;
    atomic_int closing; /* the server closed: the next client frame ends the connection */
};

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
    atomic_int open; /* connections holding a slot */
    char client_id[80];
    char password[CC_CONFIG_STR];
} ws;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ---- authentication ------------------------------------------------------------------ */

/* Checks the token query parameter like a bearer header: CC_OK with *who and *expires_ms,
 * CC_ERR_UNAUTHORIZED or CC_ERR_TOKEN_EXPIRED (refresh tokens are refused), CC_ERR_DB. */
static int authorize(struct cc_store *st, const char *query, struct cc_principal *who,
                     int64_t *expires_ms)
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
    if (rc == CC_OK)
        *expires_ms = claims.exp_s * 1000;
    OPENSSL_cleanse(header, sizeof header);
    return rc;
}

static int slot_take(void)
{
    if (atomic_fetch_add(&ws.open, 1) >= API_WS_MAX) {
        atomic_fetch_sub(&ws.open, 1);
        return 0;
    }
    return 1;
}

int api_ws_get(struct api_req *r)
{
    const char *upgrade = mg_get_header(r->conn, "Upgrade");
    struct cc_principal who;
    int64_t exp_ms;
    int rc;

    if (upgrade == NULL || strcasecmp(upgrade, "websocket") != 0)
        return api_reply_error(r, CC_ERR_VALIDATION,
                               "WebSocket only: send Upgrade: websocket (docs/websocket.md)", NULL);
    if (ws.feed == NULL || atomic_load(&ws.open) >= API_WS_MAX)
        return api_reply_unavailable(r, "live feed full or unavailable; poll instead");
    rc = authorize(r->st, r->query, &who, &exp_ms);
    if (rc != CC_OK)
        return api_reply_error(r, rc, NULL, NULL);
    r->who = who;
    r->pass_on = 1; /* civetweb's websocket handlers take it from here */
    return 101;
}

/* ---- civetweb websocket handlers ------------------------------------------------------- */

/* Before the handshake: a non-zero return refuses it (civetweb sends nothing more). */
static int on_connect(const struct mg_connection *conn, void *cbdata)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct api_thread *th = mg_get_thread_pointer(conn);
    struct ws_conn *c = NULL;

    (void)cbdata;
    if (th == NULL || th->st == NULL || ws.feed == NULL || !slot_take())
        return 1;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        goto fail;
    if (authorize(th->st, ri->query_string, &c->who, &c->expires_ms) != CC_OK)
        goto fail;
    mg_set_user_connection_data(conn, c);
    return 0;

fail:
    free(c);
    atomic_fetch_sub(&ws.open, 1);
    return 1;
}

static void send_close(struct mg_connection *conn, int code, const char *why)
{
    char frame[64];
    size_t n = strlen(why);

    if (n > sizeof frame - 2)
        n = sizeof frame - 2;
    frame[0] = (char)((code >> 8) & 0xff);
    frame[1] = (char)(code & 0xff);
    memcpy(frame + 2, why, n);
    mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, frame, n + 2);
}

/* One per connection: the only writer of its feed frames. */
static void *sender(void *arg)
{
    struct ws_conn *c = arg;

    for (;;) {
        char *msg = NULL;
        size_t len = 0;
        int code = 0;
        int what = cc_feed_sub_next(c->sub, NEXT_WAIT_MS, &msg, &len, &code);

        if (what == CC_FEED_IDLE)
            continue;
        if (what == CC_FEED_MSG) {
            int n = mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_TEXT, msg, len);

            free(msg);
            if (n <= 0) {
                atomic_store(&c->closing, 1);
                break;
            }
            api_metrics_ws_sent();
            continue;
        }
        atomic_store(&c->closing, 1);
        if (code == CC_FEED_CLOSE_SLOW) {
            cc_log_warn("ws_dropped", "user=%lld: client too slow, queue full",
                        (long long)c->who.user_id);
            send_close(c->conn, code, "too slow");
        } else if (code == CC_FEED_CLOSE_AUTH) {
            cc_log_info("ws_closed", "user=%lld: token expired or user disabled",
                        (long long)c->who.user_id);
            send_close(c->conn, code, "token expired");
        } else if (code > 0) {
            send_close(c->conn, code, "");
        }
        break;
    }
    return NULL;
}

static void on_ready(struct mg_connection *conn, void *cbdata)
{
    struct ws_conn *c = mg_get_user_connection_data(conn);
    struct api_thread *th = mg_get_thread_pointer(conn);
    int rc;

    (void)cbdata;
    if (c == NULL)
        return;
    c->conn = conn;
    rc = th != NULL && th->st != NULL
             ? cc_feed_sub_new(ws.feed, th->st, &c->who, c->expires_ms, NULL, &c->sub)
             : CC_ERR_DB;
    if (rc != CC_OK) {
        cc_log_error("ws_subscribe_failed", "user=%lld: %s", (long long)c->who.user_id,
                     cc_rc_code(rc));
        atomic_store(&c->closing, 1);
        send_close(conn, 1011, "unavailable");
        return;
    }
    if (pthread_create(&c->sender, NULL, sender, c) != 0) {
        cc_log_error("ws_thread_failed", "user=%lld", (long long)c->who.user_id);
        atomic_store(&c->closing, 1);
        send_close(conn, 1011, "unavailable");
        return;
    }
    c->sender_started = 1;
    api_metrics_ws_open(1);
    cc_log_info("ws_open", "user=%lld role=%s feeds=%zu", (long long)c->who.user_id,
                cc_role_name(c->who.role), cc_feed_count(ws.feed));
}

/* A frame from the client: {"type":"ping"} is answered, anything else ignored. Returns 0
 * to end the connection (after the server closed it). */
static int on_data(struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata)
{
    struct ws_conn *c = mg_get_user_connection_data(conn);
    static const char pong[] = "{\"type\":\"pong\"}";

    (void)cbdata;
    if (c == NULL || atomic_load(&c->closing))
        return 0;
    if ((bits & 0x0f) == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
        return 0;
    if ((bits & 0x0f) == MG_WEBSOCKET_OPCODE_TEXT && len > 0 && len <= CLIENT_MSG_MAX &&
        c->sub != NULL) {
        cJSON *o = cJSON_ParseWithLength(data, len);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");

        if (cJSON_IsString(t) && strcmp(t->valuestring, "ping") == 0)
            cc_feed_sub_push(c->sub, pong, sizeof pong - 1);
        cJSON_Delete(o);
    }
    return 1;
}

static void on_close(const struct mg_connection *conn, void *cbdata)
{
    struct ws_conn *c = mg_get_user_connection_data(conn);

    (void)cbdata;
    if (c == NULL)
        return;
    if (c->sub != NULL)
        cc_feed_sub_close(c->sub, 0);
    if (c->sender_started) {
        pthread_join(c->sender, NULL);
        api_metrics_ws_open(-1);
    }
    cc_feed_sub_remove(ws.feed, c->sub);
    mg_set_user_connection_data(conn, NULL);
    cc_log_info("ws_close", "user=%lld", (long long)c->who.user_id);
    free(c);
    atomic_fetch_sub(&ws.open, 1);
}

/* ---- MQTT -------------------------------------------------------------------------- */

static int on_message(void *ctx, char *topic, int topic_len, MQTTClient_message *msg)
{
    char name[256];
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);

    (void)ctx;
    if (tlen < sizeof name && msg->payloadlen >= 0) {
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
            sleep_ms(100);
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
            sleep_ms(50);
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

void api_ws_alert_changed(const cJSON *alert)
{
    const cJSON *cell = cJSON_GetObjectItemCaseSensitive(alert, "coldCellId");
    char topic[64];
    char *json;

    /* Changes made here (acknowledge) reach the feed the way ingestd's do: through the
     * broker's alerts/{coldCellId}, so every apid process sees them. Best effort: a
     * dashboard also rereads alerts when it loads. */
    if (!atomic_load(&ws.connected) || !cJSON_IsNumber(cell))
        return;
    snprintf(topic, sizeof topic, "alerts/%lld", (long long)cell->valuedouble);
    json = cJSON_PrintUnformatted(alert);
    if (json == NULL)
        return;
    if (MQTTClient_publish(ws.client, topic, (int)strlen(json), json, 0, 0, NULL) !=
        MQTTCLIENT_SUCCESS)
        cc_log_warn("ws_publish_failed", "topic=%s", topic);
    free(json);
}

int api_ws_start(struct mg_context *ctx, const struct api_app *app)
{
    int rc;

    ws.app = app;
    rc = cc_store_open(app->cfg.db_path, 0, &ws.st);
    if (rc == CC_OK)
        rc = cc_feed_new(ws.st, &ws.feed);
    if (rc != CC_OK) {
        cc_log_error("feed_disabled", "cannot open %s: %s", app->cfg.db_path, cc_rc_code(rc));
        cc_store_close(ws.st);
        ws.st = NULL;
        return rc;
    }
    mg_set_websocket_handler(ctx, "/api/ws", on_connect, on_ready, on_data, on_close, NULL);
    mqtt_start(); /* without the broker the feed stays open, with nothing to send */
    return CC_OK;
}

void api_ws_stop(void)
{
    atomic_store(&ws.stop, 1);
    if (ws.mqtt_started)
        pthread_join(ws.mqtt_thread, NULL);
    if (ws.client_created)
        MQTTClient_destroy(&ws.client);
    ws.client_created = ws.mqtt_started = 0;
    cc_feed_free(ws.feed);
    ws.feed = NULL;
    cc_store_close(ws.st);
    ws.st = NULL;
    OPENSSL_cleanse(ws.password, sizeof ws.password);
}
