/* test_bulk.c - cc_bulk: CSV and JSON parsing, every bad row reported with its line,
 * all-or-nothing provisioning, access checks, the HTTP answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_access.h"
#include "cc_bulk.h"
#include "cc_crypto.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_json.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "fixture.h"

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

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

/* Parses a NUL-terminated text. */
static int parse(const char *text, int format, struct cc_bulk **out, cJSON **err)
{
    return cc_bulk_parse(text, strlen(text), format, out, err);
}

static const cJSON *details(const cJSON *err)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(err, "error"),
                                            "details");
}

/* Asserts that detail i of err names field, issue and line. */
static void assert_detail(const cJSON *err, int i, const char *field, const char *issue, int line)
{
    const cJSON *d = cJSON_GetArrayItem(details(err), i);

    assert_non_null(d);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d, "field")->valuestring, field);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d, "issue")->valuestring, issue);
    if (line > 0)
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(d, "line")->valueint, line);
    else
        assert_null(cJSON_GetObjectItemCaseSensitive(d, "line"));
}

/* -- CSV ---------------------------------------------------------------------------- */

static void test_bulk_csv_parses_rows_with_lines(void **state)
{
    const char text[] = "\xef\xbb\xbfserialNumber,coldCellId,firmwareVersion\r\n"
                        "SN-1,1,1.0.0\r\n"
                        "\r\n"
                        "SN-2 , 2 ,\r\n"
                        "SN-3,1,\"2.0, \"\"beta\"\"\"\n";
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(parse(text, CC_BULK_CSV, &b, &err), CC_OK);
    assert_null(err);
    assert_int_equal(b->count, 3);
    assert_string_equal(b->items[0].serial, "SN-1");
    assert_int_equal(b->items[0].cold_cell_id, 1);
    assert_string_equal(b->items[0].firmware, "1.0.0");
    assert_int_equal(b->items[0].line, 2);
    assert_string_equal(b->items[1].serial, "SN-2");
    assert_int_equal(b->items[1].cold_cell_id, 2);
    assert_string_equal(b->items[1].firmware, "");
    assert_int_equal(b->items[1].line, 4);
    assert_string_equal(b->items[2].firmware, "2.0, \"beta\"");
    assert_int_equal(b->items[2].line, 5);
    cc_bulk_free(b);
}

static void test_bulk_csv_columns_in_any_order_firmware_optional(void **state)
{
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(parse("coldCellId,serialNumber\n7,A\n8,B", CC_BULK_CSV, &b, &err), CC_OK);
    assert_int_equal(b->count, 2);
    assert_string_equal(b->items[1].serial, "B");
    assert_int_equal(b->items[1].cold_cell_id, 8);
    assert_int_equal(b->items[1].line, 3);
    cc_bulk_free(b);
}

static void test_bulk_csv_reports_every_bad_row(void **state)
{
    const char text[] = "serialNumber,coldCellId,firmwareVersion\n"
                        "ok-1,1,\n"
                        "bad serial,1,\n" /* line 3 */
                        "ok-2,zero,\n"    /* line 4 */
                        "ok-3,1\n"        /* line 5: two fields */
                        ",0,\n"           /* line 6: two problems */
                        "ok-1,2,\n";      /* line 7: duplicate of line 2 */
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(parse(text, CC_BULK_CSV, &b, &err), CC_ERR_VALIDATION);
    assert_null(b);
    assert_non_null(err);
    assert_string_equal(cc_error_code(err), "VALIDATION_ERROR");
    assert_int_equal(cJSON_GetArraySize(details(err)), 6);
    assert_detail(err, 0, "[1].serialNumber", "invalid", 3);
    assert_detail(err, 1, "[2].coldCellId", "invalid", 4);
    assert_detail(err, 2, "[3]", "field_count", 5);
    assert_detail(err, 3, "[4].serialNumber", "required", 6);
    assert_detail(err, 4, "[4].coldCellId", "invalid", 6);
    assert_detail(err, 5, "[5].serialNumber", "duplicate", 7);
    assert_non_null(strstr(cc_error_message(err), "line 3:"));
    cJSON_Delete(err);
}

/* Found by fuzz_bulk: a cold cell id above 2^53 - 1 was accepted in CSV and refused in
 * JSON (which cannot carry it exactly); both formats now refuse it, and accept 2^53 - 1. */
