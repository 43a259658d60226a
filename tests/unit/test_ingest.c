/* test_ingest.c - cc_ingest: readings and status over MQTT and HTTP, dead letters,
 * duplicates, partial vs all-or-nothing, and the order in which readings reach the
 * alert engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_alert.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_ingest.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "fixture.h"

#define T0 1764135900000LL /* 2025-11-26T05:45:00.000Z: "received" */
#define SERIAL "SN-0001"
#define TOPIC_READINGS "devices/SN-0001/readings"
#define TOPIC_STATUS "devices/SN-0001/status"
#define MAX_CALLS 64

/* This test replaces the alert engine (the linker takes these definitions and leaves
 * cc_alert.o in the archive) to record which readings reach it, in which order. The
 * ingest path calls cc_alert_apply only for a device's newest reading, so is_newest
 * records 1 for every call that reaches the engine. */
static struct {
    int64_t ts[MAX_CALLS];
    int is_newest[MAX_CALLS];
    int64_t dev_newest[MAX_CALLS]; /* dev->newest_ts as the engine saw it, -1 if none */
    int n;
    int loads; /* devices whose state was loaded */
    int fail;  /* return CC_ERR_DB when set */
} calls;

int cc_alert_states_load(struct cc_store *st, const struct cc_device *const *devs, size_t n,
                         struct cc_alert_state *out)
{
    (void)st;
    (void)devs;
    memset(out, 0, n * sizeof *out);
    calls.loads += (int)n;
    return CC_OK;
}

int cc_alert_apply(struct cc_store *st, const struct cc_device *dev, const struct cc_reading *r,
                   int64_t now_ms, struct cc_alert_state *s)
{
    (void)st;
    (void)now_ms;
    (void)s;
    if (calls.fail)
        return CC_ERR_DB;
    if (calls.n < MAX_CALLS) {
        calls.ts[calls.n] = r->ts_ms;
        calls.is_newest[calls.n] = 1;
        calls.dev_newest[calls.n] = dev->has_newest ? dev->newest_ts : -1;
        calls.n++;
    }
    return CC_OK;
}

static int64_t query_int(struct cc_store *st, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(cc_store_db(st), sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static void query_text(struct cc_store *st, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *stmt = NULL;
    const char *s;

    assert_int_equal(sqlite3_prepare_v2(cc_store_db(st), sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    s = (const char *)sqlite3_column_text(stmt, 0);
    snprintf(out, outlen, "%s", s != NULL ? s : "(null)");
    sqlite3_finalize(stmt);
}

static const char seed[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at)"
    " VALUES (1, 'c@example.com', 'x', 'CUSTOMER', 'C', 0);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'L', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at)"
    " VALUES (2, 1, 'Freezer', -25, -15, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
    " api_key_prefix, created_at) VALUES (7, '" SERIAL "', 2, 'h', 'p', 0);";

static struct fixture fx; /* cmocka runs one test at a time */

static int setup(void **state)
{
    memset(&calls, 0, sizeof calls);
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

/* One HTTP-style ingestion in its own transaction (committed unless the database
 * failed). */
static int ingest(struct cc_store *st, const char *serial, const char *payload, int mode,
                  struct cc_ingest_result *res)
{
    int rc;

    assert_int_equal(cc_store_begin(st), CC_OK);
    rc = cc_ingest_readings(st, serial, payload, strlen(payload), T0, mode, res);
    if (rc == CC_ERR_DB || rc == CC_ERR_NOMEM)
        cc_store_rollback(st);
    else
        assert_int_equal(cc_store_commit(st), CC_OK);
    return rc;
}

/* One MQTT message in its own transaction. The payload is copied without a NUL. */
static int mqtt(struct cc_store *st, const char *topic, const char *payload, size_t len,
                struct cc_ingest_result *res, char serial[CC_SERIAL_MAX + 1])
{
    char *copy = malloc(len > 0 ? len : 1);
    int rc;

    assert_non_null(copy);
    memcpy(copy, payload, len);
    assert_int_equal(cc_store_begin(st), CC_OK);
    rc = cc_ingest_mqtt(st, topic, copy, len, T0, res, serial);
    if (rc == CC_OK)
        assert_int_equal(cc_store_commit(st), CC_OK);
    else
        cc_store_rollback(st);
    free(copy);
    return rc;
}

static const char *detail_field(const cJSON *err, int i)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(err, "error");
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "details"), i);

    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "field"));
}

