/* cc_crypto.c - OpenSSL 3 helpers: random, SHA-256, HMAC, hex/base64url, scrypt, API keys.
 *
 * The broker plugin links this object on its own (with -lcrypto only), so this file
 * must not call into any other common/ module; the cc_rc.h constants are header-only. */
#include "cc_crypto.h"
#include "cc_rc.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define SCRYPT_SALT_LEN 16      /* bytes */
#define SCRYPT_HASH_LEN 32      /* bytes */
#define SCRYPT_DEFAULT_LOG_N 15 /* N = 32768: 32 MiB with r = 8 */
#define SCRYPT_DEFAULT_R 8
#define SCRYPT_DEFAULT_P 1
#define SCRYPT_MIN_LOG_N 1
#define SCRYPT_MAX_LOG_N 20 /* N = 1 Mi: 1 GiB with r = 8 */
#define SCRYPT_MAX_R 32
#define SCRYPT_MAX_P 16
#define SCRYPT_MAX_MEM (1100ULL * 1024 * 1024) /* bytes a stored hash may make us use */
#define SCRYPT_PREFIX "scrypt$"
#define B64_SALT_LEN 22 /* base64url chars of 16 bytes, no padding */
#define B64_HASH_LEN 43 /* base64url chars of 32 bytes, no padding */

int cc_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;

    /* RAND_bytes takes an int; feed it in slices rather than truncating n. */
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;

        if (RAND_bytes(p, chunk) != 1)
            return CC_ERR_INTERNAL;
        p += chunk;
        n -= (size_t)chunk;
    }
    return CC_OK;
}

void cc_sha256(const void *data, size_t n, unsigned char out[CC_SHA256_LEN])
{
    unsigned int len = 0;
    static const unsigned char empty[1];

    if (data == NULL)
        data = empty;
    /* SHA-256 from the default provider does not fail; if OpenSSL is broken enough
     * that it does, any digest we returned would be a lie that might compare equal
     * to something, so stop rather than authenticate against garbage. */
    if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1 || len != CC_SHA256_LEN)
        OPENSSL_die("SHA-256 failed", __FILE__, __LINE__);
}

void cc_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 0x0F];
    }
    out[2 * n] = '\0';
}

int cc_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void cc_sha256_hex(const void *data, size_t n, char out[CC_SHA256_HEX_LEN])
{
    unsigned char md[CC_SHA256_LEN];

    cc_sha256(data, n, md);
    cc_hex_encode(md, sizeof(md), out);
}

