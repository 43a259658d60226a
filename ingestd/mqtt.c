/* mqtt.c - ingestd's broker connection (see mqtt.h). */
#include "mqtt.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "cc_config.h"
#include "cc_log.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "pubacks.h"
#include "sockbuf.h"

#define SYS_BACKLOG_TOPIC "$SYS/broker/store/messages/count"
#define POLL_MAX_MS 1000 /* the keepalive and the stop flag are looked at this often */
#define HOST_MAX 256
#define SHARE_PREFIX "$share/"
/* Bytes of a subscription topic: $share/<group>/ and the longest device topic. */
#define SUB_TOPIC_MAX                                                                              \
    (sizeof SHARE_PREFIX + CC_INGEST_SHARE_GROUP_MAX + sizeof "/devices/+/readings")

struct ingest_mqtt {
    struct mosquitto *mosq;
    struct ingest_mqtt_options o;
    char host[HOST_MAX];
    int port;
    int tls;
    int wake_fd;        /* eventfd: a publish from another thread wakes the loop's poll */
    int connected;      /* CONNACK accepted and SUBACK granted QoS 1 (loop thread) */
    int subscribe_mid;  /* the SUBSCRIBE whose SUBACK is awaited */
    int refused;        /* a message could not be kept: drop the connection unacknowledged */
    int round_messages; /* messages handed over in the current read round */
    long round_bytes;   /* bytes of the PUBLISH packets read in the current read round */
    int64_t rate_t0;
    unsigned long long rate_n0;
    struct ingest_mqtt_counters c;
    /* The alert events held unacknowledged, by mid, and those acknowledged (pubacks.h).
     * acks_mu is held across mosquitto_publish and the note of its mid, so that its PUBACK
     * (on_publish, in the loop thread) cannot be looked up before the note exists. */
    pthread_mutex_t acks_mu;
    struct ingest_pubacks acks;
    unsigned long long acks_forgotten_logged; /* the delivery worker's thread only */
    struct ingest_sockbuf rbuf;  /* under libmosquitto's reads, plain connections (sockbuf.h) */
    struct ingest_sockwbuf wbuf; /* and under its writes */
};

