/* test_alert_pg.c - the engine's and the jobs' modules on PostgreSQL (issue 14 point 2):
 * the same calls run on a SQLite store (in memory, migrated) and on a PostgreSQL 15 store
 * (a throwaway cluster, tools/pgtest.sh, started by the group's setup; the unit tests run
 * from the repository root) must leave the same rows. Raising, re-triggering, resolving
 * and escalating alerts (cc_alert.c, cc_alert_ops.c), their notifications and alert
 * events (cc_notify.c), the delivery worker's claim and record steps
 * (cc_notify_deliver.c), the jobs (cc_jobs.c) and a retention pass (cc_retention.c).
 * Until the PostgreSQL migration runner exists the PG store is opened without
 * CC_STORE_MIGRATE and schema/pg/0001_init.sql is run by cc_store_exec. A PostgreSQL that
 * cannot start fails the group: it is not skipped.
 *
 * Ids are compared by rank (the n-th alert), not by value: a PostgreSQL identity spends a
 * value on every INSERT ... ON CONFLICT, so a re-trigger leaves a gap there and not in
 * SQLite. JSON columns are compared parsed (PostgreSQL's json_build_object writes blanks
 * and 9 for 9.0), with the alert ids inside by rank too. */
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
#include <cjson/cJSON.h>

#include "cc_alert.h"
#include "cc_alert_ops.h"
#include "cc_dbi.h"
#include "cc_jobs.h"
#include "cc_notify.h"
#include "cc_rc.h"
#include "fixture.h"
#include "cc_retention.h"
#include "cc_stats.h"
#include "cc_store.h"

#define PG_PORT "55412"    /* this suite's socket name (tools/pgtest.sh PORT) */
#define T0 1764135900000LL /* 2025-11-26T05:45:00.000Z */
#define S 1000LL
#define DUMP_MAX 65536 /* bytes of one table's canonical text */

static char pg_dir[64];
static char pg_url[256];

struct fx {
    struct cc_store *lite, *pg;
    struct cc_store *other; /* a second PostgreSQL session (another process), or NULL */
};

static int group_teardown(void **state)
{
    (void)state;
    return fixture_pg_stop(pg_dir);
}

static int group_setup(void **state)
{
    (void)state;
    return fixture_pg_start("alertpg", PG_PORT, pg_dir, sizeof pg_dir, pg_url, sizeof pg_url);
}

/* The same rows as test_alert.c's fixture, in SQL both dialects run. */
static const char seed_sql[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 'c1@example.com', 'x', 'CUSTOMER', 'C1', 0),"
    " (2, 'tech@example.com', 'x', 'TECHNICIAN', 'T', 0),"
    " (3, 'tech2@example.com', 'x', 'TECHNICIAN', 'T2', 0),"
    " (4, 'admin@example.com', 'x', 'ADMIN', 'A', 0),"
    " (5, 'c2@example.com', 'x', 'CUSTOMER', 'C2', 0);"
    "INSERT INTO technician_customers (technician_id, customer_id) VALUES (2, 1), (3, 5);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'L', 0),"
    " (2, 5, 'L2', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, hysteresis,"
    " alarm_delay_s, created_at) VALUES (2, 1, 'Fridge', 2, 8, 0.5, 0, 0),"
    " (3, 1, 'Slow', 2, 8, 0.5, 60, 0), (4, 2, 'Other', 2, 8, 0.5, 0, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
    " api_key_prefix, created_at) VALUES (7, 'SN-F', 2, 'h', 'p', 0),"
    " (8, 'SN-D', 3, 'h', 'p', 0), (9, 'SN-O', 4, 'h', 'p', 0);";

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char *schema = fixture_pg_schema();

    assert_non_null(f);
    assert_int_equal(cc_store_open(":memory:", CC_STORE_MIGRATE, &f->lite), CC_OK);
    assert_int_equal(cc_store_open(pg_url, 0, &f->pg), CC_OK);
    /* A fresh schema per test (the extension citext goes with public and comes back). */
    assert_int_equal(cc_store_exec(f->pg, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"),
                     CC_OK);
    assert_int_equal(cc_store_exec(f->pg, schema), CC_OK);
    free(schema);
    assert_int_equal(cc_store_exec(f->lite, seed_sql), CC_OK);
    assert_int_equal(cc_store_exec(f->pg, seed_sql), CC_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    /* The other session first: a failed test may leave it holding locks that the next
     * setup's DROP SCHEMA would wait for. */
    cc_store_close(f->other);
    cc_store_close(f->lite);
    cc_store_close(f->pg);
    free(f);
    return 0;
}

/* The integer answer of a one-row query with optional $1. */
static int64_t q1(struct cc_store *st, const char *sql, int64_t arg)
{
    struct cc_stmt *s = NULL;
    int64_t v;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    if (strstr(sql, "$1") != NULL)
        assert_int_equal(cc_stmt_bind_int64(s, 1, arg), CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    v = cc_stmt_column_int64(s, 0);
    assert_int_equal(cc_stmt_step(s), CC_OK);
    cc_stmt_release(s);
    return v;
}

/* Runs a query with optional $1 and reads its rows to the end. */
static void rows(struct cc_store *st, const char *sql, int64_t arg)
{
    struct cc_stmt *s = NULL;
    int rc;

    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    if (strstr(sql, "$1") != NULL)
        assert_int_equal(cc_stmt_bind_int64(s, 1, arg), CC_OK);
    while ((rc = cc_stmt_step(s)) == CC_ROW)
        ;
    assert_int_equal(rc, CC_OK);
    cc_stmt_release(s);
}

static const char sql_alert_rank[] = "SELECT count(*) FROM alerts WHERE id <= $1";

/* JSON text -> canonical JSON text: parsed and printed again, the alert object's "id"
 * (an object with "triggerCount") replaced by its rank, also inside "alert". */
static void canon_alert_ids(struct cc_store *st, cJSON *o)
{
    cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");

    if (cJSON_GetObjectItemCaseSensitive(o, "triggerCount") != NULL && cJSON_IsNumber(id))
        cJSON_SetNumberValue(id, (double)q1(st, sql_alert_rank, (int64_t)id->valuedouble));
    if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "alert")))
        canon_alert_ids(st, cJSON_GetObjectItemCaseSensitive(o, "alert"));
}

