/* test_config.c - cc_config: defaults, strict parsing (every bad value names its
 * variable), production rules, and the secret files kept beside the database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_config.h"
#include "cc_errcap.h"
#include "cc_log.h"
#include "cc_rc.h"

static const char *const all_vars[] = {
    "COLDCHAIN_ENV",       "COLDCHAIN_DB",       "MQTT_URL",           "MQTT_PORT",
    "MQTT_USERNAME",       "MQTT_PASSWORD",      "HTTP_PORT",          "HTTP_BIND",
    "INGEST_METRICS_PORT", "JWT_SECRET",         "ACCESS_TOKEN_TTL_S", "REFRESH_TOKEN_TTL_S",
    "OFFLINE_AFTER_S",     "ESCALATE_AFTER_S",   "LOG_LEVEL",          "LOG_FORMAT",
    "WEBHOOK_URL",         "WEBHOOK_SECRET",     "SMTP_URL",           "SMTP_FROM",
    "DAILY_REPORT_AT",     "RAW_RETENTION_DAYS", "RATE_LIMIT_API",     "RATE_LIMIT_AUTH",
    "RATE_LIMIT_WINDOW_S", "TRUST_PROXY",        "CORS_ORIGINS",       "REJECTED_RETENTION_DAYS",
    "WS_PING_INTERVAL_S",  "INGEST_CLIENT_ID",   "COLDCHAIN_DATA_DIR", "INGEST_SHARE_GROUP",
};
/* The per-device cap on error replies (cc_errcap.h). */
static const char *const errcap_vars[] = {"INGEST_ERROR_REPLY_BURST",
                                          "INGEST_ERROR_REPLIES_PER_MIN"};

/* ingestd failover (docs/scaling.md). */
static const char *const failover_vars[] = {"INGEST_STANDBY_POLL_MS", "INGEST_LEASE_TIMEOUT_MS",
                                            "INGEST_ACK"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(failover_vars) / sizeof(failover_vars[0]); i++)
        unsetenv(failover_vars[i]);
    for (size_t i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++)
        unsetenv(all_vars[i]);
    for (size_t i = 0; i < sizeof(errcap_vars) / sizeof(errcap_vars[0]); i++)
        unsetenv(errcap_vars[i]);
}