static void test_bulk_csv_cell_id_within_json_integers(void **state)
{
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(
        parse("serialNumber,coldCellId\nA-1,17777777777777777\n", CC_BULK_CSV, &b, &err),
        CC_ERR_VALIDATION);
    assert_null(b);
    assert_detail(err, 0, "[0].coldCellId", "invalid", 2);
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(
        parse("serialNumber,coldCellId\nA-1,9007199254740991\n", CC_BULK_CSV, &b, &err), CC_OK);
    assert_int_equal(b->items[0].cold_cell_id, 9007199254740991LL);
    cc_bulk_free(b);
}

static void test_bulk_csv_header_problems(void **state)
{
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(parse("serial,coldCellId\nA,1\n", CC_BULK_CSV, &b, &err), CC_ERR_VALIDATION);
    assert_int_equal(cJSON_GetArraySize(details(err)), 2);
    assert_detail(err, 0, "header", "unknown_column", 1);
    assert_detail(err, 1, "header", "missing_column", 1);
    cJSON_Delete(err);
    err = NULL;

    assert_int_equal(parse("serialNumber,coldCellId,coldCellId\n", CC_BULK_CSV, &b, &err),
                     CC_ERR_VALIDATION);
    assert_detail(err, 0, "header", "duplicate_column", 1);
    cJSON_Delete(err);
    err = NULL;

    assert_int_equal(parse("\n\n", CC_BULK_CSV, &b, &err), CC_ERR_VALIDATION);
    assert_detail(err, 0, "header", "required", 0);
    cJSON_Delete(err);
    err = NULL;

    assert_int_equal(parse("serialNumber,coldCellId\n", CC_BULK_CSV, &b, &err), CC_ERR_VALIDATION);
    assert_detail(err, 0, "rows", "empty", 0);
    cJSON_Delete(err);
}

static void test_bulk_csv_quotes_and_long_fields(void **state)
{
    char text[1024];
    char longf[300];
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    /* A quoted field may hold a line break; the next record's line counts it. */
    assert_int_equal(parse("serialNumber,coldCellId,firmwareVersion\n"
                           "A,1,\"multi\nline\"\n"
                           "B,1,x\"y\n"
                           "C,1,\"open\n",
                           CC_BULK_CSV, &b, &err),
                     CC_ERR_VALIDATION);
    /* "multi\nline" holds a control character: invalid firmware, line 2 */
    assert_int_equal(cJSON_GetArraySize(details(err)), 3);
    assert_detail(err, 0, "[0].firmwareVersion", "invalid", 2);
    assert_detail(err, 1, "[1]", "bad_quote", 4);
    assert_detail(err, 2, "[2]", "bad_quote", 5);
    cJSON_Delete(err);
    err = NULL;

    memset(longf, 'x', sizeof longf - 1);
    longf[sizeof longf - 1] = '\0';
    snprintf(text, sizeof text, "serialNumber,coldCellId,firmwareVersion\n%s,1,%s\nok,%s,\n", longf,
             longf, longf);
    assert_int_equal(parse(text, CC_BULK_CSV, &b, &err), CC_ERR_VALIDATION);
    assert_int_equal(cJSON_GetArraySize(details(err)), 3);
    assert_detail(err, 0, "[0].serialNumber", "too_long", 2);
    assert_detail(err, 1, "[0].firmwareVersion", "too_long", 2);
    assert_detail(err, 2, "[1].coldCellId", "invalid", 3);
    cJSON_Delete(err);
    err = NULL;

    assert_int_equal(cc_bulk_parse("serialNumber,coldCellId\nA\0B,1\n", 27, CC_BULK_CSV, &b, &err),
                     CC_ERR_VALIDATION);
    cJSON_Delete(err);
}

static void test_bulk_rejects_oversized_input(void **state)
{
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(cc_bulk_parse("", (size_t)CC_BULK_MAX_INPUT + 1, CC_BULK_CSV, &b, &err),
                     CC_ERR_TOO_LARGE);
    assert_string_equal(cc_error_code(err), "PAYLOAD_TOO_LARGE");
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(parse("[]", 99, &b, &err), CC_ERR_VALIDATION);
    cJSON_Delete(err);
}

