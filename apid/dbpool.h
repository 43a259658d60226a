/* dbpool.h - apid's database connections: a pool of API_DB_CONNS stores lent to the
 * workers for the database part of a request only.
 *
 * apid runs far more civetweb workers than it needs connections (a worker waits on
 * every slow client, API_SLOW_CLIENTS_MAX of them), so a worker holds no connection of
 * its own: it takes one after the request head and body are in, and gives it back
 * before the answer goes out (server.c). A client that sends or reads slowly therefore
 * holds a worker, never a connection or a read snapshot. Each pooled connection keeps
 * its own statement cache (CC_STORE_POOLED), taken by the thread that holds it
 * (cc_store_thread_enter).
 * Connections are opened on first use and reopened after a failed open.
 * Threads: any worker; a thread holds at most one connection at a time. */
#ifndef API_DBPOOL_H
#define API_DBPOOL_H

#include "api.h"

#define API_DB_CONNS 32     /* pooled SQLite connections: at most this many requests in SQL */
#define API_DB_WAIT_MS 5000 /* longest wait for a free connection before 503 */
/* Page cache of each pooled connection, KiB. The daemons' default (64 MiB, for ingestd's
 * writer) times API_DB_CONNS would let apid grow towards 2 GiB as the database grows
 * (seen in make soak: +571 MB/h); reads of colder pages come from the OS page cache. */
#define API_DB_CACHE_KIB 2048 /* cc_store_set_cache_kib */
/* All of apid's SQLite memory together (every pooled connection's page cache, schema and
 * statements), MiB: SQLite's soft heap limit, under which it reuses its least recently
 * used cache pages rather than allocate more (apid/main.c: cc_store_tune_process). Without it the
 * caches only fill as the pool's connections touch new pages: make soak saw apid grow +67 MB/h for
 * hours towards API_DB_CONNS x API_DB_CACHE_KIB. */
#define API_DB_HEAP_MIB 16

/* Sets up the pool for the database at path (kept, not copied). CC_OK. */
int api_db_init(const char *path);
/* Closes every connection; call after the workers have stopped. */
void api_db_free(void);
/* How many of the API_DB_CONNS connections have been opened (they stay open). */
int api_db_open_count(void);
/* Lends a connection to r: r->st, inside a read transaction when read_tx (every query
 * of a GET then sees one snapshot). A connection the server dropped while it was idle (a
 * PostgreSQL restart) is found out without a round trip and opened again first
 * (cc_store_check). CC_OK, or CC_ERR_DB when no connection could be had within
 * API_DB_WAIT_MS or opened or reopened (r->st stays NULL; server.c answers 503). */
int api_db_take(struct api_req *r, int read_tx);
/* Ends r's read transaction and gives its connection back; r->st becomes NULL.
 * A no-op when r holds none. */
void api_db_give(struct api_req *r);

#endif