static int setup_env(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

static int teardown_env(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

static void load_ok(struct cc_config *cfg)
{
    char err[256] = "";

    if (cc_config_load(cfg, err, sizeof(err)) != CC_OK)
        fail_msg("load failed: %s", err);
}

/* Sets var=value (alone, on a clean environment) and expects CC_ERR_CONFIG with an
 * error that starts with "var:" and a config struct left untouched. */
static void expect_bad(const char *var, const char *value)
{
    struct cc_config cfg, before;
    char err[512] = "";

    clear_env();
    setenv(var, value, 1);
    memset(&cfg, 0xA5, sizeof(cfg));
    memcpy(&before, &cfg, sizeof(cfg));
    if (cc_config_load(&cfg, err, sizeof(err)) != CC_ERR_CONFIG)
        fail_msg("%s='%s' was accepted", var, value);
    if (strncmp(err, var, strlen(var)) != 0 || err[strlen(var)] != ':')
        fail_msg("%s='%s': error does not name the variable: '%s'", var, value, err);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
    unsetenv(var);
}

static void expect_good(const char *var, const char *value, struct cc_config *cfg)
{
    char err[512] = "";

    clear_env();
    setenv(var, value, 1);
    if (cc_config_load(cfg, err, sizeof(err)) != CC_OK)
        fail_msg("%s='%s' rejected: %s", var, value, err);
    unsetenv(var);
}

static void test_config_defaults(void **state)
{
    (void)state;
    struct cc_config c;

    load_ok(&c);
    assert_string_equal(c.db_path, "data/coldchain.db");
    assert_string_equal(c.mqtt_url, "tcp://127.0.0.1:1883");
    assert_int_equal(c.mqtt_port, 1883);
    assert_string_equal(c.mqtt_username, "ingestd");
    assert_string_equal(c.mqtt_password, "");
    assert_int_equal(c.http_port, 8080);
    assert_string_equal(c.http_bind, "127.0.0.1");
    assert_int_equal(c.ingest_metrics_port, 9101);
    assert_int_equal(c.production, 0);
    assert_string_equal(c.jwt_secret, "");
    assert_int_equal(c.access_token_ttl_s, 900);
    assert_int_equal(c.refresh_token_ttl_s, 604800);
    assert_int_equal(c.offline_after_s, 600);
    assert_int_equal(c.escalate_after_s, 3600);
    assert_int_equal(c.log_level, CC_LOG_INFO);
    assert_int_equal(c.log_json, 1);
    assert_string_equal(c.webhook_url, "");
    assert_string_equal(c.webhook_secret, "");
    assert_string_equal(c.smtp_url, "");
    assert_string_equal(c.smtp_from, "");
    assert_int_equal(c.daily_report_minute, 5);
    assert_int_equal(c.raw_retention_days, 400);
    assert_int_equal(c.rejected_retention_days, 7);
    assert_int_equal(c.rate_limit_api, 100);
    assert_int_equal(c.rate_limit_auth, 5);
    assert_int_equal(c.rate_limit_window_s, 900);
    assert_int_equal(c.trust_proxy, 0);
    assert_string_equal(c.cors_origins, "");
    assert_int_equal(c.ws_ping_interval_s, 20);
}

static void test_config_empty_means_default(void **state)
{
    (void)state;
    struct cc_config c;

    for (size_t i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++)
        setenv(all_vars[i], "", 1);
    load_ok(&c);
    assert_int_equal(c.http_port, 8080);
    assert_string_equal(c.db_path, "data/coldchain.db");
    assert_int_equal(c.daily_report_minute, 5);
}

static void test_config_all_values_read(void **state)
{
    (void)state;
    struct cc_config c;

    setenv("COLDCHAIN_DB", "/var/lib/cc/x.db", 1);
    setenv("MQTT_URL", "ssl://broker.example:8883", 1);
    setenv("MQTT_USERNAME", "op", 1);
    setenv("MQTT_PASSWORD", "pw", 1);
    setenv("HTTP_PORT", "18080", 1);
    setenv("HTTP_BIND", "::1", 1);
    setenv("INGEST_METRICS_PORT", "19101", 1);
    setenv("JWT_SECRET", "dev-secret", 1);
    setenv("ACCESS_TOKEN_TTL_S", "60", 1);
    setenv("REFRESH_TOKEN_TTL_S", "120", 1);
    setenv("OFFLINE_AFTER_S", "30", 1);
    setenv("ESCALATE_AFTER_S", "90", 1);
    setenv("LOG_LEVEL", "debug", 1);
    setenv("LOG_FORMAT", "text", 1);
    setenv("WEBHOOK_URL", "https://hooks.example/x", 1);
    setenv("WEBHOOK_SECRET", "whs", 1);
    setenv("SMTP_URL", "smtps://mail.example:465", 1);
    setenv("SMTP_FROM", "alerts@example.com", 1);
    setenv("DAILY_REPORT_AT", "23:59", 1);
    setenv("RAW_RETENTION_DAYS", "30", 1);
    setenv("RATE_LIMIT_API", "1000", 1);
    setenv("RATE_LIMIT_AUTH", "50", 1);
    setenv("RATE_LIMIT_WINDOW_S", "60", 1);
    setenv("TRUST_PROXY", "1", 1);
    setenv("CORS_ORIGINS", "https://a.example, http://localhost:3000", 1);
    load_ok(&c);
    assert_string_equal(c.db_path, "/var/lib/cc/x.db");
    assert_string_equal(c.mqtt_url, "ssl://broker.example:8883");
    assert_string_equal(c.mqtt_username, "op");
    assert_string_equal(c.mqtt_password, "pw");
    assert_int_equal(c.http_port, 18080);
    assert_string_equal(c.http_bind, "::1");
    assert_int_equal(c.ingest_metrics_port, 19101);
    assert_string_equal(c.jwt_secret, "dev-secret");
    assert_int_equal(c.access_token_ttl_s, 60);
    assert_int_equal(c.refresh_token_ttl_s, 120);
    assert_int_equal(c.offline_after_s, 30);
    assert_int_equal(c.escalate_after_s, 90);
    assert_int_equal(c.log_level, CC_LOG_DEBUG);
    assert_int_equal(c.log_json, 0);
    assert_string_equal(c.webhook_url, "https://hooks.example/x");
    assert_string_equal(c.webhook_secret, "whs");
    assert_string_equal(c.smtp_url, "smtps://mail.example:465");
    assert_string_equal(c.smtp_from, "alerts@example.com");
    assert_int_equal(c.daily_report_minute, 23 * 60 + 59);
    assert_int_equal(c.raw_retention_days, 30);
    assert_int_equal(c.rate_limit_api, 1000);
    assert_int_equal(c.rate_limit_auth, 50);
    assert_int_equal(c.rate_limit_window_s, 60);
    assert_int_equal(c.trust_proxy, 1);
    assert_string_equal(c.cors_origins, "https://a.example, http://localhost:3000");
}

static void test_config_mqtt_url_follows_port(void **state)
{
    (void)state;
    struct cc_config c;

    expect_good("MQTT_PORT", "11883", &c);
    assert_int_equal(c.mqtt_port, 11883);
    assert_string_equal(c.mqtt_url, "tcp://127.0.0.1:11883");
    /* an explicit MQTT_URL wins */
    setenv("MQTT_PORT", "11883", 1);
    setenv("MQTT_URL", "tcp://10.0.0.1:1884", 1);
    load_ok(&c);
    assert_string_equal(c.mqtt_url, "tcp://10.0.0.1:1884");
}

static void test_config_integer_bad_values_name_variable(void **state)
{
    (void)state;
    static const char *const int_vars[] = {
        "MQTT_PORT",           "HTTP_PORT",       "INGEST_METRICS_PORT", "ACCESS_TOKEN_TTL_S",
        "REFRESH_TOKEN_TTL_S", "OFFLINE_AFTER_S", "ESCALATE_AFTER_S",    "RAW_RETENTION_DAYS",
        "RATE_LIMIT_API",      "RATE_LIMIT_AUTH", "RATE_LIMIT_WINDOW_S", "REJECTED_RETENTION_DAYS",
        "WS_PING_INTERVAL_S",
    };
    static const char *const bad[] = {
        "abc", "12abc", " 12", "12 ", "+12", "0x10",
        "1e3", "-1",    "0",   "1.5", "-",   "99999999999999999999999",
    };

    for (size_t v = 0; v < sizeof(int_vars) / sizeof(int_vars[0]); v++)
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++)
            expect_bad(int_vars[v], bad[b]);
}

static void test_config_port_bounds(void **state)
{
    (void)state;
    static const char *const ports[] = {"MQTT_PORT", "HTTP_PORT", "INGEST_METRICS_PORT"};
    struct cc_config c;

    for (size_t i = 0; i < 3; i++) {
        expect_good(ports[i], "1", &c);
        expect_good(ports[i], "65535", &c);
        expect_bad(ports[i], "0");
        expect_bad(ports[i], "65536");
    }
    expect_good("HTTP_PORT", "65535", &c);
    assert_int_equal(c.http_port, 65535);
}

/* WS_PING_INTERVAL_S: 1..50, so that an unanswered ping ends a feed within SPEC §5's 60 s. */
static void test_config_ws_ping_interval_bounds(void **state)
{
    (void)state;
    struct cc_config c;

    expect_good("WS_PING_INTERVAL_S", "1", &c);
    assert_int_equal(c.ws_ping_interval_s, 1);
    expect_good("WS_PING_INTERVAL_S", "50", &c);
    assert_int_equal(c.ws_ping_interval_s, 50);
    expect_bad("WS_PING_INTERVAL_S", "51");
    expect_bad("WS_PING_INTERVAL_S", "0");
}

/* INGEST_CLIENT_ID must start with the operators' prefix, which no device serial may have: with
 * any other value a customer could create a device with that serial (a device's client id is
 * its serial) and take over ingestd's persistent session. */
static void test_config_ingest_client_id_operator_prefix(void **state)
{
    (void)state;
    struct cc_config c;
    char longest[129];

    expect_good("INGEST_CLIENT_ID", "coldchain-ingestd", &c);
    expect_good("INGEST_CLIENT_ID", "coldchain-ingestd-site2", &c);
    expect_good("INGEST_CLIENT_ID", "COLDCHAIN-ingestd", &c); /* the prefix ignores case */
    expect_bad("INGEST_CLIENT_ID", "ingestd");
    expect_bad("INGEST_CLIENT_ID", "CC-FRZ-0001");
    expect_bad("INGEST_CLIENT_ID", "my-coldchain-ingestd");
    expect_bad("INGEST_CLIENT_ID", "coldchain");
    expect_bad("INGEST_CLIENT_ID", "coldchain-in/gestd");
    expect_bad("INGEST_CLIENT_ID", "coldchain-#");
    expect_bad("INGEST_CLIENT_ID", "coldchain-\tx");
    memset(longest, 'x', sizeof(longest) - 1);
    memcpy(longest, "coldchain-", 10);
    longest[127] = '\0'; /* ingestd's client id holds 127 bytes */
    expect_good("INGEST_CLIENT_ID", longest, &c);
    longest[127] = 'x';
    longest[128] = '\0';
    expect_bad("INGEST_CLIENT_ID", longest);
}

/* INGEST_SHARE_GROUP is one topic level of ingestd's subscriptions: empty (a plain
 * subscription) by default, no wildcard or level separator, at most
 * CC_INGEST_SHARE_GROUP_MAX bytes. */
static void test_config_ingest_share_group(void **state)
{
    (void)state;
    struct cc_config c;
    char longest[CC_INGEST_SHARE_GROUP_MAX + 2];

    clear_env();
    assert_int_equal(cc_config_load(&c, NULL, 0), CC_OK);
    assert_string_equal(c.ingest_share_group, "");
    expect_good("INGEST_SHARE_GROUP", "coldchain", &c);
    assert_string_equal(c.ingest_share_group, "coldchain");
    expect_bad("INGEST_SHARE_GROUP", "cold/chain");
    expect_bad("INGEST_SHARE_GROUP", "cold+");
    expect_bad("INGEST_SHARE_GROUP", "#");
    expect_bad("INGEST_SHARE_GROUP", "cold\tchain");
    memset(longest, 'g', sizeof(longest) - 1);
    longest[CC_INGEST_SHARE_GROUP_MAX] = '\0';
    expect_good("INGEST_SHARE_GROUP", longest, &c);
    assert_int_equal(strlen(c.ingest_share_group), CC_INGEST_SHARE_GROUP_MAX);
    longest[CC_INGEST_SHARE_GROUP_MAX] = 'g';
    longest[CC_INGEST_SHARE_GROUP_MAX + 1] = '\0';
    expect_bad("INGEST_SHARE_GROUP", longest);
}

static void test_config_duration_bounds(void **state)
{
    (void)state;
    struct cc_config c;

    expect_good("OFFLINE_AFTER_S", "1", &c);
    assert_int_equal(c.offline_after_s, 1);
    expect_good("ESCALATE_AFTER_S", "315360000", &c);
    expect_bad("ESCALATE_AFTER_S", "315360001");
    expect_good("RAW_RETENTION_DAYS", "36500", &c);
    expect_bad("RAW_RETENTION_DAYS", "36501");
    expect_good("REJECTED_RETENTION_DAYS", "1", &c);
    assert_int_equal(c.rejected_retention_days, 1);
    expect_good("REJECTED_RETENTION_DAYS", "36500", &c);
    expect_bad("REJECTED_RETENTION_DAYS", "36501");
    expect_bad("RATE_LIMIT_API", "1000001");
}

/* INGEST_ERROR_REPLY_BURST / INGEST_ERROR_REPLIES_PER_MIN: never 0 (which would silence a
 * device's errors for good), never past the module's maxima, whole numbers only. */
static void test_config_error_reply_cap(void **state)
{
    (void)state;
    struct cc_config c;
    static const char *const bad[] = {"abc", "-1", "0", "1.5", " 6", "0x10"};

    load_ok(&c);
    assert_int_equal(c.ingest_error_reply_burst, CC_ERRCAP_BURST_DEFAULT);
    assert_int_equal(c.ingest_error_replies_per_min, CC_ERRCAP_PER_MIN_DEFAULT);
    expect_good("INGEST_ERROR_REPLY_BURST", "1", &c);
    assert_int_equal(c.ingest_error_reply_burst, 1);
    expect_good("INGEST_ERROR_REPLY_BURST", "100000", &c);
    expect_bad("INGEST_ERROR_REPLY_BURST", "100001");
    expect_good("INGEST_ERROR_REPLIES_PER_MIN", "60000", &c);
    assert_int_equal(c.ingest_error_replies_per_min, 60000);
    expect_bad("INGEST_ERROR_REPLIES_PER_MIN", "60001");
    for (size_t v = 0; v < sizeof(errcap_vars) / sizeof(errcap_vars[0]); v++)
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++)
            expect_bad(errcap_vars[v], bad[b]);
}

