/* cc_notify_deliver.c - the delivery worker of the outbox (see cc_notify.h). Alert
 * events are read, handed over and recorded in one transaction: the publish only queues the
 * message in the MQTT client (which sends it at QoS 1 and sends it again after a
 * reconnection), so it holds the transaction no longer than a statement would; the event
 * stays PENDING under a lease until the broker's PUBACK, which a later pass records. Webhooks
 * and e-mails take seconds: claimed in that transaction, sent with no transaction open,
 * their outcome recorded in another. */
#include "cc_notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "cc_crypto.h"
#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_stats.h"

#define ERR_MAX 200    /* bytes of a recorded send error */
#define EMAIL_MAX 320  /* bytes of an address */
#define MAIL_MAX 65536 /* bytes of one e-mail, headers included */

enum channel { CH_MQTT = 0, CH_WEBHOOK, CH_EMAIL, CH_COUNT };
static const char *const channel_names[CH_COUNT] = {"mqtt", "webhook", "email"};
/* The channels of a notification: every one but MQTT, which carries alert events only.
 * People have no broker accounts (SPEC §3), so nobody could read a per-user topic, and
 * each such publish cost the alert churn ~115 us of CPU (docs/alerts.md). */
#define CH_USER_FIRST CH_WEBHOOK
#define CH_USER_COUNT (CH_COUNT - CH_USER_FIRST)

/* One claimed send: an alert event (channel mqtt) or a notification on one channel
 * (webhook or email). */
struct item {
    int is_event;
    int64_t id;       /* alert_events.id or notifications.id */
    int64_t alert_id; /* the event's alert (cc_notify_event) */
    int64_t cell_id;  /* the event's cold cell: its topic alerts/{cell_id} */
    int channel;
    int attempts; /* including this one */
    char *body;   /* JSON, malloc'd */
    char *email;  /* recipient (notifications), malloc'd */
    char *title;
    char *message;
    int borrowed; /* the four strings belong to an earlier item of the same notification */
    int ok;
    int held; /* an event the client still holds from an earlier hand-over (CC_NOTIFY_HELD) */
    char error[ERR_MAX];
};

/* The due rows, read before they are claimed. On PostgreSQL FOR UPDATE SKIP LOCKED: a
 * second worker (another ingestd) passes over the rows this claim holds instead of
 * waiting for them and claiming them again; SQLite's BEGIN IMMEDIATE already admits one
 * writer at a time. $1 now, $2 rows. */
#define EVENTS_DUE                                                                                 \
    "SELECT id, cold_cell_id, payload, attempts, alert_id FROM alert_events"                       \
    " WHERE status = 'PENDING' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
#define DUE                                                                                        \
    "SELECT id FROM notifications WHERE status = 'PENDING' AND next_attempt_at <= $1"              \
    " ORDER BY next_attempt_at, id LIMIT $2"
static const char sql_events_due[] = EVENTS_DUE;
static const char sql_events_due_pg[] = EVENTS_DUE " FOR UPDATE SKIP LOCKED";
static const char sql_due[] = DUE;
static const char sql_due_pg[] = DUE " FOR UPDATE SKIP LOCKED";
/* An event's attempt counts itself here: it is recorded in the transaction that read it,
 * with no claim in between. A hand-over awaiting its PUBACK is PENDING with next_attempt_at
 * a lease ahead (CC_NOTIFY_ACK_LEASE_MS). */
static const char sql_event_done[] =
    "UPDATE alert_events SET attempts = attempts + 1, status = $2, next_attempt_at = $3,"
    " sent_at = $4, last_error = $5 WHERE id = $1";
/* An event the client still holds: its lease renewed, no attempt counted. */
static const char sql_event_renew[] = "UPDATE alert_events SET next_attempt_at = $2 WHERE id = $1";
/* The broker acknowledged it. Whatever the row says by now, the event went out: PENDING
 * (the usual case), or FAILED, left by another worker's attempts while this one's
 * hand-over waited; then its count moves from failed to sent (mark_acked). $3 its alert:
 * a row that took over the id of the one handed over is another event (cc_notify_event).
 * STATUS: the status it is taken from. */
#define EVENT_ACKED(STATUS)                                                                        \
    "UPDATE alert_events SET status = 'SENT', next_attempt_at = $2, sent_at = $2,"                 \
    " last_error = NULL WHERE id = $1 AND alert_id = $3 AND status = '" STATUS "'"
