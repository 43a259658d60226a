/* fuzz_json.c - the depth gate in front of every outside JSON document (common/base/cc_json.c),
 * checked against cJSON, the parser it protects. Input: the document bytes.
 * Invariants:
 *  - whatever cc_json_depth_ok lets through, cJSON parses on a 100 KiB worker stack
 *    without overflowing it (the issue 12 crash);
 *  - for a document cJSON parses whole, the gate is exact: ok iff the tree nests at
 *    most CC_JSON_MAX_DEPTH levels (no deep tree passes, no legal one is refused);
 *  - a larger bound never refuses what a smaller one accepts;
 *  - cc_json_parse_outside returns a tree only within the bound and without a \u0000
 *    escape, and a refusal (too deep, or \u0000) only without a tree. */
#include <cjson/cJSON.h>

#include "cc_json.h"
#include "fuzz.h"

struct job {
    const char *s;
    size_t len;
};

/* Nesting depth of a tree cJSON built ("[]" is 1, a scalar 0). cJSON refuses more than
 * CJSON_NESTING_LIMIT (1000) levels, so this recursion is bounded on the fuzzer's stack. */
static int tree_depth(const cJSON *j)
{
    int d = 0;

    if (!cJSON_IsArray(j) && !cJSON_IsObject(j))
        return 0;
    for (const cJSON *c = j->child; c != NULL; c = c->next) {
        int cd = tree_depth(c);

        if (cd > d)
            d = cd;
    }
    return d + 1;
}

static void *parse_on_worker(void *arg)
{
    struct job *jb = arg;

    cJSON_Delete(cJSON_ParseWithLength(jb->s, jb->len));
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    int ok = cc_json_depth_ok(s, size, CC_JSON_MAX_DEPTH);
    int why = -1;
    const char *end = NULL;
    cJSON *whole, *gated;

    FUZZ_CHECK(ok == 0 || ok == 1);
    FUZZ_CHECK(!ok || cc_json_depth_ok(s, size, CC_JSON_MAX_DEPTH + 1));
    FUZZ_CHECK(cc_json_depth_ok(s, size, CC_JSON_MAX_DEPTH - 1) == 0 || ok);
    if (ok) {
        struct job jb = {s, size};

        fuzz_on_worker_stack(parse_on_worker, &jb);
    }

    /* The differential: cJSON on the fuzzer's 8 MiB stack, where it cannot overflow. */
    whole = cJSON_ParseWithLengthOpts(s, size, &end, 0);
    if (whole != NULL && end == s + size) {
        int d = tree_depth(whole);

        FUZZ_CHECK(ok == (d <= CC_JSON_MAX_DEPTH));
    }
    cJSON_Delete(whole);

    gated = cc_json_parse_outside(s, size, &why);
    FUZZ_CHECK(why == 0 || why == CC_JSON_TOO_DEEP || why == CC_JSON_NUL);
    FUZZ_CHECK(!(gated != NULL && why));
    FUZZ_CHECK((why == CC_JSON_TOO_DEEP) == (size > 0 && !ok));
    FUZZ_CHECK((why == CC_JSON_NUL) == (size > 0 && ok && cc_json_has_nul_escape(s, size)));
    if (gated != NULL)
        FUZZ_CHECK(tree_depth(gated) <= CC_JSON_MAX_DEPTH);
    cJSON_Delete(gated);
    free(s);
    return 0;
}
