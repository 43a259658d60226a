/* test_ingest_sockbuf.c - ingestd's buffers under libmosquitto (ingestd/sockbuf.c):
 * byte-sized reads of the registered socket share one read(2), the buffer never holds more
 * than INGEST_SOCKBUF_BYTES, every other read (another fd, another thread, outside
 * begin/end) goes straight to libc, and a new connection never sees the old one's bytes;
 * the packets written in the window leave with one write(2), in order, what a full socket
 * did not take waits (ahead of later writes), and other writes go straight to libc. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../ingestd/sockbuf.h"

static struct ingest_sockbuf buf;   /* 64 KiB: static, not on the stack */
static struct ingest_sockwbuf wbuf; /* the same */

/* A non-blocking stream pair, as libmosquitto's socket is; sv[0] is read, sv[1] written. */
static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    ingest_sockbuf_init(&buf);
}

static void put(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static void pattern(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + 3);
}

static void test_ingest_sockbuf_small_reads_share_one_fill(void **state)
{
    unsigned char in[300], out[300];
    int sv[2];

    (void)state;
    pair(sv);
    pattern(in, sizeof in);
    put(sv[1], in, sizeof in);
    ingest_sockbuf_begin(&buf, sv[0]);
    /* libmosquitto's shape: the command byte, the remaining length, the rest. */
    assert_int_equal(read(sv[0], out, 1), 1);
    assert_int_equal(read(sv[0], out + 1, 1), 1);
    assert_int_equal(read(sv[0], out + 2, sizeof out - 2), sizeof out - 2);
    assert_memory_equal(in, out, sizeof in);
    assert_int_equal(buf.fills, 1);
    assert_int_equal(ingest_sockbuf_pending(&buf), 0);
    errno = 0;
    assert_int_equal(read(sv[0], out, 1), -1); /* nothing left: the socket's EAGAIN */
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    assert_int_equal(buf.fills, 1);
    ingest_sockbuf_end();
    close(sv[0]);
    close(sv[1]);
}

static void test_ingest_sockbuf_bounded(void **state)
{
    size_t total = 3 * INGEST_SOCKBUF_BYTES + 10, got = 0;
    unsigned char *in = malloc(total), *out = malloc(total);
    int sv[2];

    (void)state;
    assert_non_null(in);
    assert_non_null(out);
    pair(sv);
    /* A larger socket buffer than the data, so that all of it waits at once. */
    int sz = (int)(4 * INGEST_SOCKBUF_BYTES);
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
    pattern(in, total);
    put(sv[1], in, total);
    ingest_sockbuf_begin(&buf, sv[0]);
    while (got < total) {
        ssize_t r = read(sv[0], out + got, 100);
        assert_true(r > 0);
        assert_true(ingest_sockbuf_pending(&buf) < INGEST_SOCKBUF_BYTES);
        got += (size_t)r;
    }
    ingest_sockbuf_end();
    assert_memory_equal(in, out, total);
    /* Each fill at most INGEST_SOCKBUF_BYTES: four at least for 3 buffers and 10 bytes. */
    assert_true(buf.fills >= 4);
    assert_true(buf.fills <= 8);
    close(sv[0]);
    close(sv[1]);
    free(in);
    free(out);
}

struct reader {
    int fd;
    ssize_t got;
    unsigned char byte;
};

static void *read_one(void *arg)
{
    struct reader *r = arg;

    r->got = read(r->fd, &r->byte, 1);
    return NULL;
}

static void test_ingest_sockbuf_others_pass_through(void **state)
{
    unsigned char in[4] = {1, 2, 3, 4}, c;
    int sv[2], ov[2];
    pthread_t t;
    struct reader r;

    (void)state;
    pair(sv);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ov), 0);
    put(sv[1], in, sizeof in);
    put(ov[1], in, 1);
    ingest_sockbuf_begin(&buf, sv[0]);
    /* Another fd on the same thread, inside the window: libc's read. */
    assert_int_equal(read(ov[0], &c, 1), 1);
    assert_int_equal(c, 1);
    assert_int_equal(buf.fills, 0);
    /* The registered fd on another thread: libc's read, one byte, nothing buffered. */
    r.fd = sv[0];
    assert_int_equal(pthread_create(&t, NULL, read_one, &r), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.got, 1);
    assert_int_equal(r.byte, 1);
    assert_int_equal(buf.fills, 0);
    ingest_sockbuf_end();
    /* The registered fd outside the window: libc's read too. */
    assert_int_equal(read(sv[0], &c, 1), 1);
    assert_int_equal(c, 2);
    assert_int_equal(buf.fills, 0);
    assert_int_equal(ingest_sockbuf_pending(&buf), 0);
    close(sv[0]);
    close(sv[1]);
    close(ov[0]);
    close(ov[1]);
}

