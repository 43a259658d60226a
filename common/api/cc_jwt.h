/* cc_jwt.h - JSON Web Tokens, HS256 only; signed with libjwt, verified by our own code.
 *
 * A token carries sub (the user id as a decimal string), role, typ ("access" or
 * "refresh"), iat and exp (epoch seconds) and ver (the user's token_version); a
 * refresh token also carries fam (its family) and jti (32 random bytes, base64url), so
 * each one is unique and can be stored hashed. ver is always signed and is read back
 * as 0 when absent (tokens issued before it existed).
 * cc_jwt_verify takes at most CC_JWT_MAX_LEN bytes, checks the HMAC over the raw
 * "header.payload" bytes (constant-time) before any of the token is parsed, then
 * requires a header whose alg is exactly "HS256" ("none" and every other algorithm are
 * refused), both parts within CC_JSON_MAX_DEPTH, the wanted typ and an exp in the
 * future. It uses no recursion beyond cJSON's (bounded by the depth gate) and under
 * 4 KiB of stack, so it is safe on a civetweb worker's 100 KiB stack.
 * Thread-safe. The key is a secret: never log it, nor a token.
 * Codes: CC_OK, CC_ERR_UNAUTHORIZED (too long, malformed, bad signature, bad alg, too
 * deep, wrong typ, missing claim), CC_ERR_TOKEN_EXPIRED (well signed but expired),
 * CC_ERR_NOMEM, CC_ERR_INTERNAL. */
#ifndef CC_JWT_H
#define CC_JWT_H

#include <stddef.h>
#include <stdint.h>

#define CC_JWT_MAX_LEN 2048  /* longest token accepted, bytes (SPEC §5 "Input limits") */
#define CC_JWT_ROLE_MAX 16   /* "TECHNICIAN" + NUL fits */
#define CC_JWT_FAMILY_MAX 48 /* base64url of 16 bytes + NUL fits */
#define CC_JWT_KEY_MIN 16    /* shortest HMAC key accepted, bytes */

enum cc_jwt_typ { CC_JWT_ACCESS = 1, CC_JWT_REFRESH = 2 };

struct cc_jwt_claims {
    int64_t sub;                    /* user id */
    char role[CC_JWT_ROLE_MAX];     /* CUSTOMER, TECHNICIAN, ADMIN */
    int typ;                        /* enum cc_jwt_typ */
    int64_t iat_s;                  /* issued at, epoch seconds */
    int64_t exp_s;                  /* expires at, epoch seconds */
    char family[CC_JWT_FAMILY_MAX]; /* refresh tokens only, else "" */
    int64_t ver;                    /* the user's token_version when issued (0 if absent) */
};

/* Signs claims with key (HS256). jti is added to refresh tokens. On success *out is
 * a malloc'd token the caller frees. CC_OK, CC_ERR_INTERNAL (bad key or claims) or
 * CC_ERR_NOMEM. */
int cc_jwt_sign(const void *key, size_t keylen, const struct cc_jwt_claims *c, char **out);

/* Verifies token against key at now_s and checks typ == want_typ. Fills *out only on
 * CC_OK. CC_ERR_TOKEN_EXPIRED is returned only for a token whose signature is good. */
int cc_jwt_verify(const void *key, size_t keylen, const char *token, int want_typ, int64_t now_s,
                  struct cc_jwt_claims *out);

#endif
