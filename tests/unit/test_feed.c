/* test_feed.c - cc_feed: readings and alerts reach exactly the subscribers who may read
 * their cell (customer own, technician linked, admin all), invalid readings and foreign
 * topics are never relayed, a reassigned device is mapped to its new cell at once, access
 * changes are seen after the cache TTL, queues are bounded (a slow subscriber is closed,
 * not waited for) and expired tokens close with 4401. Fixture as in test_access.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_db.h"
#include "cc_feed.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "cc_time.h"
#include "fixture.h"

/* users: 1 tech (linked to 2 and 3), 2 customer A, 3 customer B, 4 admin, 5 tech2.
 * A: location 1, cells 1, 2, devices DA1 (cell 1), DA2 (cell 2); B: location 2, cell 3,
 * device DB1. */
static const char fixture[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 't@x.io', 'x', 'TECHNICIAN', 'T', 0), (2, 'a@x.io', 'x', 'CUSTOMER', 'A', 0),"
    " (3, 'b@x.io', 'x', 'CUSTOMER', 'B', 0), (4, 'adm@x.io', 'x', 'ADMIN', 'Adm', 0),"
    " (5, 't2@x.io', 'x', 'TECHNICIAN', 'T2', 0);"
    "INSERT INTO technician_customers VALUES (1, 2), (1, 3);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 2, 'LA', 0),"
    " (2, 3, 'LB', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at) VALUES"
    " (1, 1, 'A1', 2, 8, 0), (2, 1, 'A2', -25, -15, 0), (3, 2, 'B1', 2, 8, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
    " created_at) VALUES (1, 'DA1', 1, 'h', 'p', 0), (2, 'DA2', 2, 'h', 'p', 0),"
    " (3, 'DB1', 3, 'h', 'p', 0);";

static const struct cc_principal TECH = {1, CC_ROLE_TECHNICIAN};
static const struct cc_principal CUST_A = {2, CC_ROLE_CUSTOMER};
static const struct cc_principal CUST_B = {3, CC_ROLE_CUSTOMER};
static const struct cc_principal ADMIN = {4, CC_ROLE_ADMIN};
static const struct cc_principal TECH2 = {5, CC_ROLE_TECHNICIAN};

struct fx {
    struct fixture db;    /* the database file; db.st is st */
    struct cc_store *st;  /* the feed's (message thread) */
    struct cc_store *st2; /* the subscribers' (a worker's) */
    struct cc_feed *feed;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    if (f == NULL)
        return -1;
    *state = f;
    if (fixture_open(&f->db, FIXTURE_FILE, 0, fixture) != CC_OK)
        return -1;
    f->st = f->db.st;
    if (cc_store_open(f->db.path, 0, &f->st2) != CC_OK || cc_feed_new(f->st, &f->feed) != CC_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    cc_feed_free(f->feed);
    cc_store_close(f->st2);
    fixture_close(&f->db); /* closes st */
    free(f);
    return 0;
}

static void exec(struct fx *f, const char *sql)
{
    assert_int_equal(sqlite3_exec(cc_store_db(f->st2), sql, NULL, NULL, NULL), SQLITE_OK);
}

static struct cc_feed_sub *sub(struct fx *f, const struct cc_principal *p)
{
    struct cc_feed_sub *s = NULL;

    assert_int_equal(cc_feed_sub_new(f->feed, f->st2, p, 0, NULL, &s), CC_OK);
    return s;
}

/* Takes every queued message of s; returns how many, with the cold cell ids they name
 * ("reading": coldCellId, "alert": alert.coldCellId, "hello": 0) in cells. */
static int drain(struct cc_feed_sub *s, int64_t *cells, int max)
{
    int n = 0, code = 0;
    char *msg;
    size_t len;

    while (cc_feed_sub_next(s, 0, &msg, &len, &code) == CC_FEED_MSG) {
        cJSON *o = cJSON_Parse(msg);
        const cJSON *t = cJSON_GetObjectItem(o, "type");
        const cJSON *c = cJSON_GetObjectItem(o, "coldCellId");

        assert_non_null(o);
        assert_int_equal(strlen(msg), len);
        if (c == NULL)
            c = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "alert"), "coldCellId");
        assert_true(cJSON_IsString(t));
        if (n < max)
            cells[n] = c != NULL ? (int64_t)c->valuedouble : 0;
        n++;
        cJSON_Delete(o);
        free(msg);
    }
    return n;
}

