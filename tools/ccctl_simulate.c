/* ccctl_simulate.c - `ccctl simulate`: devices publishing readings over MQTT.
 *
 * Each device connects with its own serial as client id and username and its API key
 * as password (clean session), then publishes reading objects to
 * devices/{serial}/readings, round-robin, paced to --rate messages per second in
 * total. It stops after --duration seconds or --count messages (or on SIGINT/SIGTERM),
 * waits for the outstanding acknowledgements and exits 0 when every published message
 * was acknowledged. Threads: the main thread publishes; Paho's thread of each client
 * runs the callbacks, which only touch atomic counters. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <MQTTClient.h>

#include "cc_crypto.h"
#include "cc_log.h"
#include "cc_provision.h"
#include "cc_store.h"
#include "cc_time.h"
#include "ccctl.h"

#define SIM_MAX_DEVICES 1000 /* clients one simulate process opens */
#define SIM_KEY_MAX 128      /* bytes in a key (ours are 64) */
#define SIM_TOPIC_MAX (CC_SERIAL_MAX + 32)
#define SIM_PAYLOAD_MAX 256   /* bytes in one reading object */
#define SIM_DEFAULT_RATE 10.0 /* messages per second, all devices together */
#define SIM_MAX_RATE 100000.0 /* messages per second */
#define SIM_MAX_INFLIGHT 200  /* unacknowledged QoS 1 messages per client */
#define SIM_ACK_WAIT_MS 30000 /* how long to wait for the last acknowledgements */
#define SIM_CONNECT_TIMEOUT_S 10
#define SIM_KEEPALIVE_S 30
#define SIM_PROGRESS_NS 1000000000LL /* one progress line a second */

/* The thresholds of SPEC §7's cells, which the readings imitate. */
#define SIM_FREEZER_MIN (-25.0)
#define SIM_FREEZER_MAX (-15.0)
#define SIM_FRIDGE_MIN 2.0
#define SIM_FRIDGE_MAX 8.0

enum sim_profile { SIM_AUTO = 0, SIM_FREEZER, SIM_FRIDGE };

struct sim_device {
    char serial[CC_SERIAL_MAX + 1];
    char key[SIM_KEY_MAX + 1];
    char topic[SIM_TOPIC_MAX];
    enum sim_profile profile; /* SIM_FREEZER or SIM_FRIDGE */
    MQTTClient client;
    int connected;
    int64_t last_ts_ms; /* each reading gets a later ts than the one before */
    double phase;       /* the controller cycle */
    double battery;     /* % */
};

struct sim {
    struct sim_device *dev;
    size_t n_dev;
    double rate;       /* messages per second in total */
    double duration_s; /* 0: no limit */
    int64_t count;     /* 0: no limit */
    const char *url;
    const char *cafile;   /* --cafile: TLS, the server's certificate checked against it */
    const char *certfile; /* --cert/--key: a device certificate (ccctl device cert) */
    const char *keyfile;
    int qos;
    double high_ratio;
    enum sim_profile profile; /* forced by --profile, else SIM_AUTO */
    uint64_t rng;
};

static atomic_llong acked;
static atomic_int lost;
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts;

    if (ns <= 0)
        return;
    ts.tv_sec = (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested)
        ;
}

/* splitmix64 */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / (double)(1ULL << 53);
}

/* Case-insensitive substring test. */
static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++) {
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    }
    return 0;
}

/* The cell type a serial suggests (CC-FRZ-... freezer, CC-FRG-... fridge), else fridge. */
static enum sim_profile profile_of(const char *serial)
{
    if (contains_ci(serial, "FRZ") || contains_ci(serial, "FREEZ"))
        return SIM_FREEZER;
    return SIM_FRIDGE;
}

