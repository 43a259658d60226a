/* cc_store.h - the narrow storage interface of the ingestion path.
 *
 * The daemons never write SQL: they call these functions. A struct cc_store is one
 * connection, SQLite or PostgreSQL (cc_store_open), with its one statement cache
 * (cc_dbi.h, which the other common/ modules use to run their own SQL): one per thread
 * (or lent to one thread at a time, CC_STORE_POOLED).
 * Every function below works on both; the typed ingest functions are cc_store_sqlite.c's
 * and cc_store_pg.c's (where PostgreSQL takes one round trip per batch). The page cache,
 * memory accounting and WAL checkpointer are no-ops on PostgreSQL. No database header here:
 * SQLite's handles are lent by cc_store_sqlite.h, for the store's own SQLite code and tests.
 * Functions that write must be called between cc_store_begin and cc_store_commit
 * (or cc_store_rollback); they return CC_ERR_DB on a database failure, after which
 * the caller rolls back. */
#ifndef CC_STORE_H
#define CC_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "cc_dbi.h"
#include "cc_validate.h"

#define CC_SERIAL_MAX 64         /* bytes in a serial number */
#define CC_MAX_DEAD_PAYLOAD 4096 /* dead letters keep the first 4 KiB (SPEC §2) */
/* Dead letters kept per device (SPEC §2): a device flooding bad messages keeps its
 * newest 1,000, the older ones are dropped and counted (rejected_dropped). */
#define CC_REJECTED_PER_DEVICE_MAX 1000

struct cc_store;

struct cc_device {
    int64_t id;
    int64_t cold_cell_id;
    char serial[CC_SERIAL_MAX + 1];
    char status[12]; /* ONLINE, OFFLINE, NEVER_SEEN */
    int has_newest;
    int64_t newest_ts; /* newest stored reading ts, if has_newest */
    /* PostgreSQL: cc_store_tx_id of the transaction that holds this row FOR NO KEY UPDATE
     * since cc_store_devices_by_serial read it; 0 when none does (SQLite, or read outside
     * cc_store_begin). Lets the batch functions skip locking a row a second time. */
    uint64_t locked_tx;
};

/* cc_store_open's flags (the same values as cc_db_open's). */
enum cc_store_flags {
    CC_STORE_READONLY = 1 << 0, /* open read-only (a metrics scrape) */
    CC_STORE_MIGRATE = 1 << 1,  /* apply pending migrations after opening */
    CC_STORE_CREATE = 1 << 2,   /* create the database if missing */
    /* The store is lent from thread to thread (apid's pool): it keeps the statements the
     * query modules prepare on it (cc_sql.h) for itself, see cc_store_thread_enter. */
    CC_STORE_POOLED = 1 << 8,
};

/* Opens the store at path (CC_STORE_* flags): a SQLite file, or PostgreSQL when path is a
 * "postgresql://" or "postgres://" URL, passed to libpq's PQconnectdb as it is. On
 * PostgreSQL the database must exist (createdb, docs/postgresql.md): CC_STORE_CREATE has
 * no file to create and is ignored; CC_STORE_READONLY makes every transaction read-only;
 * CC_STORE_MIGRATE applies the missing schema/pg/ migrations, each in its own transaction
 * under an advisory lock (processes starting at once apply each file once), then
 * cc_store_maintain's partitions. *out on success; free with cc_store_close. CC_OK,
 * CC_ERR_DB, CC_ERR_IO or CC_ERR_NOMEM. */
int cc_store_open(const char *path, int flags, struct cc_store **out);
/* Frees every statement of st and closes its connection. NULL is a no-op. */
void cc_store_close(struct cc_store *st);

/* Process set-up, once in main before any thread starts: the allocator and the store's
 * memory accounting; heap_limit_mib > 0 bounds the memory all stores of the process cache
 * to about that many MiB, 0 turns the accounting off (see cc_db_tune_process). */
