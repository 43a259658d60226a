/* h_devices.c - /api/devices/:id/regenerate-key; the other device routes are the
 * resource's (h_resource.c). */
#include "api.h"

#include "cc_devices.h"
#include "cc_rc.h"

int api_devices_regenerate_key(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_devices_regenerate_key(r->st, &r->who, r->id[0], &out);

    return api_answer(r, rc, NULL, out, 200);
}
