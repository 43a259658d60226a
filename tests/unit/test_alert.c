/* test_alert.c - the alert engine (cc_alert.c, cc_alert_ops.c), its notifications
 * (cc_notify.c), the delivery worker's retries (cc_notify_deliver.c), the jobs
 * (cc_jobs.c) and the alert API functions (cc_alerts_api.c), on a temporary database
 * with the migrations applied. Readings go through cc_ingest_readings, the path both
 * daemons use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <math.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "cc_alert_json.h"
#include "cc_alert_ops.h"
#include "cc_alerts_api.h"
#include "cc_db.h"
#include "cc_ingest.h"
#include "cc_jobs.h"
#include "cc_log.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "cc_stats.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"
#include "fixture.h"

#define T0 1764135900000LL /* 2025-11-26T05:45:00.000Z: "received" */
#define S 1000LL           /* one second in ms */
#define FRIDGE "SN-F"      /* device 7 in cell 2: 2..8 °C, hysteresis 0.5, no delay */
#define DELAYED "SN-D"     /* device 8 in cell 3: 2..8 °C, hysteresis 0.5, delay 60 s */

static void exec_ok(struct cc_store *st, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(cc_store_db(st), sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

/* The integer answer of a query with one %lld or none. */
static int64_t q(struct cc_store *st, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t v;

    if (sqlite3_prepare_v2(cc_store_db(st), sql, -1, &stmt, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(cc_store_db(st)));
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static double qd(struct cc_store *st, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    double v;

    assert_int_equal(sqlite3_prepare_v2(cc_store_db(st), sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_double(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

/* Customers 1 and 5, technicians 2 (linked to 1) and 3 (linked to 5), admin 4. */
static const char seed[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 'c1@example.com', 'x', 'CUSTOMER', 'C1', 0),"
    " (2, 'tech@example.com', 'x', 'TECHNICIAN', 'T', 0),"
    " (3, 'tech2@example.com', 'x', 'TECHNICIAN', 'T2', 0),"
    " (4, 'admin@example.com', 'x', 'ADMIN', 'A', 0),"
    " (5, 'c2@example.com', 'x', 'CUSTOMER', 'C2', 0);"
    "INSERT INTO technician_customers VALUES (2, 1), (3, 5);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'L', 0),"
    " (2, 5, 'L2', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, hysteresis,"
    " alarm_delay_s, created_at) VALUES (2, 1, 'Fridge', 2, 8, 0.5, 0, 0),"
    " (3, 1, 'Slow', 2, 8, 0.5, 60, 0), (4, 2, 'Other', 2, 8, 0.5, 0, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
    " api_key_prefix, created_at) VALUES (7, '" FRIDGE "', 2, 'h', 'p', 0),"
    " (8, '" DELAYED "', 3, 'h', 'p', 0), (9, 'SN-O', 4, 'h', 'p', 0);";

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    if (f == NULL || fixture_open(f, FIXTURE_FILE, 0, seed) != CC_OK) {
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

/* Reopens the fixture's database on a new connection (a restart). */
static void open_store(struct fixture *f)
{
    assert_int_equal(cc_store_open(f->path, CC_DB_CREATE | CC_DB_MIGRATE, &f->st), CC_OK);
}

/* One reading through the ingest path in its own transaction; power: -1 absent, 0, 1. */
static void reading(struct cc_store *st, const char *serial, int64_t ts, double temp, int power)
{
    struct cc_ingest_result res;
    char payload[160];

    if (power < 0)
        snprintf(payload, sizeof payload, "{\"temperature\":%.3f,\"ts\":%lld}", temp,
                 (long long)ts);
    else
        snprintf(payload, sizeof payload, "{\"temperature\":%.3f,\"ts\":%lld,\"powerStatus\":%s}",
                 temp, (long long)ts, power ? "true" : "false");
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(
        cc_ingest_readings(st, serial, payload, strlen(payload), T0, CC_INGEST_PARTIAL, &res),
        CC_OK);
    assert_null(res.error);
    assert_int_equal(cc_store_commit(st), CC_OK);
    cc_ingest_result_clear(&res);
}

#define ACTIVE(type)                                                                               \
    q(st, "SELECT count(*) FROM alerts WHERE status = 'ACTIVE' AND type = '" type "'")
#define NOTES(kind) q(st, "SELECT count(*) FROM notifications WHERE kind = '" kind "'")

static void test_alert_high_hysteresis_autoresolve(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;

    reading(st, FRIDGE, T0 - 100 * S, 5.0, -1);
    assert_int_equal(q(st, "SELECT count(*) FROM alerts"), 0);
    reading(st, FRIDGE, T0 - 90 * S, 9.0, -1);
    assert_int_equal(ACTIVE("HIGH_TEMP"), 1);
    assert_int_equal(q(st, "SELECT trigger_count FROM alerts"), 1);
    assert_true(qd(st, "SELECT threshold FROM alerts") == 8.0);
    assert_int_equal(q(st, "SELECT first_triggered_at FROM alerts"), T0 - 90 * S);
    /* ALERT to the customer (1) and the linked technician (2): nobody else. */
    assert_int_equal(NOTES("ALERT"), 2);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE kind = 'ALERT'"
                           " AND user_id IN (1, 2)"),
                     2);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE event = 'CREATED'"), 1);

    reading(st, FRIDGE, T0 - 80 * S, 8.0, -1); /* at the limit: not beyond, not cleared */
    assert_int_equal(q(st, "SELECT trigger_count FROM alerts"), 1);
    reading(st, FRIDGE, T0 - 70 * S, 10.0, -1); /* a new trigger updates, never duplicates */
    assert_int_equal(q(st, "SELECT count(*) FROM alerts"), 1);
    assert_int_equal(q(st, "SELECT trigger_count FROM alerts"), 2);
    assert_true(qd(st, "SELECT value FROM alerts") == 10.0);
    assert_int_equal(q(st, "SELECT last_triggered_at FROM alerts"), T0 - 70 * S);
    assert_int_equal(NOTES("ALERT"), 2);

    reading(st, FRIDGE, T0 - 60 * S, 7.6, -1); /* inside the hysteresis band */
    assert_int_equal(ACTIVE("HIGH_TEMP"), 1);
    assert_int_equal(NOTES("ALERT_RESOLVED"), 0);
    reading(st, FRIDGE, T0 - 50 * S, 7.5, -1); /* max - hysteresis: cleared */
    assert_int_equal(ACTIVE("HIGH_TEMP"), 0);
    assert_int_equal(q(st, "SELECT resolved_at FROM alerts"), T0 - 50 * S);
    assert_int_equal(q(st, "SELECT resolved_by IS NULL FROM alerts"), 1);
    assert_int_equal(NOTES("ALERT_RESOLVED"), 2);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE event = 'RESOLVED'"), 1);

    reading(st, FRIDGE, T0 - 40 * S, 8.1, -1); /* a new excursion is a new alert */
    assert_int_equal(q(st, "SELECT count(*) FROM alerts"), 2);
    assert_int_equal(ACTIVE("HIGH_TEMP"), 1);
    assert_int_equal(NOTES("ALERT"), 4);
}

static void test_alert_low_temp(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;

    reading(st, FRIDGE, T0 - 30 * S, 2.0, -1); /* at min: fine */
    assert_int_equal(q(st, "SELECT count(*) FROM alerts"), 0);
    reading(st, FRIDGE, T0 - 20 * S, 1.9, -1);
    assert_int_equal(ACTIVE("LOW_TEMP"), 1);
    assert_true(qd(st, "SELECT threshold FROM alerts") == 2.0);
    reading(st, FRIDGE, T0 - 10 * S, 2.4, -1);
    assert_int_equal(ACTIVE("LOW_TEMP"), 1);
    reading(st, FRIDGE, T0, 2.5, -1);
    assert_int_equal(ACTIVE("LOW_TEMP"), 0);
    assert_int_equal(NOTES("ALERT_RESOLVED"), 2);
}

static void test_alert_delay_survives_restart(void **state)
{
    struct fixture *f = *state;
    struct cc_store *st = f->st;
    int64_t t = T0 - 1000 * S;

    reading(st, DELAYED, t, 9.0, -1);
    assert_int_equal(q(st, "SELECT count(*) FROM alerts"), 0);
    assert_int_equal(q(st, "SELECT since_ts FROM alert_pending WHERE device_id = 8"), t);
    reading(st, DELAYED, t + 30 * S, 9.5, -1);
    /* A restart: a new connection, nothing in memory. */
    cc_store_close(f->st);
    open_store(f);
    st = f->st;
    reading(st, DELAYED, t + 59 * S, 9.5, -1);
    assert_int_equal(q(st, "SELECT count(*) FROM alerts"), 0);
    reading(st, DELAYED, t + 60 * S, 9.7, -1);
    assert_int_equal(ACTIVE("HIGH_TEMP"), 1);
    assert_int_equal(q(st, "SELECT first_triggered_at FROM alerts"), t + 60 * S);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_pending"), 0);
    assert_int_equal(q(st, "SELECT message LIKE '%for 60 s' FROM alerts"), 1);
    assert_int_equal(NOTES("ALERT"), 2);
    reading(st, DELAYED, t + 70 * S, 7.0, -1);
    assert_int_equal(ACTIVE("HIGH_TEMP"), 0);

    /* A reading back in range restarts the delay. */
    t += 100 * S;
    reading(st, DELAYED, t, 9.0, -1);
    reading(st, DELAYED, t + 10 * S, 7.9, -1);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_pending"), 0);
    reading(st, DELAYED, t + 20 * S, 9.0, -1);
    reading(st, DELAYED, t + 70 * S, 9.0, -1);
    assert_int_equal(ACTIVE("HIGH_TEMP"), 0);
    reading(st, DELAYED, t + 80 * S, 9.0, -1);
    assert_int_equal(ACTIVE("HIGH_TEMP"), 1);
}

static void test_alert_late_reading_changes_nothing(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;

    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1);
    assert_int_equal(ACTIVE("HIGH_TEMP"), 1);
    reading(st, FRIDGE, T0 - 100 * S, 5.0, -1); /* older than the newest: stored only */
    assert_int_equal(ACTIVE("HIGH_TEMP"), 1);
    assert_int_equal(q(st, "SELECT count(*) FROM readings"), 2);
    reading(st, FRIDGE, T0 - 5 * S, 5.0, -1);
    assert_int_equal(ACTIVE("HIGH_TEMP"), 0);
    reading(st, FRIDGE, T0 - 50 * S, 12.0, -1); /* a late high reading raises nothing */
    assert_int_equal(ACTIVE("HIGH_TEMP"), 0);
    assert_int_equal(q(st, "SELECT count(*) FROM alerts"), 1);
}

static void test_alert_power_loss(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;

    reading(st, FRIDGE, T0 - 30 * S, 5.0, 1);
    assert_int_equal(q(st, "SELECT count(*) FROM alerts"), 0);
    reading(st, FRIDGE, T0 - 20 * S, 5.0, 0);
    assert_int_equal(ACTIVE("POWER_LOSS"), 1);
    reading(st, FRIDGE, T0 - 15 * S, 5.0, 0);
    assert_int_equal(q(st, "SELECT trigger_count FROM alerts"), 2);
    reading(st, FRIDGE, T0 - 10 * S, 5.0, -1); /* no powerStatus: no change */
    assert_int_equal(ACTIVE("POWER_LOSS"), 1);
    reading(st, FRIDGE, T0, 5.0, 1);
    assert_int_equal(ACTIVE("POWER_LOSS"), 0);
    assert_int_equal(q(st, "SELECT count(*) FROM alerts"), 1);
    assert_int_equal(NOTES("ALERT"), 2);
    assert_int_equal(NOTES("ALERT_RESOLVED"), 2);
}

static void test_alert_raise_dedupes(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    int64_t id1 = 0, id2 = 0;
    int created = -1;

    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(
        cc_alert_raise(st, 2, 7, CC_ALERT_HIGH_TEMP, 9.0, 8.0, "m", T0, T0, &id1, &created), CC_OK);
    assert_int_equal(created, 1);
    assert_int_equal(
        cc_alert_raise(st, 2, 7, CC_ALERT_HIGH_TEMP, 9.5, 8.0, "m", T0 + S, T0, &id2, &created),
        CC_OK);
    assert_int_equal(created, 0);
    assert_int_equal(id1, id2);
    /* The same notification written twice is one row (notifications_once). */
    assert_int_equal(cc_notify_customer_alert(st, id1, T0), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(q(st, "SELECT count(*) FROM alerts"), 1);
    assert_int_equal(q(st, "SELECT trigger_count FROM alerts"), 2);
    assert_int_equal(NOTES("ALERT"), 2);
    /* The partial unique index refuses a second ACTIVE row whoever writes it. */
    assert_int_not_equal(
        sqlite3_exec(
            cc_store_db(st),
            "INSERT INTO alerts (cold_cell_id, device_id, type, message,"
            " first_triggered_at, last_triggered_at) VALUES (2, 7, 'HIGH_TEMP', 'x', 1, 1)",
            NULL, NULL, NULL),
        SQLITE_OK);
}

static void test_jobs_offline_sensor_error(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    int raised = -1;

    reading(st, FRIDGE, T0 - 10 * S, 5.0, -1); /* last_seen_at = T0 */
    assert_int_equal(cc_jobs_offline_check(st, 600, T0 + 599 * S, &raised), CC_OK);
    assert_int_equal(raised, 0);
    assert_int_equal(cc_jobs_offline_check(st, 600, T0 + 600 * S, &raised), CC_OK);
    assert_int_equal(raised, 1); /* device 8 and 9 were never seen: nothing */
    assert_int_equal(ACTIVE("SENSOR_ERROR"), 1);
    assert_int_equal(q(st, "SELECT count(*) FROM devices WHERE status = 'OFFLINE'"), 1);
    assert_int_equal(NOTES("ALERT"), 2);
    assert_int_equal(cc_jobs_offline_check(st, 600, T0 + 700 * S, &raised), CC_OK);
    assert_int_equal(raised, 0);

    reading(st, FRIDGE, T0, 5.0, -1); /* any newer reading resolves it */
    assert_int_equal(ACTIVE("SENSOR_ERROR"), 0);
    assert_int_equal(q(st, "SELECT status = 'ONLINE' FROM devices WHERE id = 7"), 1);
    assert_int_equal(NOTES("ALERT_RESOLVED"), 2);

    /* Resolved by hand while still silent: not raised again until seen again. */
    exec_ok(st, "UPDATE devices SET last_seen_at = 1764136900000 WHERE id = 7"); /* T0+1000 s */
    assert_int_equal(cc_jobs_offline_check(st, 600, T0 + 2000 * S, &raised), CC_OK);
    assert_int_equal(raised, 1);
    exec_ok(st, "UPDATE alerts SET status = 'RESOLVED' WHERE type = 'SENSOR_ERROR'");
    assert_int_equal(cc_jobs_offline_check(st, 600, T0 + 3000 * S, &raised), CC_OK);
    assert_int_equal(raised, 0);
}

static void test_jobs_escalate_once(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    int n = -1;

    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1);
    assert_int_equal(cc_jobs_escalate(st, 3600, T0 + 3500 * S, &n), CC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cc_jobs_escalate(st, 3600, T0 + 3600 * S, &n), CC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(q(st, "SELECT escalated_at FROM alerts"), T0 + 3600 * S);
    /* The linked technician and every admin; not the customer, not tech2. */
    assert_int_equal(NOTES("ESCALATION"), 2);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE kind = 'ESCALATION'"
                           " AND user_id IN (2, 4)"),
                     2);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE event = 'ESCALATED'"), 1);
    assert_int_equal(cc_jobs_escalate(st, 3600, T0 + 9000 * S, &n), CC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(NOTES("ESCALATION"), 2);
}

/* The raise's read-back (SQLite: no RETURNING) finds the row by cell, device and type:
 * with an older ACTIVE alert of another type on the same device (re-triggered, so its
 * trigger_count is past 1), a new HIGH_TEMP is still told as new, under its own id, and
 * its re-trigger is not. */
static void test_alert_raise_reads_back_its_own_type(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    int64_t high;

    exec_ok(st, "INSERT INTO alerts (cold_cell_id, device_id, type, status, message,"
                " first_triggered_at, last_triggered_at, trigger_count)"
                " VALUES (2, 7, 'POWER_LOSS', 'ACTIVE', 'old', 1, 1, 5)");
    reading(st, FRIDGE, T0, 9.0, -1);
    high = q(st, "SELECT id FROM alerts WHERE type = 'HIGH_TEMP' AND status = 'ACTIVE'");
    assert_int_equal(
        q(st, "SELECT trigger_count FROM alerts WHERE type = 'POWER_LOSS' AND status = 'ACTIVE'"),
        5);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE event = 'CREATED'"), 1);
    assert_int_equal(q(st, "SELECT alert_id FROM alert_events WHERE event = 'CREATED'"), high);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE kind = 'ALERT'"
                           " AND alert_id = (SELECT id FROM alerts WHERE type = 'HIGH_TEMP')"),
                     2);
    reading(st, FRIDGE, T0 + S, 9.5, -1);
    assert_int_equal(q(st, "SELECT trigger_count FROM alerts WHERE type = 'HIGH_TEMP'"), 2);
    assert_int_equal(NOTES("ALERT"), 2);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events"), 1);
}

/* An admin also linked to the customer as a technician is in both of the escalation's
 * recipient sets (UNION ALL on SQLite): one notification, not two. */
static void test_jobs_escalate_admin_technician_once(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    int n = -1;

    exec_ok(st, "INSERT INTO technician_customers VALUES (4, 1)");
    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1);
    assert_int_equal(cc_jobs_escalate(st, 3600, T0 + 3600 * S, &n), CC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE kind = 'ESCALATION'"
                           " AND user_id = 4"),
                     1);
    assert_int_equal(NOTES("ESCALATION"), 2);
    /* The raise told the customer and both linked technicians, the admin once. */
    assert_int_equal(NOTES("ALERT"), 3);
}

static void test_jobs_daily_report(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    int64_t day = cc_jobs_report_day(5, T0); /* 05:45 -> yesterday */
    int64_t now = day + 86400 * S + 6 * 60 * S;
    int made = -1;

    assert_int_equal(day, T0 - (T0 % CC_DAY_MS) - CC_DAY_MS);
    assert_int_equal(cc_jobs_report_day(5, T0 - (T0 % CC_DAY_MS) + 4 * 60 * S), day - CC_DAY_MS);
    /* Readings of that day are older than 30 days' window? No: T0 - 1 day is fine. */
    exec_ok(st, "DELETE FROM readings");
    {
        char sql[512];

        snprintf(sql, sizeof sql,
                 "INSERT INTO readings (device_id, cold_cell_id, ts, temperature, received_at)"
                 " VALUES (7, 2, %lld, 5.0, 0), (7, 2, %lld, 9.0, 0), (7, 2, %lld, 4.0, 0),"
                 " (7, 2, %lld, 30.0, 0);"
                 "INSERT INTO alerts (cold_cell_id, device_id, type, status, message,"
                 " first_triggered_at, last_triggered_at) VALUES (2, 7, 'HIGH_TEMP', 'RESOLVED',"
                 " 'm', %lld, %lld)",
                 (long long)day, (long long)(day + 3600 * S), (long long)(day + 7200 * S),
                 (long long)(day + CC_DAY_MS), (long long)(day + 3600 * S),
                 (long long)(day + 3600 * S));
        exec_ok(st, sql);
    }
    assert_int_equal(cc_jobs_daily_report(st, day, now, &made), CC_OK);
    assert_int_equal(made, 2); /* both customers */
    assert_int_equal(q(st, "SELECT count(*) FROM daily_reports"), 2);
    assert_int_equal(NOTES("DAILY_REPORT"), 2);
    assert_int_equal(q(st, "SELECT json_array_length(payload, '$.cells') FROM daily_reports"
                           " WHERE customer_id = 1"),
                     2);
    assert_int_equal(q(st, "SELECT json_extract(c.value, '$.count') FROM daily_reports r,"
                           " json_each(r.payload, '$.cells') c WHERE r.customer_id = 1"
                           " AND json_extract(c.value, '$.coldCellId') = 2"),
                     3);
    assert_true(qd(st, "SELECT json_extract(c.value, '$.max') FROM daily_reports r,"
                       " json_each(r.payload, '$.cells') c WHERE r.customer_id = 1"
                       " AND json_extract(c.value, '$.coldCellId') = 2") == 9.0);
    assert_true(qd(st, "SELECT json_extract(c.value, '$.avg') FROM daily_reports r,"
                       " json_each(r.payload, '$.cells') c WHERE r.customer_id = 1"
                       " AND json_extract(c.value, '$.coldCellId') = 2") == 6.0);
    /* 9.0 at 01:00 until the next reading at 02:00: 60 minutes out of range. */
    assert_true(qd(st, "SELECT json_extract(c.value, '$.minutesOutOfRange') FROM daily_reports"
                       " r, json_each(r.payload, '$.cells') c WHERE r.customer_id = 1"
                       " AND json_extract(c.value, '$.coldCellId') = 2") == 60.0);
    assert_int_equal(q(st, "SELECT json_extract(c.value, '$.alertsRaised') FROM daily_reports"
                           " r, json_each(r.payload, '$.cells') c WHERE r.customer_id = 1"
                           " AND json_extract(c.value, '$.coldCellId') = 2"),
                     1);
    assert_int_equal(cc_jobs_daily_report(st, day, now + 60 * S, &made), CC_OK);
    assert_int_equal(made, 0);
    assert_int_equal(NOTES("DAILY_REPORT"), 2);
}

/* A publish that fails while fail_left > 0, recording topics. */
static struct {
    int fail_left;
    int calls;
    int ok;
    char topics[16][64];
    sqlite3 *db;     /* when set: */
    int in_txn;      /* publishes made with a transaction open on db */
    int64_t state;   /* the event's attempts and status at the last publish (status SENT: +100) */
    int64_t last_id; /* the event of the last publish */
    int64_t last_alert; /* and its alert */
    int64_t held_id;    /* when set: this event is still held by the client (CC_NOTIFY_HELD) */
    struct cc_notify_event acks[16]; /* acknowledged, for fake_acked to hand out */
    int nacks;
    int acked_calls;
} pub;

static int fake_publish(void *ctx, const char *topic, const char *payload, size_t len,
                        struct cc_notify_event ev)
{
    (void)ctx;
    (void)payload;
    (void)len;
    pub.calls++;
    pub.last_id = ev.id;
    pub.last_alert = ev.alert_id;
    if (pub.held_id != 0 && ev.id == pub.held_id)
        return CC_NOTIFY_HELD;
    if (pub.db != NULL) {
        sqlite3_stmt *stmt = NULL;

        pub.in_txn += !sqlite3_get_autocommit(pub.db);
        assert_int_equal(sqlite3_prepare_v2(pub.db,
                                            "SELECT max(attempts + 100 * (status = 'SENT'))"
                                            " FROM alert_events",
                                            -1, &stmt, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
        pub.state = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
    }
    if (pub.fail_left > 0) {
        pub.fail_left--;
        return -1;
    }
    if (pub.ok < 16)
        snprintf(pub.topics[pub.ok], sizeof pub.topics[0], "%s", topic);
    pub.ok++;
    return 0;
}

static void test_notify_deliver_retries_with_backoff(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_notify_channels ch = {.publish = fake_publish};
    int sent = -1;

    memset(&pub, 0, sizeof pub);
    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1); /* HIGH_TEMP raised: its CREATED event */

    pub.fail_left = 2;
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 100, &sent), CC_OK);
    assert_int_equal(sent, 0);
    assert_int_equal(q(st, "SELECT attempts FROM alert_events"), 1);
    assert_int_equal(q(st, "SELECT next_attempt_at FROM alert_events"), T0 + S);
    assert_int_equal(q(st, "SELECT status = 'PENDING' FROM alert_events"), 1);
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + 999, 100, &sent), CC_OK);
    assert_int_equal(pub.calls, 1); /* not due yet */
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + S, 100, &sent), CC_OK);
    assert_int_equal(q(st, "SELECT next_attempt_at FROM alert_events"), T0 + 3 * S);
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + 3 * S, 100, &sent), CC_OK);
    assert_int_equal(sent, 1);
    assert_string_equal(pub.topics[0], "alerts/2");
    assert_int_equal(q(st, "SELECT status = 'SENT' FROM alert_events"), 1);
    assert_int_equal(q(st, "SELECT attempts FROM alert_events"), 3);
    assert_int_equal(q(st, "SELECT sent_at FROM alert_events"), T0 + 3 * S);
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + 100 * S, 100, &sent), CC_OK);
    assert_int_equal(sent, 0);
    assert_int_equal(pub.calls, 3);

    /* A channel that never works: FAILED after CC_NOTIFY_MAX_ATTEMPTS, then left alone. */
    reading(st, FRIDGE, T0 - 9 * S, 5.0, -1); /* resolved: its RESOLVED event */
    pub.calls = 0;
    pub.fail_left = 1000;
    {
        int64_t t = T0;

        for (int i = 1; i <= CC_NOTIFY_MAX_ATTEMPTS; i++) {
            assert_int_equal(cc_notify_deliver(st, &ch, t, 100, NULL), CC_OK);
            t += cc_notify_backoff_ms(i);
        }
        assert_int_equal(cc_notify_deliver(st, &ch, t + 3600 * S, 100, NULL), CC_OK);
    }
    assert_int_equal(pub.calls, CC_NOTIFY_MAX_ATTEMPTS);
    assert_int_equal(q(st, "SELECT status = 'FAILED' FROM alert_events WHERE event = 'RESOLVED'"),
                     1);
    /* Counted by the worker (no trigger since schema/0012): the sent one once, the failed
     * one once, the retries not at all. */
    assert_int_equal(q(st, "SELECT value FROM stat_counters WHERE name = 'deliveries_sent'"
                           " AND label = 'mqtt'"),
                     1);
    assert_int_equal(q(st, "SELECT value FROM stat_counters WHERE name = 'deliveries_failed'"
                           " AND label = 'mqtt'"),
                     1);
    assert_int_equal(
        q(st, "SELECT last_error IS NOT NULL FROM alert_events WHERE event = 'RESOLVED'"), 1);
    assert_int_equal(cc_notify_backoff_ms(1), 1000);
    assert_int_equal(cc_notify_backoff_ms(3), 4000);
    assert_int_equal(cc_notify_backoff_ms(30), CC_NOTIFY_BACKOFF_MAX_MS);
}

