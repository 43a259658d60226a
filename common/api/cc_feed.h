/* cc_feed.h - the live feed's fan-out: MQTT messages in, per-subscriber JSON out.
 *
 * apid's WebSocket feed (docs/websocket.md) in testable form. A struct cc_feed takes
 * the broker's messages (devices/{serial}/readings, alerts/{coldCellId}), turns them
 * into the feed's JSON messages and queues each one for every subscriber that may read
 * its cell (cc_access rule, SPEC §5). Nothing here touches a socket: the caller drains
 * each subscriber's queue with cc_feed_sub_next and writes the frames.
 *
 * Isolation: a reading goes to the cell its device belongs to at the moment the message
 * is handled (one indexed lookup per MQTT message, no serial cache, so a reassigned
 * device is never mapped to its old cell). Each subscriber keeps the set of cells it may
 * read (loaded at connect, reloaded every CC_FEED_ACL_TTL_MS); a cell not in the set is
 * checked with cc_access_check before anything is queued, and a database error denies.
 *
 * Bounded: a subscriber's queue holds at most CC_FEED_QUEUE_MAX messages and
 * CC_FEED_QUEUE_BYTES bytes. A push that does not fit never blocks: it closes the
 * subscriber (code CC_FEED_CLOSE_SLOW), whose consumer then ends the connection. A user
 * holds at most CC_FEED_PER_USER_MAX subscribers, the feed at most cc_feed_set_max.
 *
 * One consumer for all (apid's event loop): a subscriber becomes "ready" when its queue
 * goes from empty to not empty or when it is closed; cc_feed_ready hands out the ready
 * ones, each once, and cc_feed_notify_fd (an eventfd) is readable while there are any,
 * so the consumer sleeps in epoll/poll and never scans idle subscribers.
 *
 * Threads: cc_feed_on_message runs on one thread at a time (apid: Paho's), the only one
 * that uses the store given to cc_feed_new. cc_feed_sub_new/remove run on any thread
 * with their own store; cc_feed_sub_next, cc_feed_ready and cc_feed_sub_verify on the
 * consumer's thread; cc_feed_sub_push, cc_feed_sub_close and cc_feed_client_message
 * anywhere.
 * Ownership: messages returned by cc_feed_sub_next are malloc'd, the caller frees them.
 * Codes: CC_OK, CC_ERR_VALIDATION (a topic or payload not for the feed), CC_ERR_NOT_FOUND
 * (unknown device), CC_ERR_TOO_LARGE, CC_ERR_RATE_LIMITED, CC_ERR_UNAUTHORIZED,
 * CC_ERR_NOMEM, CC_ERR_DB, CC_ERR_IO. */
#ifndef CC_FEED_H
#define CC_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "cc_access.h"
#include "cc_store.h"

/* A queue is a ring of CC_FEED_QUEUE_MAX slots allocated per subscriber, and a thousand
 * subscribers may each hold CC_FEED_QUEUE_BYTES: both sized for 1,000+ feeds. */
#define CC_FEED_QUEUE_MAX 1024           /* messages waiting for one subscriber */
#define CC_FEED_QUEUE_BYTES (256 * 1024) /* bytes waiting for one subscriber */
#define CC_FEED_PER_USER_MAX 8           /* subscribers of one user (SPEC §5 "Live feed") */
#define CC_FEED_CLIENT_MSG_MAX 256       /* bytes of a client message looked at */
#define CC_FEED_ACL_TTL_MS 10000         /* a subscriber's allowed cells are reloaded after */
#define CC_FEED_MAX_CELLS 4096           /* allowed cells cached per subscriber */
#define CC_FEED_DENIED_MAX 256           /* denied cells remembered per subscriber */
#define CC_FEED_MAX_ALERT (64 * 1024)    /* bytes of an alert payload relayed */

/* WebSocket close codes the consumer sends (0: close without a frame). */
#define CC_FEED_CLOSE_SHUTDOWN 1001 /* going away */
#define CC_FEED_CLOSE_SLOW 1008     /* policy: the client did not keep up */
#define CC_FEED_CLOSE_AUTH 4401     /* token expired, user disabled or deleted */

enum cc_feed_next {
    CC_FEED_MSG = 1,  /* *msg / *len hold a message */
    CC_FEED_IDLE = 2, /* nothing within timeout_ms */
    CC_FEED_CLOSE = 3 /* the subscriber is closed; *close_code says how */
};

struct cc_feed;
struct cc_feed_sub;

/* A feed whose message thread reads devices and access rules through st (lent; it must
 * outlive the feed). CC_OK, CC_ERR_NOMEM or CC_ERR_IO (no eventfd). */
