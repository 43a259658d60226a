/* cc_mqtt_req.h - reads the body a broker sends when it asks whether a client may connect,
 * publish or subscribe (EMQX 5 HTTP authn/authz, mosquitto-go-auth's HTTP backend in its
 * "json" and "form" params modes, VerneMQ webhooks), bounded in every dimension, for
 * cc_mqtt_auth.h to decide on.
 *
 * The fields are looked up by name (clientid or client_id; unknown ones, such as qos,
 * retain, peerhost or mountpoint, are ignored). A field that is absent has its has_ flag 0;
 * the caller decides which it needs. Pure: no allocation survives the call except *err.
 * Thread-safe. Codes: CC_OK; CC_ERR_TOO_LARGE (a body over CC_MQTT_AUTH_BODY_MAX);
 * CC_ERR_BAD_JSON (not a JSON object, deeper than CC_MQTT_AUTH_JSON_DEPTH, a NUL byte);
 * CC_ERR_VALIDATION (a field of the wrong type or over its limit; *err names it);
 * CC_ERR_NOMEM. *err, when set, is a SPEC §5 error object (caller deletes). */
#ifndef CC_MQTT_REQ_H
#define CC_MQTT_REQ_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* Bytes of one request body. The largest a broker sends for our clients is a VerneMQ
 * auth_on_subscribe with a few filters; an auth_on_publish with its payload (VerneMQ's
 * default) is larger and is refused: docs/scaling.md says to turn the payload off. */
#define CC_MQTT_AUTH_BODY_MAX 4096
#define CC_MQTT_AUTH_NAME_MAX 256     /* bytes of a username or client id (MQTT_USERNAME's) */
#define CC_MQTT_AUTH_PASSWORD_MAX 256 /* bytes of a password (an API key is 64) */
#define CC_MQTT_AUTH_TOPIC_MAX 512    /* bytes of a topic or filter (ours are under 100) */
#define CC_MQTT_AUTH_ACTION_MAX 16    /* bytes of an action ("subscribe") */
/* Nesting levels of a body: EMQX and mosquitto-go-auth send flat objects (1), VerneMQ's
 * auth_on_subscribe an array of objects inside one (3). */
#define CC_MQTT_AUTH_JSON_DEPTH 3
/* Filters of one VerneMQ auth_on_subscribe that are looked at; more are refused. */
#define CC_MQTT_AUTH_TOPICS_MAX 8

struct cc_mqtt_req {
    int has_username, has_password, has_client_id, has_topic, has_action, has_acc;
    char username[CC_MQTT_AUTH_NAME_MAX + 1];
    char password[CC_MQTT_AUTH_PASSWORD_MAX + 1]; /* a secret: never log it */
    char client_id[CC_MQTT_AUTH_NAME_MAX + 1];
    char topic[CC_MQTT_AUTH_TOPIC_MAX + 1];
    char action[CC_MQTT_AUTH_ACTION_MAX + 1];
    int64_t acc; /* mosquitto-go-auth: 1 read, 2 write, 3 readwrite, 4 subscribe */
    /* VerneMQ auth_on_subscribe: "topics":[{"topic":...,"qos":...}] */
    int n_topics;
    char topics[CC_MQTT_AUTH_TOPICS_MAX][CC_MQTT_AUTH_TOPIC_MAX + 1];
    int topic_qos[CC_MQTT_AUTH_TOPICS_MAX];
};

/* Reads body[0..len) into *out: a JSON object, or with form = 1 an
 * application/x-www-form-urlencoded body (a=1&b=2, %XX and + decoded; no topics array).
 * body[len] must be a NUL (apid's request bodies are). */
int cc_mqtt_req_parse(const char *body, size_t len, int form, struct cc_mqtt_req *out, cJSON **err);

#endif
