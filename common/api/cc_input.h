/* cc_input.h - typed fields of a JSON request body, with every problem collected.
 *
 * A struct cc_input walks one body object. Each getter reads one field, checks its
 * type and range, and on a problem appends {"field","issue"} to a SPEC §5
 * VALIDATION_ERROR whose message is the first problem's sentence ("name must be a
 * string"). cc_input_finish hands the error over, so an answer lists every bad field.
 * Unknown fields are ignored. Strings are lent from the body: valid while it lives.
 * Thread-safe (no shared state). Codes: CC_OK, CC_ERR_VALIDATION, CC_ERR_NOMEM. */
#ifndef CC_INPUT_H
#define CC_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

struct cc_input {
    const cJSON *obj; /* the body (an object) */
    cJSON *err;       /* NULL until the first problem */
    int count;        /* problems so far */
    int nomem;        /* an allocation failed while recording one */
};

/* Getter results. */
enum cc_input_got {
    CC_INPUT_BAD = -1,   /* present but invalid: a problem was recorded */
    CC_INPUT_ABSENT = 0, /* absent (a problem was recorded if it was required) */
    CC_INPUT_SET = 1,    /* *out holds the value */
    CC_INPUT_NULL = 2,   /* explicitly null, and the getter allows it */
};

enum cc_input_flags {
    CC_INPUT_REQUIRED = 1 << 0, /* absent is a problem ("required") */
    CC_INPUT_NULLABLE = 1 << 1, /* null is accepted (CC_INPUT_NULL) */
    CC_INPUT_NONEMPTY = 1 << 2, /* strings: "" is a problem */
};

void cc_input_init(struct cc_input *in, const cJSON *obj);
/* Records a problem: field, issue, and the sentence used if it is the first one. */
void cc_input_problem(struct cc_input *in, const char *field, const char *issue);
/* 1 if the body has this field (null included). */
int cc_input_has(const struct cc_input *in, const char *name);

/* A UTF-8 string of at most max_chars code points, without control characters. */
int cc_input_text(struct cc_input *in, const char *name, unsigned flags, size_t max_chars,
                  const char **out);
/* A finite number in [min, max]. */
int cc_input_number(struct cc_input *in, const char *name, unsigned flags, double min, double max,
                    double *out);
/* An integer (no fraction) in [min, max]. */
int cc_input_int(struct cc_input *in, const char *name, unsigned flags, int64_t min, int64_t max,
                 int64_t *out);
/* A JSON boolean. */
int cc_input_bool(struct cc_input *in, const char *name, unsigned flags, int *out);

/* Ends the walk: CC_OK if there was no problem, else CC_ERR_VALIDATION with *err (the
 * caller deletes it) or CC_ERR_NOMEM. Frees whatever it does not hand over. */
int cc_input_finish(struct cc_input *in, cJSON **err);

/* Number of UTF-8 code points in s, or -1 if s is not valid UTF-8 or holds a control
 * character (C0 or DEL). */
long cc_input_utf8_len(const char *s);

#endif
