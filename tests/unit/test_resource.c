/* test_resource.c - the generic verbs of cc_resource over a migrated temporary database and
 * a small test descriptor on the locations table: a descriptor that lacks what a verb needs
 * is refused, paging is bounded, a failing hook rolls the write and its audit row back
 * together, roles are checked before the body, filters and columns come out as described. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_resource.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"

/* Customers 2 (locations 1, 2, 3) and 3 (location 4); 1 is an admin. */
static const char fixture[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 'adm@x.io', 'x', 'ADMIN', 'Adm', 0), (2, 'a@x.io', 'x', 'CUSTOMER', 'A', 0),"
    " (3, 'b@x.io', 'x', 'CUSTOMER', 'B', 0);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 2, 'L1', 0),"
    " (2, 2, 'L2', 0), (3, 2, 'L3', 0), (4, 3, 'L4', 0);";

static const struct cc_principal ADMIN = {1, CC_ROLE_ADMIN};
static const struct cc_principal CUST_A = {2, CC_ROLE_CUSTOMER};

#define T_COLS "l.id, l.customer_id, l.name, CASE WHEN l.id = 1 THEN '[1]' END"
static const char sql_get[] = "SELECT " T_COLS " FROM locations l WHERE l.id = $1";
static const char sql_list[] = "SELECT " T_COLS " FROM locations l WHERE " CC_ACCESS_SQL_N(
    "l.customer_id") " AND (CAST($3 AS bigint) IS "
                     "NULL OR l.customer_id = $3) ORDER BY l.id LIMIT $4 OFFSET $5";
static const char sql_count[] = "SELECT count(*) FROM locations l WHERE " CC_ACCESS_SQL_N(
    "l.customer_id") " AND (CAST($3 AS bigint) IS NULL OR l.customer_id = $3)";
static const char sql_insert[] = "INSERT INTO locations (customer_id, name, address, timezone,"
                                 " created_at) VALUES ($1, $2, '', 'UTC', 0)";
static const char sql_update[] = "UPDATE locations SET customer_id = coalesce($2, customer_id),"
                                 " name = coalesce($3, name) WHERE id = $1";
static const char sql_delete[] = "DELETE FROM locations WHERE id = $1";

static const struct cc_column t_cols[] = {
    {"id", CC_COL_INT}, {"customerId", CC_COL_INT}, {"name", CC_COL_TEXT}, {"tags", CC_COL_JSON}};

static int fail_check;  /* the check hook answers this when non-zero */
static int fail_after;  /* the after hook answers this when non-zero */
static int hooks_run;   /* bit 0 read, bit 1 prepare, bit 2 done */
static int saw_verb[4]; /* verbs the check hook saw */

static void t_read(struct cc_resource_write *w, struct cc_input *in)
{
    const char *name = NULL;
    int64_t customer = 0;

    hooks_run |= 1;
    cc_input_text(in, "name", w->verb == CC_RESOURCE_CREATE ? CC_INPUT_REQUIRED : 0, 50, &name);
    cc_input_int(in, "customerId", 0, 1, INT64_MAX, &customer);
    w->parent_id = customer;
    if (customer > 0)
        w->v[0] = cc_value_int(customer);
    w->v[1] = cc_value_text(name);
}

static int t_prepare(struct cc_resource_write *w)
{
    (void)w;
    hooks_run |= 2;
    return CC_OK;
}

static int t_check(struct cc_resource_write *w)
{
    saw_verb[w->verb]++;
    return fail_check;
}

static int t_after(struct cc_resource_write *w)
{
    (void)w;
    return fail_after;
}

static void t_done(struct cc_resource_write *w)
{
    (void)w;
    hooks_run |= 4;
}

static const struct cc_resource full = {
    .name = "test_thing",
    .entity = CC_ENTITY_LOCATION,
    CC_RESOURCE_COLUMNS(t_cols),
    .sql = {sql_get, sql_list, sql_count, sql_insert, sql_update, sql_delete},
    .filter_param = "customerId",
    .parent_entity = CC_ENTITY_CUSTOMER,
    .parent_missing = "customer not found",
    .read = t_read,
    .prepare = t_prepare,
    .check = t_check,
    .after = t_after,
    .done = t_done,
};

