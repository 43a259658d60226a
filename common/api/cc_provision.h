/* cc_provision.h - creating users and devices, shared by ccctl and apid.
 *
 * One place checks the fields of a new user or device, hashes the password (scrypt)
 * or makes the API key, and inserts the row, so the CLI and the HTTP API cannot
 * disagree. Writes run in the caller's transaction when one is open, else in their own.
 * Thread: the caller's store. */
#ifndef CC_PROVISION_H
#define CC_PROVISION_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_crypto.h"
#include "cc_store.h"

#define CC_EMAIL_MAX 254
#define CC_NAME_MAX 200
#define CC_PASSWORD_MIN 8
#define CC_PASSWORD_MAX 256

/* Creates a user. role is "CUSTOMER", "TECHNICIAN" or "ADMIN". Returns CC_OK and *id,
 * CC_ERR_VALIDATION (details in *err, caller deletes), CC_ERR_CONFLICT (the e-mail
 * exists, case-insensitively) or CC_ERR_DB. */
int cc_provision_user(struct cc_store *st, const char *email, const char *password,
                      const char *role, const char *name, int64_t *id, cJSON **err);

/* Creates a device in a cold cell with a fresh API key. key receives the key (shown
 * once, never stored); CC_OK and *id, CC_ERR_VALIDATION (*err), CC_ERR_NOT_FOUND (no
 * such cold cell), CC_ERR_CONFLICT (serial exists) or CC_ERR_DB. firmware may be NULL. */
int cc_provision_device(struct cc_store *st, int64_t cold_cell_id, const char *serial,
                        const char *firmware, int64_t *id, char key[CC_API_KEY_LEN], cJSON **err);

/* Replaces a device's API key; the old one stops working at once (the broker plugin
 * reads the hash on every CONNECT). CC_OK, CC_ERR_NOT_FOUND or CC_ERR_DB. */
int cc_provision_regenerate_key(struct cc_store *st, int64_t device_id, char key[CC_API_KEY_LEN]);

/* Checks a serial number: 1..CC_SERIAL_MAX characters of [A-Za-z0-9._-]
 * (it is an MQTT topic level and a broker username). 1 if valid. */
int cc_provision_serial_valid(const char *serial);

#endif
