/* cc_store_backup.c - SQLite's online backup of a live database (see cc_store_backup.h).
 *
 * Why the copy is consistent and never restarts: the source connection holds one read
 * transaction for the whole copy. In WAL mode (every coldchain database) a reader never
 * blocks writers, and SQLite restarts a backup only when its source changes under a
 * new read transaction; inside one, every step reads the same snapshot. The cost is
 * that the WAL cannot be checkpointed past that snapshot until the copy ends. A
 * database not in WAL mode is copied without the long read transaction (writers would
 * wait on it): the backup then restarts if it is written to meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cc_db.h"
#include "cc_fs.h"
#include "cc_rc.h"
#include "cc_store_backup.h"
#include "cc_time.h"

#define BACKUP_PAGES_PER_STEP 256 /* pages copied per sqlite3_backup_step (1 MiB at 4 KiB) */
#define BACKUP_SLEEP_MS 5         /* pause between steps, ms */
#define BACKUP_BUSY_SLEEP_MS 50   /* pause after SQLITE_BUSY/LOCKED, ms */
#define BACKUP_MAX_BUSY 1200      /* consecutive busy steps before giving up (~60 s) */

/* Runs one statement that returns at most one text row; copies it into out if given. */
static int exec_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return CC_ERR_DB;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && out != NULL) {
        const unsigned char *t = sqlite3_column_text(stmt, 0);

        snprintf(out, outlen, "%s", t != NULL ? (const char *)t : "");
    }
    if (rc == SQLITE_ROW)
        rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? CC_OK : CC_ERR_DB;
}

/* Creates path empty with mode 0600, replacing a stale one (and its journals). */
static int create_private(const char *path)
{
    int fd;

    cc_db_remove_files(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/* Copies src into dst with the online backup API. CC_OK or CC_ERR_DB. */
static int copy_pages(sqlite3 *src, sqlite3 *dst, int hold_snapshot, int *pages, char *err,
                      size_t errlen)
{
    sqlite3_backup *bk = NULL;
    int busy = 0, in_read = 0;
    int rc;

    if (hold_snapshot) {
        /* One read transaction for the whole copy: see the file comment. */
        if (exec_text(src, "BEGIN", NULL, 0) != CC_OK ||
            exec_text(src, "SELECT count(*) FROM sqlite_schema", NULL, 0) != CC_OK) {
            snprintf(err, errlen, "cannot open a read transaction: %s", sqlite3_errmsg(src));
            rc = CC_ERR_DB;
            goto out;
        }
        in_read = 1;
    }
    bk = sqlite3_backup_init(dst, "main", src, "main");
    if (bk == NULL) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(dst));
        rc = CC_ERR_DB;
        goto out;
    }
    for (;;) {
        int s = sqlite3_backup_step(bk, BACKUP_PAGES_PER_STEP);

        if (s == SQLITE_DONE)
            break;
        if (s == SQLITE_OK) {
            busy = 0;
            cc_sleep_ms(BACKUP_SLEEP_MS);
            continue;
        }
        if ((s == SQLITE_BUSY || s == SQLITE_LOCKED) && ++busy < BACKUP_MAX_BUSY) {
            cc_sleep_ms(BACKUP_BUSY_SLEEP_MS);
            continue;
        }
        snprintf(err, errlen, "step failed: %s", sqlite3_errstr(s));
        rc = CC_ERR_DB;
        goto out;
    }
    *pages = sqlite3_backup_pagecount(bk);
    rc = CC_OK;
out:
    if (bk != NULL && sqlite3_backup_finish(bk) != SQLITE_OK && rc == CC_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(dst));
        rc = CC_ERR_DB;
    }
    if (in_read)
        exec_text(src, "COMMIT", NULL, 0);
    return rc;
}

/* See cc_store_backup.h. */
int cc_store_sqlite_copy(const char *src_path, int src_readonly, const char *path, int *pages,
                         char *err, size_t errlen)
{
    char tmp[PATH_MAX], mode[32], check[256];
    sqlite3 *src = NULL, *dst = NULL;
    int created = 0;
    int rc = CC_ERR_DB;

    *pages = 0;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) { /* path fits too */
        snprintf(err, errlen, "path too long");
        return CC_ERR_VALIDATION;
    }

    if (sqlite3_open_v2(src_path, &src, src_readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", src_path,
                 src ? sqlite3_errmsg(src) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(src, CC_DB_BUSY_TIMEOUT_MS);
    if (exec_text(src, "PRAGMA journal_mode", mode, sizeof mode) != CC_OK) {
        snprintf(err, errlen, "%s is not a readable database: %s", src_path, sqlite3_errmsg(src));
        goto out;
    }

    if (create_private(tmp) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        rc = CC_ERR_IO;
        goto out;
    }
    created = 1;
    if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", tmp,
                 dst ? sqlite3_errmsg(dst) : "out of memory");
        goto out;
    }
    if (copy_pages(src, dst, strcasecmp(mode, "wal") == 0, pages, err, errlen) != CC_OK)
        goto out;

    /* One self-contained file, checked before it replaces anything. */
    if (exec_text(dst, "PRAGMA journal_mode=DELETE", mode, sizeof mode) != CC_OK ||
        exec_text(dst, "PRAGMA quick_check", check, sizeof check) != CC_OK) {
        snprintf(err, errlen, "checking the copy failed: %s", sqlite3_errmsg(dst));
        goto out;
    }
    if (strcmp(check, "ok") != 0) {
        snprintf(err, errlen, "the copy is damaged: %s", check);
        goto out;
    }
    if (sqlite3_close(dst) != SQLITE_OK) {
        snprintf(err, errlen, "closing the copy failed");
        dst = NULL;
        goto out;
    }
    dst = NULL;
    if (cc_fs_replace(tmp, path) != 0) {
        snprintf(err, errlen, "cannot move %s to %s: %s", tmp, path, strerror(errno));
        rc = CC_ERR_IO;
        goto out;
    }
    created = 0;
    rc = CC_OK;
out:
    if (dst != NULL)
        sqlite3_close(dst);
    if (src != NULL)
        sqlite3_close(src);
    if (created)
        unlink(tmp);
    return rc;
}
