/* ws_loop.h - the live feed's event loop: one thread owns every feed socket.
 *
 * ws.c answers the handshake on a civetweb worker and hands the socket over; from then
 * on no worker is involved. The loop reads client bytes without blocking into a bounded
 * frame parser (cc_wsframe: nothing a client announces is allocated), writes the
 * subscriber's queued messages as they become ready (cc_feed_ready), pings every
 * ping_interval_s and ends a socket whose pong has not come by the next ping, ends
 * feeds whose token expired or whose user was disabled or deleted (checked every
 * API_WS_VERIFY_MS) with 4401, and after any close frame gives the client
 * API_WS_CLOSE_GRACE_MS to answer before the TCP connection is reset, whether or not the
 * client reads. The loop is the only thread that removes subscribers and frees
 * connections. Threads: api_ws_conn_new/free and api_ws_loop_adopt on any thread,
 * start/stop on the main thread. */
#ifndef API_WS_LOOP_H
#define API_WS_LOOP_H

#include <stdint.h>

#include "cc_access.h"
#include "cc_feed.h"

struct api_ws_conn;

/* Starts the loop thread for feed, with its own store on db_path (users are re-checked
 * through it). CC_OK, CC_ERR_IO, CC_ERR_DB, CC_ERR_NOMEM. */
int api_ws_loop_start(struct cc_feed *feed, const char *db_path, int ping_interval_s);
/* Ends every feed (close 1001, best effort), stops the thread and frees what it held.
 * Call once no worker can adopt any more (after mg_stop). */
void api_ws_loop_stop(void);
/* 1 while the loop runs. */
int api_ws_loop_running(void);

/* A connection record for who, whose token expires at expires_ms (epoch ms). NULL:
 * out of memory. Give it to cc_feed_sub_new as the subscriber's data. */
struct api_ws_conn *api_ws_conn_new(const struct cc_principal *who, int64_t expires_ms);
/* Frees c when it never got a subscriber. NULL is a no-op. */
void api_ws_conn_free(struct api_ws_conn *c);
/* Hands c, its subscriber and its socket (non-blocking, 101 already sent) to the loop.
 * fd -1: the handover failed after the subscriber was made; the loop removes it and
 * frees c (only the loop frees subscribers: it may be holding this one). */
void api_ws_loop_adopt(struct api_ws_conn *c, struct cc_feed_sub *sub, int fd);

#endif
