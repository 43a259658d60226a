/* cc_alert.h - the alert engine (SPEC §4).
 *
 * cc_alert_on_reading is called for every accepted reading inside the transaction that
 * stores it, so a reading and the alert changes it causes commit together. Rules:
 * HIGH_TEMP / LOW_TEMP with hysteresis and alarm delay, POWER_LOSS, SENSOR_ERROR
 * resolution on a new reading. A reading older than the device's newest stored
 * reading (is_newest == 0) changes no alert state. Thread: the caller's store. */
#ifndef CC_ALERT_H
#define CC_ALERT_H

#include "cc_store.h"

/* Applies r to the alert state of dev. CC_OK or CC_ERR_DB. */
int cc_alert_on_reading(struct cc_store *st, const struct cc_device *dev,
                        const struct cc_reading *r, int is_newest, int64_t now_ms);

#endif
