/* test_ingest_lag.c - ingestd's lag histogram (ingestd/lag.c): the summary /metrics shows,
 * read from the per-second and per-bucket counters, is the one a walk over every 1 ms
 * bucket gives (what each scrape did on a copy of the buckets before). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../../ingestd/lag.h"

/* The walk over all buckets: the quantile as the scrape computed it. */
static double walk_quantile(const struct ingest_lag *h, double q)
{
    unsigned long long want = (unsigned long long)(q * (double)h->total), seen = 0;

    for (size_t i = 0; i < INGEST_LAG_BUCKETS; i++) {
        seen += h->ms[i];
        if (seen > want)
            return (double)i;
    }
    return (double)(INGEST_LAG_BUCKETS - 1);
}

/* Every figure of the summary against the walk. */
static void check_summary(const struct ingest_lag *h)
{
    struct ingest_lag_summary s;
    unsigned long long total = 0, sum = 0;

    ingest_lag_summarize(h, &s);
    for (size_t i = 0; i < INGEST_LAG_BUCKETS; i++) {
        total += h->ms[i];
        sum += (unsigned long long)i * h->ms[i];
    }
    assert_int_equal(s.total, total);
    assert_int_equal(s.sum_ms, sum);
    for (size_t b = 0; b < INGEST_LAG_LE_COUNT; b++) {
        unsigned long long le = 0;
        for (size_t i = 0; i <= (size_t)ingest_lag_le_ms[b]; i++)
            le += h->ms[i];
        assert_int_equal(s.le[b], le);
    }
    assert_int_equal(s.le[INGEST_LAG_LE_COUNT - 1], total); /* the last bound takes all */
    if (total == 0) {
        assert_true(s.p50_ms == 0.0 && s.p99_ms == 0.0);
        return;
    }
    assert_true(s.p50_ms == walk_quantile(h, 0.5));
    assert_true(s.p99_ms == walk_quantile(h, 0.99));
}

static void test_ingest_lag_empty(void **state)
{
    struct ingest_lag *h = calloc(1, sizeof *h);

    (void)state;
    assert_non_null(h);
    check_summary(h);
    free(h);
}

/* Negative lags count as 0, 60 s and more as the last bucket; a lag on a bound is in it. */
static void test_ingest_lag_edges(void **state)
{
    static const int64_t lags[] = {-5,   0,     1,     2,     3,     999,      1000,
                                   1001, 30000, 59999, 60000, 60001, INT64_MAX};
    struct ingest_lag *h = calloc(1, sizeof *h);
    struct ingest_lag_summary s;

    (void)state;
    assert_non_null(h);
    for (size_t i = 0; i < sizeof lags / sizeof lags[0]; i++)
        ingest_lag_add(h, lags[i]);
    assert_int_equal(h->ms[0], 2);
    assert_int_equal(h->ms[INGEST_LAG_BUCKETS - 1], 3);
    ingest_lag_summarize(h, &s);
    assert_int_equal(s.le[0], 3); /* -5, 0, 1 are <= 1 ms */
    assert_int_equal(s.le[1], 4); /* and 2 */
    check_summary(h);
    free(h);
}

/* Random lags over every range (a steady load, a backlog's seconds, the capped tail). */
static void test_ingest_lag_random(void **state)
{
    struct ingest_lag *h = calloc(1, sizeof *h);
    uint64_t x = 88172645463325252ull;

    (void)state;
    assert_non_null(h);
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 5000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            int64_t lag;
            switch (x % 4) {
            case 0:
                lag = (int64_t)(x >> 8) % 50; /* live: a few ms */
                break;
            case 1:
                lag = (int64_t)(x >> 8) % 3000;
                break;
            case 2:
                lag = (int64_t)(x >> 8) % 70000; /* a backlog, past the cap too */
                break;
            default:
                lag = round % 2 ? 1000 * (int64_t)(round + 1) : -1; /* on a second's edge */
            }
            ingest_lag_add(h, lag);
        }
        check_summary(h);
    }
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_lag_empty),
        cmocka_unit_test(test_ingest_lag_edges),
        cmocka_unit_test(test_ingest_lag_random),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
