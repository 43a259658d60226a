/* cc_config.c - reads and checks the SPEC §6 environment; secrets kept beside the DB.
 *
 * An unset variable and an empty one both mean "use the default", so a wrapper
 * script can pass VAR="${VAR:-}" through. Every other value is checked in full: a
 * number must be all digits and in range, a string must fit its field (we never
 * truncate a path, URL or secret). */
#include "cc_config.h"
#include "cc_auth_rules.h"
#include "cc_crypto.h"
#include "cc_errcap.h"
#include "cc_log.h"
#include "cc_rc.h"

#include <openssl/crypto.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_DURATION_S 315360000LL        /* seconds: ten years, keeps * 1000 far from overflow */
#define MAX_RATE_LIMIT 1000000            /* requests per window */
#define MAX_RETENTION_DAYS 36500          /* days: a century */
#define JWT_SECRET_MIN_PROD 32            /* characters, HS256 wants >= 256 bits of key */
#define CC_CONFIG_PLACEHOLDER "change-me" /* how .env.example's secrets begin */
#define SECRET_FILE_MAX 1024              /* bytes a secret file may hold */
#define SECRET_RANDOM_BYTES 32            /* bytes of entropy in a generated secret */
#define SECRET_READ_RETRIES 50            /* tries to see a racing creator's write */
#define SECRET_RETRY_NS 20000000L         /* nanoseconds between those tries */

/* Writes "fmt..." into err (if any room) and returns CC_ERR_CONFIG. */
__attribute__((format(printf, 3, 4))) static int fail_msg(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return CC_ERR_CONFIG;
}

/* The value of name, or NULL when unset or empty. */
static const char *env(const char *name)
{
    const char *v = getenv(name);

    return (v != NULL && v[0] != '\0') ? v : NULL;
}

/* Strict decimal integer: optional '-', digits only, whole string, within lo..hi. */
static int env_int(const char *name, int64_t def, int64_t lo, int64_t hi, int64_t *out, char *err,
                   size_t errlen)
{
    const char *v = env(name);
    char *end = NULL;
    long long x;

    if (v == NULL) {
        *out = def;
        return CC_OK;
    }
    /* strtoll alone would accept " 42", "+42" and "42abc". */
    if (!((v[0] >= '0' && v[0] <= '9') || (v[0] == '-' && v[1] >= '0' && v[1] <= '9')))
        return fail_msg(err, errlen, "%s: '%s' is not an integer", name, v);
    errno = 0;
    x = strtoll(v, &end, 10);
    if (end == v || *end != '\0')
        return fail_msg(err, errlen, "%s: '%s' is not an integer", name, v);
    if (errno == ERANGE || x < lo || x > hi)
        return fail_msg(err, errlen, "%s: %s is out of range (%lld..%lld)", name, v, (long long)lo,
                        (long long)hi);
    *out = x;
    return CC_OK;
}

static int env_int32(const char *name, int def, int lo, int hi, int *out, char *err, size_t errlen)
{
    int64_t x;
    int rc = env_int(name, def, lo, hi, &x, err, errlen);

    if (rc == CC_OK)
        *out = (int)x;
    return rc;
}

/* Copies the value (or def) into out[outlen]; a value that does not fit is an error. */
static int env_str(const char *name, const char *def, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    const char *v = env(name);
    size_t n;

    if (v == NULL)
        v = def;
    n = strlen(v);
    if (n >= outlen)
        return fail_msg(err, errlen, "%s: too long (%zu bytes, at most %zu)", name, n, outlen - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];

        if (c < 0x20 || c == 0x7F)
            return fail_msg(err, errlen, "%s: contains a control character", name);
    }
    memcpy(out, v, n + 1);
    return CC_OK;
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A URL that starts with one of the schemes (NULL-terminated list), has something
 * after it and no spaces. Empty is allowed (the feature is off). */
