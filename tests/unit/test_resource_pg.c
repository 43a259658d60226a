/* test_resource_pg.c - the resources (cc_resource and the five descriptor files) and the
 * store's rollup span rebuild on both stores: every test runs once on SQLite (a migrated
 * temp file) and once on PostgreSQL 15 (a throwaway cluster, tools/pgtest.sh, started by
 * the PG group's setup; each test gets a fresh public schema from schema/pg/0001_init.sql),
 * with the same seed, the same calls and the same expected answers, JSON compared as text.
 * A PostgreSQL that cannot start fails the group: it is not skipped. The unit tests run
 * from the repository root. The expected answers are also what the SQLite code before
 * cc_dbi.h gave (its json_object alert and notification objects included).
 * On PostgreSQL the write cases need the api/ modules they call on cc_dbi.h too (main
 * since the convapi1 merge), the actions the engine's (see ACTIONS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_alerts_api.h"
#include "cc_coldcells.h"
#include "cc_crypto.h"
#include "cc_devices.h"
#include "cc_error.h"
#include "cc_locations.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "fixture.h"
#include "cc_resource.h"
#include "cc_rollup_math.h"
#include "cc_store.h"
#include "cc_store_rollup.h"
#include "cc_users.h"

#define PG_PORT "55415" /* this suite's socket name (tools/pgtest.sh PORT) */
#define KEY_A "ccdk_unit_test_key_of_device_a"

static char pg_dir[64];
static char pg_url[256];
static char *pg_schema; /* the schema file's text, read once by the group setup */

/* The seed, the same text for both stores. No explicit ids: a fresh database numbers rows
 * 1, 2, 3, ... in both (AUTOINCREMENT, identity). Users: 1 admin, 2 and 3 customers,
 * 4 a technician linked to customer 3. Locations 1, 2 are customer 2's, 3 customer 3's;
 * cell 1 is in location 1, cell 2 in location 3; device 1 (key KEY_A's hash, set by the
 * setup) in cell 1, device 2 in cell 2. */
static const char seed[] =
    "INSERT INTO users (email, password_hash, role, name, created_at) VALUES"
    " ('adm@x.io', 'x', 'ADMIN', 'Adm', 1764000000000),"
    " ('a@x.io', 'x', 'CUSTOMER', 'Cust A', 1764000000001),"
    " ('b@x.io', 'x', 'CUSTOMER', 'Cust B', 1764000000002),"
    " ('t@x.io', 'x', 'TECHNICIAN', 'Tech', 1764000000003);"
    "INSERT INTO technician_customers (technician_id, customer_id) VALUES (4, 3);"
    "INSERT INTO locations (customer_id, name, address, timezone, created_at) VALUES"
    " (2, 'LA1', 'Road 1', 'UTC', 1764000001000), (2, 'LA2', '', 'Europe/Paris', 1764000002000),"
    " (3, 'LB1', '', 'UTC', 1764000003000);"
    "INSERT INTO cold_cells (location_id, name, min_temp, max_temp, hysteresis, alarm_delay_s,"
    " created_at) VALUES (1, 'CA', 2.0, 8.0, 0.5, 60, 1764000004000),"
    " (3, 'CB', -25.5, -18.25, 1.0, 0, 1764000005000);"
    "INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
    " firmware_version, status, last_seen_at, created_at) VALUES"
    " ('DEV-A', 1, 'h', 'ccdk_uni', '1.2.3', 'ONLINE', 1764000100000, 1764000006000),"
    " ('DEV-B', 2, 'h', 'ccdk_b', NULL, 'NEVER_SEEN', NULL, 1764000007000);"
    "INSERT INTO alerts (cold_cell_id, device_id, type, status, value, threshold, message,"
    " first_triggered_at, last_triggered_at, trigger_count, acknowledged_at, acknowledged_by,"
    " resolved_at, resolved_by, resolution_note) VALUES"
    " (1, 1, 'HIGH_TEMP', 'ACTIVE', 9.75, 8.0, 'too warm', 1764000200000, 1764000260000, 3,"
    " NULL, NULL, NULL, NULL, NULL),"
    " (1, 1, 'LOW_TEMP', 'RESOLVED', 1.5, 2.0, 'too cold', 1764000100000, 1764000100000, 1,"
    " 1764000150000, 2, 1764000160000, 2, 'door closed'),"
    " (2, 2, 'SENSOR_ERROR', 'ACTIVE', NULL, NULL, 'no data', 1764000300000, 1764000300000, 1,"
    " NULL, NULL, NULL, NULL, NULL);"
    "INSERT INTO notifications (user_id, alert_id, kind, channel, payload, status, attempts,"
    " next_attempt_at, created_at, sent_at, read_at) VALUES"
    " (2, 1, 'ALERT', 'inbox', '{\"title\":\"Alert\",\"message\":\"too warm\",\"alertId\":1}',"
    " 'SENT', 1, 0, 1764000200001, 1764000200002, NULL),"
    " (2, NULL, 'SYSTEM', 'inbox', '{\"message\":\"hello\"}', 'PENDING', 0, 0, 1764000200003,"
    " NULL, 1764000200004),"
    " (3, 3, 'ALERT', 'inbox', '{\"title\":\"B\",\"message\":\"no data\"}', 'SENT', 1, 0,"
    " 1764000300001, NULL, NULL);";

static const struct cc_principal ADMIN = {1, CC_ROLE_ADMIN};
static const struct cc_principal CUST_A = {2, CC_ROLE_CUSTOMER};
static const struct cc_principal CUST_B = {3, CC_ROLE_CUSTOMER};
static const struct cc_principal TECH = {4, CC_ROLE_TECHNICIAN};
static const struct cc_page PAGE = {100, 0};

