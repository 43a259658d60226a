/* cc_query.c - readings statistics and series of a cold cell, from the rollups and
 * from raw rows, with the same numbers on both paths (cc_query.h, docs/queries.md). */
#include "cc_query.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_http.h"
#include "cc_log.h"
#include "cc_pg_array.h"
#include "cc_rc.h"
#include "cc_time.h"

#define MS_PER_DAY 86400000LL

typedef unsigned __int128 u128;

/* The state both paths feed: stats, series and the out-of-range interval chain. */
struct eng {
    double lo, hi;
    int64_t bucket_ms;
    struct cc_query_result *res;
    size_t cap;
    u128 mkt;
    int have_prev; /* a reading before the current unit exists in range */
    int64_t prev_ts;
    int prev_out;
};

static int64_t ceil_to(int64_t ts, int64_t unit)
{
    int64_t f = cc_rollup_bucket(ts, unit);

    return f == ts ? ts : f + unit;
}

static int is_out(const struct eng *e, double t)
{
    return t < e->lo || t > e->hi;
}

/* Adds a group of readings (min, max, count, sums) whose series bucket is t_ms. */
static int eng_add(struct eng *e, int64_t t_ms, double mn, double mx, int64_t count, int64_t sum_q,
                   u128 mkt)
{
    struct cc_query_result *res = e->res;
    struct cc_query_stats *s = &res->stats;
    int64_t bt = cc_rollup_bucket(t_ms, e->bucket_ms);
    struct cc_query_bucket *b;

    if (count <= 0)
        return CC_OK;
    if (s->count == 0 || mn < s->min)
        s->min = mn;
    if (s->count == 0 || mx > s->max)
        s->max = mx;
    s->count += count;
    s->sum_q += sum_q;
    e->mkt += mkt;

    b = res->n > 0 ? &res->series[res->n - 1] : NULL;
    if (b == NULL || b->t_ms != bt) {
        if (res->n >= e->cap)
            return CC_ERR_INTERNAL; /* input is ascending and within range: cannot happen */
        b = &res->series[res->n++];
        b->t_ms = bt;
        b->min = mn;
        b->max = mx;
        b->count = 0;
        b->sum_q = 0;
    }
    if (mn < b->min)
        b->min = mn;
    if (mx > b->max)
        b->max = mx;
    b->count += count;
    b->sum_q += sum_q;
    return CC_OK;
}

/* The out-of-range chain: a unit of readings (one reading, or a bucket) spanning
 * first_ts..last_ts, with internal out-of-range time and the state of its last
 * reading. The interval from the previous unit's last reading to first_ts counts when
 * that reading was out of range. */
static void eng_oor(struct eng *e, int64_t first_ts, int64_t last_ts, int64_t internal_ms,
                    int last_out)
{
    if (e->have_prev && e->prev_out)
        e->res->stats.oor_ms += first_ts - e->prev_ts;
    e->res->stats.oor_ms += internal_ms;
    e->have_prev = 1;
    e->prev_ts = last_ts;
    e->prev_out = last_out;
}

static int eng_reading(struct eng *e, int64_t ts, double t)
{
    uint64_t hi, lo;

    cc_query_mkt_q(t, &hi, &lo);
    eng_oor(e, ts, ts, 0, is_out(e, t));
    return eng_add(e, ts, t, t, 1, cc_query_temp_q(t), ((u128)hi << CC_QUERY_MKT_LIMB_BITS) + lo);
}

#define RAW_SQL                                                                                    \
    "SELECT ts, temperature FROM readings WHERE cold_cell_id = $1 AND ts >= $2 AND ts < $3"        \
    " ORDER BY ts, device_id"
static const char raw_sql[] = RAW_SQL;

/* Lends the statement for sql with $1..$3 bound to a, b, c (every query here is keyed
 * by the cell and a time window), asking for binary results: every column these texts
 * select is a bigint or a double precision read as a number (ts, temperature: NOT NULL;
 * ROLLUP_COLS), so PostgreSQL neither formats nor libpq's caller parses ~15,000 values
 * per 30-day query (docs/queries.md). SQLite ignores it. */
static int prepare3(struct cc_store *st, const char *sql, int64_t a, int64_t b, int64_t c,
                    struct cc_stmt **out)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql, &s);

    if (rc == CC_OK)
        rc = cc_stmt_set_binary_results(s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, a);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 2, b);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 3, c);
    if (rc != CC_OK) {
        cc_stmt_release(s);
        return rc;
    }
    *out = s;
    return CC_OK;
}

/* The rollup rows that straddle a threshold (some readings in lo..hi, some outside),
 * bound as $4 and $5; the C test in eng_fives/eng_halves is the same. The rows below
 * them (five-minute rows of a half hour, raw rows of a five-minute bucket) are read for
 * a whole level in one statement, joined to the straddling rows, not per bucket: one
 * round trip per level on PostgreSQL, where a statement costs far more than a step. */
#define ROLLUP_COLS(t)                                                                             \
    t ".bucket_ts, " t ".min_temp, " t ".max_temp, " t ".count, " t ".sum_q, " t ".mkt_hi, " t     \
      ".mkt_lo, " t ".first_ts, " t ".last_ts"
#define STRADDLES(t)                                                                               \
    "(" t ".min_temp < $4 OR " t ".max_temp > $5) AND " t ".max_temp >= $4 AND " t                 \
    ".min_temp <= $5 AND " t ".count > 0"

#define ROLLUP_5M_SQL                                                                              \
    "SELECT " ROLLUP_COLS("f") " FROM readings_5m f WHERE f.cold_cell_id = $1"                     \
                               " AND f.bucket_ts >= $2 AND f.bucket_ts < $3 ORDER BY f.bucket_ts"
