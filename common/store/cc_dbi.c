/* cc_dbi.c - the dialect-independent half of cc_dbi.h: the statement cache, dispatch to
 * cc_dbi_sqlite.c or cc_dbi_pg.c, text-to-number parsing of PostgreSQL's text-format
 * columns (binary ones are decoded by cc_dbi_pg.c), and the row-to-JSON helpers. */
#include "cc_dbi.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store_impl.h"
#include "cc_time.h"

enum cc_dialect cc_store_dialect(const struct cc_store *st)
{
    return st->dialect;
}

int64_t cc_store_stmt_prepares(const struct cc_store *st)
{
    return st->prepares;
}

int64_t cc_store_round_trips(const struct cc_store *st)
{
    return st->pg_waits;
}

int cc_store_exec(struct cc_store *st, const char *sql)
{
    if (st->dialect == CC_DIALECT_PG)
        return cc_dbi_pg_exec(st, sql);
    return cc_dbi_lite_exec(st, sql);
}

void cc_dbi_sql_head(const char *sql, char *buf, size_t cap)
{
    size_t n = 0;
    int space = 0;

    /* One line of at most cap - 1 bytes, runs of white space folded. */
    for (; *sql != '\0' && n + 1 < cap; sql++) {
        if (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '\r') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < cap)
            buf[n++] = ' ';
        space = 0;
        buf[n++] = *sql;
    }
    buf[n] = '\0';
}

/* The cache's first slot for a key: the SQL text's address, Fibonacci-hashed. */
static unsigned slot_of(const char *sql)
{
    return (unsigned)(((uint64_t)(uintptr_t)sql * 0x9E3779B97F4A7C15ull) >> 56) &
           (CC_STMT_SLOTS - 1);
}

static void stmt_free(struct cc_stmt *s)
{
    if (s == NULL)
        return;
    if (s->st->dialect == CC_DIALECT_PG)
        cc_dbi_pg_free(s);
    else
        cc_dbi_lite_free(s);
    free(s);
}

/* A new statement for sql on st (cached says whether the cache will keep it). */
static int stmt_new(struct cc_store *st, const char *sql, int cached, struct cc_stmt **out)
{
    struct cc_stmt *s = calloc(1, sizeof *s);
    int rc;

    if (s == NULL)
        return CC_ERR_NOMEM;
    s->st = st;
    s->sql = sql;
    s->cached = cached;
    rc = st->dialect == CC_DIALECT_PG ? cc_dbi_pg_prepare(st, s) : cc_dbi_lite_prepare(st, s);
    if (rc != CC_OK) {
        stmt_free(s);
        return rc;
    }
    st->prepares++;
    *out = s;
    return CC_OK;
}

int cc_dbi_ready(struct cc_store *st)
{
    return cc_dbi_reopen(st, 0);
}

int cc_dbi_reopen(struct cc_store *st, int force)
{
    int r;

    if (st->dialect != CC_DIALECT_PG)
        return CC_OK;
    for (int i = 0; i < st->n_stmts; i++)
        if (st->stmts[i]->lent)
            return CC_OK; /* in use: let it fail, and revive at the next call */
    r = cc_dbi_pg_revive(st, force);
    if (r < 0)
        return CC_ERR_DB;
    if (r > 0)
        cc_dbi_cache_free(st); /* their server side went with the old session */
    return CC_OK;
}

int cc_stmt_prepare(struct cc_store *st, const char *sql, struct cc_stmt **out)
{
    unsigned i = slot_of(sql);
    struct cc_stmt *s = NULL;
    int rc = cc_dbi_ready(st);

    if (rc != CC_OK)
        return rc;

    while (st->slot[i] != 0) {
        s = st->stmts[st->slot[i] - 1];
        if (s->sql == sql)
            break;
        s = NULL;
        i = (i + 1) & (CC_STMT_SLOTS - 1);
    }
    if (s != NULL && !s->lent) {
        s->lent = 1;
        *out = s;
        return CC_OK;
    }
    /* Lent already (a nested use of the same text) or the cache is full: a statement of
     * its own, freed at release, so the caller still works, at the price of a prepare. */
    if (s != NULL || st->n_stmts >= CC_STMT_CACHE_MAX) {
        rc = stmt_new(st, sql, 0, &s);
        if (rc != CC_OK)
            return rc;
        s->lent = 1;
        *out = s;
        return CC_OK;
    }
    rc = stmt_new(st, sql, 1, &s);
    if (rc != CC_OK)
        return rc;
    st->stmts[st->n_stmts++] = s;
    st->slot[i] = (int16_t)st->n_stmts;
    s->lent = 1;
    *out = s;
    return CC_OK;
}

