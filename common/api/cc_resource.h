/* cc_resource.h - one get / list / create / update / delete for the API's resources.
 *
 * Users, locations, cold cells, devices, alerts and notifications differ in their SQL,
 * their fields and a few rules; the steps around them are the same. A resource is a const
 * descriptor (struct cc_resource, defined in its own file: cc_locations.c, ...) holding its
 * SQL texts, its row -> JSON columns, its access entity, its audit name and hooks for its
 * own rules.
 * This module runs every verb for every descriptor:
 *   get     access check (read), then the row.
 *   list    {"items":[...],"total":N} of what the principal may see, paged and filtered;
 *           sql.count runs only when the page cannot tell N (a full page, or an empty
 *           one past the first): a short page ends the list, N = offset + its rows.
 *   create  roles, body (hook read), hook prepare, BEGIN, parent access check, hook check,
 *           the insert (sql.insert or hook insert), hook after, the new row, audit.
 *   update  the same, but the row's own access check first, the row before the change, and
 *           sql.update; the parent is checked only when the body names one.
 *   delete  roles, BEGIN, access check, hook check, the row before, sql.del, hook after,
 *           audit.
 * Writes run in one transaction with their audit row: both commit or neither. An object
 * the principal may not see is CC_ERR_NOT_FOUND, like one that does not exist.
 *
 * It is also the one place where the resources' statements run (cc_dbi.h: binding,
 * stepping, reading columns), on SQLite or PostgreSQL alike: the resource files hold SQL
 * text ($N placeholders, both dialects; a PostgreSQL text in .pg where they differ) and
 * rules only, and their hooks reach the database through cc_resource_exec and
 * cc_resource_query. A write that fails (a 409 on a unique key too) is rolled back, which
 * PostgreSQL needs before the connection can run anything else.
 *
 * Objects returned through out are the caller's; *err, when set, is a SPEC §5 error object
 * (caller deletes). Thread: the caller's store.
 * Codes: CC_OK, CC_ERR_VALIDATION (*err), CC_ERR_FORBIDDEN, CC_ERR_NOT_FOUND,
 * CC_ERR_CONFLICT, CC_ERR_DB, CC_ERR_NOMEM, CC_ERR_INTERNAL (a descriptor lacks what the
 * verb needs: logged), and whatever a hook returns. */
#ifndef CC_RESOURCE_H
#define CC_RESOURCE_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_access.h"
#include "cc_input.h"
#include "cc_page.h"
#include "cc_store.h"

#define CC_RESOURCE_VALUES_MAX 8   /* values one insert or update statement takes */
#define CC_RESOURCE_FILTERS_MAX 3  /* list filters after the principal: $3 .. $5 */
#define CC_RESOURCE_SECRET_MAX 256 /* bytes of a write's secret (a new API key, a hash) */
#define CC_RESOURCE_FILTER_TEXT 32 /* bytes of one text filter's value, NUL included */

/* A value bound to a statement; a zeroed one is SQL NULL. */
enum cc_value_kind { CC_VALUE_NULL = 0, CC_VALUE_INT, CC_VALUE_REAL, CC_VALUE_TEXT };
struct cc_value {
    int kind; /* enum cc_value_kind */
    int64_t i;
    double d;
    const char *s; /* borrowed: must outlive the call that binds it */
};
struct cc_value cc_value_int(int64_t i);
struct cc_value cc_value_real(double d);
struct cc_value cc_value_text(const char *s); /* NULL gives SQL NULL */

/* One column of a row as one JSON member. NULL columns are JSON null, except JSON ones:
 * a JSON column holds JSON text, parsed; when NULL the member is left out. A JSON column
 * with name NULL is the whole object (the row's SQL builds it). A JSON_MEMBER column
 * holds a JSON object's text and gives its member of the same name (null when the column
 * or the member is missing), as SQLite's json_extract(col, '$.name') did in SQL. */
enum cc_column_kind {
    CC_COL_INT,
    CC_COL_NUM,
    CC_COL_TEXT,
    CC_COL_BOOL,
    CC_COL_TIME,
    CC_COL_JSON,
    CC_COL_JSON_MEMBER
};
struct cc_column {
    const char *name; /* the JSON member */
    int kind;         /* enum cc_column_kind */
};

