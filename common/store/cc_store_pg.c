/* cc_store_pg.c - the typed functions of the ingestion store on PostgreSQL 15, see
 * cc_store.h (cc_store_sqlite.c hands a PG store over to these; the schema and its
 * migrations: cc_store_pg_migrate.c).
 *
 * The batch functions are one statement, one round trip each: the devices of a run by
 * serial (= ANY of an array), its devices seen (UPDATE ... FROM unnest); its readings
 * take two: the insert (schema/pg/ingest.sql, embedded as cc_pg_ingest_sql, or on the
 * ingest path sql_insert_held), sent sorted and without in-batch duplicates, which
 * returns the keys it stored, then the rollups of those rows summed here
 * (cc_store_pg_rollup.c: a PG store never fills cc_store_rollup's batch, which is
 * SQLite's). The readings the device lock proves new take a third, sql_insert_new, before
 * the checked insert (usually instead of it).
 * Arrays travel in PostgreSQL's binary format (cc_pg_array.h): no text for the server to
 * parse, no quoting, doubles bit for bit. The SQL texts are portable $N statements through
 * cc_dbi.h, cached per store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_db.h"
#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_pg_array.h"
#include "cc_rc.h"
#include "cc_rollup_math.h"
#include "cc_store.h"
#include "cc_store_impl.h"

/* Readings per batch insert statement: cc_ingest's runs stay near
 * CC_INGEST_RUN_READINGS_MAX, so this is one statement per run; a larger call is sent in
 * several, in order (a repeat of an earlier chunk's reading is then a stored row). */
#define CC_PG_INSERT_ROWS_MAX 8192
_Static_assert(CC_PG_INSERT_ROWS_MAX <= CC_PG_ARRAY_ELEMS_MAX, "a chunk's arrays fit cc_pg_array");

static const char sql_devices[] =
    "SELECT id, cold_cell_id, serial_number, status, newest_ts FROM devices"
    " WHERE serial_number = ANY (CAST($1 AS text[]))";
/* sql_devices for the ingest path: the rows locked until the transaction ends, in id order
 * (sql_seen's lock, taken first), so that another writer of the same device (a second
 * ingestd sharing the subscription, apid's HTTP ingestion) waits for this one's commit and
 * then reads the newest_ts it wrote. READ COMMITTED hands the waiter the row as committed,
 * and the alert state is loaded by a later statement, whose snapshot sees that commit's
 * alerts: the state a run judges a reading against is never older than its newest_ts. */
static const char sql_devices_lock[] =
    "SELECT id, cold_cell_id, serial_number, status, newest_ts FROM devices"
    " WHERE serial_number = ANY (CAST($1 AS text[])) ORDER BY id FOR NO KEY UPDATE";
/* One row per device (the same device twice in v: its largest times); each updated
 * row locked first, in id order, so two writers sharing devices queue instead of
 * deadlocking (the insert locks them FOR NO KEY UPDATE in the same order, so after it this
 * step finds them locked by us and writes nothing). greatest()
 * ignores NULLs: a first sighting takes the new value. */
#define SQL_SEEN_V                                                                                 \
    "WITH v AS (SELECT id, max(seen) AS seen,"                                                     \
    " max(CASE WHEN has_newest <> 0 THEN newest END) AS newest"                                    \
    " FROM unnest(CAST($1 AS bigint[]), CAST($2 AS bigint[]), CAST($3 AS integer[]),"              \
    " CAST($4 AS bigint[])) AS u (id, seen, has_newest, newest) GROUP BY id)"
#define SQL_SEEN_SET                                                                               \
    " UPDATE devices d SET status = 'ONLINE', last_seen_at = greatest(d.last_seen_at, v.seen),"    \
    " newest_ts = greatest(d.newest_ts, v.newest)"
static const char sql_seen[] =
    SQL_SEEN_V ", locked AS MATERIALIZED (SELECT d.id FROM devices d"
               " WHERE d.id IN (SELECT id FROM v) ORDER BY d.id FOR NO KEY UPDATE)" SQL_SEEN_SET
               " FROM v JOIN locked l ON l.id = v.id WHERE d.id = v.id";
/* sql_seen when this transaction already holds every row (cc_store_devices_by_serial locked
 * them, in id order): the lock step would find each one locked by us and only cost its
 * scan, sort and join, about a third of the statement (docs/postgresql.md, "Cost"). */
