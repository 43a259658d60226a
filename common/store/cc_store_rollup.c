/* cc_store_rollup.c - the write side of the rollup tables: the exact upserts, the
 * batch and the rebuilds from raw readings (cc_store_rollup.h,
 * docs/queries.md). The terms come from cc_rollup_math.h. */
#include "cc_store_sqlite.h"
#include "cc_store_rollup.h"

#include <math.h>
#include <stdlib.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_sql.h"

#define LIMB_MASK ((((uint64_t)1) << CC_QUERY_MKT_LIMB_BITS) - 1)

typedef unsigned __int128 u128;

/* One reading into a bucket. The MKT sum is two 62-bit limbs: lo + lo' < 2^63 never
 * overflows, and its carry goes to hi. SQLite evaluates every right-hand side on the
 * old row, so mkt_hi sees the old mkt_lo. */
#define EXACT_UPSERT                                                                               \
    " min_temp = min(min_temp, excluded.min_temp),"                                                \
    " max_temp = max(max_temp, excluded.max_temp), count = count + excluded.count,"                \
    " sum_q = sum_q + excluded.sum_q,"                                                             \
    " mkt_hi = mkt_hi + excluded.mkt_hi + ((mkt_lo + excluded.mkt_lo) >> 62),"                     \
    " mkt_lo = (mkt_lo + excluded.mkt_lo) & 4611686018427387903,"                                  \
    " first_ts = min(first_ts, excluded.first_ts), last_ts = max(last_ts, excluded.last_ts)"

/* A batch's bucket totals (cc_rollup_batch_flush; one reading is a batch of one): the
 * parameters of rebuild's inserts (flush()), 12 for the five-minute table and 10 for the
 * thirty-minute one. */
static const char merge_5m_sql[] =
    "INSERT INTO readings_5m (cold_cell_id, bucket_ts, min_temp, max_temp, sum_temp, count,"
    " mkt_sum, sum_q, mkt_hi, mkt_lo, first_ts, last_ts)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    " ON CONFLICT (cold_cell_id, bucket_ts) DO UPDATE SET"
    " sum_temp = sum_temp + excluded.sum_temp, mkt_sum = mkt_sum + excluded.mkt_sum," EXACT_UPSERT;

static const char merge_30m_sql[] =
    "INSERT INTO readings_30m (cold_cell_id, bucket_ts, min_temp, max_temp, count, sum_q,"
    " mkt_hi, mkt_lo, first_ts, last_ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    " ON CONFLICT (cold_cell_id, bucket_ts) DO UPDATE SET" EXACT_UPSERT;

/* A bucket being rebuilt. */
struct acc {
    int64_t cell, bucket;
    double min, max, sum, mkt_sum;
    int64_t count, sum_q, first_ts, last_ts;
    u128 mkt;
    int have;
};

static void acc_add(struct acc *a, int64_t cell, int64_t b, int64_t ts, double t, int64_t q, u128 m)
{
    if (!a->have) {
        *a = (struct acc){
            .cell = cell, .bucket = b, .min = t, .max = t, .first_ts = ts, .last_ts = ts};
        a->have = 1;
    }
    a->min = t < a->min ? t : a->min;
    a->max = t > a->max ? t : a->max;
    a->sum += t;
    a->mkt_sum += exp(-CC_MKT_DH_R_K / (t + CC_KELVIN_OFFSET));
    a->count++;
    a->sum_q += q;
    a->mkt += m;
    a->first_ts = ts < a->first_ts ? ts : a->first_ts; /* a batch is in arrival order */
    a->last_ts = ts > a->last_ts ? ts : a->last_ts;
}

