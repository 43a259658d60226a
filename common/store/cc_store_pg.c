/* cc_store_pg.c - the typed functions of the ingestion store on PostgreSQL 15, see
 * cc_store.h (cc_store_sqlite.c hands a PG store over to these; the schema and its
 * migrations: cc_store_pg_migrate.c).
 *
 * The batch functions are one statement, one round trip each: the devices of a run by
 * serial (= ANY of an array), its readings with their rollups (schema/pg/ingest.sql,
 * embedded as cc_pg_ingest_sql: the rollups are written by the insert itself, so a PG
 * store never fills cc_store_rollup's batch), its devices seen (UPDATE ... FROM unnest).
 * Arrays travel as text array literals built here: numbers printed by us, text elements
 * always double-quoted with '"' and '\' escaped (PostgreSQL's array syntax), so no value
 * can end an element or the array early. The SQL texts are portable $N statements
 * through cc_dbi.h, cached per store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_db.h"
#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_rollup_math.h"
#include "cc_store.h"
#include "cc_store_impl.h"

/* Readings per batch insert statement: cc_ingest's runs stay near
 * CC_INGEST_RUN_READINGS_MAX, so this is one statement per run; a larger call is sent in
 * several, in order (a repeat of an earlier chunk's reading is then a stored row). */
#define CC_PG_INSERT_ROWS_MAX 8192
/* Bytes of one number in an array literal: an int64 is at most 20, "%.17g" of a double
 * at most 24 ("-1.2345678901234567e-308"). */
#define NUM_MAX 25

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
 * deadlocking (the insert takes its FOR KEY SHARE in the same order). greatest()
 * ignores NULLs: a first sighting takes the new value. */
static const char sql_seen[] =
    "WITH v AS (SELECT id, max(seen) AS seen,"
    " max(CASE WHEN has_newest <> 0 THEN newest END) AS newest"
    " FROM unnest(CAST($1 AS bigint[]), CAST($2 AS bigint[]), CAST($3 AS integer[]),"
    " CAST($4 AS bigint[])) AS u (id, seen, has_newest, newest) GROUP BY id),"
    " locked AS MATERIALIZED (SELECT d.id FROM devices d WHERE d.id IN (SELECT id FROM v)"
    " ORDER BY d.id FOR NO KEY UPDATE)"
    " UPDATE devices d SET status = 'ONLINE', last_seen_at = greatest(d.last_seen_at, v.seen),"
    " newest_ts = greatest(d.newest_ts, v.newest)"
    " FROM v JOIN locked l ON l.id = v.id WHERE d.id = v.id";
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

/* A text array literal being built: cap is reserved up front from the element sizes, so
 * an append never overflows and never reallocates. */
struct arr {
    char *buf;
    size_t len, cap;
};

static int arr_new(struct arr *a, size_t cap)
{
    a->buf = malloc(cap);
    a->len = 0;
    a->cap = cap;
    if (a->buf == NULL)
        return CC_ERR_NOMEM;
    a->buf[a->len++] = '{';
    a->buf[a->len] = '\0';
    return CC_OK;
}

/* Appends the separator before element i. */
static void arr_sep(struct arr *a, size_t i)
{
    if (i > 0)
        a->buf[a->len++] = ',';
}

static void arr_int(struct arr *a, size_t i, long long v)
{
    arr_sep(a, i);
    a->len += (size_t)snprintf(a->buf + a->len, a->cap - a->len, "%lld", v);
}

static void arr_uint(struct arr *a, size_t i, unsigned long long v)
{
    arr_sep(a, i);
    a->len += (size_t)snprintf(a->buf + a->len, a->cap - a->len, "%llu", v);
}

/* A double exactly ("%.17g" round-trips), or NULL when !has. */
static void arr_double(struct arr *a, size_t i, int has, double v)
{
    arr_sep(a, i);
    if (has)
        a->len += (size_t)snprintf(a->buf + a->len, a->cap - a->len, "%.17g", v);
    else
        a->len += (size_t)snprintf(a->buf + a->len, a->cap - a->len, "NULL");
}

