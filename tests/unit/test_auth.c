/* test_auth.c - cc_auth: login (scrypt verify, case-insensitive e-mail, same answer for
 * unknown e-mail and wrong password, disabled users), refresh rotation, reuse revoking
 * the family, logout, and bearer checks (expired, refresh token, deleted user). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_auth.h"
#include "cc_crypto.h"
#include "cc_db.h"
#include "cc_jwt.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "cc_time.h"
#include "cc_users.h"
#include "fixture.h"

#define SECRET "unit-test-secret-unit-test-secret"
#define PASSWORD "correct-horse-9"
#define TEST_LOG_N 4 /* cheap scrypt for stored test hashes */

static const struct cc_auth_cfg CFG = {SECRET, sizeof SECRET - 1, 900, 604800};

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static void add_user(sqlite3 *db, int id, const char *email, const char *role, int disabled)
{
    char hash[CC_PASSWORD_HASH_MAX];
    char sql[512];

    assert_int_equal(cc_password_hash_params(PASSWORD, TEST_LOG_N, 8, 1, hash, sizeof hash), CC_OK);
    snprintf(sql, sizeof sql,
             "INSERT INTO users (id, email, password_hash, role, name, created_at, disabled)"
             " VALUES (%d, '%s', '%s', '%s', 'User %d', 0, %d)",
             id, email, hash, role, id, disabled);
    exec_ok(db, sql);
}

static struct fixture fx; /* cmocka runs one test at a time */

static int setup(void **state)
{
    if (fixture_open(&fx, 0, 0, NULL) != CC_OK)
        return -1;
    add_user(cc_store_db(fx.st), 1, "tech@example.com", "TECHNICIAN", 0);
    add_user(cc_store_db(fx.st), 2, "Customer@Example.com", "CUSTOMER", 0);
    add_user(cc_store_db(fx.st), 3, "gone@example.com", "CUSTOMER", 1);
    exec_ok(cc_store_db(fx.st), "INSERT INTO users (id, email, password_hash, role, name,"
                                " created_at) VALUES (4, 'broken@example.com', 'md5$abc',"
                                " 'ADMIN', 'B', 0)");
    *state = fx.st;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fixture_close(&fx);
    return 0;
}

static cJSON *body2(const char *k1, const char *v1, const char *k2, const char *v2)
{
    cJSON *b = cJSON_CreateObject();

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

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static int refresh(struct cc_store *st, const char *tok, cJSON **out)
{
    cJSON *b = body2("refreshToken", tok, NULL, NULL);
    cJSON *err = NULL;
    int rc = cc_auth_refresh(st, &CFG, b, out, &err);

    cJSON_Delete(b);
    cJSON_Delete(err);
    return rc;
}

static void test_auth_login_ok(void **state)
{
    struct cc_store *st = *state;
    struct cc_principal p;
    struct cc_jwt_claims c;
    cJSON *out = NULL, *user;
    char bearer[CC_JWT_MAX_LEN + 16];

    /* The stored scrypt hash verifies; e-mails match case-insensitively. */
    assert_int_equal(login(st, "customer@example.COM", PASSWORD, &out), CC_OK);
    user = cJSON_GetObjectItemCaseSensitive(out, "user");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(user, "id")->valuedouble, 2);
    assert_string_equal(str(user, "role"), "CUSTOMER");
    assert_null(cJSON_GetObjectItemCaseSensitive(user, "passwordHash"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(out, "expiresIn")->valuedouble, 900);
    assert_int_equal(cc_jwt_verify(SECRET, sizeof SECRET - 1, str(out, "accessToken"),
                                   CC_JWT_ACCESS, cc_now_ms() / 1000, &c),
                     CC_OK);
    assert_int_equal(c.sub, 2);
    assert_int_equal(c.exp_s - c.iat_s, 900);
    snprintf(bearer, sizeof bearer, "Bearer %s", str(out, "accessToken"));
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_OK);
    assert_int_equal(p.user_id, 2);
    assert_int_equal(p.role, CC_ROLE_CUSTOMER);
    /* One refresh token row, stored as a hash, and one audit row. */
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM refresh_tokens"), 1);
    assert_int_equal(query_int(cc_store_db(st), "SELECT length(token_hash) FROM refresh_tokens"),
                     64);
    assert_int_equal(
        query_int(cc_store_db(st), "SELECT count(*) FROM audit_log WHERE action = 'login'"), 1);
    cJSON_Delete(out);
}

