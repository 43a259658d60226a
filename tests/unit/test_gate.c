/* test_gate.c - cc_gate (the write-turn lock of ingestd) and its use by cc_store: turns
 * are taken in arrival order, a transaction holds its turn from BEGIN to COMMIT or
 * ROLLBACK, and a second store waits for the turn instead of failing SQLITE_BUSY. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_db.h"
#include "cc_gate.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "fixture.h"

struct order {
    struct cc_gate *g;
    pthread_mutex_t mu;
    char seen[8];
    int n;
};

struct arrival {
    struct order *o;
    char name;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static unsigned long tickets_taken(struct cc_gate *g)
{
    unsigned long n;

    pthread_mutex_lock(&g->mu);
    n = g->next;
    pthread_mutex_unlock(&g->mu);
    return n;
}

static void *arrive(void *arg)
{
    struct arrival *a = arg;

    cc_gate_enter(a->o->g);
    pthread_mutex_lock(&a->o->mu);
    a->o->seen[a->o->n++] = a->name;
    pthread_mutex_unlock(&a->o->mu);
    cc_gate_leave(a->o->g);
    return NULL;
}

/* Threads that arrive while the gate is held get it in the order they arrived. */
static void test_gate_turns_in_arrival_order(void **state)
{
    struct cc_gate g;
    struct order o = {.g = &g, .n = 0};
    struct arrival a[3] = {{&o, 'a'}, {&o, 'b'}, {&o, 'c'}};
    pthread_t t[3];

    (void)state;
    cc_gate_init(&g);
    pthread_mutex_init(&o.mu, NULL);
    cc_gate_enter(&g);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, arrive, &a[i]), 0);
        /* wait until this thread holds its ticket before starting the next */
        for (int k = 0; k < 5000 && tickets_taken(&g) != (unsigned long)i + 2; k++)
            sleep_ms(1);
        assert_int_equal(tickets_taken(&g), i + 2);
    }
    sleep_ms(20);
    assert_int_equal(o.n, 0); /* nobody passed while the gate was held */
    cc_gate_leave(&g);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(o.n, 3);
    assert_memory_equal(o.seen, "abc", 3);
    pthread_mutex_destroy(&o.mu);
    cc_gate_destroy(&g);
}

/* try_enter takes a free gate only: not one that is held or waited for. */
static void test_gate_try_enter_takes_a_free_gate_only(void **state)
{
    struct cc_gate g;
    struct order o = {.g = &g, .n = 0};
    struct arrival a = {&o, 'a'};
    pthread_t t;

    (void)state;
    cc_gate_init(&g);
    pthread_mutex_init(&o.mu, NULL);
    assert_int_equal(cc_gate_try_enter(&g), 1);
    assert_int_equal(cc_gate_try_enter(&g), 0); /* held */
    assert_int_equal(pthread_create(&t, NULL, arrive, &a), 0);
    for (int k = 0; k < 5000 && tickets_taken(&g) != 2; k++)
        sleep_ms(1);
    assert_int_equal(tickets_taken(&g), 2);
    cc_gate_leave(&g);
    pthread_join(t, NULL); /* the waiter had its turn and left */
    assert_int_equal(o.n, 1);
    assert_int_equal(cc_gate_try_enter(&g), 1);
    cc_gate_leave(&g);
    assert_int_equal(g.serving, g.next);
    pthread_mutex_destroy(&o.mu);
    cc_gate_destroy(&g);
}

struct writer {
    struct cc_store *st;
    int begin_rc;
    int commit_rc;
};

static void *second_writer(void *arg)
{
    struct writer *w = arg;

    w->begin_rc = cc_store_begin(w->st);
    if (w->begin_rc == CC_OK)
        w->commit_rc = cc_store_commit(w->st);
    return NULL;
}

/* Two stores of one process on one file: the second waits for the first's COMMIT
 * (in the gate, not in SQLite.s busy handler), and ROLLBACK or COMMIT always
 * gives the turn back. */
static void test_store_transactions_take_turns(void **state)
{
    struct fixture fx;
    struct cc_store *a = NULL, *b = NULL;
    struct cc_gate g;
    struct writer w = {NULL, -1, -1};
    pthread_t t;

    (void)state;
    cc_gate_init(&g);
    assert_int_equal(fixture_open(&fx, FIXTURE_FILE, 0, NULL), CC_OK);
    a = fx.st;
    assert_int_equal(cc_store_open(fx.path, 0, &b), CC_OK);
    cc_store_set_gate(a, &g);
    cc_store_set_gate(b, &g);

    assert_int_equal(cc_store_begin(a), CC_OK);
    cc_store_rollback(a);
    assert_int_equal(g.serving, g.next); /* the turn was given back */

    assert_int_equal(cc_store_begin(a), CC_OK);
    w.st = b;
    assert_int_equal(pthread_create(&t, NULL, second_writer, &w), 0);
    for (int k = 0; k < 5000 && tickets_taken(&g) != g.serving + 2; k++)
        sleep_ms(1);
    assert_int_equal(tickets_taken(&g), g.serving + 2); /* b waits in the gate */
    sleep_ms(50);
    assert_int_equal(w.begin_rc, -1); /* still waiting for its turn */
    assert_int_equal(
        cc_db_exec(cc_store_db(a), "UPDATE ingest_checkpoint SET journal_gen = journal_gen"),
        CC_OK);
    assert_int_equal(cc_store_commit(a), CC_OK);
    pthread_join(t, NULL);
    assert_int_equal(w.begin_rc, CC_OK);
    assert_int_equal(w.commit_rc, CC_OK);
    assert_int_equal(g.serving, g.next);

    cc_store_close(b);
    fixture_close(&fx); /* closes a */
    cc_gate_destroy(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_turns_in_arrival_order),
        cmocka_unit_test(test_gate_try_enter_takes_a_free_gate_only),
        cmocka_unit_test(test_store_transactions_take_turns),
    };

    cc_log_init("test_gate", CC_LOG_ERROR, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
