/* test_wsframe.c - cc_wsframe: client frames are parsed in bounded memory (a head that
 * announces more than CC_WS_FRAME_MAX is refused with 1009 before its payload), masking,
 * fragmentation, control frames between fragments, close codes, UTF-8, and the server
 * side (heads, close payloads, Sec-WebSocket-Accept from RFC 6455's example). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cc_rc.h"
#include "cc_wsframe.h"

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A masked client frame into out; returns its length. */
static size_t frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len)
{
    size_t h = 0;
    const uint8_t *p = payload;

    out[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(out + h, MASK, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = p[i] ^ MASK[i & 3];
    return h + len;
}

/* Feeds all of in, in pieces of step bytes, until an event; returns it. */
static struct cc_ws_event feed(struct cc_ws_parser *p, const uint8_t *in, size_t n, size_t step,
                               size_t *consumed)
{
    struct cc_ws_event ev = {0};
    size_t off = 0;

    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        size_t used = cc_ws_parse(p, in + off, k, &ev);

        off += used;
        if (ev.type != CC_WS_NEED_MORE)
            break;
        assert_int_equal(used, k);
    }
    if (consumed != NULL)
        *consumed = off;
    return ev;
}

static void test_wsframe_text_message_in_any_chunking(void **state)
{
    static const char msg[] = "{\"type\":\"ping\"}";
    uint8_t buf[64];
    size_t n = frame(buf, 1, CC_WS_OP_TEXT, msg, sizeof msg - 1);

    (void)state;
    for (size_t step = 1; step <= n; step++) {
        struct cc_ws_parser p;
        size_t used;
        struct cc_ws_event ev;

        cc_ws_parser_init(&p);
        ev = feed(&p, buf, n, step, &used);
        assert_int_equal(ev.type, CC_WS_MESSAGE);
        assert_int_equal(ev.opcode, CC_WS_OP_TEXT);
        assert_int_equal(used, n);
        assert_int_equal(ev.len, sizeof msg - 1);
        assert_memory_equal(ev.data, msg, sizeof msg - 1);
    }
}

static void test_wsframe_two_frames_in_one_buffer(void **state)
{
    uint8_t buf[64];
    size_t n = frame(buf, 1, CC_WS_OP_TEXT, "a", 1);
    struct cc_ws_parser p;
    struct cc_ws_event ev;
    size_t used;

    (void)state;
    n += frame(buf + n, 1, CC_WS_OP_BINARY, "bc", 2);
    cc_ws_parser_init(&p);
    used = cc_ws_parse(&p, buf, n, &ev);
    assert_int_equal(ev.type, CC_WS_MESSAGE);
    assert_int_equal(ev.len, 1);
    assert_true(used < n);
    used += cc_ws_parse(&p, buf + used, n - used, &ev);
    assert_int_equal(ev.type, CC_WS_MESSAGE);
    assert_int_equal(ev.opcode, CC_WS_OP_BINARY);
    assert_memory_equal(ev.data, "bc", 2);
    assert_int_equal(used, n);
}

static void test_wsframe_announced_length_over_max_refused_1009_from_the_head(void **state)
{
    /* A head announcing 300 MB and nothing else: refused as soon as the head is whole. */
    uint8_t head[14] = {0x81, 0x80 | 127, 0, 0, 0, 0, 0x11, 0xe1, 0xa3, 0x00, 1, 2, 3, 4};
    struct cc_ws_parser p;
    struct cc_ws_event ev;
    size_t used;

    (void)state;
    cc_ws_parser_init(&p);
    ev = feed(&p, head, sizeof head, 1, &used);
    assert_int_equal(ev.type, CC_WS_ERROR);
    assert_int_equal(ev.close_code, CC_WS_CLOSE_TOO_BIG);
    assert_int_equal(used, sizeof head); /* not one byte of payload was asked for */
    /* Finished: the same event again, nothing consumed. */
    assert_int_equal(cc_ws_parse(&p, head, sizeof head, &ev), 0);
    assert_int_equal(ev.type, CC_WS_ERROR);
    assert_int_equal(ev.close_code, CC_WS_CLOSE_TOO_BIG);
}

static void test_wsframe_exactly_max_accepted_one_more_refused(void **state)
{
    static uint8_t payload[CC_WS_FRAME_MAX + 1], buf[CC_WS_FRAME_MAX + 32];
    struct cc_ws_parser p;
    struct cc_ws_event ev;
    size_t n;

    (void)state;
    memset(payload, 'x', sizeof payload);
    n = frame(buf, 1, CC_WS_OP_TEXT, payload, CC_WS_FRAME_MAX);
    cc_ws_parser_init(&p);
    ev = feed(&p, buf, n, 1000, NULL);
    assert_int_equal(ev.type, CC_WS_MESSAGE);
    assert_int_equal(ev.len, CC_WS_FRAME_MAX);

    n = frame(buf, 1, CC_WS_OP_TEXT, payload, CC_WS_FRAME_MAX + 1);
    cc_ws_parser_init(&p);
    ev = feed(&p, buf, n, n, NULL);
    assert_int_equal(ev.type, CC_WS_ERROR);
    assert_int_equal(ev.close_code, CC_WS_CLOSE_TOO_BIG);
}

static void test_wsframe_fragments_reassembled_and_bounded_in_total(void **state)
{
    static uint8_t payload[3000], buf[8192];
    struct cc_ws_parser p;
    struct cc_ws_event ev;
    size_t n;

    (void)state;
    memset(payload, 'y', sizeof payload);
    /* "ab" + ping + "cd": the ping comes out between, then the whole message. */
    n = frame(buf, 0, CC_WS_OP_TEXT, "ab", 2);
    n += frame(buf + n, 1, CC_WS_OP_PING, "p", 1);
    n += frame(buf + n, 1, CC_WS_OP_CONT, "cd", 2);
    cc_ws_parser_init(&p);
    size_t used = cc_ws_parse(&p, buf, n, &ev);
    assert_int_equal(ev.type, CC_WS_PING);
    assert_int_equal(ev.len, 1);
    used += cc_ws_parse(&p, buf + used, n - used, &ev);
    assert_int_equal(ev.type, CC_WS_MESSAGE);
    assert_int_equal(ev.len, 4);
    assert_memory_equal(ev.data, "abcd", 4);
    assert_int_equal(used, n);

    /* Two fragments of 3000: the second head is refused (6000 > CC_WS_FRAME_MAX). */
    n = frame(buf, 0, CC_WS_OP_BINARY, payload, sizeof payload);
    n += frame(buf + n, 1, CC_WS_OP_CONT, payload, 2000);
    cc_ws_parser_init(&p);
    ev = feed(&p, buf, n, 512, &used);
    assert_int_equal(ev.type, CC_WS_ERROR);
    assert_int_equal(ev.close_code, CC_WS_CLOSE_TOO_BIG);
    assert_int_equal(used, 8 + 3000 + 8); /* stopped at the second head */
}

static void expect_protocol_error(const uint8_t *buf, size_t n, int code)
{
    struct cc_ws_parser p;
    struct cc_ws_event ev;

    cc_ws_parser_init(&p);
    ev = feed(&p, buf, n, n, NULL);
    assert_int_equal(ev.type, CC_WS_ERROR);
    assert_int_equal(ev.close_code, code);
}

static void test_wsframe_protocol_errors_1002(void **state)
{
    uint8_t buf[256], big[130];
    size_t n;

    (void)state;
    memset(big, 'z', sizeof big);
    /* Unmasked client frame. */
    const uint8_t unmasked[] = {0x81, 0x01, 'a'};
    expect_protocol_error(unmasked, sizeof unmasked, CC_WS_CLOSE_PROTOCOL);
    /* RSV1 set. */
    n = frame(buf, 1, CC_WS_OP_TEXT, "a", 1);
    buf[0] |= 0x40;
    expect_protocol_error(buf, n, CC_WS_CLOSE_PROTOCOL);
    /* Reserved opcodes. */
    n = frame(buf, 1, 0x3, "a", 1);
    expect_protocol_error(buf, n, CC_WS_CLOSE_PROTOCOL);
    n = frame(buf, 1, 0xB, "a", 1);
    expect_protocol_error(buf, n, CC_WS_CLOSE_PROTOCOL);
    /* Continuation with nothing to continue; a new message inside a fragmented one. */
    n = frame(buf, 1, CC_WS_OP_CONT, "a", 1);
    expect_protocol_error(buf, n, CC_WS_CLOSE_PROTOCOL);
    n = frame(buf, 0, CC_WS_OP_TEXT, "a", 1);
    n += frame(buf + n, 1, CC_WS_OP_TEXT, "b", 1);
    expect_protocol_error(buf, n, CC_WS_CLOSE_PROTOCOL);
    /* Fragmented or oversized control frames. */
    n = frame(buf, 0, CC_WS_OP_PING, "a", 1);
    expect_protocol_error(buf, n, CC_WS_CLOSE_PROTOCOL);
    n = frame(buf, 1, CC_WS_OP_PING, big, 126);
    expect_protocol_error(buf, n, CC_WS_CLOSE_PROTOCOL);
    /* A 64-bit length with its top bit set. */
    const uint8_t huge[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    expect_protocol_error(huge, sizeof huge, CC_WS_CLOSE_PROTOCOL);
    /* Close with one byte, or with a code no one may send. */
    n = frame(buf, 1, CC_WS_OP_CLOSE, "\x03", 1);
    expect_protocol_error(buf, n, CC_WS_CLOSE_PROTOCOL);
    n = frame(buf, 1, CC_WS_OP_CLOSE, "\x03\xed", 2); /* 1005 */
    expect_protocol_error(buf, n, CC_WS_CLOSE_PROTOCOL);
    n = frame(buf, 1, CC_WS_OP_CLOSE, "\x13\x88", 2); /* 5000 */
    expect_protocol_error(buf, n, CC_WS_CLOSE_PROTOCOL);
}

static void test_wsframe_invalid_utf8_text_1007(void **state)
{
    uint8_t buf[64];
    size_t n;

    (void)state;
    n = frame(buf, 1, CC_WS_OP_TEXT, "\xc0\xaf", 2); /* overlong '/' */
    expect_protocol_error(buf, n, CC_WS_CLOSE_BAD_DATA);
    n = frame(buf, 1, CC_WS_OP_CLOSE, "\x03\xe8\xff", 3);
    expect_protocol_error(buf, n, CC_WS_CLOSE_BAD_DATA);
    /* Binary need not be UTF-8. */
    struct cc_ws_parser p;
    struct cc_ws_event ev;

    n = frame(buf, 1, CC_WS_OP_BINARY, "\xff\xfe", 2);
    cc_ws_parser_init(&p);
    ev = feed(&p, buf, n, n, NULL);
    assert_int_equal(ev.type, CC_WS_MESSAGE);
}

static void test_wsframe_close_pong_and_empty_close(void **state)
{
    uint8_t buf[64];
    struct cc_ws_parser p;
    struct cc_ws_event ev;
    size_t n;

    (void)state;
    n = frame(buf, 1, CC_WS_OP_PONG, "xy", 2);
    n += frame(buf + n, 1, CC_WS_OP_CLOSE,
               "\x0f\xa1"
               "bye",
               5); /* 4001 */
    cc_ws_parser_init(&p);
    size_t used = cc_ws_parse(&p, buf, n, &ev);
    assert_int_equal(ev.type, CC_WS_PONG);
    assert_memory_equal(ev.data, "xy", 2);
    used += cc_ws_parse(&p, buf + used, n - used, &ev);
    assert_int_equal(ev.type, CC_WS_CLOSE);
    assert_int_equal(ev.close_code, 4001);
    assert_int_equal(ev.len, 3);
    assert_memory_equal(ev.data, "bye", 3);
    assert_int_equal(used, n);

    n = frame(buf, 1, CC_WS_OP_CLOSE, "", 0);
    cc_ws_parser_init(&p);
    ev = feed(&p, buf, n, 1, NULL);
    assert_int_equal(ev.type, CC_WS_CLOSE);
    assert_int_equal(ev.close_code, CC_WS_CLOSE_NO_STATUS);
}

static void test_wsframe_utf8_validator(void **state)
{
    (void)state;
    assert_true(cc_ws_utf8_valid((const uint8_t *)"", 0));
    assert_true(
        cc_ws_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    assert_false(cc_ws_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    assert_false(cc_ws_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(cc_ws_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* cut */
    assert_false(cc_ws_utf8_valid((const uint8_t *)"\x80", 1));
    assert_false(cc_ws_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3)); /* overlong */
}

static void test_wsframe_server_heads_and_close_payload(void **state)
{
    uint8_t h[CC_WS_SERVER_HEAD_MAX], c[CC_WS_CONTROL_MAX];
    char reason[200];

    (void)state;
    assert_int_equal(cc_ws_server_head(h, CC_WS_OP_TEXT, 5), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 5);
    assert_int_equal(cc_ws_server_head(h, CC_WS_OP_TEXT, 300), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal((h[2] << 8) | h[3], 300);
    assert_int_equal(cc_ws_server_head(h, CC_WS_OP_BINARY, 70000), 10);
    assert_int_equal(h[0], 0x82);
    assert_int_equal(h[1], 127);
    assert_int_equal((h[7] << 16) | (h[8] << 8) | h[9], 70000);

    assert_int_equal(cc_ws_close_payload(c, 4401, "token expired"), 15);
    assert_int_equal((c[0] << 8) | c[1], 4401);
    assert_memory_equal(c + 2, "token expired", 13);
    assert_int_equal(cc_ws_close_payload(c, 0, "x"), 0);
    /* A long reason is cut to fit, never inside a character. */
    memset(reason, 'a', sizeof reason);
    memcpy(reason + 122, "\xe2\x82\xac", 3);
    reason[sizeof reason - 1] = '\0';
    assert_int_equal(cc_ws_close_payload(c, 1000, reason), 2 + 122);
}

static void test_wsframe_accept_key_rfc_example_and_bad_keys(void **state)
{
    char out[CC_WS_ACCEPT_LEN + 1];

    (void)state;
    assert_int_equal(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), CC_OK);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(cc_ws_accept_key(NULL, out), CC_ERR_VALIDATION);
    assert_int_equal(cc_ws_accept_key("", out), CC_ERR_VALIDATION);
    assert_int_equal(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", out), CC_ERR_VALIDATION);
    assert_int_equal(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ!=", out), CC_ERR_VALIDATION);
    assert_int_equal(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZ\r\n=", out), CC_ERR_VALIDATION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wsframe_text_message_in_any_chunking),
        cmocka_unit_test(test_wsframe_two_frames_in_one_buffer),
        cmocka_unit_test(test_wsframe_announced_length_over_max_refused_1009_from_the_head),
        cmocka_unit_test(test_wsframe_exactly_max_accepted_one_more_refused),
        cmocka_unit_test(test_wsframe_fragments_reassembled_and_bounded_in_total),
        cmocka_unit_test(test_wsframe_protocol_errors_1002),
        cmocka_unit_test(test_wsframe_invalid_utf8_text_1007),
        cmocka_unit_test(test_wsframe_close_pong_and_empty_close),
        cmocka_unit_test(test_wsframe_utf8_validator),
        cmocka_unit_test(test_wsframe_server_heads_and_close_payload),
        cmocka_unit_test(test_wsframe_accept_key_rfc_example_and_bad_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
