/* test_api_pg.c - the api/ modules on cc_dbi.h (cc_access, cc_audit, cc_auth, cc_provision,
 * cc_bulk) on both stores: every test runs once on SQLite (a migrated store in memory) and
 * once on PostgreSQL 15 (a throwaway cluster, tools/pgtest.sh, started by the PG group's
 * setup; each test gets a fresh public schema loaded from schema/pg/0001_init.sql), with
 * the same seed, the same calls and the same expected answers. A PostgreSQL that cannot
 * start fails the group: it is not skipped. The unit tests run from the repository root.
 *
 * cc_auth_refresh and cc_auth_bearer load the principal through cc_users_token_principal
 * (cc_users.c, on cc_dbi.h through cc_resource): their tests (NEEDS_USERS, at the end) run
 * on both stores too. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_access.h"
#include "cc_audit.h"
#include "cc_auth.h"
#include "cc_bulk.h"
#include "cc_crypto.h"
#include "cc_dbi.h"
#include "cc_jwt.h"
#include "cc_log.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "fixture.h"
#include "cc_store.h"
#include "cc_time.h"

#define PG_PORT "55413" /* this suite's socket name (tools/pgtest.sh PORT) */
#define SECRET "unit-test-secret-unit-test-secret"
#define PASSWORD "correct-horse-9"
#define TEST_LOG_N 4 /* cheap scrypt for the stored test hashes */

static const struct cc_auth_cfg CFG = {SECRET, sizeof SECRET - 1, 900, 604800};

static char pg_dir[64];
static char pg_url[256];
static char *pg_schema; /* the schema file's text, read once by the group setup */

/* The seed, the same text for both stores. No explicit ids: a fresh database numbers
 * rows 1, 2, 3, ... in both (AUTOINCREMENT, identity), so the ids below hold in both.
 * users: 1 technician (linked to 2), 2 customer A, 3 customer B, 4 admin, 5 disabled
 * customer. A owns location 1 (cells 1, 2; device 1 in cell 1), B location 2 (cell 3,
 * device 2). Alerts 1 (cell 1) and 2 (cell 3); notifications 1 (to 2) and 2 (to 1). */
static const char seed[] =
    "INSERT INTO users (email, password_hash, role, name, created_at, disabled) VALUES"
    " ('t@x.io', 'x', 'TECHNICIAN', 'T', 0, 0), ('Customer@Example.com', 'x', 'CUSTOMER', 'A', 0,"
    " 0), ('b@x.io', 'x', 'CUSTOMER', 'B', 0, 0), ('adm@x.io', 'x', 'ADMIN', 'Adm', 0, 0),"
    " ('gone@x.io', 'x', 'CUSTOMER', 'G', 0, 1);"
    "INSERT INTO technician_customers (technician_id, customer_id) VALUES (1, 2);"
    "INSERT INTO locations (customer_id, name, created_at) VALUES (2, 'LA', 0), (3, 'LB', 0);"
    "INSERT INTO cold_cells (location_id, name, min_temp, max_temp, created_at) VALUES"
    " (1, 'A1', 2, 8, 0), (1, 'A2', -25, -15, 0), (2, 'B1', 2, 8, 0);"
    "INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, api_key_prefix, created_at)"
    " VALUES ('DA1', 1, 'h', 'p', 0), ('DB1', 3, 'h', 'p', 0);"
    "INSERT INTO alerts (cold_cell_id, device_id, type, message, first_triggered_at,"
    " last_triggered_at) VALUES (1, 1, 'HIGH_TEMP', 'm', 0, 0), (3, 2, 'LOW_TEMP', 'm', 0, 0);"
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, next_attempt_at,"
    " created_at) VALUES (2, 1, 'ALERT', 'inbox', '{}', 0, 0), (1, 2, 'ALERT', 'inbox', '{}', 0,"
    " 0);";

static const struct cc_principal TECH = {1, CC_ROLE_TECHNICIAN};
static const struct cc_principal CUST_A = {2, CC_ROLE_CUSTOMER};
static const struct cc_principal CUST_B = {3, CC_ROLE_CUSTOMER};
static const struct cc_principal ADMIN = {4, CC_ROLE_ADMIN};

/* -- the two stores ---------------------------------------------------------------- */

static int pg_group_teardown(void **state)
{
    (void)state;
    free(pg_schema);
    pg_schema = NULL;
    return fixture_pg_stop(pg_dir);
}

static int pg_group_setup(void **state)
{
    (void)state;
    pg_schema = fixture_pg_schema();
    if (pg_schema == NULL)
        return -1;
    if (fixture_pg_start("apipg", PG_PORT, pg_dir, sizeof pg_dir, pg_url, sizeof pg_url) != 0) {
        free(pg_schema);
        pg_schema = NULL;
        return -1;
    }
    return 0;
}

static const char sql_set_password[] = "UPDATE users SET password_hash = $1 WHERE id = $2";

/* Seeds st and gives users 2 and 5 the password PASSWORD (each update raises their
 * token_version to 1 through the password-change trigger, in both dialects). */