static const char rollup_5m_sql[] = ROLLUP_5M_SQL;
static const char rollup_30m_sql[] =
    "SELECT " ROLLUP_COLS("c") " FROM readings_30m c"
                               " WHERE c.cold_cell_id = $1 AND c.bucket_ts >= $2 AND c.bucket_ts < "
                               "$3 ORDER BY c.bucket_ts";
/* The raw rows of the straddling five minutes of [$2, $3); $6 the five-minute width. */
static const char fine_raw_sql[] =
    "SELECT r.ts, r.temperature FROM readings_5m f JOIN readings r"
    " ON r.cold_cell_id = f.cold_cell_id AND r.ts >= f.bucket_ts AND r.ts < f.bucket_ts + $6"
    " WHERE f.cold_cell_id = $1 AND f.bucket_ts >= $2 AND f.bucket_ts < $3"
    " AND " STRADDLES("f") " ORDER BY r.ts, r.device_id";
/* The five-minute rows of the straddling half hours of [$2, $3); $6 the half hour. */
static const char coarse_5m_sql[] = "SELECT " ROLLUP_COLS(
    "f") " FROM readings_30m c JOIN readings_5m f"
         " ON f.cold_cell_id = c.cold_cell_id AND f.bucket_ts >= c.bucket_ts"
         " AND f.bucket_ts < c.bucket_ts + $6"
         " WHERE c.cold_cell_id = $1 AND c.bucket_ts >= $2 AND c.bucket_ts < $3"
         " AND " STRADDLES("c") " ORDER BY f.bucket_ts";
/* The raw rows of the straddling five minutes of those half hours; $7 five minutes. */
static const char coarse_raw_sql[] =
    "SELECT r.ts, r.temperature FROM readings_30m c JOIN readings_5m f"
    " ON f.cold_cell_id = c.cold_cell_id AND f.bucket_ts >= c.bucket_ts"
    " AND f.bucket_ts < c.bucket_ts + $6 JOIN readings r"
    " ON r.cold_cell_id = f.cold_cell_id AND r.ts >= f.bucket_ts AND r.ts < f.bucket_ts + $7"
    " WHERE c.cold_cell_id = $1 AND c.bucket_ts >= $2 AND c.bucket_ts < $3"
    " AND " STRADDLES("c") " AND " STRADDLES("f") " ORDER BY r.ts, r.device_id";

/* The raw rows of one straddling five-minute bucket f on PostgreSQL: a LATERAL subquery
 * that OFFSET 0 keeps from being flattened into the join, so each bucket is one index
 * range scan of readings_cell_ts (cell, [f.bucket_ts, f.bucket_ts + width)). Written as a
 * plain join (the texts above, SQLite's), PostgreSQL's planner started from readings
 * instead: it read and sorted all of the cell's raw rows in the range (43,200 for 30 days
 * at one a minute) and looped them over the few straddling buckets, 100-150 ms on the
 * benchmark's 10 M readings (docs/queries.md). SQLite has no LATERAL and plans the join
 * from the buckets on its own. $w is the five-minute width's parameter. */
#define PG_BUCKET_RAW(w)                                                                           \
    " CROSS JOIN LATERAL (SELECT x.ts, x.temperature, x.device_id FROM readings x"                 \
    " WHERE x.cold_cell_id = $1 AND x.ts >= f.bucket_ts AND x.ts < f.bucket_ts + " w               \
    " OFFSET 0) r"

/* fine_raw_sql on PostgreSQL. */
static const char fine_raw_pg_sql[] = "SELECT r.ts, r.temperature FROM readings_5m f" PG_BUCKET_RAW(
    "$6") " WHERE f.cold_cell_id = $1 AND f.bucket_ts >= $2 AND f.bucket_ts < $3"
          " AND " STRADDLES("f") " ORDER BY r.ts, r.device_id";

/* On PostgreSQL a query sends the edges' statements ahead, head and tail lent at once
 * (plan_send): the tail's are the head's texts at addresses of their own, so that each is
 * a cached statement of its own (cc_dbi.h keys the cache by address; a second lending of
 * one text would be prepared and planned anew each time). */
static const char raw_tail_sql[] = RAW_SQL;
static const char rollup_5m_tail_sql[] = ROLLUP_5M_SQL;
/* coarse_raw_sql on PostgreSQL. */
static const char coarse_raw_pg_sql[] =
    "SELECT r.ts, r.temperature FROM readings_30m c JOIN readings_5m f"
    " ON f.cold_cell_id = c.cold_cell_id AND f.bucket_ts >= c.bucket_ts"
    " AND f.bucket_ts < c.bucket_ts + $6" PG_BUCKET_RAW(
        "$7") " WHERE c.cold_cell_id = $1 AND c.bucket_ts >= $2 AND c.bucket_ts < $3"
              " AND " STRADDLES("c") " AND " STRADDLES("f") " ORDER BY r.ts, r.device_id";

/* The detail of the half hours on PostgreSQL, given the straddling half hours that the
 * half-hour statement returned as the array $2 (ascending; binary, cc_pg_array.h): one
 * primary-key range of readings_5m per element ($3 the half hour). The range texts above
 * scan and filter every half hour of the window again in each of the two statements
 * (1,440 rows for 30 days: 0.3 ms of each one's 0.6-0.7 ms, docs/queries.md). OFFSET 0
 * keeps each LATERAL subquery a range scan per element, as in PG_BUCKET_RAW: as a plain
 * join the planner scanned all of the cell's five-minute rows against the list. These:
 * the five-minute rows of those half hours. */
