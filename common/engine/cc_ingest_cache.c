/* cc_ingest_cache.c - the ingest path's device cache, see cc_ingest_cache.h.
 *
 * Open addressing on the serial: SLOTS slots (twice CC_INGEST_CACHE_DEVICES, so a probe
 * ends after a step or two) hold an index + 1 into the entries, which are appended in
 * order: 1000 devices touch 1000 entries, not pages all over a table. Nothing is removed
 * one by one; the whole cache empties (a new stamp, a failed run, a full table). */
#include "cc_ingest_cache.h"

#include <stdlib.h>
#include <string.h>

#include "cc_rc.h"

#define SLOTS (2 * CC_INGEST_CACHE_DEVICES)
_Static_assert((SLOTS & (SLOTS - 1)) == 0, "the slots are a power of two");

struct cc_ingest_cache {
    struct cc_store_stamp stamp; /* the one the entries were filled under */
    int have_stamp;
    int n;
    int32_t slot[SLOTS]; /* entry index + 1; 0: empty */
    struct cc_ingest_cached entry[CC_INGEST_CACHE_DEVICES];
};

static void cache_free(void *c)
{
    free(c);
}

int cc_ingest_cache_enable(struct cc_store *st)
{
    struct cc_ingest_cache *c;

    if (cc_store_dialect(st) != CC_DIALECT_SQLITE)
        return CC_OK;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return CC_ERR_NOMEM;
    cc_store_set_attachment(st, c, cache_free);
    return CC_OK;
}

void cc_ingest_cache_clear(struct cc_ingest_cache *c)
{
    if (c->n > 0)
        memset(c->slot, 0, sizeof c->slot);
    c->n = 0;
}

struct cc_ingest_cache *cc_ingest_cache_for(struct cc_store *st)
{
    struct cc_ingest_cache *c = cc_store_attachment(st);
    struct cc_store_stamp now;

    if (c == NULL)
        return NULL;
    if (cc_store_stamp(st, &now) != CC_OK) {
        cc_ingest_cache_clear(c);
        c->have_stamp = 0;
        return NULL;
    }
    if (!c->have_stamp || now.data_version != c->stamp.data_version ||
        now.rollbacks != c->stamp.rollbacks)
        cc_ingest_cache_clear(c);
    c->stamp = now;
    c->have_stamp = 1;
    return c;
}

/* FNV-1a. */
static uint32_t hash(const char *s)
{
    uint64_t h = 14695981039346656037u;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (uint32_t)(h ^ (h >> 32));
}

/* The slot of serial: its own, or the empty one it would take. */
static uint32_t find(const struct cc_ingest_cache *c, const char *serial)
{
    uint32_t i = hash(serial) & (SLOTS - 1);

    /* Never full: at most CC_INGEST_CACHE_DEVICES of the SLOTS are held. */
    while (c->slot[i] != 0 && strcmp(c->entry[c->slot[i] - 1].dev.serial, serial) != 0)
        i = (i + 1) & (SLOTS - 1);
    return i;
}

struct cc_ingest_cached *cc_ingest_cache_get(struct cc_ingest_cache *c, const char *serial)
{
    uint32_t i = find(c, serial);

    return c->slot[i] != 0 ? &c->entry[c->slot[i] - 1] : NULL;
}

struct cc_ingest_cached *cc_ingest_cache_put(struct cc_ingest_cache *c, const struct cc_device *dev)
{
    uint32_t i = find(c, dev->serial);
    struct cc_ingest_cached *e;

    if (c->slot[i] == 0) {
        if (c->n == CC_INGEST_CACHE_DEVICES) {
            cc_ingest_cache_clear(c);
            i = find(c, dev->serial);
        }
        e = &c->entry[c->n];
        c->slot[i] = ++c->n;
        e->has_state = 0;
    } else {
        e = &c->entry[c->slot[i] - 1];
    }
    e->dev = *dev;
    e->dev.locked_tx = 0;
    return e;
}
