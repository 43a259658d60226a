/* cc_coldcells.c - the cold cell resource: its SQL, its fields and the threshold rule. */
#include "cc_coldcells.h"

#include <string.h>

#include "cc_input.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_resource.h"
#include "cc_time.h"
#include "cc_validate.h"

#define CELL_COLS                                                                                  \
    "c.id, c.location_id, c.name, c.min_temp, c.max_temp, c.hysteresis, c.alarm_delay_s, "         \
    "c.created_at"
#define CELL_FROM "cold_cells c JOIN locations l ON l.id = c.location_id"

static const char sql_list[] =
    "SELECT " CELL_COLS " FROM " CELL_FROM
    " WHERE " CC_ACCESS_SQL_N("l.customer_id") " AND (CAST($3 AS bigint) IS NULL OR c.location_id "
                                               "= $3) ORDER BY c.id LIMIT $4 OFFSET $5";
static const char sql_count[] = "SELECT count(*) FROM " CELL_FROM " WHERE " CC_ACCESS_SQL_N(
    "l.customer_id") " AND (CAST($3 AS bigint) IS NULL OR c.location_id = $3)";
static const char sql_get[] = "SELECT " CELL_COLS " FROM cold_cells c WHERE c.id = $1";
static const char sql_thresholds[] = "SELECT min_temp, max_temp FROM cold_cells WHERE id = $1";
static const char sql_insert[] =
    "INSERT INTO cold_cells (location_id, name, min_temp, max_temp, hysteresis, alarm_delay_s,"
    " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
static const char sql_update[] =
    "UPDATE cold_cells SET location_id = coalesce($2, location_id), name = coalesce($3, name),"
    " min_temp = coalesce($4, min_temp), max_temp = coalesce($5, max_temp),"
    " hysteresis = coalesce($6, hysteresis), alarm_delay_s = coalesce($7, alarm_delay_s)"
    " WHERE id = $1";
static const char sql_delete[] = "DELETE FROM cold_cells WHERE id = $1";

static const struct cc_column cell_cols[] = {
    {"id", CC_COL_INT},          {"locationId", CC_COL_INT}, {"name", CC_COL_TEXT},
    {"minTemp", CC_COL_NUM},     {"maxTemp", CC_COL_NUM},    {"hysteresis", CC_COL_NUM},
    {"alarmDelayS", CC_COL_INT}, {"createdAt", CC_COL_TIME},
};

/* Checks min < max once both are known. */
static void check_range(struct cc_input *in, double min_temp, double max_temp)
{
    if (!(min_temp < max_temp))
        cc_input_problem(in, "maxTemp", "must be greater than minTemp");
}

/* Body {locationId, name, minTemp, maxTemp, hysteresis?, alarmDelayS?} on create, any
 * subset on update. Values: location, name, min, max, hysteresis, alarm delay and, on
 * create, created_at. */
static void read_cell(struct cc_resource_write *w, struct cc_input *in)
{
    const int create = w->verb == CC_RESOURCE_CREATE;
    const unsigned req = create ? CC_INPUT_REQUIRED : 0;
    const char *name = NULL;
    double min_temp = 0, max_temp = 0, hyst = CC_HYSTERESIS_DEFAULT;
    int64_t location_id = 0, delay = 0;
    int has_min, has_max, has_hyst, has_delay;

    cc_input_int(in, "locationId", req, 1, INT64_MAX, &location_id);
    cc_input_text(in, "name", req | CC_INPUT_NONEMPTY, CC_NAME_MAX, &name);
    has_min =
        cc_input_number(in, "minTemp", req, CC_TEMP_MIN, CC_TEMP_MAX, &min_temp) == CC_INPUT_SET;
    has_max =
        cc_input_number(in, "maxTemp", req, CC_TEMP_MIN, CC_TEMP_MAX, &max_temp) == CC_INPUT_SET;
    has_hyst = cc_input_number(in, "hysteresis", 0, 0.0, CC_HYSTERESIS_MAX, &hyst) == CC_INPUT_SET;
    has_delay = cc_input_int(in, "alarmDelayS", 0, 0, CC_ALARM_DELAY_MAX_S, &delay) == CC_INPUT_SET;
    if (has_min && has_max)
        check_range(in, min_temp, max_temp);
    w->parent_id = location_id;
    if (location_id > 0)
        w->v[0] = cc_value_int(location_id);
    w->v[1] = cc_value_text(name);
    if (has_min)
        w->v[2] = cc_value_real(min_temp);
    if (has_max)
        w->v[3] = cc_value_real(max_temp);
    if (has_hyst || create)
        w->v[4] = cc_value_real(has_hyst ? hyst : CC_HYSTERESIS_DEFAULT);
    if (has_delay || create)
        w->v[5] = cc_value_int(has_delay ? delay : 0);
    if (create)
        w->v[6] = cc_value_int(cc_now_ms());
}

/* An update that changes one threshold is checked against the stored other one. */
static int check_cell(struct cc_resource_write *w)
{
    static const struct cc_column cols[] = {{"min", CC_COL_NUM}, {"max", CC_COL_NUM}};
    const int has_min = w->v[2].kind == CC_VALUE_REAL, has_max = w->v[3].kind == CC_VALUE_REAL;
    const struct cc_value id = cc_value_int(w->id);
    struct cc_input in;
    cJSON *cur = NULL;
    int rc;

    if (w->verb != CC_RESOURCE_UPDATE || has_min == has_max)
        return CC_OK;
    rc = cc_resource_query(w->st, sql_thresholds, &id, 1, cols, 2, 0, &cur);
    if (rc != CC_OK)
        return rc;
    cc_input_init(&in, NULL);
    check_range(&in, has_min ? w->v[2].d : cJSON_GetObjectItem(cur, "min")->valuedouble,
                has_max ? w->v[3].d : cJSON_GetObjectItem(cur, "max")->valuedouble);
    cJSON_Delete(cur);
    return cc_input_finish(&in, w->err);
}

const struct cc_resource cc_coldcells_resource = {
    .name = "cold_cell",
    .entity = CC_ENTITY_COLDCELL,
    CC_RESOURCE_COLUMNS(cell_cols),
    .sql = {sql_get, sql_list, sql_count, sql_insert, sql_update, sql_delete},
    .filter_param = "locationId",
    .parent_entity = CC_ENTITY_LOCATION,
    .parent_missing = "location not found",
    .read = read_cell,
    .check = check_cell,
};

int cc_coldcells_list(struct cc_store *st, const struct cc_principal *p, int64_t location_id,
                      const struct cc_page *pg, cJSON **out)
{
    return cc_resource_list_by(st, &cc_coldcells_resource, p, location_id, pg, out);
}
