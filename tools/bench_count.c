/* bench_count.c - `make bench`'s broker-only baseline: a subscriber that only counts.
 *
 * A Paho MQTTClient subscribed like ingestd (devices/+/readings at QoS 2, which the
 * broker's upgrade_outgoing_qos applies to the devices' QoS 1 messages) but with a clean
 * session and no persistence store, doing nothing with a message but count it and read
 * its "ts" (the load generator's send time, epoch ms) for the publish->delivery latency.
 * --qos 1 subscribes at QoS 1 instead: a lighter exchange (PUBLISH/PUBACK, no
 * PUBREC/PUBREL/PUBCOMP), which is not what ingestd gets; the QoS 2 figure is the fair
 * baseline for ingestd.
 *
 * Once subscribed it creates --ready-file (if given), so a script knows when to start
 * the load. It stops when --count messages have arrived, when --timeout seconds have
 * passed, or when no message came for --idle seconds after the first; then prints
 * "bench: <name> <value> <unit>" lines. The rate is messages / (last delivery - earliest
 * ts seen), i.e. from the first PUBLISH of the load to the last delivery, the same span
 * bench_load uses for the committed rate. Exit status 0 when --count was reached.
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
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>

#define BC_LAT_BUCKETS 60001 /* 1 ms histogram of ts->delivery, last = 60 s and more */
#define BC_CLIENT_ID_MAX 64  /* bytes of a client id, --session's included */
#define BC_POLL_MS 5
#define BC_PROGRESS_MS 1000
#define BC_KEEPALIVE_S 30
#define BC_CONNECT_TIMEOUT_S 10
#define BC_DEFAULT_COUNT 200000
#define BC_DEFAULT_TIMEOUT_S 180
#define BC_DEFAULT_IDLE_S 15
#define BC_TS_KEY "\"ts\":"

static volatile sig_atomic_t stop_requested;

static atomic_llong received;
static atomic_llong first_rx_us; /* monotonic, 0 until the first message */
static atomic_llong last_rx_us;
static atomic_llong last_rx_ms; /* epoch */
static atomic_llong min_ts_ms;  /* earliest "ts" seen, INT64_MAX until then */
static atomic_int lost;
static int64_t *count_map; /* --count-file: the received count, for bench_load --window */
/* Written by Paho's receive thread only; read by main after the client is gone. */
static unsigned long long lat_hist[BC_LAT_BUCKETS];
static unsigned long long lat_count;

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

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
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

static int on_message(void *ctx, char *topic, int topic_len, MQTTClient_message *msg)
{
    int64_t now_us = mono_us(), now_ms = epoch_ms(), ts;

    (void)ctx;
    (void)topic_len;
    if (msg->payloadlen > 0 && payload_ts(msg->payload, (size_t)msg->payloadlen, &ts)) {
        int64_t lag = now_ms - ts;
        long long cur = atomic_load(&min_ts_ms);
        lag = lag < 0 ? 0 : (lag >= BC_LAT_BUCKETS ? BC_LAT_BUCKETS - 1 : lag);
        lat_hist[lag]++;
        lat_count++;
        while (ts < cur && !atomic_compare_exchange_weak(&min_ts_ms, &cur, ts))
            ;
    }
    long long zero = 0;
    atomic_compare_exchange_strong(&first_rx_us, &zero, now_us);
    atomic_store(&last_rx_us, now_us);
    atomic_store(&last_rx_ms, now_ms);
    long long n = atomic_fetch_add(&received, 1) + 1;
    if (count_map != NULL)
        __atomic_store_n(count_map, (int64_t)n, __ATOMIC_RELEASE);
    MQTTClient_freeMessage(&msg);
    MQTTClient_free(topic);
    return 1;
}

static void on_lost(void *ctx, char *cause)
{
    (void)ctx;
    atomic_store(&lost, 1);
    fprintf(stderr, "bench_count: connection lost: %s\n", cause ? cause : "?");
}

/* Creates path as an 8-byte shared counter and maps it. 1 on success. */
static int map_count_file(const char *path)
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
    count_map = p;
    return 1;
}

