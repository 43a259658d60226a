/* pubacks.h - which alert event each of ingestd's unacknowledged QoS 1 publishes carries,
 * by MQTT packet id (mid), and the events the broker has acknowledged since the delivery
 * worker last took them.
 *
 * Why: an alert event is SENT only once the broker has acknowledged it (docs/alerts.md,
 * "Delivery worker"). libmosquitto reports a PUBACK by mid in its loop thread; the worker
 * marks the rows in its next pass, all in one transaction, instead of one write
 * transaction per PUBACK. Until then the row stays PENDING under a lease, so a crash loses
 * nothing: the acknowledgements held here are the only thing lost, and the events they
 * name are sent again when their leases run out (at least once).
 *
 * Bounded: at most INGEST_PUBLISH_WINDOW events held and as many acknowledged ones waiting
 * (about 20 KB in all, no allocation). Pure bookkeeping, no locking: mqtt.c holds its lock
 * around every call. */
#ifndef INGEST_PUBACKS_H
#define INGEST_PUBACKS_H

#include <stdint.h>

#include "cc_notify.h"
#include "mqtt.h"

#define INGEST_PUBACKS_MAX INGEST_PUBLISH_WINDOW /* events held, and acknowledged ones waiting */

struct ingest_pubacks {
    int nheld;
    int mids[INGEST_PUBACKS_MAX];                   /* held: the publish's packet id ... */
    struct cc_notify_event evs[INGEST_PUBACKS_MAX]; /* ... and its event (id and alert) */
    int nacked;
    struct cc_notify_event acked[INGEST_PUBACKS_MAX]; /* acknowledged, not yet taken */
    /* Acknowledgements forgotten (a mid reused while held, or the acknowledged list full):
     * those events are sent again when their leases run out, never lost. */
    unsigned long long forgotten;
};

void ingest_pubacks_init(struct ingest_pubacks *p);
/* Notes that the publish with packet id mid carries event ev. 0, or -1 when
 * INGEST_PUBACKS_MAX events are held already (nothing noted: do not publish). A mid still
 * held (libmosquitto's ids wrapped round past an unacknowledged one) forgets the older
 * event, since its PUBACK could no longer be told apart. */
int ingest_pubacks_add(struct ingest_pubacks *p, int mid, struct cc_notify_event ev);
/* The broker acknowledged mid: its event, if it carries one, moves to the acknowledged
 * list. Returns 1 when mid carried an event, else 0 (an error reply, or forgotten). */
int ingest_pubacks_ack(struct ingest_pubacks *p, int mid);
/* 1 when event ev (its id and its alert both) is held, or acknowledged and not yet taken:
 * handing it over again would only send it twice. An id held for another alert is another
 * event (cc_notify_event): 0. */
int ingest_pubacks_holds(const struct ingest_pubacks *p, struct cc_notify_event ev);
/* Moves up to max acknowledged events into evs; returns how many. */
int ingest_pubacks_take(struct ingest_pubacks *p, struct cc_notify_event *evs, int max);

#endif