/* SPEC §3: people have no broker accounts, so MQTT carries alert events only. With the
 * MQTT channel on, a notification is never published: the inbox copy is all there is
 * (SENT at once), and with a webhook it gets a webhook delivery and no mqtt one. */
static void test_notify_deliver_no_mqtt_for_notifications(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_notify_channels ch = {.publish = fake_publish};
    /* Nothing listens on the discard port: each webhook attempt fails at once. */
    struct cc_notify_channels hook = {.publish = fake_publish,
                                      .webhook_url = "http://127.0.0.1:9/hook"};
    int sent = -1;

    memset(&pub, 0, sizeof pub);
    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1); /* ALERT to users 1 and 2, CREATED event */
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_notify_system(st, 1, "Hello", "world", T0), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 100, &sent), CC_OK);
    assert_int_equal(sent, 1);
    assert_int_equal(pub.calls, 1);
    assert_string_equal(pub.topics[0], "alerts/2");
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE status = 'SENT'"), 3);
    assert_int_equal(q(st, "SELECT count(*) FROM notification_deliveries"), 0);

    reading(st, FRIDGE, T0 - 9 * S, 5.0, -1); /* ALERT_RESOLVED to users 1 and 2, RESOLVED */
    assert_int_equal(cc_notify_deliver(st, &hook, T0, 100, &sent), CC_OK);
    assert_int_equal(pub.calls, 2);
    assert_string_equal(pub.topics[1], "alerts/2");
    assert_int_equal(q(st, "SELECT count(*) FROM notification_deliveries WHERE channel = 'mqtt'"),
                     0);
    assert_int_equal(
        q(st, "SELECT count(*) FROM notification_deliveries WHERE channel = 'webhook'"), 2);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE status = 'PENDING'"), 2);
}

