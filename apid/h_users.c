/* h_users.c - technician-customer links; the /api/users routes are the resource's
 * (h_resource.c). */
#include "api.h"

#include "cc_rc.h"
#include "cc_users.h"

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
