/* test_errcap.c - cc_errcap: the burst, the refill, the suppressed count carried by the next
 * allowed reply, separate devices, a bounded table that many serials cannot use to mint
 * replies, eviction of the fullest bucket (never the flooding device's), bad limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cc_errcap.h"
#include "cc_rc.h"

#define SEED 0x5eedULL
#define T0_MS 1000000 /* a monotonic clock well past 0 */

static void test_errcap_burst_then_one_per_interval(void **state)
{
    struct cc_errcap *c = NULL;
    unsigned long long sup = 99;

    (void)state;
    /* 3 at once, then 60 a minute: one every 1000 ms. */
    assert_int_equal(cc_errcap_new(3, 60, 64, SEED, &c), CC_OK);
    for (int i = 0; i < 3; i++) {
        sup = 99;
        assert_int_equal(cc_errcap_take(c, "SN-1", T0_MS, &sup), 1);
        assert_int_equal(sup, 0); /* the first errors get through, none left out */
    }
    assert_int_equal(cc_errcap_take(c, "SN-1", T0_MS, &sup), 0);
    assert_int_equal(cc_errcap_take(c, "SN-1", T0_MS + 500, &sup), 0);
    assert_int_equal(cc_errcap_take(c, "SN-1", T0_MS + 999, &sup), 0);
    /* One token back after one interval; the reply tells of the 3 left out. */
    assert_int_equal(cc_errcap_take(c, "SN-1", T0_MS + 1000, &sup), 1);
    assert_int_equal(sup, 3);
    assert_int_equal(cc_errcap_take(c, "SN-1", T0_MS + 1000, &sup), 0);
    assert_int_equal(cc_errcap_take(c, "SN-1", T0_MS + 2000, &sup), 1);
    assert_int_equal(sup, 1); /* counted once: reset by the reply that told it */
    /* Idle long enough, the bucket is full again, never fuller than the burst. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cc_errcap_take(c, "SN-1", T0_MS + 3600000, &sup), 1);
        assert_int_equal(sup, 0);
    }
    assert_int_equal(cc_errcap_take(c, "SN-1", T0_MS + 3600000, &sup), 0);
    cc_errcap_free(c);
}

static void test_errcap_rate_over_a_minute(void **state)
{
    struct cc_errcap *c = NULL;
    unsigned long long sup = 0, told = 0;
    int allowed = 0, denied = 0;

    (void)state;
    /* The defaults: a device sending 100 bad messages a second for a minute (6,001 of them,
     * both ends included): the burst, then one every 10 s up to the 60th second. */
    assert_int_equal(
        cc_errcap_new(CC_ERRCAP_BURST_DEFAULT, CC_ERRCAP_PER_MIN_DEFAULT, 64, SEED, &c), CC_OK);
    for (int64_t ms = 0; ms <= 60000; ms += 10) {
        if (cc_errcap_take(c, "SN-1", T0_MS + ms, &sup)) {
            allowed++;
            told += sup;
        } else {
            denied++;
        }
    }
    assert_int_equal(allowed, CC_ERRCAP_BURST_DEFAULT + CC_ERRCAP_PER_MIN_DEFAULT);
    assert_int_equal(allowed + denied, 6001);
    /* The last one (60 s) was allowed: it told of every one left out before it. */
    assert_int_equal(told, denied);
    cc_errcap_free(c);
}

static void test_errcap_devices_are_separate(void **state)
{
    struct cc_errcap *c = NULL;
    unsigned long long sup = 99;

    (void)state;
    assert_int_equal(cc_errcap_new(2, 1, 64, SEED, &c), CC_OK);
    assert_int_equal(cc_errcap_take(c, "SN-A", T0_MS, &sup), 1);
    assert_int_equal(cc_errcap_take(c, "SN-A", T0_MS, &sup), 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(cc_errcap_take(c, "SN-A", T0_MS, &sup), 0);
    /* A's flood does not touch B's first error. */
    sup = 99;
    assert_int_equal(cc_errcap_take(c, "SN-B", T0_MS, &sup), 1);
    assert_int_equal(sup, 0);
    assert_int_equal(cc_errcap_take(c, "SN-A", T0_MS + 60000, &sup), 1);
    assert_int_equal(sup, 100);
    cc_errcap_free(c);
}

static void test_errcap_many_serials_cannot_mint_replies(void **state)
{
    struct cc_errcap *c = NULL;
    unsigned long long sup = 0;
    char key[32];
    int allowed = 0;

    (void)state;
    /* One set of 8 slots, burst 2: 1,000 serials taking turns at one instant get exactly
     * the 16 tokens the table holds. Handing an evicted slot a fresh bucket would answer
     * every one of them. */
    assert_int_equal(cc_errcap_new(2, 1, CC_ERRCAP_WAYS, SEED, &c), CC_OK);
    assert_int_equal(cc_errcap_slots(c), CC_ERRCAP_WAYS);
    for (int round = 0; round < 10; round++)
        for (int i = 0; i < 100; i++) {
            snprintf(key, sizeof key, "SN-%d", i);
            allowed += cc_errcap_take(c, key, T0_MS, &sup);
        }
    assert_int_equal(allowed, 2 * CC_ERRCAP_WAYS);
    cc_errcap_free(c);

    /* A larger table: 100,000 serials, memory stays the table's. */
    assert_int_equal(cc_errcap_new(3, 6, 1000, SEED, &c), CC_OK);
    assert_int_equal(cc_errcap_slots(c), 1024);
    allowed = 0;
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "DEV-%06d", i);
        allowed += cc_errcap_take(c, key, T0_MS, &sup);
    }
    assert_int_equal(allowed, 3 * 1024); /* every set is hit: every slot gives its burst */
    cc_errcap_free(c);
}

