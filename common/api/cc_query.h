/* cc_query.h - the read side of SPEC §5: readings statistics (from the five-minute
 * rollups, exact), the latest reading, the CSV export and the two dashboards.
 *
 * Numbers are defined so that the fast answer (rollups for whole five-minute buckets,
 * raw rows only at the edges) and the raw computation (every raw row) are equal bit
 * for bit, whatever the order readings arrived in (docs/queries.md):
 *  - sums of temperatures and of MKT terms are integer sums (cc_rollup_math.h, shared
 *    with the write side, store/cc_store_rollup.h);
 *  - minutesOutOfRange: readings of the cell in range, ordered by (ts, device_id); the
 *    interval from each reading to the next counts when the earlier one is outside
 *    min_temp..max_temp (strictly below or above). The last reading in range adds
 *    nothing.
 * Ownership: results written through out are the caller's (free with the matching
 * _free, or cJSON_Delete). Thread: the caller's store (SQLite or PostgreSQL: the SQL is
 * the same in both, cc_dbi.h); statements come from the store's cache.
 * Codes: CC_OK, CC_ERR_VALIDATION (*err set), CC_ERR_NOT_FOUND (no such cell, or not
 * the principal's), CC_ERR_DB, CC_ERR_NOMEM, CC_ERR_IO (a CSV sink failed). */
#ifndef CC_QUERY_H
#define CC_QUERY_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "cc_access.h"
#include "cc_rollup_math.h"
#include "cc_store.h"

#define CC_QUERY_MAX_SPAN_MS (400LL * 86400000) /* longest from/to span: 400 days */
#define CC_QUERY_MAX_BUCKETS 120000             /* series entries at most (400 d of 5 min) */
/* On PostgreSQL the straddling half hours of a query are passed to the statements that
 * read their detail as one array parameter when there are at most this many (every half
 * hour of 31 days; at most CC_PG_ARRAY_ELEMS_MAX); a query with more reads the detail by
 * range, as on SQLite (docs/queries.md). */
#define CC_QUERY_PG_LIST_MAX 1488

/* The range of a readings query. */
struct cc_query_range {
    char range[4];   /* "24h", "7d", "30d", or "" for from/to */
    int64_t from_ms; /* from <= ts < to */
    int64_t to_ms;
    int64_t bucket_ms; /* 300000, 1800000, 7200000 or 86400000 */
};

/* One series entry: the readings with ts in [t_ms, t_ms + bucket) ∩ [from, to). */
struct cc_query_bucket {
    int64_t t_ms;
    double min, max;
    int64_t count;
    int64_t sum_q;
};

/* Statistics over every reading in range. mkt_hi/mkt_lo hold the exact 124-bit sum
 * of the MKT terms (value = mkt_hi * 2^62 + mkt_lo, mkt_lo < 2^62). */
struct cc_query_stats {
    int64_t count;
    double min, max; /* meaningful when count > 0 */
    int64_t sum_q;
    uint64_t mkt_hi, mkt_lo;
    int64_t oor_ms; /* time out of range, ms */
};

struct cc_query_result {
    struct cc_query_range range;
    int64_t cell_id;
    struct cc_query_stats stats;
    size_t n;                       /* series entries */
    struct cc_query_bucket *series; /* malloc'd, ascending t_ms; free with _result_free */
    size_t rows_read; /* rows the database returned to compute this (tests, benchmark) */
};

/* Reads range=24h|7d|30d or from=&to= (ISO-8601) from a query string; no parameter
 * means range=24h ending at now_ms. The bucket of a from/to span: up to 1 day 5 min,
 * up to 7 days 30 min, up to 31 days 2 h, up to 400 days 1 day. CC_OK or
 * CC_ERR_VALIDATION with *err. */
int cc_query_parse_range(const char *qs, int64_t now_ms, struct cc_query_range *out, cJSON **err);

/* The statistics and series of cell_id over rg, with thresholds lo..hi: thirty-minute
 * rollups for whole half hours (when the series bucket is a multiple of 30 min),
 * five-minute rollups for whole five minutes, raw rows at the edges, and finer rows
 * only inside a bucket that straddles a threshold. *out is the caller's
 * (cc_query_result_free). */
int cc_query_readings(struct cc_store *st, int64_t cell_id, const struct cc_query_range *rg,
                      double lo, double hi, struct cc_query_result *out);
