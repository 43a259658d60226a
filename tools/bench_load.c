/* bench_load.c - `make bench`'s MQTT load generator: N devices publishing QoS 1 readings.
 *
 * Paho's async publisher scans its lists per message and tops out near 13,700 msg/s in
 * one process (FACTS.md), below what the bench must offer. This tool speaks the five
 * MQTT 3.1.1 packets it needs (CONNECT, CONNACK, PUBLISH QoS 1, PUBACK, DISCONNECT, plus
 * PINGREQ/PINGRESP) on non-blocking sockets driven by one epoll loop, in one thread.
 *
 * Each device of a "serial,key" CSV file opens one connection (client id and username =
 * serial, password = key, clean session). Once every device has its CONNACK, M readings
 * are spread round-robin over the devices (device i sends readings i, i+N, ...), each
 * device keeping at most --inflight unacknowledged, optionally paced to --rate messages
 * per second in total. A reading's ts is its send time in epoch ms, strictly increasing
 * per device, so the receiver can measure publish->commit latency from it. --high-ratio
 * makes that fraction of each device's readings exceed the freezer range (-25..-15 C),
 * evenly spread (0.5 alternates normal and high: alerts raise and resolve all the time).
 *
 * --one-publisher replaces the N device connections by ONE connection that logs in as an
 * operator (MQTT_USERNAME / MQTT_PASSWORD from the environment, never argv; the broker's acl
 * gives that account `readwrite devices/#`) with client id BL_PUB_CLIENT_ID and publishes
 * every device's readings on the device's own topic, round-robin over the devices, with
 * --inflight unacknowledged in total: "one async publisher with 1000 in flight" (issue 13),
 * which offers the broker a burst as fast as it acknowledges. The keys file then only
 * gives the serials.
 *
 * With --metrics-url, the tool then waits until ingestd's counter of stored readings has
 * grown by M and reports the committed rate (first PUBLISH to the moment the counter is
 * seen complete) and ingestd's publish->commit quantiles.
 *
 * Output: progress on stderr once a second; "bench: <name> <value> <unit>" lines on
 * stdout at the end. Exit status 0 when every reading was acknowledged (and committed,
 * with --metrics-url), 1 otherwise, 2 on a usage error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define BL_MAX_DEVICES 20000 /* connections one process opens */
#define BL_SERIAL_MAX 64     /* bytes in a serial (CC_SERIAL_MAX) */
#define BL_KEY_MAX 128       /* bytes in an API key (ours are 64) */
#define BL_LINE_MAX 512      /* bytes in one line of the keys file */
#define BL_TOPIC_MAX (BL_SERIAL_MAX + 32)
#define BL_PAYLOAD_MAX 256     /* bytes in one reading object */
#define BL_PKT_MAX 512         /* bytes in one packet we build */
#define BL_OUT_MAX (32 * 1024) /* bytes queued for one device connection */
/* Bytes queued for the --one-publisher connection: room for its whole window of readings. */
#define BL_PUB_OUT_MAX (1024 * 1024)
/* --one-publisher's client id: the "coldchain-" prefix is the operators' (broker-config). */
#define BL_PUB_CLIENT_ID "coldchain-bench-publisher"
#define BL_IN_MAX 1024 /* bytes of incoming packets held for one connection */
/* Unacknowledged PUBLISHes per connection; at QoS 2 each keeps 4 bytes of BL_OUT_MAX free. */
#define BL_INFLIGHT_MAX 4096
#define BL_CONNECTING_MAX 64 /* connections being opened at once */
#define BL_CONNECT_TIMEOUT_MS 10000
#define BL_KEEPALIVE_S 60      /* announced in CONNECT */
#define BL_PING_EVERY_MS 30000 /* PINGREQ on a connection quiet that long */
#define BL_PROGRESS_MS 1000
#define BL_LAT_BUCKETS 60001 /* 1 ms histogram of PUBLISH->PUBACK, last = 60 s and more */
#define BL_EVENTS 512        /* epoll events per wait */
#define BL_FAILURES_SHOWN 5  /* connection failures reported one by one */
#define BL_READS_PER_EVENT 4 /* reads per readable event, for fairness */
#define BL_METRICS_BODY_MAX (256 * 1024) /* bytes of a /metrics answer */
#define BL_METRICS_POLL_MS 20            /* while waiting for the last commits */
#define BL_WINDOW_POLL_MS 20             /* metrics polls while --window holds publishing back */
#define BL_WINDOW_MAX 10000000
#define BL_DEFAULT_COUNT 200000
#define BL_DEFAULT_INFLIGHT 20
#define BL_DEFAULT_TIMEOUT_S 180
#define BL_DEFAULT_COMMIT_TIMEOUT_S 120
#define BL_METRIC_ACCEPTED "coldchain_ingest_readings_accepted_total"
#define BL_METRIC_LAG "coldchain_ingest_publish_lag_quantile_seconds"

/* Freezer thresholds of the bench's cells (SPEC §7 freezers). */
#define BL_NORMAL_MIN (-20.0) /* normal readings: -20.0 .. -16.1 */
#define BL_HIGH_MIN (-12.0)   /* high readings: -12.0 .. -8.1, above max + hysteresis */

/* C_TLS: TCP is up, the TLS handshake is under way (--cafile only). */
enum conn_state { C_IDLE, C_TCP, C_TLS, C_CONNACK, C_READY, C_CLOSED };

/* One unacknowledged PUBLISH. */
struct flight {
    uint16_t id;
    uint8_t acked;
    uint8_t released; /* QoS 2: PUBREC received, PUBREL sent */
    int64_t sent_us;
};

struct conn {
    int fd;
    SSL *ssl; /* --cafile: the connection's TLS session, else NULL */
    enum conn_state state;
    char serial[BL_SERIAL_MAX + 1];
    char key[BL_KEY_MAX + 1];
    char topic[BL_TOPIC_MAX];
    size_t topic_len;
    unsigned char *out; /* out_cap bytes; [out_off, out_len) waits to be sent */
    size_t out_off, out_len, out_cap;
    const char *client_id; /* NULL: the serial */
    unsigned char in[BL_IN_MAX];
    size_t in_len;
    struct flight *ring; /* inflight entries, oldest at ring_head */
    size_t ring_head, ring_count;
    uint16_t next_id;
    int want_out;  /* EPOLLOUT registered */
    int dirty;     /* on the flush list */
    int64_t quota; /* readings this device sends */
    int64_t sent, acked;
    int64_t last_ts_ms;
    int64_t opened_ms; /* connect started (monotonic) */
    int64_t last_tx_ms;
};

