/* cc_db.c - SQLite connections, pragmas and migrations, see cc_db.h. */
#include "cc_db.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_walbuf.h"

/* Page cache of a writing connection, in KiB when negative: 8 MiB. ingestd's batches
 * touch about two leaf pages per device and cell (~8 MiB of hot pages at 1000 devices).
 * make bench (issue 13, 2026-12-07): 64 and 16 MiB were no faster than 8 (plain 14,743 vs
 * 13,975-15,449 readings/s, backlog drain 38,134 vs 38,411-42,964/s) but the cache counts
 * in ingestd's peak RSS: VmHWM plain 34.2 -> 25.5 MiB, churn 38.6 -> 29.7 MiB (goal <= 32),
 * and in make soak it kept creeping up for hours (+12.8 MB/h at 64 MiB). */
#define CACHE_SIZE_PRAGMA "PRAGMA cache_size=-8192"

/* Creates every missing directory of the directory part of path (mkdir -p).
 * CC_OK or CC_ERR_IO. */
static int make_parent_dirs(const char *path)
{
    char dir[PATH_MAX];
    char *slash;
    int n = snprintf(dir, sizeof dir, "%s", path);

    if (n < 0 || (size_t)n >= sizeof dir) {
        cc_log_error("db_open_failed", "database path is too long");
        return CC_ERR_IO;
    }
    slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return CC_OK; /* current directory or the root */
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            cc_log_error("db_open_failed", "cannot create directory %s: %s", dir, strerror(errno));
            return CC_ERR_IO;
        }
        *p = '/';
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        cc_log_error("db_open_failed", "cannot create directory %s: %s", dir, strerror(errno));
        return CC_ERR_IO;
    }
    return CC_OK;
}

int cc_db_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int src = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (src != SQLITE_OK) {
        cc_log_error("db_exec_failed", "%s: %s", sql, msg != NULL ? msg : sqlite3_errstr(src));
        sqlite3_free(msg);
        return CC_ERR_DB;
    }
    return CC_OK;
}

/* Sets journal_mode=WAL and checks the answer ("memory" for an in-memory database is
 * fine). CC_OK or CC_ERR_DB. */
/* The busy handler of every connection: another connection holds the lock we need; try
 * again every CC_DB_BUSY_POLL_MS until CC_DB_BUSY_TIMEOUT_MS have passed. SQLite's own
 * handler backs off to one try per 100 ms, and ingestd's writer, draining a backlog,
 * commits back to back with a pause of INGEST_WRITER_YIELD_MS between transactions: apid
 * would look in at the wrong moments for its whole timeout and fail with SQLITE_BUSY
 * (test_faults.py "busy"). A try costs a few system calls. */
static int busy_poll(void *arg, int count)
{
    struct timespec ts = {0, CC_DB_BUSY_POLL_MS * 1000000L};

    (void)arg;
    if ((long)count * CC_DB_BUSY_POLL_MS >= CC_DB_BUSY_TIMEOUT_MS)
        return 0;
    nanosleep(&ts, NULL);
    return 1;
}

static int set_wal(sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;
    const char *mode;
    int rc = CC_ERR_DB;
    int src = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL);

    if (src != SQLITE_OK)
        goto out;
    src = sqlite3_step(stmt);
    if (src != SQLITE_ROW)
        goto out;
    mode = (const char *)sqlite3_column_text(stmt, 0);
    if (mode == NULL || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)) {
        cc_log_error("db_open_failed", "journal_mode=WAL refused (mode %s)",
                     mode != NULL ? mode : "?");
        goto out;
    }
    rc = CC_OK;

out:
    if (rc != CC_OK && src != SQLITE_ROW)
        cc_log_error("db_open_failed", "journal_mode=WAL: %s", sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    return rc;
}

