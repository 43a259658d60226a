/* cc_notify.h - notifications: the transactional outbox and its delivery worker.
 *
 * Writers (the alert engine, the jobs, the API) add rows inside the transaction of the
 * change they announce. A notifications row is one event for one recipient (what GET
 * /api/notifications lists; channel 'inbox'); each configured per-user channel (webhook,
 * e-mail) gets its own notification_deliveries row with attempts and backoff. MQTT
 * carries alert events only: alert_events holds the alert object for alerts/{coldCellId}
 * (schema/0002, 0007, docs/alerts.md); people have no broker accounts, so a notification
 * is never published over MQTT (SPEC §3). Writing the same alert event twice is a no-op
 * (unique indexes notifications_once and alert_events (alert_id, event)).
 *
 * cc_notify_deliver is the worker. Alert events are read, handed to the MQTT client and
 * recorded in one transaction (BEGIN IMMEDIATE; on PostgreSQL the due rows are read FOR
 * UPDATE SKIP LOCKED, so a second worker passes over them). A handed-over event stays
 * PENDING with its next attempt CC_NOTIFY_ACK_LEASE_MS ahead (a lease) until the broker
 * acknowledges it (PUBACK); the acknowledged ones are marked SENT at the start of a later
 * pass, many in one transaction. A crash in between loses nothing: the lease runs out and
 * the event is published again (at least once, as QoS 1 is; a consumer may see an event
 * twice, byte for byte the same alert object). Webhook and e-mail deliveries are claimed
 * in that transaction (their next attempt moved a lease into the future, so a second
 * ingestd never takes the same row), sent outside any transaction, then recorded. Each
 * outcome is SENT, or a retry after exponential backoff, or FAILED after
 * CC_NOTIFY_MAX_ATTEMPTS. A worker that dies mid-send loses nothing: the lease runs out
 * and the row is sent again.
 * Thread: the caller's store. Codes: CC_OK, CC_ERR_DB, CC_ERR_NOMEM. */
#ifndef CC_NOTIFY_H
#define CC_NOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include "cc_alert_ops.h"
#include "cc_store.h"

#define CC_NOTIFY_MAX_ATTEMPTS 10       /* sends per channel before FAILED */
#define CC_NOTIFY_BACKOFF_BASE_MS 1000  /* first retry delay; doubles each time */
#define CC_NOTIFY_BACKOFF_MAX_MS 300000 /* longest retry delay */
#define CC_NOTIFY_LEASE_MS 60000        /* a claimed row is not retaken for this long */
#define CC_NOTIFY_BATCH 200             /* rows claimed per transaction */
#define CC_NOTIFY_SEND_TIMEOUT_S 10     /* webhook and SMTP transfer timeout */
#define CC_NOTIFY_TITLE_MAX 200         /* bytes of a title or e-mail subject */
/* An alert event handed to the MQTT client and not yet acknowledged is due again after this
 * long (ms): what a restarted ingestd waits before sending again the events a crash left
 * unacknowledged. The process that holds one renews its lease instead (CC_NOTIFY_HELD). */
#define CC_NOTIFY_ACK_LEASE_MS 30000

/* The notification object (API, webhook and e-mail body) as a SQL json_object over
 * alias n. */
#define CC_NOTIFY_JSON_SQL                                                                         \
    "json_object('id', n.id, 'userId', n.user_id, 'kind', n.kind, 'alertId', n.alert_id,"          \
    " 'title', json_extract(n.payload, '$.title'),"                                                \
    " 'message', json_extract(n.payload, '$.message'), 'payload', json(n.payload),"                \
    " 'status', n.status, 'createdAt', " CC_SQL_ISO(                                               \
        "n.created_at") ","                                                                        \
                        " 'sentAt', " CC_SQL_ISO("n.sent_at") ", 'readAt', " CC_SQL_ISO(           \
                            "n.read_at") ")"