struct load {
    const char *host;
    int port;
    const char *keys_path;
    const char *metrics_url;
    size_t max_devices; /* 0: all in the file */
    int64_t count;
    size_t inflight;
    double rate; /* msg/s in total; 0: as fast as the acknowledgements allow */
    double high_ratio;
    int qos;                /* 1, or 2 to compare brokers' QoS 2 paths (devices publish at QoS 1) */
    int64_t window;         /* readings published but not yet done downstream; 0: no limit */
    const char *count_file; /* bench_count --count-file: its received count */
    const char *cafile;     /* --cafile: TLS, the broker's certificate checked against it */
    SSL_CTX *tls;
    int timeout_s;
    int commit_timeout_s;
    int quiet;
    int one_publisher; /* --one-publisher: pub is the only connection */

    /* The devices: their topics, quotas and per-device counters; without --one-publisher
     * each is also its own connection (conns == c). */
    struct conn *c;
    size_t n;
    struct conn pub;    /* --one-publisher's connection */
    struct conn *conns; /* the connections: c, or &pub */
    size_t nconn;
    int ep;
    struct sockaddr_in addr;
    size_t *flush; /* indices of dirty connections */
    size_t n_flush;
    size_t next_open, opening, ready, closed;
    size_t cursor; /* round-robin position when paced */
    double tokens;
    int64_t refill_us;        /* when tokens were last added */
    const int64_t *count_map; /* the count file, mapped read-only */
    double done;              /* readings seen downstream since publishing began */
    double done_base;         /* the downstream counter when publishing began */
    int64_t polled_us;        /* last metrics poll for the window */
    int publishing;
    int64_t total_sent, total_acked;
    int64_t t_first_us, t_last_ack_us; /* monotonic */
    uint64_t rng;
    unsigned long long *lat; /* BL_LAT_BUCKETS */
    int failed;              /* connections lost or refused; any fails the run */
};

static volatile sig_atomic_t stop_requested;

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

/* splitmix64 */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_load --keys FILE [--host 127.0.0.1] [--port 1883] [--devices N]\n"
            "                  [--count M] [--inflight K] [--rate MSG_PER_S] [--high-ratio R]\n"
            "                  [--timeout S] [--metrics-url URL] [--commit-timeout S] "
            "[--qos 1|2]\n"
            "                  [--window W] [--count-file FILE] [--cafile CA] [--quiet]\n"
            "                  [--one-publisher]\n"
            "  --keys FILE        \"serial,key\" lines (header and '#' lines skipped)\n"
            "  --devices N        use the first N devices of the file (default: all)\n"
            "  --count M          readings in total, round-robin over the devices (%d)\n"
            "  --inflight K       unacknowledged readings per device (%d, at most %d)\n"
            "  --rate R           readings per second in total (default: unpaced)\n"
            "  --high-ratio R     fraction of readings above the freezer range (0)\n"
            "  --timeout S        give up publishing after S seconds (%d)\n"
            "  --metrics-url URL  wait until ingestd's %s grows by M\n"
            "  --commit-timeout S how long to wait for that (%d)\n"
            "  --qos 2            publish at QoS 2 (devices use 1; for broker comparisons)\n"
            "  --window W         at most W readings published and not yet stored (metrics)\n"
            "                     or received (--count-file): a closed loop that keeps the\n"
            "                     broker's queue short\n"
            "  --count-file FILE  bench_count's shared counter (its --count-file)\n"
            "  --cafile CA        connect over TLS (1.2 or later), the broker's certificate\n"
            "                     checked against CA (the host name is not checked)\n"
            "  --one-publisher    one connection as the operator MQTT_USERNAME (password in\n"
            "                     MQTT_PASSWORD) publishes every device's readings, --inflight\n"
            "                     unacknowledged in total\n",
            BL_DEFAULT_COUNT, BL_DEFAULT_INFLIGHT, BL_INFLIGHT_MAX, BL_DEFAULT_TIMEOUT_S,
            BL_METRIC_ACCEPTED, BL_DEFAULT_COMMIT_TIMEOUT_S);
}

/* Parses a number in [lo, hi]. 1 on success. */
static int parse_num(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "bench_load: %s must be a number in %g..%g: '%s'\n", name, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_args(struct load *L, int argc, char **argv)
{
    static const struct option opts[] = {{"host", required_argument, NULL, 'H'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"keys", required_argument, NULL, 'k'},
                                         {"devices", required_argument, NULL, 'n'},
                                         {"count", required_argument, NULL, 'c'},
                                         {"inflight", required_argument, NULL, 'i'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"high-ratio", required_argument, NULL, 'h'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"metrics-url", required_argument, NULL, 'm'},
                                         {"commit-timeout", required_argument, NULL, 'T'},
                                         {"qos", required_argument, NULL, 'Q'},
                                         {"window", required_argument, NULL, 'w'},
                                         {"count-file", required_argument, NULL, 'f'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"cafile", required_argument, NULL, 'C'},
                                         {"one-publisher", no_argument, NULL, 'O'},
                                         {"help", no_argument, NULL, '?'},
                                         {NULL, 0, NULL, 0}};
    double v;
    int o;

    L->host = "127.0.0.1";
    L->port = 1883;
    L->count = BL_DEFAULT_COUNT;
    L->qos = 1;
    L->inflight = BL_DEFAULT_INFLIGHT;
    L->timeout_s = BL_DEFAULT_TIMEOUT_S;
    L->commit_timeout_s = BL_DEFAULT_COMMIT_TIMEOUT_S;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'H':
            L->host = optarg;
            break;
        case 'C':
            L->cafile = optarg;
            break;
        case 'p':
            if (!parse_num("--port", optarg, 1, 65535, &v))
                return 0;
            L->port = (int)v;
            break;
        case 'k':
            L->keys_path = optarg;
            break;
        case 'n':
            if (!parse_num("--devices", optarg, 1, BL_MAX_DEVICES, &v))
                return 0;
            L->max_devices = (size_t)v;
            break;
        case 'c':
            if (!parse_num("--count", optarg, 1, 1e10, &v))
                return 0;
            L->count = (int64_t)v;
            break;
        case 'i':
            if (!parse_num("--inflight", optarg, 1, BL_INFLIGHT_MAX, &v))
                return 0;
            L->inflight = (size_t)v;
            break;
        case 'r':
            if (!parse_num("--rate", optarg, 0, 1e7, &v))
                return 0;
            L->rate = v;
            break;
        case 'h':
            if (!parse_num("--high-ratio", optarg, 0, 1, &L->high_ratio))
                return 0;
            break;
        case 't':
            if (!parse_num("--timeout", optarg, 1, 86400, &v))
                return 0;
            L->timeout_s = (int)v;
            break;
        case 'm':
            L->metrics_url = optarg;
            break;
        case 'T':
            if (!parse_num("--commit-timeout", optarg, 1, 86400, &v))
                return 0;
            L->commit_timeout_s = (int)v;
            break;
        case 'Q':
            if (!parse_num("--qos", optarg, 1, 2, &v))
                return 0;
            L->qos = (int)v;
            break;
        case 'w':
            if (!parse_num("--window", optarg, 1, BL_WINDOW_MAX, &v))
                return 0;
            L->window = (int64_t)v;
            break;
        case 'f':
            L->count_file = optarg;
            break;
        case 'q':
            L->quiet = 1;
            break;
        case 'O':
            L->one_publisher = 1;
            break;
        default:
            usage(stderr);
            return 0;
        }
    }
    if (optind != argc || L->keys_path == NULL) {
        usage(stderr);
        return 0;
    }
    if (L->window > 0 && L->metrics_url == NULL && L->count_file == NULL) {
        fprintf(stderr, "bench_load: --window needs --metrics-url or --count-file\n");
        return 0;
    }
    if (L->one_publisher) {
        const char *user = getenv("MQTT_USERNAME"), *pass = getenv("MQTT_PASSWORD");

        if (user == NULL || pass == NULL || user[0] == '\0' || strlen(user) > BL_SERIAL_MAX ||
            strlen(pass) > BL_KEY_MAX) {
            fprintf(stderr,
                    "bench_load: --one-publisher needs MQTT_USERNAME (at most %d bytes)"
                    " and MQTT_PASSWORD (at most %d)\n",
                    BL_SERIAL_MAX, BL_KEY_MAX);
            return 0;
        }
        /* The operator's name and password live in the connection like a device's serial and
         * key (wiped in teardown). */
        memcpy(L->pub.serial, user, strlen(user) + 1);
        memcpy(L->pub.key, pass, strlen(pass) + 1);
        L->pub.client_id = BL_PUB_CLIENT_ID;
    }
    memset(&L->addr, 0, sizeof(L->addr));
    L->addr.sin_family = AF_INET;
    L->addr.sin_port = htons((uint16_t)L->port);
    if (inet_pton(AF_INET, L->host, &L->addr.sin_addr) != 1) {
        fprintf(stderr, "bench_load: --host must be an IPv4 address: '%s'\n", L->host);
        return 0;
    }
    return 1;
}