static int pg_group_teardown(void **state)
{
    (void)state;
    free(pg_schema);
    pg_schema = NULL;
    return fixture_pg_stop(pg_dir);
}

static int pg_group_setup(void **state)
{
    (void)state;
    pg_schema = fixture_pg_schema();
    if (pg_schema == NULL)
        return -1;
    if (fixture_pg_start("resource-pg", PG_PORT, pg_dir, sizeof pg_dir, pg_url, sizeof pg_url) !=
        0) {
        free(pg_schema);
        pg_schema = NULL;
        return -1;
    }
    return 0;
}

struct fx {
    struct cc_store *st;
    char path[64]; /* SQLite: the temp file; "" for PostgreSQL */
};

/* The seed, then device 1's key hash (a bound value: the same on both). */
static void seed_store(struct cc_store *st)
{
    static const char sql_key[] = "UPDATE devices SET api_key_hash = $1 WHERE id = 1";
    char hash[CC_SHA256_HEX_LEN];
    struct cc_stmt *s = NULL;

    assert_int_equal(cc_store_exec(st, seed), CC_OK);
    cc_sha256_hex(KEY_A, strlen(KEY_A), hash);
    assert_int_equal(cc_stmt_prepare(st, sql_key, &s), CC_OK);
    assert_int_equal(cc_stmt_bind_text(s, 1, hash), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
}

static int lite_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    int fd;

    assert_non_null(f);
    snprintf(f->path, sizeof f->path, "/tmp/cc-test-resource-pg-XXXXXX");
    fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(cc_store_open(f->path, CC_STORE_CREATE | CC_STORE_MIGRATE, &f->st), CC_OK);
    seed_store(f->st);
    *state = f;
    return 0;
}

static int pg_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    assert_non_null(f);
    assert_int_equal(cc_store_open(pg_url, 0, &f->st), CC_OK);
    assert_int_equal(cc_store_exec(f->st, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"),
                     CC_OK);
    assert_int_equal(cc_store_exec(f->st, pg_schema), CC_OK);
    seed_store(f->st);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    static const char *const sides[] = {"", "-wal", "-shm"};
    struct fx *f = *state;
    char path[80];

    cc_store_close(f->st);
    for (size_t i = 0; f->path[0] != '\0' && i < sizeof sides / sizeof sides[0]; i++) {
        snprintf(path, sizeof path, "%s%s", f->path, sides[i]);
        unlink(path);
    }
    free(f);
    return 0;
}

static struct cc_store *store(void **state)
{
    return ((struct fx *)*state)->st;
}

/* Runs a no-parameter query that returns one integer. */
static int64_t query_int(struct cc_store *st, const char *sql)
{
    struct cc_stmt *s = NULL;
    int64_t v;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    v = cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return v;
}

/* Asserts that j prints as want (unformatted), then deletes j. */
static void assert_json(cJSON *j, const char *want)
{
    char *got = cJSON_PrintUnformatted(j);

    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "got:  %s\nwant: %s\n", got, want);
    assert_string_equal(got, want);
    cJSON_free(got);
    cJSON_Delete(j);
}

/* The ids of a list answer's items, "1,2,3", and its total, as "1,2,3/3". */
static void assert_ids(cJSON *list, const char *want)
{
    char got[256];
    size_t n = 0;
    const cJSON *it;

    got[0] = '\0';
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(list, "items"))
    {
        n += (size_t)snprintf(got + n, sizeof got - n, "%s%.0f", n > 0 ? "," : "",
                              cJSON_GetObjectItem(it, "id")->valuedouble);
        assert_true(n < sizeof got);
    }
    snprintf(got + n, sizeof got - n, "/%.0f", cJSON_GetObjectItem(list, "total")->valuedouble);
    assert_string_equal(got, want);
    cJSON_Delete(list);
}

static cJSON *list_of(struct cc_store *st, const struct cc_resource *res,
                      const struct cc_principal *p, const char *qs, const struct cc_page *pg)
{
    struct cc_resource_filter f;
    cJSON *out = NULL, *err = NULL;

    assert_int_equal(cc_resource_filter_parse(res, qs, &f, &err), CC_OK);
    assert_int_equal(cc_resource_list(st, res, p, &f, pg, &out), CC_OK);
    return out;
}

/* Every list, whole objects: the row -> JSON columns, the dialects' own SQL (users'
 * customerIds), times, nulls and numbers. */
