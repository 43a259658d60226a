/* cc_auth.c - login, refresh-token rotation with reuse detection, logout, bearer. */
#include "cc_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cc_audit.h"
#include "cc_crypto.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_input.h"
#include "cc_jwt.h"
#include "cc_log.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_sql.h"
#include "cc_time.h"
#include "cc_users.h"

#define FAMILY_BYTES 16 /* random bytes of a family id */

static const char sql_user_by_email[] =
    "SELECT id, email, role, name, password_hash, disabled, token_version FROM users"
    " WHERE email = ?1";
static const char sql_user_by_id[] = "SELECT id, email, role, name FROM users WHERE id = ?1";
static const char sql_token_insert[] =
    "INSERT INTO refresh_tokens (user_id, family_id, token_hash, created_at, expires_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_token_find[] = "SELECT id, user_id, family_id, expires_at, revoked_at"
                                     " FROM refresh_tokens WHERE token_hash = ?1";
static const char sql_token_revoke[] = "UPDATE refresh_tokens SET revoked_at = ?2 WHERE id = ?1";
static const char sql_family_revoke[] = "UPDATE refresh_tokens SET revoked_at = ?2"
                                        " WHERE family_id = ?1 AND revoked_at IS NULL";
static const char sql_tokens_purge[] =
    "DELETE FROM refresh_tokens WHERE user_id = ?1 AND expires_at < ?2";

/* The user object of login and refresh answers: {id, email, role, name}. */
static cJSON *login_user_row(sqlite3_stmt *s)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    if (cc_sql_json_int(o, "id", s, 0) != CC_OK || cc_sql_json_text(o, "email", s, 1) != CC_OK ||
        cc_sql_json_text(o, "role", s, 2) != CC_OK || cc_sql_json_text(o, "name", s, 3) != CC_OK) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Issues an access and a refresh token for user in family, carrying ver (the user's
 * token_version), and stores the refresh token's hash; must run inside a write
 * transaction. *out gets the answer. */
static int issue(struct cc_store *st, const struct cc_auth_cfg *cfg, int64_t user_id,
                 const char *role, int64_t ver, const char *family, cJSON *user, cJSON **out)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    struct cc_jwt_claims c;
    char *access = NULL, *refresh = NULL;
    char hash[CC_SHA256_HEX_LEN];
    int64_t now_ms = cc_now_ms();
    cJSON *ans = NULL, *dup = NULL;
    int rc;

    memset(&c, 0, sizeof c);
    c.sub = user_id;
    snprintf(c.role, sizeof c.role, "%s", role);
    c.iat_s = now_ms / 1000;
    c.ver = ver;
    c.typ = CC_JWT_ACCESS;
    c.exp_s = c.iat_s + cfg->access_ttl_s;
    rc = cc_jwt_sign(cfg->secret, cfg->secret_len, &c, &access);
    if (rc != CC_OK)
        goto out;
    c.typ = CC_JWT_REFRESH;
    c.exp_s = c.iat_s + cfg->refresh_ttl_s;
    snprintf(c.family, sizeof c.family, "%s", family);
    rc = cc_jwt_sign(cfg->secret, cfg->secret_len, &c, &refresh);
    if (rc != CC_OK)
        goto out;
    cc_sha256_hex(refresh, strlen(refresh), hash);

    rc = cc_sql_prepare(db, sql_token_insert, &stmt);
    if (rc != CC_OK)
        goto out;
    if (sqlite3_bind_int64(stmt, 1, user_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, family, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 3, hash, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 4, now_ms) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 5, c.exp_s * 1000) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    rc = cc_sql_exec(db, stmt);
    if (rc != CC_OK)
        goto out;

    dup = cJSON_Duplicate(user, 1);
    ans = cJSON_CreateObject();
    if (dup == NULL || ans == NULL || cJSON_AddStringToObject(ans, "accessToken", access) == NULL ||
        cJSON_AddStringToObject(ans, "refreshToken", refresh) == NULL ||
        cJSON_AddNumberToObject(ans, "expiresIn", (double)cfg->access_ttl_s) == NULL ||
        !cJSON_AddItemToObject(ans, "user", dup)) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    dup = NULL; /* owned by ans now */
    *out = ans;
    ans = NULL;
    rc = CC_OK;
out:
    cc_sql_release(stmt);
    cJSON_Delete(dup);
    cJSON_Delete(ans);
    free(access);
    free(refresh);
    return rc;
}

/* Runs a statement bound with (?1 = a text or id, ?2 = now). */
static int exec2(sqlite3 *db, const char *sql, const char *text, int64_t id, int64_t now_ms)
{
    sqlite3_stmt *stmt = NULL;
    int rc = cc_sql_prepare(db, sql, &stmt);

    if (rc != CC_OK)
        return rc;
    if ((text ? sqlite3_bind_text(stmt, 1, text, -1, SQLITE_TRANSIENT)
              : sqlite3_bind_int64(stmt, 1, id)) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, now_ms) != SQLITE_OK)
        rc = CC_ERR_DB;
    else
        rc = cc_sql_exec(db, stmt);
    cc_sql_release(stmt);
    return rc;
}

