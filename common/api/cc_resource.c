/* cc_resource.c - the verbs of every resource descriptor, and its database calls (cc_dbi.h:
 * SQLite or PostgreSQL). */
#include "cc_resource.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cc_audit.h"
#include "cc_error.h"
#include "cc_http.h"
#include "cc_log.h"
#include "cc_rc.h"

struct cc_value cc_value_int(int64_t i)
{
    struct cc_value v = {.kind = CC_VALUE_INT, .i = i};

    return v;
}

struct cc_value cc_value_real(double d)
{
    struct cc_value v = {.kind = CC_VALUE_REAL, .d = d};

    return v;
}

struct cc_value cc_value_text(const char *s)
{
    struct cc_value v = {.kind = s != NULL ? CC_VALUE_TEXT : CC_VALUE_NULL, .s = s};

    return v;
}

/* A descriptor that lacks what a verb needs is a programming error: say which. */
static int incomplete(const struct cc_resource *res, const char *verb)
{
    cc_log_error("resource_incomplete", "resource=%s verb=%s",
                 res != NULL && res->name != NULL ? res->name : "?", verb);
    return CC_ERR_INTERNAL;
}

/* Binds n values as $first, $first+1, ...; a NULL value is left unbound (NULL), so a
 * statement need not number the NULL values past its last parameter. CC_OK or CC_ERR_DB. */
static int bind_values(struct cc_stmt *s, int first, const struct cc_value *v, int n)
{
    int rc = CC_OK;

    for (int k = 0; k < n && rc == CC_OK; k++) {
        switch (v[k].kind) {
        case CC_VALUE_INT:
            rc = cc_stmt_bind_int64(s, first + k, v[k].i);
            break;
        case CC_VALUE_REAL:
            rc = cc_stmt_bind_double(s, first + k, v[k].d);
            break;
        case CC_VALUE_TEXT:
            rc = cc_stmt_bind_text(s, first + k, v[k].s);
            break;
        default:
            break;
        }
    }
    return rc;
}

/* Adds column col as a JSON column: parsed text, or nothing when NULL. name NULL makes
 * the parsed object the row itself (*row). */
static int add_json(cJSON **row, const char *name, struct cc_stmt *s, int col)
{
    const char *txt = cc_stmt_column_text(s, col);
    cJSON *v;

    if (txt == NULL)
        return name != NULL ? CC_OK : CC_ERR_NOMEM;
    v = cJSON_Parse(txt);
    if (v == NULL)
        return CC_ERR_NOMEM;
    if (name == NULL) {
        cJSON_Delete(*row);
        *row = v;
        return CC_OK;
    }
    if (!cJSON_AddItemToObject(*row, name, v)) {
        cJSON_Delete(v);
        return CC_ERR_NOMEM;
    }
    return CC_OK;
}

/* Adds member name of the JSON object in column col, or null. */
static int add_member(cJSON *row, const char *name, struct cc_stmt *s, int col)
{
    const char *txt = cc_stmt_column_text(s, col);
    cJSON *doc = txt != NULL ? cJSON_Parse(txt) : NULL;
    cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, name);
    cJSON *v = m != NULL ? cJSON_Duplicate(m, 1) : cJSON_CreateNull();

    cJSON_Delete(doc);
    if (v == NULL)
        return CC_ERR_NOMEM;
    if (!cJSON_AddItemToObject(row, name, v)) {
        cJSON_Delete(v);
        return CC_ERR_NOMEM;
    }
    return CC_OK;
}