static void test_config_refresh_not_shorter_than_access(void **state)
{
    (void)state;
    struct cc_config c;
    char err[256] = "";

    setenv("ACCESS_TOKEN_TTL_S", "1000", 1);
    setenv("REFRESH_TOKEN_TTL_S", "999", 1);
    assert_int_equal(cc_config_load(&c, err, sizeof(err)), CC_ERR_CONFIG);
    assert_int_equal(strncmp(err, "REFRESH_TOKEN_TTL_S:", 20), 0);
    setenv("REFRESH_TOKEN_TTL_S", "1000", 1);
    load_ok(&c);
}

static void test_config_booleans(void **state)
{
    (void)state;
    struct cc_config c;

    expect_good("TRUST_PROXY", "0", &c);
    assert_int_equal(c.trust_proxy, 0);
    expect_good("TRUST_PROXY", "1", &c);
    assert_int_equal(c.trust_proxy, 1);
    expect_bad("TRUST_PROXY", "2");
    expect_bad("TRUST_PROXY", "yes");
    expect_bad("TRUST_PROXY", "true");
    expect_bad("TRUST_PROXY", "01");
    expect_bad("TRUST_PROXY", " 1");
}

static void test_config_daily_report_at(void **state)
{
    (void)state;
    struct cc_config c;
    static const char *const bad[] = {"24:00",  "23:60", "7:05",  "07:5",     "0705",
                                      "07:05 ", "ab:cd", "07-05", "07:05:00", "-1:00"};

    expect_good("DAILY_REPORT_AT", "00:00", &c);
    assert_int_equal(c.daily_report_minute, 0);
    expect_good("DAILY_REPORT_AT", "07:30", &c);
    assert_int_equal(c.daily_report_minute, 450);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad("DAILY_REPORT_AT", bad[i]);
}

