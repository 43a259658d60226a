/* cc_seed.c - the SPEC §7 demonstration data, written in one transaction. */
#include "cc_seed.h"

#include <math.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cc_alert_ops.h"
#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_role.h"
#include "cc_stats.h"
#include "cc_store.h"

#define SEED_HISTORY_MS (7LL * 24 * 3600 * 1000) /* rows "exist" since a week before now */
#define SEED_PRNG_SEED 0xC01DC4A1ULL             /* fixed: the same readings every time */
#define SEED_FIRMWARE "1.4.2"

enum cell_kind { FREEZER, FRIDGE };

static const struct seed_user {
    const char *email;
    const char *password;
    const char *role;
    const char *name;
} users[CC_SEED_USERS] = {
    {"tech@example.com", "technician123", CC_ROLE_NAME_TECHNICIAN, "Terry Technician"},
    {"customer1@example.com", "customer123", CC_ROLE_NAME_CUSTOMER, "Northwind Foods"},
    {"customer2@example.com", "customer123", CC_ROLE_NAME_CUSTOMER, "Harbor Fish Market"},
    {"admin@example.com", "admin123", CC_ROLE_NAME_ADMIN, "Site Administrator"},
};
#define USER_TECH 0
#define USER_ADMIN 3

static const struct seed_location {
    int customer; /* index into users */
    const char *name;
    const char *address;
    const char *timezone;
} locations[CC_SEED_LOCATIONS] = {
    {1, "Northwind Central Kitchen", "12 Dock Street, Rotterdam", "Europe/Amsterdam"},
    {1, "Northwind Bistro", "3 Market Square, Delft", "Europe/Amsterdam"},
    {2, "Harbor Market Hall", "1 Quay Road, Grimsby", "Europe/London"},
};

static const struct seed_cell {
    int location; /* index into locations */
    const char *name;
    enum cell_kind kind;
    double setpoint; /* °C, where the controller holds it */
} cells[CC_SEED_CELLS] = {
    {0, "Walk-in Freezer", FREEZER, -19.0},
    {0, "Walk-in Fridge", FRIDGE, 4.5},
    {1, "Bar Fridge", FRIDGE, 4.0},
    {2, "Fish Freezer", FREEZER, -20.0},
};

static const struct seed_device {
    int cell; /* index into cells */
    const char *serial;
} devices[CC_SEED_DEVICES] = {
    {0, "CC-FRZ-0001"},
    {1, "CC-FRG-0001"},
    {2, "CC-FRG-0002"},
    {3, "CC-FRZ-0002"},
};

/* The two historical, auto-resolved excursions, written into the readings too. */
#define HIGH_DEVICE 1  /* CC-FRG-0001: door left open */
#define HIGH_FIRST 40  /* reading index of the first reading above max */
#define POWER_DEVICE 0 /* CC-FRZ-0001: mains lost for an hour */
#define POWER_FIRST 20 /* reading index of the first reading without power */
static const double high_temps[] = {8.6, 9.3, 7.1, 5.9}; /* HIGH_FIRST.. */
static const double power_temps[] = {-18.2, -17.1, -16.4, -17.0, -18.1};
#define HIGH_TRIGGERS 2
#define POWER_TRIGGERS 3

static const double cell_min[] = {[FREEZER] = -25.0, [FRIDGE] = 2.0};
static const double cell_max[] = {[FREEZER] = -15.0, [FRIDGE] = 8.0};
#define SEED_HYSTERESIS 0.5

/* splitmix64: small, deterministic, good enough for plausible noise. */
static uint64_t prng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static double prng_unit(uint64_t *s)
{
    return (double)(prng_next(s) >> 11) / (double)(1ULL << 52) - 1.0;
}

static double round1(double v)
{
    return round(v * 10.0) / 10.0;
}

