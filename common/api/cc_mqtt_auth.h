/* cc_mqtt_auth.h - the broker's questions about a client (may it connect, publish,
 * subscribe?) answered over HTTP with the rules of the mosquitto plugin
 * (broker-config/coldchain_auth.c), for brokers that ask an HTTP service: EMQX 5, VerneMQ,
 * mosquitto-go-auth (docs/scaling.md "Device authentication over HTTP").
 *
 * Who is who, as in the plugin: the operator account (MQTT_USERNAME, the account ingestd and
 * apid's live feed share) is never a device; a username that passes cc_auth_is_device_name
 * and names a devices row is a device; anyone else is unknown. The device rules are the
 * plugin's own functions (cc_auth_rules.h, cc_devices_check_key): key, client id = serial,
 * own topics. The operator's topics are those broker-config/acl gives it.
 *
 * Stateless: the plugin also remembers the key and row each connected device logged in with
 * and cuts it off at its next ACL check after a key change; over HTTP a topic check has no
 * password, so a key change takes effect at the device's next CONNECT (the broker's
 * authorization cache decides how long a connected device keeps its grants).
 * Never logs a password or key. Thread: the caller's store; cfg is read-only.
 * Codes: CC_OK (*decision set), CC_ERR_DB, CC_ERR_NOMEM. */
#ifndef CC_MQTT_AUTH_H
#define CC_MQTT_AUTH_H

#include "cc_store.h"

/* What the broker is told. IGNORE: "not mine, ask the next source" (EMQX "ignore", VerneMQ
 * "next"; mosquitto-go-auth has no such answer and reads it as a refusal, which lets its
 * next backend try). */
enum cc_mqtt_decision {
    CC_MQTT_DENY = 0,
    CC_MQTT_ALLOW = 1,
    CC_MQTT_IGNORE = 2,
};

/* The operator account apid knows (MQTT_USERNAME / MQTT_PASSWORD). Its name is never a
 * device. An empty password means apid cannot check it: a CONNECT under that name is then
 * IGNOREd (another source of the broker must admit it), its topics are still the acl's. An
 * empty user means no operator. Lent for the caller's call. */
struct cc_mqtt_auth_cfg {
    const char *operator_user;
    const char *operator_password;
};

/* CONNECT. ALLOW: a device with its key and client id = serial, or the operator with its
 * password (compared in constant time). DENY: a device (or the operator) with a wrong or
 * missing password, a device with another client id. IGNORE: no username, or a name that
 * is neither (the plugin's DEFER: the broker's other sources decide, and refuse it when
 * there are none). */
int cc_mqtt_auth_connect(struct cc_store *st, const struct cc_mqtt_auth_cfg *cfg,
                         const char *username, const char *password, const char *client_id,
                         int *decision);

/* PUBLISH / SUBSCRIBE / delivery / UNSUBSCRIBE (access: enum cc_auth_access, one bit) on
 * topic. A device: cc_auth_topic_allowed, and client_id must be its serial (NULL: not
 * checked, for brokers that do not send it). The operator:
 * cc_mqtt_auth_operator_topic_allowed. Anyone else, a device whose row is gone included:
 * DENY, never IGNORE: in the plugin they end with the acl file, which grants them nothing,
 * and EMQX's authorization.no_match is "allow" by default. */
int cc_mqtt_auth_topic(struct cc_store *st, const struct cc_mqtt_auth_cfg *cfg,
                       const char *username, const char *client_id, const char *topic, int access,
                       int *decision);

/* 1 if got equals want, compared in constant time whatever either length (both are hashed
 * first): the operator's password, the shared secret of apid's broker endpoints. 0 when
 * either is NULL or want is empty. */
int cc_mqtt_auth_secret_matches(const char *want, const char *got);

/* 1 if broker-config/acl lets the operator do access on topic (a topic, or a filter for
 * CC_AUTH_SUBSCRIBE): publish, subscribe and receive under devices/ and alerts/ (a filter
 * may hold wildcards below the first level: devices/+/readings; "#" or "+/..." is refused),
 * subscribe and receive under $SYS/broker/; a shared subscription
 * ($share/<group>/<filter>) is judged by its filter; unsubscribe anything. Else 0. */
int cc_mqtt_auth_operator_topic_allowed(const char *topic, int access);

#endif