static void append(char *out, const char *s)
{
    size_t n = strlen(out);

    assert_true(n + strlen(s) + 1 < DUMP_MAX);
    memcpy(out + n, s, strlen(s) + 1);
}

/* The rows of sql as text, one line per row; kinds says each column's kind: i integer,
 * d double, t text, j JSON (canonical, see canon_alert_ids). */
static void dump(struct cc_store *st, const char *sql, const char *kinds, char *out)
{
    struct cc_stmt *s = NULL;
    char cell[64];
    int rc;

    out[0] = '\0';
    assert_int_equal(cc_stmt_prepare(st, sql, &s), CC_OK);
    while ((rc = cc_stmt_step(s)) == CC_ROW) {
        for (int c = 0; kinds[c] != '\0'; c++) {
            if (cc_stmt_column_is_null(s, c)) {
                append(out, "NULL");
            } else if (kinds[c] == 'i') {
                snprintf(cell, sizeof cell, "%lld", (long long)cc_stmt_column_int64(s, c));
                append(out, cell);
            } else if (kinds[c] == 'd') {
                snprintf(cell, sizeof cell, "%.17g", cc_stmt_column_double(s, c));
                append(out, cell);
            } else if (kinds[c] == 't') {
                append(out, cc_stmt_column_text(s, c));
            } else {
                cJSON *j = cJSON_Parse(cc_stmt_column_text(s, c));
                char *text;

                assert_non_null(j);
                /* A second statement while s is open: a different text, so its own. */
                canon_alert_ids(st, j);
                text = cJSON_PrintUnformatted(j);
                assert_non_null(text);
                append(out, text);
                free(text);
                cJSON_Delete(j);
            }
            append(out, kinds[c + 1] != '\0' ? "|" : "\n");
        }
    }
    assert_int_equal(rc, CC_OK);
    cc_stmt_release(s);
}

/* Every table the modules write, ids by rank. */
static const char *const dumps[][2] = {
    {"SELECT (SELECT count(*) FROM alerts b WHERE b.id <= a.id), cold_cell_id, device_id, type,"
     " status, value, threshold, message, first_triggered_at, last_triggered_at, trigger_count,"
     " acknowledged_at, acknowledged_by, escalated_at, resolved_at, resolved_by, resolution_note"
     " FROM alerts a ORDER BY a.id",
     "iiittddtiiiiiiiit"},
    {"SELECT device_id, type, since_ts FROM alert_pending ORDER BY device_id, type", "iti"},
    /* One INSERT ... SELECT writes a notification per recipient in the order its join
     * yields them, which differs by database: rows in order of their natural key. */
    {"SELECT user_id, (SELECT count(*) FROM alerts b WHERE b.id <= n.alert_id) AS ar, kind,"
     " channel, payload, status, attempts, next_attempt_at, created_at, sent_at, read_at,"
     " last_error FROM notifications n ORDER BY created_at, ar, kind, user_id",
     "iittjtiiiiit"},
    {"SELECT n.user_id, (SELECT count(*) FROM alerts b WHERE b.id <= n.alert_id) AS ar, n.kind,"
     " d.channel, d.status, d.attempts, d.next_attempt_at, d.sent_at, d.last_error"
     " FROM notification_deliveries d JOIN notifications n ON n.id = d.notification_id"
     " ORDER BY n.created_at, ar, n.kind, n.user_id, d.channel",
     "iittiiiit"},
    {"SELECT (SELECT count(*) FROM alerts b WHERE b.id <= e.alert_id), cold_cell_id, event,"
     " payload, status, attempts, next_attempt_at, created_at, sent_at, last_error"
     " FROM alert_events e ORDER BY e.id",
     "iitjtiiiit"},
    {"SELECT customer_id, day, payload, created_at FROM daily_reports ORDER BY id", "itji"},
    {"SELECT id, status, last_seen_at FROM devices ORDER BY id", "iti"},
    {"SELECT device_id, ts, temperature FROM readings ORDER BY device_id, ts", "iid"},
    {"SELECT received_at, topic FROM rejected_messages ORDER BY received_at", "it"},
};

