/* fuzz_wsframe.c - the WebSocket client-frame parser of apid's live feed
 * (common/api/cc_wsframe.c), fed the bytes a client sends, plus its helpers for close
 * payloads and the handshake key. Input: one mode byte, then
 *  mode 0: raw client bytes, parsed once whole and once in chunks whose sizes come
 *          from the mode byte and the data (as TCP may split them);
 *  mode 1: a message the target frames itself (masked, split into fragments, with a
 *          ping between them), so the fuzzer reaches reassembly with valid masks;
 *  mode 2: a close code (two bytes) and a reason for cc_ws_close_payload;
 *  mode 3: a Sec-WebSocket-Key for cc_ws_accept_key.
 * Invariants: no message is larger than CC_WS_FRAME_MAX (issue 12 item 5), no control
 * payload larger than CC_WS_CONTROL_MAX; text messages are valid UTF-8; the events do
 * not depend on how the bytes were split; a finished parser stays finished; a framed
 * message comes back byte for byte; close payloads fit and cut only whole characters. */
#include "cc_rc.h"
#include "cc_wsframe.h"
#include "fuzz.h"

#define MAX_EVENTS 256

struct ev_rec {
    int type, opcode, code;
    size_t len;
    uint64_t hash; /* FNV-1a of the data */
};

static uint64_t fnv(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 1099511628211ULL;
    return h;
}

static void check_event(const struct cc_ws_event *ev)
{
    switch (ev->type) {
    case CC_WS_MESSAGE:
        FUZZ_CHECK(ev->opcode == CC_WS_OP_TEXT || ev->opcode == CC_WS_OP_BINARY);
        FUZZ_CHECK(ev->len <= CC_WS_FRAME_MAX);
        FUZZ_CHECK(ev->opcode != CC_WS_OP_TEXT || cc_ws_utf8_valid(ev->data, ev->len));
        break;
    case CC_WS_PING:
    case CC_WS_PONG:
        FUZZ_CHECK(ev->len <= CC_WS_CONTROL_MAX);
        break;
    case CC_WS_CLOSE:
        FUZZ_CHECK(ev->close_code == CC_WS_CLOSE_NO_STATUS ||
                   (ev->close_code >= 1000 && ev->close_code <= 4999));
        FUZZ_CHECK(ev->data == NULL || ev->len <= CC_WS_CONTROL_MAX - 2);
        break;
    case CC_WS_ERROR:
        FUZZ_CHECK(ev->close_code >= 1000 && ev->close_code <= 1011);
        break;
    default:
        FUZZ_CHECK(ev->type == CC_WS_NEED_MORE);
    }
    if (ev->len > 0 && ev->type != CC_WS_NEED_MORE && ev->data != NULL) {
        volatile uint8_t sink = ev->data[0] ^ ev->data[ev->len - 1]; /* ASan: data is readable */
        (void)sink;
    }
}

/* Parses in[0..n) in chunks (each at most chunk(i) bytes), recording the events. */
static size_t run(const uint8_t *in, size_t n, const uint8_t *sizes, size_t nsizes,
                  struct ev_rec *rec)
{
    struct cc_ws_parser *p = malloc(sizeof *p);
    size_t off = 0, k = 0, ci = 0;
    int finished = 0;

    FUZZ_CHECK(p != NULL);
    cc_ws_parser_init(p);
    while (off < n && k < MAX_EVENTS) {
        size_t chunk = nsizes ? (size_t)sizes[ci++ % nsizes] % 64 + 1 : n - off;
        size_t end = off + chunk < n ? off + chunk : n;

        while (off < end && k < MAX_EVENTS) {
            struct cc_ws_event ev;
            size_t used = cc_ws_parse(p, in + off, end - off, &ev);

            FUZZ_CHECK(used <= end - off);
            check_event(&ev);
            if (finished) {
                FUZZ_CHECK(used == 0 && ev.type == finished);
                goto out;
            }
            off += used;
            if (ev.type == CC_WS_NEED_MORE) {
                FUZZ_CHECK(off == end);
                break;
            }
            rec[k].type = ev.type;
            rec[k].opcode = ev.type == CC_WS_MESSAGE ? ev.opcode : 0;
            rec[k].code = ev.close_code;
            rec[k].len = ev.len;
            rec[k].hash = ev.data ? fnv(ev.data, ev.len) : 0;
            k++;
            if (ev.type == CC_WS_CLOSE || ev.type == CC_WS_ERROR)
                finished = ev.type; /* the next call must report it again */
        }
        if (finished)
            break;
    }
    if (finished) {
        struct cc_ws_event ev;

        FUZZ_CHECK(cc_ws_parse(p, in, n, &ev) == 0 && ev.type == finished);
    }
out:
    free(p);
    return k;
}

static void raw(uint8_t mode, const uint8_t *d, size_t n)
{
    static struct ev_rec whole[MAX_EVENTS], split[MAX_EVENTS];
    size_t a = run(d, n, NULL, 0, whole);
    uint8_t sizes[2] = {mode, (uint8_t)(n ? d[n / 2] : 1)};
    size_t b = run(d, n, sizes, sizeof sizes, split);

    if (a == MAX_EVENTS || b == MAX_EVENTS)
        return;
    FUZZ_CHECK(a == b);
    for (size_t i = 0; i < a; i++) {
        FUZZ_CHECK(whole[i].type == split[i].type && whole[i].opcode == split[i].opcode &&
                   whole[i].code == split[i].code && whole[i].len == split[i].len);
        /* A terminal event's data may be NULL on repeat, the rest must match. */
        FUZZ_CHECK(whole[i].hash == split[i].hash);
    }
}

