/* cc_ratelimit.c - fixed-window counters in a bounded open-addressing table. */
#include "cc_ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cc_rc.h"

struct slot {
    uint64_t hash;        /* 0: never used */
    int64_t window_start; /* ms */
    int count;
    char key[CC_RATELIMIT_KEY_MAX];
};

struct cc_ratelimit {
    pthread_mutex_t mu;
    int limit;
    int64_t window_ms;
    size_t mask; /* slots - 1, slots a power of two */
    struct slot *slots;
};

/* FNV-1a, never 0 (0 marks an empty slot). */
static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *k; k++) {
        h ^= (unsigned char)*k;
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

/* 0 for an empty slot, 1 for an expired window, 2 for a live one. */
static int rank(const struct cc_ratelimit *rl, const struct slot *c, int64_t now_ms)
{
    if (c->hash == 0)
        return 0;
    return now_ms - c->window_start >= rl->window_ms ? 1 : 2;
}

/* 1 if a is a better slot to reuse than b: empty, then expired, then the oldest. */
static int better_victim(const struct cc_ratelimit *rl, const struct slot *a, const struct slot *b,
                         int64_t now_ms)
{
    int ra = rank(rl, a, now_ms), rb = rank(rl, b, now_ms);

    if (ra != rb)
        return ra < rb;
    return a->window_start < b->window_start;
}

int cc_ratelimit_new(int limit, int64_t window_ms, size_t max_keys, struct cc_ratelimit **out)
{
    struct cc_ratelimit *rl = NULL;
    size_t n = 64;

    while (n < 2 * max_keys && n < ((size_t)1 << 24))
        n <<= 1;
    rl = calloc(1, sizeof *rl);
    if (rl == NULL)
        goto fail;
    rl->slots = calloc(n, sizeof *rl->slots);
    if (rl->slots == NULL)
        goto fail;
    if (pthread_mutex_init(&rl->mu, NULL) != 0)
        goto fail;
    rl->limit = limit;
    rl->window_ms = window_ms > 0 ? window_ms : 1;
    rl->mask = n - 1;
    *out = rl;
    return CC_OK;
fail:
    if (rl != NULL)
        free(rl->slots);
    free(rl);
    return CC_ERR_NOMEM;
}

void cc_ratelimit_free(struct cc_ratelimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->slots);
    free(rl);
}

int cc_ratelimit_hit(struct cc_ratelimit *rl, const char *key, int64_t now_ms,
                     int64_t *retry_after_s)
{
    char k[CC_RATELIMIT_KEY_MAX];
    struct slot *s = NULL, *victim = NULL;
    uint64_t h;
    int rc = CC_OK;

    if (rl->limit <= 0)
        return CC_OK;
    strncpy(k, key ? key : "", sizeof k - 1);
    k[sizeof k - 1] = '\0';
    h = key_hash(k);

    pthread_mutex_lock(&rl->mu);
    for (size_t i = 0; i < CC_RATELIMIT_PROBES; i++) {
        struct slot *c = &rl->slots[(h + i) & rl->mask];

        if (c->hash == h && strcmp(c->key, k) == 0) {
            s = c;
            break;
        }
        if (victim == NULL || better_victim(rl, c, victim, now_ms))
            victim = c;
    }
    if (s == NULL) {
        s = victim;
        s->hash = h;
        memcpy(s->key, k, sizeof k);
        s->window_start = now_ms;
        s->count = 0;
    } else if (now_ms - s->window_start >= rl->window_ms) {
        s->window_start = now_ms;
        s->count = 0;
    }
    if (s->count >= rl->limit) {
        int64_t left_ms = s->window_start + rl->window_ms - now_ms;

        *retry_after_s = left_ms <= 0 ? 1 : (left_ms + 999) / 1000;
        rc = CC_ERR_RATE_LIMITED;
    } else {
        s->count++;
    }
    pthread_mutex_unlock(&rl->mu);
    return rc;
}
