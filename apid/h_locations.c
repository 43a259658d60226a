/* h_locations.c - /api/locations: list (filter ?customerId=), create, get, update, delete. */
#include "api.h"

#include "cc_locations.h"
#include "cc_rc.h"

int api_locations_list(struct api_req *r)
{
    struct cc_page pg;
    int64_t filter = 0;
    cJSON *out = NULL, *err = NULL;
    int rc = cc_http_page(r->query, CC_PAGE_MAX, &pg, &err);

    if (rc == CC_OK)
        rc = cc_http_query_id(r->query, "customerId", &filter, &err);
    if (rc == CC_OK)
        rc = cc_locations_list(r->st, &r->who, filter, &pg, &out);
    return api_answer(r, rc, err, out, 200);
}

int api_locations_create(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_locations_create(r->st, &r->who, r->body, &out, &err);

    return api_answer(r, rc, err, out, 201);
}

int api_locations_get(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_locations_get(r->st, &r->who, r->id[0], &out);

    return api_answer(r, rc, NULL, out, 200);
}

int api_locations_update(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_locations_update(r->st, &r->who, r->id[0], r->body, &out, &err);

    return api_answer(r, rc, err, out, 200);
}

int api_locations_delete(struct api_req *r)
{
    int rc = cc_locations_delete(r->st, &r->who, r->id[0]);

    return api_answer(r, rc, NULL, NULL, 204);
}
