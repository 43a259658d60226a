/* cc_http.h - the HTTP-side helpers of the API that need no server: the one builder of
 * every error body, request body parsing, query strings, ids, client addresses and
 * CORS origins. apid calls these; unit tests reach them without a socket.
 * Pure functions, thread-safe. Returned strings and trees are the caller's. */
#ifndef CC_HTTP_H
#define CC_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_page.h"

#define CC_MAX_BODY (64 * 1024) /* bytes of a request body; more answers 413 */
#define CC_ADDR_MAX 64          /* bytes of a client address string, NUL included */
#define CC_QUERY_VALUE_MAX 256  /* bytes of one decoded query parameter */

/* The body of every error answer, SPEC §5: {"error":{"code","message","details"?}}.
 * When err (a cc_error_new tree) is given it is used as is, else one is built from rc
 * and message (NULL: the code's default sentence). In production an internal error
 * (5xx) says only "internal error". Returns a malloc'd string, NULL on out of memory. */
char *cc_http_error_body(int rc, const char *message, const cJSON *err, int production);

/* The default sentence for rc ("not found", ...). Never NULL. */
const char *cc_http_default_message(int rc);

/* Parses a request body that must be a JSON object. CC_OK and *out (caller deletes);
 * CC_ERR_BAD_JSON when it is not JSON (or empty); CC_ERR_VALIDATION when it is JSON
 * but not an object; *err then holds the error object (caller deletes). */
int cc_http_parse_body(const char *buf, size_t len, cJSON **out, cJSON **err);

/* Finds name in a query string (a=1&b=2, %XX and + decoded) and copies its value into
 * out ("" for `name=` and for a bare `name`). 1 if found (and it fit), 0 if absent, -1 if
 * too long, badly encoded or given more than once. */
int cc_http_query_param(const char *qs, const char *name, char *out, size_t outlen);

/* A positive decimal id without sign or leading zeros. 1 if valid. */
int cc_http_parse_id(const char *s, int64_t *out);

/* Reads limit (default def_limit, 1..CC_PAGE_MAX) and offset (default 0) from a query
 * string. CC_OK, or CC_ERR_VALIDATION with *err (caller deletes). */
int cc_http_page(const char *qs, int64_t def_limit, struct cc_page *pg, cJSON **err);

/* Reads an optional positive id filter `name` from a query string into *out (0 when
 * absent). CC_OK or CC_ERR_VALIDATION with *err. */
int cc_http_query_id(const char *qs, const char *name, int64_t *out, cJSON **err);

/* The client address the limits count: the peer address, or with trust_proxy the
 * right-most X-Forwarded-For entry (the one our proxy appended; the entries left of it
 * are whatever the client sent). Falls back to the peer when the header is absent or
 * its last entry is not a plausible address. Writes out (CC_ADDR_MAX bytes). */
void cc_http_client_addr(const char *peer, const char *xff, int trust_proxy, char *out,
                         size_t outlen);

/* 1 if origin is allowed by a CORS_ORIGINS list ("https://a.example,https://b.example";
 * "*" allows any), else 0. An empty list allows none. */
int cc_http_origin_allowed(const char *origins, const char *origin);

#endif