cJSON *cc_resource_row(struct cc_stmt *s, const struct cc_column *cols, int ncols)
{
    cJSON *o = cJSON_CreateObject();
    int rc = o != NULL ? CC_OK : CC_ERR_NOMEM;

    for (int c = 0; c < ncols && rc == CC_OK; c++) {
        const char *name = cols[c].name;

        switch (cols[c].kind) {
        case CC_COL_INT:
            rc = cc_dbi_json_int(o, name, s, c);
            break;
        case CC_COL_NUM:
            rc = cc_dbi_json_num(o, name, s, c);
            break;
        case CC_COL_TEXT:
            rc = cc_dbi_json_text(o, name, s, c);
            break;
        case CC_COL_BOOL:
            rc = cc_dbi_json_bool(o, name, s, c);
            break;
        case CC_COL_TIME:
            rc = cc_dbi_json_time(o, name, s, c);
            break;
        case CC_COL_JSON_MEMBER:
            rc = add_member(o, name, s, c);
            break;
        default:
            rc = add_json(&o, name, s, c);
            break;
        }
    }
    if (rc != CC_OK) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Steps a bound statement: one row into *out (CC_ERR_NOT_FOUND if none), or with many
 * every row into a new array. */
static int read_rows(struct cc_stmt *s, const struct cc_column *cols, int ncols, int many,
                     cJSON **out)
{
    cJSON *arr = NULL;
    int rc;

    if (many && (arr = cJSON_CreateArray()) == NULL)
        return CC_ERR_NOMEM;
    while ((rc = cc_stmt_step(s)) == CC_ROW) {
        cJSON *o = cc_resource_row(s, cols, ncols);

        if (o == NULL) {
            rc = CC_ERR_NOMEM;
            goto fail;
        }
        if (!many) {
            *out = o;
            return CC_OK;
        }
        if (!cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            rc = CC_ERR_NOMEM;
            goto fail;
        }
    }
    if (rc != CC_OK)
        goto fail;
    if (!many)
        return CC_ERR_NOT_FOUND;
    *out = arr;
    return CC_OK;
fail:
    cJSON_Delete(arr);
    return rc;
}

int cc_resource_query(struct cc_store *st, const char *sql, const struct cc_value *args, int nargs,
                      const struct cc_column *cols, int ncols, int many, cJSON **out)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql, &s);

    if (rc == CC_OK)
        rc = bind_values(s, 1, args, nargs);
    if (rc == CC_OK)
        rc = read_rows(s, cols, ncols, many, out);
    cc_stmt_release(s);
    return rc;
}

int cc_resource_exec(struct cc_store *st, const char *sql, const struct cc_value *args, int nargs,
                     int64_t *changes)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql, &s);

    if (rc == CC_OK)
        rc = bind_values(s, 1, args, nargs);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_ROW) /* a statement with RETURNING: its rows are not wanted */
        rc = CC_OK;
    if (rc == CC_OK && changes != NULL)
        *changes = cc_stmt_changes(s);
    cc_stmt_release(s);
    return rc;
}

int cc_resource_begin(struct cc_store *st)
{
    return cc_store_begin(st);
}

int cc_resource_end(struct cc_store *st, int rc)
{
    /* On PostgreSQL a failed statement (a unique violation answered as 409 too) has
     * aborted the transaction: the rollback is what lets the connection go on. */
    if (rc == CC_OK)
        return cc_store_commit(st) == CC_OK ? CC_OK : CC_ERR_DB;
    cc_store_rollback(st);
    return rc;
}

/* The text of a verb on st: PostgreSQL's own when the descriptor has one. */
static const char *text_of(struct cc_store *st, const char *sql, const char *pg)
{
    return pg != NULL && cc_store_dialect(st) == CC_DIALECT_PG ? pg : sql;
}

/* The row id as JSON, no access check. */
static int load(struct cc_store *st, const struct cc_resource *res, int64_t id, cJSON **out)
{
    const struct cc_value arg = cc_value_int(id);

    return cc_resource_query(st, text_of(st, res->sql.get, res->pg.get), &arg, 1, res->cols,
                             res->ncols, 0, out);
}

