/* cc_json.c - an iterative depth and \u0000 check in front of cJSON for outside documents. */
#include "cc_json.h"

#include <limits.h>
#include <string.h>

/* One pass over s[0..len) for both checks of the gate: returns 0 as soon as an array or
 * object nests deeper than max_depth (>= 0), else 1; *nul (may be NULL) is set to 1 when
 * a string holds the escape \u0000 (an escaped backslash before "u0000" is text). Never
 * recurses; O(len). */
static int scan(const char *s, size_t len, int max_depth, int *nul)
{
    size_t depth = 0;
    int in_str = 0;

    if (s == NULL)
        return 1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (in_str) {
            if (c == '\\') {
                if (nul != NULL && len - i > 5 && memcmp(s + i + 1, "u0000", 5) == 0)
                    *nul = 1;
                i++; /* the escaped byte cannot end the string nor start an escape */
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > (size_t)max_depth)
                return 0;
        } else if ((c == ']' || c == '}') && depth > 0) {
            /* An unmatched closer is the parser's to refuse; it must not buy depth. */
            depth--;
        }
    }
    return 1;
}

int cc_json_depth_ok(const char *s, size_t len, int max_depth)
{
    return scan(s, len, max_depth < 0 ? 0 : max_depth, NULL);
}

int cc_json_has_nul_escape(const char *s, size_t len)
{
    int nul = 0;

    scan(s, len, INT_MAX, &nul);
    return nul;
}

cJSON *cc_json_parse_outside(const char *s, size_t len, int *why)
{
    const char *end = NULL;
    cJSON *root;
    int refusal = 0, nul = 0;

    if (why != NULL)
        *why = 0;
    if (s == NULL || len == 0)
        return NULL;
    if (!scan(s, len, CC_JSON_MAX_DEPTH, &nul))
        refusal = CC_JSON_TOO_DEEP;
    else if (nul)
        refusal = CC_JSON_NUL;
    if (refusal != 0) {
        if (why != NULL)
            *why = refusal;
        return NULL;
    }
    root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (root == NULL)
        return NULL;
    /* Only blanks may follow the value: "{} x" is not one document. */
    for (; end != NULL && end < s + len; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}