static void seed_store(struct cc_store *st)
{
    char hash[CC_PASSWORD_HASH_MAX];
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_store_exec(st, seed), CC_OK);
    assert_int_equal(cc_password_hash_params(PASSWORD, TEST_LOG_N, 8, 1, hash, sizeof hash), CC_OK);
    for (int64_t id = 2; id <= 5; id += 3) {
        assert_int_equal(cc_stmt_prepare(st, sql_set_password, &s), CC_OK);
        assert_int_equal(cc_stmt_bind_text(s, 1, hash), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 2, id), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_OK);
        cc_stmt_release(s);
    }
}

static int lite_setup(void **state)
{
    struct cc_store *st = NULL;

    assert_int_equal(cc_store_open(":memory:", CC_STORE_CREATE | CC_STORE_MIGRATE, &st), CC_OK);
    seed_store(st);
    *state = st;
    return 0;
}

static int pg_setup(void **state)
{
    struct cc_store *st = NULL;

    /* A fresh schema per test: the same ids and an empty audit_log every time. */
    assert_int_equal(cc_store_open(pg_url, 0, &st), CC_OK);
    assert_int_equal(cc_store_exec(st, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"), CC_OK);
    assert_int_equal(cc_store_exec(st, pg_schema), CC_OK);
    seed_store(st);
    *state = st;
    return 0;
}

static int st_teardown(void **state)
{
    cc_store_close(*state);
    return 0;
}

/* -- helpers ----------------------------------------------------------------------- */

/* Runs sql (a literal) with $1 bound to arg when arg >= 0; returns the first column of its
 * one row as an integer. */
static int64_t q_int(struct cc_store *st, const char *sql, int64_t arg)
{
    struct cc_stmt *s = NULL;
    int64_t v;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    if (arg >= 0)
        assert_int_equal(cc_stmt_bind_int64(s, 1, arg), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    v = cc_stmt_column_int64(s, 0);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    return v;
}

/* The same with a text $1. */
static int64_t q_int_text(struct cc_store *st, const char *sql, const char *arg)
{
    struct cc_stmt *s = NULL;
    int64_t v;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 1, arg), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    v = cc_stmt_column_int64(s, 0);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    return v;
}

static void assert_json(const cJSON *o, const char *want)
{
    char *text = cJSON_PrintUnformatted(o);

    assert_non_null(text);
    assert_string_equal(text, want);
    free(text);
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* -- cc_access --------------------------------------------------------------------- */

struct access_case {
    const struct cc_principal *p;
    int entity;
    int64_t id;
    int want;
};

static void test_access_check_both(void **state)
{
    struct cc_store *st = *state;
    static const struct access_case cases[] = {
        {&CUST_A, CC_ENTITY_LOCATION, 1, CC_OK},
        {&CUST_A, CC_ENTITY_LOCATION, 2, CC_ERR_NOT_FOUND}, /* B's: like a missing one */
        {&CUST_A, CC_ENTITY_LOCATION, 99, CC_ERR_NOT_FOUND},
        {&CUST_A, CC_ENTITY_COLDCELL, 2, CC_OK},
        {&CUST_A, CC_ENTITY_COLDCELL, 3, CC_ERR_NOT_FOUND},
        {&CUST_A, CC_ENTITY_DEVICE, 1, CC_OK},
        {&CUST_A, CC_ENTITY_DEVICE, 2, CC_ERR_NOT_FOUND},
        {&CUST_A, CC_ENTITY_ALERT, 1, CC_OK},
        {&CUST_A, CC_ENTITY_ALERT, 2, CC_ERR_NOT_FOUND},
        {&CUST_A, CC_ENTITY_USER, 2, CC_OK},
        {&CUST_A, CC_ENTITY_USER, 3, CC_ERR_NOT_FOUND},
        {&CUST_A, CC_ENTITY_CUSTOMER, 2, CC_OK},
        {&CUST_A, CC_ENTITY_NOTIFICATION, 1, CC_OK},
        {&CUST_A, CC_ENTITY_NOTIFICATION, 2, CC_ERR_NOT_FOUND},
        {&CUST_B, CC_ENTITY_COLDCELL, 3, CC_OK},
        {&CUST_B, CC_ENTITY_DEVICE, 1, CC_ERR_NOT_FOUND},
        {&TECH, CC_ENTITY_COLDCELL, 1, CC_OK}, /* linked to A */
        {&TECH, CC_ENTITY_COLDCELL, 3, CC_ERR_NOT_FOUND},
        {&TECH, CC_ENTITY_CUSTOMER, 2, CC_OK},
        {&TECH, CC_ENTITY_CUSTOMER, 3, CC_ERR_NOT_FOUND},
        {&TECH, CC_ENTITY_USER, 2, CC_ERR_NOT_FOUND}, /* users are the admin's */
        {&TECH, CC_ENTITY_NOTIFICATION, 2, CC_OK},
        {&ADMIN, CC_ENTITY_DEVICE, 2, CC_OK},
        {&ADMIN, CC_ENTITY_CUSTOMER, 1, CC_ERR_NOT_FOUND}, /* a technician is no customer */
        {&ADMIN, CC_ENTITY_USER, 5, CC_OK},
        {&ADMIN, CC_ENTITY_NOTIFICATION, 1, CC_ERR_NOT_FOUND}, /* the recipient's alone */
        {&ADMIN, CC_ENTITY_ALERT, 3, CC_ERR_NOT_FOUND},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct access_case *c = &cases[i];

        if (cc_access_check(st, c->p, c->entity, c->id, CC_ACCESS_READ) != c->want)
            fail_msg("case %zu: user %lld entity %d id %lld", i, (long long)c->p->user_id,
                     c->entity, (long long)c->id);
    }
}

/* A list built with CC_ACCESS_SQL_N, bound by cc_access_bind_stmt, with a parameter of its
 * own ($3): the cold cells each principal sees, as a bit set of ids. */
static const char sql_cells_visible[] =
    "SELECT c.id FROM cold_cells c JOIN locations l ON l.id = c.location_id WHERE c.id >= $3"
    " AND " CC_ACCESS_SQL_N("l.customer_id") " ORDER BY c.id";

static unsigned cells_visible(struct cc_store *st, const struct cc_principal *p)
{
    struct cc_stmt *s = NULL;
    unsigned bits = 0;
    int rc;

    assert_int_equal(cc_stmt_prepare(st, sql_cells_visible, &s), CC_OK);
    assert_int_equal(cc_access_bind_stmt(s, p), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 3, 1), CC_OK);
    while ((rc = cc_stmt_step(s)) == CC_ROW)
        bits |= 1u << cc_stmt_column_int64(s, 0);
    assert_int_equal(rc, CC_OK);
    cc_stmt_release(s);
    return bits;
}

static void test_access_list_sql_agrees(void **state)
{
    struct cc_store *st = *state;
    const struct cc_principal *who[] = {&CUST_A, &CUST_B, &TECH, &ADMIN};
    const unsigned want[] = {0x6, 0x8, 0x6, 0xe}; /* cells {1,2}, {3}, {1,2}, {1,2,3} */

    for (size_t i = 0; i < 4; i++) {
        unsigned bits = cells_visible(st, who[i]);

        assert_int_equal(bits, want[i]);
        for (int64_t cell = 1; cell <= 3; cell++)
            assert_int_equal(cc_access_check(st, who[i], CC_ENTITY_COLDCELL, cell, CC_ACCESS_READ),
                             (bits >> cell) & 1 ? CC_OK : CC_ERR_NOT_FOUND);
    }
}

/* -- cc_audit ---------------------------------------------------------------------- */

static const char sql_audit_row[] =
    "SELECT actor_user_id, action, entity, entity_id, detail, ts FROM audit_log WHERE id = $1";
static const char sql_audit_count[] = "SELECT count(*) FROM audit_log WHERE id > $1";
static const char sql_audit_update[] = "UPDATE audit_log SET action = 'x' WHERE id = $1";
static const char sql_audit_delete[] = "DELETE FROM audit_log WHERE id = $1";

/* Row id of audit_log: actor (0 for NULL), action, entity, entity id (0 for NULL), detail. */
static void expect_audit(struct cc_store *st, int64_t id, int64_t actor, const char *action,
                         const char *entity, int64_t entity_id, const char *detail)
{
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_stmt_prepare(st, sql_audit_row, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, id), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_stmt_column_is_null(s, 0), actor == 0);
    assert_int_equal(cc_stmt_column_int64(s, 0), actor);
    assert_string_equal(cc_stmt_column_text(s, 1), action);
    assert_string_equal(cc_stmt_column_text(s, 2), entity);
    assert_int_equal(cc_stmt_column_is_null(s, 3), entity_id == 0);
    assert_int_equal(cc_stmt_column_int64(s, 3), entity_id);
    assert_string_equal(cc_stmt_column_text(s, 4), detail);
    assert_true(cc_stmt_column_int64(s, 5) > 1700000000000LL); /* now, in epoch ms */
    cc_stmt_release(s);
}

static void test_audit_rows_both(void **state)
{
    struct cc_store *st = *state;
    cJSON *old_obj = cJSON_Parse("{\"name\":\"LA\",\"n\":1.5}");
    cJSON *new_obj = cJSON_Parse("{\"name\":\"L\\u00e4\",\"n\":2}");

    assert_int_equal(cc_audit_append(st, 4, "update", "location", 1, old_obj, new_obj), CC_OK);
    assert_int_equal(cc_audit_append(st, 0, "login", "user", 0, NULL, NULL), CC_OK);
    expect_audit(st, 1, 4, "update", "location", 1,
                 "{\"old\":{\"name\":\"LA\",\"n\":1.5},\"new\":{\"name\":\"L\xc3\xa4\",\"n\":2}}");
    expect_audit(st, 2, 0, "login", "user", 0, "{}");

    /* A rolled-back write takes its audit row with it. */
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_audit_append(st, 4, "delete", "device", 1, NULL, NULL), CC_OK);
    cc_store_rollback(st);
    assert_int_equal(q_int(st, sql_audit_count, 2), 0);

    /* Append-only: the schema refuses updates and deletes in both dialects (logged). */
    assert_int_equal(q_int(st, sql_audit_count, 0), 2);
    {
        struct cc_stmt *s = NULL;

        assert_int_equal(cc_stmt_prepare(st, sql_audit_update, &s), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 1, 1), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_ERR_DB);
        cc_stmt_release(s);
        assert_int_equal(cc_stmt_prepare(st, sql_audit_delete, &s), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 1, 1), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_ERR_DB);
        cc_stmt_release(s);
    }
    expect_audit(st, 1, 4, "update", "location", 1,
                 "{\"old\":{\"name\":\"LA\",\"n\":1.5},\"new\":{\"name\":\"L\xc3\xa4\",\"n\":2}}");
    cJSON_Delete(old_obj);
    cJSON_Delete(new_obj);
}