int cc_resource_get(struct cc_store *st, const struct cc_resource *res,
                    const struct cc_principal *p, int64_t id, cJSON **out)
{
    int rc;

    if (res->sql.get == NULL || res->cols == NULL)
        return incomplete(res, "get");
    rc = cc_access_check(st, p, res->entity, id, CC_ACCESS_READ);
    if (rc != CC_OK)
        return rc;
    return load(st, res, id, out);
}

int cc_resource_filter_parse(const struct cc_resource *res, const char *qs,
                             struct cc_resource_filter *f, cJSON **err)
{
    int64_t id = 0;
    int rc;

    memset(f, 0, sizeof *f);
    if (res->parse_filter != NULL)
        return res->parse_filter(qs, f, err);
    if (res->filter_param == NULL)
        return CC_OK;
    rc = cc_http_query_id(qs, res->filter_param, &id, err);
    if (rc == CC_OK && id > 0)
        f->v[0] = cc_value_int(id);
    return rc;
}

int cc_resource_list_by(struct cc_store *st, const struct cc_resource *res,
                        const struct cc_principal *p, int64_t filter_id, const struct cc_page *pg,
                        cJSON **out)
{
    struct cc_resource_filter f;

    memset(&f, 0, sizeof f);
    if (filter_id > 0)
        f.v[0] = cc_value_int(filter_id);
    return cc_resource_list(st, res, p, &f, pg, out);
}

/* The filters a list statement takes after the principal. */
static int filter_count(const struct cc_resource *res)
{
    if (res->parse_filter != NULL)
        return res->nfilters;
    return res->filter_param != NULL ? 1 : 0;
}

/* Binds the principal ($1 role, $2 user id: CC_ACCESS_SQL_N) and the filters ($3 ..). */
static int bind_scope(struct cc_stmt *s, const struct cc_principal *p,
                      const struct cc_resource_filter *f, int nfilters)
{
    int rc = cc_stmt_bind_int64(s, 1, p->role);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 2, p->user_id);
    if (rc == CC_OK && f != NULL)
        rc = bind_values(s, 3, f->v, nfilters);
    return rc;
}

/* total of a list answer: the count statement, run only when the page cannot tell. */
static int list_total(struct cc_store *st, const struct cc_resource *res,
                      const struct cc_principal *p, const struct cc_resource_filter *f,
                      int nfilters, int64_t *total)
{
    struct cc_stmt *count = NULL;
    int rc = cc_stmt_prepare(st, text_of(st, res->sql.count, res->pg.count), &count);

    if (rc == CC_OK)
        rc = bind_scope(count, p, f, nfilters);
    if (rc == CC_OK && (rc = cc_stmt_step(count)) == CC_ROW) {
        *total = cc_stmt_column_int64(count, 0);
        rc = CC_OK;
    } else if (rc == CC_OK) {
        rc = CC_ERR_DB; /* count(*) always answers one row */
    }
    cc_stmt_release(count);
    return rc;
}