/* Notifications with no channel to send on leave the outbox in one call, however many
 * batches they take; one waiting for a channel this process lacks does not make the
 * call spin. */
static void test_notify_deliver_settles_every_batch(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_notify_channels none = {0};
    int sent = -1;

    exec_ok(st, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 450)"
                " INSERT INTO notifications (user_id, kind, channel, payload, status,"
                " next_attempt_at, created_at) SELECT 1, 'SYSTEM', 'inbox', '{}', 'PENDING', 0, 0"
                " FROM n");
    assert_true(450 > 2 * CC_NOTIFY_BATCH);
    exec_ok(st, "INSERT INTO notification_deliveries (notification_id, channel, next_attempt_at)"
                " SELECT min(id), 'webhook', 0 FROM notifications");
    assert_int_equal(cc_notify_deliver(st, &none, T0, 1 << 30, &sent), CC_OK);
    assert_int_equal(sent, 0);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE status = 'SENT'"), 449);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE status = 'PENDING'"), 1);
}

/* The alert object in a notification and its alert event is the alert as the change
 * left it (cc_alert_ops.c takes it from the statement's RETURNING, not from a read-back):
 * ACTIVE with trigger count 1 on raise, RESOLVED with its resolved_at on resolve, the
 * same text CC_ALERT_JSON_SQL makes from the row. */
