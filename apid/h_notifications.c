/* h_notifications.c - PATCH /api/notifications/:id/read; the list is the resource's
 * (h_resource.c). */
#include "api.h"

#include "cc_alerts_api.h"
#include "cc_rc.h"

int api_notifications_read(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_notifications_read(r->st, &r->who, r->id[0], &out);

    return api_answer(r, rc, NULL, out, 200);
}
