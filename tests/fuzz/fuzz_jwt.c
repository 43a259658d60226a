/* fuzz_jwt.c - bearer token verification (common/api/cc_jwt.c cc_jwt_verify), run on a
 * thread with a civetweb worker's 100 KiB stack, as apid runs it for Authorization,
 * /api/auth/refresh and /api/ws?token=. Input: a mode byte, then
 *  mode 0: a raw token as a client sends it;
 *  mode 1: header JSON, a 0x00 byte, payload JSON: the target signs them with the key,
 *          so the fuzzer reaches the claim parsing behind the signature check (issue 12
 *          item 2: 1,000 nested '[' in a payload); the same token with one signature
 *          byte flipped, and under another key, must be refused;
 *  mode 2: claim values: cc_jwt_sign then cc_jwt_verify must give them back.
 * Invariants: an accepted token's claims are what SPEC §5 requires (positive sub, known
 * role, the wanted typ, exp after now, a family for refresh tokens); a token that is
 * not signed with the key is never accepted nor reported expired. */
#include <cjson/cJSON.h>

#include "cc_crypto.h"
#include "cc_jwt.h"
#include "cc_rc.h"
#include "fuzz.h"

#define NOW_S 1764000000LL
#define TOKEN_CAP (CC_JWT_MAX_LEN * 2) /* built tokens may exceed the limit: it is tested */

static const char KEY[] = "fuzz-jwt-key-0123456789abcdef-32";
static const char OTHER_KEY[] = "fuzz-jwt-key-0123456789abcdef-33";

/* Every call below runs on the worker thread (one hand-over per input, see main). */
static int verify(const char *key, const char *token, int want, struct cc_jwt_claims *out)
{
    struct cc_jwt_claims c;
    int rc;

    memset(&c, 0, sizeof c);
    rc = cc_jwt_verify(key, strlen(key), token, want, NOW_S, &c);
    FUZZ_CHECK(rc == CC_OK || rc == CC_ERR_UNAUTHORIZED || rc == CC_ERR_TOKEN_EXPIRED ||
               rc == CC_ERR_NOMEM);
    if (rc == CC_OK) {
        FUZZ_CHECK(strlen(token) <= CC_JWT_MAX_LEN);
        FUZZ_CHECK(c.sub > 0);
        FUZZ_CHECK(strcmp(c.role, "CUSTOMER") == 0 || strcmp(c.role, "TECHNICIAN") == 0 ||
                   strcmp(c.role, "ADMIN") == 0);
        FUZZ_CHECK(c.typ == want);
        FUZZ_CHECK(c.exp_s > NOW_S);
        FUZZ_CHECK(memchr(c.family, '\0', sizeof c.family) != NULL);
        FUZZ_CHECK(c.typ != CC_JWT_REFRESH || c.family[0] != '\0');
        if (out != NULL)
            *out = c;
    }
    return rc;
}

/* b64url(h).b64url(p).b64url(HMAC(key, b64url(h).b64url(p))) into tok (TOKEN_CAP). 0 if
 * it does not fit. */
static int build(const uint8_t *h, size_t hn, const uint8_t *p, size_t pn, char *tok)
{
    unsigned char mac[CC_SHA256_LEN];
    size_t n;

    if (4 * ((hn + 2) / 3) + 4 * ((pn + 2) / 3) + 48 >= TOKEN_CAP)
        return 0;
    n = cc_base64url_encode(h, hn, tok);
    tok[n++] = '.';
    n += cc_base64url_encode(p, pn, tok + n);
    if (cc_hmac_sha256(KEY, strlen(KEY), tok, n, mac) != CC_OK)
        abort();
    tok[n++] = '.';
    n += cc_base64url_encode(mac, sizeof mac, tok + n);
    tok[n] = '\0';
    return 1;
}

static void raw_token(const uint8_t *d, size_t n, int want)
{
    char *tok = fuzz_cstr(d, n);

    verify(KEY, tok, want, NULL);
    free(tok);
}

static void signed_parts(const uint8_t *d, size_t n, int want)
{
    static char tok[TOKEN_CAP];
    const uint8_t *p;
    size_t pn;
    char *h = fuzz_split(d, n, &p, &pn);

    if (build((const uint8_t *)h, strlen(h), p, pn, tok)) {
        size_t len = strlen(tok);

        verify(KEY, tok, want, NULL);
        /* Another key, or one bit of the signature changed: nothing but "unauthorized". */
        FUZZ_CHECK(verify(OTHER_KEY, tok, want, NULL) == CC_ERR_UNAUTHORIZED);
        tok[len - 2] = tok[len - 2] == 'A' ? 'B' : 'A';
        FUZZ_CHECK(verify(KEY, tok, want, NULL) == CC_ERR_UNAUTHORIZED);
    }
    free(h);
}

static void round_trip(const uint8_t *d, size_t n)
{
    static const char *const roles[] = {"CUSTOMER", "TECHNICIAN", "ADMIN", "NOBODY"};
    struct cc_jwt_claims c, back;
    char *tok = NULL;
    uint64_t v[4] = {0};
    int rc;

    memcpy(v, d, n < sizeof v ? n : sizeof v);
    memset(&c, 0, sizeof c);
    c.sub = (int64_t)(v[0] >> 1);
    snprintf(c.role, sizeof c.role, "%s", roles[v[1] & 3]);
    c.typ = (v[1] >> 2 & 1) ? CC_JWT_REFRESH : CC_JWT_ACCESS;
    c.iat_s = NOW_S - (int64_t)(v[2] & 0xffff);
    c.exp_s = NOW_S - 100 + (int64_t)(v[2] >> 16 & 0xffffff);
    c.ver = (int64_t)(v[3] & 0xffffffff);
    if (n > sizeof v) /* the rest names the family, as base64url would */
        snprintf(c.family, sizeof c.family, "%.*s", (int)(n - sizeof v),
                 (const char *)d + sizeof v);
    rc = cc_jwt_sign(KEY, strlen(KEY), &c, &tok);
    if (rc != CC_OK)
        return;
    rc = verify(KEY, tok, c.typ, &back);
    if (c.exp_s > NOW_S) {
        FUZZ_CHECK(rc == CC_OK);
        FUZZ_CHECK(back.sub == c.sub && strcmp(back.role, c.role) == 0 && back.typ == c.typ &&
                   back.iat_s == c.iat_s && back.exp_s == c.exp_s && back.ver == c.ver);
        FUZZ_CHECK(c.typ != CC_JWT_REFRESH || strcmp(back.family, c.family) == 0);
    } else {
        FUZZ_CHECK(rc == CC_ERR_TOKEN_EXPIRED);
    }
    FUZZ_CHECK(verify(OTHER_KEY, tok, c.typ, NULL) == CC_ERR_UNAUTHORIZED);
    free(tok);
}

struct job {
    const uint8_t *data;
    size_t size;
};

static void *on_worker(void *arg)
{
    const struct job *j = arg;
    int want = (j->data[0] & 0x10) ? CC_JWT_REFRESH : CC_JWT_ACCESS;

    switch (j->data[0] % 3) {
    case 0:
        raw_token(j->data + 1, j->size - 1, want);
        break;
    case 1:
        signed_parts(j->data + 1, j->size - 1, want);
        break;
    default:
        round_trip(j->data + 1, j->size - 1);
        break;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct job j = {data, size};

    if (size < 1 || size > 3 * CC_JWT_MAX_LEN)
        return 0;
    fuzz_on_worker_stack(on_worker, &j);
    return 0;
}
