/* h_alerts.c - /api/alerts: list (?status=&type=&coldCellId=&limit=&offset=), get,
 * resolve {note?}, acknowledge. */
#include "api.h"

#include "cc_alerts_api.h"
#include "cc_rc.h"

int api_alerts_list(struct api_req *r)
{
    struct cc_alert_filter f;
    struct cc_page pg;
    cJSON *out = NULL, *err = NULL;
    int rc = cc_http_page(r->query, CC_ALERTS_PAGE_DEFAULT, &pg, &err);

    if (rc == CC_OK)
        rc = cc_alerts_filter_parse(r->query, &f, &err);
    if (rc == CC_OK)
        rc = cc_alerts_list(r->st, &r->who, &f, &pg, &out);
    return api_answer(r, rc, err, out, 200);
}

int api_alerts_get(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_alerts_get(r->st, &r->who, r->id[0], &out);

    return api_answer(r, rc, NULL, out, 200);
}

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
