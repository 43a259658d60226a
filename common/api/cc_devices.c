/* cc_devices.c - the device resource: its SQL, fields, keys and rollups; the key check. */
#include "cc_devices.h"

#include <string.h>

#include "cc_auth_rules.h"
#include "cc_crypto.h"
#include "cc_input.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_resource.h"
#include "cc_store_rollup.h"
#include "cc_validate.h"

#define DEV_COLS                                                                                   \
    "d.id, d.serial_number, d.cold_cell_id, d.firmware_version, d.status, d.last_seen_at, "        \
    "d.api_key_prefix, d.created_at"
#define DEV_FROM                                                                                   \
    "devices d JOIN cold_cells c ON c.id = d.cold_cell_id JOIN locations l ON "                    \
    "l.id = c.location_id"

static const char sql_list[] =
    "SELECT " DEV_COLS " FROM " DEV_FROM
    " WHERE " CC_ACCESS_SQL_N("l.customer_id") " AND (CAST($3 AS bigint) IS NULL OR d.cold_cell_id "
                                               "= $3) ORDER BY d.id LIMIT $4 OFFSET $5";
static const char sql_count[] = "SELECT count(*) FROM " DEV_FROM " WHERE " CC_ACCESS_SQL_N(
    "l.customer_id") " AND (CAST($3 AS bigint) IS NULL OR d.cold_cell_id = $3)";
static const char sql_get[] = "SELECT " DEV_COLS " FROM devices d WHERE d.id = $1";
static const char sql_update[] =
    "UPDATE devices SET cold_cell_id = coalesce($2, cold_cell_id),"
    " serial_number = coalesce($3, serial_number),"
    " firmware_version = CASE WHEN $5 = 1 THEN NULL ELSE coalesce($4, firmware_version) END"
    " WHERE id = $1";
static const char sql_delete[] = "DELETE FROM devices WHERE id = $1";
static const char sql_spans[] = "SELECT cold_cell_id, MIN(ts), MAX(ts) FROM readings"
                                " WHERE device_id = $1 GROUP BY cold_cell_id";
static const char sql_key_hash[] = "SELECT api_key_hash FROM devices WHERE serial_number = $1";

static const struct cc_column device_cols[] = {
    {"id", CC_COL_INT},
    {"serialNumber", CC_COL_TEXT},
    {"coldCellId", CC_COL_INT},
    {"firmwareVersion", CC_COL_TEXT},
    {"status", CC_COL_TEXT},
    {"lastSeenAt", CC_COL_TIME},
    {"apiKeyPrefix", CC_COL_TEXT},
    {"createdAt", CC_COL_TIME},
};

_Static_assert(CC_AUTH_SERIAL_MAX == CC_SERIAL_MAX, "the broker plugin and the API agree");
_Static_assert(CC_API_KEY_LEN <= CC_RESOURCE_SECRET_MAX, "a new key fits a write's secret");

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

/* Body {coldCellId, serialNumber, firmwareVersion?} on create; any subset on update
 * (firmwareVersion null or "" clears it). Values: cell, serial, firmware, clear flag. */
static void read_device(struct cc_resource_write *w, struct cc_input *in)
{
    const unsigned req = w->verb == CC_RESOURCE_CREATE ? CC_INPUT_REQUIRED : 0;
    const char *serial = NULL, *firmware = NULL;
    int64_t cell_id = 0;
    int fw_got;

    cc_input_int(in, "coldCellId", req, 1, INT64_MAX, &cell_id);
    read_serial(in, req, &serial);
    fw_got = cc_input_text(in, "firmwareVersion", CC_INPUT_NULLABLE, CC_FIRMWARE_MAX, &firmware);
    if (fw_got == CC_INPUT_SET && firmware[0] == '\0')
        fw_got = CC_INPUT_NULL; /* "" clears it too, as on create */
    w->parent_id = cell_id;
    if (cell_id > 0)
        w->v[0] = cc_value_int(cell_id);
    w->v[1] = cc_value_text(serial);
    w->v[2] = cc_value_text(fw_got == CC_INPUT_SET ? firmware : NULL);
    w->v[3] = cc_value_int(fw_got == CC_INPUT_NULL);
}

/* A new device with a fresh key (cc_provision makes and hashes it). */
static int insert_device(struct cc_resource_write *w)
{
    return cc_provision_device(w->st, w->parent_id, w->v[1].s, w->v[2].s, &w->id, w->secret,
                               w->err);
}

/* The key made by this write, shown once in the answer (never in the audit row). */
static int reply_key(struct cc_resource_write *w, cJSON *reply)
{
    if (w->secret[0] == '\0')
        return CC_OK;
    return cJSON_AddStringToObject(reply, "apiKey", w->secret) != NULL ? CC_OK : CC_ERR_NOMEM;
}

static const struct cc_column span_cols[] = {
    {"cell", CC_COL_INT}, {"from", CC_COL_INT}, {"to", CC_COL_INT}};