static void test_bulk_csv_too_many_rows(void **state)
{
    size_t cap = 40 + (size_t)(CC_BULK_MAX_ROWS + 1) * 12;
    char *text = malloc(cap);
    size_t n;
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    assert_non_null(text);
    n = (size_t)snprintf(text, cap, "serialNumber,coldCellId\n");
    for (int i = 0; i <= CC_BULK_MAX_ROWS; i++)
        n += (size_t)snprintf(text + n, cap - n, "S%d,1\n", i);
    assert_int_equal(cc_bulk_parse(text, n, CC_BULK_CSV, &b, &err), CC_ERR_VALIDATION);
    assert_detail(err, 0, "rows", "too_many", CC_BULK_MAX_ROWS + 2);
    cJSON_Delete(err);
    /* exactly the maximum is fine */
    n = (size_t)snprintf(text, cap, "serialNumber,coldCellId\n");
    for (int i = 0; i < CC_BULK_MAX_ROWS; i++)
        n += (size_t)snprintf(text + n, cap - n, "S%d,1\n", i);
    err = NULL;
    assert_int_equal(cc_bulk_parse(text, n, CC_BULK_CSV, &b, &err), CC_OK);
    assert_int_equal(b->count, CC_BULK_MAX_ROWS);
    cc_bulk_free(b);
    free(text);
}

/* -- JSON --------------------------------------------------------------------------- */

static void test_bulk_json_parses_rows_with_lines(void **state)
{
    const char text[] =
        "[\n"
        "  {\"serialNumber\": \"J-1\", \"coldCellId\": 1, \"firmwareVersion\": \"1.2\"},\n"
        "  {\"serialNumber\": \"J-2\",\n"
        "   \"coldCellId\": 2, \"firmwareVersion\": null, \"extra\": \"[{,\"}\n"
        "  ,{\"coldCellId\": 3, \"serialNumber\": \"J-3\"}]";
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(parse(text, CC_BULK_JSON, &b, &err), CC_OK);
    assert_int_equal(b->count, 3);
    assert_string_equal(b->items[0].serial, "J-1");
    assert_string_equal(b->items[0].firmware, "1.2");
    assert_int_equal(b->items[0].line, 2);
    assert_int_equal(b->items[1].cold_cell_id, 2);
    assert_string_equal(b->items[1].firmware, "");
    assert_int_equal(b->items[1].line, 3);
    assert_int_equal(b->items[2].line, 5);
    cc_bulk_free(b);
}

static void test_bulk_json_reports_every_bad_row(void **state)
{
    const char text[] = "[{\"serialNumber\":\"ok\",\"coldCellId\":1},\n"
                        " {\"serialNumber\":7,\"coldCellId\":1.5},\n"
                        " \"not an object\",\n"
                        " {\"coldCellId\":\"1\",\"firmwareVersion\":3},\n"
                        " {\"serialNumber\":\"ok\",\"coldCellId\":2}]";
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(parse(text, CC_BULK_JSON, &b, &err), CC_ERR_VALIDATION);
    assert_int_equal(cJSON_GetArraySize(details(err)), 7);
    assert_detail(err, 0, "[1].serialNumber", "type", 2);
    assert_detail(err, 1, "[1].coldCellId", "invalid", 2);
    assert_detail(err, 2, "[2]", "type", 3);
    assert_detail(err, 3, "[3].serialNumber", "required", 4);
    assert_detail(err, 4, "[3].coldCellId", "invalid", 4);
    assert_detail(err, 5, "[3].firmwareVersion", "type", 4);
    assert_detail(err, 6, "[4].serialNumber", "duplicate", 5);
    cJSON_Delete(err);
}

