/* test_provision.c - cc_provision: user and device checks, conflicts, key storage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_crypto.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_log.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "cc_time.h"
#include "fixture.h"

#define GOOD_EMAIL "ops@example.com"
#define GOOD_PASSWORD "correct-horse"
#define GOOD_NAME "Ops Team"

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

/* Column 0 of the row "sql" selects for id, as text ("(null)" for NULL). */
static void query_text_id(sqlite3 *db, const char *sql, int64_t id, char *out, size_t outlen)
{
    sqlite3_stmt *stmt = NULL;
    const char *s;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_bind_int64(stmt, 1, id), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    s = (const char *)sqlite3_column_text(stmt, 0);
    snprintf(out, outlen, "%s", s != NULL ? s : "(null)");
    sqlite3_finalize(stmt);
}

/* A migrated in-memory store with one customer, location and cold cell (id 1). */
static const char seed[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) "
    "VALUES (1, 'owner@example.com', 'x', 'CUSTOMER', 'Owner', 0);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'L', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at) "
    "VALUES (1, 1, 'Fridge', 2, 8, 0);";

static struct fixture fx; /* cmocka runs one test at a time */

static int setup(void **state)
{
    if (fixture_open(&fx, 0, 0, seed) != CC_OK)
        return -1;
    *state = fx.st;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fixture_close(&fx);
    return 0;
}

/* The only detail of err: its field and issue. */
static void expect_one_detail(cJSON *err, const char *field, const char *issue)
{
    const cJSON *details, *d;

    assert_non_null(err);
    assert_string_equal(cc_error_code(err), "VALIDATION_ERROR");
    assert_true(strlen(cc_error_message(err)) > 0);
    assert_int_equal(cc_error_detail_count(err), 1);
    details =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(err, "error"), "details");
    d = cJSON_GetArrayItem(details, 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d, "field")->valuestring, field);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d, "issue")->valuestring, issue);
}

/* A user with one bad field: CC_ERR_VALIDATION naming it, *id untouched, no row. */
static void expect_user_rejected(struct cc_store *st, const char *email, const char *password,
                                 const char *role, const char *name, const char *field,
                                 const char *issue)
{
    int64_t id = -7;
    cJSON *err = NULL;
    int rc = cc_provision_user(st, email, password, role, name, &id, &err);

    if (rc != CC_ERR_VALIDATION)
        fail_msg("accepted %s=%s: rc %d", field,
                 strcmp(field, "email") == 0 ? (email ? email : "(null)") : "(value)", rc);
    expect_one_detail(err, field, issue);
    assert_int_equal(id, -7);
    cJSON_Delete(err);
}

static void test_provision_user_created_with_hash(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    int64_t before = cc_now_ms();
    int64_t id = 0;
    cJSON *err = NULL;
    char buf[CC_PASSWORD_HASH_MAX];

    assert_int_equal(
        cc_provision_user(st, GOOD_EMAIL, GOOD_PASSWORD, "TECHNICIAN", GOOD_NAME, &id, &err),
        CC_OK);
    assert_null(err);
    assert_true(id > 1);
    query_text_id(db, "SELECT role FROM users WHERE id = ?1", id, buf, sizeof buf);
    assert_string_equal(buf, "TECHNICIAN");
    query_text_id(db, "SELECT name FROM users WHERE id = ?1", id, buf, sizeof buf);
    assert_string_equal(buf, GOOD_NAME);
    assert_true(query_int(db, "SELECT max(created_at) FROM users") >= before);
    query_text_id(db, "SELECT password_hash FROM users WHERE id = ?1", id, buf, sizeof buf);
    assert_null(strstr(buf, GOOD_PASSWORD));
    assert_int_equal(cc_password_verify(GOOD_PASSWORD, buf), CC_OK);
    assert_int_equal(cc_password_verify("wrong-password", buf), CC_ERR_INVALID_CREDENTIALS);
}

