/* cc_store_impl.h - the inside of struct cc_store and struct cc_stmt, for common/store/
 * only (cc_store.c, cc_store_sqlite.c, cc_dbi*.c). Nothing outside store/ includes it.
 *
 * One store is one connection (SQLite or PostgreSQL) with its one statement cache: an
 * open-addressing table from the address of a SQL text to its struct cc_stmt. Entries
 * are added, never removed, until cc_store_close. */
#ifndef CC_STORE_IMPL_H
#define CC_STORE_IMPL_H

#include <stdint.h>
#include <sqlite3.h>

#include "cc_dbi.h"
#include "cc_stats.h"
#include "cc_store.h"

/* Hash slots of the statement cache: a power of two, twice CC_STMT_CACHE_MAX so that a
 * probe ends after a step or two. */
#define CC_STMT_SLOTS 256
_Static_assert(CC_STMT_SLOTS >= 2 * CC_STMT_CACHE_MAX && (CC_STMT_SLOTS & (CC_STMT_SLOTS - 1)) == 0,
               "the cache's slots are a power of two with room to spare");
_Static_assert(CC_STMT_PARAMS_MAX < 256, "sqlite_index holds a parameter index in a byte");

struct pg_conn;         /* libpq's PGconn: only cc_dbi_pg.c includes libpq-fe.h */
struct cc_stmt_pg;      /* the PostgreSQL part of a statement, cc_dbi_pg.c */
struct cc_sql_cache;    /* cc_sql.h */
struct cc_gate;         /* cc_gate.h */
struct cc_rollup_batch; /* cc_store_rollup.h */

struct cc_stmt {
    struct cc_store *st;
    const char *sql;     /* the key: the address the caller passed */
    int cached;          /* 1: in st's cache, kept until close; 0: freed by cc_stmt_release */
    int lent;            /* between cc_stmt_prepare and cc_stmt_release */
    int done;            /* the last step returned CC_OK */
    int64_t changes;     /* rows changed, set when the statement finished */
    int track_insert;    /* cc_stmt_track_insert: SQLite notes the rowid its INSERT added */
    int64_t inserted_id; /* that rowid, 0 if none; set when the statement finished */
    /* SQLite */
    sqlite3_stmt *lite;
    unsigned char sqlite_index[CC_STMT_PARAMS_MAX + 1]; /* $N -> SQLite's index, 0: none */
    /* PostgreSQL */
    struct cc_stmt_pg *pg;
};

struct cc_store {
    enum cc_dialect dialect;
    sqlite3 *db;        /* SQLite: the connection */
    struct pg_conn *pg; /* PostgreSQL: the connection */
    int pg_readonly;    /* PostgreSQL: opened CC_STORE_READONLY (kept on reset) */
    int pg_all_checked; /* PostgreSQL: every reading inserted with ON CONFLICT (cc_store_pg.c) */
    struct cc_sql_cache *sql_cache; /* CC_STORE_POOLED (SQLite): cc_sql.h's statements */
    struct cc_gate *gate;           /* shared with the process's other writers, or NULL */
    int in_gate;                    /* this store's transaction holds the gate */
    /* The one statement cache (cc_dbi.h): stmts[0..n_stmts), slot[] holds index + 1. */
    struct cc_stmt *stmts[CC_STMT_CACHE_MAX];
    int n_stmts;
    int16_t slot[CC_STMT_SLOTS];
    int64_t prepares;  /* cc_store_stmt_prepares */
    unsigned pg_names; /* PostgreSQL statement names handed out: "s1", "s2", ... */
    /* PostgreSQL: statements sent ahead (cc_stmt_send) whose results are not read yet,
     * oldest first; the connection is in libpq's pipeline mode while any is, or while a
     * sync's answer is still to be read. */
    struct cc_stmt *pg_sent[CC_STMT_SEND_MAX];
    int pg_n_sent;
    int pg_unsynced;  /* statements sent since the last sync */
    int pg_syncs;     /* syncs sent whose answer (PGRES_PIPELINE_SYNC) is not read yet */
    int64_t pg_waits; /* cc_store_round_trips */
    int pg_begin_due; /* cc_store_read_begin's BEGIN, not sent yet (cc_dbi_pg_read_begin) */
    int pg_read_open; /* between cc_store_read_begin and its end: READ ONLY, nothing run writes */
    /* Since cc_store_retry_mark: the connection was found lost (pg_lost), and a round trip
     * went out that may have committed something (pg_wrote; cc_store_retry_safe). */
    int pg_lost;
    int pg_wrote;
    /* Inside cc_store_begin .. commit: rollup terms summed here, written at commit. */
    int in_tx;
    uint64_t tx_seq; /* transactions cc_store_begin opened: the current one's cc_store_tx_id */
    struct cc_rollup_batch *rollups; /* allocated on the first reading of a transaction */
    /* cc_stats_count's counts of the open transaction, written by cc_store_commit. */
    int64_t stat_counts[CC_STATS_SLOTS];
    uint64_t rollbacks; /* cc_store_stamp */
    uint64_t stamp_tx;  /* the transaction stamp_data_version was read in */
    int64_t stamp_data_version;
    void *attachment; /* cc_store_set_attachment */
    void (*attachment_free)(void *);
};