/* Appends one masked client frame. */
static size_t frame(uint8_t *out, int fin, int op, const uint8_t *d, size_t n, uint32_t key)
{
    size_t o = 0;
    uint8_t m[4] = {(uint8_t)(key >> 24), (uint8_t)(key >> 16), (uint8_t)(key >> 8), (uint8_t)key};

    out[o++] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (n < 126) {
        out[o++] = (uint8_t)(0x80 | n);
    } else {
        out[o++] = 0x80 | 126;
        out[o++] = (uint8_t)(n >> 8);
        out[o++] = (uint8_t)n;
    }
    memcpy(out + o, m, 4);
    o += 4;
    for (size_t i = 0; i < n; i++)
        out[o + i] = d[i] ^ m[i % 4];
    return o + n;
}

static void framed(uint8_t mode, const uint8_t *d, size_t n)
{
    static uint8_t wire[2 * CC_WS_FRAME_MAX + 256];
    struct cc_ws_parser *p = malloc(sizeof *p);
    int op = (mode & 0x10) ? CC_WS_OP_BINARY : CC_WS_OP_TEXT;
    size_t first = n ? (size_t)(mode >> 5) * n / 8 : 0, o = 0, off = 0;
    uint32_t key =
        n >= 4 ? (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3] : 0;
    int got_msg = 0, got_ping = 0;

    FUZZ_CHECK(p != NULL);
    if (n > CC_WS_FRAME_MAX + 64) {
        free(p);
        return;
    }
    /* The message in two fragments with a ping between them. */
    o += frame(wire + o, 0, op, d, first, key);
    o += frame(wire + o, 1, CC_WS_OP_PING, (const uint8_t *)"hi", 2, key ^ 0x5a5a5a5a);
    o += frame(wire + o, 1, CC_WS_OP_CONT, d + first, n - first, ~key);
    cc_ws_parser_init(p);
    while (off < o) {
        struct cc_ws_event ev;

        off += cc_ws_parse(p, wire + off, o - off, &ev);
        check_event(&ev);
        if (ev.type == CC_WS_PING) {
            FUZZ_CHECK(!got_msg && ev.len == 2 && memcmp(ev.data, "hi", 2) == 0);
            got_ping = 1;
        } else if (ev.type == CC_WS_MESSAGE) {
            FUZZ_CHECK(got_ping && ev.opcode == op && ev.len == n);
            FUZZ_CHECK(n == 0 || memcmp(ev.data, d, n) == 0);
            got_msg = 1;
        } else if (ev.type == CC_WS_ERROR) {
            /* Only what the protocol forbids: too big, or text that is not UTF-8. */
            FUZZ_CHECK(n > CC_WS_FRAME_MAX || (op == CC_WS_OP_TEXT && !cc_ws_utf8_valid(d, n)));
            FUZZ_CHECK(ev.close_code ==
                       (n > CC_WS_FRAME_MAX ? CC_WS_CLOSE_TOO_BIG : CC_WS_CLOSE_BAD_DATA));
            break;
        } else {
            FUZZ_CHECK(ev.type == CC_WS_NEED_MORE);
        }
    }
    FUZZ_CHECK(got_msg || n > CC_WS_FRAME_MAX || (op == CC_WS_OP_TEXT && !cc_ws_utf8_valid(d, n)));
    free(p);
}

static void close_payload(const uint8_t *d, size_t n)
{
    uint8_t out[CC_WS_CONTROL_MAX];
    int code;
    char *reason;
    size_t len;

    if (n < 2)
        return;
    code = d[0] << 8 | d[1];
    reason = fuzz_cstr(d + 2, n - 2);
    if (!cc_ws_utf8_valid((const uint8_t *)reason, strlen(reason))) {
        free(reason);
        return;
    }
    len = cc_ws_close_payload(out, code, reason);
    FUZZ_CHECK(len <= CC_WS_CONTROL_MAX);
    if (code == 0) {
        FUZZ_CHECK(len == 0);
    } else {
        FUZZ_CHECK(len >= 2 && (out[0] << 8 | out[1]) == (code & 0xffff));
        FUZZ_CHECK(cc_ws_utf8_valid(out + 2, len - 2));
        FUZZ_CHECK(memcmp(out + 2, reason, len - 2) == 0); /* a prefix of the reason */
    }
    free(reason);
}

static void accept_key(const uint8_t *d, size_t n)
{
    char *key = fuzz_cstr(d, n), out[CC_WS_ACCEPT_LEN + 1];

    if (cc_ws_accept_key(key, out) == CC_OK) {
        FUZZ_CHECK(strlen(key) == CC_WS_KEY_LEN);
        FUZZ_CHECK(strlen(out) == CC_WS_ACCEPT_LEN);
    }
    free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] & 3) {
    case 0:
        raw(data[0], data + 1, size - 1);
        break;
    case 1:
        framed(data[0], data + 1, size - 1);
        break;
    case 2:
        close_payload(data + 1, size - 1);
        break;
    default:
        accept_key(data + 1, size - 1);
        break;
    }
    return 0;
}
