/* test_jwt.c - cc_jwt: HS256 round trip, ver, expiry, tampering, alg none and friends,
 * typ, wrong secret, malformed tokens, missing claims, a mutation fuzz, the depth gate
 * on header and payload, and verification on a civetweb-sized (100 KiB) stack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <cmocka.h>

#include "cc_crypto.h"
#include "cc_json.h"
#include "cc_jwt.h"
#include "cc_rc.h"

#define KEY "0123456789abcdef0123456789abcdef"
#define KEYLEN (sizeof KEY - 1)
#define NOW 1800000000LL /* epoch seconds used as "now" */
#define FUZZ_ROUNDS 3000
#define WORKER_STACK (100 * 1024) /* civetweb's worker stack size, as apid runs it */
/* Nesting of the hostile payloads: about the deepest a CC_JWT_MAX_LEN token carries
 * (jansson alone overflows 100 KiB from ~1,100 levels; in apid, civetweb's own frames
 * bring that down to ~800). */
#define DEEP 1400

static struct cc_jwt_claims claims(int typ)
{
    struct cc_jwt_claims c;

    memset(&c, 0, sizeof c);
    c.sub = 42;
    strcpy(c.role, "TECHNICIAN");
    c.typ = typ;
    c.iat_s = NOW - 10;
    c.exp_s = NOW + 900;
    if (typ == CC_JWT_REFRESH)
        strcpy(c.family, "fam-123");
    return c;
}

static char *sign_ok(int typ)
{
    struct cc_jwt_claims c = claims(typ);
    char *tok = NULL;

    assert_int_equal(cc_jwt_sign(KEY, KEYLEN, &c, &tok), CC_OK);
    assert_non_null(tok);
    return tok;
}

/* A token with this header and payload JSON, signed HS256 with key (NULL: no
 * signature part content). Caller frees. */
static char *forge(const char *header, const char *payload, const char *key)
{
    char h[512], p[1024], sig[64];
    unsigned char mac[CC_SHA256_LEN];
    char signing[1600];
    char *out = malloc(2048);

    assert_non_null(out);
    cc_base64url_encode((const unsigned char *)header, strlen(header), h);
    cc_base64url_encode((const unsigned char *)payload, strlen(payload), p);
    snprintf(signing, sizeof signing, "%s.%s", h, p);
    sig[0] = '\0';
    if (key != NULL) {
        assert_int_equal(cc_hmac_sha256(key, strlen(key), signing, strlen(signing), mac), CC_OK);
        cc_base64url_encode(mac, sizeof mac, sig);
    }
    snprintf(out, 2048, "%s.%s", signing, sig);
    return out;
}

/* Like forge, for documents of any size (a deep payload does not fit forge's buffers):
 * header.payload.signature with the signature made with key, or "AAAA" when NULL. */
static char *forge_big(const char *header, const char *payload, const char *key)
{
    size_t hl = strlen(header), pl = strlen(payload);
    char *out = malloc(4 * (hl + pl) / 3 + 128);
    unsigned char mac[CC_SHA256_LEN];
    size_t n;

    assert_non_null(out);
    n = cc_base64url_encode((const unsigned char *)header, hl, out);
    out[n++] = '.';
    n += cc_base64url_encode((const unsigned char *)payload, pl, out + n);
    if (key != NULL) {
        assert_int_equal(cc_hmac_sha256(key, strlen(key), out, n, mac), CC_OK);
        out[n++] = '.';
        cc_base64url_encode(mac, sizeof mac, out + n);
    } else {
        strcpy(out + n, ".AAAA");
    }
    return out;
}

/* n copies of c, then tail (malloc'd). */
static char *repeat(char c, int n, const char *tail)
{
    char *s = malloc((size_t)n + strlen(tail) + 1);

    assert_non_null(s);
    memset(s, c, (size_t)n);
    strcpy(s + n, tail);
    return s;
}

static void test_jwt_access_roundtrip(void **state)
{
    struct cc_jwt_claims got;
    char *tok = sign_ok(CC_JWT_ACCESS);

    (void)state;
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_ACCESS, NOW, &got), CC_OK);
    assert_int_equal(got.sub, 42);
    assert_string_equal(got.role, "TECHNICIAN");
    assert_int_equal(got.typ, CC_JWT_ACCESS);
    assert_int_equal(got.iat_s, NOW - 10);
    assert_int_equal(got.exp_s, NOW + 900);
    assert_string_equal(got.family, "");
    free(tok);
}