/* cc_stats.c: writes the counts of the open transaction to stat_counters (one UPDATE
 * per total touched) and zeroes them; cc_store_commit calls it before COMMIT. CC_OK or
 * CC_ERR_DB (a missing counter row too: the totals must stay exact). */
int cc_stats_flush(struct cc_store *st);
/* Drops them: a transaction begun, rolled back or failed to commit. */
void cc_stats_drop(struct cc_store *st);

/* The first words of sql for a log line (never a value: they are bound, not in the text). */
void cc_dbi_sql_head(const char *sql, char *buf, size_t cap);
#define CC_DBI_HEAD_LEN 64 /* bytes of a statement's text in a log line */

/* Frees every cached statement of st (cc_store_close, before the connection goes). */
void cc_dbi_cache_free(struct cc_store *st);

/* The SQLite backend (cc_dbi_sqlite.c). prepare fills s->lite and s->sqlite_index. */
int cc_dbi_lite_exec(struct cc_store *st, const char *sql);
int cc_dbi_lite_prepare(struct cc_store *st, struct cc_stmt *s);
void cc_dbi_lite_free(struct cc_stmt *s);
int cc_dbi_lite_bind_int64(struct cc_stmt *s, int n, int64_t v);
int cc_dbi_lite_bind_double(struct cc_stmt *s, int n, double v);
int cc_dbi_lite_bind_text(struct cc_stmt *s, int n, const char *v, size_t len);
int cc_dbi_lite_bind_null(struct cc_stmt *s, int n);
int cc_dbi_lite_bind_blob(struct cc_stmt *s, int n, const void *p, size_t len);
int cc_dbi_lite_step(struct cc_stmt *s);
int cc_dbi_lite_real_text(double v, char *buf, size_t cap);
int cc_dbi_lite_is_null(struct cc_stmt *s, int col);
int64_t cc_dbi_lite_int64(struct cc_stmt *s, int col);
double cc_dbi_lite_double(struct cc_stmt *s, int col);
const char *cc_dbi_lite_text(struct cc_stmt *s, int col);
const void *cc_dbi_lite_blob(struct cc_stmt *s, int col);
size_t cc_dbi_lite_bytes(struct cc_stmt *s, int col);
void cc_dbi_lite_reset(struct cc_stmt *s);

/* The PostgreSQL backend (cc_dbi_pg.c). */
int cc_dbi_pg_open(const char *url, int flags, struct pg_conn **out);
void cc_dbi_pg_close(struct pg_conn *conn);
/* A connection PostgreSQL dropped (a server restart, a terminated backend) is opened again
 * with PQreset (bounded by CC_PG_CONNECT_TIMEOUT_S): 1 when it was lost and is back (its
 * prepared statements are gone; the statements still waiting for a result fail, never
 * read as done), 0 when it was fine, -1 when it is still lost (logged), or when it was lost
 * inside a transaction (cc_store_begin or read_begin): that transaction went with the old
 * session, and its statements must fail until its owner ends it, never go on in
 * autocommit on a new session. Outside a transaction, an idle connection is also checked
 * without a round trip (socket readable while nothing was asked: the FATAL of a
 * terminated backend and its end of file), so a restart costs no failed statement. */
int cc_dbi_pg_revive(struct cc_store *st, int force);
/* 1 when st's connection is lost: libpq knows it (CONNECTION_BAD), or finds it now in what
 * the server sent last (a terminated backend's end of file; may wait CC_PG_DROP_EOF_MS). */
int cc_dbi_pg_lost(struct cc_store *st);
/* Before a statement or a transaction on PostgreSQL: revives a lost connection (force: any
 * connection, lost or not) and then forgets the cached statements (re-prepared on their
 * next use). Not while a statement is lent. CC_OK, or CC_ERR_DB while the server is still
 * away. A no-op on SQLite. cc_dbi_ready is cc_dbi_reopen(st, 0). */
