/* cc_devices.h - devices and their API keys (SPEC §5 /api/devices).
 *
 * A device as the API shows it: {id, serialNumber, coldCellId, firmwareVersion,
 * status, lastSeenAt, apiKeyPrefix, createdAt}. Create and regenerate-key answer the
 * same object with one extra field, apiKey, the only time the key is ever shown; no
 * answer holds the key's hash. Keys are made by cc_provision (32 random bytes, stored
 * as SHA-256), and the broker plugin reads the hash on every CONNECT, so a regenerated
 * key works, and the old one stops working, at once.
 * Every verb applies the access rule (cc_access.h): someone else's device, or a
 * coldCellId the principal may not see, is CC_ERR_NOT_FOUND. Writes run in one
 * transaction with their audit row. Deleting a device deletes, by the schema's
 * cascades, its readings and alerts.
 * Objects returned through out are the caller's; *err, when set, is a SPEC §5 error
 * object (caller deletes). Thread: the caller's store.
 * Codes: CC_OK, CC_ERR_VALIDATION (*err), CC_ERR_NOT_FOUND, CC_ERR_CONFLICT (*err),
 * CC_ERR_UNAUTHORIZED, CC_ERR_DB, CC_ERR_NOMEM, CC_ERR_INTERNAL. */
#ifndef CC_DEVICES_H
#define CC_DEVICES_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_access.h"
#include "cc_page.h"
#include "cc_store.h"

/* The descriptor (cc_resource.h): GET/POST /api/devices, GET/PATCH/DELETE
 * /api/devices/:id. Create body {coldCellId, serialNumber, firmwareVersion?}, answered
 * with apiKey; update body any subset of them (firmwareVersion null clears it). List
 * filter ?coldCellId=. Deleting a device rebuilds the rollups its readings fed. */
struct cc_resource;
extern const struct cc_resource cc_devices_resource;

/* Devices p may see, by id; cold_cell_id > 0 keeps only that cell's. */
int cc_devices_list(struct cc_store *st, const struct cc_principal *p, int64_t cold_cell_id,
                    const struct cc_page *pg, cJSON **out);
int cc_devices_delete(struct cc_store *st, const struct cc_principal *p, int64_t id);
/* A new API key for device id; *out has apiKey. */
int cc_devices_regenerate_key(struct cc_store *st, const struct cc_principal *p, int64_t id,
                              cJSON **out);

/* Checks an x-device-key for the device with this serial: CC_OK when the key hashes
 * to its api_key_hash (constant-time compare), CC_ERR_UNAUTHORIZED for an unknown
 * serial or a wrong key (the same work either way), CC_ERR_DB. */
int cc_devices_authenticate(struct cc_store *st, const char *serial, const char *key);

/* The broker's check of a device login (common/api/cc_mqtt_auth.c): like
 * cc_devices_authenticate, but the name must pass the plugin's cc_auth_is_device_name, key may
 * be NULL (a wrong key), and *exists tells whether a device has this serial (1) or not (0),
 * whatever the key. CC_OK (the key is the device's), CC_ERR_UNAUTHORIZED, CC_ERR_DB. */
int cc_devices_check_key(struct cc_store *st, const char *serial, const char *key, int *exists);

#endif