/* Both stores hold the same rows in every table above. */
static void assert_same_rows(struct fx *f)
{
    char *a = malloc(DUMP_MAX), *b = malloc(DUMP_MAX);

    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < sizeof dumps / sizeof dumps[0]; i++) {
        dump(f->lite, dumps[i][0], dumps[i][1], a);
        dump(f->pg, dumps[i][0], dumps[i][1], b);
        if (strcmp(a, b) != 0) {
            size_t k = 0, line = 0; /* print the first line that differs */

            for (; a[k] == b[k]; k++)
                line = a[k] == '\n' ? k + 1 : line;
            fprintf(stderr, "%s\n-- SQLite:\n%.*s\n-- PostgreSQL:\n%.*s\n", dumps[i][0],
                    (int)strcspn(a + line, "\n"), a + line, (int)strcspn(b + line, "\n"), b + line);
            fail_msg("table %zu differs", i);
        }
    }
    free(a);
    free(b);
}

/* One reading through the alert engine (load state, apply) in its own transaction. */
static void reading(struct cc_store *st, int64_t device, int64_t cell, int64_t ts, double t,
                    int power)
{
    struct cc_device dev = {.id = device, .cold_cell_id = cell};
    struct cc_reading r = {.ts_ms = ts,
                           .ts_given = 1,
                           .temperature = t,
                           .power_status = power,
                           .door_status = CC_ABSENT};

    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_alert_on_reading(st, &dev, &r, 1, T0), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
}

/* Resolves ACTIVE alert id by hand (user 4, with a note), then again: the second is a no-op. */
static void resolve_by_hand_twice(struct cc_store *st, int64_t id)
{
    int resolved = -1;

    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_alert_resolve(st, id, T0 - 60 * S, 4, "fixed", T0, &resolved), CC_OK);
    assert_int_equal(resolved, 1);
    assert_int_equal(cc_alert_resolve(st, id, T0, 4, "again", T0, &resolved), CC_OK);
    assert_int_equal(resolved, 0);
    assert_int_equal(cc_store_commit(st), CC_OK);
}

#define ACTIVE(st) q1(st, "SELECT count(*) FROM alerts WHERE status = 'ACTIVE'", 0)
#define NOTES(st) q1(st, "SELECT count(*) FROM notifications", 0)

/* Raise, re-trigger (engine and direct), resolve (hysteresis and by hand), power loss,
 * an alarm delay, escalation and the offline check, on both stores. */
static void alerts_scenario(struct cc_store *st)
{
    int64_t id1 = 0, id2 = 0;
    int created = -1, n = -1;

    reading(st, 7, 2, T0 - 90 * S, 9.0, CC_ABSENT);  /* HIGH_TEMP raised */
    reading(st, 7, 2, T0 - 70 * S, 10.0, CC_ABSENT); /* re-triggered */
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_alert_raise(st, 2, 7, CC_ALERT_HIGH_TEMP, 10.5, 8.0, "m", T0 - 80 * S, T0,
                                    &id1, &created),
                     CC_OK);
    assert_int_equal(created, 0);
    assert_int_equal(cc_notify_customer_alert(st, id1, T0), CC_OK); /* a duplicate: no row */
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(q1(st, "SELECT trigger_count FROM alerts WHERE id = $1", id1), 3);
    /* last_triggered_at keeps the later of the two times */
    assert_int_equal(q1(st, "SELECT last_triggered_at FROM alerts WHERE id = $1", id1),
                     T0 - 70 * S);
    reading(st, 7, 2, T0 - 50 * S, 7.5, CC_FALSE); /* resolved; POWER_LOSS raised */
    assert_int_equal(q1(st, "SELECT resolved_at FROM alerts WHERE id = $1", id1), T0 - 50 * S);
    reading(st, 8, 3, T0 - 100 * S, 9.0, CC_ABSENT); /* pending: the 60 s delay */
    assert_int_equal(q1(st, "SELECT count(*) FROM alert_pending", 0), 1);
    reading(st, 8, 3, T0 - 40 * S, 9.2, CC_ABSENT); /* 60 s on: raised, "for 60 s" */
    assert_int_equal(q1(st, "SELECT count(*) FROM alert_pending", 0), 0);
    assert_int_equal(ACTIVE(st), 2);

    /* By hand, with a note, resolved_at = max(at, last_triggered_at); then again: no-op. */
    id2 = q1(st, "SELECT id FROM alerts WHERE type = 'POWER_LOSS'", 0);
    resolve_by_hand_twice(st, id2);
    assert_int_equal(q1(st, "SELECT resolved_at FROM alerts WHERE id = $1", id2), T0 - 50 * S);

    assert_int_equal(cc_jobs_escalate(st, 3600, T0 + 3600 * S, &n), CC_OK);
    assert_int_equal(n, 1); /* the delayed HIGH_TEMP, still ACTIVE */
    assert_int_equal(cc_jobs_escalate(st, 3600, T0 + 3700 * S, &n), CC_OK);
    assert_int_equal(n, 0);

    assert_int_equal(cc_store_exec(st, "UPDATE devices SET last_seen_at = 1764135000000"
                                       " WHERE id = 9"),
                     CC_OK);
    assert_int_equal(cc_jobs_offline_check(st, 600, T0 + 600 * S, &n), CC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(cc_jobs_offline_check(st, 600, T0 + 700 * S, &n), CC_OK);
    assert_int_equal(n, 0);

    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_notify_system(st, 1, "Hello", "world \"quoted\"", T0), CC_OK);
    assert_int_equal(cc_notify_alert_acknowledged(st, id1, T0), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);

    assert_int_equal(q1(st, "SELECT count(*) FROM alerts", 0), 4);
    assert_int_equal(ACTIVE(st), 2); /* the delayed HIGH_TEMP and SENSOR_ERROR */
    /* ALERT for 4 alerts to 2 people each (customer 1 and tech 2; cell 4: customer 5 and
     * tech 3), ALERT_RESOLVED for 2 to 2, ESCALATION to tech 2 and admin 4, one SYSTEM. */
    assert_int_equal(NOTES(st), 15);
    assert_int_equal(q1(st, "SELECT count(*) FROM alert_events", 0), 8);
}