static int check_url(const char *name, const char *url, const char *const *schemes, char *err,
                     size_t errlen)
{
    const char *rest = NULL;

    if (url[0] == '\0')
        return CC_OK;
    for (size_t i = 0; schemes[i] != NULL; i++) {
        if (has_prefix(url, schemes[i])) {
            rest = url + strlen(schemes[i]);
            break;
        }
    }
    if (rest == NULL) {
        char list[64] = "";

        for (size_t i = 0; schemes[i] != NULL; i++) {
            if (i > 0)
                strncat(list, " or ", sizeof(list) - strlen(list) - 1);
            strncat(list, schemes[i], sizeof(list) - strlen(list) - 1);
        }
        return fail_msg(err, errlen, "%s: must start with %s", name, list);
    }
    if (rest[0] == '\0' || rest[0] == '/' || rest[0] == ':')
        return fail_msg(err, errlen, "%s: no host after the scheme", name);
    if (strchr(rest, ' ') != NULL)
        return fail_msg(err, errlen, "%s: contains a space", name);
    return CC_OK;
}

/* MQTT_URL: tcp:// or ssl://, a host, and if ":port" ends it, a port in 1..65535. */
static int check_mqtt_url(const char *url, char *err, size_t errlen)
{
    static const char *const schemes[] = {"tcp://", "ssl://", NULL};
    const char *host, *colon, *bracket;
    int rc;

    rc = check_url("MQTT_URL", url, schemes, err, errlen);
    if (rc != CC_OK)
        return rc;
    host = strstr(url, "://") + 3;
    if (strchr(host, '/') != NULL)
        return fail_msg(err, errlen, "MQTT_URL: must be scheme://host[:port] with no path");
    colon = strrchr(host, ':');
    bracket = strrchr(host, ']');
    if (colon != NULL && (bracket == NULL || colon > bracket)) {
        const char *p = colon + 1;
        long port = 0;

        if (*p == '\0')
            return fail_msg(err, errlen, "MQTT_URL: empty port");
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || port > 65535)
                return fail_msg(err, errlen, "MQTT_URL: bad port");
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535)
            return fail_msg(err, errlen, "MQTT_URL: port out of range (1..65535)");
    }
    return CC_OK;
}

/* "HH:MM", 00:00..23:59, exactly five characters. */
static int parse_hhmm(const char *s, int *minutes)
{
    if (strlen(s) != 5 || s[2] != ':')
        return 0;
    for (int i = 0; i < 5; i++) {
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return 0;
    }
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');

    if (h > 23 || m > 59)
        return 0;
    *minutes = h * 60 + m;
    return 1;
}

static int env_bool(const char *name, int def, int *out, char *err, size_t errlen)
{
    const char *v = env(name);

    if (v == NULL) {
        *out = def;
        return CC_OK;
    }
    if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) {
        *out = v[0] == '1';
        return CC_OK;
    }
    return fail_msg(err, errlen, "%s: must be 0 or 1", name);
}

/* CORS_ORIGINS: comma-separated; each entry "*" or an http(s) origin. */
static int check_cors(const char *list, char *err, size_t errlen)
{
    const char *p = list;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);

        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 0)
            return fail_msg(err, errlen, "CORS_ORIGINS: empty entry");
        if (!(n == 1 && p[0] == '*') && !(n > 7 && strncmp(p, "http://", 7) == 0) &&
            !(n > 8 && strncmp(p, "https://", 8) == 0))
            return fail_msg(err, errlen, "CORS_ORIGINS: '%.*s' is not * or an http(s) origin",
                            (int)n, p);
        if (memchr(p, ' ', n) != NULL)
            return fail_msg(err, errlen, "CORS_ORIGINS: an origin contains a space");
        if (end == NULL)
            break;
        p = end + 1;
        if (*p == '\0')
            return fail_msg(err, errlen, "CORS_ORIGINS: empty entry");
    }
    return CC_OK;
}

/* 1 if a secret is one of .env.example's placeholders ("change-me...", any case). */
static int placeholder(const char *secret)
{
    return strncasecmp(secret, CC_CONFIG_PLACEHOLDER, sizeof CC_CONFIG_PLACEHOLDER - 1) == 0;
}

