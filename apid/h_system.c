/* h_system.c - GET /health (the process answers) and GET /ready (the database does). */
#include "api.h"

#include "cc_rc.h"
#include "cc_store.h"

int api_health(struct api_req *r)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || cJSON_AddStringToObject(o, "status", "ok") == NULL) {
        cJSON_Delete(o);
        return api_reply_error(r, CC_ERR_NOMEM, NULL, NULL);
    }
    return api_reply_json(r, 200, o);
}

/* Ready when this worker's connection answers a query and the schema is current. */
int api_ready(struct api_req *r)
{
    cJSON *o;
    int version = 0;

    if (r->st == NULL || cc_store_schema_version(r->st, &version) != CC_OK ||
        version < cc_store_schema_latest(r->st)) {
        return api_reply_unavailable(r, "database not ready");
    }
    o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddStringToObject(o, "status", "ready") == NULL ||
        cJSON_AddNumberToObject(o, "schemaVersion", version) == NULL) {
        cJSON_Delete(o);
        return api_reply_error(r, CC_ERR_NOMEM, NULL, NULL);
    }
    return api_reply_json(r, 200, o);
}