static const char sql_event_acked[] = EVENT_ACKED("PENDING");
static const char sql_event_acked_failed[] = EVENT_ACKED("FAILED");
/* Keeps a notification whose channels are claimed out of sql_due until the outcome is
 * recorded (the summary then sets the real next_attempt_at), or the lease runs out. */
static const char sql_lease[] = "UPDATE notifications SET next_attempt_at = $2 WHERE id = $1";
/* Creates the delivery of one channel on first sight, or takes it when it is due; a row
 * comes back only when this call claimed it (attempts counts this one). $3 lease end,
 * $4 now. The existing row's columns are named by the table, which PostgreSQL requires. */
static const char sql_delivery_claim[] =
    "INSERT INTO notification_deliveries (notification_id, channel, next_attempt_at, attempts)"
    " VALUES ($1, $2, $3, 1) ON CONFLICT (notification_id, channel) DO UPDATE SET"
    " attempts = notification_deliveries.attempts + 1,"
    " next_attempt_at = excluded.next_attempt_at"
    " WHERE notification_deliveries.status = 'PENDING'"
    " AND notification_deliveries.next_attempt_at <= $4 RETURNING attempts";
static const char sql_delivery_done[] =
    "UPDATE notification_deliveries SET status = $3, next_attempt_at = $4, sent_at = $5,"
    " last_error = $6 WHERE notification_id = $1 AND channel = $2";
/* notifications.status/attempts/next_attempt_at/sent_at/last_error from its deliveries,
 * in one pass over them (the aggregates skip the NULLs of CASE); with no delivery at all
 * (no channel configured) the inbox copy is all there is: SENT. $1 the notification, NOW
 * the time (a typed $2 on PostgreSQL), ERRORS the aggregate joining the channels' errors
 * (group_concat in SQLite, string_agg in PostgreSQL). */
#define SUMMARY(NOW, ERRORS) SUMMARY_OF("$1", NOW, ERRORS, "id = $1")
/* The summary of the notification whose id is ID, for the rows WHERE picks. */
#define SUMMARY_OF(ID, NOW, ERRORS, WHERE)                                                         \
    "UPDATE notifications SET (status, attempts, next_attempt_at, sent_at, last_error) ="          \
    " (SELECT CASE WHEN count(CASE WHEN d.status = 'PENDING' THEN 1 END) > 0 THEN 'PENDING'"       \
    " WHEN count(CASE WHEN d.status = 'FAILED' THEN 1 END) > 0 THEN 'FAILED' ELSE 'SENT' END,"     \
    " coalesce(max(d.attempts), notifications.attempts),"                                          \
    " coalesce(min(CASE WHEN d.status = 'PENDING' THEN d.next_attempt_at END),"                    \
    " notifications.next_attempt_at),"                                                             \
    " coalesce(notifications.sent_at, min(CASE WHEN d.status = 'SENT' THEN d.sent_at END),"        \
    " CASE WHEN count(*) = 0 THEN " NOW " END),"                                                   \
    " " ERRORS "(CASE WHEN d.status <> 'SENT' THEN d.channel || ': ' || d.last_error END, '; ')"   \
    " FROM notification_deliveries d WHERE d.notification_id = " ID ")"                            \
    " WHERE " WHERE " RETURNING CASE WHEN status = 'PENDING' AND next_attempt_at <= " NOW          \
    " THEN 1 ELSE 0 END"
static const char sql_summary[] = SUMMARY("$2", "group_concat");
static const char sql_summary_pg[] = SUMMARY("CAST($2 AS bigint)", "string_agg");
/* A process with no per-user channel has nothing to send for any notification: the due
 * ones (sql_due's rows, $1 now, $2 rows) are summarised in one statement instead of one
 * SELECT row and one UPDATE each (the churn bench: one notification per alert change). A
 * row comes back per notification, 1 while it is still due. */
#define SUMMARY_DUE(NOW, ERRORS, LOCK)                                                             \
    SUMMARY_OF("notifications.id", NOW, ERRORS,                                                    \
               "id IN (SELECT id FROM notifications WHERE status = 'PENDING' AND"                  \
               " next_attempt_at <= " NOW " ORDER BY next_attempt_at, id LIMIT $2" LOCK ")")
static const char sql_summary_due[] = SUMMARY_DUE("$1", "group_concat", "");
static const char sql_summary_due_pg[] =
    SUMMARY_DUE("CAST($1 AS bigint)", "string_agg", " FOR UPDATE SKIP LOCKED");