static void test_config_log_settings(void **state)
{
    (void)state;
    struct cc_config c;

    expect_good("LOG_LEVEL", "warn", &c);
    assert_int_equal(c.log_level, CC_LOG_WARN);
    expect_good("LOG_LEVEL", "error", &c);
    assert_int_equal(c.log_level, CC_LOG_ERROR);
    expect_bad("LOG_LEVEL", "loud");
    expect_bad("LOG_LEVEL", "3");
    expect_good("LOG_FORMAT", "json", &c);
    assert_int_equal(c.log_json, 1);
    expect_good("LOG_FORMAT", "text", &c);
    assert_int_equal(c.log_json, 0);
    expect_bad("LOG_FORMAT", "xml");
    expect_bad("LOG_FORMAT", "JSON ");
}

static void test_config_mqtt_url_rules(void **state)
{
    (void)state;
    struct cc_config c;
    static const char *const good[] = {"tcp://localhost", "tcp://127.0.0.1:1",
                                       "ssl://b.example:8883", "tcp://[::1]:1883", "tcp://[::1]"};
    static const char *const bad[] = {"http://127.0.0.1:1883",
                                      "127.0.0.1:1883",
                                      "tcp://",
                                      "tcp://:1883",
                                      "tcp://host:",
                                      "tcp://host:0",
                                      "tcp://host:65536",
                                      "tcp://host:99999999999",
                                      "tcp://host:12a",
                                      "tcp://host/path",
                                      "tcp://ho st",
                                      "TCP://host",
                                      "mqtt://host"};

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        expect_good("MQTT_URL", good[i], &c);
        assert_string_equal(c.mqtt_url, good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad("MQTT_URL", bad[i]);
}

static void test_config_other_urls(void **state)
{
    (void)state;
    struct cc_config c;

    expect_good("WEBHOOK_URL", "http://127.0.0.1:9000/hook", &c);
    expect_bad("WEBHOOK_URL", "ftp://x");
    expect_bad("WEBHOOK_URL", "https://");
    expect_bad("WEBHOOK_URL", "hooks.example");
    expect_bad("SMTP_URL", "http://mail");
    /* SMTP_URL alone is refused, naming the variable that is missing */
    setenv("SMTP_URL", "smtp://mail", 1);
    {
        char err[256] = "";

        assert_int_equal(cc_config_load(&c, err, sizeof(err)), CC_ERR_CONFIG);
        assert_int_equal(strncmp(err, "SMTP_FROM:", 10), 0);
    }
    setenv("SMTP_FROM", "a@b", 1);
    setenv("SMTP_URL", "smtp://mail:25", 1);
    load_ok(&c);
    expect_bad("SMTP_FROM", "not-an-address");
}

static void test_config_long_values_rejected_not_truncated(void **state)
{
    (void)state;
    char big[CC_CONFIG_URL + 16];
    char path[PATH_MAX + 16];
    struct cc_config c;

    /* exactly the limit minus the NUL fits; one more byte is an error */
    memcpy(big, "http://", 7);
    memset(big + 7, 'a', sizeof(big) - 7);
    big[CC_CONFIG_URL - 1] = '\0';
    expect_good("WEBHOOK_URL", big, &c);
    assert_int_equal(strlen(c.webhook_url), CC_CONFIG_URL - 1);
    big[CC_CONFIG_URL - 1] = 'a';
    big[CC_CONFIG_URL] = '\0';
    expect_bad("WEBHOOK_URL", big);
    memcpy(big, "tcp://", 6);
    expect_bad("MQTT_URL", big);
    memcpy(big, "smtp://", 7);
    expect_bad("SMTP_URL", big);
    memset(big, 'a', CC_CONFIG_STR);
    big[CC_CONFIG_STR] = '\0';
    expect_bad("JWT_SECRET", big);
    expect_bad("MQTT_PASSWORD", big);
    expect_bad("MQTT_USERNAME", big);
    expect_bad("WEBHOOK_SECRET", big);
    expect_bad("SMTP_FROM", big);
    memset(path, 'a', sizeof(path) - 1);
    path[PATH_MAX] = '\0';
    expect_bad("COLDCHAIN_DB", path);
}

static void test_config_http_bind(void **state)
{
    (void)state;
    struct cc_config c;

    expect_good("HTTP_BIND", "0.0.0.0", &c);
    expect_good("HTTP_BIND", "::", &c);
    expect_bad("HTTP_BIND", "localhost");
    expect_bad("HTTP_BIND", "256.0.0.1");
    expect_bad("HTTP_BIND", "127.0.0.1:80");
    expect_bad("HTTP_BIND", "0123456789012345678901234567890123456789012345678901234567890123");
}

static void test_config_control_chars_rejected(void **state)
{
    (void)state;
    expect_bad("MQTT_USERNAME", "op\nX");
    expect_bad("COLDCHAIN_DB", "data/x\t.db");
}

static void test_config_cors(void **state)
{
    (void)state;
    struct cc_config c;

    expect_good("CORS_ORIGINS", "*", &c);
    expect_good("CORS_ORIGINS", "https://a.example,https://b.example", &c);
    expect_bad("CORS_ORIGINS", "a.example");
    expect_bad("CORS_ORIGINS", "https://a.example,");
    expect_bad("CORS_ORIGINS", ",https://a.example");
    expect_bad("CORS_ORIGINS", "https://a.example,,https://b.example");
    expect_bad("CORS_ORIGINS", "https://a .example");
}

static void test_config_environment_name(void **state)
{
    (void)state;
    struct cc_config c;

    expect_good("COLDCHAIN_ENV", "development", &c);
    assert_int_equal(c.production, 0);
    expect_good("COLDCHAIN_ENV", "test", &c);
    expect_bad("COLDCHAIN_ENV", "prod");
    expect_bad("COLDCHAIN_ENV", "Production");
}

static void test_config_production_requires_jwt_secret(void **state)
{
    (void)state;
    struct cc_config c;
    char err[256] = "";

    setenv("COLDCHAIN_ENV", "production", 1);
    assert_int_equal(cc_config_load(&c, err, sizeof(err)), CC_ERR_CONFIG);
    assert_int_equal(strncmp(err, "JWT_SECRET:", 11), 0);
    setenv("JWT_SECRET", "0123456789abcdef0123456789abcde", 1); /* 31 chars */
    assert_int_equal(cc_config_load(&c, err, sizeof(err)), CC_ERR_CONFIG);
    assert_int_equal(strncmp(err, "JWT_SECRET:", 11), 0);
    assert_null(strstr(err, "0123456789abcdef"));                /* the secret is never echoed */
    setenv("JWT_SECRET", "0123456789abcdef0123456789abcdef", 1); /* 32 chars */
    load_ok(&c);
    assert_int_equal(c.production, 1);
    assert_string_equal(c.jwt_secret, "0123456789abcdef0123456789abcdef");
}

/* .env.example's placeholders are public: production refuses them, naming the variable. */
static void test_config_production_refuses_placeholders(void **state)
{
    (void)state;
    struct cc_config c;
    char err[256] = "";

    setenv("COLDCHAIN_ENV", "production", 1);
    setenv("JWT_SECRET", "change-me-to-at-least-32-random-characters", 1);
    assert_int_equal(cc_config_load(&c, err, sizeof(err)), CC_ERR_CONFIG);
    assert_int_equal(strncmp(err, "JWT_SECRET:", 11), 0);
    assert_null(strstr(err, "random-characters")); /* the secret is never echoed */
    setenv("JWT_SECRET", "CHANGE-ME-and-then-some-more-characters-here", 1);
    assert_int_equal(cc_config_load(&c, err, sizeof(err)), CC_ERR_CONFIG);
    setenv("JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
    setenv("MQTT_PASSWORD", "change-me", 1);
    assert_int_equal(cc_config_load(&c, err, sizeof(err)), CC_ERR_CONFIG);
    assert_int_equal(strncmp(err, "MQTT_PASSWORD:", 14), 0);
    setenv("MQTT_PASSWORD", "a-real-random-password", 1);
    load_ok(&c);
    unsetenv("COLDCHAIN_ENV");
    setenv("MQTT_PASSWORD", "change-me", 1); /* development: the example works as it is */
    load_ok(&c);
}

static void test_config_short_secret_ok_outside_production(void **state)
{
    (void)state;
    struct cc_config c;

    expect_good("JWT_SECRET", "short", &c);
    assert_int_equal(c.production, 0);
}

static void test_config_null_err_buffer(void **state)
{
    (void)state;
    struct cc_config c;

    setenv("HTTP_PORT", "nope", 1);
    assert_int_equal(cc_config_load(&c, NULL, 0), CC_ERR_CONFIG);
    assert_int_equal(cc_config_load(NULL, NULL, 0), CC_ERR_CONFIG);
}

static void test_config_data_dir(void **state)
{
    (void)state;
    static const struct {
        const char *db;
        const char *dir;
    } cases[] = {
        {"data/coldchain.db", "data"}, {"coldchain.db", "."}, {"/x.db", "/"},
        {"/a/b/c.db", "/a/b"},         {"./c.db", "."},
    };
    struct cc_config c;
    char out[PATH_MAX], tiny[3];

    memset(&c, 0, sizeof(c));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strcpy(c.db_path, cases[i].db);
        cc_config_data_dir(&c, out, sizeof(out));
        assert_string_equal(out, cases[i].dir);
    }
    strcpy(c.db_path, "/a/b/c.db");
    cc_config_data_dir(&c, tiny, sizeof(tiny));
    assert_string_equal(tiny, ""); /* never a silently cut directory */
}

/* A fresh temporary directory; db_path points into a not-yet-existing subdirectory. */
static void temp_cfg(struct cc_config *c, char *root, size_t rootlen)
{
    snprintf(root, rootlen, "/tmp/cc_test_config_XXXXXX");
    assert_non_null(mkdtemp(root));
    memset(c, 0, sizeof(*c));
    snprintf(c->db_path, sizeof(c->db_path), "%s/sub/dir/coldchain.db", root);
}

static void remove_tree(const char *root)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

static void write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(data, f);
    fclose(f);
}

