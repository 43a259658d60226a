/* test_ingest_late.c - late readings across two processes on one database (issue 15
 * point 4): a reading older than its device's newest stored reading is stored, counted in
 * cc_ingest_result.late and changes no alert state, also when the newer reading came
 * through another connection (another ingestd sharing the subscription). Each case runs on
 * two stores opened on one SQLite file and on two sessions of one PostgreSQL database (a
 * throwaway cluster, tools/pgtest.sh; the unit tests run from the repository root).
 *
 * The race cases hold store A's transaction open after it ingested a reading while a thread
 * ingests another reading of the same device through store B, then commit A: B must wait
 * for A (SQLite: BEGIN IMMEDIATE; PostgreSQL: the device row lock of
 * cc_store_devices_by_serial) and then judge its reading against what A committed. Without
 * the lock on PostgreSQL, B reads the device and its alerts as they were before A and the
 * final alert state is wrong (an ACTIVE alert after a newer in-range reading, or an alert
 * raised by a reading older than the newest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>

#include <cmocka.h>

#include "cc_db.h"
#include "cc_dbi.h"
#include "cc_ingest.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_time.h"
#include "fixture.h"

#define PG_PORT "55436"    /* this suite's socket name (tools/pgtest.sh PORT) */
#define T0 1764135900000LL /* 2025-11-26T05:45:00.000Z */
#define S 1000LL
#define HOLD_MS 300 /* how long A keeps its transaction open while B tries */
/* The race's two readings are this far apart (seconds): in different 5- and 30-minute
 * rollup buckets, whose rows PostgreSQL's insert would otherwise lock for both, hiding a
 * missing device lock in one of the cases. */
#define APART_S 3600
#define PAYLOAD_MAX 128 /* bytes of one test payload */

static char pg_dir[64];
static char admin_url[256];
static int db_seq; /* databases created so far: late1, late2, ... */

/* Cell 1: 2..8 °C, hysteresis 0.5, no alarm delay; device 7 (SN-F) in it. */
static const char seed[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 'c1@example.com', 'x', 'CUSTOMER', 'C1', 0);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'L', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, hysteresis,"
    " alarm_delay_s, created_at) VALUES (1, 1, 'Fridge', 2, 8, 0.5, 0, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
    " created_at) VALUES (7, 'SN-F', 1, 'h', 'p', 0);";

struct fx {
    char path[64];          /* the SQLite file, "" on PostgreSQL */
    struct cc_store *a, *b; /* two connections to one database: two ingestd */
};

static int group_setup(void **state)
{
    (void)state;
    return fixture_pg_start("late", PG_PORT, pg_dir, sizeof pg_dir, admin_url, sizeof admin_url);
}

static int group_teardown(void **state)
{
    (void)state;
    return fixture_pg_stop(pg_dir);
}

static int setup_sqlite(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    int fd;

    if (f == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "/tmp/cc-test-late-XXXXXX");
    fd = mkstemp(f->path);
    if (fd < 0)
        return -1;
    close(fd);
    unlink(f->path);
    if (cc_store_open(f->path, CC_STORE_CREATE | CC_STORE_MIGRATE, &f->a) != CC_OK ||
        cc_store_open(f->path, 0, &f->b) != CC_OK || cc_store_exec(f->a, seed) != CC_OK)
        return -1;
    *state = f;
    return 0;
}