static const char sql_body[] =
    "SELECT " CC_NOTIFY_JSON_SQL ", u.email, json_extract(n.payload, '$.title'),"
    " json_extract(n.payload, '$.message') FROM notifications n"
    " JOIN users u ON u.id = n.user_id WHERE n.id = $1";
static const char sql_body_pg[] =
    "SELECT " CC_NOTIFY_JSON_SQL_PG ", u.email, CAST(n.payload AS json)->>'title',"
    " CAST(n.payload AS json)->>'message' FROM notifications n"
    " JOIN users u ON u.id = n.user_id WHERE n.id = $1";

static const char *pick(struct cc_store *st, const char *lite, const char *pg)
{
    return cc_store_dialect(st) == CC_DIALECT_PG ? pg : lite;
}

/* CC_OK, CC_ERR_NOMEM or CC_ERR_DB for any other failure (cc_dbi logged it). */
static int db_rc(int rc)
{
    return rc == CC_OK || rc == CC_ERR_NOMEM ? rc : CC_ERR_DB;
}

/* Runs sql, an UPDATE of the row whose id is $1 with one integer $2 (a time) and, when
 * also is not NULL, *also as $3; *changes (may be NULL) receives the rows changed. */
static int update_row(struct cc_store *st, const char *sql, int64_t id, int64_t v,
                      const int64_t *also, int64_t *changes)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, sql, &stmt);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 2, v);
    if (rc == CC_OK && also != NULL)
        rc = cc_stmt_bind_int64(stmt, 3, *also);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_OK && changes != NULL)
        *changes = cc_stmt_changes(stmt);
    cc_stmt_release(stmt);
    return db_rc(rc);
}

int64_t cc_notify_backoff_ms(int attempts)
{
    int64_t d = CC_NOTIFY_BACKOFF_BASE_MS;

    for (int i = 1; i < attempts && d < CC_NOTIFY_BACKOFF_MAX_MS; i++)
        d *= 2;
    return d < CC_NOTIFY_BACKOFF_MAX_MS ? d : CC_NOTIFY_BACKOFF_MAX_MS;
}

void cc_notify_signature(const char *secret, const char *body, size_t len,
                         char out[CC_NOTIFY_SIGNATURE_LEN])
{
    unsigned char mac[CC_SHA256_LEN];

    if (secret == NULL)
        secret = "";
    if (cc_hmac_sha256(secret, strlen(secret), body, len, mac) != CC_OK)
        memset(mac, 0, sizeof mac);
    memcpy(out, "sha256=", 7);
    cc_hex_encode(mac, sizeof mac, out + 7);
}

static char *dup_col(struct cc_stmt *stmt, int col)
{
    const char *s = cc_stmt_column_text(stmt, col);

    return strdup(s != NULL ? s : "");
}

static void items_free(struct item *items, int n)
{
    for (int i = 0; i < n; i++) {
        if (items[i].borrowed)
            continue;
        free(items[i].body);
        free(items[i].email);
        free(items[i].title);
        free(items[i].message);
    }
}

static int channel_on(const struct cc_notify_channels *ch, int c)
{
    switch (c) {
    case CH_MQTT:
        return ch->publish != NULL;
    case CH_WEBHOOK:
        return ch->webhook_url != NULL && ch->webhook_url[0] != '\0';
    case CH_EMAIL:
        return ch->smtp_url != NULL && ch->smtp_url[0] != '\0';
    default:
        return 0;
    }
}

/* Reads due alert events into items[*n..cap). Inside the caller's transaction, which
 * publishes and records them (deliver_events): the rows are read first, so no row changes
 * under a running scan. */
static int read_events(struct cc_store *st, int64_t now_ms, struct item *items, int *n, int cap)
{
    struct cc_stmt *due = NULL;
    int rc = cc_stmt_prepare(st, pick(st, sql_events_due, sql_events_due_pg), &due);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(due, 1, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(due, 2, cap - *n);
    while (rc == CC_OK && *n < cap && (rc = cc_stmt_step(due)) == CC_ROW) {
        struct item *it = &items[*n];

        memset(it, 0, sizeof *it);
        it->is_event = 1;
        it->id = cc_stmt_column_int64(due, 0);
        it->cell_id = cc_stmt_column_int64(due, 1);
        it->body = dup_col(due, 2);
        it->attempts = (int)cc_stmt_column_int64(due, 3) + 1;
        it->alert_id = cc_stmt_column_int64(due, 4);
        it->channel = CH_MQTT;
        (*n)++;
        rc = it->body != NULL ? CC_OK : CC_ERR_NOMEM;
    }
    cc_stmt_release(due);
    return db_rc(rc);
}

/* Recomputes a notification's summary columns. *due (may be NULL) is set when it is
 * still PENDING and due at now_ms: waiting for a channel this process does not have. */
static int summarize(struct cc_store *st, int64_t nid, int64_t now_ms, int *due)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, pick(st, sql_summary, sql_summary_pg), &stmt);

    if (due != NULL)
        *due = 0;
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, nid);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 2, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) {
        if (due != NULL)
            *due = cc_stmt_column_int64(stmt, 0) != 0;
        rc = cc_stmt_step(stmt);
    }
    cc_stmt_release(stmt);
    return db_rc(rc);
}