/* tcp://host[:port] or ssl://host[:port], already checked by cc_config (MQTT_URL). */
static int parse_url(struct ingest_mqtt *m, const char *url)
{
    const char *h;
    size_t n;

    if (strncmp(url, "tcp://", 6) == 0) {
        m->tls = 0;
        m->port = 1883;
    } else if (strncmp(url, "ssl://", 6) == 0) {
        m->tls = 1;
        m->port = 8883;
    } else {
        return CC_ERR_VALIDATION;
    }
    h = url + 6;
    n = strlen(h);
    if (h[0] == '[') { /* [v6]:port */
        const char *end = strchr(h, ']');
        if (end == NULL || (size_t)(end - h - 1) >= sizeof m->host)
            return CC_ERR_VALIDATION;
        memcpy(m->host, h + 1, (size_t)(end - h - 1));
        m->host[end - h - 1] = '\0';
        if (end[1] == ':')
            m->port = atoi(end + 2);
        return CC_OK;
    }
    const char *colon = strrchr(h, ':');
    if (colon != NULL)
        n = (size_t)(colon - h);
    if (n == 0 || n >= sizeof m->host)
        return CC_ERR_VALIDATION;
    memcpy(m->host, h, n);
    m->host[n] = '\0';
    if (colon != NULL)
        m->port = atoi(colon + 1);
    return CC_OK;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    struct ingest_mqtt *m = obj;
    static const char *const plain[2] = {"devices/+/readings", "devices/+/status"};
    char buf[2][SUB_TOPIC_MAX];
    char *topics[2];
    const char *group = m->o.share_group;

    /* Both device topics are shared: a status message, like a reading, must be stored
     * once, and a hash-by-client broker (EMQX 5 hash_clientid) then keeps a device's
     * status and readings on one member, in order. The $SYS backlog figure stays a plain
     * subscription: every member wants its own copy. ingestd subscribes to nothing else
     * (it only publishes devices/{serial}/errors and alerts/...). */
    for (int i = 0; i < 2; i++) {
        if (group != NULL && group[0] != '\0')
            snprintf(buf[i], sizeof buf[i], SHARE_PREFIX "%s/%s", group, plain[i]);
        else
            snprintf(buf[i], sizeof buf[i], "%s", plain[i]);
        topics[i] = buf[i];
    }
    if (rc != 0) {
        cc_log_error("broker_connect_refused", "%s", mosquitto_connack_string(rc));
        return; /* the broker closes the connection; the loop reconnects */
    }
    /* Every time, session present or not: a SUBSCRIBE for what we already have is
     * harmless, and a broker that lost our session (no persistence) needs it. */
    rc = mosquitto_subscribe_multiple(mosq, &m->subscribe_mid, 2, topics, 1, 0, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_subscribe(mosq, NULL, SYS_BACKLOG_TOPIC, 0);
    if (rc != MOSQ_ERR_SUCCESS)
        cc_log_error("subscribe_failed", "%s", mosquitto_strerror(rc));
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *granted)
{
    struct ingest_mqtt *m = obj;

    if (mid != m->subscribe_mid)
        return;
    if (n != 2 || granted[0] != 1 || granted[1] != 1) {
        cc_log_error("subscribe_failed", "granted QoS %d,%d (1 needed)", n > 0 ? granted[0] : -1,
                     n > 1 ? granted[1] : -1);
        mosquitto_disconnect(mosq);
        return;
    }
    m->connected = 1;
    cc_log_info("broker_connected", "url=%s share_group=%s", m->o.url,
                m->o.share_group != NULL ? m->o.share_group : "");
}

/* A PUBACK. The event it carries moves to the acknowledged list before the pending count
 * drops, so the events held never outnumber the publishes pending: the room the delivery
 * worker reads (ingest_mqtt_publish_room) never lets it hold more than the window. */
static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    struct ingest_mqtt *m = obj;

    (void)mosq;
    pthread_mutex_lock(&m->acks_mu);
    ingest_pubacks_ack(&m->acks, mid);
    pthread_mutex_unlock(&m->acks_mu);
    __atomic_sub_fetch(&m->c.publish_pending, 1, __ATOMIC_RELAXED);
}

/* Bytes of an MQTT 3.1.1 PUBLISH packet: fixed header (type, remaining length in 1-4 bytes
 * of 7 bits), topic length and topic, packet id (QoS > 0), payload. */
static long publish_packet_bytes(const struct mosquitto_message *msg)
{
    long rem = 2 + (long)strlen(msg->topic) + (msg->qos > 0 ? 2 : 0) + msg->payloadlen;
    long head = 2;

    for (long r = rem; r >= 128; r /= 128)
        head++;
    return head + rem;
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    struct ingest_mqtt *m = obj;

    (void)mosq;
    m->round_bytes += publish_packet_bytes(msg);
    if (msg->topic[0] == '$') {
        if (strcmp(msg->topic, SYS_BACKLOG_TOPIC) == 0 && msg->payloadlen > 0 &&
            msg->payloadlen < 32) {
            char num[32];
            memcpy(num, msg->payload, (size_t)msg->payloadlen);
            num[msg->payloadlen] = '\0';
            __atomic_store_n(&m->c.broker_backlog, strtoll(num, NULL, 10), __ATOMIC_RELAXED);
        }
        return;
    }
    if (msg->retain) {
        /* A broker sets RETAIN only on the copy of a retained message it sends because of a
         * new SUBSCRIBE (MQTT 3.1.1 3.3.1.3; v5 without retain-as-published), never on the
         * delivery through an established subscription, which ingestd has had. ingestd
         * subscribes at every connect, so a device's retained reading would be stored again
         * at each reconnect (at the time received when it has no ts), and a retained status
         * applied again. libmosquitto acknowledges it all the same. */
        __atomic_add_fetch(&m->c.retained_skipped, 1, __ATOMIC_RELAXED);
        return;
    }
    if (m->refused)
        return; /* this round is dropped unacknowledged anyway */
    if (m->o.on_message(m->o.ctx, msg->topic, strlen(msg->topic), msg->payload,
                        msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0) != 0)
        m->refused = 1;
    else
        m->round_messages++;
}