/* Reads the keys file into L->c (allocated here). 1 on success. */
static int load_keys(struct load *L)
{
    char line[BL_LINE_MAX];
    FILE *f = NULL;
    size_t cap = L->max_devices ? L->max_devices : BL_MAX_DEVICES;
    int lineno = 0, ok = 0;

    L->c = calloc(cap, sizeof(*L->c));
    if (L->c == NULL) {
        fprintf(stderr, "bench_load: out of memory\n");
        goto out;
    }
    f = fopen(L->keys_path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench_load: cannot read %s: %s\n", L->keys_path, strerror(errno));
        goto out;
    }
    while (L->n < cap && fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line), slen, klen;
        char *comma;
        struct conn *c;

        lineno++;
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "bench_load: %s:%d: line too long\n", L->keys_path, lineno);
            goto out;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#' || strncmp(line, "serial,", 7) == 0)
            continue;
        comma = strchr(line, ',');
        if (comma == NULL) {
            fprintf(stderr, "bench_load: %s:%d: expected serial,key\n", L->keys_path, lineno);
            goto out;
        }
        slen = (size_t)(comma - line);
        klen = strcspn(comma + 1, ",");
        if (slen == 0 || slen > BL_SERIAL_MAX || klen == 0 || klen > BL_KEY_MAX ||
            strcspn(line, "/+#") < slen) {
            fprintf(stderr, "bench_load: %s:%d: bad serial or key\n", L->keys_path, lineno);
            goto out;
        }
        c = &L->c[L->n++];
        c->fd = -1;
        memcpy(c->serial, line, slen);
        memcpy(c->key, comma + 1, klen);
        c->topic_len =
            (size_t)snprintf(c->topic, sizeof(c->topic), "devices/%s/readings", c->serial);
    }
    if (ferror(f)) {
        fprintf(stderr, "bench_load: reading %s failed\n", L->keys_path);
        goto out;
    }
    if (L->n == 0) {
        fprintf(stderr, "bench_load: %s lists no devices\n", L->keys_path);
        goto out;
    }
    if (L->max_devices && L->n < L->max_devices)
        fprintf(stderr, "bench_load: %s lists only %zu devices\n", L->keys_path, L->n);
    ok = 1;
out:
    memset(line, 0, sizeof(line));
    if (f != NULL)
        fclose(f);
    return ok;
}

