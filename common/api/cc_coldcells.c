/* cc_coldcells.c - cold cells: list, get, create, update, delete with audit. */
#include "cc_coldcells.h"

#include "cc_audit.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_input.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "cc_validate.h"

#define CELL_COLS                                                                                  \
    "c.id, c.location_id, c.name, c.min_temp, c.max_temp, c.hysteresis, c.alarm_delay_s, "         \
    "c.created_at"
#define CELL_FROM "cold_cells c JOIN locations l ON l.id = c.location_id"

static const char sql_list[] = "SELECT " CELL_COLS " FROM " CELL_FROM " WHERE " CC_ACCESS_SQL(
    "l.customer_id") " AND (?3 IS NULL OR c.location_id = ?3) ORDER BY c.id LIMIT ?4 OFFSET ?5";
static const char sql_count[] =
    "SELECT count(*) FROM " CELL_FROM
    " WHERE " CC_ACCESS_SQL("l.customer_id") " AND (?3 IS NULL OR c.location_id = ?3)";
static const char sql_get[] = "SELECT " CELL_COLS " FROM cold_cells c WHERE c.id = ?1";
static const char sql_thresholds[] = "SELECT min_temp, max_temp FROM cold_cells WHERE id = ?1";
static const char sql_insert[] =
    "INSERT INTO cold_cells (location_id, name, min_temp, max_temp, hysteresis, alarm_delay_s,"
    " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char sql_update[] =
    "UPDATE cold_cells SET location_id = coalesce(?2, location_id), name = coalesce(?3, name),"
    " min_temp = coalesce(?4, min_temp), max_temp = coalesce(?5, max_temp),"
    " hysteresis = coalesce(?6, hysteresis), alarm_delay_s = coalesce(?7, alarm_delay_s)"
    " WHERE id = ?1";
static const char sql_delete[] = "DELETE FROM cold_cells WHERE id = ?1";

static cJSON *cell_row(sqlite3_stmt *s)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    if (cc_sql_json_int(o, "id", s, 0) != CC_OK ||
        cc_sql_json_int(o, "locationId", s, 1) != CC_OK ||
        cc_sql_json_text(o, "name", s, 2) != CC_OK ||
        cc_sql_json_num(o, "minTemp", s, 3) != CC_OK ||
        cc_sql_json_num(o, "maxTemp", s, 4) != CC_OK ||
        cc_sql_json_num(o, "hysteresis", s, 5) != CC_OK ||
        cc_sql_json_int(o, "alarmDelayS", s, 6) != CC_OK ||
        cc_sql_json_time(o, "createdAt", s, 7) != CC_OK) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int cc_coldcells_list(struct cc_store *st, const struct cc_principal *p, int64_t location_id,
                      const struct cc_page *pg, cJSON **out)
{
    return cc_access_list(cc_store_db(st), sql_list, sql_count, p, location_id, pg, cell_row, out);
}

static int load(sqlite3 *db, int64_t id, cJSON **out)
{
    return cc_sql_get(db, sql_get, id, cell_row, out);
}

int cc_coldcells_get(struct cc_store *st, const struct cc_principal *p, int64_t id, cJSON **out)
{
    int rc = cc_access_check(st, p, CC_ENTITY_COLDCELL, id, CC_ACCESS_READ);

    if (rc != CC_OK)
        return rc;
    return load(cc_store_db(st), id, out);
}

/* The fields of a cell; has_* say which ones the body set. */
struct cell_fields {
    int64_t location_id;
    const char *name;
    double min_temp, max_temp, hysteresis;
    int64_t alarm_delay_s;
    int has_min, has_max, has_hyst, has_delay;
};

static void read_fields(struct cc_input *in, unsigned req, struct cell_fields *f)
{
    cc_input_int(in, "locationId", req, 1, INT64_MAX, &f->location_id);
    cc_input_text(in, "name", req | CC_INPUT_NONEMPTY, CC_NAME_MAX, &f->name);
    f->has_min =
        cc_input_number(in, "minTemp", req, CC_TEMP_MIN, CC_TEMP_MAX, &f->min_temp) == CC_INPUT_SET;
    f->has_max =
        cc_input_number(in, "maxTemp", req, CC_TEMP_MIN, CC_TEMP_MAX, &f->max_temp) == CC_INPUT_SET;
    f->has_hyst = cc_input_number(in, "hysteresis", 0, 0.0, CC_HYSTERESIS_MAX, &f->hysteresis) ==
                  CC_INPUT_SET;
    f->has_delay = cc_input_int(in, "alarmDelayS", 0, 0, CC_ALARM_DELAY_MAX_S, &f->alarm_delay_s) ==
                   CC_INPUT_SET;
}

/* Checks min < max once both are known. */
static void check_range(struct cc_input *in, double min_temp, double max_temp)
{
    if (!(min_temp < max_temp))
        cc_input_problem(in, "maxTemp", "must be greater than minTemp");
}

