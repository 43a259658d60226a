/* h_openapi.c - GET /api/openapi.json: the OpenAPI 3.1 document of this API.
 *
 * docs/openapi.yaml is the source; docs/openapi.json is generated from it
 * (`make openapi`, tools/gen_openapi.py) and embedded at build time as
 * cc_openapi_json (tools/gen_openapi_c.sh -> build/gen/openapi_json.c). */
#include "api.h"

#include "cc_rc.h"

extern const char cc_openapi_json[];

int api_openapi(struct api_req *r)
{
    cJSON *doc = cJSON_Parse(cc_openapi_json);

    if (doc == NULL)
        return api_reply_error(r, CC_ERR_NOMEM, NULL, NULL);
    return api_reply_json(r, 200, doc);
}
