/* cc_errcap.c - token buckets per serial in a bounded set-associative table (cc_errcap.h). */
#include "cc_errcap.h"

#include <stdlib.h>
#include <string.h>

#include "cc_rc.h"

#define US_PER_MIN 60000000LL /* microseconds in a minute */

struct slot {
    uint64_t hash;                   /* 0: never used */
    int64_t tat_us;                  /* GCRA theoretical arrival time of the next reply */
    unsigned long long suppressed;   /* replies left out since the last published one */
    char key[CC_ERRCAP_KEY_MAX + 1]; /* NUL-terminated, cut to CC_ERRCAP_KEY_MAX */
};

struct cc_errcap {
    int64_t interval_us; /* one token every interval_us */
    int64_t tau_us;      /* how far ahead of now tat may run: (burst - 1) intervals */
    uint64_t seed;
    size_t set_mask; /* sets - 1, sets a power of two */
    struct slot *slots;
};

/* FNV-1a from a seeded basis, then splitmix64's finalizer so that every bit of the seed
 * reaches the set index; never 0 (0 marks an empty slot). */
static uint64_t key_hash(uint64_t seed, const char *k)
{
    uint64_t h = 1469598103934665603ULL ^ seed;

    for (size_t i = 0; i < CC_ERRCAP_KEY_MAX && k[i] != '\0'; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h ? h : 1;
}

int cc_errcap_new(int burst, int per_min, size_t max_devices, uint64_t seed, struct cc_errcap **out)
{
    struct cc_errcap *c = NULL;
    size_t n = CC_ERRCAP_WAYS;

    if (burst < 1 || burst > CC_ERRCAP_BURST_MAX || per_min < 1 ||
        per_min > CC_ERRCAP_PER_MIN_MAX || max_devices > CC_ERRCAP_DEVICES_MAX)
        return CC_ERR_VALIDATION;
    while (n < max_devices)
        n <<= 1;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        goto fail;
    c->slots = calloc(n, sizeof *c->slots);
    if (c->slots == NULL)
        goto fail;
    c->interval_us = US_PER_MIN / per_min;
    c->tau_us = (int64_t)(burst - 1) * c->interval_us;
    c->seed = seed;
    c->set_mask = n / CC_ERRCAP_WAYS - 1;
    *out = c;
    return CC_OK;
fail:
    if (c != NULL)
        free(c->slots);
    free(c);
    return CC_ERR_NOMEM;
}

void cc_errcap_free(struct cc_errcap *c)
{
    if (c == NULL)
        return;
    free(c->slots);
    free(c);
}

size_t cc_errcap_slots(const struct cc_errcap *c)
{
    return (c->set_mask + 1) * CC_ERRCAP_WAYS;
}

/* 1 if a is a better slot to give a new key than b. Fullest bucket first (every bucket
 * that has refilled completely counts as equally full), then one that owes its device
 * no count, then the one idle longest. */
static int better_victim(const struct slot *a, const struct slot *b, int64_t now_us)
{
    int64_t ta = a->tat_us > now_us ? a->tat_us : now_us;
    int64_t tb = b->tat_us > now_us ? b->tat_us : now_us;

    if (a->hash == 0 || b->hash == 0)
        return a->hash == 0 && b->hash != 0;
    if (ta != tb)
        return ta < tb;
    if ((a->suppressed == 0) != (b->suppressed == 0))
        return a->suppressed == 0;
    return a->tat_us < b->tat_us;
}

int cc_errcap_take(struct cc_errcap *c, const char *key, int64_t now_ms,
                   unsigned long long *suppressed)
{
    uint64_t h = key_hash(c->seed, key);
    struct slot *set = c->slots + (h & c->set_mask) * CC_ERRCAP_WAYS;
    struct slot *s = NULL, *victim = set;
    int64_t now_us = now_ms * 1000;

    for (int i = 0; i < CC_ERRCAP_WAYS; i++) {
        if (set[i].hash == h && strncmp(set[i].key, key, CC_ERRCAP_KEY_MAX) == 0) {
            s = &set[i];
            break;
        }
        if (better_victim(&set[i], victim, now_us))
            victim = &set[i];
    }
    if (s == NULL) {
        /* The victim's tat_us stays: a new key inherits the slot's bucket as it is, so
         * cycling many keys through one set never mints tokens. */
        s = victim;
        s->hash = h;
        s->suppressed = 0;
        strncpy(s->key, key, CC_ERRCAP_KEY_MAX);
        s->key[CC_ERRCAP_KEY_MAX] = '\0';
    }
    if (now_us < s->tat_us - c->tau_us) {
        s->suppressed++;
        return 0;
    }
    s->tat_us = (s->tat_us > now_us ? s->tat_us : now_us) + c->interval_us;
    *suppressed = s->suppressed;
    s->suppressed = 0;
    return 1;
}