static void test_bulk_json_shape_errors(void **state)
{
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    (void)state;
    assert_int_equal(parse("[{\"serialNumber\":", CC_BULK_JSON, &b, &err), CC_ERR_BAD_JSON);
    assert_string_equal(cc_error_code(err), "BAD_JSON");
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(parse("{\"serialNumber\":\"a\",\"coldCellId\":1}", CC_BULK_JSON, &b, &err),
                     CC_ERR_VALIDATION);
    assert_detail(err, 0, "body", "type", 0);
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(parse(" [ ] ", CC_BULK_JSON, &b, &err), CC_ERR_VALIDATION);
    assert_detail(err, 0, "body", "empty", 0);
    cJSON_Delete(err);
    err = NULL;
    /* Trailing bytes after the array are not one document. */
    assert_int_equal(parse("[{\"serialNumber\":\"a\",\"coldCellId\":1}] x", CC_BULK_JSON, &b, &err),
                     CC_ERR_BAD_JSON);
    cJSON_Delete(err);
    err = NULL;
    /* Past CC_JSON_MAX_DEPTH the input is refused before cJSON recurses on it. */
    {
        char deep[2 * (CC_JSON_MAX_DEPTH + 1) + 1];

        memset(deep, '[', CC_JSON_MAX_DEPTH + 1);
        memset(deep + CC_JSON_MAX_DEPTH + 1, ']', CC_JSON_MAX_DEPTH + 1);
        deep[sizeof deep - 1] = '\0';
        assert_int_equal(parse(deep, CC_BULK_JSON, &b, &err), CC_ERR_BAD_JSON);
        assert_string_equal(cc_error_code(err), "BAD_JSON");
        assert_detail(err, 0, "body", "too_deep", 0);
        cJSON_Delete(err);
        err = NULL;
        /* One level less is parsed and judged on its content. */
        deep[CC_JSON_MAX_DEPTH] = ' ';
        deep[CC_JSON_MAX_DEPTH + 1] = ' ';
        assert_int_equal(parse(deep, CC_BULK_JSON, &b, &err), CC_ERR_VALIDATION);
        cJSON_Delete(err);
    }
    assert_int_equal(cc_bulk_format_parse("csv"), CC_BULK_CSV);
    assert_int_equal(cc_bulk_format_parse("json"), CC_BULK_JSON);
    assert_int_equal(cc_bulk_format_parse("xml"), 0);
    assert_int_equal(cc_bulk_format_guess("/tmp/devices.json"), CC_BULK_JSON);
    assert_int_equal(cc_bulk_format_guess("devices.csv"), CC_BULK_CSV);
    assert_int_equal(cc_bulk_format_guess("devices"), CC_BULK_CSV);
}

/* -- provisioning ------------------------------------------------------------------- */

/* Customers 1 and 2, each with a cold cell (ids 1 and 2); technician 3 linked to 1. */
static const char seed[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES "
    "(1, 'c1@example.com', 'x', 'CUSTOMER', 'C1', 0),"
    "(2, 'c2@example.com', 'x', 'CUSTOMER', 'C2', 0),"
    "(3, 't@example.com', 'x', 'TECHNICIAN', 'T', 0);"
    "INSERT INTO technician_customers (technician_id, customer_id) VALUES (3, 1);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES "
    "(1, 1, 'L1', 0), (2, 2, 'L2', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at) "
    "VALUES (1, 1, 'Fridge', 2, 8, 0), (2, 2, 'Freezer', -25, -15, 0);";

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

static void count_progress(void *ctx, size_t done, size_t total)
{
    size_t *calls = ctx;

    assert_true(done <= total);
    (*calls)++;
}

static void test_bulk_provision_creates_all_with_keys(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    struct cc_bulk *b = NULL;
    cJSON *err = NULL, *res;
    size_t calls = 0;
    char sql[256];

    assert_int_equal(parse("serialNumber,coldCellId,firmwareVersion\nP-1,1,1.0\nP-2,2,\n",
                           CC_BULK_CSV, &b, &err),
                     CC_OK);
    assert_int_equal(cc_bulk_provision(st, NULL, b, count_progress, &calls, &err), CC_OK);
    assert_null(err);
    assert_int_equal(calls, 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices"), 2);
    for (size_t i = 0; i < b->count; i++) {
        char hash[CC_SHA256_HEX_LEN];

        assert_int_equal(strlen(b->items[i].key), CC_API_KEY_LEN - 1);
        assert_true(b->items[i].id > 0);
        cc_sha256_hex(b->items[i].key, strlen(b->items[i].key), hash);
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM devices WHERE id = %lld AND api_key_hash = '%s' "
                 "AND status = 'NEVER_SEEN'",
                 (long long)b->items[i].id, hash);
        assert_int_equal(query_int(db, sql), 1);
    }
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices WHERE serial_number = 'P-1' "
                                   "AND firmware_version = '1.0'"),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices WHERE serial_number = 'P-2' "
                                   "AND firmware_version IS NULL"),
                     1);
    /* The operator's CLI (no principal) writes no audit rows. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM audit_log"), 0);

    res = cc_bulk_result_json(b);
    assert_non_null(res);
    assert_int_equal(cJSON_GetArraySize(res), 2);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(res, 1), "serialNumber")->valuestring,
        "P-2");
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(res, 1), "apiKey")->valuestring,
        b->items[1].key);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(res, 1), "id")->valueint,
                     b->items[1].id);
    cJSON_Delete(res);
    cc_bulk_free(b);
}

static void test_bulk_provision_conflict_creates_nothing(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    exec_ok(db, "INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
                " status, created_at) VALUES ('TAKEN', 1, 'h', 'p', 'NEVER_SEEN', 0)");
    assert_int_equal(
        parse("serialNumber,coldCellId\nNEW-1,1\nTAKEN,1\nNEW-2,99\n", CC_BULK_CSV, &b, &err),
        CC_OK);
    assert_int_equal(cc_bulk_provision(st, NULL, b, NULL, NULL, &err), CC_ERR_NOT_FOUND);
    assert_string_equal(cc_error_code(err), "NOT_FOUND");
    assert_string_equal(cc_error_message(err), "line 4: cold cell 99 not found");
    assert_int_equal(cJSON_GetArraySize(details(err)), 2);
    assert_detail(err, 0, "[1].serialNumber", "conflict", 3);
    assert_detail(err, 1, "[2].coldCellId", "not_found", 4);
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices"), 1);
    for (size_t i = 0; i < b->count; i++)
        assert_int_equal(b->items[i].key[0], '\0');
    assert_int_equal(sqlite3_get_autocommit(db), 1); /* rolled back, not left open */
    cc_bulk_free(b);

    /* Only conflicts: 409. */
    assert_int_equal(parse("serialNumber,coldCellId\nTAKEN,1\n", CC_BULK_CSV, &b, &err), CC_OK);
    assert_int_equal(cc_bulk_provision(st, NULL, b, NULL, NULL, &err), CC_ERR_CONFLICT);
    assert_string_equal(cc_error_code(err), "CONFLICT");
    cJSON_Delete(err);
    cc_bulk_free(b);
}

