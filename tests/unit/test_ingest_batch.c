/* test_ingest_batch.c - cc_ingest_batch, the batch-shaped ingest path: a batch gives the
 * same database and the same per-message results as the same messages one by one
 * (cc_ingest_mqtt, a batch of one), with the real alert engine. The script mixes devices,
 * several messages per device, a redelivery, status messages and bad topics between
 * readings, unknown devices, partial payloads, readings older than the newest, alerts
 * raised and resolved, an alarm delay; a second script crosses CC_INGEST_RUN_READINGS_MAX
 * so that a batch is stored in several runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cc_db.h"
#include "cc_error.h"
#include "cc_ingest.h"
#include "cc_ingest_cache.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_sqlite.h"

#define T0 1764135900000LL /* "received" */
#define S 1000LL
#define MSG_MAX 64

struct fixture {
    char path[2][64];
    struct cc_store *st[2]; /* [0] one batch, [1] one message at a time */
};

struct script {
    char *topic[MSG_MAX];
    char *payload[MSG_MAX];
    int64_t received_at[MSG_MAX];
    size_t n;
};

static void exec_ok(struct cc_store *st, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(cc_store_db(st), sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

static const char seed[] =
    "INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES"
    " (1, 'c1@example.com', 'x', 'CUSTOMER', 'C1', 0),"
    " (2, 'tech@example.com', 'x', 'TECHNICIAN', 'T', 0);"
    "INSERT INTO technician_customers VALUES (2, 1);"
    "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'L', 0);"
    "INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, hysteresis,"
    " alarm_delay_s, created_at) VALUES (2, 1, 'Fridge', 2, 8, 0.5, 0, 0),"
    " (3, 1, 'Slow', 2, 8, 0.5, 60, 0), (4, 1, 'Other', 2, 8, 0.5, 0, 0);"
    "INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash,"
    " api_key_prefix, created_at) VALUES (7, 'SN-F', 2, 'h', 'p', 0),"
    " (8, 'SN-D', 3, 'h', 'p', 0), (9, 'SN-O', 4, 'h', 'p', 0);";

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    if (f == NULL)
        return -1;
    for (int i = 0; i < 2; i++) {
        int fd;

        snprintf(f->path[i], sizeof f->path[i], "/tmp/cc-test-batch-XXXXXX");
        fd = mkstemp(f->path[i]);
        if (fd < 0)
            return -1;
        close(fd);
        unlink(f->path[i]);
        if (cc_store_open(f->path[i], CC_DB_CREATE | CC_DB_MIGRATE, &f->st[i]) != CC_OK)
            return -1;
        /* The batch side runs with ingestd's writer's cache on, the other without. */
        if (i == 0 && cc_ingest_cache_enable(f->st[i]) != CC_OK)
            return -1;
        exec_ok(f->st[i], seed);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    for (int i = 0; i < 2; i++) {
        cc_store_close(f->st[i]);
        cc_db_remove_files(f->path[i]);
    }
    free(f);
    return 0;
}

static void add(struct script *sc, const char *topic, int64_t received_at, const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;

    assert_true(sc->n < MSG_MAX);
    va_start(ap, fmt);
    assert_true(vasprintf(&p, fmt, ap) >= 0);
    va_end(ap);
    sc->topic[sc->n] = strdup(topic);
    sc->payload[sc->n] = p;
    sc->received_at[sc->n] = received_at;
    sc->n++;
}

static void script_free(struct script *sc)
{
    for (size_t i = 0; i < sc->n; i++) {
        free(sc->topic[i]);
        free(sc->payload[i]);
    }
}

/* Every row of every table of a equals b's (EXCEPT both ways, and the counts). */
static void assert_same_database(struct fixture *f)
{
    sqlite3 *db = cc_store_db(f->st[0]);
    sqlite3_stmt *tables = NULL;
    char sql[512];
    int n = 0;

    snprintf(sql, sizeof sql, "ATTACH '%s' AS other", f->path[1]);
    exec_ok(f->st[0], sql);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM main.sqlite_master WHERE type = 'table'"
                                        " AND name NOT LIKE 'sqlite_%' ORDER BY name",
                                        -1, &tables, NULL),
                     SQLITE_OK);
    while (sqlite3_step(tables) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(tables, 0);
        sqlite3_stmt *cmp = NULL;

        snprintf(sql, sizeof sql,
                 "SELECT (SELECT count(*) FROM (SELECT * FROM main.\"%s\" EXCEPT"
                 " SELECT * FROM other.\"%s\")) + (SELECT count(*) FROM (SELECT * FROM"
                 " other.\"%s\" EXCEPT SELECT * FROM main.\"%s\")),"
                 " (SELECT count(*) FROM main.\"%s\") - (SELECT count(*) FROM other.\"%s\")",
                 t, t, t, t, t, t);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &cmp, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(cmp), SQLITE_ROW);
        if (sqlite3_column_int64(cmp, 0) != 0 || sqlite3_column_int64(cmp, 1) != 0)
            fail_msg("table %s differs between the batch and one message at a time", t);
        sqlite3_finalize(cmp);
        n++;
    }
    sqlite3_finalize(tables);
    exec_ok(f->st[0], "DETACH other");
    assert_true(n > 10);
}