/* Adds one serial/key pair. 1 if valid and there is room. */
static int add_device(struct sim *sim, const char *serial, size_t serial_len, const char *key,
                      size_t key_len)
{
    struct sim_device *d;

    if (sim->n_dev >= SIM_MAX_DEVICES) {
        fprintf(stderr, "ccctl: simulate: at most %d devices\n", SIM_MAX_DEVICES);
        return 0;
    }
    if (serial_len == 0 || serial_len > CC_SERIAL_MAX || key_len == 0 || key_len > SIM_KEY_MAX) {
        fprintf(stderr, "ccctl: simulate: a device needs SERIAL and KEY\n");
        return 0;
    }
    d = &sim->dev[sim->n_dev];
    memset(d, 0, sizeof *d);
    memcpy(d->serial, serial, serial_len);
    memcpy(d->key, key, key_len);
    if (!cc_provision_serial_valid(d->serial)) {
        fprintf(stderr, "ccctl: simulate: bad serial '%s'\n", d->serial);
        return 0;
    }
    snprintf(d->topic, sizeof d->topic, "devices/%s/readings", d->serial);
    sim->n_dev++;
    return 1;
}

/* --devices SERIAL:KEY,SERIAL:KEY */
static int parse_devices_arg(struct sim *sim, const char *arg)
{
    const char *p = arg;

    while (*p) {
        const char *end = strchr(p, ',');
        const char *colon;
        size_t len = end ? (size_t)(end - p) : strlen(p);

        colon = memchr(p, ':', len);
        if (colon == NULL) {
            fprintf(stderr, "ccctl: simulate: --devices wants SERIAL:KEY[,SERIAL:KEY...]\n");
            return 0;
        }
        if (!add_device(sim, p, (size_t)(colon - p), colon + 1, len - (size_t)(colon - p) - 1))
            return 0;
        p += len;
        if (*p == ',')
            p++;
    }
    return sim->n_dev > 0;
}

/* A keys file: "serial,key" lines; blank lines, '#' comments and a "serial,key" header
 * are skipped. */
static int parse_keys_file(struct sim *sim, const char *path)
{
    char line[CCCTL_KEYS_LINE_MAX];
    FILE *f = fopen(path, "r");
    int ok = 1;
    int lineno = 0;

    if (f == NULL) {
        fprintf(stderr, "ccctl: simulate: cannot read %s: %s\n", path, strerror(errno));
        return 0;
    }
    while (ok && fgets(line, sizeof line, f) != NULL) {
        size_t len = strlen(line);
        char *comma;

        lineno++;
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "ccctl: simulate: %s:%d: line too long\n", path, lineno);
            ok = 0;
            break;
        }
        while (len > 0 && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#' || strcmp(line, "serial,key") == 0)
            continue;
        comma = strchr(line, ',');
        if (comma == NULL) {
            fprintf(stderr, "ccctl: simulate: %s:%d: expected serial,key\n", path, lineno);
            ok = 0;
            break;
        }
        ok = add_device(sim, line, (size_t)(comma - line), comma + 1, strlen(comma + 1));
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (ok && sim->n_dev == 0) {
        fprintf(stderr, "ccctl: simulate: %s lists no devices\n", path);
        ok = 0;
    }
    return ok;
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTClient_message *msg)
{
    (void)ctx;
    (void)topic_len;
    MQTTClient_freeMessage(&msg);
    MQTTClient_free(topic);
    return 1;
}

static void on_delivered(void *ctx, MQTTClient_deliveryToken token)
{
    (void)ctx;
    (void)token;
    atomic_fetch_add(&acked, 1);
}

static void on_lost(void *ctx, char *cause)
{
    struct sim_device *d = ctx;

    atomic_store(&lost, 1);
    cc_log_error("simulate_connection_lost", "device %s: %s", d->serial,
                 cause ? cause : "connection lost");
}

