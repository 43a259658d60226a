/* cc_bulk.c - bulk device provisioning: CSV and JSON lists, checked, then created in
 * one transaction (ccctl device import, POST /api/devices/bulk). */
#include "cc_bulk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cc_audit.h"
#include "cc_error.h"
#include "cc_http.h"
#include "cc_input.h"
#include "cc_json.h"
#include "cc_log.h"
#include "cc_provision.h"
#include "cc_rc.h"

#define CSV_MAX_FIELDS 8               /* columns a CSV record may have before it is refused */
#define MSG_MAX 200                    /* bytes of one problem sentence */
#define JSON_ID_MAX 9007199254740991.0 /* 2^53 - 1: the largest exact JSON integer */

static const char *const col_names[] = {"serialNumber", "coldCellId", "firmwareVersion"};
enum { COL_SERIAL, COL_CELL, COL_FIRMWARE, COL_COUNT };

/* Collects problems as SPEC §5 details with line numbers; the error object is built at
 * the end, once its code is known. */
struct report {
    cJSON *details;      /* NULL until the first problem */
    char first[MSG_MAX]; /* the first problem's sentence: the error's message */
    int count;
    int nomem;
    int not_found;          /* some row names a cold cell that is missing or not p's */
    char first_nf[MSG_MAX]; /* the first not-found sentence: the message of a 404 */
    int conflict;           /* some row's serial exists */
};

/* Records one problem. idx < 0 names the input as a whole (field used as is), else
 * the field is "[idx].field" ("[idx]" when field is ""). */
static void report_add(struct report *rp, long idx, int line, const char *field, const char *issue,
                       const char *sentence)
{
    char name[64];
    cJSON *d = NULL;

    if (idx >= 0)
        snprintf(name, sizeof name, "[%ld]%s%s", idx, *field ? "." : "", field);
    else
        snprintf(name, sizeof name, "%s", field);
    if (rp->count++ == 0) {
        if (line > 0)
            snprintf(rp->first, sizeof rp->first, "line %d: %s", line, sentence);
        else
            snprintf(rp->first, sizeof rp->first, "%s", sentence);
    }
    if (rp->nomem)
        return;
    if (rp->details == NULL)
        rp->details = cJSON_CreateArray();
    d = cJSON_CreateObject();
    if (rp->details == NULL || d == NULL || cJSON_AddStringToObject(d, "field", name) == NULL ||
        cJSON_AddStringToObject(d, "issue", issue) == NULL ||
        (line > 0 && cJSON_AddNumberToObject(d, "line", line) == NULL) ||
        !cJSON_AddItemToArray(rp->details, d)) {
        cJSON_Delete(d);
        rp->nomem = 1;
    }
}

/* Turns the report into *err with code rc. Returns rc, or CC_ERR_NOMEM. */
static int report_finish(struct report *rp, int rc, cJSON **err)
{
    cJSON *e = NULL;

    if (rp->nomem)
        goto nomem;
    e = cc_error_new(rc, rp->first);
    if (e == NULL)
        goto nomem;
    if (rp->details != NULL) {
        if (!cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(e, "error"), "details",
                                   rp->details))
            goto nomem;
        rp->details = NULL;
    }
    if (err != NULL)
        *err = e;
    else
        cJSON_Delete(e);
    return rc;
nomem:
    cJSON_Delete(e);
    cJSON_Delete(rp->details);
    rp->details = NULL;
    return CC_ERR_NOMEM;
}

/* An error with one whole-input problem. Returns rc (or CC_ERR_NOMEM). */
static int fail_whole(int rc, const char *field, const char *issue, const char *sentence,
                      cJSON **err)
{
    struct report rp = {0};

    report_add(&rp, -1, 0, field, issue, sentence);
    return report_finish(&rp, rc, err);
}

/* -- row fields, shared by both formats ------------------------------------------ */