static void test_alerts_notifications_jobs_same_rows(void **state)
{
    struct fx *f = *state;

    alerts_scenario(f->lite);
    alerts_scenario(f->pg);
    assert_same_rows(f);
    /* SQLite's payloads are what they always were: json_object's text, 9.0 with its ".0". */
    assert_int_equal(q1(f->lite,
                        "SELECT count(*) FROM alert_events WHERE payload LIKE"
                        " '{\"id\":1,\"coldCellId\":2,%\"value\":9.0,\"threshold\":8.0,%'",
                        0),
                     1);
}

/* cc_stats_load's alert totals, [0..3] raised and [4..7] resolved by type, as one string. */
static void alert_totals(struct cc_store *st, char *out, size_t cap)
{
    struct cc_stats cs;

    assert_int_equal(cc_stats_load(st, &cs), CC_OK);
    snprintf(out, cap, "%llu %llu %llu %llu / %llu %llu %llu %llu", cs.alerts_raised[0],
             cs.alerts_raised[1], cs.alerts_raised[2], cs.alerts_raised[3], cs.alerts_resolved[0],
             cs.alerts_resolved[1], cs.alerts_resolved[2], cs.alerts_resolved[3]);
}

#define ASSERT_TOTALS(st, want)                                                                    \
    do {                                                                                           \
        char got_[128];                                                                            \
        alert_totals(st, got_, sizeof got_);                                                       \
        assert_string_equal(got_, want);                                                           \
    } while (0)

/* The alert totals of stat_counters, counted by the store at commit (cc_stats.h; no
 * trigger since schema/0012 and pg/0008): a raise counts once (a re-trigger not), a
 * resolve once, a rolled-back raise or resolve not at all, on every writer's path (the
 * engine, by hand, the offline check); and no alert is written outside a transaction
 * that would count it. */
