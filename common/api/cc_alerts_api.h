/* cc_alerts_api.h - the alert and notification endpoints of SPEC §5:
 * GET /api/alerts[?status=&type=&coldCellId=&limit=&offset=], GET /api/alerts/:id,
 * PATCH /api/alerts/:id/resolve {note?}, PATCH /api/alerts/:id/acknowledge,
 * GET /api/notifications[?limit=&offset=], PATCH /api/notifications/:id/read.
 *
 * The access rule is cc_access.h's: someone else's alert or notification is
 * CC_ERR_NOT_FOUND. Alerts are listed newest first by firstTriggeredAt, notifications
 * by createdAt (each with id as the tie-break). Writes run in one transaction with
 * their audit row and (resolve) the ALERT_RESOLVED notifications.
 * Objects returned through out are the caller's; *err, when set, is a SPEC §5 error
 * object (caller deletes). Thread: the caller's store.
 * Codes: CC_OK, CC_ERR_VALIDATION (*err), CC_ERR_NOT_FOUND, CC_ERR_CONFLICT, CC_ERR_DB,
 * CC_ERR_NOMEM. */
#ifndef CC_ALERTS_API_H
#define CC_ALERTS_API_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_access.h"
#include "cc_page.h"
#include "cc_store.h"

#define CC_ALERTS_PAGE_DEFAULT 50 /* limit when the query gives none */
#define CC_NOTE_MAX 1000          /* characters of a resolution note */

struct cc_alert_filter {
    char status[16];      /* "" = any, else ACTIVE or RESOLVED */
    char type[16];        /* "" = any, else one of the four types */
    int64_t cold_cell_id; /* 0 = any */
};

/* The descriptors (cc_resource.h): GET /api/alerts (filters above) and /api/alerts/:id;
 * GET /api/notifications (p's own). */
struct cc_resource;
extern const struct cc_resource cc_alerts_resource;
extern const struct cc_resource cc_notifications_resource;

/* Reads status, type and coldCellId from a query string (NULL: none). CC_OK or
 * CC_ERR_VALIDATION with *err. */
int cc_alerts_filter_parse(const char *qs, struct cc_alert_filter *f, cJSON **err);

int cc_alerts_list(struct cc_store *st, const struct cc_principal *p,
                   const struct cc_alert_filter *f, const struct cc_page *pg, cJSON **out);
int cc_alerts_get(struct cc_store *st, const struct cc_principal *p, int64_t id, cJSON **out);
/* body may be NULL (no note). CC_ERR_CONFLICT when the alert is already resolved. */
int cc_alerts_resolve(struct cc_store *st, const struct cc_principal *p, int64_t id,
                      const cJSON *body, cJSON **out, cJSON **err);
/* Sets acknowledged_at/by (the first acknowledgement stays); the alert stays ACTIVE.
 * CC_ERR_CONFLICT when it is already resolved. */
int cc_alerts_acknowledge(struct cc_store *st, const struct cc_principal *p, int64_t id,
                          cJSON **out, cJSON **err);

/* p's own notifications. */
int cc_notifications_list(struct cc_store *st, const struct cc_principal *p,
                          const struct cc_page *pg, cJSON **out);
/* Marks one of p's notifications read (the first read time stays). */
int cc_notifications_read(struct cc_store *st, const struct cc_principal *p, int64_t id,
                          cJSON **out);

/* The first members of an alert object, as struct cc_column initializers (cc_resource.h):
 * the API's alert and the dashboards' alert rows both start with them. */
#define CC_ALERT_COLUMNS_HEAD                                                                      \
    {"id", CC_COL_INT}, {"coldCellId", CC_COL_INT}, {"deviceId", CC_COL_INT},                      \
        {"type", CC_COL_TEXT}, {"status", CC_COL_TEXT}, {"value", CC_COL_NUM},                     \
        {"threshold", CC_COL_NUM}, {"message", CC_COL_TEXT}, {"firstTriggeredAt", CC_COL_TIME},    \
        {"lastTriggeredAt", CC_COL_TIME}, {"triggerCount", CC_COL_INT},                            \
    {                                                                                              \
        "acknowledgedAt", CC_COL_TIME                                                              \
    }

#endif