static void set_serial(struct report *rp, long idx, struct cc_bulk_item *it, const char *s,
                       size_t n)
{
    if (n == 0) {
        report_add(rp, idx, it->line, "serialNumber", "required", "serialNumber is required");
        return;
    }
    if (n > CC_SERIAL_MAX) {
        report_add(rp, idx, it->line, "serialNumber", "too_long",
                   "serialNumber must be at most 64 characters");
        return;
    }
    memcpy(it->serial, s, n);
    it->serial[n] = '\0';
    if (memchr(s, '\0', n) != NULL || !cc_provision_serial_valid(it->serial)) {
        it->serial[0] = '\0';
        report_add(rp, idx, it->line, "serialNumber", "invalid",
                   "serialNumber may hold only letters, digits, '.', '_' and '-'");
    }
}

static void set_firmware(struct report *rp, long idx, struct cc_bulk_item *it, const char *s,
                         size_t n)
{
    if (n == 0)
        return;
    if (n > CC_FIRMWARE_MAX) {
        report_add(rp, idx, it->line, "firmwareVersion", "too_long",
                   "firmwareVersion must be at most 64 characters");
        return;
    }
    memcpy(it->firmware, s, n);
    it->firmware[n] = '\0';
    if (memchr(s, '\0', n) != NULL || cc_input_utf8_len(it->firmware) < 0) {
        it->firmware[0] = '\0';
        report_add(rp, idx, it->line, "firmwareVersion", "invalid",
                   "firmwareVersion must be UTF-8 text without control characters");
    }
}

static void cell_problem(struct report *rp, long idx, int line, const char *issue)
{
    report_add(rp, idx, line, "coldCellId", issue,
               strcmp(issue, "required") == 0 ? "coldCellId is required"
                                              : "coldCellId must be a positive integer");
}

/* Grows b->items to hold one more; CC_OK or CC_ERR_NOMEM. */
static int items_reserve(struct cc_bulk *b, size_t *cap)
{
    struct cc_bulk_item *n;
    size_t want;

    if (b->count < *cap)
        return CC_OK;
    want = *cap ? *cap * 2 : 64;
    if (want > CC_BULK_MAX_ROWS)
        want = CC_BULK_MAX_ROWS;
    n = realloc(b->items, want * sizeof *n);
    if (n == NULL)
        return CC_ERR_NOMEM;
    b->items = n;
    *cap = want;
    return CC_OK;
}

static int cmp_serial(const void *a, const void *b)
{
    const struct cc_bulk_item *x = *(const struct cc_bulk_item *const *)a;
    const struct cc_bulk_item *y = *(const struct cc_bulk_item *const *)b;
    int c = strcmp(x->serial, y->serial);

    if (c != 0)
        return c;
    return x < y ? -1 : x > y;
}

/* Reports every row whose serial an earlier row already has. CC_OK or CC_ERR_NOMEM. */
static int check_duplicates(struct report *rp, const struct cc_bulk *b)
{
    const struct cc_bulk_item **v;
    size_t n = 0;

    if (b->count < 2)
        return CC_OK;
    v = malloc(b->count * sizeof *v);
    if (v == NULL)
        return CC_ERR_NOMEM;
    for (size_t i = 0; i < b->count; i++) {
        if (b->items[i].serial[0] != '\0')
            v[n++] = &b->items[i];
    }
    qsort(v, n, sizeof *v, cmp_serial);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(v[i]->serial, v[i - 1]->serial) == 0)
            report_add(rp, (long)(v[i] - b->items), v[i]->line, "serialNumber", "duplicate",
                       "serialNumber appears more than once in the input");
    }
    free(v);
    return CC_OK;
}

/* -- CSV ---------------------------------------------------------------------------- */

struct csv_field {
    char text[CC_BULK_FIELD_MAX + 1];
    size_t len;
    int overflow; /* longer than CC_BULK_FIELD_MAX: text holds the start */
};

struct csv_record {
    int line;    /* where the record starts */
    int nfields; /* fields seen (may exceed CSV_MAX_FIELDS: only the first are kept) */
    int bad_quote;
    struct csv_field f[CSV_MAX_FIELDS];
};

struct csv {
    const char *p, *end;
    int line;
};

static void field_put(struct csv_record *rec, char c)
{
    struct csv_field *f;

    if (rec->nfields > CSV_MAX_FIELDS)
        return;
    f = &rec->f[rec->nfields - 1];
    if (f->len < CC_BULK_FIELD_MAX)
        f->text[f->len++] = c;
    else
        f->overflow = 1;
    f->text[f->len] = '\0';
}

