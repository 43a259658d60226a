/* test_kvlog.c - the Paho persistence store: put/get/remove survive a reopen, a torn
 * tail is dropped, clear works, compaction keeps the live entries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_kvlog.h"
#include "cc_rc.h"

static void tmpfile_path(char *out, size_t n)
{
    snprintf(out, n, "/tmp/cc-kvlog-XXXXXX");
    int fd = mkstemp(out);
    assert_true(fd >= 0);
    close(fd);
    unlink(out);
}

static void put(struct cc_kvlog *kv, const char *key, const char *a, const char *b)
{
    char *bufs[2] = {(char *)a, (char *)b};
    int lens[2] = {(int)strlen(a), b ? (int)strlen(b) : 0};
    assert_int_equal(cc_kvlog_put(kv, key, b ? 2 : 1, bufs, lens), CC_OK);
}

static void expect(struct cc_kvlog *kv, const char *key, const char *want)
{
    char *val = NULL;
    int len = 0;
    assert_int_equal(cc_kvlog_get(kv, key, &val, &len), CC_OK);
    assert_int_equal(len, (int)strlen(want));
    assert_memory_equal(val, want, (size_t)len);
    free(val);
}

static void test_kvlog_survives_reopen(void **state)
{
    (void)state;
    char path[64];
    struct cc_kvlog *kv = NULL;
    char *v = NULL;
    int len;

    tmpfile_path(path, sizeof(path));
    assert_int_equal(cc_kvlog_open(path, &kv), CC_OK);
    put(kv, "r-1", "hello ", "world");
    put(kv, "q-2", "queued", NULL);
    put(kv, "r-3", "three", NULL);
    put(kv, "q-2", "replaced", NULL);
    assert_int_equal(cc_kvlog_remove(kv, "r-3"), CC_OK);
    assert_int_equal(cc_kvlog_remove(kv, "r-3"), CC_ERR_NOT_FOUND);
    cc_kvlog_close(kv);

    assert_int_equal(cc_kvlog_open(path, &kv), CC_OK);
    assert_int_equal(cc_kvlog_count(kv), 2);
    expect(kv, "r-1", "hello world");
    expect(kv, "q-2", "replaced");
    assert_int_equal(cc_kvlog_get(kv, "r-3", &v, &len), CC_ERR_NOT_FOUND);
    assert_true(cc_kvlog_contains(kv, "r-1"));
    assert_false(cc_kvlog_contains(kv, "r-3"));
    cc_kvlog_close(kv);
    unlink(path);
}

static void test_kvlog_torn_tail_is_dropped(void **state)
{
    (void)state;
    char path[64];
    struct cc_kvlog *kv = NULL;
    struct stat st;

    tmpfile_path(path, sizeof(path));
    assert_int_equal(cc_kvlog_open(path, &kv), CC_OK);
    put(kv, "a", "1", NULL);
    put(kv, "b", "2", NULL);
    cc_kvlog_close(kv);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 1), 0);
    assert_int_equal(cc_kvlog_open(path, &kv), CC_OK);
    assert_int_equal(cc_kvlog_count(kv), 1);
    expect(kv, "a", "1");
    /* New records after the cut are readable after another reopen. */
    put(kv, "c", "3", NULL);
    cc_kvlog_close(kv);
    assert_int_equal(cc_kvlog_open(path, &kv), CC_OK);
    assert_int_equal(cc_kvlog_count(kv), 2);
    expect(kv, "c", "3");
    cc_kvlog_close(kv);
    unlink(path);
}

static void test_kvlog_keys_and_clear(void **state)
{
    (void)state;
    char path[64];
    struct cc_kvlog *kv = NULL;
    char **keys = NULL;
    int n = 0, found = 0;

    tmpfile_path(path, sizeof(path));
    assert_int_equal(cc_kvlog_open(path, &kv), CC_OK);
    put(kv, "s-1", "x", NULL);
    put(kv, "sc-1", "y", NULL);
    assert_int_equal(cc_kvlog_keys(kv, &keys, &n), CC_OK);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++) {
        found += strcmp(keys[i], "s-1") == 0 || strcmp(keys[i], "sc-1") == 0;
        free(keys[i]);
    }
    free(keys);
    assert_int_equal(found, 2);
    assert_int_equal(cc_kvlog_clear(kv), CC_OK);
    assert_int_equal(cc_kvlog_count(kv), 0);
    cc_kvlog_close(kv);
    assert_int_equal(cc_kvlog_open(path, &kv), CC_OK);
    assert_int_equal(cc_kvlog_count(kv), 0);
    assert_int_equal(cc_kvlog_keys(kv, &keys, &n), CC_OK);
    assert_int_equal(n, 0);
    assert_null(keys);
    cc_kvlog_close(kv);
    unlink(path);
}

static void test_kvlog_compaction_keeps_live_entries(void **state)
{
    (void)state;
    char path[64], key[32];
    struct cc_kvlog *kv = NULL;
    struct stat st;
    char *val = malloc(4096);

    assert_non_null(val);
    memset(val, 'v', 4095);
    val[4095] = '\0';
    tmpfile_path(path, sizeof(path));
    assert_int_equal(cc_kvlog_open(path, &kv), CC_OK);
    put(kv, "keep", "me", NULL);
    /* Churn well past CC_KVLOG_COMPACT_MIN of dead records. */
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof(key), "r-%d", i);
        put(kv, key, val, NULL);
        assert_int_equal(cc_kvlog_remove(kv, key), CC_OK);
    }
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size < CC_KVLOG_COMPACT_MIN);
    cc_kvlog_close(kv);
    assert_int_equal(cc_kvlog_open(path, &kv), CC_OK);
    assert_int_equal(cc_kvlog_count(kv), 1);
    expect(kv, "keep", "me");
    cc_kvlog_close(kv);
    free(val);
    unlink(path);
}

static void test_kvlog_refuses_long_key(void **state)
{
    (void)state;
    char path[64], key[CC_KVLOG_KEY_MAX + 2];
    struct cc_kvlog *kv = NULL;
    char *bufs[1] = {"x"};
    int lens[1] = {1};

    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    tmpfile_path(path, sizeof(path));
    assert_int_equal(cc_kvlog_open(path, &kv), CC_OK);
    assert_int_equal(cc_kvlog_put(kv, key, 1, bufs, lens), CC_ERR_VALIDATION);
    cc_kvlog_close(kv);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kvlog_survives_reopen),
        cmocka_unit_test(test_kvlog_torn_tail_is_dropped),
        cmocka_unit_test(test_kvlog_keys_and_clear),
        cmocka_unit_test(test_kvlog_compaction_keeps_live_entries),
        cmocka_unit_test(test_kvlog_refuses_long_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