static const char coarse_5m_list_sql[] = "SELECT " ROLLUP_COLS(
    "f") " FROM unnest(CAST($2 AS bigint[])) c(b) CROSS JOIN LATERAL"
         " (SELECT " ROLLUP_COLS(
             "y") " FROM readings_5m y"
                  " WHERE y.cold_cell_id = $1 AND y.bucket_ts >= c.b"
                  " AND y.bucket_ts < c.b + $3 OFFSET 0) f ORDER BY f.bucket_ts";
/* The raw rows of their straddling five minutes ($4, $5 the thresholds, $6 five
 * minutes). */
static const char coarse_raw_list_sql[] =
    "SELECT r.ts, r.temperature FROM unnest(CAST($2 AS bigint[])) c(b) CROSS JOIN LATERAL"
    " (SELECT y.bucket_ts FROM readings_5m y WHERE y.cold_cell_id = $1 AND y.bucket_ts >= c.b"
    " AND y.bucket_ts < c.b + $3 AND " STRADDLES("y") " OFFSET 0) f" PG_BUCKET_RAW(
        "$6") " ORDER BY r.ts, r.device_id";

/* Straddling half hours passed as a list at most (tests lower it to reach the range
 * texts); a query with more reads its detail with the range texts. */
static size_t pg_list_max = CC_QUERY_PG_LIST_MAX;
_Static_assert(CC_QUERY_PG_LIST_MAX <= CC_PG_ARRAY_ELEMS_MAX, "a list fits one array");

void cc_query_set_pg_list_max(size_t n)
{
    pg_list_max = n < CC_PG_ARRAY_ELEMS_MAX ? n : CC_PG_ARRAY_ELEMS_MAX; /* one array's most */
}

/* One statement of a level, run on its first use (a level may need none) or sent ahead
 * (level_send), and then read row by row. */
struct level {
    struct cc_store *st;
    const char *sql;
    int64_t cell_id, r0, r1;
    int nparams;              /* 3: cell and window; 5: + lo, hi; 6, 7: + the widths w6, w7 */
    int64_t w6, w7;           /* $6, $7 */
    struct cc_pg_array *list; /* non-NULL: $2 is this list, $3 w6, [$4 lo, $5 hi, $6 w7] */
    struct cc_stmt *s;        /* NULL until bound */
    int sent;                 /* bound and sent ahead, not stepped yet */
    int rc;                   /* CC_ROW (on a row), CC_OK (no more) or an error */
};

static void level_init(struct level *l, struct cc_store *st, const char *sql, int64_t cell_id,
                       int64_t r0, int64_t r1, int nparams, int64_t w6, int64_t w7)
{
    memset(l, 0, sizeof *l);
    l->st = st;
    l->sql = sql;
    l->cell_id = cell_id;
    l->r0 = r0;
    l->r1 = r1;
    l->nparams = nparams;
    l->w6 = w6;
    l->w7 = w7;
}

/* Steps l's statement (when rc, the binding's outcome, is CC_OK) and counts the row read;
 * returns where l stands (struct level's rc). */
static int level_step(const struct eng *e, struct level *l, int rc)
{
    l->rc = rc == CC_OK ? cc_stmt_step(l->s) : rc;
    if (l->rc == CC_ROW)
        e->res->rows_read++;
    return l->rc;
}

/* Binds the band (lo, hi) at parameters i and i + 1. */
static int bind_band(const struct eng *e, struct cc_stmt *s, int i)
{
    int rc = cc_stmt_bind_double(s, i, e->lo);

    return rc == CC_OK ? cc_stmt_bind_double(s, i + 1, e->hi) : rc;
}