static int connect_device(struct sim *sim, struct sim_device *d)
{
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
    int rc;

    rc = MQTTClient_create(&d->client, sim->url, d->serial, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "ccctl: simulate: %s: cannot create a client for %s (%d)\n", d->serial,
                sim->url, rc);
        d->client = NULL;
        return 0;
    }
    rc = MQTTClient_setCallbacks(d->client, d, on_lost, on_message, on_delivered);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "ccctl: simulate: %s: setCallbacks failed (%d)\n", d->serial, rc);
        return 0;
    }
    opts.keepAliveInterval = SIM_KEEPALIVE_S;
    opts.cleansession = 1;
    opts.username = d->serial;
    opts.password = d->key;
    opts.connectTimeout = SIM_CONNECT_TIMEOUT_S;
    opts.maxInflightMessages = SIM_MAX_INFLIGHT;
    if (sim->cafile != NULL) {
        ssl.trustStore = sim->cafile;
        ssl.keyStore = sim->certfile;
        ssl.privateKey = sim->keyfile;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1; /* the host name in the URL must be in the server's certificate */
        ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2; /* the broker refuses anything older */
        opts.ssl = &ssl;
    }
    rc = MQTTClient_connect(d->client, &opts);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "ccctl: simulate: %s: connect to %s failed (%d%s)\n", d->serial, sim->url,
                rc, rc == 4 || rc == 5 ? ": bad serial or key" : "");
        return 0;
    }
    d->connected = 1;
    return 1;
}

/* One reading object for d, realistic for its cell type; a fraction high_ratio of them
 * is above the cell's maximum. */
static int make_payload(struct sim *sim, struct sim_device *d, char *buf, size_t buflen)
{
    int freezer = d->profile == SIM_FREEZER;
    double setpoint = freezer ? -19.0 : 4.5;
    double max = freezer ? SIM_FREEZER_MAX : SIM_FRIDGE_MAX;
    double temp, humidity;
    int door;
    int64_t ts = cc_now_ms();
    int n;

    if (ts <= d->last_ts_ms)
        ts = d->last_ts_ms + 1; /* (device_id, ts) is unique: never repeat a ts */
    d->last_ts_ms = ts;
    d->phase += 0.05;
    temp = setpoint + (freezer ? 1.0 : 0.7) * sin(d->phase) + 0.6 * (rng_unit(&sim->rng) - 0.5);
    door = rng_unit(&sim->rng) < (freezer ? 0.02 : 0.05);
    if (door)
        temp += freezer ? 1.0 : 0.8;
    if (sim->high_ratio > 0.0 && rng_unit(&sim->rng) < sim->high_ratio)
        temp = max + 0.5 + 2.5 * rng_unit(&sim->rng);
    humidity = (freezer ? 68.0 : 55.0) + 8.0 * (rng_unit(&sim->rng) - 0.5);
    d->battery -= 0.001;
    if (d->battery < 5.0)
        d->battery = 100.0; /* someone changed the battery */
    n = snprintf(buf, buflen,
                 "{\"temperature\":%.2f,\"humidity\":%.1f,\"powerStatus\":true,"
                 "\"doorStatus\":%s,\"batteryLevel\":%.1f,\"ts\":%lld}",
                 temp, humidity, door ? "true" : "false", d->battery, (long long)ts);
    return n > 0 && (size_t)n < buflen ? n : -1;
}

static void progress(int64_t sent, int64_t start_ns, const char *prefix)
{
    double elapsed_s = (double)(mono_ns() - start_ns) / 1e9;

    fprintf(stderr, "simulate: %ssent %lld, acked %lld, rate %.1f/s\n", prefix, (long long)sent,
            (long long)atomic_load(&acked), elapsed_s > 0 ? (double)sent / elapsed_s : 0.0);
}

/* Publishes one message for d; retries while the client's in-flight window is full.
 * 1 if sent. */
static int publish_one(struct sim *sim, struct sim_device *d)
{
    char payload[SIM_PAYLOAD_MAX];
    MQTTClient_deliveryToken token;
    int len = make_payload(sim, d, payload, sizeof payload);
    int rc;

    if (len < 0)
        return 0;
    for (;;) {
        rc = MQTTClient_publish(d->client, d->topic, len, payload, sim->qos, 0, &token);
        if (rc != MQTTCLIENT_MAX_MESSAGES_INFLIGHT || stop_requested || atomic_load(&lost))
            break;
        sleep_ns(1000000); /* 1 ms: wait for acknowledgements */
    }
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "ccctl: simulate: %s: publish failed (%d)\n", d->serial, rc);
        return 0;
    }
    if (sim->qos == 0)
        atomic_fetch_add(&acked, 1);
    return 1;
}

