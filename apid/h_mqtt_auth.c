/* h_mqtt_auth.c - /internal/mqtt/...: a clustered broker asks whether a client may connect,
 * publish or subscribe (issue 15 point 3; docs/scaling.md "Device authentication over HTTP").
 *
 * Not public. Off (404, as if the routes did not exist) unless MQTT_AUTH_HTTP_SECRET is set;
 * then every request must carry it in the X-MQTT-Auth-Secret header (mosquitto-go-auth and
 * VerneMQ cannot add a header: for their paths a "secret" query parameter works too; apid
 * logs paths without their query). No header: 401 UNAUTHORIZED; a wrong one: 403 FORBIDDEN;
 * each such failure counts against the client address's RATE_LIMIT_AUTH, and past it the
 * answer is 429; only a request with the secret takes a database connection. With
 * MQTT_AUTH_HTTP_LISTEN=host:port the routes are served on that listener
 * only (and it serves nothing else), so they can stay off the public port; without it they
 * are on HTTP_PORT, guarded by the secret alone. Broker requests are not counted against
 * RATE_LIMIT_API: a broker asks once per CONNECT and per PUBLISH of every device.
 *
 * The decisions are common/api/cc_mqtt_auth.c (the plugin's rules); here only the shapes:
 * EMQX 5 {"result":"allow"|"deny"|"ignore"}, mosquitto-go-auth 200 {"ok":true} / 403
 * {"ok":false} (its "status" and "json" response modes both read that right), VerneMQ
 * {"result":"ok"} / {"result":"next"} / {"result":{"error":"not_allowed"}}. A body that
 * cannot be read is a refusal in each broker's terms, carrying the SPEC §5 error object. */
#include "api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cc_auth_rules.h"
#include "cc_error.h"
#include "cc_log.h"
#include "cc_mqtt_auth.h"
#include "cc_mqtt_req.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "dbpool.h"

#define SECRET_HEADER "X-MQTT-Auth-Secret"
#define SECRET_MIN 16       /* characters of MQTT_AUTH_HTTP_SECRET: guessing must be hopeless */
#define LISTEN_MAX 64       /* bytes of MQTT_AUTH_HTTP_LISTEN, "host:port" */
#define VMQ_QOS_REFUSED 128 /* VerneMQ: a filter answered with this QoS is refused */

static char secret[CC_CONFIG_STR];
static char listen_on[LISTEN_MAX];
static int listen_port;

