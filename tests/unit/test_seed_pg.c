/* test_seed_pg.c - the seed on PostgreSQL leaves planner statistics behind, so that the
 * list statements get generic plans instead of being planned at every execution. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_access.h"
#include "cc_dbi.h"
#include "cc_devices.h"
#include "cc_log.h"
#include "cc_page.h"
#include "cc_rc.h"
#include "cc_resource.h"
#include "cc_role.h"
#include "cc_seed.h"
#include "cc_store.h"
#include "cc_time.h"
#include "fixture.h"

#define PG_PORT "55431" /* this suite's socket name (tools/pgtest.sh PORT) */
#define LISTS 8         /* list requests: PostgreSQL tries custom plans for the first five */

static char pg_dir[64];
static char pg_url[256];
static struct cc_store *st;

static int group_setup(void **state)
{
    (void)state;
    cc_log_init("test_seed_pg", CC_LOG_ERROR, 0);
    if (fixture_pg_start("seed-pg", PG_PORT, pg_dir, sizeof pg_dir, pg_url, sizeof pg_url) != 0)
        return -1;
    return cc_store_open(pg_url, CC_STORE_MIGRATE, &st) == CC_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    cc_store_close(st);
    return fixture_pg_stop(pg_dir);
}

static int64_t query_int(const char *sql, const char *arg)
{
    struct cc_stmt *s = NULL;
    int64_t v;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    if (arg != NULL)
        assert_int_equal(cc_stmt_bind_text(s, 1, arg), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    v = cc_stmt_column_int64(s, 0);
    cc_stmt_release(s);
    return v;
}

/* GET /api/devices as a customer, LISTS times: once the seed has run ANALYZE, the list
 * statement's generic plan costs no more than a custom one and PostgreSQL keeps it; on
 * tables never analyzed (autovacuum waits for 50 changed rows) it re-planned every
 * request (docs/queries.md). */
static void test_seed_pg_device_list_gets_a_generic_plan(void **state)
{
    struct cc_principal p = {0, CC_ROLE_CUSTOMER};
    struct cc_page pg = {50, 0};
    int seeded = 0;

    (void)state;
    assert_int_equal(cc_seed(st, cc_now_ms(), NULL, &seeded), CC_OK);
    assert_int_equal(seeded, 1);
    p.user_id = query_int("SELECT id FROM users WHERE email = $1", "customer1@example.com");
    for (int i = 0; i < LISTS; i++) {
        cJSON *out = NULL;

        assert_int_equal(cc_resource_list_by(st, &cc_devices_resource, &p, 0, &pg, &out), CC_OK);
        assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(out, "items")) > 0);
        cJSON_Delete(out);
    }
    assert_true(query_int("SELECT coalesce(sum(generic_plans), 0) FROM pg_prepared_statements"
                          " WHERE statement LIKE $1",
                          "SELECT d.id, %FROM devices d JOIN cold_cells c%LIMIT%") > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_pg_device_list_gets_a_generic_plan),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