/* Allocates the per-connection buffers and splits the readings. 1 on success. */
static int setup(struct load *L)
{
    L->conns = L->one_publisher ? &L->pub : L->c;
    L->nconn = L->one_publisher ? 1 : L->n;
    L->pub.fd = -1;
    L->flush = calloc(L->nconn, sizeof(*L->flush));
    L->lat = calloc(BL_LAT_BUCKETS, sizeof(*L->lat));
    if (L->flush == NULL || L->lat == NULL)
        return 0;
    for (size_t i = 0; i < L->n; i++)
        L->c[i].quota = L->count / (int64_t)L->n + ((int64_t)i < L->count % (int64_t)L->n);
    for (size_t i = 0; i < L->nconn; i++) {
        struct conn *c = &L->conns[i];

        c->out_cap = L->one_publisher ? BL_PUB_OUT_MAX : BL_OUT_MAX;
        c->out = malloc(c->out_cap);
        c->ring = calloc(L->inflight, sizeof(*c->ring));
        if (c->out == NULL || c->ring == NULL)
            return 0;
        c->next_id = 1;
    }
    if (L->cafile != NULL) {
        L->tls = SSL_CTX_new(TLS_client_method());
        if (L->tls == NULL || !SSL_CTX_set_min_proto_version(L->tls, TLS1_2_VERSION) ||
            SSL_CTX_load_verify_locations(L->tls, L->cafile, NULL) != 1) {
            fprintf(stderr, "bench_load: cannot use %s as the CA\n", L->cafile);
            return 0;
        }
        SSL_CTX_set_verify(L->tls, SSL_VERIFY_PEER, NULL);
        /* conn_flush retries with more bytes queued, from a buffer that memmove shifts. */
        SSL_CTX_set_mode(L->tls,
                         SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    L->ep = epoll_create1(EPOLL_CLOEXEC);
    if (L->ep < 0) {
        fprintf(stderr, "bench_load: epoll_create1: %s\n", strerror(errno));
        return 0;
    }
    L->rng = (uint64_t)epoch_ms() ^ 0x5bd1e995ULL;
    return 1;
}

/* Maps bench_count's counter (8 bytes, written by bench_count). 1 on success. */
static int map_count_file(struct load *L)
{
    int fd = open(L->count_file, O_RDONLY | O_CLOEXEC);
    void *p;

    if (fd < 0) {
        fprintf(stderr, "bench_load: cannot open %s: %s\n", L->count_file, strerror(errno));
        return 0;
    }
    p = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        fprintf(stderr, "bench_load: cannot map %s: %s\n", L->count_file, strerror(errno));
        return 0;
    }
    L->count_map = p;
    return 1;
}

static void teardown(struct load *L)
{
    if (L->count_map != NULL)
        munmap((void *)L->count_map, sizeof(int64_t));
    for (size_t i = 0; L->conns != NULL && i < L->nconn; i++) {
        struct conn *c = &L->conns[i];

        SSL_free(c->ssl);
        if (c->fd >= 0)
            close(c->fd);
        free(c->out);
        free(c->ring);
    }
    for (size_t i = 0; L->c != NULL && i < L->n; i++)
        memset(L->c[i].key, 0, sizeof(L->c[i].key));
    memset(L->pub.key, 0, sizeof(L->pub.key));
    if (L->ep >= 0)
        close(L->ep);
    SSL_CTX_free(L->tls);
    free(L->c);
    free(L->flush);
    free(L->lat);
}

/* Closes c; a failure makes the whole run fail (the readings of c cannot all arrive). */
static void conn_close(struct load *L, struct conn *c, const char *why)
{
    if (c->state == C_CLOSED)
        return;
    if (why != NULL) {
        if (L->failed < BL_FAILURES_SHOWN)
            fprintf(stderr, "bench_load: %s %s: %s\n", c == &L->pub ? "publisher" : "device",
                    c->serial, why);
        else if (L->failed == BL_FAILURES_SHOWN)
            fprintf(stderr, "bench_load: more devices failed\n");
        L->failed++;
    }
    if (c->state == C_TCP || c->state == C_TLS || c->state == C_CONNACK)
        L->opening--;
    if (c->state == C_READY)
        L->ready--;
    SSL_free(c->ssl); /* no close_notify: the broker sees the socket close either way */
    c->ssl = NULL;
    if (c->fd >= 0) {
        epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->state = C_CLOSED;
    L->closed++;
}

/* Appends bytes to c's output. 1 if they fit. */
static int out_put(struct conn *c, const void *p, size_t n)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_cap - c->out_len < n && c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_cap - c->out_len < n)
        return 0;
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 1;
}

static size_t out_room(const struct conn *c)
{
    return c->out_cap - (c->out_len - c->out_off);
}

static void mark_dirty(struct load *L, struct conn *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        L->flush[L->n_flush++] = (size_t)(c - L->conns);
    }
}