static void test_auth_login_refused(void **state)
{
    struct cc_store *st = *state;
    cJSON *out = NULL, *err = NULL, *b;

    assert_int_equal(login(st, "customer@example.com", "wrong-password", &out),
                     CC_ERR_INVALID_CREDENTIALS);
    assert_int_equal(login(st, "nobody@example.com", PASSWORD, &out), CC_ERR_INVALID_CREDENTIALS);
    assert_int_equal(login(st, "gone@example.com", PASSWORD, &out), CC_ERR_INVALID_CREDENTIALS);
    assert_int_equal(login(st, "broken@example.com", PASSWORD, &out), CC_ERR_INVALID_CREDENTIALS);
    assert_null(out);
    b = body2(NULL, NULL, NULL, NULL);
    assert_int_equal(cc_auth_login(st, &CFG, b, &out, &err), CC_ERR_VALIDATION);
    assert_non_null(err);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(err, "error"), "details")),
                     2);
    cJSON_Delete(err);
    cJSON_Delete(b);
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM refresh_tokens"), 0);
}

static void test_auth_refresh_rotates(void **state)
{
    struct cc_store *st = *state;
    cJSON *first = NULL, *second = NULL, *third = NULL;

    assert_int_equal(login(st, "tech@example.com", PASSWORD, &first), CC_OK);
    assert_int_equal(refresh(st, str(first, "refreshToken"), &second), CC_OK);
    assert_string_not_equal(str(first, "refreshToken"), str(second, "refreshToken"));
    assert_int_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(second, "user"), "id")
            ->valuedouble,
        1);
    /* The old token is revoked, the new one in the same family works. */
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM refresh_tokens WHERE "
                                                "revoked_at IS NOT NULL"),
                     1);
    assert_int_equal(
        query_int(cc_store_db(st), "SELECT count(DISTINCT family_id) FROM refresh_tokens"), 1);
    assert_int_equal(refresh(st, str(second, "refreshToken"), &third), CC_OK);
    cJSON_Delete(first);
    cJSON_Delete(second);
    cJSON_Delete(third);
}

static void test_auth_refresh_reuse_revokes_family(void **state)
{
    struct cc_store *st = *state;
    cJSON *a = NULL, *a2 = NULL, *b = NULL, *b2 = NULL, *x = NULL;

    assert_int_equal(login(st, "tech@example.com", PASSWORD, &a), CC_OK);
    assert_int_equal(login(st, "tech@example.com", PASSWORD, &b), CC_OK);
    assert_int_equal(refresh(st, str(a, "refreshToken"), &a2), CC_OK);
    /* Replaying a rotated-away token: refused, and its family is revoked. */
    assert_int_equal(refresh(st, str(a, "refreshToken"), &x), CC_ERR_UNAUTHORIZED);
    assert_int_equal(refresh(st, str(a2, "refreshToken"), &x), CC_ERR_UNAUTHORIZED);
    assert_null(x);
    /* Each replay of a revoked token is audited. */
    assert_int_equal(
        query_int(cc_store_db(st), "SELECT count(*) FROM audit_log WHERE action = 'token_reuse'"),
        2);
    /* The other sign-in's family is untouched. */
    assert_int_equal(refresh(st, str(b, "refreshToken"), &b2), CC_OK);
    cJSON_Delete(a);
    cJSON_Delete(a2);
    cJSON_Delete(b);
    cJSON_Delete(b2);
}

static void test_auth_refresh_refuses_garbage(void **state)
{
    struct cc_store *st = *state;
    cJSON *a = NULL, *x = NULL;

    assert_int_equal(login(st, "tech@example.com", PASSWORD, &a), CC_OK);
    assert_int_equal(refresh(st, str(a, "accessToken"), &x), CC_ERR_UNAUTHORIZED);
    assert_int_equal(refresh(st, "garbage", &x), CC_ERR_UNAUTHORIZED);
    /* A well-signed refresh token that was never stored. */
    {
        struct cc_jwt_claims c;
        char *tok = NULL;

        memset(&c, 0, sizeof c);
        c.sub = 1;
        strcpy(c.role, "TECHNICIAN");
        c.typ = CC_JWT_REFRESH;
        c.iat_s = cc_now_ms() / 1000;
        c.exp_s = c.iat_s + 60;
        strcpy(c.family, "made-up");
        assert_int_equal(cc_jwt_sign(SECRET, sizeof SECRET - 1, &c, &tok), CC_OK);
        assert_int_equal(refresh(st, tok, &x), CC_ERR_UNAUTHORIZED);
        free(tok);
    }
    assert_null(x);
    cJSON_Delete(a);
}