static void test_alert_objects_are_the_changed_row(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;

    reading(st, FRIDGE, T0 - 90 * S, 9.0, -1);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications n, alerts a"
                           " WHERE n.kind = 'ALERT' AND json_extract(n.payload, '$.alert')"
                           " = " CC_ALERT_JSON_SQL),
                     2);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events e, alerts a WHERE e.event ="
                           " 'CREATED' AND e.cold_cell_id = 2 AND e.payload = " CC_ALERT_JSON_SQL),
                     1);
    reading(st, FRIDGE, T0 - 80 * S, 10.0, -1); /* a re-trigger: no object, no notification */
    assert_int_equal(q(st, "SELECT count(*) FROM notifications"), 2);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events"), 1);
    reading(st, FRIDGE, T0 - 70 * S, 5.0, -1);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications n, alerts a"
                           " WHERE n.kind = 'ALERT_RESOLVED' AND json_extract(n.payload,"
                           " '$.alert') = " CC_ALERT_JSON_SQL " AND a.status = 'RESOLVED'"),
                     2);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events e, alerts a WHERE e.event ="
                           " 'RESOLVED' AND e.cold_cell_id = 2 AND e.payload = " CC_ALERT_JSON_SQL
                           " AND json_extract(e.payload, '$.resolvedAt') IS NOT NULL"
                           " AND json_extract(e.payload, '$.triggerCount') = 2"),
                     1);
    /* The CREATED event kept the alert as it was raised. */
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE event = 'CREATED' AND"
                           " json_extract(payload, '$.status') = 'ACTIVE' AND"
                           " json_extract(payload, '$.triggerCount') = 1"),
                     1);
}

/* A process with no per-user channel settles due notifications in one statement
 * (settle_due): each gets what the per-row summary gives it, SENT with sent_at = now and
 * its attempts unchanged; one not yet due is left alone. */
static void test_notify_deliver_settle_columns(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_notify_channels none = {0};
    int sent = -1;

    exec_ok(st, "INSERT INTO notifications (user_id, kind, channel, payload, status, attempts,"
                " next_attempt_at, created_at) VALUES (1, 'SYSTEM', 'inbox', '{}', 'PENDING', 3,"
                " 0, 0), (1, 'SYSTEM', 'inbox', '{}', 'PENDING', 0, 9999999999999, 0)");
    assert_int_equal(cc_notify_deliver(st, &none, T0, 100, &sent), CC_OK);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE status = 'SENT' AND"
                           " attempts = 3 AND last_error IS NULL AND next_attempt_at = 0"),
                     1);
    assert_int_equal(q(st, "SELECT sent_at FROM notifications WHERE status = 'SENT'"), T0);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE status = 'PENDING'"
                           " AND sent_at IS NULL AND next_attempt_at = 9999999999999"),
                     1);
}

static void test_notify_deliver_alert_events(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_notify_channels ch = {.publish = fake_publish};
    struct cc_notify_channels none = {0};
    int sent = 0;

    memset(&pub, 0, sizeof pub);
    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1);
    /* With no channel at all the inbox row is all there is: SENT at once. */
    assert_int_equal(cc_notify_deliver(st, &none, T0, 100, &sent), CC_OK);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE status = 'SENT'"), 2);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE status = 'PENDING'"), 1);
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 100, &sent), CC_OK);
    assert_int_equal(sent, 1);
    assert_string_equal(pub.topics[0], "alerts/2");
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE status = 'SENT'"), 1);
}

/* The client's publish window (ingestd: INGEST_PUBLISH_WINDOW): held = accepted and not yet
 * acknowledged. */
static struct {
    int size;
    int acked;
} win;

static int fake_room(void *ctx)
{
    (void)ctx;
    return win.size - (pub.ok - win.acked);
}

/* A pass publishes no more alert events than the client's window has room for, and none
 * while it is full: the rest wait PENDING with no attempt counted and no error, and go
 * once the client has room again. What the client holds stays bounded by its window,
 * however large the backlog. */
static void test_notify_deliver_publish_window(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_notify_channels ch = {.publish = fake_publish, .publish_room = fake_room};
    int sent = -1, taken = -1;

    memset(&pub, 0, sizeof pub);
    memset(&win, 0, sizeof win);
    for (int i = 0; i < 5; i++) { /* raised and resolved: 10 events */
        reading(st, FRIDGE, T0 - (100 - 2 * i) * S, 9.0, -1);
        reading(st, FRIDGE, T0 - (99 - 2 * i) * S, 5.0, -1);
    }
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE status = 'PENDING'"), 10);
    win.size = 3;
    assert_int_equal(cc_notify_deliver_rows(st, &ch, T0, 1 << 30, &sent, &taken), CC_OK);
    assert_int_equal(sent, 3);
    assert_int_equal(taken, 3 + 20); /* and the 20 notifications, settled (no channel) */
    assert_int_equal(pub.calls, 3);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE status = 'PENDING' AND"
                           " attempts = 0 AND last_error IS NULL"),
                     7);
    /* Full: nothing is read, nothing counted. */
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 1 << 30, &sent), CC_OK);
    assert_int_equal(sent, 0);
    assert_int_equal(pub.calls, 3);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE attempts = 0"), 7);
    win.acked = 2; /* two acknowledged: room for two */
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 1 << 30, &sent), CC_OK);
    assert_int_equal(pub.calls, 5);
    win.acked = pub.ok;
    win.size = 1000;
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 1 << 30, &sent), CC_OK);
    assert_int_equal(sent, 5);
    assert_int_equal(pub.calls, 10);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE status = 'SENT' AND"
                           " attempts = 1"),
                     10);
}

/* The broker's acknowledgements, as ingestd's client hands them out. */
static int fake_acked(void *ctx, struct cc_notify_event *evs, int max)
{
    int n = pub.nacks < max ? pub.nacks : max;

    (void)ctx;
    pub.acked_calls++;
    memcpy(evs, pub.acks, (size_t)n * sizeof *evs);
    memmove(pub.acks, pub.acks + n, (size_t)(pub.nacks - n) * sizeof *evs);
    pub.nacks -= n;
    return n;
}

/* Alert event id as the client names it: with its alert. */
static struct cc_notify_event event_of(struct cc_store *st, int64_t id)
{
    char sql[96];

    snprintf(sql, sizeof sql, "SELECT alert_id FROM alert_events WHERE id = %lld", (long long)id);
    return (struct cc_notify_event){id, q(st, sql)};
}

#define MQTT_SENT_TOTAL                                                                            \
    "SELECT value FROM stat_counters WHERE name = 'deliveries_sent' AND label = 'mqtt'"

/* An alert event handed to a client that acknowledges later (ingestd) is SENT only once
 * the broker acknowledged it: until then PENDING, its next attempt a lease ahead, counted
 * nowhere as sent; a crash loses the client's copy but not the row, which is due again when
 * the lease runs out. A live client that still holds it is not handed it twice: the lease
 * is renewed, no attempt counted. Real failures keep their backoff. */