/* Loads what the channels need of notification nid into it. */
static int load_body(struct cc_store *st, int64_t nid, struct item *it)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, pick(st, sql_body, sql_body_pg), &stmt);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, nid);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) {
        it->body = dup_col(stmt, 0);
        it->email = dup_col(stmt, 1);
        it->title = dup_col(stmt, 2);
        it->message = dup_col(stmt, 3);
        rc = it->body == NULL || it->email == NULL || it->title == NULL || it->message == NULL
                 ? CC_ERR_NOMEM
                 : CC_OK;
    } else if (rc == CC_OK) {
        rc = CC_ERR_NOT_FOUND;
    }
    cc_stmt_release(stmt);
    return rc == CC_ERR_NOT_FOUND ? rc : db_rc(rc);
}

/* Claims one channel c of notification nid: *claimed 1 (and *attempts) when this call
 * took it. */
static int claim_channel(struct cc_store *st, int64_t nid, int c, int64_t now_ms, int *claimed,
                         int *attempts)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, sql_delivery_claim, &stmt);

    *claimed = 0;
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, nid);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 2, channel_names[c]);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 3, now_ms + CC_NOTIFY_LEASE_MS);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 4, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) {
        *claimed = 1;
        *attempts = (int)cc_stmt_column_int64(stmt, 0);
        rc = cc_stmt_step(stmt);
    }
    cc_stmt_release(stmt);
    return db_rc(rc);
}

/* Claims the due channels of one notification. With none to send it is summarised
 * instead, and *settled counts it if that took it off the due list. */
static int claim_one(struct cc_store *st, const struct cc_notify_channels *ch, int64_t nid,
                     int64_t now_ms, struct item *items, int *n, int cap, int *settled)
{
    int first = *n;
    int rc;

    for (int c = CH_USER_FIRST; c < CH_COUNT && *n < cap; c++) {
        int claimed = 0, attempts = 0;

        if (!channel_on(ch, c))
            continue; /* a channel this process does not have: left for one that does */
        rc = claim_channel(st, nid, c, now_ms, &claimed, &attempts);
        if (rc != CC_OK)
            return rc;
        if (claimed) {
            memset(&items[*n], 0, sizeof items[*n]);
            items[*n].id = nid;
            items[*n].channel = c;
            items[*n].attempts = attempts;
            (*n)++;
        }
    }
    if (*n == first) { /* nothing to send here: SENT, not due yet, or another's channel */
        int due = 0;

        rc = summarize(st, nid, now_ms, &due);
        *settled += rc == CC_OK && !due;
        return rc;
    }
    /* One body for all channels of this notification: the first item owns the copies,
     * the others point at them (items_free frees owners only). */
    rc = load_body(st, nid, &items[first]);
    if (rc != CC_OK)
        return rc;
    for (int i = first + 1; i < *n; i++) {
        items[i].body = items[first].body;
        items[i].email = items[first].email;
        items[i].title = items[first].title;
        items[i].message = items[first].message;
        items[i].borrowed = 1;
    }
    return update_row(st, sql_lease, nid, now_ms + CC_NOTIFY_LEASE_MS, NULL, NULL);
}

/* claim_one's summary for all due notifications at once, when this process has no
 * per-user channel: *settled counts those that left the due list. */
static int settle_due(struct cc_store *st, int64_t now_ms, int *settled)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, pick(st, sql_summary_due, sql_summary_due_pg), &stmt);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 2, CC_NOTIFY_BATCH);
    while (rc == CC_OK && (rc = cc_stmt_step(stmt)) == CC_ROW) {
        *settled += cc_stmt_column_int64(stmt, 0) == 0;
        rc = CC_OK;
    }
    cc_stmt_release(stmt);
    return db_rc(rc);
}