static int set_events(struct load *L, struct conn *c, uint32_t ev)
{
    struct epoll_event e;

    memset(&e, 0, sizeof(e));
    e.events = ev;
    e.data.u64 = (uint64_t)(c - L->conns);
    return epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* send() or SSL_write(): bytes written, 0 if the socket would block (TLS: the session
 * needs to read or write first; epoll wakes us either way), -1 on an error (errno, or EIO
 * for TLS). */
static ssize_t io_send(struct conn *c, const void *p, size_t n)
{
    size_t done = 0;
    ssize_t w;

    if (c->ssl == NULL) {
        do
            w = send(c->fd, p, n, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return w;
    }
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, p, n, &done) == 1)
        return (ssize_t)done;
    switch (SSL_get_error(c->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    default:
        errno = EIO;
        return -1;
    }
}

/* recv() or SSL_read(): bytes read, 0 if nothing is there now, -1 on an error or end
 * (*eof set for an orderly close). */
static ssize_t io_recv(struct conn *c, void *p, size_t n, int *eof)
{
    size_t got = 0;
    ssize_t r;

    *eof = 0;
    if (c->ssl == NULL) {
        do
            r = recv(c->fd, p, n, 0);
        while (r < 0 && errno == EINTR);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r == 0) {
            *eof = 1;
            return -1;
        }
        return r;
    }
    ERR_clear_error();
    if (SSL_read_ex(c->ssl, p, n, &got) == 1)
        return (ssize_t)got;
    switch (SSL_get_error(c->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        *eof = 1;
        return -1;
    default:
        errno = EIO;
        return -1;
    }
}

/* Writes what c has queued; registers EPOLLOUT while some is left. */
static void conn_flush(struct load *L, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = io_send(c, c->out + c->out_off, c->out_len - c->out_off);

        if (w < 0) {
            conn_close(L, c, strerror(errno));
            return;
        }
        if (w == 0)
            break;
        c->out_off += (size_t)w;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    int want = c->out_len > 0;
    if (want != c->want_out) {
        if (set_events(L, c, EPOLLIN | (want ? EPOLLOUT : 0)) != 0) {
            conn_close(L, c, strerror(errno));
            return;
        }
        c->want_out = want;
    }
}

static void flush_dirty(struct load *L)
{
    for (size_t i = 0; i < L->n_flush; i++) {
        struct conn *c = &L->conns[L->flush[i]];

        c->dirty = 0;
        if (c->state != C_CLOSED)
            conn_flush(L, c);
    }
    L->n_flush = 0;
}

/* Writes an MQTT remaining length; returns its size (1..4). */
static size_t put_varlen(unsigned char *p, size_t v)
{
    size_t i = 0;

    do {
        unsigned char b = (unsigned char)(v % 128);
        v /= 128;
        p[i++] = v > 0 ? (b | 128) : b;
    } while (v > 0 && i < 4);
    return i;
}

static size_t put_str(unsigned char *p, const char *s, size_t n)
{
    p[0] = (unsigned char)(n >> 8);
    p[1] = (unsigned char)(n & 0xFF);
    memcpy(p + 2, s, n);
    return 2 + n;
}

/* Queues CONNECT: MQTT 3.1.1, clean session, username (serial) and password (key). */
static int send_connect(struct conn *c)
{
    unsigned char body[BL_PKT_MAX], pkt[BL_PKT_MAX + 8];
    const char *id = c->client_id != NULL ? c->client_id : c->serial;
    size_t b = 0, slen = strlen(c->serial), klen = strlen(c->key), h;
    int ok;

    b += put_str(body + b, "MQTT", 4);
    body[b++] = 4;                  /* protocol level 3.1.1 */
    body[b++] = 0x80 | 0x40 | 0x02; /* username, password, clean session */
    body[b++] = (unsigned char)(BL_KEEPALIVE_S >> 8);
    body[b++] = (unsigned char)(BL_KEEPALIVE_S & 0xFF);
    b += put_str(body + b, id, strlen(id));  /* client id */
    b += put_str(body + b, c->serial, slen); /* username */
    b += put_str(body + b, c->key, klen);    /* password */
    pkt[0] = 0x10;
    h = 1 + put_varlen(pkt + 1, b);
    memcpy(pkt + h, body, b);
    ok = out_put(c, pkt, h + b);
    memset(body, 0, sizeof(body));
    memset(pkt, 0, sizeof(pkt));
    return ok;
}

/* One reading of device d: a fraction high_ratio of each device's readings is high, evenly
 * spread (reading k is high when floor((k+1)R) > floor(kR)). */
static int make_payload(struct load *L, struct conn *d, int64_t ts_ms, char *buf, size_t len)
{
    double k = (double)d->sent, r = L->high_ratio;
    int high = r > 0 && floor((k + 1) * r) > floor(k * r);
    uint64_t x = rng_next(&L->rng);
    double t = (high ? BL_HIGH_MIN : BL_NORMAL_MIN) + (double)(x % 40) / 10.0;
    int n = snprintf(buf, len,
                     "{\"temperature\":%.1f,\"humidity\":%d,\"powerStatus\":true,"
                     "\"doorStatus\":false,\"batteryLevel\":%d,\"ts\":%lld}",
                     t, 40 + (int)((x >> 8) % 20), 90 - (int)((x >> 16) % 10), (long long)ts_ms);
    return (n > 0 && (size_t)n < len) ? n : -1;
}

/* Queues one PUBLISH QoS 1 of device d on connection c (c == d, or --one-publisher's).
 * 1 if queued. */
static int publish_one(struct load *L, struct conn *c, struct conn *d, int64_t now_us)
{
    unsigned char pkt[BL_PKT_MAX];
    char payload[BL_PAYLOAD_MAX];
    int64_t ts = epoch_ms();
    size_t h, rem;
    int plen;

    if (ts <= d->last_ts_ms)
        ts = d->last_ts_ms + 1; /* strictly increasing per device */
    plen = make_payload(L, d, ts, payload, sizeof(payload));
    rem = 2 + d->topic_len + 2 + (size_t)(plen > 0 ? plen : 0);
    if (plen < 0 || rem + 5 > sizeof(pkt)) {
        conn_close(L, c, "reading too large");
        return 0;
    }
    pkt[0] = L->qos == 2 ? 0x34 : 0x32; /* PUBLISH, QoS 1 or 2 */
    h = 1 + put_varlen(pkt + 1, rem);
    h += put_str(pkt + h, d->topic, d->topic_len);
    pkt[h++] = (unsigned char)(c->next_id >> 8);
    pkt[h++] = (unsigned char)(c->next_id & 0xFF);
    memcpy(pkt + h, payload, (size_t)plen);
    if (!out_put(c, pkt, h + (size_t)plen))
        return 0;
    struct flight *f = &c->ring[(c->ring_head + c->ring_count) % L->inflight];
    f->id = c->next_id;
    f->acked = 0;
    f->released = 0;
    f->sent_us = now_us;
    c->ring_count++;
    c->next_id = c->next_id == 65535 ? 1 : (uint16_t)(c->next_id + 1);
    d->last_ts_ms = ts;
    d->sent++;
    c->last_tx_ms = now_us / 1000;
    L->total_sent++;
    if (L->total_sent == 1)
        L->t_first_us = now_us;
    mark_dirty(L, c);
    return 1;
}

/* 1 if connection c may take one more PUBLISH now. */
static int conn_can_send(const struct load *L, const struct conn *c)
{
    /* QoS 2 keeps room for a PUBREL per message in flight. */
    size_t need = BL_PKT_MAX + (L->qos == 2 ? 4 * L->inflight : 0);

    return c->state == C_READY && c->ring_count < L->inflight && out_room(c) >= need;
}

/* The connection that carries device d's readings. */
static struct conn *conn_of(struct load *L, struct conn *d)
{
    return L->one_publisher ? &L->pub : d;
}

static int can_send(struct load *L, struct conn *d)
{
    return d->sent < d->quota && conn_can_send(L, conn_of(L, d));
}

/* Flow-controlled, or --one-publisher: publishes up to budget readings, round-robin over
 * the devices. Returns how many. */
static int64_t pump_budget(struct load *L, int64_t budget, int64_t now_us)
{
    size_t idle = 0;
    int64_t sent = 0;

    while (sent < budget && idle < L->n) {
        struct conn *d = &L->c[L->cursor];

        /* One connection full is every device blocked: stop without visiting them all. */
        if (L->one_publisher && !conn_can_send(L, &L->pub))
            break;
        L->cursor = (L->cursor + 1) % L->n;
        if (!can_send(L, d)) {
            idle++;
            continue;
        }
        if (!publish_one(L, conn_of(L, d), d, now_us))
            break;
        sent++;
        idle = 0;
    }
    return sent;
}

/* Unpaced: fills connection c's window. */
static void pump(struct load *L, struct conn *c, int64_t now_us)
{
    if (L->one_publisher) {
        pump_budget(L, INT64_MAX, now_us);
        return;
    }
    while (can_send(L, c))
        if (!publish_one(L, c, c, now_us))
            break;
}

static int flow_controlled(const struct load *L)
{
    return L->rate > 0 || L->window > 0;
}

/* The in-flight entry of id on c, or NULL. */
static struct flight *flight_find(struct load *L, struct conn *c, uint16_t id)
{
    for (size_t i = 0; i < c->ring_count; i++) { /* the broker acknowledges in order: i is 0 */
        struct flight *f = &c->ring[(c->ring_head + i) % L->inflight];
        if (f->id == id && !f->acked)
            return f;
    }
    return NULL;
}

/* QoS 2: a PUBREC for id on c; answer PUBREL. */
static void on_pubrec(struct load *L, struct conn *c, uint16_t id)
{
    struct flight *f = flight_find(L, c, id);
    unsigned char rel[4] = {0x62, 0x02, (unsigned char)(id >> 8), (unsigned char)(id & 0xFF)};

    if (f == NULL || f->released) {
        conn_close(L, c, "PUBREC for a packet id not in flight");
        return;
    }
    if (!out_put(c, rel, sizeof(rel))) {
        conn_close(L, c, "output full");
        return;
    }
    f->released = 1;
    mark_dirty(L, c);
}

/* A PUBACK (QoS 1) or PUBCOMP (QoS 2) for id on c. */
static void on_puback(struct load *L, struct conn *c, uint16_t id, int64_t now_us)
{
    size_t i;

    for (i = 0; i < c->ring_count; i++) { /* the broker acknowledges in order: i is 0 */
        struct flight *f = &c->ring[(c->ring_head + i) % L->inflight];
        if (f->id == id && !f->acked && f->released == (L->qos == 2)) {
            int64_t ms = (now_us - f->sent_us) / 1000;
            f->acked = 1;
            L->lat[ms < BL_LAT_BUCKETS ? ms : BL_LAT_BUCKETS - 1]++;
            break;
        }
    }
    if (i == c->ring_count) {
        conn_close(L, c, "PUBACK for a packet id not in flight");
        return;
    }
    while (c->ring_count > 0 && c->ring[c->ring_head].acked) {
        c->ring_head = (c->ring_head + 1) % L->inflight;
        c->ring_count--;
    }
    c->acked++;
    L->total_acked++;
    L->t_last_ack_us = now_us;
    if (!flow_controlled(L))
        pump(L, c, now_us);
}

/* Handles the complete packets in c->in. */
static void parse_input(struct load *L, struct conn *c, int64_t now_us)
{
    size_t off = 0;

    while (c->state != C_CLOSED && c->in_len - off >= 2) {
        const unsigned char *p = c->in + off;
        size_t rem = 0, mult = 1, i = 1;

        for (;;) { /* remaining length: 1-4 bytes */
            if (i >= c->in_len - off)
                goto partial;
            rem += (p[i] & 127u) * mult;
            mult *= 128;
            if (!(p[i++] & 128u))
                break;
            if (i > 4) {
                conn_close(L, c, "malformed remaining length");
                return;
            }
        }
        if (i + rem > BL_IN_MAX) {
            conn_close(L, c, "incoming packet too large");
            return;
        }
        if (c->in_len - off < i + rem)
            goto partial;
        switch (p[0] >> 4) {
        case 2: /* CONNACK */
            if (c->state != C_CONNACK || rem != 2) {
                conn_close(L, c, "unexpected CONNACK");
                return;
            }
            if (p[i + 1] != 0) {
                char why[64];
                snprintf(why, sizeof(why), "CONNACK return code %u%s", p[i + 1],
                         p[i + 1] == 4 || p[i + 1] == 5 ? " (bad name or password)" : "");
                conn_close(L, c, why);
                return;
            }
            c->state = C_READY;
            L->opening--;
            L->ready++;
            break;
        case 4: /* PUBACK */
        case 7: /* PUBCOMP */
            if (c->state != C_READY || rem != 2 || (p[0] >> 4) != (L->qos == 2 ? 7 : 4)) {
                conn_close(L, c, "unexpected PUBACK or PUBCOMP");
                return;
            }
            on_puback(L, c, (uint16_t)(p[i] << 8 | p[i + 1]), now_us);
            break;
        case 5: /* PUBREC */
            if (c->state != C_READY || rem != 2 || L->qos != 2) {
                conn_close(L, c, "unexpected PUBREC");
                return;
            }
            on_pubrec(L, c, (uint16_t)(p[i] << 8 | p[i + 1]));
            break;
        case 13: /* PINGRESP */
            break;
        default: {
            char why[64];
            snprintf(why, sizeof(why), "unexpected packet type %u", p[0] >> 4);
            conn_close(L, c, why);
            return;
        }
        }
        off += i + rem;
    }
partial:
    if (c->state == C_CLOSED)
        return;
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void on_readable(struct load *L, struct conn *c, int64_t now_us)
{
    /* TLS reads on until the session is empty: bytes it has decrypted already raise no
     * epoll event. */
    for (int r = 0; (r < BL_READS_PER_EVENT || c->ssl != NULL) && c->state != C_CLOSED; r++) {
        size_t want = BL_IN_MAX - c->in_len;
        int eof;
        ssize_t got = io_recv(c, c->in + c->in_len, want, &eof);

        if (got < 0) {
            conn_close(L, c, eof ? "the broker closed the connection" : strerror(errno));
            return;
        }
        if (got == 0)
            return;
        c->in_len += (size_t)got;
        parse_input(L, c, now_us);
        /* A short read drained the socket; TLS may still hold decrypted bytes that no
         * epoll event will announce. */
        if ((size_t)got < want && (c->ssl == NULL || SSL_pending(c->ssl) == 0))
            return;
    }
}

/* Starts the TCP connection of c. */
static void conn_open(struct load *L, struct conn *c, int64_t now_us)
{
    struct epoll_event e;
    int one = 1;

    c->opened_ms = now_us / 1000;
    c->state = C_TCP;
    L->opening++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_close(L, c, strerror(errno));
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&L->addr, sizeof(L->addr)) != 0 && errno != EINPROGRESS) {
        conn_close(L, c, strerror(errno));
        return;
    }
    memset(&e, 0, sizeof(e));
    e.events = EPOLLIN | EPOLLOUT;
    e.data.u64 = (uint64_t)(c - L->conns);
    if (epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &e) != 0) {
        conn_close(L, c, strerror(errno));
        return;
    }
    c->want_out = 1;
}