/* Writes a finished bucket (5m statement: 12 parameters; 30m: 10) and empties it. */
static int flush(sqlite3 *db, sqlite3_stmt *ins, struct acc *a)
{
    int coarse = sqlite3_bind_parameter_count(ins) == 10;
    int k = 1;
    int rc;

    if (!a->have)
        return CC_OK;
    if (sqlite3_bind_int64(ins, k++, a->cell) != SQLITE_OK ||
        sqlite3_bind_int64(ins, k++, a->bucket) != SQLITE_OK ||
        sqlite3_bind_double(ins, k++, a->min) != SQLITE_OK ||
        sqlite3_bind_double(ins, k++, a->max) != SQLITE_OK ||
        (!coarse && sqlite3_bind_double(ins, k++, a->sum) != SQLITE_OK) ||
        sqlite3_bind_int64(ins, k++, a->count) != SQLITE_OK ||
        (!coarse && sqlite3_bind_double(ins, k++, a->mkt_sum) != SQLITE_OK) ||
        sqlite3_bind_int64(ins, k++, a->sum_q) != SQLITE_OK ||
        sqlite3_bind_int64(ins, k++, (int64_t)(a->mkt >> CC_QUERY_MKT_LIMB_BITS)) != SQLITE_OK ||
        sqlite3_bind_int64(ins, k++, (int64_t)(a->mkt & LIMB_MASK)) != SQLITE_OK ||
        sqlite3_bind_int64(ins, k++, a->first_ts) != SQLITE_OK ||
        sqlite3_bind_int64(ins, k++, a->last_ts) != SQLITE_OK) {
        cc_log_error("db_step_failed", "rollup rebuild bind: %s", sqlite3_errmsg(db));
        return CC_ERR_DB;
    }
    rc = cc_sql_exec(db, ins);
    sqlite3_reset(ins);
    a->have = 0;
    return rc;
}

/* The buckets of one size a batch has summed: open addressing, CC_ROLLUP_BATCH_MAX
 * buckets in twice as many slots. */
#define SLOTS (2 * CC_ROLLUP_BATCH_MAX)

struct table {
    struct acc slot[SLOTS];
    int n;
};

struct cc_rollup_batch {
    struct table t5, t30;
};

int cc_rollup_batch_new(struct cc_rollup_batch **out)
{
    *out = calloc(1, sizeof **out);
    return *out != NULL ? CC_OK : CC_ERR_NOMEM;
}

void cc_rollup_batch_free(struct cc_rollup_batch *b)
{
    free(b);
}

static void table_clear(struct table *t)
{
    if (t->n == 0)
        return;
    for (int i = 0; i < SLOTS; i++)
        t->slot[i].have = 0;
    t->n = 0;
}

void cc_rollup_batch_clear(struct cc_rollup_batch *b)
{
    table_clear(&b->t5);
    table_clear(&b->t30);
}

/* Writes every bucket of t through sql (merge_5m_sql or merge_30m_sql) and empties t. */
static int table_flush(struct cc_store *st, struct table *t, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (t->n == 0)
        return CC_OK;
    rc = cc_store_stmt(st, sql, &stmt);
    /* flush() writes a held slot and empties it; stop once all t->n are written. */
    for (int i = 0; rc == CC_OK && t->n > 0 && i < SLOTS; i++) {
        if (t->slot[i].have) {
            rc = flush(cc_store_db(st), stmt, &t->slot[i]);
            t->n--;
        }
    }
    cc_store_stmt_done(stmt);
    if (rc != CC_OK) { /* forget what is left: the transaction is rolled back */
        for (int i = 0; i < SLOTS; i++)
            t->slot[i].have = 0;
    }
    t->n = 0;
    return rc;
}

int cc_rollup_batch_flush(struct cc_store *st, struct cc_rollup_batch *b)
{
    int rc = table_flush(st, &b->t5, merge_5m_sql);

    if (rc == CC_OK)
        rc = table_flush(st, &b->t30, merge_30m_sql);
    cc_rollup_batch_clear(b); /* after a failure the transaction is rolled back anyway */
    return rc;
}

