/* cc_alert_ops.h - the alert state changes shared by the engine, the jobs and the API:
 * raise (or re-trigger), resolve, and the alert's JSON object.
 *
 * Each change writes its notifications (cc_notify.h) in the caller's transaction, so an
 * alert and the messages about it commit together or not at all. At most one ACTIVE
 * alert per (cell, device, type) is enforced by the partial unique index
 * alerts_one_active: raising while one is ACTIVE only updates last_triggered_at,
 * trigger_count and value. SQL through cc_dbi.h: SQLite and PostgreSQL alike.
 * Thread: the caller's store, inside cc_store_begin/commit.
 * Codes: CC_OK, CC_ERR_DB (roll back), CC_ERR_NOMEM. */
#ifndef CC_ALERT_OPS_H
#define CC_ALERT_OPS_H

#include <stdint.h>
#include "cc_store.h"

#define CC_ALERT_MESSAGE_MAX 160 /* bytes of an alert message */

/* An epoch-ms SQL expression as an ISO-8601 UTC string, NULL stays NULL. SQLite only. */
#define CC_SQL_ISO(x)                                                                              \
    "(strftime('%Y-%m-%dT%H:%M:%S', (" x ") / 1000, 'unixepoch') || printf('.%03dZ', (" x          \
    ") % 1000))"

/* The same on PostgreSQL, the same text for the same value (integer arithmetic: no
 * rounding through a double). */
#define CC_SQL_ISO_PG(x)                                                                           \
    "to_char(TIMESTAMP '1970-01-01' + (" x ") * INTERVAL '1 millisecond',"                         \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The alert object of the API (SPEC §5 names) as a SQL json_object over the columns
 * named P (a prefix: "a." for alias a, "" for a RETURNING clause, where SQLite admits no
 * alias). */
/* clang-format off */
#define CC_ALERT_JSON_SQL_OF(P)                                                                    \
    "json_object('id', " P "id, 'coldCellId', " P "cold_cell_id, 'deviceId', " P "device_id,"    \
    " 'type', " P "type, 'status', " P "status, 'value', " P "value,"                              \
    " 'threshold', " P "threshold, 'message', " P "message,"                                       \
    " 'firstTriggeredAt', " CC_SQL_ISO(P "first_triggered_at") ","                               \
    " 'lastTriggeredAt', " CC_SQL_ISO(P "last_triggered_at") ","                                 \
    " 'triggerCount', " P "trigger_count,"                                                         \
    " 'acknowledgedAt', " CC_SQL_ISO(P "acknowledged_at") ","                                    \
    " 'acknowledgedBy', " P "acknowledged_by,"                                                     \
    " 'escalatedAt', " CC_SQL_ISO(P "escalated_at") ","                                          \
    " 'resolvedAt', " CC_SQL_ISO(P "resolved_at") ","                                            \
    " 'resolvedBy', " P "resolved_by, 'resolutionNote', " P "resolution_note)"
#define CC_ALERT_JSON_SQL CC_ALERT_JSON_SQL_OF("a.")

/* CC_ALERT_JSON_SQL on PostgreSQL (json_build_object: the same members in the same order;
 * PostgreSQL writes " : " between name and value and a double without ".0"). */
#define CC_ALERT_JSON_SQL_PG_OF(P)                                                                 \
    "json_build_object('id', " P "id, 'coldCellId', " P "cold_cell_id,"                            \
    " 'deviceId', " P "device_id, 'type', " P "type, 'status', " P "status,"                       \
    " 'value', " P "value, 'threshold', " P "threshold, 'message', " P "message,"                  \
    " 'firstTriggeredAt', " CC_SQL_ISO_PG(P "first_triggered_at") ","                            \
    " 'lastTriggeredAt', " CC_SQL_ISO_PG(P "last_triggered_at") ","                              \
    " 'triggerCount', " P "trigger_count,"                                                         \
    " 'acknowledgedAt', " CC_SQL_ISO_PG(P "acknowledged_at") ","                                 \
    " 'acknowledgedBy', " P "acknowledged_by,"                                                     \
    " 'escalatedAt', " CC_SQL_ISO_PG(P "escalated_at") ","                                       \
    " 'resolvedAt', " CC_SQL_ISO_PG(P "resolved_at") ","                                         \
    " 'resolvedBy', " P "resolved_by, 'resolutionNote', " P "resolution_note)"
#define CC_ALERT_JSON_SQL_PG CC_ALERT_JSON_SQL_PG_OF("a.")
/* clang-format on */

enum cc_alert_type {
    CC_ALERT_HIGH_TEMP = 0,
    CC_ALERT_LOW_TEMP,
    CC_ALERT_POWER_LOSS,
    CC_ALERT_SENSOR_ERROR,
    CC_ALERT_TYPE_COUNT
};

/* "HIGH_TEMP", ... for an enum cc_alert_type; "" if out of range. */
const char *cc_alert_type_name(int type);
/* The enum value of a type name, -1 if unknown. */
int cc_alert_type_parse(const char *s);

/* One trigger of (cell, device, type) observed at at_ms (a reading's ts, or now for the
 * offline check). value and threshold may be NaN (stored as NULL). When no alert of
 * that key is ACTIVE a new one is created with message, and ALERT notifications go to
 * the cell's customer and its linked technicians, with the CREATED event
 * (cc_notify_alert_raised); otherwise the ACTIVE one is re-triggered. *alert_id and
 * *created (1 for a new alert) on success; either pointer may be NULL. */
int cc_alert_raise(struct cc_store *st, int64_t cold_cell_id, int64_t device_id, int type,
                   double value, double threshold, const char *message, int64_t at_ms,
                   int64_t now_ms, int64_t *alert_id, int *created);

/* Resolves alert_id if it is ACTIVE: resolved_at = max(at_ms, last_triggered_at),
 * resolved_by = by_user (<= 0: automatic, NULL), resolution_note = note (may be NULL),
 * and ALERT_RESOLVED notifications to the same people (cc_notify_alert_resolved).
 * *resolved is 1 if it was ACTIVE, 0 if it was already resolved or does not exist. */
int cc_alert_resolve(struct cc_store *st, int64_t alert_id, int64_t at_ms, int64_t by_user,
                     const char *note, int64_t now_ms, int *resolved);

#endif
