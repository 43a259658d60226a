/* h_dashboard.c - GET /api/dashboard/customer and GET /api/dashboard/technician.
 * The views and their access rule are in common/api/cc_query.h. */
#include "api.h"

#include "cc_query.h"
#include "cc_rc.h"

int api_dashboard_customer(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_dashboard_customer(r->st, &r->who, &out);

    return api_answer(r, rc, NULL, out, 200);
}

int api_dashboard_technician(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_dashboard_technician(r->st, &r->who, &out);

    return api_answer(r, rc, NULL, out, 200);
}