/* Closes the socket without writing what is queued (the PUBACKs of a round that could not
 * be kept): the broker delivers those messages again. */
static void drop_connection(struct ingest_mqtt *m)
{
    int fd = mosquitto_socket(m->mosq);

    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    ingest_sockbuf_reset(&m->rbuf); /* unacknowledged too: the broker sends them again */
    ingest_sockwbuf_reset(&m->wbuf);
    mosquitto_disconnect(m->mosq);
    m->connected = 0;
}

/* Reads up to INGEST_READ_ROUND_MAX packets, while the socket has bytes waiting.
 * mosquitto_loop_read reads as many packets as it has QoS messages outstanding (often one)
 * and cannot tell us why it stopped: its errno is no guide, since every queued PUBACK
 * also writes a wake-up byte to libmosquitto's internal socket pair, which nobody reads
 * when the application runs the loop, and which fails with EAGAIN once full (measured:
 * rounds of one message). FIONREAD counts what is waiting; on a plain connection
 * libmosquitto reads exactly a packet's bytes from the socket, so the PUBLISH packets read
 * since are subtracted from that count, and FIONREAD is asked again only once they have
 * used it up, or after a read that delivered no PUBLISH (another packet, or a partial one),
 * instead of once per message. Counting wrong costs no message, only a system call: too
 * much subtracted ends the round early (the next poll starts another), too little makes
 * one more read that finds nothing and ends in FIONREAD. On a plain connection the bytes
 * waiting are the socket's and our read buffer's (sockbuf.h), which serves libmosquitto's
 * byte-sized header reads from one read(2) of many packets. For TLS, FIONREAD counts the
 * encrypted bytes: asked after every read (libmosquitto drains what OpenSSL has buffered). */
static int read_round(struct ingest_mqtt *m)
{
    int fd;
    int rc = MOSQ_ERR_SUCCESS;
    long avail = 0; /* bytes FIONREAD counted, less the PUBLISH packets read since */

    for (int i = 0; i < INGEST_READ_ROUND_MAX && !m->refused; i++) {
        long before = m->round_bytes;
        int n = 0;

        if (!m->tls)
            ingest_sockbuf_begin(&m->rbuf, mosquitto_socket(m->mosq));
        rc = mosquitto_loop_read(m->mosq, 1);
        ingest_sockbuf_end();
        if (rc != MOSQ_ERR_SUCCESS)
            break;
        avail -= m->round_bytes - before;
        if (!m->tls && m->round_bytes > before && avail > 0)
            continue;
        fd = mosquitto_socket(m->mosq);
        if (fd < 0 || ioctl(fd, FIONREAD, &n) != 0 || n < 0)
            break;
        avail = n + (m->tls ? 0 : (long)ingest_sockbuf_pending(&m->rbuf));
        if (avail <= 0)
            break;
    }
    return rc;
}

static void update_rate(struct ingest_mqtt *m)
{
    int64_t now = cc_mono_ms();
    unsigned long long n = __atomic_load_n(&m->c.received, __ATOMIC_RELAXED);

    if (m->rate_t0 == 0) {
        m->rate_t0 = now;
        m->rate_n0 = n;
    } else if (now - m->rate_t0 >= INGEST_RATE_WINDOW_S * 1000) {
        double r = (double)(n - m->rate_n0) * 1000.0 / (double)(now - m->rate_t0);
        __atomic_store(&m->c.receive_rate, &r, __ATOMIC_RELAXED);
        m->rate_t0 = now;
        m->rate_n0 = n;
    }
}

/* Whether libmosquitto has packets queued or our write buffer bytes not yet written. */
static int write_wanted(struct ingest_mqtt *m)
{
    return mosquitto_want_write(m->mosq) || ingest_sockwbuf_pending(&m->wbuf) > 0;
}

/* The round's PUBACKs, our publishes, PINGREQ: whatever is queued. libmosquitto writes
 * each packet with its own write(2), and with TCP_NODELAY each became a segment of 4 bytes
 * that the broker woke up for. On a plain connection they gather in our write buffer
 * (sockbuf.h) and leave with one write(2); over TLS they are corked, and leave in one
 * segment when the cork is pulled (at once, not after TCP_CORK's 200 ms). A MOSQ_ERR_*
 * code; bytes a full socket did not take wait for the next turn's POLLOUT. */