static void test_resource_pg_list_objects(void **state)
{
    struct cc_store *st = store(state);

    assert_json(list_of(st, &cc_users_resource, &ADMIN, NULL, &PAGE),
                "{\"items\":[{\"id\":1,\"email\":\"adm@x.io\",\"role\":\"ADMIN\",\"name\":\"Adm\","
                "\"disabled\":false,\"createdAt\":\"2025-11-24T16:00:00.000Z\"},"
                "{\"id\":2,\"email\":\"a@x.io\",\"role\":\"CUSTOMER\",\"name\":\"Cust A\","
                "\"disabled\":false,\"createdAt\":\"2025-11-24T16:00:00.001Z\"},"
                "{\"id\":3,\"email\":\"b@x.io\",\"role\":\"CUSTOMER\",\"name\":\"Cust B\","
                "\"disabled\":false,\"createdAt\":\"2025-11-24T16:00:00.002Z\"},"
                "{\"id\":4,\"email\":\"t@x.io\",\"role\":\"TECHNICIAN\",\"name\":\"Tech\","
                "\"disabled\":false,\"createdAt\":\"2025-11-24T16:00:00.003Z\","
                "\"customerIds\":[3]}],\"total\":4}");
    assert_json(list_of(st, &cc_locations_resource, &CUST_A, NULL, &PAGE),
                "{\"items\":[{\"id\":1,\"customerId\":2,\"name\":\"LA1\",\"address\":\"Road 1\","
                "\"timezone\":\"UTC\",\"createdAt\":\"2025-11-24T16:00:01.000Z\"},"
                "{\"id\":2,\"customerId\":2,\"name\":\"LA2\",\"address\":\"\","
                "\"timezone\":\"Europe/Paris\",\"createdAt\":\"2025-11-24T16:00:02.000Z\"}],"
                "\"total\":2}");
    assert_json(list_of(st, &cc_coldcells_resource, &ADMIN, NULL, &PAGE),
                "{\"items\":[{\"id\":1,\"locationId\":1,\"name\":\"CA\",\"minTemp\":2,"
                "\"maxTemp\":8,\"hysteresis\":0.5,\"alarmDelayS\":60,"
                "\"createdAt\":\"2025-11-24T16:00:04.000Z\"},{\"id\":2,\"locationId\":3,"
                "\"name\":\"CB\",\"minTemp\":-25.5,\"maxTemp\":-18.25,\"hysteresis\":1,"
                "\"alarmDelayS\":0,\"createdAt\":\"2025-11-24T16:00:05.000Z\"}],\"total\":2}");
    assert_json(list_of(st, &cc_devices_resource, &ADMIN, NULL, &PAGE),
                "{\"items\":[{\"id\":1,\"serialNumber\":\"DEV-A\",\"coldCellId\":1,"
                "\"firmwareVersion\":\"1.2.3\",\"status\":\"ONLINE\","
                "\"lastSeenAt\":\"2025-11-24T16:01:40.000Z\",\"apiKeyPrefix\":\"ccdk_uni\","
                "\"createdAt\":\"2025-11-24T16:00:06.000Z\"},{\"id\":2,\"serialNumber\":\"DEV-B\","
                "\"coldCellId\":2,\"firmwareVersion\":null,\"status\":\"NEVER_SEEN\","
                "\"lastSeenAt\":null,\"apiKeyPrefix\":\"ccdk_b\","
                "\"createdAt\":\"2025-11-24T16:00:07.000Z\"}],\"total\":2}");
    assert_json(list_of(st, &cc_alerts_resource, &ADMIN, "status=RESOLVED", &PAGE),
                "{\"items\":[{\"id\":2,\"coldCellId\":1,\"deviceId\":1,\"type\":\"LOW_TEMP\","
                "\"status\":\"RESOLVED\",\"value\":1.5,\"threshold\":2,\"message\":\"too cold\","
                "\"firstTriggeredAt\":\"2025-11-24T16:01:40.000Z\","
                "\"lastTriggeredAt\":\"2025-11-24T16:01:40.000Z\",\"triggerCount\":1,"
                "\"acknowledgedAt\":\"2025-11-24T16:02:30.000Z\",\"acknowledgedBy\":2,"
                "\"escalatedAt\":null,\"resolvedAt\":\"2025-11-24T16:02:40.000Z\","
                "\"resolvedBy\":2,\"resolutionNote\":\"door closed\"}],\"total\":1}");
    assert_json(list_of(st, &cc_alerts_resource, &CUST_B, NULL, &PAGE),
                "{\"items\":[{\"id\":3,\"coldCellId\":2,\"deviceId\":2,\"type\":\"SENSOR_ERROR\","
                "\"status\":\"ACTIVE\",\"value\":null,\"threshold\":null,\"message\":\"no data\","
                "\"firstTriggeredAt\":\"2025-11-24T16:05:00.000Z\","
                "\"lastTriggeredAt\":\"2025-11-24T16:05:00.000Z\",\"triggerCount\":1,"
                "\"acknowledgedAt\":null,\"acknowledgedBy\":null,\"escalatedAt\":null,"
                "\"resolvedAt\":null,\"resolvedBy\":null,\"resolutionNote\":null}],\"total\":1}");
    assert_json(list_of(st, &cc_notifications_resource, &CUST_A, NULL, &PAGE),
                "{\"items\":[{\"id\":2,\"userId\":2,\"kind\":\"SYSTEM\",\"alertId\":null,"
                "\"title\":null,\"message\":\"hello\",\"payload\":{\"message\":\"hello\"},"
                "\"status\":\"PENDING\",\"createdAt\":\"2025-11-24T16:03:20.003Z\","
                "\"sentAt\":null,\"readAt\":\"2025-11-24T16:03:20.004Z\"},{\"id\":1,"
                "\"userId\":2,\"kind\":\"ALERT\",\"alertId\":1,\"title\":\"Alert\","
                "\"message\":\"too warm\",\"payload\":{\"title\":\"Alert\","
                "\"message\":\"too warm\",\"alertId\":1},\"status\":\"SENT\","
                "\"createdAt\":\"2025-11-24T16:03:20.001Z\","
                "\"sentAt\":\"2025-11-24T16:03:20.002Z\",\"readAt\":null}],\"total\":2}");
}