/* level_bind of a level given a list (struct level's list). */
static int level_bind_list(const struct eng *e, struct level *l)
{
    int rc = cc_stmt_prepare(l->st, l->sql, &l->s);

    if (rc == CC_OK)
        rc = cc_stmt_set_binary_results(l->s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(l->s, 1, l->cell_id);
    if (rc == CC_OK)
        rc = cc_pg_array_bind(l->s, 2, l->list);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(l->s, 3, l->w6);
    if (rc == CC_OK && l->nparams >= 6)
        rc = bind_band(e, l->s, 4);
    if (rc == CC_OK && l->nparams >= 6)
        rc = cc_stmt_bind_int64(l->s, 6, l->w7);
    return rc;
}

/* Lends and binds l's statement (l->s). */
static int level_bind(const struct eng *e, struct level *l)
{
    int rc;

    if (l->list != NULL)
        return level_bind_list(e, l);
    rc = prepare3(l->st, l->sql, l->cell_id, l->r0, l->r1, &l->s);
    if (rc == CC_OK && l->nparams >= 5)
        rc = bind_band(e, l->s, 4);
    if (rc == CC_OK && l->nparams >= 6)
        rc = cc_stmt_bind_int64(l->s, 6, l->w6);
    if (rc == CC_OK && l->nparams >= 7)
        rc = cc_stmt_bind_int64(l->s, 7, l->w7);
    return rc;
}

/* Sends l's statement ahead (cc_stmt_send), when its window is not empty: PostgreSQL
 * works on it while the caller reads the statements sent before. */
static int level_send(const struct eng *e, struct level *l)
{
    int rc;

    if (l->r0 >= l->r1 && l->list == NULL)
        return CC_OK;
    rc = level_bind(e, l);
    if (rc == CC_OK)
        rc = cc_stmt_send(l->s);
    l->sent = rc == CC_OK;
    return rc;
}

/* Runs l's statement if not yet, and returns where it stands (struct level's rc). */
static int level_peek(const struct eng *e, struct level *l)
{
    if (l->sent) {
        l->sent = 0;
        return level_step(e, l, CC_OK);
    }
    if (l->s != NULL)
        return l->rc;
    return level_step(e, l, level_bind(e, l));
}

static void level_next(const struct eng *e, struct level *l)
{
    level_step(e, l, CC_OK);
}

static void level_close(struct level *l)
{
    cc_stmt_release(l->s);
    l->s = NULL;
    l->sent = 0;
}

/* One row of a rollup table (ROLLUP_COLS). */
struct rollup_row {
    int64_t b, count, sum_q, first_ts, last_ts;
    double mn, mx;
    u128 mkt;
};

static void rollup_read(struct cc_stmt *s, struct rollup_row *r)
{
    uint64_t hi = (uint64_t)cc_stmt_column_int64(s, 5);
    uint64_t lo = (uint64_t)cc_stmt_column_int64(s, 6);

    r->b = cc_stmt_column_int64(s, 0);
    r->mn = cc_stmt_column_double(s, 1);
    r->mx = cc_stmt_column_double(s, 2);
    r->count = cc_stmt_column_int64(s, 3);
    r->sum_q = cc_stmt_column_int64(s, 4);
    r->mkt = ((u128)hi << CC_QUERY_MKT_LIMB_BITS) + lo;
    r->first_ts = cc_stmt_column_int64(s, 7);
    r->last_ts = cc_stmt_column_int64(s, 8);
}

/* -1: every reading of the row in range, 1: every one out, 0: it straddles. */
static int rollup_side(const struct eng *e, const struct rollup_row *r)
{
    if (r->mn >= e->lo && r->mx <= e->hi)
        return -1;
    if (r->mx < e->lo || r->mn > e->hi)
        return 1;
    return 0;
}

/* A five-minute bucket that straddles a threshold: its out-of-range time from its raw
 * rows, the next ones of raw (the raw rows of the level's straddling buckets, in order).
 * When retention has removed some of them (fewer rows than the rollup counted) the
 * whole bucket counts as out of range: the answer errs on the safe side. */
static int eng_mixed(struct eng *e, struct level *raw, const struct rollup_row *r)
{
    int64_t n = 0, internal = 0, l_first = 0, l_prev = 0;
    int l_out = 0;

    while (level_peek(e, raw) == CC_ROW) {
        int64_t ts = cc_stmt_column_int64(raw->s, 0);
        int out = is_out(e, cc_stmt_column_double(raw->s, 1));

        if (ts >= r->b + CC_ROLLUP_BUCKET_MS)
            break; /* the next bucket's */
        level_next(e, raw);
        if (ts < r->b)
            continue; /* not one of this bucket's: cannot happen, the two tests agree */
        if (n == 0)
            l_first = ts;
        else if (l_out)
            internal += ts - l_prev;
        l_prev = ts;
        l_out = out;
        n++;
    }
    if (raw->rc != CC_ROW && raw->rc != CC_OK)
        return raw->rc;
    if (n == r->count)
        eng_oor(e, l_first, l_prev, internal, l_out);
    else
        eng_oor(e, r->first_ts, r->last_ts, r->last_ts - r->first_ts, 1);
    return CC_OK;
}

/* Feeds the five-minute rows of fives with from <= bucket_ts < until, straddling ones
 * through their raw rows (raw). */
static int eng_fives(struct eng *e, struct level *fives, struct level *raw, int64_t from,
                     int64_t until)
{
    struct rollup_row r;
    int side, rc;

    while ((rc = level_peek(e, fives)) == CC_ROW) {
        rollup_read(fives->s, &r);
        if (r.b >= until)
            return CC_OK;
        level_next(e, fives);
        if (r.count <= 0 || r.b < from)
            continue; /* before from: cannot happen, the SQL and C tests agree */
        side = rollup_side(e, &r);
        rc = CC_OK;
        if (side == 0)
            rc = eng_mixed(e, raw, &r);
        else
            eng_oor(e, r.first_ts, r.last_ts, side > 0 ? r.last_ts - r.first_ts : 0, side > 0);
        if (rc == CC_OK)
            rc = eng_add(e, r.b, r.mn, r.mx, r.count, r.sum_q, r.mkt);
        if (rc != CC_OK)
            return rc;
    }
    return rc;
}

/* Feeds every raw reading of raw's window in (ts, device_id) order. */
static int eng_raw(struct eng *e, struct level *raw)
{
    int rc;

    if (raw->r0 >= raw->r1)
        return CC_OK;
    while ((rc = level_peek(e, raw)) == CC_ROW) {
        rc = eng_reading(e, cc_stmt_column_int64(raw->s, 0), cc_stmt_column_double(raw->s, 1));
        if (rc != CC_OK)
            return rc;
        level_next(e, raw);
    }
    return rc;
}

/* Feeds the five-minute buckets of fives' window, straddling ones through raw. */
static int eng_fine(struct eng *e, struct level *fives, struct level *raw)
{
    if (fives->r0 >= fives->r1)
        return CC_OK;
    return eng_fives(e, fives, raw, INT64_MIN, INT64_MAX);
}

/* The half hours of a query: their rows, and the detail of the straddling ones. */
struct halves {
    struct level coarse;     /* the half-hour rows of [c0, c1) (r0, r1) */
    struct rollup_row *rows; /* all of them, read before any is fed (halves_read) */
    size_t n;
    struct cc_pg_array list; /* PostgreSQL: the straddling ones (halves_list) */
    struct level fives, raw; /* their five-minute rows and those rows' raw rows */
};

/* The half-hour rows (h->rows, h->n), all read before any is fed: the straddling ones must
 * be known before their detail's statements run. At most one row a half hour (the
 * primary key). */
static int halves_read(struct eng *e, struct halves *h)
{
    struct level *l = &h->coarse;
    size_t cap = (size_t)((l->r1 - l->r0) / CC_ROLLUP_COARSE_MS) + 1;
    int rc;

    h->rows = malloc(cap * sizeof *h->rows);
    if (h->rows == NULL)
        return CC_ERR_NOMEM;
    while ((rc = level_peek(e, l)) == CC_ROW) {
        if (h->n >= cap)
            return CC_ERR_INTERNAL; /* two rows of one half hour: the key forbids it */
        rollup_read(l->s, &h->rows[h->n++]);
        level_next(e, l);
    }
    level_close(l);
    return rc;
}

/* How many of rows straddle a threshold. */
static size_t straddling(const struct eng *e, const struct rollup_row *rows, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += rows[i].count > 0 && rollup_side(e, &rows[i]) == 0;
    return k;
}

/* The straddling half hours of rows as a bigint[] in *list (*has 1), or nothing (*has 0)
 * when there are none (no detail statement runs) or more than pg_list_max (the range
 * texts then). cc_pg_array_free(list) afterwards in any case. */
static int halves_list(const struct eng *e, const struct rollup_row *rows, size_t n,
                       struct cc_pg_array *list, int *has)
{
    size_t k = straddling(e, rows, n);
    int rc;

    memset(list, 0, sizeof *list);
    *has = 0;
    if (k == 0 || k > pg_list_max)
        return CC_OK;
    rc = cc_pg_array_init(list, CC_PG_INT8, k);
    for (size_t i = 0; rc == CC_OK && i < n; i++)
        if (rows[i].count > 0 && rollup_side(e, &rows[i]) == 0)
            rc = cc_pg_array_int(list, rows[i].b);
    *has = rc == CC_OK;
    return rc;
}

/* Reads the half hours (h->coarse set up, sent ahead on PostgreSQL) and sets up their
 * detail, which PostgreSQL is sent ahead. */
static int halves_start(struct cc_store *st, struct eng *e, struct halves *h)
{
    int64_t cell_id = h->coarse.cell_id, c0 = h->coarse.r0, c1 = h->coarse.r1;
    int pg = cc_store_dialect(st) == CC_DIALECT_PG, has = 0, rc;

    if (c0 >= c1)
        return CC_OK;
    rc = halves_read(e, h);
    if (rc == CC_OK && pg)
        rc = halves_list(e, h->rows, h->n, &h->list, &has);
    if (rc != CC_OK)
        return rc;
    if (has) {
        level_init(&h->fives, st, coarse_5m_list_sql, cell_id, c0, c1, 3, CC_ROLLUP_COARSE_MS, 0);
        level_init(&h->raw, st, coarse_raw_list_sql, cell_id, c0, c1, 6, CC_ROLLUP_COARSE_MS,
                   CC_ROLLUP_BUCKET_MS);
        h->fives.list = h->raw.list = &h->list;
    } else {
        level_init(&h->fives, st, coarse_5m_sql, cell_id, c0, c1, 6, CC_ROLLUP_COARSE_MS, 0);
        level_init(&h->raw, st, pg ? coarse_raw_pg_sql : coarse_raw_sql, cell_id, c0, c1, 7,
                   CC_ROLLUP_COARSE_MS, CC_ROLLUP_BUCKET_MS);
    }
    if (pg && straddling(e, h->rows, h->n) > 0) {
        rc = level_send(e, &h->fives);
        if (rc == CC_OK)
            rc = level_send(e, &h->raw);
    }
    return rc;
}

/* Feeds the half hours (halves_start); a straddling one goes down to its five-minute
 * rows, which carry the same sums. */
static int halves_feed(struct eng *e, struct halves *h)
{
    int side, rc = CC_OK;

    for (size_t i = 0; i < h->n && rc == CC_OK; i++) {
        const struct rollup_row *r = &h->rows[i];

        if (r->count <= 0)
            continue;
        side = rollup_side(e, r);
        if (side == 0) {
            rc = eng_fives(e, &h->fives, &h->raw, r->b, r->b + CC_ROLLUP_COARSE_MS);
        } else {
            eng_oor(e, r->first_ts, r->last_ts, side > 0 ? r->last_ts - r->first_ts : 0, side > 0);
            rc = eng_add(e, r->b, r->mn, r->mx, r->count, r->sum_q, r->mkt);
        }
    }
    return rc;
}

/* Every statement of a query over [from, to) with whole five-minute buckets in [r0, r1)
 * and whole half hours in [c0, c1) (c0 = c1: none): raw rows of the edges, five-minute
 * rows and their straddling ones' raw rows at both ends, the half hours. */
struct plan {
    struct level head_raw, head_5m, head_fine;
    struct halves halves;
    struct level tail_5m, tail_fine, tail_raw;
};

static void plan_init(struct plan *p, struct cc_store *st, int64_t cell_id,
                      const struct cc_query_range *rg, int64_t r0, int64_t c0, int64_t c1,
                      int64_t r1)
{
    int pg = cc_store_dialect(st) == CC_DIALECT_PG;

    memset(p, 0, sizeof *p);
    level_init(&p->head_raw, st, raw_sql, cell_id, rg->from_ms, r0, 3, 0, 0);
    level_init(&p->head_5m, st, rollup_5m_sql, cell_id, r0, c0, 3, 0, 0);
    level_init(&p->head_fine, st, pg ? fine_raw_pg_sql : fine_raw_sql, cell_id, r0, c0, 6,
               CC_ROLLUP_BUCKET_MS, 0);
    level_init(&p->halves.coarse, st, rollup_30m_sql, cell_id, c0, c1, 3, 0, 0);
    level_init(&p->tail_5m, st, rollup_5m_tail_sql, cell_id, c1, r1, 3, 0, 0);
    level_init(&p->tail_fine, st, pg ? fine_raw_pg_sql : fine_raw_sql, cell_id, c1, r1, 6,
               CC_ROLLUP_BUCKET_MS, 0);
    level_init(&p->tail_raw, st, raw_tail_sql, cell_id, r1, rg->to_ms, 3, 0, 0);
}

/* On PostgreSQL, sends the statements that need no other's rows ahead, the half hours
 * first (their detail waits for them): one round trip for all, and the server works on
 * the rest while the client reads the half hours (docs/queries.md). Not the raw rows of
 * the ends' straddling five minutes: a cell that holds its temperature needs none, and
 * planning that statement (a LATERAL over readings' partitions) cost the server more than
 * the round trip it saves when it is needed (it then runs on its own, as before). */
static int plan_send(const struct eng *e, struct plan *p)
{
    struct level *order[] = {&p->halves.coarse, &p->head_raw, &p->head_5m, &p->tail_5m,
                             &p->tail_raw};
    int rc = CC_OK;

    if (cc_store_dialect(p->head_raw.st) != CC_DIALECT_PG)
        return CC_OK;
    for (size_t i = 0; rc == CC_OK && i < sizeof order / sizeof order[0]; i++)
        rc = level_send(e, order[i]);
    return rc;
}

/* Feeds the levels in time order, each pair closed when done: on SQLite, whose
 * statements are lent on their first step, the tail's straddling raw rows then reuse the
 * head's cached statement. */
static int plan_run(struct cc_store *st, struct eng *e, struct plan *p)
{
    int rc = plan_send(e, p);

    if (rc == CC_OK)
        rc = halves_start(st, e, &p->halves);
    if (rc == CC_OK)
        rc = eng_raw(e, &p->head_raw);
    if (rc == CC_OK)
        rc = eng_fine(e, &p->head_5m, &p->head_fine);
    level_close(&p->head_5m);
    level_close(&p->head_fine);
    if (rc == CC_OK)
        rc = halves_feed(e, &p->halves);
    if (rc == CC_OK)
        rc = eng_fine(e, &p->tail_5m, &p->tail_fine);
    if (rc == CC_OK)
        rc = eng_raw(e, &p->tail_raw);
    return rc;
}

static void plan_close(struct plan *p)
{
    struct level *all[] = {&p->head_raw,      &p->head_5m,      &p->head_fine,
                           &p->halves.coarse, &p->halves.fives, &p->halves.raw,
                           &p->tail_5m,       &p->tail_fine,    &p->tail_raw};

    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        level_close(all[i]);
    cc_pg_array_free(&p->halves.list);
    free(p->halves.rows);
}

/* Sets up res and e for rg. */
static int eng_init(struct eng *e, struct cc_query_result *res, int64_t cell_id,
                    const struct cc_query_range *rg, double lo, double hi)
{
    int64_t nb;

    if (rg->bucket_ms <= 0 || rg->bucket_ms % CC_ROLLUP_BUCKET_MS != 0 ||
        rg->from_ms >= rg->to_ms || rg->to_ms - rg->from_ms > CC_QUERY_MAX_SPAN_MS)
        return CC_ERR_VALIDATION;
    nb = (rg->to_ms - rg->from_ms) / rg->bucket_ms + 2;
    if (nb > CC_QUERY_MAX_BUCKETS)
        return CC_ERR_VALIDATION;
    memset(res, 0, sizeof *res);
    memset(e, 0, sizeof *e);
    res->series = malloc((size_t)nb * sizeof *res->series);
    if (res->series == NULL)
        return CC_ERR_NOMEM;
    res->range = *rg;
    res->cell_id = cell_id;
    e->lo = lo;
    e->hi = hi;
    e->bucket_ms = rg->bucket_ms;
    e->res = res;
    e->cap = (size_t)nb;
    return CC_OK;
}

static void eng_finish(struct eng *e)
{
    e->res->stats.mkt_hi = (uint64_t)(e->mkt >> CC_QUERY_MKT_LIMB_BITS);
    e->res->stats.mkt_lo = (uint64_t)(e->mkt & ((((u128)1) << CC_QUERY_MKT_LIMB_BITS) - 1));
}

/* One snapshot of rollups and raw rows for the whole computation: a read transaction,
 * unless the caller already holds one (apid's request transaction). */
static int read_begin(struct cc_store *st, int *began)
{
    int rc;

    *began = 0;
    if (cc_store_in_transaction(st))
        return CC_OK;
    rc = cc_store_read_begin(st);
    if (rc != CC_OK)
        return CC_ERR_DB;
    *began = 1;
    return CC_OK;
}

static void read_end(struct cc_store *st, int began)
{
    if (began)
        cc_store_read_end(st);
}

int cc_query_readings(struct cc_store *st, int64_t cell_id, const struct cc_query_range *rg,
                      double lo, double hi, struct cc_query_result *out)
{
    struct cc_query_result res;
    struct eng e;
    int64_t r0, r1;
    int began = 0;
    int rc;

    rc = eng_init(&e, &res, cell_id, rg, lo, hi);
    if (rc != CC_OK)
        return rc;
    rc = read_begin(st, &began);
    if (rc != CC_OK)
        goto fail;
    r0 = ceil_to(rg->from_ms, CC_ROLLUP_BUCKET_MS);
    r1 = cc_rollup_bucket(rg->to_ms, CC_ROLLUP_BUCKET_MS);
    if (r0 >= r1) {
        struct level raw;

        level_init(&raw, st, raw_sql, cell_id, rg->from_ms, rg->to_ms, 3, 0, 0);
        rc = eng_raw(&e, &raw);
        level_close(&raw);
    } else {
        /* Half hours only where the series buckets hold whole half hours. */
        int64_t c0 = ceil_to(r0, CC_ROLLUP_COARSE_MS),
                c1 = cc_rollup_bucket(r1, CC_ROLLUP_COARSE_MS);
        struct plan p;

        if (rg->bucket_ms % CC_ROLLUP_COARSE_MS != 0 || c0 >= c1)
            c0 = c1 = r1;
        plan_init(&p, st, cell_id, rg, r0, c0, c1, r1);
        rc = plan_run(st, &e, &p);
        plan_close(&p);
    }
    read_end(st, began);
    if (rc != CC_OK)
        goto fail;
    eng_finish(&e);
    *out = res;
    return CC_OK;

fail:
    cc_query_result_free(&res);
    return rc;
}

int cc_query_readings_raw(struct cc_store *st, int64_t cell_id, const struct cc_query_range *rg,
                          double lo, double hi, struct cc_query_result *out)
{
    struct cc_query_result res;
    struct level raw;
    struct eng e;
    int rc;

    rc = eng_init(&e, &res, cell_id, rg, lo, hi);
    if (rc != CC_OK)
        return rc;
    level_init(&raw, st, raw_sql, cell_id, rg->from_ms, rg->to_ms, 3, 0, 0);
    rc = eng_raw(&e, &raw);
    level_close(&raw);
    if (rc != CC_OK) {
        cc_query_result_free(&res);
        return rc;
    }
    eng_finish(&e);
    *out = res;
    return CC_OK;
}

void cc_query_result_free(struct cc_query_result *res)
{
    if (res == NULL)
        return;
    free(res->series);
    res->series = NULL;
    res->n = 0;
}

/* -- parameters ---------------------------------------------------------------------- */

static int bad(cJSON **err, const char *message, const char *field, const char *issue)
{
    cJSON *e = cc_error_new(CC_ERR_VALIDATION, message);

    if (e == NULL)
        return CC_ERR_NOMEM;
    if (field != NULL && cc_error_add_detail(e, field, issue) != CC_OK) {
        cJSON_Delete(e);
        return CC_ERR_NOMEM;
    }
    *err = e;
    return CC_ERR_VALIDATION;
}

static int64_t bucket_for_span(int64_t span_ms)
{
    if (span_ms <= MS_PER_DAY)
        return 300000;
    if (span_ms <= 7 * MS_PER_DAY)
        return 1800000;
    if (span_ms <= 31 * MS_PER_DAY)
        return 7200000;
    return MS_PER_DAY;
}

/* Reads one ISO-8601 parameter. 1 found and valid, 0 absent, -1 invalid. */
static int time_param(const char *qs, const char *name, int64_t *out)
{
    char v[CC_QUERY_VALUE_MAX];
    int got = cc_http_query_param(qs, name, v, sizeof v);

    if (got == 0)
        return 0;
    if (got < 0 || v[0] == '\0' || cc_time_parse_iso8601(v, out) != CC_OK)
        return -1;
    return 1;
}

/* from/to of a query string: both required, from < to, span bounded. */
static int parse_from_to(const char *qs, int64_t *from, int64_t *to, cJSON **err)
{
    int f = time_param(qs, "from", from);
    int t = time_param(qs, "to", to);

    if (f < 0)
        return bad(err, "from must be an ISO-8601 time", "from", "invalid");
    if (t < 0)
        return bad(err, "to must be an ISO-8601 time", "to", "invalid");
    if (f == 0)
        return bad(err, "from is required with to", "from", "required");
    if (t == 0)
        return bad(err, "to is required with from", "to", "required");
    if (*from >= *to)
        return bad(err, "from must be before to", "to", "must be after from");
    if (*to - *from > CC_QUERY_MAX_SPAN_MS)
        return bad(err, "the range may span at most 400 days", "to", "range too long");
    return CC_OK;
}

int cc_query_parse_range(const char *qs, int64_t now_ms, struct cc_query_range *out, cJSON **err)
{
    static const struct {
        const char *name;
        int64_t span_ms, bucket_ms;
    } ranges[] = {
        {"24h", MS_PER_DAY, 300000},
        {"7d", 7 * MS_PER_DAY, 1800000},
        {"30d", 30 * MS_PER_DAY, 7200000},
    };
    struct cc_query_range rg;
    char v[CC_QUERY_VALUE_MAX], tmp[CC_QUERY_VALUE_MAX];
    int has_range, has_from, has_to;
    int rc;

    memset(&rg, 0, sizeof rg);
    has_range = cc_http_query_param(qs, "range", v, sizeof v);
    has_from = cc_http_query_param(qs, "from", tmp, sizeof tmp) != 0;
    has_to = cc_http_query_param(qs, "to", tmp, sizeof tmp) != 0;
    if (has_range != 0 && (has_from || has_to))
        return bad(err, "give range or from/to, not both", "range", "conflicts with from/to");
    if (has_from || has_to) {
        rc = parse_from_to(qs, &rg.from_ms, &rg.to_ms, err);
        if (rc != CC_OK)
            return rc;
        rg.bucket_ms = bucket_for_span(rg.to_ms - rg.from_ms);
        *out = rg;
        return CC_OK;
    }
    if (has_range == 0)
        strcpy(v, "24h");
    for (size_t i = 0; has_range >= 0 && i < sizeof ranges / sizeof ranges[0]; i++) {
        if (strcmp(v, ranges[i].name) == 0) {
            strcpy(rg.range, ranges[i].name);
            rg.to_ms = now_ms;
            rg.from_ms = now_ms - ranges[i].span_ms;
            rg.bucket_ms = ranges[i].bucket_ms;
            *out = rg;
            return CC_OK;
        }
    }
    return bad(err, "range must be 24h, 7d or 30d", "range", "must be 24h, 7d or 30d");
}

/* -- JSON ---------------------------------------------------------------------------- */

static double round_to(double x, double unit)
{
    return round(x / unit) * unit;
}

static int add_time(cJSON *o, const char *name, int64_t ms)
{
    char buf[CC_ISO8601_LEN];

    if (cc_time_format_iso8601(ms, buf, sizeof buf) != CC_OK)
        return cJSON_AddNullToObject(o, name) != NULL;
    return cJSON_AddStringToObject(o, name, buf) != NULL;
}

/* Adds name: value, or null when there are no readings. */
static int add_num_or_null(cJSON *o, const char *name, int has, double value)
{
    if (!has)
        return cJSON_AddNullToObject(o, name) != NULL;
    return cJSON_AddNumberToObject(o, name, value) != NULL;
}

cJSON *cc_query_result_json(const struct cc_query_result *res)
{
    const struct cc_query_stats *s = &res->stats;
    cJSON *root = cJSON_CreateObject();
    cJSON *stats = NULL, *series = NULL;
    int has = s->count > 0;

    if (root == NULL)
        return NULL;
    if (cJSON_AddNumberToObject(root, "coldCellId", (double)res->cell_id) == NULL ||
        (res->range.range[0] != '\0' ? cJSON_AddStringToObject(root, "range", res->range.range)
                                     : cJSON_AddNullToObject(root, "range")) == NULL ||
        cJSON_AddNumberToObject(root, "bucketSeconds", (double)(res->range.bucket_ms / 1000)) ==
            NULL ||
        !add_time(root, "from", res->range.from_ms) || !add_time(root, "to", res->range.to_ms))
        goto fail;
    stats = cJSON_AddObjectToObject(root, "stats");
    if (stats == NULL || !add_num_or_null(stats, "min", has, s->min) ||
        !add_num_or_null(stats, "max", has, s->max) ||
        !add_num_or_null(stats, "avg", has, round_to(cc_query_avg(s->sum_q, s->count), 0.001)) ||
        cJSON_AddNumberToObject(stats, "count", (double)s->count) == NULL ||
        !add_num_or_null(stats, "mkt", has,
                         round_to(cc_query_mkt(s->mkt_hi, s->mkt_lo, s->count), 0.001)) ||
        cJSON_AddNumberToObject(stats, "minutesOutOfRange",
                                round_to((double)s->oor_ms / 60000.0, 0.01)) == NULL)
        goto fail;
    series = cJSON_AddArrayToObject(root, "series");
    if (series == NULL)
        goto fail;
    for (size_t i = 0; i < res->n; i++) {
        const struct cc_query_bucket *b = &res->series[i];
        cJSON *o = cJSON_CreateObject();

        if (o == NULL || !cJSON_AddItemToArray(series, o)) {
            cJSON_Delete(o);
            goto fail;
        }
        if (!add_time(o, "t", b->t_ms) || cJSON_AddNumberToObject(o, "min", b->min) == NULL ||
            cJSON_AddNumberToObject(o, "max", b->max) == NULL ||
            cJSON_AddNumberToObject(o, "avg", round_to(cc_query_avg(b->sum_q, b->count), 0.001)) ==
                NULL ||
            cJSON_AddNumberToObject(o, "count", (double)b->count) == NULL)
            goto fail;
    }
    return root;

fail:
    cJSON_Delete(root);
    return NULL;
}

/* The thresholds of a cell the principal may see. */
static int cell_thresholds(struct cc_store *st, const struct cc_principal *p, int64_t cell_id,
                           double *lo, double *hi)
{
    static const char sql[] = "SELECT min_temp, max_temp FROM cold_cells WHERE id = $1";
    struct cc_stmt *s = NULL;
    int rc;

    rc = cc_access_check(st, p, CC_ENTITY_COLDCELL, cell_id, CC_ACCESS_READ);
    if (rc == CC_OK)
        rc = cc_stmt_prepare(st, sql, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, cell_id);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_ROW) {
        *lo = cc_stmt_column_double(s, 0);
        *hi = cc_stmt_column_double(s, 1);
        rc = CC_OK;
    } else if (rc == CC_OK) {
        rc = CC_ERR_NOT_FOUND; /* deleted since the access check */
    }
    cc_stmt_release(s);
    return rc;
}