/* Claims due notifications' channels into items[*n..cap); *settled counts those that
 * left the due list with nothing to send. Inside a transaction. The due rows are read
 * first and claimed afterwards, so no row changes under a running scan. */
static int claim_notifications(struct cc_store *st, const struct cc_notify_channels *ch,
                               int64_t now_ms, struct item *items, int *n, int cap, int *settled)
{
    struct cc_stmt *due = NULL;
    int64_t ids[CC_NOTIFY_BATCH];
    int nids = 0;
    int rc;

    if (!channel_on(ch, CH_WEBHOOK) && !channel_on(ch, CH_EMAIL))
        return settle_due(st, now_ms, settled);
    rc = cc_stmt_prepare(st, pick(st, sql_due, sql_due_pg), &due);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(due, 1, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(due, 2, CC_NOTIFY_BATCH);
    while (rc == CC_OK && nids < CC_NOTIFY_BATCH && (rc = cc_stmt_step(due)) == CC_ROW) {
        ids[nids++] = cc_stmt_column_int64(due, 0);
        rc = CC_OK;
    }
    cc_stmt_release(due);
    if (rc != CC_OK)
        return db_rc(rc);
    for (int i = 0; i < nids && *n + CH_USER_COUNT <= cap; i++) {
        rc = claim_one(st, ch, ids[i], now_ms, items, n, cap, settled);
        if (rc != CC_OK)
            return rc;
    }
    return CC_OK;
}

/* ---- channels ------------------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static int send_webhook(const struct cc_notify_channels *ch, const char *body, char *err,
                        size_t errlen)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL, *h;
    char sig[CC_NOTIFY_SIGNATURE_LEN];
    char line[32 + CC_NOTIFY_SIGNATURE_LEN];
    long status = 0;
    CURLcode res;
    int ok = 0;

    if (c == NULL) {
        snprintf(err, errlen, "curl init failed");
        return 0;
    }
    cc_notify_signature(ch->webhook_secret, body, strlen(body), sig);
    snprintf(line, sizeof line, "X-Coldchain-Signature: %s", sig);
    h = curl_slist_append(hdrs, "Content-Type: application/json");
    if (h != NULL)
        hdrs = h;
    h = curl_slist_append(hdrs, line);
    if (h != NULL)
        hdrs = h;
    h = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    if (h != NULL)
        hdrs = h;
    curl_easy_setopt(c, CURLOPT_URL, ch->webhook_url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)CC_NOTIFY_SEND_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    res = curl_easy_perform(c);
    if (res == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (res != CURLE_OK)
        snprintf(err, errlen, "%s", curl_easy_strerror(res));
    else if (status < 200 || status > 299)
        snprintf(err, errlen, "HTTP %ld", status);
    else
        ok = 1;
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return ok;
}

struct upload {
    const char *data;
    size_t len, pos;
};

static size_t read_mail(char *buf, size_t size, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t room = size * n, left = u->len - u->pos;
    size_t k = left < room ? left : room;

    memcpy(buf, u->data + u->pos, k);
    u->pos += k;
    return k;
}

/* Bytes of the UTF-8 sequence that starts with lead byte c (1 for a stray byte). */
static size_t utf8_len(unsigned char c)
{
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    if (c >= 0xE0)
        return c <= 0xEF ? 3 : 1;
    if (c >= 0xC2)
        return 2;
    return 1;
}

size_t cc_notify_subject(const char *title, char out[CC_NOTIFY_SUBJECT_MAX])
{
    /* 45 bytes of text make 60 base64 characters: 72 with =?UTF-8?B? and ?=. */
    enum { WORD_BYTES = 45 };
    char text[12 + CC_NOTIFY_TITLE_MAX + 1];
    size_t n, i, o = 0;
    int ascii = 1;

    memcpy(text, "[coldchain] ", 12);
    n = 12;
    for (i = 0; title != NULL && title[i] != '\0';) {
        size_t k = utf8_len((unsigned char)title[i]);

        if (n - 12 + k > CC_NOTIFY_TITLE_MAX)
            break;
        for (size_t j = 0; j < k; j++) {
            unsigned char c = (unsigned char)title[i + j];

            if (c == '\0') { /* a sequence cut short by the end of the string */
                k = j;
                break;
            }
            text[n++] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
            ascii &= c < 0x80;
        }
        if (k == 0)
            break;
        i += k;
    }
    text[n] = '\0';
    if (ascii) {
        memcpy(out, text, n + 1);
        return n;
    }
    for (i = 0; i < n;) {
        size_t take = 0;

        while (i + take < n) {
            size_t k = utf8_len((unsigned char)text[i + take]);

            if (take + k > WORD_BYTES || i + take + k > n)
                break;
            take += k;
        }
        if (take == 0)
            take = 1; /* a stray byte: encoded as it is */
        if (o > 0) {
            memcpy(out + o, "\r\n ", 3);
            o += 3;
        }
        memcpy(out + o, "=?UTF-8?B?", 10);
        o += 10;
        o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, (const unsigned char *)text + i,
                                     (int)take);
        memcpy(out + o, "?=", 2);
        o += 2;
        i += take;
    }
    out[o] = '\0';
    return o;
}

