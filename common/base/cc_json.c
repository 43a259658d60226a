/* cc_json.c - an iterative depth check in front of cJSON for outside documents. */
#include "cc_json.h"

#include <string.h>

int cc_json_depth_ok(const char *s, size_t len, int max_depth)
{
    size_t i;
    int depth = 0;
    int in_str = 0;

    if (s == NULL)
        return 1;
    for (i = 0; i < len; i++) {
        char c = s[i];

        if (in_str) {
            if (c == '\\')
                i++; /* the escaped byte cannot end the string */
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return 0;
        } else if ((c == ']' || c == '}') && depth > 0) {
            /* An unmatched closer is the parser's to refuse; it must not buy depth. */
            depth--;
        }
    }
    return 1;
}

int cc_json_has_nul_escape(const char *s, size_t len)
{
    int in_str = 0;

    if (s == NULL)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_str) {
            in_str = s[i] == '"';
        } else if (s[i] == '"') {
            in_str = 0;
        } else if (s[i] == '\\') {
            if (len - i > 5 && memcmp(s + i + 1, "u0000", 5) == 0)
                return 1;
            i++; /* the escaped byte: an escaped backslash cannot start an escape */
        }
    }
    return 0;
}

cJSON *cc_json_parse_outside(const char *s, size_t len, int *why)
{
    const char *end = NULL;
    cJSON *root;
    int refusal = 0;

    if (why != NULL)
        *why = 0;
    if (s == NULL || len == 0)
        return NULL;
    if (!cc_json_depth_ok(s, len, CC_JSON_MAX_DEPTH))
        refusal = CC_JSON_TOO_DEEP;
    else if (cc_json_has_nul_escape(s, len))
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
