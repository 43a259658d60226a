/* cc_audit.c - appends audit_log rows inside the caller's transaction. */
#include "cc_audit.h"

#include <stdlib.h>

#include "cc_rc.h"
#include "cc_time.h"

static const char sql_insert[] =
    "INSERT INTO audit_log (ts, actor_user_id, action, entity, entity_id, detail) "
    "VALUES ($1, $2, $3, $4, $5, $6)";

/* Adds a deep copy of item under name; CC_OK or CC_ERR_NOMEM. */
static int add_copy(cJSON *obj, const char *name, const cJSON *item)
{
    cJSON *dup;

    if (item == NULL)
        return CC_OK;
    dup = cJSON_Duplicate(item, 1);
    if (dup == NULL)
        return CC_ERR_NOMEM;
    if (!cJSON_AddItemToObject(obj, name, dup)) {
        cJSON_Delete(dup);
        return CC_ERR_NOMEM;
    }
    return CC_OK;
}

int cc_audit_append(struct cc_store *st, int64_t actor_user_id, const char *action,
                    const char *entity, int64_t entity_id, const cJSON *old_obj,
                    const cJSON *new_obj)
{
    struct cc_stmt *s = NULL;
    cJSON *detail = NULL;
    char *text = NULL;
    int rc;

    detail = cJSON_CreateObject();
    if (detail == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    rc = add_copy(detail, "old", old_obj);
    if (rc == CC_OK)
        rc = add_copy(detail, "new", new_obj);
    if (rc != CC_OK)
        goto out;
    text = cJSON_PrintUnformatted(detail);
    if (text == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    rc = cc_stmt_prepare(st, sql_insert, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, cc_now_ms());
    if (rc == CC_OK)
        rc = actor_user_id > 0 ? cc_stmt_bind_int64(s, 2, actor_user_id) : cc_stmt_bind_null(s, 2);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 3, action);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 4, entity);
    if (rc == CC_OK)
        rc = entity_id > 0 ? cc_stmt_bind_int64(s, 5, entity_id) : cc_stmt_bind_null(s, 5);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 6, text);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
out:
    cc_stmt_release(s);
    free(text);
    cJSON_Delete(detail);
    return rc;
}