int cc_config_load(struct cc_config *cfg, char *err, size_t errlen)
{
    static const char *const http_schemes[] = {"http://", "https://", NULL};
    static const char *const smtp_schemes[] = {"smtp://", "smtps://", NULL};
    struct cc_config c;
    const char *v;
    char def_url[64];
    unsigned char addr[sizeof(struct in6_addr)];
    int rc;

    if (cfg == NULL)
        return fail_msg(err, errlen, "internal: no config struct");
    memset(&c, 0, sizeof(c));

    v = env("COLDCHAIN_ENV");
    if (v == NULL || strcmp(v, "development") == 0 || strcmp(v, "test") == 0)
        c.production = 0;
    else if (strcmp(v, "production") == 0)
        c.production = 1;
    else
        return fail_msg(err, errlen, "COLDCHAIN_ENV: must be production, development or test");

    if ((rc = env_str("COLDCHAIN_DB", "data/coldchain.db", c.db_path, sizeof(c.db_path), err,
                      errlen)) != CC_OK)
        return rc;
    if ((rc = env_str("COLDCHAIN_DATA_DIR", "", c.data_dir, sizeof(c.data_dir), err, errlen)) !=
        CC_OK)
        return rc;

    if ((rc = env_int32("MQTT_PORT", 1883, 1, 65535, &c.mqtt_port, err, errlen)) != CC_OK)
        return rc;
    snprintf(def_url, sizeof(def_url), "tcp://127.0.0.1:%d", c.mqtt_port);
    if ((rc = env_str("MQTT_URL", def_url, c.mqtt_url, sizeof(c.mqtt_url), err, errlen)) != CC_OK)
        return rc;
    if ((rc = check_mqtt_url(c.mqtt_url, err, errlen)) != CC_OK)
        return rc;
    if ((rc = env_str("MQTT_USERNAME", "ingestd", c.mqtt_username, sizeof(c.mqtt_username), err,
                      errlen)) != CC_OK)
        return rc;
    /* Empty here means "resolve from <db dir>/mqtt.secret" (cc_config_secret). */
    if ((rc = env_str("MQTT_PASSWORD", "", c.mqtt_password, sizeof(c.mqtt_password), err,
                      errlen)) != CC_OK)
        return rc;
    {
        /* ingestd reads the value itself; checked here so that a bad one stops it at start.
         * Only under the operators' prefix, which no device serial may have: any other id
         * could be a serial a customer creates, and that device (client id = serial) would
         * take over ingestd's persistent session. */
        char *client_id = c.ingest_client_id;

        if ((rc = env_str("INGEST_CLIENT_ID", CC_AUTH_OPERATOR_PREFIX "ingestd", client_id,
                          sizeof(c.ingest_client_id), err, errlen)) != CC_OK)
            return rc;
        if (!cc_auth_name_reserved(client_id) || strpbrk(client_id, "/+#") != NULL)
            return fail_msg(err, errlen,
                            "INGEST_CLIENT_ID: must start with '" CC_AUTH_OPERATOR_PREFIX
                            "' (reserved for the operators' programs, never a device serial) "
                            "and hold no '/', '+' or '#'");
    }
    /* MQTT 5.0 §4.8.2: a share name is one topic level and no wildcard. */
    if ((rc = env_str("INGEST_SHARE_GROUP", "", c.ingest_share_group, sizeof(c.ingest_share_group),
                      err, errlen)) != CC_OK)
        return rc;
    if (strpbrk(c.ingest_share_group, "/+#") != NULL)
        return fail_msg(err, errlen, "INGEST_SHARE_GROUP: must hold no '/', '+' or '#'");

    if ((rc = env_int32("HTTP_PORT", 8080, 1, 65535, &c.http_port, err, errlen)) != CC_OK)
        return rc;
    if ((rc = env_str("HTTP_BIND", "127.0.0.1", c.http_bind, sizeof(c.http_bind), err, errlen)) !=
        CC_OK)
        return rc;
    /* civetweb wants a numeric address; a host name would fail late, at listen time. */
    if (inet_pton(AF_INET, c.http_bind, addr) != 1 && inet_pton(AF_INET6, c.http_bind, addr) != 1)
        return fail_msg(err, errlen, "HTTP_BIND: '%s' is not an IPv4 or IPv6 address", c.http_bind);
    if ((rc = env_int32("INGEST_METRICS_PORT", 9101, 1, 65535, &c.ingest_metrics_port, err,
                        errlen)) != CC_OK)
        return rc;

    /* The secret itself never goes into err. */
    if ((rc = env_str("JWT_SECRET", "", c.jwt_secret, sizeof(c.jwt_secret), err, errlen)) != CC_OK)
        return rc;
    if (c.production && c.jwt_secret[0] == '\0')
        return fail_msg(err, errlen, "JWT_SECRET: required when COLDCHAIN_ENV=production");
    if (c.production && strlen(c.jwt_secret) < JWT_SECRET_MIN_PROD)
        return fail_msg(err, errlen, "JWT_SECRET: at least %d characters in production",
                        JWT_SECRET_MIN_PROD);
    /* .env.example's placeholders are public: left as they are, anyone could sign an admin
     * token or log in to the broker as the operator. */
    if (c.production && placeholder(c.jwt_secret))
        return fail_msg(err, errlen,
                        "JWT_SECRET: still the placeholder of .env.example; set a "
                        "random value (openssl rand -hex 32)");
    if (c.production && placeholder(c.mqtt_password))
        return fail_msg(err, errlen,
                        "MQTT_PASSWORD: still the placeholder of .env.example; set a "
                        "random value (openssl rand -hex 32)");

    if ((rc = env_int("ACCESS_TOKEN_TTL_S", 900, 1, MAX_DURATION_S, &c.access_token_ttl_s, err,
                      errlen)) != CC_OK)
        return rc;
    if ((rc = env_int("REFRESH_TOKEN_TTL_S", 604800, 1, MAX_DURATION_S, &c.refresh_token_ttl_s, err,
                      errlen)) != CC_OK)
        return rc;
    if (c.refresh_token_ttl_s < c.access_token_ttl_s)
        return fail_msg(err, errlen, "REFRESH_TOKEN_TTL_S: shorter than ACCESS_TOKEN_TTL_S");
    if ((rc = env_int("OFFLINE_AFTER_S", 600, 1, MAX_DURATION_S, &c.offline_after_s, err,
                      errlen)) != CC_OK)
        return rc;
    if ((rc = env_int("ESCALATE_AFTER_S", 3600, 1, MAX_DURATION_S, &c.escalate_after_s, err,
                      errlen)) != CC_OK)
        return rc;

    c.log_level = CC_LOG_INFO;
    v = env("LOG_LEVEL");
    if (v != NULL && cc_log_level_parse(v, &c.log_level) != CC_OK)
        return fail_msg(err, errlen, "LOG_LEVEL: must be debug, info, warn or error");
    c.log_json = 1;
    v = env("LOG_FORMAT");
    if (v != NULL) {
        if (strcmp(v, "json") == 0)
            c.log_json = 1;
        else if (strcmp(v, "text") == 0)
            c.log_json = 0;
        else
            return fail_msg(err, errlen, "LOG_FORMAT: must be json or text");
    }

    if ((rc = env_str("WEBHOOK_URL", "", c.webhook_url, sizeof(c.webhook_url), err, errlen)) !=
        CC_OK)
        return rc;
    if ((rc = check_url("WEBHOOK_URL", c.webhook_url, http_schemes, err, errlen)) != CC_OK)
        return rc;
    if ((rc = env_str("WEBHOOK_SECRET", "", c.webhook_secret, sizeof(c.webhook_secret), err,
                      errlen)) != CC_OK)
        return rc;
    if ((rc = env_str("SMTP_URL", "", c.smtp_url, sizeof(c.smtp_url), err, errlen)) != CC_OK)
        return rc;
    if ((rc = check_url("SMTP_URL", c.smtp_url, smtp_schemes, err, errlen)) != CC_OK)
        return rc;
    if ((rc = env_str("SMTP_FROM", "", c.smtp_from, sizeof(c.smtp_from), err, errlen)) != CC_OK)
        return rc;
    if (c.smtp_from[0] != '\0' && strchr(c.smtp_from, '@') == NULL)
        return fail_msg(err, errlen, "SMTP_FROM: not an e-mail address");
    if (c.smtp_url[0] != '\0' && c.smtp_from[0] == '\0')
        return fail_msg(err, errlen, "SMTP_FROM: required when SMTP_URL is set");

    c.daily_report_minute = 5;
    v = env("DAILY_REPORT_AT");
    if (v != NULL && !parse_hhmm(v, &c.daily_report_minute))
        return fail_msg(err, errlen, "DAILY_REPORT_AT: must be HH:MM (00:00..23:59)");

    if ((rc = env_int32("RAW_RETENTION_DAYS", 400, 1, MAX_RETENTION_DAYS, &c.raw_retention_days,
                        err, errlen)) != CC_OK)
        return rc;
    if ((rc = env_int32("REJECTED_RETENTION_DAYS", 7, 1, MAX_RETENTION_DAYS,
                        &c.rejected_retention_days, err, errlen)) != CC_OK)
        return rc;
    if ((rc = env_int32("RATE_LIMIT_API", 100, 1, MAX_RATE_LIMIT, &c.rate_limit_api, err,
                        errlen)) != CC_OK)
        return rc;
    if ((rc = env_int32("RATE_LIMIT_AUTH", 5, 1, MAX_RATE_LIMIT, &c.rate_limit_auth, err,
                        errlen)) != CC_OK)
        return rc;
    if ((rc = env_int("RATE_LIMIT_WINDOW_S", 900, 1, MAX_DURATION_S, &c.rate_limit_window_s, err,
                      errlen)) != CC_OK)
        return rc;
    if ((rc = env_bool("INGEST_FSYNC", 0, &c.ingest_fsync, err, errlen)) != CC_OK)
        return rc;
    if ((rc = env_int32("INGEST_STANDBY_POLL_MS", INGEST_STANDBY_POLL_MS_DEFAULT, 50, 60000,
                        &c.ingest_standby_poll_ms, err, errlen)) != CC_OK)
        return rc;
    if ((rc = env_int32("INGEST_LEASE_TIMEOUT_MS", INGEST_LEASE_TIMEOUT_MS_DEFAULT, 0, 3600000,
                        &c.ingest_lease_timeout_ms, err, errlen)) != CC_OK)
        return rc;
    v = env("INGEST_ACK");
    if (v != NULL) {
        if (strcmp(v, "journal") == 0)
            c.ingest_ack_commit = 0;
        else if (strcmp(v, "commit") == 0)
            c.ingest_ack_commit = 1;
        else
            return fail_msg(err, errlen, "INGEST_ACK: must be journal or commit");
    }
    /* The active checks its lease once per poll: a timeout under three polls would end a
     * healthy active's session between two checks. */
    if (c.ingest_lease_timeout_ms != 0 &&
        c.ingest_lease_timeout_ms < 3 * c.ingest_standby_poll_ms) {
        return fail_msg(err, errlen,
                        "INGEST_LEASE_TIMEOUT_MS: must be 0 or at least 3 x "
                        "INGEST_STANDBY_POLL_MS");
    }
    if ((rc = env_bool("TRUST_PROXY", 0, &c.trust_proxy, err, errlen)) != CC_OK)
        return rc;
    if ((rc = env_str("CORS_ORIGINS", "", c.cors_origins, sizeof(c.cors_origins), err, errlen)) !=
        CC_OK)
        return rc;
    if ((rc = check_cors(c.cors_origins, err, errlen)) != CC_OK)
        return rc;
    /* A ping unanswered by the next one ends the feed, 5 s later at most: 50 keeps that
     * within SPEC §5's 60 s. */
    if ((rc = env_int32("WS_PING_INTERVAL_S", 20, 1, 50, &c.ws_ping_interval_s, err, errlen)) !=
        CC_OK)
        return rc;
    /* Replies on devices/{serial}/errors per device: the broker queues what a device does
     * not read, so each device gets a bucket of them (cc_errcap.h). */
    if ((rc = env_int32("INGEST_ERROR_REPLY_BURST", CC_ERRCAP_BURST_DEFAULT, 1, CC_ERRCAP_BURST_MAX,
                        &c.ingest_error_reply_burst, err, errlen)) != CC_OK)
        return rc;
    if ((rc = env_int32("INGEST_ERROR_REPLIES_PER_MIN", CC_ERRCAP_PER_MIN_DEFAULT, 1,
                        CC_ERRCAP_PER_MIN_MAX, &c.ingest_error_replies_per_min, err, errlen)) !=
        CC_OK)
        return rc;

    *cfg = c;
    return CC_OK;
}