static void alert_counts_scenario(struct cc_store *st)
{
    int64_t id = 0;
    int created = -1, resolved = -1, n = -1;

    ASSERT_TOTALS(st, "0 0 0 0 / 0 0 0 0");
    reading(st, 7, 2, T0 - 90 * S, 9.0, CC_ABSENT);  /* HIGH_TEMP raised */
    reading(st, 7, 2, T0 - 80 * S, 10.0, CC_ABSENT); /* re-triggered: not counted */
    ASSERT_TOTALS(st, "1 0 0 0 / 0 0 0 0");
    id = q1(st, "SELECT id FROM alerts WHERE type = 'HIGH_TEMP'", 0);

    /* Rolled back: a new LOW_TEMP and the HIGH_TEMP resolved leave no count behind, and
     * the next transaction (which commits) does not carry them either. */
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_alert_raise(st, 4, 9, CC_ALERT_LOW_TEMP, 1.0, 2.0, "cold", T0 - 70 * S, T0,
                                    NULL, &created),
                     CC_OK);
    assert_int_equal(created, 1);
    assert_int_equal(cc_alert_resolve(st, id, T0 - 60 * S, 4, "x", T0, &resolved), CC_OK);
    assert_int_equal(resolved, 1);
    cc_store_rollback(st);
    ASSERT_TOTALS(st, "1 0 0 0 / 0 0 0 0");
    reading(st, 8, 3, T0 - 100 * S, 5.0, CC_ABSENT); /* nothing raised */
    ASSERT_TOTALS(st, "1 0 0 0 / 0 0 0 0");

    /* By hand: counted once, a second resolve not. */
    resolve_by_hand_twice(st, id);
    ASSERT_TOTALS(st, "1 0 0 0 / 1 0 0 0");

    /* Raised and resolved in one transaction: both counted. */
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_alert_raise(st, 4, 9, CC_ALERT_POWER_LOSS, NAN, NAN, "power", T0 - 50 * S,
                                    T0, &id, &created),
                     CC_OK);
    assert_int_equal(cc_alert_resolve(st, id, T0 - 40 * S, 0, NULL, T0, &resolved), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    ASSERT_TOTALS(st, "1 0 1 0 / 1 0 1 0");

    /* The jobs' offline check raises SENSOR_ERROR in its own transaction. */
    assert_int_equal(cc_store_exec(st, "UPDATE devices SET last_seen_at = 1764135000000"
                                       " WHERE id = 9"),
                     CC_OK);
    assert_int_equal(cc_jobs_offline_check(st, 600, T0 + 600 * S, &n), CC_OK);
    assert_int_equal(n, 1);
    ASSERT_TOTALS(st, "1 0 1 1 / 1 0 1 0");

    /* Outside cc_store_begin nothing would count: refused, nothing written. */
    assert_int_equal(
        cc_alert_raise(st, 2, 7, CC_ALERT_LOW_TEMP, 1.0, 2.0, "m", T0, T0, NULL, &created),
        CC_ERR_INTERNAL);
    assert_int_equal(cc_alert_resolve(st, id, T0, 0, NULL, T0, &resolved), CC_ERR_INTERNAL);
    assert_int_equal(q1(st, "SELECT count(*) FROM alerts WHERE type = 'LOW_TEMP'", 0), 0);
    ASSERT_TOTALS(st, "1 0 1 1 / 1 0 1 0");
    assert_int_equal(q1(st, "SELECT count(*) FROM alerts", 0), 3);
    assert_int_equal(q1(st, "SELECT count(*) FROM alerts WHERE status = 'RESOLVED'", 0), 2);

    /* A counter row gone (deleted by hand, a partial restore) must not stop the writes that
     * count: the commit makes it again. With an UPDATE alone every batch that raised an
     * alert failed and ingestd's writer retried it for ever. */
    assert_int_equal(cc_store_exec(st, "DELETE FROM stat_counters WHERE name = 'alerts_raised'"
                                       " AND label = 'LOW_TEMP'"),
                     CC_OK);
    reading(st, 7, 2, T0 - 30 * S, -50.0, CC_ABSENT); /* LOW_TEMP raised */
    assert_int_equal(q1(st, "SELECT count(*) FROM alerts WHERE type = 'LOW_TEMP'", 0), 1);
    ASSERT_TOTALS(st, "1 1 1 1 / 1 0 1 0");
}

/* f->pg made again as ccctl migrate leaves it (the fixture's schema is 0001_init alone,
 * with the counting triggers pg/0008 drops), with the seed rows. */
static void pg_migrated(struct fx *f)
{
    assert_int_equal(cc_store_exec(f->pg, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"),
                     CC_OK);
    cc_store_close(f->pg);
    f->pg = NULL;
    assert_int_equal(cc_store_open(pg_url, CC_STORE_MIGRATE, &f->pg), CC_OK);
    assert_int_equal(cc_store_exec(f->pg, seed_sql), CC_OK);
}

static void test_alert_counts_at_commit(void **state)
{
    struct fx *f = *state;

    pg_migrated(f);
    alert_counts_scenario(f->lite);
    alert_counts_scenario(f->pg);
}

/* The daily report: the same JSON (parsed) from both texts. */
static void report_scenario(struct cc_store *st)
{
    int64_t day = cc_jobs_report_day(5, T0);
    char sql[512];
    int made = -1;

    snprintf(sql, sizeof sql,
             "INSERT INTO readings (device_id, cold_cell_id, ts, temperature, received_at)"
             " VALUES (7, 2, %lld, 5.0, 0), (7, 2, %lld, 9.0, 0), (7, 2, %lld, 4.0, 0),"
             " (7, 2, %lld, 30.0, 0), (8, 3, %lld, 3.25, 0);"
             "INSERT INTO alerts (cold_cell_id, device_id, type, status, message,"
             " first_triggered_at, last_triggered_at) VALUES (2, 7, 'HIGH_TEMP', 'RESOLVED',"
             " 'm', %lld, %lld)",
             (long long)day, (long long)(day + 3600 * S), (long long)(day + 7200 * S),
             (long long)(day + CC_DAY_MS), (long long)(day + 60 * S), (long long)(day + 3600 * S),
             (long long)(day + 3600 * S));
    assert_int_equal(cc_store_exec(st, sql), CC_OK);
    assert_int_equal(cc_jobs_daily_report(st, day, day + CC_DAY_MS + 360 * S, &made), CC_OK);
    assert_int_equal(made, 2); /* both customers; customer 5's cell had no reading */
    assert_int_equal(cc_jobs_daily_report(st, day, day + CC_DAY_MS + 420 * S, &made), CC_OK);
    assert_int_equal(made, 0);
}

static void test_daily_report_same_rows(void **state)
{
    struct fx *f = *state;
    cJSON *r;
    const cJSON *c;
    struct cc_stmt *s = NULL;

    report_scenario(f->lite);
    report_scenario(f->pg);
    assert_same_rows(f);
    /* And the PostgreSQL report says what test_alert.c checks on SQLite. */
    assert_int_equal(cc_stmt_prepare(f->pg,
                                     "SELECT payload FROM daily_reports WHERE"
                                     " customer_id = 1",
                                     &s),
                     CC_OK);
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    r = cJSON_Parse(cc_stmt_column_text(s, 0));
    cc_stmt_release(s);
    assert_non_null(r);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "cells")), 2);
    c = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "cells"), 0);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(c, "coldCellId")), 2);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(c, "count")), 3);
    assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(c, "avg")) == 6.0);
    assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(c, "minutesOutOfRange")) == 60.0);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(c, "alertsRaised")), 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "from")),
                        "2025-11-25T00:00:00.000Z");
    cJSON_Delete(r);
}

