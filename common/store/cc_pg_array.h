/* cc_pg_array.h - one-dimensional array parameters in PostgreSQL's binary format (the
 * server's array_recv), for the batch statements that send a column of a whole batch as
 * one $N (schema/pg/ingest.sql, cc_store_pg.c, the alert states of engine/cc_alert.c).
 *
 * Why binary: the server need not parse text (one float8in / int8in per element and the
 * array literal's quoting), the client need not print numbers (%.17g), and a double
 * travels bit for bit. The elements are counted up front: the header holds the length.
 *
 *   struct cc_pg_array a;
 *   rc = cc_pg_array_init(&a, CC_PG_INT8, n);     // n elements will follow
 *   for (i = 0; rc == CC_OK && i < n; i++)
 *       rc = cc_pg_array_int(&a, ids[i]);         // or _double, _text, _null
 *   if (rc == CC_OK)
 *       rc = cc_pg_array_bind(stmt, 1, &a);       // $1 must be typed: CAST($1 AS bigint[])
 *   cc_pg_array_free(&a);                         // on every path
 *
 * An element of the wrong kind, one too many, too few at bind, a text element that is
 * not UTF-8 or longer than CC_PG_ARRAY_TEXT_MAX: the call fails (CC_ERR_VALIDATION) and
 * so does every later one on that array, so a builder cannot send a short or mixed array.
 * PostgreSQL only: cc_pg_array_bind on a SQLite statement is CC_ERR_INTERNAL. */
#ifndef CC_PG_ARRAY_H
#define CC_PG_ARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "cc_dbi.h"

/* Elements of one array: a batch statement's rows (CC_INGEST_RUN_READINGS_MAX, 8192, is
 * the largest that ingest sends at once). Bounds the memory of one array: 8192 * 12 bytes
 * for numbers, 8192 * (4 + CC_PG_ARRAY_TEXT_MAX) for text at worst. */
#define CC_PG_ARRAY_ELEMS_MAX 8192
/* Bytes of one text element (a serial is at most CC_SERIAL_MAX, 64). */
#define CC_PG_ARRAY_TEXT_MAX 1024

/* The element types (their pg_type OIDs are in cc_pg_array.c). */
enum cc_pg_elem { CC_PG_INT4, CC_PG_INT8, CC_PG_FLOAT8, CC_PG_TEXT };

struct cc_pg_array {
    unsigned char *buf;
    size_t len, cap;
    size_t want, n; /* elements announced by init, appended so far */
    enum cc_pg_elem type;
    int failed; /* a refused call: every later call and the bind fail */
};

/* Starts an array of exactly n (0..CC_PG_ARRAY_ELEMS_MAX) elements of type. CC_OK,
 * CC_ERR_VALIDATION (n too large) or CC_ERR_NOMEM. cc_pg_array_free afterwards in any case. */
int cc_pg_array_init(struct cc_pg_array *a, enum cc_pg_elem type, size_t n);
/* Appends one element. CC_PG_INT4 takes v in INT32_MIN..INT32_MAX. */
int cc_pg_array_int(struct cc_pg_array *a, int64_t v);
int cc_pg_array_double(struct cc_pg_array *a, double v);
/* s: UTF-8, at most CC_PG_ARRAY_TEXT_MAX bytes, any characters (quotes, backslashes,
 * braces, commas, "NULL" are data: nothing is quoted in the binary format). */
int cc_pg_array_text(struct cc_pg_array *a, const char *s);
int cc_pg_array_null(struct cc_pg_array *a);
/* The bytes to send: CC_OK once all n elements are there, else CC_ERR_VALIDATION. */
int cc_pg_array_bytes(struct cc_pg_array *a, const void **p, size_t *len);
/* Binds the finished array as $n (binary format) of a PostgreSQL statement. */
int cc_pg_array_bind(struct cc_stmt *s, int n, struct cc_pg_array *a);
void cc_pg_array_free(struct cc_pg_array *a);

/* 1 when s is valid UTF-8 (no overlong form, no surrogate, nothing above U+10FFFF): the
 * only text a UTF-8 database takes. */
int cc_utf8_valid(const char *s);

#endif