int api_mqtt_auth_init(const struct cc_config *cfg, char *err, size_t errlen)
{
    const char *s = getenv("MQTT_AUTH_HTTP_SECRET");
    const char *l = getenv("MQTT_AUTH_HTTP_LISTEN");

    secret[0] = listen_on[0] = '\0';
    listen_port = 0;
    if (s != NULL && s[0] != '\0') {
        if (strlen(s) < SECRET_MIN || strlen(s) >= sizeof secret) {
            snprintf(err, errlen, "MQTT_AUTH_HTTP_SECRET: %d to %zu characters", SECRET_MIN,
                     sizeof secret - 1);
            return CC_ERR_CONFIG;
        }
        memcpy(secret, s, strlen(s) + 1);
    }
    if (l != NULL && l[0] != '\0') {
        const char *colon = strrchr(l, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;

        if (strlen(l) >= sizeof listen_on || colon == NULL || colon == l || end == colon + 1 ||
            *end != '\0' || port < 1 || port > 65535 || strchr(l, ',') != NULL ||
            port == cfg->http_port) {
            snprintf(err, errlen,
                     "MQTT_AUTH_HTTP_LISTEN: host:port (e.g. 127.0.0.1:9180), a port other "
                     "than HTTP_PORT");
            return CC_ERR_CONFIG;
        }
        if (secret[0] == '\0') {
            snprintf(err, errlen, "MQTT_AUTH_HTTP_LISTEN: needs MQTT_AUTH_HTTP_SECRET");
            return CC_ERR_CONFIG;
        }
        memcpy(listen_on, l, strlen(l) + 1);
        listen_port = (int)port;
    }
    return CC_OK;
}

int api_mqtt_auth_enabled(void)
{
    return secret[0] != '\0';
}

const char *api_mqtt_auth_listen(void)
{
    return listen_on[0] ? listen_on : NULL;
}

int api_mqtt_auth_served(int server_port, const char *path)
{
    int internal = api_route_is_internal(path);

    if (listen_port == 0)
        return 1;
    /* Each listener serves its own side only. */
    return internal == (server_port == listen_port);
}

int api_mqtt_auth_internal_port(int server_port)
{
    return listen_port != 0 && server_port == listen_port;
}

/* Refuses a request without the shared secret: 404 while the endpoints are off, 401 / 403
 * (or 429 past RATE_LIMIT_AUTH failures). Returns 0 when the request may go on, else the
 * status sent. query_ok: the secret may come as ?secret= (brokers that cannot set a header). */
static int guard(struct api_req *r, int query_ok)
{
    const char *got = mg_get_header(r->conn, SECRET_HEADER);
    char qv[CC_QUERY_VALUE_MAX];
    int64_t retry_s = 1;

    if (secret[0] == '\0')
        return api_reply_error(r, CC_ERR_NOT_FOUND, "no such route", NULL);
    if (got == NULL && query_ok && cc_http_query_param(r->query, "secret", qv, sizeof qv) > 0)
        got = qv;
    if (got != NULL && cc_mqtt_auth_secret_matches(secret, got))
        return 0;
    if (cc_ratelimit_hit(r->app->limit_auth, r->addr, cc_mono_ms(), &retry_s) ==
        CC_ERR_RATE_LIMITED) {
        char v[24];

        snprintf(v, sizeof v, "%lld", (long long)retry_s);
        api_add_header(r, "Retry-After", v);
        api_metrics_rate_limited();
        return api_reply_error(r, CC_ERR_RATE_LIMITED, NULL, NULL);
    }
    if (got == NULL)
        return api_reply_error(r, CC_ERR_UNAUTHORIZED, "missing " SECRET_HEADER, NULL);
    return api_reply_error(r, CC_ERR_FORBIDDEN, "wrong " SECRET_HEADER, NULL);
}

/* Guards, reads the body into q and takes a database connection: 0, or the status sent (the
 * guard's), or -1 with rc and *err set (a body that cannot be read, or no database, for the
 * caller to refuse in its broker's terms). */
static int begin(struct api_req *r, int query_ok, struct cc_mqtt_req *q, int *rc, cJSON **err)
{
    const char *ct = mg_get_header(r->conn, "Content-Type");
    int form = ct != NULL && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
    int sent = guard(r, query_ok);

    if (sent != 0)
        return sent;
    *rc = cc_mqtt_req_parse(r->raw, r->raw_len, form, q, err);
    if (*rc == CC_OK && api_db_take(r, 0) != CC_OK)
        *rc = CC_ERR_DB;
    return *rc == CC_OK ? 0 : -1;
}

static struct cc_mqtt_auth_cfg operator_cfg(const struct api_req *r)
{
    struct cc_mqtt_auth_cfg c = {r->app->cfg.mqtt_username, r->app->mqtt_password};

    return c;
}

/* {"result": word, ...} with the SPEC error object under "error" when err is given (taken). */
static int reply_result(struct api_req *r, const char *word, int authn, cJSON *err)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || cJSON_AddStringToObject(o, "result", word) == NULL ||
        (authn && cJSON_AddFalseToObject(o, "is_superuser") == NULL)) {
        cJSON_Delete(o);
        cJSON_Delete(err);
        return api_reply_error(r, CC_ERR_NOMEM, NULL, NULL);
    }
    if (err != NULL)
        cJSON_AddItemToObject(o, "error", cJSON_DetachItemFromObject(err, "error"));
    cJSON_Delete(err);
    return api_reply_json(r, 200, o);
}