static void test_notify_deliver_sent_only_when_acknowledged(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_notify_channels ch = {.publish = fake_publish, .acked = fake_acked};
    const int64_t L = CC_NOTIFY_ACK_LEASE_MS;
    int64_t id, sent0 = q(st, MQTT_SENT_TOTAL);
    int sent = -1;

    memset(&pub, 0, sizeof pub);
    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1); /* HIGH_TEMP raised: its CREATED event */
    id = q(st, "SELECT id FROM alert_events");

    /* Handed over, not acknowledged: not SENT. */
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 100, &sent), CC_OK);
    assert_int_equal(pub.calls, 1);
    assert_int_equal(pub.last_id, id);
    assert_int_equal(sent, 0);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE status = 'PENDING' AND"
                           " attempts = 1 AND sent_at IS NULL AND last_error IS NULL"),
                     1);
    assert_int_equal(q(st, "SELECT next_attempt_at FROM alert_events"), T0 + L);
    assert_int_equal(q(st, MQTT_SENT_TOTAL), sent0);
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + L - 1, 100, &sent), CC_OK);
    assert_int_equal(pub.calls, 1); /* under its lease: not handed over twice */
    assert_int_equal(q(st, "SELECT status = 'PENDING' FROM alert_events"), 1);

    /* The PUBACK of a message that carried the same id for another alert (a row SQLite gave
     * the id before, deleted since: cc_notify_event) is not this event's. */
    assert_int_equal(pub.last_alert, event_of(st, id).alert_id);
    pub.acks[pub.nacks++] = (struct cc_notify_event){id, pub.last_alert + 1};
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + 1, 100, &sent), CC_OK);
    assert_int_equal(sent, 0);
    assert_int_equal(q(st, "SELECT status = 'PENDING' FROM alert_events"), 1);

    /* Acknowledged: SENT at the next pass, and counted. */
    pub.acks[pub.nacks++] = event_of(st, id);
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + 5 * S, 100, &sent), CC_OK);
    assert_int_equal(sent, 1);
    assert_int_equal(pub.calls, 1);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE status = 'SENT' AND"
                           " attempts = 1 AND last_error IS NULL"),
                     1);
    assert_int_equal(q(st, "SELECT sent_at FROM alert_events"), T0 + 5 * S);
    assert_int_equal(q(st, MQTT_SENT_TOTAL), sent0 + 1);
    /* A late duplicate acknowledgement changes nothing and counts nothing. */
    pub.acks[pub.nacks++] = event_of(st, id);
    assert_int_equal(cc_notify_record_acks(st, &ch, T0 + 6 * S, &sent), CC_OK);
    assert_int_equal(sent, 0);
    assert_int_equal(q(st, MQTT_SENT_TOTAL), sent0 + 1);

    /* A publish that fails: backoff as before, no lease. */
    reading(st, FRIDGE, T0 - 9 * S, 5.0, -1); /* resolved: its RESOLVED event */
    id = q(st, "SELECT id FROM alert_events WHERE event = 'RESOLVED'");
    pub.fail_left = 1;
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 100, &sent), CC_OK);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE event = 'RESOLVED' AND"
                           " status = 'PENDING' AND attempts = 1 AND last_error IS NOT NULL"),
                     1);
    assert_int_equal(q(st, "SELECT next_attempt_at FROM alert_events WHERE event = 'RESOLVED'"),
                     T0 + S);
    /* Handed over (attempt 2), then the process dies: no acknowledgement ever comes. */
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + S, 100, &sent), CC_OK);
    assert_int_equal(pub.calls, 3);
    assert_int_equal(q(st, "SELECT next_attempt_at FROM alert_events WHERE event = 'RESOLVED'"),
                     T0 + S + L);
    /* The lease runs out: due again, handed over again (a restarted ingestd). */
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + S + L - 1, 100, &sent), CC_OK);
    assert_int_equal(pub.calls, 3);
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + S + L, 100, &sent), CC_OK);
    assert_int_equal(pub.calls, 4);
    assert_int_equal(pub.last_id, id);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE event = 'RESOLVED' AND"
                           " status = 'PENDING' AND attempts = 3 AND last_error IS NULL"),
                     1);
    assert_int_equal(q(st, "SELECT next_attempt_at FROM alert_events WHERE event = 'RESOLVED'"),
                     T0 + S + 2 * L);
    /* A live client that still holds it (the broker away longer than a lease): the lease
     * is renewed, no attempt counted, however long that lasts. */
    pub.held_id = id;
    for (int64_t t = T0 + S + 2 * L; t < T0 + S + 40 * L; t += L)
        assert_int_equal(cc_notify_deliver(st, &ch, t, 100, &sent), CC_OK);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE event = 'RESOLVED' AND"
                           " status = 'PENDING' AND attempts = 3 AND last_error IS NULL"),
                     1);
    assert_int_equal(q(st, "SELECT next_attempt_at FROM alert_events WHERE event = 'RESOLVED'"),
                     T0 + S + 40 * L);
    pub.acks[pub.nacks++] = event_of(st, id);
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + S + 40 * L, 100, &sent), CC_OK);
    assert_int_equal(sent, 1);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE status = 'SENT'"), 2);
    assert_int_equal(q(st, MQTT_SENT_TOTAL), sent0 + 2);
}

/* Acknowledgements are recorded even while the client's window is full (they are what
 * opens it), many in one pass. */
static void test_notify_deliver_acks_with_window_full(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_notify_channels ch = {
        .publish = fake_publish, .acked = fake_acked, .publish_room = fake_room};
    int sent = -1;

    memset(&pub, 0, sizeof pub);
    memset(&win, 0, sizeof win);
    for (int i = 0; i < 3; i++) { /* raised and resolved: 6 events */
        reading(st, FRIDGE, T0 - (100 - 2 * i) * S, 9.0, -1);
        reading(st, FRIDGE, T0 - (99 - 2 * i) * S, 5.0, -1);
    }
    win.size = 4;
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 1 << 30, &sent), CC_OK);
    assert_int_equal(pub.calls, 4);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE attempts = 1 AND"
                           " status = 'PENDING'"),
                     4);
    for (int i = 0; i < 4; i++) {
        char sql[128];

        snprintf(sql, sizeof sql,
                 "SELECT id FROM alert_events WHERE attempts = 1 ORDER BY id LIMIT 1 OFFSET %d", i);
        pub.acks[pub.nacks++] = event_of(st, q(st, sql));
    }
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + S, 1 << 30, &sent), CC_OK); /* still full */
    assert_int_equal(pub.calls, 4);
    assert_int_equal(sent, 4);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE status = 'SENT'"), 4);
}

/* An alert event is read, published and recorded in one transaction: the publish only
 * queues the message (ingestd/mqtt.c), so there is no claim (a lease) and no second
 * transaction. The publish sees the row as it was (attempts 0, PENDING), and the attempt
 * it counts is this one. */
static void test_notify_deliver_event_in_one_transaction(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_notify_channels ch = {.publish = fake_publish};
    int sent = -1;

    memset(&pub, 0, sizeof pub);
    pub.db = cc_store_db(st);
    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1);
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 100, &sent), CC_OK);
    assert_int_equal(sent, 1);
    assert_int_equal(pub.calls, 1);
    assert_int_equal(pub.in_txn, 1);
    assert_int_equal(pub.state, 0); /* nothing written before the publish */
    assert_int_equal(sqlite3_get_autocommit(pub.db), 1);
    assert_int_equal(q(st, "SELECT attempts FROM alert_events WHERE status = 'SENT'"), 1);
    assert_int_equal(q(st, "SELECT next_attempt_at FROM alert_events"), T0);
    pub.db = NULL;
}

/* SQLite's notification payload is written out by concatenation (cc_notify.c,
 * PAYLOAD_LITE) instead of json_object(..., 'alert', json($5)): byte for byte the text
 * json_object makes, for names that need escaping too (quotes, backslash, control
 * characters, non-ASCII) in the names and the message. */
static void test_notify_payload_is_json_objects_text(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;

    exec_ok(st, "UPDATE cold_cells SET name = 'Fr\"i''dge \\ ' || char(9, 10, 1, 233, 8364)"
                " || ' /' WHERE id = 2;"
                "UPDATE locations SET name = char(127, 34) || '<L>' || char(128512) WHERE id = 1");
    reading(st, FRIDGE, T0 - 90 * S, 9.0, -1);
    exec_ok(st, "UPDATE alerts SET message = 'm \"q\" \\ ' || char(10, 31)");
    reading(st, FRIDGE, T0 - 80 * S, 5.0, -1);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications"), 4);
    assert_int_equal(q(st,
                       "SELECT count(*) FROM notifications n JOIN alerts a ON a.id ="
                       " n.alert_id JOIN cold_cells c ON c.id = a.cold_cell_id"
                       " JOIN locations l ON l.id = c.location_id JOIN alert_events e"
                       " ON e.alert_id = a.id AND e.event = CASE n.kind WHEN 'ALERT' THEN"
                       " 'CREATED' ELSE 'RESOLVED' END WHERE n.payload = json_object("
                       "'title', CASE n.kind WHEN 'ALERT' THEN 'Alert' ELSE 'Resolved' END"
                       " || ': ' || a.type || ' in ' || c.name || ' (' || l.name || ')',"
                       " 'message', json_extract(e.payload, '$.message'), 'coldCellName', c.name,"
                       " 'locationName', l.name,"
                       " 'alert', json(e.payload))"),
                     4);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE kind = 'ALERT_RESOLVED'"
                           " AND instr(payload, '\"message\":\"m \\\"q') > 0"),
                     2);
}

/* The outbox's due indexes hold PENDING rows only (migration 0010): partial, and the
 * worker's scans of due rows search them. */
static void test_outbox_due_indexes_are_partial(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    static const char *const scans[] = {
        "EXPLAIN QUERY PLAN SELECT id FROM alert_events WHERE status = 'PENDING' AND"
        " next_attempt_at <= 5 ORDER BY next_attempt_at, id LIMIT 10",
        "EXPLAIN QUERY PLAN SELECT id FROM notifications WHERE status = 'PENDING' AND"
        " next_attempt_at <= 5 ORDER BY next_attempt_at, id LIMIT 10",
    };
    static const char *const names[] = {"alert_events_due", "notifications_due"};

    assert_int_equal(q(st, "SELECT count(*) FROM pragma_index_list('alert_events')"
                           " WHERE name = 'alert_events_due' AND partial = 1"),
                     1);
    assert_int_equal(q(st, "SELECT count(*) FROM pragma_index_list('notifications')"
                           " WHERE name = 'notifications_due' AND partial = 1"),
                     1);
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *stmt = NULL;
        int searched = 0, sorted = 0;

        assert_int_equal(sqlite3_prepare_v2(cc_store_db(st), scans[i], -1, &stmt, NULL), SQLITE_OK);
        while (sqlite3_step(stmt) == SQLITE_ROW) {
            const char *d = (const char *)sqlite3_column_text(stmt, 3);

            searched += strstr(d, names[i]) != NULL && strstr(d, "SEARCH") != NULL;
            sorted += strstr(d, "TEMP B-TREE") != NULL;
        }
        sqlite3_finalize(stmt);
        assert_int_equal(searched, 1);
        assert_int_equal(sorted, 0); /* the index gives the order, with the rowid */
    }
}