int cc_auth_login(struct cc_store *st, const struct cc_auth_cfg *cfg, const cJSON *body,
                  cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    struct cc_input in;
    const char *email = NULL, *password = NULL;
    unsigned char fam_raw[FAMILY_BYTES];
    char family[CC_JWT_FAMILY_MAX];
    char role[CC_JWT_ROLE_MAX];
    char *stored = NULL;
    cJSON *user = NULL, *ans = NULL;
    int64_t user_id = 0, ver = 0;
    int disabled = 0, src, rc, tx = 0;

    cc_input_init(&in, body);
    cc_input_text(&in, "email", CC_INPUT_REQUIRED | CC_INPUT_NONEMPTY, CC_EMAIL_MAX, &email);
    cc_input_text(&in, "password", CC_INPUT_REQUIRED | CC_INPUT_NONEMPTY, CC_PASSWORD_MAX,
                  &password);
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        return rc;

    rc = cc_sql_prepare(db, sql_user_by_email, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_text(stmt, 1, email, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(stmt, 2);
        const char *h = (const char *)sqlite3_column_text(stmt, 4);

        user_id = sqlite3_column_int64(stmt, 0);
        snprintf(role, sizeof role, "%s", r ? r : "");
        stored = strdup(h ? h : "");
        disabled = sqlite3_column_int(stmt, 5) != 0;
        ver = sqlite3_column_int64(stmt, 6);
        user = login_user_row(stmt);
        if (stored == NULL || user == NULL) {
            rc = CC_ERR_NOMEM;
            goto out;
        }
    } else if (src != SQLITE_DONE) {
        rc = cc_sql_step_rc(db, src, "login lookup");
        goto out;
    }
    cc_sql_release(stmt);
    stmt = NULL;

    /* The same scrypt cost whether the e-mail is known or not (no timing oracle). */
    if (user == NULL) {
        cc_password_dummy_verify(password);
        rc = CC_ERR_INVALID_CREDENTIALS;
        goto out;
    }
    if (cc_password_verify(password, stored) != CC_OK || disabled ||
        cc_role_parse(role) == CC_ROLE_NONE) {
        rc = CC_ERR_INVALID_CREDENTIALS;
        goto out;
    }

    if (cc_random_bytes(fam_raw, sizeof fam_raw) != CC_OK) {
        rc = CC_ERR_INTERNAL;
        goto out;
    }
    cc_base64url_encode(fam_raw, sizeof fam_raw, family);
    rc = cc_db_begin(db);
    if (rc != CC_OK)
        goto out;
    tx = 1;
    rc = exec2(db, sql_tokens_purge, NULL, user_id, cc_now_ms());
    if (rc == CC_OK)
        rc = issue(st, cfg, user_id, role, ver, family, user, &ans);
    if (rc == CC_OK)
        rc = cc_audit_append(st, user_id, "login", "user", user_id, NULL, NULL);
    rc = cc_sql_end(db, rc);
    tx = 0;
out:
    cc_sql_release(stmt);
    if (tx)
        cc_db_rollback(db);
    free(stored);
    cJSON_Delete(user);
    if (rc != CC_OK) {
        cJSON_Delete(ans);
        if (rc == CC_ERR_INVALID_CREDENTIALS)
            cc_log_info("login_failed", "invalid credentials");
        return rc;
    }
    *out = ans;
    return CC_OK;
}

/* Loads {id, email, role, name} of user id; CC_ERR_UNAUTHORIZED if gone. */
static int login_user(sqlite3 *db, int64_t id, cJSON **out)
{
    sqlite3_stmt *stmt = NULL;
    int rc = cc_sql_prepare(db, sql_user_by_id, &stmt);

    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK)
        rc = CC_ERR_DB;
    else
        rc = cc_sql_one(db, stmt, login_user_row, out);
    cc_sql_release(stmt);
    return rc == CC_ERR_NOT_FOUND ? CC_ERR_UNAUTHORIZED : rc;
}

/* A stored refresh token. */
struct stored_token {
    int64_t id, user_id, expires_ms;
    int revoked;
    char family[CC_JWT_FAMILY_MAX];
};

static int find_token(sqlite3 *db, const char *hash, struct stored_token *t)
{
    sqlite3_stmt *stmt = NULL;
    int src, rc = cc_sql_prepare(db, sql_token_find, &stmt);

    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_text(stmt, 1, hash, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src == SQLITE_ROW) {
        const char *f = (const char *)sqlite3_column_text(stmt, 2);

        t->id = sqlite3_column_int64(stmt, 0);
        t->user_id = sqlite3_column_int64(stmt, 1);
        snprintf(t->family, sizeof t->family, "%s", f ? f : "");
        t->expires_ms = sqlite3_column_int64(stmt, 3);
        t->revoked = sqlite3_column_type(stmt, 4) != SQLITE_NULL;
    } else if (src == SQLITE_DONE) {
        rc = CC_ERR_UNAUTHORIZED;
    } else {
        rc = cc_sql_step_rc(db, src, "refresh token lookup");
    }
out:
    cc_sql_release(stmt);
    return rc;
}