/* CC_NOTIFY_JSON_SQL on PostgreSQL (json_build_object, the same members in order). */
/* clang-format off */
#define CC_NOTIFY_JSON_SQL_PG                                                                      \
    "json_build_object('id', n.id, 'userId', n.user_id, 'kind', n.kind, 'alertId', n.alert_id,"   \
    " 'title', CAST(n.payload AS json)->>'title',"                                                 \
    " 'message', CAST(n.payload AS json)->>'message', 'payload', CAST(n.payload AS json),"         \
    " 'status', n.status,"                                                                         \
    " 'createdAt', " CC_SQL_ISO_PG("n.created_at") ","                                           \
    " 'sentAt', " CC_SQL_ISO_PG("n.sent_at") ","                                                 \
    " 'readAt', " CC_SQL_ISO_PG("n.read_at") ")"
/* clang-format on */

enum cc_alert_event {
    CC_EVENT_CREATED = 0,
    CC_EVENT_ESCALATED,
    CC_EVENT_RESOLVED,
    CC_EVENT_ACKNOWLEDGED
};

/* The four entry points of the seed (SPEC §4). Each writes PENDING rows for its
 * recipients (enabled users only) in the caller's transaction. */
/* ALERT to the customer who owns the alert's cell. */
int cc_notify_customer_alert(struct cc_store *st, int64_t alert_id, int64_t now_ms);
/* ALERT to the customer and every technician linked to them, and the CREATED event,
 * with one alert object: what raising does. */
int cc_notify_alert_raised(struct cc_store *st, int64_t alert_id, int64_t now_ms);
/* ALERT_RESOLVED to the customer and the linked technicians, and the RESOLVED event. */
int cc_notify_alert_resolved(struct cc_store *st, int64_t alert_id, int64_t now_ms);
/* The two above with the alert object given: its cell and its JSON text
 * (CC_ALERT_JSON_SQL's or _PG's, as the store's dialect writes it), taken from the
 * statement that changed the alert or read it back (cc_alert_ops.c: PostgreSQL's
 * RETURNING, SQLite's read-back of a raise), so that it is not read twice. */
int cc_notify_alert_raised_obj(struct cc_store *st, int64_t alert_id, int64_t cold_cell_id,
                               const char *alert_json, int64_t now_ms);
int cc_notify_alert_resolved_obj(struct cc_store *st, int64_t alert_id, int64_t cold_cell_id,
                                 const char *alert_json, int64_t now_ms);
/* SYSTEM to one user, with a title and a message (both copied). */
int cc_notify_system(struct cc_store *st, int64_t user_id, const char *title, const char *message,
                     int64_t now_ms);

/* ESCALATION to the linked technicians and every admin, and the ESCALATED event. */
int cc_notify_escalation(struct cc_store *st, int64_t alert_id, int64_t now_ms);
/* The ACKNOWLEDGED event only (alerts/{coldCellId}): acknowledging notifies nobody. The
 * first acknowledgement is the event; a repeated one writes nothing. */
int cc_notify_alert_acknowledged(struct cc_store *st, int64_t alert_id, int64_t now_ms);
/* DAILY_REPORT to a customer; report_json is the report object as JSON text. */
int cc_notify_daily_report(struct cc_store *st, int64_t customer_id, const char *title,
                           const char *message, const char *report_json, int64_t now_ms);

/* Which alert event a message carries: its alert_events row and that row's alert. The id
 * alone does not name one event for good: SQLite gives the largest rowid again once its
 * row is gone (alert_events.id is no AUTOINCREMENT; deleting a cold cell or device deletes
 * its alerts' events), so a held event's id may come back on a new event while the old
 * message waits for its PUBACK. An alert id never comes back (AUTOINCREMENT, an identity
 * on PostgreSQL), and an alert has one event of each kind. */
struct cc_notify_event {
    int64_t id;
    int64_t alert_id;
};

/* Hands an alert event to the MQTT client for alerts/{coldCellId} at QoS 1. The acked
 * function gives ev back once the broker acknowledged the message. Returns 0 when the
 * client took it, CC_NOTIFY_HELD when the client still holds this event (the same id and
 * alert) from an earlier hand-over (not taken again: its lease is renewed and no attempt
 * counted), anything else when it failed (an attempt, with backoff). */
#define CC_NOTIFY_HELD 1
typedef int (*cc_notify_publish_fn)(void *ctx, const char *topic, const char *payload, size_t len,
                                    struct cc_notify_event ev);

