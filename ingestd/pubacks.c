/* pubacks.c - mid -> alert event bookkeeping of ingestd's publishes (see pubacks.h). Linear
 * scans over at most INGEST_PUBACKS_MAX entries: a few hundred ns per PUBACK, against the
 * ~100 us of CPU a QoS 1 publish costs in all (docs/alerts.md). */
#include "pubacks.h"

#include <string.h>

void ingest_pubacks_init(struct ingest_pubacks *p)
{
    memset(p, 0, sizeof *p);
}

static int find_mid(const struct ingest_pubacks *p, int mid)
{
    for (int i = 0; i < p->nheld; i++)
        if (p->mids[i] == mid)
            return i;
    return -1;
}

static void drop_held(struct ingest_pubacks *p, int i)
{
    p->nheld--;
    p->mids[i] = p->mids[p->nheld];
    p->evs[i] = p->evs[p->nheld];
}

static int same(struct cc_notify_event a, struct cc_notify_event b)
{
    return a.id == b.id && a.alert_id == b.alert_id;
}

int ingest_pubacks_add(struct ingest_pubacks *p, int mid, struct cc_notify_event ev)
{
    int old = find_mid(p, mid);

    if (old >= 0) {
        drop_held(p, old);
        p->forgotten++;
    }
    if (p->nheld >= INGEST_PUBACKS_MAX)
        return -1;
    p->mids[p->nheld] = mid;
    p->evs[p->nheld] = ev;
    p->nheld++;
    return 0;
}

int ingest_pubacks_ack(struct ingest_pubacks *p, int mid)
{
    int i = find_mid(p, mid);

    if (i < 0)
        return 0;
    if (p->nacked < INGEST_PUBACKS_MAX)
        p->acked[p->nacked++] = p->evs[i];
    else
        p->forgotten++;
    drop_held(p, i);
    return 1;
}

int ingest_pubacks_holds(const struct ingest_pubacks *p, struct cc_notify_event ev)
{
    for (int i = 0; i < p->nheld; i++)
        if (same(p->evs[i], ev))
            return 1;
    for (int i = 0; i < p->nacked; i++)
        if (same(p->acked[i], ev))
            return 1;
    return 0;
}

int ingest_pubacks_take(struct ingest_pubacks *p, struct cc_notify_event *evs, int max)
{
    int k = max < p->nacked ? max : p->nacked;

    if (k <= 0)
        return 0;
    p->nacked -= k;
    memcpy(evs, p->acked + p->nacked, (size_t)k * sizeof *evs);
    return k;
}