/* The current row of s as an object of cols (column i of the row is cols[i]); NULL on out
 * of memory. */
cJSON *cc_resource_row(struct cc_stmt *s, const struct cc_column *cols, int ncols);

enum cc_resource_verb { CC_RESOURCE_CREATE = 1, CC_RESOURCE_UPDATE, CC_RESOURCE_DELETE };

struct cc_resource;

/* One write as the hooks see it. */
struct cc_resource_write {
    const struct cc_resource *res;
    struct cc_store *st;
    const struct cc_principal *p;
    int verb;          /* enum cc_resource_verb */
    int64_t id;        /* the row: update and delete; create sets it after the insert */
    int64_t parent_id; /* > 0: the row goes under this parent (res->parent_entity) */
    /* The statement's values, set by hook read: sql.insert takes v[k] as $k+1, sql.update
     * takes the id as $1 and v[k] as $k+2. Unset values are NULL (left unbound); a set
     * value the statement does not number is a descriptor bug (CC_ERR_DB, logged). */
    struct cc_value v[CC_RESOURCE_VALUES_MAX];
    char secret[CC_RESOURCE_SECRET_MAX]; /* a hook's secret; scrubbed at the end */
    int64_t aux;                         /* carried from one hook to the next */
    void *priv;                          /* a hook's malloc'd state, freed at the end */
    const void *arg;                     /* cc_resource_action's caller's argument */
    cJSON **err;
};

/* A list's filters, bound as $3 .. in order; NULL values match everything (write the test
 * as CAST($3 AS bigint) IS NULL: PostgreSQL needs the type there). A text value
 * may point into text (so the filter must not be copied by value once set). */
struct cc_resource_filter {
    struct cc_value v[CC_RESOURCE_FILTERS_MAX];
    char text[CC_RESOURCE_FILTERS_MAX][CC_RESOURCE_FILTER_TEXT];
};

enum cc_resource_flags {
    /* create opens a deferred transaction: its insert hook does slow work (password
     * hashing) before the first write, and the write lock waits for that write. */
    CC_RESOURCE_DEFERRED_CREATE = 1 << 0,
};

/* A resource's SQL: string literals (cc_dbi.h caches statements by address), $N
 * placeholders, NULL for a verb it does not have. */
struct cc_resource_sql {
    const char *get;    /* the row by id $1 */
    const char *list;   /* principal $1 role, $2 user id (CC_ACCESS_SQL_N), filters $3..,
                         * then LIMIT and OFFSET */
    const char *count;  /* the same without LIMIT and OFFSET */
    const char *insert; /* ends with RETURNING id (SQLite alone may do without: its
                         * last_insert_rowid is read); NULL: hook insert writes the row */
    const char *update;
    const char *del; /* the id as $1 */
};

/* .cols and .ncols of a descriptor from an array of struct cc_column. */
#define CC_RESOURCE_COLUMNS(a) .cols = (a), .ncols = (int)(sizeof(a) / sizeof((a)[0]))

struct cc_resource {
    const char *name; /* audit_log.entity: "location" */
    int entity;       /* enum cc_entity of one row: the access check of get/update/delete */
    int write_roles;  /* enum cc_role bits that may write (others: FORBIDDEN); 0 = any */
    unsigned flags;   /* enum cc_resource_flags */
    const struct cc_column *cols; /* the row -> JSON columns of sql.get and sql.list */
    int ncols;
    struct cc_resource_sql sql;
    /* PostgreSQL's texts where the dialects differ (get, list and count are read here);
     * NULL members: sql's text serves both. */
    struct cc_resource_sql pg;
    /* list */
    const char *filter_param; /* the query parameter of an id filter ($3), or NULL */
    /* Reads the filters from a query string (NULL: none) when one id filter is not all. */
    int (*parse_filter)(const char *qs, struct cc_resource_filter *f, cJSON **err);
    int nfilters;         /* with parse_filter: filters in the list SQL, $3 .. */
    int64_t page_default; /* limit when the query gives none; 0: CC_PAGE_MAX */
    /* writes */
    int parent_entity;          /* enum cc_entity of parent_id; 0: no parent */
    const char *parent_missing; /* the NOT_FOUND message for a parent not found */
    const char *conflict;       /* the CONFLICT message of the write statement */
    /* Hooks; each int hook returns CC_OK to go on. read is required for create and update:
     * it reads and checks the body (problems into in) and fills w->v and w->parent_id. */
    void (*read)(struct cc_resource_write *w, struct cc_input *in);
    int (*prepare)(struct cc_resource_write *w); /* before BEGIN: slow work */
    int (*check)(struct cc_resource_write *w);   /* after the access checks: own rules */
    int (*insert)(struct cc_resource_write *w);  /* instead of sql.insert; sets w->id */
    int (*after)(struct cc_resource_write *w);   /* after the write statement */
    int (*audit_extra)(struct cc_resource_write *w, cJSON *audit); /* a copy for audit_log */
    int (*reply_extra)(struct cc_resource_write *w, cJSON *reply); /* the answer only */
    void (*done)(struct cc_resource_write *w); /* always, last (before priv is freed) */
};