/* A database failure or a body that cannot be read: the SPEC error object for rc. */
static cJSON *error_for(int rc, cJSON *err)
{
    return err != NULL ? err : cc_error_new(rc, cc_http_default_message(rc));
}

/* A CONNECT question in any broker's shape (query_ok: as begin): reads it and decides it.
 * The status sent when the guard already answered, else 0 with *rc (and *err) and *decision
 * set for the caller to answer in its broker's terms. */
static int decide_connect(struct api_req *r, int query_ok, int *rc, cJSON **err, int *decision)
{
    struct cc_mqtt_req q;
    const struct cc_mqtt_auth_cfg c = operator_cfg(r);
    int sent = begin(r, query_ok, &q, rc, err);

    if (sent > 0)
        return sent;
    if (sent == 0)
        *rc = cc_mqtt_auth_connect(r->st, &c, q.username, q.has_password ? q.password : NULL,
                                   q.client_id, decision);
    return 0;
}

/* A question without the fields it needs is refused with VALIDATION_ERROR naming them
 * (what), unless it is refused already (*rc). */
static void require(int ok, const char *what, int *rc, cJSON **err)
{
    if (*rc == CC_OK && !ok) {
        *rc = CC_ERR_VALIDATION;
        *err = cc_error_new(*rc, what);
    }
}

static const char *emqx_word(int decision)
{
    return decision == CC_MQTT_ALLOW ? "allow" : decision == CC_MQTT_IGNORE ? "ignore" : "deny";
}

/* EMQX answers are 200 even for a request it sent badly: EMQX reads any 4xx/5xx as
 * "ignore", which at the end of an authorization chain falls to authorization.no_match
 * (allow, by default). A refusal must stay a refusal. */
int api_mqtt_emqx_authn(struct api_req *r)
{
    cJSON *err = NULL;
    int rc = CC_OK, decision = CC_MQTT_DENY;
    int sent = decide_connect(r, 0, &rc, &err, &decision);

    if (sent > 0)
        return sent;
    if (rc != CC_OK)
        return reply_result(r, "deny", 1, error_for(rc, err));
    return reply_result(r, emqx_word(decision), 1, NULL);
}

/* EMQX 5's ${action}: publish or subscribe; "all" is what an ACL rule names, never a request. */
static int emqx_access(const char *action)
{
    if (strcmp(action, "publish") == 0)
        return CC_AUTH_WRITE;
    if (strcmp(action, "subscribe") == 0)
        return CC_AUTH_SUBSCRIBE;
    return 0;
}

int api_mqtt_emqx_authz(struct api_req *r)
{
    struct cc_mqtt_req q;
    const struct cc_mqtt_auth_cfg c = operator_cfg(r);
    cJSON *err = NULL;
    int rc = CC_OK, decision = CC_MQTT_DENY;
    int sent = begin(r, 0, &q, &rc, &err);

    if (sent > 0)
        return sent;
    require(q.has_topic && q.has_action && q.has_username,
            "username, topic and action are required", &rc, &err);
    if (rc == CC_OK)
        rc = cc_mqtt_auth_topic(r->st, &c, q.username, q.has_client_id ? q.client_id : NULL,
                                q.topic, emqx_access(q.action), &decision);
    if (rc != CC_OK)
        return reply_result(r, "deny", 0, error_for(rc, err));
    /* Never "ignore" here: cc_mqtt_auth_topic answers allow or deny. */
    return reply_result(r, emqx_word(decision), 0, NULL);
}

/* mosquitto-go-auth: 200 {"ok":true,"error":""} allows, 403 {"ok":false,...} refuses; a
 * body that cannot be read gets its SPEC §5 status and error (any non-2xx refuses). */