static void test_provision_user_email_rejected(void **state)
{
    static const char *const bad[] = {
        "plainaddress",       "@example.com",       "user@",
        "user@localhost",     "a@b@example.com",    "us er@example.com",
        "user@example.com ",  "user@.com",          "user@example.",
        "user@exa\tmple.com", "user\n@example.com",
    };
    char long_email[CC_EMAIL_MAX + 2];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_user_rejected(*state, bad[i], GOOD_PASSWORD, "ADMIN", GOOD_NAME, "email", "invalid");
    expect_user_rejected(*state, NULL, GOOD_PASSWORD, "ADMIN", GOOD_NAME, "email", "required");
    expect_user_rejected(*state, "", GOOD_PASSWORD, "ADMIN", GOOD_NAME, "email", "required");

    /* 255 bytes: one over the limit. */
    memset(long_email, 'a', sizeof long_email);
    memcpy(long_email + CC_EMAIL_MAX + 1 - strlen("@example.com"), "@example.com",
           strlen("@example.com"));
    long_email[CC_EMAIL_MAX + 1] = '\0';
    assert_int_equal(strlen(long_email), CC_EMAIL_MAX + 1);
    expect_user_rejected(*state, long_email, GOOD_PASSWORD, "ADMIN", GOOD_NAME, "email",
                         "too_long");
    assert_int_equal(query_int(cc_store_db(*state), "SELECT count(*) FROM users"), 1);
}

static void test_provision_user_email_limit_accepted(void **state)
{
    char email[CC_EMAIL_MAX + 1];
    int64_t id = 0;
    cJSON *err = NULL;

    /* Exactly 254 bytes, with tags and subdomains. */
    memset(email, 'a', sizeof email);
    memcpy(email, "first.last+tag", strlen("first.last+tag"));
    memcpy(email + CC_EMAIL_MAX - strlen("@mail.example.co.uk"), "@mail.example.co.uk",
           strlen("@mail.example.co.uk"));
    email[CC_EMAIL_MAX] = '\0';
    assert_int_equal(cc_provision_user(*state, email, GOOD_PASSWORD, "ADMIN", GOOD_NAME, &id, &err),
                     CC_OK);
    assert_null(err);
}

static void test_provision_user_password_length(void **state)
{
    char pw[CC_PASSWORD_MAX + 2];
    int64_t id = 0;
    cJSON *err = NULL;

    expect_user_rejected(*state, GOOD_EMAIL, NULL, "ADMIN", GOOD_NAME, "password", "required");
    expect_user_rejected(*state, GOOD_EMAIL, "", "ADMIN", GOOD_NAME, "password", "required");
    expect_user_rejected(*state, GOOD_EMAIL, "seven77", "ADMIN", GOOD_NAME, "password",
                         "too_short");
    memset(pw, 'p', sizeof pw);
    pw[CC_PASSWORD_MAX + 1] = '\0'; /* 257 */
    expect_user_rejected(*state, GOOD_EMAIL, pw, "ADMIN", GOOD_NAME, "password", "too_long");

    pw[CC_PASSWORD_MAX] = '\0'; /* 256: the longest accepted */
    assert_int_equal(
        cc_provision_user(*state, "max@example.com", pw, "ADMIN", GOOD_NAME, &id, &err), CC_OK);
    assert_int_equal(
        cc_provision_user(*state, "min@example.com", "eight888", "ADMIN", GOOD_NAME, &id, &err),
        CC_OK);
    assert_null(err);
}

static void test_provision_user_role_rejected(void **state)
{
    expect_user_rejected(*state, GOOD_EMAIL, GOOD_PASSWORD, "customer", GOOD_NAME, "role",
                         "invalid");
    expect_user_rejected(*state, GOOD_EMAIL, GOOD_PASSWORD, "ROOT", GOOD_NAME, "role", "invalid");
    expect_user_rejected(*state, GOOD_EMAIL, GOOD_PASSWORD, "ADMIN ", GOOD_NAME, "role", "invalid");
    expect_user_rejected(*state, GOOD_EMAIL, GOOD_PASSWORD, NULL, GOOD_NAME, "role", "required");
    expect_user_rejected(*state, GOOD_EMAIL, GOOD_PASSWORD, "", GOOD_NAME, "role", "required");
}

