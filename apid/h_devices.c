/* h_devices.c - /api/devices: list (filter ?coldCellId=), create, get, update, delete. */
#include "api.h"

#include "cc_devices.h"
#include "cc_rc.h"

int api_devices_list(struct api_req *r)
{
    struct cc_page pg;
    int64_t filter = 0;
    cJSON *out = NULL, *err = NULL;
    int rc = cc_http_page(r->query, CC_PAGE_MAX, &pg, &err);

    if (rc == CC_OK)
        rc = cc_http_query_id(r->query, "coldCellId", &filter, &err);
    if (rc == CC_OK)
        rc = cc_devices_list(r->st, &r->who, filter, &pg, &out);
    return api_answer(r, rc, err, out, 200);
}

int api_devices_create(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_devices_create(r->st, &r->who, r->body, &out, &err);

    return api_answer(r, rc, err, out, 201);
}

int api_devices_get(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_devices_get(r->st, &r->who, r->id[0], &out);

    return api_answer(r, rc, NULL, out, 200);
}

int api_devices_update(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_devices_update(r->st, &r->who, r->id[0], r->body, &out, &err);

    return api_answer(r, rc, err, out, 200);
}

int api_devices_delete(struct api_req *r)
{
    int rc = cc_devices_delete(r->st, &r->who, r->id[0]);

    return api_answer(r, rc, NULL, NULL, 204);
}

int api_devices_regenerate_key(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_devices_regenerate_key(r->st, &r->who, r->id[0], &out);

    return api_answer(r, rc, NULL, out, 200);
}