struct seed_reading {
    int64_t ts_ms;
    int64_t received_ms;
    double temperature; /* °C */
    double humidity;    /* % */
    int power;          /* 1 = mains on */
    int door;           /* 1 = open */
    double battery;     /* % */
};

/* Reading i (0 = oldest) of device d; newest_ms is the newest reading's ts. */
static void make_reading(int d, int i, int64_t newest_ms, uint64_t *rng, struct seed_reading *r)
{
    const struct seed_cell *c = &cells[devices[d].cell];
    int freezer = c->kind == FREEZER;
    double phase = 2.0 * M_PI * (double)i / 18.0 + d; /* a six-hour controller cycle */
    double t = c->setpoint + (freezer ? 1.0 : 0.7) * sin(phase) + 0.3 * prng_unit(rng);
    double h = (freezer ? 68.0 : 55.0) + 4.0 * prng_unit(rng);
    int door_chance = (int)(prng_next(rng) % 100);

    r->ts_ms =
        newest_ms - (int64_t)(CC_SEED_READINGS_PER_DEVICE - 1 - i) * CC_SEED_READING_INTERVAL_MS;
    r->received_ms = r->ts_ms + 150 + (int64_t)(prng_next(rng) % 700);
    r->power = 1;
    r->door = door_chance < (freezer ? 3 : 8);
    if (r->door)
        t += freezer ? 1.2 : 0.9; /* a short opening, still inside the range */
    r->battery = 97.0 - 2.5 * d - 0.04 * i;

    if (d == HIGH_DEVICE && i >= HIGH_FIRST && i < HIGH_FIRST + 4) {
        t = high_temps[i - HIGH_FIRST];
        r->door = i < HIGH_FIRST + HIGH_TRIGGERS;
    }
    if (d == POWER_DEVICE && i >= POWER_FIRST && i < POWER_FIRST + 5) {
        t = power_temps[i - POWER_FIRST];
        r->door = 0;
        r->power = i >= POWER_FIRST + POWER_TRIGGERS;
    }
    if (d == POWER_DEVICE && i >= POWER_FIRST)
        r->battery -= 1.5; /* the hour on battery */
    r->temperature = round1(t);
    r->humidity = round1(h);
    r->battery = round1(r->battery);
}

/* One bound value of a seed statement. */
struct arg {
    enum { A_INT, A_REAL, A_TEXT, A_NULL } kind;
    int64_t i;
    double d;
    const char *s;
};
#define AI(v)                                                                                      \
    {                                                                                              \
        A_INT, (v), 0, NULL                                                                        \
    }
#define AD(v)                                                                                      \
    {                                                                                              \
        A_REAL, 0, (v), NULL                                                                       \
    }
#define AT(v)                                                                                      \
    {                                                                                              \
        A_TEXT, 0, 0, (v)                                                                          \
    }
#define AN                                                                                         \
    {                                                                                              \
        A_NULL, 0, 0, NULL                                                                         \
    }

/* Runs sql (a literal, $1..$n = args) to its end; *id, when not NULL, is the first column
 * of its one row (RETURNING id). CC_OK or CC_ERR_DB (logged by the store). */
static int run(struct cc_store *st, const char *sql, const struct arg *args, int n, int64_t *id)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, sql, &stmt);

    for (int k = 0; rc == CC_OK && k < n; k++) {
        switch (args[k].kind) {
        case A_INT:
            rc = cc_stmt_bind_int64(stmt, k + 1, args[k].i);
            break;
        case A_REAL:
            rc = cc_stmt_bind_double(stmt, k + 1, args[k].d);
            break;
        case A_TEXT:
            rc = cc_stmt_bind_text(stmt, k + 1, args[k].s);
            break;
        default:
            rc = cc_stmt_bind_null(stmt, k + 1);
            break;
        }
    }
    while (rc == CC_OK && (rc = cc_stmt_step(stmt)) == CC_ROW) {
        if (id != NULL)
            *id = cc_stmt_column_int64(stmt, 0);
        rc = CC_OK;
    }
    cc_stmt_release(stmt);
    return rc == CC_OK ? CC_OK : CC_ERR_DB;
}

