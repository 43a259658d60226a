/* main.c - apid: the HTTP API of SPEC §5 on civetweb.
 *
 * Start: configuration from the environment (a bad value: message naming the variable,
 * exit 2), the JWT secret (JWT_SECRET, else generated once beside the database outside
 * production), the database migrated once, then civetweb on HTTP_BIND:HTTP_PORT. civetweb
 * gives each connection a worker thread for as long as it takes to send its request, so
 * there is one worker per slow client we promise to survive (API_SLOW_CLIENTS_MAX) on
 * top of API_NUM_THREADS; the workers share API_DB_CONNS SQLite connections (dbpool.h).
 * SIGTERM or SIGINT stops the server after the requests in hand and exits 0. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "cc_jwt.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_wake.h"
#include "dbpool.h"

#define STR(x) #x
#define XSTR(x) STR(x)

/* SPEC §5: 1,000 connections trickling their request (or sending nothing) leave the
 * API answering. Each holds a civetweb worker until it has sent its request head or
 * API_REQUEST_TIMEOUT_MS has passed; beyond this many, new connections wait in the
 * accept queue (deploy/nginx caps connections per address in front of apid). */
#define API_SLOW_CLIENTS_MAX 1024
/* The whole request head must arrive within this (a trickling or silent client is
 * then closed); civetweb also applies it to each body read and each write. */
#define API_REQUEST_TIMEOUT_MS 5000
#define API_KEEP_ALIVE_TIMEOUT_MS 5000 /* idle time between requests on one connection */
#define API_CONN_QUEUE 64              /* accepted connections waiting for a free worker */
#define API_LISTEN_BACKLOG 1024        /* connections the kernel queues before accept */
#define API_FD_SPARE 128 /* descriptors besides sockets and pooled connections: logs, broker */
#define API_FD_PER_DB 3  /* a SQLite connection in WAL mode: database, -wal, -shm */
/* glibc's allocator is sized by GLIBC_TUNABLES only, read when the program starts: apid
 * executes itself again once with these added (exec_with_tunables; one an operator already
 * sets in GLIBC_TUNABLES is kept as given).
 *
 * tcache_count=0: glibc keeps a cache of freed blocks in every thread (tcache: up to 7
 * blocks of each of 64 sizes up to 1 KiB, about 235 KiB a thread) that counts as memory in
 * use and is only given back when its thread ends. civetweb hands each connection to the
 * worker that has waited longest, so under a steady load all of apid's 1,040 workers (which
 * never end) fill their own: make soak saw apid grow 73 -> 346 MB in 30 minutes. Freed
 * blocks now go back to the arenas, where any thread reuses them.
 *
 * arena_max: glibc gives threads up to 8 arenas per core (16 on 2 cores); memory freed in
 * one is reused only by the threads of that one, and each fragments on its own: with 16,
 * apid's arenas kept growing in make soak (README "Soak"). apid's work is short requests
 * and SQLite; API_MALLOC_ARENAS arenas keep lock waits rare on the cores we run on. */
#define API_MALLOC_ARENAS 2
static const char *const api_tunables[] = {
    "glibc.malloc.tcache_count=0",
    "glibc.malloc.arena_max=" XSTR(API_MALLOC_ARENAS),
};
#define API_TUNABLES_MAX 1024   /* longest GLIBC_TUNABLES value apid extends */
#define API_TUNABLE_NAME_MAX 64 /* longest "glibc.malloc.name=" in api_tunables */
/* Freed blocks at the end of an arena form its "top", given back to the kernel on a free
 * only when it exceeds M_TRIM_THRESHOLD: cc_store_tune_process sets 64 MiB (for ingestd's
 * large transactions), more than an arena other than the main one ever holds, and
 * malloc_trim leaves tops alone; so each arena kept the highest level it ever reached and
 * every new peak of concurrent requests raised it (make soak: 14.7 of 60 MB of arena
 * memory were tops; RSS +297 MB/h, +95 MB/h with this alone). glibc's default. */