static void test_ingest_sockbuf_new_connection_drops_old_bytes(void **state)
{
    unsigned char in[100], c;
    int sv[2], nv[2];

    (void)state;
    pair(sv);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, nv), 0);
    pattern(in, sizeof in);
    put(sv[1], in, sizeof in);
    ingest_sockbuf_begin(&buf, sv[0]);
    assert_int_equal(read(sv[0], &c, 1), 1);
    ingest_sockbuf_end();
    assert_int_equal(ingest_sockbuf_pending(&buf), sizeof in - 1);
    /* Another fd: the bytes of the last one are gone, the new socket's are read. */
    c = 42;
    put(nv[1], &c, 1);
    ingest_sockbuf_begin(&buf, nv[0]);
    assert_int_equal(ingest_sockbuf_pending(&buf), 0);
    c = 0;
    assert_int_equal(read(nv[0], &c, 1), 1);
    assert_int_equal(c, 42);
    ingest_sockbuf_end();
    /* Reset (the connection ended; the same fd number may come back): nothing is left. */
    put(sv[1], in, 10);
    ingest_sockbuf_begin(&buf, sv[0]);
    assert_int_equal(read(sv[0], &c, 1), 1);
    ingest_sockbuf_end();
    assert_true(ingest_sockbuf_pending(&buf) > 0);
    ingest_sockbuf_reset(&buf);
    assert_int_equal(ingest_sockbuf_pending(&buf), 0);
    assert_int_equal(buf.fd, -1);
    close(sv[0]);
    close(sv[1]);
    close(nv[0]);
    close(nv[1]);
}

static void test_ingest_sockbuf_eof(void **state)
{
    unsigned char c;
    int sv[2];

    (void)state;
    pair(sv);
    close(sv[1]);
    ingest_sockbuf_begin(&buf, sv[0]);
    assert_int_equal(read(sv[0], &c, 1), 0);
    ingest_sockbuf_end();
    assert_int_equal(buf.fills, 0);
    close(sv[0]);
}