static void test_errcap_evicts_fullest_bucket_not_the_flooder(void **state)
{
    struct cc_errcap *c = NULL;
    unsigned long long sup = 0;
    char key[32];

    (void)state;
    assert_int_equal(cc_errcap_new(3, 60, CC_ERRCAP_WAYS, SEED, &c), CC_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cc_errcap_take(c, "FLOOD", T0_MS, &sup), 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cc_errcap_take(c, "FLOOD", T0_MS, &sup), 0);
    /* 7 serials fill the other slots, then 7 more take over their (fuller) buckets. */
    for (int i = 0; i < 14; i++) {
        snprintf(key, sizeof key, "OTHER-%d", i);
        assert_int_equal(cc_errcap_take(c, key, T0_MS + 10, &sup), 1);
        assert_int_equal(sup, 0);
    }
    /* The flooder kept its slot: still empty, and its count is still there. */
    assert_int_equal(cc_errcap_take(c, "FLOOD", T0_MS + 500, &sup), 0);
    assert_int_equal(cc_errcap_take(c, "FLOOD", T0_MS + 1000, &sup), 1);
    assert_int_equal(sup, 6);
    cc_errcap_free(c);
}

static void test_errcap_long_keys_cut(void **state)
{
    struct cc_errcap *c = NULL;
    unsigned long long sup = 0;
    char a[CC_ERRCAP_KEY_MAX + 10], b[CC_ERRCAP_KEY_MAX + 10];

    (void)state;
    memset(a, 'x', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    b[CC_ERRCAP_KEY_MAX + 3] = 'y'; /* differs only past the compared bytes */
    assert_int_equal(cc_errcap_new(1, 1, 64, SEED, &c), CC_OK);
    assert_int_equal(cc_errcap_take(c, a, T0_MS, &sup), 1);
    assert_int_equal(cc_errcap_take(c, b, T0_MS, &sup), 0);
    cc_errcap_free(c);
}

static void test_errcap_bad_limits(void **state)
{
    struct cc_errcap *c = (struct cc_errcap *)&c; /* must stay untouched */
    struct cc_errcap *keep = c;

    (void)state;
    assert_int_equal(cc_errcap_new(0, 6, 64, SEED, &c), CC_ERR_VALIDATION);
    assert_int_equal(cc_errcap_new(CC_ERRCAP_BURST_MAX + 1, 6, 64, SEED, &c), CC_ERR_VALIDATION);
    assert_int_equal(cc_errcap_new(20, 0, 64, SEED, &c), CC_ERR_VALIDATION);
    assert_int_equal(cc_errcap_new(20, CC_ERRCAP_PER_MIN_MAX + 1, 64, SEED, &c), CC_ERR_VALIDATION);
    assert_int_equal(cc_errcap_new(20, 6, (size_t)CC_ERRCAP_DEVICES_MAX + 1, SEED, &c),
                     CC_ERR_VALIDATION);
    assert_ptr_equal(c, keep);
    cc_errcap_free(NULL);
    /* The extremes are valid. */
    assert_int_equal(cc_errcap_new(CC_ERRCAP_BURST_MAX, CC_ERRCAP_PER_MIN_MAX, 0, SEED, &c), CC_OK);
    assert_int_equal(cc_errcap_slots(c), CC_ERRCAP_WAYS);
    cc_errcap_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errcap_burst_then_one_per_interval),
        cmocka_unit_test(test_errcap_rate_over_a_minute),
        cmocka_unit_test(test_errcap_devices_are_separate),
        cmocka_unit_test(test_errcap_many_serials_cannot_mint_replies),
        cmocka_unit_test(test_errcap_evicts_fullest_bucket_not_the_flooder),
        cmocka_unit_test(test_errcap_long_keys_cut),
        cmocka_unit_test(test_errcap_bad_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
