/* bench_count.c - `make bench`'s broker-only baseline: a subscriber that only counts.
 *
 * A libmosquitto client (the library ingestd receives with) subscribed like ingestd
 * (devices/+/readings at --qos, default 2; tools/bench_ingest.sh passes the QoS ingestd
 * receives at) doing nothing with a message but count it and read its "ts" (the load
 * generator's send time, epoch ms) for the publish->delivery latency. It runs the loop
 * itself in one thread, unthreaded, so each PUBACK (or PUBREC) is written as the message
 * arrives: the broker sees the quickest subscriber the library allows.
 *
 * Why not Paho (which it used before): draining the same 50,000-message backlogs, three
 * rounds interleaved on the shared 2-core machine, the Paho MQTTClient version did
 * 20,000-21,900 msg/s and this one 27,100-28,500 (a bare libmosquitto loop_forever
 * counter 25,800-28,000), Paho not CPU-bound (its receive thread waits between packets);
 * a baseline slower than the ingester set against it would make the ratio meaningless.
 *
 * Once subscribed (SUBACK granted at --qos) it creates --ready-file (if given), so a
 * script knows when to start the load. It stops when --count messages have arrived, when
 * --timeout seconds have passed, or when no message came for --idle seconds after the
 * first; then prints "bench: <name> <value> <unit>" lines. The rate is messages / (last
 * delivery - earliest ts seen), i.e. from the first PUBLISH of the load to the last
 * delivery, the same span bench_load uses for the committed rate. Exit status 0 when
 * --count was reached.
 *
 * --session ID subscribes with a persistent session (clean session off) under client id ID,
 * like ingestd's: the broker then queues the subscription's messages while the client is
 * away. --subscribe-only connects, subscribes and disconnects at once (exit 0), which creates
 * such a session before a backlog is published; a later run with the same --session drains
 * it. count_drain_rate is messages / (last delivery - this process's start): the drain rate
 * of a backlog, measured like ingestd's in tools/bench_ingest.sh (phase backlog).
 *
 * --count-file PATH keeps the received count in an 8-byte shared file, which
 * bench_load --window --count-file PATH reads to keep at most W messages in the broker.
 *
 * Credentials: MQTT_USERNAME / MQTT_PASSWORD from the environment (an operator account
 * of the broker's passwd/acl), never on the command line. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#define BC_LAT_BUCKETS 60001 /* 1 ms histogram of ts->delivery, last = 60 s and more */
#define BC_CLIENT_ID_MAX 64  /* bytes of a client id, --session's included */
#define BC_HOST_MAX 256      /* bytes of the host in --url */
#define BC_POLL_MS 5         /* longest wait of one loop step for the socket */
#define BC_PROGRESS_MS 1000
#define BC_KEEPALIVE_S 30
#define BC_CONNECT_TIMEOUT_S 10 /* CONNECT to SUBACK */
#define BC_DISCONNECT_WAIT_MS 2000
#define BC_DEFAULT_COUNT 200000
#define BC_DEFAULT_TIMEOUT_S 180
#define BC_DEFAULT_IDLE_S 15
#define BC_TS_KEY "\"ts\":"

static volatile sig_atomic_t stop_requested;