/* -- cc_auth ----------------------------------------------------------------------- */

static cJSON *body2(const char *k1, const char *v1, const char *k2, const char *v2)
{
    cJSON *b = cJSON_CreateObject();

    assert_non_null(b);
    if (k1)
        cJSON_AddStringToObject(b, k1, v1);
    if (k2)
        cJSON_AddStringToObject(b, k2, v2);
    return b;
}

static int login(struct cc_store *st, const char *email, const char *password, cJSON **out)
{
    cJSON *b = body2("email", email, "password", password);
    cJSON *err = NULL;
    int rc = cc_auth_login(st, &CFG, b, out, &err);

    cJSON_Delete(b);
    cJSON_Delete(err);
    return rc;
}

static int logout(struct cc_store *st, const struct cc_principal *p, const char *tok)
{
    cJSON *b = body2("refreshToken", tok, NULL, NULL);
    cJSON *err = NULL;
    int rc = cc_auth_logout(st, &CFG, p, b, &err);

    cJSON_Delete(b);
    cJSON_Delete(err);
    return rc;
}

static const char sql_token_by_hash[] =
    "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1 AND user_id = 2"
    " AND revoked_at IS NULL AND expires_at > created_at";
static const char sql_tokens_live[] =
    "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL";
static const char sql_tokens_all[] = "SELECT count(*) FROM refresh_tokens WHERE user_id = $1";
static const char sql_audit_action[] = "SELECT count(*) FROM audit_log WHERE action = $1"
                                       " AND actor_user_id = 2 AND entity = 'user'"
                                       " AND entity_id = 2";
