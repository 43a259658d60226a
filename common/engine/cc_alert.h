/* cc_alert.h - the alert engine (SPEC §4).
 *
 * The ingest path (cc_ingest.c) loads the state of a batch's devices and applies every
 * accepted reading inside the transaction that stores it, so a reading and the alert
 * changes it causes commit together. Rules:
 * HIGH_TEMP / LOW_TEMP with hysteresis and alarm delay, POWER_LOSS, SENSOR_ERROR
 * resolution on a new reading. A reading older than the device's newest stored
 * reading (is_newest == 0) changes no alert state. Thread: the caller's store. */
#ifndef CC_ALERT_H
#define CC_ALERT_H

#include <stddef.h>
#include "cc_alert_ops.h"
#include "cc_store.h"

/* What the engine knows about one device before applying a reading: its cell's rules,
 * its ACTIVE alerts and its pending excursions. Loaded once per device per batch and
 * kept up to date by cc_alert_apply, so a batch of readings costs one load per device. */
struct cc_alert_state {
    int have_cell; /* 0: the cell went away in this transaction, nothing to judge */
    double min_temp, max_temp, hysteresis; /* °C */
    int64_t delay_ms;
    int64_t active[CC_ALERT_TYPE_COUNT]; /* ACTIVE alert id, 0 if none */
    int has_pending[CC_ALERT_TYPE_COUNT];
    int64_t pending_since[CC_ALERT_TYPE_COUNT]; /* reading ts the excursion began */
};

/* Loads the state of devs[0..n) into out[0..n). CC_OK or CC_ERR_DB. */
int cc_alert_states_load(struct cc_store *st, const struct cc_device *const *devs, size_t n,
                         struct cc_alert_state *out);
/* Applies r, the device's newest reading, to its state s (loaded by cc_alert_states_load
 * in this transaction and updated by every earlier apply): writes the alert changes and
 * their notifications, and updates s to match. CC_OK or CC_ERR_DB. */
int cc_alert_apply(struct cc_store *st, const struct cc_device *dev, const struct cc_reading *r,
                   int64_t now_ms, struct cc_alert_state *s);

/* Applies r to the alert state of dev (a load and an apply). CC_OK or CC_ERR_DB. */
int cc_alert_on_reading(struct cc_store *st, const struct cc_device *dev,
                        const struct cc_reading *r, int is_newest, int64_t now_ms);

#endif