static void field_start(struct csv_record *rec)
{
    rec->nfields++;
    if (rec->nfields <= CSV_MAX_FIELDS) {
        rec->f[rec->nfields - 1].len = 0;
        rec->f[rec->nfields - 1].overflow = 0;
        rec->f[rec->nfields - 1].text[0] = '\0';
    }
}

/* Trims blanks around an unquoted field. */
static void field_trim(struct csv_record *rec, size_t from)
{
    struct csv_field *f;
    size_t s = from;

    if (rec->nfields > CSV_MAX_FIELDS)
        return;
    f = &rec->f[rec->nfields - 1];
    while (f->len > s && (f->text[f->len - 1] == ' ' || f->text[f->len - 1] == '\t'))
        f->len--;
    f->text[f->len] = '\0';
    while (s < f->len && (f->text[s] == ' ' || f->text[s] == '\t'))
        s++;
    if (s > 0) {
        memmove(f->text, f->text + s, f->len - s + 1);
        f->len -= s;
    }
}

/* Reads one RFC 4180 record (CRLF or LF; quoted fields may hold commas, quotes as "",
 * and line breaks). 1 if a record was read, 0 at the end of the input. */
static int csv_next(struct csv *cs, struct csv_record *rec)
{
    if (cs->p >= cs->end)
        return 0;
    rec->line = cs->line;
    rec->nfields = 0;
    rec->bad_quote = 0;
    for (;;) {
        field_start(rec);
        while (cs->p < cs->end && (*cs->p == ' ' || *cs->p == '\t'))
            cs->p++;
        if (cs->p < cs->end && *cs->p == '"') {
            int closed = 0;

            cs->p++;
            while (cs->p < cs->end) {
                char c = *cs->p++;

                if (c == '"') {
                    if (cs->p < cs->end && *cs->p == '"') {
                        field_put(rec, '"');
                        cs->p++;
                        continue;
                    }
                    closed = 1;
                    break;
                }
                if (c == '\n')
                    cs->line++;
                field_put(rec, c);
            }
            if (!closed)
                rec->bad_quote = 1;
            while (cs->p < cs->end && *cs->p != ',' && *cs->p != '\n' && *cs->p != '\r') {
                if (*cs->p != ' ' && *cs->p != '\t')
                    rec->bad_quote = 1; /* text after the closing quote */
                cs->p++;
            }
        } else {
            while (cs->p < cs->end && *cs->p != ',' && *cs->p != '\n' && *cs->p != '\r') {
                if (*cs->p == '"')
                    rec->bad_quote = 1; /* a quote inside an unquoted field */
                field_put(rec, *cs->p++);
            }
            field_trim(rec, 0);
        }
        if (cs->p >= cs->end)
            return 1;
        if (*cs->p == ',') {
            cs->p++;
            continue;
        }
        if (*cs->p == '\r')
            cs->p++;
        if (cs->p < cs->end && *cs->p == '\n')
            cs->p++;
        cs->line++;
        return 1;
    }
}

static int record_blank(const struct csv_record *rec)
{
    return rec->nfields == 1 && rec->f[0].len == 0 && !rec->bad_quote;
}

/* Maps the header's columns: col[i] is the COL_* of field i. CC_OK or a problem. */
static int csv_header(struct report *rp, const struct csv_record *rec, int col[CSV_MAX_FIELDS])
{
    int seen[COL_COUNT] = {0};
    char msg[MSG_MAX];

    if (rec->nfields > CSV_MAX_FIELDS || rec->bad_quote) {
        report_add(rp, -1, rec->line, "header", "invalid",
                   "the header must be serialNumber,coldCellId,firmwareVersion");
        return CC_ERR_VALIDATION;
    }
    for (int i = 0; i < rec->nfields; i++) {
        const char *name = rec->f[i].text;
        int c = -1;

        for (int k = 0; k < COL_COUNT; k++) {
            if (strcmp(name, col_names[k]) == 0)
                c = k;
        }
        if (c < 0) {
            snprintf(msg, sizeof msg,
                     "unknown column '%.64s' (expected serialNumber, "
                     "coldCellId, firmwareVersion)",
                     name);
            report_add(rp, -1, rec->line, "header", "unknown_column", msg);
        } else if (seen[c]++) {
            snprintf(msg, sizeof msg, "column %s appears twice", col_names[c]);
            report_add(rp, -1, rec->line, "header", "duplicate_column", msg);
        }
        col[i] = c;
    }
    for (int k = 0; k < COL_FIRMWARE; k++) {
        if (!seen[k]) {
            snprintf(msg, sizeof msg, "the header lacks the column %s", col_names[k]);
            report_add(rp, -1, rec->line, "header", "missing_column", msg);
        }
    }
    return rp->count ? CC_ERR_VALIDATION : CC_OK;
}

