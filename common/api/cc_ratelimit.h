/* cc_ratelimit.h - fixed-window request counters per client address (SPEC §5).
 *
 * Each key (a client address) may make `limit` requests per window; the window starts
 * at its first request. Memory is bounded: a table of about 2 * max_keys slots is
 * allocated once; when a probe finds no free or expired slot, the oldest window among
 * the probed slots is evicted (a flood of distinct addresses can only reset counters,
 * never grow memory). A limit <= 0 allows everything.
 * Thread-safe: one mutex per limiter, held for a few hash probes.
 * Codes: CC_OK (allowed), CC_ERR_RATE_LIMITED, CC_ERR_NOMEM. */
#ifndef CC_RATELIMIT_H
#define CC_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define CC_RATELIMIT_KEY_MAX 64 /* bytes of a key, NUL included; longer keys are cut */
#define CC_RATELIMIT_PROBES 16  /* slots looked at per request */

struct cc_ratelimit;

/* A limiter of limit requests per window_ms for up to max_keys keys at once.
 * CC_OK and *out (free with cc_ratelimit_free) or CC_ERR_NOMEM. */
int cc_ratelimit_new(int limit, int64_t window_ms, size_t max_keys, struct cc_ratelimit **out);
void cc_ratelimit_free(struct cc_ratelimit *rl);

/* Counts one request of key at now_ms (a monotonic clock). CC_OK if it is allowed;
 * CC_ERR_RATE_LIMITED if it is over the limit, with *retry_after_s the whole seconds
 * (>= 1) until the key's window ends. A refused request is not counted. */
int cc_ratelimit_hit(struct cc_ratelimit *rl, const char *key, int64_t now_ms,
                     int64_t *retry_after_s);

#endif
