/* sockbuf.c - a read buffer under libmosquitto's reads (see sockbuf.h). */
#include "sockbuf.h"

#include <dlfcn.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Set by ingest_sockbuf_begin on the loop thread only: other threads see NULL. */
static _Thread_local struct ingest_sockbuf *active;

typedef ssize_t (*read_fn)(int, void *, size_t);

/* libc's read (or ASan's in front of it), looked up once; dlsym does not call read. */
static ssize_t next_read(int fd, void *buf, size_t count)
{
    static read_fn fn;
    read_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);

    if (f == NULL) {
        void *sym = dlsym(RTLD_NEXT, "read");

        if (sym == NULL)
            return syscall(SYS_read, fd, buf, count);
        memcpy(&f, &sym, sizeof f); /* POSIX: dlsym's object pointer is the function */
        __atomic_store_n(&fn, f, __ATOMIC_RELEASE);
    }
    return f(fd, buf, count);
}

void ingest_sockbuf_init(struct ingest_sockbuf *b)
{
    b->fd = -1;
    b->off = b->len = 0;
    b->fills = 0;
}

void ingest_sockbuf_begin(struct ingest_sockbuf *b, int fd)
{
    if (fd != b->fd) {
        b->off = b->len = 0;
        b->fd = fd;
    }
    active = b;
}

void ingest_sockbuf_end(void)
{
    active = NULL;
}

void ingest_sockbuf_reset(struct ingest_sockbuf *b)
{
    b->off = b->len = 0;
    b->fd = -1;
}

size_t ingest_sockbuf_pending(const struct ingest_sockbuf *b)
{
    return b->len - b->off;
}

ssize_t read(int fd, void *buf, size_t count)
{
    struct ingest_sockbuf *b = active;
    size_t n;

    if (b == NULL || fd != b->fd || fd < 0 || count == 0)
        return next_read(fd, buf, count);
    if (b->off == b->len) {
        ssize_t got;

        /* A request as large as the buffer gains nothing from it. */
        if (count >= sizeof b->data)
            return next_read(fd, buf, count);
        got = next_read(fd, b->data, sizeof b->data);
        if (got <= 0)
            return got; /* EOF, or the error (EAGAIN) in errno, as libmosquitto expects */
        b->fills++;
        b->off = 0;
        b->len = (size_t)got;
    }
    n = b->len - b->off < count ? b->len - b->off : count;
    memcpy(buf, b->data + b->off, n);
    b->off += n;
    return (ssize_t)n;
}