/* Reads {refreshToken} from body. */
static int read_refresh(const cJSON *body, const char **token, cJSON **err)
{
    struct cc_input in;

    cc_input_init(&in, body);
    cc_input_text(&in, "refreshToken", CC_INPUT_REQUIRED | CC_INPUT_NONEMPTY, CC_JWT_MAX_LEN,
                  token);
    return cc_input_finish(&in, err);
}

int cc_auth_refresh(struct cc_store *st, const struct cc_auth_cfg *cfg, const cJSON *body,
                    cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    const char *token = NULL;
    struct cc_jwt_claims c;
    struct stored_token t;
    struct cc_principal who;
    char hash[CC_SHA256_HEX_LEN];
    cJSON *user = NULL, *ans = NULL;
    int64_t now_ms = cc_now_ms();
    int rc;

    rc = read_refresh(body, &token, err);
    if (rc != CC_OK)
        return rc;
    rc = cc_jwt_verify(cfg->secret, cfg->secret_len, token, CC_JWT_REFRESH, now_ms / 1000, &c);
    if (rc != CC_OK)
        return CC_ERR_UNAUTHORIZED; /* an expired refresh token means: sign in again */
    cc_sha256_hex(token, strlen(token), hash);

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    memset(&t, 0, sizeof t);
    rc = find_token(db, hash, &t);
    if (rc != CC_OK)
        goto end;
    if (t.user_id != c.sub || strcmp(t.family, c.family) != 0) {
        rc = CC_ERR_UNAUTHORIZED;
        goto end;
    }
    /* A password change since this token was issued (ver), or a user now disabled or
     * gone, ends it even if its row escaped revocation. Checked before reuse: the
     * password-change trigger revokes every row, and the next refresh of each tab that
     * was signed in is not a stolen copy (no token_reuse alarm for it). */
    rc = cc_users_token_principal(st, t.user_id, c.iat_s, c.ver, &who);
    if (rc != CC_OK)
        goto end;
    if (t.revoked) {
        /* A rotated-away token came back: someone holds a copy. End the session for
         * everyone holding any token of this family, and keep that (commit). */
        rc = exec2(db, sql_family_revoke, t.family, 0, now_ms);
        if (rc == CC_OK)
            rc = cc_audit_append(st, t.user_id, "token_reuse", "refresh_token", t.id, NULL, NULL);
        rc = cc_sql_end(db, rc);
        cc_log_warn("refresh_token_reuse", "user=%lld family revoked", (long long)t.user_id);
        if (rc == CC_OK) {
            *err = cc_error_new(CC_ERR_UNAUTHORIZED,
                                "refresh token already used: every session of this sign-in "
                                "is revoked");
            return CC_ERR_UNAUTHORIZED;
        }
        return rc;
    }
    if (t.expires_ms <= now_ms) {
        rc = CC_ERR_UNAUTHORIZED;
        goto end;
    }
    rc = login_user(db, t.user_id, &user);
    if (rc == CC_OK)
        rc = exec2(db, sql_token_revoke, NULL, t.id, now_ms);
    if (rc == CC_OK)
        rc = issue(st, cfg, t.user_id, cc_role_name(who.role), c.ver, t.family, user, &ans);
end:
    rc = cc_sql_end(db, rc);
    cJSON_Delete(user);
    if (rc != CC_OK) {
        cJSON_Delete(ans);
        return rc;
    }
    *out = ans;
    return CC_OK;
}

int cc_auth_logout(struct cc_store *st, const struct cc_auth_cfg *cfg, const struct cc_principal *p,
                   const cJSON *body, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    const char *token = NULL;
    struct stored_token t;
    char hash[CC_SHA256_HEX_LEN];
    int rc;

    (void)cfg; /* the stored hash decides: an expired token still ends its family */
    rc = read_refresh(body, &token, err);
    if (rc != CC_OK)
        return rc;
    cc_sha256_hex(token, strlen(token), hash);
    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    memset(&t, 0, sizeof t);
    rc = find_token(db, hash, &t);
    if (rc == CC_OK && t.user_id != p->user_id)
        rc = CC_ERR_UNAUTHORIZED;
    if (rc == CC_OK)
        rc = exec2(db, sql_family_revoke, t.family, 0, cc_now_ms());
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "logout", "user", p->user_id, NULL, NULL);
    return cc_sql_end(db, rc);
}

int cc_auth_bearer(struct cc_store *st, const struct cc_auth_cfg *cfg, const char *header,
                   struct cc_principal *out)
{
    struct cc_jwt_claims c;
    int rc;

    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
        return CC_ERR_UNAUTHORIZED;
    header += 7;
    while (*header == ' ')
        header++;
    rc = cc_jwt_verify(cfg->secret, cfg->secret_len, header, CC_JWT_ACCESS, cc_now_ms() / 1000, &c);
    if (rc != CC_OK)
        return rc;
    /* The user is loaded on every request: deleted, disabled, re-created under the same
     * id, or with a password changed since the token was issued, it is refused. */
    return cc_users_token_principal(st, c.sub, c.iat_s, c.ver, out);
}