#define API_MALLOC_TRIM_THRESHOLD (128 * 1024)
/* Freed blocks inside an arena stay in memory until malloc_trim gives their pages back:
 * every API_MALLOC_TRIM_S, so apid holds at most about this long's worth of freed memory
 * above what it uses. One trim walks each arena's free lists under its lock: 0.3 ms
 * (median; 2.8 ms at most) in make soak. */
#define API_MALLOC_TRIM_S 10
#define API_TICK_MS 100 /* the main thread's wake-up interval: signals, trimming */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Raises the soft RLIMIT_NOFILE to what the connection limits need: CC_OK, or
 * CC_ERR_CONFIG when the hard limit is lower (apid would fail under load instead). */
static int raise_nofile(long need, char *err, size_t errlen)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return CC_ERR_CONFIG;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)need) {
            snprintf(err, errlen,
                     "open files: apid needs %ld descriptors (RLIMIT_NOFILE), the hard limit "
                     "is %llu: raise it (systemd LimitNOFILE=, docker ulimits nofile, "
                     "ulimit -Hn)",
                     need, (unsigned long long)rl.rlim_max);
            return CC_ERR_CONFIG;
        }
        rl.rlim_cur = (rlim_t)need;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            snprintf(err, errlen, "setrlimit(RLIMIT_NOFILE, %ld): %s", need, strerror(errno));
            return CC_ERR_CONFIG;
        }
    }
    cc_log_info("fd_limit", "open files: %llu allowed, %ld needed", (unsigned long long)rl.rlim_cur,
                need);
    return CC_OK;
}

/* Executes apid again with api_tunables added to GLIBC_TUNABLES, those the variable does
 * not name already (set by us, or by an operator who chose otherwise). Returns CC_OK when
 * there is nothing to do, CC_ERR_IO when it could not be done (apid then runs with glibc's
 * defaults; the caller logs it). Not for a set-id process: glibc ignores the variable
 * there, which would loop. */
static int exec_with_tunables(char **argv)
{
    const char *old = getenv("GLIBC_TUNABLES");
    char val[API_TUNABLES_MAX], name[API_TUNABLE_NAME_MAX];
    size_t len = 0;
    int added = 0;

    if (old != NULL && strlen(old) >= sizeof val)
        return CC_ERR_IO;
    if (old != NULL)
        len = (size_t)snprintf(val, sizeof val, "%s", old);
    else
        val[0] = '\0';
    for (size_t i = 0; i < sizeof api_tunables / sizeof api_tunables[0]; i++) {
        const char *t = api_tunables[i];
        size_t nlen = (size_t)(strchr(t, '=') - t) + 1; /* "glibc.malloc.x=" */
        int n;

        if (nlen >= sizeof name)
            return CC_ERR_IO;
        memcpy(name, t, nlen);
        name[nlen] = '\0';
        if (old != NULL && strstr(old, name) != NULL)
            continue;
        n = snprintf(val + len, sizeof val - len, "%s%s", len > 0 ? ":" : "", t);
        if (n < 0 || (size_t)n >= sizeof val - len)
            return CC_ERR_IO;
        len += (size_t)n;
        added = 1;
    }
    if (!added)
        return CC_OK;
    if (getauxval(AT_SECURE) != 0)
        return CC_ERR_IO;
    if (setenv("GLIBC_TUNABLES", val, 1) != 0)
        return CC_ERR_IO;
    execv("/proc/self/exe", argv);
    return CC_ERR_IO;
}

/* Applies pending migrations once, before the workers open their connections. */
static int migrate(const struct cc_config *cfg)
{
    struct cc_store *st = NULL;
    int rc = cc_store_open(cfg->db_path, CC_STORE_CREATE | CC_STORE_MIGRATE, &st);

    cc_store_close(st);
    return rc;
}