static int setup_pg(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct cc_store *admin = NULL;
    char sql[64], url[256];

    if (f == NULL)
        return -1;
    db_seq++;
    snprintf(sql, sizeof sql, "CREATE DATABASE late%d", db_seq);
    if (cc_store_open(admin_url, 0, &admin) != CC_OK || cc_store_exec(admin, sql) != CC_OK)
        return -1;
    cc_store_close(admin);
    snprintf(url, sizeof url, "postgresql:///late%d?host=%s&port=" PG_PORT "&user=coldchain",
             db_seq, pg_dir);
    if (cc_store_open(url, CC_STORE_MIGRATE, &f->a) != CC_OK ||
        cc_store_open(url, 0, &f->b) != CC_OK || cc_store_exec(f->a, seed) != CC_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    cc_store_close(f->b);
    cc_store_close(f->a);
    if (f->path[0] != '\0')
        cc_db_remove_files(f->path);
    free(f);
    return 0;
}

/* The integer answer of a one-row query. */
static int64_t q(struct cc_store *st, const char *sql)
{
    struct cc_stmt *s = NULL;
    int64_t v;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    v = cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return v;
}

static const char sql_active[] =
    "SELECT count(*) FROM alerts WHERE type = 'HIGH_TEMP' AND status = 'ACTIVE'";
static const char sql_alerts[] = "SELECT count(*) FROM alerts";
static const char sql_readings[] = "SELECT count(*) FROM readings";
static const char sql_newest[] = "SELECT newest_ts FROM devices WHERE id = 7";

/* One readings message of SN-F (ts T0 + sec s, temperature t) through cc_ingest_batch in
 * the store's open transaction; its result in *res (late and accepted counts). */
static int ingest(struct cc_store *st, int64_t sec, double t, struct cc_ingest_result *res)
{
    char payload[PAYLOAD_MAX];
    struct cc_ingest_msg m;
    int rc;

    snprintf(payload, sizeof payload, "{\"ts\":%lld,\"temperature\":%.1f}",
             (long long)(T0 + sec * S), t);
    memset(&m, 0, sizeof m);
    m.topic = "devices/SN-F/readings";
    m.payload = payload;
    m.len = strlen(payload);
    m.received_at = T0 + 3600 * S;
    rc = cc_ingest_batch(st, &m, 1);
    *res = m.res;
    m.res.error = NULL;
    cc_ingest_result_clear(&m.res);
    return rc;
}

/* ingest() in a transaction of its own; asserts it committed and what it counted. */
static void ingest_tx(struct cc_store *st, int64_t sec, double t, size_t late)
{
    struct cc_ingest_result res;

    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(ingest(st, sec, t, &res), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_null(res.error);
    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.late, late);
}

/* Two ingestd one after the other: B's readings older than what A stored are stored and
 * counted late, and neither resolves A's alert nor raises one of their own. */
static void test_ingest_late_counted_no_flip(void **state)
{
    struct fx *f = *state;

    ingest_tx(f->b, 0, 5.0, 0);
    ingest_tx(f->a, 20, 9.9, 0); /* HIGH_TEMP */
    assert_int_equal(q(f->a, sql_active), 1);
    ingest_tx(f->b, 10, 5.0, 1); /* in range, but older: the alert stays */
    assert_int_equal(q(f->a, sql_active), 1);
    ingest_tx(f->a, 30, 5.0, 0); /* resolves it */
    assert_int_equal(q(f->a, sql_active), 0);
    ingest_tx(f->b, 25, 20.0, 1); /* out of range, but older: raises nothing */
    assert_int_equal(q(f->a, sql_active), 0);
    assert_int_equal(q(f->b, sql_alerts), 1);
    assert_int_equal(q(f->b, sql_readings), 5);
    assert_int_equal(q(f->b, sql_newest), T0 + 30 * S);
}

/* B's side of a race: one reading ingested in a transaction of its own on another thread. */
struct racer {
    struct cc_store *st;
    int64_t sec;
    double t;
    int rc;
    struct cc_ingest_result res;
    int64_t done_ms; /* cc_mono_ms() when B committed */
};

static void *race(void *arg)
{
    struct racer *r = arg;

    r->rc = cc_store_begin(r->st);
    if (r->rc == CC_OK)
        r->rc = ingest(r->st, r->sec, r->t, &r->res);
    if (r->rc == CC_OK)
        r->rc = cc_store_commit(r->st);
    else
        cc_store_rollback(r->st);
    r->done_ms = cc_mono_ms();
    return NULL;
}

/* A ingests (a_sec, a_t) and holds its transaction HOLD_MS while B ingests (b_sec, b_t);
 * then A commits. Returns B's outcome; asserts B finished only after A's commit. */
static void race_pair(struct fx *f, int64_t a_sec, double a_t, int64_t b_sec, double b_t,
                      struct racer *r)
{
    struct cc_ingest_result res;
    pthread_t th;
    int64_t commit_ms;

    ingest_tx(f->a, 0, 5.0, 0);
    assert_int_equal(cc_store_begin(f->a), CC_OK);
    assert_int_equal(ingest(f->a, a_sec, a_t, &res), CC_OK);
    memset(r, 0, sizeof *r);
    r->st = f->b;
    r->sec = b_sec;
    r->t = b_t;
    assert_int_equal(pthread_create(&th, NULL, race, r), 0);
    cc_sleep_ms(HOLD_MS);
    commit_ms = cc_mono_ms();
    assert_int_equal(cc_store_commit(f->a), CC_OK);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r->rc, CC_OK);
    assert_int_equal(r->res.accepted, 1);
    /* B waited for A: it read the device and its alerts as A committed them. */
    assert_true(r->done_ms >= commit_ms);
}

/* A raises HIGH_TEMP with an older reading while B stores a newer in-range one: B must see
 * A's alert and resolve it. Without the row lock B judges against the state before A
 * (no alert), and the alert A commits stays ACTIVE after a newer in-range reading. */
static void test_ingest_late_race_newer_resolves(void **state)
{
    struct fx *f = *state;
    struct racer r;

    race_pair(f, 10, 9.9, 10 + APART_S, 5.0, &r);
    assert_int_equal(r.res.late, 0);
    assert_int_equal(q(f->a, sql_alerts), 1);
    assert_int_equal(q(f->a, sql_active), 0);
    assert_int_equal(q(f->a, sql_newest), T0 + (10 + APART_S) * S);
}

/* A stores a newer in-range reading while B stores an older out-of-range one: B's reading
 * is late (stored, counted) and raises nothing. Without the row lock B reads the newest ts
 * before A's and raises HIGH_TEMP, which then stays ACTIVE. */
static void test_ingest_late_race_older_is_late(void **state)
{
    struct fx *f = *state;
    struct racer r;

    race_pair(f, 10 + APART_S, 5.0, 10, 9.9, &r);
    assert_int_equal(r.res.late, 1);
    assert_int_equal(q(f->a, sql_alerts), 0);
    assert_int_equal(q(f->a, sql_readings), 3);
    assert_int_equal(q(f->a, sql_newest), T0 + (10 + APART_S) * S);
}

#define LITE(fn) cmocka_unit_test_setup_teardown(fn, setup_sqlite, teardown)
#define PG(fn) cmocka_unit_test_setup_teardown(fn, setup_pg, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        LITE(test_ingest_late_counted_no_flip),     PG(test_ingest_late_counted_no_flip),
        LITE(test_ingest_late_race_newer_resolves), PG(test_ingest_late_race_newer_resolves),
        LITE(test_ingest_late_race_older_is_late),  PG(test_ingest_late_race_older_is_late),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
