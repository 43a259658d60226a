/* fuzz_time.c - the ISO-8601 parser (common/base/cc_time.c) that reads every "ts" of a
 * reading, every from/to of a query and every timestamp in an import. Input: one mode
 * byte; even: a string to parse; odd: eight bytes of epoch milliseconds to format.
 * Invariants: an accepted string names an instant of years 0000-9999 (± the 14 h
 * offset limit); when that instant can be formatted, the formatted text parses back
 * to it; a canonical "YYYY-MM-DDTHH:MM:SS.mmmZ" formats back byte for byte; every
 * formatted instant parses back to itself; civil dates round-trip through day counts. */
#include "cc_rc.h"
#include "cc_time.h"
#include "fuzz.h"

#define MS_PER_DAY 86400000LL

static void parse(const uint8_t *d, size_t n)
{
    char *s = fuzz_cstr(d, n);
    char buf[CC_ISO8601_LEN];
    int64_t ms = 0, back = 0;

    if (cc_time_parse_iso8601(s, &ms) == CC_OK) {
        int64_t lo = cc_days_from_civil(0, 1, 1) * MS_PER_DAY;
        int64_t hi = cc_days_from_civil(10000, 1, 1) * MS_PER_DAY;

        /* Every accepted time, offset applied, can be written back (years 0000..9999). */
        FUZZ_CHECK(ms >= lo && ms < hi);
        FUZZ_CHECK(cc_time_format_iso8601(ms, buf, sizeof buf) == CC_OK);
        FUZZ_CHECK(cc_time_parse_iso8601(buf, &back) == CC_OK && back == ms);
        if (strlen(s) == 24 && s[10] == 'T' && s[19] == '.' && s[23] == 'Z')
            FUZZ_CHECK(strcmp(buf, s) == 0);
    }
    free(s);
}

static void format(const uint8_t *d, size_t n)
{
    char buf[CC_ISO8601_LEN];
    int64_t ms = 0, back = 0, y;
    unsigned m, day;

    memcpy(&ms, d, n < sizeof ms ? n : sizeof ms);
    if (n > sizeof ms && (d[sizeof ms] & 1)) /* mostly instants near our era */
        ms %= 400LL * 365 * MS_PER_DAY;
    if (cc_time_format_iso8601(ms, buf, sizeof buf) == CC_OK) {
        FUZZ_CHECK(strlen(buf) == 24);
        FUZZ_CHECK(cc_time_parse_iso8601(buf, &back) == CC_OK && back == ms);
    }
    /* Day counts within ±10^7 days (beyond any timestamp we format). */
    cc_civil_from_days((ms / MS_PER_DAY) % 10000000, &y, &m, &day);
    FUZZ_CHECK(m >= 1 && m <= 12 && day >= 1 && day <= 31);
    FUZZ_CHECK(cc_days_from_civil(y, m, day) == (ms / MS_PER_DAY) % 10000000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        format(data + 1, size - 1);
    else
        parse(data + 1, size - 1);
    return 0;
}
