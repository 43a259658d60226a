/* cc_seed.h - the demonstration data of SPEC §7 (`make seed`, `ccctl seed`).
 *
 * An empty database (no users) receives, in one transaction: a technician, two
 * customers linked to it, an admin, 3 locations, 4 cold cells, 4 devices with fresh
 * API keys, 72 readings per device over the 24 hours before now (one every 20
 * minutes, with their five-minute rollups) and two auto-resolved alerts. A database
 * that has users is left unchanged. Readings come from a fixed-seed PRNG, so two
 * seeds at the same now_ms differ only in password salts and API keys.
 * Thread: the caller's store. Returns CC_OK, CC_ERR_DB (rolled back), CC_ERR_INTERNAL
 * (crypto failure) or CC_ERR_IO (the report could not be written; data committed). */
#ifndef CC_SEED_H
#define CC_SEED_H

#include <stdint.h>
#include <stdio.h>

#include "cc_crypto.h"
#include "cc_store.h"

#define CC_SEED_USERS 4
#define CC_SEED_LOCATIONS 3
#define CC_SEED_CELLS 4
#define CC_SEED_DEVICES 4
#define CC_SEED_READINGS_PER_DEVICE 72
#define CC_SEED_READING_INTERVAL_MS (20LL * 60 * 1000) /* one reading every 20 minutes */
#define CC_SEED_ALERTS 2
#define CC_SEED_CELL_NAME_MAX 64

/* One seeded device and its API key (a secret: wipe it with OPENSSL_cleanse). */
struct cc_seed_key {
    int64_t device_id;
    int64_t cold_cell_id;
    char serial[CC_SERIAL_MAX + 1];
    char cell_name[CC_SEED_CELL_NAME_MAX];
    char key[CC_API_KEY_LEN];
};

/* Seeds st if its users table is empty; *seeded is 1 then, else 0 and nothing
 * changed. now_ms is "now" for every timestamp. When seeding, the device keys
 * (serial, cold cell, key) are printed once to report (NULL: not printed). */
int cc_seed(struct cc_store *st, int64_t now_ms, FILE *report, int *seeded);

/* As cc_seed; when *seeded is 1, keys[] also receives the devices and their keys (in
 * seeding order), for a keys file. keys may be NULL. */
int cc_seed_keys(struct cc_store *st, int64_t now_ms, FILE *report, int *seeded,
                 struct cc_seed_key keys[CC_SEED_DEVICES]);

#endif
