/* test_time.c - cc_time: clocks, strict ISO-8601 parsing, formatting, civil dates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cc_rc.h"
#include "cc_time.h"

/* 2026-11-26T05:45:00.000Z */
#define T_EXAMPLE 1795671900000LL

static int64_t parse_ok(const char *s)
{
    int64_t ms = -42;

    assert_int_equal(cc_time_parse_iso8601(s, &ms), CC_OK);
    return ms;
}

static void expect_bad(const char *s)
{
    int64_t ms = 12345;

    if (cc_time_parse_iso8601(s, &ms) != CC_ERR_VALIDATION)
        fail_msg("accepted bad timestamp '%s'", s ? s : "(null)");
    assert_int_equal(ms, 12345); /* out-param untouched on failure */
}

static void test_time_now_is_recent(void **state)
{
    (void)state;
    int64_t now = cc_now_ms();

    assert_true(now > 1704067200000LL); /* after 2024-01-01 */
    assert_true(now < 4102444800000LL); /* before 2100-01-01 */
}

static void test_time_mono_is_monotonic(void **state)
{
    (void)state;
    int64_t a = cc_mono_ms(), b = cc_mono_ms();

    assert_true(b >= a);
}

static void test_time_parse_utc_z(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2026-11-26T05:45:00.000Z"), T_EXAMPLE);
    assert_int_equal(parse_ok("2026-11-26T05:45:00Z"), T_EXAMPLE);
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
}

static void test_time_parse_no_zone_is_utc(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2026-11-26T05:45:00"), T_EXAMPLE);
    assert_int_equal(parse_ok("2026-11-26 05:45:00"), T_EXAMPLE);
}

static void test_time_parse_date_only(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1970-01-02"), 86400000LL);
    assert_int_equal(parse_ok("2026-11-26"), T_EXAMPLE - (5 * 3600 + 45 * 60) * 1000LL);
}

static void test_time_parse_offsets(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2026-11-26T07:45:00+02:00"), T_EXAMPLE);
    assert_int_equal(parse_ok("2026-11-26T07:45:00+0200"), T_EXAMPLE);
    assert_int_equal(parse_ok("2026-11-26T00:15:00-05:30"), T_EXAMPLE);
    assert_int_equal(parse_ok("2026-11-26T05:45:00-00:00"), T_EXAMPLE);
    assert_int_equal(parse_ok("2026-11-26T19:45:00+14:00"), T_EXAMPLE);
    assert_int_equal(parse_ok("2026-11-25T15:45:00-14:00"), T_EXAMPLE);
    /* the offset crosses a day and a year boundary */
    assert_int_equal(parse_ok("2027-01-01T00:30:00+01:00"), parse_ok("2026-12-31T23:30:00Z"));
}

static void test_time_parse_fraction_truncates(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1970-01-01T00:00:00.1Z"), 100);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.12Z"), 120);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.123Z"), 123);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.1239Z"), 123);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.999999999999999999999Z"), 999);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.5+01:00"), -3600000 + 500);
}

static void test_time_parse_leap_years(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2024-02-29") - parse_ok("2024-02-28"), 86400000LL);
    assert_int_equal(parse_ok("2000-02-29") - parse_ok("2000-02-28"), 86400000LL);
    expect_bad("2023-02-29");
    expect_bad("1900-02-29"); /* divisible by 100, not by 400 */
    expect_bad("2100-02-29");
}

static void test_time_parse_rejects_bad_fields(void **state)
{
    (void)state;
    expect_bad("2026-02-30");
    expect_bad("2026-04-31");
    expect_bad("2026-13-01");
    expect_bad("2026-00-10");
    expect_bad("2026-01-00");
    expect_bad("2026-01-32");
    expect_bad("2026-01-01T24:00:00Z");
    expect_bad("2026-01-01T23:60:00Z");
    expect_bad("2026-01-01T23:59:60Z");
    expect_bad("2026-01-01T00:00:00+14:01");
    expect_bad("2026-01-01T00:00:00-15:00");
    expect_bad("2026-01-01T00:00:00+01:60");
}