/* Checks one data record into it. */
static void csv_row(struct report *rp, long idx, const struct csv_record *rec, int ncols,
                    const int col[CSV_MAX_FIELDS], struct cc_bulk_item *it)
{
    char msg[MSG_MAX];
    int have_cell = 0;

    if (rec->bad_quote) {
        report_add(rp, idx, rec->line, "", "bad_quote", "a field has a misplaced quote");
        return;
    }
    if (rec->nfields != ncols) {
        snprintf(msg, sizeof msg, "expected %d fields, found %d", ncols, rec->nfields);
        report_add(rp, idx, rec->line, "", "field_count", msg);
        return;
    }
    for (int i = 0; i < ncols; i++) {
        const struct csv_field *f = &rec->f[i];
        size_t n = f->overflow ? CC_BULK_FIELD_MAX + 1 : f->len;

        switch (col[i]) {
        case COL_SERIAL:
            set_serial(rp, idx, it, f->text, n);
            break;
        case COL_CELL:
            have_cell = 1;
            if (n == 0)
                cell_problem(rp, idx, it->line, "required");
            else if (f->overflow || !cc_http_parse_id(f->text, &it->cold_cell_id) ||
                     (double)it->cold_cell_id > JSON_ID_MAX)
                cell_problem(rp, idx, it->line, "invalid"); /* the JSON format's rule too */
            break;
        default:
            set_firmware(rp, idx, it, f->text, n);
            break;
        }
    }
    if (!have_cell)
        cell_problem(rp, idx, it->line, "required");
}

static int parse_csv(const char *buf, size_t len, struct cc_bulk *b, struct report *rp)
{
    struct csv cs = {buf, buf + len, 1};
    struct csv_record *rec = NULL;
    int col[CSV_MAX_FIELDS];
    int ncols = 0, have_header = 0;
    size_t cap = 0;
    int rc = CC_OK;

    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        cs.p += 3; /* a UTF-8 byte order mark, as spreadsheets write */
    rec = malloc(sizeof *rec);
    if (rec == NULL)
        return CC_ERR_NOMEM;
    while (csv_next(&cs, rec)) {
        struct cc_bulk_item *it;

        if (record_blank(rec))
            continue;
        if (!have_header) {
            have_header = 1;
            if (csv_header(rp, rec, col) != CC_OK)
                goto out;
            ncols = rec->nfields;
            continue;
        }
        if (b->count >= CC_BULK_MAX_ROWS) {
            report_add(rp, -1, rec->line, "rows", "too_many",
                       "an import holds at most 10000 devices");
            goto out;
        }
        rc = items_reserve(b, &cap);
        if (rc != CC_OK)
            goto out;
        it = &b->items[b->count];
        memset(it, 0, sizeof *it);
        it->line = rec->line;
        csv_row(rp, (long)b->count, rec, ncols, col, it);
        b->count++;
    }
    if (!have_header)
        report_add(rp, -1, 0, "header", "required",
                   "the input is empty: expected the header serialNumber,coldCellId,"
                   "firmwareVersion");
out:
    free(rec);
    return rc;
}

/* -- JSON --------------------------------------------------------------------------- */

/* Finds where each element of the top-level array starts, as a line number: lines[i]
 * for element i (up to n). The text is known to be a valid JSON array. */