static int address_ok(const char *a)
{
    size_t n = strlen(a);

    if (n == 0 || n >= EMAIL_MAX || strchr(a, '@') == NULL)
        return 0;
    for (; *a != '\0'; a++) {
        if ((unsigned char)*a <= 0x20 || *a == '<' || *a == '>' || *a == 0x7F)
            return 0;
    }
    return 1;
}

static int send_email(const struct cc_notify_channels *ch, const struct item *it, char *err,
                      size_t errlen)
{
    const char *from =
        ch->smtp_from != NULL && ch->smtp_from[0] != '\0' ? ch->smtp_from : "coldchain@localhost";
    char subject[CC_NOTIFY_SUBJECT_MAX], date[64], envelope[EMAIL_MAX + 2];
    char *mail = NULL;
    struct curl_slist *rcpt = NULL;
    struct upload up;
    struct tm tm;
    time_t now = time(NULL);
    CURL *c = NULL;
    CURLcode res;
    int len, ok = 0;

    if (!address_ok(it->email) || !address_ok(from)) {
        snprintf(err, errlen, "bad address");
        return 0;
    }
    cc_notify_subject(it->title, subject);
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    mail = malloc(MAIL_MAX);
    if (mail == NULL) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    len = snprintf(mail, MAIL_MAX,
                   "Date: %s\r\nFrom: <%s>\r\nTo: <%s>\r\n"
                   "Message-ID: <notification-%lld@coldchain>\r\n"
                   "Subject: %s\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n\r\n%s\r\n",
                   date, from, it->email, (long long)it->id, subject, it->message, it->body);
    if (len < 0 || len >= MAIL_MAX) {
        snprintf(err, errlen, "mail too large");
        goto out;
    }
    c = curl_easy_init();
    if (c == NULL) {
        snprintf(err, errlen, "curl init failed");
        goto out;
    }
    snprintf(envelope, sizeof envelope, "<%s>", it->email);
    rcpt = curl_slist_append(NULL, envelope);
    if (rcpt == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(envelope, sizeof envelope, "<%s>", from);
    up.data = mail;
    up.len = (size_t)len;
    up.pos = 0;
    curl_easy_setopt(c, CURLOPT_URL, ch->smtp_url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, envelope);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_mail);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)CC_NOTIFY_SEND_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    res = curl_easy_perform(c);
    if (res != CURLE_OK)
        snprintf(err, errlen, "%s", curl_easy_strerror(res));
    else
        ok = 1;
out:
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    free(mail);
    return ok;
}

static void send_item(const struct cc_notify_channels *ch, struct item *it)
{
    char topic[64];
    int rc;

    it->error[0] = '\0';
    switch (it->channel) {
    case CH_MQTT: /* alert events only: claim_one never takes it for a notification */
        snprintf(topic, sizeof topic, "alerts/%lld", (long long)it->cell_id);
        rc = ch->publish(ch->publish_ctx, topic, it->body, strlen(it->body),
                         (struct cc_notify_event){it->id, it->alert_id});
        it->ok = rc == 0;
        it->held = rc == CC_NOTIFY_HELD;
        if (!it->ok && !it->held)
            snprintf(it->error, sizeof it->error, "publish failed (%d)", rc);
        break;
    case CH_WEBHOOK:
        it->ok = send_webhook(ch, it->body, it->error, sizeof it->error);
        break;
    case CH_EMAIL:
        it->ok = send_email(ch, it, it->error, sizeof it->error);
        break;
    default:
        it->ok = 0;
        snprintf(it->error, sizeof it->error, "unknown channel");
    }
    if (!it->ok && !it->held)
        cc_log_warn("notification_send_failed", "%s %s id=%lld attempt=%d: %s",
                    it->is_event ? "alert_event" : "notification", channel_names[it->channel],
                    (long long)it->id, it->attempts, it->error);
}