int main(int argc, char **argv)
{
    static struct api_app app;
    struct mg_callbacks cb;
    struct mg_context *ctx = NULL;
    char err[512], ports[160], threads[16];
    /* Live-feed sockets hold no worker (ws_loop.c), only a descriptor each: API_WS_MAX. */
    const int n_threads = API_NUM_THREADS + API_SLOW_CLIENTS_MAX;
    const long n_fds = (long)n_threads + API_CONN_QUEUE + API_WS_MAX +
                       (long)API_DB_CONNS * API_FD_PER_DB + API_FD_SPARE;
    int status = 0;

    if (argc == 2 && strcmp(argv[1], "--routes") == 0) {
        /* The routing table, for tests/integration/test_openapi.py (which also fails on an
         * inconsistent route). */
        return api_routes_print(stdout) == 0 ? 0 : 1;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: apid [--routes]   (configuration: environment, SPEC §6)\n");
        return 64;
    }
    int tunables_rc = exec_with_tunables(argv);

    if (cc_config_load(&app.cfg, err, sizeof err) != CC_OK) {
        fprintf(stderr, "apid: configuration error: %s\n", err);
        return 2;
    }
    cc_log_init("apid", app.cfg.log_level, app.cfg.log_json);
    if (tunables_rc != CC_OK)
        cc_log_warn("malloc_tunables",
                    "could not execute apid with its GLIBC_TUNABLES: glibc's defaults "
                    "(a cache in each worker, 8 arenas per core)");
    cc_store_tune_process(API_DB_HEAP_MIB);
    mallopt(M_TRIM_THRESHOLD, API_MALLOC_TRIM_THRESHOLD);
    snprintf(app.jwt_secret, sizeof app.jwt_secret, "%s", app.cfg.jwt_secret);
    if (cc_config_secret(&app.cfg, CC_SECRET_JWT, !app.cfg.production, app.jwt_secret,
                         sizeof app.jwt_secret, err, sizeof err) != CC_OK) {
        fprintf(stderr, "apid: configuration error: %s\n", err);
        return 2;
    }
    if (strlen(app.jwt_secret) < CC_JWT_KEY_MIN) {
        fprintf(stderr, "apid: configuration error: JWT_SECRET: at least %d characters\n",
                CC_JWT_KEY_MIN);
        return 2;
    }
    if (api_metrics_init(err, sizeof err) != CC_OK) {
        fprintf(stderr, "apid: configuration error: %s\n", err);
        return 2;
    }
    if (api_mqtt_auth_init(&app.cfg, err, sizeof err) != CC_OK) {
        fprintf(stderr, "apid: configuration error: %s\n", err);
        return 2;
    }
    /* The operator account the broker endpoints check (h_mqtt_auth.c); without a password
     * the operator's name is simply not known there. */
    snprintf(app.mqtt_password, sizeof app.mqtt_password, "%s", app.cfg.mqtt_password);
    if (cc_config_secret(&app.cfg, CC_SECRET_MQTT, 0, app.mqtt_password, sizeof app.mqtt_password,
                         err, sizeof err) != CC_OK)
        app.mqtt_password[0] = '\0';
    if (api_static_init(err, sizeof err) != CC_OK) {
        fprintf(stderr, "apid: configuration error: %s\n", err);
        return 2;
    }
    if (raise_nofile(n_fds, err, sizeof err) != CC_OK) {
        fprintf(stderr, "apid: cannot start: %s\n", err);
        return 2;
    }
    if (api_db_init(app.cfg.db_path) != CC_OK) {
        fprintf(stderr, "apid: cannot start: out of memory\n");
        return 1;
    }
    app.auth.secret = app.jwt_secret;
    app.auth.secret_len = strlen(app.jwt_secret);
    app.auth.access_ttl_s = app.cfg.access_token_ttl_s;
    app.auth.refresh_ttl_s = app.cfg.refresh_token_ttl_s;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (migrate(&app.cfg) != CC_OK) {
        char shown[PATH_MAX];

        cc_config_db_display(&app.cfg, shown, sizeof(shown)); /* a URL's password is not shown */
        cc_log_error("db_unavailable", "cannot open or migrate %s", shown);
        status = 1;
        goto out;
    }
    if (cc_ratelimit_new(app.cfg.rate_limit_api, app.cfg.rate_limit_window_s * 1000, API_RATE_KEYS,
                         &app.limit_api) != CC_OK ||
        cc_ratelimit_new(app.cfg.rate_limit_auth, app.cfg.rate_limit_window_s * 1000, API_RATE_KEYS,
                         &app.limit_auth) != CC_OK) {
        cc_log_error("start_failed", "out of memory");
        status = 1;
        goto out;
    }

    if (api_mqtt_auth_listen() != NULL)
        snprintf(ports, sizeof ports, "%s:%d,%s", app.cfg.http_bind, app.cfg.http_port,
                 api_mqtt_auth_listen());
    else
        snprintf(ports, sizeof ports, "%s:%d", app.cfg.http_bind, app.cfg.http_port);
    snprintf(threads, sizeof threads, "%d", n_threads);
    /* The web dashboard (static.c): files only, no listing, no CGI or SSI. */
    const char *web = api_static_dir();
    /* Name, value pairs. */
    /* clang-format off */
    const char *options[] = {
        "listening_ports", ports,
        "num_threads", threads,
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", XSTR(API_KEEP_ALIVE_TIMEOUT_MS),
        "request_timeout_ms", XSTR(API_REQUEST_TIMEOUT_MS),
        "connection_queue", XSTR(API_CONN_QUEUE),
        "listen_backlog", XSTR(API_LISTEN_BACKLOG),
        "tcp_nodelay", "1",
        "websocket_timeout_ms", "30000",
        "enable_websocket_ping_pong", "yes",
        /* An absolute-form request line (GET http://host:port/path) is routed when its port
         * is this listener's, whatever the host: apid is an origin server, not a proxy, and
         * the check against "authentication_domain" (mydomain.com) made civetweb close
         * every such request unanswered (server.c api_civet_close). */
        "enable_auth_domain_check", "no",
        "enable_directory_listing", "no",
        "index_files", "index.html",
        "cgi_pattern", "",
        "ssi_pattern", "",
        "static_file_cache_control", "no-cache",
        "additional_header", API_WEB_HEADERS,
        web ? "document_root" : NULL, web,
        NULL,
    };
    /* clang-format on */
    memset(&cb, 0, sizeof cb);
    cb.begin_request = api_dispatch;
    cb.log_message = api_civet_log;
    cb.http_error = api_civet_error;
    cb.connection_close = api_civet_close;

    mg_init_library(0);
    ctx = mg_start(&cb, &app, options);
    if (ctx == NULL) {
        cc_log_error("start_failed", "cannot listen on %s", ports);
        status = 1;
        goto out;
    }
    api_ws_start(ctx, &app); /* without it apid still serves HTTP; /api/ws answers 503 */
    {
        char shown[PATH_MAX];

        cc_config_db_display(&app.cfg, shown, sizeof(shown));
        cc_log_info("started", "listening on http://%s threads=%d db_conns=%d db=%s", ports,
                    n_threads, API_DB_CONNS, shown);
    }

    for (unsigned long tick = 1; !stop_requested; tick++) {
        struct timespec ts = {0, API_TICK_MS * 1000000L};

        nanosleep(&ts, NULL);
        if (tick % (API_MALLOC_TRIM_S * 1000 / API_TICK_MS) == 0)
            malloc_trim(0);
    }
    cc_log_info("stopping", "signal received, finishing requests in hand");
    {
        /* Without it mg_stop waits out civetweb's 2 s listener poll (cc_wake.h). */
        struct cc_wake *wake = cc_wake_start(app.cfg.http_bind, app.cfg.http_port);

        mg_stop(ctx);
        cc_wake_stop(wake);
    }
    ctx = NULL;
out:
    if (ctx != NULL)
        mg_stop(ctx);
    api_ws_stop();
    api_db_free(); /* after mg_stop: no worker holds a connection any more */
    mg_exit_library();
    cc_ratelimit_free(app.limit_api);
    cc_ratelimit_free(app.limit_auth);
    cc_log_info("stopped", "exit status %d", status);
    return status;
}