static void test_ingest_single_reading_device_online(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char buf[32];

    assert_int_equal(ingest(st, SERIAL, "{\"temperature\":-18.5}", CC_INGEST_ALL_OR_NOTHING, &res),
                     CC_OK);
    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.duplicates, 0);
    assert_int_equal(res.rejected, 0);
    assert_null(res.error);
    assert_true(res.has_last);
    assert_true(res.last.temperature == -18.5);
    assert_int_equal(res.last.ts_ms, T0); /* no ts: the receive time */
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings WHERE device_id = 7"
                                   " AND cold_cell_id = 2 AND ts = 1764135900000"),
                     1);
    query_text(st, "SELECT status FROM devices WHERE id = 7", buf, sizeof buf);
    assert_string_equal(buf, "ONLINE");
    assert_int_equal(query_int(st, "SELECT last_seen_at FROM devices WHERE id = 7"), T0);
    assert_int_equal(query_int(st, "SELECT newest_ts FROM devices WHERE id = 7"), T0);
    assert_int_equal(calls.n, 1);
    assert_int_equal(calls.is_newest[0], 1);
    assert_int_equal(calls.dev_newest[0], -1);
    cc_ingest_result_clear(&res);
}

static void test_ingest_duplicate_ts_stored_once(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    const char *p = "{\"temperature\":3.5,\"ts\":1764135800000}";

    assert_int_equal(ingest(st, SERIAL, p, CC_INGEST_PARTIAL, &res), CC_OK);
    assert_int_equal(res.accepted, 1);
    cc_ingest_result_clear(&res);
    assert_int_equal(ingest(st, SERIAL, p, CC_INGEST_PARTIAL, &res), CC_OK);
    assert_int_equal(res.accepted, 0);
    assert_int_equal(res.duplicates, 1);
    assert_null(res.error);
    cc_ingest_result_clear(&res);
    /* The same ts twice in one array: stored once too. */
    assert_int_equal(ingest(st, SERIAL,
                            "[{\"temperature\":1,\"ts\":1764135700000},"
                            "{\"temperature\":2,\"ts\":1764135700000}]",
                            CC_INGEST_PARTIAL, &res),
                     CC_OK);
    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.duplicates, 1);
    cc_ingest_result_clear(&res);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 2);
    /* Only inserted readings reach the alert engine. */
    assert_int_equal(calls.n, 1);
}

static void test_ingest_unknown_serial(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;

    assert_int_equal(ingest(st, "NOPE", "{\"temperature\":1}", CC_INGEST_ALL_OR_NOTHING, &res),
                     CC_ERR_NOT_FOUND);
    assert_non_null(res.error);
    assert_string_equal(cc_error_code(res.error), "NOT_FOUND");
    assert_int_equal(res.accepted, 0);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 0);
    cc_ingest_result_clear(&res);
    assert_null(res.error);
}

static const char *mixed = "[{\"temperature\":1,\"ts\":1764135000000},"
                           "{\"temperature\":\"warm\",\"ts\":1764135100000},"
                           "{\"temperature\":3,\"ts\":1764135200000}]";

