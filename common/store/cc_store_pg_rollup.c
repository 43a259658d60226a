/* cc_store_pg_rollup.c - the PostgreSQL store's rollup upsert: the readings a batch insert
 * stored (schema/pg/ingest.sql returns their keys) summed per cell and bucket here, in C,
 * with the terms of cc_rollup_math.h, and written to readings_5m and readings_30m by one
 * statement of pre-summed rows (docs/postgresql.md, "The batch insert").
 *
 * Why in C and not in the insert statement: the server spent about a fifth of the batch
 * statement on it (a hash join of the stored rows back to the batch, numeric arithmetic
 * for the MKT sum, several copies of every row between CTEs), where this is a sort of the
 * stored rows and a loop. The sums are the same ones SQLite's batch (cc_store_rollup.c)
 * adds: exact integers for count, sum_q and the MKT term (two 62-bit limbs, a 128-bit sum
 * here), and the two doubles (sum_temp, mkt_sum) added in arrival order as SQLite adds
 * them. */
#include <math.h>
#include <stdlib.h>

#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_pg_array.h"
#include "cc_rc.h"
#include "cc_rollup_math.h"
#include "cc_store.h"
#include "cc_store_impl.h"

typedef unsigned __int128 u128;

#define LIMB_MASK ((((uint64_t)1) << CC_QUERY_MKT_LIMB_BITS) - 1)

/* One statement for both tables, a row per bucket, in key order (two writers sharing
 * buckets then wait for each other instead of deadlocking). The MKT sum is two 62-bit
 * limbs: lo + lo' < 2^63 never overflows, and its carry goes to hi; every right-hand side
 * sees the old row, so mkt_hi sees the old mkt_lo. */
#define UPSERT_SET(t)                                                                              \
    " min_temp = least(" t ".min_temp, excluded.min_temp),"                                        \
    " max_temp = greatest(" t ".max_temp, excluded.max_temp),"                                     \
    " count = " t ".count + excluded.count, sum_q = " t ".sum_q + excluded.sum_q,"                 \
    " mkt_hi = " t ".mkt_hi + excluded.mkt_hi + ((" t ".mkt_lo + excluded.mkt_lo) >> 62),"         \
    " mkt_lo = (" t ".mkt_lo + excluded.mkt_lo) & 4611686018427387903,"                            \
    " first_ts = least(" t ".first_ts, excluded.first_ts),"                                        \
    " last_ts = greatest(" t ".last_ts, excluded.last_ts)"
static const char sql_rollups[] =
    "WITH f AS (INSERT INTO readings_5m (cold_cell_id, bucket_ts, min_temp, max_temp, sum_temp,"
    " count, mkt_sum, sum_q, mkt_hi, mkt_lo, first_ts, last_ts)"
    " SELECT * FROM unnest(CAST($1 AS bigint[]), CAST($2 AS bigint[]),"
    " CAST($3 AS double precision[]), CAST($4 AS double precision[]),"
    " CAST($5 AS double precision[]), CAST($6 AS bigint[]), CAST($7 AS double precision[]),"
    " CAST($8 AS bigint[]), CAST($9 AS bigint[]), CAST($10 AS bigint[]), CAST($11 AS bigint[]),"
    " CAST($12 AS bigint[]))"
    " ON CONFLICT (cold_cell_id, bucket_ts) DO UPDATE SET"
    " sum_temp = readings_5m.sum_temp + excluded.sum_temp,"
    " mkt_sum = readings_5m.mkt_sum + excluded.mkt_sum," UPSERT_SET(
        "readings_5m") ")"
                       " INSERT INTO readings_30m (cold_cell_id, bucket_ts, min_temp, max_temp, "
                       "count, sum_q,"
                       " mkt_hi, mkt_lo, first_ts, last_ts)"
                       " SELECT * FROM unnest(CAST($13 AS bigint[]), CAST($14 AS bigint[]),"
                       " CAST($15 AS double precision[]), CAST($16 AS double precision[]), "
                       "CAST($17 AS bigint[]),"
                       " CAST($18 AS bigint[]), CAST($19 AS bigint[]), CAST($20 AS bigint[]),"
                       " CAST($21 AS bigint[]), CAST($22 AS bigint[]))"
                       " ON CONFLICT (cold_cell_id, bucket_ts) DO UPDATE SET" UPSERT_SET(
                           "readings_30m");

