/* fixture.h - the unit tests' one database: a store on a temporary SQLite database, migrated
 * and optionally seeded, removed with all its files when the test is done.
 *
 * In memory unless FIXTURE_FILE: then a file in a fresh directory under /tmp, for tests that
 * need a file (WAL, a second connection on fx->path, reopening). One thread; the caller owns
 * the struct (a static in the test file is fine: cmocka runs one test at a time). */
#ifndef FIXTURE_H
#define FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "cc_store.h"

#define FIXTURE_FILE 1u /* a file in a fresh temporary directory instead of ":memory:" */
/* With FIXTURE_FILE: the directory and path only, no store (st NULL, no seed), for a test
 * whose subject creates the database itself (the WAL checkpointer, cc_store_open's flags). */
#define FIXTURE_NO_STORE 2u
#define FIXTURE_DIR_MAX 32 /* bytes of dir: "/tmp/cc-test-XXXXXX" and its NUL fit */

struct fixture {
    char dir[FIXTURE_DIR_MAX];      /* the temporary directory; "" in memory */
    char path[FIXTURE_DIR_MAX + 8]; /* the database: dir/cc.db, or ":memory:" */
    struct cc_store *st;            /* open and migrated; fixture_close closes it */
};

/* Opens fx (flags: FIXTURE_*; store_flags: more CC_STORE_* flags for cc_store_open, besides
 * CREATE and MIGRATE), then runs seed_sql on it unless NULL. CC_OK; on error nothing is left
 * open or on disk and fx is zeroed. */
int fixture_open(struct fixture *fx, unsigned flags, int store_flags, const char *seed_sql);

/* Runs sql (any number of statements) on st's connection: CC_OK or CC_ERR_DB (printed). */
int fixture_exec(struct cc_store *st, const char *sql);

/* The first column of the first row sql answers, as an integer: CC_OK, CC_ERR_NOT_FOUND (no
 * row) or the statement's code (printed). */
int fixture_int(struct cc_store *st, const char *sql, int64_t *out);

/* Closes fx->st unless NULL (a test that closed it itself sets it NULL), then removes every
 * file in the temporary directory and the directory. A zeroed fixture is a no-op. */
void fixture_close(struct fixture *fx);

/* A throwaway PostgreSQL cluster for a test group (tools/pgtest.sh, run from the repository
 * root): started in /tmp/cc-test-<name>-<pid> with socket port port; dir and url receive its
 * directory and URL. 0, or -1 (printed; nothing left running). A test group that cannot
 * start one fails: it is not skipped. */
int fixture_pg_start(const char *name, const char *port, char *dir, size_t dirlen, char *url,
                     size_t urllen);
/* Stops the cluster in dir and removes it. 0 or -1. */
int fixture_pg_stop(const char *dir);
/* The bound on waiting for a state of PostgreSQL (a backend gone, a lock waited on), ms:
 * a state waited for, not a time slept, so it is generous (a loaded host may not run a
 * backend for seconds); only a state that never comes reaches it. */
#define FIXTURE_PG_WAIT_MS 60000
/* Ends backend pid from by's session and returns once it is gone (pg_terminate_backend's
 * timeout form, bounded by FIXTURE_PG_WAIT_MS): its locks are released and its client's
 * socket holds the FATAL message and the end of file. CC_OK, or CC_ERR_DB (printed) when
 * it could not be ended or was not gone in time. */
int fixture_pg_terminate(struct cc_store *by, int64_t pid);
#define FIXTURE_PG_SCHEMA "schema/pg/0001_init.sql" /* the schema a PG test loads itself */
#define FIXTURE_PG_SCHEMA_MAX (1 << 20)             /* bytes of it read, at most */
/* FIXTURE_PG_SCHEMA's text, malloc'd and NUL-terminated (the caller frees), or NULL (empty,
 * missing or larger than FIXTURE_PG_SCHEMA_MAX; printed). */
char *fixture_pg_schema(void);

#endif