static const char sql_seen_held[] = SQL_SEEN_V SQL_SEEN_SET " FROM v WHERE d.id = v.id";
/* An offline status leaves last_seen_at: $4 is NULL then. */
static const char sql_status[] =
    "UPDATE devices SET status = $2, firmware_version = coalesce(CAST($3 AS text),"
    " firmware_version), last_seen_at = greatest(last_seen_at, CAST($4 AS bigint))"
    " WHERE id = $1";
/* cc_store_sqlite.c's statement; casts because a SELECT list gives $N no type. */
static const char sql_dead_letter[] =
    "INSERT INTO rejected_messages (received_at, topic, payload, payload_size, error_code,"
    " error_message, device_id, seq)"
    " SELECT CAST($1 AS bigint), CAST($2 AS text), CAST($3 AS bytea), CAST($4 AS bigint),"
    " CAST($5 AS text), CAST($6 AS text), d.id, 1 + coalesce((SELECT max(seq)"
    " FROM rejected_messages WHERE device_id = d.id), 0)"
    " FROM (SELECT coalesce((SELECT id FROM devices WHERE serial_number = CAST($7 AS text)),"
    " 0) AS id) d"
    " RETURNING device_id, seq";
static const char sql_dead_letter_cap[] =
    "DELETE FROM rejected_messages WHERE device_id = $1 AND seq <= $2";
static const char sql_dead_letter_count[] =
    "UPDATE stat_counters SET value = value + $1 WHERE name = 'rejected_dropped' AND label = ''";
static const char sql_dropped[] =
    "SELECT value FROM stat_counters WHERE name = 'rejected_dropped' AND label = ''";

/* Maps a step's code to the typed functions' (a conflict has no meaning here). */
static int db_rc(int rc)
{
    return rc == CC_OK || rc == CC_ROW || rc == CC_ERR_NOMEM || rc == CC_ERR_NOT_FOUND ? rc
                                                                                       : CC_ERR_DB;
}

static int serial_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cc_device *)a)->serial, ((const struct cc_device *)b)->serial);
}