void cc_store_tune_process(int heap_limit_mib);
/* Bytes the stores of the process hold now and at most so far (0 and 0 unless
 * cc_store_tune_process was given a heap limit). */
void cc_store_memory(int64_t *used, int64_t *peak);
/* Caps this connection's page cache at kib KiB (a no-op on PostgreSQL). CC_OK, CC_ERR_CONFIG
 * (kib < 1) or CC_ERR_DB. */
int cc_store_set_cache_kib(struct cc_store *st, int kib);
/* This connection's page cache limit in KiB, read back from SQLite (PRAGMA cache_size, in
 * pages or KiB); 0 on PostgreSQL (the server's). CC_OK or CC_ERR_DB. */
int cc_store_cache_kib(struct cc_store *st, int *kib);
/* The schema version of the database behind st: SQLite's PRAGMA user_version,
 * PostgreSQL's max(version) of schema_migrations (0 before the first migration). CC_OK or
 * CC_ERR_DB (logged). */
int cc_store_schema_version(struct cc_store *st, int *out);
/* The newest schema version this program knows for st's dialect (its last migration:
 * schema/ and schema/pg/ are numbered apart). */
int cc_store_schema_latest(const struct cc_store *st);

/* Readings partitions kept ahead of time on PostgreSQL: the current UTC month and this
 * many after it (docs/postgresql.md "Partitioning and retention"). */
#define CC_PG_PARTITIONS_AHEAD 3
/* At most this often (by now_ms) the reference tables (users, links, locations, cells,
 * devices) are analyzed again on PostgreSQL, and only after rows of them changed. */
#define CC_PG_ANALYZE_EVERY_S 3600
/* Periodic upkeep of the database behind st, outside any transaction: on PostgreSQL it
 * creates the readings partitions of now_ms's month and CC_PG_PARTITIONS_AHEAD months
 * ahead (coldchain_ensure_partitions; idempotent, concurrent callers queue on a lock),
 * and ANALYZEs the reference tables when they changed and were not analyzed (by hand or
 * by autovacuum, whose threshold small tables never reach) for CC_PG_ANALYZE_EVERY_S;
 * a no-op on SQLite. cc_store_open runs it once after migrating; the daily job must run
 * it too, or the months after that land in readings_default (kept, but unpartitioned).
 * CC_OK or CC_ERR_DB (logged). */
int cc_store_maintain(struct cc_store *st, int64_t now_ms);

/* A CC_STORE_POOLED store's thread from now on: the calling thread takes st's statement
 * cache (cc_sql.h); it calls cc_store_thread_leave before it hands st to another thread.
 * No-ops for other stores. */
void cc_store_thread_enter(struct cc_store *st);
void cc_store_thread_leave(struct cc_store *st);
/* A read-only transaction: every query until cc_store_read_end sees one snapshot. Not for
 * code that writes before the end. On PostgreSQL the BEGIN goes out with the first
 * statement after it (one round trip less; the snapshot is that statement's either way).
 * CC_OK or CC_ERR_DB. */
int cc_store_read_begin(struct cc_store *st);
/* Ends it; a no-op when no transaction is open. */
void cc_store_read_end(struct cc_store *st);
/* Before lending a pooled store (apid): on PostgreSQL, finds out without a round trip
 * whether the server dropped the idle connection (a restart, a failover) and opens it again,
 * waiting at most CC_PG_CONNECT_TIMEOUT_S (cc_dbi_pg.c). CC_OK, or CC_ERR_DB while the
 * server cannot be reached (logged). CC_OK on SQLite. */
int cc_store_check(struct cc_store *st);
/* The same, but the connection is opened anew whatever its state (apid: a request run again
 * after a lost connection must not meet another connection of the same restart). Not
 * inside a transaction. CC_OK or CC_ERR_DB (logged); CC_OK on SQLite. */