/* Moves into evs up to max events the broker acknowledged since the last call; returns how
 * many. */
typedef int (*cc_notify_acked_fn)(void *ctx, struct cc_notify_event *evs, int max);

/* How many more alert events the MQTT client takes now (its window less what it holds
 * unacknowledged); 0 or less: none. */
typedef int (*cc_notify_room_fn)(void *ctx);

/* The configured channels; a NULL publish or an empty URL turns a channel off. publish
 * serves alert events only; webhook and e-mail serve notifications only. */
struct cc_notify_channels {
    cc_notify_publish_fn publish;
    void *publish_ctx;
    /* The events the broker acknowledged (ingestd: ingest_mqtt_take_acked), each marked SENT.
     * NULL: the publisher confirms nothing later, so a hand-over counts as sent at once;
     * only for a publisher that cannot lose what it took (the unit tests' fakes). */
    cc_notify_acked_fn acked;
    void *acked_ctx;
    /* NULL: no window (CC_NOTIFY_BATCH events a transaction). Else a transaction reads at
     * most room events, none when it is full: the events wait, PENDING and with no attempt
     * counted, so what the client holds (a copy and a packet of each) stays bounded by its
     * window instead of growing with the backlog (ingestd: INGEST_PUBLISH_WINDOW). */
    cc_notify_room_fn publish_room;
    void *room_ctx;
    const char *webhook_url;
    const char *webhook_secret; /* HMAC-SHA256 key of X-Coldchain-Signature */
    const char *smtp_url;
    const char *smtp_from;
};

/* One pass of the worker: marks SENT the alert events acknowledged since the last pass,
 * then claims and sends due alert events and notifications, in batches, until none is due
 * or max_rows were taken. *sent (may be NULL) receives the number of successful sends: alert
 * events acknowledged (handed over, when ch->acked is NULL), webhooks and e-mails sent.
 * Opens and ends its own transactions. */
int cc_notify_deliver(struct cc_store *st, const struct cc_notify_channels *ch, int64_t now_ms,
                      int max_rows, int *sent);
/* cc_notify_deliver, also giving the rows taken (sent, tried or settled; may be NULL): a
 * caller that runs several passes on one budget (ingestd's jobs: DELIVER_MAX_ROWS a tick). */
int cc_notify_deliver_rows(struct cc_store *st, const struct cc_notify_channels *ch, int64_t now_ms,
                           int max_rows, int *sent, int *taken);

/* Marks SENT the alert events ch->acked gives (none when it is NULL), in one transaction
 * of its own; *sent (may be NULL) receives how many rows changed. ingestd calls it once
 * more at a clean stop, so what the broker acknowledged last is not sent again. A pass of
 * cc_notify_deliver does the same first thing in its own transaction. */
int cc_notify_record_acks(struct cc_store *st, const struct cc_notify_channels *ch, int64_t now_ms,
                          int *sent);

/* The retry delay after the attempts-th failed attempt (1, 2, ...). */
int64_t cc_notify_backoff_ms(int attempts);

/* The Subject header value of a notification e-mail: "[coldchain] <title>", control
 * characters made spaces (a title cannot add a header), cut at a character boundary
 * after CC_NOTIFY_TITLE_MAX bytes of title. ASCII stays as it is; anything else becomes
 * RFC 2047 encoded words (=?UTF-8?B?...?=) of whole characters, folded one per line,
 * each line under 78 characters. out must hold CC_NOTIFY_SUBJECT_MAX bytes. Returns the
 * length written. */
#define CC_NOTIFY_SUBJECT_MAX 640 /* 212 bytes of text make at most 6 words of 75 */
size_t cc_notify_subject(const char *title, char out[CC_NOTIFY_SUBJECT_MAX]);

/* The X-Coldchain-Signature value for body: "sha256=<hex HMAC-SHA256(secret, body)>".
 * out must hold 7 + 64 + 1 bytes. */
#define CC_NOTIFY_SIGNATURE_LEN 72
void cc_notify_signature(const char *secret, const char *body, size_t len,
                         char out[CC_NOTIFY_SIGNATURE_LEN]);

#endif
