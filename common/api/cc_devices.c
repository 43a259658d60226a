/* cc_devices.c - devices: list, get, create, update, delete, new key, key check. */
#include "cc_devices.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cc_audit.h"
#include "cc_auth_rules.h"
#include "cc_crypto.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_input.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_store_rollup.h"
#include "cc_validate.h"

#define DEV_COLS                                                                                   \
    "d.id, d.serial_number, d.cold_cell_id, d.firmware_version, d.status, d.last_seen_at, "        \
    "d.api_key_prefix, d.created_at"
#define DEV_FROM                                                                                   \
    "devices d JOIN cold_cells c ON c.id = d.cold_cell_id JOIN locations l ON "                    \
    "l.id = c.location_id"

static const char sql_list[] = "SELECT " DEV_COLS " FROM " DEV_FROM " WHERE " CC_ACCESS_SQL(
    "l.customer_id") " AND (?3 IS NULL OR d.cold_cell_id = ?3) ORDER BY d.id LIMIT ?4 OFFSET ?5";
static const char sql_count[] =
    "SELECT count(*) FROM " DEV_FROM
    " WHERE " CC_ACCESS_SQL("l.customer_id") " AND (?3 IS NULL OR d.cold_cell_id = ?3)";
static const char sql_get[] = "SELECT " DEV_COLS " FROM devices d WHERE d.id = ?1";
static const char sql_update[] =
    "UPDATE devices SET cold_cell_id = coalesce(?2, cold_cell_id),"
    " serial_number = coalesce(?3, serial_number),"
    " firmware_version = CASE WHEN ?5 THEN NULL ELSE coalesce(?4, firmware_version) END"
    " WHERE id = ?1";
static const char sql_delete[] = "DELETE FROM devices WHERE id = ?1";
static const char sql_key_hash[] = "SELECT api_key_hash FROM devices WHERE serial_number = ?1";

static cJSON *device_row(sqlite3_stmt *s)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    if (cc_sql_json_int(o, "id", s, 0) != CC_OK ||
        cc_sql_json_text(o, "serialNumber", s, 1) != CC_OK ||
        cc_sql_json_int(o, "coldCellId", s, 2) != CC_OK ||
        cc_sql_json_text(o, "firmwareVersion", s, 3) != CC_OK ||
        cc_sql_json_text(o, "status", s, 4) != CC_OK ||
        cc_sql_json_time(o, "lastSeenAt", s, 5) != CC_OK ||
        cc_sql_json_text(o, "apiKeyPrefix", s, 6) != CC_OK ||
        cc_sql_json_time(o, "createdAt", s, 7) != CC_OK) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int cc_devices_list(struct cc_store *st, const struct cc_principal *p, int64_t cold_cell_id,
                    const struct cc_page *pg, cJSON **out)
{
    return cc_access_list(cc_store_db(st), sql_list, sql_count, p, cold_cell_id, pg, device_row,
                          out);
}

static int load(sqlite3 *db, int64_t id, cJSON **out)
{
    return cc_sql_get(db, sql_get, id, device_row, out);
}

int cc_devices_get(struct cc_store *st, const struct cc_principal *p, int64_t id, cJSON **out)
{
    int rc = cc_access_check(st, p, CC_ENTITY_DEVICE, id, CC_ACCESS_READ);

    if (rc != CC_OK)
        return rc;
    return load(cc_store_db(st), id, out);
}

/* Loads device id and adds the freshly made key as apiKey. */
static int load_with_key(sqlite3 *db, int64_t id, const char *key, cJSON **out)
{
    cJSON *dev = NULL;
    int rc = load(db, id, &dev);

    if (rc != CC_OK)
        return rc;
    if (cJSON_AddStringToObject(dev, "apiKey", key) == NULL) {
        cJSON_Delete(dev);
        return CC_ERR_NOMEM;
    }
    *out = dev;
    return CC_OK;
}

_Static_assert(CC_AUTH_SERIAL_MAX == CC_SERIAL_MAX, "the broker plugin and the API agree");

static void read_serial(struct cc_input *in, unsigned req, const char **serial)
{
    if (cc_input_text(in, "serialNumber", req | CC_INPUT_NONEMPTY, CC_SERIAL_MAX, serial) !=
        CC_INPUT_SET)
        return;
    if (!cc_provision_serial_valid(*serial))
        cc_input_problem(in, "serialNumber", "may hold only letters, digits, '.', '_' and '-'");
    else if (cc_auth_name_reserved(*serial)) /* the serial is the device's MQTT client id */
        cc_input_problem(in, "serialNumber",
                         "must not start with '" CC_AUTH_OPERATOR_PREFIX
                         "' (client ids reserved for the operators' programs)");
}