static struct {
    int calls, fail;
    struct cc_notify_event handed[8]; /* handed over and not yet acknowledged */
    int nhanded;
} pub;

static int fake_publish(void *ctx, const char *topic, const char *payload, size_t len,
                        struct cc_notify_event ev)
{
    (void)ctx;
    (void)topic;
    (void)payload;
    (void)len;
    pub.calls++;
    if (pub.fail)
        return -1;
    if (pub.nhanded < 8)
        pub.handed[pub.nhanded++] = ev;
    return 0;
}

/* The broker acknowledges everything handed over. */
static int fake_acked(void *ctx, struct cc_notify_event *evs, int max)
{
    int n = pub.nhanded < max ? pub.nhanded : max;

    (void)ctx;
    memcpy(evs, pub.handed, (size_t)n * sizeof *evs);
    pub.nhanded = 0;
    return n;
}

/* Claim, send and record: alert events on a publish that fails then works, notifications
 * on a webhook nobody listens to (the discard port: refused at once). */
static void deliver_scenario(struct cc_store *st)
{
    struct cc_notify_channels ch = {.publish = fake_publish,
                                    .webhook_url = "http://127.0.0.1:9/hook"};
    struct cc_notify_channels none = {0};
    int sent = -1;

    reading(st, 7, 2, T0 - 10 * S, 9.0, CC_ABSENT); /* ALERT to 1 and 2, CREATED */
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_notify_system(st, 4, "Hi", "there", T0), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    memset(&pub, 0, sizeof pub);
    pub.fail = 1;
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 100, &sent), CC_OK);
    assert_int_equal(sent, 0);
    assert_int_equal(pub.calls, 1);
    assert_int_equal(q1(st,
                        "SELECT count(*) FROM notification_deliveries"
                        " WHERE status = 'PENDING' AND attempts = 1",
                        0),
                     3);
    pub.fail = 0;
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + 999, 100, &sent), CC_OK);
    assert_int_equal(pub.calls, 1); /* not due yet */
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + S, 100, &sent), CC_OK);
    assert_int_equal(sent, 1); /* the event; the webhook failed again */
    assert_int_equal(q1(st, "SELECT count(*) FROM notification_deliveries WHERE attempts = 2", 0),
                     3);
    /* Without channels a new notification is settled at once: the inbox copy is all. */
    assert_int_equal(cc_store_begin(st), CC_OK);
    assert_int_equal(cc_notify_system(st, 5, "Bye", "now", T0 + 2 * S), CC_OK);
    assert_int_equal(cc_store_commit(st), CC_OK);
    assert_int_equal(cc_notify_deliver(st, &none, T0 + 2 * S, 100, &sent), CC_OK);
    assert_int_equal(q1(st, "SELECT count(*) FROM notifications WHERE status = 'SENT'", 0), 1);
    /* A client that acknowledges later (at once, here): the hand-over leaves the event
     * PENDING under a lease, and the call's next pass marks it SENT. */
    reading(st, 7, 2, T0 - 9 * S, 5.0, CC_ABSENT); /* RESOLVED */
    ch.acked = fake_acked;
    pub.nhanded = 0;
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + 3 * S, 100, &sent), CC_OK);
    assert_int_equal(sent, 1);
    assert_int_equal(q1(st,
                        "SELECT count(*) FROM alert_events WHERE event = 'RESOLVED' AND"
                        " status = 'SENT' AND attempts = 1 AND sent_at = 1764135903000",
                        0),
                     1);
}

/* The alert events the worker sends or gives up are counted by the worker at commit
 * (cc_notify_deliver.c; no trigger since schema/0012 and pg/0008): SENT once when the
 * broker acknowledges (or at the hand-over, with no acknowledging client), FAILED once
 * after the last attempt, never for a retry or a rolled-back pass. */
