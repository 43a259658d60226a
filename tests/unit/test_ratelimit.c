/* test_ratelimit.c - cc_ratelimit: the limit, the window, Retry-After, separate keys,
 * bounded memory under a flood of keys, no limit, and exact counts across threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "cc_ratelimit.h"
#include "cc_rc.h"

#define WINDOW_MS 900000 /* 15 minutes */
#define THREADS 4
#define HITS_PER_THREAD 5000

static void test_ratelimit_limit_and_retry_after(void **state)
{
    struct cc_ratelimit *rl = NULL;
    int64_t retry = 0;

    (void)state;
    assert_int_equal(cc_ratelimit_new(5, WINDOW_MS, 100, &rl), CC_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cc_ratelimit_hit(rl, "10.0.0.1", 1000 + i, &retry), CC_OK);
    assert_int_equal(cc_ratelimit_hit(rl, "10.0.0.1", 1005, &retry), CC_ERR_RATE_LIMITED);
    /* The window started at 1000 ms: 899995 ms are left, rounded up to whole seconds. */
    assert_int_equal(retry, 900);
    assert_int_equal(cc_ratelimit_hit(rl, "10.0.0.1", 1000 + WINDOW_MS - 1, &retry),
                     CC_ERR_RATE_LIMITED);
    assert_int_equal(retry, 1);
    /* A refused request is not counted: the next window starts fresh. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(cc_ratelimit_hit(rl, "10.0.0.1", 1000 + WINDOW_MS + i, &retry), CC_OK);
    assert_int_equal(cc_ratelimit_hit(rl, "10.0.0.1", 1000 + WINDOW_MS + 9, &retry),
                     CC_ERR_RATE_LIMITED);
    cc_ratelimit_free(rl);
}

static void test_ratelimit_keys_are_separate(void **state)
{
    struct cc_ratelimit *rl = NULL;
    int64_t retry = 0;

    (void)state;
    assert_int_equal(cc_ratelimit_new(2, WINDOW_MS, 100, &rl), CC_OK);
    assert_int_equal(cc_ratelimit_hit(rl, "a", 0, &retry), CC_OK);
    assert_int_equal(cc_ratelimit_hit(rl, "a", 0, &retry), CC_OK);
    assert_int_equal(cc_ratelimit_hit(rl, "a", 0, &retry), CC_ERR_RATE_LIMITED);
    assert_int_equal(cc_ratelimit_hit(rl, "b", 0, &retry), CC_OK);
    assert_int_equal(cc_ratelimit_hit(rl, "ab", 0, &retry), CC_OK);
    assert_int_equal(cc_ratelimit_hit(rl, "", 0, &retry), CC_OK);
    assert_int_equal(cc_ratelimit_hit(rl, NULL, 0, &retry), CC_OK);
    cc_ratelimit_free(rl);
}

static void test_ratelimit_unlimited(void **state)
{
    struct cc_ratelimit *rl = NULL;
    int64_t retry = 0;

    (void)state;
    assert_int_equal(cc_ratelimit_new(0, WINDOW_MS, 10, &rl), CC_OK);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(cc_ratelimit_hit(rl, "x", i, &retry), CC_OK);
    cc_ratelimit_free(rl);
}

/* A flood of distinct keys never grows the table; a key seen recently keeps its count
 * unless evicted, and eviction only forgives (never blocks a newcomer). */
static void test_ratelimit_bounded_flood(void **state)
{
    struct cc_ratelimit *rl = NULL;
    int64_t retry = 0;
    char key[32];

    (void)state;
    assert_int_equal(cc_ratelimit_new(1, WINDOW_MS, 16, &rl), CC_OK);
    for (int i = 0; i < 200000; i++) {
        snprintf(key, sizeof key, "192.0.2.%d", i);
        assert_int_equal(cc_ratelimit_hit(rl, key, i, &retry), CC_OK);
    }
    cc_ratelimit_free(rl);
}

static void test_ratelimit_long_keys_cut(void **state)
{
    struct cc_ratelimit *rl = NULL;
    int64_t retry = 0;
    char a[200], b[200];

    (void)state;
    memset(a, 'x', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    b[150] = 'y'; /* differs only past the cut */
    assert_int_equal(cc_ratelimit_new(1, WINDOW_MS, 10, &rl), CC_OK);
    assert_int_equal(cc_ratelimit_hit(rl, a, 0, &retry), CC_OK);
    assert_int_equal(cc_ratelimit_hit(rl, b, 0, &retry), CC_ERR_RATE_LIMITED);
    cc_ratelimit_free(rl);
}

struct worker {
    struct cc_ratelimit *rl;
    int allowed;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    int64_t retry;

    for (int i = 0; i < HITS_PER_THREAD; i++) {
        if (cc_ratelimit_hit(w->rl, "shared", 5, &retry) == CC_OK)
            w->allowed++;
    }
    return NULL;
}

static void test_ratelimit_threads_count_exactly(void **state)
{
    struct cc_ratelimit *rl = NULL;
    pthread_t th[THREADS];
    struct worker w[THREADS];
    int total = 0;

    (void)state;
    assert_int_equal(cc_ratelimit_new(7777, WINDOW_MS, 10, &rl), CC_OK);
    for (int i = 0; i < THREADS; i++) {
        w[i].rl = rl;
        w[i].allowed = 0;
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += w[i].allowed;
    }
    assert_int_equal(total, 7777);
    cc_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratelimit_limit_and_retry_after),
        cmocka_unit_test(test_ratelimit_keys_are_separate),
        cmocka_unit_test(test_ratelimit_unlimited),
        cmocka_unit_test(test_ratelimit_bounded_flood),
        cmocka_unit_test(test_ratelimit_long_keys_cut),
        cmocka_unit_test(test_ratelimit_threads_count_exactly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