static double quantile(double q)
{
    unsigned long long want = (unsigned long long)(q * (double)lat_count), seen = 0;

    for (int i = 0; i < BC_LAT_BUCKETS; i++) {
        seen += lat_hist[i];
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
    const char *url = "tcp://127.0.0.1:1883", *topic = "devices/+/readings", *ready = NULL;
    const char *count_path = NULL, *session = NULL;
    const char *user = getenv("MQTT_USERNAME"), *pass = getenv("MQTT_PASSWORD");
    long qos = 2, count = BC_DEFAULT_COUNT, timeout_s = BC_DEFAULT_TIMEOUT_S;
    long idle_s = BC_DEFAULT_IDLE_S;
    int quiet = 0, status = 1, created = 0, subscribe_only = 0, rc, o;
    int64_t process_start_us = mono_us();
    char client_id[BC_CLIENT_ID_MAX];
    MQTTClient client = NULL;
    MQTTClient_connectOptions copts = MQTTClient_connectOptions_initializer;
    struct sigaction sa;

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
            topic = optarg;
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
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    atomic_store(&min_ts_ms, INT64_MAX);
    if (count_path != NULL && !map_count_file(count_path))
        return 1;

    if (session != NULL)
        snprintf(client_id, sizeof(client_id), "%s", session);
    else
        snprintf(client_id, sizeof(client_id), "coldchain-bench-count-%ld", (long)getpid());
    rc = MQTTClient_create(&client, url, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "bench_count: cannot create a client for %s (%d)\n", url, rc);
        goto out;
    }
    created = 1;
    rc = MQTTClient_setCallbacks(client, NULL, on_lost, on_message, NULL);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "bench_count: setCallbacks failed (%d)\n", rc);
        goto out;
    }
    copts.keepAliveInterval = BC_KEEPALIVE_S;
    copts.cleansession = session == NULL;
    copts.username = user;
    copts.password = pass;
    copts.connectTimeout = BC_CONNECT_TIMEOUT_S;
    copts.MQTTVersion = MQTTVERSION_3_1_1;
    rc = MQTTClient_connect(client, &copts);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "bench_count: connect to %s failed (%d)\n", url, rc);
        goto out;
    }
    rc = MQTTClient_subscribe(client, topic, (int)qos);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "bench_count: subscribe %s at QoS %ld failed (%d)\n", topic, qos, rc);
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
        /* DISCONNECT leaves the persistent session, and its subscription, in the broker. */
        status = MQTTClient_disconnect(client, 1000) == MQTTCLIENT_SUCCESS ? 0 : 1;
        goto out;
    }
    if (!quiet)
        fprintf(stderr, "bench_count: subscribed to %s at QoS %ld, waiting for %ld\n", topic, qos,
                count);

    int64_t start_us = mono_us(), last_tick_us = start_us;
    for (;;) {
        int64_t now_us = mono_us();
        long long n = atomic_load(&received), first = atomic_load(&first_rx_us);

        if (n >= count)
            break;
        if (stop_requested || atomic_load(&lost))
            break;
        if (now_us - start_us > timeout_s * 1000000LL) {
            fprintf(stderr, "bench_count: timed out after %lds with %lld of %ld\n", timeout_s, n,
                    count);
            break;
        }
        if (first != 0 && now_us - atomic_load(&last_rx_us) > idle_s * 1000000LL) {
            fprintf(stderr, "bench_count: nothing for %lds, %lld of %ld\n", idle_s, n, count);
            break;
        }
        if (!quiet && now_us - last_tick_us >= BC_PROGRESS_MS * 1000) {
            fprintf(stderr, "bench_count: %lld received\n", n);
            last_tick_us = now_us;
        }
        sleep_ms(BC_POLL_MS);
    }
    MQTTClient_disconnect(client, 1000);
    MQTTClient_destroy(&client); /* joins the receive thread: the histogram is ours now */
    created = 0;

    long long n = atomic_load(&received), min_ts = atomic_load(&min_ts_ms);
    long long span_first_us = atomic_load(&last_rx_us) - atomic_load(&first_rx_us);
    double secs = min_ts != INT64_MAX ? (double)(atomic_load(&last_rx_ms) - min_ts) / 1000.0
                                      : (double)span_first_us / 1e6;
    printf("bench: count_qos %ld qos\n", qos);
    printf("bench: count_received %lld messages\n", n);
    printf("bench: count_time %.3f s\n", secs);
    printf("bench: count_rate %.0f msg/s\n", secs > 0 ? (double)n / secs : 0.0);
    double drain = (double)(atomic_load(&last_rx_us) - process_start_us) / 1e6;
    if (n > 0) {
        printf("bench: count_drain_time %.3f s\n", drain);
        printf("bench: count_drain_rate %.0f msg/s\n", drain > 0 ? (double)n / drain : 0.0);
    }
    printf("bench: count_p50_latency %.0f ms\n", lat_count ? quantile(0.50) : 0.0);
    printf("bench: count_p99_latency %.0f ms\n", lat_count ? quantile(0.99) : 0.0);
    status = n >= count ? 0 : 1;

out:
    fflush(stdout);
    if (created)
        MQTTClient_destroy(&client);
    if (count_map != NULL)
        munmap(count_map, sizeof(int64_t));
    return status;
}
