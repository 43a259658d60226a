/* test_audit.c - cc_audit: rows with actor, action, entity, id and old/new detail,
 * committed or rolled back with the write they record, and never changed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_audit.h"
#include "cc_db.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "fixture.h"

static struct fixture fx; /* cmocka runs one test at a time */

static int setup(void **state)
{
    if (fixture_open(&fx, 0, 0, NULL) != CC_OK)
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

static int64_t count(sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;
    int64_t n;

    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM audit_log", -1, &stmt, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return n;
}

static void test_audit_row_fields(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    cJSON *old_obj = cJSON_Parse("{\"name\":\"a\"}"), *new_obj = cJSON_Parse("{\"name\":\"b\"}");
    sqlite3_stmt *stmt = NULL;

    assert_int_equal(cc_audit_append(st, 7, "update", "location", 3, old_obj, new_obj), CC_OK);
    assert_int_equal(cc_audit_append(st, 0, "login", "user", 0, NULL, NULL), CC_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT actor_user_id, action, entity, entity_id,"
                                        " detail, ts FROM audit_log ORDER BY id",
                                        -1, &stmt, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(stmt, 0), 7);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 1), "update");
    assert_string_equal((const char *)sqlite3_column_text(stmt, 2), "location");
    assert_int_equal(sqlite3_column_int64(stmt, 3), 3);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 4),
                        "{\"old\":{\"name\":\"a\"},\"new\":{\"name\":\"b\"}}");
    assert_true(sqlite3_column_int64(stmt, 5) > 0);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_int_equal(sqlite3_column_type(stmt, 0), SQLITE_NULL);
    assert_int_equal(sqlite3_column_type(stmt, 3), SQLITE_NULL);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 4), "{}");
    sqlite3_finalize(stmt);
    cJSON_Delete(old_obj);
    cJSON_Delete(new_obj);
}

static void test_audit_follows_transaction(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);

    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_audit_append(st, 1, "delete", "device", 9, NULL, NULL), CC_OK);
    cc_store_rollback(st);
    assert_int_equal(count(db), 0);
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_audit_append(st, 1, "delete", "device", 9, NULL, NULL), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(count(db), 1);
}

static void test_audit_append_only(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);

    assert_int_equal(cc_audit_append(st, 1, "create", "user", 2, NULL, NULL), CC_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit_log SET action = 'x'", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit_log", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(count(db), 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    cc_log_init("test_audit", CC_LOG_WARN, 1);
    const struct CMUnitTest tests[] = {
        T(test_audit_row_fields),
        T(test_audit_follows_transaction),
        T(test_audit_append_only),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
