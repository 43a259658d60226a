/* cc_alert_json.h - the alert object (SPEC §5 names) written in C, byte for byte the text
 * SQLite's CC_ALERT_JSON_SQL (cc_alert_ops.h) makes of the same row.
 *
 * Why: on SQLite the writer built the object of every raised or resolved alert with
 * json_object and five strftime + printf in SQL, after reading the row back: about a
 * fifth of an alert change's instructions (docs/alerts.md). The raise knows every column
 * of the row it inserted, and a resolve reads plain columns; formatting them here is a
 * few thousand instructions. The texts must stay equal (the API lists alerts with the
 * SQL, the outbox carries this): strings escaped as SQLite 3.40's json_quote (\" \\ \b
 * \f \n \r \t, other controls \u00xx, every other byte as is), doubles as
 * cc_dbi_real_text, times as CC_SQL_ISO. SQLite only: PostgreSQL has its own spelling
 * (CC_ALERT_JSON_SQL_PG) and returns it from the changing statement.
 * Thread: any; cc_alert_row_load uses the caller's store inside its transaction.
 * Codes: CC_OK, CC_ERR_NOMEM, CC_ERR_VALIDATION (a time outside years 1970-9999: the
 * caller builds the object in SQL instead), CC_ERR_NOT_FOUND, CC_ERR_DB. */
#ifndef CC_ALERT_JSON_H
#define CC_ALERT_JSON_H

#include <stdint.h>
#include "cc_store.h"

#define CC_ALERT_NONE INT64_MIN /* an absent (NULL) time or user id in cc_alert_row */

/* One alerts row. Absent values: CC_ALERT_NONE for the nullable integers, NAN for
 * value and threshold, NULL for resolution_note. The strings are borrowed. */
struct cc_alert_row {
    int64_t id, cold_cell_id, device_id;
    const char *type, *status, *message;
    double value, threshold;
    int64_t first_triggered_at, last_triggered_at, trigger_count;
    int64_t acknowledged_at, acknowledged_by, escalated_at, resolved_at, resolved_by;
    const char *resolution_note;
};

/* Writes s escaped as SQLite 3.40's json_quote escapes it (no quotes around, no NUL) at
 * dst, which has room for CC_ALERT_JSON_ESCAPED_MAX bytes per byte of s; returns the end.
 * For other JSON that must equal what SQLite's JSON functions write (cc_notify.c). */
#define CC_ALERT_JSON_ESCAPED_MAX 6 /* bytes one byte may take escaped (\u001f) */
char *cc_alert_json_escape(char *dst, const char *s);

/* The object of row as a new malloc'd string in *out (the caller frees it). */
int cc_alert_json(const struct cc_alert_row *row, char **out);

/* The object of alert alert_id as it is in st now (SQLite; a plain read by primary key),
 * its cell and its type (enum cc_alert_type, -1 if unknown; set also when the object
 * cannot be written, CC_ERR_VALIDATION). CC_ERR_NOT_FOUND when there is no such alert. */
int cc_alert_json_load(struct cc_store *st, int64_t alert_id, int64_t *cold_cell_id, int *type,
                       char **out);

#endif