static void test_jwt_ver_roundtrip_and_absent(void **state)
{
    struct cc_jwt_claims c = claims(CC_JWT_REFRESH), got;
    char *tok = NULL;
    char *old = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                      "{\"sub\":\"7\",\"role\":\"ADMIN\",\"typ\":\"access\","
                      "\"iat\":1799999990,\"exp\":1800000900}",
                      KEY);
    char *bad = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                      "{\"sub\":\"7\",\"role\":\"ADMIN\",\"typ\":\"access\","
                      "\"iat\":1799999990,\"exp\":1800000900,\"ver\":\"3\"}",
                      KEY);

    (void)state;
    c.ver = 3;
    assert_int_equal(cc_jwt_sign(KEY, KEYLEN, &c, &tok), CC_OK);
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_REFRESH, NOW, &got), CC_OK);
    assert_int_equal(got.ver, 3);
    free(tok);
    /* A token signed before "ver" existed reads as version 0. */
    got.ver = 99;
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, old, CC_JWT_ACCESS, NOW, &got), CC_OK);
    assert_int_equal(got.ver, 0);
    /* A "ver" that is not an integer is refused, not read as 0. */
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, bad, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    free(old);
    free(bad);
}

static void test_jwt_access_tokens_unique(void **state)
{
    char *a = sign_ok(CC_JWT_ACCESS);
    char *b = sign_ok(CC_JWT_ACCESS);

    (void)state;
    /* A refresh in the same second as the login must still hand out a new access token. */
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void test_jwt_refresh_roundtrip_unique(void **state)
{
    struct cc_jwt_claims got;
    char *a = sign_ok(CC_JWT_REFRESH);
    char *b = sign_ok(CC_JWT_REFRESH);

    (void)state;
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, a, CC_JWT_REFRESH, NOW, &got), CC_OK);
    assert_string_equal(got.family, "fam-123");
    assert_int_equal(got.typ, CC_JWT_REFRESH);
    /* Same claims, same second: the random jti still makes every refresh token unique. */
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void test_jwt_expired(void **state)
{
    struct cc_jwt_claims got;
    char *tok = sign_ok(CC_JWT_ACCESS);

    (void)state;
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_ACCESS, NOW + 899, &got), CC_OK);
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_ACCESS, NOW + 900, &got),
                     CC_ERR_TOKEN_EXPIRED);
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_ACCESS, NOW + 100000, &got),
                     CC_ERR_TOKEN_EXPIRED);
    free(tok);
}

static void test_jwt_expired_bad_signature_is_unauthorized(void **state)
{
    struct cc_jwt_claims got;
    char *tok = sign_ok(CC_JWT_ACCESS);

    (void)state;
    /* Expiry is only reported for a token we signed. */
    assert_int_equal(cc_jwt_verify("another-key-another-key-another", 31, tok, CC_JWT_ACCESS,
                                   NOW + 100000, &got),
                     CC_ERR_UNAUTHORIZED);
    free(tok);
}

static void test_jwt_tampered(void **state)
{
    struct cc_jwt_claims got;
    char *tok = sign_ok(CC_JWT_ACCESS);
    char *admin = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\","
                        "\"iat\":1799999990,\"exp\":1800000900}",
                        "not-the-key-not-the-key-not-the");
    char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
    char *mix = malloc(4096);
    char saved;

    (void)state;
    /* Header and payload of a forged token with the genuine signature. */
    snprintf(mix, 4096, "%.*s%s", (int)(strrchr(admin, '.') - admin), admin, dot2);
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, mix, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    /* One changed character in the payload, then in the signature. */
    saved = dot1[3];
    dot1[3] = saved == 'A' ? 'B' : 'A';
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    dot1[3] = saved;
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_ACCESS, NOW, &got), CC_OK);
    dot2[5] = dot2[5] == 'A' ? 'B' : 'A';
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    free(mix);
    free(admin);
    free(tok);
}

static void test_jwt_alg_none_and_others(void **state)
{
    static const char *const headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"None\"}",
        "{\"alg\":\"NONE\"}",
        "{\"alg\":\"HS384\"}",
        "{\"alg\":\"HS512\"}",
        "{\"alg\":\"RS256\"}",
        "{\"alg\":\"ES256\"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":null}",
        "{\"alg\":256}",
        "{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}",
        "[\"HS256\"]",
        "not json",
    };
    const char *payload = "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\","
                          "\"iat\":1799999990,\"exp\":1800000900}";
    struct cc_jwt_claims got;

    (void)state;
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *unsigned_tok = forge(headers[i], payload, NULL);
        char *signed_tok = forge(headers[i], payload, KEY);

        assert_int_equal(cc_jwt_verify(KEY, KEYLEN, unsigned_tok, CC_JWT_ACCESS, NOW, &got),
                         CC_ERR_UNAUTHORIZED);
        assert_int_equal(cc_jwt_verify(KEY, KEYLEN, signed_tok, CC_JWT_ACCESS, NOW, &got),
                         CC_ERR_UNAUTHORIZED);
        free(unsigned_tok);
        free(signed_tok);
    }
    /* The same payload with alg HS256 and the key is accepted: the forge is right. */
    {
        char *ok = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, KEY);

        assert_int_equal(cc_jwt_verify(KEY, KEYLEN, ok, CC_JWT_ACCESS, NOW, &got), CC_OK);
        assert_int_equal(got.sub, 1);
        free(ok);
    }
}