static void test_provision_user_name_length(void **state)
{
    char name[3 * CC_NAME_MAX];
    int64_t id = 0;
    cJSON *err = NULL;

    expect_user_rejected(*state, GOOD_EMAIL, GOOD_PASSWORD, "ADMIN", NULL, "name", "required");
    expect_user_rejected(*state, GOOD_EMAIL, GOOD_PASSWORD, "ADMIN", "", "name", "required");
    expect_user_rejected(*state, GOOD_EMAIL, GOOD_PASSWORD, "ADMIN", "tab\there", "name",
                         "invalid");
    expect_user_rejected(*state, GOOD_EMAIL, GOOD_PASSWORD, "ADMIN", "bad \xff utf8", "name",
                         "invalid");
    memset(name, 'n', CC_NAME_MAX + 1);
    name[CC_NAME_MAX + 1] = '\0'; /* 201 */
    expect_user_rejected(*state, GOOD_EMAIL, GOOD_PASSWORD, "ADMIN", name, "name", "too_long");

    /* 200 characters of two bytes each: counted as characters, accepted. */
    for (int i = 0; i < CC_NAME_MAX; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2); /* é */
    name[2 * CC_NAME_MAX] = '\0';
    assert_int_equal(cc_provision_user(*state, GOOD_EMAIL, GOOD_PASSWORD, "ADMIN", name, &id, &err),
                     CC_OK);
    assert_null(err);
}

static void test_provision_user_every_bad_field_reported(void **state)
{
    int64_t id = -7;
    cJSON *err = NULL;
    const cJSON *details, *d;
    const char *fields[] = {"email", "password", "role", "name"};
    int i = 0;

    assert_int_equal(cc_provision_user(*state, "nope", "short", "KING", "", &id, &err),
                     CC_ERR_VALIDATION);
    assert_non_null(err);
    assert_int_equal(cc_error_detail_count(err), 4);
    details =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(err, "error"), "details");
    cJSON_ArrayForEach(d, details)
    {
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(d, "field")->valuestring, fields[i]);
        i++;
    }
    assert_int_equal(id, -7);
    cJSON_Delete(err);

    /* err may be NULL when the caller wants only the code. */
    assert_int_equal(cc_provision_user(*state, "nope", "short", "KING", "", &id, NULL),
                     CC_ERR_VALIDATION);
}

static void test_provision_user_duplicate_email_conflict(void **state)
{
    struct cc_store *st = *state;
    int64_t id = 0, id2 = -7;
    cJSON *err = NULL;

    assert_int_equal(
        cc_provision_user(st, "Dup@Example.com", GOOD_PASSWORD, "CUSTOMER", "A", &id, &err), CC_OK);
    assert_int_equal(
        cc_provision_user(st, "dup@example.COM", GOOD_PASSWORD, "ADMIN", "B", &id2, &err),
        CC_ERR_CONFLICT);
    assert_null(err);
    assert_int_equal(id2, -7);
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM users"), 2);
}

static void test_provision_user_runs_in_caller_transaction(void **state)
{
    struct cc_store *st = *state;
    int64_t id = 0;

    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(
        cc_provision_user(st, GOOD_EMAIL, GOOD_PASSWORD, "ADMIN", GOOD_NAME, &id, NULL), CC_OK);
    assert_int_equal(sqlite3_get_autocommit(cc_store_db(st)), 0); /* still the caller's */
    cc_store_rollback(st);
    assert_int_equal(query_int(cc_store_db(st), "SELECT count(*) FROM users"), 1);
}

