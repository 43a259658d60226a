/* cc_validate.h - reading and status validation (SPEC §3).
 *
 * Turns a device payload into struct cc_reading values, checking every rule of SPEC §3,
 * and reports every broken rule as one SPEC §5 detail ({"field","issue"}), with array
 * items named "[3].ts". Pure functions: no I/O, thread-safe. */
#ifndef CC_VALIDATE_H
#define CC_VALIDATE_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define CC_MAX_BATCH 1000                          /* readings in one array */
#define CC_MAX_PAYLOAD (1024 * 1024)               /* the broker's message_size_limit */
#define CC_TEMP_MIN (-100.0)                       /* °C */
#define CC_TEMP_MAX 150.0                          /* °C */
#define CC_TS_MAX_FUTURE_MS (5LL * 60 * 1000)      /* 5 minutes */
#define CC_TS_MAX_AGE_MS (30LL * 24 * 3600 * 1000) /* 30 days */
#define CC_FIRMWARE_MAX 64

enum cc_tristate { CC_ABSENT = -1, CC_FALSE = 0, CC_TRUE = 1 };

struct cc_reading {
    int64_t ts_ms;      /* from the payload, or the receive time when absent */
    int ts_given;       /* 1 if the payload had ts */
    double temperature; /* °C */
    int has_humidity;
    double humidity;  /* % */
    int power_status; /* enum cc_tristate; CC_FALSE = mains lost */
    int door_status;  /* enum cc_tristate; CC_TRUE = open */
    int has_battery;
    double battery_level; /* % */
};

/* Validates one reading object. Broken rules are appended to err_details (a cJSON
 * array the caller owns) with field names prefixed by prefix ("" or "[3]."). Returns
 * CC_OK (and fills *out) or CC_ERR_VALIDATION (out is unspecified). received_ms is
 * both "now" for the ts window and the default ts. */
int cc_validate_reading(const cJSON *obj, int64_t received_ms, const char *prefix,
                        struct cc_reading *out, cJSON *err_details);

/* Parses and validates a readings payload: one object or an array of 1..CC_MAX_BATCH
 * objects. On return:
 *  - *out (malloc'd array, caller frees) holds the valid readings and *n_out their
 *    count; ok_index[i] (if ok_index != NULL, malloc'd, caller frees) is the array
 *    position of out[i];
 *  - *err is NULL when everything was valid, else a SPEC §5 error object (caller
 *    deletes) listing every broken rule.
 * Returns CC_OK when at least the payload parsed (even if some items were invalid),
 * CC_ERR_BAD_JSON when it is not JSON (or not an object/array), CC_ERR_VALIDATION when
 * the shape is wrong as a whole (empty array, more than CC_MAX_BATCH items, not UTF-8,
 * too large), CC_ERR_NOMEM. *err is set for every code but CC_OK-with-all-valid. */
int cc_validate_readings(const char *payload, size_t len, int64_t received_ms,
                         struct cc_reading **out, size_t *n_out, size_t **ok_index, cJSON **err);

/* Parses a status payload {"online":bool,"firmwareVersion":"x"?}. firmware receives
 * "" when absent. CC_OK, CC_ERR_BAD_JSON or CC_ERR_VALIDATION (with *err set). */
int cc_validate_status(const char *payload, size_t len, int *online,
                       char firmware[CC_FIRMWARE_MAX + 1], cJSON **err);

/* A reading as the API shows it (camelCase, ISO ts). NULL on out of memory. */
cJSON *cc_reading_to_json(const struct cc_reading *r);

#endif
