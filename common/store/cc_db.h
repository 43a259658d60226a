/* cc_db.h - SQLite connections and migrations.
 *
 * cc_db_open opens a connection with the pragmas every coldchain process uses:
 * journal_mode=WAL, synchronous=NORMAL, foreign_keys=ON, busy_timeout. One connection
 * per thread. Migrations are the schema/NNNN_*.sql files, embedded at build time
 * (tools/embed_sql.sh), applied in order, each in its own transaction that also sets
 * PRAGMA user_version. */
#ifndef CC_DB_H
#define CC_DB_H

#include <stdint.h>

#include <sqlite3.h>

#define CC_DB_BUSY_TIMEOUT_MS 5000 /* a lock held by another connection is waited for */
#define CC_DB_BUSY_POLL_MS 1       /* this often (cc_db.c busy_poll) */

enum cc_db_flags {
    CC_DB_READONLY = 1 << 0, /* open read-only (the broker plugin) */
    CC_DB_MIGRATE = 1 << 1,  /* apply pending migrations after opening */
    CC_DB_CREATE = 1 << 2,   /* create the file (and its directory) if missing */
};

struct cc_migration {
    int version;      /* NNNN of the file name */
    const char *name; /* file name without .sql */
    const char *sql;
};
extern const struct cc_migration cc_migrations[];
extern const int cc_migrations_count;
/* PostgreSQL's, schema/pg/NNNN_*.sql, applied by cc_store_pg_migrate (each file records
 * itself in schema_migrations), and the PG store's batch insert, schema/pg/ingest.sql
 * (cc_store_pg.c). Embedded by the same tool. */
extern const struct cc_migration cc_pg_migrations[];
extern const int cc_pg_migrations_count;
extern const char cc_pg_ingest_sql[];

/* Process set-up for a daemon that writes a lot, called once in main before any thread
 * starts. SQLite gives every multi-row write statement (INSERT ... SELECT, a trigger)
 * a statement journal whose first chunk is a 64 KiB malloc; glibc returns the heap top
 * to the kernel above 128 KiB free, so each such statement paid for fresh pages (page
 * faults, measured: 40 % of the alert engine's time, 142 -> 90 us per alert change).
 * Keeping up to 64 MiB of freed heap removes that. With heap_limit_mib 0 it turns SQLite's
 * allocation statistics off (a global mutex on every allocation); otherwise it keeps them
 * and bounds all of the process's SQLite memory to about that many MiB
 * (sqlite3_soft_heap_limit64, which needs them: past it SQLite recycles its least
 * recently used cache pages instead of allocating more). */
void cc_db_tune_process(int heap_limit_mib);
/* The memory SQLite holds now and the most it has held, in bytes (0 and 0 unless
 * cc_db_tune_process was given a heap limit). */
void cc_db_memory(int64_t *used, int64_t *peak);

/* Opens path (":memory:" allowed) with flags. On success *out is the connection (close
 * with cc_db_close). CC_OK, CC_ERR_DB or CC_ERR_IO; a message goes to the log. */
int cc_db_open(const char *path, int flags, sqlite3 **out);
void cc_db_close(sqlite3 *db);
/* Deletes a closed database file and its -wal, -shm and -journal files; missing ones are
 * fine (a fresh start for tools and tests). */
void cc_db_remove_files(const char *path);
/* Applies every migration newer than PRAGMA user_version. CC_OK or CC_ERR_DB
 * (the failing migration is rolled back and named in the log). */
int cc_db_migrate(sqlite3 *db);
/* PRAGMA user_version. */
int cc_db_user_version(sqlite3 *db, int *out);
/* The one integer a reading pragma (our constant text, e.g. "PRAGMA cache_size") answers.
 * CC_OK or CC_ERR_DB (logged). */
int cc_db_pragma_int(sqlite3 *db, const char *pragma, int *out);
/* Highest embedded migration version. */
int cc_db_latest_version(void);

/* Transaction helpers: BEGIN IMMEDIATE / COMMIT / ROLLBACK. CC_OK or CC_ERR_DB. */
int cc_db_begin(sqlite3 *db);
int cc_db_commit(sqlite3 *db);
void cc_db_rollback(sqlite3 *db);
/* Runs a statement with no parameters and no rows (pragmas, DDL). CC_OK or CC_ERR_DB. */
int cc_db_exec(sqlite3 *db, const char *sql);
/* Maps a SQLite result code to CC_*: CONSTRAINT_UNIQUE/PRIMARYKEY -> CC_ERR_CONFLICT,
 * others -> CC_ERR_DB. */
int cc_db_rc(int sqlite_rc, int extended_rc);

#endif