static void event_counts_scenario(struct cc_store *st)
{
    struct cc_notify_channels ch = {.publish = fake_publish, .acked = fake_acked};
    struct cc_notify_channels now = {.publish = fake_publish};
    struct cc_stats cs;
    int64_t t = T0;

    memset(&pub, 0, sizeof pub);
    reading(st, 7, 2, T0 - 10 * S, 9.0, CC_ABSENT); /* CREATED */
    reading(st, 7, 2, T0 - 9 * S, 5.0, CC_ABSENT);  /* RESOLVED */
    assert_int_equal(cc_notify_deliver(st, &ch, T0, 100, NULL), CC_OK);
    assert_int_equal(q1(st, "SELECT count(*) FROM alert_events WHERE status = 'SENT'", 0), 2);
    assert_int_equal(cc_notify_deliver(st, &ch, T0 + 3600 * S, 100, NULL), CC_OK); /* none due */
    reading(st, 7, 2, T0 - 8 * S, 9.0, CC_ABSENT); /* CREATED: sent without acknowledgement */
    assert_int_equal(cc_notify_deliver(st, &now, T0, 100, NULL), CC_OK);
    reading(st, 7, 2, T0 - 7 * S, 5.0, CC_ABSENT); /* RESOLVED: never gets through */
    pub.fail = 1;
    for (int i = 1; i <= CC_NOTIFY_MAX_ATTEMPTS; i++) {
        assert_int_equal(cc_notify_deliver(st, &now, t, 100, NULL), CC_OK);
        t += cc_notify_backoff_ms(i);
    }
    assert_int_equal(cc_notify_deliver(st, &now, t + 3600 * S, 100, NULL), CC_OK);
    assert_int_equal(pub.calls, 3 + CC_NOTIFY_MAX_ATTEMPTS);
    assert_int_equal(cc_stats_load(st, &cs), CC_OK);
    assert_int_equal(cs.notifications_sent[0], 3);
    assert_int_equal(cs.notifications_failed[0], 1);
    assert_int_equal(q1(st, "SELECT count(*) FROM alert_events WHERE status = 'FAILED'", 0), 1);
}

static void test_event_deliveries_counted(void **state)
{
    struct fx *f = *state;

    pg_migrated(f);
    event_counts_scenario(f->lite);
    event_counts_scenario(f->pg);
}

static void test_deliver_claim_and_record_same_rows(void **state)
{
    struct fx *f = *state;

    deliver_scenario(f->lite);
    deliver_scenario(f->pg);
    assert_same_rows(f);
    assert_int_equal(q1(f->pg,
                        "SELECT count(*) FROM notifications WHERE last_error LIKE"
                        " 'webhook: %'",
                        0),
                     5); /* string_agg wrote what group_concat writes (3 ALERT, 2 resolved) */
}

/* PostgreSQL: the due rows another worker holds are skipped, not waited for and not
 * claimed twice. The other worker is a second connection holding the rows' locks. */
static void test_deliver_skips_rows_another_worker_claims(void **state)
{
    struct fx *f = *state;
    struct cc_notify_channels ch = {.publish = fake_publish};
    int sent = -1;

    reading(f->pg, 7, 2, T0 - 10 * S, 9.0, CC_ABSENT); /* one CREATED event */
    assert_int_equal(cc_store_open(pg_url, 0, &f->other), CC_OK);
    /* Without SKIP LOCKED the claim would wait for the other: fail in 5 s, not hang. */
    assert_int_equal(cc_store_exec(f->pg, "SET statement_timeout = 5000"), CC_OK);
    assert_int_equal(cc_store_begin(f->other), CC_OK);
    rows(f->other, "SELECT id FROM alert_events FOR UPDATE", 0);
    memset(&pub, 0, sizeof pub);
    assert_int_equal(cc_notify_deliver(f->pg, &ch, T0, 100, &sent), CC_OK);
    assert_int_equal(sent, 0);
    assert_int_equal(pub.calls, 0);
    assert_int_equal(q1(f->pg, "SELECT attempts FROM alert_events", 0), 0);
    cc_store_rollback(f->other);
    assert_int_equal(cc_notify_deliver(f->pg, &ch, T0, 100, &sent), CC_OK);
    assert_int_equal(sent, 1);
}

/* PostgreSQL: a pass whose advisory lock another process holds is skipped (CC_OK, no
 * work), and done once the lock is free. */
