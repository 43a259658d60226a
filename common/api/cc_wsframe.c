/* cc_wsframe.c - RFC 6455 client frames in bounded memory (cc_wsframe.h). */
#include "cc_wsframe.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "cc_rc.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void cc_ws_parser_init(struct cc_ws_parser *p)
{
    memset(p->head, 0, sizeof p->head);
    p->head_have = 0;
    p->head_need = 2;
    p->fin = p->opcode = 0;
    memset(p->mask, 0, sizeof p->mask);
    p->payload_len = p->payload_have = 0;
    p->msg_len = 0;
    p->msg_opcode = 0;
    p->done = 0;
    p->done_code = 0;
}

static int is_control(int opcode)
{
    return opcode >= CC_WS_OP_CLOSE;
}

/* Ends the parser with a terminal event. */
static void finish(struct cc_ws_parser *p, struct cc_ws_event *ev, int type, int code)
{
    p->done = type;
    p->done_code = code;
    ev->type = type;
    ev->close_code = code;
}

/* A close code a client may send (RFC 6455 7.4.1, 7.4.2; IANA's 1012-1014). */
static int close_code_ok(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* The head is complete: checks it before a byte of payload is read. 0 or the close
 * code that refuses it. */
static int head_check(struct cc_ws_parser *p)
{
    const uint8_t *h = p->head;
    size_t lenbytes = p->head_need - 2 - 4;
    uint64_t len = h[1] & 0x7f;

    p->fin = (h[0] & 0x80) != 0;
    p->opcode = h[0] & 0x0f;
    if (h[0] & 0x70)
        return CC_WS_CLOSE_PROTOCOL; /* RSV bits: no extension was negotiated */
    if (!(h[1] & 0x80))
        return CC_WS_CLOSE_PROTOCOL; /* clients must mask (RFC 6455 5.1) */
    if (lenbytes > 0) {
        len = 0;
        for (size_t i = 0; i < lenbytes; i++)
            len = (len << 8) | h[2 + i];
        if (lenbytes == 8 && (len >> 63) != 0)
            return CC_WS_CLOSE_PROTOCOL;
    }
    memcpy(p->mask, h + 2 + lenbytes, 4);
    p->payload_len = len;
    p->payload_have = 0;
    switch (p->opcode) {
    case CC_WS_OP_CLOSE:
    case CC_WS_OP_PING:
    case CC_WS_OP_PONG:
        if (!p->fin || len > CC_WS_CONTROL_MAX)
            return CC_WS_CLOSE_PROTOCOL;
        return 0;
    case CC_WS_OP_CONT:
        if (p->msg_opcode == 0)
            return CC_WS_CLOSE_PROTOCOL; /* nothing to continue */
        break;
    case CC_WS_OP_TEXT:
    case CC_WS_OP_BINARY:
        if (p->msg_opcode != 0)
            return CC_WS_CLOSE_PROTOCOL; /* a new message inside a fragmented one */
        break;
    default:
        return CC_WS_CLOSE_PROTOCOL; /* reserved opcode */
    }
    /* The size check that makes the parser bounded: before any payload. */
    if (len > (uint64_t)(CC_WS_FRAME_MAX - p->msg_len))
        return CC_WS_CLOSE_TOO_BIG;
    if (p->opcode != CC_WS_OP_CONT)
        p->msg_opcode = p->opcode;
    return 0;
}

/* The current frame's payload is complete: reports what it made, if anything. */
static void frame_done(struct cc_ws_parser *p, struct cc_ws_event *ev)
{
    size_t n = (size_t)p->payload_len;

    p->head_have = 0;
    p->head_need = 2;
    switch (p->opcode) {
    case CC_WS_OP_PING:
    case CC_WS_OP_PONG:
        ev->type = p->opcode == CC_WS_OP_PING ? CC_WS_PING : CC_WS_PONG;
        ev->data = p->ctl;
        ev->len = n;
        return;
    case CC_WS_OP_CLOSE: {
        int code = CC_WS_CLOSE_NO_STATUS;

        if (n == 1) {
            finish(p, ev, CC_WS_ERROR, CC_WS_CLOSE_PROTOCOL);
            return;
        }
        if (n >= 2) {
            code = (p->ctl[0] << 8) | p->ctl[1];
            if (!close_code_ok(code)) {
                finish(p, ev, CC_WS_ERROR, CC_WS_CLOSE_PROTOCOL);
                return;
            }
            if (!cc_ws_utf8_valid(p->ctl + 2, n - 2)) {
                finish(p, ev, CC_WS_ERROR, CC_WS_CLOSE_BAD_DATA);
                return;
            }
        }
        finish(p, ev, CC_WS_CLOSE, code);
        ev->data = n >= 2 ? p->ctl + 2 : p->ctl;
        ev->len = n >= 2 ? n - 2 : 0;
        return;
    }
    default:
        break;
    }
    if (!p->fin)
        return; /* more fragments to come */
    if (p->msg_opcode == CC_WS_OP_TEXT && !cc_ws_utf8_valid(p->msg, p->msg_len)) {
        finish(p, ev, CC_WS_ERROR, CC_WS_CLOSE_BAD_DATA);
        return;
    }
    ev->type = CC_WS_MESSAGE;
    ev->opcode = p->msg_opcode;
    ev->data = p->msg;
    ev->len = p->msg_len;
    p->msg_opcode = 0;
    p->msg_len = 0; /* the data stays readable until the next call */
}

size_t cc_ws_parse(struct cc_ws_parser *p, const uint8_t *in, size_t n, struct cc_ws_event *ev)
{
    size_t used = 0;

    memset(ev, 0, sizeof *ev);
    if (p->done) {
        ev->type = p->done;
        ev->close_code = p->done_code;
        return 0;
    }
    while (used < n) {
        if (p->head_have < p->head_need) {
            p->head[p->head_have++] = in[used++];
            if (p->head_have == 2) {
                uint8_t l7 = p->head[1] & 0x7f;

                if (!(p->head[1] & 0x80)) {
                    finish(p, ev, CC_WS_ERROR, CC_WS_CLOSE_PROTOCOL); /* clients must mask */
                    return used;
                }
                p->head_need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
            }
            if (p->head_have < p->head_need)
                continue;
            int code = head_check(p);

            if (code != 0) {
                finish(p, ev, CC_WS_ERROR, code);
                return used;
            }
            if (p->payload_len == 0) {
                frame_done(p, ev);
                if (ev->type != CC_WS_NEED_MORE)
                    return used;
            }
            continue;
        }
        /* Payload: unmask straight into the message or control buffer. */
        uint8_t *dst = is_control(p->opcode) ? p->ctl + p->payload_have : p->msg + p->msg_len;
        size_t take = (size_t)(p->payload_len - p->payload_have);

        if (take > n - used)
            take = n - used;
        for (size_t i = 0; i < take; i++)
            dst[i] = in[used + i] ^ p->mask[(p->payload_have + i) & 3];
        if (!is_control(p->opcode))
            p->msg_len += take;
        p->payload_have += take;
        used += take;
        if (p->payload_have == p->payload_len) {
            frame_done(p, ev);
            if (ev->type != CC_WS_NEED_MORE)
                return used;
        }
    }
    ev->type = CC_WS_NEED_MORE;
    return used;
}

int cc_ws_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        size_t more;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i - 1 < more)
            return 0;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += more + 1;
    }
    return 1;
}