/* The loop runs in main's thread: the callbacks and main share these without locks. */
struct run {
    const char *topic;
    int qos;
    int sub_mid;
    int subscribed, failed, lost, leaving, disconnected;
    long long received;
    int64_t first_rx_us, last_rx_us; /* monotonic, 0 until the first message */
    int64_t last_rx_ms;              /* epoch */
    int64_t min_ts_ms;               /* earliest "ts" seen, INT64_MAX until then */
    int64_t *count_map;              /* --count-file: the received count, for bench_load */
    unsigned long long lat_hist[BC_LAT_BUCKETS];
    unsigned long long lat_count;
};

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t epoch_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The integer after "ts": in a payload of n bytes (not NUL-terminated). 1 if found. */
static int payload_ts(const char *p, size_t n, int64_t *out)
{
    size_t k = sizeof(BC_TS_KEY) - 1;

    for (size_t i = 0; i + k < n; i++) {
        if (memcmp(p + i, BC_TS_KEY, k) != 0)
            continue;
        int64_t v = 0;
        size_t j = i + k, digits = 0;
        while (j < n && p[j] >= '0' && p[j] <= '9' && digits < 18) {
            v = v * 10 + (p[j++] - '0');
            digits++;
        }
        if (digits == 0)
            return 0;
        *out = v;
        return 1;
    }
    return 0;
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    struct run *r = ud;

    if (rc != 0) {
        fprintf(stderr, "bench_count: connection refused: %s\n", mosquitto_connack_string(rc));
        r->failed = 1;
        return;
    }
    /* Also on a resumed session: the subscription is there already, SUBACK tells us so. */
    rc = mosquitto_subscribe(m, &r->sub_mid, r->topic, r->qos);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench_count: subscribe: %s\n", mosquitto_strerror(rc));
        r->failed = 1;
    }
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    struct run *r = ud;

    (void)m;
    if (mid != r->sub_mid)
        return;
    if (n < 1 || granted[0] != r->qos) {
        fprintf(stderr, "bench_count: subscribe %s at QoS %d: granted %d\n", r->topic, r->qos,
                n < 1 ? -1 : granted[0]);
        r->failed = 1;
        return;
    }
    r->subscribed = 1;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    struct run *r = ud;
    int64_t now_us = mono_us(), now_ms = epoch_ms(), ts;

    (void)m;
    if (msg->payloadlen > 0 && payload_ts(msg->payload, (size_t)msg->payloadlen, &ts)) {
        int64_t lag = now_ms - ts;
        lag = lag < 0 ? 0 : (lag >= BC_LAT_BUCKETS ? BC_LAT_BUCKETS - 1 : lag);
        r->lat_hist[lag]++;
        r->lat_count++;
        if (ts < r->min_ts_ms)
            r->min_ts_ms = ts;
    }
    if (r->first_rx_us == 0)
        r->first_rx_us = now_us;
    r->last_rx_us = now_us;
    r->last_rx_ms = now_ms;
    r->received++;
    if (r->count_map != NULL)
        __atomic_store_n(r->count_map, (int64_t)r->received, __ATOMIC_RELEASE);
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc)
{
    struct run *r = ud;

    (void)m;
    r->disconnected = 1;
    if (!r->leaving) {
        fprintf(stderr, "bench_count: connection lost (%d)\n", rc);
        r->lost = 1;
    }
}

/* Creates path as an 8-byte shared counter and maps it. 1 on success. */
static int map_count_file(struct run *r, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    void *p = MAP_FAILED;

    if (fd >= 0 && ftruncate(fd, sizeof(int64_t)) == 0)
        p = mmap(NULL, sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd >= 0)
        close(fd);
    if (p == MAP_FAILED) {
        fprintf(stderr, "bench_count: cannot create %s: %s\n", path, strerror(errno));
        return 0;
    }
    r->count_map = p;
    return 1;
}

static double quantile(const struct run *r, double q)
{
    unsigned long long want = (unsigned long long)(q * (double)r->lat_count), seen = 0;

    for (int i = 0; i < BC_LAT_BUCKETS; i++) {
        seen += r->lat_hist[i];
        if (seen > want)
            return (double)i;
    }
    return (double)(BC_LAT_BUCKETS - 1);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_count [--url tcp://127.0.0.1:1883] [--topic devices/+/readings]\n"
               "                   [--qos 2] [--count N] [--timeout S] [--idle S]\n"
               "                   [--ready-file PATH] [--count-file PATH] [--quiet]\n"
               "                   [--session CLIENT_ID [--subscribe-only]]\n"
               "  MQTT_USERNAME / MQTT_PASSWORD: the operator account to subscribe with\n");
}