static void test_jwt_wrong_typ(void **state)
{
    struct cc_jwt_claims got;
    char *access = sign_ok(CC_JWT_ACCESS);
    char *refresh = sign_ok(CC_JWT_REFRESH);

    (void)state;
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, refresh, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, access, CC_JWT_REFRESH, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    free(access);
    free(refresh);
}

static void test_jwt_wrong_secret(void **state)
{
    struct cc_jwt_claims got;
    char *tok = sign_ok(CC_JWT_ACCESS);

    (void)state;
    assert_int_equal(
        cc_jwt_verify("0123456789abcdef0123456789abcdeF", KEYLEN, tok, CC_JWT_ACCESS, NOW, &got),
        CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN - 1, tok, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    /* A key under the minimum is refused outright. */
    assert_int_equal(cc_jwt_verify("short", 5, tok, CC_JWT_ACCESS, NOW, &got), CC_ERR_UNAUTHORIZED);
    free(tok);
}

static void test_jwt_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "a..c",
        ".b.c",
        "a.b.",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "!!!.???.***",
        "eyJhbGciOiJIUzI1NiJ9.%%%.abc",
    };
    struct cc_jwt_claims got;
    char *huge = malloc(CC_JWT_MAX_LEN + 100);

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cc_jwt_verify(KEY, KEYLEN, bad[i], CC_JWT_ACCESS, NOW, &got),
                         CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, NULL, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    memset(huge, 'a', CC_JWT_MAX_LEN + 99);
    huge[CC_JWT_MAX_LEN + 99] = '\0';
    huge[10] = '.';
    huge[20] = '.';
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, huge, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    free(huge);
}

static void test_jwt_missing_or_bad_claims(void **state)
{
    static const char *const payloads[] = {
        "{\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990,\"exp\":1800000900}",
        "{\"sub\":\"1\",\"typ\":\"access\",\"iat\":1799999990,\"exp\":1800000900}",
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"iat\":1799999990,\"exp\":1800000900}",
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990}",
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\",\"exp\":1800000900}",
        "{\"sub\":\"1\",\"role\":\"ROOT\",\"typ\":\"access\",\"iat\":1799999990,"
        "\"exp\":1800000900}",
        "{\"sub\":\"0\",\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990,"
        "\"exp\":1800000900}",
        "{\"sub\":\"-1\",\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990,"
        "\"exp\":1800000900}",
        "{\"sub\":\"01\",\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990,"
        "\"exp\":1800000900}",
        "{\"sub\":1,\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990,"
        "\"exp\":1800000900}",
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"id\",\"iat\":1799999990,"
        "\"exp\":1800000900}",
        /* issued in the future (beyond the allowed skew) */
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1800001000,"
        "\"exp\":1800009000}",
        /* a refresh token without its family */
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"refresh\",\"iat\":1799999990,"
        "\"exp\":1800000900,\"jti\":\"x\"}",
    };
    struct cc_jwt_claims got;

    (void)state;
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char *tok = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payloads[i], KEY);
        int want_typ = strstr(payloads[i], "refresh") ? CC_JWT_REFRESH : CC_JWT_ACCESS;

        if (cc_jwt_verify(KEY, KEYLEN, tok, want_typ, NOW, &got) != CC_ERR_UNAUTHORIZED)
            fail_msg("accepted claims %s", payloads[i]);
        free(tok);
    }
}

