/* lag.h - ingestd's publish-to-commit lag histogram: 1 ms buckets up to 60 s, and what
 * /metrics shows of it (the Prometheus buckets, the sum, the count, two quantiles) read in
 * a bounded number of steps without a copy of the buckets.
 *
 * A scrape used to copy the used part of the 60,001 buckets (up to 480 KB, allocated per
 * scrape in civetweb's worker arenas) and walk them. The histogram now keeps, beside the
 * 1 ms buckets, the count of each Prometheus bucket and of each second, so a summary reads
 * INGEST_LAG_LE_COUNT + INGEST_LAG_SECONDS counters and at most 2 x 1,000 buckets. Not
 * thread-safe: the writer holds it under its lock. */
#ifndef INGEST_LAG_H
#define INGEST_LAG_H

#include <stddef.h>
#include <stdint.h>

#define INGEST_LAG_BUCKETS 60001 /* 1 ms lag histogram, last bucket = 60 s and more */
#define INGEST_LAG_SECOND_MS 1000
#define INGEST_LAG_SECONDS (INGEST_LAG_BUCKETS / INGEST_LAG_SECOND_MS + 1) /* 61 */
#define INGEST_LAG_LE_COUNT 15 /* Prometheus buckets, +Inf apart (ingest_lag_le_ms) */

/* The Prometheus buckets' upper bounds in ms (each counts the lags <= its bound). */
extern const int ingest_lag_le_ms[INGEST_LAG_LE_COUNT];

struct ingest_lag {
    unsigned long long ms[INGEST_LAG_BUCKETS];  /* lags of each ms */
    unsigned long long sec[INGEST_LAG_SECONDS]; /* of each second: ms[1000s .. 1000s+999] */
    unsigned long long le[INGEST_LAG_LE_COUNT]; /* in (le_ms[b-1], le_ms[b]], not cumulative */
    unsigned long long total;                   /* lags recorded */
    unsigned long long sum_ms;                  /* of the lags, each capped at 60 s */
};

struct ingest_lag_summary {
    unsigned long long le[INGEST_LAG_LE_COUNT]; /* cumulative: lags <= ingest_lag_le_ms[b] */
    unsigned long long total;
    unsigned long long sum_ms;
    double p50_ms, p99_ms; /* 0 when total is 0 */
};

/* Zeroed memory is an empty histogram (calloc it: ~490 KB, pages touched as lags use them). */
/* Records one lag in ms (negative counts as 0, 60 s and more in the last bucket). */
void ingest_lag_add(struct ingest_lag *h, int64_t lag_ms);
/* What /metrics shows; reads at most INGEST_LAG_LE_COUNT + 2 x INGEST_LAG_SECONDS counters
 * and 2 x INGEST_LAG_SECOND_MS buckets, allocates nothing. */
void ingest_lag_summarize(const struct ingest_lag *h, struct ingest_lag_summary *out);

#endif
