/* cc_store_sqlite.c - the typed functions of the ingestion store on SQLite, see
 * cc_store.h (opening, closing and transactions: cc_store.c). Each public function hands
 * a PostgreSQL store over to its cc_store_pg_ twin (cc_store_pg.c) first.
 *
 * Each statement is prepared once, on first use, in the store's statement cache, then
 * reset and reused: the ingest path runs the readings insert tens of thousands of
 * times a second and must not parse SQL each time. */
#include "cc_store.h"
#include "cc_store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_db.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store_impl.h"
#include "cc_store_rollup.h"

enum stmt_id {
    ST_DEVICE_BY_SERIAL,
    ST_READING_INSERT,
    ST_DEVICE_SEEN,
    ST_DEVICE_STATUS,
    ST_DEAD_LETTER,
    ST_DEAD_LETTER_CAP,
    ST_DEAD_LETTER_DROPPED,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_DEVICE_BY_SERIAL] = "SELECT id, cold_cell_id, serial_number, status, newest_ts"
                            " FROM devices WHERE serial_number = ?1",
    [ST_READING_INSERT] = "INSERT INTO readings (device_id, cold_cell_id, ts, temperature,"
                          " humidity, power_status, door_status, battery_level, received_at)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                          " ON CONFLICT (device_id, ts) DO NOTHING",
    /* SQLite's two-argument max() is NULL if either is NULL: coalesce first. */
    [ST_DEVICE_SEEN] = "UPDATE devices SET status = 'ONLINE',"
                       " last_seen_at = max(coalesce(last_seen_at, ?2), ?2),"
                       " newest_ts = CASE WHEN ?3 THEN max(coalesce(newest_ts, ?4), ?4)"
                       " ELSE newest_ts END"
                       " WHERE id = ?1",
    [ST_DEVICE_STATUS] = "UPDATE devices SET status = ?2,"
                         " firmware_version = coalesce(?3, firmware_version),"
                         " last_seen_at = CASE WHEN ?4 IS NULL THEN last_seen_at"
                         " ELSE max(coalesce(last_seen_at, ?4), ?4) END"
                         " WHERE id = ?1",
    /* The device the topic names (0: none known) and the next seq of that device, both
     * index searches (serial_number UNIQUE, rejected_messages_device_seq). */
    [ST_DEAD_LETTER] = "INSERT INTO rejected_messages (received_at, topic, payload,"
                       " payload_size, error_code, error_message, device_id, seq)"
                       " SELECT ?1, ?2, ?3, ?4, ?5, ?6, d.id, 1 + coalesce((SELECT max(seq)"
                       " FROM rejected_messages WHERE device_id = d.id), 0)"
                       " FROM (SELECT coalesce((SELECT id FROM devices"
                       " WHERE serial_number = ?7), 0) AS id) d"
                       " RETURNING device_id, seq",
    [ST_DEAD_LETTER_CAP] = "DELETE FROM rejected_messages WHERE device_id = ?1 AND seq <= ?2",
    [ST_DEAD_LETTER_DROPPED] = "UPDATE stat_counters SET value = value + ?1"
                               " WHERE name = 'rejected_dropped' AND label = ''",
};

/* Lends the prepared statement id from the store's statement cache (cc_dbi.h), keyed
 * like every other by the address of its text. CC_OK or CC_ERR_DB. */
static int stmt_get(struct cc_store *st, enum stmt_id id, sqlite3_stmt **out)
{
    return cc_store_stmt(st, stmt_sql[id], out);
}

/* Logs a failed step and maps it to a CC_* code. */
static int step_failed(struct cc_store *st, const char *what, int src)
{
    cc_log_error("db_step_failed", "%s: %s", what, sqlite3_errmsg(st->db));
    return cc_db_rc(src, sqlite3_extended_errcode(st->db));
}

/* Resets a lent statement so it holds no lock and no bound buffers. */
static void stmt_done(sqlite3_stmt *stmt)
{
    if (stmt != NULL) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    }
}

