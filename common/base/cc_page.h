/* cc_page.h - a window of a list answer and the answer's shape (SPEC §5 lists):
 * {"items":[...],"total":N}. No database here: the resources fill it from either store.
 * Thread-safe: pure functions. */
#ifndef CC_PAGE_H
#define CC_PAGE_H

#include <stdint.h>
#include <cjson/cJSON.h>

#define CC_PAGE_MAX 500 /* most items in one list answer */

/* A window of a list: at most limit items after skipping offset. */
struct cc_page {
    int64_t limit;  /* 1..CC_PAGE_MAX */
    int64_t offset; /* >= 0 */
};

/* A list answer {"items":items,"total":total}; takes items (deleted on failure). NULL on
 * out of memory (or when items is NULL). */
cJSON *cc_page_answer(cJSON *items, int64_t total);

#endif
