/* test_access.c - cc_access_check over a small fixture database (a temporary file,
 * migrated with cc_db_migrate): customers see their own objects, technicians those of
 * linked customers, admins everything, and someone else's object is NOT_FOUND like a
 * missing one. The list queries (CC_ACCESS_SQL) agree with the check for every pair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_access.h"
#include "cc_coldcells.h"
#include "cc_db.h"
#include "cc_devices.h"
#include "cc_locations.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "cc_users.h"
#include "fixture.h"

/* users: 1 tech (linked to 2 and 3), 2 customer A, 3 customer B, 4 admin, 5 tech2
 * (linked to nobody), 6 customer C (no data, linked to 5 later in one test).
 * A owns location 1 (cells 1, 2; devices 1, 2), B owns location 2 (cell 3, device 3).
 * alerts 1 (cell 1) and 2 (cell 3); notifications 1 (to 2) and 2 (to 1). */
static const char fixture[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 't@x.io', 'x', 'TECHNICIAN', 'T', 0), (2, 'a@x.io', 'x', 'CUSTOMER', 'A', 0),"
    " (3, 'b@x.io', 'x', 'CUSTOMER', 'B', 0), (4, 'adm@x.io', 'x', 'ADMIN', 'Adm', 0),"
    " (5, 't2@x.io', 'x', 'TECHNICIAN', 'T2', 0), (6, 'c@x.io', 'x', 'CUSTOMER', 'C', 0);"
    "INSERT INTO technician_customers VALUES (1, 2), (1, 3);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 2, 'LA', 0),"
    " (2, 3, 'LB', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at) VALUES"
    " (1, 1, 'A1', 2, 8, 0), (2, 1, 'A2', -25, -15, 0), (3, 2, 'B1', 2, 8, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
    " created_at) VALUES (1, 'DA1', 1, 'h', 'p', 0), (2, 'DA2', 2, 'h', 'p', 0),"
    " (3, 'DB1', 3, 'h', 'p', 0);"
    "INSERT INTO alerts (id, cold_cell_id, device_id, type, message, first_triggered_at,"
    " last_triggered_at) VALUES (1, 1, 1, 'HIGH_TEMP', 'm', 0, 0),"
    " (2, 3, 3, 'LOW_TEMP', 'm', 0, 0);"
    "INSERT INTO notifications (id, user_id, alert_id, kind, channel, payload,"
    " next_attempt_at, created_at) VALUES (1, 2, 1, 'ALERT', 'mqtt', '{}', 0, 0),"
    " (2, 1, 2, 'ALERT', 'mqtt', '{}', 0, 0);";

static const struct cc_principal TECH = {1, CC_ROLE_TECHNICIAN};
static const struct cc_principal CUST_A = {2, CC_ROLE_CUSTOMER};
static const struct cc_principal CUST_B = {3, CC_ROLE_CUSTOMER};
static const struct cc_principal ADMIN = {4, CC_ROLE_ADMIN};
static const struct cc_principal TECH2 = {5, CC_ROLE_TECHNICIAN};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    if (f == NULL || fixture_open(f, FIXTURE_FILE, 0, fixture) != CC_OK) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_close(*state);
    free(*state);
    return 0;
}

static int check(struct fixture *f, const struct cc_principal *p, int entity, int64_t id)
{
    return cc_access_check(f->st, p, entity, id, CC_ACCESS_READ);
}

static void test_access_customer_own_only(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(check(f, &CUST_A, CC_ENTITY_LOCATION, 1), CC_OK);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_LOCATION, 2), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_COLDCELL, 1), CC_OK);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_COLDCELL, 2), CC_OK);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_COLDCELL, 3), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_DEVICE, 2), CC_OK);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_DEVICE, 3), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_ALERT, 1), CC_OK);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_ALERT, 2), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &CUST_B, CC_ENTITY_DEVICE, 3), CC_OK);
    assert_int_equal(check(f, &CUST_B, CC_ENTITY_DEVICE, 1), CC_ERR_NOT_FOUND);
    /* Writing follows the same rule. */
    assert_int_equal(cc_access_check(f->st, &CUST_A, CC_ENTITY_DEVICE, 3, CC_ACCESS_WRITE),
                     CC_ERR_NOT_FOUND);
    assert_int_equal(cc_access_check(f->st, &CUST_A, CC_ENTITY_DEVICE, 1, CC_ACCESS_WRITE), CC_OK);
}

