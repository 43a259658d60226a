/* fuzz_log_quote.c - the quoting of every client-chosen value written to the logs
 * (common/base/cc_log.c cc_log_quote: request methods, paths, addresses; issue 12 item 9).
 * Input: one byte choosing the buffer size (8..263), then the value.
 * Invariants: the result fits, is one double-quoted token with no blank, '=', quote,
 * backslash, control or non-ASCII byte inside but as \xNN, and unescapes to the value,
 * or (cut to fit) to a prefix of it followed by "...". */
#include "cc_log.h"
#include "fuzz.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[300], dec[300];
    size_t cap, n, d = 0, inner;
    char *s;
    const char *r;

    if (size < 1)
        return 0;
    cap = 8 + data[0];
    s = fuzz_cstr(data + 1, size - 1);
    memset(out, 0x7f, sizeof out);
    r = cc_log_quote(s, out, cap);
    FUZZ_CHECK(r == out);
    n = strnlen(out, cap);
    FUZZ_CHECK(n < cap && n >= 2 && out[0] == '"' && out[n - 1] == '"');
    inner = n - 2;
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = (unsigned char)out[i];

        FUZZ_CHECK(c > ' ' && c < 0x7f && c != '"' && c != '=');
        if (c == '\\') {
            int hi, lo;

            FUZZ_CHECK(i + 3 < n && out[i + 1] == 'x');
            hi = hexval(out[i + 2]);
            lo = hexval(out[i + 3]);
            FUZZ_CHECK(hi >= 0 && lo >= 0);
            dec[d++] = (char)(hi << 4 | lo);
            i += 3;
        } else {
            dec[d++] = (char)c;
        }
    }
    dec[d] = '\0';
    if (strcmp(dec, s) != 0) { /* cut: a prefix, then "..." */
        FUZZ_CHECK(inner >= 3 && memcmp(out + n - 4, "...", 3) == 0);
        FUZZ_CHECK(d >= 3 && strncmp(dec, s, d - 3) == 0);
        FUZZ_CHECK(strlen(s) > d - 3);
    }
    free(s);
    return 0;
}