static int64_t q(struct cc_store *st, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(cc_store_db(st), sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

/* Runs sc as one batch on store 0 and one message at a time on store 1 (each in one
 * transaction, as ingestd's writer does) and compares the results and the databases. */
static void run_both(struct fixture *f, const struct script *sc)
{
    struct cc_ingest_msg *msgs = calloc(sc->n, sizeof *msgs);

    assert_non_null(msgs);
    for (size_t i = 0; i < sc->n; i++) {
        msgs[i].topic = sc->topic[i];
        msgs[i].payload = sc->payload[i];
        msgs[i].len = strlen(sc->payload[i]);
        msgs[i].received_at = sc->received_at[i];
    }
    assert_int_equal(cc_store_begin(f->st[0]), CC_OK);
    assert_int_equal(cc_ingest_batch(f->st[0], msgs, sc->n), CC_OK);
    assert_int_equal(cc_store_commit(f->st[0]), CC_OK);

    assert_int_equal(cc_store_begin(f->st[1]), CC_OK);
    for (size_t i = 0; i < sc->n; i++) {
        struct cc_ingest_result res;
        char serial[CC_SERIAL_MAX + 1];

        assert_int_equal(cc_ingest_mqtt(f->st[1], sc->topic[i], sc->payload[i],
                                        strlen(sc->payload[i]), sc->received_at[i], &res, serial),
                         CC_OK);
        assert_string_equal(serial, msgs[i].serial);
        assert_int_equal(res.accepted, msgs[i].res.accepted);
        assert_int_equal(res.duplicates, msgs[i].res.duplicates);
        assert_int_equal(res.rejected, msgs[i].res.rejected);
        assert_int_equal(res.has_last, msgs[i].res.has_last);
        if (res.has_last)
            assert_int_equal(res.last.ts_ms, msgs[i].res.last.ts_ms);
        assert_int_equal(res.error != NULL, msgs[i].res.error != NULL);
        if (res.error != NULL)
            assert_string_equal(cc_error_code(res.error), cc_error_code(msgs[i].res.error));
        cc_ingest_result_clear(&res);
        cc_ingest_result_clear(&msgs[i].res);
    }
    assert_int_equal(cc_store_commit(f->st[1]), CC_OK);
    free(msgs);
    assert_same_database(f);
}

#define R(dev) "devices/" dev "/readings"
#define ST(dev) "devices/" dev "/status"

static void batch_equals_one_by_one(void **state)
{
    struct fixture *f = *state;
    struct script sc = {0};

    add(&sc, R("SN-F"), T0, "{\"ts\":%lld,\"temperature\":5.0}", T0 - 100 * S);
    add(&sc, R("SN-D"), T0, "{\"ts\":%lld,\"temperature\":9.5}", T0 - 100 * S);
    add(&sc, R("SN-F"), T0 + 1, "{\"ts\":%lld,\"temperature\":9.0}", T0 - 90 * S);
    add(&sc, R("SN-F"), T0 + 2,
        "[{\"ts\":%lld,\"temperature\":9.2},{\"ts\":%lld,\"temperature\":3.0},"
        "{\"ts\":%lld,\"temperature\":1.0}]",
        T0 - 80 * S, T0 - 85 * S, T0 - 70 * S);
    add(&sc, R("SN-F"), T0 + 3, "{\"ts\":%lld,\"temperature\":9.0}", T0 - 90 * S); /* again */
    add(&sc, R("SN-O"), T0 + 3, "{\"ts\":%lld,\"temperature\":5.0,\"powerStatus\":false}",
        T0 - 60 * S);
    add(&sc, ST("SN-F"), T0 + 4, "{\"status\":\"offline\"}");
    add(&sc, R("SN-F"), T0 + 5, "{\"ts\":%lld,\"temperature\":5.0}", T0 - 60 * S);
    add(&sc, "devices/SN-F/other", T0 + 5, "{}");
    add(&sc, R("SN-X"), T0 + 6, "{\"ts\":%lld,\"temperature\":5.0}", T0 - 60 * S);
    add(&sc, R("SN-D"), T0 + 6, "[{\"ts\":%lld,\"temperature\":9.6},{\"temperature\":\"hot\"}]",
        T0 - 30 * S);
    add(&sc, R("SN-F"), T0 + 7, "{\"ts\":%lld,\"temperature\":9.9}", T0 - 95 * S); /* older */
    add(&sc, R("SN-O"), T0 + 7, "not json");
    add(&sc, ST("SN-O"), T0 + 8, "{\"status\":\"online\",\"firmware\":\"1.2.3\"}");
    add(&sc, R("SN-O"), T0 + 9, "{\"ts\":%lld,\"temperature\":5.0,\"powerStatus\":true}",
        T0 - 50 * S);
    add(&sc, R("SN-F"), T0 + 9,
        "[{\"ts\":%lld,\"temperature\":9.0},{\"ts\":%lld,\"temperature\":9.0}]", T0 - 40 * S,
        T0 - 40 * S);
    add(&sc, R("SN-D"), T0 + 10, "{\"ts\":%lld,\"temperature\":5.0}", T0 - 20 * S);
    run_both(f, &sc);
    /* The script did what it says: alerts raised and resolved on both paths. */
    assert_true(q(f->st[0], "SELECT count(*) FROM alerts") >= 4);
    assert_true(q(f->st[0], "SELECT count(*) FROM alerts WHERE status = 'RESOLVED'") >= 2);
    assert_true(q(f->st[0], "SELECT count(*) FROM rejected_messages") >= 4);
    assert_int_equal(q(f->st[0], "SELECT count(*) FROM alerts WHERE type = 'HIGH_TEMP'"
                                 " AND device_id = 8"),
                     1); /* the alarm delay ran across messages of the batch */
    script_free(&sc);
}

/* Messages of 1,000 readings: a batch of them is stored in several runs; the second run
 * starts from what the first one wrote (the device's newest reading), so the older
 * readings of the later messages raise nothing. */
static void batch_across_runs(void **state)
{
    struct fixture *f = *state;
    struct script sc = {0};
    const int per = CC_MAX_BATCH;
    const int msgs = CC_INGEST_RUN_READINGS_MAX / CC_MAX_BATCH + 3;

    for (int m = 0; m < msgs; m++) {
        size_t cap = (size_t)per * 64 + 3, len = 0;
        char *p = malloc(cap);
        /* Every message but the last two moves forward in time; those two go back into
         * the past with temperatures that would raise an alert if they were newest. */
        int64_t base = m < msgs - 2 ? T0 - (int64_t)(msgs - m) * per * S : T0 - 40LL * per * S;
        double temp = m < msgs - 2 ? 5.0 : 20.0;

        assert_non_null(p);
        p[len++] = '[';
        for (int i = 0; i < per; i++)
            len += (size_t)snprintf(p + len, cap - len, "%s{\"ts\":%lld,\"temperature\":%.1f}",
                                    i ? "," : "", (long long)(base + i * S + m), temp);
        p[len++] = ']';
        p[len] = '\0';
        add(&sc, m % 3 == 2 ? R("SN-O") : R("SN-F"), T0 + m, "%s", p);
        free(p);
    }
    run_both(f, &sc);
    assert_int_equal(q(f->st[0], "SELECT count(*) FROM readings"), (int64_t)msgs * per);
    assert_int_equal(q(f->st[0], "SELECT count(*) FROM alerts"), 0);
    script_free(&sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(batch_equals_one_by_one, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_across_runs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
