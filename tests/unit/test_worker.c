/* test_worker.c - cc_worker: the thread runs, waits on its condition, and returns once
 * cc_worker_stop has set stopping and woken it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cc_rc.h"
#include "cc_time.h"
#include "cc_worker.h"

struct probe {
    struct cc_worker w;
    int ran; /* under w.mu */
    int saw_stop;
};

static void *waits_for_stop(void *arg)
{
    struct probe *p = arg;

    pthread_mutex_lock(&p->w.mu);
    p->ran = 1;
    while (!p->w.stopping)
        pthread_cond_wait(&p->w.wake, &p->w.mu); /* no timeout: only the stop wakes it */
    p->saw_stop = 1;
    pthread_mutex_unlock(&p->w.mu);
    return NULL;
}

static void test_worker_stop_wakes_and_joins(void **state)
{
    struct probe p = {0};

    (void)state;
    assert_int_equal(cc_worker_start(&p.w, waits_for_stop, &p), CC_OK);
    cc_worker_stop(&p.w); /* returns only after the thread did: a lost wake-up would hang */
    assert_int_equal(p.ran, 1);
    assert_int_equal(p.saw_stop, 1);
    assert_int_equal(p.w.stopping, 1);
}

/* A worker can be started again after it was stopped (its lock and condition are new). */
static void test_worker_restart(void **state)
{
    struct probe p = {0};

    (void)state;
    for (int i = 0; i < 3; i++) {
        p.ran = p.saw_stop = 0;
        assert_int_equal(cc_worker_start(&p.w, waits_for_stop, &p), CC_OK);
        assert_int_equal(p.w.stopping, 0);
        cc_worker_stop(&p.w);
        assert_int_equal(p.saw_stop, 1);
    }
}

static void *times_out(void *arg)
{
    struct probe *p = arg;

    pthread_mutex_lock(&p->w.mu);
    while (!p->w.stopping) {
        cc_worker_wait_ms(&p->w, 10); /* nobody signals: only the timeout ends it */
        p->ran++;
    }
    p->saw_stop = 1;
    pthread_mutex_unlock(&p->w.mu);
    return NULL;
}

/* cc_worker_wait_ms returns when its time is up, with no signal (ingestd's jobs retry a
 * delivery that way), and the stop still ends the wait. */
static void test_worker_wait_ms_times_out(void **state)
{
    struct probe p = {0};
    int ran = 0;

    (void)state;
    assert_int_equal(cc_worker_start(&p.w, times_out, &p), CC_OK);
    for (int i = 0; i < 1000 && ran < 3; i++) { /* 3 wake-ups, within 10 s at the most */
        cc_sleep_ms(10);
        pthread_mutex_lock(&p.w.mu);
        ran = p.ran;
        pthread_mutex_unlock(&p.w.mu);
    }
    cc_worker_stop(&p.w);
    assert_true(ran >= 3);
    assert_int_equal(p.saw_stop, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_stop_wakes_and_joins),
        cmocka_unit_test(test_worker_restart),
        cmocka_unit_test(test_worker_wait_ms_times_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
