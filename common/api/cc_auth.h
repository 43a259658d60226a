/* cc_auth.h - sign-in, token rotation, sign-out and bearer checks (SPEC §5 /api/auth).
 *
 * Access tokens are HS256 JWTs (cc_jwt.h) living cfg->access_ttl_s. Refresh tokens are
 * HS256 JWTs of typ "refresh" holding a random jti, living cfg->refresh_ttl_s; only
 * their SHA-256 is stored (refresh_tokens.token_hash), with a family id shared by every
 * token that descends from one login. Each refresh revokes the presented token and
 * issues a new pair in the same family; presenting a revoked token again revokes the
 * whole family (someone replayed it). Logout revokes the family. Both tokens carry the
 * user's token_version as claim "ver"; a password change raises it (and revokes the
 * refresh tokens), which ends every token issued before (SPEC §5 "Identities").
 * A login costs one scrypt verification whether or not the e-mail exists, and an
 * unknown e-mail and a wrong password give the same answer.
 * Answers built here are the caller's (cJSON_Delete) and hold tokens: never log them.
 * Thread: the caller's store; cfg is read-only and may be shared.
 * Codes: CC_OK, CC_ERR_VALIDATION (*err), CC_ERR_INVALID_CREDENTIALS,
 * CC_ERR_UNAUTHORIZED, CC_ERR_TOKEN_EXPIRED, CC_ERR_DB, CC_ERR_NOMEM, CC_ERR_INTERNAL. */
#ifndef CC_AUTH_H
#define CC_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_access.h"
#include "cc_store.h"

struct cc_auth_cfg {
    const void *secret;    /* JWT HMAC key, lent for the process's life */
    size_t secret_len;     /* at least CC_JWT_KEY_MIN */
    int64_t access_ttl_s;  /* ACCESS_TOKEN_TTL_S */
    int64_t refresh_ttl_s; /* REFRESH_TOKEN_TTL_S */
};

/* Body {email, password} -> *out {accessToken, refreshToken, expiresIn, user{id,
 * email, role, name}}. A missing field is CC_ERR_VALIDATION; an unknown e-mail, a wrong
 * password or a disabled user CC_ERR_INVALID_CREDENTIALS. */
int cc_auth_login(struct cc_store *st, const struct cc_auth_cfg *cfg, const cJSON *body,
                  cJSON **out, cJSON **err);

/* Body {refreshToken} -> *out, the same shape as login. A bad, expired, unknown or
 * revoked token is CC_ERR_UNAUTHORIZED (a revoked one also revokes its family), and so
 * is one whose ver is not the user's token_version (password changed since). */
int cc_auth_refresh(struct cc_store *st, const struct cc_auth_cfg *cfg, const cJSON *body,
                    cJSON **out, cJSON **err);

/* Body {refreshToken}: revokes that token's family. The token must be p's;
 * otherwise CC_ERR_UNAUTHORIZED. */
int cc_auth_logout(struct cc_store *st, const struct cc_auth_cfg *cfg, const struct cc_principal *p,
                   const cJSON *body, cJSON **err);

/* Checks an Authorization header value ("Bearer <access token>") and loads the
 * principal from the database. CC_ERR_TOKEN_EXPIRED for a well-signed expired token,
 * CC_ERR_UNAUTHORIZED for anything else that is wrong (missing, malformed, bad
 * signature, refresh token, unknown or disabled user, a token issued before the user
 * was created or with another token_version: cc_users_token_principal). */
int cc_auth_bearer(struct cc_store *st, const struct cc_auth_cfg *cfg, const char *header,
                   struct cc_principal *out);

#endif