/* 1 when st is PostgreSQL's: the function's cc_store_pg_ twin answers instead. */
static int is_pg(const struct cc_store *st)
{
    return st->dialect == CC_DIALECT_PG;
}

int cc_store_device_by_serial(struct cc_store *st, const char *serial, struct cc_device *out)
{
    sqlite3_stmt *stmt = NULL;
    struct cc_device d;
    const char *s;
    int src;
    int rc;

    if (is_pg(st)) {
        unsigned char found = 0;

        rc = cc_store_pg_devices_by_serial(st, &serial, 1, out, &found, 0);
        return rc == CC_OK && !found ? CC_ERR_NOT_FOUND : rc;
    }
    rc = stmt_get(st, ST_DEVICE_BY_SERIAL, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_text(stmt, 1, serial, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = step_failed(st, "device by serial", SQLITE_ERROR);
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src == SQLITE_DONE) {
        rc = CC_ERR_NOT_FOUND;
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = step_failed(st, "device by serial", src);
        goto out;
    }
    memset(&d, 0, sizeof d);
    d.id = sqlite3_column_int64(stmt, 0);
    d.cold_cell_id = sqlite3_column_int64(stmt, 1);
    s = (const char *)sqlite3_column_text(stmt, 2);
    if (s != NULL) {
        strncpy(d.serial, s, CC_SERIAL_MAX);
        d.serial[CC_SERIAL_MAX] = '\0';
    }
    s = (const char *)sqlite3_column_text(stmt, 3);
    if (s != NULL) {
        strncpy(d.status, s, sizeof d.status - 1);
        d.status[sizeof d.status - 1] = '\0';
    }
    if (sqlite3_column_type(stmt, 4) != SQLITE_NULL) {
        d.has_newest = 1;
        d.newest_ts = sqlite3_column_int64(stmt, 4);
    }
    /* serial_number is UNIQUE: no second row. */
    *out = d;
    rc = CC_OK;

out:
    stmt_done(stmt);
    return rc;
}

/* Binds an optional cc_tristate as 0/1 or NULL. */
static int bind_tristate(sqlite3_stmt *stmt, int i, int v)
{
    if (v == CC_ABSENT)
        return sqlite3_bind_null(stmt, i);
    return sqlite3_bind_int(stmt, i, v == CC_TRUE);
}

/* A stored reading's rollup terms: summed until cc_store_commit inside cc_store_begin's
 * transactions, written at once (a batch of one) in a caller's own or in none. */
static int rollup_add(struct cc_store *st, int64_t cell_id, int64_t ts_ms, double t)
{
    int rc;

    if (st->rollups == NULL && cc_rollup_batch_new(&st->rollups) != CC_OK)
        return CC_ERR_NOMEM;
    rc = cc_rollup_batch_add(st, st->rollups, cell_id, ts_ms, t);
    if (rc == CC_OK && (!st->in_tx || !cc_store_in_transaction(st)))
        rc = cc_rollup_batch_flush(st, st->rollups);
    return rc;
}

int cc_store_reading_insert(struct cc_store *st, const struct cc_device *dev,
                            const struct cc_reading *r, int64_t received_at, int *inserted)
{
    sqlite3_stmt *stmt = NULL;
    int src = SQLITE_OK;
    int rc;

    if (is_pg(st)) {
        const struct cc_store_row row = {.dev = dev, .r = r, .received_at = received_at};
        unsigned char ins = 0;

        rc = cc_store_pg_readings_insert(st, &row, 1, &ins);
        if (rc == CC_OK)
            *inserted = ins;
        return rc;
    }
    rc = stmt_get(st, ST_READING_INSERT, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, dev->id) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, dev->cold_cell_id) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, r->ts_ms) != SQLITE_OK ||
        sqlite3_bind_double(stmt, 4, r->temperature) != SQLITE_OK ||
        (r->has_humidity ? sqlite3_bind_double(stmt, 5, r->humidity)
                         : sqlite3_bind_null(stmt, 5)) != SQLITE_OK ||
        bind_tristate(stmt, 6, r->power_status) != SQLITE_OK ||
        bind_tristate(stmt, 7, r->door_status) != SQLITE_OK ||
        (r->has_battery ? sqlite3_bind_double(stmt, 8, r->battery_level)
                        : sqlite3_bind_null(stmt, 8)) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 9, received_at) != SQLITE_OK) {
        rc = step_failed(st, "reading insert bind", SQLITE_ERROR);
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_DONE) {
        rc = step_failed(st, "reading insert", src);
        goto out;
    }
    /* ON CONFLICT DO NOTHING: 0 changes means (device_id, ts) was already stored. */
    *inserted = sqlite3_changes(st->db) > 0;
    /* A stored row joins its cell's rollups in the same transaction: summed in memory
     * until cc_store_commit inside cc_store_begin's transactions, at once in a caller's
     * own. */
    if (*inserted)
        rc = rollup_add(st, dev->cold_cell_id, r->ts_ms, r->temperature);