static size_t publish(struct fx *f, const char *topic, const char *payload, int64_t now_ms, int *rc)
{
    size_t queued = 99;

    *rc = cc_feed_on_message(f->feed, topic, payload, strlen(payload), now_ms, &queued);
    return queued;
}

static void test_feed_hello_lists_allowed_cells(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = sub(f, &CUST_A), *t2 = sub(f, &TECH2);
    char *msg = NULL;
    size_t len;
    int code;

    assert_int_equal(cc_feed_sub_next(a, 0, &msg, &len, &code), CC_FEED_MSG);
    assert_string_equal(msg, "{\"type\":\"hello\",\"userId\":2,\"coldCellIds\":[1,2]}");
    free(msg);
    assert_int_equal(cc_feed_sub_next(t2, 0, &msg, &len, &code), CC_FEED_MSG);
    assert_string_equal(msg, "{\"type\":\"hello\",\"userId\":5,\"coldCellIds\":[]}");
    free(msg);
    assert_int_equal(cc_feed_sub_next(a, 10, &msg, &len, &code), CC_FEED_IDLE);
    assert_int_equal(cc_feed_count(f->feed), 2);
    cc_feed_sub_remove(f->feed, a);
    cc_feed_sub_remove(f->feed, t2);
    assert_int_equal(cc_feed_count(f->feed), 0);
}

static void test_feed_reading_reaches_only_allowed(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = sub(f, &CUST_A), *b = sub(f, &CUST_B), *t = sub(f, &TECH),
                       *adm = sub(f, &ADMIN), *t2 = sub(f, &TECH2);
    int64_t now = cc_now_ms(), cells[8];
    int rc;

    for (struct cc_feed_sub **s = (struct cc_feed_sub *[]){a, b, t, adm, t2, NULL}; *s; s++)
        assert_int_equal(drain(*s, cells, 8), 1); /* hello */

    assert_int_equal(publish(f, "devices/DB1/readings", "{\"temperature\":4.5}", now, &rc), 3);
    assert_int_equal(rc, CC_OK);
    assert_int_equal(drain(a, cells, 8), 0);
    assert_int_equal(drain(t2, cells, 8), 0);
    assert_int_equal(drain(b, cells, 8), 1);
    assert_int_equal(cells[0], 3);
    assert_int_equal(drain(t, cells, 8), 1);
    assert_int_equal(drain(adm, cells, 8), 1);

    /* An array: one message per valid reading; the invalid one is skipped. */
    assert_int_equal(publish(f, "devices/DA2/readings",
                             "[{\"temperature\":-18},{\"temperature\":999},{\"temperature\":-17}]",
                             now, &rc),
                     6);
    assert_int_equal(drain(a, cells, 8), 2);
    assert_int_equal(cells[0], 2);
    assert_int_equal(cells[1], 2);
    assert_int_equal(drain(b, cells, 8), 0);
    assert_int_equal(drain(t, cells, 8), 2);
    assert_int_equal(drain(adm, cells, 8), 2);
    assert_int_equal(drain(t2, cells, 8), 0);
}

static void test_feed_reading_message_shape(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = sub(f, &CUST_A);
    char *msg = NULL;
    size_t len;
    int code, rc;
    int64_t cells[2], now = 0;

    drain(a, cells, 2);
    assert_int_equal(cc_time_parse_iso8601("2026-11-26T07:15:00.000Z", &now), CC_OK);
    publish(f, "devices/DA1/readings",
            "{\"temperature\":4.25,\"ts\":\"2026-11-26T07:14:05.000Z\",\"doorStatus\":false}", now,
            &rc);
    assert_int_equal(rc, CC_OK);
    assert_int_equal(cc_feed_sub_next(a, 0, &msg, &len, &code), CC_FEED_MSG);
    assert_string_equal(msg, "{\"type\":\"reading\",\"coldCellId\":1,\"reading\":{"
                             "\"ts\":\"2026-11-26T07:14:05.000Z\",\"temperature\":4.25,"
                             "\"doorStatus\":false,\"deviceId\":1,\"serialNumber\":\"DA1\"}}");
    free(msg);
}

