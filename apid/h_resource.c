/* h_resource.c - the five verbs of every resource route: the route's descriptor
 * (api_route.res, common/api/cc_resource.h) says which resource; these read the request
 * and answer. */
#include "api.h"

#include "cc_rc.h"
#include "cc_resource.h"

int api_resource_list(struct api_req *r)
{
    const struct cc_resource *res = r->route->res;
    struct cc_resource_filter f;
    struct cc_page pg;
    cJSON *out = NULL, *err = NULL;
    int rc =
        cc_http_page(r->query, res->page_default > 0 ? res->page_default : CC_PAGE_MAX, &pg, &err);

    if (rc == CC_OK)
        rc = cc_resource_filter_parse(res, r->query, &f, &err);
    if (rc == CC_OK)
        rc = cc_resource_list(r->st, res, &r->who, &f, &pg, &out);
    return api_answer(r, rc, err, out, 200);
}

int api_resource_get(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_resource_get(r->st, r->route->res, &r->who, r->id[0], &out);

    return api_answer(r, rc, NULL, out, 200);
}

int api_resource_create(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_resource_create(r->st, r->route->res, &r->who, r->body, &out, &err);

    return api_answer(r, rc, err, out, 201);
}

int api_resource_update(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_resource_update(r->st, r->route->res, &r->who, r->id[0], r->body, &out, &err);

    return api_answer(r, rc, err, out, 200);
}

int api_resource_delete(struct api_req *r)
{
    cJSON *err = NULL;
    int rc = cc_resource_delete(r->st, r->route->res, &r->who, r->id[0], &err);

    return api_answer(r, rc, err, NULL, 204);
}
