/* cc_dbi.h - one statement API for SQLite and PostgreSQL: prepare, bind $N, step, read.
 *
 * The handle is the store (cc_store.h): cc_store_open opens SQLite for a file path and
 * PostgreSQL 15 (libpq) for a "postgresql://" or "postgres://" URL. A module writes its SQL
 * once with $1..$N placeholders in both dialects; where the two languages differ it picks
 * a text with cc_store_dialect (common/store/README.md lists what works in both).
 *
 *     struct cc_stmt *s = NULL;
 *     int rc = cc_stmt_prepare(st, sql_get, &s);        // sql_get: a string literal
 *     if (rc == CC_OK) rc = cc_stmt_bind_int64(s, 1, id);
 *     while (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW)
 *         total += cc_stmt_column_int64(s, 0);
 *     cc_stmt_release(s);                               // every path, NULL is fine
 *
 * Statements: cc_stmt_prepare lends one from the store's one statement cache, keyed by the
 * ADDRESS of the SQL text (pass string literals or other storage that lives as long as the
 * store, never a built string): prepared on first use (SQLite: prepare_v3 PERSISTENT; PG:
 * PQprepare "sN" once per connection), reused after. Past CC_STMT_CACHE_MAX distinct texts,
 * or when the cached statement for sql is still lent (a nested use), the statement is a
 * transient one: prepared now, freed by cc_stmt_release. Both still work, only slower.
 * A lent statement belongs to the caller until cc_stmt_release, which resets it and clears
 * its bindings: call it on every path, including with a row left unread.
 *
 * Parameters: $1..$N, N <= CC_STMT_PARAMS_MAX, bound by number in any order, one $N may
 * appear several times. Unbound parameters are NULL. Text and blob values are COPIED at
 * bind time: the caller's buffer may go right after the call.
 *
 * Results: cc_stmt_step returns CC_ROW while a row is ready, then CC_OK (done), or
 * CC_ERR_CONFLICT (a unique or primary-key violation: SQLite CONSTRAINT_UNIQUE/PRIMARYKEY,
 * PostgreSQL SQLSTATE 23505; not logged) or CC_ERR_DB (logged with the statement's first
 * words and the database's message, never a bound value). Column pointers stay valid
 * until the next step or the release. On PostgreSQL the whole result arrives on the first
 * step (one round trip) and columns are parsed from text: integers must be whole numbers
 * (booleans read as 1/0), doubles go through strtod, bytea is decoded by _blob.
 *
 * Binary results (PostgreSQL; opt-in per execution, cc_stmt_set_binary_results): the
 * server sends int8/int4/int2/float8/float4/bool in their binary form and neither side
 * formats or parses a number (the 30-day query reads ~1,700 rows of 9 such columns).
 * _int64 and _double decode them by the column's type after checking its length (a
 * wrong length reads as 0, logged db_column_type), integers and doubles converting as
 * in text format; text/varchar/bpchar read as in text format (the same NUL-terminated
 * bytes); bytea's raw bytes through _blob/_bytes. Any other type (numeric, timestamptz,
 * json, ...) is refused: every accessor but _is_null logs db_column_type and reads 0 or
 * NULL, and so does _text on a binary number column (SQLite would give its digits): opt
 * in only statements whose columns are all of the types above and read as numbers.
 *
 * Dialect differences a caller must know (see the README for SQL constructs):
 * - PostgreSQL aborts the whole transaction on a failed statement (a CC_ERR_CONFLICT too):
 *   every later statement fails until cc_store_rollback. Where SQLite code caught a
 *   conflict and went on, write ON CONFLICT ... DO NOTHING (both dialects) instead.
 * - PostgreSQL types parameters from their context; where the context says nothing
 *   (SELECT $1, $1 IS NULL), write a cast: CAST($1 AS bigint) works in both.
 *
 * Thread: like the store, one thread at a time. Codes as listed per function. */
#ifndef CC_DBI_H
#define CC_DBI_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define CC_STMT_CACHE_MAX 128 /* cached statements per store; more are transient */
#define CC_STMT_PARAMS_MAX 32 /* highest $N in one statement */
#define CC_STMT_SEND_MAX 16   /* statements sent ahead and not yet read (cc_stmt_send) */