int cc_devices_create(struct cc_store *st, const struct cc_principal *p, const cJSON *body,
                      cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    struct cc_input in;
    const char *serial = NULL, *firmware = NULL;
    int64_t cell_id = 0, id = 0;
    char key[CC_API_KEY_LEN];
    cJSON *dev = NULL, *audit = NULL;
    int rc;

    key[0] = '\0';
    cc_input_init(&in, body);
    cc_input_int(&in, "coldCellId", CC_INPUT_REQUIRED, 1, INT64_MAX, &cell_id);
    read_serial(&in, CC_INPUT_REQUIRED, &serial);
    cc_input_text(&in, "firmwareVersion", CC_INPUT_NULLABLE, CC_FIRMWARE_MAX, &firmware);
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        return rc;

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_COLDCELL, cell_id, CC_ACCESS_WRITE);
    if (rc == CC_ERR_NOT_FOUND)
        *err = cc_error_new(rc, "cold cell not found");
    if (rc != CC_OK)
        goto end;
    rc = cc_provision_device(st, cell_id, serial, firmware, &id, key, err);
    if (rc == CC_ERR_CONFLICT && *err == NULL)
        *err = cc_error_new(rc, "a device with this serialNumber already exists");
    if (rc != CC_OK)
        goto end;
    rc = load(db, id, &audit);
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "create", "device", id, NULL, audit);
    if (rc == CC_OK)
        rc = load_with_key(db, id, key, &dev);
end:
    rc = cc_sql_end(db, rc);
    OPENSSL_cleanse(key, sizeof key);
    cJSON_Delete(audit);
    if (rc != CC_OK) {
        cJSON_Delete(dev);
        return rc;
    }
    *out = dev;
    return CC_OK;
}

int cc_devices_update(struct cc_store *st, const struct cc_principal *p, int64_t id,
                      const cJSON *body, cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    struct cc_input in;
    const char *serial = NULL, *firmware = NULL;
    int64_t cell_id = 0;
    int fw_got;
    cJSON *before = NULL, *after = NULL;
    int rc;

    cc_input_init(&in, body);
    cc_input_int(&in, "coldCellId", 0, 1, INT64_MAX, &cell_id);
    read_serial(&in, 0, &serial);
    fw_got = cc_input_text(&in, "firmwareVersion", CC_INPUT_NULLABLE, CC_FIRMWARE_MAX, &firmware);
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        return rc;
    if (fw_got == CC_INPUT_SET && firmware[0] == '\0')
        fw_got = CC_INPUT_NULL; /* "" clears it too, as on create */

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_DEVICE, id, CC_ACCESS_WRITE);
    if (rc != CC_OK)
        goto end;
    if (cell_id > 0) {
        rc = cc_access_check(st, p, CC_ENTITY_COLDCELL, cell_id, CC_ACCESS_WRITE);
        if (rc == CC_ERR_NOT_FOUND)
            *err = cc_error_new(rc, "cold cell not found");
        if (rc != CC_OK)
            goto end;
    }
    rc = load(db, id, &before);
    if (rc != CC_OK)
        goto end;
    rc = cc_sql_prepare(db, sql_update, &stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK ||
        (cell_id > 0 ? sqlite3_bind_int64(stmt, 2, cell_id) : SQLITE_OK) != SQLITE_OK ||
        cc_sql_bind_text_or_null(stmt, 3, serial) != SQLITE_OK ||
        cc_sql_bind_text_or_null(stmt, 4, fw_got == CC_INPUT_SET ? firmware : NULL) != SQLITE_OK ||
        sqlite3_bind_int(stmt, 5, fw_got == CC_INPUT_NULL) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    rc = cc_sql_exec(db, stmt);
    if (rc == CC_ERR_CONFLICT) {
        *err = cc_error_new(rc, "a device with this serialNumber already exists");
        goto end;
    }
    if (rc == CC_OK)
        rc = load(db, id, &after);
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "update", "device", id, before, after);
end:
    cc_sql_release(stmt);
    rc = cc_sql_end(db, rc);
    cJSON_Delete(before);
    if (rc != CC_OK) {
        cJSON_Delete(after);
        return rc;
    }
    *out = after;
    return CC_OK;
}

/* The cells a device's readings sit in, with the time span of those readings. */
struct span {
    int64_t cell, from, to;
};

