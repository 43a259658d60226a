/* cc_locations.c - the location resource: its SQL, its fields and the time zone rule. */
#include "cc_locations.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cc_input.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_resource.h"
#include "cc_time.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"

#define LOC_COLS "l.id, l.customer_id, l.name, l.address, l.timezone, l.created_at"

static const char sql_list[] = "SELECT " LOC_COLS " FROM locations l WHERE " CC_ACCESS_SQL_N(
    "l.customer_id") " AND (CAST($3 AS bigint) IS NULL OR l.customer_id = $3) ORDER BY l.id LIMIT "
                     "$4 OFFSET $5";
static const char sql_count[] = "SELECT count(*) FROM locations l WHERE " CC_ACCESS_SQL_N(
    "l.customer_id") " AND (CAST($3 AS bigint) IS NULL OR l.customer_id = $3)";
static const char sql_get[] = "SELECT " LOC_COLS " FROM locations l WHERE l.id = $1";
static const char sql_insert[] = "INSERT INTO locations (customer_id, name, address, timezone,"
                                 " created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id";
static const char sql_update[] =
    "UPDATE locations SET customer_id = coalesce($2, customer_id), name = coalesce($3, name),"
    " address = coalesce($4, address), timezone = coalesce($5, timezone) WHERE id = $1";
static const char sql_delete[] = "DELETE FROM locations WHERE id = $1";

static const struct cc_column location_cols[] = {
    {"id", CC_COL_INT},       {"customerId", CC_COL_INT}, {"name", CC_COL_TEXT},
    {"address", CC_COL_TEXT}, {"timezone", CC_COL_TEXT},  {"createdAt", CC_COL_TIME},
};

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

/* Body {name, address?, timezone? (default UTC), customerId} on create (a customer may
 * omit customerId: their own), any subset on update. Values: customer, name, address,
 * timezone and, on create, created_at. */
static void read_location(struct cc_resource_write *w, struct cc_input *in)
{
    const int create = w->verb == CC_RESOURCE_CREATE;
    const char *name = NULL, *address = NULL, *tz = NULL;
    int64_t customer_id = 0;

    cc_input_text(in, "name", (create ? CC_INPUT_REQUIRED : 0) | CC_INPUT_NONEMPTY, CC_NAME_MAX,
                  &name);
    cc_input_text(in, "address", 0, CC_ADDRESS_MAX, &address);
    if (cc_input_text(in, "timezone", CC_INPUT_NONEMPTY, CC_TIMEZONE_MAX, &tz) == CC_INPUT_SET &&
        !cc_locations_timezone_valid(tz))
        cc_input_problem(in, "timezone", "must be an IANA time zone such as Europe/Paris");
    cc_input_int(in, "customerId", 0, 1, INT64_MAX, &customer_id);
    if (create && customer_id == 0 && w->p->role == CC_ROLE_CUSTOMER)
        customer_id = w->p->user_id;
    else if (create && customer_id == 0 && !cc_input_has(in, "customerId"))
        cc_input_problem(in, "customerId", "required");
    w->parent_id = customer_id;
    if (customer_id > 0)
        w->v[0] = cc_value_int(customer_id);
    w->v[1] = cc_value_text(name);
    w->v[2] = cc_value_text(create && address == NULL ? "" : address);
    w->v[3] = cc_value_text(create && tz == NULL ? "UTC" : tz);
    if (create)
        w->v[4] = cc_value_int(cc_now_ms());
}

const struct cc_resource cc_locations_resource = {
    .name = "location",
    .entity = CC_ENTITY_LOCATION,
    CC_RESOURCE_COLUMNS(location_cols),
    .sql = {sql_get, sql_list, sql_count, sql_insert, sql_update, sql_delete},
    .filter_param = "customerId",
    .parent_entity = CC_ENTITY_CUSTOMER,
    .parent_missing = "customer not found",
    .read = read_location,
};

int cc_locations_list(struct cc_store *st, const struct cc_principal *p, int64_t customer_id,
                      const struct cc_page *pg, cJSON **out)
{
    return cc_resource_list_by(st, &cc_locations_resource, p, customer_id, pg, out);
}
