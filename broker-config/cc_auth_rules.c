/*
 * cc_auth_rules.c - the plugin's pure checks (see cc_auth_rules.h). Kept apart from the
 * mosquitto glue so that unit and fuzz tests reach them without a broker.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cc_auth_rules.h"

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

int cc_auth_name_reserved(const char *name)
{
    static const char prefix[] = CC_AUTH_OPERATOR_PREFIX;

    if (name == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(prefix) - 1; i++)
        if (lower((unsigned char)name[i]) != prefix[i]) /* stops at name's NUL too */
            return 0;
    return 1;
}

int cc_auth_is_device_name(const char *username)
{
    size_t n = 0;

    if (username == NULL)
        return 0;
    for (const char *c = username; *c; c++, n++) {
        if (n >= CC_AUTH_SERIAL_MAX)
            return 0;
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return 0;
    }
    return n > 0 && !cc_auth_name_reserved(username);
}

int cc_auth_client_id_allowed(const char *serial, const char *client_id)
{
    /* Equal to the serial and nothing else: a device can then only ever replace its own
     * session, never ingestd's, apid's or another device's. */
    return client_id != NULL && cc_auth_is_device_name(serial) && strcmp(serial, client_id) == 0;
}

int cc_auth_cert_name_allowed(const char *cn, size_t len, const char *username)
{
    /* The length test also refuses a CN with a NUL inside ("serial\0anything"). */
    return cn != NULL && username != NULL && len <= CC_AUTH_SERIAL_MAX && strlen(username) == len &&
           memcmp(cn, username, len) == 0 && cc_auth_is_device_name(username);
}

/* 1 if the len bytes at s start with the NUL-terminated prefix, compared without case. */
static int starts_with_nocase(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    if (len < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != lower((unsigned char)prefix[i]))
            return 0;
    return 1;
}

/* The canonical decimal id in the len bytes at s (1..INT64_MAX, no leading zero), or 0. */
static int64_t parse_device_id(const char *s, size_t len)
{
    int64_t id = 0;

    if (len == 0 || len > CC_AUTH_DEVICE_ID_DIGITS_MAX || s[0] == '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || id > (INT64_MAX - (s[i] - '0')) / 10)
            return 0;
        id = id * 10 + (s[i] - '0');
    }
    return id;
}

int64_t cc_auth_cert_device_id(const char *const *uris, const size_t *lens, size_t n)
{
    static const char prefix[] = CC_AUTH_CERT_URI_PREFIX;
    const size_t plen = sizeof(prefix) - 1;
    int64_t id = 0;
    size_t claims = 0;

    if (uris == NULL || lens == NULL || n > CC_AUTH_CERT_URIS_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (uris[i] == NULL || memchr(uris[i], '\0', lens[i]) != NULL)
            return 0; /* "urn:...:7\0anything": a C string and the certificate would differ */
        if (!starts_with_nocase(uris[i], lens[i], prefix))
            continue;
        if (++claims > 1)
            return 0;
        id = parse_device_id(uris[i] + plen, lens[i] - plen);
    }
    return claims == 1 ? id : 0;
}

/* 1 if topic is "devices/<serial>/<rest>" with a non-empty rest (*rest set), else 0. The
 * serial is compared byte for byte and holds no '/', '+' or '#' (a device name), so no
 * wildcard can reach the serial level. */
static int under_own_prefix(const char *topic, const char *serial, const char **rest)
{
    static const char root[] = "devices/";
    size_t root_len = sizeof(root) - 1;
    size_t serial_len = strlen(serial);

    if (strncmp(topic, root, root_len) != 0)
        return 0;
    topic += root_len;
    if (strncmp(topic, serial, serial_len) != 0 || topic[serial_len] != '/')
        return 0;
    *rest = topic + serial_len + 1;
    return (*rest)[0] != '\0';
}

int cc_auth_topic_allowed(const char *serial, const char *topic, int access)
{
    const char *rest = NULL;

    if (topic == NULL || !cc_auth_is_device_name(serial))
        return 0;
    switch (access) {
    case CC_AUTH_WRITE:
        return under_own_prefix(topic, serial, &rest) &&
               (strcmp(rest, "readings") == 0 || strcmp(rest, "status") == 0);
    case CC_AUTH_READ:
        /* Only what ingestd answers on. Never its own publishes back: the broker's queues
         * are unlimited (for ingestd's session), so a device subscribed to devices/S/#
         * that stops reading would make it hold every reading it sends, 1 MiB each. */
        return under_own_prefix(topic, serial, &rest) && strcmp(rest, "errors") == 0;
    case CC_AUTH_SUBSCRIBE:
        return under_own_prefix(topic, serial, &rest);
    case CC_AUTH_UNSUBSCRIBE:
        return 1; /* dropping a subscription reveals nothing */
    default:
        return 0;
    }
}