static void test_auth_logout(void **state)
{
    struct cc_store *st = *state;
    struct cc_principal tech = {1, CC_ROLE_TECHNICIAN}, cust = {2, CC_ROLE_CUSTOMER};
    cJSON *a = NULL, *x = NULL, *b, *err = NULL;

    assert_int_equal(login(st, "tech@example.com", PASSWORD, &a), CC_OK);
    b = body2("refreshToken", str(a, "refreshToken"), NULL, NULL);
    assert_int_equal(cc_auth_logout(st, &CFG, &cust, b, &err), CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_auth_logout(st, &CFG, &tech, b, &err), CC_OK);
    assert_int_equal(refresh(st, str(a, "refreshToken"), &x), CC_ERR_UNAUTHORIZED);
    cJSON_Delete(b);
    b = body2(NULL, NULL, NULL, NULL);
    assert_int_equal(cc_auth_logout(st, &CFG, &tech, b, &err), CC_ERR_VALIDATION);
    cJSON_Delete(err);
    cJSON_Delete(b);
    cJSON_Delete(a);
}

static void test_auth_bearer(void **state)
{
    struct cc_store *st = *state;
    struct cc_principal p;
    struct cc_jwt_claims c;
    char *tok = NULL;
    char bearer[CC_JWT_MAX_LEN + 16];
    cJSON *a = NULL;

    assert_int_equal(cc_auth_bearer(st, &CFG, NULL, &p), CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_auth_bearer(st, &CFG, "Basic dXNlcg==", &p), CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_auth_bearer(st, &CFG, "Bearer ", &p), CC_ERR_UNAUTHORIZED);

    memset(&c, 0, sizeof c);
    c.sub = 1;
    strcpy(c.role, "ADMIN"); /* the token says ADMIN, the database TECHNICIAN */
    c.typ = CC_JWT_ACCESS;
    c.iat_s = cc_now_ms() / 1000 - 1000;
    c.exp_s = c.iat_s + 10;
    assert_int_equal(cc_jwt_sign(SECRET, sizeof SECRET - 1, &c, &tok), CC_OK);
    snprintf(bearer, sizeof bearer, "Bearer %s", tok);
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_ERR_TOKEN_EXPIRED);
    free(tok);
    c.exp_s = c.iat_s + 2000;
    assert_int_equal(cc_jwt_sign(SECRET, sizeof SECRET - 1, &c, &tok), CC_OK);
    snprintf(bearer, sizeof bearer, "bearer %s", tok);
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_OK);
    assert_int_equal(p.role, CC_ROLE_TECHNICIAN);
    free(tok);

    /* A refresh token is no bearer token. */
    assert_int_equal(login(st, "tech@example.com", PASSWORD, &a), CC_OK);
    snprintf(bearer, sizeof bearer, "Bearer %s", str(a, "refreshToken"));
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_ERR_UNAUTHORIZED);
    /* A deleted or disabled user's token stops working at once. */
    snprintf(bearer, sizeof bearer, "Bearer %s", str(a, "accessToken"));
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_OK);
    exec_ok(cc_store_db(st), "UPDATE users SET disabled = 1 WHERE id = 1");
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_ERR_UNAUTHORIZED);
    exec_ok(cc_store_db(st), "DELETE FROM users WHERE id = 1");
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_ERR_UNAUTHORIZED);
    cJSON_Delete(a);
}

/* A signed access token for user 2 (created at 0) with iat and ver, as "Bearer ...". */
static void bearer_for(int64_t iat_s, int64_t ver, char *out, size_t outlen)
{
    struct cc_jwt_claims c;
    char *tok = NULL;

    memset(&c, 0, sizeof c);
    c.sub = 2;
    strcpy(c.role, "CUSTOMER");
    c.typ = CC_JWT_ACCESS;
    c.iat_s = iat_s;
    c.exp_s = cc_now_ms() / 1000 + 600;
    c.ver = ver;
    assert_int_equal(cc_jwt_sign(SECRET, sizeof SECRET - 1, &c, &tok), CC_OK);
    snprintf(out, outlen, "Bearer %s", tok);
    free(tok);
}

