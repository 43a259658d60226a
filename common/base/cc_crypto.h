/* cc_crypto.h - OpenSSL helpers: random bytes, SHA-256, HMAC, constant-time compare,
 * hex/base64url, scrypt password hashing, device API keys.
 * Thread-safe (OpenSSL 3 is). Secrets never reach the log. */
#ifndef CC_CRYPTO_H
#define CC_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CC_SHA256_LEN 32
#define CC_SHA256_HEX_LEN 65    /* 64 hex digits + NUL */
#define CC_API_KEY_LEN 65       /* 32 random bytes as 64 hex digits + NUL */
#define CC_API_KEY_PREFIX_LEN 9 /* first 8 characters + NUL */
#define CC_PASSWORD_HASH_MAX 256

/* Fills buf with n cryptographically secure random bytes. CC_OK or CC_ERR_INTERNAL. */
int cc_random_bytes(void *buf, size_t n);
void cc_sha256(const void *data, size_t n, unsigned char out[CC_SHA256_LEN]);
/* The value of one hex digit (either case), or -1 for any other character. */
int cc_hex_value(int c);
/* Lower-case hex of SHA-256(data). */
void cc_sha256_hex(const void *data, size_t n, char out[CC_SHA256_HEX_LEN]);
int cc_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
                   unsigned char out[CC_SHA256_LEN]);

/* Lower-case hex; out must hold 2n+1 bytes. */
void cc_hex_encode(const unsigned char *in, size_t n, char *out);
/* base64url without padding; out must hold 4*((n+2)/3)+1 bytes. Returns the length. */
size_t cc_base64url_encode(const unsigned char *in, size_t n, char *out);
/* Decodes base64url (no padding). CC_OK or CC_ERR_VALIDATION; *outlen on success. */
int cc_base64url_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap,
                        size_t *outlen);

#define CC_SCRYPT_CONCURRENT_MAX 4 /* password hashes computed at once (32 MiB each) */

/* scrypt with a per-password 16-byte salt; the parameters are stored beside the hash
 * so they can be raised later: "scrypt$<logN>$<r>$<p>$<salt b64url>$<hash b64url>".
 * out must hold CC_PASSWORD_HASH_MAX bytes. CC_OK or CC_ERR_INTERNAL. */
int cc_password_hash(const char *password, char *out, size_t outlen);
/* Same, with explicit cost (tests use a small logN). */
int cc_password_hash_params(const char *password, int log_n, int r, int p, char *out,
                            size_t outlen);
/* CC_OK if password matches stored, CC_ERR_INVALID_CREDENTIALS if not or if stored is
 * malformed. Compares in constant time. */
int cc_password_verify(const char *password, const char *stored);
/* Burns the time of one verification with the default parameters, so an unknown
 * e-mail costs what a wrong password costs. */
void cc_password_dummy_verify(const char *password);
/* The most password hashes (hash, verify, dummy) this process has computed at once: never
 * above CC_SCRYPT_CONCURRENT_MAX; the others waited their turn. */
int cc_password_hash_peak(void);
/* Takes one of the CC_SCRYPT_CONCURRENT_MAX password-hash slots for the calling thread,
 * waiting for it; this thread's hashes until cc_password_slot_give use that slot. apid takes
 * it before a login's database connection, so logins waiting their turn hold none. Takes
 * nest on one thread (one slot, given back by the outermost give). */
void cc_password_slot_take(void);
void cc_password_slot_give(void);

/* A new device API key: 32 random bytes as hex; its SHA-256 hex and its prefix. */
int cc_api_key_new(char key[CC_API_KEY_LEN], char hash_hex[CC_SHA256_HEX_LEN],
                   char prefix[CC_API_KEY_PREFIX_LEN]);
/* 1 if SHA-256(key) equals hash_hex (constant time), else 0. */
int cc_api_key_matches(const char *key, const char *hash_hex);

#endif