int cc_config_db_is_url(const struct cc_config *cfg)
{
    return cfg != NULL && (strncmp(cfg->db_path, "postgresql://", 13) == 0 ||
                           strncmp(cfg->db_path, "postgres://", 11) == 0);
}

void cc_config_db_display(const struct cc_config *cfg, char *out, size_t outlen)
{
    const char *p, *at, *colon, *scheme_end;
    size_t o = 0;

    if (out == NULL || outlen == 0)
        return;
    out[0] = '\0';
    if (cfg == NULL)
        return;
    p = cfg->db_path;
    if (!cc_config_db_is_url(cfg)) {
        snprintf(out, outlen, "%s", p);
        return;
    }
    /* scheme://[user[:password]@]host...[?...password=secret&...] */
    scheme_end = strstr(p, "://") + 3;
    at = strchr(scheme_end, '@');
    colon = strchr(scheme_end, ':');
    if (at != NULL && (strchr(scheme_end, '/') == NULL || at < strchr(scheme_end, '/')) &&
        colon != NULL && colon < at) {
        o = (size_t)snprintf(out, outlen, "%.*s***%s", (int)(colon + 1 - p), p, at);
    } else {
        o = (size_t)snprintf(out, outlen, "%s", p);
    }
    if (o >= outlen)
        o = outlen - 1;
    /* Any "password=" parameter: its value up to the next '&' becomes ***. */
    for (char *q = strstr(out, "password="); q != NULL; q = strstr(q, "password=")) {
        char *v = q + 9, *end = strchr(v, '&');
        size_t tail = end ? strlen(end) : 0;

        if (v + 3 + tail >= out + outlen) {
            /* No room to keep what follows: cut the text here rather than show the value. */
            if (v + 3 < out + outlen) {
                memcpy(v, "***", 3);
                v[3] = '\0';
            } else {
                *v = '\0';
            }
            break;
        }
        memmove(v + 3, end ? end : v + strlen(v), tail + 1);
        memcpy(v, "***", 3);
        q = v + 3;
    }
}