static int write_queued(struct ingest_mqtt *m)
{
    int fd = mosquitto_socket(m->mosq);
    int rc;

    if (fd < 0)
        return MOSQ_ERR_NO_CONN;
    if (!m->tls) {
        ingest_sockwbuf_begin(&m->wbuf, fd);
        rc = mosquitto_loop_write(m->mosq, 1);
        ingest_sockwbuf_end();
        if (ingest_sockwbuf_flush(&m->wbuf) < 0 && rc == MOSQ_ERR_SUCCESS)
            rc = MOSQ_ERR_ERRNO;
        return rc;
    }
    int cork = m->round_messages > 1;
    int on = 1, off = 0;

    if (cork && setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on) != 0)
        cork = 0;
    rc = mosquitto_loop_write(m->mosq, 1);
    if (cork && setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off) != 0 &&
        rc == MOSQ_ERR_SUCCESS)
        rc = MOSQ_ERR_ERRNO; /* the PUBACKs would wait: start the connection over */
    return rc;
}

/* One turn: wait for the socket or a wake-up, read a round, make it safe, acknowledge.
 * Returns a MOSQ_ERR_* code: anything but success ends the connection. */
static int turn(struct ingest_mqtt *m)
{
    struct pollfd p[2];
    int buffered = !m->tls && ingest_sockbuf_pending(&m->rbuf) > 0;
    int rc;

    p[0].fd = mosquitto_socket(m->mosq);
    p[0].events = POLLIN | (write_wanted(m) ? POLLOUT : 0);
    p[1].fd = m->wake_fd;
    p[1].events = POLLIN;
    p[0].revents = p[1].revents = 0;
    if (p[0].fd < 0)
        return MOSQ_ERR_NO_CONN;
    /* Bytes a round left in the read buffer (it stopped at INGEST_READ_ROUND_MAX): poll
     * cannot see them, so it only looks, and the round reads them. */
    if (poll(p, 2, buffered ? 0 : POLL_MAX_MS) < 0 && errno != EINTR)
        return MOSQ_ERR_ERRNO;
    if (buffered)
        p[0].revents |= POLLIN;
    if (p[1].revents & POLLIN) {
        uint64_t v;
        if (read(m->wake_fd, &v, sizeof v) < 0) {
            /* EAGAIN: another turn drained it */
        }
    }
    if (p[0].revents & (POLLIN | POLLERR | POLLHUP)) {
        m->round_messages = 0;
        m->round_bytes = 0;
        rc = read_round(m);
        if (m->refused) {
            drop_connection(m);
            return MOSQ_ERR_CONN_LOST;
        }
        if (m->round_messages > 0) {
            /* Even when the read then failed: what was staged is journaled now. */
            __atomic_add_fetch(&m->c.received, (unsigned long long)m->round_messages,
                               __ATOMIC_RELAXED);
            __atomic_add_fetch(&m->c.rounds, 1, __ATOMIC_RELAXED);
            if (m->o.on_round != NULL && m->o.on_round(m->o.ctx) != 0) {
                drop_connection(m);
                return MOSQ_ERR_CONN_LOST;
            }
        }
        if (rc != MOSQ_ERR_SUCCESS)
            return rc;
    }
    if (write_wanted(m)) {
        rc = write_queued(m);
        if (rc != MOSQ_ERR_SUCCESS)
            return rc;
    }
    return mosquitto_loop_misc(m->mosq);
}

static void tick(struct ingest_mqtt *m)
{
    if (m->o.on_tick != NULL)
        m->o.on_tick(m->o.ctx);
}

/* The reconnect delay, with the housekeeping going on. Returns the next delay: twice
 * this one, up to INGEST_BACKOFF_MAX_MS. */
static long backoff_wait(struct ingest_mqtt *m, long ms, volatile sig_atomic_t *stop)
{
    for (long waited = 0; waited < ms && !*stop; waited += 50) {
        cc_sleep_ms(50);
        tick(m);
    }
    return ms * 2 > INGEST_BACKOFF_MAX_MS ? INGEST_BACKOFF_MAX_MS : ms * 2;
}

