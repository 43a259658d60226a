/* cc_auth.c - login, refresh-token rotation with reuse detection, logout, bearer. */
#include "cc_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cc_audit.h"
#include "cc_crypto.h"
#include "cc_error.h"
#include "cc_input.h"
#include "cc_jwt.h"
#include "cc_log.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "cc_users.h"

#define FAMILY_BYTES 16 /* random bytes of a family id */

/* users.email is COLLATE NOCASE in SQLite and citext in PostgreSQL: "email = $1"
 * matches case-insensitively in both, as the column's unique key does. */
static const char sql_user_by_email[] =
    "SELECT id, email, role, name, password_hash, disabled, token_version FROM users"
    " WHERE email = $1";
static const char sql_user_by_id[] = "SELECT id, email, role, name FROM users WHERE id = $1";
static const char sql_token_insert[] =
    "INSERT INTO refresh_tokens (user_id, family_id, token_hash, created_at, expires_at)"
    " VALUES ($1, $2, $3, $4, $5)";
#define TOKEN_FIND                                                                                 \
    "SELECT id, user_id, family_id, expires_at, revoked_at FROM refresh_tokens"                    \
    " WHERE token_hash = $1"
/* SQLite's BEGIN IMMEDIATE already serialises a refresh against any other write. On
 * PostgreSQL two apid may refresh the same token at once: the row lock makes the second
 * wait for the first and then read the token revoked, so it is a reuse (the family ends)
 * instead of a second successor. */
static const char sql_token_find[] = TOKEN_FIND;
static const char sql_token_find_pg[] = TOKEN_FIND " FOR UPDATE";
/* The three below take (a token id, a family id or a user id as $1; now as $2): exec2. */
static const char sql_token_revoke[] = "UPDATE refresh_tokens SET revoked_at = $2 WHERE id = $1";
static const char sql_family_revoke[] = "UPDATE refresh_tokens SET revoked_at = $2"
                                        " WHERE family_id = $1 AND revoked_at IS NULL";
static const char sql_tokens_purge[] =
    "DELETE FROM refresh_tokens WHERE user_id = $1 AND expires_at < $2";

/* The user object of login and refresh answers: {id, email, role, name}. */
static cJSON *login_user_row(struct cc_stmt *s)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    if (cc_dbi_json_int(o, "id", s, 0) != CC_OK || cc_dbi_json_text(o, "email", s, 1) != CC_OK ||
        cc_dbi_json_text(o, "role", s, 2) != CC_OK || cc_dbi_json_text(o, "name", s, 3) != CC_OK) {
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
    struct cc_stmt *s = NULL;
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

    rc = cc_stmt_prepare(st, sql_token_insert, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, user_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 2, family);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 3, hash);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 4, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 5, c.exp_s * 1000);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
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
    cc_stmt_release(s);
    cJSON_Delete(dup);
    cJSON_Delete(ans);
    free(access);
    free(refresh);
    return rc;
}

/* Runs a statement bound with ($1 = a text or id, $2 = now). */
static int exec2(struct cc_store *st, const char *sql, const char *text, int64_t id, int64_t now_ms)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql, &s);

    if (rc == CC_OK)
        rc = text ? cc_stmt_bind_text(s, 1, text) : cc_stmt_bind_int64(s, 1, id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 2, now_ms);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    cc_stmt_release(s);
    return rc;
}

/* Ends the transaction begun with cc_store_begin: COMMIT when rc is CC_OK (CC_ERR_DB if
 * that fails), else ROLLBACK. Returns the resulting code. */
static int tx_end(struct cc_store *st, int rc)
{
    if (rc == CC_OK)
        return cc_store_commit(st) == CC_OK ? CC_OK : CC_ERR_DB;
    cc_store_rollback(st);
    return rc;
}