/* A 0/1 flag of enum cc_tristate, NULL when absent. */
static void arr_tristate(struct arr *a, size_t i, int v)
{
    arr_sep(a, i);
    a->len += (size_t)snprintf(a->buf + a->len, a->cap - a->len, "%s",
                               v == CC_ABSENT ? "NULL"
                               : v == CC_TRUE ? "1"
                                              : "0");
}

/* A text element, always quoted: '"' and '\' escaped by a '\'; commas, braces, blanks
 * and the word NULL are plain characters inside the quotes. Needs 2 * strlen + 3. */
static void arr_text(struct arr *a, size_t i, const char *v)
{
    arr_sep(a, i);
    a->buf[a->len++] = '"';
    for (; *v != '\0'; v++) {
        if (*v == '"' || *v == '\\')
            a->buf[a->len++] = '\\';
        a->buf[a->len++] = *v;
    }
    a->buf[a->len++] = '"';
}

/* Closes the literal (cap counted its "}" and NUL). */
static const char *arr_end(struct arr *a)
{
    a->buf[a->len++] = '}';
    a->buf[a->len] = '\0';
    return a->buf;
}

/* The capacity of a number array of n elements. */
static size_t num_cap(size_t n)
{
    return n * (NUM_MAX + 1) + 3;
}

/* 1 when s is valid UTF-8 (no overlong form, no surrogate, nothing above U+10FFFF), the
 * only text a UTF-8 database takes. SQLite stores any bytes, and a device's firmware
 * string or an MQTT client's bytes may be anything cJSON lets through: on PostgreSQL such
 * a value would fail its statement and with it the batch, again at every redelivery. */
static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        unsigned c = *p;
        int n = c < 0x80             ? 0
                : (c & 0xE0) == 0xC0 ? 1
                : (c & 0xF0) == 0xE0 ? 2
                : (c & 0xF8) == 0xF0 ? 3
                                     : -1;
        unsigned cp;

        if (n < 0 || (n == 1 && c < 0xC2) || (n == 3 && c > 0xF4))
            return 0;
        cp = n == 0 ? c : c & (0x3Fu >> n);
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3Fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        p += n + 1;
    }
    return 1;
}

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
    struct arr a = {0};
    size_t nrows = 0, cap = 3;
    int rc;

    memset(found, 0, n);
    if (n == 0)
        return CC_OK;
    for (size_t i = 0; i < n; i++)
        cap += 2 * strlen(serials[i]) + 3;
    cap += 4; /* "" stands in for a serial that is not UTF-8: no device has it either */
    rows = malloc(n * sizeof *rows);
    rc = rows != NULL ? arr_new(&a, cap) : CC_ERR_NOMEM;
    if (rc != CC_OK)
        goto out;
    for (size_t i = 0; i < n; i++)
        arr_text(&a, i, utf8_valid(serials[i]) ? serials[i] : "");
    rc = cc_stmt_prepare(st, lock ? sql_devices_lock : sql_devices, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 1, arr_end(&a));
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

        if (strlen(serials[i]) > CC_SERIAL_MAX || !utf8_valid(serials[i]))
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
    free(a.buf);
    free(rows);
    if (rc != CC_OK)
        memset(found, 0, n);
    return db_rc(rc);
}

/* The 11 arrays of schema/pg/ingest.sql, in its parameter order. */
enum { A_DEVICE, A_CELL, A_TS, A_TEMP, A_HUM, A_POWER, A_DOOR, A_BATT, A_RECV, A_HI, A_LO, A_N };