/* Sends CONNECT on a connection whose TCP (and TLS) is up. */
static void start_mqtt(struct load *L, struct conn *c);

/* Moves c's TLS handshake on; at its end, CONNECT. */
static void tls_step(struct load *L, struct conn *c)
{
    int rc;

    ERR_clear_error();
    rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        start_mqtt(L, c);
        return;
    }
    switch (SSL_get_error(c->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        if (set_events(L, c, EPOLLIN) != 0)
            conn_close(L, c, strerror(errno));
        c->want_out = 0;
        return;
    case SSL_ERROR_WANT_WRITE:
        if (set_events(L, c, EPOLLIN | EPOLLOUT) != 0)
            conn_close(L, c, strerror(errno));
        c->want_out = 1;
        return;
    default:
        conn_close(L, c, "TLS handshake failed");
    }
}

/* The TCP connection of c is writable for the first time: TLS, or CONNECT at once. */
static void on_connected(struct load *L, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        conn_close(L, c, strerror(err ? err : errno));
        return;
    }
    if (L->tls != NULL) {
        c->ssl = SSL_new(L->tls);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
            conn_close(L, c, "SSL_new failed");
            return;
        }
        SSL_set_connect_state(c->ssl);
        c->state = C_TLS;
        tls_step(L, c);
        return;
    }
    start_mqtt(L, c);
}

static void start_mqtt(struct load *L, struct conn *c)
{
    c->state = C_CONNACK;
    if (!send_connect(c)) {
        conn_close(L, c, "CONNECT does not fit");
        return;
    }
    conn_flush(L, c);
}