static int reply_gauth(struct api_req *r, int rc, cJSON *err, int decision)
{
    cJSON *o;

    if (rc != CC_OK)
        return api_reply_error(r, rc, NULL, err);
    o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddBoolToObject(o, "ok", decision == CC_MQTT_ALLOW) == NULL ||
        cJSON_AddStringToObject(o, "error", decision == CC_MQTT_ALLOW ? "" : "denied") == NULL) {
        cJSON_Delete(o);
        return api_reply_error(r, CC_ERR_NOMEM, NULL, NULL);
    }
    return api_reply_json(r, decision == CC_MQTT_ALLOW ? 200 : 403, o);
}

int api_mqtt_gauth_user(struct api_req *r)
{
    cJSON *err = NULL;
    int rc = CC_OK, decision = CC_MQTT_DENY;
    int sent = decide_connect(r, 1, &rc, &err, &decision);

    /* go-auth has no "ignore": an unknown name is refused here, and its next backend (the
     * files backend for other operators, say) may still admit it. */
    return sent > 0 ? sent : reply_gauth(r, rc, err, decision);
}

/* Nobody is a superuser: a device never, and the operator has broker-config/acl's topics,
 * which the ACL check grants; a superuser would skip every ACL check. */
int api_mqtt_gauth_superuser(struct api_req *r)
{
    struct cc_mqtt_req q;
    cJSON *err = NULL;
    int rc = CC_OK;
    int sent = begin(r, 1, &q, &rc, &err);

    if (sent > 0)
        return sent;
    return reply_gauth(r, rc, err, CC_MQTT_DENY);
}

int api_mqtt_gauth_acl(struct api_req *r)
{
    struct cc_mqtt_req q;
    const struct cc_mqtt_auth_cfg c = operator_cfg(r);
    cJSON *err = NULL;
    int rc = CC_OK, decision = CC_MQTT_DENY;
    int sent = begin(r, 1, &q, &rc, &err);

    if (sent > 0)
        return sent;
    require(q.has_topic && q.has_acc && q.has_username, "username, topic and acc are required", &rc,
            &err);
    if (rc == CC_OK) {
        /* acc: mosquitto's MOSQ_ACL_* bits as go-auth passes them: 1 read (delivery),
         * 2 write, 3 both (each must be allowed), 4 subscribe, 8 unsubscribe. */
        static const int bits[] = {CC_AUTH_READ, CC_AUTH_WRITE, CC_AUTH_SUBSCRIBE,
                                   CC_AUTH_UNSUBSCRIBE};
        int asked = 0;

        if (q.acc == 1 || q.acc == 2 || q.acc == 3 || q.acc == 4 || q.acc == 8)
            decision = CC_MQTT_ALLOW;
        for (size_t i = 0;
             i < sizeof bits / sizeof bits[0] && rc == CC_OK && decision == CC_MQTT_ALLOW; i++) {
            if (!(q.acc & bits[i]))
                continue;
            asked = 1;
            rc = cc_mqtt_auth_topic(r->st, &c, q.username, q.has_client_id ? q.client_id : NULL,
                                    q.topic, bits[i], &decision);
        }
        if (!asked)
            decision = CC_MQTT_DENY;
    }
    return reply_gauth(r, rc, err, decision);
}