/* Copies at most cap - 1 bytes of s and a NUL (s NULL: ""). */
static void copy_text(char *dst, size_t cap, const char *s)
{
    size_t n = s != NULL ? strnlen(s, cap - 1) : 0;

    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

int cc_store_pg_devices_by_serial(struct cc_store *st, const char *const *serials, size_t n,
                                  struct cc_device *out, unsigned char *found, int lock)
{
    struct cc_stmt *s = NULL;
    struct cc_device *rows = NULL;
    struct cc_pg_array a = {0};
    size_t nrows = 0;
    int rc;

    memset(found, 0, n);
    if (n == 0)
        return CC_OK;
    rows = malloc(n * sizeof *rows);
    rc = rows != NULL ? cc_pg_array_init(&a, CC_PG_TEXT, n) : CC_ERR_NOMEM;
    /* "" stands in for a serial no device can have (too long for CC_SERIAL_MAX or not
     * UTF-8: the devices API's rule) and that the array would refuse. */
    for (size_t i = 0; rc == CC_OK && i < n; i++)
        rc = cc_pg_array_text(
            &a, strlen(serials[i]) <= CC_SERIAL_MAX && cc_utf8_valid(serials[i]) ? serials[i] : "");
    if (rc == CC_OK)
        rc = cc_stmt_prepare(st, lock ? sql_devices_lock : sql_devices, &s);
    if (rc == CC_OK)
        rc = cc_pg_array_bind(s, 1, &a);
    /* serial_number is UNIQUE: at most one row per distinct serial, so at most n. */
    while (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        struct cc_device *d = &rows[nrows];

        rc = CC_OK; /* a row read: step on */
        if (nrows++ == n) {
            cc_log_error("db_error", "devices by serial: more rows than serials");
            rc = CC_ERR_DB;
            break;
        }
        memset(d, 0, sizeof *d);
        d->id = cc_stmt_column_int64(s, 0);
        d->cold_cell_id = cc_stmt_column_int64(s, 1);
        copy_text(d->serial, sizeof d->serial, cc_stmt_column_text(s, 2));
        copy_text(d->status, sizeof d->status, cc_stmt_column_text(s, 3));
        d->locked_tx = lock ? cc_store_tx_id(st) : 0; /* outside a transaction: let go already */
        if (!cc_stmt_column_is_null(s, 4)) {
            d->has_newest = 1;
            d->newest_ts = cc_stmt_column_int64(s, 4);
        }
    }
    if (rc != CC_OK)
        goto out;
    qsort(rows, nrows, sizeof *rows, serial_cmp);
    for (size_t i = 0; i < n; i++) {
        struct cc_device key;
        const struct cc_device *d;

        if (strlen(serials[i]) > CC_SERIAL_MAX || !cc_utf8_valid(serials[i]))
            continue; /* no stored serial is longer or not UTF-8 (the devices API's rule) */
        copy_text(key.serial, sizeof key.serial, serials[i]);
        d = bsearch(&key, rows, nrows, sizeof *rows, serial_cmp);
        if (d != NULL) {
            out[i] = *d;
            found[i] = 1;
        }
    }
out:
    cc_stmt_release(s);
    cc_pg_array_free(&a);
    free(rows);
    if (rc != CC_OK)
        memset(found, 0, n);
    return db_rc(rc);
}

/* The 9 arrays of schema/pg/ingest.sql, in its parameter order. */
enum { A_DEVICE, A_CELL, A_TS, A_TEMP, A_HUM, A_POWER, A_DOOR, A_BATT, A_RECV, A_N };

/* The element types of those arrays. */
static const enum cc_pg_elem a_types[A_N] = {CC_PG_INT8,   CC_PG_INT8,   CC_PG_INT8,
                                             CC_PG_FLOAT8, CC_PG_FLOAT8, CC_PG_INT4,
                                             CC_PG_INT4,   CC_PG_FLOAT8, CC_PG_INT8};

/* Appends an optional double (NULL when !has). */
static int opt_double(struct cc_pg_array *a, int has, double v)
{
    return has ? cc_pg_array_double(a, v) : cc_pg_array_null(a);
}

/* Appends a 0/1 flag of enum cc_tristate, NULL when absent. */
static int tristate(struct cc_pg_array *a, int v)
{
    return v == CC_ABSENT ? cc_pg_array_null(a) : cc_pg_array_int(a, v == CC_TRUE ? 1 : 0);
}

/* The insert of the readings of devices this transaction holds (cc_store_devices_by_serial
 * locked them, in id order, on the ingest path): ingest.sql's lock step would find each
 * row locked by us and only cost a scan of devices, a hash join, a sort and a lock check
 * per device (about a tenth of the statement under auto_explain). The held locks keep
 * the devices from being deleted, so every row has its device. Rows are inserted in array
 * order (key order, the first of a key's duplicates first). */
#define SQL_INSERT_HELD                                                                            \
    "INSERT INTO readings (device_id, cold_cell_id, ts, temperature, humidity, power_status,"      \
    " door_status, battery_level, received_at)"                                                    \
    " SELECT * FROM unnest(CAST($1 AS bigint[]), CAST($2 AS bigint[]), CAST($3 AS bigint[]),"      \
    " CAST($4 AS double precision[]), CAST($5 AS double precision[]), CAST($6 AS integer[]),"      \
    " CAST($7 AS integer[]), CAST($8 AS double precision[]), CAST($9 AS bigint[]))"
/* For readings that may be stored already (redelivery, journal replay, a late reading). */
static const char sql_insert_held[] =
    SQL_INSERT_HELD " ON CONFLICT (device_id, ts) DO NOTHING RETURNING device_id, ts";
/* For readings newer than their device's newest_ts, read under the device's lock: every
 * reading the ingest path stored is at most its device's newest_ts (cc_store_devices_seen
 * writes the greatest one in the same transaction), and every writer of readings holds the
 * device's lock, so none of these is stored. Without ON CONFLICT the server skips, per
 * reading, the pre-check's descent of the primary key, the speculative insertion's token
 * lock and its confirmation record (docs/postgresql.md, "Fourth pass"). A reading stored
 * behind the store's back (SQL by hand) would fail the statement on the primary key:
 * nothing is stored twice, and the store falls back to sql_insert_held (pg_all_checked).
 * No RETURNING: the statement stores every row or fails, so its row count says it all and
 * the server formats, and the client parses, no key. */
static const char sql_insert_new[] = SQL_INSERT_HELD;

/* qsort's and bsearch's context: the chunk's rows (one thread per store). */
static _Thread_local const struct cc_store_row *key_rows;

/* Positions by (device_id, ts), then position: the first of a key's duplicates first. */
static int by_key(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    const struct cc_store_row *x = &key_rows[a], *y = &key_rows[b];

    if (x->dev->id != y->dev->id)
        return x->dev->id < y->dev->id ? -1 : 1;
    if (x->r->ts_ms != y->r->ts_ms)
        return x->r->ts_ms < y->r->ts_ms ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* A returned key against the sent positions (sorted by by_key, one per key). */
struct key {
    int64_t device_id, ts;
};
static int key_find(const void *pk, const void *pe)
{
    const struct key *k = pk;
    const struct cc_store_row *e = &key_rows[*(const size_t *)pe];

    if (k->device_id != e->dev->id)
        return k->device_id < e->dev->id ? -1 : 1;
    return k->ts < e->r->ts_ms ? -1 : k->ts > e->r->ts_ms;
}

/* One chunk's insert and the keys it stored. */
struct chunk {
    const struct cc_store_row *rows;
    size_t n;                /* rows */
    const size_t *sent;      /* positions sent, by key, one per key: the bsearch table */
    size_t m;                /* of sent */
    unsigned char *inserted; /* per row */
    size_t *stored;          /* positions stored, nstored of them */
    size_t nstored;
};

/* Sends the rows at positions pos[0..k) (in key order) with sql, one of the inserts above
 * or ingest.sql, and marks the keys it returns stored in c (sql_insert_new returns none:
 * all k are then stored, or the statement failed). */
static int send_rows(struct cc_store *st, const char *sql, struct chunk *c, const size_t *pos,
                     size_t k)
{
    struct cc_pg_array a[A_N] = {{0}};
    struct cc_stmt *s = NULL;
    int rc = CC_OK;

    if (k == 0)
        return CC_OK;
    for (int j = 0; rc == CC_OK && j < A_N; j++)
        rc = cc_pg_array_init(&a[j], a_types[j], k);
    for (size_t i = 0; rc == CC_OK && i < k; i++) {
        const struct cc_store_row *row = &c->rows[pos[i]];
        const struct cc_reading *r = row->r;

        /* Each call fails once the array has failed, so one check per row suffices. */
        cc_pg_array_int(&a[A_DEVICE], row->dev->id);
        cc_pg_array_int(&a[A_CELL], row->dev->cold_cell_id);
        cc_pg_array_int(&a[A_TS], r->ts_ms);
        cc_pg_array_double(&a[A_TEMP], r->temperature);
        opt_double(&a[A_HUM], r->has_humidity, r->humidity);
        tristate(&a[A_POWER], r->power_status);
        tristate(&a[A_DOOR], r->door_status);
        opt_double(&a[A_BATT], r->has_battery, r->battery_level);
        rc = cc_pg_array_int(&a[A_RECV], row->received_at);
    }
    if (rc == CC_OK)
        rc = cc_stmt_prepare(st, sql, &s);
    for (int j = 0; rc == CC_OK && j < A_N; j++)
        rc = cc_pg_array_bind(s, j + 1, &a[j]);
    /* Rows returned: the keys of the readings stored, each one of those sent. */
    key_rows = c->rows;
    while (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        struct key kk = {cc_stmt_column_int64(s, 0), cc_stmt_column_int64(s, 1)};
        const size_t *e = bsearch(&kk, c->sent, c->m, sizeof *c->sent, key_find);

        rc = CC_OK; /* a row read: step on */
        if (e == NULL || c->inserted[*e] || c->nstored == c->n) {
            cc_log_error("db_error", "batch insert returned a key it was not sent (%lld, %lld)",
                         (long long)kk.device_id, (long long)kk.ts);
            rc = CC_ERR_DB;
            break;
        }
        c->inserted[*e] = 1;
        c->stored[c->nstored++] = *e;
    }
    if (rc == CC_OK && sql == sql_insert_new) {
        if (cc_stmt_changes(s) != (int64_t)k || c->nstored + k > c->n) {
            cc_log_error("db_error", "batch insert stored %lld of %zu readings",
                         (long long)cc_stmt_changes(s), k);
            rc = CC_ERR_DB;
        }
        for (size_t i = 0; rc == CC_OK && i < k; i++) {
            c->inserted[pos[i]] = 1;
            c->stored[c->nstored++] = pos[i];
        }
    }
    cc_stmt_release(s);
    for (int j = 0; j < A_N; j++)
        cc_pg_array_free(&a[j]);
    return rc;
}

/* Whether row may go without ON CONFLICT (sql_insert_new): its device held by transaction
 * tx since it was read, and the reading newer than the newest the device had then. */
static int surely_new(const struct cc_store_row *row, uint64_t tx)
{
    return tx != 0 && row->dev->locked_tx == tx && row->dev->has_newest &&
           row->r->ts_ms > row->dev->newest_ts;
}

/* One chunk rows[0..n), n <= CC_PG_INSERT_ROWS_MAX, then its rollups. The batch is sorted
 * by key and its duplicates left out here (the first occurrence kept), so that the server
 * neither sorts nor deduplicates it; the readings surely new (first chunk only: a later
 * one may repeat an earlier one's) go in one statement without ON CONFLICT, the others in
 * one with it; the keys the inserts return are found back in that order, and the rows they
 * name are summed into the rollups (cc_store_pg_rollup.c). */
static int insert_chunk(struct cc_store *st, const struct cc_store_row *rows, size_t n,
                        unsigned char *inserted, int first)
{
    struct chunk c = {rows, n, NULL, 0, inserted, NULL, 0};
    size_t *sent = NULL, *fresh = NULL, *other = NULL;
    size_t m = 0, nfresh = 0, nother = 0;
    uint64_t tx = cc_store_tx_id(st);
    int held = tx != 0, plain = first && !st->pg_all_checked, rc = CC_OK;

    memset(inserted, 0, n);
    if (n == 0)
        return CC_OK;
    sent = malloc(n * sizeof *sent);
    fresh = malloc(n * sizeof *fresh);
    other = malloc(n * sizeof *other);
    c.stored = malloc(n * sizeof *c.stored);
    if (sent == NULL || fresh == NULL || other == NULL || c.stored == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        sent[i] = i;
    key_rows = rows;
    qsort(sent, n, sizeof *sent, by_key);
    for (size_t i = 0; i < n; i++) { /* keep the first of each key */
        const struct cc_store_row *r = &rows[sent[i]];

        if (m > 0 && rows[sent[m - 1]].dev->id == r->dev->id &&
            rows[sent[m - 1]].r->ts_ms == r->r->ts_ms)
            continue;
        sent[m++] = sent[i];
    }
    c.sent = sent;
    c.m = m;
    for (size_t i = 0; i < m; i++) {
        const struct cc_store_row *row = &rows[sent[i]];

        held = held && row->dev->locked_tx == tx;
        if (plain && surely_new(row, tx))
            fresh[nfresh++] = sent[i];
        else
            other[nother++] = sent[i];
    }
    rc = send_rows(st, sql_insert_new, &c, fresh, nfresh);
    if (rc == CC_ERR_CONFLICT) {
        /* A reading newer than its device's newest_ts was stored by something other than
         * this ingest path: the transaction is lost, the caller retries it, and this
         * store checks every reading from now on. */
        cc_log_warn("pg_insert_conflict", "a reading newer than its device's newest_ts is"
                                          " stored already; every insert checks from now on");
        st->pg_all_checked = 1;
        rc = CC_ERR_DB;
    }
    if (rc == CC_OK)
        rc = send_rows(st, held ? sql_insert_held : cc_pg_ingest_sql, &c, other, nother);
    /* Only the rows stored feed the rollups, in the same transaction. */
    if (rc == CC_OK)
        rc = cc_store_pg_rollups_add(st, rows, c.stored, c.nstored);
out:
    free(sent);
    free(fresh);
    free(other);
    free(c.stored);
    if (rc != CC_OK)
        memset(inserted, 0, n);
    return db_rc(rc);
}

int cc_store_pg_readings_insert(struct cc_store *st, const struct cc_store_row *rows, size_t n,
                                unsigned char *inserted)
{
    /* Each chunk is two statements (the readings, then their rollups): outside a
     * transaction they get one of their own, so that no reading is ever stored without
     * its rollups. */
    int own = n > 0 && !cc_store_in_transaction(st);
    int rc = own ? cc_store_begin(st) : CC_OK;

    for (size_t i = 0; rc == CC_OK && i < n; i += CC_PG_INSERT_ROWS_MAX) {
        size_t k = n - i < CC_PG_INSERT_ROWS_MAX ? n - i : CC_PG_INSERT_ROWS_MAX;

        rc = insert_chunk(st, rows + i, k, inserted + i, i == 0);
    }
    if (own && rc == CC_OK)
        rc = cc_store_commit(st);
    else if (own)
        cc_store_rollback(st);
    if (own && rc != CC_OK)
        memset(inserted, 0, n); /* rolled back: nothing was stored */
    return rc;
}

static int id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

int cc_store_pg_devices_seen(struct cc_store *st, const struct cc_store_seen *v, size_t n)
{
    static const enum cc_pg_elem types[4] = {CC_PG_INT8, CC_PG_INT8, CC_PG_INT4, CC_PG_INT8};
    struct cc_pg_array a[4] = {{0}};
    struct cc_stmt *s = NULL;
    int64_t *ids = NULL;
    size_t distinct = 0;
    uint64_t tx = cc_store_tx_id(st);
    int held = tx != 0, rc = CC_OK;

    if (n == 0)
        return CC_OK;
    ids = malloc(n * sizeof *ids);
    if (ids == NULL)
        return CC_ERR_NOMEM;
    for (int k = 0; rc == CC_OK && k < 4; k++)
        rc = cc_pg_array_init(&a[k], types[k], n);
    for (size_t i = 0; rc == CC_OK && i < n; i++) {
        ids[i] = v[i].device_id;
        held = held && v[i].locked_tx == tx;
        cc_pg_array_int(&a[0], v[i].device_id);
        cc_pg_array_int(&a[1], v[i].seen_at);
        cc_pg_array_int(&a[2], v[i].has_newest ? 1 : 0);
        rc = cc_pg_array_int(&a[3], v[i].newest_ts);
    }
    if (rc != CC_OK)
        goto out;
    qsort(ids, n, sizeof *ids, id_cmp);
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || ids[i] != ids[i - 1];
    rc = cc_stmt_prepare(st, held ? sql_seen_held : sql_seen, &s);
    for (int k = 0; rc == CC_OK && k < 4; k++)
        rc = cc_pg_array_bind(s, k + 1, &a[k]);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    /* As SQLite's loop: a device that is not there is CC_ERR_NOT_FOUND. */
    if (rc == CC_OK && cc_stmt_changes(s) < (int64_t)distinct)
        rc = CC_ERR_NOT_FOUND;
out:
    cc_stmt_release(s);
    for (int k = 0; k < 4; k++)
        cc_pg_array_free(&a[k]);
    free(ids);
    return db_rc(rc);
}

int cc_store_pg_device_status(struct cc_store *st, int64_t device_id, int online,
                              const char *firmware, int64_t seen_at)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql_status, &s);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, device_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 2, online ? "ONLINE" : "OFFLINE");
    /* NULL or "" keeps the firmware; an offline status (often the broker's last will)
     * is no sign of life, so last_seen_at stays. */
    if (firmware != NULL && !cc_utf8_valid(firmware)) {
        /* SQLite would keep the bytes; a UTF-8 database cannot: the status is applied
         * without it rather than failing the batch at every redelivery. */
        cc_log_warn("db_text_not_utf8",
                    "device %lld: firmware version is not UTF-8, kept the"
                    " old one",
                    (long long)device_id);
        firmware = NULL;
    }
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 3, firmware != NULL && firmware[0] != '\0' ? firmware : NULL);
    if (rc == CC_OK)
        rc = online ? cc_stmt_bind_int64(s, 4, seen_at) : cc_stmt_bind_null(s, 4);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_OK && cc_stmt_changes(s) == 0)
        rc = CC_ERR_NOT_FOUND;
    cc_stmt_release(s);
    return db_rc(rc);
}