int cc_db_open(const char *path, int flags, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int readonly = (flags & CC_DB_READONLY) != 0;
    /* Default (serialized) threading: one connection per thread is the rule, and the
     * mutex makes breaking it slow rather than corrupting. */
    int oflags = 0;
    int memory;
    int src;
    int rc;

    if (path == NULL || path[0] == '\0') {
        cc_log_error("db_open_failed", "no database path");
        return CC_ERR_IO;
    }
    memory = strcmp(path, ":memory:") == 0;
    if (readonly && (flags & (CC_DB_MIGRATE | CC_DB_CREATE))) {
        cc_log_error("db_open_failed", "a read-only connection cannot create or migrate");
        return CC_ERR_DB;
    }
    if (readonly) {
        oflags |= SQLITE_OPEN_READONLY;
    } else {
        oflags |= SQLITE_OPEN_READWRITE;
        if (flags & CC_DB_CREATE)
            oflags |= SQLITE_OPEN_CREATE;
    }
    if ((flags & CC_DB_CREATE) && !memory) {
        rc = make_parent_dirs(path);
        if (rc != CC_OK)
            return rc;
    }

    /* A writing connection's commits go to the WAL in one write (cc_walbuf.h). */
    src = sqlite3_open_v2(path, &db, oflags,
                          !readonly && !memory && cc_walbuf_register() == 0 ? CC_WALBUF_VFS : NULL);
    if (src != SQLITE_OK) {
        cc_log_error("db_open_failed", "%s: %s", path,
                     db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(src));
        rc = (src == SQLITE_CANTOPEN || src == SQLITE_PERM) ? CC_ERR_IO : CC_ERR_DB;
        goto fail;
    }
    sqlite3_extended_result_codes(db, 1);
    /* SQLite quietly falls back to read-only when it cannot open the file for writing (a
     * read-only file or filesystem): refuse here, at start, rather than at the first write. */
    if (!readonly && !memory && sqlite3_db_readonly(db, "main") == 1) {
        cc_log_error("db_read_only",
                     "%s: the database is read-only (file mode or filesystem); "
                     "it must be writable",
                     path);
        rc = CC_ERR_IO;
        goto fail;
    }
    if (sqlite3_busy_handler(db, busy_poll, NULL) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto fail;
    }
    rc = cc_db_exec(db, "PRAGMA foreign_keys=ON");
    if (rc != CC_OK)
        goto fail;
    if (!readonly) {
        /* A read-only connection leaves the journal mode alone: changing it needs a
         * write, and the writers have set WAL already. */
        rc = set_wal(db);
        if (rc == CC_OK)
            rc = cc_db_exec(db, "PRAGMA synchronous=NORMAL");
        if (rc == CC_OK)
            rc = cc_db_exec(db, CACHE_SIZE_PRAGMA);
        if (rc != CC_OK)
            goto fail;
    }
    if (flags & CC_DB_MIGRATE) {
        rc = cc_db_migrate(db);
        if (rc != CC_OK)
            goto fail;
    }
    *out = db;
    return CC_OK;

fail:
    sqlite3_close(db);
    return rc;
}

void cc_db_close(sqlite3 *db)
{
    if (db == NULL)
        return;
    if (sqlite3_close(db) != SQLITE_OK) {
        /* A statement is still open: a bug, but do not leak the connection. */
        cc_log_error("db_close_failed", "%s", sqlite3_errmsg(db));
        sqlite3_close_v2(db);
    }
}

void cc_db_remove_files(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[PATH_MAX + 16];

    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++)
        if (snprintf(p, sizeof p, "%s%s", path, suffix[i]) < (int)sizeof p)
            unlink(p);
}

int cc_db_user_version(sqlite3 *db, int *out)
{
    return cc_db_pragma_int(db, "PRAGMA user_version", out);
}

