/* test_walckpt.c - cc_walckpt, the WAL checkpointer thread of ingestd, on a real database
 * file: it copies the WAL into the database once `step` pages are waiting, it makes the
 * WAL start over once it reaches `restart` pages (by a pass inside the write gate), and
 * when it cannot keep the WAL short a commit past `limit` checkpoints in place. */
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
#include "cc_walckpt.h"
#include "fixture.h"

struct ckfx {
    struct fixture db; /* the temporary directory; the checkpointer creates the file */
    char path[64];
    struct cc_gate gate;
    struct cc_store *st;
    struct cc_walckpt *ck;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* PRAGMA wal_checkpoint(TRUNCATE) until it completes (the thread may hold the checkpoint
 * lock for a moment): the WAL file empty, the next commit writes it from its start. */
static void wal_truncate(struct ckfx *f)
{
    int busy = 1;

    for (int k = 0; k < 2000 && busy != 0; k++) {
        sqlite3_stmt *stmt = NULL;

        assert_int_equal(sqlite3_prepare_v2(cc_store_db(f->st), "PRAGMA wal_checkpoint(TRUNCATE)",
                                            -1, &stmt, NULL),
                         SQLITE_OK);
        busy = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int(stmt, 0) : 1;
        sqlite3_finalize(stmt);
        if (busy != 0)
            sleep_ms(10);
    }
    assert_int_equal(busy, 0);
}

static void open_fixture(struct ckfx *f, int step, int restart, int limit)
{
    assert_int_equal(fixture_open(&f->db, FIXTURE_FILE | FIXTURE_NO_STORE, 0, NULL), CC_OK);
    snprintf(f->path, sizeof f->path, "%s", f->db.path);
    cc_gate_init(&f->gate);
    /* The checkpointer first, as in ingestd: it may create the file. */
    assert_int_equal(cc_walckpt_start(f->path, step, restart, limit, &f->gate, &f->ck), CC_OK);
    assert_int_equal(cc_store_open(f->path, CC_DB_CREATE | CC_DB_MIGRATE, &f->st), CC_OK);
    cc_store_set_gate(f->st, &f->gate);
    assert_int_equal(cc_db_exec(cc_store_db(f->st), "CREATE TABLE scratch (b BLOB)"), CC_OK);
    /* The migrations leave a WAL of a few hundred pages, past the tests' `restart`: had the
     * thread been woken by them and not run yet (a loaded machine), its first pass would be a
     * gated one, and a test holding the gate would wait for it in vain. So the tests start
     * from an empty WAL, with a thread no commit has woken yet. */
    wal_truncate(f);
    cc_walckpt_attach(f->ck, cc_store_db(f->st));
}

static void close_fixture(struct ckfx *f)
{
    cc_store_close(f->st);
    cc_walckpt_stop(f->ck);
    cc_gate_destroy(&f->gate);
    fixture_close(&f->db);
}

/* One write transaction of about `pages` pages (one 4 KiB-ish row per page). */
static void write_pages(struct ckfx *f, int pages)
{
    sqlite3 *db = cc_store_db(f->st);
    char sql[256];

    snprintf(sql, sizeof sql,
             "INSERT INTO scratch (b) SELECT randomblob(3900) FROM"
             " (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
             " SELECT i FROM n)",
             pages);
    assert_int_equal(cc_store_begin(f->st), CC_OK);
    assert_int_equal(cc_db_exec(db, sql), CC_OK);
    assert_int_equal(cc_store_commit(f->st), CC_OK);
}

static struct cc_walckpt_stats stats_of(struct ckfx *f)
{
    struct cc_walckpt_stats s;

    cc_walckpt_get_stats(f->ck, &s);
    return s;
}

/* Past `step` pages the thread copies the WAL into the database (the committing
 * connection does not: its automatic checkpoint is replaced), and once the WAL has
 * reached `restart` pages a pass inside the gate lets the next transaction start the
 * WAL over. */
static void test_checkpoints_in_the_thread_and_restarts_the_wal(void **state)
{
    struct ckfx f;
    struct cc_walckpt_stats s;
    int64_t rows = 0;

    (void)state;
    open_fixture(&f, 40, 200, 100000);
    for (int i = 0; i < 3; i++)
        write_pages(&f, 20);
    for (int k = 0; k < 20000 && stats_of(&f).frames == 0; k++)
        sleep_ms(1);
    s = stats_of(&f);
    assert_true(s.frames >= 40);
    assert_true(s.runs >= 1);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.inline_runs, 0);

    /* 2,000 pages more, in transactions of 20: without a restart the WAL would hold
     * them all. The test's writer leaves the gate free between its transactions, so
     * the thread's gated pass comes early (at `step`, not `restart`). */
    int max_pages = 0;
    for (int i = 0; i < 100; i++) {
        unsigned long long gated = stats_of(&f).gated_runs;

        write_pages(&f, 20);
        s = stats_of(&f);
        if (s.last_wal_pages > max_pages)
            max_pages = (int)s.last_wal_pages;
        /* Past `restart` the thread owes a gated pass. A loaded machine may not schedule
         * it within a fixed sleep (the WAL then grew past 1,000 pages under a full unit-asan
         * run), so wait for the pass itself, bounded, before writing on: what is tested is
         * that the pass starts the WAL over, not how soon the scheduler runs it. */
        if (s.last_wal_pages >= 200)
            for (int k = 0; k < 20000 && stats_of(&f).gated_runs == gated; k++)
                sleep_ms(1);
        sleep_ms(1);
    }
    s = stats_of(&f);
    assert_true(s.gated_runs >= 1);
    assert_true(max_pages < 1000);
    {
        char wal[80];
        FILE *fp;
        long size;

        snprintf(wal, sizeof wal, "%s-wal", f.path);
        fp = fopen(wal, "rb");
        assert_non_null(fp);
        assert_int_equal(fseek(fp, 0, SEEK_END), 0);
        size = ftell(fp);
        fclose(fp);
        assert_true(size < 1000L * 4096); /* the file was written over from its start */
    }
    assert_int_equal(s.inline_runs, 0);
    assert_int_equal(s.errors, 0);