static void test_provision_device_created_with_key_hash(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    char key[CC_API_KEY_LEN];
    char hash[CC_SHA256_HEX_LEN];
    char buf[128];
    int64_t id = 0;
    cJSON *err = NULL;

    memset(key, 0, sizeof key);
    assert_int_equal(cc_provision_device(st, 1, "CC-FRG-0100", "1.4.2", &id, key, &err), CC_OK);
    assert_null(err);
    assert_true(id > 0);
    assert_int_equal(strlen(key), CC_API_KEY_LEN - 1);
    assert_int_equal(strspn(key, "0123456789abcdef"), CC_API_KEY_LEN - 1);

    cc_sha256_hex(key, strlen(key), hash);
    query_text_id(db, "SELECT api_key_hash FROM devices WHERE id = ?1", id, buf, sizeof buf);
    assert_string_equal(buf, hash);
    assert_int_equal(cc_api_key_matches(key, buf), 1);
    query_text_id(db, "SELECT api_key_prefix FROM devices WHERE id = ?1", id, buf, sizeof buf);
    assert_int_equal(strlen(buf), 8);
    assert_memory_equal(buf, key, 8);
    query_text_id(db, "SELECT status FROM devices WHERE id = ?1", id, buf, sizeof buf);
    assert_string_equal(buf, "NEVER_SEEN");
    query_text_id(db, "SELECT firmware_version FROM devices WHERE id = ?1", id, buf, sizeof buf);
    assert_string_equal(buf, "1.4.2");
    query_text_id(db, "SELECT last_seen_at FROM devices WHERE id = ?1", id, buf, sizeof buf);
    assert_string_equal(buf, "(null)");
    assert_true(query_int(db, "SELECT created_at FROM devices") > cc_now_ms() - 60000);
    /* The key itself is stored nowhere. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices WHERE api_key_hash = "
                                   "api_key_prefix OR length(api_key_hash) != 64"),
                     0);
}

static void test_provision_device_without_firmware(void **state)
{
    char key[CC_API_KEY_LEN];
    char buf[32];
    int64_t id = 0;

    assert_int_equal(cc_provision_device(*state, 1, "a", NULL, &id, key, NULL), CC_OK);
    query_text_id(cc_store_db(*state), "SELECT firmware_version FROM devices WHERE id = ?1", id,
                  buf, sizeof buf);
    assert_string_equal(buf, "(null)");
}

static void expect_device_rejected(struct cc_store *st, int64_t cell, const char *serial,
                                   const char *firmware, const char *field, const char *issue)
{
    char key[CC_API_KEY_LEN] = "untouched";
    int64_t id = -7;
    cJSON *err = NULL;
    int rc = cc_provision_device(st, cell, serial, firmware, &id, key, &err);

    if (rc != CC_ERR_VALIDATION)
        fail_msg("accepted device %s (%s): rc %d", serial ? serial : "(null)", field, rc);
    expect_one_detail(err, field, issue);
    assert_int_equal(id, -7);
    assert_string_equal(key, "untouched");
    cJSON_Delete(err);
}

static void test_provision_device_fields_rejected(void **state)
{
    static const char *const bad_serials[] = {"a/b", "a+b", "a#", "a b", "sn\n", "ü"};
    char serial[CC_SERIAL_MAX + 2];
    char firmware[CC_FIRMWARE_MAX + 2];

    for (size_t i = 0; i < sizeof bad_serials / sizeof bad_serials[0]; i++)
        expect_device_rejected(*state, 1, bad_serials[i], NULL, "serialNumber", "invalid");
    expect_device_rejected(*state, 1, NULL, NULL, "serialNumber", "required");
    expect_device_rejected(*state, 1, "", NULL, "serialNumber", "required");
    memset(serial, 'S', sizeof serial);
    serial[CC_SERIAL_MAX + 1] = '\0';
    expect_device_rejected(*state, 1, serial, NULL, "serialNumber", "too_long");
    /* A serial is the device's MQTT client id: the operators' prefix is refused, whatever
     * the path (API, bulk import, ccctl) that creates the device. */
    expect_device_rejected(*state, 1, "coldchain-ingestd", NULL, "serialNumber", "reserved");
    expect_device_rejected(*state, 1, "COLDCHAIN-apid-1", NULL, "serialNumber", "reserved");
    expect_device_rejected(*state, 0, "CC-1", NULL, "coldCellId", "invalid");
    expect_device_rejected(*state, -3, "CC-1", NULL, "coldCellId", "invalid");
    memset(firmware, '1', sizeof firmware);
    firmware[CC_FIRMWARE_MAX + 1] = '\0';
    expect_device_rejected(*state, 1, "CC-1", firmware, "firmwareVersion", "too_long");
    expect_device_rejected(*state, 1, "CC-1", "1.0\n", "firmwareVersion", "invalid");
    assert_int_equal(query_int(cc_store_db(*state), "SELECT count(*) FROM devices"), 0);
}

static void test_provision_device_cell_not_found(void **state)
{
    char key[CC_API_KEY_LEN] = "untouched";
    int64_t id = -7;
    cJSON *err = NULL;

    assert_int_equal(cc_provision_device(*state, 42, "CC-1", NULL, &id, key, &err),
                     CC_ERR_NOT_FOUND);
    assert_null(err);
    assert_int_equal(id, -7);
    assert_string_equal(key, "untouched");
    assert_int_equal(query_int(cc_store_db(*state), "SELECT count(*) FROM devices"), 0);
}