/* The slot of (cell, bucket) in t: its own, or the empty one it would take. */
static struct acc *table_find(struct table *t, int64_t cell, int64_t bucket)
{
    uint64_t h = ((uint64_t)cell * 0x9E3779B97F4A7C15u) ^ ((uint64_t)bucket * 0xC2B2AE3D27D4EB4Fu);
    unsigned i = (unsigned)(h >> 40) % SLOTS;

    while (t->slot[i].have && (t->slot[i].cell != cell || t->slot[i].bucket != bucket))
        i = (i + 1) % SLOTS; /* never full: a table is flushed at CC_ROLLUP_BATCH_MAX */
    return &t->slot[i];
}

static int table_add(struct cc_store *st, struct table *t, const char *sql, int64_t cell,
                     int64_t bucket, int64_t ts, double v, int64_t q, u128 m)
{
    struct acc *a = table_find(t, cell, bucket);

    if (!a->have) {
        if (t->n == CC_ROLLUP_BATCH_MAX) {
            int rc = table_flush(st, t, sql);

            if (rc != CC_OK)
                return rc;
            a = table_find(t, cell, bucket);
        }
        t->n++;
    }
    acc_add(a, cell, bucket, ts, v, q, m);
    return CC_OK;
}

int cc_rollup_batch_add(struct cc_store *st, struct cc_rollup_batch *b, int64_t cell_id,
                        int64_t ts_ms, double t)
{
    int64_t q = cc_query_temp_q(t);
    uint64_t hi, lo;
    u128 m;
    int rc;

    cc_query_mkt_q(t, &hi, &lo);
    m = ((u128)hi << CC_QUERY_MKT_LIMB_BITS) + lo;
    rc = table_add(st, &b->t5, merge_5m_sql, cell_id, cc_rollup_bucket(ts_ms, CC_ROLLUP_BUCKET_MS),
                   ts_ms, t, q, m);
    if (rc == CC_OK)
        rc = table_add(st, &b->t30, merge_30m_sql, cell_id,
                       cc_rollup_bucket(ts_ms, CC_ROLLUP_COARSE_MS), ts_ms, t, q, m);
    return rc;
}

/* Rebuilds from raw readings: every cell (cell_id 0), or one cell's readings with
 * from_ts <= ts < to_ts. */