static void test_access_missing_is_not_found(void **state)
{
    struct fixture *f = *state;
    static const int entities[] = {CC_ENTITY_USER,        CC_ENTITY_CUSTOMER, CC_ENTITY_LOCATION,
                                   CC_ENTITY_COLDCELL,    CC_ENTITY_DEVICE,   CC_ENTITY_ALERT,
                                   CC_ENTITY_NOTIFICATION};

    for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++) {
        assert_int_equal(check(f, &ADMIN, entities[i], 999), CC_ERR_NOT_FOUND);
        assert_int_equal(check(f, &ADMIN, entities[i], 0), CC_ERR_NOT_FOUND);
        assert_int_equal(check(f, &ADMIN, entities[i], -1), CC_ERR_NOT_FOUND);
    }
    assert_int_equal(check(f, &ADMIN, 12345, 1), CC_ERR_NOT_FOUND);
}

/* CC_ENTITY_CUSTOMER is a user whose role is CUSTOMER (the role bound into the SQL, not
 * spelled there): the technician and the admin are users, not customers, even for an admin. */
static void test_access_customer_entity_is_role_customer(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(check(f, &ADMIN, CC_ENTITY_CUSTOMER, 2), CC_OK);
    assert_int_equal(check(f, &ADMIN, CC_ENTITY_CUSTOMER, 6), CC_OK);
    assert_int_equal(check(f, &ADMIN, CC_ENTITY_CUSTOMER, 1), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &ADMIN, CC_ENTITY_CUSTOMER, 4), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &ADMIN, CC_ENTITY_USER, 1), CC_OK);
    assert_int_equal(check(f, &ADMIN, CC_ENTITY_USER, 4), CC_OK);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_CUSTOMER, 2), CC_OK);
}

static void test_access_technician_linked(void **state)
{
    struct fixture *f = *state;

    for (int64_t id = 1; id <= 3; id++) {
        assert_int_equal(check(f, &TECH, CC_ENTITY_COLDCELL, id), CC_OK);
        assert_int_equal(check(f, &TECH, CC_ENTITY_DEVICE, id), CC_OK);
        assert_int_equal(check(f, &TECH2, CC_ENTITY_COLDCELL, id), CC_ERR_NOT_FOUND);
        assert_int_equal(check(f, &TECH2, CC_ENTITY_DEVICE, id), CC_ERR_NOT_FOUND);
    }
    assert_int_equal(check(f, &TECH, CC_ENTITY_LOCATION, 2), CC_OK);
    assert_int_equal(check(f, &TECH, CC_ENTITY_ALERT, 2), CC_OK);
    assert_int_equal(check(f, &TECH, CC_ENTITY_CUSTOMER, 2), CC_OK);
    assert_int_equal(check(f, &TECH, CC_ENTITY_CUSTOMER, 6), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &TECH2, CC_ENTITY_CUSTOMER, 2), CC_ERR_NOT_FOUND);
    /* A link counts at once, and so does its removal. */
    assert_int_equal(sqlite3_exec(cc_store_db(f->st),
                                  "INSERT INTO technician_customers VALUES (5, 3)", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    assert_int_equal(check(f, &TECH2, CC_ENTITY_DEVICE, 3), CC_OK);
    assert_int_equal(check(f, &TECH2, CC_ENTITY_DEVICE, 1), CC_ERR_NOT_FOUND);
    assert_int_equal(sqlite3_exec(cc_store_db(f->st),
                                  "DELETE FROM technician_customers WHERE technician_id = 5", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(check(f, &TECH2, CC_ENTITY_DEVICE, 3), CC_ERR_NOT_FOUND);
}

static void test_access_admin_everything(void **state)
{
    struct fixture *f = *state;

    for (int64_t id = 1; id <= 3; id++) {
        assert_int_equal(check(f, &ADMIN, CC_ENTITY_COLDCELL, id), CC_OK);
        assert_int_equal(check(f, &ADMIN, CC_ENTITY_DEVICE, id), CC_OK);
    }
    for (int64_t id = 1; id <= 6; id++)
        assert_int_equal(check(f, &ADMIN, CC_ENTITY_USER, id), CC_OK);
    assert_int_equal(check(f, &ADMIN, CC_ENTITY_CUSTOMER, 6), CC_OK);
    /* A user who is not a customer is no owner, even for an admin. */
    assert_int_equal(check(f, &ADMIN, CC_ENTITY_CUSTOMER, 1), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &ADMIN, CC_ENTITY_CUSTOMER, 4), CC_ERR_NOT_FOUND);
}

static void test_access_users_and_customers(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(check(f, &CUST_A, CC_ENTITY_USER, 2), CC_OK);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_USER, 3), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &TECH, CC_ENTITY_USER, 2), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_CUSTOMER, 2), CC_OK);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_CUSTOMER, 3), CC_ERR_NOT_FOUND);
}