/* Writes one item's outcome: status, next attempt (now when sent), sent_at or the error.
 * An event handed over to a client that acknowledges later (awaiting) stays PENDING, due
 * again when its lease runs out. */
static int record_one(struct cc_store *st, const struct item *it, int awaiting, int64_t now_ms)
{
    int sent = it->ok && !awaiting;
    const char *status = it->ok || it->attempts < CC_NOTIFY_MAX_ATTEMPTS ? "PENDING" : "FAILED";
    int64_t next = now_ms + (it->ok ? CC_NOTIFY_ACK_LEASE_MS : cc_notify_backoff_ms(it->attempts));
    struct cc_stmt *stmt = NULL;
    int k = it->is_event ? 2 : 3; /* $k status, then next, sent_at, error */
    int rc;

    if (it->held) /* the lease alone */
        return update_row(st, sql_event_renew, it->id, now_ms + CC_NOTIFY_ACK_LEASE_MS, NULL, NULL);
    if (sent) {
        status = "SENT";
        next = now_ms;
    }
    rc = cc_stmt_prepare(st, it->is_event ? sql_event_done : sql_delivery_done, &stmt);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, it->id);
    if (rc == CC_OK && !it->is_event)
        rc = cc_stmt_bind_text(stmt, 2, channel_names[it->channel]);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, k, status);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, k + 1, next);
    if (rc == CC_OK)
        rc = sent ? cc_stmt_bind_int64(stmt, k + 2, now_ms) : cc_stmt_bind_null(stmt, k + 2);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, k + 3, it->ok ? NULL : it->error);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    /* An event's row was read PENDING in this transaction (and locked, on PostgreSQL):
     * SENT or FAILED is its change of status, counted by the store (cc_stats.h). The
     * deliveries of the other channels keep their triggers. */
    if (rc == CC_OK && it->is_event && status[0] != 'P' && cc_stmt_changes(stmt) == 1)
        rc = cc_stats_count(st, sent ? CC_STATS_DELIVERIES_SENT : CC_STATS_DELIVERIES_FAILED,
                            CC_STATS_MQTT);
    cc_stmt_release(stmt);
    return db_rc(rc);
}

/* Records the outcome of every item, in one transaction. */
static int record(struct cc_store *st, const struct item *items, int n, int64_t now_ms)
{
    int rc = cc_store_begin(st);

    if (rc != CC_OK)
        return rc;
    for (int i = 0; i < n && rc == CC_OK; i++) {
        const struct item *it = &items[i];

        rc = record_one(st, it, 0, now_ms);
        if (rc == CC_OK && !it->is_event &&
            (i + 1 == n || items[i + 1].id != it->id || items[i + 1].is_event))
            rc = summarize(st, it->id, now_ms, NULL);
    }
    if (rc != CC_OK) {
        cc_store_rollback(st);
        return rc;
    }
    return cc_store_commit(st);
}

/* Marks SENT the events the broker acknowledged, inside the caller's transaction; *nsent
 * counts the rows changed. The ids are taken from the client first: should the transaction
 * then roll back they are forgotten, and the events go again when their leases run out. */
static int mark_acked(struct cc_store *st, const struct cc_notify_channels *ch, int64_t now_ms,
                      int *nsent)
{
    struct cc_notify_event evs[CC_NOTIFY_BATCH];
    int n = CC_NOTIFY_BATCH;
    int rc = CC_OK;

    /* The client holds at most its window of them: this ends. */
    while (rc == CC_OK && ch->acked != NULL && n == CC_NOTIFY_BATCH) {
        n = ch->acked(ch->acked_ctx, evs, CC_NOTIFY_BATCH);
        for (int i = 0; i < n && rc == CC_OK; i++) {
            int64_t changed = 0;

            int was_failed = 0;

            rc = update_row(st, sql_event_acked, evs[i].id, now_ms, &evs[i].alert_id, &changed);
            if (rc == CC_OK && changed == 0) {
                rc = update_row(st, sql_event_acked_failed, evs[i].id, now_ms, &evs[i].alert_id,
                                &changed);
                was_failed = changed == 1;
            }
            *nsent += (int)changed;
            if (rc == CC_OK && changed == 1) /* it was not SENT: a delivery (cc_stats.h) */
                rc = cc_stats_count(st, CC_STATS_DELIVERIES_SENT, CC_STATS_MQTT);
            if (rc == CC_OK && was_failed) /* counted failed by the worker that gave it up */
                rc = cc_stats_uncount(st, CC_STATS_DELIVERIES_FAILED, CC_STATS_MQTT);
        }
    }
    return rc;
}