struct cc_store;
struct cc_stmt;

enum cc_dialect {
    CC_DIALECT_SQLITE = 1,
    CC_DIALECT_PG = 2,
};

/* The SQL dialect behind st. Never fails. */
enum cc_dialect cc_store_dialect(const struct cc_store *st);
/* Runs sql, one or more statements with no parameter and no row wanted (DDL, SET, a
 * PRAGMA). Not cached: not for a hot path. CC_OK, CC_ERR_CONFLICT or CC_ERR_DB (logged). */
int cc_store_exec(struct cc_store *st, const char *sql);
/* Statements prepared on st since it was opened (cache misses and transients): a cached
 * statement reused is not counted. For tests and diagnostics. */
int64_t cc_store_stmt_prepares(const struct cc_store *st);

/* Lends the statement for sql (see the cache above). *out on success. CC_OK, CC_ERR_DB
 * (a syntax error, a $N above CC_STMT_PARAMS_MAX; logged) or CC_ERR_NOMEM. */
int cc_stmt_prepare(struct cc_store *st, const char *sql, struct cc_stmt **out);

/* Bind value v to $n. Each returns CC_OK, CC_ERR_DB when the statement has no $n (logged:
 * a bug in the caller), CC_ERR_NOMEM, or CC_ERR_TOO_LARGE (a blob or text over INT_MAX
 * bytes). Binding after the first step of an execution is a bug (release first). */
int cc_stmt_bind_int64(struct cc_stmt *s, int n, int64_t v);
/* Doubles round-trip exactly (PostgreSQL gets "%.17g"). */
int cc_stmt_bind_double(struct cc_stmt *s, int n, double v);
/* v is NUL-terminated UTF-8, copied; NULL binds SQL NULL. */
int cc_stmt_bind_text(struct cc_stmt *s, int n, const char *v);
int cc_stmt_bind_null(struct cc_stmt *s, int n);
/* Binds $1, $2, ... in order from the arguments, one per letter of types: 'i' an int64_t,
 * 'd' a double, 't' a const char * (NULL binds NULL), 'n' no argument, SQL NULL. Stops at
 * the first failure. CC_OK, CC_ERR_INTERNAL (an unknown letter, or more than
 * CC_STMT_PARAMS_MAX) or what the single binds return. */
int cc_stmt_bind_all(struct cc_stmt *s, const char *types, ...);
/* len bytes at p, copied (NUL bytes allowed); p may be NULL when len is 0 (an empty blob,
 * not NULL). PostgreSQL: sent as binary bytea, so $n must be a bytea in its context. */
int cc_stmt_bind_blob(struct cc_stmt *s, int n, const void *p, size_t len);

/* Asks the next execution of s (lent, not yet stepped) for binary results, as described
 * above; cleared by cc_stmt_release, so each use opts in again. A no-op on SQLite. CC_OK,
 * or CC_ERR_INTERNAL when s has already run (release first). */
int cc_stmt_set_binary_results(struct cc_stmt *s);

/* Sends the execution of s (lent, bound, not yet stepped) ahead, so that statements that
 * do not need each other's rows share one round trip on PostgreSQL (libpq's pipeline
 * mode): the first step of s waits for its result then (and for those sent before it,
 * which their statements keep until stepped), and reads them while the server works on
 * the next statements. Any other use of
 * the connection (stepping a statement not sent, a prepare, cc_store_exec, a transaction
 * call) first reads every result still on its way. At most CC_STMT_SEND_MAX pending: one
 * more first reads the pending ones' results. A failed statement makes the ones sent with
 * it after it fail too (CC_ERR_DB, logged), and, outside a transaction, undoes what those
 * sent with it before it wrote (they run as one implicit transaction). Release works as
 * for any statement (an unread result is read and dropped). Keep the parameters small
 * (the send must not outgrow the socket's buffer while the server waits on its own
 * writes: libpq reads while it waits to write). A no-op on SQLite (the first step runs
 * it). CC_OK, CC_ERR_INTERNAL (s already sent or run), CC_ERR_DB (logged). */