int cc_coldcells_create(struct cc_store *st, const struct cc_principal *p, const cJSON *body,
                        cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    struct cc_input in;
    struct cell_fields f = {0};
    cJSON *cell = NULL;
    int64_t id;
    int rc;

    cc_input_init(&in, body);
    read_fields(&in, CC_INPUT_REQUIRED, &f);
    if (f.has_min && f.has_max)
        check_range(&in, f.min_temp, f.max_temp);
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        return rc;

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_LOCATION, f.location_id, CC_ACCESS_WRITE);
    if (rc == CC_ERR_NOT_FOUND)
        *err = cc_error_new(rc, "location not found");
    if (rc != CC_OK)
        goto end;
    rc = cc_sql_prepare(db, sql_insert, &stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_bind_int64(stmt, 1, f.location_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, f.name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_double(stmt, 3, f.min_temp) != SQLITE_OK ||
        sqlite3_bind_double(stmt, 4, f.max_temp) != SQLITE_OK ||
        sqlite3_bind_double(stmt, 5, f.has_hyst ? f.hysteresis : CC_HYSTERESIS_DEFAULT) !=
            SQLITE_OK ||
        sqlite3_bind_int64(stmt, 6, f.has_delay ? f.alarm_delay_s : 0) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 7, cc_now_ms()) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    rc = cc_sql_exec(db, stmt);
    if (rc != CC_OK)
        goto end;
    id = sqlite3_last_insert_rowid(db);
    rc = load(db, id, &cell);
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "create", "cold_cell", id, NULL, cell);
end:
    cc_sql_release(stmt);
    rc = cc_sql_end(db, rc);
    if (rc != CC_OK) {
        cJSON_Delete(cell);
        return rc;
    }
    *out = cell;
    return CC_OK;
}

/* The stored thresholds of cell id. */
static int thresholds(sqlite3 *db, int64_t id, double *min_temp, double *max_temp)
{
    sqlite3_stmt *stmt = NULL;
    int src, rc = cc_sql_prepare(db, sql_thresholds, &stmt);

    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src == SQLITE_ROW) {
        *min_temp = sqlite3_column_double(stmt, 0);
        *max_temp = sqlite3_column_double(stmt, 1);
    } else {
        rc = src == SQLITE_DONE ? CC_ERR_NOT_FOUND : cc_sql_step_rc(db, src, "thresholds");
    }
out:
    cc_sql_release(stmt);
    return rc;
}

int cc_coldcells_update(struct cc_store *st, const struct cc_principal *p, int64_t id,
                        const cJSON *body, cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    struct cc_input in;
    struct cell_fields f = {0};
    cJSON *before = NULL, *after = NULL;
    double cur_min = 0, cur_max = 0;
    int rc;

    cc_input_init(&in, body);
    read_fields(&in, 0, &f);
    if (f.has_min && f.has_max)
        check_range(&in, f.min_temp, f.max_temp);
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        return rc;

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_COLDCELL, id, CC_ACCESS_WRITE);
    if (rc != CC_OK)
        goto end;
    if (f.location_id > 0) {
        rc = cc_access_check(st, p, CC_ENTITY_LOCATION, f.location_id, CC_ACCESS_WRITE);
        if (rc == CC_ERR_NOT_FOUND)
            *err = cc_error_new(rc, "location not found");
        if (rc != CC_OK)
            goto end;
    }
    if (f.has_min != f.has_max) {
        /* One threshold changes: check it against the stored other one. */
        rc = thresholds(db, id, &cur_min, &cur_max);
        if (rc != CC_OK)
            goto end;
        cc_input_init(&in, body);
        check_range(&in, f.has_min ? f.min_temp : cur_min, f.has_max ? f.max_temp : cur_max);
        rc = cc_input_finish(&in, err);
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
        (f.location_id > 0 ? sqlite3_bind_int64(stmt, 2, f.location_id) : SQLITE_OK) != SQLITE_OK ||
        cc_sql_bind_text_or_null(stmt, 3, f.name) != SQLITE_OK ||
        (f.has_min ? sqlite3_bind_double(stmt, 4, f.min_temp) : SQLITE_OK) != SQLITE_OK ||
        (f.has_max ? sqlite3_bind_double(stmt, 5, f.max_temp) : SQLITE_OK) != SQLITE_OK ||
        (f.has_hyst ? sqlite3_bind_double(stmt, 6, f.hysteresis) : SQLITE_OK) != SQLITE_OK ||
        (f.has_delay ? sqlite3_bind_int64(stmt, 7, f.alarm_delay_s) : SQLITE_OK) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    rc = cc_sql_exec(db, stmt);
    if (rc == CC_OK)
        rc = load(db, id, &after);
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "update", "cold_cell", id, before, after);
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

int cc_coldcells_delete(struct cc_store *st, const struct cc_principal *p, int64_t id)
{
    return cc_access_delete(st, p, CC_ENTITY_COLDCELL, "cold_cell", id, load, sql_delete);
}