static int rebuild(sqlite3 *db, int64_t cell_id, int64_t from_ts, int64_t to_ts)
{
    static const char one_sql[] = "SELECT cold_cell_id, ts, temperature FROM readings"
                                  " WHERE cold_cell_id = ?1 AND ts >= ?2 AND ts < ?3"
                                  " ORDER BY cold_cell_id, ts";
    static const char all_sql[] = "SELECT cold_cell_id, ts, temperature FROM readings"
                                  " ORDER BY cold_cell_id, ts";
    static const char ins5_sql[] =
        "INSERT OR REPLACE INTO readings_5m (cold_cell_id, bucket_ts, min_temp, max_temp,"
        " sum_temp, count, mkt_sum, sum_q, mkt_hi, mkt_lo, first_ts, last_ts)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
    static const char ins30_sql[] =
        "INSERT OR REPLACE INTO readings_30m (cold_cell_id, bucket_ts, min_temp, max_temp,"
        " count, sum_q, mkt_hi, mkt_lo, first_ts, last_ts)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    sqlite3_stmt *sel = NULL, *ins5 = NULL, *ins30 = NULL;
    struct acc a5 = {0}, a30 = {0};
    int src;
    int rc;

    rc = cc_sql_prepare(db, cell_id > 0 ? one_sql : all_sql, &sel);
    if (rc == CC_OK)
        rc = cc_sql_prepare(db, ins5_sql, &ins5);
    if (rc == CC_OK)
        rc = cc_sql_prepare(db, ins30_sql, &ins30);
    if (rc != CC_OK)
        goto out;
    if (cell_id > 0 && (sqlite3_bind_int64(sel, 1, cell_id) != SQLITE_OK ||
                        sqlite3_bind_int64(sel, 2, from_ts) != SQLITE_OK ||
                        sqlite3_bind_int64(sel, 3, to_ts) != SQLITE_OK)) {
        rc = CC_ERR_DB;
        goto out;
    }
    while ((src = sqlite3_step(sel)) == SQLITE_ROW) {
        int64_t cell = sqlite3_column_int64(sel, 0);
        int64_t ts = sqlite3_column_int64(sel, 1);
        double t = sqlite3_column_double(sel, 2);
        int64_t b5 = cc_rollup_bucket(ts, CC_ROLLUP_BUCKET_MS),
                b30 = cc_rollup_bucket(ts, CC_ROLLUP_COARSE_MS);
        uint64_t hi, lo;
        u128 m;

        if (a5.have && (cell != a5.cell || b5 != a5.bucket))
            rc = flush(db, ins5, &a5);
        if (rc == CC_OK && a30.have && (cell != a30.cell || b30 != a30.bucket))
            rc = flush(db, ins30, &a30);
        if (rc != CC_OK)
            goto out;
        cc_query_mkt_q(t, &hi, &lo);
        m = ((u128)hi << CC_QUERY_MKT_LIMB_BITS) + lo;
        acc_add(&a5, cell, b5, ts, t, cc_query_temp_q(t), m);
        acc_add(&a30, cell, b30, ts, t, cc_query_temp_q(t), m);
    }
    if (src != SQLITE_DONE) {
        rc = cc_sql_step_rc(db, src, "rollup rebuild");
        goto out;
    }
    rc = flush(db, ins5, &a5);
    if (rc == CC_OK)
        rc = flush(db, ins30, &a30);

out:
    cc_sql_release(sel);
    cc_sql_release(ins5);
    cc_sql_release(ins30);
    return rc;
}

int cc_store_rollup_rebuild(sqlite3 *db, int64_t cell_id)
{
    return rebuild(db, cell_id, INT64_MIN, INT64_MAX);
}

/* Writes the finished bucket a through sql (ins5_span_sql: 12 parameters; ins30_span_sql:
 * 10) on either dialect and empties it. */
static int flush_span(struct cc_store *st, const char *sql, int coarse, struct acc *a)
{
    struct cc_stmt *s = NULL;
    int k = 1;
    int rc;

    if (!a->have)
        return CC_OK;
    rc = cc_stmt_prepare(st, sql, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, k++, a->cell);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, k++, a->bucket);
    if (rc == CC_OK)
        rc = cc_stmt_bind_double(s, k++, a->min);
    if (rc == CC_OK)
        rc = cc_stmt_bind_double(s, k++, a->max);
    if (rc == CC_OK && !coarse)
        rc = cc_stmt_bind_double(s, k++, a->sum);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, k++, a->count);
    if (rc == CC_OK && !coarse)
        rc = cc_stmt_bind_double(s, k++, a->mkt_sum);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, k++, a->sum_q);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, k++, (int64_t)(a->mkt >> CC_QUERY_MKT_LIMB_BITS));
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, k++, (int64_t)(a->mkt & LIMB_MASK));
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, k++, a->first_ts);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, k++, a->last_ts);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    cc_stmt_release(s);
    a->have = 0;
    return rc;
}