static void test_config_secret_created_and_reused(void **state)
{
    (void)state;
    struct cc_config c;
    char root[64], path[PATH_MAX], v1[CC_CONFIG_STR] = "", v2[CC_CONFIG_STR] = "";
    char err[256];
    struct stat st;

    temp_cfg(&c, root, sizeof(root));
    assert_int_equal(cc_config_secret(&c, CC_SECRET_JWT, 1, v1, sizeof(v1), err, sizeof(err)),
                     CC_OK);
    assert_int_equal(strlen(v1), 64);
    assert_int_equal(strspn(v1, "0123456789abcdef"), 64);
    snprintf(path, sizeof(path), "%s/sub/dir/%s", root, CC_SECRET_JWT);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 65); /* 64 hex + newline */
    assert_int_equal(cc_config_secret(&c, CC_SECRET_JWT, 1, v2, sizeof(v2), err, sizeof(err)),
                     CC_OK);
    assert_string_equal(v1, v2);
    /* a second name gets a different secret */
    v2[0] = '\0';
    assert_int_equal(cc_config_secret(&c, CC_SECRET_MQTT, 1, v2, sizeof(v2), err, sizeof(err)),
                     CC_OK);
    assert_string_not_equal(v1, v2);
    remove_tree(root);
}

static void test_config_secret_env_value_wins(void **state)
{
    (void)state;
    struct cc_config c;
    char root[64], path[PATH_MAX], v[CC_CONFIG_STR] = "from-env", err[256];

    temp_cfg(&c, root, sizeof(root));
    assert_int_equal(cc_config_secret(&c, CC_SECRET_JWT, 1, v, sizeof(v), err, sizeof(err)), CC_OK);
    assert_string_equal(v, "from-env");
    snprintf(path, sizeof(path), "%s/sub/dir/%s", root, CC_SECRET_JWT);
    assert_int_equal(access(path, F_OK), -1); /* nothing created */
    remove_tree(root);
}