static int run(struct sim *sim)
{
    int64_t start_ns, next_progress_ns, deadline_ns, interval_ns;
    int64_t sent = 0;
    int failed = 0;
    size_t next_dev = 0;

    for (size_t i = 0; i < sim->n_dev; i++) {
        struct sim_device *d = &sim->dev[i];

        d->profile = sim->profile != SIM_AUTO ? sim->profile : profile_of(d->serial);
        d->phase = 6.283 * rng_unit(&sim->rng);
        d->battery = 80.0 + 20.0 * rng_unit(&sim->rng);
        if (!connect_device(sim, d) || stop_requested)
            return 0;
    }
    cc_log_info("simulate_started", "devices=%zu rate=%.1f qos=%d url=%s", sim->n_dev, sim->rate,
                sim->qos, sim->url);

    interval_ns = (int64_t)(1e9 / sim->rate);
    start_ns = mono_ns();
    next_progress_ns = start_ns + SIM_PROGRESS_NS;
    deadline_ns = sim->duration_s > 0 ? start_ns + (int64_t)(sim->duration_s * 1e9) : 0;
    while (!stop_requested && !atomic_load(&lost)) {
        int64_t due_ns = start_ns + sent * interval_ns;
        int64_t now_ns;

        if (sim->count > 0 && sent >= sim->count)
            break;
        if (deadline_ns != 0 && due_ns >= deadline_ns)
            break;
        now_ns = mono_ns();
        if (now_ns >= next_progress_ns) {
            progress(sent, start_ns, "");
            next_progress_ns += SIM_PROGRESS_NS;
            continue;
        }
        if (now_ns < due_ns) {
            sleep_ns((due_ns < next_progress_ns ? due_ns : next_progress_ns) - now_ns);
            continue;
        }
        if (!publish_one(sim, &sim->dev[next_dev])) {
            failed = 1;
            break;
        }
        sent++;
        next_dev = (next_dev + 1) % sim->n_dev;
    }

    /* Wait for the acknowledgements still outstanding. */
    {
        int64_t wait_end_ns = mono_ns() + SIM_ACK_WAIT_MS * 1000000LL;

        while (atomic_load(&acked) < sent && !atomic_load(&lost) && mono_ns() < wait_end_ns) {
            sleep_ns(10000000); /* 10 ms */
            if (mono_ns() >= next_progress_ns) {
                progress(sent, start_ns, "");
                next_progress_ns += SIM_PROGRESS_NS;
            }
        }
    }
    progress(sent, start_ns, "done: ");
    if (atomic_load(&acked) < sent)
        fprintf(stderr, "ccctl: simulate: %lld of %lld messages not acknowledged\n",
                (long long)(sent - atomic_load(&acked)), (long long)sent);
    return !failed && !atomic_load(&lost) && atomic_load(&acked) >= sent;
}

static void close_devices(struct sim *sim)
{
    for (size_t i = 0; i < sim->n_dev; i++) {
        struct sim_device *d = &sim->dev[i];

        if (d->client != NULL) {
            if (d->connected)
                MQTTClient_disconnect(d->client, 1000);
            MQTTClient_destroy(&d->client);
        }
    }
}