/* Marks SENT what was acknowledged, then hands over the due alert events and records each
 * outcome, inside the caller's transaction; *n of them were tried, *nsent sent (acknowledged,
 * or handed over when ch->acked is NULL). Should the transaction roll back after a publish,
 * the event stays as it was and is published again: at least once, as QoS 1 is. */
static int deliver_events(struct cc_store *st, const struct cc_notify_channels *ch, int64_t now_ms,
                          struct item *items, int *n, int *nsent)
{
    int cap = CC_NOTIFY_BATCH;
    int rc;

    /* The room is read before the acknowledged are taken: the client's held events plus
     * those it acknowledged since stay within its window (ingestd/pubacks.h). */
    if (ch->publish_room != NULL) {
        int room = ch->publish_room(ch->room_ctx);

        cap = room < cap ? room : cap;
    }
    rc = mark_acked(st, ch, now_ms, nsent);
    if (rc != CC_OK || cap <= 0)
        return rc; /* a full window: the events wait for the next pass */
    rc = read_events(st, now_ms, items, n, cap);

    for (int i = 0; i < *n && rc == CC_OK; i++) {
        send_item(ch, &items[i]);
        *nsent += items[i].ok && ch->acked == NULL;
        rc = record_one(st, &items[i], ch->acked != NULL, now_ms);
    }
    items_free(items, *n);
    return rc;
}

int cc_notify_record_acks(struct cc_store *st, const struct cc_notify_channels *ch, int64_t now_ms,
                          int *sent)
{
    int n = 0;
    int rc = cc_store_begin(st);

    if (rc == CC_OK)
        rc = mark_acked(st, ch, now_ms, &n);
    if (rc == CC_OK)
        rc = cc_store_commit(st);
    else
        cc_store_rollback(st);
    if (sent != NULL)
        *sent = n;
    return rc;
}

int cc_notify_deliver(struct cc_store *st, const struct cc_notify_channels *ch, int64_t now_ms,
                      int max_rows, int *sent)
{
    return cc_notify_deliver_rows(st, ch, now_ms, max_rows, sent, NULL);
}

int cc_notify_deliver_rows(struct cc_store *st, const struct cc_notify_channels *ch, int64_t now_ms,
                           int max_rows, int *sent, int *taken)
{
    const int cap = CC_NOTIFY_BATCH * CH_USER_COUNT; /* one per channel of a notification */
    struct item *items = malloc(cap * sizeof *items);
    int total = 0, nsent = 0;
    int rc = CC_OK;

    if (items == NULL)
        return CC_ERR_NOMEM;
    while (total < max_rows) {
        int nev = 0, evsent = 0, n = 0, settled = 0;

        rc = cc_store_begin(st);
        if (rc != CC_OK)
            break;
        if (ch->publish != NULL)
            rc = deliver_events(st, ch, now_ms, items, &nev, &evsent);
        if (rc == CC_OK)
            rc = claim_notifications(st, ch, now_ms, items, &n, cap, &settled);
        if (rc != CC_OK) {
            cc_store_rollback(st);
            items_free(items, n);
            break;
        }
        rc = cc_store_commit(st);
        if (rc != CC_OK) {
            items_free(items, n);
            break;
        }
        total += settled + nev;
        nsent += evsent;
        if (n == 0) {
            /* Events were published, or notifications with no channel to send on (none
             * configured: the inbox copy is all there is) were settled in this
             * transaction; go on while that happens, stop when nothing is due (or only
             * channels this process lacks). */
            if (settled > 0 || nev > 0)
                continue;
            break;
        }
        for (int i = 0; i < n; i++)
            send_item(ch, &items[i]);
        rc = record(st, items, n, now_ms);
        for (int i = 0; i < n; i++)
            nsent += items[i].ok;
        items_free(items, n);
        total += n;
        if (rc != CC_OK)
            break; /* the leases run out and the rows are sent again */
    }
    free(items);
    if (sent != NULL)
        *sent = nsent;
    if (taken != NULL)
        *taken = total;
    return rc;
}
