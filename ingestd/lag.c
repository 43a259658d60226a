/* lag.c - ingestd's lag histogram (see lag.h). */
#include "lag.h"

const int ingest_lag_le_ms[INGEST_LAG_LE_COUNT] = {1,   2,    5,    10,   25,    50,    100,  250,
                                                   500, 1000, 2500, 5000, 10000, 30000, 60000};

void ingest_lag_add(struct ingest_lag *h, int64_t lag_ms)
{
    size_t i, b = 0;

    if (lag_ms < 0)
        lag_ms = 0;
    if (lag_ms >= INGEST_LAG_BUCKETS)
        lag_ms = INGEST_LAG_BUCKETS - 1;
    i = (size_t)lag_ms;
    while (b < INGEST_LAG_LE_COUNT - 1 && (int)i > ingest_lag_le_ms[b])
        b++;
    h->ms[i]++;
    h->sec[i / INGEST_LAG_SECOND_MS]++;
    h->le[b]++; /* the last bound is the last bucket: every lag is under one */
    h->total++;
    h->sum_ms += i;
}

/* The smallest lag (ms) with more than rank lags at or below it: a second by its counter,
 * then the ms inside it. */
static double rank_ms(const struct ingest_lag *h, unsigned long long rank)
{
    unsigned long long seen = 0;

    for (size_t s = 0; s < INGEST_LAG_SECONDS; s++) {
        if (seen + h->sec[s] <= rank) {
            seen += h->sec[s];
            continue;
        }
        size_t end = (s + 1) * INGEST_LAG_SECOND_MS;
        if (end > INGEST_LAG_BUCKETS)
            end = INGEST_LAG_BUCKETS;
        for (size_t i = s * INGEST_LAG_SECOND_MS; i < end; i++) {
            seen += h->ms[i];
            if (seen > rank)
                return (double)i;
        }
    }
    return (double)(INGEST_LAG_BUCKETS - 1);
}

void ingest_lag_summarize(const struct ingest_lag *h, struct ingest_lag_summary *out)
{
    unsigned long long cum = 0;

    for (size_t b = 0; b < INGEST_LAG_LE_COUNT; b++) {
        cum += h->le[b];
        out->le[b] = cum;
    }
    out->total = h->total;
    out->sum_ms = h->sum_ms;
    out->p50_ms = h->total ? rank_ms(h, (unsigned long long)(0.5 * (double)h->total)) : 0.0;
    out->p99_ms = h->total ? rank_ms(h, (unsigned long long)(0.99 * (double)h->total)) : 0.0;
}