static void test_jwt_sign_refuses_bad_input(void **state)
{
    struct cc_jwt_claims c = claims(CC_JWT_ACCESS);
    char *tok = NULL;

    (void)state;
    assert_int_equal(cc_jwt_sign("short", 5, &c, &tok), CC_ERR_INTERNAL);
    strcpy(c.role, "ROOT");
    assert_int_equal(cc_jwt_sign(KEY, KEYLEN, &c, &tok), CC_ERR_INTERNAL);
    c = claims(CC_JWT_ACCESS);
    c.exp_s = c.iat_s;
    assert_int_equal(cc_jwt_sign(KEY, KEYLEN, &c, &tok), CC_ERR_INTERNAL);
    c = claims(CC_JWT_ACCESS);
    c.sub = 0;
    assert_int_equal(cc_jwt_sign(KEY, KEYLEN, &c, &tok), CC_ERR_INTERNAL);
    c = claims(CC_JWT_REFRESH);
    c.family[0] = '\0';
    assert_int_equal(cc_jwt_sign(KEY, KEYLEN, &c, &tok), CC_ERR_INTERNAL);
    assert_null(tok);
}

/* Every single-byte change of a valid token is refused (or, if it decodes to the same
 * token, accepted with the same claims). */
static void test_jwt_fuzz_mutations(void **state)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \"{}";
    char *tok = sign_ok(CC_JWT_ACCESS);
    size_t n = strlen(tok);
    char *m = malloc(n + 2);
    unsigned seed = 12345;

    (void)state;
    for (int i = 0; i < FUZZ_ROUNDS; i++) {
        struct cc_jwt_claims got;
        size_t pos;
        int rc;

        memcpy(m, tok, n + 1);
        seed = seed * 1103515245u + 12345u;
        pos = (seed >> 8) % n;
        seed = seed * 1103515245u + 12345u;
        m[pos] = alphabet[(seed >> 8) % (sizeof alphabet - 1)];
        if (i % 7 == 0)
            m[(seed >> 3) % n] = '\0'; /* truncations too */
        rc = cc_jwt_verify(KEY, KEYLEN, m, CC_JWT_ACCESS, NOW, &got);
        if (rc == CC_OK) {
            /* Only a change base64url decoding ignores (the last char's spare bits) or no
             * change at all may pass, and then the claims are the genuine ones. */
            assert_int_equal(got.sub, 42);
            assert_string_equal(got.role, "TECHNICIAN");
        } else {
            assert_int_equal(rc, CC_ERR_UNAUTHORIZED);
        }
    }
    free(m);
    free(tok);
}

/* A payload nesting DEEP levels: refused, well signed or not, and without a crash
 * (the old libjwt path parsed it with jansson before checking the signature). */
static void test_jwt_deep_payload_refused(void **state)
{
    static const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *deep = repeat('[', DEEP, "");
    char *signed_tok = forge_big(hdr, deep, KEY);
    char *unsigned_tok = forge_big(hdr, deep, NULL);
    struct cc_jwt_claims got;

    (void)state;
    assert_true(strlen(signed_tok) <= CC_JWT_MAX_LEN); /* refused for depth, not length */
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, signed_tok, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, unsigned_tok, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    free(signed_tok);
    free(unsigned_tok);
    free(deep);
}

/* CC_JSON_MAX_DEPTH levels in a signed payload are read; one more is refused. A deep
 * header is refused too. */
static void test_jwt_depth_limit_exact(void **state)
{
    static const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char body[512], deep_hdr[256];
    struct cc_jwt_claims got;
    char *tok;
    int i, n;

    (void)state;
    for (int extra = 0; extra <= 1; extra++) {
        /* The object itself is one level; x adds the rest. */
        n = snprintf(body, sizeof body,
                     "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\","
                     "\"iat\":1799999990,\"exp\":1800000900,\"x\":");
        for (i = 0; i < CC_JSON_MAX_DEPTH - 1 + extra; i++)
            body[n++] = '[';
        for (i = 0; i < CC_JSON_MAX_DEPTH - 1 + extra; i++)
            body[n++] = ']';
        strcpy(body + n, "}");
        tok = forge_big(hdr, body, KEY);
        assert_int_equal(cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_ACCESS, NOW, &got),
                         extra ? CC_ERR_UNAUTHORIZED : CC_OK);
        free(tok);
    }
    n = snprintf(deep_hdr, sizeof deep_hdr, "{\"alg\":\"HS256\",\"x\":");
    for (i = 0; i < CC_JSON_MAX_DEPTH; i++)
        deep_hdr[n++] = '[';
    for (i = 0; i < CC_JSON_MAX_DEPTH; i++)
        deep_hdr[n++] = ']';
    strcpy(deep_hdr + n, "}");
    tok = forge_big(deep_hdr,
                    "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\","
                    "\"iat\":1799999990,\"exp\":1800000900}",
                    KEY);
    assert_int_equal(cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_ACCESS, NOW, &got),
                     CC_ERR_UNAUTHORIZED);
    free(tok);
}