/* VerneMQ webhooks: {"result":"ok"}, {"result":"next"} or {"result":{"error":"..."}}. */
static int reply_vmq(struct api_req *r, int rc, cJSON *err, int decision, cJSON *topics)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *res = NULL;
    int ok = o != NULL;

    if (ok && rc == CC_OK && decision == CC_MQTT_ALLOW)
        ok = cJSON_AddStringToObject(o, "result", "ok") != NULL;
    else if (ok && rc == CC_OK && decision == CC_MQTT_IGNORE)
        ok = cJSON_AddStringToObject(o, "result", "next") != NULL;
    else if (ok) {
        res = cJSON_AddObjectToObject(o, "result");
        ok = res != NULL && cJSON_AddStringToObject(
                                res, "error", rc == CC_OK ? "not_allowed" : cc_rc_code(rc)) != NULL;
        if (ok && rc != CC_OK && (err = error_for(rc, err)) != NULL)
            cJSON_AddItemToObject(o, "error", cJSON_DetachItemFromObject(err, "error"));
    }
    if (ok && topics != NULL) {
        cJSON_AddItemToObject(o, "topics", topics);
        topics = NULL;
    }
    cJSON_Delete(err);
    cJSON_Delete(topics);
    if (!ok) {
        cJSON_Delete(o);
        return api_reply_error(r, CC_ERR_NOMEM, NULL, NULL);
    }
    return api_reply_json(r, 200, o);
}

int api_mqtt_vmq_register(struct api_req *r)
{
    cJSON *err = NULL;
    int rc = CC_OK, decision = CC_MQTT_DENY;
    int sent = decide_connect(r, 1, &rc, &err, &decision);

    return sent > 0 ? sent : reply_vmq(r, rc, err, decision, NULL);
}

int api_mqtt_vmq_publish(struct api_req *r)
{
    struct cc_mqtt_req q;
    const struct cc_mqtt_auth_cfg c = operator_cfg(r);
    cJSON *err = NULL;
    int rc = CC_OK, decision = CC_MQTT_DENY;
    int sent = begin(r, 1, &q, &rc, &err);

    if (sent > 0)
        return sent;
    require(q.has_topic && q.has_username, "username and topic are required", &rc, &err);
    if (rc == CC_OK)
        rc = cc_mqtt_auth_topic(r->st, &c, q.username, q.has_client_id ? q.client_id : NULL,
                                q.topic, CC_AUTH_WRITE, &decision);
    return reply_vmq(r, rc, err, decision, NULL);
}

/* Every filter is judged on its own, as mosquitto does (SUBACK 0x80 for a refused one): all
 * allowed is "ok"; otherwise "ok" with the topics, the refused ones at QoS 128. */
int api_mqtt_vmq_subscribe(struct api_req *r)
{
    struct cc_mqtt_req q;
    const struct cc_mqtt_auth_cfg c = operator_cfg(r);
    cJSON *err = NULL, *topics = NULL;
    int rc = CC_OK, decision = CC_MQTT_ALLOW, refused = 0;
    int sent = begin(r, 1, &q, &rc, &err);

    if (sent > 0)
        return sent;
    require(q.n_topics > 0 && q.has_username, "username and topics are required", &rc, &err);
    if (rc == CC_OK && (topics = cJSON_CreateArray()) == NULL)
        rc = CC_ERR_NOMEM;
    for (int i = 0; rc == CC_OK && i < q.n_topics; i++) {
        int one = CC_MQTT_DENY;
        cJSON *t = cJSON_CreateObject();

        rc = cc_mqtt_auth_topic(r->st, &c, q.username, q.has_client_id ? q.client_id : NULL,
                                q.topics[i], CC_AUTH_SUBSCRIBE, &one);
        if (t == NULL || !cJSON_AddItemToArray(topics, t) ||
            cJSON_AddStringToObject(t, "topic", q.topics[i]) == NULL ||
            cJSON_AddNumberToObject(
                t, "qos", one == CC_MQTT_ALLOW ? q.topic_qos[i] : VMQ_QOS_REFUSED) == NULL)
            rc = rc == CC_OK ? CC_ERR_NOMEM : rc;
        refused += one != CC_MQTT_ALLOW;
    }
    if (rc == CC_OK && refused == q.n_topics)
        decision = CC_MQTT_DENY; /* nothing left to subscribe to */
    if (rc != CC_OK || decision != CC_MQTT_ALLOW || refused == 0) {
        cJSON_Delete(topics);
        topics = NULL;
    }
    return reply_vmq(r, rc, err, decision, topics);
}