/* The arrays of sql_rollups: 12 for readings_5m, then 10 for readings_30m. */
enum { F_CELL, F_BUCKET, F_MIN, F_MAX, F_SUM, F_COUNT, F_MKTF, F_Q, F_HI, F_LO, F_FIRST, F_LAST };
#define F_N 12
#define C_N 10
static const enum cc_pg_elem f_types[F_N] = {CC_PG_INT8,   CC_PG_INT8, CC_PG_FLOAT8, CC_PG_FLOAT8,
                                             CC_PG_FLOAT8, CC_PG_INT8, CC_PG_FLOAT8, CC_PG_INT8,
                                             CC_PG_INT8,   CC_PG_INT8, CC_PG_INT8,   CC_PG_INT8};
static const enum cc_pg_elem c_types[C_N] = {CC_PG_INT8, CC_PG_INT8, CC_PG_FLOAT8, CC_PG_FLOAT8,
                                             CC_PG_INT8, CC_PG_INT8, CC_PG_INT8,   CC_PG_INT8,
                                             CC_PG_INT8, CC_PG_INT8};

/* A bucket being summed. */
struct acc {
    int64_t cell, bucket;
    double min, max, sum, mkt_sum;
    int64_t count, sum_q, first_ts, last_ts;
    u128 mkt;
};

/* qsort's context: the rows the indexes point into (one thread per store). */
static _Thread_local const struct cc_store_row *sort_rows;