/* Claims with numbers that are not exact integers, or strings where numbers belong. */
static void test_jwt_numeric_claims_strict(void **state)
{
    static const char *const payloads[] = {
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990.5,"
        "\"exp\":1800000900}",
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990,"
        "\"exp\":\"1800000900\"}",
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990,"
        "\"exp\":1e300}",
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990,"
        "\"exp\":1800000900,\"ver\":1.5}",
        "{\"sub\":\"1\",\"role\":\"ADMIN\",\"typ\":\"access\",\"iat\":1799999990,"
        "\"exp\":1800000900} x",
    };
    struct cc_jwt_claims got;

    (void)state;
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char *tok = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payloads[i], KEY);

        if (cc_jwt_verify(KEY, KEYLEN, tok, CC_JWT_ACCESS, NOW, &got) != CC_ERR_UNAUTHORIZED)
            fail_msg("accepted claims %s", payloads[i]);
        free(tok);
    }
}

/* What the small-stack thread verifies and what it got back. */
struct stack_case {
    const char *token;
    int rc;
};

static void *verify_on_thread(void *arg)
{
    struct stack_case *sc = arg;
    struct cc_jwt_claims got;

    sc->rc = cc_jwt_verify(KEY, KEYLEN, sc->token, CC_JWT_ACCESS, NOW, &got);
    return NULL;
}

static int verify_small_stack(const char *token)
{
    struct stack_case sc = {token, -12345};
    pthread_attr_t attr;
    pthread_t th;

    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(pthread_attr_setstacksize(&attr, WORKER_STACK), 0);
    assert_int_equal(pthread_create(&th, &attr, verify_on_thread, &sc), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&attr);
    return sc.rc;
}

/* apid verifies tokens on civetweb workers with 100 KiB stacks: a good token, a
 * DEEP-level payload with a valid signature and with a bad one, and garbage all finish
 * there (a stack overflow would kill the test binary). */
static void test_jwt_verify_on_100k_stack(void **state)
{
    static const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *good = sign_ok(CC_JWT_ACCESS);
    char *deep = repeat('[', DEEP, "");
    char *deep_obj = repeat('{', DEEP / 2, "");
    char *deep_signed = forge_big(hdr, deep, KEY);
    char *deep_unsigned = forge_big(hdr, deep, NULL);
    char *deep_obj_signed = forge_big(hdr, deep_obj, KEY);
    char *deep_hdr_signed = forge_big(deep, "{}", KEY);
    char *garbage = repeat('W', CC_JWT_MAX_LEN - 10, ".x.y");

    (void)state;
    assert_int_equal(verify_small_stack(good), CC_OK);
    assert_int_equal(verify_small_stack(deep_signed), CC_ERR_UNAUTHORIZED);
    assert_int_equal(verify_small_stack(deep_unsigned), CC_ERR_UNAUTHORIZED);
    assert_int_equal(verify_small_stack(deep_obj_signed), CC_ERR_UNAUTHORIZED);
    assert_int_equal(verify_small_stack(deep_hdr_signed), CC_ERR_UNAUTHORIZED);
    assert_int_equal(verify_small_stack(garbage), CC_ERR_UNAUTHORIZED);
    assert_int_equal(verify_small_stack(""), CC_ERR_UNAUTHORIZED);
    free(good);
    free(deep);
    free(deep_obj);
    free(deep_signed);
    free(deep_unsigned);
    free(deep_obj_signed);
    free(deep_hdr_signed);
    free(garbage);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_access_roundtrip),
        cmocka_unit_test(test_jwt_ver_roundtrip_and_absent),
        cmocka_unit_test(test_jwt_access_tokens_unique),
        cmocka_unit_test(test_jwt_refresh_roundtrip_unique),
        cmocka_unit_test(test_jwt_expired),
        cmocka_unit_test(test_jwt_expired_bad_signature_is_unauthorized),
        cmocka_unit_test(test_jwt_tampered),
        cmocka_unit_test(test_jwt_alg_none_and_others),
        cmocka_unit_test(test_jwt_wrong_typ),
        cmocka_unit_test(test_jwt_wrong_secret),
        cmocka_unit_test(test_jwt_malformed),
        cmocka_unit_test(test_jwt_missing_or_bad_claims),
        cmocka_unit_test(test_jwt_sign_refuses_bad_input),
        cmocka_unit_test(test_jwt_fuzz_mutations),
        cmocka_unit_test(test_jwt_deep_payload_refused),
        cmocka_unit_test(test_jwt_depth_limit_exact),
        cmocka_unit_test(test_jwt_numeric_claims_strict),
        cmocka_unit_test(test_jwt_verify_on_100k_stack),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