int cc_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
                   unsigned char out[CC_SHA256_LEN])
{
    static const unsigned char empty[1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (keylen > INT_MAX)
        return CC_ERR_INTERNAL;
    /* HMAC() treats a NULL key as "reuse the previous key", which a one-shot has none
     * of; an empty key must be a real (empty) key. */
    if (key == NULL)
        key = empty;
    if (data == NULL)
        data = empty;
    if (HMAC(EVP_sha256(), key, (int)keylen, data, n, md, &len) == NULL || len != CC_SHA256_LEN)
        return CC_ERR_INTERNAL;
    memcpy(out, md, CC_SHA256_LEN);
    OPENSSL_cleanse(md, sizeof(md));
    return CC_OK;
}

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t cc_base64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;

    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;

        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;

        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* The 6-bit value of a base64url character, or -1. ASCII ranges, no locale. */
static int b64url_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int cc_base64url_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap,
                        size_t *outlen)
{
    size_t need, o = 0, rem;
    unsigned acc = 0;
    int bits = 0;

    if (in == NULL || outlen == NULL || (out == NULL && outcap > 0))
        return CC_ERR_VALIDATION;
    rem = inlen % 4;
    if (rem == 1)
        return CC_ERR_VALIDATION; /* 6 bits cannot end a byte */
    need = inlen / 4 * 3 + (rem == 0 ? 0 : rem - 1);

    /* First pass validates everything, so out is untouched on any error. */
    for (size_t i = 0; i < inlen; i++) {
        if (b64url_val(in[i]) < 0)
            return CC_ERR_VALIDATION;
    }
    /* The unused low bits of the last character must be zero: one encoding per value. */
    if (rem == 2 && (b64url_val(in[inlen - 1]) & 0x0F) != 0)
        return CC_ERR_VALIDATION;
    if (rem == 3 && (b64url_val(in[inlen - 1]) & 0x03) != 0)
        return CC_ERR_VALIDATION;
    if (need > outcap)
        return CC_ERR_VALIDATION;

    for (size_t i = 0; i < inlen; i++) {
        acc = (acc << 6) | (unsigned)b64url_val(in[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *outlen = o;
    return CC_OK;
}

static int scrypt_params_ok(int log_n, int r, int p)
{
    uint64_t n, mem;

    if (log_n < SCRYPT_MIN_LOG_N || log_n > SCRYPT_MAX_LOG_N || r < 1 || r > SCRYPT_MAX_R ||
        p < 1 || p > SCRYPT_MAX_P)
        return 0;
    n = 1ULL << log_n;
    mem = 128ULL * (uint64_t)r * (n + 2) + 128ULL * (uint64_t)r * (uint64_t)p;
    return mem <= SCRYPT_MAX_MEM;
}

/* At most CC_SCRYPT_CONCURRENT_MAX derivations at once: each takes 128 * r * N bytes
 * (32 MiB with the defaults), and apid has over a thousand workers, so concurrent logins
 * from many addresses could otherwise ask for tens of GiB. A waiting caller blocks: the
 * work is CPU-bound, so running more at once would not finish any sooner. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    int running, peak;
} scrypt_slots = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

/* Slots this thread has taken and not given back: only the first take waits. */
static _Thread_local int slot_depth;

static void scrypt_slot_take(void)
{
    if (slot_depth++ > 0)
        return;
    pthread_mutex_lock(&scrypt_slots.mu);
    while (scrypt_slots.running >= CC_SCRYPT_CONCURRENT_MAX)
        pthread_cond_wait(&scrypt_slots.freed, &scrypt_slots.mu);
    scrypt_slots.running++;
    if (scrypt_slots.running > scrypt_slots.peak)
        scrypt_slots.peak = scrypt_slots.running;
    pthread_mutex_unlock(&scrypt_slots.mu);
}

static void scrypt_slot_give(void)
{
    if (--slot_depth > 0)
        return;
    pthread_mutex_lock(&scrypt_slots.mu);
    scrypt_slots.running--;
    pthread_cond_signal(&scrypt_slots.freed);
    pthread_mutex_unlock(&scrypt_slots.mu);
}

void cc_password_slot_take(void)
{
    scrypt_slot_take();
}

void cc_password_slot_give(void)
{
    scrypt_slot_give();
}

int cc_password_hash_peak(void)
{
    int peak;

    pthread_mutex_lock(&scrypt_slots.mu);
    peak = scrypt_slots.peak;
    pthread_mutex_unlock(&scrypt_slots.mu);
    return peak;
}

static int scrypt_derive_one(const char *password, const unsigned char *salt, int log_n, int r,
                             int p, unsigned char *out);

/* scrypt(password, salt) into out[SCRYPT_HASH_LEN]. Parameters already checked. */
static int scrypt_derive(const char *password, const unsigned char *salt, int log_n, int r, int p,
                         unsigned char *out)
{
    int rc;

    scrypt_slot_take();
    rc = scrypt_derive_one(password, salt, log_n, r, p, out);
    scrypt_slot_give();
    return rc;
}

static int scrypt_derive_one(const char *password, const unsigned char *salt, int log_n, int r,
                             int p, unsigned char *out)
{
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[7];
    uint64_t n = 1ULL << log_n;
    uint32_t r32 = (uint32_t)r, p32 = (uint32_t)p;
    /* OpenSSL's own limit is 32 MiB, which the default N = 2^15, r = 8 just exceeds
     * (it counts 128 * r * (N + 2) plus the p blocks); allow what the parameters need. */
    uint64_t maxmem = 128ULL * r * (n + 2) + 128ULL * r * p + 1024 * 1024;
    int rc = CC_ERR_INTERNAL;

    kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_SCRYPT, NULL);
    if (kdf == NULL)
        goto fail;
    kctx = EVP_KDF_CTX_new(kdf);
    if (kctx == NULL)
        goto fail;
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password,
                                                  strlen(password));
    params[1] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, SCRYPT_SALT_LEN);
    params[2] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
    params[3] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r32);
    params[4] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p32);
    params[5] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
    params[6] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, out, SCRYPT_HASH_LEN, params) != 1)
        goto fail;
    rc = CC_OK;
fail:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

int cc_password_hash_params(const char *password, int log_n, int r, int p, char *out, size_t outlen)
{
    unsigned char salt[SCRYPT_SALT_LEN], hash[SCRYPT_HASH_LEN];
    char salt64[B64_SALT_LEN + 1], hash64[B64_HASH_LEN + 1];
    char tmp[CC_PASSWORD_HASH_MAX];
    int rc, n;

    if (password == NULL || out == NULL || !scrypt_params_ok(log_n, r, p))
        return CC_ERR_INTERNAL;
    rc = cc_random_bytes(salt, sizeof(salt));
    if (rc != CC_OK)
        goto fail;
    rc = scrypt_derive(password, salt, log_n, r, p, hash);
    if (rc != CC_OK)
        goto fail;
    cc_base64url_encode(salt, sizeof(salt), salt64);
    cc_base64url_encode(hash, sizeof(hash), hash64);
    n = snprintf(tmp, sizeof(tmp), SCRYPT_PREFIX "%d$%d$%d$%s$%s", log_n, r, p, salt64, hash64);
    if (n < 0 || (size_t)n >= sizeof(tmp) || (size_t)n >= outlen) {
        rc = CC_ERR_INTERNAL;
        goto fail;
    }
    memcpy(out, tmp, (size_t)n + 1);
    rc = CC_OK;
fail:
    OPENSSL_cleanse(hash, sizeof(hash));
    return rc;
}