static const char sql_users_exist[] = "SELECT count(*) FROM (SELECT 1 FROM users LIMIT 1) u";

/* *has_users = 1 if the users table has a row. CC_OK or CC_ERR_DB. */
static int users_exist(struct cc_store *st, int *has_users)
{
    int64_t n = 0;
    int rc = run(st, sql_users_exist, NULL, 0, &n);

    *has_users = n > 0;
    return rc;
}

/* Secrets made before the write lock is taken (scrypt is slow on purpose). */
struct seed_secrets {
    char pw_hash[CC_SEED_USERS][CC_PASSWORD_HASH_MAX];
    char key[CC_SEED_DEVICES][CC_API_KEY_LEN];
    char key_hash[CC_SEED_DEVICES][CC_SHA256_HEX_LEN];
    char key_prefix[CC_SEED_DEVICES][CC_API_KEY_PREFIX_LEN];
};

static int make_secrets(struct seed_secrets *s)
{
    for (int u = 0; u < CC_SEED_USERS; u++) {
        if (cc_password_hash(users[u].password, s->pw_hash[u], sizeof s->pw_hash[u]) != CC_OK)
            return CC_ERR_INTERNAL;
    }
    for (int d = 0; d < CC_SEED_DEVICES; d++) {
        char unused_hash[CC_SHA256_HEX_LEN];
        char unused_prefix[CC_API_KEY_PREFIX_LEN];

        if (cc_api_key_new(s->key[d], unused_hash, unused_prefix) != CC_OK ||
            strlen(s->key[d]) != CC_API_KEY_LEN - 1)
            return CC_ERR_INTERNAL;
        cc_sha256_hex(s->key[d], strlen(s->key[d]), s->key_hash[d]);
        memcpy(s->key_prefix[d], s->key[d], CC_API_KEY_PREFIX_LEN - 1);
        s->key_prefix[d][CC_API_KEY_PREFIX_LEN - 1] = '\0';
    }
    return CC_OK;
}

/* Row ids of what was inserted, by seed index. */
struct seed_ids {
    int64_t user[CC_SEED_USERS];
    int64_t location[CC_SEED_LOCATIONS];
    int64_t cell[CC_SEED_CELLS];
    int64_t device[CC_SEED_DEVICES];
};

static const char sql_user[] = "INSERT INTO users (email, password_hash, role, name, created_at)"
                               " VALUES ($1, $2, $3, $4, $5) RETURNING id";
static const char sql_link[] =
    "INSERT INTO technician_customers (technician_id, customer_id) VALUES ($1, $2)";
static const char sql_location[] =
    "INSERT INTO locations (customer_id, name, address, timezone, created_at)"
    " VALUES ($1, $2, $3, $4, $5) RETURNING id";
static const char sql_cell[] =
    "INSERT INTO cold_cells (location_id, name, min_temp, max_temp, hysteresis,"
    " alarm_delay_s, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING id";
static const char sql_device[] =
    "INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
    " firmware_version, status, last_seen_at, newest_ts, created_at)"
    " VALUES ($1, $2, $3, $4, $5, 'ONLINE', $6, $6, $7) RETURNING id";
static const char sql_alert[] =
    "INSERT INTO alerts (cold_cell_id, device_id, type, status, value, threshold, message,"
    " first_triggered_at, last_triggered_at, trigger_count, acknowledged_at, acknowledged_by,"
    " resolved_at, resolved_by, resolution_note)"
    " VALUES ($1, $2, $3, 'RESOLVED', $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL)";

static int insert_people(struct cc_store *st, const struct seed_secrets *sec, int64_t created_ms,
                         struct seed_ids *ids)
{
    int rc = CC_OK;