/* Lists the spans of device id's readings; *out is malloc'd (NULL when none). */
static int reading_spans(sqlite3 *db, int64_t id, struct span **out, size_t *n)
{
    static const char sql[] = "SELECT cold_cell_id, MIN(ts), MAX(ts) FROM readings"
                              " WHERE device_id = ?1 GROUP BY cold_cell_id";
    sqlite3_stmt *stmt = NULL;
    struct span *v = NULL;
    size_t cnt = 0;
    int src, rc = cc_sql_prepare(db, sql, &stmt);

    if (rc == CC_OK && sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK)
        rc = CC_ERR_DB;
    while (rc == CC_OK && (src = sqlite3_step(stmt)) != SQLITE_DONE) {
        struct span *grown;
        if (src != SQLITE_ROW) {
            rc = cc_sql_step_rc(db, src, "device reading spans");
            break;
        }
        grown = realloc(v, (cnt + 1) * sizeof(*v));
        if (grown == NULL) {
            rc = CC_ERR_NOMEM;
            break;
        }
        v = grown;
        v[cnt].cell = sqlite3_column_int64(stmt, 0);
        v[cnt].from = sqlite3_column_int64(stmt, 1);
        v[cnt].to = sqlite3_column_int64(stmt, 2);
        cnt++;
    }
    cc_sql_release(stmt);
    if (rc != CC_OK) {
        free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return CC_OK;
}

int cc_devices_delete(struct cc_store *st, const struct cc_principal *p, int64_t id)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    cJSON *before = NULL;
    struct span *spans = NULL;
    size_t n_spans = 0;
    int rc;

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_DEVICE, id, CC_ACCESS_WRITE);
    if (rc == CC_OK)
        rc = load(db, id, &before);
    if (rc == CC_OK)
        rc = reading_spans(db, id, &spans, &n_spans);
    if (rc == CC_OK)
        rc = cc_sql_prepare(db, sql_delete, &stmt);
    if (rc == CC_OK)
        rc = sqlite3_bind_int64(stmt, 1, id) == SQLITE_OK ? cc_sql_exec(db, stmt) : CC_ERR_DB;
    /* The cascade removed the device's readings: the cells' rollups must forget them. */
    for (size_t i = 0; rc == CC_OK && i < n_spans; i++)
        rc = cc_store_rollup_rebuild_span(db, spans[i].cell, spans[i].from, spans[i].to);
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "delete", "device", id, before, NULL);
    cc_sql_release(stmt);
    rc = cc_sql_end(db, rc);
    cJSON_Delete(before);
    free(spans);
    return rc;
}

int cc_devices_regenerate_key(struct cc_store *st, const struct cc_principal *p, int64_t id,
                              cJSON **out)
{
    sqlite3 *db = cc_store_db(st);
    char key[CC_API_KEY_LEN];
    cJSON *before = NULL, *after = NULL, *dev = NULL;
    int rc;

    key[0] = '\0';
    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_DEVICE, id, CC_ACCESS_WRITE);
    if (rc == CC_OK)
        rc = load(db, id, &before);
    if (rc == CC_OK)
        rc = cc_provision_regenerate_key(st, id, key);
    if (rc == CC_OK)
        rc = load(db, id, &after);
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "regenerate_key", "device", id, before, after);
    if (rc == CC_OK)
        rc = load_with_key(db, id, key, &dev);
    rc = cc_sql_end(db, rc);
    OPENSSL_cleanse(key, sizeof key);
    cJSON_Delete(before);
    cJSON_Delete(after);
    if (rc != CC_OK) {
        cJSON_Delete(dev);
        return rc;
    }
    *out = dev;
    return CC_OK;
}

int cc_devices_authenticate(struct cc_store *st, const char *serial, const char *key)
{
    /* A hash no key produces in practice: an unknown serial costs the same as a bad key. */
    static const char no_hash[] =
        "0000000000000000000000000000000000000000000000000000000000000000";
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    char hash[CC_SHA256_HEX_LEN];
    int src, rc, found = 0;

    memcpy(hash, no_hash, sizeof hash);
    if (serial == NULL || key == NULL || !cc_provision_serial_valid(serial)) {
        (void)cc_api_key_matches(key ? key : "", hash);
        return CC_ERR_UNAUTHORIZED;
    }
    rc = cc_sql_prepare(db, sql_key_hash, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_text(stmt, 1, serial, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(stmt, 0);

        if (h != NULL && strlen((const char *)h) == CC_SHA256_HEX_LEN - 1) {
            memcpy(hash, h, CC_SHA256_HEX_LEN);
            found = 1;
        }
    } else if (src != SQLITE_DONE) {
        rc = cc_sql_step_rc(db, src, "device key");
        goto out;
    }
    rc = cc_api_key_matches(key, hash) && found ? CC_OK : CC_ERR_UNAUTHORIZED;
out:
    cc_sql_release(stmt);
    return rc;
}
