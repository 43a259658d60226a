/* cc_error.c - builds the SPEC §5 error object {"error":{"code","message","details"?}}. */
#include "cc_error.h"
#include "cc_rc.h"

#include <stddef.h>

/* The inner "error" object of err, or NULL if err is not one of ours. */
static cJSON *inner(const cJSON *err)
{
    cJSON *e;

    if (err == NULL)
        return NULL;
    e = cJSON_GetObjectItemCaseSensitive(err, "error");
    return cJSON_IsObject(e) ? e : NULL;
}

cJSON *cc_error_new(int rc, const char *message)
{
    cJSON *root = NULL, *e = NULL;

    root = cJSON_CreateObject();
    if (root == NULL)
        goto fail;
    e = cJSON_AddObjectToObject(root, "error");
    if (e == NULL)
        goto fail;
    if (cJSON_AddStringToObject(e, "code", cc_rc_code(rc)) == NULL)
        goto fail;
    if (cJSON_AddStringToObject(e, "message", message ? message : "") == NULL)
        goto fail;
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

int cc_error_add_detail(cJSON *err, const char *field, const char *issue)
{
    cJSON *e = inner(err), *details, *item = NULL;
    int created = 0;

    if (e == NULL)
        return CC_ERR_NOMEM; /* the usual cause of a NULL err is a failed cc_error_new */
    item = cJSON_CreateObject();
    if (item == NULL)
        goto fail;
    if (cJSON_AddStringToObject(item, "field", field ? field : "") == NULL ||
        cJSON_AddStringToObject(item, "issue", issue ? issue : "") == NULL)
        goto fail;

    details = cJSON_GetObjectItemCaseSensitive(e, "details");
    if (!cJSON_IsArray(details)) {
        /* "details" appears only with its first entry. */
        details = cJSON_AddArrayToObject(e, "details");
        if (details == NULL)
            goto fail;
        created = 1;
    }
    if (!cJSON_AddItemToArray(details, item)) {
        if (created)
            cJSON_DeleteItemFromObjectCaseSensitive(e, "details");
        goto fail;
    }
    return CC_OK;
fail:
    cJSON_Delete(item);
    return CC_ERR_NOMEM;
}

int cc_error_detail_count(const cJSON *err)
{
    cJSON *e = inner(err), *details;

    if (e == NULL)
        return 0;
    details = cJSON_GetObjectItemCaseSensitive(e, "details");
    return cJSON_IsArray(details) ? cJSON_GetArraySize(details) : 0;
}

const char *cc_error_message(const cJSON *err)
{
    cJSON *m = cJSON_GetObjectItemCaseSensitive(inner(err), "message");

    return cJSON_IsString(m) && m->valuestring ? m->valuestring : "";
}

const char *cc_error_code(const cJSON *err)
{
    cJSON *c = cJSON_GetObjectItemCaseSensitive(inner(err), "code");

    return cJSON_IsString(c) && c->valuestring ? c->valuestring : "INTERNAL";
}
