/* cc_wake.h - ends an HTTP server's accept wait at shutdown.
 *
 * civetweb's mg_stop (Debian's libcivetweb) sets a stop flag that its master thread reads
 * only when its poll on the listening sockets returns: with no client connecting, after
 * the library's 2 s quantum. Every SIGTERM of apid and of ingestd (its /metrics server)
 * therefore took 2 s more than the work in hand. A connection to the listener ends that
 * poll at once, so around mg_stop a helper thread connects to it every
 * CC_WAKE_INTERVAL_MS until the stop has returned. A connection accepted before the flag
 * is set is an empty one: the worker that takes it reads end-of-file and closes it. */
#ifndef CC_WAKE_H
#define CC_WAKE_H

#define CC_WAKE_INTERVAL_MS 10 /* between two connections to the listener while it stops */

struct cc_wake;

/* Starts connecting to host:port (an IPv4 or IPv6 literal; "0.0.0.0" and "" mean
 * 127.0.0.1, "::" means ::1) every CC_WAKE_INTERVAL_MS. Returns NULL if the address does
 * not parse or the thread cannot start: the stop then only takes longer. */
struct cc_wake *cc_wake_start(const char *host, int port);
/* Stops connecting and frees w (NULL is a no-op). */
void cc_wake_stop(struct cc_wake *w);

#endif
