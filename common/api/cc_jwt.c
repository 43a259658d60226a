/* cc_jwt.c - HS256 JSON Web Tokens: signed with libjwt, verified here.
 *
 * Verification does not use libjwt: its jwt_decode parses the header and payload with
 * jansson (recursive, 2048 levels) before it checks the HMAC, so an unsigned token of
 * 1,000 nested '[' overflowed a civetweb worker's stack. Here the signature is checked
 * over the raw bytes first, then both parts pass the cc_json depth gate and are read
 * with cJSON, the one parser the rest of the code already gates. */
#include "cc_jwt.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <jwt.h>
#include <openssl/crypto.h>

#include "cc_crypto.h"
#include "cc_json.h"
#include "cc_rc.h"
#include "cc_role.h"

#define JTI_BYTES 32   /* random bytes in a token's jti */
#define HEADER_MAX 256 /* decoded JOSE header bytes accepted */
#define IAT_SKEW_S 60  /* an iat this far in the future is refused */
#define SIG_B64_LEN 43 /* base64url characters of a 32-byte HMAC-SHA256, unpadded */
/* Decoded payload bytes that a CC_JWT_MAX_LEN token can carry: small enough for the
 * stack of a civetweb worker (100 KiB), so nothing on the verify path allocates for it. */
#define PAYLOAD_MAX (CC_JWT_MAX_LEN / 4 * 3)
#define JSON_INT_MAX 9007199254740992.0 /* 2^53: larger doubles are not exact integers */

/* The three base64url parts of a compact token, as they appear in it. */
struct parts {
    const char *h, *p, *s; /* header, payload, signature */
    size_t hlen, plen, slen;
};

/* Splits token (n bytes, no NUL among them) at exactly two dots into three non-empty
 * parts. 1 on success. */
static int split(const char *token, size_t n, struct parts *pt)
{
    const char *dot1 = memchr(token, '.', n), *dot2;

    if (dot1 == NULL || dot1 == token)
        return 0;
    dot2 = memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - token));
    if (dot2 == NULL || dot2 == dot1 + 1 || dot2 + 1 == token + n ||
        memchr(dot2 + 1, '.', n - (size_t)(dot2 + 1 - token)) != NULL)
        return 0;
    pt->h = token;
    pt->hlen = (size_t)(dot1 - token);
    pt->p = dot1 + 1;
    pt->plen = (size_t)(dot2 - pt->p);
    pt->s = dot2 + 1;
    pt->slen = n - (size_t)(pt->s - token);
    return 1;
}

/* HMAC-SHA256 over the raw "header.payload" bytes, compared in constant time with the
 * decoded signature. Runs before any byte of the token is parsed as JSON, so an
 * unsigned document never reaches a parser. */
static int signature_ok(const void *key, size_t keylen, const struct parts *pt)
{
    unsigned char want[CC_SHA256_LEN], got[CC_SHA256_LEN];
    size_t n = 0;
    int ok = 0;

    if (pt->slen != SIG_B64_LEN ||
        cc_base64url_decode(pt->s, pt->slen, got, sizeof got, &n) != CC_OK || n != sizeof got)
        return 0;
    if (cc_hmac_sha256(key, keylen, pt->h, pt->hlen + 1 + pt->plen, want) != CC_OK)
        goto out;
    ok = CRYPTO_memcmp(want, got, sizeof want) == 0;
out:
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

/* Decodes one base64url part into buf (cap bytes) and parses it through the depth gate.
 * NULL unless it is a JSON object. */
static cJSON *decode_object(const char *part, size_t len, unsigned char *buf, size_t cap)
{
    size_t n = 0;
    cJSON *o;

    if (cc_base64url_decode(part, len, buf, cap, &n) != CC_OK)
        return NULL;
    o = cc_json_parse_outside((const char *)buf, n, NULL);
    if (o != NULL && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

/* The JOSE header must be an object whose alg is exactly "HS256" and whose typ, if
 * present, is "JWT": "none" and every other algorithm are refused. */
static int header_ok(const struct parts *pt)
{
    unsigned char buf[HEADER_MAX];
    cJSON *h, *alg, *typ;
    int ok = 0;

    h = decode_object(pt->h, pt->hlen, buf, sizeof buf);
    if (h == NULL)
        return 0;
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

/* A string claim, or NULL when absent or not a string. */
static const char *claim_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An integral number claim within +-2^53 (the doubles that are exact integers).
 * 1 and *out set, 0 when absent (*out = 0), -1 when present but not such a number. */
static int claim_int(const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    double d;

    *out = 0;
    if (v == NULL)
        return 0;
    if (!cJSON_IsNumber(v))
        return -1;
    d = v->valuedouble;
    if (!(d >= -JSON_INT_MAX && d <= JSON_INT_MAX) || d != (double)(int64_t)d)
        return -1;
    *out = (int64_t)d;
    return 1;
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
    return cc_role_parse(r) != CC_ROLE_NONE;
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
    unsigned char buf[PAYLOAD_MAX];
    struct cc_jwt_claims c;
    struct parts pt;
    cJSON *p = NULL;
    const char *s;
    size_t n;
    int rc = CC_ERR_UNAUTHORIZED;

    memset(&c, 0, sizeof c);
    if (key == NULL || keylen < CC_JWT_KEY_MIN || keylen > INT_MAX || token == NULL)
        return CC_ERR_UNAUTHORIZED;
    n = strnlen(token, CC_JWT_MAX_LEN + 1);
    if (n > CC_JWT_MAX_LEN || !split(token, n, &pt))
        return CC_ERR_UNAUTHORIZED;
    /* Order matters: signature over raw bytes, then the header, then the payload. */
    if (!signature_ok(key, keylen, &pt) || !header_ok(&pt))
        return CC_ERR_UNAUTHORIZED;
    p = decode_object(pt.p, pt.plen, buf, sizeof buf);
    if (p == NULL)
        goto out;

    if (!parse_sub(claim_str(p, "sub"), &c.sub))
        goto out;
    s = claim_str(p, "role");
    if (s == NULL || strlen(s) >= sizeof c.role || !role_known(s))
        goto out;
    strcpy(c.role, s);
    s = claim_str(p, "typ");
    if (s != NULL && strcmp(s, "access") == 0)
        c.typ = CC_JWT_ACCESS;
    else if (s != NULL && strcmp(s, "refresh") == 0)
        c.typ = CC_JWT_REFRESH;
    else
        goto out;
    if (claim_int(p, "iat", &c.iat_s) != 1 || claim_int(p, "exp", &c.exp_s) != 1 ||
        claim_int(p, "ver", &c.ver) < 0)
        goto out;
    if (c.typ == CC_JWT_REFRESH) {
        s = claim_str(p, "fam");
        if (s == NULL || *s == '\0' || strlen(s) >= sizeof c.family)
            goto out;
        strcpy(c.family, s);
        if (claim_str(p, "jti") == NULL)
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
    cJSON_Delete(p);
    return rc;
}
