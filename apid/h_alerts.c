/* h_alerts.c - /api/alerts/:id: resolve {note?} and acknowledge; list and get are the
 * resource's (h_resource.c). */
#include "api.h"

#include "cc_alerts_api.h"
#include "cc_rc.h"

/* The body is optional: none, or an object {note?}. */
int api_alerts_resolve(struct api_req *r)
{
    cJSON *body = NULL, *out = NULL, *err = NULL;
    int rc = CC_OK;

    if (r->raw != NULL && r->raw_len > 0)
        rc = cc_http_parse_body(r->raw, r->raw_len, &body, &err);
    if (rc == CC_OK)
        rc = cc_alerts_resolve(r->st, &r->who, r->id[0], body, &out, &err);
    cJSON_Delete(body);
    return api_answer(r, rc, err, out, 200);
}

int api_alerts_acknowledge(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_alerts_acknowledge(r->st, &r->who, r->id[0], &out, &err);

    return api_answer(r, rc, err, out, 200);
}