static const char sql_token_version[] = "SELECT token_version FROM users WHERE id = $1";

static void test_auth_login_both(void **state)
{
    struct cc_store *st = *state;
    struct cc_jwt_claims c;
    char hash[CC_SHA256_HEX_LEN];
    cJSON *out = NULL;

    /* The e-mail matches case-insensitively (NOCASE, citext); the answer is the same. */
    assert_int_equal(login(st, "customer@EXAMPLE.com", PASSWORD, &out), CC_OK);
    assert_json(
        cJSON_GetObjectItemCaseSensitive(out, "user"),
        "{\"id\":2,\"email\":\"Customer@Example.com\",\"role\":\"CUSTOMER\",\"name\":\"A\"}");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(out, "expiresIn")->valuedouble, 900);
    assert_int_equal(cc_jwt_verify(SECRET, sizeof SECRET - 1, str(out, "refreshToken"),
                                   CC_JWT_REFRESH, cc_now_ms() / 1000, &c),
                     CC_OK);
    assert_int_equal(c.sub, 2);
    assert_int_equal(c.ver, 1); /* the seed's password update raised token_version */
    /* Stored as its hash only, alive, with one audit row. */
    cc_sha256_hex(str(out, "refreshToken"), strlen(str(out, "refreshToken")), hash);
    assert_int_equal(q_int_text(st, sql_token_by_hash, hash), 1);
    assert_int_equal(q_int(st, sql_tokens_all, 2), 1);
    assert_int_equal(q_int_text(st, sql_audit_action, "login"), 1);
    cJSON_Delete(out);

    /* Wrong password, unknown e-mail, disabled user: one answer, nothing written. */
    out = NULL;
    assert_int_equal(login(st, "customer@example.com", "wrong-password", &out),
                     CC_ERR_INVALID_CREDENTIALS);
    assert_int_equal(login(st, "nobody@example.com", PASSWORD, &out), CC_ERR_INVALID_CREDENTIALS);
    assert_int_equal(login(st, "GONE@x.io", PASSWORD, &out), CC_ERR_INVALID_CREDENTIALS);
    assert_null(out);
    assert_int_equal(q_int(st, sql_tokens_all, 2), 1);
    assert_int_equal(q_int(st, sql_tokens_all, 5), 0);
}

