/* test_lease_pg.c - cc_lease (the PostgreSQL advisory lock that makes one ingestd the
 * active one): one holder per name, different names independent, the lease released when
 * its session ends (closed, terminated, silent past the idle timeout), a revived session
 * seen as not holding it, and a SQLite store refused. A throwaway cluster
 * (tools/pgtest.sh); a PostgreSQL that cannot start fails the group.
 * A backend releases its locks after its client saw the session end (a close, a
 * termination, the idle timeout), when it next runs: the tests wait for that state, never
 * for a time, since a loaded host may not run it for seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_dbi.h"
#include "cc_lease.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_time.h"
#include "fixture.h"

#define PG_PORT "55434" /* this suite's socket name (tools/pgtest.sh PORT) */
#define NAME "ingestd:cc-op-ingestd"
/* The idle timeout the holder sets, and when it asks within it, ms: the margin between is
 * what a loaded host may take to run the holder or its backend (150 ms was too little). */
#define IDLE_MS 1000
#define IDLE_ASKED_MS 150

static char pg_dir[64];
static char url[256];

static int group_setup(void **state)
{
    (void)state;
    return fixture_pg_start("lease-pg", PG_PORT, pg_dir, sizeof pg_dir, url, sizeof url);
}

static int group_teardown(void **state)
{
    (void)state;
    return fixture_pg_stop(pg_dir);
}

static int try_lease(struct cc_store *st, const char *name, int timeout_ms)
{
    int held = -1;

    assert_int_equal(cc_lease_try(st, name, timeout_ms, &held), CC_OK);
    return held;
}

/* A closed or ended session's backend releases its locks a moment after the client sees it
 * gone: a standby polls, and so does this, until it holds the lease or FIXTURE_PG_WAIT_MS. */
static int try_lease_until_free(struct cc_store *st, const char *name)
{
    int64_t deadline = cc_mono_ms() + FIXTURE_PG_WAIT_MS;

    while (cc_mono_ms() < deadline) {
        if (try_lease(st, name, 0))
            return 1;
        cc_sleep_ms(20);
    }
    return try_lease(st, name, 0);
}

/* Each test starts with no lease held: the sessions the last one closed may not be gone
 * yet, and one of them may still hold NAME. */
static int leases_released(void **state)
{
    static const char sql[] = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                              " AND classid = $1::bigint::oid";
    struct cc_store *st = NULL;
    int64_t deadline = cc_mono_ms() + FIXTURE_PG_WAIT_MS, n = -1;

    (void)state;
    if (cc_store_open(url, 0, &st) != CC_OK)
        return -1;
    while (n != 0 && cc_mono_ms() < deadline) {
        struct cc_stmt *s = NULL;

        n = -1;
        if (cc_stmt_prepare(st, sql, &s) == CC_OK &&
            cc_stmt_bind_int64(s, 1, CC_LEASE_NAMESPACE) == CC_OK && cc_stmt_step(s) == CC_ROW)
            n = cc_stmt_column_int64(s, 0);
        cc_stmt_release(s);
        if (n != 0)
            cc_sleep_ms(20);
    }
    cc_store_close(st);
    return n == 0 ? 0 : -1;
}

static int held(struct cc_store *st, const char *name)
{
    int h = -1;
    int rc = cc_lease_held(st, name, &h);

    return rc == CC_OK ? h : 0; /* an error counts as lost, as ingestd treats it */
}