    /* Nothing was lost on the way. */
    {
        sqlite3_stmt *stmt = NULL;
        assert_int_equal(
            sqlite3_prepare_v2(cc_store_db(f.st), "SELECT count(*) FROM scratch", -1, &stmt, NULL),
            SQLITE_OK);
        assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
        rows = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
    }
    assert_int_equal(rows, 60 + 2000);
    close_fixture(&f);
}

/* While the gate is busy the thread copies without it, and waits for its turn only once
 * the WAL has reached `restart`; the transaction after that pass starts the WAL over.
 * (Here the test holds the gate and writes through a store outside it.) */
static void test_waits_for_the_gate_only_at_restart(void **state)
{
    struct ckfx f;
    struct cc_walckpt_stats s;

    (void)state;
    open_fixture(&f, 40, 200, 100000);
    cc_store_set_gate(f.st, NULL);
    cc_gate_enter(&f.gate);
    for (int i = 0; i < 5; i++) /* 100 pages: runs, but no gated pass */
        write_pages(&f, 20);
    /* At least `step` frames copied; how many more depends on where each run fell
     * between the commits (a run may end just short of the last one's pages). */
    /* The thread runs when a commit wakes it; a run that met SQLITE_BUSY copies nothing and
     * waits for the next commit, so give it a few (one page each) if needed. */
    /* Up to 20 s, for a loaded machine (CI beside builds and fuzzers): a wait, not a
     * speed assertion. */
    for (int k = 0; k < 20000 && stats_of(&f).frames < 40; k++) {
        sleep_ms(1);
        if (k % 250 == 249)
            write_pages(&f, 1);
    }
    s = stats_of(&f);
    if (s.frames < 40)
        print_message("walckpt: frames %llu runs %llu busy %llu errors %llu last_wal_pages %lld\n",
                      (unsigned long long)s.frames, (unsigned long long)s.runs,
                      (unsigned long long)s.busy, (unsigned long long)s.errors,
                      (long long)s.last_wal_pages);
    assert_true(s.frames >= 40);
    assert_true(s.runs >= 1);
    assert_int_equal(s.gated_runs, 0);
    while (stats_of(&f).last_wal_pages < 200)
        write_pages(&f, 20);
    sleep_ms(100);
    assert_int_equal(stats_of(&f).gated_runs, 0); /* it waits for the gate */
    cc_gate_leave(&f.gate);
    for (int k = 0; k < 20000 && stats_of(&f).gated_runs == 0; k++)
        sleep_ms(1);
    assert_true(stats_of(&f).gated_runs >= 1);
    /* The next transaction starts the WAL over (a run still going on may make one
     * transaction miss the moment, hence a few tries). */
    for (int k = 0; k < 100 && stats_of(&f).last_wal_pages >= 20; k++) {
        write_pages(&f, 1);
        sleep_ms(2);
    }
    assert_true(stats_of(&f).last_wal_pages < 20);
    close_fixture(&f);
}

/* A reader that keeps an old snapshot stops any checkpoint from finishing, so the WAL
 * grows whatever the thread does: past `limit` each commit checkpoints in place (as
 * SQLite's automatic checkpoint would) and still succeeds. */
static void test_commit_checkpoints_in_place_past_the_limit(void **state)
{
    struct ckfx f;
    struct cc_walckpt_stats s;
    sqlite3 *reader = NULL;
    sqlite3_stmt *stmt = NULL;

    (void)state;
    open_fixture(&f, 10, 20, 60);
    write_pages(&f, 5);
    assert_int_equal(cc_db_open(f.path, CC_DB_READONLY, &reader), CC_OK);
    assert_int_equal(cc_db_exec(reader, "BEGIN"), CC_OK);
    assert_int_equal(sqlite3_prepare_v2(reader, "SELECT count(*) FROM scratch", -1, &stmt, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW); /* the snapshot is taken */
    assert_int_equal(sqlite3_column_int(stmt, 0), 5);
    sqlite3_finalize(stmt);

    for (int i = 0; i < 8; i++)
        write_pages(&f, 10);
    s = stats_of(&f);
    assert_true(s.last_wal_pages >= 60);
    assert_true(s.inline_runs >= 1);

    assert_int_equal(cc_db_exec(reader, "COMMIT"), CC_OK);
    cc_db_close(reader);
    close_fixture(&f);
}

static void test_start_refuses_bad_sizes(void **state)
{
    struct cc_walckpt *ck = NULL;

    (void)state;
    assert_int_not_equal(cc_walckpt_start("/tmp/unused.db", 0, 10, 10, NULL, &ck), CC_OK);
    assert_int_not_equal(cc_walckpt_start("/tmp/unused.db", 20, 10, 30, NULL, &ck), CC_OK);
    assert_int_not_equal(cc_walckpt_start("/tmp/unused.db", 10, 30, 20, NULL, &ck), CC_OK);
    assert_null(ck);
    assert_int_equal(access("/tmp/unused.db", F_OK), -1); /* refused before opening */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoints_in_the_thread_and_restarts_the_wal),
        cmocka_unit_test(test_waits_for_the_gate_only_at_restart),
        cmocka_unit_test(test_commit_checkpoints_in_place_past_the_limit),
        cmocka_unit_test(test_start_refuses_bad_sizes),
    };

    cc_log_init("test_walckpt", CC_LOG_ERROR, 0);
    cc_db_tune_process(0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
