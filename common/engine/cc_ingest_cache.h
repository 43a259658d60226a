/* cc_ingest_cache.h - what the ingest path knows about a device across transactions: its
 * row (id, cell, newest reading) and its alert state (cc_alert.h), kept by serial so that a
 * run of readings (cc_ingest.c) need not look either up again in the next transaction.
 *
 * Opt-in, per store, SQLite only: ingestd's writer turns it on for its own connection,
 * which writes devices, cells and alerts through cc_ingest_batch and nothing else. A cache
 * is served only inside cc_store_begin's transaction and only while the store's stamp
 * (cc_store_stamp: SQLite's data_version and the store's rollbacks) is the one it was
 * filled under: a commit by any other connection (apid changing a device or a threshold,
 * acknowledging an alert; ingestd's jobs; another ingestd) or a rolled-back transaction
 * empties it before the next run reads from it. Bounded: CC_INGEST_CACHE_DEVICES entries,
 * emptied when full. */
#ifndef CC_INGEST_CACHE_H
#define CC_INGEST_CACHE_H

#include "cc_alert.h"
#include "cc_store.h"

#define CC_INGEST_CACHE_DEVICES 8192 /* devices held; the cache starts over past it */

struct cc_ingest_cache;

/* One device as the cache holds it. */
struct cc_ingest_cached {
    struct cc_device dev;
    int has_state; /* state holds its alert state as of the last committed run */
    struct cc_alert_state state;
};

/* Turns the cache on for st (a no-op on PostgreSQL). CC_OK or CC_ERR_NOMEM. */
int cc_ingest_cache_enable(struct cc_store *st);

/* st's cache for the current transaction, emptied first when the stamp moved; NULL when
 * st has none, outside cc_store_begin's transaction, or when the stamp cannot be read. */
struct cc_ingest_cache *cc_ingest_cache_for(struct cc_store *st);
/* The entry of serial, or NULL. Valid until the next put or clear. */
struct cc_ingest_cached *cc_ingest_cache_get(struct cc_ingest_cache *c, const char *serial);
/* The entry of dev->serial, added (with no state) if missing, its row set to *dev. */
struct cc_ingest_cached *cc_ingest_cache_put(struct cc_ingest_cache *c,
                                             const struct cc_device *dev);
/* Forgets everything (a run that failed: its transaction will be rolled back). */
void cc_ingest_cache_clear(struct cc_ingest_cache *c);

#endif