void cc_config_data_dir(const struct cc_config *cfg, char *out, size_t outlen)
{
    const char *slash;
    size_t n;

    if (out == NULL || outlen == 0)
        return;
    if (cfg != NULL && cfg->data_dir[0] != '\0') {
        snprintf(out, outlen, "%s", cfg->data_dir);
        if (strlen(cfg->data_dir) >= outlen)
            out[0] = '\0'; /* an empty dir fails loudly later; a cut one would not */
        return;
    }
    if (cc_config_db_is_url(cfg)) {
        snprintf(out, outlen, "%s", outlen > 4 ? "data" : "");
        return;
    }
    slash = cfg ? strrchr(cfg->db_path, '/') : NULL;
    if (slash == NULL) {
        if (outlen < 2)
            out[0] = '\0';
        else
            memcpy(out, ".", 2);
        return;
    }
    n = (size_t)(slash - cfg->db_path);
    if (n == 0)
        n = 1; /* "/x.db" lives in "/" */
    if (n >= outlen) {
        out[0] = '\0'; /* an empty dir fails loudly later; a cut one would not */
        return;
    }
    memcpy(out, cfg->db_path, n);
    out[n] = '\0';
}

/* mkdir -p for dir, new levels mode 0750. */
static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char saved = tmp[i];

            tmp[i] = '\0';
            if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
                return -1;
            tmp[i] = saved;
        }
    }
    return 0;
}

