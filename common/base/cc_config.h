/* cc_config.h - configuration from the environment (SPEC §6).
 *
 * cc_config_load reads every variable, checks it and fills a struct cc_config. A bad
 * value returns CC_ERR_CONFIG with a message naming the variable; the daemons print it
 * and exit with status 2. Call once at start, before threads (getenv is not
 * thread-safe against setenv). The struct holds secrets: never log it whole. */
#ifndef CC_CONFIG_H
#define CC_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define CC_CONFIG_STR 256
#define CC_CONFIG_URL 1024
/* Bytes of INGEST_SHARE_GROUP: the group is one topic level of every subscription
 * ($share/<group>/devices/+/readings), which ingestd's topic buffers size for. */
#define CC_INGEST_SHARE_GROUP_MAX 64
#define CC_INGEST_CLIENT_ID_MAX 127 /* bytes of INGEST_CLIENT_ID */

/* File names of the generated secrets beside the database (cc_config_secret). */
#define CC_SECRET_JWT "jwt.secret"
#define CC_SECRET_MQTT "mqtt.secret"

/* ingestd failover defaults (docs/scaling.md): a standby takes over within about one poll
 * of a killed active; a paused one loses the lease after the timeout. */
#define INGEST_STANDBY_POLL_MS_DEFAULT 1000
#define INGEST_LEASE_TIMEOUT_MS_DEFAULT 10000

struct cc_config {
    char db_path[PATH_MAX];            /* COLDCHAIN_DB, default data/coldchain.db, or a
                                        * postgresql:// URL (cc_config_db_is_url) */
    char data_dir[PATH_MAX];           /* COLDCHAIN_DATA_DIR: files beside the database
                                        * (journal, secrets); "" = the database's directory,
                                        * or data/ when COLDCHAIN_DB is a URL */
    char mqtt_url[CC_CONFIG_URL];      /* MQTT_URL, default tcp://127.0.0.1:<MQTT_PORT> */
    int mqtt_port;                     /* MQTT_PORT, default 1883 */
    char mqtt_username[CC_CONFIG_STR]; /* MQTT_USERNAME, default "ingestd" */
    char mqtt_password[CC_CONFIG_STR]; /* MQTT_PASSWORD, else <db dir>/mqtt.secret */
    /* INGEST_SHARE_GROUP: "" (default) subscribes plainly; a name makes ingestd one member of
     * the shared subscription $share/<name>/... (docs/scaling.md); no '/', '+' or '#'. */
    char ingest_share_group[CC_INGEST_SHARE_GROUP_MAX + 1];
    /* INGEST_CLIENT_ID, default "coldchain-ingestd": the broker session, the journal's name
     * and the key of the journal position in the database. */
    char ingest_client_id[CC_INGEST_CLIENT_ID_MAX + 1];
    int http_port;           /* HTTP_PORT, default 8080 */
    char http_bind[64];      /* HTTP_BIND, default 127.0.0.1 */
    int ingest_metrics_port; /* INGEST_METRICS_PORT, default 9101 */
    int ingest_fsync;        /* INGEST_FSYNC 0|1 (0): fdatasync the journal before acknowledging */
    /* ingestd failover (docs/scaling.md): how often a standby tries the lease and the active
     * checks it still holds it, and (PostgreSQL) how long the lease's session may stay
     * silent before PostgreSQL ends it, so a paused active loses it (0 = never). */
    int ingest_standby_poll_ms;  /* INGEST_STANDBY_POLL_MS, default 1000 (50..60000) */
    int ingest_lease_timeout_ms; /* INGEST_LEASE_TIMEOUT_MS, default 10000; 0 or >= 3 polls */
    /* INGEST_ACK journal|commit (journal): when ingestd acknowledges a read round, after its
     * journal (default) or only once the round is committed, so that nothing acknowledged
     * lives only in a journal another box cannot read (docs/scaling.md). */
    int ingest_ack_commit;
    int production;                     /* COLDCHAIN_ENV=production */
    char jwt_secret[CC_CONFIG_STR];     /* JWT_SECRET; required in production */
    int64_t access_token_ttl_s;         /* ACCESS_TOKEN_TTL_S, default 900 */
    int64_t refresh_token_ttl_s;        /* REFRESH_TOKEN_TTL_S, default 604800 */
    int64_t offline_after_s;            /* OFFLINE_AFTER_S, default 600 */
    int64_t escalate_after_s;           /* ESCALATE_AFTER_S, default 3600 */
    int log_level;                      /* LOG_LEVEL, default info (enum cc_log_level) */
    int log_json;                       /* LOG_FORMAT json (1) | text (0), default json */
    char webhook_url[CC_CONFIG_URL];    /* WEBHOOK_URL, empty = channel off */
    char webhook_secret[CC_CONFIG_STR]; /* WEBHOOK_SECRET */
    char smtp_url[CC_CONFIG_URL];       /* SMTP_URL, empty = channel off */
    char smtp_from[CC_CONFIG_STR];      /* SMTP_FROM */
    int daily_report_minute;            /* DAILY_REPORT_AT "HH:MM" UTC as minutes, default 5 */
    int raw_retention_days;             /* RAW_RETENTION_DAYS, default 400 */
    int rejected_retention_days;        /* REJECTED_RETENTION_DAYS, default 7 */
    int rate_limit_api;                 /* RATE_LIMIT_API, default 100 */
    int rate_limit_auth;                /* RATE_LIMIT_AUTH, default 5 */
    int64_t rate_limit_window_s;        /* RATE_LIMIT_WINDOW_S, default 900 */
    int trust_proxy;                    /* TRUST_PROXY 0|1 */
    char cors_origins[CC_CONFIG_URL];   /* CORS_ORIGINS, comma-separated, empty = none */
    int ws_ping_interval_s;             /* WS_PING_INTERVAL_S, default 20 (1..50) */
    int ingest_error_reply_burst;       /* INGEST_ERROR_REPLY_BURST, default 20 (cc_errcap.h) */
    int ingest_error_replies_per_min;   /* INGEST_ERROR_REPLIES_PER_MIN, default 6 */
};

/* Fills cfg from the environment. On a bad value returns CC_ERR_CONFIG and writes
 * "VARIABLE: what is wrong" into err. Secrets are not resolved here (see below). */
int cc_config_load(struct cc_config *cfg, char *err, size_t errlen);

/* Resolves a secret kept beside the database: if *value is empty, reads
 * <dir of db_path>/<name> (creating it, mode 0600, with 32 random bytes as hex when
 * missing and create is set). CC_OK, CC_ERR_CONFIG (message in err) or CC_ERR_IO. */
int cc_config_secret(const struct cc_config *cfg, const char *name, int create, char *value,
                     size_t valuelen, char *err, size_t errlen);

/* Where ingestd's journal and the generated secrets live: COLDCHAIN_DATA_DIR when set, else
 * the directory part of cfg->db_path ("." if none), else "data" for a database URL. */
void cc_config_data_dir(const struct cc_config *cfg, char *out, size_t outlen);
/* 1 if COLDCHAIN_DB names a PostgreSQL database (postgresql:// or postgres://), else 0. */
int cc_config_db_is_url(const struct cc_config *cfg);
/* cfg->db_path as logs may show it: a URL's password ("user:secret@" and a "password="
 * parameter) replaced by "***". Always NUL-terminated; cut to outlen - 1 bytes. */
void cc_config_db_display(const struct cc_config *cfg, char *out, size_t outlen);

#endif