static void test_auth_logout_revokes_family_both(void **state)
{
    struct cc_store *st = *state;
    cJSON *a = NULL, *b = NULL;

    /* Two sign-ins: two families. Logout ends the one whose token it gets. */
    assert_int_equal(login(st, "customer@example.com", PASSWORD, &a), CC_OK);
    assert_int_equal(login(st, "customer@example.com", PASSWORD, &b), CC_OK);
    assert_int_equal(q_int(st, sql_tokens_live, 2), 2);
    /* Someone else's token: refused, nothing revoked. */
    assert_int_equal(logout(st, &CUST_B, str(a, "refreshToken")), CC_ERR_UNAUTHORIZED);
    assert_int_equal(logout(st, &CUST_A, "not-a-stored-token"), CC_ERR_UNAUTHORIZED);
    assert_int_equal(q_int(st, sql_tokens_live, 2), 2);
    assert_int_equal(logout(st, &CUST_A, str(a, "refreshToken")), CC_OK);
    assert_int_equal(q_int(st, sql_tokens_live, 2), 1);
    assert_int_equal(q_int_text(st, sql_audit_action, "logout"), 1);
    /* Again: the family is already revoked, still CC_OK (the stored hash decides). */
    assert_int_equal(logout(st, &CUST_A, str(a, "refreshToken")), CC_OK);
    assert_int_equal(q_int(st, sql_tokens_live, 2), 1);
    cJSON_Delete(a);
    cJSON_Delete(b);
}

static const char sql_keep_password[] =
    "UPDATE users SET password_hash = coalesce(CAST($1 AS text), password_hash) WHERE id = 2";