void cc_stmt_release(struct cc_stmt *s)
{
    if (s == NULL)
        return;
    if (s->st->dialect == CC_DIALECT_PG)
        cc_dbi_pg_reset(s);
    else
        cc_dbi_lite_reset(s);
    s->lent = 0;
    s->done = 0;
    s->changes = 0;
    s->track_insert = 0;
    s->inserted_id = 0;
    if (!s->cached)
        stmt_free(s);
}

void cc_dbi_cache_free(struct cc_store *st)
{
    for (int i = 0; i < st->n_stmts; i++)
        stmt_free(st->stmts[i]);
    st->n_stmts = 0;
    memset(st->slot, 0, sizeof st->slot);
}

/* Logs a bind to a parameter the statement does not have: a bug in the caller. */
static int no_param(const struct cc_stmt *s, int n)
{
    char head[CC_DBI_HEAD_LEN];

    cc_dbi_sql_head(s->sql, head, sizeof head);
    cc_log_error("db_bind_failed", "no parameter $%d in: %s", n, head);
    return CC_ERR_DB;
}

int cc_stmt_bind_int64(struct cc_stmt *s, int n, int64_t v)
{
    char num[24];
    int len;

    if (n < 1 || n > CC_STMT_PARAMS_MAX)
        return no_param(s, n);
    if (s->st->dialect != CC_DIALECT_PG)
        return cc_dbi_lite_bind_int64(s, n, v);
    len = snprintf(num, sizeof num, "%lld", (long long)v);
    return cc_dbi_pg_bind(s, n, num, (size_t)len, 0);
}

int cc_stmt_bind_double(struct cc_stmt *s, int n, double v)
{
    char num[32];
    int len;

    if (n < 1 || n > CC_STMT_PARAMS_MAX)
        return no_param(s, n);
    if (s->st->dialect != CC_DIALECT_PG)
        return cc_dbi_lite_bind_double(s, n, v);
    /* 17 significant digits: the text parses back to the same double. */
    len = snprintf(num, sizeof num, "%.17g", v);
    return cc_dbi_pg_bind(s, n, num, (size_t)len, 0);
}

int cc_stmt_bind_text(struct cc_stmt *s, int n, const char *v)
{
    size_t len;

    if (n < 1 || n > CC_STMT_PARAMS_MAX)
        return no_param(s, n);
    if (v == NULL)
        return cc_stmt_bind_null(s, n);
    len = strlen(v);
    if (len > INT_MAX)
        return CC_ERR_TOO_LARGE;
    if (s->st->dialect != CC_DIALECT_PG)
        return cc_dbi_lite_bind_text(s, n, v, len);
    return cc_dbi_pg_bind(s, n, v, len, 0);
}

int cc_stmt_bind_null(struct cc_stmt *s, int n)
{
    if (n < 1 || n > CC_STMT_PARAMS_MAX)
        return no_param(s, n);
    if (s->st->dialect != CC_DIALECT_PG)
        return cc_dbi_lite_bind_null(s, n);
    return cc_dbi_pg_bind_null(s, n);
}

int cc_stmt_bind_all(struct cc_stmt *s, const char *types, ...)
{
    va_list ap;
    int rc = CC_OK;
    int n = 0;

    if (strlen(types) > CC_STMT_PARAMS_MAX)
        return CC_ERR_INTERNAL;
    va_start(ap, types);
    for (const char *t = types; *t != '\0' && rc == CC_OK; t++) {
        n++;
        switch (*t) {
        case 'i':
            rc = cc_stmt_bind_int64(s, n, va_arg(ap, int64_t));
            break;
        case 'd':
            rc = cc_stmt_bind_double(s, n, va_arg(ap, double));
            break;
        case 't':
            rc = cc_stmt_bind_text(s, n, va_arg(ap, const char *));
            break;
        case 'n':
            rc = cc_stmt_bind_null(s, n);
            break;
        default:
            rc = CC_ERR_INTERNAL;
            break;
        }
    }
    va_end(ap);
    return rc;
}