static void test_ingest_partial_stores_valid_items(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;

    assert_int_equal(ingest(st, SERIAL, mixed, CC_INGEST_PARTIAL, &res), CC_OK);
    assert_int_equal(res.accepted, 2);
    assert_int_equal(res.rejected, 1);
    assert_non_null(res.error);
    assert_string_equal(cc_error_code(res.error), "VALIDATION_ERROR");
    assert_int_equal(cc_error_detail_count(res.error), 1);
    assert_string_equal(detail_field(res.error, 0), "[1].temperature");
    assert_true(res.has_last);
    assert_true(res.last.temperature == 3.0);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 2);
    assert_int_equal(query_int(st, "SELECT newest_ts FROM devices WHERE id = 7"), 1764135200000LL);
    cc_ingest_result_clear(&res);
}

static void test_ingest_all_or_nothing_stores_nothing(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char buf[32];

    assert_int_equal(ingest(st, SERIAL, mixed, CC_INGEST_ALL_OR_NOTHING, &res), CC_ERR_VALIDATION);
    assert_int_equal(res.accepted, 0);
    assert_int_equal(res.rejected, 3);
    assert_non_null(res.error);
    assert_string_equal(detail_field(res.error, 0), "[1].temperature");
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 0);
    /* A refused request is no sign of a working device. */
    query_text(st, "SELECT status FROM devices WHERE id = 7", buf, sizeof buf);
    assert_string_equal(buf, "NEVER_SEEN");
    assert_int_equal(calls.n, 0);
    cc_ingest_result_clear(&res);
}

static void test_ingest_partial_all_invalid_is_validation_error(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;

    assert_int_equal(
        ingest(st, SERIAL, "[{\"temperature\":500},{\"humidity\":1},7]", CC_INGEST_PARTIAL, &res),
        CC_ERR_VALIDATION);
    assert_int_equal(res.accepted, 0);
    assert_int_equal(res.rejected, 3);
    assert_int_equal(cc_error_detail_count(res.error), 3);
    cc_ingest_result_clear(&res);
    assert_int_equal(ingest(st, SERIAL, "{\"temperature\":null}", CC_INGEST_PARTIAL, &res),
                     CC_ERR_VALIDATION);
    assert_int_equal(res.rejected, 1);
    assert_string_equal(cc_error_message(res.error), "temperature must be a number");
    cc_ingest_result_clear(&res);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 0);
}

static void test_ingest_bad_json_and_bad_shape(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;

    assert_int_equal(ingest(st, SERIAL, "{\"temperature\":", CC_INGEST_PARTIAL, &res),
                     CC_ERR_BAD_JSON);
    assert_string_equal(cc_error_code(res.error), "BAD_JSON");
    assert_int_equal(res.rejected, 1);
    cc_ingest_result_clear(&res);
    assert_int_equal(ingest(st, SERIAL, "[]", CC_INGEST_PARTIAL, &res), CC_ERR_VALIDATION);
    assert_string_equal(cc_error_code(res.error), "VALIDATION_ERROR");
    cc_ingest_result_clear(&res);
}

