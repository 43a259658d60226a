/* cc_wsframe.h - RFC 6455 frames from clients, parsed in bounded memory.
 *
 * apid's live feed reads client bytes as they arrive and hands them to a struct
 * cc_ws_parser, which holds at most CC_WS_FRAME_MAX bytes of one message and
 * CC_WS_CONTROL_MAX bytes of one control frame. A header that announces more than the
 * message may hold is refused (CC_WS_CLOSE_TOO_BIG) as soon as the header is complete,
 * before any of its payload is read, so nothing a client announces is ever allocated.
 * Client frames must be masked; no extension is negotiated (RSV bits must be 0);
 * fragments are reassembled; control frames may come between fragments; text must be
 * UTF-8. The helpers below also build the server's side: frame heads, close payloads,
 * the handshake's Sec-WebSocket-Accept.
 * Pure: no sockets, no allocation, no shared state; every function is thread-safe on
 * its own parser. Codes: CC_OK, CC_ERR_VALIDATION. */
#ifndef CC_WSFRAME_H
#define CC_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

#define CC_WS_FRAME_MAX 4096     /* payload bytes of one client message (all its fragments) */
#define CC_WS_CONTROL_MAX 125    /* payload bytes of a control frame (RFC 6455 5.5) */
#define CC_WS_HEAD_MAX 14        /* bytes of the longest client frame head */
#define CC_WS_SERVER_HEAD_MAX 10 /* bytes of the longest server (unmasked) frame head */
#define CC_WS_KEY_LEN 24         /* Sec-WebSocket-Key: base64 of 16 bytes */
#define CC_WS_ACCEPT_LEN 28      /* Sec-WebSocket-Accept: base64 of a SHA-1 */

/* Opcodes (RFC 6455 5.2). */
#define CC_WS_OP_CONT 0x0
#define CC_WS_OP_TEXT 0x1
#define CC_WS_OP_BINARY 0x2
#define CC_WS_OP_CLOSE 0x8
#define CC_WS_OP_PING 0x9
#define CC_WS_OP_PONG 0xA

/* Close codes (RFC 6455 7.4.1). */
#define CC_WS_CLOSE_NORMAL 1000
#define CC_WS_CLOSE_GOING_AWAY 1001
#define CC_WS_CLOSE_PROTOCOL 1002
#define CC_WS_CLOSE_NO_STATUS 1005 /* reported for a close frame without a code; never sent */
#define CC_WS_CLOSE_BAD_DATA 1007
#define CC_WS_CLOSE_POLICY 1008
#define CC_WS_CLOSE_TOO_BIG 1009
#define CC_WS_CLOSE_INTERNAL 1011

/* What cc_ws_parse found. */
enum cc_ws_event_type {
    CC_WS_NEED_MORE = 0, /* every byte given was consumed; no event yet */
    CC_WS_MESSAGE = 1,   /* a whole text or binary message: opcode, data, len */
    CC_WS_PING = 2,      /* data, len: the payload to echo in a pong */
    CC_WS_PONG = 3,      /* data, len */
    CC_WS_CLOSE = 4,     /* the client closed: close_code (1005 if none), data = reason */
    CC_WS_ERROR = 5      /* the client broke the protocol: close with close_code */
};

struct cc_ws_event {
    int type;            /* enum cc_ws_event_type */
    int opcode;          /* CC_WS_MESSAGE: CC_WS_OP_TEXT or CC_WS_OP_BINARY */
    const uint8_t *data; /* unmasked payload inside the parser: valid until its next call */
    size_t len;
    int close_code; /* CC_WS_CLOSE: the client's code; CC_WS_ERROR: the code to answer */
};

/* One connection's parser state. Embed it and call cc_ws_parser_init; the fields are
 * private to cc_wsframe.c. */
struct cc_ws_parser {
    uint8_t head[CC_WS_HEAD_MAX];
    size_t head_have, head_need; /* bytes of the current frame head */
    int fin, opcode;
    uint8_t mask[4];
    uint64_t payload_len, payload_have; /* the current frame's payload */
    uint8_t msg[CC_WS_FRAME_MAX];       /* the data message being assembled */
    size_t msg_len;
    int msg_opcode; /* 0: no data message in progress */
    uint8_t ctl[CC_WS_CONTROL_MAX];
    int done; /* 0, or the terminal event type (CC_WS_CLOSE, CC_WS_ERROR) */
    int done_code;
};

/* Resets p for a new connection. Cannot fail. */
void cc_ws_parser_init(struct cc_ws_parser *p);

/* Consumes client bytes in[0..n) until one event is complete or they run out; returns
 * how many were consumed and fills *ev (type CC_WS_NEED_MORE when all n were consumed
 * with no event). Call again with the rest of the input after each event. Once it has
 * reported CC_WS_CLOSE or CC_WS_ERROR the parser is finished: later calls consume
 * nothing and report the same event again (data NULL). Never reads past in[n-1]. */
size_t cc_ws_parse(struct cc_ws_parser *p, const uint8_t *in, size_t n, struct cc_ws_event *ev);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
int cc_ws_utf8_valid(const uint8_t *s, size_t n);

/* Writes the head of an unmasked, final server frame of opcode carrying len payload
 * bytes into out; returns its length (2, 4 or 10). */
size_t cc_ws_server_head(uint8_t out[CC_WS_SERVER_HEAD_MAX], int opcode, uint64_t len);

/* Writes a close payload (code, then reason cut to fit and to whole UTF-8 characters)
 * into out; returns its length (at most CC_WS_CONTROL_MAX). code 0: empty payload. */
size_t cc_ws_close_payload(uint8_t out[CC_WS_CONTROL_MAX], int code, const char *reason);

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: CC_OK with out (NUL-terminated),
 * or CC_ERR_VALIDATION when key is not the base64 of 16 bytes (RFC 6455 4.2.1). */
int cc_ws_accept_key(const char *key, char out[CC_WS_ACCEPT_LEN + 1]);

#endif
