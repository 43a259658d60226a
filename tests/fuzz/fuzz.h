/* fuzz.h - what every libFuzzer target of tests/fuzz shares: an invariant check that
 * stops the run with a message (a finding, as a crash is), and a NUL-terminated copy of
 * the input for the APIs that take C strings. */
#ifndef FUZZ_H
#define FUZZ_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* abort() so libFuzzer saves the input as crash-*: a broken invariant is a finding. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A malloc'd copy of data with a NUL after it (exactly size + 1 bytes, so ASan sees any
 * read past the terminator). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* A malloc'd copy of exactly size bytes (no terminator: reads past the end are bugs). */
static inline char *fuzz_dup(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);

    if (s == NULL)
        abort();
    if (size)
        memcpy(s, data, size);
    return s;
}

/* Splits data at the first byte 0x00 into a NUL-terminated head (malloc'd) and the rest. */
static inline char *fuzz_split(const uint8_t *data, size_t size, const uint8_t **rest,
                               size_t *rest_len)
{
    const uint8_t *z = memchr(data, 0, size);
    size_t n = z ? (size_t)(z - data) : size;

    *rest = z ? z + 1 : data + size;
    *rest_len = z ? size - n - 1 : 0;
    return fuzz_cstr(data, n);
}

/* civetweb's worker threads have 100 KiB stacks (issue 12): code that apid runs on a
 * worker runs here on a thread of the same stack, so a recursion too deep for a worker
 * is a crash (SEGV on the guard page) here too. ASan's redzones make frames larger, so
 * this errs on the side of reporting. */
#define FUZZ_WORKER_STACK (100 * 1024)

/* One long-lived worker (creating a thread per input costs more than most targets' work
 * under ASan): the caller hands fn/arg over and waits for it to finish. */
struct fuzz_worker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void *(*fn)(void *);
    void *arg;
    int busy;
};

static struct fuzz_worker fuzz_w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL,
                                    0};

static void *fuzz_worker_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&fuzz_w.mu);
    for (;;) {
        while (!fuzz_w.busy)
            pthread_cond_wait(&fuzz_w.cv, &fuzz_w.mu);
        pthread_mutex_unlock(&fuzz_w.mu);
        fuzz_w.fn(fuzz_w.arg);
        pthread_mutex_lock(&fuzz_w.mu);
        fuzz_w.busy = 0;
        pthread_cond_broadcast(&fuzz_w.cv);
    }
    return NULL;
}

static inline void fuzz_on_worker_stack(void *(*fn)(void *), void *arg)
{
    static int started;

    if (!started) {
        pthread_attr_t a;
        pthread_t t;

        if (pthread_attr_init(&a) != 0 || pthread_attr_setstacksize(&a, FUZZ_WORKER_STACK) != 0 ||
            pthread_create(&t, &a, fuzz_worker_main, NULL) != 0)
            abort();
        pthread_attr_destroy(&a);
        pthread_detach(t);
        started = 1;
    }
    pthread_mutex_lock(&fuzz_w.mu);
    fuzz_w.fn = fn;
    fuzz_w.arg = arg;
    fuzz_w.busy = 1;
    pthread_cond_broadcast(&fuzz_w.cv);
    while (fuzz_w.busy)
        pthread_cond_wait(&fuzz_w.cv, &fuzz_w.mu);
    pthread_mutex_unlock(&fuzz_w.mu);
}

#endif