static void test_jobs_pass_lock_held_elsewhere(void **state)
{
    struct fx *f = *state;
    int n = -1;

    reading(f->pg, 7, 2, T0 - 10 * S, 9.0, CC_ABSENT);
    assert_int_equal(cc_store_open(pg_url, 0, &f->other), CC_OK);
    rows(f->other, "SELECT 1 FROM (SELECT pg_advisory_lock(CAST($1 AS bigint))) l",
         CC_JOBS_LOCK_ESCALATE);
    assert_int_equal(cc_jobs_escalate(f->pg, 60, T0 + 3600 * S, &n), CC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(q1(f->pg, "SELECT count(*) FROM alerts WHERE escalated_at IS NULL", 0), 1);
    /* Unlocked by its session (closing it would free the lock only when the server has
     * seen the disconnect: a race). */
    rows(f->other, "SELECT 1 FROM (SELECT pg_advisory_unlock(CAST($1 AS bigint))) l",
         CC_JOBS_LOCK_ESCALATE);
    assert_int_equal(cc_jobs_escalate(f->pg, 60, T0 + 3600 * S, &n), CC_OK);
    assert_int_equal(n, 1);
}

static const char sql_rejected[] =
    "INSERT INTO rejected_messages (received_at, topic, payload, payload_size, error_code,"
    " error_message) VALUES ($1, $2, $3, 3, 'E', 'bad')";

/* Readings from 60 days ago (a whole month before the cutoff on PostgreSQL), from the
 * cutoff's own month and recent ones; dead letters old and new. */
static void retention_scenario(struct cc_store *st, int64_t *deleted)
{
    int64_t now = 1767225600000LL + 15 * CC_DAY_MS; /* 2026-01-16 */
    int64_t rejected = 0;
    int more = -1;

    for (int i = 0; i < 5; i++) {
        char sql[256];
        struct cc_stmt *s = NULL;

        snprintf(sql, sizeof sql,
                 "INSERT INTO readings (device_id, cold_cell_id, ts, temperature, received_at)"
                 " VALUES (7, 2, %lld, %d.5, 0), (7, 2, %lld, 4.0, 0), (7, 2, %lld, 5.0, 0)",
                 (long long)(now - 60 * CC_DAY_MS + i * S), i,
                 (long long)(now - 31 * CC_DAY_MS + i * S), (long long)(now - i * S));
        assert_int_equal(cc_store_exec(st, sql), CC_OK);
        assert_int_equal(cc_stmt_prepare(st, sql_rejected, &s), CC_OK);
        assert_int_equal(cc_stmt_bind_int64(s, 1, now - (i % 2 ? 1 : 10) * CC_DAY_MS + i), CC_OK);
        assert_int_equal(cc_stmt_bind_text(s, 2, "devices/SN-F/readings"), CC_OK);
        assert_int_equal(cc_stmt_bind_blob(s, 3, "x\0y", 3), CC_OK);
        assert_int_equal(cc_stmt_step(s), CC_OK);
        cc_stmt_release(s);
    }
    /* Cutoff 30 days: the 60- and 31-day-old rows go, 2 per batch: several batches. */
    assert_int_equal(cc_retention_run(st, now, 30, 2, 100, deleted, &more), CC_OK);
    assert_int_equal(more, 0);
    assert_int_equal(cc_retention_rejected_run(st, now, 7, 2, 100, &rejected, &more), CC_OK);
    assert_int_equal(rejected, 3); /* the 10-day-old ones */
    assert_int_equal(q1(st, "SELECT count(*) FROM readings", 0), 5);
}

static void test_retention_same_rows(void **state)
{
    struct fx *f = *state;
    struct cc_stmt *s = NULL;
    int64_t lite_deleted = 0, pg_deleted = 0;

    retention_scenario(f->lite, &lite_deleted);
    /* PostgreSQL: partitions for the months of the rows, so that 60 days back is a whole
     * month that retention drops instead of deleting (2025-11 ends before the cutoff). */
    assert_int_equal(cc_stmt_prepare(f->pg,
                                     "SELECT coldchain_ensure_partitions(CAST($1 AS bigint),"
                                     " 3)",
                                     &s),
                     CC_OK);
    assert_int_equal(cc_stmt_bind_int64(s, 1, 1761955200000LL), CC_OK); /* 2025-11-01 */
    assert_int_equal(cc_stmt_step(s), CC_ROW);
    cc_stmt_release(s);
    retention_scenario(f->pg, &pg_deleted);
    assert_same_rows(f);
    assert_int_equal(lite_deleted, 10);
    assert_int_equal(pg_deleted, 5); /* the 60-day-old five went with their partition */
    assert_int_equal(
        q1(f->pg, "SELECT count(*) FROM pg_class WHERE relname = 'readings_202511'", 0), 0);
    assert_int_equal(
        q1(f->pg, "SELECT count(*) FROM pg_class WHERE relname = 'readings_202512'", 0), 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_alerts_notifications_jobs_same_rows),
        T(test_alert_counts_at_commit),
        T(test_daily_report_same_rows),
        T(test_deliver_claim_and_record_same_rows),
        T(test_event_deliveries_counted),
        T(test_deliver_skips_rows_another_worker_claims),
        T(test_jobs_pass_lock_held_elsewhere),
        T(test_retention_same_rows),
    };
#undef T
    return cmocka_run_group_tests_name("alert_pg", tests, group_setup, group_teardown);
}