struct fx {
    char path[64];
    struct cc_store *st;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    int fd;

    if (f == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "/tmp/cc-test-resource-XXXXXX");
    fd = mkstemp(f->path);
    if (fd < 0)
        return -1;
    close(fd);
    if (cc_store_open(f->path, CC_STORE_CREATE | CC_STORE_MIGRATE, &f->st) != CC_OK ||
        sqlite3_exec(cc_store_db(f->st), fixture, NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    fail_check = fail_after = hooks_run = 0;
    memset(saw_verb, 0, sizeof saw_verb);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    static const char *const files[] = {"", "-wal", "-shm"};
    struct fx *f = *state;
    char path[80];

    cc_store_close(f->st);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s%s", f->path, files[i]);
        unlink(path);
    }
    free(f);
    return 0;
}

/* A count through the module's own query helper. */
static int64_t count_of(struct fx *f, const char *sql)
{
    static const struct cc_column n[] = {{"n", CC_COL_INT}};
    cJSON *row = NULL;
    int64_t v;

    assert_int_equal(cc_resource_query(f->st, sql, NULL, 0, n, 1, 0, &row), CC_OK);
    v = (int64_t)cJSON_GetObjectItem(row, "n")->valuedouble;
    cJSON_Delete(row);
    return v;
}

static cJSON *body_of(const char *json)
{
    cJSON *b = cJSON_Parse(json);

    assert_non_null(b);
    return b;
}

static int parse_none(const char *qs, struct cc_resource_filter *flt, cJSON **err)
{
    (void)qs;
    (void)flt;
    (void)err;
    return CC_OK;
}

static void test_resource_missing_parts_are_internal(void **state)
{
    struct fx *f = *state;
    const struct cc_page pg = {10, 0};
    struct cc_resource bare = full;
    cJSON *out = NULL, *err = NULL, *body = body_of("{\"name\":\"x\",\"customerId\":2}");

    bare.read = NULL; /* create and update need it */
    assert_int_equal(cc_resource_create(f->st, &bare, &ADMIN, body, &out, &err), CC_ERR_INTERNAL);
    assert_int_equal(cc_resource_update(f->st, &bare, &ADMIN, 1, body, &out, &err),
                     CC_ERR_INTERNAL);
    assert_int_equal(hooks_run, 0); /* refused before any hook ran */
    bare = full;
    bare.sql.insert = NULL; /* and no insert hook either */
    assert_int_equal(cc_resource_create(f->st, &bare, &ADMIN, body, &out, &err), CC_ERR_INTERNAL);
    bare = full;
    bare.sql.del = NULL;
    assert_int_equal(cc_resource_delete(f->st, &bare, &ADMIN, 1, &err), CC_ERR_INTERNAL);
    bare = full;
    bare.sql.list = NULL;
    assert_int_equal(cc_resource_list(f->st, &bare, &ADMIN, NULL, &pg, &out), CC_ERR_INTERNAL);
    bare = full;
    bare.sql.get = NULL;
    assert_int_equal(cc_resource_get(f->st, &bare, &ADMIN, 1, &out), CC_ERR_INTERNAL);
    assert_int_equal(cc_resource_action(f->st, &full, &ADMIN, 1, "poke", 0, NULL, NULL, &out, &err),
                     CC_ERR_INTERNAL);
    bare = full;
    bare.parse_filter = parse_none;
    bare.nfilters = CC_RESOURCE_FILTERS_MAX + 1; /* more filters than a list binds */
    assert_int_equal(cc_resource_list(f->st, &bare, &ADMIN, NULL, &pg, &out), CC_ERR_INTERNAL);
    assert_null(out);
    assert_null(err);
    /* Nothing was written. */
    assert_int_equal(count_of(f, "SELECT count(*) FROM locations"), 4);
    assert_int_equal(count_of(f, "SELECT count(*) FROM audit_log"), 0);
    cJSON_Delete(body);
}

static void test_resource_paging_bounds(void **state)
{
    struct fx *f = *state;
    const struct cc_page bad[] = {{0, 0}, {CC_PAGE_MAX + 1, 0}, {1, -1}};
    const struct cc_page two = {2, 1}, past = {CC_PAGE_MAX, 10}, max = {CC_PAGE_MAX, 0};
    cJSON *out = NULL, *items;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cc_resource_list(f->st, &full, &ADMIN, NULL, &bad[i], &out),
                         CC_ERR_INTERNAL);
        assert_null(out);
    }
    /* A window inside: two items after the first, the total of all. */
    assert_int_equal(cc_resource_list(f->st, &full, &ADMIN, NULL, &two, &out), CC_OK);
    items = cJSON_GetObjectItem(out, "items");
    assert_int_equal(cJSON_GetArraySize(items), 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "id")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(out, "total")->valueint, 4);
    cJSON_Delete(out);
    /* Past the end: no items, the same total. */
    assert_int_equal(cc_resource_list(f->st, &full, &ADMIN, NULL, &past, &out), CC_OK);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "items")), 0);
    assert_int_equal(cJSON_GetObjectItem(out, "total")->valueint, 4);
    cJSON_Delete(out);
    /* The largest window, scoped to what the customer may see. */
    assert_int_equal(cc_resource_list(f->st, &full, &CUST_A, NULL, &max, &out), CC_OK);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "items")), 3);
    assert_int_equal(cJSON_GetObjectItem(out, "total")->valueint, 3);
    cJSON_Delete(out);
}