static void test_time_parse_rejects_malformed(void **state)
{
    (void)state;
    expect_bad(NULL);
    expect_bad("");
    expect_bad(" ");
    expect_bad("2026");
    expect_bad("2026-1-01");
    expect_bad("26-01-01");
    expect_bad("+2026-01-01");
    expect_bad("2026/01/01");
    expect_bad("2026-01-01T");
    expect_bad("2026-01-01T00:00");    /* seconds required */
    expect_bad("2026-01-01T0:00:00Z"); /* two-digit hour */
    expect_bad("2026-01-01t00:00:00Z");
    expect_bad("2026-01-01T00:00:00.Z"); /* dot without digits */
    expect_bad("2026-01-01T00:00:00.1.2Z");
    expect_bad("2026-01-01T00:00:00+01");
    expect_bad("2026-01-01T00:00:00+1:00");
    expect_bad("2026-01-01T00:00:00+01:0");
    expect_bad("2026-01-01T00:00:00ZZ");
    expect_bad("2026-01-01T00:00:00Z "); /* trailing garbage */
    expect_bad("2026-01-01T00:00:00z");
    expect_bad("2026-01-01x");
    expect_bad("1795671900000"); /* epoch ms is not ISO-8601 */
    expect_bad("2026-0a-01");
}

static void test_time_parse_null_out_rejected(void **state)
{
    (void)state;
    assert_int_equal(cc_time_parse_iso8601("2026-01-01", NULL), CC_ERR_VALIDATION);
}

static void test_time_format_example(void **state)
{
    (void)state;
    char buf[CC_ISO8601_LEN];

    assert_int_equal(cc_time_format_iso8601(T_EXAMPLE, buf, sizeof(buf)), CC_OK);
    assert_string_equal(buf, "2026-11-26T05:45:00.000Z");
    assert_int_equal(cc_time_format_iso8601(0, buf, sizeof(buf)), CC_OK);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    assert_int_equal(cc_time_format_iso8601(T_EXAMPLE + 7, buf, sizeof(buf)), CC_OK);
    assert_string_equal(buf, "2026-11-26T05:45:00.007Z");
}

static void test_time_format_negative_floors(void **state)
{
    (void)state;
    char buf[CC_ISO8601_LEN];

    assert_int_equal(cc_time_format_iso8601(-1, buf, sizeof(buf)), CC_OK);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
}

static void test_time_format_year_bounds(void **state)
{
    (void)state;
    char buf[CC_ISO8601_LEN] = "untouched";
    int64_t lo = parse_ok("0000-01-01T00:00:00Z"), hi = parse_ok("9999-12-31T23:59:59.999Z");

    assert_int_equal(cc_time_format_iso8601(lo, buf, sizeof(buf)), CC_OK);
    assert_string_equal(buf, "0000-01-01T00:00:00.000Z");
    assert_int_equal(cc_time_format_iso8601(hi, buf, sizeof(buf)), CC_OK);
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
    strcpy(buf, "untouched");
    assert_int_equal(cc_time_format_iso8601(lo - 1, buf, sizeof(buf)), CC_ERR_VALIDATION);
    assert_int_equal(cc_time_format_iso8601(hi + 1, buf, sizeof(buf)), CC_ERR_VALIDATION);
    assert_int_equal(cc_time_format_iso8601(INT64_MAX, buf, sizeof(buf)), CC_ERR_VALIDATION);
    assert_int_equal(cc_time_format_iso8601(INT64_MIN, buf, sizeof(buf)), CC_ERR_VALIDATION);
    assert_string_equal(buf, "untouched");
}

/* An offset can move a date of year 0000 or 9999 out of the years the formatter writes:
 * the parser refuses such an instant, so every time it accepts can be written back (a
 * readings query from 0000-01-01T00:00:00+14:00 used to answer "from": null). */
static void test_time_parse_rejects_unwritable_instants(void **state)
{
    (void)state;
    char buf[CC_ISO8601_LEN];

    expect_bad("0000-01-01T00:00:00+14:00");
    expect_bad("0000-01-01T00:00:00+00:01");
    expect_bad("9999-12-31T23:59:59.999-00:01");
    expect_bad("9999-12-31T12:00:00-14:00");
    assert_int_equal(cc_time_format_iso8601(parse_ok("0000-01-01T00:00:00-14:00"), buf, sizeof buf),
                     CC_OK);
    assert_string_equal(buf, "0000-01-01T14:00:00.000Z");
    assert_int_equal(
        cc_time_format_iso8601(parse_ok("9999-12-31T23:59:59.999+14:00"), buf, sizeof buf), CC_OK);
    assert_string_equal(buf, "9999-12-31T09:59:59.999Z");
}