int cc_auth_login(struct cc_store *st, const struct cc_auth_cfg *cfg, const cJSON *body,
                  cJSON **out, cJSON **err)
{
    struct cc_stmt *s = NULL;
    struct cc_input in;
    const char *email = NULL, *password = NULL;
    unsigned char fam_raw[FAMILY_BYTES];
    char family[CC_JWT_FAMILY_MAX];
    char role[CC_JWT_ROLE_MAX];
    char *stored = NULL;
    cJSON *user = NULL, *ans = NULL;
    int64_t user_id = 0, ver = 0;
    int disabled = 0, rc, tx = 0;

    cc_input_init(&in, body);
    cc_input_text(&in, "email", CC_INPUT_REQUIRED | CC_INPUT_NONEMPTY, CC_EMAIL_MAX, &email);
    cc_input_text(&in, "password", CC_INPUT_REQUIRED | CC_INPUT_NONEMPTY, CC_PASSWORD_MAX,
                  &password);
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        return rc;

    rc = cc_stmt_prepare(st, sql_user_by_email, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 1, email);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_ROW) {
        const char *r = cc_stmt_column_text(s, 2);
        const char *h = cc_stmt_column_text(s, 4);

        user_id = cc_stmt_column_int64(s, 0);
        snprintf(role, sizeof role, "%s", r ? r : "");
        stored = strdup(h ? h : "");
        disabled = cc_stmt_column_int64(s, 5) != 0;
        ver = cc_stmt_column_int64(s, 6);
        user = login_user_row(s);
        if (stored == NULL || user == NULL) {
            rc = CC_ERR_NOMEM;
            goto out;
        }
        rc = CC_OK;
    }
    if (rc != CC_OK)
        goto out;
    cc_stmt_release(s);
    s = NULL;

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
    rc = cc_store_begin(st);
    if (rc != CC_OK)
        goto out;
    tx = 1;
    rc = exec2(st, sql_tokens_purge, NULL, user_id, cc_now_ms());
    if (rc == CC_OK)
        rc = issue(st, cfg, user_id, role, ver, family, user, &ans);
    if (rc == CC_OK)
        rc = cc_audit_append(st, user_id, "login", "user", user_id, NULL, NULL);
    rc = tx_end(st, rc);
    tx = 0;
out:
    cc_stmt_release(s);
    if (tx)
        cc_store_rollback(st);
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
static int login_user(struct cc_store *st, int64_t id, cJSON **out)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql_user_by_id, &s);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, id);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_ROW) {
        *out = login_user_row(s);
        rc = *out != NULL ? CC_OK : CC_ERR_NOMEM;
    } else if (rc == CC_OK) {
        rc = CC_ERR_UNAUTHORIZED;
    }
    cc_stmt_release(s);
    return rc;
}

/* A stored refresh token. */
struct stored_token {
    int64_t id, user_id, expires_ms;
    int revoked;
    char family[CC_JWT_FAMILY_MAX];
};

static int find_token(struct cc_store *st, const char *hash, struct stored_token *t)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(
        st, cc_store_dialect(st) == CC_DIALECT_PG ? sql_token_find_pg : sql_token_find, &s);

    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 1, hash);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_ROW) {
        const char *f = cc_stmt_column_text(s, 2);

        t->id = cc_stmt_column_int64(s, 0);
        t->user_id = cc_stmt_column_int64(s, 1);
        snprintf(t->family, sizeof t->family, "%s", f ? f : "");
        t->expires_ms = cc_stmt_column_int64(s, 3);
        t->revoked = !cc_stmt_column_is_null(s, 4);
        rc = CC_OK;
    } else if (rc == CC_OK) {
        rc = CC_ERR_UNAUTHORIZED;
    }
    cc_stmt_release(s);
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

    rc = cc_store_begin(st);
    if (rc != CC_OK)
        return rc;
    memset(&t, 0, sizeof t);
    rc = find_token(st, hash, &t);
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
        rc = exec2(st, sql_family_revoke, t.family, 0, now_ms);
        if (rc == CC_OK)
            rc = cc_audit_append(st, t.user_id, "token_reuse", "refresh_token", t.id, NULL, NULL);
        rc = tx_end(st, rc);
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
    rc = login_user(st, t.user_id, &user);
    if (rc == CC_OK)
        rc = exec2(st, sql_token_revoke, NULL, t.id, now_ms);
    if (rc == CC_OK)
        rc = issue(st, cfg, t.user_id, cc_role_name(who.role), c.ver, t.family, user, &ans);
end:
    rc = tx_end(st, rc);
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
    const char *token = NULL;
    struct stored_token t;
    char hash[CC_SHA256_HEX_LEN];
    int rc;

    (void)cfg; /* the stored hash decides: an expired token still ends its family */
    rc = read_refresh(body, &token, err);
    if (rc != CC_OK)
        return rc;
    cc_sha256_hex(token, strlen(token), hash);
    rc = cc_store_begin(st);
    if (rc != CC_OK)
        return rc;
    memset(&t, 0, sizeof t);
    rc = find_token(st, hash, &t);
    if (rc == CC_OK && t.user_id != p->user_id)
        rc = CC_ERR_UNAUTHORIZED;
    if (rc == CC_OK)
        rc = exec2(st, sql_family_revoke, t.family, 0, cc_now_ms());
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "logout", "user", p->user_id, NULL, NULL);
    return tx_end(st, rc);
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
