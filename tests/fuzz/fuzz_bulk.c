/* fuzz_bulk.c - bulk device import parsing (common/api/cc_bulk.c cc_bulk_parse), CSV and
 * JSON, run on a thread with a civetweb worker's 100 KiB stack as POST
 * /api/devices/bulk runs it (`ccctl device import` reads files with the same code).
 * Input: one format byte (even: CSV, odd: JSON), then the file bytes.
 * Invariants: an accepted import has 1..CC_BULK_MAX_ROWS rows, each with a valid serial,
 * a positive cold cell id, a firmware version within CC_FIRMWARE_MAX, a line number in
 * the input and no key yet; a refusal carries a SPEC §5 error whose details each name a
 * field and an issue; the same rows written as JSON parse back to the same rows. */
#include <cjson/cJSON.h>

#include "cc_bulk.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "fuzz.h"

struct job {
    const char *buf;
    size_t len;
    int format;
};

static void check_error(const cJSON *e)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "error");
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(in, "details");
    const cJSON *d;

    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(in, "code")));
    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(in, "message")));
    cJSON_ArrayForEach(d, details)
    {
        FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "field")));
        FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "issue")));
    }
}

/* The accepted rows as the JSON format: they must parse back to the same rows. */
static void as_json(const struct cc_bulk *b)
{
    cJSON *arr = cJSON_CreateArray(), *err = NULL;
    struct cc_bulk *back = NULL;
    char *s;
    int rc;

    FUZZ_CHECK(arr != NULL);
    for (size_t i = 0; i < b->count; i++) {
        cJSON *o = cJSON_CreateObject();

        FUZZ_CHECK(o != NULL);
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "serialNumber", b->items[i].serial);
        cJSON_AddNumberToObject(o, "coldCellId", (double)b->items[i].cold_cell_id);
        if (b->items[i].firmware[0] != '\0')
            cJSON_AddStringToObject(o, "firmwareVersion", b->items[i].firmware);
    }
    s = cJSON_PrintUnformatted(arr);
    FUZZ_CHECK(s != NULL);
    rc = cc_bulk_parse(s, strlen(s), CC_BULK_JSON, &back, &err);
    if (rc != CC_OK) {
        fprintf(stderr, "rows accepted as CSV refused as JSON: %s\n", s);
        FUZZ_CHECK(rc == CC_OK);
    }
    FUZZ_CHECK(back->count == b->count);
    for (size_t i = 0; i < b->count; i++) {
        FUZZ_CHECK(strcmp(back->items[i].serial, b->items[i].serial) == 0);
        FUZZ_CHECK(back->items[i].cold_cell_id == b->items[i].cold_cell_id);
        FUZZ_CHECK(strcmp(back->items[i].firmware, b->items[i].firmware) == 0);
    }
    cc_bulk_free(back);
    cJSON_free(s);
    cJSON_Delete(arr);
}

static void *parse_on_worker(void *arg)
{
    struct job *j = arg;
    struct cc_bulk *b = NULL;
    cJSON *err = NULL;
    int rc = cc_bulk_parse(j->buf, j->len, j->format, &b, &err);

    if (rc == CC_OK) {
        FUZZ_CHECK(b != NULL && err == NULL);
        FUZZ_CHECK(b->count >= 1 && b->count <= CC_BULK_MAX_ROWS);
        for (size_t i = 0; i < b->count; i++) {
            const struct cc_bulk_item *it = &b->items[i];

            FUZZ_CHECK(cc_provision_serial_valid(it->serial));
            FUZZ_CHECK(it->cold_cell_id > 0);
            FUZZ_CHECK(memchr(it->firmware, '\0', sizeof it->firmware) != NULL);
            FUZZ_CHECK(it->line >= 1 && (i == 0 || it->line >= b->items[i - 1].line));
            FUZZ_CHECK(it->id == 0 && it->key[0] == '\0');
        }
        if (j->format == CC_BULK_CSV)
            as_json(b);
        cc_bulk_free(b);
    } else {
        FUZZ_CHECK(rc == CC_ERR_BAD_JSON || rc == CC_ERR_VALIDATION || rc == CC_ERR_TOO_LARGE ||
                   rc == CC_ERR_NOMEM);
        if (rc != CC_ERR_NOMEM) {
            FUZZ_CHECK(err != NULL);
            check_error(err);
        }
        cJSON_Delete(err);
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct job j;
    char *buf;

    if (size < 1)
        return 0;
    buf = fuzz_dup(data + 1, size - 1);
    j.buf = buf;
    j.len = size - 1;
    j.format = (data[0] & 1) ? CC_BULK_JSON : CC_BULK_CSV;
    fuzz_on_worker_stack(parse_on_worker, &j);
    free(buf);
    return 0;
}
