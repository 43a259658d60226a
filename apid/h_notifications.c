/* h_notifications.c - /api/notifications: the signed-in user's own, newest first
 * (?limit=&offset=), and marking one read. */
#include "api.h"

#include "cc_alerts_api.h"
#include "cc_rc.h"

int api_notifications_list(struct api_req *r)
{
    struct cc_page pg;
    cJSON *out = NULL, *err = NULL;
    int rc = cc_http_page(r->query, CC_ALERTS_PAGE_DEFAULT, &pg, &err);

    if (rc == CC_OK)
        rc = cc_notifications_list(r->st, &r->who, &pg, &out);
    return api_answer(r, rc, err, out, 200);
}

int api_notifications_read(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_notifications_read(r->st, &r->who, r->id[0], &out);

    return api_answer(r, rc, NULL, out, 200);
}
