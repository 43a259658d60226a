/* test_ingest_pubacks.c - ingestd's mid -> alert event bookkeeping (ingestd/pubacks.c): an
 * event is given back only once its own publish was acknowledged, held events are known,
 * and both lists stay within INGEST_PUBLISH_WINDOW. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../../ingestd/pubacks.h"

static void test_ingest_pubacks_ack_gives_its_event(void **state)
{
    struct ingest_pubacks *p = malloc(sizeof *p);
    int64_t ids[4];

    (void)state;
    assert_non_null(p);
    ingest_pubacks_init(p);
    assert_int_equal(ingest_pubacks_add(p, 7, 100), 0);
    assert_int_equal(ingest_pubacks_add(p, 8, 101), 0);
    assert_int_equal(ingest_pubacks_take(p, ids, 4), 0); /* nothing acknowledged yet */
    assert_true(ingest_pubacks_holds(p, 100));
    assert_false(ingest_pubacks_holds(p, 102));
    assert_int_equal(ingest_pubacks_ack(p, 9), 0); /* an error reply's PUBACK: no event */
    assert_int_equal(ingest_pubacks_ack(p, 8), 1);
    assert_true(ingest_pubacks_holds(p, 101)); /* acknowledged, not yet taken */
    assert_int_equal(ingest_pubacks_take(p, ids, 4), 1);
    assert_int_equal(ids[0], 101);
    assert_false(ingest_pubacks_holds(p, 101));
    assert_int_equal(ingest_pubacks_ack(p, 8), 0); /* a second PUBACK for it: nothing */
    assert_int_equal(ingest_pubacks_take(p, ids, 4), 0);
    /* libmosquitto's ids wrapped round onto a held one: the older event is forgotten (sent
     * again after its lease), never marked by the newer one's PUBACK. */
    assert_int_equal(ingest_pubacks_add(p, 7, 102), 0);
    assert_false(ingest_pubacks_holds(p, 100));
    assert_int_equal(p->forgotten, 1);
    assert_int_equal(ingest_pubacks_ack(p, 7), 1);
    assert_int_equal(ingest_pubacks_take(p, ids, 4), 1);
    assert_int_equal(ids[0], 102);
    free(p);
}

/* INGEST_PUBACKS_MAX (= INGEST_PUBLISH_WINDOW) events held at most, and as many
 * acknowledged ones waiting; take hands them out max at a time. */
static void test_ingest_pubacks_bounded(void **state)
{
    struct ingest_pubacks *p = malloc(sizeof *p);
    int64_t ids[INGEST_PUBACKS_MAX];
    int got = 0, n;

    (void)state;
    assert_non_null(p);
    assert_int_equal(INGEST_PUBACKS_MAX, INGEST_PUBLISH_WINDOW);
    ingest_pubacks_init(p);
    for (int i = 0; i < INGEST_PUBACKS_MAX; i++)
        assert_int_equal(ingest_pubacks_add(p, i + 1, 1000 + i), 0);
    assert_int_equal(ingest_pubacks_add(p, 60000, 5), -1);
    assert_int_equal(p->nheld, INGEST_PUBACKS_MAX);
    assert_false(ingest_pubacks_holds(p, 5));
    for (int i = 0; i < INGEST_PUBACKS_MAX; i++)
        assert_int_equal(ingest_pubacks_ack(p, i + 1), 1);
    assert_int_equal(p->nheld, 0);
    assert_int_equal(p->nacked, INGEST_PUBACKS_MAX);
    /* Held again while the acknowledged wait: the next acknowledgement has no room and is
     * forgotten (its event goes again after its lease), the list stays at its bound. */
    assert_int_equal(ingest_pubacks_add(p, 1, 5), 0);
    assert_int_equal(ingest_pubacks_ack(p, 1), 1);
    assert_int_equal(p->nacked, INGEST_PUBACKS_MAX);
    assert_int_equal(p->forgotten, 1);
    while ((n = ingest_pubacks_take(p, ids + got, 300)) > 0) {
        assert_true(n <= 300);
        got += n;
    }
    assert_int_equal(got, INGEST_PUBACKS_MAX);
    for (int i = 0; i < INGEST_PUBACKS_MAX; i++) {
        int found = 0;

        for (int k = 0; k < got; k++)
            found += ids[k] == 1000 + i;
        assert_int_equal(found, 1);
    }
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_pubacks_ack_gives_its_event),
        cmocka_unit_test(test_ingest_pubacks_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