int cc_stmt_send(struct cc_stmt *s);
/* Times this store waited for PostgreSQL's answer since it was opened: one per statement
 * run on its own, per cc_store_exec and transaction call, per group of statements sent
 * ahead, per prepare (two); a read transaction's BEGIN goes with the statement after it
 * (cc_store_read_begin). 0 on SQLite. For tests and diagnostics. */
int64_t cc_store_round_trips(const struct cc_store *st);

/* Runs the statement or moves to its next row: CC_ROW, CC_OK, CC_ERR_CONFLICT, CC_ERR_DB.
 * After CC_OK further steps return CC_OK until the release; after an error, release (a
 * further step would run the statement again). */
int cc_stmt_step(struct cc_stmt *s);
/* Rows inserted, updated or deleted by the statement, valid once its step returned CC_OK
 * (0 for a query). */
int64_t cc_stmt_changes(const struct cc_stmt *s);

/* Asks s (lent, not yet stepped) to note the rowid of the row its INSERT adds, for
 * cc_stmt_inserted_id. Cleared by cc_stmt_release, so each use opts in again. A no-op on
 * PostgreSQL (use RETURNING there). CC_OK, or CC_ERR_INTERNAL when s has already run. */
int cc_stmt_track_insert(struct cc_stmt *s);
/* After cc_stmt_track_insert and a step that returned CC_OK: on SQLite the rowid of the
 * row the statement inserted, 0 if it inserted none (an upsert that updated, DO NOTHING);
 * on PostgreSQL always 0. Without the opt-in 0. */
int64_t cc_stmt_inserted_id(const struct cc_stmt *s);

/* v as SQLite's text of a REAL, the digits its json_object and printf('%!.15g') write
 * (-10.0, 0.333333333333333, 1.0e+20; -0.0 as 0.0), NUL-terminated in buf. For JSON that
 * must equal what SQLite would have built (either dialect may call it). CC_OK, or
 * CC_ERR_TOO_LARGE when cap is under CC_DBI_REAL_TEXT_MAX. */
#define CC_DBI_REAL_TEXT_MAX 32
int cc_dbi_real_text(double v, char *buf, size_t cap);

/* Columns of the current row (after CC_ROW), counted from 0. A NULL or missing column
 * reads as 0, 0.0 or NULL. */
int cc_stmt_column_is_null(struct cc_stmt *s, int col);
int64_t cc_stmt_column_int64(struct cc_stmt *s, int col);
double cc_stmt_column_double(struct cc_stmt *s, int col);
/* NUL-terminated, lent until the next step or the release; NULL for SQL NULL. */
const char *cc_stmt_column_text(struct cc_stmt *s, int col);
/* A blob's bytes, lent like _text, and its length (call _blob first, then _bytes). */
const void *cc_stmt_column_blob(struct cc_stmt *s, int col);
size_t cc_stmt_column_bytes(struct cc_stmt *s, int col);

/* Gives a lent statement back: reset, bindings cleared, transients freed. NULL: no-op. */
void cc_stmt_release(struct cc_stmt *s);

/* Row to JSON: each adds name to obj from column col of the current row; a NULL column
 * becomes JSON null. CC_OK or CC_ERR_NOMEM. */
int cc_dbi_json_int(cJSON *obj, const char *name, struct cc_stmt *s, int col);
int cc_dbi_json_num(cJSON *obj, const char *name, struct cc_stmt *s, int col);
int cc_dbi_json_text(cJSON *obj, const char *name, struct cc_stmt *s, int col);
int cc_dbi_json_bool(cJSON *obj, const char *name, struct cc_stmt *s, int col);
/* An epoch-ms column as an ISO-8601 UTC string ("2026-11-26T05:45:00.000Z"). */
int cc_dbi_json_time(cJSON *obj, const char *name, struct cc_stmt *s, int col);

/* One JSON value made from the current row of s (with the helpers above); NULL on out of
 * memory. */
typedef cJSON *(*cc_dbi_row_fn)(struct cc_stmt *s);
/* Steps s (bound, not yet stepped) to its end and gives every row, made by row, as a new
 * array in *items (the caller's). s stays lent: the caller releases it. CC_OK, CC_ERR_DB
 * or CC_ERR_CONFLICT (the step's), CC_ERR_NOMEM. */
int cc_dbi_collect(struct cc_stmt *s, cc_dbi_row_fn row, cJSON **items);

#endif
