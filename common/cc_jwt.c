/* cc_jwt.c - HS256 JSON Web Tokens on libjwt, with the header checked by us first. */
#include "cc_jwt.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <jwt.h>
#include <openssl/crypto.h>

#include "cc_crypto.h"
#include "cc_rc.h"

#define JTI_BYTES 32   /* random bytes in a token's jti */
#define HEADER_MAX 256 /* decoded JOSE header bytes accepted */
#define IAT_SKEW_S 60  /* an iat this far in the future is refused */

/* Checks the JOSE header (the part before the first dot) without libjwt: it must be
 * a JSON object whose alg is exactly "HS256" and whose typ, if present, is "JWT".
 * This keeps "none" and the asymmetric algorithms away from the library. */
static int header_ok(const char *token)
{
    unsigned char buf[HEADER_MAX + 1];
    const char *dot1, *dot2;
    size_t n = 0;
    cJSON *h = NULL, *alg, *typ;
    int ok = 0;

    dot1 = strchr(token, '.');
    if (dot1 == NULL || dot1 == token)
        return 0;
    dot2 = strchr(dot1 + 1, '.');
    if (dot2 == NULL || dot2 == dot1 + 1 || dot2[1] == '\0' || strchr(dot2 + 1, '.') != NULL)
        return 0;
    if (cc_base64url_decode(token, (size_t)(dot1 - token), buf, HEADER_MAX, &n) != CC_OK)
        return 0;
    buf[n] = '\0';
    h = cJSON_ParseWithLength((const char *)buf, n);
    if (!cJSON_IsObject(h))
        goto out;
    alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    typ = cJSON_GetObjectItemCaseSensitive(h, "typ");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0)
        goto out;
    if (typ != NULL && (!cJSON_IsString(typ) || strcmp(typ->valuestring, "JWT") != 0))
        goto out;
    ok = 1;
out:
    cJSON_Delete(h);
    return ok;
}

/* Parses a positive decimal id with no sign, space or leading zero. */
static int parse_sub(const char *s, int64_t *out)
{
    int64_t v = 0;

    if (s == NULL || *s < '1' || *s > '9')
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10)
            return 0;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 1;
}

static int role_known(const char *r)
{
    return strcmp(r, "CUSTOMER") == 0 || strcmp(r, "TECHNICIAN") == 0 || strcmp(r, "ADMIN") == 0;
}

int cc_jwt_sign(const void *key, size_t keylen, const struct cc_jwt_claims *c, char **out)
{
    jwt_t *jwt = NULL;
    char sub[24];
    char jti[(JTI_BYTES * 4 + 2) / 3 + 1];
    unsigned char raw[JTI_BYTES];
    char *tok = NULL;
    int rc = CC_ERR_INTERNAL;

    if (key == NULL || keylen < CC_JWT_KEY_MIN || keylen > INT_MAX || c == NULL || c->sub <= 0 ||
        !role_known(c->role) || (c->typ != CC_JWT_ACCESS && c->typ != CC_JWT_REFRESH) ||
        c->exp_s <= c->iat_s)
        return CC_ERR_INTERNAL;
    if (c->typ == CC_JWT_REFRESH && c->family[0] == '\0')
        return CC_ERR_INTERNAL;
    snprintf(sub, sizeof sub, "%lld", (long long)c->sub);

    if (jwt_new(&jwt) != 0) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    if (jwt_set_alg(jwt, JWT_ALG_HS256, key, (int)keylen) != 0)
        goto out;
    if (jwt_add_grant(jwt, "sub", sub) != 0 || jwt_add_grant(jwt, "role", c->role) != 0 ||
        jwt_add_grant(jwt, "typ", c->typ == CC_JWT_ACCESS ? "access" : "refresh") != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)c->iat_s) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)c->exp_s) != 0)
        goto out;
    /* Every token gets a random jti: two tokens issued in the same second differ, so a
     * refreshed access token is never byte-identical to the one it replaces. */
    if (cc_random_bytes(raw, sizeof raw) != CC_OK)
        goto out;
    cc_base64url_encode(raw, sizeof raw, jti);
    if (jwt_add_grant(jwt, "jti", jti) != 0)
        goto out;
    if (c->typ == CC_JWT_REFRESH && jwt_add_grant(jwt, "fam", c->family) != 0)
        goto out;
    if (jwt_add_grant_int(jwt, "ver", (long)c->ver) != 0)
        goto out;
    tok = jwt_encode_str(jwt);
    if (tok == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    *out = tok;
    rc = CC_OK;
out:
    OPENSSL_cleanse(raw, sizeof raw);
    jwt_free(jwt);
    return rc;
}

int cc_jwt_verify(const void *key, size_t keylen, const char *token, int want_typ, int64_t now_s,
                  struct cc_jwt_claims *out)
{
    struct cc_jwt_claims c;
    jwt_t *jwt = NULL;
    const char *s;
    long v;
    int rc = CC_ERR_UNAUTHORIZED;

    memset(&c, 0, sizeof c);
    if (key == NULL || keylen < CC_JWT_KEY_MIN || keylen > INT_MAX || token == NULL)
        return CC_ERR_UNAUTHORIZED;
    if (strnlen(token, CC_JWT_MAX_LEN + 1) > CC_JWT_MAX_LEN || !header_ok(token))
        return CC_ERR_UNAUTHORIZED;
    if (jwt_decode(&jwt, token, key, (int)keylen) != 0 || jwt == NULL)
        goto out;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        goto out;

    if (!parse_sub(jwt_get_grant(jwt, "sub"), &c.sub))
        goto out;
    s = jwt_get_grant(jwt, "role");
    if (s == NULL || strlen(s) >= sizeof c.role || !role_known(s))
        goto out;
    strcpy(c.role, s);
    s = jwt_get_grant(jwt, "typ");
    if (s != NULL && strcmp(s, "access") == 0)
        c.typ = CC_JWT_ACCESS;
    else if (s != NULL && strcmp(s, "refresh") == 0)
        c.typ = CC_JWT_REFRESH;
    else
        goto out;
    errno = 0;
    v = jwt_get_grant_int(jwt, "iat");
    if (errno != 0)
        goto out;
    c.iat_s = v;
    errno = 0;
    v = jwt_get_grant_int(jwt, "exp");
    if (errno != 0)
        goto out;
    c.exp_s = v;
    errno = 0;
    v = jwt_get_grant_int(jwt, "ver");
    if (errno != 0 && errno != ENOENT)
        goto out;
    c.ver = errno == ENOENT ? 0 : v;
    if (c.typ == CC_JWT_REFRESH) {
        s = jwt_get_grant(jwt, "fam");
        if (s == NULL || *s == '\0' || strlen(s) >= sizeof c.family)
            goto out;
        strcpy(c.family, s);
        if (jwt_get_grant(jwt, "jti") == NULL)
            goto out;
    }
    if (c.typ != want_typ || c.iat_s > now_s + IAT_SKEW_S)
        goto out;
    if (now_s >= c.exp_s) {
        rc = CC_ERR_TOKEN_EXPIRED;
        goto out;
    }
    *out = c;
    rc = CC_OK;
out:
    jwt_free(jwt);
    return rc;
}