int ccctl_simulate(int argc, char **argv, const struct cc_config *cfg)
{
    static const struct option opts[] = {
        {"devices", required_argument, NULL, 'd'},
        {"keys-file", required_argument, NULL, 'k'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"url", required_argument, NULL, 'u'},
        {"qos", required_argument, NULL, 'q'},
        {"high-ratio", required_argument, NULL, 'h'},
        {"profile", required_argument, NULL, 'p'},
        {"cafile", required_argument, NULL, 'C'},
        {"cert", required_argument, NULL, 'E'},
        {"key", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    struct sim sim;
    const char *devices_arg = NULL, *keys_file = NULL;
    struct sigaction sa;
    int64_t qos = 1;
    int ok;
    int c;

    memset(&sim, 0, sizeof sim);
    sim.rate = SIM_DEFAULT_RATE;
    sim.url = cfg->mqtt_url;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            devices_arg = optarg;
            break;
        case 'k':
            keys_file = optarg;
            break;
        case 'r':
            if (!ccctl_parse_double(optarg, 0.001, SIM_MAX_RATE, &sim.rate))
                goto usage;
            break;
        case 't':
            if (!ccctl_parse_double(optarg, 0.001, 1e9, &sim.duration_s))
                goto usage;
            break;
        case 'n':
            if (!ccctl_parse_i64(optarg, 1, INT64_MAX / 2, &sim.count))
                goto usage;
            break;
        case 'u':
            if (*optarg == '\0')
                goto usage;
            sim.url = optarg;
            break;
        case 'q':
            if (!ccctl_parse_i64(optarg, 0, 1, &qos))
                goto usage;
            break;
        case 'h':
            if (!ccctl_parse_double(optarg, 0.0, 1.0, &sim.high_ratio))
                goto usage;
            break;
        case 'C':
            sim.cafile = optarg;
            break;
        case 'E':
            sim.certfile = optarg;
            break;
        case 'K':
            sim.keyfile = optarg;
            break;
        case 'p':
            if (strcmp(optarg, "freezer") == 0)
                sim.profile = SIM_FREEZER;
            else if (strcmp(optarg, "fridge") == 0)
                sim.profile = SIM_FRIDGE;
            else
                goto usage;
            break;
        default:
            goto usage;
        }
    }
    if (optind != argc || (devices_arg == NULL) == (keys_file == NULL)) {
        fprintf(stderr, "ccctl: simulate needs exactly one of --devices and --keys-file\n");
        return ccctl_usage();
    }
    if ((sim.certfile == NULL) != (sim.keyfile == NULL) ||
        (sim.certfile != NULL && sim.cafile == NULL)) {
        fprintf(stderr, "ccctl: simulate: --cert and --key go together, and with --cafile\n");
        return ccctl_usage();
    }
    /* Paho speaks TLS only to ssl:// (or mqtts://) URLs; a tcp:// URL with --cafile would
     * silently send the key in clear text. */
    if ((sim.cafile != NULL) !=
        (strncmp(sim.url, "ssl://", 6) == 0 || strncmp(sim.url, "mqtts://", 8) == 0)) {
        fprintf(stderr, "ccctl: simulate: --cafile needs an ssl:// URL and an ssl:// URL "
                        "needs --cafile\n");
        return ccctl_usage();
    }
    sim.qos = (int)qos;
    sim.dev = calloc(SIM_MAX_DEVICES, sizeof *sim.dev);
    if (sim.dev == NULL) {
        fprintf(stderr, "ccctl: simulate: out of memory\n");
        return CCCTL_EXIT_FAIL;
    }
    ok = devices_arg != NULL ? parse_devices_arg(&sim, devices_arg)
                             : parse_keys_file(&sim, keys_file);
    if (!ok) {
        free(sim.dev);
        return devices_arg != NULL ? ccctl_usage() : CCCTL_EXIT_FAIL;
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sim.rng = (uint64_t)cc_now_ms() ^ ((uint64_t)getpid() << 32);

    ok = run(&sim);
    close_devices(&sim);
    OPENSSL_cleanse(sim.dev, SIM_MAX_DEVICES * sizeof *sim.dev);
    free(sim.dev);
    return ok ? CCCTL_EXIT_OK : CCCTL_EXIT_FAIL;

usage:
    fprintf(stderr, "ccctl: simulate: bad option or value '%s'\n",
            optarg != NULL ? optarg : argv[optind - 1]);
    return ccctl_usage();
}
