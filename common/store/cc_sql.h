/* cc_sql.h - prepared statements and row helpers for the query modules of common/.
 *
 * cc_sql_prepare lends a statement for a SQL string literal. By default each call
 * prepares and cc_sql_release finalizes. A thread that calls cc_sql_cache_enable
 * (apid's workers) keeps up to CC_SQL_CACHE_MAX statements per connection instead:
 * release then only resets them, and cc_sql_cache_clear must finalize them before the
 * connection is closed. The cache is keyed by (connection, address of the SQL string),
 * so pass string literals, never built strings.
 * Thread: the cache is thread-local; a connection belongs to one thread (cc_db.h).
 * Codes: CC_OK, CC_ERR_DB, CC_ERR_CONFLICT (unique key), CC_ERR_NOMEM. */
#ifndef CC_SQL_H
#define CC_SQL_H

#include <stdint.h>
#include <sqlite3.h>
#include <cjson/cJSON.h>

#include "cc_dbi.h"

/* cached statements per thread (or per cc_sql_cache): the store's one limit */
#define CC_SQL_CACHE_MAX CC_STMT_CACHE_MAX
#define CC_PAGE_MAX 500 /* most items in one list answer */

/* A window of a list: at most limit items after skipping offset. */
struct cc_page {
    int64_t limit;  /* 1..CC_PAGE_MAX */
    int64_t offset; /* >= 0 */
};

/* From now on this thread caches statements. */
void cc_sql_cache_enable(void);
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

/* Binds text, or NULL when s is NULL. SQLITE_OK or an SQLite error. */
int cc_sql_bind_text_or_null(sqlite3_stmt *stmt, int idx, const char *s);

/* Row to JSON helpers: each adds name to obj from column col of stmt and returns
 * CC_OK or CC_ERR_NOMEM. NULL columns become JSON null. */
int cc_sql_json_int(cJSON *obj, const char *name, sqlite3_stmt *stmt, int col);
int cc_sql_json_num(cJSON *obj, const char *name, sqlite3_stmt *stmt, int col);
int cc_sql_json_text(cJSON *obj, const char *name, sqlite3_stmt *stmt, int col);
int cc_sql_json_bool(cJSON *obj, const char *name, sqlite3_stmt *stmt, int col);
/* An epoch-ms column as an ISO-8601 UTC string. */
int cc_sql_json_time(cJSON *obj, const char *name, sqlite3_stmt *stmt, int col);

/* Makes one JSON object from the current row of a statement; NULL on out of memory. */
typedef cJSON *(*cc_sql_row_fn)(sqlite3_stmt *stmt);

/* Steps a bound statement to the end, collecting row_fn of each row into a new array
 * (*items, the caller's). CC_OK, CC_ERR_DB or CC_ERR_NOMEM. */
int cc_sql_collect(sqlite3 *db, sqlite3_stmt *stmt, cc_sql_row_fn row_fn, cJSON **items);
/* Steps a bound statement for one row: *out = row_fn(row). CC_OK, CC_ERR_NOT_FOUND (no
 * row), CC_ERR_DB or CC_ERR_NOMEM. */
int cc_sql_one(sqlite3 *db, sqlite3_stmt *stmt, cc_sql_row_fn row_fn, cJSON **out);
/* Runs sql (a string literal taking the id as ?1) for one row: *out = row_fn(row).
 * CC_OK, CC_ERR_NOT_FOUND, CC_ERR_DB or CC_ERR_NOMEM. */
int cc_sql_get(sqlite3 *db, const char *sql, int64_t id, cc_sql_row_fn row_fn, cJSON **out);
/* Steps a bound statement whose first column of one row is an integer (a count). */
int cc_sql_int64(sqlite3 *db, sqlite3_stmt *stmt, int64_t *out);

/* A read transaction around several queries (one WAL snapshot, one set of shared-memory
 * locks instead of one per statement). Only for code that does not write before
 * cc_sql_read_end. CC_OK or CC_ERR_DB. */
int cc_sql_read_begin(sqlite3 *db);
/* Ends it (COMMIT of a read-only transaction); a no-op when none is open. */
void cc_sql_read_end(sqlite3 *db);

/* Ends a transaction: COMMIT when rc is CC_OK (CC_ERR_DB if that fails), else
 * ROLLBACK. Returns the resulting code. */
int cc_sql_end(sqlite3 *db, int rc);

/* A list answer {"items":items,"total":total}; takes items (deleted on failure).
 * NULL on out of memory. */
cJSON *cc_sql_list_new(cJSON *items, int64_t total);

/* Binds the parameters that a list statement and its count share. CC_OK or CC_ERR_DB. */
typedef int (*cc_sql_bind_fn)(sqlite3_stmt *stmt, const void *ctx);

/* Answers {"items":[...],"total":N}: prepares sql_list and sql_count, binds both with
 * bind(ctx) and the list's limit and offset as parameters window and window + 1, takes
 * the list's rows through row_fn and the count's one integer. CC_OK (*out set),
 * CC_ERR_DB or CC_ERR_NOMEM. */
int cc_sql_list_page(sqlite3 *db, const char *sql_list, const char *sql_count, cc_sql_bind_fn bind,
                     const void *ctx, int window, const struct cc_page *pg, cc_sql_row_fn row_fn,
                     cJSON **out);

#endif