static void test_bulk_provision_checks_access(void **state)
{
    struct cc_store *st = *state;
    sqlite3 *db = cc_store_db(st);
    struct cc_principal c2 = {2, CC_ROLE_CUSTOMER};
    struct cc_principal tech = {3, CC_ROLE_TECHNICIAN};
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;

    /* Customer 2 in its own cell and in customer 1's: 404, nothing created. */
    assert_int_equal(parse("[{\"serialNumber\":\"X-1\",\"coldCellId\":2},"
                           "{\"serialNumber\":\"X-2\",\"coldCellId\":1}]",
                           CC_BULK_JSON, &b, &err),
                     CC_OK);
    assert_int_equal(cc_bulk_provision(st, &c2, b, NULL, NULL, &err), CC_ERR_NOT_FOUND);
    assert_int_equal(cJSON_GetArraySize(details(err)), 1);
    assert_detail(err, 0, "[1].coldCellId", "not_found", 1);
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM audit_log"), 0);
    cc_bulk_free(b);

    /* The technician linked to customer 1 may; each device gets an audit row. */
    assert_int_equal(parse("[{\"serialNumber\":\"T-1\",\"coldCellId\":1},"
                           "{\"serialNumber\":\"T-2\",\"coldCellId\":1}]",
                           CC_BULK_JSON, &b, &err),
                     CC_OK);
    assert_int_equal(cc_bulk_provision(st, &tech, b, NULL, NULL, &err), CC_OK);
    assert_int_equal(query_int(db, "SELECT count(*) FROM devices"), 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM audit_log WHERE actor_user_id = 3 AND "
                                   "action = 'create' AND entity = 'device'"),
                     2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM audit_log WHERE detail LIKE '%apiKey%'"
                                   " OR detail LIKE '%api_key%'"),
                     0);
    cc_bulk_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulk_csv_parses_rows_with_lines),
        cmocka_unit_test(test_bulk_csv_columns_in_any_order_firmware_optional),
        cmocka_unit_test(test_bulk_csv_reports_every_bad_row),
        cmocka_unit_test(test_bulk_csv_cell_id_within_json_integers),
        cmocka_unit_test(test_bulk_csv_header_problems),
        cmocka_unit_test(test_bulk_csv_quotes_and_long_fields),
        cmocka_unit_test(test_bulk_rejects_oversized_input),
        cmocka_unit_test(test_bulk_csv_too_many_rows),
        cmocka_unit_test(test_bulk_json_parses_rows_with_lines),
        cmocka_unit_test(test_bulk_json_reports_every_bad_row),
        cmocka_unit_test(test_bulk_json_shape_errors),
        cmocka_unit_test_setup_teardown(test_bulk_provision_creates_all_with_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_provision_conflict_creates_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bulk_provision_checks_access, setup, teardown),
    };

    cc_log_init("test_bulk", CC_LOG_ERROR, 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