int cc_store_rollup_rebuild_span(struct cc_store *st, int64_t cell_id, int64_t from_ts,
                                 int64_t to_ts)
{
    static const char del5_sql[] = "DELETE FROM readings_5m WHERE cold_cell_id = $1"
                                   " AND bucket_ts >= $2 AND bucket_ts < $3";
    static const char del30_sql[] = "DELETE FROM readings_30m WHERE cold_cell_id = $1"
                                    " AND bucket_ts >= $2 AND bucket_ts < $3";
    /* Ties on ts (two devices of the cell) in device order: the floating sums (sum_temp,
     * mkt_sum) then add up in the same order on either database. */
    static const char sel_sql[] = "SELECT ts, temperature FROM readings"
                                  " WHERE cold_cell_id = $1 AND ts >= $2 AND ts < $3"
                                  " ORDER BY ts, device_id";
    /* The span's buckets were deleted first: plain inserts. */
    static const char ins5_span_sql[] =
        "INSERT INTO readings_5m (cold_cell_id, bucket_ts, min_temp, max_temp, sum_temp, count,"
        " mkt_sum, sum_q, mkt_hi, mkt_lo, first_ts, last_ts)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    static const char ins30_span_sql[] =
        "INSERT INTO readings_30m (cold_cell_id, bucket_ts, min_temp, max_temp, count, sum_q,"
        " mkt_hi, mkt_lo, first_ts, last_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    /* Whole half-hours, so every five-minute bucket inside is rewritten too. */
    int64_t lo = cc_rollup_bucket(from_ts, CC_ROLLUP_COARSE_MS);
    int64_t hi = cc_rollup_bucket(to_ts, CC_ROLLUP_COARSE_MS) + CC_ROLLUP_COARSE_MS;
    const char *dels[2] = {del5_sql, del30_sql};
    struct acc a5 = {0}, a30 = {0};
    struct cc_stmt *sel = NULL;
    int rc = CC_OK;

    if (cell_id <= 0 || from_ts > to_ts)
        return CC_ERR_VALIDATION;
    for (int i = 0; i < 2 && rc == CC_OK; i++) {
        struct cc_stmt *s = NULL;

        rc = cc_stmt_prepare(st, dels[i], &s);
        if (rc == CC_OK)
            rc = cc_stmt_bind_int64(s, 1, cell_id);
        if (rc == CC_OK)
            rc = cc_stmt_bind_int64(s, 2, lo);
        if (rc == CC_OK)
            rc = cc_stmt_bind_int64(s, 3, hi);
        if (rc == CC_OK)
            rc = cc_stmt_step(s);
        cc_stmt_release(s);
    }
    /* The terms are computed here in C, as on the ingest path of either store (the PG
     * batch insert gets its MKT limbs from the client too), so the rows are exact. */
    if (rc == CC_OK)
        rc = cc_stmt_prepare(st, sel_sql, &sel);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(sel, 1, cell_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(sel, 2, lo);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(sel, 3, hi);
    while (rc == CC_OK && (rc = cc_stmt_step(sel)) == CC_ROW) {
        int64_t ts = cc_stmt_column_int64(sel, 0);
        double t = cc_stmt_column_double(sel, 1);
        int64_t b5 = cc_rollup_bucket(ts, CC_ROLLUP_BUCKET_MS),
                b30 = cc_rollup_bucket(ts, CC_ROLLUP_COARSE_MS);
        uint64_t mhi, mlo;

        rc = CC_OK;
        if (a5.have && b5 != a5.bucket)
            rc = flush_span(st, ins5_span_sql, 0, &a5);
        if (rc == CC_OK && a30.have && b30 != a30.bucket)
            rc = flush_span(st, ins30_span_sql, 1, &a30);
        cc_query_mkt_q(t, &mhi, &mlo);
        acc_add(&a5, cell_id, b5, ts, t, cc_query_temp_q(t),
                ((u128)mhi << CC_QUERY_MKT_LIMB_BITS) + mlo);
        acc_add(&a30, cell_id, b30, ts, t, cc_query_temp_q(t),
                ((u128)mhi << CC_QUERY_MKT_LIMB_BITS) + mlo);
    }
    cc_stmt_release(sel);
    if (rc == CC_OK)
        rc = flush_span(st, ins5_span_sql, 0, &a5);
    if (rc == CC_OK)
        rc = flush_span(st, ins30_span_sql, 1, &a30);
    return rc;
}