int cc_stmt_bind_blob(struct cc_stmt *s, int n, const void *p, size_t len)
{
    static const char empty[1] = "";

    if (n < 1 || n > CC_STMT_PARAMS_MAX)
        return no_param(s, n);
    if (len > INT_MAX)
        return CC_ERR_TOO_LARGE;
    if (p == NULL || len == 0) {
        p = empty; /* a NULL pointer would bind SQL NULL: an empty blob is not NULL */
        len = 0;
    }
    if (s->st->dialect != CC_DIALECT_PG)
        return cc_dbi_lite_bind_blob(s, n, p, len);
    return cc_dbi_pg_bind(s, n, p, len, 1);
}

int cc_stmt_step(struct cc_stmt *s)
{
    int rc;

    if (s->done)
        return CC_OK;
    rc = s->st->dialect == CC_DIALECT_PG ? cc_dbi_pg_step(s) : cc_dbi_lite_step(s);
    s->done = rc == CC_OK;
    return rc;
}

int cc_stmt_send(struct cc_stmt *s)
{
    if (s->done)
        return CC_ERR_INTERNAL;
    return s->st->dialect == CC_DIALECT_PG ? cc_dbi_pg_send(s) : CC_OK;
}

int64_t cc_stmt_changes(const struct cc_stmt *s)
{
    return s->changes;
}

int cc_stmt_column_is_null(struct cc_stmt *s, int col)
{
    if (s->st->dialect == CC_DIALECT_PG)
        return cc_dbi_pg_is_null(s, col);
    return cc_dbi_lite_is_null(s, col);
}

/* Logs a PostgreSQL column that is not the number the caller reads it as. */
static void bad_number(const struct cc_stmt *s, int col)
{
    char head[CC_DBI_HEAD_LEN];

    cc_dbi_sql_head(s->sql, head, sizeof head);
    cc_log_error("db_column_type", "column %d is not a number in: %s", col, head);
}

int cc_stmt_track_insert(struct cc_stmt *s)
{
    if (s->done)
        return CC_ERR_INTERNAL;
    s->track_insert = s->st->dialect != CC_DIALECT_PG;
    return CC_OK;
}

int64_t cc_stmt_inserted_id(const struct cc_stmt *s)
{
    return s->inserted_id;
}

int cc_dbi_real_text(double v, char *buf, size_t cap)
{
    if (cap < CC_DBI_REAL_TEXT_MAX)
        return CC_ERR_TOO_LARGE;
    return cc_dbi_lite_real_text(v, buf, cap);
}

int cc_stmt_set_binary_results(struct cc_stmt *s)
{
    if (s->st->dialect != CC_DIALECT_PG)
        return CC_OK; /* SQLite's values are native already */
    return cc_dbi_pg_set_binary(s);
}

/* A double read as an integer: truncated, as SQLite does; 0 (logged) out of range. */
static int64_t double_to_int64(const struct cc_stmt *s, int col, double d)
{
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0)
        return (int64_t)d;
    bad_number(s, col);
    return 0;
}

int64_t cc_stmt_column_int64(struct cc_stmt *s, int col)
{
    const char *t;
    char *end;
    long long v;
    int64_t bi = 0;
    double d = 0.0;

    if (s->st->dialect != CC_DIALECT_PG)
        return cc_dbi_lite_int64(s, col);
    switch (cc_dbi_pg_binary_number(s, col, &bi, &d)) {
    case CC_DBI_PG_INT:
        return bi;
    case CC_DBI_PG_DOUBLE:
        return double_to_int64(s, col, d);
    case CC_DBI_PG_NONE:
        return 0;
    case CC_DBI_PG_TEXT:
        break;
    }
    t = cc_dbi_pg_text(s, col);
    if (t == NULL || *t == '\0')
        return 0;
    if (cc_dbi_pg_is_bool(s, col))
        return *t == 't';
    errno = 0;
    v = strtoll(t, &end, 10);
    if (errno == 0 && *end == '\0')
        return v;
    /* A numeric or float column read as an integer: truncated, as SQLite does. */
    errno = 0;
    d = strtod(t, &end);
    if (errno == 0 && *end == '\0')
        return double_to_int64(s, col, d);
    bad_number(s, col);
    return 0;
}

