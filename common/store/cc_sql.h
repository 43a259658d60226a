/* cc_sql.h - SQLite statements for the store's own SQLite code (cc_store.c, the rollup
 * rebuild): every other module runs its SQL through cc_dbi.h.
 *
 * cc_sql_prepare lends a statement for a SQL string literal. By default each call
 * prepares and cc_sql_release finalizes. With a cache installed (cc_sql_cache_use, a
 * CC_STORE_POOLED store's) it keeps up to CC_SQL_CACHE_MAX statements per connection
 * instead: release then only resets them, and cc_sql_cache_clear must finalize them before
 * the connection is closed. The cache is keyed by (connection, address of the SQL string),
 * so pass string literals, never built strings.
 * Thread: the cache is thread-local; a connection belongs to one thread (cc_db.h).
 * Codes: CC_OK, CC_ERR_DB, CC_ERR_CONFLICT (unique key), CC_ERR_NOMEM. */
#ifndef CC_SQL_H
#define CC_SQL_H

#include <stdint.h>
#include <sqlite3.h>

#include "cc_dbi.h"

/* cached statements per thread (or per cc_sql_cache): the store's one limit */
#define CC_SQL_CACHE_MAX CC_STMT_CACHE_MAX
/* Finalizes this thread's cached statements of db (all connections if db is NULL). */
void cc_sql_cache_clear(sqlite3 *db);

/* A cache that travels with one connection instead of staying with a thread (apid's
 * pool of connections, lent to whichever worker needs one): the thread that holds the
 * connection installs its cache with cc_sql_cache_use(c) and uninstalls it with
 * cc_sql_cache_use(NULL) before it hands the connection on; meanwhile cc_sql_prepare,
 * _release and _cache_clear use c. cc_sql_cache_new: CC_OK or CC_ERR_NOMEM, caching on.
 * cc_sql_cache_free finalizes c's statements (before their connection is closed). */
struct cc_sql_cache;
int cc_sql_cache_new(struct cc_sql_cache **out);
void cc_sql_cache_free(struct cc_sql_cache *c);
void cc_sql_cache_use(struct cc_sql_cache *c);

/* Lends a statement for sql (a string literal) on db. CC_OK or CC_ERR_DB (logged). */
int cc_sql_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out);
/* Gives a lent statement back (NULL is a no-op). Always call it, on every path. */
void cc_sql_release(sqlite3_stmt *stmt);

/* Steps a statement that returns no row. CC_OK, CC_ERR_CONFLICT or CC_ERR_DB. */
int cc_sql_exec(sqlite3 *db, sqlite3_stmt *stmt);
/* Maps a failed step to a code and logs it (unless it is a unique-key conflict). */
int cc_sql_step_rc(sqlite3 *db, int src, const char *what);

/* A read transaction around several queries (one WAL snapshot, one set of shared-memory
 * locks instead of one per statement). Only for code that does not write before
 * cc_sql_read_end. CC_OK or CC_ERR_DB. */
int cc_sql_read_begin(sqlite3 *db);
/* Ends it (COMMIT of a read-only transaction); a no-op when none is open. */
void cc_sql_read_end(sqlite3 *db);

#endif