/* What each role sees, the filters and the paging window. */
static void test_resource_pg_list_access_filters_paging(void **state)
{
    struct cc_store *st = store(state);
    const struct cc_page two = {2, 1};

    /* Users: the admin all, anyone else themselves. */
    assert_ids(list_of(st, &cc_users_resource, &CUST_A, NULL, &PAGE), "2/1");
    assert_ids(list_of(st, &cc_users_resource, &TECH, NULL, &PAGE), "4/1");
    /* Locations: the admin all, a customer theirs, a technician their customers'. */
    assert_ids(list_of(st, &cc_locations_resource, &ADMIN, NULL, &PAGE), "1,2,3/3");
    assert_ids(list_of(st, &cc_locations_resource, &CUST_B, NULL, &PAGE), "3/1");
    assert_ids(list_of(st, &cc_locations_resource, &TECH, NULL, &PAGE), "3/1");
    assert_ids(list_of(st, &cc_locations_resource, &ADMIN, "customerId=2", &PAGE), "1,2/2");
    assert_ids(list_of(st, &cc_locations_resource, &TECH, "customerId=2", &PAGE), "/0");
    /* Paging: the window moves, the total does not. */
    assert_ids(list_of(st, &cc_locations_resource, &ADMIN, NULL, &two), "2,3/3");
    assert_ids(list_of(st, &cc_users_resource, &ADMIN, NULL, &two), "2,3/4");
    /* Cells and devices through their parents. */
    assert_ids(list_of(st, &cc_coldcells_resource, &CUST_A, NULL, &PAGE), "1/1");
    assert_ids(list_of(st, &cc_coldcells_resource, &TECH, NULL, &PAGE), "2/1");
    assert_ids(list_of(st, &cc_coldcells_resource, &ADMIN, "locationId=3", &PAGE), "2/1");
    assert_ids(list_of(st, &cc_devices_resource, &CUST_A, NULL, &PAGE), "1/1");
    assert_ids(list_of(st, &cc_devices_resource, &TECH, NULL, &PAGE), "2/1");
    assert_ids(list_of(st, &cc_devices_resource, &ADMIN, "coldCellId=1", &PAGE), "1/1");
    /* Alerts: newest first; text and id filters. */
    assert_ids(list_of(st, &cc_alerts_resource, &ADMIN, NULL, &PAGE), "3,1,2/3");
    assert_ids(list_of(st, &cc_alerts_resource, &CUST_A, NULL, &PAGE), "1,2/2");
    assert_ids(list_of(st, &cc_alerts_resource, &TECH, NULL, &PAGE), "3/1");
    assert_ids(list_of(st, &cc_alerts_resource, &ADMIN, "status=ACTIVE", &PAGE), "3,1/2");
    assert_ids(list_of(st, &cc_alerts_resource, &ADMIN, "type=HIGH_TEMP&status=ACTIVE", &PAGE),
               "1/1");
    assert_ids(list_of(st, &cc_alerts_resource, &ADMIN, "coldCellId=2", &PAGE), "3/1");
    assert_ids(list_of(st, &cc_alerts_resource, &ADMIN, NULL, &two), "1,2/3");
    /* Notifications: the recipient's alone, whatever the role. */
    assert_ids(list_of(st, &cc_notifications_resource, &ADMIN, NULL, &PAGE), "/0");
    assert_ids(list_of(st, &cc_notifications_resource, &CUST_B, NULL, &PAGE), "3/1");
}

/* The reads beside the verbs: a token's principal, a device key. */
static void test_resource_pg_principal_and_device_key(void **state)
{
    struct cc_store *st = store(state);
    struct cc_principal p = {0, 0};

    assert_int_equal(cc_users_principal(st, 4, &p), CC_OK);
    assert_int_equal(p.user_id, 4);
    assert_int_equal(p.role, CC_ROLE_TECHNICIAN);
    assert_int_equal(cc_users_principal(st, 99, &p), CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_users_token_principal(st, 2, 1764000000, 0, &p), CC_OK);
    assert_int_equal(cc_users_token_principal(st, 2, 1764000000, 1, &p), CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_users_token_principal(st, 2, 1763999999, 0, &p), CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_store_exec(st, "UPDATE users SET disabled = 1 WHERE id = 3"), CC_OK);
    assert_int_equal(cc_users_principal(st, 3, &p), CC_ERR_UNAUTHORIZED);

    assert_int_equal(cc_devices_authenticate(st, "DEV-A", KEY_A), CC_OK);
    assert_int_equal(cc_devices_authenticate(st, "DEV-A", KEY_A "x"), CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_devices_authenticate(st, "DEV-B", KEY_A), CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_devices_authenticate(st, "NOPE", KEY_A), CC_ERR_UNAUTHORIZED);
}

/* The readings of the rollup test: cell 1, devices 1 and 3 (a second device of the cell,
 * added by the test), in two half-hours; two share a timestamp. */
static const struct {
    int64_t device, ts;
    double t;
} span_rows[] = {
    {1, 1764000000000, 4.125}, {3, 1764000000000, 5.1},   {1, 1764000060000, 3.3},
    {1, 1764000400000, 7.77},  {3, 1764000500000, -1.05}, {1, 1764001900000, 6.0},
    {3, 1764001950000, 2.2},
};

/* One expected bucket: the terms of cc_rollup_math over the rows of device mask (bit 1:
 * device 1, bit 3: device 3) whose ts lies in [b, b + unit). */
struct bucket {
    double min, max;
    int64_t count, sum_q, hi, lo, first, last;
};