/* The writes of every reading and every alert change evaluate their CHECKs without a
 * temporary b-tree (migration 0011: no IN list of more than two values, which SQLite
 * evaluates by building one per statement), and the CHECKs still refuse what they did. */
static void test_hot_checks_build_no_temporary_btree(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    static const char *const writes[] = {
        "UPDATE devices SET status = 'ONLINE', last_seen_at = 1 WHERE id = 7",
        "INSERT INTO alerts (cold_cell_id, device_id, type, status, message, first_triggered_at,"
        " last_triggered_at) VALUES (2, 7, 'LOW_TEMP', 'ACTIVE', 'm', 1, 1)",
        "INSERT INTO notifications (user_id, kind, channel, payload, status, next_attempt_at,"
        " created_at) VALUES (1, 'ALERT', 'inbox', '{}', 'PENDING', 1, 1)",
        "UPDATE notifications SET status = 'SENT' WHERE id = 1",
        "INSERT INTO alert_events (alert_id, cold_cell_id, event, payload, status,"
        " next_attempt_at, created_at) VALUES (1, 2, 'CREATED', '{}', 'PENDING', 1, 1)",
        "UPDATE alert_events SET status = 'SENT' WHERE id = 1",
        "INSERT INTO notification_deliveries (notification_id, channel, status, next_attempt_at)"
        " VALUES (1, 'webhook', 'PENDING', 1)",
    };
    static const char *const refused[] = {
        "UPDATE devices SET status = 'online' WHERE id = 7",
        "INSERT INTO alerts (cold_cell_id, device_id, type, status, message, first_triggered_at,"
        " last_triggered_at) VALUES (2, 7, 'WARM', 'ACTIVE', 'm', 1, 1)",
        "INSERT INTO notifications (user_id, kind, channel, payload, status, next_attempt_at,"
        " created_at) VALUES (1, 'NOTE', 'inbox', '{}', 'PENDING', 1, 1)",
        "INSERT INTO notifications (user_id, kind, channel, payload, status, next_attempt_at,"
        " created_at) VALUES (1, 'ALERT', 'inbox', '{}', 'DONE', 1, 1)",
        "INSERT INTO alert_events (alert_id, cold_cell_id, event, payload, status,"
        " next_attempt_at, created_at) VALUES (1, 2, 'MOVED', '{}', 'PENDING', 1, 1)",
        "INSERT INTO alert_events (alert_id, cold_cell_id, event, payload, status,"
        " next_attempt_at, created_at) VALUES (1, 2, 'CREATED', '{}', 'QUEUED', 1, 1)",
        "INSERT INTO notification_deliveries (notification_id, channel, status, next_attempt_at)"
        " VALUES (1, 'sms', 'PENDING', 1)",
        "INSERT INTO notification_deliveries (notification_id, channel, status, next_attempt_at)"
        " VALUES (1, 'email', 'LOST', 1)",
    };
    sqlite3 *db = cc_store_db(st);

    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        char sql[512];
        sqlite3_stmt *stmt = NULL;
        int ephemeral = 0;

        snprintf(sql, sizeof sql, "EXPLAIN %s", writes[i]);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
        while (sqlite3_step(stmt) == SQLITE_ROW)
            ephemeral += strcmp((const char *)sqlite3_column_text(stmt, 1), "OpenEphemeral") == 0;
        sqlite3_finalize(stmt);
        if (ephemeral != 0)
            fail_msg("%s: %d temporary b-trees", writes[i], ephemeral);
        exec_ok(st, writes[i]); /* the values the CHECKs admit */
    }
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if ((sqlite3_exec(db, refused[i], NULL, NULL, NULL) & 0xff) != SQLITE_CONSTRAINT)
            fail_msg("not refused: %s", refused[i]);
        assert_int_equal(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_CHECK);
    }
}

/* The writes of an alert change run without a temporary b-tree (each one cost about a
 * tenth of the change's instructions). The notification INSERTs (customer and
 * technicians; technicians and admins): SQLite built one for the IN list of the linked
 * technicians on every execution; they are now one SELECT per recipient kind under UNION
 * ALL. The raise and the resolve: SQLite 3.40 builds one for every RETURNING; they no
 * longer return anything on SQLite. The recipients do not change: each once (admin 4,
 * also linked as a technician, gets one ESCALATION), disabled users none. */
static void test_alert_writes_build_no_temporary_btree(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *cached = NULL;
    int n = -1, checked = 0;

    exec_ok(st, "INSERT INTO users (id, email, password_hash, role, name, disabled, created_at)"
                " VALUES (6, 'off@example.com', 'x', 'TECHNICIAN', 'Off', 1, 0);"
                "INSERT INTO technician_customers VALUES (6, 1), (4, 1)");
    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1); /* raised */
    assert_int_equal(cc_jobs_escalate(st, 3600, T0 + 3600 * S, &n), CC_OK);
    assert_int_equal(n, 1);
    reading(st, FRIDGE, T0 - 9 * S, 5.0, -1); /* resolved */
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE kind = 'ALERT'"
                           " AND user_id IN (1, 2, 4)"),
                     3);
    assert_int_equal(NOTES("ALERT"), 3);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE kind = 'ALERT_RESOLVED'"
                           " AND user_id IN (1, 2, 4)"),
                     3);
    assert_int_equal(NOTES("ALERT_RESOLVED"), 3);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications WHERE kind = 'ESCALATION'"
                           " AND user_id IN (2, 4)"),
                     2);
    assert_int_equal(NOTES("ESCALATION"), 2);
    /* The statements cc_notify prepared and cached on this connection. */
    while ((cached = sqlite3_next_stmt(db, cached)) != NULL) {
        const char *text = sqlite3_sql(cached);
        char sql[4096];
        sqlite3_stmt *stmt = NULL;
        int ephemeral = 0;

        if (text == NULL || ((strncmp(text, "INSERT INTO notifications", 25) != 0 ||
                              strstr(text, "technician_customers") == NULL) &&
                             strstr(text, "SELECT u.id, a.type, a.message") == NULL &&
                             strncmp(text, "INSERT INTO alerts", 18) != 0 &&
                             strncmp(text, "UPDATE alerts SET status = 'RESOLVED'", 37) != 0))
            continue;
        assert_true((size_t)snprintf(sql, sizeof sql, "EXPLAIN %s", text) < sizeof sql);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
        while (sqlite3_step(stmt) == SQLITE_ROW)
            ephemeral += strcmp((const char *)sqlite3_column_text(stmt, 1), "OpenEphemeral") == 0;
        sqlite3_finalize(stmt);
        if (ephemeral != 0)
            fail_msg("%s: %d temporary b-trees", text, ephemeral);
        checked++;
    }
    /* The escalation's notification INSERT, the raise's and resolve's recipients (SQLite
     * writes their rows one by one: test_alert_changes_build_the_object_in_c), the raise,
     * the resolve. */
    assert_int_equal(checked, 4);
}

