/* cc_mqtt_auth.c - the plugin's rules for brokers that ask over HTTP (see cc_mqtt_auth.h). */
#include "cc_mqtt_auth.h"

#include <string.h>

#include <openssl/crypto.h>

#include "cc_auth_rules.h"
#include "cc_crypto.h"
#include "cc_devices.h"
#include "cc_rc.h"

/* 1 if username is the operator's name. The name alone decides, password known or not: a
 * device row with that serial must never be taken for the operator. */
static int is_operator(const struct cc_mqtt_auth_cfg *cfg, const char *username)
{
    return cfg != NULL && cfg->operator_user != NULL && cfg->operator_user[0] != '\0' &&
           username != NULL && strcmp(cfg->operator_user, username) == 0;
}

int cc_mqtt_auth_secret_matches(const char *want, const char *got)
{
    unsigned char w[CC_SHA256_LEN], g[CC_SHA256_LEN];

    if (want == NULL || got == NULL || want[0] == '\0')
        return 0;
    /* Hashes of equal length: the compare says nothing about either length. */
    cc_sha256(want, strlen(want), w);
    cc_sha256(got, strlen(got), g);
    return CRYPTO_memcmp(w, g, sizeof w) == 0;
}

int cc_mqtt_auth_connect(struct cc_store *st, const struct cc_mqtt_auth_cfg *cfg,
                         const char *username, const char *password, const char *client_id,
                         int *decision)
{
    int exists = 0;
    int rc;

    if (username == NULL || username[0] == '\0') {
        *decision = CC_MQTT_IGNORE;
        return CC_OK;
    }
    /* Before any device lookup: a device row whose serial is the operator's name must not
     * log in as the operator, nor lock it out (the plugin's operators file). */
    if (is_operator(cfg, username)) {
        /* No password known here: the broker's other sources must admit the operator. */
        if (cfg->operator_password == NULL || cfg->operator_password[0] == '\0')
            *decision = CC_MQTT_IGNORE;
        else
            *decision = cc_mqtt_auth_secret_matches(cfg->operator_password, password)
                            ? CC_MQTT_ALLOW
                            : CC_MQTT_DENY;
        return CC_OK;
    }
    if (!cc_auth_is_device_name(username)) {
        *decision = CC_MQTT_IGNORE;
        return CC_OK;
    }
    rc = cc_devices_check_key(st, username, password, &exists);
    if (rc != CC_OK && rc != CC_ERR_UNAUTHORIZED)
        return rc;
    if (!exists)
        *decision = CC_MQTT_IGNORE;
    else if (rc != CC_OK)
        *decision = CC_MQTT_DENY;
    else /* a device with another client id could take over that client's session */
        *decision = cc_auth_client_id_allowed(username, client_id) ? CC_MQTT_ALLOW : CC_MQTT_DENY;
    return CC_OK;
}

int cc_mqtt_auth_topic(struct cc_store *st, const struct cc_mqtt_auth_cfg *cfg,
                       const char *username, const char *client_id, const char *topic, int access,
                       int *decision)
{
    int exists = 0;
    int rc;

    *decision = CC_MQTT_DENY;
    if (username == NULL || topic == NULL)
        return CC_OK;
    if (is_operator(cfg, username)) {
        *decision =
            cc_mqtt_auth_operator_topic_allowed(topic, access) ? CC_MQTT_ALLOW : CC_MQTT_DENY;
        return CC_OK;
    }
    if (!cc_auth_is_device_name(username))
        return CC_OK;
    /* No key here: only whether the row still exists (a deleted device loses its topics at
     * once, as with the plugin). The key check's work is the same either way. */
    rc = cc_devices_check_key(st, username, NULL, &exists);
    if (rc != CC_OK && rc != CC_ERR_UNAUTHORIZED)
        return rc;
    if (!exists || (client_id != NULL && !cc_auth_client_id_allowed(username, client_id)))
        return CC_OK;
    if (cc_auth_topic_allowed(username, topic, access))
        *decision = CC_MQTT_ALLOW;
    return CC_OK;
}

/* 1 if topic is root itself or lies under root/ (so its first level is root, literally: a
 * wildcard there never matches). */
static int under_root(const char *topic, const char *root)
{
    size_t n = strlen(root);

    return strncmp(topic, root, n) == 0 && (topic[n] == '\0' || topic[n] == '/');
}

int cc_mqtt_auth_operator_topic_allowed(const char *topic, int access)
{
    static const char share[] = "$share/";

    if (topic == NULL)
        return 0;
    if (access == CC_AUTH_UNSUBSCRIBE)
        return 1;
    if (access == CC_AUTH_SUBSCRIBE && strncmp(topic, share, sizeof share - 1) == 0) {
        /* $share/<group>/<filter>: the group names no topic; the filter is what is read. */
        const char *slash = strchr(topic + sizeof share - 1, '/');

        if (slash == NULL || slash == topic + sizeof share - 1)
            return 0;
        topic = slash + 1;
    }
    switch (access) {
    case CC_AUTH_WRITE:
        return under_root(topic, "devices") || under_root(topic, "alerts");
    case CC_AUTH_READ:
    case CC_AUTH_SUBSCRIBE:
        return under_root(topic, "devices") || under_root(topic, "alerts") ||
               under_root(topic, "$SYS/broker");
    default:
        return 0;
    }
}
