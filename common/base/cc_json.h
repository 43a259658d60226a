/* cc_json.h - the one gate every JSON document from outside passes before a parser.
 *
 * cJSON and jansson (inside libjwt) recurse once per nesting level; civetweb's worker
 * threads have 100 KiB stacks, so a body of a few thousand '[' overflows one before the
 * parser's own limit is reached. cc_json_depth_ok is an iterative scan that refuses a
 * document nesting deeper than a bound; cc_json_parse_outside applies it, then parses.
 * Every document that comes from a client, a device, a token or the broker goes through
 * one of the two (SPEC §5 "Input limits"). Thread-safe (no shared state). */
#ifndef CC_JSON_H
#define CC_JSON_H

#include <stddef.h>
#include <cjson/cJSON.h>

#define CC_JSON_MAX_DEPTH 32 /* nesting levels accepted in any outside JSON */
#define CC_JSON_STR_(x) #x
#define CC_JSON_STR(x) CC_JSON_STR_(x)
/* "32": the limit as text, for error messages that name it. */
#define CC_JSON_MAX_DEPTH_TEXT CC_JSON_STR(CC_JSON_MAX_DEPTH)

/* Why the gate refused a document (cc_json_parse_outside's *why); 0 for anything else. */
enum cc_json_refusal {
    CC_JSON_TOO_DEEP = 1, /* nests deeper than CC_JSON_MAX_DEPTH */
    /* A string holds the escape \u0000: cJSON decodes it to a NUL byte that ends every C
     * string after it, so a name, a password or a firmware version would be stored or
     * compared cut short, silently. */
    CC_JSON_NUL = 2,
};

/* 1 when no array or object in s[0..len) nests deeper than max_depth (a document of
 * scalars has depth 0, "[]" depth 1), else 0. Brackets inside strings do not count;
 * backslash escapes are skipped. Does not validate: a malformed document that is
 * shallow enough gets 1 and is refused by the parser. Never recurses; O(len). */
int cc_json_depth_ok(const char *s, size_t len, int max_depth);

/* 1 when a string in s[0..len) holds the escape \u0000 (an escaped backslash followed
 * by "u0000" is text, not the escape), else 0. Never recurses; O(len). */
int cc_json_has_nul_escape(const char *s, size_t len);

/* Parses s[0..len) when it nests at most CC_JSON_MAX_DEPTH levels, no string holds
 * \u0000 and nothing but JSON blanks follows the value. Returns the tree (caller
 * cJSON_Delete's it) or NULL on bad JSON, on a document the gate refuses or out of
 * memory; *why (may be NULL) is set to the cc_json_refusal when the gate refused it,
 * else 0. */
cJSON *cc_json_parse_outside(const char *s, size_t len, int *why);

#endif