int cc_dbi_reopen(struct cc_store *st, int force);
int cc_dbi_ready(struct cc_store *st);
int cc_dbi_pg_exec(struct cc_store *st, const char *sql);
/* COMMIT; CC_ERR_DB when the server rolled back instead (an aborted transaction). */
int cc_dbi_pg_commit(struct cc_store *st);
/* cc_store_read_begin: its BEGIN (REPEATABLE READ, READ ONLY) is not sent now but in the
 * same round trip as the first statement after it (one wait less per read transaction;
 * the snapshot is the first statement's either way). Until then the store counts as in a
 * transaction; a COMMIT with nothing run in between costs nothing. CC_OK. */
int cc_dbi_pg_read_begin(struct cc_store *st);
int cc_dbi_pg_in_transaction(struct cc_store *st);
int cc_dbi_pg_prepare(struct cc_store *st, struct cc_stmt *s);
void cc_dbi_pg_free(struct cc_stmt *s);
int cc_dbi_pg_bind(struct cc_stmt *s, int n, const void *v, size_t len, int binary);
int cc_dbi_pg_bind_null(struct cc_stmt *s, int n);
int cc_dbi_pg_step(struct cc_stmt *s);
/* cc_stmt_send on PostgreSQL. */
int cc_dbi_pg_send(struct cc_stmt *s);
int cc_dbi_pg_is_null(struct cc_stmt *s, int col);
/* NULL too for a binary column that is not a text type (logged db_column_type). */
const char *cc_dbi_pg_text(struct cc_stmt *s, int col);
/* Asks binary results of the statement's next execution (cc_stmt_set_binary_results);
 * CC_ERR_INTERNAL once it has run. */
int cc_dbi_pg_set_binary(struct cc_stmt *s);
/* How the number accessors read col of the current row. */
enum cc_dbi_pg_num {
    CC_DBI_PG_TEXT = 0, /* a text-format (or text-type) value: parse cc_dbi_pg_text */
    CC_DBI_PG_NONE,     /* no value: NULL, no row, or a binary type or length refused (logged) */
    CC_DBI_PG_INT,      /* *i holds it (int8, int4, int2; bool as 1/0) */
    CC_DBI_PG_DOUBLE,   /* *d holds it (float8, float4) */
};
/* For tests only: replaces the current row's value at col with len bytes at v (libpq's
 * PQsetvalue), to feed the decoders what no server sends (a wrong length). CC_OK,
 * CC_ERR_INTERNAL (no current row) or CC_ERR_NOMEM. */
int cc_dbi_pg_test_set_value(struct cc_stmt *s, int col, const void *v, int len);
enum cc_dbi_pg_num cc_dbi_pg_binary_number(struct cc_stmt *s, int col, int64_t *i, double *d);
int cc_dbi_pg_is_bool(struct cc_stmt *s, int col);
const void *cc_dbi_pg_blob(struct cc_stmt *s, int col, size_t *len);
size_t cc_dbi_pg_bytes(struct cc_stmt *s, int col);
void cc_dbi_pg_reset(struct cc_stmt *s);

/* The PostgreSQL store: its schema (cc_store_pg_migrate.c) and the typed functions of
 * cc_store.h (cc_store_pg.c), which the public ones hand over to on a PG store. Codes as
 * the public function's. */
int cc_store_pg_migrate(struct cc_store *st);
int cc_store_pg_schema_version(struct cc_store *st, int *out);
int cc_store_pg_schema_latest(void);
int cc_store_pg_partitions(struct cc_store *st, int64_t now_ms);
int cc_store_pg_analyze_reference(struct cc_store *st, int64_t now_ms);
/* lock 1: the rows found stay locked FOR NO KEY UPDATE until the transaction ends (the
 * ingest path's batch lookup, cc_store.h); 0: a plain read (status messages, the feed). */
int cc_store_pg_devices_by_serial(struct cc_store *st, const char *const *serials, size_t n,
                                  struct cc_device *out, unsigned char *found, int lock);
int cc_store_pg_readings_insert(struct cc_store *st, const struct cc_store_row *rows, size_t n,
                                unsigned char *inserted);
/* The rollups of rows[idx[0..n)], the rows the batch insert stored (cc_store_pg_rollup.c):
 * summed per cell and bucket and upserted into readings_5m and readings_30m. Sorts idx.
 * CC_OK, CC_ERR_NOMEM or CC_ERR_DB. */
int cc_store_pg_rollups_add(struct cc_store *st, const struct cc_store_row *rows, size_t *idx,
                            size_t n);
int cc_store_pg_devices_seen(struct cc_store *st, const struct cc_store_seen *v, size_t n);
int cc_store_pg_device_status(struct cc_store *st, int64_t device_id, int online,
                              const char *firmware, int64_t seen_at);
int cc_store_pg_dead_letter(struct cc_store *st, int64_t received_at, const char *topic,
                            const void *payload, size_t len, const char *code, const char *message);
int cc_store_pg_dead_letters_dropped(struct cc_store *st, int64_t *out);

#endif
