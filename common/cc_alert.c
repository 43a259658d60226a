/* cc_alert.c - the alert engine (SPEC §4), see cc_alert.h.
 *
 * Placeholder: the rules (HIGH_TEMP/LOW_TEMP with hysteresis and alarm delay,
 * POWER_LOSS, SENSOR_ERROR resolution) are written separately; until then every
 * reading leaves the alert state as it is. */
#include "cc_alert.h"

#include "cc_rc.h"

int cc_alert_on_reading(struct cc_store *st, const struct cc_device *dev,
                        const struct cc_reading *r, int is_newest, int64_t now_ms)
{
    (void)st;
    (void)dev;
    (void)r;
    (void)is_newest;
    (void)now_ms;
    return CC_OK;
}