static int64_t backend_pid(struct cc_store *st)
{
    struct cc_stmt *s = NULL;
    int64_t pid = 0;

    assert_int_equal(cc_stmt_prepare(st, "SELECT pg_backend_pid()", &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    pid = cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return pid;
}

static void terminate(struct cc_store *by, int64_t pid)
{
    assert_int_equal(fixture_pg_terminate(by, pid), CC_OK);
}

static void test_lease_one_holder_per_name(void **state)
{
    struct cc_store *a = NULL, *b = NULL;

    (void)state;
    assert_int_equal(cc_store_open(url, 0, &a), CC_OK);
    assert_int_equal(cc_store_open(url, 0, &b), CC_OK);
    assert_int_equal(try_lease(a, NAME, 0), 1);
    assert_int_equal(held(a, NAME), 1);
    assert_int_equal(try_lease(b, NAME, 0), 0);
    assert_int_equal(held(b, NAME), 0);
    /* Another broker session's ingestd is not blocked by this one. */
    assert_int_equal(try_lease(b, "ingestd:cc-op-other", 0), 1);
    assert_int_not_equal(cc_lease_key(NAME), cc_lease_key("ingestd:cc-op-other"));
    assert_true(cc_lease_key(NAME) >= 0);
    /* The holder's session ends: the lease is free. */
    cc_store_close(a);
    assert_int_equal(try_lease_until_free(b, NAME), 1);
    cc_store_close(b);
}

static void test_lease_lost_with_session(void **state)
{
    struct cc_store *a = NULL, *b = NULL;

    (void)state;
    assert_int_equal(cc_store_open(url, 0, &a), CC_OK);
    assert_int_equal(cc_store_open(url, 0, &b), CC_OK);
    assert_int_equal(try_lease(a, NAME, 0), 1);
    terminate(b, backend_pid(a));
    /* The store revives on a new session, which holds nothing: a holder must see it lost. */
    assert_int_equal(held(a, NAME), 0);
    assert_int_equal(held(a, NAME), 0);
    assert_int_equal(try_lease(b, NAME, 0), 1); /* the old session is gone (terminate) */
    assert_int_equal(try_lease(a, NAME, 0), 0);
    cc_store_close(a);
    cc_store_close(b);
}

static void test_lease_idle_timeout(void **state)
{
    struct cc_store *a = NULL, *b = NULL;

    (void)state;
    assert_int_equal(cc_store_open(url, 0, &a), CC_OK);
    assert_int_equal(cc_store_open(url, 0, &b), CC_OK);
    assert_int_equal(try_lease(a, NAME, IDLE_MS), 1);
    /* Asked within the timeout, it holds. */
    cc_sleep_ms(IDLE_ASKED_MS);
    assert_int_equal(held(a, NAME), 1);
    assert_int_equal(try_lease(b, NAME, 0), 0);
    /* Silent past it (a paused holder): PostgreSQL ends the session, the lease goes. */
    assert_int_equal(try_lease_until_free(b, NAME), 1);
    assert_int_equal(held(a, NAME), 0);
    cc_store_close(a);
    cc_store_close(b);
}

/* The holdings are counted (cc_lease_epoch_next), so a holder that lost its session and
 * took the lock again can tell whether anyone else held it in between. */
static void test_lease_epoch_counts_holdings(void **state)
{
    struct cc_store *a = NULL, *b = NULL;
    int64_t e1 = 0, e2 = 0, now = -1;

    (void)state;
    assert_int_equal(cc_store_open(url, CC_STORE_MIGRATE, &a), CC_OK); /* the leases table */
    assert_int_equal(cc_store_open(url, 0, &b), CC_OK);
    assert_int_equal(cc_lease_epoch(a, "ingestd:never-held", &now), CC_OK);
    assert_int_equal(now, 0);
    assert_int_equal(try_lease(a, NAME, 0), 1);
    assert_int_equal(cc_lease_epoch_next(a, NAME, &e1), CC_OK);
    assert_true(e1 >= 1);
    /* a's session ends; nobody else takes it: a takes it again, the count is still a's. */
    terminate(b, backend_pid(a));
    assert_int_equal(held(a, NAME), 0);
    assert_int_equal(try_lease(a, NAME, 0), 1);
    assert_int_equal(cc_lease_epoch(a, NAME, &now), CC_OK);
    assert_int_equal(now, e1);
    /* Now b holds it once in between: a, back, sees another count. */
    terminate(b, backend_pid(a));
    assert_int_equal(held(a, NAME), 0);
    assert_int_equal(try_lease(b, NAME, 0), 1);
    assert_int_equal(cc_lease_epoch_next(b, NAME, &e2), CC_OK);
    assert_int_equal(e2, e1 + 1);
    cc_store_close(b);
    assert_int_equal(try_lease_until_free(a, NAME), 1);
    assert_int_equal(cc_lease_epoch(a, NAME, &now), CC_OK);
    assert_int_not_equal(now, e1);
    cc_store_close(a);
}

/* Whether another session could update the count's row right now (FOR UPDATE NOWAIT). */
static int count_row_free(struct cc_store *st)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, "SELECT epoch FROM leases WHERE name = $1 FOR UPDATE NOWAIT", &s);

    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 1, NAME);
    while (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW)
        rc = CC_OK;
    cc_stmt_release(s);
    return rc == CC_OK;
}

/* The writer's read of the count inside its transaction holds the row until the commit, so
 * another holder's count (an update of that row) cannot come between it and COMMIT. */
static void test_lease_epoch_in_tx_locks_the_count(void **state)
{
    struct cc_store *a = NULL, *b = NULL;
    int64_t e = 0, in_tx = -1;

    (void)state;
    assert_int_equal(cc_store_open(url, CC_STORE_MIGRATE, &a), CC_OK);
    assert_int_equal(cc_store_open(url, 0, &b), CC_OK);
    assert_int_equal(cc_lease_epoch_next(b, NAME, &e), CC_OK);
    assert_int_equal(cc_store_begin(a), CC_OK);
    assert_int_equal(cc_lease_epoch_in_tx(a, NAME, &in_tx), CC_OK);
    assert_int_equal(in_tx, e);
    assert_int_equal(count_row_free(b), 0); /* held by a's transaction */
    assert_int_equal(cc_store_commit(a), CC_OK);
    assert_int_equal(count_row_free(b), 1);
    assert_int_equal(cc_store_begin(a), CC_OK);
    assert_int_equal(cc_lease_epoch_in_tx(a, "ingestd:never-held", &in_tx), CC_OK);
    assert_int_equal(in_tx, 0);
    assert_int_equal(cc_store_commit(a), CC_OK);
    cc_store_close(b);
    cc_store_close(a);
}

static void test_lease_sqlite_refused(void **state)
{
    char dir[] = "/tmp/cc-lease-XXXXXX", path[64];
    struct cc_store *st = NULL;
    int h = -1;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.db", dir);
    assert_int_equal(cc_store_open(path, CC_STORE_CREATE, &st), CC_OK);
    assert_int_equal(cc_lease_try(st, NAME, 0, &h), CC_ERR_VALIDATION);
    assert_int_equal(h, 0);
    assert_int_equal(cc_lease_held(st, NAME, &h), CC_ERR_VALIDATION);
    {
        int64_t e = -1;

        assert_int_equal(cc_lease_epoch_next(st, NAME, &e), CC_ERR_VALIDATION);
        assert_int_equal(cc_lease_epoch(st, NAME, &e), CC_ERR_VALIDATION);
        assert_int_equal(cc_lease_epoch_in_tx(st, NAME, &e), CC_ERR_VALIDATION);
    }
    cc_store_close(st);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_lease_one_holder_per_name, leases_released),
        cmocka_unit_test_setup(test_lease_lost_with_session, leases_released),
        cmocka_unit_test_setup(test_lease_idle_timeout, leases_released),
        cmocka_unit_test_setup(test_lease_epoch_counts_holdings, leases_released),
        cmocka_unit_test_setup(test_lease_epoch_in_tx_locks_the_count, leases_released),
        cmocka_unit_test(test_lease_sqlite_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