void ingest_mqtt_run(struct ingest_mqtt *m, volatile sig_atomic_t *stop)
{
    long backoff = INGEST_BACKOFF_MIN_MS;
    int ever = 0;

    while (!*stop) {
        int rc;

        m->connected = 0;
        m->refused = 0;
        ingest_sockbuf_reset(&m->rbuf); /* the last connection's bytes, if any */
        ingest_sockwbuf_reset(&m->wbuf);
        rc = ever ? mosquitto_reconnect(m->mosq)
                  : mosquitto_connect(m->mosq, m->host, m->port, INGEST_KEEPALIVE_S);
        if (rc != MOSQ_ERR_SUCCESS) {
            cc_log_warn("broker_connect_failed", "url=%s: %s; retry in %ld ms", m->o.url,
                        rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc), backoff);
            backoff = backoff_wait(m, backoff, stop);
            continue;
        }
        if (ever)
            __atomic_add_fetch(&m->c.reconnects, 1, __ATOMIC_RELAXED);
        ever = 1;
        while (!*stop) {
            rc = turn(m);
            update_rate(m);
            tick(m);
            if (rc != MOSQ_ERR_SUCCESS)
                break;
            if (m->connected)
                backoff = INGEST_BACKOFF_MIN_MS;
        }
        if (*stop && rc == MOSQ_ERR_SUCCESS) {
            /* Every round read so far was handed over and written in its turn: a clean
             * DISCONNECT keeps the session (and anything unread) with the broker. */
            mosquitto_disconnect(m->mosq);
            for (int i = 0; i < 20 && write_wanted(m); i++)
                if (write_queued(m) != MOSQ_ERR_SUCCESS)
                    break;
            break;
        }
        m->connected = 0;
        cc_log_warn("broker_connection_lost", "%s",
                    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        backoff = backoff_wait(m, backoff, stop);
    }
}

/* ingest_mqtt_publish, giving the message's mid. */
static int publish(struct ingest_mqtt *m, const char *topic, const char *payload, size_t len,
                   int *mid)
{
    uint64_t one = 1;
    int rc;

    if (len > INT32_MAX)
        return -1;
    if (__atomic_add_fetch(&m->c.publish_pending, 1, __ATOMIC_RELAXED) >
        INGEST_PUBLISH_PENDING_MAX) {
        __atomic_sub_fetch(&m->c.publish_pending, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&m->c.publish_refused, 1, __ATOMIC_RELAXED);
        return -1;
    }
    rc = mosquitto_publish(m->mosq, mid, topic, (int)len, payload, 1, false);
    /* NO_CONN: queued all the same (libmosquitto keeps QoS 1 messages and sends them once
     * the broker has accepted the next connection). */
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
        __atomic_sub_fetch(&m->c.publish_pending, 1, __ATOMIC_RELAXED);
        cc_log_warn("publish_failed", "topic=%s: %s", topic, mosquitto_strerror(rc));
        return -1;
    }
    if (strncmp(topic, "devices/", 8) == 0)
        __atomic_add_fetch(&m->c.errors_published, 1, __ATOMIC_RELAXED);
    if (write(m->wake_fd, &one, sizeof one) < 0) {
        /* the counter is saturated: the loop is awake anyway */
    }
    return 0;
}

int ingest_mqtt_publish(void *arg, const char *topic, const char *payload, size_t len)
{
    return publish(arg, topic, payload, len, NULL);
}

int ingest_mqtt_publish_event(void *arg, const char *topic, const char *payload, size_t len,
                              struct cc_notify_event ev)
{
    struct ingest_mqtt *m = arg;
    int mid = 0;
    int rc;

    pthread_mutex_lock(&m->acks_mu);
    if (ingest_pubacks_holds(&m->acks, ev)) {
        rc = CC_NOTIFY_HELD;
    } else if (m->acks.nheld >= INGEST_PUBACKS_MAX) {
        /* Not reached while the worker keeps to the room; a message that could not be
         * matched to its PUBACK would never be marked SENT. */
        __atomic_add_fetch(&m->c.publish_refused, 1, __ATOMIC_RELAXED);
        rc = -1;
    } else {
        rc = publish(m, topic, payload, len, &mid);
        if (rc == 0)
            ingest_pubacks_add(&m->acks, mid, ev);
    }
    pthread_mutex_unlock(&m->acks_mu);
    return rc;
}