static int parse_long(const char *name, const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench_count: %s must be an integer in %ld..%ld: '%s'\n", name, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

/* Splits "tcp://host:port" (the scheme optional). 1 on success. */
static int parse_url(const char *url, char *host, size_t host_len, int *port)
{
    const char *p = strncmp(url, "tcp://", 6) == 0 ? url + 6 : url, *colon = strrchr(p, ':');
    long v;

    if (colon == NULL || colon == p || (size_t)(colon - p) >= host_len ||
        !parse_long("the --url port", colon + 1, 1, 65535, &v)) {
        fprintf(stderr, "bench_count: --url must be tcp://HOST:PORT: '%s'\n", url);
        return 0;
    }
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    *port = (int)v;
    return 1;
}

/* One step of the client's loop: waits up to BC_POLL_MS for the socket, then reads,
 * writes and keeps alive. 0 when the connection is gone. */
static int step(struct mosquitto *m, struct run *r)
{
    int rc = mosquitto_loop(m, BC_POLL_MS, 1);

    if (rc != MOSQ_ERR_SUCCESS && !r->leaving && !r->lost) {
        fprintf(stderr, "bench_count: connection lost: %s\n", mosquitto_strerror(rc));
        r->lost = 1;
    }
    return rc == MOSQ_ERR_SUCCESS;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"session", required_argument, NULL, 's'},
                                         {"subscribe-only", no_argument, NULL, 'S'},
                                         {"topic", required_argument, NULL, 't'},
                                         {"qos", required_argument, NULL, 'q'},
                                         {"count", required_argument, NULL, 'c'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"idle", required_argument, NULL, 'i'},
                                         {"ready-file", required_argument, NULL, 'r'},
                                         {"count-file", required_argument, NULL, 'C'},
                                         {"quiet", no_argument, NULL, 'Q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    static struct run r; /* the histogram is large: not on the stack */
    const char *url = "tcp://127.0.0.1:1883", *ready = NULL;
    const char *count_path = NULL, *session = NULL;
    const char *user = getenv("MQTT_USERNAME"), *pass = getenv("MQTT_PASSWORD");
    long qos = 2, count = BC_DEFAULT_COUNT, timeout_s = BC_DEFAULT_TIMEOUT_S;
    long idle_s = BC_DEFAULT_IDLE_S;
    int quiet = 0, status = 1, subscribe_only = 0, port = 0, rc, o;
    int64_t process_start_us = mono_us();
    char client_id[BC_CLIENT_ID_MAX], host[BC_HOST_MAX];
    struct mosquitto *m = NULL;
    struct sigaction sa;

    r.topic = "devices/+/readings";
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            url = optarg;
            break;
        case 's':
            if (strlen(optarg) == 0 || strlen(optarg) >= BC_CLIENT_ID_MAX) {
                fprintf(stderr, "bench_count: --session must be 1..%d bytes\n",
                        BC_CLIENT_ID_MAX - 1);
                return 2;
            }
            session = optarg;
            break;
        case 'S':
            subscribe_only = 1;
            break;
        case 't':
            r.topic = optarg;
            break;
        case 'q':
            if (!parse_long("--qos", optarg, 0, 2, &qos))
                return 2;
            break;
        case 'c':
            if (!parse_long("--count", optarg, 1, 2000000000L, &count))
                return 2;
            break;
        case 'T':
            if (!parse_long("--timeout", optarg, 1, 86400, &timeout_s))
                return 2;
            break;
        case 'i':
            if (!parse_long("--idle", optarg, 1, 86400, &idle_s))
                return 2;
            break;
        case 'r':
            ready = optarg;
            break;
        case 'C':
            count_path = optarg;
            break;
        case 'Q':
            quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || user == NULL || pass == NULL || user[0] == '\0' ||
        (subscribe_only && session == NULL)) {
        usage(stderr);
        return 2;
    }
    if (!parse_url(url, host, sizeof(host), &port))
        return 2;
    r.qos = (int)qos;
    r.min_ts_ms = INT64_MAX;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (count_path != NULL && !map_count_file(&r, count_path))
        return 1;

    if (session != NULL)
        snprintf(client_id, sizeof(client_id), "%s", session);
    else
        snprintf(client_id, sizeof(client_id), "coldchain-bench-count-%ld", (long)getpid());
    mosquitto_lib_init();
    m = mosquitto_new(client_id, session == NULL, &r);
    if (m == NULL) {
        fprintf(stderr, "bench_count: mosquitto_new failed\n");
        goto out;
    }
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_disconnect_callback_set(m, on_disconnect);
    rc = mosquitto_username_pw_set(m, user, pass);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_connect(m, host, port, BC_KEEPALIVE_S);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench_count: connect to %s failed: %s\n", url, mosquitto_strerror(rc));
        goto out;
    }
    int64_t deadline_us = mono_us() + BC_CONNECT_TIMEOUT_S * 1000000LL;
    while (!r.subscribed && !r.failed && !r.lost && !stop_requested && mono_us() < deadline_us)
        step(m, &r);
    if (!r.subscribed) {
        if (!r.failed && !r.lost)
            fprintf(stderr, "bench_count: no SUBACK from %s within %ds\n", url,
                    BC_CONNECT_TIMEOUT_S);
        goto out;
    }
    if (ready != NULL) {
        FILE *f = fopen(ready, "w");
        if (f == NULL || fclose(f) != 0) {
            fprintf(stderr, "bench_count: cannot create %s: %s\n", ready, strerror(errno));
            goto out;
        }
    }
    if (subscribe_only) {
        /* DISCONNECT leaves the persistent session, and its subscription, in the broker;
         * what the backlog gets before we are gone stays queued there too. */
        r.leaving = 1;
        mosquitto_disconnect(m);
        deadline_us = mono_us() + BC_DISCONNECT_WAIT_MS * 1000LL;
        while (!r.disconnected && mono_us() < deadline_us && step(m, &r))
            ;
        status = 0;
        goto out;
    }
    if (!quiet)
        fprintf(stderr, "bench_count: subscribed to %s at QoS %ld, waiting for %ld\n", r.topic, qos,
                count);

    int64_t start_us = mono_us(), last_tick_us = start_us;
    while (r.received < count && !stop_requested && !r.lost) {
        int64_t now_us = mono_us();

        if (now_us - start_us > timeout_s * 1000000LL) {
            fprintf(stderr, "bench_count: timed out after %lds with %lld of %ld\n", timeout_s,
                    r.received, count);
            break;
        }
        if (r.first_rx_us != 0 && now_us - r.last_rx_us > idle_s * 1000000LL) {
            fprintf(stderr, "bench_count: nothing for %lds, %lld of %ld\n", idle_s, r.received,
                    count);
            break;
        }
        if (!quiet && now_us - last_tick_us >= BC_PROGRESS_MS * 1000) {
            fprintf(stderr, "bench_count: %lld received\n", r.received);
            last_tick_us = now_us;
        }
        step(m, &r);
    }
    r.leaving = 1;
    mosquitto_disconnect(m);
    mosquitto_loop(m, BC_POLL_MS, 1); /* sends the DISCONNECT */

    long long n = r.received;
    double secs = r.min_ts_ms != INT64_MAX ? (double)(r.last_rx_ms - r.min_ts_ms) / 1000.0
                                           : (double)(r.last_rx_us - r.first_rx_us) / 1e6;
    printf("bench: count_qos %ld qos\n", qos);
    printf("bench: count_received %lld messages\n", n);
    printf("bench: count_time %.3f s\n", secs);
    printf("bench: count_rate %.0f msg/s\n", secs > 0 ? (double)n / secs : 0.0);
    double drain = (double)(r.last_rx_us - process_start_us) / 1e6;
    if (n > 0) {
        printf("bench: count_drain_time %.3f s\n", drain);
        printf("bench: count_drain_rate %.0f msg/s\n", drain > 0 ? (double)n / drain : 0.0);
    }
    printf("bench: count_p50_latency %.0f ms\n", r.lat_count ? quantile(&r, 0.50) : 0.0);
    printf("bench: count_p99_latency %.0f ms\n", r.lat_count ? quantile(&r, 0.99) : 0.0);
    status = n >= count ? 0 : 1;

out:
    fflush(stdout);
    if (m != NULL)
        mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    if (r.count_map != NULL)
        munmap(r.count_map, sizeof(int64_t));
    return status;
}