static void test_auth_password_change_revokes_tokens_both(void **state)
{
    struct cc_store *st = *state;
    struct cc_stmt *s = NULL;
    cJSON *a = NULL, *b = NULL;

    assert_int_equal(login(st, "customer@example.com", PASSWORD, &a), CC_OK);
    assert_int_equal(login(st, "customer@example.com", PASSWORD, &b), CC_OK);
    assert_int_equal(q_int(st, sql_token_version, 2), 1);

    /* An update naming the column but keeping its value changes nothing. */
    assert_int_equal(cc_stmt_prepare(st, sql_keep_password, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_null(s, 1), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    assert_int_equal(q_int(st, sql_token_version, 2), 1);
    assert_int_equal(q_int(st, sql_tokens_live, 2), 2);

    /* A new hash: every refresh token of the user revoked, token_version + 1 (what makes
     * cc_auth_refresh and cc_auth_bearer refuse the older tokens). Others untouched. */
    assert_int_equal(cc_stmt_prepare(st, sql_keep_password, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 1, "scrypt$new"), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    assert_int_equal(cc_stmt_changes(s), 1);
    cc_stmt_release(s);
    assert_int_equal(q_int(st, sql_token_version, 2), 2);
    assert_int_equal(q_int(st, sql_tokens_live, 2), 0);
    assert_int_equal(q_int(st, sql_tokens_all, 2), 2);
    assert_int_equal(q_int(st, sql_token_version, 3), 0);
    cJSON_Delete(a);
    cJSON_Delete(b);
}

/* -- cc_auth's refresh and bearer (they need cc_users_token_principal, see main) ---- */

static int refresh(struct cc_store *st, const char *tok, cJSON **out)
{
    cJSON *b = body2("refreshToken", tok, NULL, NULL);
    cJSON *err = NULL;
    int rc = cc_auth_refresh(st, &CFG, b, out, &err);

    cJSON_Delete(b);
    cJSON_Delete(err);
    return rc;
}

static int bearer(struct cc_store *st, const cJSON *ans, struct cc_principal *p)
{
    char header[CC_JWT_MAX_LEN + 16];

    snprintf(header, sizeof header, "Bearer %s", str(ans, "accessToken"));
    return cc_auth_bearer(st, &CFG, header, p);
}

static const char sql_families[] =
    "SELECT count(DISTINCT family_id) FROM refresh_tokens WHERE user_id = $1";
static const char sql_reuse_audits[] =
    "SELECT count(*) FROM audit_log WHERE action = 'token_reuse' AND entity = 'refresh_token'"
    " AND actor_user_id = $1";

static void test_auth_refresh_rotates_both(void **state)
{
    struct cc_store *st = *state;
    struct cc_principal p;
    cJSON *a = NULL, *a2 = NULL, *a3 = NULL;

    assert_int_equal(login(st, "customer@example.com", PASSWORD, &a), CC_OK);
    assert_int_equal(refresh(st, str(a, "refreshToken"), &a2), CC_OK);
    assert_string_not_equal(str(a, "refreshToken"), str(a2, "refreshToken"));
    assert_json(
        cJSON_GetObjectItemCaseSensitive(a2, "user"),
        "{\"id\":2,\"email\":\"Customer@Example.com\",\"role\":\"CUSTOMER\",\"name\":\"A\"}");
    /* The presented token is revoked; its successor lives, in the same family. */
    assert_int_equal(q_int(st, sql_tokens_all, 2), 2);
    assert_int_equal(q_int(st, sql_tokens_live, 2), 1);
    assert_int_equal(q_int(st, sql_families, 2), 1);
    assert_int_equal(refresh(st, str(a2, "refreshToken"), &a3), CC_OK);
    assert_int_equal(bearer(st, a3, &p), CC_OK);
    assert_int_equal(p.user_id, 2);
    assert_int_equal(p.role, CC_ROLE_CUSTOMER);
    cJSON_Delete(a);
    cJSON_Delete(a2);
    cJSON_Delete(a3);
}

static void test_auth_refresh_reuse_revokes_family_both(void **state)
{
    struct cc_store *st = *state;
    cJSON *a = NULL, *a2 = NULL, *b = NULL, *b2 = NULL, *x = NULL;

    assert_int_equal(login(st, "customer@example.com", PASSWORD, &a), CC_OK);
    assert_int_equal(login(st, "customer@example.com", PASSWORD, &b), CC_OK);
    assert_int_equal(refresh(st, str(a, "refreshToken"), &a2), CC_OK);
    /* A rotated-away token comes back: refused, its whole family revoked (the successor
     * too), audited; the other sign-in's family goes on. */
    assert_int_equal(refresh(st, str(a, "refreshToken"), &x), CC_ERR_UNAUTHORIZED);
    assert_int_equal(q_int(st, sql_reuse_audits, 2), 1);
    assert_int_equal(q_int(st, sql_tokens_live, 2), 1); /* b's */
    assert_int_equal(refresh(st, str(a2, "refreshToken"), &x), CC_ERR_UNAUTHORIZED);
    assert_int_equal(q_int(st, sql_reuse_audits, 2), 2);
    assert_null(x);
    assert_int_equal(refresh(st, str(b, "refreshToken"), &b2), CC_OK);
    cJSON_Delete(a);
    cJSON_Delete(a2);
    cJSON_Delete(b);
    cJSON_Delete(b2);
}

struct racer {
    const char *token;
    int rc;
    cJSON *ans;
    int done; /* set (atomically) once the refresh returned */
};

static void *refresh_on_own_store(void *arg)
{
    struct racer *r = arg;
    struct cc_store *st = NULL;

    if (cc_store_open(pg_url, 0, &st) != CC_OK) {
        r->rc = -1;
        return NULL;
    }
    r->rc = refresh(st, r->token, &r->ans);
    cc_store_close(st);
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Two apid refreshing one token at once (issue 15: several apid on one PostgreSQL). Here
 * the other one is a second connection that has revoked the row and not yet committed;
 * this refresh must wait for it and then see the token used: a reuse, the family ends. Read
 * without the row lock, it would see the row as it was and issue a second successor. */
static void test_auth_refresh_race_pg(void **state)
{
    struct cc_store *st = *state;
    struct cc_store *other = NULL;
    struct cc_stmt *s = NULL;
    struct racer r = {0};
    pthread_t t;
    cJSON *a = NULL;
    static const char sql_revoke_first[] =
        "UPDATE refresh_tokens SET revoked_at = 1 WHERE user_id = 2 AND revoked_at IS NULL";
    static const char sql_lock_waits[] = "SELECT count(*) FROM pg_locks WHERE NOT granted";

    assert_int_equal(login(st, "customer@example.com", PASSWORD, &a), CC_OK);
    r.token = str(a, "refreshToken");
    assert_int_equal(cc_store_open(pg_url, 0, &other), CC_OK);
    assert_int_equal(cc_store_begin(other), CC_OK);
    assert_int_equal(cc_stmt_prepare(other, sql_revoke_first, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    assert_int_equal(pthread_create(&t, NULL, refresh_on_own_store, &r), 0);
    /* Committed once the refresh waits on the row (a lock not granted), not after a sleep
     * that a loaded host could outlast before the refresh got there; or once it returned
     * without waiting, which the asserts below refuse. */
    for (int64_t end = cc_mono_ms() + FIXTURE_PG_WAIT_MS;
         q_int(st, sql_lock_waits, -1) == 0 && !__atomic_load_n(&r.done, __ATOMIC_ACQUIRE);) {
        assert_true(cc_mono_ms() < end);
        cc_sleep_ms(5);
    }
    assert_int_equal(cc_store_commit(other), CC_OK);
    pthread_join(t, NULL);
    cc_store_close(other);
    assert_int_equal(r.rc, CC_ERR_UNAUTHORIZED);
    assert_null(r.ans);
    assert_int_equal(q_int(st, sql_reuse_audits, 2), 1);
    assert_int_equal(q_int(st, sql_tokens_live, 2), 0);
    cJSON_Delete(a);
}

static void test_auth_password_change_ends_sessions_both(void **state)
{
    struct cc_store *st = *state;
    struct cc_stmt *s = NULL;
    struct cc_principal p;
    cJSON *a = NULL, *x = NULL;

    assert_int_equal(login(st, "customer@example.com", PASSWORD, &a), CC_OK);
    assert_int_equal(bearer(st, a, &p), CC_OK);
    assert_int_equal(cc_stmt_prepare(st, sql_keep_password, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 1, "scrypt$new"), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    /* Both tokens end (ver), and the refused refresh is no token_reuse alarm. */
    assert_int_equal(bearer(st, a, &p), CC_ERR_UNAUTHORIZED);
    assert_int_equal(refresh(st, str(a, "refreshToken"), &x), CC_ERR_UNAUTHORIZED);
    assert_null(x);
    assert_int_equal(q_int(st, sql_reuse_audits, 2), 0);
    cJSON_Delete(a);
}

/* -- cc_provision ------------------------------------------------------------------ */

static const char sql_user_email[] = "SELECT count(*) FROM users WHERE id = 6 AND email = $1"
                                     " AND role = 'TECHNICIAN' AND name = 'New' AND disabled = 0";
static const char sql_user_hash[] = "SELECT password_hash FROM users WHERE id = $1";
static const char sql_users[] = "SELECT count(*) FROM users WHERE id >= $1";

static void test_provision_user_both(void **state)
{
    struct cc_store *st = *state;
    struct cc_stmt *s = NULL;
    cJSON *err = NULL;
    int64_t id = 0, id2 = 0;

    assert_int_equal(cc_provision_user(st, "New@x.io", PASSWORD, "TECHNICIAN", "New", &id, &err),
                     CC_OK);
    assert_null(err);
    assert_int_equal(id, 6);
    assert_int_equal(q_int_text(st, sql_user_email, "New@x.io"), 1);
    assert_int_equal(cc_stmt_prepare(st, sql_user_hash, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 6), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    assert_int_equal(cc_password_verify(PASSWORD, cc_stmt_column_text(s, 0)), CC_OK);
    cc_stmt_release(s);

    /* The same e-mail in other case: a conflict, case-insensitively in both dialects. */
    assert_int_equal(cc_provision_user(st, "NEW@X.IO", PASSWORD, "ADMIN", "N2", &id2, &err),
                     CC_ERR_CONFLICT);
    assert_null(err);
    assert_int_equal(q_int(st, sql_users, 6), 1);

    /* In the caller's transaction, a conflict leaves the transaction usable (PostgreSQL
     * would abort it on a failed statement) and the next user commits with it. Its id is
     * only "higher": a PostgreSQL identity spends a value on each conflicting attempt. */
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_provision_user(st, "new@X.io", PASSWORD, "ADMIN", "N2", &id2, &err),
                     CC_ERR_CONFLICT);
    assert_int_equal(cc_provision_user(st, "other@x.io", PASSWORD, "ADMIN", "N3", &id2, &err),
                     CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_null(err);
    assert_true(id2 > id);
    assert_int_equal(q_int(st, sql_users, 6), 2);
}

static const char sql_device_row[] =
    "SELECT count(*) FROM devices WHERE id = 3 AND serial_number = 'NEW-1' AND cold_cell_id = 2"
    " AND api_key_hash = $1 AND status = 'NEVER_SEEN' AND firmware_version IS NULL";
static const char sql_device_prefix[] = "SELECT count(*) FROM devices WHERE id = 3"
                                        " AND api_key_prefix = $1";
static const char sql_device_key[] = "SELECT count(*) FROM devices WHERE id = 3"
                                     " AND api_key_hash = $1";
static const char sql_devices[] = "SELECT count(*) FROM devices WHERE id >= $1";

static void test_provision_device_both(void **state)
{
    struct cc_store *st = *state;
    char key[CC_API_KEY_LEN], key2[CC_API_KEY_LEN], hash[CC_SHA256_HEX_LEN], prefix[9];
    cJSON *err = NULL;
    int64_t id = 0;

    assert_int_equal(cc_provision_device(st, 2, "NEW-1", "", &id, key, &err), CC_OK);
    assert_int_equal(id, 3);
    assert_int_equal(strlen(key), CC_API_KEY_LEN - 1);
    cc_sha256_hex(key, strlen(key), hash);
    assert_int_equal(q_int_text(st, sql_device_row, hash), 1);
    memcpy(prefix, key, 8);
    prefix[8] = '\0';
    assert_int_equal(q_int_text(st, sql_device_prefix, prefix), 1);

    assert_int_equal(cc_provision_device(st, 99, "NEW-2", NULL, &id, key2, &err), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_provision_device(st, 1, "DA1", "2.0", &id, key2, &err), CC_ERR_CONFLICT);
    assert_null(err);
    assert_int_equal(q_int(st, sql_devices, 3), 1);

    /* A new key: the old hash is gone at once. */
    assert_int_equal(cc_provision_regenerate_key(st, 3, key2), CC_OK);
    assert_string_not_equal(key, key2);
    assert_int_equal(q_int_text(st, sql_device_key, hash), 0);
    cc_sha256_hex(key2, strlen(key2), hash);
    assert_int_equal(q_int_text(st, sql_device_key, hash), 1);
    assert_int_equal(cc_provision_regenerate_key(st, 99, key2), CC_ERR_NOT_FOUND);
}

/* -- cc_bulk ----------------------------------------------------------------------- */

static const char sql_bulk_device[] =
    "SELECT count(*) FROM devices WHERE id = $1 AND api_key_hash = $2 AND status = 'NEVER_SEEN'";
static const char sql_bulk_audit[] =
    "SELECT count(*) FROM audit_log WHERE action = 'create' AND entity = 'device'"
    " AND actor_user_id = 4 AND entity_id >= 3 AND detail LIKE $1";

static struct cc_bulk *bulk_parse(const char *csv)
{
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    assert_int_equal(cc_bulk_parse(csv, strlen(csv), CC_BULK_CSV, &b, &err), CC_OK);
    assert_null(err);
    return b;
}

static void test_bulk_provision_both(void **state)
{
    struct cc_store *st = *state;
    struct cc_bulk *b = bulk_parse("serialNumber,coldCellId,firmwareVersion\n"
                                   "P-1,1,1.0\nP-2,2,\nP-3,3,2.1\n");
    struct cc_stmt *s = NULL;
    cJSON *err = NULL;

    assert_int_equal(cc_bulk_provision(st, &ADMIN, b, NULL, NULL, &err), CC_OK);
    assert_null(err);
    for (size_t i = 0; i < b->count; i++) {
        char hash[CC_SHA256_HEX_LEN];

        assert_int_equal(b->items[i].id, (int64_t)i + 3);
        cc_sha256_hex(b->items[i].key, strlen(b->items[i].key), hash);
        assert_int_equal(cc_stmt_prepare(st, sql_bulk_device, &s), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 1, b->items[i].id), CC_OK);
        assert_int_equal(cc_stmt_bind_text(s, 2, hash), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_ROW);
        assert_int_equal(cc_stmt_column_int64(s, 0), 1);
        cc_stmt_release(s);
    }
    /* One audit row per device, never its key. */
    assert_int_equal(q_int_text(st, sql_bulk_audit, "%\"source\":\"bulk\"%"), 3);
    assert_int_equal(q_int_text(st, sql_bulk_audit, "%apiKey%"), 0);
    assert_int_equal(q_int_text(st, sql_bulk_audit,
                                "{\"new\":{\"id\":3,\"serialNumber\":\"P-1\",\"coldCellId\":1,"
                                "\"firmwareVersion\":\"1.0\",\"source\":\"bulk\"}}"),
                     1);
    cc_bulk_free(b);

    /* A taken serial and an unknown cell: every bad row reported (the import goes on past
     * the conflict on PostgreSQL too), nothing created, no key kept. */
    b = bulk_parse("serialNumber,coldCellId\nQ-1,1\nDA1,2\nQ-2,99\nQ-3,3\n");
    assert_int_equal(cc_bulk_provision(st, &ADMIN, b, NULL, NULL, &err), CC_ERR_NOT_FOUND);
    assert_json(err, "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"line 4: cold cell 99 not "
                     "found\",\"details\":[{\"field\":\"[1].serialNumber\",\"issue\":\"conflict\","
                     "\"line\":3},{\"field\":\"[2].coldCellId\",\"issue\":\"not_found\",\"line\":4}"
                     "]}}");
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(q_int(st, sql_devices, 6), 0);
    for (size_t i = 0; i < b->count; i++)
        assert_int_equal(b->items[i].key[0], '\0');
    cc_bulk_free(b);

    /* Customer A may not import into B's cell 3. */
    b = bulk_parse("serialNumber,coldCellId\nR-1,1\nR-2,3\n");
    assert_int_equal(cc_bulk_provision(st, &CUST_A, b, NULL, NULL, &err), CC_ERR_NOT_FOUND);
    assert_non_null(err);
    cJSON_Delete(err);
    assert_int_equal(q_int(st, sql_devices, 6), 0);
    cc_bulk_free(b);
}

#define LITE(name) cmocka_unit_test_setup_teardown(name, lite_setup, st_teardown)
#define PG(name) cmocka_unit_test_setup_teardown(name, pg_setup, st_teardown)
#define ALL(X)                                                                                     \
    X(test_access_check_both), X(test_access_list_sql_agrees), X(test_audit_rows_both),            \
        X(test_auth_login_both), X(test_auth_logout_revokes_family_both),                          \
        X(test_auth_password_change_revokes_tokens_both), X(test_provision_user_both),             \
        X(test_provision_device_both), X(test_bulk_provision_both)

/* Refresh and bearer load the principal with cc_users_token_principal (cc_users, through
 * cc_resource), on both stores. */
#define NEEDS_USERS(X)                                                                             \
    X(test_auth_refresh_rotates_both), X(test_auth_refresh_reuse_revokes_family_both),             \
        X(test_auth_password_change_ends_sessions_both)

int main(void)
{
    const struct CMUnitTest lite[] = {ALL(LITE), NEEDS_USERS(LITE)};
    const struct CMUnitTest pg[] = {ALL(PG), NEEDS_USERS(PG), PG(test_auth_refresh_race_pg)};
    int failed;

    cc_log_init("test_api_pg", CC_LOG_ERROR, 1);
    failed = cmocka_run_group_tests_name("api_sqlite", lite, NULL, NULL);
    failed += cmocka_run_group_tests_name("api_postgresql", pg, pg_group_setup, pg_group_teardown);
    return failed;
}
