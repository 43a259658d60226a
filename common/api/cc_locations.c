/* cc_locations.c - locations: list, get, create, update, delete with audit. */
#include "cc_locations.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cc_audit.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_input.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_time.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"

#define LOC_COLS "l.id, l.customer_id, l.name, l.address, l.timezone, l.created_at"

static const char sql_list[] = "SELECT " LOC_COLS " FROM locations l WHERE " CC_ACCESS_SQL(
    "l.customer_id") " AND (?3 IS NULL OR l.customer_id = ?3) ORDER BY l.id LIMIT ?4 OFFSET ?5";
static const char sql_count[] = "SELECT count(*) FROM locations l WHERE " CC_ACCESS_SQL(
    "l.customer_id") " AND (?3 IS NULL OR l.customer_id = ?3)";
static const char sql_get[] = "SELECT " LOC_COLS " FROM locations l WHERE l.id = ?1";
static const char sql_insert[] = "INSERT INTO locations (customer_id, name, address, timezone,"
                                 " created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_update[] =
    "UPDATE locations SET customer_id = coalesce(?2, customer_id), name = coalesce(?3, name),"
    " address = coalesce(?4, address), timezone = coalesce(?5, timezone) WHERE id = ?1";
static const char sql_delete[] = "DELETE FROM locations WHERE id = ?1";

static cJSON *location_row(sqlite3_stmt *s)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    if (cc_sql_json_int(o, "id", s, 0) != CC_OK ||
        cc_sql_json_int(o, "customerId", s, 1) != CC_OK ||
        cc_sql_json_text(o, "name", s, 2) != CC_OK ||
        cc_sql_json_text(o, "address", s, 3) != CC_OK ||
        cc_sql_json_text(o, "timezone", s, 4) != CC_OK ||
        cc_sql_json_time(o, "createdAt", s, 5) != CC_OK) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int cc_locations_timezone_valid(const char *tz)
{
    char path[sizeof ZONEINFO_DIR + CC_TIMEZONE_MAX + 2];
    struct stat sb;
    size_t n = strlen(tz);

    if (strcmp(tz, "UTC") == 0)
        return 1;
    if (n == 0 || n > CC_TIMEZONE_MAX || tz[0] == '/' || tz[n - 1] == '/' ||
        strstr(tz, "//") != NULL || strstr(tz, "..") != NULL)
        return 0;
    for (const char *c = tz; *c; c++) {
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '/' || *c == '_' || *c == '+' || *c == '-'))
            return 0;
    }
    if (stat(ZONEINFO_DIR, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return 1; /* no zone database here: the shape is all we can check */
    snprintf(path, sizeof path, "%s/%s", ZONEINFO_DIR, tz);
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int cc_locations_list(struct cc_store *st, const struct cc_principal *p, int64_t customer_id,
                      const struct cc_page *pg, cJSON **out)
{
    return cc_access_list(cc_store_db(st), sql_list, sql_count, p, customer_id, pg, location_row,
                          out);
}

static int load(sqlite3 *db, int64_t id, cJSON **out)
{
    return cc_sql_get(db, sql_get, id, location_row, out);
}

int cc_locations_get(struct cc_store *st, const struct cc_principal *p, int64_t id, cJSON **out)
{
    int rc = cc_access_check(st, p, CC_ENTITY_LOCATION, id, CC_ACCESS_READ);

    if (rc != CC_OK)
        return rc;
    return load(cc_store_db(st), id, out);
}

/* Reads the fields shared by create and update; flags say whether name is required. */
static void read_fields(struct cc_input *in, unsigned name_flags, const char **name,
                        const char **address, const char **tz, int64_t *customer_id)
{
    cc_input_text(in, "name", name_flags | CC_INPUT_NONEMPTY, CC_NAME_MAX, name);
    cc_input_text(in, "address", 0, CC_ADDRESS_MAX, address);
    if (cc_input_text(in, "timezone", CC_INPUT_NONEMPTY, CC_TIMEZONE_MAX, tz) == CC_INPUT_SET &&
        !cc_locations_timezone_valid(*tz))
        cc_input_problem(in, "timezone", "must be an IANA time zone such as Europe/Paris");
    cc_input_int(in, "customerId", 0, 1, INT64_MAX, customer_id);
}

int cc_locations_create(struct cc_store *st, const struct cc_principal *p, const cJSON *body,
                        cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    struct cc_input in;
    const char *name = NULL, *address = NULL, *tz = NULL;
    int64_t customer_id = 0, id = 0;
    cJSON *loc = NULL;
    int rc;

    cc_input_init(&in, body);
    read_fields(&in, CC_INPUT_REQUIRED, &name, &address, &tz, &customer_id);
    if (customer_id == 0 && p->role == CC_ROLE_CUSTOMER)
        customer_id = p->user_id;
    else if (customer_id == 0 && !cc_input_has(&in, "customerId"))
        cc_input_problem(&in, "customerId", "required");
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        return rc;

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_CUSTOMER, customer_id, CC_ACCESS_WRITE);
    if (rc == CC_ERR_NOT_FOUND)
        *err = cc_error_new(rc, "customer not found");
    if (rc != CC_OK)
        goto end;
    rc = cc_sql_prepare(db, sql_insert, &stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_bind_int64(stmt, 1, customer_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 3, address ? address : "", -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 4, tz ? tz : "UTC", -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 5, cc_now_ms()) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    rc = cc_sql_exec(db, stmt);
    if (rc != CC_OK)
        goto end;
    id = sqlite3_last_insert_rowid(db);
    rc = load(db, id, &loc);
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "create", "location", id, NULL, loc);
end:
    cc_sql_release(stmt);
    rc = cc_sql_end(db, rc);
    if (rc != CC_OK) {
        cJSON_Delete(loc);
        return rc;
    }
    *out = loc;
    return CC_OK;
}

int cc_locations_update(struct cc_store *st, const struct cc_principal *p, int64_t id,
                        const cJSON *body, cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    struct cc_input in;
    const char *name = NULL, *address = NULL, *tz = NULL;
    int64_t customer_id = 0;
    cJSON *before = NULL, *after = NULL;
    int rc;

    cc_input_init(&in, body);
    read_fields(&in, 0, &name, &address, &tz, &customer_id);
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        return rc;

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_LOCATION, id, CC_ACCESS_WRITE);
    if (rc != CC_OK)
        goto end;
    if (customer_id > 0) {
        rc = cc_access_check(st, p, CC_ENTITY_CUSTOMER, customer_id, CC_ACCESS_WRITE);
        if (rc == CC_ERR_NOT_FOUND)
            *err = cc_error_new(rc, "customer not found");
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
        (customer_id > 0 ? sqlite3_bind_int64(stmt, 2, customer_id) : SQLITE_OK) != SQLITE_OK ||
        cc_sql_bind_text_or_null(stmt, 3, name) != SQLITE_OK ||
        cc_sql_bind_text_or_null(stmt, 4, address) != SQLITE_OK ||
        cc_sql_bind_text_or_null(stmt, 5, tz) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    rc = cc_sql_exec(db, stmt);
    if (rc == CC_OK)
        rc = load(db, id, &after);
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "update", "location", id, before, after);
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

int cc_locations_delete(struct cc_store *st, const struct cc_principal *p, int64_t id)
{
    return cc_access_delete(st, p, CC_ENTITY_LOCATION, "location", id, load, sql_delete);
}