static void json_element_lines(const char *buf, size_t len, int *lines, size_t n)
{
    size_t k = 0;
    int line = 1, depth = 0, in_str = 0, esc = 0, want = 0;

    for (size_t i = 0; i < len && k < n; i++) {
        char c = buf[i];

        if (c == '\n')
            line++;
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (depth == 1 && want && c != ']') {
            lines[k++] = line;
            want = 0;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            depth++;
            if (depth == 1)
                want = 1;
        } else if (c == ']' || c == '}') {
            depth--;
        } else if (c == ',' && depth == 1) {
            want = 1;
        }
    }
    for (; k < n; k++)
        lines[k] = line;
}

static void json_row(struct report *rp, long idx, const cJSON *o, struct cc_bulk_item *it)
{
    const cJSON *s, *c, *f;

    if (!cJSON_IsObject(o)) {
        report_add(rp, idx, it->line, "", "type", "each device must be a JSON object");
        return;
    }
    s = cJSON_GetObjectItemCaseSensitive(o, "serialNumber");
    c = cJSON_GetObjectItemCaseSensitive(o, "coldCellId");
    f = cJSON_GetObjectItemCaseSensitive(o, "firmwareVersion");
    if (s == NULL || cJSON_IsNull(s))
        set_serial(rp, idx, it, "", 0);
    else if (!cJSON_IsString(s))
        report_add(rp, idx, it->line, "serialNumber", "type", "serialNumber must be a string");
    else
        set_serial(rp, idx, it, s->valuestring, strlen(s->valuestring));

    if (c == NULL || cJSON_IsNull(c))
        cell_problem(rp, idx, it->line, "required");
    else if (!cJSON_IsNumber(c) || c->valuedouble < 1 || c->valuedouble > JSON_ID_MAX ||
             c->valuedouble != (double)(int64_t)c->valuedouble)
        cell_problem(rp, idx, it->line, "invalid");
    else
        it->cold_cell_id = (int64_t)c->valuedouble;

    if (f != NULL && !cJSON_IsNull(f)) {
        if (!cJSON_IsString(f))
            report_add(rp, idx, it->line, "firmwareVersion", "type",
                       "firmwareVersion must be a string");
        else
            set_firmware(rp, idx, it, f->valuestring, strlen(f->valuestring));
    }
}