static void test_config_secret_missing_without_create(void **state)
{
    (void)state;
    struct cc_config c;
    char root[64], v[CC_CONFIG_STR] = "", err[256] = "";

    temp_cfg(&c, root, sizeof(root));
    assert_int_equal(cc_config_secret(&c, CC_SECRET_MQTT, 0, v, sizeof(v), err, sizeof(err)),
                     CC_ERR_CONFIG);
    assert_non_null(strstr(err, CC_SECRET_MQTT));
    assert_string_equal(v, "");
    remove_tree(root);
}

static void test_config_secret_strips_newline(void **state)
{
    (void)state;
    struct cc_config c;
    char root[64], dir[PATH_MAX], path[PATH_MAX + 32], v[CC_CONFIG_STR] = "", err[256];

    temp_cfg(&c, root, sizeof(root));
    cc_config_data_dir(&c, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/sub", root);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/op.secret", dir);
    write_file(path, "s3cret\r\n\n");
    chmod(path, 0600);
    assert_int_equal(cc_config_secret(&c, "op.secret", 0, v, sizeof(v), err, sizeof(err)), CC_OK);
    assert_string_equal(v, "s3cret");
    remove_tree(root);
}

static void test_config_secret_bad_files(void **state)
{
    (void)state;
    struct cc_config c;
    char root[64], dir[PATH_MAX], path[PATH_MAX + 32], v[8] = "", err[256];

    temp_cfg(&c, root, sizeof(root));
    snprintf(c.db_path, sizeof(c.db_path), "%s/x.db", root);
    cc_config_data_dir(&c, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/s", dir);

    write_file(path, "\n");
    assert_int_equal(cc_config_secret(&c, "s", 1, v, sizeof(v), err, sizeof(err)),
                     CC_ERR_CONFIG); /* empty: never replaced behind the operator's back */
    write_file(path, "two\nlines\n");
    assert_int_equal(cc_config_secret(&c, "s", 1, v, sizeof(v), err, sizeof(err)), CC_ERR_CONFIG);
    write_file(path, "12345678"); /* 8 chars do not fit in v[8] */
    assert_int_equal(cc_config_secret(&c, "s", 1, v, sizeof(v), err, sizeof(err)), CC_ERR_CONFIG);
    assert_string_equal(v, "");
    write_file(path, "1234567");
    assert_int_equal(cc_config_secret(&c, "s", 1, v, sizeof(v), err, sizeof(err)), CC_OK);
    assert_string_equal(v, "1234567");

    /* bad names never escape the data directory */
    v[0] = '\0';
    assert_int_equal(cc_config_secret(&c, "../s", 1, v, sizeof(v), err, sizeof(err)),
                     CC_ERR_CONFIG);
    assert_int_equal(cc_config_secret(&c, "", 1, v, sizeof(v), err, sizeof(err)), CC_ERR_CONFIG);
    assert_int_equal(cc_config_secret(&c, "..", 1, v, sizeof(v), err, sizeof(err)), CC_ERR_CONFIG);
    remove_tree(root);
}

static void test_config_secret_value_too_small_for_generated(void **state)
{
    (void)state;
    struct cc_config c;
    char root[64], v[16] = "", err[256], path[PATH_MAX];

    temp_cfg(&c, root, sizeof(root));
    assert_int_equal(cc_config_secret(&c, "g", 1, v, sizeof(v), err, sizeof(err)), CC_ERR_CONFIG);
    assert_string_equal(v, "");
    snprintf(path, sizeof(path), "%s/sub/dir/g", root);
    assert_int_equal(access(path, F_OK), -1); /* no file left behind */
    remove_tree(root);
}

struct race_arg {
    const struct cc_config *cfg;
    char value[CC_CONFIG_STR];
    int rc;
};

static void *race_thread(void *p)
{
    struct race_arg *a = p;
    char err[256];

    a->value[0] = '\0';
    a->rc =
        cc_config_secret(a->cfg, CC_SECRET_JWT, 1, a->value, sizeof(a->value), err, sizeof(err));
    return NULL;
}

static void test_config_secret_concurrent_create_agrees(void **state)
{
    (void)state;
    struct cc_config c;
    char root[64];
    struct race_arg args[8];
    pthread_t th[8];

    temp_cfg(&c, root, sizeof(root));
    for (int i = 0; i < 8; i++) {
        args[i].cfg = &c;
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(args[i].rc, CC_OK);
        assert_string_equal(args[i].value, args[0].value);
    }
    remove_tree(root);
}

/* A PostgreSQL URL: the data directory is data/ (or COLDCHAIN_DATA_DIR), and what the
 * logs show of the URL never holds its password, in either place libpq takes one. */
static void test_config_db_url(void **state)
{
    struct cc_config cfg;
    char out[256];

    (void)state;
    setenv("COLDCHAIN_DB", "postgresql://app:s3cr3t@db.example:5432/coldchain?sslmode=require", 1);
    load_ok(&cfg);
    assert_true(cc_config_db_is_url(&cfg));
    cc_config_data_dir(&cfg, out, sizeof out);
    assert_string_equal(out, "data");
    cc_config_db_display(&cfg, out, sizeof out);
    assert_string_equal(out, "postgresql://app:***@db.example:5432/coldchain?sslmode=require");
    assert_null(strstr(out, "s3cr3t"));

    setenv("COLDCHAIN_DB", "postgres:///coldchain?host=/tmp/pg&password=hunter2&user=cc", 1);
    setenv("COLDCHAIN_DATA_DIR", "/var/lib/coldchain", 1);
    load_ok(&cfg);
    assert_true(cc_config_db_is_url(&cfg));
    cc_config_data_dir(&cfg, out, sizeof out);
    assert_string_equal(out, "/var/lib/coldchain");
    cc_config_db_display(&cfg, out, sizeof out);
    assert_string_equal(out, "postgres:///coldchain?host=/tmp/pg&password=***&user=cc");
    /* Too small to keep what follows the password: cut, never shown. */
    cc_config_db_display(&cfg, out, 50);
    assert_null(strstr(out, "hunter"));
    cc_config_db_display(&cfg, out, 45);
    assert_null(strstr(out, "hunter"));

    setenv("COLDCHAIN_DB", "/srv/cc/coldchain.db", 1);
    unsetenv("COLDCHAIN_DATA_DIR");
    load_ok(&cfg);
    assert_false(cc_config_db_is_url(&cfg));
    cc_config_data_dir(&cfg, out, sizeof out);
    assert_string_equal(out, "/srv/cc");
    cc_config_db_display(&cfg, out, sizeof out);
    assert_string_equal(out, "/srv/cc/coldchain.db");
}

/* INGEST_STANDBY_POLL_MS and INGEST_LEASE_TIMEOUT_MS: defaults, bounds, and a lease timeout
 * that a healthy active (one check per poll) cannot outlive. */
static void test_config_failover(void **state)
{
    struct cc_config c;
    char err[256] = "";

    (void)state;
    load_ok(&c);
    assert_int_equal(c.ingest_standby_poll_ms, INGEST_STANDBY_POLL_MS_DEFAULT);
    assert_int_equal(c.ingest_lease_timeout_ms, INGEST_LEASE_TIMEOUT_MS_DEFAULT);
    assert_int_equal(INGEST_STANDBY_POLL_MS_DEFAULT, 1000);
    assert_int_equal(INGEST_LEASE_TIMEOUT_MS_DEFAULT, 10000);
    expect_bad("INGEST_STANDBY_POLL_MS", "49");
    expect_bad("INGEST_STANDBY_POLL_MS", "60001");
    expect_bad("INGEST_LEASE_TIMEOUT_MS", "-1");
    expect_bad("INGEST_LEASE_TIMEOUT_MS", "3600001");
    expect_bad("INGEST_LEASE_TIMEOUT_MS", "2999"); /* under 3 x the default 1000 ms poll */
    expect_good("INGEST_STANDBY_POLL_MS", "50", &c);
    assert_int_equal(c.ingest_standby_poll_ms, 50);
    expect_good("INGEST_LEASE_TIMEOUT_MS", "0", &c); /* never */
    assert_int_equal(c.ingest_lease_timeout_ms, 0);
    expect_good("INGEST_LEASE_TIMEOUT_MS", "3000", &c);
    assert_int_equal(c.ingest_lease_timeout_ms, 3000);
    /* A slower poll against the default timeout: 4000 x 3 > 10000. */
    clear_env();
    setenv("INGEST_STANDBY_POLL_MS", "4000", 1);
    assert_int_equal(cc_config_load(&c, err, sizeof err), CC_ERR_CONFIG);
    assert_int_equal(strncmp(err, "INGEST_LEASE_TIMEOUT_MS:", 24), 0);
    setenv("INGEST_LEASE_TIMEOUT_MS", "0", 1);
    load_ok(&c);
    assert_int_equal(c.ingest_standby_poll_ms, 4000);
    /* INGEST_ACK: after the journal (default) or after the commit. */
    clear_env();
    load_ok(&c);
    assert_int_equal(c.ingest_ack_commit, 0);
    expect_good("INGEST_ACK", "commit", &c);
    assert_int_equal(c.ingest_ack_commit, 1);
    expect_good("INGEST_ACK", "journal", &c);
    assert_int_equal(c.ingest_ack_commit, 0);
    expect_bad("INGEST_ACK", "Commit");
    expect_bad("INGEST_ACK", "db");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup_env, teardown_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_config_defaults),
        T(test_config_db_url),
        T(test_config_empty_means_default),
        T(test_config_all_values_read),
        T(test_config_mqtt_url_follows_port),
        T(test_config_integer_bad_values_name_variable),
        T(test_config_port_bounds),
        T(test_config_ws_ping_interval_bounds),
        T(test_config_ingest_client_id_operator_prefix),
        T(test_config_ingest_share_group),
        T(test_config_duration_bounds),
        T(test_config_error_reply_cap),
        T(test_config_failover),
        T(test_config_refresh_not_shorter_than_access),
        T(test_config_booleans),
        T(test_config_daily_report_at),
        T(test_config_log_settings),
        T(test_config_mqtt_url_rules),
        T(test_config_other_urls),
        T(test_config_long_values_rejected_not_truncated),
        T(test_config_http_bind),
        T(test_config_control_chars_rejected),
        T(test_config_cors),
        T(test_config_environment_name),
        T(test_config_production_requires_jwt_secret),
        T(test_config_production_refuses_placeholders),
        T(test_config_short_secret_ok_outside_production),
        T(test_config_null_err_buffer),
        T(test_config_data_dir),
        T(test_config_secret_created_and_reused),
        T(test_config_secret_env_value_wins),
        T(test_config_secret_missing_without_create),
        T(test_config_secret_strips_newline),
        T(test_config_secret_bad_files),
        T(test_config_secret_value_too_small_for_generated),
        T(test_config_secret_concurrent_create_agrees),
    };

    /* the secret helpers log at info; keep the test output to cmocka's lines */
    cc_log_init("test_config", CC_LOG_ERROR, 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
