/* cc_rc.c - status codes to SPEC strings and HTTP statuses. */
#include "cc_rc.h"

static const struct {
    const char *code;
    int status;
} table[CC_RC_COUNT] = {
    [CC_OK] = {"OK", 200},
    [CC_ERR_VALIDATION] = {"VALIDATION_ERROR", 400},
    [CC_ERR_BAD_JSON] = {"BAD_JSON", 400},
    [CC_ERR_UNAUTHORIZED] = {"UNAUTHORIZED", 401},
    [CC_ERR_TOKEN_EXPIRED] = {"TOKEN_EXPIRED", 401},
    [CC_ERR_INVALID_CREDENTIALS] = {"INVALID_CREDENTIALS", 401},
    [CC_ERR_FORBIDDEN] = {"FORBIDDEN", 403},
    [CC_ERR_NOT_FOUND] = {"NOT_FOUND", 404},
    [CC_ERR_METHOD] = {"METHOD_NOT_ALLOWED", 405},
    [CC_ERR_CONFLICT] = {"CONFLICT", 409},
    [CC_ERR_TOO_LARGE] = {"PAYLOAD_TOO_LARGE", 413},
    [CC_ERR_RATE_LIMITED] = {"RATE_LIMITED", 429},
    [CC_ERR_INTERNAL] = {"INTERNAL", 500},
    [CC_ERR_NOMEM] = {"INTERNAL", 500},
    [CC_ERR_DB] = {"INTERNAL", 500},
    [CC_ERR_IO] = {"INTERNAL", 500},
    [CC_ERR_CONFIG] = {"INTERNAL", 500},
    [CC_ERR_DUPLICATE] = {"CONFLICT", 409},
};

const char *cc_rc_code(int rc)
{
    if (rc < 0 || rc >= CC_RC_COUNT)
        return "INTERNAL";
    return table[rc].code;
}

int cc_rc_http_status(int rc)
{
    if (rc < 0 || rc >= CC_RC_COUNT)
        return 500;
    return table[rc].status;
}

_Static_assert(CC_ROW >= CC_RC_COUNT, "CC_ROW must not collide with a status code");