static int expect_bucket(int mask, int64_t b, int64_t unit, struct bucket *out)
{
    unsigned __int128 m = 0;

    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof span_rows / sizeof span_rows[0]; i++) {
        uint64_t hi, lo;

        if (!(mask & (1 << span_rows[i].device)) || span_rows[i].ts < b ||
            span_rows[i].ts >= b + unit)
            continue;
        if (out->count == 0 || span_rows[i].t < out->min)
            out->min = span_rows[i].t;
        if (out->count == 0 || span_rows[i].t > out->max)
            out->max = span_rows[i].t;
        if (out->count == 0 || span_rows[i].ts < out->first)
            out->first = span_rows[i].ts;
        if (out->count == 0 || span_rows[i].ts > out->last)
            out->last = span_rows[i].ts;
        out->count++;
        out->sum_q += cc_query_temp_q(span_rows[i].t);
        cc_query_mkt_q(span_rows[i].t, &hi, &lo);
        m += ((unsigned __int128)hi << CC_QUERY_MKT_LIMB_BITS) + lo;
    }
    out->hi = (int64_t)(m >> CC_QUERY_MKT_LIMB_BITS);
    out->lo = (int64_t)(m & ((((unsigned __int128)1) << CC_QUERY_MKT_LIMB_BITS) - 1));
    return out->count > 0;
}

/* Asserts that table (readings_5m or readings_30m) holds for cell 1 exactly the buckets
 * of unit that the rows of mask give. */
static void assert_rollups(struct cc_store *st, const char *sql, int64_t unit, int mask)
{
    struct cc_stmt *s = NULL;
    int64_t b = 1764000000000 - 1764000000000 % CC_ROLLUP_COARSE_MS;
    int rows = 0, want = 0;
    int rc;

    for (int64_t x = b; x < b + 3 * CC_ROLLUP_COARSE_MS; x += unit) {
        struct bucket e;

        want += expect_bucket(mask, x, unit, &e);
    }
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    while ((rc = cc_stmt_step(s)) == CC_ROW) {
        struct bucket e;

        assert_true(expect_bucket(mask, cc_stmt_column_int64(s, 0), unit, &e));
        assert_true(cc_stmt_column_double(s, 1) == e.min);
        assert_true(cc_stmt_column_double(s, 2) == e.max);
        assert_int_equal(cc_stmt_column_int64(s, 3), e.count);
        assert_int_equal(cc_stmt_column_int64(s, 4), e.sum_q);
        assert_int_equal(cc_stmt_column_int64(s, 5), e.hi);
        assert_int_equal(cc_stmt_column_int64(s, 6), e.lo);
        assert_int_equal(cc_stmt_column_int64(s, 7), e.first);
        assert_int_equal(cc_stmt_column_int64(s, 8), e.last);
        rows++;
    }
    assert_int_equal(rc, CC_OK);
    cc_stmt_release(s);
    assert_int_equal(rows, want);
}

static const char sql_5m[] = "SELECT bucket_ts, min_temp, max_temp, count, sum_q, mkt_hi, mkt_lo,"
                             " first_ts, last_ts FROM readings_5m WHERE cold_cell_id = 1"
                             " ORDER BY bucket_ts";
static const char sql_30m[] = "SELECT bucket_ts, min_temp, max_temp, count, sum_q, mkt_hi,"
                              " mkt_lo, first_ts, last_ts FROM readings_30m"
                              " WHERE cold_cell_id = 1 ORDER BY bucket_ts";

/* cc_store_rollup_rebuild_span on either store: the rows are cc_rollup_math's terms,
 * exactly, before and after one device's readings go. */
static void test_resource_pg_rollup_span_exact(void **state)
{
    static const char sql_reading[] = "INSERT INTO readings (device_id, cold_cell_id, ts,"
                                      " temperature, received_at) VALUES ($1, 1, $2, $3, $2)";
    struct cc_store *st = store(state);

    assert_int_equal(cc_store_exec(st, "INSERT INTO devices (serial_number, cold_cell_id,"
                                       " api_key_hash, api_key_prefix, created_at)"
                                       " VALUES ('DEV-C', 1, 'h', 'p', 0)"),
                     CC_OK);
    for (size_t i = 0; i < sizeof span_rows / sizeof span_rows[0]; i++) {
        struct cc_stmt *s = NULL;

        assert_int_equal(cc_stmt_prepare(st, sql_reading, &s), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 1, span_rows[i].device), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 2, span_rows[i].ts), CC_OK);
        assert_int_equal(cc_stmt_bind_double(s, 3, span_rows[i].t), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_OK);
        cc_stmt_release(s);
    }
    /* A stale row inside the span goes; none outside it is touched. */
    assert_int_equal(cc_store_exec(st, "INSERT INTO readings_30m (cold_cell_id, bucket_ts,"
                                       " min_temp, max_temp, count, sum_q, mkt_hi, mkt_lo,"
                                       " first_ts, last_ts) VALUES (1, 1764003600000, 0, 0, 9,"
                                       " 0, 0, 0, 0, 0), (2, 1763998200000, 0, 0, 9, 0, 0, 0, 0,"
                                       " 0)"),
                     CC_OK);
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_store_rollup_rebuild_span(st, 1, 1764000000000, 1764003600000), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_rollups(st, sql_5m, CC_ROLLUP_BUCKET_MS, (1 << 1) | (1 << 3));
    assert_rollups(st, sql_30m, CC_ROLLUP_COARSE_MS, (1 << 1) | (1 << 3));
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings_30m WHERE cold_cell_id = 2"), 1);

    /* Device 3's readings go: the span they covered is recomputed from device 1's. */
    assert_int_equal(cc_store_exec(st, "DELETE FROM readings WHERE device_id = 3"), CC_OK);
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_store_rollup_rebuild_span(st, 1, 1764000000000, 1764001950000), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_rollups(st, sql_5m, CC_ROLLUP_BUCKET_MS, 1 << 1);
    assert_rollups(st, sql_30m, CC_ROLLUP_COARSE_MS, 1 << 1);
    assert_int_equal(cc_store_rollup_rebuild_span(st, 0, 0, 1), CC_ERR_VALIDATION);
    assert_int_equal(cc_store_rollup_rebuild_span(st, 1, 2, 1), CC_ERR_VALIDATION);
}

