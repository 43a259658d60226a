/* cc_coldcells.h - cold cells and their alarm thresholds (SPEC §5 /api/coldcells).
 *
 * A cold cell as the API shows it: {id, locationId, name, minTemp, maxTemp,
 * hysteresis, alarmDelayS, createdAt}. minTemp < maxTemp, both within the sensor
 * range of SPEC §3; hysteresis 0..CC_HYSTERESIS_MAX; alarmDelayS 0..CC_ALARM_DELAY_MAX_S.
 * Every verb applies the access rule (cc_access.h): someone else's cell, or a
 * locationId the principal may not see, is CC_ERR_NOT_FOUND. Writes run in one
 * transaction with their audit row. Deleting a cell deletes, by the schema's cascades,
 * its devices, readings and alerts.
 * Objects returned through out are the caller's; *err, when set, is a SPEC §5 error
 * object (caller deletes). Thread: the caller's store.
 * Codes: CC_OK, CC_ERR_VALIDATION (*err), CC_ERR_NOT_FOUND, CC_ERR_DB, CC_ERR_NOMEM. */
#ifndef CC_COLDCELLS_H
#define CC_COLDCELLS_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_access.h"
#include "cc_page.h"
#include "cc_store.h"

#define CC_HYSTERESIS_DEFAULT 0.5            /* °C */
#define CC_HYSTERESIS_MAX 50.0               /* °C */
#define CC_ALARM_DELAY_MAX_S (7 * 24 * 3600) /* one week */

/* The descriptor (cc_resource.h): GET/POST /api/coldcells, GET/PATCH/DELETE
 * /api/coldcells/:id. Create body {locationId, name, minTemp, maxTemp, hysteresis?,
 * alarmDelayS?}; update body any subset of them, the thresholds checked together with the
 * values they do not replace. List filter ?locationId=. */
struct cc_resource;
extern const struct cc_resource cc_coldcells_resource;

/* Cells p may see, by id; location_id > 0 keeps only that location's. */
int cc_coldcells_list(struct cc_store *st, const struct cc_principal *p, int64_t location_id,
                      const struct cc_page *pg, cJSON **out);

#endif
