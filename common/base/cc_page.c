/* cc_page.c - see cc_page.h. */
#include "cc_page.h"

cJSON *cc_page_answer(cJSON *items, int64_t total)
{
    cJSON *root = NULL;

    if (items == NULL)
        return NULL;
    root = cJSON_CreateObject();
    if (root == NULL)
        goto fail;
    if (!cJSON_AddItemToObject(root, "items", items))
        goto fail;
    items = NULL;
    if (cJSON_AddNumberToObject(root, "total", (double)total) == NULL)
        goto fail;
    return root;
fail:
    cJSON_Delete(items);
    cJSON_Delete(root);
    return NULL;
}