out:
    if (stmt != NULL)
        sqlite3_reset(stmt); /* every parameter is rebound next time */
    return rc;
}

int cc_store_device_seen(struct cc_store *st, int64_t device_id, int64_t seen_at, int has_newest,
                         int64_t newest_ts)
{
    sqlite3_stmt *stmt = NULL;
    int src;
    int rc;

    if (is_pg(st)) {
        const struct cc_store_seen v = {device_id, seen_at, has_newest, newest_ts, 0};

        return cc_store_pg_devices_seen(st, &v, 1);
    }
    rc = stmt_get(st, ST_DEVICE_SEEN, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, device_id) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, seen_at) != SQLITE_OK ||
        sqlite3_bind_int(stmt, 3, has_newest ? 1 : 0) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 4, newest_ts) != SQLITE_OK) {
        rc = step_failed(st, "device seen bind", SQLITE_ERROR);
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_DONE) {
        rc = step_failed(st, "device seen", src);
        goto out;
    }
    rc = sqlite3_changes(st->db) > 0 ? CC_OK : CC_ERR_NOT_FOUND;

out:
    stmt_done(stmt);
    return rc;
}

int cc_store_devices_by_serial(struct cc_store *st, const char *const *serials, size_t n,
                               struct cc_device *out, unsigned char *found)
{
    if (is_pg(st))
        return cc_store_pg_devices_by_serial(st, serials, n, out, found, 1);
    for (size_t i = 0; i < n; i++) {
        int rc = cc_store_device_by_serial(st, serials[i], &out[i]);

        if (rc != CC_OK && rc != CC_ERR_NOT_FOUND)
            return rc;
        found[i] = rc == CC_OK;
    }
    return CC_OK;
}

int cc_store_readings_insert(struct cc_store *st, const struct cc_store_row *rows, size_t n,
                             unsigned char *inserted)
{
    if (is_pg(st))
        return cc_store_pg_readings_insert(st, rows, n, inserted);
    for (size_t i = 0; i < n; i++) {
        int ins = 0;
        int rc = cc_store_reading_insert(st, rows[i].dev, rows[i].r, rows[i].received_at, &ins);

        if (rc != CC_OK)
            return rc;
        inserted[i] = (unsigned char)ins;
    }
    return CC_OK;
}

int cc_store_devices_seen(struct cc_store *st, const struct cc_store_seen *v, size_t n)
{
    if (is_pg(st))
        return cc_store_pg_devices_seen(st, v, n);
    for (size_t i = 0; i < n; i++) {
        int rc =
            cc_store_device_seen(st, v[i].device_id, v[i].seen_at, v[i].has_newest, v[i].newest_ts);
        if (rc != CC_OK)
            return rc;
    }
    return CC_OK;
}