static void test_provision_device_duplicate_serial_conflict(void **state)
{
    char key[CC_API_KEY_LEN];
    int64_t id = 0, id2 = -7;

    assert_int_equal(cc_provision_device(*state, 1, "CC-DUP", NULL, &id, key, NULL), CC_OK);
    assert_int_equal(cc_provision_device(*state, 1, "CC-DUP", NULL, &id2, key, NULL),
                     CC_ERR_CONFLICT);
    assert_int_equal(id2, -7);
    assert_int_equal(query_int(cc_store_db(*state), "SELECT count(*) FROM devices"), 1);
}

static void test_provision_regenerate_key_changes_hash(void **state)
{
    struct cc_store *st = *state;
    char key[CC_API_KEY_LEN], key2[CC_API_KEY_LEN];
    char old_hash[CC_SHA256_HEX_LEN], new_hash[CC_SHA256_HEX_LEN];
    char buf[CC_SHA256_HEX_LEN];
    int64_t id = 0;

    assert_int_equal(cc_provision_device(st, 1, "CC-REGEN", NULL, &id, key, NULL), CC_OK);
    query_text_id(cc_store_db(st), "SELECT api_key_hash FROM devices WHERE id = ?1", id, old_hash,
                  sizeof old_hash);
    assert_int_equal(cc_provision_regenerate_key(st, id, key2), CC_OK);
    assert_string_not_equal(key, key2);
    query_text_id(cc_store_db(st), "SELECT api_key_hash FROM devices WHERE id = ?1", id, new_hash,
                  sizeof new_hash);
    assert_string_not_equal(old_hash, new_hash);
    assert_int_equal(cc_api_key_matches(key2, new_hash), 1);
    assert_int_equal(cc_api_key_matches(key, new_hash), 0); /* the old key stops working */
    query_text_id(cc_store_db(st), "SELECT api_key_prefix FROM devices WHERE id = ?1", id, buf,
                  sizeof buf);
    assert_memory_equal(buf, key2, 8);
}

static void test_provision_regenerate_key_unknown_device(void **state)
{
    char key[CC_API_KEY_LEN] = "untouched";

    assert_int_equal(cc_provision_regenerate_key(*state, 999, key), CC_ERR_NOT_FOUND);
    assert_string_equal(key, "untouched");
}

static void test_provision_serial_valid(void **state)
{
    char serial[CC_SERIAL_MAX + 2];

    (void)state;
    assert_true(cc_provision_serial_valid("CC-FRZ-0001"));
    assert_true(cc_provision_serial_valid("a"));
    assert_true(cc_provision_serial_valid("dev_1.2-x"));
    assert_false(cc_provision_serial_valid(NULL));
    assert_false(cc_provision_serial_valid(""));
    assert_false(cc_provision_serial_valid("a/b"));
    assert_false(cc_provision_serial_valid("+"));
    assert_false(cc_provision_serial_valid("#"));
    assert_false(cc_provision_serial_valid("a b"));
    memset(serial, 'x', sizeof serial);
    serial[CC_SERIAL_MAX] = '\0';
    assert_true(cc_provision_serial_valid(serial)); /* 64: the longest */
    serial[CC_SERIAL_MAX] = 'x';
    serial[CC_SERIAL_MAX + 1] = '\0';
    assert_false(cc_provision_serial_valid(serial)); /* 65 */
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_provision_user_created_with_hash),
        T(test_provision_user_email_rejected),
        T(test_provision_user_email_limit_accepted),
        T(test_provision_user_password_length),
        T(test_provision_user_role_rejected),
        T(test_provision_user_name_length),
        T(test_provision_user_every_bad_field_reported),
        T(test_provision_user_duplicate_email_conflict),
        T(test_provision_user_runs_in_caller_transaction),
        T(test_provision_device_created_with_key_hash),
        T(test_provision_device_without_firmware),
        T(test_provision_device_fields_rejected),
        T(test_provision_device_cell_not_found),
        T(test_provision_device_duplicate_serial_conflict),
        T(test_provision_regenerate_key_changes_hash),
        T(test_provision_regenerate_key_unknown_device),
        cmocka_unit_test(test_provision_serial_valid),
    };

    cc_log_init("test_provision", CC_LOG_ERROR, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