int cc_query_readings_json(struct cc_store *st, const struct cc_principal *p, int64_t cell_id,
                           const char *qs, int64_t now_ms, cJSON **out, cJSON **err)
{
    struct cc_query_range rg;
    struct cc_query_result res;
    double lo = 0, hi = 0;
    cJSON *o;
    int rc;

    rc = cell_thresholds(st, p, cell_id, &lo, &hi);
    if (rc != CC_OK)
        return rc;
    rc = cc_query_parse_range(qs, now_ms, &rg, err);
    if (rc != CC_OK)
        return rc;
    rc = cc_query_readings(st, cell_id, &rg, lo, hi, &res);
    if (rc != CC_OK)
        return rc;
    o = cc_query_result_json(&res);
    cc_query_result_free(&res);
    if (o == NULL)
        return CC_ERR_NOMEM;
    *out = o;
    return CC_OK;
}

int cc_query_csv_check(struct cc_store *st, const struct cc_principal *p, int64_t cell_id,
                       const char *qs, int64_t *from_ms, int64_t *to_ms, cJSON **err)
{
    int64_t f = 0, t = 0;
    int rc;

    rc = cc_access_check(st, p, CC_ENTITY_COLDCELL, cell_id, CC_ACCESS_READ);
    if (rc != CC_OK)
        return rc;
    rc = parse_from_to(qs, &f, &t, err);
    if (rc != CC_OK)
        return rc;
    *from_ms = f;
    *to_ms = t;
    return CC_OK;
}