    for (int u = 0; rc == CC_OK && u < CC_SEED_USERS; u++) {
        const struct arg a[] = {AT(users[u].email), AT(sec->pw_hash[u]), AT(users[u].role),
                                AT(users[u].name), AI(created_ms)};
        rc = run(st, sql_user, a, 5, &ids->user[u]);
    }
    for (int u = 0; rc == CC_OK && u < CC_SEED_USERS; u++) {
        if (cc_role_parse(users[u].role) == CC_ROLE_CUSTOMER) {
            const struct arg a[] = {AI(ids->user[USER_TECH]), AI(ids->user[u])};
            rc = run(st, sql_link, a, 2, NULL);
        }
    }
    return rc;
}

static int insert_places(struct cc_store *st, const struct seed_secrets *sec, int64_t created_ms,
                         int64_t newest_ms, struct seed_ids *ids)
{
    int rc = CC_OK;

    for (int l = 0; rc == CC_OK && l < CC_SEED_LOCATIONS; l++) {
        const struct arg a[] = {AI(ids->user[locations[l].customer]), AT(locations[l].name),
                                AT(locations[l].address), AT(locations[l].timezone),
                                AI(created_ms)};
        rc = run(st, sql_location, a, 5, &ids->location[l]);
    }
    for (int c = 0; rc == CC_OK && c < CC_SEED_CELLS; c++) {
        const struct arg a[] = {
            AI(ids->location[cells[c].location]), AT(cells[c].name),   AD(cell_min[cells[c].kind]),
            AD(cell_max[cells[c].kind]),          AD(SEED_HYSTERESIS), AI(created_ms)};
        rc = run(st, sql_cell, a, 6, &ids->cell[c]);
    }
    for (int d = 0; rc == CC_OK && d < CC_SEED_DEVICES; d++) {
        const struct arg a[] = {AT(devices[d].serial), AI(ids->cell[devices[d].cell]),
                                AT(sec->key_hash[d]),  AT(sec->key_prefix[d]),
                                AT(SEED_FIRMWARE),     AI(newest_ms),
                                AI(created_ms)};
        rc = run(st, sql_device, a, 7, &ids->device[d]);
    }
    return rc;
}

/* The readings, through the store's own insert, which writes their rollups with the same
 * code and numbers as the ingest path (one batch per device). */
static int insert_readings(struct cc_store *st, int64_t newest_ms, const struct seed_ids *ids)
{
    struct cc_reading rs[CC_SEED_READINGS_PER_DEVICE];
    struct cc_store_row rows[CC_SEED_READINGS_PER_DEVICE];
    unsigned char inserted[CC_SEED_READINGS_PER_DEVICE];
    int rc = CC_OK;

    for (int d = 0; rc == CC_OK && d < CC_SEED_DEVICES; d++) {
        uint64_t rng = SEED_PRNG_SEED + (uint64_t)d;
        struct cc_device dev;

        memset(&dev, 0, sizeof dev);
        dev.id = ids->device[d];
        dev.cold_cell_id = ids->cell[devices[d].cell];
        for (int i = 0; i < CC_SEED_READINGS_PER_DEVICE; i++) {
            struct seed_reading r;

            make_reading(d, i, newest_ms, &rng, &r);
            memset(&rs[i], 0, sizeof rs[i]);
            rs[i].ts_ms = r.ts_ms;
            rs[i].ts_given = 1;
            rs[i].temperature = r.temperature;
            rs[i].has_humidity = 1;
            rs[i].humidity = r.humidity;
            rs[i].power_status = r.power ? CC_TRUE : CC_FALSE;
            rs[i].door_status = r.door ? CC_TRUE : CC_FALSE;
            rs[i].has_battery = 1;
            rs[i].battery_level = r.battery;
            rows[i].dev = &dev;
            rows[i].r = &rs[i];
            rows[i].received_at = r.received_ms;
        }
        rc = cc_store_readings_insert(st, rows, CC_SEED_READINGS_PER_DEVICE, inserted);
    }
    return rc;
}