int ingest_mqtt_take_acked(void *arg, struct cc_notify_event *evs, int max)
{
    struct ingest_mqtt *m = arg;
    unsigned long long forgotten;
    int n;

    pthread_mutex_lock(&m->acks_mu);
    n = ingest_pubacks_take(&m->acks, evs, max);
    forgotten = m->acks.forgotten;
    pthread_mutex_unlock(&m->acks_mu);
    if (forgotten != m->acks_forgotten_logged) { /* this thread only */
        cc_log_warn("alert_acks_forgotten", "%llu in all: those events go again after %d ms",
                    forgotten, CC_NOTIFY_ACK_LEASE_MS);
        m->acks_forgotten_logged = forgotten;
    }
    return n;
}

int ingest_mqtt_publish_room(void *arg)
{
    struct ingest_mqtt *m = arg;
    unsigned long long held = __atomic_load_n(&m->c.publish_pending, __ATOMIC_RELAXED);

    return held < INGEST_PUBLISH_WINDOW ? (int)(INGEST_PUBLISH_WINDOW - held) : 0;
}

struct ingest_mqtt_counters *ingest_mqtt_counters(struct ingest_mqtt *m)
{
    return &m->c;
}

int ingest_mqtt_new(const struct ingest_mqtt_options *o, struct ingest_mqtt **out)
{
    struct ingest_mqtt *m = calloc(1, sizeof *m);
    int rc;

    if (m == NULL)
        return CC_ERR_NOMEM;
    m->o = *o;
    m->wake_fd = -1;
    pthread_mutex_init(&m->acks_mu, NULL);
    ingest_pubacks_init(&m->acks);
    ingest_sockbuf_init(&m->rbuf);
    ingest_sockwbuf_init(&m->wbuf);
    m->c.broker_backlog = -1;
    if (parse_url(m, o->url) != CC_OK) {
        cc_log_error("mqtt_url_invalid", "%s", o->url);
        rc = CC_ERR_VALIDATION;
        goto fail;
    }
    m->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->wake_fd < 0) {
        rc = CC_ERR_IO;
        goto fail;
    }
    mosquitto_lib_init();
    /* clean_session false: the broker keeps our subscription and backlog while we are away. */
    m->mosq = mosquitto_new(o->client_id, false, m);
    if (m->mosq == NULL) {
        rc = CC_ERR_NOMEM;
        goto fail;
    }
    /* Threaded mode: packets are only queued by callbacks and other threads, and written
     * by our loop (mqtt.h). */
    mosquitto_threaded_set(m->mosq, true);
    mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(m->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_max_inflight_messages_set(m->mosq, INGEST_PUBLISH_INFLIGHT);
    if (o->username != NULL && o->username[0] != '\0')
        mosquitto_username_pw_set(m->mosq, o->username, o->password);
    if (m->tls) {
        rc = mosquitto_tls_set(m->mosq, o->cafile, o->cafile ? NULL : "/etc/ssl/certs", NULL, NULL,
                               NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            cc_log_error("mqtt_tls_failed", "%s", mosquitto_strerror(rc));
            rc = CC_ERR_VALIDATION;
            goto fail;
        }
    }
    mosquitto_connect_callback_set(m->mosq, on_connect);
    mosquitto_subscribe_callback_set(m->mosq, on_subscribe);
    mosquitto_publish_callback_set(m->mosq, on_publish);
    mosquitto_message_callback_set(m->mosq, on_message);
    *out = m;
    return CC_OK;
fail:
    ingest_mqtt_free(m);
    return rc;
}

void ingest_mqtt_free(struct ingest_mqtt *m)
{
    if (m == NULL)
        return;
    if (m->mosq != NULL) {
        mosquitto_destroy(m->mosq);
        mosquitto_lib_cleanup();
    }
    if (m->wake_fd >= 0)
        close(m->wake_fd);
    pthread_mutex_destroy(&m->acks_mu);
    free(m);
}
