/* mqtt.h - ingestd's broker connection: libmosquitto in threaded mode, driven by a loop
 * of our own so that a message is acknowledged only after it is safe.
 *
 * Why libmosquitto and not Paho: Paho writes the PUBACK of a QoS 1 message before the
 * application sees it. libmosquitto in threaded mode (mosquitto_threaded_set) only queues
 * the PUBACK while the message callback runs; it goes out in mosquitto_loop_write, which
 * this loop calls after a whole read round has been handed to the callback and the round
 * callback has written it to the journal (and, with INGEST_FSYNC=1, fdatasync'd it: a group
 * acknowledgement). This is how
 * libmosquitto 2.0.x behaves, not a documented promise: test_redelivery.py pins it.
 *
 * One thread runs ingest_mqtt_run; ingest_mqtt_publish may be called from any thread. */
#ifndef INGEST_MQTT_H
#define INGEST_MQTT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_notify.h"

/* Messages read from the socket before their acknowledgements are written: bounds the time
 * between a read and its PUBACK, and the keepalive's wait (a few ms at the rates we see). */
#define INGEST_READ_ROUND_MAX 1000
/* Our own QoS 1 publishes (errors, alerts) that the broker has not acknowledged yet, queued
 * or in flight. libmosquitto would queue without limit; past this, publish refuses (the
 * caller retries a notification later, an error reply is counted as dropped). */
#define INGEST_PUBLISH_PENDING_MAX 10000
#define INGEST_PUBLISH_INFLIGHT 1000 /* of those, sent and awaiting PUBACK */
/* The alert events the delivery worker hands over while the client holds this many
 * (ingest_mqtt_publish_room): each held one is a copy and a packet (~1.1 KiB for a 412-byte
 * event), and with the whole pending limit open a churn backlog kept up to 4,000 of them
 * (4.4 MiB, make bench), all of it in ingestd's peak RSS. At the in-flight window the
 * broker is never left waiting. */
#define INGEST_PUBLISH_WINDOW INGEST_PUBLISH_INFLIGHT
#define INGEST_KEEPALIVE_S 20
#define INGEST_BACKOFF_MIN_MS 250   /* first reconnect delay */
#define INGEST_BACKOFF_MAX_MS 10000 /* longest reconnect delay */
#define INGEST_RATE_WINDOW_S 10     /* the receive rate in /metrics is over this window */

struct ingest_mqtt;

/* Called for each device message, in the loop thread. The message must be safe (journaled)
 * once this returns or, at the latest, once the round callback has returned: its PUBACK may
 * then go out (ingestd stages it here and writes the round in on_round). Return 0; non-zero
 * means the message could not be kept (ingestd is stopping): the connection is then dropped
 * without writing the round's acknowledgements, and the broker delivers the message again. */
typedef int (*ingest_mqtt_message_fn)(void *ctx, const char *topic, size_t topic_len,
                                      const void *payload, size_t len);
/* Called after a read round that delivered messages (even if the read then failed), before
 * their acknowledgements are written: the round's journal write, INGEST_FSYNC's fdatasync.
 * Non-zero: as for the message callback. */
typedef int (*ingest_mqtt_round_fn)(void *ctx);

/* Called in the loop thread at least every second, connected or not (housekeeping). */
typedef void (*ingest_mqtt_tick_fn)(void *ctx);

struct ingest_mqtt_options {
    const char *url;    /* tcp://host[:port] or ssl://host[:port] (MQTT_URL) */
    const char *cafile; /* for ssl://; NULL: the system's CA directory */
    const char *client_id;
    const char *username;
    const char *password;
    /* NULL or "": subscribe plainly. A group name (cc_config: INGEST_SHARE_GROUP, at most
     * CC_INGEST_SHARE_GROUP_MAX bytes, no '/', '+', '#'): the device topics are subscribed
     * as $share/<group>/..., so the broker hands each message to one member of the group. */
    const char *share_group;
    ingest_mqtt_message_fn on_message;
    ingest_mqtt_round_fn on_round; /* may be NULL */
    ingest_mqtt_tick_fn on_tick;   /* may be NULL */
    void *ctx;
};

/* Counters for /metrics (read with __atomic loads). */
struct ingest_mqtt_counters {
    unsigned long long reconnects;
    unsigned long long received;         /* device messages handed to on_message */
    unsigned long long retained_skipped; /* retained copies a SUBSCRIBE replayed, not handed */
    unsigned long long errors_published; /* devices/{serial}/errors accepted by publish */
    unsigned long long publish_refused;  /* publishes refused: pending past the limit */
    unsigned long long rounds;           /* read rounds with at least one message */
    long long broker_backlog;            /* $SYS/broker/store/messages/count, -1 until known */
    double receive_rate;                 /* messages/s over the last INGEST_RATE_WINDOW_S */
    unsigned long long publish_pending;
};

int ingest_mqtt_new(const struct ingest_mqtt_options *o, struct ingest_mqtt **out);
/* Connects, subscribes (QoS 1, persistent session) and serves until *stop is set,
 * reconnecting with backoff. On return every acknowledgement owed for a message that
 * on_message accepted has been written, or the connection is gone. */
void ingest_mqtt_run(struct ingest_mqtt *m, volatile sig_atomic_t *stop);
/* QoS 1 publish from any thread. 0 when queued, -1 when refused (not connected is fine:
 * libmosquitto sends it after the reconnect; past INGEST_PUBLISH_PENDING_MAX it is not). */
int ingest_mqtt_publish(void *m, const char *topic, const char *payload, size_t len);
/* An alert event's publish (a cc_notify_publish_fn): as ingest_mqtt_publish, noting which
 * event the message carries until the broker acknowledges it (ingest_mqtt_take_acked).
 * CC_NOTIFY_HELD, publishing nothing, when ev is held already (sent, unacknowledged);
 * -1 also when INGEST_PUBLISH_WINDOW events are held. */
int ingest_mqtt_publish_event(void *m, const char *topic, const char *payload, size_t len,
                              struct cc_notify_event ev);
/* Moves up to max alert events the broker has acknowledged into evs; returns how many (a
 * cc_notify_acked_fn). */
int ingest_mqtt_take_acked(void *m, struct cc_notify_event *evs, int max);
/* INGEST_PUBLISH_WINDOW less the publishes held unacknowledged, at least 0 (a
 * cc_notify_room_fn). */
int ingest_mqtt_publish_room(void *m);
struct ingest_mqtt_counters *ingest_mqtt_counters(struct ingest_mqtt *m);
void ingest_mqtt_free(struct ingest_mqtt *m);

#endif