static void handle_event(struct load *L, const struct epoll_event *e, int64_t now_us)
{
    struct conn *c = &L->conns[e->data.u64];

    if (c->state == C_CLOSED)
        return;
    if (c->state == C_TCP) {
        if (e->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(L, c);
        return;
    }
    if (c->state == C_TLS) {
        tls_step(L, c);
        return;
    }
    if (e->events & EPOLLIN)
        on_readable(L, c, now_us);
    if (c->state != C_CLOSED && (e->events & (EPOLLERR | EPOLLHUP)) && !(e->events & EPOLLIN))
        conn_close(L, c, "connection error");
    if (c->state != C_CLOSED && (e->events & EPOLLOUT))
        conn_flush(L, c);
}

/* Opens more connections, times out slow ones, keeps quiet ones alive. */
static void housekeeping(struct load *L, int64_t now_us)
{
    int64_t now_ms = now_us / 1000;

    while (L->next_open < L->nconn && L->opening < BL_CONNECTING_MAX && !L->failed)
        conn_open(L, &L->conns[L->next_open++], now_us);
    for (size_t i = 0; i < L->next_open; i++) {
        struct conn *c = &L->conns[i];

        if ((c->state == C_TCP || c->state == C_TLS || c->state == C_CONNACK) &&
            now_ms - c->opened_ms > BL_CONNECT_TIMEOUT_MS)
            conn_close(L, c, "no CONNACK within the connect timeout");
        else if (c->state == C_READY && now_ms - c->last_tx_ms > BL_PING_EVERY_MS) {
            static const unsigned char ping[2] = {0xC0, 0x00};
            if (out_put(c, ping, sizeof(ping))) {
                c->last_tx_ms = now_ms;
                mark_dirty(L, c);
            }
        }
    }
}

/* libcurl sink into a bounded buffer. */
struct body {
    char *p;
    size_t len;
};

static size_t body_write(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct body *b = ctx;
    size_t n = size * nmemb;

    if (n > BL_METRICS_BODY_MAX - 1 - b->len)
        return 0; /* too large: libcurl reports a write error */
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* GETs the metrics page into b (BL_METRICS_BODY_MAX bytes). 1 on success. */
static int metrics_get(CURL *curl, const char *url, struct body *b)
{
    long status = 0;

    b->len = 0;
    b->p[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(curl) != CURLE_OK)
        return 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    return status == 200;
}

/* The value of the sample whose line starts with `name` followed by a blank (name may
 * include labels). 1 if found. */
static int metric_value(const char *text, const char *name, double *out)
{
    size_t n = strlen(name);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            char *end = NULL;
            double v = strtod(p + n + 1, &end);
            if (end == p + n + 1)
                return 0;
            *out = v;
            return 1;
        }
    }
    return 0;
}

static double lat_quantile(const unsigned long long *h, unsigned long long total, double q)
{
    unsigned long long want = (unsigned long long)(q * (double)total), seen = 0;

    for (int i = 0; i < BL_LAT_BUCKETS; i++) {
        seen += h[i];
        if (seen > want)
            return (double)i;
    }
    return (double)(BL_LAT_BUCKETS - 1);
}

/* Refreshes L->done from the count file, or from the metrics every BL_WINDOW_POLL_MS. */
static void update_done(struct load *L, CURL *curl, struct body *mb, int64_t now_us)
{
    double v;

    if (L->count_map != NULL) {
        L->done = (double)__atomic_load_n(L->count_map, __ATOMIC_ACQUIRE) - L->done_base;
        return;
    }
    if (now_us - L->polled_us < BL_WINDOW_POLL_MS * 1000)
        return;
    L->polled_us = now_us;
    if (metrics_get(curl, L->metrics_url, mb) && metric_value(mb->p, BL_METRIC_ACCEPTED, &v))
        L->done = v - L->done_base;
}

static void progress(const struct load *L, int64_t now_us, double committed)
{
    if (L->quiet)
        return;
    if (!L->publishing) {
        fprintf(stderr, "bench_load: connecting %zu/%zu\n", L->ready, L->nconn);
        return;
    }
    double s = (double)(now_us - L->t_first_us) / 1e6;
    fprintf(stderr, "bench_load: %.1fs sent %lld acked %lld (%.0f/s)", s, (long long)L->total_sent,
            (long long)L->total_acked, s > 0 ? (double)L->total_acked / s : 0.0);
    if (committed >= 0)
        fprintf(stderr, " committed %.0f", committed);
    fputc('\n', stderr);
}

/* The publishing run. 1 when every reading was acknowledged. */
static int run(struct load *L, CURL *curl, struct body *mb, double *base)
{
    struct epoll_event ev[BL_EVENTS];
    int64_t start_us = mono_us(), last_tick_us = start_us;
    int64_t deadline_us = start_us + (int64_t)L->timeout_s * 1000000;

    while (!stop_requested && !L->failed) {
        int64_t now_us = mono_us();

        if (!L->publishing)
            housekeeping(L, now_us);
        if (!L->publishing && L->ready == L->nconn) {
            if (L->metrics_url != NULL) {
                if (!metrics_get(curl, L->metrics_url, mb) ||
                    !metric_value(mb->p, BL_METRIC_ACCEPTED, base)) {
                    fprintf(stderr, "bench_load: cannot read %s from %s\n", BL_METRIC_ACCEPTED,
                            L->metrics_url);
                    return 0;
                }
            }
            fprintf(stderr, "bench_load: %zu connections connected in %.2fs\n", L->nconn,
                    (double)(now_us - start_us) / 1e6);
            printf("bench: load_connect_time %.2f s\n", (double)(now_us - start_us) / 1e6);
            L->publishing = 1;
            now_us = mono_us();
            deadline_us = now_us + (int64_t)L->timeout_s * 1000000;
            last_tick_us = now_us;
            L->refill_us = now_us;
            L->tokens = 1.0;
            if (L->count_map != NULL)
                L->done_base = (double)__atomic_load_n(L->count_map, __ATOMIC_ACQUIRE);
            else
                L->done_base = *base;
            if (!flow_controlled(L))
                for (size_t i = 0; i < L->nconn; i++)
                    pump(L, &L->conns[i], now_us);
        }
        if (L->publishing && flow_controlled(L)) {
            int64_t budget = INT64_MAX;
            if (L->rate > 0) {
                L->tokens += L->rate * (double)(now_us - L->refill_us) / 1e6;
                if (L->tokens > L->rate / 20.0 + 1.0) /* at most a 50 ms burst */
                    L->tokens = L->rate / 20.0 + 1.0;
                L->refill_us = now_us;
                budget = (int64_t)L->tokens;
            }
            if (L->window > 0) {
                update_done(L, curl, mb, now_us);
                int64_t room = L->window - (L->total_sent - (int64_t)L->done);
                budget = room < budget ? room : budget;
            }
            if (budget > 0) {
                int64_t sent = pump_budget(L, budget, now_us);
                if (L->rate > 0)
                    L->tokens -= (double)sent;
            }
        }
        flush_dirty(L);
        if (L->publishing && L->total_acked == L->count)
            break;
        if (now_us > deadline_us) {
            fprintf(stderr, "bench_load: timed out after %ds (%s)\n", L->timeout_s,
                    L->publishing ? "publishing" : "connecting");
            L->failed = 1;
            break;
        }
        if (now_us - last_tick_us >= BL_PROGRESS_MS * 1000) {
            double committed = -1;
            if (L->publishing && L->metrics_url != NULL && metrics_get(curl, L->metrics_url, mb))
                if (metric_value(mb->p, BL_METRIC_ACCEPTED, &committed))
                    committed -= *base;
            progress(L, now_us, committed);
            last_tick_us = now_us;
        }
        int timeout_ms = (L->publishing && flow_controlled(L)) ? 1 : 50;
        int n = epoll_wait(L->ep, ev, BL_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "bench_load: epoll_wait: %s\n", strerror(errno));
            L->failed = 1;
            break;
        }
        now_us = mono_us();
        for (int i = 0; i < n; i++)
            handle_event(L, &ev[i], now_us);
    }
    return L->publishing && L->total_acked == L->count && !L->failed;
}