enum secret_state { SECRET_READ, SECRET_MISSING, SECRET_EMPTY, SECRET_BAD };

/* Reads the whole secret file into buf[buflen] without its trailing newline(s).
 * Returns CC_OK, CC_ERR_CONFIG (empty, too long, NUL byte) or CC_ERR_IO, and says
 * which in *state (missing and empty matter to the creator race below). */
static int read_secret_once(const char *path, char *buf, size_t buflen, enum secret_state *state,
                            char *err, size_t errlen)
{
    char data[SECRET_FILE_MAX + 1];
    size_t len = 0;
    int fd, rc;
    struct stat st;

    *state = SECRET_BAD;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            *state = SECRET_MISSING;
        fail_msg(err, errlen, "%s: %s", path, strerror(errno));
        return CC_ERR_IO;
    }
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
        cc_log_warn("secret_file_mode", "%s is readable by group or others; chmod 600 it", path);
    for (;;) {
        ssize_t r = read(fd, data + len, sizeof(data) - len);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = CC_ERR_IO;
            fail_msg(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == sizeof(data)) {
            rc = fail_msg(err, errlen, "%s: larger than %d bytes", path, SECRET_FILE_MAX);
            goto out;
        }
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len == 0) {
        *state = SECRET_EMPTY;
        rc = fail_msg(err, errlen, "%s: empty", path);
        goto out;
    }
    if (memchr(data, '\0', len) != NULL || memchr(data, '\n', len) != NULL) {
        rc = fail_msg(err, errlen, "%s: must hold one line of text", path);
        goto out;
    }
    if (len >= buflen) {
        rc = fail_msg(err, errlen, "%s: secret too long (%zu bytes, at most %zu)", path, len,
                      buflen - 1);
        goto out;
    }
    memcpy(buf, data, len);
    buf[len] = '\0';
    *state = SECRET_READ;
    rc = CC_OK;