/* The count statement runs only when the page cannot tell the total: a page short of
 * the limit that holds rows, or the first page, ends the list (total = offset + rows, in
 * one snapshot), so the count's round trip and plan are saved. A count statement that
 * answers 99 shows when it ran. */
static void test_resource_count_only_when_page_cannot_tell(void **state)
{
    static const char sql_count_99[] = "SELECT 99 WHERE $1 IS NOT NULL OR $2 IS NULL OR $3 IS NULL";
    struct fx *f = *state;
    struct cc_resource counted = full;
    const struct {
        const struct cc_principal *p;
        int64_t customer; /* filter, 0: none */
        struct cc_page pg;
        int items, total;
    } cases[] = {
        {&CUST_A, 0, {CC_PAGE_MAX, 0}, 3, 3}, /* first page, short: no count */
        {&ADMIN, 1, {CC_PAGE_MAX, 0}, 0, 0},  /* first page, empty: no count */
        {&ADMIN, 0, {3, 2}, 2, 4},            /* a later page, short: no count */
        {&ADMIN, 0, {2, 2}, 2, 99},           /* full: the count */
        {&ADMIN, 0, {4, 0}, 4, 99},           /* full to the last row: the count */
        {&ADMIN, 0, {5, 10}, 0, 99},          /* empty past the first page: the count */
    };

    counted.sql.count = sql_count_99;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cc_resource_filter flt;
        cJSON *out = NULL;

        memset(&flt, 0, sizeof flt);
        if (cases[i].customer > 0)
            flt.v[0] = cc_value_int(cases[i].customer);
        assert_int_equal(cc_resource_list(f->st, &counted, cases[i].p, &flt, &cases[i].pg, &out),
                         CC_OK);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "items")), cases[i].items);
        assert_int_equal(cJSON_GetObjectItem(out, "total")->valueint, cases[i].total);
        cJSON_Delete(out);
    }
}