static void test_ingest_out_of_order_applied_by_timestamp(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;

    /* A backfill in arrival order 3, 1, 2: the engine sees 1, 2, 3. */
    assert_int_equal(ingest(st, SERIAL,
                            "[{\"temperature\":3,\"ts\":1764135003000},"
                            "{\"temperature\":1,\"ts\":1764135001000},"
                            "{\"temperature\":2,\"ts\":1764135002000}]",
                            CC_INGEST_PARTIAL, &res),
                     CC_OK);
    assert_int_equal(res.accepted, 3);
    cc_ingest_result_clear(&res);
    assert_int_equal(calls.n, 3);
    assert_int_equal(calls.ts[0], 1764135001000LL);
    assert_int_equal(calls.ts[1], 1764135002000LL);
    assert_int_equal(calls.ts[2], 1764135003000LL);
    assert_int_equal(calls.dev_newest[0], -1);
    assert_int_equal(calls.dev_newest[1], 1764135001000LL);
    assert_int_equal(calls.dev_newest[2], 1764135002000LL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(calls.is_newest[i], 1);
    assert_int_equal(query_int(st, "SELECT newest_ts FROM devices WHERE id = 7"), 1764135003000LL);

    /* Older than the newest stored: stored, but the engine never sees it. A newer one
     * in the same message does reach it; a duplicate does not. */
    calls.n = 0;
    assert_int_equal(ingest(st, SERIAL,
                            "[{\"temperature\":9,\"ts\":1764135004000},"
                            "{\"temperature\":0,\"ts\":1764135000000},"
                            "{\"temperature\":3,\"ts\":1764135003000}]",
                            CC_INGEST_PARTIAL, &res),
                     CC_OK);
    assert_int_equal(res.accepted, 2);
    assert_int_equal(res.duplicates, 1);
    cc_ingest_result_clear(&res);
    assert_int_equal(calls.n, 1);
    assert_int_equal(calls.ts[0], 1764135004000LL);
    assert_int_equal(calls.dev_newest[0], 1764135003000LL);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 5);
    assert_int_equal(query_int(st, "SELECT newest_ts FROM devices WHERE id = 7"), 1764135004000LL);

    /* An old reading on its own changes neither newest_ts nor alerts. */
    calls.n = 0;
    assert_int_equal(
        ingest(st, SERIAL, "{\"temperature\":5,\"ts\":1764134000000}", CC_INGEST_PARTIAL, &res),
        CC_OK);
    assert_int_equal(res.accepted, 1);
    cc_ingest_result_clear(&res);
    assert_int_equal(calls.n, 0);
    assert_int_equal(query_int(st, "SELECT newest_ts FROM devices WHERE id = 7"), 1764135004000LL);
}

static void test_ingest_alert_failure_rolls_back(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;

    calls.fail = 1;
    assert_int_equal(ingest(st, SERIAL, "{\"temperature\":1}", CC_INGEST_PARTIAL, &res), CC_ERR_DB);
    assert_int_equal(res.accepted, 0);
    assert_null(res.error);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 0);
    calls.fail = 0;
}

static void test_ingest_mqtt_readings(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char serial[CC_SERIAL_MAX + 1];
    const char *p = "[{\"temperature\":-20},{\"temperature\":-19,\"ts\":1764135890000}]";

    assert_int_equal(mqtt(st, TOPIC_READINGS, p, strlen(p), &res, serial), CC_OK);
    assert_string_equal(serial, SERIAL);
    assert_int_equal(res.accepted, 2);
    assert_null(res.error);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 2);
    assert_int_equal(query_int(st, "SELECT count(*) FROM rejected_messages"), 0);
    cc_ingest_result_clear(&res);
}

static void test_ingest_mqtt_bad_topic_dead_letter(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char serial[CC_SERIAL_MAX + 1];
    char longtopic[128];
    const char *bad[] = {"devices/SN-0001/foo",
                         "devices//readings",
                         "devices/SN+1/readings",
                         "devices/SN#1/readings",
                         "devices/SN-0001/readings/x",
                         "devices/SN-0001/errors",
                         "device/SN-0001/readings",
                         "devices/SN-0001",
                         "devices/SN-0001/",
                         "/devices/SN-0001/readings",
                         "",
                         longtopic};
    const char *p = "{\"temperature\":1}";

    /* 65 characters: one over CC_SERIAL_MAX. */
    snprintf(longtopic, sizeof longtopic, "devices/%065d/readings", 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mqtt(st, bad[i], p, strlen(p), &res, serial), CC_OK);
        assert_string_equal(serial, "");
        assert_non_null(res.error);
        assert_string_equal(cc_error_code(res.error), "VALIDATION_ERROR");
        assert_string_equal(cc_error_message(res.error), "unknown topic");
        assert_int_equal(res.rejected, 1);
        cc_ingest_result_clear(&res);
    }
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 0);
    assert_int_equal(query_int(st, "SELECT count(*) FROM rejected_messages WHERE"
                                   " error_code = 'VALIDATION_ERROR'"
                                   " AND error_message = 'unknown topic'"),
                     (int64_t)(sizeof bad / sizeof bad[0]));
    assert_int_equal(query_int(st, "SELECT count(*) FROM rejected_messages WHERE"
                                   " topic = 'devices/SN+1/readings'"),
                     1);
}