int cc_store_reconnect(struct cc_store *st);
/* A request that failed may be run again (apid, dbpool.c): cc_store_retry_mark starts the
 * span; cc_store_retry_safe then answers 1 when, since the mark, st's connection was found
 * lost and nothing that went out may have committed anything: prepares, BEGIN, ROLLBACK,
 * statements inside a transaction never committed or a READ ONLY one, and plain SELECTs
 * on their own may; a COMMIT or any other statement on its own (autocommit) may not, nor
 * a query calling a function that writes outside a transaction (keep those inside
 * cc_store_begin). The store opens the connection again at its next use. 0 on SQLite. */
void cc_store_retry_mark(struct cc_store *st);
int cc_store_retry_safe(struct cc_store *st);
/* 1 when a transaction is open on st (whoever began it), else 0; 0 on a PostgreSQL
 * connection found lost (its transaction went with the session). */
int cc_store_in_transaction(struct cc_store *st);
/* The transaction cc_store_begin opened on st, while it is open: a number this store never
 * hands out again (1, 2, ...); 0 outside one (or in one begun otherwise). */
uint64_t cc_store_tx_id(struct cc_store *st);

/* What may have changed rows behind the back of a cache kept across transactions (the
 * ingest engine's, cc_ingest_cache.h): data_version is SQLite's PRAGMA data_version, which
 * moves whenever ANOTHER connection (of any process) commits; rollbacks counts this store's
 * transactions that ended without committing (cc_store_rollback, a failed commit), whose
 * changes a cache may have copied. Two stamps equal: nothing but this store's own committed
 * or still open writes happened between them. */
struct cc_store_stamp {
    int64_t data_version;
    uint64_t rollbacks;
};
/* st's stamp, inside cc_store_begin's transaction on SQLite (which holds the write lock, so
 * no other connection commits until it ends). CC_OK; CC_ERR_INTERNAL outside one or on
 * PostgreSQL (no such number: other sessions commit while a transaction runs); CC_ERR_DB. */
int cc_store_stamp(struct cc_store *st, struct cc_store_stamp *out);
/* A slot for one object of the engine that lives as long as st (the ingest cache): st
 * frees it with free_fn on close. Setting it again frees the one held. */
void cc_store_set_attachment(struct cc_store *st, void *obj, void (*free_fn)(void *));
void *cc_store_attachment(struct cc_store *st);

struct cc_walckpt;
/* Hands st's WAL checkpoints to the checkpointer thread ckpt (cc_walckpt.h), which must
 * outlive st. */
void cc_store_attach_checkpointer(struct cc_store *st, struct cc_walckpt *ckpt);

struct cc_gate;
/* Makes this store's transactions take turns with the other stores of the process that
 * share gate (cc_gate.h); set before the first transaction. NULL (the default): none. */
void cc_store_set_gate(struct cc_store *st, struct cc_gate *gate);
/* BEGIN IMMEDIATE on SQLite (the write lock now), BEGIN on PostgreSQL. CC_OK or CC_ERR_DB. */
int cc_store_begin(struct cc_store *st);
/* COMMIT, after writing the rollup terms cc_store_reading_insert summed in memory during
 * the transaction (cc_rollup_batch; SQLite only: PostgreSQL's readings insert writes its
 * rollups in the same statement); on failure the transaction is rolled back here.
 * On PostgreSQL a transaction that a failed statement aborted commits as CC_ERR_DB.
 * A transaction begun here must end here or in cc_store_rollback. */
int cc_store_commit(struct cc_store *st);
/* Makes every transaction committed so far on st survive a power cut, whatever the
 * store's commit setting: SQLite runs synchronous=NORMAL, whose commits reach the disk
 * only at the next WAL sync, so this fdatasyncs the WAL file; PostgreSQL commits
 * synchronously (synchronous_commit on), so there is nothing to do. ingestd calls it
 * before it deletes journal segments, the only other copy of those commits' messages.
 * Outside a transaction. CC_OK or CC_ERR_IO (logged). */
int cc_store_sync_committed(struct cc_store *st);
void cc_store_rollback(struct cc_store *st);

