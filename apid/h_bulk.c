/* h_bulk.c - POST /api/devices/bulk: many devices in one transaction.
 *
 * The body is a JSON array of {serialNumber, coldCellId, firmwareVersion?} (the rules of
 * `ccctl device import`, common/api/cc_bulk.c). The signed-in user must be allowed to change
 * every target cold cell: one cell that is not theirs answers 404 for the whole request.
 * Any bad item and nothing is created; the error lists every bad item with its line.
 * 201 answers [{serialNumber, apiKey, id}, ...] in body order: the keys are shown once. */
#include "api.h"

#include "cc_bulk.h"
#include "cc_rc.h"

int api_devices_bulk(struct api_req *r)
{
    struct cc_bulk *b = NULL;
    cJSON *err = NULL, *out = NULL;
    int rc;

    if (r->raw == NULL || r->raw_len == 0)
        return api_reply_error(r, CC_ERR_BAD_JSON,
                               "the request body must be a JSON array of devices", NULL);
    rc = cc_bulk_parse(r->raw, r->raw_len, CC_BULK_JSON, &b, &err);
    if (rc == CC_OK)
        rc = cc_bulk_provision(r->st, &r->who, b, NULL, NULL, &err);
    if (rc == CC_OK) {
        out = cc_bulk_result_json(b);
        if (out == NULL)
            rc = CC_ERR_NOMEM;
    }
    cc_bulk_free(b);
    return api_answer(r, rc, err, out, 201);
}