int cc_resource_list(struct cc_store *st, const struct cc_resource *res,
                     const struct cc_principal *p, const struct cc_resource_filter *f,
                     const struct cc_page *pg, cJSON **out)
{
    struct cc_stmt *list = NULL;
    const int nfilters = filter_count(res);
    const int window = 3 + nfilters; /* LIMIT's parameter; OFFSET follows */
    cJSON *items = NULL;
    int64_t total = 0, n;
    int rc;

    if (res->sql.list == NULL || res->sql.count == NULL || res->cols == NULL || nfilters < 0 ||
        nfilters > CC_RESOURCE_FILTERS_MAX)
        return incomplete(res, "list");
    if (pg->limit < 1 || pg->limit > CC_PAGE_MAX || pg->offset < 0)
        return CC_ERR_INTERNAL; /* cc_http_page gives only these */
    rc = cc_stmt_prepare(st, text_of(st, res->sql.list, res->pg.list), &list);
    if (rc == CC_OK)
        rc = bind_scope(list, p, f, nfilters);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(list, window, pg->limit);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(list, window + 1, pg->offset);
    if (rc == CC_OK)
        rc = read_rows(list, res->cols, res->ncols, 1, &items);
    cc_stmt_release(list);
    /* A page short of the limit that holds rows, or the first page, ends the list: the
     * total is offset + its rows, in the same snapshot, and the count statement (a round
     * trip and, on PostgreSQL, a plan of its own) is not needed. A full page, or an empty
     * page past the first, cannot tell. */
    n = rc == CC_OK ? cJSON_GetArraySize(items) : 0;
    if (rc == CC_OK && n < pg->limit && (n > 0 || pg->offset == 0))
        total = pg->offset + n;
    else if (rc == CC_OK)
        rc = list_total(st, res, p, f, nfilters, &total);
    if (rc != CC_OK) {
        cJSON_Delete(items);
        return rc;
    }
    /* cc_page_answer takes items, and deletes them when it fails. */
    if ((*out = cc_page_answer(items, total)) == NULL)
        rc = CC_ERR_NOMEM;
    return rc;
}

/* May the descriptor do this verb? */
static int verb_ready(const struct cc_resource *res, int verb)
{
    if (res->sql.get == NULL || res->cols == NULL)
        return 0;
    switch (verb) {
    case CC_RESOURCE_CREATE:
        return res->read != NULL && (res->sql.insert != NULL || res->insert != NULL);
    case CC_RESOURCE_UPDATE:
        return res->read != NULL && res->sql.update != NULL;
    default:
        return res->sql.del != NULL;
    }
}

/* Checks the parent a write names; a parent the principal may not see is NOT_FOUND with
 * the descriptor's message. */
static int check_parent(struct cc_resource_write *w)
{
    int rc = cc_access_check(w->st, w->p, w->res->parent_entity, w->parent_id, CC_ACCESS_WRITE);

    if (rc == CC_ERR_NOT_FOUND && w->res->parent_missing != NULL)
        *w->err = cc_error_new(rc, w->res->parent_missing);
    return rc;
}

/* Runs an insert with the write's values and sets w->id: from its RETURNING id row, or,
 * for an SQLite text written without one, from last_insert_rowid (PostgreSQL has no such
 * thing: there a descriptor's insert must return the id). */
static int insert_row(struct cc_resource_write *w, struct cc_stmt *s)
{
    static const char sql_rowid[] = "SELECT last_insert_rowid()";
    struct cc_stmt *q = NULL;
    int rc = cc_stmt_step(s);

    if (rc == CC_ROW) {
        w->id = cc_stmt_column_int64(s, 0);
        return CC_OK;
    }
    if (rc != CC_OK)
        return rc;
    if (cc_store_dialect(w->st) == CC_DIALECT_PG)
        return incomplete(w->res, "create (sql.insert without RETURNING id)");
    rc = cc_stmt_prepare(w->st, sql_rowid, &q);
    if (rc == CC_OK && (rc = cc_stmt_step(q)) == CC_ROW) {
        w->id = cc_stmt_column_int64(q, 0);
        rc = CC_OK;
    }
    cc_stmt_release(q);
    return rc;
}