/* A write's answer without what the clock or the key generator chose (createdAt,
 * apiKey), printed. */
static void assert_written(cJSON *j, const char *want)
{
    assert_non_null(j);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "createdAt")));
    cJSON_DeleteItemFromObject(j, "createdAt");
    cJSON_DeleteItemFromObject(j, "apiKey");
    assert_json(j, want);
}

static cJSON *body_of(const char *text)
{
    cJSON *b = cJSON_Parse(text);

    assert_non_null(b);
    return b;
}

/* Runs create (id 0) or update (id > 0) of res with body text; the code, and *out. */
static int write_of(struct cc_store *st, const struct cc_resource *res,
                    const struct cc_principal *p, int64_t id, const char *text, cJSON **out)
{
    cJSON *b = body_of(text), *err = NULL;
    int rc = id == 0 ? cc_resource_create(st, res, p, b, out, &err)
                     : cc_resource_update(st, res, p, id, b, out, &err);

    cJSON_Delete(err);
    cJSON_Delete(b);
    return rc;
}

/* A conflicting write: 409 with the descriptor's message, and the store goes on (on
 * PostgreSQL the failed statement aborted the transaction: it was rolled back). */
static void assert_conflict(struct cc_store *st, const struct cc_resource *res, int64_t id,
                            const char *text, const char *message)
{
    cJSON *b = body_of(text), *err = NULL, *out = NULL;
    int rc = id == 0 ? cc_resource_create(st, res, &ADMIN, b, &out, &err)
                     : cc_resource_update(st, res, &ADMIN, id, b, &out, &err);

    assert_int_equal(rc, CC_ERR_CONFLICT);
    assert_null(out);
    assert_non_null(err);
    assert_string_equal(cc_error_message(err), message);
    cJSON_Delete(err);
    cJSON_Delete(b);
    assert_int_equal(cc_store_in_transaction(st), 0);
    /* A statement runs: nothing is left aborted. */
    assert_true(query_int(st, "SELECT count(*) FROM users") >= 4);
}

/* The audit log as "action entity id" lines, oldest first. */
static void assert_audit(struct cc_store *st, const char *want)
{
    static const char sql[] = "SELECT action, entity, entity_id, actor_user_id FROM audit_log"
                              " ORDER BY id";
    struct cc_stmt *s = NULL;
    char got[1024];
    size_t n = 0;
    int rc;

    got[0] = '\0';
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    while ((rc = cc_stmt_step(s)) == CC_ROW) {
        n += (size_t)snprintf(got + n, sizeof got - n, "%s %s %lld by %lld;",
                              cc_stmt_column_text(s, 0), cc_stmt_column_text(s, 1),
                              (long long)cc_stmt_column_int64(s, 2),
                              (long long)cc_stmt_column_int64(s, 3));
        assert_true(n < sizeof got);
    }
    assert_int_equal(rc, CC_OK);
    cc_stmt_release(s);
    assert_string_equal(got, want);
}

/* Create, get, update and delete of each resource, as each role may; duplicates answer
 * 409 (e-mail case-insensitively), and every write left its audit row. */
