/* cc_seed.c - the SPEC §7 demonstration data, written in one transaction. */
#include "cc_seed.h"

#include <math.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cc_db.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_role.h"
#include "cc_store_rollup.h"

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

/* Steps a write statement to SQLITE_DONE and resets it for the next row. */
static int step_done(sqlite3 *db, sqlite3_stmt *stmt, const char *what)
{
    int rc = sqlite3_step(stmt);

    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE) {
        cc_log_error("seed_failed", "%s: %s", what, sqlite3_errmsg(db));
        return CC_ERR_DB;
    }
    return CC_OK;
}

static int bind_failed(sqlite3 *db)
{
    cc_log_error("seed_failed", "bind: %s", sqlite3_errmsg(db));
    return CC_ERR_DB;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt)
{
    if (sqlite3_prepare_v2(db, sql, -1, stmt, NULL) != SQLITE_OK) {
        cc_log_error("seed_failed", "prepare: %s", sqlite3_errmsg(db));
        return CC_ERR_DB;
    }
    return CC_OK;
}

/* *has_users = 1 if the users table has a row. CC_OK or CC_ERR_DB. */
static int users_exist(sqlite3 *db, int *has_users)
{
    sqlite3_stmt *stmt = NULL;
    int rc = prepare(db, "SELECT EXISTS (SELECT 1 FROM users)", &stmt);

    if (rc == CC_OK) {
        if (sqlite3_step(stmt) == SQLITE_ROW) {
            *has_users = sqlite3_column_int(stmt, 0);
        } else {
            cc_log_error("seed_failed", "count users: %s", sqlite3_errmsg(db));
            rc = CC_ERR_DB;
        }
    }
    sqlite3_finalize(stmt);
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

static int insert_people(sqlite3 *db, const struct seed_secrets *sec, int64_t created_ms,
                         struct seed_ids *ids)
{
    sqlite3_stmt *ins_user = NULL;
    sqlite3_stmt *ins_link = NULL;
    int rc;
    int b;

    rc = prepare(db,
                 "INSERT INTO users (email, password_hash, role, name, created_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5)",
                 &ins_user);
    if (rc != CC_OK)
        goto out;
    for (int u = 0; u < CC_SEED_USERS; u++) {
        b = SQLITE_OK;
        b |= sqlite3_bind_text(ins_user, 1, users[u].email, -1, SQLITE_STATIC);
        b |= sqlite3_bind_text(ins_user, 2, sec->pw_hash[u], -1, SQLITE_STATIC);
        b |= sqlite3_bind_text(ins_user, 3, users[u].role, -1, SQLITE_STATIC);
        b |= sqlite3_bind_text(ins_user, 4, users[u].name, -1, SQLITE_STATIC);
        b |= sqlite3_bind_int64(ins_user, 5, created_ms);
        if (b != SQLITE_OK) {
            rc = bind_failed(db);
            goto out;
        }
        rc = step_done(db, ins_user, "insert user");
        if (rc != CC_OK)
            goto out;
        ids->user[u] = sqlite3_last_insert_rowid(db);
    }

    rc = prepare(db,
                 "INSERT INTO technician_customers (technician_id, customer_id) "
                 "VALUES (?1, ?2)",
                 &ins_link);
    if (rc != CC_OK)
        goto out;
    for (int u = 0; u < CC_SEED_USERS; u++) {
        if (cc_role_parse(users[u].role) != CC_ROLE_CUSTOMER)
            continue;
        b = SQLITE_OK;
        b |= sqlite3_bind_int64(ins_link, 1, ids->user[USER_TECH]);
        b |= sqlite3_bind_int64(ins_link, 2, ids->user[u]);
        if (b != SQLITE_OK) {
            rc = bind_failed(db);
            goto out;
        }
        rc = step_done(db, ins_link, "link technician");
        if (rc != CC_OK)
            goto out;
    }
out:
    sqlite3_finalize(ins_user);
    sqlite3_finalize(ins_link);
    return rc;
}

static int insert_places(sqlite3 *db, const struct seed_secrets *sec, int64_t created_ms,
                         int64_t newest_ms, struct seed_ids *ids)
{
    sqlite3_stmt *ins_loc = NULL;
    sqlite3_stmt *ins_cell = NULL;
    sqlite3_stmt *ins_dev = NULL;
    int rc;
    int b;

    rc = prepare(db,
                 "INSERT INTO locations (customer_id, name, address, timezone, created_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5)",
                 &ins_loc);
    if (rc != CC_OK)
        goto out;
    for (int l = 0; l < CC_SEED_LOCATIONS; l++) {
        b = SQLITE_OK;
        b |= sqlite3_bind_int64(ins_loc, 1, ids->user[locations[l].customer]);
        b |= sqlite3_bind_text(ins_loc, 2, locations[l].name, -1, SQLITE_STATIC);
        b |= sqlite3_bind_text(ins_loc, 3, locations[l].address, -1, SQLITE_STATIC);
        b |= sqlite3_bind_text(ins_loc, 4, locations[l].timezone, -1, SQLITE_STATIC);
        b |= sqlite3_bind_int64(ins_loc, 5, created_ms);
        if (b != SQLITE_OK) {
            rc = bind_failed(db);
            goto out;
        }
        rc = step_done(db, ins_loc, "insert location");
        if (rc != CC_OK)
            goto out;
        ids->location[l] = sqlite3_last_insert_rowid(db);
    }

    rc = prepare(db,
                 "INSERT INTO cold_cells (location_id, name, min_temp, max_temp, hysteresis, "
                 "alarm_delay_s, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
                 &ins_cell);
    if (rc != CC_OK)
        goto out;
    for (int c = 0; c < CC_SEED_CELLS; c++) {
        b = SQLITE_OK;
        b |= sqlite3_bind_int64(ins_cell, 1, ids->location[cells[c].location]);
        b |= sqlite3_bind_text(ins_cell, 2, cells[c].name, -1, SQLITE_STATIC);
        b |= sqlite3_bind_double(ins_cell, 3, cell_min[cells[c].kind]);
        b |= sqlite3_bind_double(ins_cell, 4, cell_max[cells[c].kind]);
        b |= sqlite3_bind_double(ins_cell, 5, SEED_HYSTERESIS);
        b |= sqlite3_bind_int64(ins_cell, 6, created_ms);
        if (b != SQLITE_OK) {
            rc = bind_failed(db);
            goto out;
        }
        rc = step_done(db, ins_cell, "insert cold cell");
        if (rc != CC_OK)
            goto out;
        ids->cell[c] = sqlite3_last_insert_rowid(db);
    }

    rc = prepare(db,
                 "INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, "
                 "api_key_prefix, firmware_version, status, last_seen_at, newest_ts, "
                 "created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'ONLINE', ?6, ?6, ?7)",
                 &ins_dev);
    if (rc != CC_OK)
        goto out;
    for (int d = 0; d < CC_SEED_DEVICES; d++) {
        b = SQLITE_OK;
        b |= sqlite3_bind_text(ins_dev, 1, devices[d].serial, -1, SQLITE_STATIC);
        b |= sqlite3_bind_int64(ins_dev, 2, ids->cell[devices[d].cell]);
        b |= sqlite3_bind_text(ins_dev, 3, sec->key_hash[d], -1, SQLITE_STATIC);
        b |= sqlite3_bind_text(ins_dev, 4, sec->key_prefix[d], -1, SQLITE_STATIC);
        b |= sqlite3_bind_text(ins_dev, 5, SEED_FIRMWARE, -1, SQLITE_STATIC);
        b |= sqlite3_bind_int64(ins_dev, 6, newest_ms);
        b |= sqlite3_bind_int64(ins_dev, 7, created_ms);
        if (b != SQLITE_OK) {
            rc = bind_failed(db);
            goto out;
        }
        rc = step_done(db, ins_dev, "insert device");
        if (rc != CC_OK)
            goto out;
        ids->device[d] = sqlite3_last_insert_rowid(db);
    }
out:
    sqlite3_finalize(ins_loc);
    sqlite3_finalize(ins_cell);
    sqlite3_finalize(ins_dev);
    return rc;
}

/* The readings and their five-minute rollups (cell, bucket: min, max, sum, count and
 * the sum of exp(-ΔH/R / T) for the mean kinetic temperature). */
static int insert_readings(sqlite3 *db, int64_t newest_ms, const struct seed_ids *ids)
{
    sqlite3_stmt *ins = NULL;
    int rc;
    int b;

    rc = prepare(db,
                 "INSERT INTO readings (device_id, cold_cell_id, ts, temperature, humidity, "
                 "power_status, door_status, battery_level, received_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                 &ins);
    if (rc != CC_OK)
        goto out;
    for (int d = 0; d < CC_SEED_DEVICES; d++) {
        uint64_t rng = SEED_PRNG_SEED + (uint64_t)d;
        int64_t cell_id = ids->cell[devices[d].cell];

        for (int i = 0; i < CC_SEED_READINGS_PER_DEVICE; i++) {
            struct seed_reading r;

            make_reading(d, i, newest_ms, &rng, &r);
            b = SQLITE_OK;
            b |= sqlite3_bind_int64(ins, 1, ids->device[d]);
            b |= sqlite3_bind_int64(ins, 2, cell_id);
            b |= sqlite3_bind_int64(ins, 3, r.ts_ms);
            b |= sqlite3_bind_double(ins, 4, r.temperature);
            b |= sqlite3_bind_double(ins, 5, r.humidity);
            b |= sqlite3_bind_int(ins, 6, r.power);
            b |= sqlite3_bind_int(ins, 7, r.door);
            b |= sqlite3_bind_double(ins, 8, r.battery);
            b |= sqlite3_bind_int64(ins, 9, r.received_ms);
            if (b != SQLITE_OK) {
                rc = bind_failed(db);
                goto out;
            }
            rc = step_done(db, ins, "insert reading");
            if (rc != CC_OK)
                goto out;
        }
    }
    /* The rollups, with the same code and numbers as the ingest path (cc_store_rollup.h). */
    rc = cc_store_rollup_rebuild(db, 0);
out:
    sqlite3_finalize(ins);
    return rc;
}

/* The two alerts, consistent with the readings that raised and cleared them. */
static int insert_alerts(sqlite3 *db, int64_t newest_ms, const struct seed_ids *ids)
{
    sqlite3_stmt *ins = NULL;
    int64_t step = CC_SEED_READING_INTERVAL_MS;
    int64_t oldest = newest_ms - (int64_t)(CC_SEED_READINGS_PER_DEVICE - 1) * step;
    char msg[160];
    int rc;
    int b;

    rc = prepare(db,
                 "INSERT INTO alerts (cold_cell_id, device_id, type, status, value, threshold, "
                 "message, first_triggered_at, last_triggered_at, trigger_count, "
                 "acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution_note) "
                 "VALUES (?1, ?2, ?3, 'RESOLVED', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL, "
                 "NULL)",
                 &ins);
    if (rc != CC_OK)
        goto out;

    /* HIGH_TEMP: the fridge door was left open for two readings. */
    {
        int d = HIGH_DEVICE;
        double max = cell_max[cells[devices[d].cell].kind];
        int64_t first = oldest + HIGH_FIRST * step;

        snprintf(msg, sizeof msg, "Temperature %.1f °C above the maximum of %.1f °C", high_temps[0],
                 max);
        b = SQLITE_OK;
        b |= sqlite3_bind_int64(ins, 1, ids->cell[devices[d].cell]);
        b |= sqlite3_bind_int64(ins, 2, ids->device[d]);
        b |= sqlite3_bind_text(ins, 3, "HIGH_TEMP", -1, SQLITE_STATIC);
        b |= sqlite3_bind_double(ins, 4, high_temps[HIGH_TRIGGERS - 1]);
        b |= sqlite3_bind_double(ins, 5, max);
        b |= sqlite3_bind_text(ins, 6, msg, -1, SQLITE_TRANSIENT);
        b |= sqlite3_bind_int64(ins, 7, first);
        b |= sqlite3_bind_int64(ins, 8, first + (HIGH_TRIGGERS - 1) * step);
        b |= sqlite3_bind_int(ins, 9, HIGH_TRIGGERS);
        b |= sqlite3_bind_int64(ins, 10, first + 9LL * 60 * 1000); /* seen 9 minutes later */
        b |= sqlite3_bind_int64(ins, 11, ids->user[USER_TECH]);
        b |= sqlite3_bind_int64(ins, 12, first + HIGH_TRIGGERS * step);
        if (b != SQLITE_OK) {
            rc = bind_failed(db);
            goto out;
        }
        rc = step_done(db, ins, "insert alert");
        if (rc != CC_OK)
            goto out;
    }

    /* POWER_LOSS: mains lost for three readings; resolved when power came back. */
    {
        int d = POWER_DEVICE;
        int64_t first = oldest + POWER_FIRST * step;

        snprintf(msg, sizeof msg, "Mains power lost at %s", devices[d].serial);
        b = SQLITE_OK;
        b |= sqlite3_bind_int64(ins, 1, ids->cell[devices[d].cell]);
        b |= sqlite3_bind_int64(ins, 2, ids->device[d]);
        b |= sqlite3_bind_text(ins, 3, "POWER_LOSS", -1, SQLITE_STATIC);
        b |= sqlite3_bind_double(ins, 4, power_temps[POWER_TRIGGERS - 1]);
        b |= sqlite3_bind_null(ins, 5);
        b |= sqlite3_bind_text(ins, 6, msg, -1, SQLITE_TRANSIENT);
        b |= sqlite3_bind_int64(ins, 7, first);
        b |= sqlite3_bind_int64(ins, 8, first + (POWER_TRIGGERS - 1) * step);
        b |= sqlite3_bind_int(ins, 9, POWER_TRIGGERS);
        b |= sqlite3_bind_null(ins, 10);
        b |= sqlite3_bind_null(ins, 11);
        b |= sqlite3_bind_int64(ins, 12, first + POWER_TRIGGERS * step);
        if (b != SQLITE_OK) {
            rc = bind_failed(db);
            goto out;
        }
        rc = step_done(db, ins, "insert alert");
        if (rc != CC_OK)
            goto out;
    }
out:
    sqlite3_finalize(ins);
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
    sqlite3 *db = cc_store_db(st);
    struct seed_secrets sec;
    struct seed_ids ids;
    int64_t newest_ms = now_ms - now_ms % 1000; /* the newest reading: this second */
    int64_t created_ms = now_ms - SEED_HISTORY_MS;
    int has_users = 0;
    int in_tx = 0;
    int rc;

    memset(&sec, 0, sizeof sec);
    memset(&ids, 0, sizeof ids);
    rc = users_exist(db, &has_users);
    if (rc != CC_OK || has_users)
        goto out;
    rc = make_secrets(&sec);
    if (rc != CC_OK)
        goto out;

    rc = cc_store_begin(st);
    if (rc != CC_OK)
        goto out;
    in_tx = 1;
    rc = users_exist(db, &has_users); /* another process may have seeded meanwhile */
    if (rc != CC_OK || has_users)
        goto out;
    rc = insert_people(db, &sec, created_ms, &ids);
    if (rc == CC_OK)
        rc = insert_places(db, &sec, created_ms, newest_ms, &ids);
    if (rc == CC_OK)
        rc = insert_readings(db, newest_ms, &ids);
    if (rc == CC_OK)
        rc = insert_alerts(db, newest_ms, &ids);
    if (rc != CC_OK)
        goto out;
    rc = cc_store_commit(st);
    if (rc != CC_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    in_tx = 0;
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