/* A resolved alert written here, counted raised and resolved as cc_alert_ops would have
 * (no trigger counts alerts: cc_stats.h). */
static int insert_resolved_alert(struct cc_store *st, const struct arg *a, int type)
{
    int rc = run(st, sql_alert, a, 12, NULL);

    if (rc == CC_OK)
        rc = cc_stats_count(st, CC_STATS_ALERTS_RAISED, type);
    if (rc == CC_OK)
        rc = cc_stats_count(st, CC_STATS_ALERTS_RESOLVED, type);
    return rc;
}

/* The two alerts, consistent with the readings that raised and cleared them. */
static int insert_alerts(struct cc_store *st, int64_t newest_ms, const struct seed_ids *ids)
{
    int64_t step = CC_SEED_READING_INTERVAL_MS;
    int64_t oldest = newest_ms - (int64_t)(CC_SEED_READINGS_PER_DEVICE - 1) * step;
    char msg[160];
    int rc;

    /* HIGH_TEMP: the fridge door was left open for two readings. */
    {
        int d = HIGH_DEVICE;
        double max = cell_max[cells[devices[d].cell].kind];
        int64_t first = oldest + HIGH_FIRST * step;

        snprintf(msg, sizeof msg, "Temperature %.1f °C above the maximum of %.1f °C", high_temps[0],
                 max);
        const struct arg a[] = {AI(ids->cell[devices[d].cell]),
                                AI(ids->device[d]),
                                AT("HIGH_TEMP"),
                                AD(high_temps[HIGH_TRIGGERS - 1]),
                                AD(max),
                                AT(msg),
                                AI(first),
                                AI(first + (HIGH_TRIGGERS - 1) * step),
                                AI(HIGH_TRIGGERS),
                                AI(first + 9LL * 60 * 1000), /* seen 9 minutes later */
                                AI(ids->user[USER_TECH]),
                                AI(first + HIGH_TRIGGERS * step)};
        rc = insert_resolved_alert(st, a, CC_ALERT_HIGH_TEMP);
        if (rc != CC_OK)
            return rc;
    }

    /* POWER_LOSS: mains lost for three readings; resolved when power came back. */
    {
        int d = POWER_DEVICE;
        int64_t first = oldest + POWER_FIRST * step;

        snprintf(msg, sizeof msg, "Mains power lost at %s", devices[d].serial);
        const struct arg a[] = {AI(ids->cell[devices[d].cell]),
                                AI(ids->device[d]),
                                AT("POWER_LOSS"),
                                AD(power_temps[POWER_TRIGGERS - 1]),
                                AN,
                                AT(msg),
                                AI(first),
                                AI(first + (POWER_TRIGGERS - 1) * step),
                                AI(POWER_TRIGGERS),
                                AN,
                                AN,
                                AI(first + POWER_TRIGGERS * step)};
        rc = insert_resolved_alert(st, a, CC_ALERT_POWER_LOSS);
    }
    return rc;
}

static int print_report(FILE *report, const struct seed_secrets *sec, const struct seed_ids *ids)
{
    int ok = 1;

    ok &= fprintf(report,
                  "seeded: %d users, %d locations, %d cold cells, %d devices, %d readings, "
                  "%d resolved alerts\n",
                  CC_SEED_USERS, CC_SEED_LOCATIONS, CC_SEED_CELLS, CC_SEED_DEVICES,
                  CC_SEED_DEVICES * CC_SEED_READINGS_PER_DEVICE, CC_SEED_ALERTS) > 0;
    for (int u = 0; u < CC_SEED_USERS; u++)
        ok &= fprintf(report, "user %lld %-10s %s / %s\n", (long long)ids->user[u], users[u].role,
                      users[u].email, users[u].password) > 0;
    ok &= fprintf(report, "device API keys (shown once, keep them now):\n") > 0;
    for (int d = 0; d < CC_SEED_DEVICES; d++) {
        int c = devices[d].cell;

        ok &= fprintf(report, "device %-12s cold cell %lld %-16s key %s\n", devices[d].serial,
                      (long long)ids->cell[c], cells[c].name, sec->key[d]) > 0;
    }
    ok &= fflush(report) == 0;
    return ok ? CC_OK : CC_ERR_IO;
}

