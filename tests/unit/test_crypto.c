/* test_crypto.c - cc_crypto: digests against published vectors, encodings, scrypt, API keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_crypto.h"
#include "cc_rc.h"

static void test_crypto_random_bytes_fill(void **state)
{
    (void)state;
    unsigned char a[32] = {0}, b[32] = {0}, zero[32] = {0};

    assert_int_equal(cc_random_bytes(a, sizeof(a)), CC_OK);
    assert_int_equal(cc_random_bytes(b, sizeof(b)), CC_OK);
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(cc_random_bytes(a, 0), CC_OK);
}

static void test_crypto_sha256_vectors(void **state)
{
    (void)state;
    char hex[CC_SHA256_HEX_LEN];

    cc_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cc_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_crypto_hmac_rfc4231(void **state)
{
    (void)state;
    unsigned char key[20], out[CC_SHA256_LEN];
    char hex[CC_SHA256_HEX_LEN];

    /* RFC 4231 test case 1 */
    memset(key, 0x0b, sizeof(key));
    assert_int_equal(cc_hmac_sha256(key, sizeof(key), "Hi There", 8, out), CC_OK);
    cc_hex_encode(out, sizeof(out), hex);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* RFC 4231 test case 2 */
    assert_int_equal(cc_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out), CC_OK);
    cc_hex_encode(out, sizeof(out), hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_crypto_hmac_empty_key(void **state)
{
    (void)state;
    unsigned char a[CC_SHA256_LEN], b[CC_SHA256_LEN];
    char hex[CC_SHA256_HEX_LEN];

    assert_int_equal(cc_hmac_sha256(NULL, 0, "", 0, a), CC_OK);
    assert_int_equal(cc_hmac_sha256("", 0, NULL, 0, b), CC_OK);
    assert_memory_equal(a, b, sizeof(a));
    cc_hex_encode(a, sizeof(a), hex);
    assert_string_equal(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

static void test_crypto_hex_encode(void **state)
{
    (void)state;
    const unsigned char in[] = {0x00, 0x0f, 0xa0, 0xff};
    char out[9];

    cc_hex_encode(in, sizeof(in), out);
    assert_string_equal(out, "000fa0ff");
    cc_hex_encode(in, 0, out);
    assert_string_equal(out, "");
}

static void test_crypto_base64url_rfc4648(void **state)
{
    (void)state;
    /* RFC 4648 §10 vectors, without padding */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    char out[16];
    unsigned char dec[16];
    size_t len;

    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(plain[i]);

        assert_int_equal(cc_base64url_encode((const unsigned char *)plain[i], n, out),
                         strlen(enc[i]));
        assert_string_equal(out, enc[i]);
        assert_int_equal(cc_base64url_decode(enc[i], strlen(enc[i]), dec, sizeof(dec), &len),
                         CC_OK);
        assert_int_equal(len, n);
        assert_memory_equal(dec, plain[i], n);
    }
}

static void test_crypto_base64url_url_alphabet(void **state)
{
    (void)state;
    const unsigned char in[] = {0xfb, 0xff, 0xbf};
    char out[8];
    unsigned char dec[4];
    size_t len;

    cc_base64url_encode(in, sizeof(in), out);
    assert_string_equal(out, "-_-_");
    assert_int_equal(cc_base64url_decode("-_-_", 4, dec, sizeof(dec), &len), CC_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(dec, in, 3);
}

static void test_crypto_base64url_decode_rejects(void **state)
{
    (void)state;
    unsigned char dec[8] = {0x55};
    size_t len = 999;

    assert_int_equal(cc_base64url_decode("Zg==", 4, dec, sizeof(dec), &len), CC_ERR_VALIDATION);
    assert_int_equal(cc_base64url_decode("Zm9+", 4, dec, sizeof(dec), &len), CC_ERR_VALIDATION);
    assert_int_equal(cc_base64url_decode("Zm9/", 4, dec, sizeof(dec), &len), CC_ERR_VALIDATION);
    assert_int_equal(cc_base64url_decode("Zm9v Zg", 7, dec, sizeof(dec), &len), CC_ERR_VALIDATION);
    assert_int_equal(cc_base64url_decode("Z", 1, dec, sizeof(dec), &len), CC_ERR_VALIDATION);
    /* non-zero unused bits: "Zh" would also decode to "f" without the check */
    assert_int_equal(cc_base64url_decode("Zh", 2, dec, sizeof(dec), &len), CC_ERR_VALIDATION);
    assert_int_equal(cc_base64url_decode("Zm9", 3, dec, sizeof(dec), &len), CC_ERR_VALIDATION);
    assert_int_equal(cc_base64url_decode("Zm8", 3, dec, sizeof(dec), &len), CC_OK);
    len = 999;
    dec[0] = 0x55;
    assert_int_equal(cc_base64url_decode("Zm-", 3, dec, sizeof(dec), &len), CC_ERR_VALIDATION);
    /* too small an output buffer */
    assert_int_equal(cc_base64url_decode("Zm9vYmFy", 8, dec, 5, &len), CC_ERR_VALIDATION);
    assert_int_equal(len, 999);
    assert_int_equal(dec[0], 0x55);
    assert_int_equal(cc_base64url_decode("Zm9vYmFy", 8, dec, 6, &len), CC_OK);
    assert_int_equal(len, 6);
}

static void test_crypto_password_round_trip_small(void **state)
{
    (void)state;
    char h[CC_PASSWORD_HASH_MAX];

    assert_int_equal(cc_password_hash_params("correct horse", 4, 8, 1, h, sizeof(h)), CC_OK);
    assert_int_equal(strncmp(h, "scrypt$4$8$1$", 13), 0);
    assert_int_equal(strlen(h), 13 + 22 + 1 + 43);
    assert_int_equal(cc_password_verify("correct horse", h), CC_OK);
    assert_int_equal(cc_password_verify("correct horsE", h), CC_ERR_INVALID_CREDENTIALS);
    assert_int_equal(cc_password_verify("", h), CC_ERR_INVALID_CREDENTIALS);
}

static void test_crypto_password_salted(void **state)
{
    (void)state;
    char a[CC_PASSWORD_HASH_MAX], b[CC_PASSWORD_HASH_MAX];

    assert_int_equal(cc_password_hash_params("same", 4, 1, 1, a, sizeof(a)), CC_OK);
    assert_int_equal(cc_password_hash_params("same", 4, 1, 1, b, sizeof(b)), CC_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(cc_password_verify("same", a), CC_OK);
    assert_int_equal(cc_password_verify("same", b), CC_OK);
}

static void test_crypto_password_default_round_trip(void **state)
{
    (void)state;
    char h[CC_PASSWORD_HASH_MAX];

    assert_int_equal(cc_password_hash("admin123", h, sizeof(h)), CC_OK);
    assert_int_equal(strncmp(h, "scrypt$15$8$1$", 14), 0);
    assert_int_equal(cc_password_verify("admin123", h), CC_OK);
    assert_int_equal(cc_password_verify("admin124", h), CC_ERR_INVALID_CREDENTIALS);
    cc_password_dummy_verify("admin123"); /* must simply not crash */
    cc_password_dummy_verify(NULL);
}

/* A known good hash with logN=4 r=1 p=1 from which the malformed cases are derived. */
static void make_small_hash(const char *pw, char *h, size_t hlen)
{
    assert_int_equal(cc_password_hash_params(pw, 4, 1, 1, h, hlen), CC_OK);
}

static void test_crypto_password_verify_rejects_malformed(void **state)
{
    (void)state;
    char good[CC_PASSWORD_HASH_MAX], bad[CC_PASSWORD_HASH_MAX + 64];
    const char *salt, *hash;
    char long_str[400];

    make_small_hash("pw", good, sizeof(good));
    salt = good + strlen("scrypt$4$1$1$");
    hash = salt + 23;

    static const char *const fixed[] = {
        "",
        "scrypt",
        "scrypt$",
        "bcrypt$4$1$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$2b$10$abcdefghijklmnopqrstuu",
        "plaintext",
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        assert_int_equal(cc_password_verify("pw", fixed[i]), CC_ERR_INVALID_CREDENTIALS);
    assert_int_equal(cc_password_verify("pw", NULL), CC_ERR_INVALID_CREDENTIALS);
    assert_int_equal(cc_password_verify(NULL, good), CC_ERR_INVALID_CREDENTIALS);

    /* each field broken in turn; the good string verifies, so only the change matters */
    assert_int_equal(cc_password_verify("pw", good), CC_OK);
    const char *fmts[] = {
        "scrypt$04$1$1$%s",  /* leading zero */
        "scrypt$+4$1$1$%s",  /* sign */
        "scrypt$4$1$$%s",    /* empty p */
        "scrypt$4$1$1$1$%s", /* extra field */
        "scrypt$4$1$1$%s$",  /* trailing separator */
        "scrypt$4$1$1$%s=",  /* padding */
        "scrypt$4$1$1$%s ",  /* trailing space */
        "SCRYPT$4$1$1$%s",   /* prefix case */
        "scrypt$4$1$1$$%s",  /* empty field */
        "scrypt$5$1$1$%s",   /* right format, other cost: a different hash */
    };
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        snprintf(bad, sizeof(bad), fmts[i], salt);
        if (cc_password_verify("pw", bad) != CC_ERR_INVALID_CREDENTIALS)
            fail_msg("accepted '%s'", bad);
    }
    /* salt one character short / long, hash one character short */
    snprintf(bad, sizeof(bad), "scrypt$4$1$1$%.21s$%s", salt, hash);
    assert_int_equal(cc_password_verify("pw", bad), CC_ERR_INVALID_CREDENTIALS);
    snprintf(bad, sizeof(bad), "scrypt$4$1$1$%.22sA$%s", salt, hash);
    assert_int_equal(cc_password_verify("pw", bad), CC_ERR_INVALID_CREDENTIALS);
    snprintf(bad, sizeof(bad), "scrypt$4$1$1$%.22s$%.42s", salt, hash);
    assert_int_equal(cc_password_verify("pw", bad), CC_ERR_INVALID_CREDENTIALS);
    /* invalid base64url character inside the hash */
    snprintf(bad, sizeof(bad), "scrypt$4$1$1$%.22s$*%s", salt, hash + 1);
    assert_int_equal(cc_password_verify("pw", bad), CC_ERR_INVALID_CREDENTIALS);
    /* over-long stored string */
    memset(long_str, 'a', sizeof(long_str) - 1);
    long_str[sizeof(long_str) - 1] = '\0';
    memcpy(long_str, "scrypt$", 7);
    assert_int_equal(cc_password_verify("pw", long_str), CC_ERR_INVALID_CREDENTIALS);
}

static void test_crypto_password_verify_rejects_absurd_params(void **state)
{
    (void)state;
    char good[CC_PASSWORD_HASH_MAX], bad[CC_PASSWORD_HASH_MAX];
    const char *tail;
    static const char *const params[] = {"21$8$1", "0$8$1",  "4$0$1",   "4$1$0",  "4$33$1",
                                         "4$1$17", "64$8$1", "999$1$1", "20$32$1"};

    make_small_hash("pw", good, sizeof(good));
    tail = good + strlen("scrypt$4$1$1$");
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        snprintf(bad, sizeof(bad), "scrypt$%s$%s", params[i], tail);
        if (cc_password_verify("pw", bad) != CC_ERR_INVALID_CREDENTIALS)
            fail_msg("accepted parameters %s", params[i]);
    }
}

static void test_crypto_password_hash_rejects_bad_args(void **state)
{
    (void)state;
    char h[CC_PASSWORD_HASH_MAX] = "untouched";
    char small[40] = "untouched";

    assert_int_equal(cc_password_hash_params("pw", 0, 8, 1, h, sizeof(h)), CC_ERR_INTERNAL);
    assert_int_equal(cc_password_hash_params("pw", 21, 8, 1, h, sizeof(h)), CC_ERR_INTERNAL);
    assert_int_equal(cc_password_hash_params("pw", 4, 0, 1, h, sizeof(h)), CC_ERR_INTERNAL);
    assert_int_equal(cc_password_hash_params("pw", 4, 8, 0, h, sizeof(h)), CC_ERR_INTERNAL);
    assert_int_equal(cc_password_hash_params(NULL, 4, 8, 1, h, sizeof(h)), CC_ERR_INTERNAL);
    assert_string_equal(h, "untouched");
    assert_int_equal(cc_password_hash_params("pw", 4, 8, 1, small, sizeof(small)), CC_ERR_INTERNAL);
    assert_string_equal(small, "untouched");
}

static void test_crypto_api_key_new(void **state)
{
    (void)state;
    char key[CC_API_KEY_LEN], hash[CC_SHA256_HEX_LEN], prefix[CC_API_KEY_PREFIX_LEN];
    char key2[CC_API_KEY_LEN], hash2[CC_SHA256_HEX_LEN], prefix2[CC_API_KEY_PREFIX_LEN];
    char expect[CC_SHA256_HEX_LEN];

    assert_int_equal(cc_api_key_new(key, hash, prefix), CC_OK);
    assert_int_equal(strlen(key), 64);
    assert_int_equal(strspn(key, "0123456789abcdef"), 64);
    assert_int_equal(strlen(prefix), 8);
    assert_memory_equal(prefix, key, 8);
    cc_sha256_hex(key, strlen(key), expect);
    assert_string_equal(hash, expect);
    assert_int_equal(cc_api_key_new(key2, hash2, prefix2), CC_OK);
    assert_string_not_equal(key, key2);
}

static void test_crypto_api_key_matches(void **state)
{
    (void)state;
    char key[CC_API_KEY_LEN], hash[CC_SHA256_HEX_LEN], prefix[CC_API_KEY_PREFIX_LEN];
    char upper[CC_SHA256_HEX_LEN];

    assert_int_equal(cc_api_key_new(key, hash, prefix), CC_OK);
    assert_true(cc_api_key_matches(key, hash));
    for (size_t i = 0; i < sizeof(upper); i++)
        upper[i] = (hash[i] >= 'a' && hash[i] <= 'f') ? (char)(hash[i] - 32) : hash[i];
    assert_true(cc_api_key_matches(key, upper));
    key[63] = key[63] == '0' ? '1' : '0';
    assert_false(cc_api_key_matches(key, hash));
    key[63] = '\0';
    assert_false(cc_api_key_matches(key, hash));
    assert_false(cc_api_key_matches("", hash));
    assert_false(cc_api_key_matches(NULL, hash));
    assert_false(cc_api_key_matches(key, NULL));
    assert_false(cc_api_key_matches(key, ""));
    hash[10] = 'g';
    assert_false(cc_api_key_matches(key, hash));
    hash[63] = '\0';
    assert_false(cc_api_key_matches(key, hash));
}

/* Many threads hashing at once: never more than CC_SCRYPT_CONCURRENT_MAX derivations run
 * together (each takes 128 * r * N bytes), and every one of them still succeeds. */
#define HASH_THREADS 16

static void *hash_many(void *arg)
{
    char h[CC_PASSWORD_HASH_MAX];
    int *ok = arg;

    *ok = 1;
    for (int i = 0; i < 4; i++)
        if (cc_password_hash_params("concurrent", 12, 8, 1, h, sizeof(h)) != CC_OK ||
            cc_password_verify("concurrent", h) != CC_OK)
            *ok = 0;
    return NULL;
}

static void test_crypto_password_hash_concurrency_capped(void **state)
{
    pthread_t t[HASH_THREADS];
    int ok[HASH_THREADS];

    (void)state;
    for (int i = 0; i < HASH_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hash_many, &ok[i]), 0);
    for (int i = 0; i < HASH_THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_true(ok[i]);
    }
    assert_true(cc_password_hash_peak() >= 1);
    assert_true(cc_password_hash_peak() <= CC_SCRYPT_CONCURRENT_MAX);
}

/* apid takes a slot before a login's database connection (cc_password_slot_take), then the
 * login hashes on that thread: the hash must use the slot the thread holds, not wait for
 * another, or with every other slot taken it would wait forever. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int holding, release;
} slot_hold = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void *hold_slot(void *arg)
{
    (void)arg;
    cc_password_slot_take();
    pthread_mutex_lock(&slot_hold.mu);
    slot_hold.holding++;
    pthread_cond_broadcast(&slot_hold.cv);
    while (!slot_hold.release)
        pthread_cond_wait(&slot_hold.cv, &slot_hold.mu);
    pthread_mutex_unlock(&slot_hold.mu);
    cc_password_slot_give();
    return NULL;
}

static void test_crypto_password_slot_taken_first_is_used(void **state)
{
    pthread_t t[CC_SCRYPT_CONCURRENT_MAX - 1];
    char h[CC_PASSWORD_HASH_MAX];

    (void)state;
    for (int i = 0; i < CC_SCRYPT_CONCURRENT_MAX - 1; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hold_slot, NULL), 0);
    pthread_mutex_lock(&slot_hold.mu);
    while (slot_hold.holding < CC_SCRYPT_CONCURRENT_MAX - 1)
        pthread_cond_wait(&slot_hold.cv, &slot_hold.mu);
    pthread_mutex_unlock(&slot_hold.mu);

    alarm(30);               /* a hash waiting for a second slot would hang here: fail instead */
    cc_password_slot_take(); /* the last free slot */
    cc_password_slot_take(); /* nested: the same slot */
    assert_int_equal(cc_password_hash_params("slot", 12, 8, 1, h, sizeof(h)), CC_OK);
    assert_int_equal(cc_password_verify("slot", h), CC_OK);
    cc_password_slot_give();
    assert_int_equal(cc_password_verify("slot", h), CC_OK); /* still held: outer take */
    cc_password_slot_give();
    alarm(0);

    pthread_mutex_lock(&slot_hold.mu);
    slot_hold.release = 1;
    pthread_cond_broadcast(&slot_hold.cv);
    pthread_mutex_unlock(&slot_hold.mu);
    for (int i = 0; i < CC_SCRYPT_CONCURRENT_MAX - 1; i++)
        pthread_join(t[i], NULL);
    /* Every slot was given back: the capped test's 16 threads all get one again. */
    test_crypto_password_hash_concurrency_capped(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crypto_random_bytes_fill),
        cmocka_unit_test(test_crypto_sha256_vectors),
        cmocka_unit_test(test_crypto_hmac_rfc4231),
        cmocka_unit_test(test_crypto_hmac_empty_key),
        cmocka_unit_test(test_crypto_hex_encode),
        cmocka_unit_test(test_crypto_base64url_rfc4648),
        cmocka_unit_test(test_crypto_base64url_url_alphabet),
        cmocka_unit_test(test_crypto_base64url_decode_rejects),
        cmocka_unit_test(test_crypto_password_round_trip_small),
        cmocka_unit_test(test_crypto_password_salted),
        cmocka_unit_test(test_crypto_password_default_round_trip),
        cmocka_unit_test(test_crypto_password_verify_rejects_malformed),
        cmocka_unit_test(test_crypto_password_verify_rejects_absurd_params),
        cmocka_unit_test(test_crypto_password_hash_rejects_bad_args),
        cmocka_unit_test(test_crypto_api_key_new),
        cmocka_unit_test(test_crypto_api_key_matches),
        cmocka_unit_test(test_crypto_password_hash_concurrency_capped),
        cmocka_unit_test(test_crypto_password_slot_taken_first_is_used),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