int cc_feed_new(struct cc_store *st, struct cc_feed **out);
/* At most max subscribers at once (default: no limit but CC_FEED_PER_USER_MAX each). */
void cc_feed_set_max(struct cc_feed *f, size_t max);
/* An eventfd (owned by f, non-blocking) readable while cc_feed_ready has something. */
int cc_feed_notify_fd(struct cc_feed *f);
/* Takes up to max ready subscribers into out (each reported once per readiness) and
 * returns how many; clears the eventfd when none is left. Consumer thread only. */
size_t cc_feed_ready(struct cc_feed *f, struct cc_feed_sub **out, size_t max);
/* Frees the feed; subscribers still registered are freed too. NULL is a no-op. */
void cc_feed_free(struct cc_feed *f);
/* Subscribers registered now. */
size_t cc_feed_count(struct cc_feed *f);

/* Handles one broker message received at now_ms: queues the feed messages it yields for
 * every subscriber allowed to see them. *queued (may be NULL) receives how many were
 * queued in all. Invalid readings of an array are skipped; the valid ones go out. */
int cc_feed_on_message(struct cc_feed *f, const char *topic, const void *payload, size_t len,
                       int64_t now_ms, size_t *queued);

/* Registers a subscriber for p (already authenticated) whose token expires at
 * expires_ms (epoch ms; 0: never), carrying data for its consumer (cc_feed_sub_data).
 * Its allowed cells are loaded with st (the caller's store) and a {"type":"hello"}
 * message is queued first (the subscriber is not reported ready for it: the consumer
 * drains a new subscriber once). *out until cc_feed_sub_remove. CC_ERR_RATE_LIMITED
 * when p's user already has CC_FEED_PER_USER_MAX, CC_ERR_TOO_LARGE when the feed holds
 * its maximum, CC_ERR_DB, CC_ERR_NOMEM. */
int cc_feed_sub_new(struct cc_feed *f, struct cc_store *st, const struct cc_principal *p,
                    int64_t expires_ms, void *data, struct cc_feed_sub **out);
/* The token_version (claim "ver") of the token s was opened with: from now on the user
 * checks also close s (CC_FEED_CLOSE_AUTH) once the user's password has changed. Until
 * it is set (any thread, once), s is not checked for it. */
void cc_feed_sub_set_token_version(struct cc_feed_sub *s, int64_t ver);
/* The data given to cc_feed_sub_new (lent back; s never uses it). */
void *cc_feed_sub_data(const struct cc_feed_sub *s);
/* Checks with st (the caller's store) that s's user still exists, is enabled and has
 * the same role: CC_OK; CC_ERR_UNAUTHORIZED, and s is closed with CC_FEED_CLOSE_AUTH;
 * CC_ERR_DB (s stays open: a database hiccup does not end feeds). */
int cc_feed_sub_verify(struct cc_feed_sub *s, struct cc_store *st);
/* Handles one text message from s's client: {"type":"ping"} queues {"type":"pong"};
 * anything else is ignored. CC_OK (answered), CC_ERR_VALIDATION (not understood: more
 * than CC_FEED_CLIENT_MSG_MAX bytes, not JSON, too deep, not a ping), or what
 * cc_feed_sub_push returns. */
int cc_feed_client_message(struct cc_feed_sub *s, const char *msg, size_t len);
/* Unregisters s and frees it: once it returns, no thread of the feed touches s. The
 * consumer must have stopped calling cc_feed_sub_next. NULL is a no-op. */
void cc_feed_sub_remove(struct cc_feed *f, struct cc_feed_sub *s);

/* Queues a copy of msg (a pong, say) for s. CC_OK, CC_ERR_TOO_LARGE (the queue is full:
 * s is now closed with CC_FEED_CLOSE_SLOW) or CC_ERR_NOMEM. Never blocks. */
int cc_feed_sub_push(struct cc_feed_sub *s, const char *msg, size_t len);
/* Closes s with code (the first close wins); the consumer sees CC_FEED_CLOSE next. */
void cc_feed_sub_close(struct cc_feed_sub *s, int code);
/* Waits up to timeout_ms (0: not at all) for the next message of s. CC_FEED_MSG (*msg
 * malloc'd, the caller frees), CC_FEED_IDLE, or CC_FEED_CLOSE with *close_code (also
 * when the token has expired: CC_FEED_CLOSE_AUTH). Queued messages are dropped once s
 * is closed. */
int cc_feed_sub_next(struct cc_feed_sub *s, int timeout_ms, char **msg, size_t *len,
                     int *close_code);

#endif