/* One statement for rows[0..n), n <= CC_PG_INSERT_ROWS_MAX. */
static int insert_chunk(struct cc_store *st, const struct cc_store_row *rows, size_t n,
                        unsigned char *inserted)
{
    struct arr a[A_N] = {{0}};
    struct cc_stmt *s = NULL;
    int rc = CC_OK;

    memset(inserted, 0, n);
    for (int k = 0; rc == CC_OK && k < A_N; k++)
        rc = arr_new(&a[k], num_cap(n));
    if (rc != CC_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct cc_reading *r = rows[i].r;
        uint64_t hi, lo;

        cc_query_mkt_q(r->temperature, &hi, &lo);
        arr_int(&a[A_DEVICE], i, rows[i].dev->id);
        arr_int(&a[A_CELL], i, rows[i].dev->cold_cell_id);
        arr_int(&a[A_TS], i, r->ts_ms);
        arr_double(&a[A_TEMP], i, 1, r->temperature);
        arr_double(&a[A_HUM], i, r->has_humidity, r->humidity);
        arr_tristate(&a[A_POWER], i, r->power_status);
        arr_tristate(&a[A_DOOR], i, r->door_status);
        arr_double(&a[A_BATT], i, r->has_battery, r->battery_level);
        arr_int(&a[A_RECV], i, rows[i].received_at);
        arr_uint(&a[A_HI], i, hi);
        arr_uint(&a[A_LO], i, lo);
    }
    rc = cc_stmt_prepare(st, cc_pg_ingest_sql, &s);
    for (int k = 0; rc == CC_OK && k < A_N; k++)
        rc = cc_stmt_bind_text(s, k + 1, arr_end(&a[k]));
    /* Rows returned: the 1-based positions of the readings stored. */
    while (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        int64_t ord = cc_stmt_column_int64(s, 0);

        rc = CC_OK; /* a row read: step on */
        if (ord < 1 || (uint64_t)ord > n) {
            cc_log_error("db_error", "batch insert returned position %lld of %zu", (long long)ord,
                         n);
            rc = CC_ERR_DB;
            break;
        }
        inserted[ord - 1] = 1;
    }
out:
    cc_stmt_release(s);
    for (int k = 0; k < A_N; k++)
        free(a[k].buf);
    return db_rc(rc);
}

int cc_store_pg_readings_insert(struct cc_store *st, const struct cc_store_row *rows, size_t n,
                                unsigned char *inserted)
{
    int rc = CC_OK;

    for (size_t i = 0; rc == CC_OK && i < n; i += CC_PG_INSERT_ROWS_MAX) {
        size_t k = n - i < CC_PG_INSERT_ROWS_MAX ? n - i : CC_PG_INSERT_ROWS_MAX;

        rc = insert_chunk(st, rows + i, k, inserted + i);
    }
    return rc;
}

static int id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

int cc_store_pg_devices_seen(struct cc_store *st, const struct cc_store_seen *v, size_t n)
{
    struct arr a[4] = {{0}};
    struct cc_stmt *s = NULL;
    int64_t *ids = NULL;
    size_t distinct = 0;
    int rc = CC_OK;

    if (n == 0)
        return CC_OK;
    ids = malloc(n * sizeof *ids);
    if (ids == NULL)
        return CC_ERR_NOMEM;
    for (int k = 0; rc == CC_OK && k < 4; k++)
        rc = arr_new(&a[k], num_cap(n));
    if (rc != CC_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        ids[i] = v[i].device_id;
        arr_int(&a[0], i, v[i].device_id);
        arr_int(&a[1], i, v[i].seen_at);
        arr_int(&a[2], i, v[i].has_newest ? 1 : 0);
        arr_int(&a[3], i, v[i].newest_ts);
    }
    qsort(ids, n, sizeof *ids, id_cmp);
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || ids[i] != ids[i - 1];
    rc = cc_stmt_prepare(st, sql_seen, &s);
    for (int k = 0; rc == CC_OK && k < 4; k++)
        rc = cc_stmt_bind_text(s, k + 1, arr_end(&a[k]));
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    /* As SQLite's loop: a device that is not there is CC_ERR_NOT_FOUND. */
    if (rc == CC_OK && cc_stmt_changes(s) < (int64_t)distinct)
        rc = CC_ERR_NOT_FOUND;
out:
    cc_stmt_release(s);
    for (int k = 0; k < 4; k++)
        free(a[k].buf);
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
    if (firmware != NULL && !utf8_valid(firmware)) {
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
    if (!utf8_valid(topic)) {
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
