/* cc_ingest.h - the one ingestion path shared by ingestd (MQTT) and apid (HTTP).
 *
 * Validation, storage, device update and the alert engine happen here, inside the
 * caller's transaction, so both daemons behave the same. Thread: the caller's store. */
#ifndef CC_INGEST_H
#define CC_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_store.h"

enum cc_ingest_mode {
    CC_INGEST_PARTIAL = 0,        /* MQTT: store the valid items, report the others */
    CC_INGEST_ALL_OR_NOTHING = 1, /* HTTP: any invalid item rejects the request */
};

struct cc_ingest_result {
    size_t accepted;        /* readings inserted */
    size_t duplicates;      /* readings already stored (redeliveries) */
    size_t late;            /* of accepted: older than the device's newest reading when
                             * stored, so the alert engine skipped them (not an error) */
    size_t rejected;        /* readings (or whole messages) refused */
    cJSON *error;           /* SPEC §5 error object when something was refused; caller deletes */
    struct cc_reading last; /* the last valid reading (for the HTTP answer) */
    int has_last;
};

/* Validates and stores a readings payload for the device with this serial. Must run
 * inside cc_store_begin/commit. Returns CC_OK (even when some items were refused: see
 * res->error), CC_ERR_NOT_FOUND (unknown serial, res->error set), CC_ERR_BAD_JSON /
 * CC_ERR_VALIDATION (nothing stored, res->error set) or CC_ERR_DB / CC_ERR_NOMEM
 * (roll back). */
int cc_ingest_readings(struct cc_store *st, const char *serial, const char *payload, size_t len,
                       int64_t received_at, int mode, struct cc_ingest_result *res);

/* Handles one MQTT message (devices/{serial}/readings or devices/{serial}/status):
 * readings and status go through the rules above; anything refused becomes a dead
 * letter in the same transaction and res->error is the object to publish on
 * devices/{serial}/errors (serial_out receives the serial, "" when the topic has none).
 * CC_OK unless the database failed (CC_ERR_DB / CC_ERR_NOMEM: roll back, retry). */
int cc_ingest_mqtt(struct cc_store *st, const char *topic, const char *payload, size_t len,
                   int64_t received_at, struct cc_ingest_result *res,
                   char serial_out[CC_SERIAL_MAX + 1]);

/* Readings validated and held in memory at once by cc_ingest_batch: a batch is stored in
 * runs of messages whose readings together stay within this (a message alone may carry
 * CC_MAX_BATCH), so a batch of 4,096 full messages never holds 4 million readings. */
#define CC_INGEST_RUN_READINGS_MAX 8192

/* One MQTT message of a batch (topic, payload, len, received_at in; the rest out). */
struct cc_ingest_msg {
    const char *topic;
    const char *payload;
    size_t len;
    int64_t received_at;
    struct cc_ingest_result res;    /* as cc_ingest_mqtt's */
    char serial[CC_SERIAL_MAX + 1]; /* from the topic, "" when it names none */
};

/* cc_ingest_mqtt for msgs[0..n) in order, in the caller's transaction, with the store
 * calls made per run of readings messages instead of per message (cc_store.h's batch
 * functions; one alert state load per device and run). The outcome is the one of n
 * cc_ingest_mqtt calls in that order. CC_OK, or CC_ERR_DB / CC_ERR_NOMEM: every result
 * is cleared and the caller rolls back. */
int cc_ingest_batch(struct cc_store *st, struct cc_ingest_msg *msgs, size_t n);

void cc_ingest_result_clear(struct cc_ingest_result *res);

#endif
