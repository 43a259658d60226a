/* cc_bulk.h - bulk device provisioning, shared by `ccctl device import` and
 * POST /api/devices/bulk.
 *
 * Two steps. cc_bulk_parse reads a list of new devices, CSV with the header
 * "serialNumber,coldCellId,firmwareVersion" (firmwareVersion optional, columns in any
 * order, RFC 4180 quoting) or a JSON array of {serialNumber, coldCellId,
 * firmwareVersion?} objects, and checks every row without touching the database.
 * cc_bulk_provision then creates every device in one BEGIN IMMEDIATE ... COMMIT
 * through cc_provision_device: one bad row (unknown or forbidden cold cell, serial
 * already taken) and nothing is created.
 * The database checks (cold cell exists and is p's, serial free) run only once the whole
 * input parses cleanly. Every bad row is reported, not only the first: the SPEC §5 error has one
 * detail per problem, {"field":"[3].serialNumber","issue":"invalid","line":5}, where [3] is the
 * row's position (0-based, header excluded) and line its 1-based line in the input.
 * Ownership: a struct cc_bulk is the caller's (cc_bulk_free, which also wipes the
 * keys); *err, when set, is the caller's (cJSON_Delete).
 * Thread: the caller's store; no shared state.
 * Codes: CC_OK, CC_ERR_BAD_JSON, CC_ERR_VALIDATION, CC_ERR_NOT_FOUND, CC_ERR_CONFLICT,
 * CC_ERR_TOO_LARGE, CC_ERR_NOMEM, CC_ERR_DB, CC_ERR_INTERNAL. */
#ifndef CC_BULK_H
#define CC_BULK_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_access.h"
#include "cc_crypto.h"
#include "cc_store.h"
#include "cc_validate.h"

#define CC_BULK_MAX_ROWS 10000              /* devices in one import */
#define CC_BULK_MAX_INPUT (4 * 1024 * 1024) /* bytes of one import file */
#define CC_BULK_FIELD_MAX 256               /* bytes of one CSV field before it is refused */

enum cc_bulk_format { CC_BULK_CSV = 1, CC_BULK_JSON = 2 };

/* One new device. id and key are filled in by cc_bulk_provision. */
struct cc_bulk_item {
    int line; /* 1-based line of the row in the input */
    int64_t cold_cell_id;
    char serial[CC_SERIAL_MAX + 1];
    char firmware[CC_FIRMWARE_MAX + 1]; /* "" when none */
    int64_t id;                         /* the new device's id */
    char key[CC_API_KEY_LEN];           /* its API key, shown once; "" until created */
};

struct cc_bulk {
    size_t count;
    struct cc_bulk_item *items; /* count items */
};

/* Called after each created device: done of total. */
typedef void (*cc_bulk_progress_fn)(void *ctx, size_t done, size_t total);

/* Parses and checks buf (len bytes, no NUL needed) as format. CC_OK and *out (at least
 * one row); CC_ERR_BAD_JSON (not JSON), CC_ERR_VALIDATION (every problem in *err),
 * CC_ERR_TOO_LARGE (over CC_BULK_MAX_INPUT bytes), CC_ERR_NOMEM. *err is set for every
 * code but CC_OK and CC_ERR_NOMEM. */
int cc_bulk_parse(const char *buf, size_t len, int format, struct cc_bulk **out, cJSON **err);

/* "csv" -> CC_BULK_CSV, "json" -> CC_BULK_JSON; 0 if unknown. */
int cc_bulk_format_parse(const char *name);
/* The format a file name suggests: ".json" -> CC_BULK_JSON, anything else CC_BULK_CSV. */
int cc_bulk_format_guess(const char *path);

/* Creates every device of b in one transaction (the caller must not have one open).
 * p, when not NULL, must be allowed to change each target cold cell (cc_access_check,
 * CC_ACCESS_WRITE); NULL skips the check (the operator's CLI). Each device gets an
 * audit row by p's user (none for NULL). On CC_OK every item has its id and key.
 * Otherwise nothing is created, no item keeps a key, and *err lists every bad row:
 * CC_ERR_NOT_FOUND when some cold cell does not exist or is not p's, else
 * CC_ERR_CONFLICT (a serial exists), or CC_ERR_DB / CC_ERR_NOMEM / CC_ERR_INTERNAL
 * (no *err). progress may be NULL. */
int cc_bulk_provision(struct cc_store *st, const struct cc_principal *p, struct cc_bulk *b,
                      cc_bulk_progress_fn progress, void *ctx, cJSON **err);

/* The answer of POST /api/devices/bulk: [{"serialNumber","apiKey","id"}, ...] in input
 * order. NULL on out of memory. The caller owns it (and the keys inside). */
cJSON *cc_bulk_result_json(const struct cc_bulk *b);

/* Wipes the keys and frees b. NULL is a no-op. */
void cc_bulk_free(struct cc_bulk *b);

#endif