out:
    OPENSSL_cleanse(data, sizeof(data));
    close(fd);
    return rc;
}

/* read_secret_once, but an empty file is given a moment: another process may have
 * just created it with O_EXCL and not yet written it. An empty file that stays empty
 * is an error, never silently replaced. */
static int read_secret(const char *path, char *buf, size_t buflen, enum secret_state *state,
                       char *err, size_t errlen)
{
    struct timespec pause = {0, SECRET_RETRY_NS};
    int rc = CC_ERR_IO;

    for (int i = 0; i < SECRET_READ_RETRIES; i++) {
        rc = read_secret_once(path, buf, buflen, state, err, errlen);
        if (*state != SECRET_EMPTY)
            break;
        nanosleep(&pause, NULL);
    }
    return rc;
}

int cc_config_secret(const struct cc_config *cfg, const char *name, int create, char *value,
                     size_t valuelen, char *err, size_t errlen)
{
    char dir[PATH_MAX], path[PATH_MAX], secret[2 * SECRET_RANDOM_BYTES + 2];
    unsigned char raw[SECRET_RANDOM_BYTES];
    int fd = -1, rc, n;
    enum secret_state state;
    size_t len;

    if (cfg == NULL || name == NULL || value == NULL || valuelen == 0)
        return fail_msg(err, errlen, "internal: bad arguments to cc_config_secret");
    if (value[0] != '\0')
        return CC_OK; /* set from the environment */
    if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return fail_msg(err, errlen, "internal: bad secret name");

    cc_config_data_dir(cfg, dir, sizeof(dir));
    n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (dir[0] == '\0' || n < 0 || (size_t)n >= sizeof(path))
        return fail_msg(err, errlen, "COLDCHAIN_DB: path too long for %s", name);

    rc = read_secret(path, value, valuelen, &state, err, errlen);
    if (state != SECRET_MISSING)
        return rc;
    if (!create)
        return fail_msg(err, errlen, "%s: missing", path);

    if (mkdir_p(dir) != 0) {
        fail_msg(err, errlen, "%s: %s", dir, strerror(errno));
        return CC_ERR_IO;
    }
    if (cc_random_bytes(raw, sizeof(raw)) != CC_OK) {
        fail_msg(err, errlen, "%s: no random bytes", path);
        return CC_ERR_IO;
    }
    cc_hex_encode(raw, sizeof(raw), secret);
    OPENSSL_cleanse(raw, sizeof(raw));
    len = strlen(secret);
    if (len >= valuelen) {
        rc = fail_msg(err, errlen, "%s: value buffer too small", name);
        goto out;
    }

    /* O_EXCL: of two processes starting at once exactly one creates the file, and the
     * other reads what the first wrote (read_secret waits while it is still empty). */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        rc = read_secret(path, value, valuelen, &state, err, errlen);
        goto out;
    }
    if (fd < 0) {
        rc = CC_ERR_IO;
        fail_msg(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    secret[len] = '\n';
    {
        const char *p = secret;
        size_t left = len + 1;

        while (left > 0) {
            ssize_t w = write(fd, p, left);

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = CC_ERR_IO;
                fail_msg(err, errlen, "%s: %s", path, strerror(errno));
                goto out_unlink;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        rc = CC_ERR_IO;
        fail_msg(err, errlen, "%s: %s", path, strerror(errno));
        goto out_unlink;
    }
    fd = -1;
    memcpy(value, secret, len);
    value[len] = '\0';
    cc_log_info("secret_created", "generated %s (mode 0600)", path);
    rc = CC_OK;
    goto out;
out_unlink:
    /* A half-written secret would be read back as the real one by the next start. */
    unlink(path);
out:
    if (fd >= 0)
        close(fd);
    OPENSSL_cleanse(secret, sizeof(secret));
    return rc;
}
