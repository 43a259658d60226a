/* paho_store.h - Paho MQTT C persistence backed by cc_kvlog, and crash recovery of the
 * QoS 2 messages Paho had stored but not yet handed over.
 *
 * Paho persists an incoming QoS 2 PUBLISH ("r-<msgid>") before it sends PUBREC and the
 * delivery queue entry ("q-<seq>") before it drops "r-". Between sending PUBCOMP and
 * writing "q-" there is a window in which only "r-" exists and the broker will never
 * send the message again; ingest_recover_received() journals every "r-" message found
 * at start, so that window loses nothing (a repeat is absorbed by the unique index). */
#ifndef INGEST_PAHO_STORE_H
#define INGEST_PAHO_STORE_H

#include <limits.h>

#include <MQTTClientPersistence.h>

#include "cc_journal.h"
#include "cc_kvlog.h"

struct ingest_disk;

/* The store Paho writes to, and the disk guard told when a write finds the disk full. */
struct ingest_paho_store {
    struct cc_kvlog *kv;      /* replaced after a failed write (see below); owned */
    struct ingest_disk *disk; /* may be NULL */
    char path[PATH_MAX];      /* kv's file */
};

/* Fills p so Paho uses s->kv as its store. s must outlive the MQTT client; the caller closes
 * s->kv after it. A failed write may leave a torn record at the end of the log, and cc_kvlog
 * would append the next records behind it, where its next load stops reading: so the log is
 * reopened (which cuts the torn tail) before anything else is written. A put that failed
 * for lack of space enters the disk guard's full state (disk.h) and is tried once more in
 * the space the reserve gave back: Paho sends PUBREC whether or not the put succeeded, so
 * this is the write that must not fail. Paho calls the store under its own mutex. */
void ingest_paho_store_init(MQTTClient_persistence *p, struct ingest_paho_store *s);

/* A message parsed from a stored MQTT 3.1.1 PUBLISH packet; pointers into the packet. */
struct ingest_publish {
    const char *topic;
    size_t topic_len;
    const char *payload;
    size_t len;
};

/* Parses a whole PUBLISH packet (fixed header, topic, packet id, payload).
 * CC_OK or CC_ERR_VALIDATION. */
int ingest_parse_publish(const char *pkt, size_t n, struct ingest_publish *out);

/* Journals every stored received-QoS-2 message ("r-" keys). *count receives how many.
 * The callback fn is also called for each (to queue it), with the journal position. */
int ingest_recover_received(struct cc_kvlog *kv, struct cc_journal *j, int64_t now_ms,
                            cc_journal_fn fn, void *ctx, int *count);

#endif