int cc_seed_keys(struct cc_store *st, int64_t now_ms, FILE *report, int *seeded,
                 struct cc_seed_key keys[CC_SEED_DEVICES])
{
    struct seed_secrets sec;
    struct seed_ids ids;
    int64_t newest_ms = now_ms - now_ms % 1000; /* the newest reading: this second */
    int64_t created_ms = now_ms - SEED_HISTORY_MS;
    int has_users = 0;
    int in_tx = 0;
    int rc;

    memset(&sec, 0, sizeof sec);
    memset(&ids, 0, sizeof ids);
    rc = users_exist(st, &has_users);
    if (rc != CC_OK || has_users)
        goto out;
    rc = make_secrets(&sec);
    if (rc != CC_OK)
        goto out;

    rc = cc_store_begin(st);
    if (rc != CC_OK)
        goto out;
    in_tx = 1;
    rc = users_exist(st, &has_users); /* another process may have seeded meanwhile */
    if (rc != CC_OK || has_users)
        goto out;
    rc = insert_people(st, &sec, created_ms, &ids);
    if (rc == CC_OK)
        rc = insert_places(st, &sec, created_ms, newest_ms, &ids);
    if (rc == CC_OK)
        rc = insert_readings(st, newest_ms, &ids);
    if (rc == CC_OK)
        rc = insert_alerts(st, newest_ms, &ids);
    if (rc != CC_OK)
        goto out;
    rc = cc_store_commit(st);
    if (rc != CC_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    in_tx = 0;
    /* PostgreSQL: planner statistics now. autovacuum analyzes a table only after 50 rows
     * changed, which the seed's few users, places and devices never reach; without
     * statistics every list statement (the access predicate's OR) keeps a custom plan,
     * planned again at each execution: 0.25 ms of a 0.3 ms GET /api/devices
     * (docs/queries.md, "GET /api/devices on PostgreSQL"). Not fatal: the data is in. */
    if (cc_store_dialect(st) == CC_DIALECT_PG && cc_store_exec(st, "ANALYZE") != CC_OK)
        cc_log_warn("seed_analyze_failed", "the data is in; the planner lacks statistics");
    cc_log_info("seeded", "users=%d devices=%d readings=%d", CC_SEED_USERS, CC_SEED_DEVICES,
                CC_SEED_DEVICES * CC_SEED_READINGS_PER_DEVICE);

    *seeded = 1;
    if (keys != NULL) {
        for (int d = 0; d < CC_SEED_DEVICES; d++) {
            int c = devices[d].cell;

            memset(&keys[d], 0, sizeof keys[d]);
            keys[d].device_id = ids.device[d];
            keys[d].cold_cell_id = ids.cell[c];
            snprintf(keys[d].serial, sizeof keys[d].serial, "%s", devices[d].serial);
            snprintf(keys[d].cell_name, sizeof keys[d].cell_name, "%s", cells[c].name);
            memcpy(keys[d].key, sec.key[d], CC_API_KEY_LEN);
        }
    }
    if (report != NULL)
        rc = print_report(report, &sec, &ids);
    OPENSSL_cleanse(&sec, sizeof sec);
    return rc;

out:
    if (in_tx)
        cc_store_rollback(st);
    OPENSSL_cleanse(&sec, sizeof sec);
    if (rc == CC_OK)
        *seeded = 0; /* users exist: nothing changed */
    return rc;
}

int cc_seed(struct cc_store *st, int64_t now_ms, FILE *report, int *seeded)
{
    return cc_seed_keys(st, now_ms, report, seeded, NULL);
}