static void test_feed_bad_topics_and_payloads_relay_nothing(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *adm = sub(f, &ADMIN);
    int64_t now = cc_now_ms(), cells[4];
    int rc;

    drain(adm, cells, 4);
    assert_int_equal(publish(f, "devices/DA1/status", "{\"online\":true}", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_VALIDATION);
    assert_int_equal(publish(f, "devices/DA1/errors", "{}", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_VALIDATION);
    assert_int_equal(publish(f, "devices/a/b/readings", "{\"temperature\":1}", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_VALIDATION);
    assert_int_equal(publish(f, "devices//readings", "{\"temperature\":1}", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_VALIDATION);
    assert_int_equal(publish(f, "notifications/2", "{}", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_VALIDATION);
    assert_int_equal(publish(f, "devices/NOPE/readings", "{\"temperature\":1}", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_NOT_FOUND);
    assert_int_equal(publish(f, "devices/DA1/readings", "not json", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_BAD_JSON);
    assert_int_equal(publish(f, "devices/DA1/readings", "{\"temperature\":\"4\"}", now, &rc), 0);
    assert_int_equal(publish(f, "alerts/1", "not json", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_VALIDATION);
    assert_int_equal(publish(f, "alerts/x1", "{}", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_VALIDATION);
    assert_int_equal(publish(f, "alerts/0", "{}", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_VALIDATION);
    /* The payload names another cell than the topic: not trusted. */
    assert_int_equal(publish(f, "alerts/1", "{\"id\":1,\"coldCellId\":3}", now, &rc), 0);
    assert_int_equal(rc, CC_ERR_VALIDATION);
    assert_int_equal(drain(adm, cells, 4), 0);
}

static void test_feed_alert_reaches_only_allowed(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = sub(f, &CUST_A), *b = sub(f, &CUST_B), *t = sub(f, &TECH);
    int64_t now = cc_now_ms(), cells[4];
    char *msg = NULL;
    size_t len;
    int code, rc;

    drain(a, cells, 4);
    drain(b, cells, 4);
    drain(t, cells, 4);
    assert_int_equal(
        publish(f, "alerts/3",
                "{\"id\":7,\"coldCellId\":3,\"type\":\"HIGH_TEMP\",\"status\":\"ACTIVE\"}", now,
                &rc),
        2);
    assert_int_equal(rc, CC_OK);
    assert_int_equal(drain(a, cells, 4), 0);
    assert_int_equal(drain(t, cells, 4), 1);
    assert_int_equal(cc_feed_sub_next(b, 0, &msg, &len, &code), CC_FEED_MSG);
    assert_string_equal(msg, "{\"type\":\"alert\",\"alert\":{\"id\":7,\"coldCellId\":3,"
                             "\"type\":\"HIGH_TEMP\",\"status\":\"ACTIVE\"}}");
    free(msg);
    /* A cell nobody may see (it does not exist) reaches nobody. */
    assert_int_equal(publish(f, "alerts/99", "{\"id\":8}", now, &rc), 0);
    assert_int_equal(rc, CC_OK);
}

static void test_feed_reassigned_device_follows_its_new_cell(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = sub(f, &CUST_A), *b = sub(f, &CUST_B);
    int64_t now = cc_now_ms(), cells[4];
    int rc;

    drain(a, cells, 4);
    drain(b, cells, 4);
    assert_int_equal(publish(f, "devices/DA1/readings", "{\"temperature\":4}", now, &rc), 1);
    assert_int_equal(drain(a, cells, 4), 1);
    exec(f, "UPDATE devices SET cold_cell_id = 3 WHERE id = 1");
    /* The very next message, well inside any cache TTL: B's now, never A's. */
    assert_int_equal(publish(f, "devices/DA1/readings", "{\"temperature\":5}", now + 1, &rc), 1);
    assert_int_equal(drain(a, cells, 4), 0);
    assert_int_equal(drain(b, cells, 4), 1);
    assert_int_equal(cells[0], 3);
}

static void test_feed_access_changes_are_seen(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = sub(f, &CUST_A), *t = sub(f, &TECH);
    int64_t now = cc_now_ms(), cells[4];
    int rc;

    drain(a, cells, 4);
    drain(t, cells, 4);
    /* A new cell of A's, with a device, after A connected: checked on first sight. */
    exec(f, "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at)"
            " VALUES (4, 1, 'A3', 2, 8, 0);"
            "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
            " api_key_prefix, created_at) VALUES (4, 'DA3', 4, 'h', 'p', 0)");
    assert_int_equal(publish(f, "devices/DA3/readings", "{\"temperature\":4}", now, &rc), 2);
    assert_int_equal(drain(a, cells, 4), 1);
    assert_int_equal(drain(t, cells, 4), 1);

    /* The technician is unlinked from B: within the TTL the cache may still allow it,
     * after it never. */
    exec(f, "DELETE FROM technician_customers WHERE technician_id = 1 AND customer_id = 3");
    assert_int_equal(
        publish(f, "devices/DB1/readings", "{\"temperature\":4}", now + CC_FEED_ACL_TTL_MS, &rc),
        0);
    assert_int_equal(drain(t, cells, 4), 0);

    /* A disabled user is closed with 4401 at the next reload. */
    exec(f, "UPDATE users SET disabled = 1 WHERE id = 2");
    publish(f, "devices/DA1/readings", "{\"temperature\":4}", now + 2 * CC_FEED_ACL_TTL_MS, &rc);
    {
        char *msg = NULL;
        size_t len;
        int code = 0;

        assert_int_equal(cc_feed_sub_next(a, 0, &msg, &len, &code), CC_FEED_CLOSE);
        assert_int_equal(code, CC_FEED_CLOSE_AUTH);
    }
}

static void test_feed_slow_subscriber_is_closed_not_waited_for(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = sub(f, &CUST_A), *b = sub(f, &CUST_B);
    int64_t now = cc_now_ms(), cells[4];
    char *msg = NULL;
    size_t len;
    int code = 0, rc = CC_OK, i;

    /* hello + CC_FEED_QUEUE_MAX - 1 pushes fill a's queue; one more closes it. */
    for (i = 0; i < CC_FEED_QUEUE_MAX - 1; i++)
        assert_int_equal(cc_feed_sub_push(a, "{\"type\":\"x\"}", 12), CC_OK);
    assert_int_equal(cc_feed_sub_push(a, "{\"type\":\"x\"}", 12), CC_ERR_TOO_LARGE);
    assert_int_equal(cc_feed_sub_next(a, 0, &msg, &len, &code), CC_FEED_CLOSE);
    assert_int_equal(code, CC_FEED_CLOSE_SLOW);
    /* The others keep getting theirs. */
    drain(b, cells, 4);
    assert_int_equal(publish(f, "devices/DB1/readings", "{\"temperature\":4}", now, &rc), 1);
    assert_int_equal(drain(b, cells, 4), 1);
    assert_int_equal(publish(f, "devices/DA1/readings", "{\"temperature\":4}", now, &rc), 0);
    /* The first close code wins. */
    cc_feed_sub_close(a, CC_FEED_CLOSE_SHUTDOWN);
    assert_int_equal(cc_feed_sub_next(a, 0, &msg, &len, &code), CC_FEED_CLOSE);
    assert_int_equal(code, CC_FEED_CLOSE_SLOW);
    cc_feed_sub_remove(f->feed, a);
    cc_feed_sub_remove(f->feed, NULL);
}

static void test_feed_byte_bound_closes_too(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = sub(f, &CUST_A);
    size_t big = CC_FEED_QUEUE_BYTES / 4;
    char *blob = malloc(big);
    char *msg = NULL;
    size_t len;
    int code = 0, i;

    assert_non_null(blob);
    memset(blob, 'x', big);
    for (i = 0; i < 3; i++)
        assert_int_equal(cc_feed_sub_push(a, blob, big), CC_OK);
    assert_int_equal(cc_feed_sub_push(a, blob, big), CC_ERR_TOO_LARGE);
    assert_int_equal(cc_feed_sub_next(a, 0, &msg, &len, &code), CC_FEED_CLOSE);
    assert_int_equal(code, CC_FEED_CLOSE_SLOW);
    free(blob);
}

static void test_feed_expired_token_closes_4401(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = NULL;
    char *msg = NULL;
    size_t len;
    int code = 0;

    assert_int_equal(cc_feed_sub_new(f->feed, f->st2, &CUST_A, cc_now_ms() - 1, NULL, &a), CC_OK);
    assert_int_equal(cc_feed_sub_next(a, 0, &msg, &len, &code), CC_FEED_CLOSE);
    assert_int_equal(code, CC_FEED_CLOSE_AUTH);
    assert_null(msg);
}

static void test_feed_no_subscribers_costs_nothing(void **state)
{
    struct fx *f = *state;
    int rc;

    /* Unknown device, but with nobody listening the feed does not even look it up. */
    assert_int_equal(publish(f, "devices/NOPE/readings", "{\"temperature\":1}", 0, &rc), 0);
    assert_int_equal(rc, CC_OK);
}

static void test_feed_per_user_limit_and_feed_maximum(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *s[CC_FEED_PER_USER_MAX + 1] = {0}, *x = NULL;
    int i;

    for (i = 0; i < CC_FEED_PER_USER_MAX; i++)
        s[i] = sub(f, &CUST_A);
    /* The ninth of one user is refused; another user still gets one. */
    assert_int_equal(cc_feed_sub_new(f->feed, f->st2, &CUST_A, 0, NULL, &x), CC_ERR_RATE_LIMITED);
    assert_null(x);
    x = sub(f, &CUST_B);
    assert_int_equal(cc_feed_count(f->feed), CC_FEED_PER_USER_MAX + 1);
    /* A slot comes back when one is removed. */
    cc_feed_sub_remove(f->feed, s[0]);
    s[0] = sub(f, &CUST_A);
    /* The feed's maximum counts every user. */
    cc_feed_set_max(f->feed, CC_FEED_PER_USER_MAX + 1);
    assert_int_equal(cc_feed_sub_new(f->feed, f->st2, &ADMIN, 0, NULL, &s[CC_FEED_PER_USER_MAX]),
                     CC_ERR_TOO_LARGE);
    cc_feed_sub_remove(f->feed, x);
    assert_int_equal(cc_feed_sub_new(f->feed, f->st2, &ADMIN, 0, NULL, &s[CC_FEED_PER_USER_MAX]),
                     CC_OK);
}

/* 1 if fd is readable now. */
static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void test_feed_ready_list_wakes_the_consumer_once_per_readiness(void **state)
{
    struct fx *f = *state;
    int tag_a = 1, tag_b = 2;
    struct cc_feed_sub *a = NULL, *b = NULL, *out[4];
    int64_t now = cc_now_ms(), cells[8];
    int fd = cc_feed_notify_fd(f->feed), rc;

    assert_true(fd >= 0);
    assert_int_equal(cc_feed_sub_new(f->feed, f->st2, &CUST_A, 0, &tag_a, &a), CC_OK);
    assert_int_equal(cc_feed_sub_new(f->feed, f->st2, &CUST_B, 0, &tag_b, &b), CC_OK);
    assert_ptr_equal(cc_feed_sub_data(a), &tag_a);
    /* The hello does not make a new subscriber ready: its consumer drains it once. */
    assert_false(readable(fd));
    assert_int_equal(cc_feed_ready(f->feed, out, 4), 0);
    drain(a, cells, 8);
    drain(b, cells, 8);

    /* Two readings for a: one wake-up, a reported once. */
    assert_int_equal(publish(f, "devices/DA1/readings", "{\"temperature\":4}", now, &rc), 1);
    assert_int_equal(publish(f, "devices/DA2/readings", "{\"temperature\":-20}", now, &rc), 1);
    assert_true(readable(fd));
    assert_int_equal(cc_feed_ready(f->feed, out, 4), 1);
    assert_ptr_equal(out[0], a);
    assert_false(readable(fd));
    /* Not drained yet: a third message does not report a again (its consumer knows). */
    assert_int_equal(publish(f, "devices/DA1/readings", "{\"temperature\":4}", now, &rc), 1);
    assert_false(readable(fd));
    assert_int_equal(drain(a, cells, 8), 3);

    /* Both ready, handed out one per call: the eventfd stays readable for the second. */
    assert_int_equal(publish(f, "devices/DA1/readings", "{\"temperature\":4}", now, &rc), 1);
    cc_feed_sub_close(b, CC_FEED_CLOSE_SHUTDOWN);
    assert_int_equal(cc_feed_ready(f->feed, out, 1), 1);
    assert_ptr_equal(out[0], a);
    assert_true(readable(fd));
    assert_int_equal(cc_feed_ready(f->feed, out, 1), 1);
    assert_ptr_equal(out[0], b);
    assert_int_equal(cc_feed_ready(f->feed, out, 4), 0);
    assert_false(readable(fd));

    /* A subscriber removed while ready is never handed out. */
    assert_int_equal(cc_feed_sub_push(a, "{\"type\":\"x\"}", 12), CC_OK);
    drain(a, cells, 8);
    assert_int_equal(cc_feed_sub_push(a, "{\"type\":\"x\"}", 12), CC_OK);
    cc_feed_sub_remove(f->feed, a);
    assert_int_equal(cc_feed_ready(f->feed, out, 4), 0);
}

static void test_feed_verify_closes_a_disabled_user_4401(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = sub(f, &CUST_A), *b = sub(f, &CUST_B), *out[2];
    int64_t cells[4];
    char *msg = NULL;
    size_t len;
    int code = 0;

    drain(a, cells, 4);
    drain(b, cells, 4);
    assert_int_equal(cc_feed_sub_verify(a, f->st2), CC_OK);
    exec(f, "UPDATE users SET disabled = 1 WHERE id = 2");
    assert_int_equal(cc_feed_sub_verify(a, f->st2), CC_ERR_UNAUTHORIZED);
    assert_int_equal(cc_feed_ready(f->feed, out, 2), 1);
    assert_ptr_equal(out[0], a);
    assert_int_equal(cc_feed_sub_next(a, 0, &msg, &len, &code), CC_FEED_CLOSE);
    assert_int_equal(code, CC_FEED_CLOSE_AUTH);
    /* A deleted user, and a changed role, too. */
    exec(f, "UPDATE users SET role = 'ADMIN' WHERE id = 3");
    assert_int_equal(cc_feed_sub_verify(b, f->st2), CC_ERR_UNAUTHORIZED);
}

static void test_feed_client_ping_answered_anything_else_ignored(void **state)
{
    struct fx *f = *state;
    struct cc_feed_sub *a = sub(f, &CUST_A);
    char deep[200], big[CC_FEED_CLIENT_MSG_MAX + 16], *msg = NULL;
    int64_t cells[4];
    size_t len;
    int code = 0;

    drain(a, cells, 4);
    assert_int_equal(cc_feed_client_message(a, "{\"type\":\"ping\"}", 15), CC_OK);
    assert_int_equal(cc_feed_sub_next(a, 0, &msg, &len, &code), CC_FEED_MSG);
    assert_string_equal(msg, "{\"type\":\"pong\"}");
    free(msg);
    assert_int_equal(cc_feed_client_message(a, "{\"type\":\"pong\"}", 15), CC_ERR_VALIDATION);
    assert_int_equal(cc_feed_client_message(a, "ping", 4), CC_ERR_VALIDATION);
    assert_int_equal(cc_feed_client_message(a, "", 0), CC_ERR_VALIDATION);
    /* Deeper than CC_JSON_MAX_DEPTH, or longer than looked at: refused unparsed. */
    memset(deep, '[', sizeof deep);
    assert_int_equal(cc_feed_client_message(a, deep, sizeof deep), CC_ERR_VALIDATION);
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"type\":\"ping\"}", 15);
    assert_int_equal(cc_feed_client_message(a, big, sizeof big), CC_ERR_VALIDATION);
    assert_int_equal(cc_feed_sub_next(a, 0, &msg, &len, &code), CC_FEED_IDLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_feed_per_user_limit_and_feed_maximum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_ready_list_wakes_the_consumer_once_per_readiness,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_verify_closes_a_disabled_user_4401, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_feed_client_ping_answered_anything_else_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_feed_hello_lists_allowed_cells, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_reading_reaches_only_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_reading_message_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_bad_topics_and_payloads_relay_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_feed_alert_reaches_only_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_reassigned_device_follows_its_new_cell, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_feed_access_changes_are_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_slow_subscriber_is_closed_not_waited_for, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_feed_byte_bound_closes_too, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_expired_token_closes_4401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_no_subscribers_costs_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