static void test_ingest_mqtt_unknown_device_dead_letter(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char serial[CC_SERIAL_MAX + 1];
    char topic[128];
    const char *p = "{\"temperature\":1}";

    /* Exactly 64 characters: a well-formed topic, an unknown device. */
    snprintf(topic, sizeof topic, "devices/%064d/readings", 1);
    assert_int_equal(mqtt(st, topic, p, strlen(p), &res, serial), CC_OK);
    assert_int_equal(strlen(serial), 64);
    assert_string_equal(cc_error_code(res.error), "NOT_FOUND");
    cc_ingest_result_clear(&res);
    assert_int_equal(mqtt(st, "devices/OTHER/status", "{\"online\":true}", 15, &res, serial),
                     CC_OK);
    assert_string_equal(serial, "OTHER");
    assert_string_equal(cc_error_code(res.error), "NOT_FOUND");
    cc_ingest_result_clear(&res);
    assert_int_equal(query_int(st, "SELECT count(*) FROM rejected_messages"
                                   " WHERE error_code = 'NOT_FOUND'"),
                     2);
}

static void test_ingest_mqtt_bad_json_dead_letter(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char serial[CC_SERIAL_MAX + 1];
    char msg[64];

    assert_int_equal(mqtt(st, TOPIC_READINGS, "temperature=4", 13, &res, serial), CC_OK);
    assert_string_equal(serial, SERIAL);
    assert_string_equal(cc_error_code(res.error), "BAD_JSON");
    cc_ingest_result_clear(&res);
    query_text(st, "SELECT error_code || ': ' || error_message FROM rejected_messages", msg,
               sizeof msg);
    assert_string_equal(msg, "BAD_JSON: payload is not valid JSON");
    assert_int_equal(query_int(st, "SELECT payload = CAST('temperature=4' AS BLOB)"
                                   " AND payload_size = 13 AND received_at = 1764135900000"
                                   " FROM rejected_messages"),
                     1);
}

static void test_ingest_mqtt_partial_stores_and_dead_letters(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char serial[CC_SERIAL_MAX + 1];

    assert_int_equal(mqtt(st, TOPIC_READINGS, mixed, strlen(mixed), &res, serial), CC_OK);
    assert_int_equal(res.accepted, 2);
    assert_int_equal(res.rejected, 1);
    assert_string_equal(detail_field(res.error, 0), "[1].temperature");
    cc_ingest_result_clear(&res);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 2);
    assert_int_equal(query_int(st, "SELECT count(*) FROM rejected_messages WHERE"
                                   " error_code = 'VALIDATION_ERROR'"
                                   " AND error_message = '[1].temperature must be a number'"),
                     1);
}

static void test_ingest_mqtt_large_dead_letter_truncated(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char serial[CC_SERIAL_MAX + 1];
    size_t len = 10000;
    char *p = malloc(len);

    assert_non_null(p);
    memset(p, 'x', len);
    assert_int_equal(mqtt(st, TOPIC_READINGS, p, len, &res, serial), CC_OK);
    assert_string_equal(cc_error_code(res.error), "BAD_JSON");
    cc_ingest_result_clear(&res);
    assert_int_equal(query_int(st, "SELECT length(payload) FROM rejected_messages"),
                     CC_MAX_DEAD_PAYLOAD);
    assert_int_equal(query_int(st, "SELECT payload_size FROM rejected_messages"), 10000);
    free(p);
}