static void test_resource_filters_and_columns(void **state)
{
    struct fx *f = *state;
    const struct cc_page pg = {CC_PAGE_MAX, 0};
    struct cc_resource_filter flt;
    cJSON *out = NULL, *err = NULL, *first, *second;

    assert_int_equal(cc_resource_filter_parse(&full, "customerId=3", &flt, &err), CC_OK);
    assert_int_equal(flt.v[0].kind, CC_VALUE_INT);
    assert_int_equal(flt.v[0].i, 3);
    assert_int_equal(cc_resource_list(f->st, &full, &ADMIN, &flt, &pg, &out), CC_OK);
    assert_int_equal(cJSON_GetObjectItem(out, "total")->valueint, 1);
    cJSON_Delete(out);
    assert_int_equal(cc_resource_filter_parse(&full, NULL, &flt, &err), CC_OK);
    assert_int_equal(flt.v[0].kind, CC_VALUE_NULL); /* no filter: everything */
    assert_int_equal(cc_resource_filter_parse(&full, "customerId=abc", &flt, &err),
                     CC_ERR_VALIDATION);
    assert_non_null(err);
    cJSON_Delete(err);
    /* The same list through cc_resource_list_by. */
    assert_int_equal(cc_resource_list_by(f->st, &full, &ADMIN, 2, &pg, &out), CC_OK);
    assert_int_equal(cJSON_GetObjectItem(out, "total")->valueint, 3);
    /* A JSON column is parsed, and left out when NULL. */
    first = cJSON_GetArrayItem(cJSON_GetObjectItem(out, "items"), 0);
    second = cJSON_GetArrayItem(cJSON_GetObjectItem(out, "items"), 1);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(first, "tags")));
    assert_null(cJSON_GetObjectItem(second, "tags"));
    assert_string_equal(cJSON_GetObjectItem(second, "name")->valuestring, "L2");
    cJSON_Delete(out);
}

static void test_resource_write_and_audit_commit_together(void **state)
{
    struct fx *f = *state;
    cJSON *out = NULL, *err = NULL, *body = body_of("{\"name\":\"New\",\"customerId\":2}");
    int64_t id;

    /* A failing check: no row, no audit row, and the hooks still cleaned up. */
    fail_check = CC_ERR_CONFLICT;
    assert_int_equal(cc_resource_create(f->st, &full, &CUST_A, body, &out, &err), CC_ERR_CONFLICT);
    assert_int_equal(hooks_run, 7);
    assert_null(out);
    /* A hook failing after the insert rolls the insert back with the audit row. */
    fail_check = CC_OK;
    fail_after = CC_ERR_DB;
    assert_int_equal(cc_resource_create(f->st, &full, &CUST_A, body, &out, &err), CC_ERR_DB);
    assert_int_equal(count_of(f, "SELECT count(*) FROM locations"), 4);
    assert_int_equal(count_of(f, "SELECT count(*) FROM audit_log"), 0);
    /* Both succeed: one row, one audit row naming the descriptor's entity. */
    fail_after = CC_OK;
    assert_int_equal(cc_resource_create(f->st, &full, &CUST_A, body, &out, &err), CC_OK);
    id = (int64_t)cJSON_GetObjectItem(out, "id")->valuedouble;
    assert_string_equal(cJSON_GetObjectItem(out, "name")->valuestring, "New");
    cJSON_Delete(out);
    assert_int_equal(count_of(f, "SELECT count(*) FROM audit_log WHERE entity = 'test_thing'"
                                 " AND action = 'create'"),
                     1);
    /* Update and delete go the same way; the check hook saw each verb once. */
    cJSON_Delete(body);
    body = body_of("{\"name\":\"Renamed\"}");
    assert_int_equal(cc_resource_update(f->st, &full, &CUST_A, id, body, &out, &err), CC_OK);
    assert_string_equal(cJSON_GetObjectItem(out, "name")->valuestring, "Renamed");
    assert_int_equal(cJSON_GetObjectItem(out, "customerId")->valueint, 2); /* NULL: kept */
    cJSON_Delete(out);
    assert_int_equal(cc_resource_delete(f->st, &full, &CUST_A, id, &err), CC_OK);
    assert_int_equal(count_of(f, "SELECT count(*) FROM audit_log WHERE entity = 'test_thing'"), 3);
    assert_int_equal(saw_verb[CC_RESOURCE_CREATE], 3);
    assert_int_equal(saw_verb[CC_RESOURCE_UPDATE], 1);
    assert_int_equal(saw_verb[CC_RESOURCE_DELETE], 1);
    assert_null(err);
    cJSON_Delete(body);
}

