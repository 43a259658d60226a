/* test_walbuf.c - cc_walbuf, the VFS that writes a commit's WAL frames in one go, on real
 * files: a commit is a few writes instead of two per page, and what COMMIT returned is in
 * the file for another connection and after a kill -9 at once; a transaction that spills
 * pages to the WAL before its commit (and reads them back, or is rolled back) stays
 * correct. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_db.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_walbuf.h"
#include "fixture.h"

#define ROW_BYTES 3000 /* one row a page or so: rows * ~1 frame */

static int64_t one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t v = -1;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    if (sqlite3_step(stmt) == SQLITE_ROW)
        v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static void assert_intact(sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;

    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "ok");
    sqlite3_finalize(stmt);
}

/* Inserts rows blobs of ROW_BYTES with v = 1 in one transaction (committed or not). */
static void insert_rows(sqlite3 *db, int rows, int commit)
{
    char sql[256];

    assert_int_equal(cc_db_exec(db, "BEGIN IMMEDIATE"), CC_OK);
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
             " INSERT INTO t (b, v) SELECT randomblob(%d), 1 FROM n",
             rows, ROW_BYTES);
    assert_int_equal(cc_db_exec(db, sql), CC_OK);
    assert_int_equal(cc_db_exec(db, commit ? "COMMIT" : "ROLLBACK"), CC_OK);
}

static sqlite3 *open_writer(const struct fixture *fx)
{
    sqlite3 *db = NULL;

    assert_int_equal(cc_db_open(fx->path, CC_DB_CREATE, &db), CC_OK);
    /* The checkpoints would write the database file through the same VFS: none here. */
    assert_int_equal(cc_db_exec(db, "PRAGMA wal_autocheckpoint=0"), CC_OK);
    assert_int_equal(cc_db_exec(db, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY,"
                                    " b BLOB, v INTEGER)"),
                     CC_OK);
    return db;
}

static void test_a_commit_is_a_few_writes(void **state)
{
    struct fixture fx;
    sqlite3 *db;
    unsigned long long w0, writes;
    int64_t frames0, frames;

    (void)state;
    assert_int_equal(fixture_open(&fx, FIXTURE_FILE | FIXTURE_NO_STORE, 0, NULL), CC_OK);
    db = open_writer(&fx);
    frames0 = one_int(db, "SELECT count(*) FROM t"); /* reads the schema in */
    assert_int_equal(frames0, 0);
    w0 = cc_walbuf_writes();
    insert_rows(db, 200, 1);
    writes = cc_walbuf_writes() - w0;
    frames = 200; /* at least one page a row */
    /* Unbuffered: two writes a frame (header, page), 400 or more. Buffered: the commit's
     * bytes in CC_WALBUF_BYTES pieces, 200 * ~4 KiB / 64 KiB ~ 13. */
    assert_true(writes >= 1);
    assert_true(writes <= (unsigned long long)(frames * 4120 / CC_WALBUF_BYTES + 4));
    assert_int_equal(one_int(db, "SELECT count(*) FROM t"), 200);
    cc_db_close(db);
    fixture_close(&fx);
}

