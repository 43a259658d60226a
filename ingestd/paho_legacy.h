/* paho_legacy.h - the Paho MQTT C store of an older ingestd, read once at upgrade.
 *
 * Until the move to libmosquitto (README "Durability"), ingestd received at QoS 2 through
 * Paho, whose store (<data dir>/<client id>.paho, a cc_kvlog) could hold an incoming
 * PUBLISH ("r-<msgid>") that the broker would never send again (between PUBCOMP and Paho's
 * queue write). At the first start of a newer ingestd such a message is journaled like
 * any other, and the store is deleted once the writer has committed it. */
#ifndef INGEST_PAHO_LEGACY_H
#define INGEST_PAHO_LEGACY_H

#include <limits.h>

#include "cc_journal.h"
#include "cc_kvlog.h"

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
