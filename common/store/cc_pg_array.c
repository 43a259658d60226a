/* cc_pg_array.c - array parameters in PostgreSQL's binary format, see cc_pg_array.h.
 *
 * The format array_recv reads, all integers big-endian: int32 ndim (1, or 0 for an empty
 * array), int32 flags (1: has NULLs; the server ignores it but refuses other bits), uint32
 * element type OID, then per dimension int32 length and int32 lower bound (1); then per
 * element int32 byte length (-1: NULL) and the element's own binary form (int4 and int8
 * big-endian, float8 the IEEE bits big-endian, text its bytes). The server checks the
 * element type against the parameter's and every text element's encoding. */
#include "cc_pg_array.h"

#include <stdlib.h>
#include <string.h>

#include "cc_rc.h"
#include "cc_store_impl.h"

/* pg_type OIDs (catalog/pg_type_d.h, stable; the server headers are not in libpq-dev). */
#define OID_INT4 23
#define OID_INT8 20
#define OID_FLOAT8 701
#define OID_TEXT 25
#define HEADER_BYTES 20     /* ndim, flags, OID, length, lower bound */
#define TEXT_GUESS_BYTES 16 /* a text element's room reserved at init, before growing */

static const uint32_t oids[] = {OID_INT4, OID_INT8, OID_FLOAT8, OID_TEXT};
static const size_t widths[] = {4, 8, 8, 0}; /* bytes of an element (text: varies) */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static int refuse(struct cc_pg_array *a)
{
    a->failed = 1;
    return CC_ERR_VALIDATION;
}

int cc_pg_array_init(struct cc_pg_array *a, enum cc_pg_elem type, size_t n)
{
    memset(a, 0, sizeof *a);
    a->type = type;
    a->want = n;
    if (n > CC_PG_ARRAY_ELEMS_MAX || (unsigned)type > CC_PG_TEXT)
        return refuse(a);
    a->cap = HEADER_BYTES + n * (4 + (type == CC_PG_TEXT ? TEXT_GUESS_BYTES : widths[type]));
    a->buf = malloc(a->cap);
    if (a->buf == NULL) {
        a->failed = 1;
        return CC_ERR_NOMEM;
    }
    put32(a->buf, n > 0 ? 1 : 0); /* an empty array has no dimension at all */
    put32(a->buf + 4, 0);
    put32(a->buf + 8, oids[type]);
    put32(a->buf + 12, (uint32_t)n);
    put32(a->buf + 16, 1);
    a->len = n > 0 ? HEADER_BYTES : 12;
    return CC_OK;
}

/* Room for one more element of size bytes (after its length word), or a refusal. */
static int room(struct cc_pg_array *a, enum cc_pg_elem type, size_t size)
{
    if (a->failed || a->buf == NULL || type != a->type || a->n >= a->want)
        return refuse(a);
    if (a->cap - a->len < 4 + size) {
        /* Text only (numbers were reserved exactly): doubled, and at most the array's
         * bound of want elements of CC_PG_ARRAY_TEXT_MAX bytes. */
        size_t cap = 2 * a->cap + 4 + size;
        size_t most = HEADER_BYTES + a->want * (4 + CC_PG_ARRAY_TEXT_MAX);
        unsigned char *b;

        if (cap > most)
            cap = most;
        b = realloc(a->buf, cap);
        if (b == NULL) {
            a->failed = 1;
            return CC_ERR_NOMEM;
        }
        a->buf = b;
        a->cap = cap;
    }
    put32(a->buf + a->len, (uint32_t)size);
    a->len += 4;
    a->n++;
    return CC_OK;
}

int cc_pg_array_int(struct cc_pg_array *a, int64_t v)
{
    int rc;

    if (a->type == CC_PG_INT4 && (v < INT32_MIN || v > INT32_MAX))
        return refuse(a);
    rc = room(a, a->type == CC_PG_INT4 ? CC_PG_INT4 : CC_PG_INT8, widths[a->type]);
    if (rc != CC_OK)
        return rc;
    if (a->type == CC_PG_INT4)
        put32(a->buf + a->len, (uint32_t)v);
    else
        put64(a->buf + a->len, (uint64_t)v);
    a->len += widths[a->type];
    return CC_OK;
}

int cc_pg_array_double(struct cc_pg_array *a, double v)
{
    uint64_t bits;
    int rc = room(a, CC_PG_FLOAT8, 8);

    if (rc != CC_OK)
        return rc;
    memcpy(&bits, &v, sizeof bits);
    put64(a->buf + a->len, bits);
    a->len += 8;
    return CC_OK;
}

int cc_pg_array_text(struct cc_pg_array *a, const char *s)
{
    size_t n = s != NULL ? strnlen(s, CC_PG_ARRAY_TEXT_MAX + 1) : 0;
    int rc;

    /* Refused here, not by the server: a refused statement aborts the whole batch. */
    if (s == NULL || n > CC_PG_ARRAY_TEXT_MAX || !cc_utf8_valid(s))
        return refuse(a);
    rc = room(a, CC_PG_TEXT, n);
    if (rc != CC_OK)
        return rc;
    memcpy(a->buf + a->len, s, n);
    a->len += n;
    return CC_OK;
}

int cc_pg_array_null(struct cc_pg_array *a)
{
    int rc = room(a, a->type, 0);

    if (rc != CC_OK)
        return rc;
    put32(a->buf + a->len - 4, UINT32_MAX); /* length -1 */
    put32(a->buf + 4, 1);                   /* flags: has NULLs */
    return CC_OK;
}

int cc_pg_array_bytes(struct cc_pg_array *a, const void **p, size_t *len)
{
    if (a->failed || a->buf == NULL || a->n != a->want)
        return refuse(a);
    *p = a->buf;
    *len = a->len;
    return CC_OK;
}

int cc_pg_array_bind(struct cc_stmt *s, int n, struct cc_pg_array *a)
{
    const void *p;
    size_t len;
    int rc;

    if (s == NULL || s->st->dialect != CC_DIALECT_PG)
        return CC_ERR_INTERNAL; /* SQLite has no arrays; a caller's mistake */
    rc = cc_pg_array_bytes(a, &p, &len);
    /* cc_stmt_bind_blob sends its bytes in binary format, which the server reads as the
     * parameter's type (bytea for a blob, here the array type the SQL's CAST gives $n). */
    return rc == CC_OK ? cc_stmt_bind_blob(s, n, p, len) : rc;
}

void cc_pg_array_free(struct cc_pg_array *a)
{
    free(a->buf);
    memset(a, 0, sizeof *a);
}

int cc_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        unsigned c = *p;
        int n = c < 0x80             ? 0
                : (c & 0xE0) == 0xC0 ? 1
                : (c & 0xF0) == 0xE0 ? 2
                : (c & 0xF8) == 0xF0 ? 3
                                     : -1;
        unsigned cp;

        if (n < 0 || (n == 1 && c < 0xC2) || (n == 3 && c > 0xF4))
            return 0;
        cp = n == 0 ? c : c & (0x3Fu >> n);
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3Fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        p += n + 1;
    }
    return 1;
}