static void test_resource_pg_crud_each_resource(void **state)
{
    struct cc_store *st = store(state);
    cJSON *out = NULL, *err = NULL;

    /* Locations: an admin creates for customer 3, whose technician may see and change it. */
    assert_int_equal(write_of(st, &cc_locations_resource, &ADMIN, 0,
                              "{\"name\":\"LN\",\"customerId\":3,\"address\":\"Quay 2\"}", &out),
                     CC_OK);
    assert_written(out, "{\"id\":4,\"customerId\":3,\"name\":\"LN\",\"address\":\"Quay 2\","
                        "\"timezone\":\"UTC\"}");
    assert_int_equal(cc_resource_get(st, &cc_locations_resource, &CUST_A, 4, &out),
                     CC_ERR_NOT_FOUND);
    assert_int_equal(cc_resource_get(st, &cc_locations_resource, &TECH, 4, &out), CC_OK);
    assert_written(out, "{\"id\":4,\"customerId\":3,\"name\":\"LN\",\"address\":\"Quay 2\","
                        "\"timezone\":\"UTC\"}");
    assert_int_equal(write_of(st, &cc_locations_resource, &CUST_A, 4, "{\"name\":\"X\"}", &out),
                     CC_ERR_NOT_FOUND);
    assert_int_equal(write_of(st, &cc_locations_resource, &CUST_B, 4,
                              "{\"name\":\"LN2\",\"timezone\":\"Europe/Paris\"}", &out),
                     CC_OK);
    assert_written(out, "{\"id\":4,\"customerId\":3,\"name\":\"LN2\",\"address\":\"Quay 2\","
                        "\"timezone\":\"Europe/Paris\"}");

    /* Cold cells: the technician creates one there; a threshold past the stored other one
     * is refused. */
    assert_int_equal(write_of(st, &cc_coldcells_resource, &TECH, 0,
                              "{\"locationId\":4,\"name\":\"CN\",\"minTemp\":1.5,"
                              "\"maxTemp\":7.25}",
                              &out),
                     CC_OK);
    assert_written(out, "{\"id\":3,\"locationId\":4,\"name\":\"CN\",\"minTemp\":1.5,"
                        "\"maxTemp\":7.25,\"hysteresis\":0.5,\"alarmDelayS\":0}");
    assert_int_equal(write_of(st, &cc_coldcells_resource, &TECH, 3, "{\"minTemp\":8}", &out),
                     CC_ERR_VALIDATION);
    assert_int_equal(write_of(st, &cc_coldcells_resource, &CUST_A, 0,
                              "{\"locationId\":4,\"name\":\"CX\",\"minTemp\":1,\"maxTemp\":2}",
                              &out),
                     CC_ERR_NOT_FOUND);
    assert_int_equal(write_of(st, &cc_coldcells_resource, &TECH, 3,
                              "{\"maxTemp\":9.5,\"alarmDelayS\":120}", &out),
                     CC_OK);
    assert_written(out, "{\"id\":3,\"locationId\":4,\"name\":\"CN\",\"minTemp\":1.5,"
                        "\"maxTemp\":9.5,\"hysteresis\":0.5,\"alarmDelayS\":120}");

    /* Devices: a new key in the answer; a taken serial is 409 on create and update. */
    assert_int_equal(write_of(st, &cc_devices_resource, &ADMIN, 0,
                              "{\"coldCellId\":3,\"serialNumber\":\"DEV-N\","
                              "\"firmwareVersion\":\"9.0\"}",
                              &out),
                     CC_OK);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(out, "apiKey")));
    cJSON_DeleteItemFromObject(out, "apiKeyPrefix");
    assert_written(out, "{\"id\":3,\"serialNumber\":\"DEV-N\",\"coldCellId\":3,"
                        "\"firmwareVersion\":\"9.0\",\"status\":\"NEVER_SEEN\","
                        "\"lastSeenAt\":null}");
    assert_conflict(st, &cc_devices_resource, 0, "{\"coldCellId\":3,\"serialNumber\":\"DEV-A\"}",
                    "a device with this serialNumber already exists");
    assert_conflict(st, &cc_devices_resource, 3, "{\"serialNumber\":\"DEV-B\"}",
                    "a device with this serialNumber already exists");
    assert_int_equal(
        write_of(st, &cc_devices_resource, &CUST_B, 3, "{\"firmwareVersion\":null}", &out), CC_OK);
    cJSON_DeleteItemFromObject(out, "apiKeyPrefix");
    assert_written(out, "{\"id\":3,\"serialNumber\":\"DEV-N\",\"coldCellId\":3,"
                        "\"firmwareVersion\":null,\"status\":\"NEVER_SEEN\","
                        "\"lastSeenAt\":null}");

    /* Users: admins only; the e-mail is unique whatever its case. */
    assert_int_equal(write_of(st, &cc_users_resource, &CUST_A, 0,
                              "{\"email\":\"n@x.io\",\"password\":\"password-123\","
                              "\"role\":\"CUSTOMER\",\"name\":\"N\"}",
                              &out),
                     CC_ERR_FORBIDDEN);
    assert_int_equal(write_of(st, &cc_users_resource, &ADMIN, 0,
                              "{\"email\":\"n@x.io\",\"password\":\"password-123\","
                              "\"role\":\"TECHNICIAN\",\"name\":\"N\"}",
                              &out),
                     CC_OK);
    assert_written(out, "{\"id\":5,\"email\":\"n@x.io\",\"role\":\"TECHNICIAN\",\"name\":\"N\","
                        "\"disabled\":false,\"customerIds\":[]}");
    assert_conflict(st, &cc_users_resource, 0,
                    "{\"email\":\"N@X.IO\",\"password\":\"password-123\",\"role\":\"CUSTOMER\","
                    "\"name\":\"M\"}",
                    "a user with this email already exists");
    assert_conflict(st, &cc_users_resource, 5, "{\"email\":\"A@x.io\"}",
                    "a user with this email already exists");
    assert_int_equal(cc_users_link(st, &ADMIN, 5, 3, 1, &err), CC_OK);
    assert_int_equal(cc_users_link(st, &ADMIN, 5, 2, 1, &err), CC_OK);
    assert_int_equal(cc_users_link(st, &ADMIN, 5, 2, 1, &err), CC_OK); /* twice is fine */
    assert_null(err);
    assert_int_equal(
        write_of(st, &cc_users_resource, &ADMIN, 5, "{\"name\":\"N2\",\"disabled\":true}", &out),
        CC_OK);
    assert_written(out, "{\"id\":5,\"email\":\"n@x.io\",\"role\":\"TECHNICIAN\",\"name\":\"N2\","
                        "\"disabled\":true,\"customerIds\":[2,3]}");
    assert_int_equal(cc_resource_delete(st, &cc_users_resource, &ADMIN, 1, &err), CC_ERR_CONFLICT);
    cJSON_Delete(err);
    err = NULL;

    /* Deletes, children first; then the rows are gone. */
    assert_int_equal(cc_resource_delete(st, &cc_devices_resource, &TECH, 3, &err), CC_OK);
    assert_int_equal(cc_resource_delete(st, &cc_coldcells_resource, &CUST_B, 3, &err), CC_OK);
    assert_int_equal(cc_resource_delete(st, &cc_locations_resource, &CUST_A, 4, &err),
                     CC_ERR_NOT_FOUND);
    assert_int_equal(cc_resource_delete(st, &cc_locations_resource, &ADMIN, 4, &err), CC_OK);
    assert_int_equal(cc_resource_delete(st, &cc_users_resource, &ADMIN, 5, &err), CC_OK);
    assert_null(err);
    assert_int_equal(cc_resource_get(st, &cc_locations_resource, &ADMIN, 4, &out),
                     CC_ERR_NOT_FOUND);
    assert_int_equal(cc_resource_get(st, &cc_users_resource, &ADMIN, 5, &out), CC_ERR_NOT_FOUND);
    assert_int_equal(query_int(st, "SELECT count(*) FROM technician_customers"), 1);

    assert_audit(st, "create location 4 by 1;update location 4 by 3;create cold_cell 3 by 4;"
                     "update cold_cell 3 by 4;create device 3 by 1;update device 3 by 3;"
                     "create user 5 by 1;link technician_customer 5 by 1;"
                     "link technician_customer 5 by 1;update user 5 by 1;delete device 3 by 4;"
                     "delete cold_cell 3 by 3;delete location 4 by 1;delete user 5 by 1;");
}