static void test_ingest_mqtt_status_sets_firmware(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char serial[CC_SERIAL_MAX + 1];
    char buf[64];
    const char *on = "{\"online\":true,\"firmwareVersion\":\"1.4.2\"}";
    const char *off = "{\"online\":false}";

    assert_int_equal(mqtt(st, TOPIC_STATUS, on, strlen(on), &res, serial), CC_OK);
    assert_string_equal(serial, SERIAL);
    assert_null(res.error);
    cc_ingest_result_clear(&res);
    query_text(st, "SELECT status || ' ' || firmware_version FROM devices WHERE id = 7", buf,
               sizeof buf);
    assert_string_equal(buf, "ONLINE 1.4.2");
    assert_int_equal(query_int(st, "SELECT last_seen_at FROM devices WHERE id = 7"), T0);

    assert_int_equal(mqtt(st, TOPIC_STATUS, off, strlen(off), &res, serial), CC_OK);
    assert_null(res.error);
    cc_ingest_result_clear(&res);
    query_text(st, "SELECT status || ' ' || firmware_version FROM devices WHERE id = 7", buf,
               sizeof buf);
    assert_string_equal(buf, "OFFLINE 1.4.2");
    assert_int_equal(query_int(st, "SELECT count(*) FROM rejected_messages"), 0);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 0);
    assert_int_equal(calls.n, 0);
}

static void test_ingest_mqtt_bad_status_dead_letter(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char serial[CC_SERIAL_MAX + 1];
    char buf[32];
    const char *p = "{\"online\":\"yes\"}";

    assert_int_equal(mqtt(st, TOPIC_STATUS, p, strlen(p), &res, serial), CC_OK);
    assert_string_equal(cc_error_code(res.error), "VALIDATION_ERROR");
    assert_string_equal(detail_field(res.error, 0), "online");
    cc_ingest_result_clear(&res);
    assert_int_equal(mqtt(st, TOPIC_STATUS, "{", 1, &res, serial), CC_OK);
    assert_string_equal(cc_error_code(res.error), "BAD_JSON");
    cc_ingest_result_clear(&res);
    assert_int_equal(query_int(st, "SELECT count(*) FROM rejected_messages"), 2);
    query_text(st, "SELECT status FROM devices WHERE id = 7", buf, sizeof buf);
    assert_string_equal(buf, "NEVER_SEEN");
}

static void test_ingest_mqtt_database_failure_returns_db(void **state)
{
    struct cc_store *st = *state;
    struct cc_ingest_result res;
    char serial[CC_SERIAL_MAX + 1];

    calls.fail = 1;
    assert_int_equal(mqtt(st, TOPIC_READINGS, "{\"temperature\":1}", 17, &res, serial), CC_ERR_DB);
    assert_null(res.error);
    assert_int_equal(res.accepted, 0);
    calls.fail = 0;
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 0);
    assert_int_equal(query_int(st, "SELECT count(*) FROM rejected_messages"), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ingest_single_reading_device_online),
        T(test_ingest_duplicate_ts_stored_once),
        T(test_ingest_unknown_serial),
        T(test_ingest_partial_stores_valid_items),
        T(test_ingest_all_or_nothing_stores_nothing),
        T(test_ingest_partial_all_invalid_is_validation_error),
        T(test_ingest_bad_json_and_bad_shape),
        T(test_ingest_out_of_order_applied_by_timestamp),
        T(test_ingest_alert_failure_rolls_back),
        T(test_ingest_mqtt_readings),
        T(test_ingest_mqtt_bad_topic_dead_letter),
        T(test_ingest_mqtt_unknown_device_dead_letter),
        T(test_ingest_mqtt_bad_json_dead_letter),
        T(test_ingest_mqtt_partial_stores_and_dead_letters),
        T(test_ingest_mqtt_large_dead_letter_truncated),
        T(test_ingest_mqtt_status_sets_firmware),
        T(test_ingest_mqtt_bad_status_dead_letter),
        T(test_ingest_mqtt_database_failure_returns_db),
    };
#undef T

    cc_log_init("test_ingest", CC_LOG_ERROR, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
