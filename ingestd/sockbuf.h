/* sockbuf.h - read and write buffers under libmosquitto's I/O on ingestd's broker socket.
 *
 * libmosquitto 2.0.11 reads a packet with three or four read(2) calls: the fixed header's
 * first byte, the remaining length byte by byte, then the rest. At tens of thousands of
 * messages a second those calls were most of the broker loop's system calls (README
 * "What limits ingest now"), and the library has no hook for its socket I/O. So ingestd
 * defines read() itself (symbol interposition: libmosquitto's calls resolve to the
 * executable's definition first); it fills a buffer of INGEST_SOCKBUF_BYTES with one
 * read and serves libmosquitto's small reads from it. It does so only on the thread that
 * called ingest_sockbuf_begin, for that fd, until ingest_sockbuf_end: every other read of
 * the process, and this thread's outside that window, goes straight to libc's read. A
 * plain connection only: over TLS OpenSSL already reads whole records.
 *
 * What it changes for the rest of the loop: bytes may wait in the buffer rather than in
 * the socket, so poll(2) and FIONREAD do not see them (add ingest_sockbuf_pending); and
 * when the connection ends what the buffer holds belongs to it (ingest_sockbuf_reset,
 * before the next connection can get the same fd number). Nothing is acknowledged
 * earlier: libmosquitto still sees a message only when it has read all of it, and the
 * PUBACK still waits for the round's journal write. */
#ifndef INGEST_SOCKBUF_H
#define INGEST_SOCKBUF_H

#include <stddef.h>
#include <sys/types.h>

/* One read(2) fills at most this much: a round of ~100 readings of ~200 bytes, or a
 * large message in a few reads. Bounded, and the only memory the buffer takes. */
#define INGEST_SOCKBUF_BYTES (64 * 1024)

struct ingest_sockbuf {
    int fd;                   /* the socket the bytes came from, -1: none */
    size_t off, len;          /* data[off..len) not yet handed out */
    unsigned long long fills; /* read(2) calls made to fill it (tests, bench) */
    unsigned char data[INGEST_SOCKBUF_BYTES];
};

/* An empty buffer for no socket. */
void ingest_sockbuf_init(struct ingest_sockbuf *b);
/* From now until ingest_sockbuf_end, this thread's reads of fd go through b. A different
 * fd than b's last one drops what b holds (the connection it came from is gone). */
void ingest_sockbuf_begin(struct ingest_sockbuf *b, int fd);
void ingest_sockbuf_end(void);
/* Drops what b holds: the connection ended (or is being dropped unacknowledged). */
void ingest_sockbuf_reset(struct ingest_sockbuf *b);
/* Bytes read from the socket and not yet handed to libmosquitto. */
size_t ingest_sockbuf_pending(const struct ingest_sockbuf *b);

/* The interposed read(2) (see above); libc's for every other caller. */
ssize_t read(int fd, void *buf, size_t count);

/* The write side, for the same reason: libmosquitto writes every queued packet (a round's
 * PUBACKs) with its own write(2). Between ingest_sockwbuf_begin and _end, this thread's
 * writes of fd are appended to the buffer (a write that does not fit after a flush is
 * refused with EAGAIN, as a full socket would, and libmosquitto keeps its packet);
 * ingest_sockwbuf_flush then writes them with one write(2). Nothing is written earlier
 * than libmosquitto would have: the window is ingestd's write step, after the round's
 * journal write. Bytes a full socket did not take stay buffered, in order, ahead of any
 * later ones; the loop polls for POLLOUT while ingest_sockwbuf_pending says so. */
struct ingest_sockwbuf {
    int fd;                     /* the socket the bytes are for, -1: none */
    size_t len;                 /* data[0..len) not yet written */
    unsigned long long flushes; /* write(2) calls made (tests, bench) */
    unsigned char data[INGEST_SOCKBUF_BYTES];
};

void ingest_sockwbuf_init(struct ingest_sockwbuf *b);
/* A different fd than b's last one drops what b holds (its connection is gone). */
void ingest_sockwbuf_begin(struct ingest_sockwbuf *b, int fd);
void ingest_sockwbuf_end(void);
/* Writes what b holds. 0: all of it; 1: the socket is full, the rest stays (poll for
 * POLLOUT); -1: the socket failed (errno), the connection must end. */
int ingest_sockwbuf_flush(struct ingest_sockwbuf *b);
/* Drops what b holds: the connection ended. */
void ingest_sockwbuf_reset(struct ingest_sockwbuf *b);
size_t ingest_sockwbuf_pending(const struct ingest_sockwbuf *b);

/* The interposed write(2); libc's for every other caller. */
ssize_t write(int fd, const void *buf, size_t count);

#endif
