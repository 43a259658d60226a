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

#include <MQTTClientPersistence.h>

#include "cc_journal.h"
#include "cc_kvlog.h"

/* Fills p so Paho uses kv as its store. kv must outlive the MQTT client. */
void ingest_paho_store_init(MQTTClient_persistence *p, struct cc_kvlog *kv);

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