static void test_resource_access_and_roles(void **state)
{
    struct fx *f = *state;
    struct cc_resource admins = full;
    cJSON *out = NULL, *err = NULL, *body = body_of("{\"name\":\"X\",\"customerId\":3}");

    /* Someone else's parent: NOT_FOUND with the descriptor's message. */
    assert_int_equal(cc_resource_create(f->st, &full, &CUST_A, body, &out, &err), CC_ERR_NOT_FOUND);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(err, "error"), "message")->valuestring,
        "customer not found");
    cJSON_Delete(err);
    err = NULL;
    /* Someone else's row: NOT_FOUND for every verb, before the check hook. */
    assert_int_equal(cc_resource_get(f->st, &full, &CUST_A, 4, &out), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_resource_delete(f->st, &full, &CUST_A, 4, &err), CC_ERR_NOT_FOUND);
    assert_int_equal(saw_verb[CC_RESOURCE_DELETE], 0);
    /* write_roles: refused before the body is read, even a bad one. */
    admins.write_roles = CC_ROLE_ADMIN;
    hooks_run = 0;
    cJSON_Delete(body);
    body = body_of("{\"name\":42}");
    assert_int_equal(cc_resource_create(f->st, &admins, &CUST_A, body, &out, &err),
                     CC_ERR_FORBIDDEN);
    assert_int_equal(cc_resource_delete(f->st, &admins, &CUST_A, 1, &err), CC_ERR_FORBIDDEN);
    assert_null(err);
    assert_int_equal(hooks_run & 1, 0);
    /* The admin may; a bad body is then a validation error listing the field. */
    assert_int_equal(cc_resource_create(f->st, &admins, &ADMIN, body, &out, &err),
                     CC_ERR_VALIDATION);
    assert_non_null(err);
    cJSON_Delete(err);
    cJSON_Delete(body);
    assert_int_equal(count_of(f, "SELECT count(*) FROM locations"), 4);
}

static int poke(struct cc_resource_write *w)
{
    const struct cc_value args[2] = {cc_value_text(w->arg), cc_value_int(w->id)};
    int64_t changed = -1;
    int rc =
        cc_resource_exec(w->st, "UPDATE locations SET name = ?1 WHERE id = ?2", args, 2, &changed);

    return rc == CC_OK && changed != 1 ? CC_ERR_INTERNAL : rc;
}

static void test_resource_action_and_helpers(void **state)
{
    struct fx *f = *state;
    static const struct cc_column name_col[] = {{"name", CC_COL_TEXT}};
    const struct cc_value id = cc_value_int(99);
    cJSON *out = NULL, *err = NULL;

    assert_int_equal(
        cc_resource_action(f->st, &full, &CUST_A, 1, "poke", CC_ACTION_OLD, poke, "P", &out, &err),
        CC_OK);
    assert_string_equal(cJSON_GetObjectItem(out, "name")->valuestring, "P");
    cJSON_Delete(out);
    assert_int_equal(count_of(f, "SELECT count(*) FROM audit_log WHERE action = 'poke' AND"
                                 " json_extract(detail, '$.old.name') = 'L1'"),
                     1);
    assert_int_equal(cc_resource_action(f->st, &full, &CUST_A, 4, "poke", 0, poke, "Q", &out, &err),
                     CC_ERR_NOT_FOUND);
    /* One row asked, none there; many rows asked, an empty array. */
    assert_int_equal(cc_resource_query(f->st, "SELECT name FROM locations WHERE id = ?1", &id, 1,
                                       name_col, 1, 0, &out),
                     CC_ERR_NOT_FOUND);
    assert_int_equal(cc_resource_query(f->st, "SELECT name FROM locations WHERE id = ?1", &id, 1,
                                       name_col, 1, 1, &out),
                     CC_OK);
    assert_int_equal(cJSON_GetArraySize(out), 0);
    cJSON_Delete(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resource_missing_parts_are_internal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource_paging_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource_count_only_when_page_cannot_tell, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resource_filters_and_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource_write_and_audit_commit_together, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resource_access_and_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource_action_and_helpers, setup, teardown),
    };

    cc_log_init("test_resource", CC_LOG_ERROR, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