int cc_store_device_status(struct cc_store *st, int64_t device_id, int online, const char *firmware,
                           int64_t seen_at)
{
    sqlite3_stmt *stmt = NULL;
    int src;
    int rc;

    if (is_pg(st))
        return cc_store_pg_device_status(st, device_id, online, firmware, seen_at);
    rc = stmt_get(st, ST_DEVICE_STATUS, &stmt);
    if (rc != CC_OK)
        return rc;
    /* An offline status (often the broker's last will) says the device is gone: it
     * is recorded, but it is no sign of life, so last_seen_at stays. */
    if (sqlite3_bind_int64(stmt, 1, device_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, online ? "ONLINE" : "OFFLINE", -1, SQLITE_STATIC) != SQLITE_OK ||
        (firmware != NULL && firmware[0] != '\0'
             ? sqlite3_bind_text(stmt, 3, firmware, -1, SQLITE_STATIC)
             : sqlite3_bind_null(stmt, 3)) != SQLITE_OK ||
        (online ? sqlite3_bind_int64(stmt, 4, seen_at) : sqlite3_bind_null(stmt, 4)) != SQLITE_OK) {
        rc = step_failed(st, "device status bind", SQLITE_ERROR);
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_DONE) {
        rc = step_failed(st, "device status", src);
        goto out;
    }
    rc = sqlite3_changes(st->db) > 0 ? CC_OK : CC_ERR_NOT_FOUND;

out:
    stmt_done(stmt);
    return rc;
}

/* The serial a topic devices/{serial}/... names, as a pointer into topic and a length;
 * 0 when the topic has another shape (its dead letters share device_id 0). */
static size_t topic_serial(const char *topic, const char **serial)
{
    static const char prefix[] = "devices/";
    const char *slash;

    if (strncmp(topic, prefix, sizeof prefix - 1) != 0)
        return 0;
    *serial = topic + sizeof prefix - 1;
    slash = strchr(*serial, '/');
    if (slash == NULL || slash == *serial || (size_t)(slash - *serial) > CC_SERIAL_MAX)
        return 0;
    return (size_t)(slash - *serial);
}

/* Drops the dead letters of device_id older than the newest CC_REJECTED_PER_DEVICE_MAX
 * (seq <= newest - max: one index range, one row in the steady state) and counts them
 * in stat_counters. */
static int dead_letter_cap(struct cc_store *st, int64_t device_id, int64_t seq)
{
    sqlite3_stmt *stmt = NULL;
    int64_t dropped;
    int src, rc;

    if (seq <= CC_REJECTED_PER_DEVICE_MAX)
        return CC_OK;
    rc = stmt_get(st, ST_DEAD_LETTER_CAP, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, device_id) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, seq - CC_REJECTED_PER_DEVICE_MAX) != SQLITE_OK) {
        rc = step_failed(st, "dead letter cap bind", SQLITE_ERROR);
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_DONE) {
        rc = step_failed(st, "dead letter cap", src);
        goto out;
    }
    dropped = sqlite3_changes(st->db);
    stmt_done(stmt);
    stmt = NULL;
    if (dropped == 0)
        return CC_OK;
    rc = stmt_get(st, ST_DEAD_LETTER_DROPPED, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, dropped) != SQLITE_OK) {
        rc = step_failed(st, "dead letter count bind", SQLITE_ERROR);
        goto out;
    }
    src = sqlite3_step(stmt);
    rc = src == SQLITE_DONE ? CC_OK : step_failed(st, "dead letter count", src);
out:
    stmt_done(stmt);
    return rc;
}

