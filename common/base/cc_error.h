/* cc_error.h - the one builder of the SPEC §5 error object:
 *   {"error":{"code":"VALIDATION_ERROR","message":"...","details":[{"field":"...","issue":"..."}]}}
 * Used by HTTP answers and by ingestd's devices/{serial}/errors messages.
 * The caller owns the returned tree (cJSON_Delete). Thread-safe. */
#ifndef CC_ERROR_H
#define CC_ERROR_H

#include <cjson/cJSON.h>

/* A new error object for rc (its SPEC code) with message. NULL on out of memory.
 * "details" is present only once a detail is added. */
cJSON *cc_error_new(int rc, const char *message);
/* Appends {"field":field,"issue":issue}. CC_OK or CC_ERR_NOMEM. */
int cc_error_add_detail(cJSON *err, const char *field, const char *issue);
/* Number of details so far. */
int cc_error_detail_count(const cJSON *err);
/* The message of err ("" if absent); lent, valid while err lives. */
const char *cc_error_message(const cJSON *err);
/* The code string of err ("INTERNAL" if absent); lent. */
const char *cc_error_code(const cJSON *err);

#endif