/* The write statement of the verb (or hook insert). */
static int write_row(struct cc_resource_write *w)
{
    const struct cc_resource *res = w->res;
    struct cc_stmt *s = NULL;
    const char *sql;
    int rc;

    if (w->verb == CC_RESOURCE_CREATE && res->insert != NULL) {
        rc = res->insert(w);
        goto out;
    }
    sql = w->verb == CC_RESOURCE_CREATE   ? res->sql.insert
          : w->verb == CC_RESOURCE_UPDATE ? res->sql.update
                                          : res->sql.del;
    rc = cc_stmt_prepare(w->st, sql, &s);
    if (rc != CC_OK)
        goto out;
    if (w->verb == CC_RESOURCE_CREATE)
        rc = bind_values(s, 1, w->v, CC_RESOURCE_VALUES_MAX);
    else if ((rc = cc_stmt_bind_int64(s, 1, w->id)) == CC_OK && w->verb == CC_RESOURCE_UPDATE)
        rc = bind_values(s, 2, w->v, CC_RESOURCE_VALUES_MAX);
    if (rc != CC_OK)
        goto out;
    if (w->verb == CC_RESOURCE_CREATE)
        rc = insert_row(w, s);
    else
        rc = cc_stmt_step(s);
out:
    cc_stmt_release(s);
    if (rc == CC_ERR_CONFLICT && res->conflict != NULL && *w->err == NULL)
        *w->err = cc_error_new(rc, res->conflict);
    return rc;
}

/* Audits the row after a write (a copy with audit_extra when the descriptor has one). */
static int audit(struct cc_resource_write *w, const char *action, const cJSON *before,
                 const cJSON *after)
{
    cJSON *copy = NULL;
    int rc;

    if (after != NULL && w->res->audit_extra != NULL) {
        copy = cJSON_Duplicate(after, 1);
        if (copy == NULL)
            return CC_ERR_NOMEM;
        rc = w->res->audit_extra(w, copy);
        if (rc != CC_OK)
            goto out;
        after = copy;
    }
    rc = cc_audit_append(w->st, w->p->user_id, action, w->res->name, w->id, before, after);
out:
    cJSON_Delete(copy);
    return rc;
}

/* Ends a write: hook done, scrubbing, freeing. */
static void finish(struct cc_resource_write *w)
{
    if (w->res->done != NULL)
        w->res->done(w);
    OPENSSL_cleanse(w->secret, sizeof w->secret);
    free(w->priv);
}

static int begin(struct cc_resource_write *w)
{
    /* PostgreSQL's BEGIN takes no lock anyway (cc_store_begin). */
    if (w->verb == CC_RESOURCE_CREATE && (w->res->flags & CC_RESOURCE_DEFERRED_CREATE) &&
        cc_store_dialect(w->st) == CC_DIALECT_SQLITE)
        return cc_store_exec(w->st, "BEGIN");
    return cc_store_begin(w->st);
}

static const char *const verb_names[] = {"", "create", "update", "delete"};

/* Create, update and delete: the steps of cc_resource.h's opening comment. */
static int write_verb(struct cc_resource_write *w, const cJSON *body, cJSON **out)
{
    const struct cc_resource *res = w->res;
    cJSON *before = NULL, *after = NULL;
    struct cc_input in;
    int rc;

    if (!verb_ready(res, w->verb))
        return incomplete(res, verb_names[w->verb]);
    if (res->write_roles != 0 && !(res->write_roles & w->p->role))
        return CC_ERR_FORBIDDEN;
    if (w->verb != CC_RESOURCE_DELETE) {
        cc_input_init(&in, body);
        res->read(w, &in);
        rc = cc_input_finish(&in, w->err);
        if (rc != CC_OK)
            goto done;
    }
    rc = res->prepare != NULL ? res->prepare(w) : CC_OK;
    if (rc != CC_OK)
        goto done;

    rc = begin(w);
    if (rc != CC_OK)
        goto done;
    if (w->verb != CC_RESOURCE_CREATE)
        rc = cc_access_check(w->st, w->p, res->entity, w->id, CC_ACCESS_WRITE);
    if (rc == CC_OK && res->parent_entity != 0 &&
        (w->verb == CC_RESOURCE_CREATE || (w->verb == CC_RESOURCE_UPDATE && w->parent_id > 0)))
        rc = check_parent(w);
    if (rc == CC_OK && res->check != NULL)
        rc = res->check(w);
    if (rc == CC_OK && w->verb != CC_RESOURCE_CREATE)
        rc = load(w->st, res, w->id, &before);
    if (rc == CC_OK)
        rc = write_row(w);
    if (rc == CC_OK && res->after != NULL)
        rc = res->after(w);
    if (rc == CC_OK && w->verb != CC_RESOURCE_DELETE)
        rc = load(w->st, res, w->id, &after);
    if (rc == CC_OK)
        rc = audit(w, verb_names[w->verb], before, after);
    if (rc == CC_OK && after != NULL && res->reply_extra != NULL)
        rc = res->reply_extra(w, after);
    rc = cc_resource_end(w->st, rc);
done:
    finish(w);
    cJSON_Delete(before);
    if (rc != CC_OK || out == NULL) {
        cJSON_Delete(after);
        return rc;
    }
    *out = after;
    return CC_OK;
}