size_t cc_ws_server_head(uint8_t out[CC_WS_SERVER_HEAD_MAX], int opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t cc_ws_close_payload(uint8_t out[CC_WS_CONTROL_MAX], int code, const char *reason)
{
    size_t n = reason != NULL ? strlen(reason) : 0;

    if (code <= 0)
        return 0;
    out[0] = (uint8_t)((code >> 8) & 0xff);
    out[1] = (uint8_t)(code & 0xff);
    if (n > CC_WS_CONTROL_MAX - 2)
        n = CC_WS_CONTROL_MAX - 2;
    while (n > 0 && !cc_ws_utf8_valid((const uint8_t *)reason, n))
        n--; /* never cut inside a character */
    memcpy(out + 2, reason, n);
    return n + 2;
}

int cc_ws_accept_key(const char *key, char out[CC_WS_ACCEPT_LEN + 1])
{
    unsigned char raw[32], digest[SHA_DIGEST_LENGTH];
    unsigned char buf[CC_WS_KEY_LEN + sizeof ws_guid];

    if (key == NULL || strlen(key) != CC_WS_KEY_LEN)
        return CC_ERR_VALIDATION;
    /* 24 base64 characters ending in "==" decode to exactly 16 bytes. */
    if (key[22] != '=' || key[23] != '=' ||
        EVP_DecodeBlock(raw, (const unsigned char *)key, CC_WS_KEY_LEN) != 18)
        return CC_ERR_VALIDATION;
    for (size_t i = 0; i < 22; i++) {
        char c = key[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return CC_ERR_VALIDATION;
    }
    memcpy(buf, key, CC_WS_KEY_LEN);
    memcpy(buf + CC_WS_KEY_LEN, ws_guid, sizeof ws_guid - 1);
    if (EVP_Digest(buf, CC_WS_KEY_LEN + sizeof ws_guid - 1, digest, NULL, EVP_sha1(), NULL) != 1)
        return CC_ERR_VALIDATION;
    if (EVP_EncodeBlock((unsigned char *)out, digest, sizeof digest) != CC_WS_ACCEPT_LEN)
        return CC_ERR_VALIDATION;
    out[CC_WS_ACCEPT_LEN] = '\0';
    return CC_OK;
}