/* Sends DISCONNECT on every open connection and closes it. */
static void disconnect_all(struct load *L)
{
    static const unsigned char disc[2] = {0xE0, 0x00};

    for (size_t i = 0; i < L->nconn; i++) {
        struct conn *c = &L->conns[i];

        if (c->state == C_READY && out_put(c, disc, sizeof(disc)))
            conn_flush(L, c);
        conn_close(L, c, NULL);
    }
}

/* Waits until ingestd's accepted counter reaches base + count; prints the figures.
 * 1 when every reading was committed in time. */
static int wait_committed(struct load *L, CURL *curl, struct body *mb, double base)
{
    int64_t deadline_us = mono_us() + (int64_t)L->commit_timeout_s * 1000000;
    int64_t last_tick_us = mono_us();
    double v = 0, p50 = 0, p99 = 0;
    int ok = 0;

    for (;;) {
        int64_t now_us = mono_us();

        if (metrics_get(curl, L->metrics_url, mb) && metric_value(mb->p, BL_METRIC_ACCEPTED, &v) &&
            v - base >= (double)L->count) {
            ok = 1;
            break;
        }
        if (now_us > deadline_us || stop_requested) {
            fprintf(stderr, "bench_load: %.0f of %lld readings committed after %ds\n", v - base,
                    (long long)L->count, L->commit_timeout_s);
            break;
        }
        if (now_us - last_tick_us >= BL_PROGRESS_MS * 1000) {
            progress(L, now_us, v - base);
            last_tick_us = now_us;
        }
        usleep(BL_METRICS_POLL_MS * 1000);
    }
    int64_t done_us = mono_us();
    double secs = (double)(done_us - L->t_first_us) / 1e6;
    metric_value(mb->p, BL_METRIC_LAG "{quantile=\"0.5\"}", &p50);
    metric_value(mb->p, BL_METRIC_LAG "{quantile=\"0.99\"}", &p99);
    printf("bench: load_committed %.0f readings\n", v - base);
    printf("bench: load_commit_time %.3f s\n", secs);
    printf("bench: load_commit_rate %.0f readings/s\n", secs > 0 ? (v - base) / secs : 0.0);
    printf("bench: load_commit_p50_latency %.0f ms\n", p50 * 1000.0);
    printf("bench: load_commit_p99_latency %.0f ms\n", p99 * 1000.0);
    return ok;
}

int main(int argc, char **argv)
{
    struct load L;
    struct body mb = {NULL, 0};
    CURL *curl = NULL;
    struct sigaction sa;
    double base = 0;
    int status = 1, curl_inited = 0;

    memset(&L, 0, sizeof(L));
    L.ep = -1;
    if (!parse_args(&L, argc, argv)) {
        status = 2;
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!load_keys(&L))
        goto out;
    if ((int64_t)L.n > L.count) {
        fprintf(stderr, "bench_load: --count %lld is below the %zu devices\n", (long long)L.count,
                L.n);
        status = 2;
        goto out;
    }
    if (!setup(&L)) {
        fprintf(stderr, "bench_load: out of memory or epoll\n");
        goto out;
    }
    if (L.count_file != NULL && !map_count_file(&L))
        goto out;
    if (L.metrics_url != NULL) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            goto out;
        curl_inited = 1;
        curl = curl_easy_init();
        mb.p = malloc(BL_METRICS_BODY_MAX);
        if (curl == NULL || mb.p == NULL) {
            fprintf(stderr, "bench_load: out of memory\n");
            goto out;
        }
    }

    int acked_all = run(&L, curl, &mb, &base);
    int64_t end_us = L.t_last_ack_us > L.t_first_us ? L.t_last_ack_us : mono_us();
    double secs = (double)(end_us - L.t_first_us) / 1e6;
    disconnect_all(&L);
    if (L.publishing) {
        printf("bench: load_devices %zu count\n", L.n);
        printf("bench: load_connections %zu count\n", L.nconn);
        printf("bench: load_published %lld readings\n", (long long)L.total_sent);
        printf("bench: load_puback_count %lld count\n", (long long)L.total_acked);
        printf("bench: load_publish_time %.3f s\n", secs);
        printf("bench: load_publish_rate %.0f msg/s\n",
               secs > 0 ? (double)L.total_acked / secs : 0.0);
        printf("bench: load_puback_p50_latency %.0f ms\n",
               lat_quantile(L.lat, (unsigned long long)L.total_acked, 0.50));
        printf("bench: load_puback_p99_latency %.0f ms\n",
               lat_quantile(L.lat, (unsigned long long)L.total_acked, 0.99));
    }
    fflush(stdout);
    if (!acked_all) {
        fprintf(stderr, "bench_load: %lld of %lld readings acknowledged\n",
                (long long)L.total_acked, (long long)L.count);
        goto out;
    }
    if (L.metrics_url != NULL && !wait_committed(&L, curl, &mb, base))
        goto out;
    status = 0;

out:
    fflush(stdout);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    if (curl_inited)
        curl_global_cleanup();
    free(mb.p);
    teardown(&L);
    return status;
}