static void test_access_notifications_recipient_only(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(check(f, &CUST_A, CC_ENTITY_NOTIFICATION, 1), CC_OK);
    assert_int_equal(check(f, &CUST_A, CC_ENTITY_NOTIFICATION, 2), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &TECH, CC_ENTITY_NOTIFICATION, 2), CC_OK);
    assert_int_equal(check(f, &TECH, CC_ENTITY_NOTIFICATION, 1), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &ADMIN, CC_ENTITY_NOTIFICATION, 1), CC_ERR_NOT_FOUND);
}

static void test_access_bad_principal(void **state)
{
    struct fixture *f = *state;
    struct cc_principal none = {2, CC_ROLE_NONE};
    struct cc_principal two = {2, CC_ROLE_CUSTOMER | CC_ROLE_ADMIN};
    struct cc_principal nobody = {0, CC_ROLE_ADMIN};

    assert_int_equal(check(f, &none, CC_ENTITY_DEVICE, 1), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &two, CC_ENTITY_DEVICE, 3), CC_ERR_NOT_FOUND);
    assert_int_equal(check(f, &nobody, CC_ENTITY_DEVICE, 1), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_access_check(f->st, NULL, CC_ENTITY_DEVICE, 1, CC_ACCESS_READ),
                     CC_ERR_NOT_FOUND);
}

static void test_access_role_names(void **state)
{
    (void)state;
    assert_int_equal(cc_role_parse("CUSTOMER"), CC_ROLE_CUSTOMER);
    assert_int_equal(cc_role_parse("TECHNICIAN"), CC_ROLE_TECHNICIAN);
    assert_int_equal(cc_role_parse("ADMIN"), CC_ROLE_ADMIN);
    assert_int_equal(cc_role_parse("admin"), CC_ROLE_NONE);
    assert_int_equal(cc_role_parse(NULL), CC_ROLE_NONE);
    assert_string_equal(cc_role_name(CC_ROLE_TECHNICIAN), "TECHNICIAN");
    assert_string_equal(cc_role_name(CC_ROLE_ANY), "");
}

/* The ids in a {"items":[...]} list. */
static int list_has(const cJSON *list, int64_t id)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
    {
        if ((int64_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble == id)
            return 1;
    }
    return 0;
}

/* For every principal and object, "in my list" equals "cc_access_check says yes". */
static void test_access_lists_agree_with_check(void **state)
{
    struct fixture *f = *state;
    const struct cc_principal *who[] = {&TECH, &CUST_A, &CUST_B, &ADMIN, &TECH2};
    struct cc_page pg = {CC_PAGE_MAX, 0};

    for (size_t w = 0; w < sizeof who / sizeof who[0]; w++) {
        cJSON *locs = NULL, *cells = NULL, *devs = NULL;

        assert_int_equal(cc_locations_list(f->st, who[w], 0, &pg, &locs), CC_OK);
        assert_int_equal(cc_coldcells_list(f->st, who[w], 0, &pg, &cells), CC_OK);
        assert_int_equal(cc_devices_list(f->st, who[w], 0, &pg, &devs), CC_OK);
        for (int64_t id = 1; id <= 3; id++) {
            assert_int_equal(list_has(locs, id), check(f, who[w], CC_ENTITY_LOCATION, id) == CC_OK);
            assert_int_equal(list_has(cells, id),
                             check(f, who[w], CC_ENTITY_COLDCELL, id) == CC_OK);
            assert_int_equal(list_has(devs, id), check(f, who[w], CC_ENTITY_DEVICE, id) == CC_OK);
        }
        cJSON_Delete(locs);
        cJSON_Delete(cells);
        cJSON_Delete(devs);
    }
}

static void test_access_list_total_and_page(void **state)
{
    struct fixture *f = *state;
    struct cc_page pg = {1, 1};
    cJSON *devs = NULL;

    assert_int_equal(cc_devices_list(f->st, &TECH, 0, &pg, &devs), CC_OK);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(devs, "items")), 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(devs, "total")->valuedouble, 3);
    assert_true(list_has(devs, 2));
    cJSON_Delete(devs);
    pg.limit = CC_PAGE_MAX;
    pg.offset = 0;
    assert_int_equal(cc_devices_list(f->st, &CUST_A, 3, &pg, &devs), CC_OK);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(devs, "total")->valuedouble, 0);
    cJSON_Delete(devs);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    cc_log_init("test_access", CC_LOG_WARN, 1);
    const struct CMUnitTest tests[] = {
        T(test_access_customer_own_only),
        T(test_access_missing_is_not_found),
        T(test_access_customer_entity_is_role_customer),
        T(test_access_technician_linked),
        T(test_access_admin_everything),
        T(test_access_users_and_customers),
        T(test_access_notifications_recipient_only),
        T(test_access_bad_principal),
        cmocka_unit_test(test_access_role_names),
        T(test_access_lists_agree_with_check),
        T(test_access_list_total_and_page),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