/* The verbs. */
int cc_resource_get(struct cc_store *st, const struct cc_resource *res,
                    const struct cc_principal *p, int64_t id, cJSON **out);
/* Fills f from a query string: res->parse_filter, else res->filter_param. CC_OK or
 * CC_ERR_VALIDATION (*err). */
int cc_resource_filter_parse(const struct cc_resource *res, const char *qs,
                             struct cc_resource_filter *f, cJSON **err);
/* f may be NULL: no filter. */
int cc_resource_list(struct cc_store *st, const struct cc_resource *res,
                     const struct cc_principal *p, const struct cc_resource_filter *f,
                     const struct cc_page *pg, cJSON **out);
/* The same with one id filter ($3): filter_id > 0 keeps only its rows. */
int cc_resource_list_by(struct cc_store *st, const struct cc_resource *res,
                        const struct cc_principal *p, int64_t filter_id, const struct cc_page *pg,
                        cJSON **out);
int cc_resource_create(struct cc_store *st, const struct cc_resource *res,
                       const struct cc_principal *p, const cJSON *body, cJSON **out, cJSON **err);
int cc_resource_update(struct cc_store *st, const struct cc_resource *res,
                       const struct cc_principal *p, int64_t id, const cJSON *body, cJSON **out,
                       cJSON **err);
int cc_resource_delete(struct cc_store *st, const struct cc_resource *res,
                       const struct cc_principal *p, int64_t id, cJSON **err);

/* An action on one row that is neither create nor update (resolve an alert, a new device
 * key): roles, BEGIN, access check (write), act(w) (w->verb CC_RESOURCE_UPDATE, w->arg =
 * arg), the row after it, one audit row of action. how says what the audit row holds:
 * the row after (0), the rows before and after (CC_ACTION_OLD) or nothing
 * (CC_ACTION_NO_DETAIL). out gets the row after, with reply_extra. */
enum cc_resource_action_flags { CC_ACTION_OLD = 1 << 0, CC_ACTION_NO_DETAIL = 1 << 1 };
int cc_resource_action(struct cc_store *st, const struct cc_resource *res,
                       const struct cc_principal *p, int64_t id, const char *action, unsigned how,
                       int (*act)(struct cc_resource_write *w), const void *arg, cJSON **out,
                       cJSON **err);

/* A write transaction for code beside the verbs (links): cc_store_begin, and its end,
 * cc_store_commit when rc is CC_OK (CC_ERR_DB if that fails), else cc_store_rollback and
 * rc. */
int cc_resource_begin(struct cc_store *st);
int cc_resource_end(struct cc_store *st, int rc);

/* For hooks: run sql with args as $1..$nargs (NULL values left unbound: NULL). *changes
 * (may be NULL) gets the rows changed. CC_OK, CC_ERR_CONFLICT or CC_ERR_DB. */
int cc_resource_exec(struct cc_store *st, const char *sql, const struct cc_value *args, int nargs,
                     int64_t *changes);
/* For hooks: run sql with args and read its rows as JSON objects of cols: many = 0, the
 * one row (CC_ERR_NOT_FOUND when there is none); many = 1, an array of every row.
 * CC_OK, CC_ERR_NOT_FOUND, CC_ERR_DB or CC_ERR_NOMEM. */
int cc_resource_query(struct cc_store *st, const char *sql, const struct cc_value *args, int nargs,
                      const struct cc_column *cols, int ncols, int many, cJSON **out);

#endif
