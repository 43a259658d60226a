/* sockbuf.h - a read buffer under libmosquitto's reads of ingestd's broker socket.
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

#endif