/* Looks a device up by serial. CC_OK, CC_ERR_NOT_FOUND or CC_ERR_DB. */
int cc_store_device_by_serial(struct cc_store *st, const char *serial, struct cc_device *out);
/* Inserts one reading. *inserted is 1, or 0 when (device_id, ts) already exists
 * (a redelivery: not an error). */
int cc_store_reading_insert(struct cc_store *st, const struct cc_device *dev,
                            const struct cc_reading *r, int64_t received_at, int *inserted);
/* Marks the device seen: last_seen_at = max(last_seen_at, seen_at), status ONLINE,
 * newest_ts = max(newest_ts, newest_ts_arg) when has_newest. */
int cc_store_device_seen(struct cc_store *st, int64_t device_id, int64_t seen_at, int has_newest,
                         int64_t newest_ts);
/* The batch forms of the three calls above, the shape of the ingest path: one call per
 * batch, so that a store with round trips (PostgreSQL) pays one per batch, not one per
 * reading. SQLite runs them as loops over its cached statements. */
/* Looks up serials[0..n) (repeats allowed): found[i] is 1 and out[i] the device, or 0.
 * The ingest path's lookup, so inside a write transaction: on PostgreSQL the devices found
 * stay locked (FOR NO KEY UPDATE, in id order) until it ends, so that two processes
 * ingesting for one device (ingestd members sharing a subscription, apid) take turns and
 * each reads newest_ts and the alert state as the other committed them; SQLite's
 * BEGIN IMMEDIATE already serialises them. */
int cc_store_devices_by_serial(struct cc_store *st, const char *const *serials, size_t n,
                               struct cc_device *out, unsigned char *found);
/* One reading to insert: for device dev, received at received_at. */
struct cc_store_row {
    const struct cc_device *dev;
    const struct cc_reading *r;
    int64_t received_at;
};
/* Inserts rows[0..n) in order; inserted[i] as cc_store_reading_insert's *inserted (a row
 * repeating an earlier one of the same call, or one already stored, is 0). */
int cc_store_readings_insert(struct cc_store *st, const struct cc_store_row *rows, size_t n,
                             unsigned char *inserted);
/* One device's cc_store_device_seen. */
struct cc_store_seen {
    int64_t device_id;
    int64_t seen_at;
    int has_newest;
    int64_t newest_ts;
    uint64_t locked_tx; /* the device's cc_device.locked_tx, or 0 */
};
int cc_store_devices_seen(struct cc_store *st, const struct cc_store_seen *v, size_t n);
/* Applies a status message: ONLINE/OFFLINE and firmware (NULL or "" keeps it). */
int cc_store_device_status(struct cc_store *st, int64_t device_id, int online, const char *firmware,
                           int64_t seen_at);
/* Stores a dead letter; the payload is cut to CC_MAX_DEAD_PAYLOAD bytes, and its
 * full size is kept. It counts under the device its topic (devices/{serial}/...) names,
 * or under one shared bucket when the topic names no known device; each bucket keeps its
 * newest CC_REJECTED_PER_DEVICE_MAX rows, the older ones are deleted in the same
 * transaction and added to the rejected_dropped counter (O(log n) per message). */
int cc_store_dead_letter(struct cc_store *st, int64_t received_at, const char *topic,
                         const void *payload, size_t len, const char *code, const char *message);
/* Dead letters dropped by the per-device cap since the database was created (the
 * coldchain_rejected_dropped_total metric). CC_OK or CC_ERR_DB. */
int cc_store_dead_letters_dropped(struct cc_store *st, int64_t *out);
/* ingestd's journal position, committed with the rows it produced: one per client id
 * (INGEST_CLIENT_ID), since every ingestd on a database keeps its own journal. get answers
 * 0, 0 (replay the whole journal) for a client id that has none yet. CC_OK or CC_ERR_DB. */
int cc_store_checkpoint_get(struct cc_store *st, const char *client_id, int64_t *gen,
                            int64_t *offset);
int cc_store_checkpoint_set(struct cc_store *st, const char *client_id, int64_t gen,
                            int64_t offset);

#endif