static int parse_json(const char *buf, size_t len, struct cc_bulk *b, struct report *rp,
                      cJSON **err)
{
    cJSON *root = NULL;
    const cJSON *el;
    int *lines = NULL;
    int n, rc = CC_OK, why = 0;
    long i = 0;

    /* Through the depth gate (a device list nests two levels): cJSON recurses per level,
     * and apid parses on a 100 KiB worker stack. */
    root = cc_json_parse_outside(buf, len, &why);
    if (root == NULL)
        return fail_whole(CC_ERR_BAD_JSON, "body",
                          why == CC_JSON_TOO_DEEP ? "too_deep"
                          : why == CC_JSON_NUL    ? "nul"
                                                  : "bad_json",
                          why == CC_JSON_TOO_DEEP
                              ? "the input nests deeper than " CC_JSON_MAX_DEPTH_TEXT " levels"
                          : why == CC_JSON_NUL ? "a string in the input holds \\u0000"
                                               : "the input is not valid JSON",
                          err);
    if (!cJSON_IsArray(root)) {
        report_add(rp, -1, 0, "body", "type", "the input must be a JSON array of devices");
        goto out;
    }
    n = cJSON_GetArraySize(root);
    if (n == 0) {
        report_add(rp, -1, 0, "body", "empty", "the input holds no device");
        goto out;
    }
    if (n > CC_BULK_MAX_ROWS) {
        report_add(rp, -1, 0, "body", "too_many", "an import holds at most 10000 devices");
        goto out;
    }
    b->items = calloc((size_t)n, sizeof *b->items);
    lines = malloc((size_t)n * sizeof *lines);
    if (b->items == NULL || lines == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    json_element_lines(buf, len, lines, (size_t)n);
    cJSON_ArrayForEach(el, root)
    {
        struct cc_bulk_item *it = &b->items[i];

        it->line = lines[i];
        json_row(rp, i, el, it);
        i++;
    }
    b->count = (size_t)i;
out:
    free(lines);
    cJSON_Delete(root);
    return rc;
}

/* -- the API ------------------------------------------------------------------------ */

int cc_bulk_format_parse(const char *name)
{
    if (name == NULL)
        return 0;
    if (strcmp(name, "csv") == 0)
        return CC_BULK_CSV;
    if (strcmp(name, "json") == 0)
        return CC_BULK_JSON;
    return 0;
}

int cc_bulk_format_guess(const char *path)
{
    size_t n = path ? strlen(path) : 0;

    if (n >= 5 && strcmp(path + n - 5, ".json") == 0)
        return CC_BULK_JSON;
    return CC_BULK_CSV;
}

int cc_bulk_parse(const char *buf, size_t len, int format, struct cc_bulk **out, cJSON **err)
{
    struct report rp = {0};
    struct cc_bulk *b = NULL;
    int rc;

    if (len > CC_BULK_MAX_INPUT)
        return fail_whole(CC_ERR_TOO_LARGE, "body", "too_large", "the input is larger than 4 MiB",
                          err);
    if (format != CC_BULK_CSV && format != CC_BULK_JSON)
        return fail_whole(CC_ERR_VALIDATION, "format", "invalid", "format must be csv or json",
                          err);
    b = calloc(1, sizeof *b);
    if (b == NULL)
        return CC_ERR_NOMEM;
    if (buf == NULL)
        buf = "";
    if (format == CC_BULK_CSV && memchr(buf, '\0', len) != NULL) {
        rc = fail_whole(CC_ERR_VALIDATION, "body", "invalid", "the input holds a NUL byte", err);
        goto fail;
    }
    rc = format == CC_BULK_CSV ? parse_csv(buf, len, b, &rp) : parse_json(buf, len, b, &rp, err);
    if (rc != CC_OK)
        goto fail;
    if (rp.count == 0 && b->count == 0)
        report_add(&rp, -1, 0, "rows", "empty", "the input holds no device");
    if (check_duplicates(&rp, b) != CC_OK) {
        rc = CC_ERR_NOMEM;
        goto fail;
    }
    if (rp.count > 0 || rp.nomem) {
        rc = report_finish(&rp, CC_ERR_VALIDATION, err);
        goto fail;
    }
    *out = b;
    return CC_OK;

fail:
    cJSON_Delete(rp.details);
    cc_bulk_free(b);
    return rc;
}

/* The audit row's "new" object: the device as created (never its key). */
static int audit_device(struct cc_store *st, int64_t actor, const struct cc_bulk_item *it)
{
    cJSON *o = cJSON_CreateObject();
    int rc = CC_ERR_NOMEM;

    if (o != NULL && cJSON_AddNumberToObject(o, "id", (double)it->id) != NULL &&
        cJSON_AddStringToObject(o, "serialNumber", it->serial) != NULL &&
        cJSON_AddNumberToObject(o, "coldCellId", (double)it->cold_cell_id) != NULL &&
        (it->firmware[0] ? cJSON_AddStringToObject(o, "firmwareVersion", it->firmware)
                         : cJSON_AddNullToObject(o, "firmwareVersion")) != NULL &&
        cJSON_AddStringToObject(o, "source", "bulk") != NULL)
        rc = cc_audit_append(st, actor, "create", "device", it->id, NULL, o);
    cJSON_Delete(o);
    return rc;
}

/* Creates item i inside the open transaction, recording a row problem in rp. Returns
 * CC_OK (created or a row problem) or a failure that ends the import. */
static int provision_one(struct cc_store *st, const struct cc_principal *p, struct cc_bulk_item *it,
                         long i, struct report *rp)
{
    char msg[MSG_MAX];
    cJSON *perr = NULL;
    int rc;

    if (p != NULL) {
        rc = cc_access_check(st, p, CC_ENTITY_COLDCELL, it->cold_cell_id, CC_ACCESS_WRITE);
        if (rc != CC_OK && rc != CC_ERR_NOT_FOUND)
            return rc;
        if (rc == CC_ERR_NOT_FOUND)
            goto not_found;
    }
    rc = cc_provision_device(st, it->cold_cell_id, it->serial,
                             it->firmware[0] ? it->firmware : NULL, &it->id, it->key, &perr);
    cJSON_Delete(perr); /* the fields were checked while parsing */
    switch (rc) {
    case CC_OK:
        if (p != NULL)
            return audit_device(st, p->user_id, it);
        return CC_OK;
    case CC_ERR_NOT_FOUND:
        goto not_found;
    case CC_ERR_CONFLICT:
        rp->conflict = 1;
        snprintf(msg, sizeof msg, "a device with serial %s already exists", it->serial);
        report_add(rp, i, it->line, "serialNumber", "conflict", msg);
        return CC_OK;
    case CC_ERR_VALIDATION:
        report_add(rp, i, it->line, "", "invalid", "the device is invalid");
        return CC_OK;
    default:
        return rc;
    }
not_found:
    snprintf(msg, sizeof msg, "cold cell %lld not found", (long long)it->cold_cell_id);
    report_add(rp, i, it->line, "coldCellId", "not_found", msg);
    if (!rp->not_found)
        snprintf(rp->first_nf, sizeof rp->first_nf, "line %d: cold cell %lld not found", it->line,
                 (long long)it->cold_cell_id);
    rp->not_found = 1;
    return CC_OK;
}

static void wipe_keys(struct cc_bulk *b)
{
    for (size_t i = 0; i < b->count; i++) {
        OPENSSL_cleanse(b->items[i].key, sizeof b->items[i].key);
        b->items[i].id = 0;
    }
}

int cc_bulk_provision(struct cc_store *st, const struct cc_principal *p, struct cc_bulk *b,
                      cc_bulk_progress_fn progress, void *ctx, cJSON **err)
{
    struct report rp = {0};
    int rc;

    if (b == NULL || b->count == 0)
        return fail_whole(CC_ERR_VALIDATION, "rows", "empty", "the input holds no device", err);
    rc = cc_store_begin(st);
    if (rc != CC_OK)
        return rc;
    for (size_t i = 0; i < b->count && rc == CC_OK; i++) {
        int before = rp.count;

        rc = provision_one(st, p, &b->items[i], (long)i, &rp);
        if (rc == CC_OK && rp.count == before && progress != NULL)
            progress(ctx, i + 1, b->count);
    }
    if (rc == CC_OK && rp.count > 0)
        rc = rp.not_found ? CC_ERR_NOT_FOUND : rp.conflict ? CC_ERR_CONFLICT : CC_ERR_VALIDATION;
    if (rc == CC_ERR_NOT_FOUND)
        memcpy(rp.first, rp.first_nf, sizeof rp.first);
    if (rc == CC_OK)
        rc = cc_store_commit(st) == CC_OK ? CC_OK : CC_ERR_DB;
    else
        cc_store_rollback(st);
    if (rc != CC_OK) {
        wipe_keys(b);
        if (rp.count > 0 &&
            (rc == CC_ERR_NOT_FOUND || rc == CC_ERR_CONFLICT || rc == CC_ERR_VALIDATION))
            return report_finish(&rp, rc, err);
        cJSON_Delete(rp.details);
        return rc;
    }
    cc_log_info("devices_imported", "count=%zu actor=%lld", b->count,
                (long long)(p != NULL ? p->user_id : 0));
    return CC_OK;
}

cJSON *cc_bulk_result_json(const struct cc_bulk *b)
{
    cJSON *arr = cJSON_CreateArray();

    if (arr == NULL)
        return NULL;
    for (size_t i = 0; i < b->count; i++) {
        const struct cc_bulk_item *it = &b->items[i];
        cJSON *o = cJSON_CreateObject();

        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            goto fail;
        }
        if (cJSON_AddStringToObject(o, "serialNumber", it->serial) == NULL ||
            cJSON_AddStringToObject(o, "apiKey", it->key) == NULL ||
            cJSON_AddNumberToObject(o, "id", (double)it->id) == NULL)
            goto fail;
    }
    return arr;
fail:
    cJSON_Delete(arr);
    return NULL;
}

void cc_bulk_free(struct cc_bulk *b)
{
    if (b == NULL)
        return;
    if (b->items != NULL) {
        wipe_keys(b);
        free(b->items);
    }
    free(b);
}
