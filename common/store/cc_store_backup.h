/* cc_store_backup.h - a consistent copy of a SQLite database file while the daemons keep
 * writing to it (SQLite's online backup API), for `ccctl backup` and `ccctl restore`.
 * PostgreSQL has its own tools (pg_dump, pg_restore: tools/ccctl_pg.c).
 *
 * Kept in store/ because it is SQLite machinery: nothing outside common/store/ includes
 * sqlite3.h (issue 14). Thread-safe: each call opens its own connections. */
#ifndef CC_STORE_BACKUP_H
#define CC_STORE_BACKUP_H

#include <stddef.h>

/* Copies the SQLite database at src_path to dst_path: into dst_path.tmp (created 0600: a
 * database holds password hashes), page by page with pauses so writers are never held up
 * for long, checked (PRAGMA quick_check), switched to a rollback journal so that it is one
 * self-contained file, fsync'ed and renamed over dst_path. src_readonly opens the source
 * read-only (a restore reads a backup file). On success *pages is the page count.
 * CC_OK; CC_ERR_VALIDATION (a path too long); CC_ERR_DB (unreadable source, a failed or
 * damaged copy) or CC_ERR_IO (the temporary file), with a one-line reason in err. */
int cc_store_sqlite_copy(const char *src_path, int src_readonly, const char *dst_path, int *pages,
                         char *err, size_t errlen);

#endif
