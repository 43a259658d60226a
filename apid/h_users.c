/* h_users.c - the admin routes: /api/users and technician-customer links. */
#include "api.h"

#include "cc_rc.h"
#include "cc_users.h"

int api_users_list(struct api_req *r)
{
    struct cc_page pg;
    cJSON *out = NULL, *err = NULL;
    int rc = cc_http_page(r->query, CC_PAGE_MAX, &pg, &err);

    if (rc == CC_OK)
        rc = cc_users_list(r->st, &r->who, &pg, &out);
    return api_answer(r, rc, err, out, 200);
}

int api_users_create(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_users_create(r->st, &r->who, r->body, &out, &err);

    return api_answer(r, rc, err, out, 201);
}

int api_users_get(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_users_get(r->st, &r->who, r->id[0], &out);

    return api_answer(r, rc, NULL, out, 200);
}

int api_users_update(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_users_update(r->st, &r->who, r->id[0], r->body, &out, &err);

    return api_answer(r, rc, err, out, 200);
}

int api_users_delete(struct api_req *r)
{
    cJSON *err = NULL;
    int rc = cc_users_delete(r->st, &r->who, r->id[0], &err);

    return api_answer(r, rc, err, NULL, 204);
}

int api_users_link(struct api_req *r)
{
    cJSON *err = NULL;
    int rc = cc_users_link(r->st, &r->who, r->id[0], r->id[1], 1, &err);

    return api_answer(r, rc, err, NULL, 204);
}

int api_users_unlink(struct api_req *r)
{
    cJSON *err = NULL;
    int rc = cc_users_link(r->st, &r->who, r->id[0], r->id[1], 0, &err);

    return api_answer(r, rc, err, NULL, 204);
}