/* The same answer computed from raw readings only (tests, benchmark). */
int cc_query_readings_raw(struct cc_store *st, int64_t cell_id, const struct cc_query_range *rg,
                          double lo, double hi, struct cc_query_result *out);
void cc_query_result_free(struct cc_query_result *res);
/* Tests only, before any query runs (not thread-safe): the list limit in place of
 * CC_QUERY_PG_LIST_MAX (at most CC_PG_ARRAY_ELEMS_MAX), so that a small data set reaches
 * both ways of reading the detail. */
void cc_query_set_pg_list_max(size_t n);
/* The SPEC §5 answer for res; NULL on out of memory. avg and mkt are rounded to
 * 0.001 °C, minutesOutOfRange to 0.01 min. */
cJSON *cc_query_result_json(const struct cc_query_result *res);

/* GET /api/readings/coldcells/:id/readings: access, thresholds, parse, compute. */
int cc_query_readings_json(struct cc_store *st, const struct cc_principal *p, int64_t cell_id,
                           const char *qs, int64_t now_ms, cJSON **out, cJSON **err);

/* GET /api/coldcells/:id/latest: the reading with the greatest ts (ties: the greatest
 * id) as {coldCellId, deviceId, serialNumber, ts, temperature, ...}, or JSON null
 * (200) when the cell has no reading yet. */
int cc_query_latest(struct cc_store *st, const struct cc_principal *p, int64_t cell_id,
                    cJSON **out);

/* A sink for streamed output: returns 0 when the bytes went out, -1 to stop. */
typedef int (*cc_query_write_fn)(void *ctx, const char *buf, size_t len);
#define CC_CSV_CHUNK 16384 /* bytes buffered before each write of the export */
/* Checks access and parses from/to (both required, from < to, span at most
 * CC_QUERY_MAX_SPAN_MS) for the export. CC_OK, CC_ERR_NOT_FOUND, CC_ERR_VALIDATION. */
int cc_query_csv_check(struct cc_store *st, const struct cc_principal *p, int64_t cell_id,
                       const char *qs, int64_t *from_ms, int64_t *to_ms, cJSON **err);
/* Streams the raw readings of cell_id with from <= ts < to as RFC 4180 CSV (CRLF
 * lines, header row, ISO times, ordered by ts then device) in chunks of at most
 * CC_CSV_CHUNK bytes: cc_query_csv_page until done. CC_OK, CC_ERR_DB, CC_ERR_IO (the
 * sink stopped). */
int cc_query_csv(struct cc_store *st, int64_t cell_id, int64_t from_ms, int64_t to_ms,
                 cc_query_write_fn write, void *ctx);

/* The export in pages, so that no read snapshot lasts longer than one page: the caller
 * may end its transaction, and even give the connection back, between two pages
 * (apid does, and writes each page to the client in between). Start with a zeroed
 * cursor; each call writes the next CC_CSV_PAGE_ROWS rows at most (the header row
 * first) through write and advances the cursor, which is done after a short page.
 * Rows follow the (ts, device_id) key, so none repeats or goes missing when others
 * are inserted between two pages; a row inserted behind the cursor is not exported.
 * On failure the cursor is unchanged. Codes as cc_query_csv. */
#define CC_CSV_PAGE_ROWS 1000 /* rows per page of the export (about 120 KiB) */
struct cc_query_csv_cursor {
    int64_t ts_ms; /* key of the last row written */
    int64_t device_id;
    int64_t rows; /* rows written so far */
    int started;  /* the header row is out */
    int done;     /* the last page is out */
};
int cc_query_csv_page(struct cc_store *st, int64_t cell_id, int64_t from_ms, int64_t to_ms,
                      struct cc_query_csv_cursor *cur, cc_query_write_fn write, void *ctx);

/* GET /api/dashboard/customer: {locations:[{id,name,address,timezone,coldCells:[{id,
 * name,minTemp,maxTemp,latest,devices:[{id,serialNumber,status,lastSeenAt}],
 * activeAlerts:[...]}]}], activeAlerts:N} over what p may see. */
int cc_dashboard_customer(struct cc_store *st, const struct cc_principal *p, cJSON **out);
/* GET /api/dashboard/technician: the SPEC shape over the customers p may see
 * (technician: linked ones; admin: all). A customer gets CC_ERR_FORBIDDEN. */
int cc_dashboard_technician(struct cc_store *st, const struct cc_principal *p, cJSON **out);

#endif