int cc_store_dead_letter(struct cc_store *st, int64_t received_at, const char *topic,
                         const void *payload, size_t len, const char *code, const char *message)
{
    static const char empty[1] = "";
    sqlite3_stmt *stmt = NULL;
    size_t kept = len < CC_MAX_DEAD_PAYLOAD ? len : CC_MAX_DEAD_PAYLOAD;
    const char *serial = NULL;
    size_t serial_len;
    int64_t device_id = 0, seq = 0;
    int src;
    int rc;

    if (is_pg(st))
        return cc_store_pg_dead_letter(st, received_at, topic, payload, len, code, message);
    rc = stmt_get(st, ST_DEAD_LETTER, &stmt);
    if (rc != CC_OK)
        return rc;
    /* A NULL blob pointer binds SQL NULL, which payload NOT NULL refuses: an empty
     * payload is bound as a zero-length blob. */
    if (payload == NULL || kept == 0) {
        payload = empty;
        kept = 0;
    }
    if (topic == NULL)
        topic = "";
    if (code == NULL)
        code = "INTERNAL";
    if (message == NULL)
        message = "";
    if (len > (size_t)INT64_MAX)
        len = (size_t)INT64_MAX;
    serial_len = topic_serial(topic, &serial);
    if (sqlite3_bind_int64(stmt, 1, received_at) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, topic, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(stmt, 3, payload, (int)kept, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 4, (int64_t)len) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 5, code, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 6, message, -1, SQLITE_STATIC) != SQLITE_OK ||
        (serial_len > 0 ? sqlite3_bind_text(stmt, 7, serial, (int)serial_len, SQLITE_STATIC)
                        : sqlite3_bind_null(stmt, 7)) != SQLITE_OK) {
        rc = step_failed(st, "dead letter bind", SQLITE_ERROR);
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src != SQLITE_ROW) {
        rc = step_failed(st, "dead letter", src);
        goto out;
    }
    device_id = sqlite3_column_int64(stmt, 0);
    seq = sqlite3_column_int64(stmt, 1);
    src = sqlite3_step(stmt);
    if (src != SQLITE_DONE) {
        rc = step_failed(st, "dead letter", src);
        goto out;
    }
    stmt_done(stmt);
    stmt = NULL;
    rc = dead_letter_cap(st, device_id, seq);

out:
    stmt_done(stmt);
    return rc;
}

int cc_store_dead_letters_dropped(struct cc_store *st, int64_t *out)
{
    sqlite3 *db = st->db;
    sqlite3_stmt *stmt = NULL;
    int src, rc = CC_ERR_DB;

    if (is_pg(st))
        return cc_store_pg_dead_letters_dropped(st, out);
    if (sqlite3_prepare_v2(db,
                           "SELECT value FROM stat_counters WHERE name = 'rejected_dropped'"
                           " AND label = ''",
                           -1, &stmt, NULL) != SQLITE_OK)
        goto out;
    src = sqlite3_step(stmt);
    if (src == SQLITE_ROW)
        *out = sqlite3_column_int64(stmt, 0);
    else if (src == SQLITE_DONE)
        *out = 0;
    else
        goto out;
    rc = CC_OK;
out:
    if (rc != CC_OK)
        cc_log_error("db_error", "rejected_dropped: %s", sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    return rc;
}

/* One text for both dialects (cc_dbi.h): a position per client id (schema 0008, pg 0003). */
static const char sql_checkpoint_get[] =
    "SELECT journal_gen, journal_offset FROM ingest_checkpoints WHERE client_id = $1";
static const char sql_checkpoint_set[] =
    "INSERT INTO ingest_checkpoints (client_id, journal_gen, journal_offset) VALUES ($1, $2, $3)"
    " ON CONFLICT (client_id) DO UPDATE SET journal_gen = excluded.journal_gen,"
    " journal_offset = excluded.journal_offset";

int cc_store_checkpoint_get(struct cc_store *st, const char *client_id, int64_t *gen,
                            int64_t *offset)
{
    struct cc_stmt *s = NULL;
    int64_t g = 0, o = 0;
    int rc = cc_stmt_prepare(st, sql_checkpoint_get, &s);

    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 1, client_id);
    if (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        g = cc_stmt_column_int64(s, 0);
        o = cc_stmt_column_int64(s, 1);
        rc = CC_OK; /* client_id is the key: one row at most */
    }
    cc_stmt_release(s);
    if (rc != CC_OK)
        return CC_ERR_DB; /* cc_dbi logged it */
    *gen = g;
    *offset = o;
    return CC_OK;
}

int cc_store_checkpoint_set(struct cc_store *st, const char *client_id, int64_t gen, int64_t offset)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql_checkpoint_set, &s);

    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 1, client_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 2, gen);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 3, offset);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    cc_stmt_release(s);
    return rc == CC_OK ? CC_OK : CC_ERR_DB;
}