/* cc_alert_json_load's object of alert id (in cell 2) is CC_ALERT_JSON_SQL's text. */
static void assert_object_is_sql_text(struct cc_store *st, int64_t id)
{
    sqlite3_stmt *sql = NULL;
    int64_t cell = 0;
    int type = -1;
    char *json = NULL;

    assert_int_equal(sqlite3_prepare_v2(cc_store_db(st),
                                        "SELECT " CC_ALERT_JSON_SQL
                                        ", a.type FROM alerts a WHERE a.id = ?1",
                                        -1, &sql, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(sql, 1, id);
    assert_int_equal(sqlite3_step(sql), SQLITE_ROW);
    assert_int_equal(cc_alert_json_load(st, id, &cell, &type, &json), CC_OK);
    assert_int_equal(cell, 2);
    assert_int_equal(type, cc_alert_type_parse((const char *)sqlite3_column_text(sql, 1)));
    assert_string_equal(json, (const char *)sqlite3_column_text(sql, 0));
    free(json);
    sqlite3_finalize(sql);
}

/* The object written in C (cc_alert_json.c) is the text CC_ALERT_JSON_SQL makes of the
 * same row: strings with every byte 1..255 (quotes, backslashes, the controls SQLite
 * escapes by letter and by \u00xx, DEL, UTF-8), doubles SQLite writes with an exponent,
 * fifteen digits or -0.0, NULLs in every nullable column, the first and last instants
 * CC_SQL_ISO can write. A time it cannot write is refused (the caller then builds the
 * object in SQL). */
static void test_alert_json_is_json_objects_text(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    static const double values[] = {-10.0, 0.1, 1.0 / 3.0, 1e20, -0.0, 150.0, -1e-7, 2.5e15};
    static const int64_t times[] = {0, T0, 999, 253402300799999LL};
    sqlite3 *db = cc_store_db(st);
    char all[256], *json = NULL;
    int64_t cell = 0;
    int type = -1;

    for (int b = 1; b < 256; b++)
        all[b - 1] = (char)b;
    all[255] = '\0';
    for (int i = 0; i < 8; i++) {
        sqlite3_stmt *ins = NULL;

        assert_int_equal(
            sqlite3_prepare_v2(db,
                               "INSERT INTO alerts (id, cold_cell_id, device_id, type, status,"
                               " value, threshold, message, first_triggered_at,"
                               " last_triggered_at, trigger_count, acknowledged_at,"
                               " acknowledged_by, escalated_at, resolved_at, resolved_by,"
                               " resolution_note) VALUES (?1, 2, 7, 'HIGH_TEMP', ?2, ?3, ?4, ?5,"
                               " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                               -1, &ins, NULL),
            SQLITE_OK);
        sqlite3_bind_int64(ins, 1, 100 + i);
        sqlite3_bind_text(ins, 2, i != 0 ? "RESOLVED" : "ACTIVE", -1, SQLITE_STATIC);
        if (i != 3)
            sqlite3_bind_double(ins, 3, values[i]);
        if (i != 2)
            sqlite3_bind_double(ins, 4, values[7 - i]);
        sqlite3_bind_text(ins, 5, i % 3 ? all : "temperature 9.0 °C above the maximum 8.0 °C", -1,
                          SQLITE_STATIC);
        sqlite3_bind_int64(ins, 6, times[i % 4]);
        sqlite3_bind_int64(ins, 7, times[(i + 1) % 4]);
        sqlite3_bind_int64(ins, 8, 1 + i * 1000);
        if (i % 2) {
            sqlite3_bind_int64(ins, 9, times[(i + 2) % 4]);
            sqlite3_bind_int64(ins, 10, 1);
            sqlite3_bind_int64(ins, 12, times[(i + 3) % 4]);
            sqlite3_bind_int64(ins, 13, 4);
            sqlite3_bind_text(ins, 14, i == 5 ? "" : all + i, -1, SQLITE_STATIC);
        } else if (i == 4) {
            sqlite3_bind_int64(ins, 11, T0 + 7);
        }
        assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_finalize(ins);
        assert_object_is_sql_text(st, 100 + i);
    }
    /* Times across the whole range: leap days, century years, every month's end. */
    for (int64_t ms = 0; ms <= 253402300799999LL; ms += 86399999LL * 293 + 12345) {
        sqlite3_stmt *set = NULL;

        assert_int_equal(sqlite3_prepare_v2(db,
                                            "UPDATE alerts SET first_triggered_at = ?1,"
                                            " resolved_at = ?1 + 86400000 * 58 WHERE id = 101",
                                            -1, &set, NULL),
                         SQLITE_OK);
        sqlite3_bind_int64(set, 1, ms);
        assert_int_equal(sqlite3_step(set), SQLITE_DONE);
        sqlite3_finalize(set);
        if (ms + 86400000LL * 58 <= 253402300799999LL)
            assert_object_is_sql_text(st, 101);
    }
    exec_ok(st, "UPDATE alerts SET escalated_at = 253402300800000 WHERE id = 100");
    assert_int_equal(cc_alert_json_load(st, 100, &cell, &type, &json), CC_ERR_VALIDATION);
    assert_null(json);
    assert_true(type >= 0); /* the resolve counts it even when the object is built in SQL */
    assert_int_equal(cc_alert_json_load(st, 99, &cell, &type, &json), CC_ERR_NOT_FOUND);
}

/* A new alert and its resolution run no statement that builds the alert object in SQL
 * (json_object over the alerts row, about a fifth of an alert change's instructions):
 * the raise writes it in C from what it inserted, the resolve from the row's columns (a
 * re-trigger reads back only the id). Nor one that builds the notification payload in SQL
 * (json_quote per row, in an INSERT ... SELECT that opened a statement journal): the
 * payload is written once in C and inserted per recipient. Fails on 145430d, whose raise
 * read the new row back as its object and whose resolve did the same by id, and whose
 * notifications were one INSERT ... SELECT. The objects are still the row's
 * (alert_objects_are_the_changed_row); the ids the engine keeps are still right (the
 * re-trigger and the resolve find the alert). */
static void test_alert_changes_build_the_object_in_c(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *cached = NULL;
    int with_object = 0, checked = 0;

    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1); /* raised */
    reading(st, FRIDGE, T0 - 9 * S, 9.5, -1);  /* re-triggered */
    reading(st, FRIDGE, T0 - 8 * S, 5.0, -1);  /* resolved */
    reading(st, FRIDGE, T0 - 7 * S, 9.0, -1);  /* raised again */
    reading(st, DELAYED, T0 - 7 * S, 1.0, 0);  /* pending LOW_TEMP, POWER_LOSS raised */
    reading(st, DELAYED, T0 - 6 * S, 1.0, 1);  /* POWER_LOSS resolved */
    assert_int_equal(q(st, "SELECT count(*) FROM alerts WHERE status = 'RESOLVED'"), 2);
    assert_int_equal(q(st, "SELECT trigger_count FROM alerts WHERE type = 'HIGH_TEMP'"
                           " AND status = 'RESOLVED'"),
                     2);
    assert_int_equal(q(st,
                       "SELECT count(*) FROM alert_events e JOIN alerts a ON a.id ="
                       " e.alert_id WHERE e.event = 'RESOLVED' AND e.payload = " CC_ALERT_JSON_SQL),
                     2);
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events e JOIN alerts a ON a.id ="
                           " e.alert_id WHERE e.event = 'CREATED' AND a.status = 'ACTIVE'"
                           " AND e.payload = " CC_ALERT_JSON_SQL),
                     1);
    assert_int_equal(NOTES("ALERT"), 6);
    assert_int_equal(NOTES("ALERT_RESOLVED"), 4);
    while ((cached = sqlite3_next_stmt(db, cached)) != NULL) {
        const char *text = sqlite3_sql(cached);

        if (text == NULL ||
            (strstr(text, "json_object('id'") == NULL && strstr(text, "json_quote(") == NULL))
            continue;
        with_object += sqlite3_stmt_status(cached, SQLITE_STMTSTATUS_RUN, 0);
        if (sqlite3_stmt_status(cached, SQLITE_STMTSTATUS_RUN, 0) != 0)
            fprintf(stderr, "ran: %.100s\n", text);
    }
    while ((cached = sqlite3_next_stmt(db, cached)) != NULL)
        checked += sqlite3_sql(cached) != NULL &&
                   strncmp(sqlite3_sql(cached), "INSERT INTO alert_events", 24) == 0;
    assert_int_equal(checked, 1); /* the writers' statements are the cached ones looked at */
    assert_int_equal(with_object, 0);
}

static void test_notify_signature(void **state)
{
    char sig[CC_NOTIFY_SIGNATURE_LEN];
    const char *body = "The quick brown fox jumps over the lazy dog";

    (void)state;
    cc_notify_signature("key", body, strlen(body), sig);
    assert_string_equal(sig,
                        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
}

/* The metrics totals (schema/0004 triggers): a re-trigger is not a new alert, a resolve
 * counts once, deliveries count when they reach SENT or FAILED, deletes lower nothing. */
static void test_stats_counters(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_notify_channels ch = {.publish = fake_publish};
    struct cc_stats cs;
    int resolved = 0;

    memset(&pub, 0, sizeof pub);
    reading(st, FRIDGE, T0 - 30 * S, 9.0, -1); /* HIGH_TEMP raised */
    reading(st, FRIDGE, T0 - 29 * S, 9.5, -1); /* re-triggered: the same alert */
    reading(st, FRIDGE, T0 - 28 * S, 5.0, 0);  /* HIGH_TEMP resolved, POWER_LOSS raised */
    reading(st, FRIDGE, T0 - 27 * S, 9.0, 0);  /* a second HIGH_TEMP */
    assert_int_equal(cc_stats_load(st, &cs), CC_OK);
    assert_int_equal(cs.alerts_raised[0], 2); /* HIGH_TEMP */
    assert_int_equal(cs.alerts_resolved[0], 1);
    assert_int_equal(cs.alerts_raised[2], 1); /* POWER_LOSS */
    assert_int_equal(cs.alerts_resolved[2], 0);
    assert_int_equal(cs.alerts_raised[1] + cs.alerts_raised[3], 0);
    assert_int_equal((int64_t)cs.alerts_raised[0],
                     q(st, "SELECT count(*) FROM alerts WHERE type = 'HIGH_TEMP'"));

    /* A resolve of a resolved alert does not count again. */
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(
        cc_alert_resolve(st, q(st, "SELECT min(id) FROM alerts"), T0, 0, NULL, T0, &resolved),
        CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(resolved, 0);
    assert_int_equal(cc_stats_load(st, &cs), CC_OK);
    assert_int_equal(cs.alerts_resolved[0], 1);

    /* Deliveries: the first attempt fails (still PENDING: not counted), then all are sent. */
    pub.fail_left = 1;
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 100, NULL), CC_OK);
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + 3600 * S, 100, NULL), CC_OK);
    assert_int_equal(cc_stats_load(st, &cs), CC_OK);
    /* The mqtt channel carries alert events only: they are what it counts (schema/0007). */
    assert_true(cs.notifications_sent[0] > 0);
    assert_int_equal((int64_t)cs.notifications_sent[0],
                     q(st, "SELECT count(*) FROM alert_events WHERE status = 'SENT'"));
    assert_int_equal(q(st, "SELECT count(*) FROM notification_deliveries"), 0);
    assert_int_equal(cs.notifications_failed[0], 0);

    exec_ok(st, "DELETE FROM alerts");
    assert_int_equal(cc_stats_load(st, &cs), CC_OK);
    assert_int_equal(cs.alerts_raised[0], 2);
}