/* The serial a topic devices/{serial}/... names, copied into serial; 0 when the topic
 * has another shape (its dead letters share device_id 0), as cc_store_sqlite.c reads it. */
static int topic_serial(const char *topic, char serial[CC_SERIAL_MAX + 1])
{
    static const char prefix[] = "devices/";
    const char *p, *slash;

    if (strncmp(topic, prefix, sizeof prefix - 1) != 0)
        return 0;
    p = topic + sizeof prefix - 1;
    slash = strchr(p, '/');
    if (slash == NULL || slash == p || (size_t)(slash - p) > CC_SERIAL_MAX)
        return 0;
    memcpy(serial, p, (size_t)(slash - p));
    serial[slash - p] = '\0';
    return 1;
}

/* Runs a write of nparams (1 or 2) integers, p[0] as $1 ...; *changes its row count. */
static int write_ints(struct cc_store *st, const char *sql, int nparams, const int64_t *p,
                      int64_t *changes)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql, &s);

    for (int i = 0; rc == CC_OK && i < nparams; i++)
        rc = cc_stmt_bind_int64(s, i + 1, p[i]);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_OK)
        *changes = cc_stmt_changes(s);
    cc_stmt_release(s);
    return db_rc(rc);
}

int cc_store_pg_dead_letter(struct cc_store *st, int64_t received_at, const char *topic,
                            const void *payload, size_t len, const char *code, const char *message)
{
    struct cc_stmt *s = NULL;
    size_t kept = len < CC_MAX_DEAD_PAYLOAD ? len : CC_MAX_DEAD_PAYLOAD;
    char serial[CC_SERIAL_MAX + 1];
    char *clean = NULL;
    int64_t device_id = 0, seq = 0, dropped = 0;
    int rc;

    if (payload == NULL)
        kept = 0;
    if (topic == NULL)
        topic = "";
    if (len > (size_t)INT64_MAX)
        len = (size_t)INT64_MAX;
    if (!cc_utf8_valid(topic)) {
        /* Kept with every byte above 0x7F as '?' (a UTF-8 database refuses the bytes;
         * the broker checks topics, so only a caller's own can get here). */
        clean = strdup(topic);
        if (clean == NULL)
            return CC_ERR_NOMEM;
        for (char *c = clean; *c != '\0'; c++)
            if ((unsigned char)*c >= 0x80)
                *c = '?';
        topic = clean;
    }
    rc = cc_stmt_prepare(st, sql_dead_letter, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, received_at);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 2, topic);
    if (rc == CC_OK)
        rc = cc_stmt_bind_blob(s, 3, payload, kept); /* NULL, 0: an empty blob, not NULL */
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 4, (int64_t)len);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 5, code != NULL ? code : "INTERNAL");
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 6, message != NULL ? message : "");
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 7, topic_serial(topic, serial) ? serial : NULL);
    if (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        device_id = cc_stmt_column_int64(s, 0);
        seq = cc_stmt_column_int64(s, 1);
        rc = cc_stmt_step(s);
    } else if (rc == CC_OK) {
        rc = CC_ERR_DB; /* INSERT ... SELECT of one row returned none */
    }
    cc_stmt_release(s);
    free(clean);
    if (rc != CC_OK || seq <= CC_REJECTED_PER_DEVICE_MAX)
        return db_rc(rc);
    /* The newest CC_REJECTED_PER_DEVICE_MAX stay; the older ones go and are counted. */
    rc = write_ints(st, sql_dead_letter_cap, 2,
                    (const int64_t[]){device_id, seq - CC_REJECTED_PER_DEVICE_MAX}, &dropped);
    if (rc == CC_OK && dropped > 0) {
        int64_t ignored;

        rc = write_ints(st, sql_dead_letter_count, 1, &dropped, &ignored);
    }
    return rc;
}

/* Reads the one row of a query of two bigint columns (the second: NULL b). */
static int read_row(struct cc_store *st, const char *sql, int64_t *a, int64_t *b)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql, &s);

    if (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        *a = cc_stmt_column_int64(s, 0);
        if (b != NULL)
            *b = cc_stmt_column_int64(s, 1);
        rc = cc_stmt_step(s);
    } else if (rc == CC_OK) {
        rc = CC_ERR_NOT_FOUND;
    }
    cc_stmt_release(s);
    return db_rc(rc);
}

int cc_store_pg_dead_letters_dropped(struct cc_store *st, int64_t *out)
{
    int64_t v = 0;
    int rc = read_row(st, sql_dropped, &v, NULL);

    if (rc == CC_ERR_NOT_FOUND)
        rc = CC_OK; /* no counter row: none dropped, as on SQLite */
    if (rc == CC_OK)
        *out = v;
    return rc;
}