static void test_committed_is_seen_by_another_connection(void **state)
{
    struct fixture fx;
    sqlite3 *db, *reader = NULL;

    (void)state;
    assert_int_equal(fixture_open(&fx, FIXTURE_FILE | FIXTURE_NO_STORE, 0, NULL), CC_OK);
    db = open_writer(&fx);
    /* The default VFS, reading the file itself: nothing of ours in between. */
    assert_int_equal(sqlite3_open_v2(fx.path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    for (int k = 1; k <= 5; k++) {
        insert_rows(db, 40 * k, 1);
        assert_int_equal(one_int(reader, "SELECT count(*) FROM t"), 20 * k * (k + 1));
    }
    assert_intact(reader);
    sqlite3_close(reader);
    cc_db_close(db);
    fixture_close(&fx);
}

/* A child commits (or not), then kills itself with SIGKILL at once: no exit, no close. */
static void commit_and_die(const struct fixture *fx, int rows, int commit)
{
    pid_t pid = fork();
    int status = 0;

    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *db = NULL;

        if (cc_db_open(fx->path, CC_DB_CREATE, &db) != CC_OK)
            _exit(3);
        cc_db_exec(db, "PRAGMA wal_autocheckpoint=0");
        cc_db_exec(db, "PRAGMA cache_size=20"); /* the uncommitted one spills to the WAL */
        cc_db_exec(db, "BEGIN IMMEDIATE");
        for (int i = 0; i < rows; i++)
            cc_db_exec(db, "INSERT INTO t (b, v) VALUES (randomblob(3000), 1)");
        if (commit)
            cc_db_exec(db, "COMMIT");
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_kill_after_commit_keeps_it(void **state)
{
    struct fixture fx;
    sqlite3 *db;

    (void)state;
    assert_int_equal(fixture_open(&fx, FIXTURE_FILE | FIXTURE_NO_STORE, 0, NULL), CC_OK);
    db = open_writer(&fx);
    cc_db_close(db);
    commit_and_die(&fx, 150, 1);
    commit_and_die(&fx, 7, 1);
    commit_and_die(&fx, 150, 0); /* killed inside its transaction: none of it */
    db = open_writer(&fx);
    assert_int_equal(one_int(db, "SELECT count(*) FROM t"), 157);
    assert_intact(db);
    cc_db_close(db);
    fixture_close(&fx);
}

static void test_spilled_transaction_commits_and_rolls_back(void **state)
{
    struct fixture fx;
    sqlite3 *db, *reader = NULL;

    (void)state;
    assert_int_equal(fixture_open(&fx, FIXTURE_FILE | FIXTURE_NO_STORE, 0, NULL), CC_OK);
    db = open_writer(&fx);
    /* A cache of 20 pages: the transaction writes frames before its commit, reads them
     * back, and rewrites some of them in place. */
    assert_int_equal(cc_db_exec(db, "PRAGMA cache_size=20"), CC_OK);
    insert_rows(db, 300, 1);
    assert_int_equal(cc_db_exec(db, "BEGIN IMMEDIATE; UPDATE t SET v = v + 1;"
                                    " UPDATE t SET v = v * 10 WHERE id % 2 = 0; COMMIT"),
                     CC_OK);
    insert_rows(db, 300, 0); /* spilled, then rolled back */
    assert_int_equal(sqlite3_open_v2(fx.path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(one_int(reader, "SELECT count(*) FROM t"), 300);
    assert_int_equal(one_int(reader, "SELECT sum(v) FROM t"), 150 * 2 + 150 * 20);
    assert_intact(reader);
    insert_rows(db, 10, 1); /* after the rollback, over the frames it left */
    assert_int_equal(one_int(reader, "SELECT count(*) FROM t"), 310);
    assert_intact(reader);
    sqlite3_close(reader);
    cc_db_close(db);
    fixture_close(&fx);
}

/* A default VFS under cc_walbuf whose WAL writes fail while fail_wal_writes is set (a full
 * or failing disk): the unix VFS's file with its xWrite wrapped, nothing else changed. */
static int fail_wal_writes;
static sqlite3_vfs faulty_vfs;
static sqlite3_io_methods faulty_methods;
static const sqlite3_io_methods *unix_methods;
static sqlite3_vfs *unix_vfs;

static int faulty_write(sqlite3_file *pf, const void *p, int n, sqlite3_int64 off)
{
    return fail_wal_writes ? SQLITE_IOERR_WRITE : unix_methods->xWrite(pf, p, n, off);
}

static int faulty_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *out)
{
    int rc = unix_vfs->xOpen(unix_vfs, name, pf, flags, out);

    (void)vfs;
    if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL) && pf->pMethods != NULL) {
        if (unix_methods == NULL) {
            unix_methods = pf->pMethods;
            faulty_methods = *unix_methods;
            faulty_methods.xWrite = faulty_write;
        }
        pf->pMethods = &faulty_methods;
    }
    return rc;
}

/* Registered as the default before the first cc_db_open, so cc_walbuf wraps it. */
static void register_faulty_vfs(void)
{
    unix_vfs = sqlite3_vfs_find(NULL);
    assert_non_null(unix_vfs);
    faulty_vfs = *unix_vfs;
    faulty_vfs.zName = "faulty";
    faulty_vfs.xOpen = faulty_open;
    assert_int_equal(sqlite3_vfs_register(&faulty_vfs, 1), SQLITE_OK);
}

/* A commit whose WAL write failed was rolled back: its frames, held in the buffer when the
 * write failed, must never reach the file later (at close, at the next write), or a crash
 * after that leaves a WAL whose recovery replays the transaction SQLite reported failed. */
static void test_failed_commit_never_reaches_the_file(void **state)
{
    struct fixture fx;
    sqlite3 *db;
    pid_t pid;
    int status;

    (void)state;
    assert_int_equal(fixture_open(&fx, FIXTURE_FILE | FIXTURE_NO_STORE, 0, NULL), CC_OK);
    db = open_writer(&fx);
    insert_rows(db, 3, 1);
    cc_db_close(db);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *keep = NULL, *w = NULL;
        int ok;

        /* keep holds the WAL open, so w's close neither checkpoints nor deletes it. */
        if (sqlite3_open_v2(fx.path, &keep, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
            sqlite3_exec(keep, "SELECT count(*) FROM t", NULL, NULL, NULL) != SQLITE_OK ||
            cc_db_open(fx.path, 0, &w) != CC_OK)
            _exit(2);
        /* A committed frame first: the failing commit then appends to a WAL that has a
         * header (a fresh WAL's header is synced, and that sync would fail first). */
        if (sqlite3_exec(w, "PRAGMA wal_autocheckpoint=0; INSERT INTO t (b, v) VALUES (NULL, 1)",
                         NULL, NULL, NULL) != SQLITE_OK)
            _exit(2);
        fail_wal_writes = 1;
        ok = sqlite3_exec(w,
                          "BEGIN IMMEDIATE; INSERT INTO t (b, v) VALUES (zeroblob(100), 2),"
                          " (zeroblob(100), 2); COMMIT",
                          NULL, NULL, NULL) == SQLITE_OK;
        fail_wal_writes = 0;
        if (ok)
            _exit(3); /* the fault did not take: nothing tested */
        sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(w); /* writes what it holds (once, the failed frames) */
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    db = open_writer(&fx);
    assert_int_equal(one_int(db, "SELECT count(*) FROM t WHERE v = 2"), 0);
    assert_int_equal(one_int(db, "SELECT count(*) FROM t"), 4);
    assert_intact(db);
    cc_db_close(db);
    fixture_close(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_commit_is_a_few_writes),
        cmocka_unit_test(test_committed_is_seen_by_another_connection),
        cmocka_unit_test(test_kill_after_commit_keeps_it),
        cmocka_unit_test(test_spilled_transaction_commits_and_rolls_back),
        cmocka_unit_test(test_failed_commit_never_reaches_the_file),
    };

    cc_log_init("test_walbuf", CC_LOG_ERROR, 0);
    register_faulty_vfs();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