/* Decodes the encoded words of a Subject value (one per line) back into text; every
 * word must decode to whole UTF-8 characters. */
static void subject_decode(const char *v, char *out, size_t outlen)
{
    size_t o = 0;

    while (*v != '\0') {
        const char *end;
        unsigned char buf[128];
        int n, pad = 0;

        assert_memory_equal(v, "=?UTF-8?B?", 10);
        v += 10;
        end = strstr(v, "?=");
        assert_non_null(end);
        assert_true(end - v <= 64);
        n = EVP_DecodeBlock(buf, (const unsigned char *)v, (int)(end - v));
        assert_true(n >= 0);
        pad = (end - v >= 1 && end[-1] == '=') + (end - v >= 2 && end[-2] == '=');
        n -= pad;
        /* a word never ends inside a character */
        assert_true(n == 0 || (buf[n - 1] & 0xC0) != 0xC0);
        assert_true(o + (size_t)n < outlen);
        memcpy(out + o, buf, (size_t)n);
        o += (size_t)n;
        v = end + 2;
        if (*v != '\0') {
            assert_memory_equal(v, "\r\n ", 3);
            v += 3;
        }
    }
    out[o] = '\0';
}

static void test_notify_subject_rfc2047(void **state)
{
    char s[CC_NOTIFY_SUBJECT_MAX], text[512], title[400], want[512];
    const char *line;

    (void)state;
    /* ASCII stays readable; control characters cannot start a header. */
    cc_notify_subject("Alert: HIGH_TEMP in Walk-in (Main)\r\nBcc: x@y", s);
    assert_string_equal(s, "[coldchain] Alert: HIGH_TEMP in Walk-in (Main)  Bcc: x@y");

    cc_notify_subject("Alert: HIGH_TEMP in Kühlraum (Bäckerei)", s);
    assert_memory_equal(s, "=?UTF-8?B?", 10);
    subject_decode(s, text, sizeof text);
    assert_string_equal(text, "[coldchain] Alert: HIGH_TEMP in Kühlraum (Bäckerei)");

    /* Long: several words, folded, each line under 78 characters, none splitting a
     * character; the title is cut at a character boundary after 200 bytes. */
    title[0] = '\0';
    for (int i = 0; i < 130; i++)
        strcat(title, "€"); /* 3 bytes each */
    cc_notify_subject(title, s);
    for (line = s; line != NULL;) {
        const char *next = strstr(line, "\r\n");

        assert_true((next != NULL ? (size_t)(next - line) : strlen(line)) < 78);
        line = next != NULL ? next + 2 : NULL;
    }
    subject_decode(s, text, sizeof text);
    strcpy(want, "[coldchain] ");
    for (int i = 0; i < 66; i++) /* 66 * 3 = 198 <= 200 < 201 */
        strcat(want, "€");
    assert_string_equal(text, want);
}

static void test_alerts_api_resolve_ack_access(void **state)
{
    struct cc_store *st = ((struct fixture *)*state)->st;
    struct cc_principal customer = {1, CC_ROLE_CUSTOMER};
    struct cc_principal other = {5, CC_ROLE_CUSTOMER};
    struct cc_principal tech2 = {3, CC_ROLE_TECHNICIAN};
    struct cc_principal admin = {4, CC_ROLE_ADMIN};
    struct cc_alert_filter f;
    struct cc_page pg = {50, 0};
    cJSON *out = NULL, *err = NULL, *body = cJSON_Parse("{\"note\":\"door fixed\"}");
    int64_t id;

    reading(st, FRIDGE, T0 - 10 * S, 9.0, -1);
    id = q(st, "SELECT id FROM alerts");
    assert_int_equal(cc_alerts_get(st, &other, id, &out), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_alerts_get(st, &tech2, id, &out), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_alerts_resolve(st, &other, id, body, &out, &err), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_alerts_acknowledge(st, &customer, id, &out, &err), CC_OK);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(out, "status")), "ACTIVE");
    assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(out, "acknowledgedAt")));
    cJSON_Delete(out);
    out = NULL;
    /* alerts/{coldCellId} on acknowledge (SPEC §3): one ACKNOWLEDGED event with the
     * acknowledged object, and none for a repeated acknowledge; nobody is notified. */
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE event = 'ACKNOWLEDGED' AND"
                           " json_extract(payload, '$.acknowledgedAt') IS NOT NULL"),
                     1);
    assert_int_equal(cc_alerts_acknowledge(st, &customer, id, &out, &err), CC_OK);
    cJSON_Delete(out);
    out = NULL;
    assert_int_equal(q(st, "SELECT count(*) FROM alert_events WHERE event = 'ACKNOWLEDGED'"), 1);
    assert_int_equal(q(st, "SELECT count(*) FROM notifications"), 2); /* the two ALERTs */

    assert_int_equal(cc_alerts_filter_parse("status=ACTIVE&type=HIGH_TEMP&coldCellId=2", &f, &err),
                     CC_OK);
    assert_int_equal(cc_alerts_list(st, &customer, &f, &pg, &out), CC_OK);
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(out, "total")), 1);
    cJSON_Delete(out);
    out = NULL;
    assert_int_equal(cc_alerts_list(st, &other, &f, &pg, &out), CC_OK);
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(out, "total")), 0);
    cJSON_Delete(out);
    out = NULL;
    assert_int_equal(cc_alerts_filter_parse("status=OPEN", &f, &err), CC_ERR_VALIDATION);
    cJSON_Delete(err);
    err = NULL;
    /* Empty is not "no filter": refused, naming the parameter. */
    for (int i = 0; i < 4; i++) {
        static const char *const qs[] = {"status=", "type=", "status", "type=&status=ACTIVE"};
        const char *field = i == 0 || i == 2 ? "status" : "type";

        assert_int_equal(cc_alerts_filter_parse(qs[i], &f, &err), CC_ERR_VALIDATION);
        assert_string_equal(
            cJSON_GetStringValue(cJSON_GetObjectItem(
                cJSON_GetArrayItem(
                    cJSON_GetObjectItem(cJSON_GetObjectItem(err, "error"), "details"), 0),
                "field")),
            field);
        cJSON_Delete(err);
        err = NULL;
    }

    assert_int_equal(cc_alerts_resolve(st, &customer, id, body, &out, &err), CC_OK);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(out, "status")), "RESOLVED");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(out, "resolutionNote")),
                        "door fixed");
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(out, "resolvedBy")), 1);
    cJSON_Delete(out);
    out = NULL;
    assert_int_equal(NOTES("ALERT_RESOLVED"), 2);
    assert_int_equal(cc_alerts_resolve(st, &admin, id, NULL, &out, &err), CC_ERR_CONFLICT);
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(NOTES("ALERT_RESOLVED"), 2);
    assert_int_equal(cc_alerts_acknowledge(st, &admin, id, &out, &err), CC_ERR_CONFLICT);
    cJSON_Delete(err);
    err = NULL;
    assert_int_equal(q(st, "SELECT count(*) FROM audit_log WHERE entity = 'alert'"), 3);

    /* Notifications: one's own only. */
    assert_int_equal(cc_notifications_list(st, &customer, &pg, &out), CC_OK);
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(out, "total")), 2);
    id = (int64_t)cJSON_GetNumberValue(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(out, "items"), 0), "id"));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
                            cJSON_GetArrayItem(cJSON_GetObjectItem(out, "items"), 0), "kind")),
                        "ALERT_RESOLVED");
    cJSON_Delete(out);
    out = NULL;
    assert_int_equal(cc_notifications_read(st, &other, id, &out), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_notifications_read(st, &admin, id, &out), CC_ERR_NOT_FOUND);
    assert_int_equal(cc_notifications_read(st, &customer, id, &out), CC_OK);
    assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(out, "readAt")));
    cJSON_Delete(out);
    cJSON_Delete(body);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_alert_high_hysteresis_autoresolve),
        T(test_alert_low_temp),
        T(test_alert_delay_survives_restart),
        T(test_alert_late_reading_changes_nothing),
        T(test_alert_power_loss),
        T(test_alert_raise_dedupes),
        T(test_jobs_offline_sensor_error),
        T(test_jobs_escalate_once),
        T(test_jobs_escalate_admin_technician_once),
        T(test_alert_raise_reads_back_its_own_type),
        T(test_jobs_daily_report),
        T(test_notify_deliver_retries_with_backoff),
        T(test_notify_deliver_no_mqtt_for_notifications),
        T(test_notify_deliver_settles_every_batch),
        T(test_notify_deliver_settle_columns),
        T(test_alert_objects_are_the_changed_row),
        T(test_notify_deliver_alert_events),
        T(test_notify_deliver_event_in_one_transaction),
        T(test_notify_deliver_publish_window),
        T(test_notify_deliver_sent_only_when_acknowledged),
        T(test_notify_deliver_acks_with_window_full),
        T(test_notify_payload_is_json_objects_text),
        T(test_outbox_due_indexes_are_partial),
        T(test_hot_checks_build_no_temporary_btree),
        T(test_alert_writes_build_no_temporary_btree),
        T(test_alert_json_is_json_objects_text),
        T(test_alert_changes_build_the_object_in_c),
        T(test_notify_signature),
        T(test_alerts_api_resolve_ack_access),
        T(test_stats_counters),
        cmocka_unit_test(test_notify_subject_rfc2047),
    };

    cc_log_init("test_alert", CC_LOG_ERROR, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