static void test_time_format_small_buffer(void **state)
{
    (void)state;
    char buf[24] = "untouched";

    assert_int_equal(cc_time_format_iso8601(0, buf, sizeof(buf)), CC_ERR_VALIDATION);
    assert_string_equal(buf, "untouched");
    assert_int_equal(cc_time_format_iso8601(0, NULL, 32), CC_ERR_VALIDATION);
}

static void test_time_round_trip(void **state)
{
    (void)state;
    char buf[CC_ISO8601_LEN];
    /* a spread of instants, including ones before the epoch and in leap years */
    static const int64_t samples[] = {
        0, 1, -1, 951782400000LL, T_EXAMPLE, -86400001LL, 4102444799999LL, -62135596800000LL};

    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        assert_int_equal(cc_time_format_iso8601(samples[i], buf, sizeof(buf)), CC_OK);
        assert_int_equal(parse_ok(buf), samples[i]);
    }
    for (int64_t ms = -5000LL * 86400000; ms < 5000LL * 86400000; ms += 86400000LL * 7 + 12345) {
        assert_int_equal(cc_time_format_iso8601(ms, buf, sizeof(buf)), CC_OK);
        assert_int_equal(parse_ok(buf), ms);
    }
}

static void test_time_civil_known_days(void **state)
{
    (void)state;
    int64_t y;
    unsigned m, d;

    assert_int_equal(cc_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(cc_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(cc_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(cc_days_from_civil(0, 3, 1), -719468);
    cc_civil_from_days(11016, &y, &m, &d);
    assert_int_equal(y, 2000);
    assert_int_equal(m, 2);
    assert_int_equal(d, 29);
}

static void test_time_civil_round_trip(void **state)
{
    (void)state;
    int64_t y;
    unsigned m, d;

    for (int64_t days = -800000; days <= 800000; days += 37) {
        cc_civil_from_days(days, &y, &m, &d);
        assert_true(m >= 1 && m <= 12);
        assert_true(d >= 1 && d <= 31);
        assert_int_equal(cc_days_from_civil(y, m, d), days);
    }
}

/* cc_deadline: ms later on the clock asked, its nanoseconds normalized (999 ms carries). */
static void test_time_deadline(void **state)
{
    (void)state;
    for (long ms = 0; ms < 2500; ms += 333) {
        struct timespec before, until;

        clock_gettime(CLOCK_MONOTONIC, &before);
        until = cc_deadline(CLOCK_MONOTONIC, ms);
        assert_true(until.tv_nsec >= 0 && until.tv_nsec < 1000000000L);
        int64_t gap_ns =
            (int64_t)(until.tv_sec - before.tv_sec) * 1000000000 + (until.tv_nsec - before.tv_nsec);
        assert_true(gap_ns >= (int64_t)ms * 1000000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_now_is_recent),
        cmocka_unit_test(test_time_mono_is_monotonic),
        cmocka_unit_test(test_time_parse_utc_z),
        cmocka_unit_test(test_time_parse_no_zone_is_utc),
        cmocka_unit_test(test_time_parse_date_only),
        cmocka_unit_test(test_time_parse_offsets),
        cmocka_unit_test(test_time_parse_fraction_truncates),
        cmocka_unit_test(test_time_parse_leap_years),
        cmocka_unit_test(test_time_parse_rejects_bad_fields),
        cmocka_unit_test(test_time_parse_rejects_malformed),
        cmocka_unit_test(test_time_parse_null_out_rejected),
        cmocka_unit_test(test_time_format_example),
        cmocka_unit_test(test_time_format_negative_floors),
        cmocka_unit_test(test_time_format_year_bounds),
        cmocka_unit_test(test_time_parse_rejects_unwritable_instants),
        cmocka_unit_test(test_time_format_small_buffer),
        cmocka_unit_test(test_time_round_trip),
        cmocka_unit_test(test_time_civil_known_days),
        cmocka_unit_test(test_time_civil_round_trip),
        cmocka_unit_test(test_time_deadline),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
