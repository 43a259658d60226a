/* cc_errcap.h - per-device cap on ingestd's error replies (devices/{serial}/errors).
 *
 * Every refused MQTT message is answered at QoS 1; the broker queues whatever a device
 * does not read, without bound. So each serial gets a token bucket: `burst` replies at
 * once (the first errors of a device always get through), then `per_min` a minute. A
 * reply over the cap is left out and counted; the device's next allowed reply carries
 * that count, so the device still learns that it was refused more often than it was told.
 *
 * Memory is bounded: a table of max_devices slots (rounded up to a power of two, at least
 * CC_ERRCAP_WAYS), allocated once. A serial hashes (with a per-table seed, so nobody can
 * choose serials that crowd one set) into a set of CC_ERRCAP_WAYS slots. A serial not in
 * its set takes the slot whose bucket is fullest (an empty slot, else the smallest
 * theoretical arrival time) AND KEEPS THAT SLOT'S BUCKET: evicting never hands out fresh
 * tokens, so however many serials there are, the table as a whole publishes at most
 * slots x (burst + per_min a minute). An evicted serial loses only its suppressed count.
 *
 * The bucket is GCRA (the virtual-scheduling form of a token bucket) in microseconds:
 * integer arithmetic, one timestamp per slot.
 * Not thread-safe: one thread at a time (ingestd's writer thread owns its table).
 * Codes: CC_OK, CC_ERR_NOMEM, CC_ERR_VALIDATION (a limit out of range). */
#ifndef CC_ERRCAP_H
#define CC_ERRCAP_H

#include <stddef.h>
#include <stdint.h>

#define CC_ERRCAP_BURST_DEFAULT 20      /* replies at once (INGEST_ERROR_REPLY_BURST) */
#define CC_ERRCAP_BURST_MAX 100000      /* replies at once, the most that may be configured */
#define CC_ERRCAP_PER_MIN_DEFAULT 6     /* replies a minute after that (one every 10 s) */
#define CC_ERRCAP_PER_MIN_MAX 60000     /* replies a minute, the most (one a millisecond) */
#define CC_ERRCAP_WAYS 8                /* slots a serial may use (one set of the table) */
#define CC_ERRCAP_DEVICES_MAX (1 << 20) /* slots, the most a table may have */
#define CC_ERRCAP_KEY_MAX 64            /* bytes of a key compared; longer keys are cut */

struct cc_errcap;

/* A table for about max_devices serials at once, burst in 1..CC_ERRCAP_BURST_MAX,
 * per_min in 1..CC_ERRCAP_PER_MIN_MAX, seed mixed into the hash (random in production,
 * fixed in tests). CC_OK and *out (free with cc_errcap_free), CC_ERR_VALIDATION or
 * CC_ERR_NOMEM; *out is written only on success. */
int cc_errcap_new(int burst, int per_min, size_t max_devices, uint64_t seed,
                  struct cc_errcap **out);
/* Frees the table. NULL is a no-op. */
void cc_errcap_free(struct cc_errcap *c);

/* One reply for key at now_ms (a monotonic clock, >= 0). 1 if it may be published, with
 * *suppressed the replies left out for key since its last published one (then reset to 0);
 * 0 if it is over the cap (counted for the next allowed reply; *suppressed untouched). */
int cc_errcap_take(struct cc_errcap *c, const char *key, int64_t now_ms,
                   unsigned long long *suppressed);

/* Slots in the table (the bound on its memory: slots x 96 bytes on LP64). */
size_t cc_errcap_slots(const struct cc_errcap *c);

#endif