int cc_password_hash(const char *password, char *out, size_t outlen)
{
    return cc_password_hash_params(password, SCRYPT_DEFAULT_LOG_N, SCRYPT_DEFAULT_R,
                                   SCRYPT_DEFAULT_P, out, outlen);
}

/* Reads a decimal parameter of 1..3 digits with no sign or leading zero, followed by
 * '$'. Advances *s past the '$'. Returns 0 if malformed. */
static int parse_param(const char **s, int *out)
{
    const char *p = *s;
    int v = 0, nd = 0;

    if (*p == '0')
        return 0;
    while (*p >= '0' && *p <= '9') {
        if (++nd > 3)
            return 0;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (nd == 0 || *p != '$')
        return 0;
    *s = p + 1;
    *out = v;
    return 1;
}

int cc_password_verify(const char *password, const char *stored)
{
    unsigned char salt[SCRYPT_SALT_LEN], want[SCRYPT_HASH_LEN], got[SCRYPT_HASH_LEN];
    const char *p, *dollar;
    size_t len;
    int log_n, r, par, rc;

    if (password == NULL || stored == NULL ||
        strnlen(stored, CC_PASSWORD_HASH_MAX) >= CC_PASSWORD_HASH_MAX)
        return CC_ERR_INVALID_CREDENTIALS;
    if (strncmp(stored, SCRYPT_PREFIX, strlen(SCRYPT_PREFIX)) != 0)
        return CC_ERR_INVALID_CREDENTIALS;
    p = stored + strlen(SCRYPT_PREFIX);
    if (!parse_param(&p, &log_n) || !parse_param(&p, &r) || !parse_param(&p, &par))
        return CC_ERR_INVALID_CREDENTIALS;
    /* A stored string chooses how much memory and time we spend: refuse absurd ones. */
    if (!scrypt_params_ok(log_n, r, par))
        return CC_ERR_INVALID_CREDENTIALS;

    dollar = strchr(p, '$');
    if (dollar == NULL || (size_t)(dollar - p) != B64_SALT_LEN)
        return CC_ERR_INVALID_CREDENTIALS;
    if (cc_base64url_decode(p, B64_SALT_LEN, salt, sizeof(salt), &len) != CC_OK ||
        len != SCRYPT_SALT_LEN)
        return CC_ERR_INVALID_CREDENTIALS;
    p = dollar + 1;
    if (strlen(p) != B64_HASH_LEN ||
        cc_base64url_decode(p, B64_HASH_LEN, want, sizeof(want), &len) != CC_OK ||
        len != SCRYPT_HASH_LEN)
        return CC_ERR_INVALID_CREDENTIALS;

    rc = scrypt_derive(password, salt, log_n, r, par, got);
    if (rc != CC_OK)
        goto out;
    rc = CRYPTO_memcmp(got, want, SCRYPT_HASH_LEN) == 0 ? CC_OK : CC_ERR_INVALID_CREDENTIALS;
out:
    OPENSSL_cleanse(got, sizeof(got));
    return rc;
}

void cc_password_dummy_verify(const char *password)
{
    /* A fixed salt is fine: the result is thrown away, only the cost matters. */
    static const unsigned char salt[SCRYPT_SALT_LEN] = "coldchain-dummy";
    unsigned char out[SCRYPT_HASH_LEN];

    if (password == NULL)
        password = "";
    (void)scrypt_derive(password, salt, SCRYPT_DEFAULT_LOG_N, SCRYPT_DEFAULT_R, SCRYPT_DEFAULT_P,
                        out);
    OPENSSL_cleanse(out, sizeof(out));
}

int cc_api_key_new(char key[CC_API_KEY_LEN], char hash_hex[CC_SHA256_HEX_LEN],
                   char prefix[CC_API_KEY_PREFIX_LEN])
{
    unsigned char raw[32];
    char k[CC_API_KEY_LEN], h[CC_SHA256_HEX_LEN];
    int rc;

    rc = cc_random_bytes(raw, sizeof(raw));
    if (rc != CC_OK)
        goto fail;
    cc_hex_encode(raw, sizeof(raw), k);
    cc_sha256_hex(k, strlen(k), h);
    memcpy(key, k, sizeof(k));
    memcpy(hash_hex, h, sizeof(h));
    memcpy(prefix, k, CC_API_KEY_PREFIX_LEN - 1);
    prefix[CC_API_KEY_PREFIX_LEN - 1] = '\0';
fail:
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(k, sizeof(k));
    return rc;
}

/* Value of an ASCII hex digit (either case), or -1. */
static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cc_api_key_matches(const char *key, const char *hash_hex)
{
    unsigned char want[CC_SHA256_LEN], got[CC_SHA256_LEN];

    if (key == NULL || hash_hex == NULL || strlen(hash_hex) != 2 * CC_SHA256_LEN)
        return 0;
    for (size_t i = 0; i < CC_SHA256_LEN; i++) {
        int hi = hex_val(hash_hex[2 * i]), lo = hex_val(hash_hex[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return 0;
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    cc_sha256(key, strlen(key), got);
    return CRYPTO_memcmp(want, got, CC_SHA256_LEN) == 0;
}