/* Reads what the peer has, up to n (non-blocking peer). */
static size_t drain(int fd, unsigned char *out, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, out + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static void test_ingest_sockwbuf_packets_leave_in_one_write(void **state)
{
    unsigned char puback[4] = {0x40, 0x02, 0, 0}, out[64];
    int sv[2];

    (void)state;
    pair(sv);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    ingest_sockwbuf_init(&wbuf);
    ingest_sockwbuf_begin(&wbuf, sv[1]);
    for (int i = 0; i < 10; i++) {
        puback[3] = (unsigned char)i;
        assert_int_equal(write(sv[1], puback, sizeof puback), sizeof puback);
    }
    ingest_sockwbuf_end();
    /* Nothing on the wire before the flush: written by libmosquitto, not yet sent. */
    assert_int_equal(drain(sv[0], out, sizeof out), 0);
    assert_int_equal(ingest_sockwbuf_pending(&wbuf), 40);
    assert_int_equal(ingest_sockwbuf_flush(&wbuf), 0);
    assert_int_equal(wbuf.flushes, 1);
    assert_int_equal(ingest_sockwbuf_pending(&wbuf), 0);
    assert_int_equal(drain(sv[0], out, sizeof out), 40);
    for (int i = 0; i < 10; i++)
        assert_int_equal(out[4 * i + 3], i);
    /* Outside the window: straight to the socket. */
    assert_int_equal(write(sv[1], puback, sizeof puback), sizeof puback);
    assert_int_equal(drain(sv[0], out, sizeof out), 4);
    assert_int_equal(wbuf.flushes, 1);
    close(sv[0]);
    close(sv[1]);
}

static void test_ingest_sockwbuf_full_socket_keeps_order(void **state)
{
    size_t total = 3 * INGEST_SOCKBUF_BYTES, sent = 0, got = 0;
    unsigned char *in = malloc(total), *out = malloc(total);
    int sv[2], sz = 16 * 1024;

    (void)state;
    assert_non_null(in);
    assert_non_null(out);
    pair(sv);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
    pattern(in, total);
    ingest_sockwbuf_init(&wbuf);
    /* libmosquitto's shape: packets written until one is refused (EAGAIN), flushes in
     * between, the peer reading slowly. */
    while (got < total) {
        ingest_sockwbuf_begin(&wbuf, sv[1]);
        while (sent < total) {
            size_t n = total - sent < 1000 ? total - sent : 1000;
            ssize_t w = write(sv[1], in + sent, n);
            if (w < 0) {
                assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
                break;
            }
            assert_int_equal(w, n);
            assert_true(ingest_sockwbuf_pending(&wbuf) <= INGEST_SOCKBUF_BYTES);
            sent += n;
        }
        ingest_sockwbuf_end();
        assert_true(ingest_sockwbuf_flush(&wbuf) >= 0);
        got += drain(sv[0], out + got, total - got);
    }
    assert_int_equal(sent, total);
    assert_int_equal(ingest_sockwbuf_pending(&wbuf), 0);
    assert_memory_equal(in, out, total);
    close(sv[0]);
    close(sv[1]);
    free(in);
    free(out);
}

static void *write_one(void *arg)
{
    struct reader *r = arg;

    r->got = write(r->fd, &r->byte, 1);
    return NULL;
}

static void test_ingest_sockwbuf_others_and_reset(void **state)
{
    unsigned char c = 7, out[8];
    int sv[2], nv[2];
    pthread_t t;
    struct reader r;

    (void)state;
    pair(sv);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, nv), 0);
    assert_int_equal(fcntl(nv[0], F_SETFL, O_NONBLOCK), 0);
    ingest_sockwbuf_init(&wbuf);
    ingest_sockwbuf_begin(&wbuf, sv[1]);
    /* Another thread writing the registered fd: straight out. */
    r.fd = sv[1];
    r.byte = 9;
    assert_int_equal(pthread_create(&t, NULL, write_one, &r), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.got, 1);
    assert_int_equal(drain(sv[0], out, sizeof out), 1);
    assert_int_equal(out[0], 9);
    /* Another fd on this thread: straight out. */
    assert_int_equal(write(nv[1], &c, 1), 1);
    assert_int_equal(drain(nv[0], out, sizeof out), 1);
    /* Buffered, then the connection ends: reset drops it, a new fd starts empty. */
    assert_int_equal(write(sv[1], &c, 1), 1);
    ingest_sockwbuf_end();
    assert_int_equal(ingest_sockwbuf_pending(&wbuf), 1);
    ingest_sockwbuf_begin(&wbuf, nv[1]);
    ingest_sockwbuf_end();
    assert_int_equal(ingest_sockwbuf_pending(&wbuf), 0);
    ingest_sockwbuf_begin(&wbuf, nv[1]);
    assert_int_equal(write(nv[1], &c, 1), 1);
    ingest_sockwbuf_end();
    ingest_sockwbuf_reset(&wbuf);
    assert_int_equal(ingest_sockwbuf_pending(&wbuf), 0);
    assert_int_equal(ingest_sockwbuf_flush(&wbuf), 0);
    assert_int_equal(drain(nv[0], out, sizeof out), 0);
    assert_int_equal(drain(sv[0], out, sizeof out), 0);
    close(sv[0]);
    close(sv[1]);
    close(nv[0]);
    close(nv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_sockbuf_small_reads_share_one_fill),
        cmocka_unit_test(test_ingest_sockbuf_bounded),
        cmocka_unit_test(test_ingest_sockbuf_others_pass_through),
        cmocka_unit_test(test_ingest_sockbuf_new_connection_drops_old_bytes),
        cmocka_unit_test(test_ingest_sockbuf_eof),
        cmocka_unit_test(test_ingest_sockwbuf_packets_leave_in_one_write),
        cmocka_unit_test(test_ingest_sockwbuf_full_socket_keeps_order),
        cmocka_unit_test(test_ingest_sockwbuf_others_and_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
