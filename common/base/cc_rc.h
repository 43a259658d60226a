/* cc_rc.h - the one status code enum of the common library.
 *
 * Every cc_* function that can fail returns int: CC_OK (0) or a CC_ERR_* code.
 * Codes map one to one onto the SPEC §5 error codes where one exists, so the
 * HTTP layer turns a code into a status and a body without a second table.
 * Thread-safe: pure functions. */
#ifndef CC_RC_H
#define CC_RC_H

enum cc_rc {
    CC_OK = 0,
    CC_ERR_VALIDATION,          /* 400 VALIDATION_ERROR */
    CC_ERR_BAD_JSON,            /* 400 BAD_JSON */
    CC_ERR_UNAUTHORIZED,        /* 401 UNAUTHORIZED */
    CC_ERR_TOKEN_EXPIRED,       /* 401 TOKEN_EXPIRED */
    CC_ERR_INVALID_CREDENTIALS, /* 401 INVALID_CREDENTIALS */
    CC_ERR_FORBIDDEN,           /* 403 FORBIDDEN */
    CC_ERR_NOT_FOUND,           /* 404 NOT_FOUND */
    CC_ERR_METHOD,              /* 405 METHOD_NOT_ALLOWED */
    CC_ERR_CONFLICT,            /* 409 CONFLICT */
    CC_ERR_TOO_LARGE,           /* 413 PAYLOAD_TOO_LARGE */
    CC_ERR_RATE_LIMITED,        /* 429 RATE_LIMITED */
    CC_ERR_INTERNAL,            /* 500 INTERNAL */
    CC_ERR_NOMEM,               /* 500 INTERNAL: out of memory */
    CC_ERR_DB,                  /* 500 INTERNAL: database failure (retryable: busy, I/O) */
    CC_ERR_IO,                  /* 500 INTERNAL: file or socket failure */
    CC_ERR_CONFIG,              /* a bad configuration value: the daemon exits 2 */
    CC_ERR_DUPLICATE,           /* not an error for callers that ignore redeliveries */
    CC_RC_COUNT,
    /* Not an error and not a SPEC code: cc_stmt_step (cc_dbi.h) has a row ready. Far above
     * CC_RC_COUNT so that no new CC_ERR_* ever takes its value; cc_rc_code and
     * cc_rc_http_status treat it as any unknown code ("INTERNAL", 500). */
    CC_ROW = 100
};

/* The SPEC §5 code string ("VALIDATION_ERROR", ...). Never NULL. */
const char *cc_rc_code(int rc);
/* The HTTP status that fits rc (400, 401, ...; 500 for internal codes). */
int cc_rc_http_status(int rc);

#endif