/* Before a delete: the cells the device's readings sit in, with their time spans. */
static int read_spans(struct cc_resource_write *w)
{
    const struct cc_value id = cc_value_int(w->id);
    cJSON *spans = NULL;
    int rc;

    if (w->verb != CC_RESOURCE_DELETE)
        return CC_OK;
    rc = cc_resource_query(w->st, sql_spans, &id, 1, span_cols, 3, 1, &spans);
    if (rc == CC_OK)
        w->priv = spans; /* freed by forget_spans */
    return rc;
}

/* After a delete: the cascade removed the device's readings, so the cells' rollups must
 * forget them. */
static int rebuild_spans(struct cc_resource_write *w)
{
    const cJSON *span;
    int rc = CC_OK;

    if (w->verb != CC_RESOURCE_DELETE)
        return CC_OK;
    cJSON_ArrayForEach(span, (cJSON *)w->priv)
    {
        rc = cc_store_rollup_rebuild_span(w->st,
                                          (int64_t)cJSON_GetObjectItem(span, "cell")->valuedouble,
                                          (int64_t)cJSON_GetObjectItem(span, "from")->valuedouble,
                                          (int64_t)cJSON_GetObjectItem(span, "to")->valuedouble);
        if (rc != CC_OK)
            break;
    }
    return rc;
}

static void forget_spans(struct cc_resource_write *w)
{
    cJSON_Delete(w->priv);
    w->priv = NULL;
}

const struct cc_resource cc_devices_resource = {
    .name = "device",
    .entity = CC_ENTITY_DEVICE,
    CC_RESOURCE_COLUMNS(device_cols),
    .sql = {sql_get, sql_list, sql_count, NULL, sql_update, sql_delete},
    .filter_param = "coldCellId",
    .parent_entity = CC_ENTITY_COLDCELL,
    .parent_missing = "cold cell not found",
    .conflict = "a device with this serialNumber already exists",
    .read = read_device,
    .check = read_spans,
    .insert = insert_device,
    .after = rebuild_spans,
    .reply_extra = reply_key,
    .done = forget_spans,
};

int cc_devices_list(struct cc_store *st, const struct cc_principal *p, int64_t cold_cell_id,
                    const struct cc_page *pg, cJSON **out)
{
    return cc_resource_list_by(st, &cc_devices_resource, p, cold_cell_id, pg, out);
}

int cc_devices_delete(struct cc_store *st, const struct cc_principal *p, int64_t id)
{
    cJSON *err = NULL;
    int rc = cc_resource_delete(st, &cc_devices_resource, p, id, &err);

    cJSON_Delete(err); /* a device's delete sets none */
    return rc;
}

static int regenerate(struct cc_resource_write *w)
{
    return cc_provision_regenerate_key(w->st, w->id, w->secret);
}

int cc_devices_regenerate_key(struct cc_store *st, const struct cc_principal *p, int64_t id,
                              cJSON **out)
{
    cJSON *err = NULL;
    int rc = cc_resource_action(st, &cc_devices_resource, p, id, "regenerate_key", CC_ACTION_OLD,
                                regenerate, NULL, out, &err);

    cJSON_Delete(err);
    return rc;
}

/* The key check of cc_devices_authenticate and cc_devices_check_key: serial_ok is the caller's
 * name rule (the API's serial rule, or the broker's device-name rule). */
static int check_key(struct cc_store *st, const char *serial, int serial_ok, const char *key,
                     int *exists)
{
    /* A hash no key produces in practice: an unknown serial costs the same as a bad key. */
    static const char no_hash[] =
        "0000000000000000000000000000000000000000000000000000000000000000";
    static const struct cc_column hash_col[] = {{"hash", CC_COL_TEXT}};
    const struct cc_value arg = cc_value_text(serial);
    char hash[CC_SHA256_HEX_LEN];
    const char *h;
    cJSON *row = NULL;
    int rc, found = 0;

    *exists = 0;
    memcpy(hash, no_hash, sizeof hash);
    if (serial == NULL || !serial_ok) {
        (void)cc_api_key_matches(key ? key : "", hash);
        return CC_ERR_UNAUTHORIZED;
    }
    rc = cc_resource_query(st, sql_key_hash, &arg, 1, hash_col, 1, 0, &row);
    if (rc != CC_OK && rc != CC_ERR_NOT_FOUND)
        return rc;
    h = cJSON_GetStringValue(cJSON_GetObjectItem(row, "hash"));
    if (h != NULL && strlen(h) == CC_SHA256_HEX_LEN - 1) {
        memcpy(hash, h, CC_SHA256_HEX_LEN);
        found = 1;
    }
    cJSON_Delete(row);
    *exists = found;
    return cc_api_key_matches(key ? key : "", hash) && key != NULL && found ? CC_OK
                                                                            : CC_ERR_UNAUTHORIZED;
}

int cc_devices_authenticate(struct cc_store *st, const char *serial, const char *key)
{
    int exists;

    return check_key(st, serial, serial != NULL && key != NULL && cc_provision_serial_valid(serial),
                     key, &exists);
}

int cc_devices_check_key(struct cc_store *st, const char *serial, const char *key, int *exists)
{
    /* The broker plugin's rule (find_device): a name that cannot be a device is never one. */
    return check_key(st, serial, cc_auth_is_device_name(serial), key, exists);
}
