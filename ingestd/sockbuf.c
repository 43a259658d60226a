/* sockbuf.c - read and write buffers under libmosquitto's socket I/O (see sockbuf.h). */
#include "sockbuf.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Set by ingest_sockbuf_begin / ingest_sockwbuf_begin on the loop thread only: other
 * threads see NULL. */
static _Thread_local struct ingest_sockbuf *active;
static _Thread_local struct ingest_sockwbuf *active_w;

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

typedef ssize_t (*write_fn)(int, const void *, size_t);

static ssize_t next_write(int fd, const void *buf, size_t count)
{
    static write_fn fn;
    write_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);

    if (f == NULL) {
        void *sym = dlsym(RTLD_NEXT, "write");

        if (sym == NULL)
            return syscall(SYS_write, fd, buf, count);
        memcpy(&f, &sym, sizeof f);
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

void ingest_sockwbuf_init(struct ingest_sockwbuf *b)
{
    b->fd = -1;
    b->len = 0;
    b->flushes = 0;
}

void ingest_sockwbuf_begin(struct ingest_sockwbuf *b, int fd)
{
    if (fd != b->fd) {
        b->len = 0;
        b->fd = fd;
    }
    active_w = b;
}

void ingest_sockwbuf_end(void)
{
    active_w = NULL;
}

void ingest_sockwbuf_reset(struct ingest_sockwbuf *b)
{
    b->len = 0;
    b->fd = -1;
}

size_t ingest_sockwbuf_pending(const struct ingest_sockwbuf *b)
{
    return b->len;
}

int ingest_sockwbuf_flush(struct ingest_sockwbuf *b)
{
    size_t done = 0;
    int rc = 0;

    while (done < b->len) {
        ssize_t w = next_write(b->fd, b->data + done, b->len - done);

        b->flushes++;
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        rc = (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ? 1 : -1;
        break;
    }
    if (done > 0) {
        memmove(b->data, b->data + done, b->len - done);
        b->len -= done;
    }
    return rc;
}

ssize_t write(int fd, const void *buf, size_t count)
{
    struct ingest_sockwbuf *b = active_w;

    if (b == NULL || fd != b->fd || fd < 0 || count == 0)
        return next_write(fd, buf, count);
    if (count > sizeof b->data - b->len && ingest_sockwbuf_flush(b) < 0)
        return -1; /* the socket's error, in errno */
    if (count > sizeof b->data - b->len) {
        /* Larger than the buffer: straight out, once nothing waits ahead of it. */
        if (b->len == 0)
            return next_write(fd, buf, count);
        errno = EAGAIN; /* libmosquitto keeps the packet for the next write step */
        return -1;
    }
    memcpy(b->data + b->len, buf, count);
    b->len += count;
    return (ssize_t)count;
}