/* A write context for one call. */
static void write_init(struct cc_resource_write *w, struct cc_store *st,
                       const struct cc_resource *res, const struct cc_principal *p, int verb,
                       int64_t id, cJSON **err)
{
    memset(w, 0, sizeof *w);
    w->res = res;
    w->st = st;
    w->p = p;
    w->verb = verb;
    w->id = id;
    w->err = err;
}

int cc_resource_create(struct cc_store *st, const struct cc_resource *res,
                       const struct cc_principal *p, const cJSON *body, cJSON **out, cJSON **err)
{
    struct cc_resource_write w;

    write_init(&w, st, res, p, CC_RESOURCE_CREATE, 0, err);
    return write_verb(&w, body, out);
}

int cc_resource_update(struct cc_store *st, const struct cc_resource *res,
                       const struct cc_principal *p, int64_t id, const cJSON *body, cJSON **out,
                       cJSON **err)
{
    struct cc_resource_write w;

    write_init(&w, st, res, p, CC_RESOURCE_UPDATE, id, err);
    return write_verb(&w, body, out);
}

int cc_resource_delete(struct cc_store *st, const struct cc_resource *res,
                       const struct cc_principal *p, int64_t id, cJSON **err)
{
    struct cc_resource_write w;

    write_init(&w, st, res, p, CC_RESOURCE_DELETE, id, err);
    return write_verb(&w, NULL, NULL);
}

int cc_resource_action(struct cc_store *st, const struct cc_resource *res,
                       const struct cc_principal *p, int64_t id, const char *action, unsigned how,
                       int (*act)(struct cc_resource_write *w), const void *arg, cJSON **out,
                       cJSON **err)
{
    struct cc_resource_write w;
    cJSON *before = NULL, *after = NULL;
    int rc;

    write_init(&w, st, res, p, CC_RESOURCE_UPDATE, id, err);
    w.arg = arg;
    if (res->sql.get == NULL || res->cols == NULL || act == NULL) {
        rc = incomplete(res, action);
        goto done;
    }
    if (res->write_roles != 0 && !(res->write_roles & p->role)) {
        rc = CC_ERR_FORBIDDEN;
        goto done;
    }
    rc = cc_resource_begin(st);
    if (rc != CC_OK)
        goto done;
    rc = cc_access_check(st, p, res->entity, id, CC_ACCESS_WRITE);
    if (rc == CC_OK && (how & CC_ACTION_OLD))
        rc = load(st, res, id, &before);
    if (rc == CC_OK)
        rc = act(&w);
    if (rc == CC_OK)
        rc = load(st, res, id, &after);
    if (rc == CC_OK)
        rc = (how & CC_ACTION_NO_DETAIL)
                 ? cc_audit_append(st, p->user_id, action, res->name, id, NULL, NULL)
                 : audit(&w, action, before, after);
    if (rc == CC_OK && res->reply_extra != NULL)
        rc = res->reply_extra(&w, after);
    rc = cc_resource_end(st, rc);
done:
    finish(&w);
    cJSON_Delete(before);
    if (rc != CC_OK) {
        cJSON_Delete(after);
        return rc;
    }
    *out = after;
    return CC_OK;
}