static void test_auth_bearer_identity(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    struct cc_principal p;
    struct cc_jwt_claims c;
    char bearer[CC_JWT_MAX_LEN + 16];
    int64_t now_s = cc_now_ms() / 1000;
    cJSON *a = NULL, *b = NULL;

    /* Tokens carry the user's token_version, and only that one passes. */
    assert_int_equal(login(st, "customer@example.com", PASSWORD, &a), CC_OK);
    assert_int_equal(
        cc_jwt_verify(SECRET, sizeof SECRET - 1, str(a, "accessToken"), CC_JWT_ACCESS, now_s, &c),
        CC_OK);
    assert_int_equal(c.ver, 0);
    bearer_for(now_s, 0, bearer, sizeof bearer);
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_OK);
    bearer_for(now_s, 1, bearer, sizeof bearer);
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_ERR_UNAUTHORIZED);

    /* A password change (any path: here plain SQL) ends the access and refresh tokens. */
    exec_ok(db, "UPDATE users SET password_hash = 'other' WHERE id = 2");
    assert_int_equal(query_int(db, "SELECT token_version FROM users WHERE id = 2"), 1);
    snprintf(bearer, sizeof bearer, "Bearer %s", str(a, "accessToken"));
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_ERR_UNAUTHORIZED);
    assert_int_equal(refresh(st, str(a, "refreshToken"), &b), CC_ERR_UNAUTHORIZED);
    assert_null(b);
    bearer_for(now_s, 1, bearer, sizeof bearer);
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_OK);

    /* Created at 1000.5 s: a token of second 1000 passes (iat has second precision),
     * one of second 999 was issued before the user existed. */
    exec_ok(db, "UPDATE users SET created_at = 1000500 WHERE id = 2");
    bearer_for(1000, 1, bearer, sizeof bearer);
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_OK);
    bearer_for(999, 1, bearer, sizeof bearer);
    assert_int_equal(cc_auth_bearer(st, &CFG, bearer, &p), CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_users_created_second(1000500), 1000);
    assert_int_equal(cc_users_created_second(999), 0);
    assert_int_equal(cc_users_created_second(-1), -1);
    cJSON_Delete(a);
}

static void test_auth_refresh_refuses_other_version(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    cJSON *a = NULL, *b = NULL;

    /* Even a refresh token whose row escaped revocation is refused once the version
     * moved on (the token_version check, not only the revocation). */
    assert_int_equal(login(st, "customer@example.com", PASSWORD, &a), CC_OK);
    exec_ok(db, "UPDATE users SET token_version = token_version + 1 WHERE id = 2");
    assert_int_equal(refresh(st, str(a, "refreshToken"), &b), CC_ERR_UNAUTHORIZED);
    assert_null(b);
    assert_int_equal(query_int(db, "SELECT count(*) FROM refresh_tokens WHERE user_id = 2 AND"
                                   " revoked_at IS NULL"),
                     1); /* refused without being rotated */
    cJSON_Delete(a);
}

static void test_auth_refresh_after_password_change_is_no_reuse(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    cJSON *a = NULL, *b = NULL, *x = NULL;

    /* Two sign-ins; the password changes (the trigger revokes both families). Each
     * session's next refresh is refused, but it is the password change that ended it,
     * not a stolen copy: no token_reuse audit entry or alarm for every signed-in tab. */
    assert_int_equal(login(st, "customer@example.com", PASSWORD, &a), CC_OK);
    assert_int_equal(login(st, "customer@example.com", PASSWORD, &b), CC_OK);
    exec_ok(db, "UPDATE users SET password_hash = 'changed' WHERE id = 2");
    assert_int_equal(refresh(st, str(a, "refreshToken"), &x), CC_ERR_UNAUTHORIZED);
    assert_int_equal(refresh(st, str(b, "refreshToken"), &x), CC_ERR_UNAUTHORIZED);
    assert_null(x);
    assert_int_equal(query_int(db, "SELECT count(*) FROM audit_log WHERE action = 'token_reuse'"),
                     0);
    /* A rotated-away token of the current version still raises the alarm. */
    exec_ok(db, "UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE id = 1)"
                " WHERE id = 2");
    cJSON_Delete(a);
    cJSON_Delete(b);
    a = b = NULL;
    assert_int_equal(login(st, "customer@example.com", PASSWORD, &a), CC_OK);
    assert_int_equal(refresh(st, str(a, "refreshToken"), &b), CC_OK);
    assert_int_equal(refresh(st, str(a, "refreshToken"), &x), CC_ERR_UNAUTHORIZED);
    assert_int_equal(query_int(db, "SELECT count(*) FROM audit_log WHERE action = 'token_reuse'"),
                     1);
    cJSON_Delete(a);
    cJSON_Delete(b);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    cc_log_init("test_auth", CC_LOG_WARN, 1);
    const struct CMUnitTest tests[] = {
        T(test_auth_login_ok),
        T(test_auth_login_refused),
        T(test_auth_refresh_rotates),
        T(test_auth_refresh_reuse_revokes_family),
        T(test_auth_refresh_refuses_garbage),
        T(test_auth_logout),
        T(test_auth_bearer_identity),
        T(test_auth_refresh_refuses_other_version),
        T(test_auth_refresh_after_password_change_is_no_reuse),
        T(test_auth_bearer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