int cc_db_pragma_int(sqlite3 *db, const char *pragma, int *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc = CC_ERR_DB;
    int v;

    if (sqlite3_prepare_v2(db, pragma, -1, &stmt, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_step(stmt) != SQLITE_ROW)
        goto out;
    v = sqlite3_column_int(stmt, 0);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        goto out;
    *out = v;
    rc = CC_OK;

out:
    if (rc != CC_OK)
        cc_log_error("db_error", "%s: %s", pragma, sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    return rc;
}

int cc_db_latest_version(void)
{
    int latest = 0;

    for (int i = 0; i < cc_migrations_count; i++) {
        if (cc_migrations[i].version > latest)
            latest = cc_migrations[i].version;
    }
    return latest;
}

/* PRAGMA foreign_key_check inside a migration's transaction: migrations run with
 * foreign_keys OFF (see cc_db_migrate), so this is what keeps them honest. CC_OK when
 * no row violates a foreign key, else CC_ERR_DB (logged). */
static int foreign_keys_hold(sqlite3 *db, const char *name)
{
    sqlite3_stmt *stmt = NULL;
    int src = sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &stmt, NULL);

    if (src == SQLITE_OK)
        src = sqlite3_step(stmt);
    if (src == SQLITE_ROW)
        cc_log_error("db_migration_failed", "migration %s breaks a foreign key of table %s", name,
                     (const char *)sqlite3_column_text(stmt, 0));
    else if (src != SQLITE_DONE)
        cc_log_error("db_migration_failed", "foreign_key_check: %s", sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    return src == SQLITE_DONE ? CC_OK : CC_ERR_DB;
}

/* Applies one migration in its own BEGIN IMMEDIATE transaction, unless another
 * process got there first. CC_OK or CC_ERR_DB (rolled back). */
static int apply_one(sqlite3 *db, const struct cc_migration *m)
{
    char pragma[48];
    int current = 0;
    int rc;

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        goto fail;
    /* Re-read inside the write lock: a concurrent start may have applied it. */
    rc = cc_db_user_version(db, &current);
    if (rc != CC_OK)
        goto fail;
    if (current >= m->version)
        return cc_db_commit(db);
    rc = cc_db_exec(db, m->sql);
    if (rc != CC_OK)
        goto fail;
    rc = foreign_keys_hold(db, m->name);
    if (rc != CC_OK)
        goto fail;
    snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", m->version);
    rc = cc_db_exec(db, pragma);
    if (rc != CC_OK)
        goto fail;
    rc = cc_db_commit(db);
    if (rc != CC_OK)
        goto fail;
    cc_log_info("db_migrated", "applied migration %s", m->name);
    return CC_OK;

fail:
    cc_db_rollback(db);
    cc_log_error("db_migration_failed", "migration %s failed and was rolled back", m->name);
    return CC_ERR_DB;
}

int cc_db_migrate(sqlite3 *db)
{
    int current = 0;
    int latest = cc_db_latest_version();
    int prev = 0;
    int rc;

    rc = cc_db_user_version(db, &current);
    if (rc != CC_OK)
        return rc;
    if (current > latest) {
        cc_log_error("db_too_new",
                     "database schema version %d is newer than this program's %d: "
                     "upgrade the program",
                     current, latest);
        return CC_ERR_DB;
    }
    if (current == latest)
        return CC_OK;
    /* SQLite's procedure for schema changes (lang_altertable.html, section 7): with
     * foreign keys on, DROP TABLE of a rebuilt table would delete through every ON DELETE
     * CASCADE, and the pragma is a no-op inside a transaction, so it is turned off here
     * and each migration ends with PRAGMA foreign_key_check instead. */
    rc = cc_db_exec(db, "PRAGMA foreign_keys=OFF");
    for (int i = 0; rc == CC_OK && i < cc_migrations_count; i++) {
        const struct cc_migration *m = &cc_migrations[i];

        if (m->version <= prev) {
            cc_log_error("db_migration_failed", "migration %s is out of order", m->name);
            rc = CC_ERR_DB;
            break;
        }
        prev = m->version;
        if (m->version <= current)
            continue;
        rc = apply_one(db, m);
    }
    if (cc_db_exec(db, "PRAGMA foreign_keys=ON") != CC_OK)
        rc = CC_ERR_DB;
    return rc;
}

void cc_db_memory(int64_t *used, int64_t *peak)
{
    *used = sqlite3_memory_used();
    *peak = sqlite3_memory_highwater(0);
}

void cc_db_tune_process(int heap_limit_mib)
{
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    /* Before any connection: SQLite's allocation statistics take a global mutex on every
     * allocation, which ingestd's writer and checkpointer would fight over; the soft heap
     * limit works only with them. */
    if (heap_limit_mib <= 0) {
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        return;
    }
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1);
    sqlite3_soft_heap_limit64((sqlite3_int64)heap_limit_mib << 20);
}

int cc_db_begin(sqlite3 *db)
{
    return cc_db_exec(db, "BEGIN IMMEDIATE");
}

int cc_db_commit(sqlite3 *db)
{
    return cc_db_exec(db, "COMMIT");
}

void cc_db_rollback(sqlite3 *db)
{
    /* SQLite may already have rolled back (a failed COMMIT, SQLITE_FULL, ...). */
    if (db != NULL && !sqlite3_get_autocommit(db))
        (void)cc_db_exec(db, "ROLLBACK");
}

int cc_db_rc(int sqlite_rc, int extended_rc)
{
    if (sqlite_rc == SQLITE_OK || sqlite_rc == SQLITE_DONE || sqlite_rc == SQLITE_ROW)
        return CC_OK;
    if (extended_rc == SQLITE_CONSTRAINT_UNIQUE || extended_rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return CC_ERR_CONFLICT;
    return CC_ERR_DB;
}