/* A device's delete forgets its readings in the cell's rollups (its rebuild hook). */
static void test_resource_pg_device_delete_rebuilds_rollups(void **state)
{
    struct cc_store *st = store(state);
    cJSON *err = NULL;

    assert_int_equal(cc_store_exec(st, "INSERT INTO readings (device_id, cold_cell_id, ts,"
                                       " temperature, received_at) VALUES"
                                       " (1, 1, 1764000000000, 4.5, 0),"
                                       " (1, 1, 1764000400000, 5.5, 0)"),
                     CC_OK);
    assert_int_equal(cc_store_exec(st, "INSERT INTO readings_30m (cold_cell_id, bucket_ts,"
                                       " min_temp, max_temp, count, sum_q, mkt_hi, mkt_lo,"
                                       " first_ts, last_ts) VALUES (1, 1764000000000, 4.5, 5.5,"
                                       " 2, 0, 0, 0, 1764000000000, 1764000400000)"),
                     CC_OK);
    assert_int_equal(cc_resource_delete(st, &cc_devices_resource, &CUST_A, 1, &err), CC_OK);
    assert_null(err);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings"), 0);
    assert_int_equal(query_int(st, "SELECT count(*) FROM readings_30m"), 0);
}

/* The actions: acknowledge and resolve an alert, read a notification. */
static void test_resource_pg_actions(void **state)
{
    struct cc_store *st = store(state);
    cJSON *out = NULL, *err = NULL, *note = body_of("{\"note\":\"fixed\"}");

    assert_int_equal(cc_alerts_acknowledge(st, &TECH, 1, &out, &err), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_alerts_acknowledge(st, &CUST_A, 1, &out, &err), CC_OK);
    assert_int_equal(cJSON_GetObjectItem(out, "acknowledgedBy")->valueint, 2);
    cJSON_Delete(out);
    assert_int_equal(cc_alerts_resolve(st, &ADMIN, 1, note, &out, &err), CC_OK);
    assert_string_equal(cJSON_GetObjectItem(out, "status")->valuestring, "RESOLVED");
    assert_string_equal(cJSON_GetObjectItem(out, "resolutionNote")->valuestring, "fixed");
    assert_int_equal(cJSON_GetObjectItem(out, "resolvedBy")->valueint, 1);
    cJSON_Delete(out);
    assert_int_equal(cc_alerts_resolve(st, &ADMIN, 1, note, &out, &err), CC_ERR_CONFLICT);
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(cc_alerts_acknowledge(st, &ADMIN, 1, &out, &err), CC_ERR_CONFLICT);
    cJSON_Delete(err);
    cJSON_Delete(note);

    assert_int_equal(cc_notifications_read(st, &CUST_B, 1, &out), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_notifications_read(st, &CUST_A, 1, &out), CC_OK);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(out, "readAt")));
    cJSON_Delete(out);
    assert_audit(st, "acknowledge alert 1 by 2;resolve alert 1 by 1;read notification 1 by 2;");
}

/* The reads and the store's rebuild: their PostgreSQL side is this branch's alone. */
#define READS(setup)                                                                               \
    cmocka_unit_test_setup_teardown(test_resource_pg_list_objects, setup, fx_teardown),            \
        cmocka_unit_test_setup_teardown(test_resource_pg_list_access_filters_paging, setup,        \
                                        fx_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_resource_pg_principal_and_device_key, setup,          \
                                        fx_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_resource_pg_rollup_span_exact, setup, fx_teardown)
/* The writes: on PostgreSQL they also need cc_access_check, cc_audit_append and
 * cc_provision_* on cc_dbi.h (api/, on main since the convapi1 merge). */
#define WRITES(setup)                                                                              \
    cmocka_unit_test_setup_teardown(test_resource_pg_crud_each_resource, setup, fx_teardown),      \
        cmocka_unit_test_setup_teardown(test_resource_pg_device_delete_rebuilds_rollups, setup,    \
                                        fx_teardown)
/* The actions (acknowledge, resolve, mark read): cc_alert_resolve and cc_notify_* too. */
#define ACTIONS(setup) cmocka_unit_test_setup_teardown(test_resource_pg_actions, setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest lite[] = {READS(lite_setup), WRITES(lite_setup), ACTIONS(lite_setup)};
    const struct CMUnitTest pg[] = {READS(pg_setup), WRITES(pg_setup), ACTIONS(pg_setup)};
    int failed;

    cc_log_init("test_resource_pg", CC_LOG_ERROR, 1);
    failed = cmocka_run_group_tests_name("resource_sqlite", lite, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("resource_postgresql", pg, pg_group_setup, pg_group_teardown);
    return failed;
}