/* Stored rows by cell, 5-minute bucket, then position in the batch (arrival order). */
static int by_bucket(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    const struct cc_store_row *x = &sort_rows[a], *y = &sort_rows[b];
    int64_t bx = cc_rollup_bucket(x->r->ts_ms, CC_ROLLUP_BUCKET_MS);
    int64_t by = cc_rollup_bucket(y->r->ts_ms, CC_ROLLUP_BUCKET_MS);

    if (x->dev->cold_cell_id != y->dev->cold_cell_id)
        return x->dev->cold_cell_id < y->dev->cold_cell_id ? -1 : 1;
    if (bx != by)
        return bx < by ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Adds bucket a (or, for the 30-minute table, the 5-minute sums a holds) into into. */
static void acc_merge(struct acc *into, const struct acc *a, int64_t bucket, int fresh)
{
    if (fresh) {
        *into = *a;
        into->bucket = bucket;
        return;
    }
    into->min = a->min < into->min ? a->min : into->min;
    into->max = a->max > into->max ? a->max : into->max;
    into->sum += a->sum;
    into->mkt_sum += a->mkt_sum;
    into->count += a->count;
    into->sum_q += a->sum_q;
    into->mkt += a->mkt;
    into->first_ts = a->first_ts < into->first_ts ? a->first_ts : into->first_ts;
    into->last_ts = a->last_ts > into->last_ts ? a->last_ts : into->last_ts;
}

/* Appends a's row to the arrays v (5-minute: 12, 30-minute: 10). */
static int acc_put(struct cc_pg_array *v, int coarse, const struct acc *a)
{
    int k = 0;

    cc_pg_array_int(&v[k++], a->cell);
    cc_pg_array_int(&v[k++], a->bucket);
    cc_pg_array_double(&v[k++], a->min);
    cc_pg_array_double(&v[k++], a->max);
    if (!coarse)
        cc_pg_array_double(&v[k++], a->sum);
    cc_pg_array_int(&v[k++], a->count);
    if (!coarse)
        cc_pg_array_double(&v[k++], a->mkt_sum);
    cc_pg_array_int(&v[k++], a->sum_q);
    cc_pg_array_int(&v[k++], (int64_t)(a->mkt >> CC_QUERY_MKT_LIMB_BITS));
    cc_pg_array_int(&v[k++], (int64_t)(a->mkt & LIMB_MASK));
    cc_pg_array_int(&v[k++], a->first_ts);
    /* Each call fails once the array has failed: the last one's code tells. */
    return cc_pg_array_int(&v[k], a->last_ts);
}

/* Sums rows[idx[0..n)] (sorted by by_bucket) into fine[] per 5-minute bucket and those
 * into coarse[] per 30-minute one (exact: a 30-minute bucket is the union of six 5-minute
 * ones, and min, max, count and the integer sums add over a union). Sorted by (cell,
 * 5-minute bucket), the 30-minute keys come in order too. Counts go to *nf and *nc. */
static void sum_buckets(const struct cc_store_row *rows, const size_t *idx, size_t n,
                        struct acc *fine, size_t *nf, struct acc *coarse, size_t *nc)
{
    *nf = 0;
    *nc = 0;
    for (size_t i = 0; i < n; i++) {
        const struct cc_store_row *r = &rows[idx[i]];
        double t = r->r->temperature;
        int64_t cell = r->dev->cold_cell_id,
                bk = cc_rollup_bucket(r->r->ts_ms, CC_ROLLUP_BUCKET_MS);
        uint64_t hi, lo;
        struct acc one = {.cell = cell,
                          .min = t,
                          .max = t,
                          .sum = t,
                          .mkt_sum = exp(-CC_MKT_DH_R_K / (t + CC_KELVIN_OFFSET)),
                          .count = 1,
                          .sum_q = cc_query_temp_q(t),
                          .first_ts = r->r->ts_ms,
                          .last_ts = r->r->ts_ms};
        int fresh = *nf == 0 || fine[*nf - 1].cell != cell || fine[*nf - 1].bucket != bk;

        cc_query_mkt_q(t, &hi, &lo);
        one.mkt = ((u128)hi << CC_QUERY_MKT_LIMB_BITS) + lo;
        if (fresh)
            (*nf)++;
        acc_merge(&fine[*nf - 1], &one, bk, fresh);
    }
    for (size_t i = 0; i < *nf; i++) {
        int64_t bk = cc_rollup_bucket(fine[i].bucket, CC_ROLLUP_COARSE_MS);
        int fresh =
            *nc == 0 || coarse[*nc - 1].cell != fine[i].cell || coarse[*nc - 1].bucket != bk;

        if (fresh)
            (*nc)++;
        acc_merge(&coarse[*nc - 1], &fine[i], bk, fresh);
    }
}

int cc_store_pg_rollups_add(struct cc_store *st, const struct cc_store_row *rows, size_t *idx,
                            size_t n)
{
    struct cc_pg_array f[F_N] = {{0}}, c[C_N] = {{0}};
    struct cc_stmt *s = NULL;
    struct acc *fine = NULL, *coarse = NULL;
    size_t nf = 0, nc = 0;
    int rc = CC_OK;

    if (n == 0)
        return CC_OK;
    fine = malloc(n * sizeof *fine); /* at most n buckets of each size */
    coarse = malloc(n * sizeof *coarse);
    if (fine == NULL || coarse == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    sort_rows = rows;
    qsort(idx, n, sizeof *idx, by_bucket);
    sum_buckets(rows, idx, n, fine, &nf, coarse, &nc);
    for (int k = 0; rc == CC_OK && k < F_N; k++)
        rc = cc_pg_array_init(&f[k], f_types[k], nf);
    for (int k = 0; rc == CC_OK && k < C_N; k++)
        rc = cc_pg_array_init(&c[k], c_types[k], nc);
    for (size_t i = 0; rc == CC_OK && i < nf; i++)
        rc = acc_put(f, 0, &fine[i]);
    for (size_t i = 0; rc == CC_OK && i < nc; i++)
        rc = acc_put(c, 1, &coarse[i]);
    if (rc == CC_OK)
        rc = cc_stmt_prepare(st, sql_rollups, &s);
    for (int k = 0; rc == CC_OK && k < F_N; k++)
        rc = cc_pg_array_bind(s, k + 1, &f[k]);
    for (int k = 0; rc == CC_OK && k < C_N; k++)
        rc = cc_pg_array_bind(s, F_N + k + 1, &c[k]);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc != CC_OK && rc != CC_ERR_NOMEM)
        rc = CC_ERR_DB;
out:
    cc_stmt_release(s);
    for (int k = 0; k < F_N; k++)
        cc_pg_array_free(&f[k]);
    for (int k = 0; k < C_N; k++)
        cc_pg_array_free(&c[k]);
    free(fine);
    free(coarse);
    return rc;
}