double cc_stmt_column_double(struct cc_stmt *s, int col)
{
    const char *t;
    char *end;
    int64_t bi = 0;
    double d = 0.0;

    if (s->st->dialect != CC_DIALECT_PG)
        return cc_dbi_lite_double(s, col);
    switch (cc_dbi_pg_binary_number(s, col, &bi, &d)) {
    case CC_DBI_PG_INT:
        return (double)bi;
    case CC_DBI_PG_DOUBLE:
        return d;
    case CC_DBI_PG_NONE:
        return 0.0;
    case CC_DBI_PG_TEXT:
        break;
    }
    t = cc_dbi_pg_text(s, col);
    if (t == NULL || *t == '\0')
        return 0.0;
    if (cc_dbi_pg_is_bool(s, col))
        return *t == 't' ? 1.0 : 0.0;
    d = strtod(t, &end); /* "Infinity" and "NaN" too */
    if (*end != '\0') {
        bad_number(s, col);
        return 0.0;
    }
    return d;
}

const char *cc_stmt_column_text(struct cc_stmt *s, int col)
{
    if (s->st->dialect == CC_DIALECT_PG)
        return cc_dbi_pg_text(s, col);
    return cc_dbi_lite_text(s, col);
}

const void *cc_stmt_column_blob(struct cc_stmt *s, int col)
{
    size_t len;

    if (s->st->dialect == CC_DIALECT_PG)
        return cc_dbi_pg_blob(s, col, &len);
    return cc_dbi_lite_blob(s, col);
}

size_t cc_stmt_column_bytes(struct cc_stmt *s, int col)
{
    if (s->st->dialect == CC_DIALECT_PG)
        return cc_dbi_pg_bytes(s, col);
    return cc_dbi_lite_bytes(s, col);
}

static int add_or_null(cJSON *obj, const char *name, cJSON *item)
{
    if (item == NULL)
        return CC_ERR_NOMEM;
    if (!cJSON_AddItemToObject(obj, name, item)) {
        cJSON_Delete(item);
        return CC_ERR_NOMEM;
    }
    return CC_OK;
}

int cc_dbi_json_int(cJSON *obj, const char *name, struct cc_stmt *s, int col)
{
    if (cc_stmt_column_is_null(s, col))
        return add_or_null(obj, name, cJSON_CreateNull());
    return add_or_null(obj, name, cJSON_CreateNumber((double)cc_stmt_column_int64(s, col)));
}

int cc_dbi_json_num(cJSON *obj, const char *name, struct cc_stmt *s, int col)
{
    if (cc_stmt_column_is_null(s, col))
        return add_or_null(obj, name, cJSON_CreateNull());
    return add_or_null(obj, name, cJSON_CreateNumber(cc_stmt_column_double(s, col)));
}

int cc_dbi_json_text(cJSON *obj, const char *name, struct cc_stmt *s, int col)
{
    const char *t = cc_stmt_column_text(s, col);

    if (t == NULL)
        return add_or_null(obj, name, cJSON_CreateNull());
    return add_or_null(obj, name, cJSON_CreateString(t));
}

int cc_dbi_json_bool(cJSON *obj, const char *name, struct cc_stmt *s, int col)
{
    if (cc_stmt_column_is_null(s, col))
        return add_or_null(obj, name, cJSON_CreateNull());
    return add_or_null(obj, name, cJSON_CreateBool(cc_stmt_column_int64(s, col) != 0));
}

int cc_dbi_json_time(cJSON *obj, const char *name, struct cc_stmt *s, int col)
{
    char buf[CC_ISO8601_LEN];

    if (cc_stmt_column_is_null(s, col) ||
        cc_time_format_iso8601(cc_stmt_column_int64(s, col), buf, sizeof buf) != CC_OK)
        return add_or_null(obj, name, cJSON_CreateNull());
    return add_or_null(obj, name, cJSON_CreateString(buf));
}

int cc_dbi_collect(struct cc_stmt *s, cc_dbi_row_fn row, cJSON **items)
{
    cJSON *arr = cJSON_CreateArray();
    int rc = arr != NULL ? CC_OK : CC_ERR_NOMEM;

    while (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        cJSON *o = row(s);

        rc = o != NULL && cJSON_AddItemToArray(arr, o) ? CC_OK : CC_ERR_NOMEM;
        if (rc != CC_OK)
            cJSON_Delete(o);
    }
    if (rc != CC_OK) {
        cJSON_Delete(arr);
        return rc;
    }
    *items = arr;
    return CC_OK;
}
