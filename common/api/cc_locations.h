/* cc_locations.h - a customer's sites (SPEC §5 /api/locations).
 *
 * A location as the API shows it: {id, customerId, name, address, timezone, createdAt}.
 * Every verb applies the access rule (cc_access.h): someone else's location, or a
 * customerId the principal may not see, is CC_ERR_NOT_FOUND. Writes run in one
 * transaction with their audit row. Deleting a location deletes, by the schema's
 * cascades, its cold cells and their devices, readings and alerts.
 * Objects returned through out are the caller's; *err, when set, is a SPEC §5 error
 * object (caller deletes). Thread: the caller's store.
 * Codes: CC_OK, CC_ERR_VALIDATION (*err), CC_ERR_NOT_FOUND, CC_ERR_DB, CC_ERR_NOMEM. */
#ifndef CC_LOCATIONS_H
#define CC_LOCATIONS_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_access.h"
#include "cc_page.h"
#include "cc_store.h"

#define CC_ADDRESS_MAX 500 /* characters in an address */
#define CC_TIMEZONE_MAX 64 /* bytes in an IANA zone name */

/* The descriptor (cc_resource.h): GET/POST /api/locations, GET/PATCH/DELETE
 * /api/locations/:id. Create body {name, address?, timezone? (default UTC), customerId}
 * (a customer may omit customerId: their own); update body any subset of them. List
 * filter ?customerId=. */
struct cc_resource;
extern const struct cc_resource cc_locations_resource;

/* Locations p may see, by id; customer_id > 0 keeps only that customer's. */
int cc_locations_list(struct cc_store *st, const struct cc_principal *p, int64_t customer_id,
                      const struct cc_page *pg, cJSON **out);

/* 1 if tz names an IANA time zone: "UTC", or a name of [A-Za-z0-9/_+-] parts that
 * exists under /usr/share/zoneinfo (when that directory exists). */
int cc_locations_timezone_valid(const char *tz);

#endif
