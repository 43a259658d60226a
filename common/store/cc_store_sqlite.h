/* cc_store_sqlite.h - SQLite's handles behind a SQLite store, lent to the store's own
 * SQLite code (the rollup rebuild, the gate, the WAL checkpointer) and to tests and
 * benchmarks that look at the file directly. Everything else runs its SQL through
 * cc_dbi.h and works on both stores; this header is the one that names sqlite3.
 * On PostgreSQL the handles are not there (NULL / CC_ERR_INTERNAL). */
#ifndef CC_STORE_SQLITE_H
#define CC_STORE_SQLITE_H

#include <sqlite3.h>

#include "cc_store.h"

/* The SQLite connection. Lent. NULL on PostgreSQL. */
sqlite3 *cc_store_db(struct cc_store *st);
/* Lends the SQLite handle of the statement
 * cc_stmt_prepare caches for sql, a string literal (the cache is keyed by its address),
 * prepared on first use and kept until cc_store_close, so that no reading parses SQL.
 * Give it back with cc_store_stmt_done on every path. CC_OK, CC_ERR_DB (logged; also
 * when the cache already holds CC_STMT_CACHE_MAX other statements) or CC_ERR_INTERNAL
 * (PostgreSQL). */
int cc_store_stmt(struct cc_store *st, const char *sql, sqlite3_stmt **out);
/* Resets a lent statement and clears its bindings (NULL is a no-op). */
void cc_store_stmt_done(sqlite3_stmt *stmt);

#endif
