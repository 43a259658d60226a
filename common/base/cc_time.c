/* cc_time.c - epoch ms clocks, strict ISO-8601 parsing and formatting, civil dates.
 *
 * Everything is plain integer arithmetic on the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil), so no timegm, TZ or locale is involved. */
#include "cc_time.h"
#include "cc_rc.h"

#include <string.h>
#include <time.h>

#define MS_PER_S 1000LL          /* milliseconds */
#define MS_PER_DAY 86400000LL    /* milliseconds */
#define MAX_OFFSET_MIN (14 * 60) /* minutes: UTC+14:00 is the furthest real zone */
#define ISO8601_OUT_LEN 25       /* bytes: "YYYY-MM-DDTHH:MM:SS.mmmZ" + NUL */

int64_t cc_now_ms(void)
{
    struct timespec ts;

    /* CLOCK_REALTIME cannot fail with a valid clock id and pointer. */
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * MS_PER_S + ts.tv_nsec / 1000000;
}

int64_t cc_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * MS_PER_S + ts.tv_nsec / 1000000;
}

void cc_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

struct timespec cc_deadline(clockid_t clock, long ms)
{
    struct timespec until;

    clock_gettime(clock, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

int64_t cc_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;                                                              /* [0, 399] */
    doy = (153 * (m > 2 ? (int64_t)m - 3 : (int64_t)m + 9) + 2) / 5 + (int64_t)d - 1; /* [0, 365] */
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

void cc_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t z, era, doe, yoe, doy, mp, yy;
    unsigned mm, dd;

    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;                                      /* [0, 146096] */
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    yy = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* [0, 365] */
    mp = (5 * doy + 2) / 153;                      /* [0, 11] */
    dd = (unsigned)(doy - (153 * mp + 2) / 5 + 1); /* [1, 31] */
    mm = (unsigned)(mp < 10 ? mp + 3 : mp - 9);    /* [1, 12] */
    *y = yy + (mm <= 2);
    *m = mm;
    *d = dd;
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m == 2 && is_leap(y))
        return 29;
    return dim[m - 1];
}

/* Reads exactly n ASCII digits (isdigit would consult the locale). Returns the number
 * of characters consumed (n) or 0 if any is not a digit. */
static size_t digits(const char *s, size_t n, int *out)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return n;
}

int cc_time_parse_iso8601(const char *s, int64_t *out_ms)
{
    int year, mon, day, hh = 0, mi = 0, ss = 0, ms = 0, off_min = 0;
    const char *p = s;
    int64_t days, total;

    if (s == NULL || out_ms == NULL)
        return CC_ERR_VALIDATION;

    if (!digits(p, 4, &year) || p[4] != '-' || !digits(p + 5, 2, &mon) || p[7] != '-' ||
        !digits(p + 8, 2, &day))
        return CC_ERR_VALIDATION;
    p += 10;
    if (mon < 1 || mon > 12 || day < 1 || (unsigned)day > days_in_month(year, (unsigned)mon))
        return CC_ERR_VALIDATION;

    if (*p == '\0')
        goto done; /* a date alone is midnight UTC */
    if (*p != 'T' && *p != ' ')
        return CC_ERR_VALIDATION;
    p++;

    if (!digits(p, 2, &hh) || p[2] != ':' || !digits(p + 3, 2, &mi) || p[5] != ':' ||
        !digits(p + 6, 2, &ss))
        return CC_ERR_VALIDATION;
    p += 8;
    /* 24:00:00 and leap second 60 are legal ISO-8601 but not something a sensor
     * should send; rejecting them keeps one spelling per instant. */
    if (hh > 23 || mi > 59 || ss > 59)
        return CC_ERR_VALIDATION;

    if (*p == '.') {
        int n = 0;

        p++;
        /* Any number of digits; only the first three matter (truncate, not round,
         * so a reading never moves into the next millisecond). */
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                ms = ms * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0)
            return CC_ERR_VALIDATION;
        for (; n < 3; n++)
            ms *= 10;
    }

    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;

        p++;
        if (!digits(p, 2, &oh))
            return CC_ERR_VALIDATION;
        p += 2;
        if (*p == ':')
            p++;
        if (!digits(p, 2, &om))
            return CC_ERR_VALIDATION;
        p += 2;
        if (oh > 23 || om > 59 || oh * 60 + om > MAX_OFFSET_MIN)
            return CC_ERR_VALIDATION;
        off_min = sign * (oh * 60 + om);
    }
    if (*p != '\0')
        return CC_ERR_VALIDATION;

done:
    days = cc_days_from_civil(year, (unsigned)mon, (unsigned)day);
    total = days * MS_PER_DAY + ((int64_t)hh * 3600 + mi * 60 + ss) * MS_PER_S + ms;
    /* local = UTC + offset, so UTC = local - offset */
    total -= (int64_t)off_min * 60 * MS_PER_S;
    /* An offset can carry year 0000 or 9999 outside the years cc_time_format_iso8601
     * writes: refused, so that every accepted time can be written back in an answer. */
    if (total < cc_days_from_civil(0, 1, 1) * MS_PER_DAY ||
        total >= cc_days_from_civil(10000, 1, 1) * MS_PER_DAY)
        return CC_ERR_VALIDATION;
    *out_ms = total;
    return CC_OK;
}

/* Writes n digits of v, zero-padded; v is known to fit. */
static void put_digits(char *p, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

int cc_time_format_iso8601(int64_t ms, char *buf, size_t buflen)
{
    /* Bounds that keep the day arithmetic far from int64 overflow; anything this far
     * out is outside 0000..9999 anyway. */
    const int64_t limit = 400000LL * 366 * MS_PER_DAY;
    int64_t days, rem, y;
    unsigned m, d;
    char tmp[ISO8601_OUT_LEN];

    if (buf == NULL || buflen < ISO8601_OUT_LEN || ms > limit || ms < -limit)
        return CC_ERR_VALIDATION;

    days = ms / MS_PER_DAY;
    rem = ms % MS_PER_DAY;
    if (rem < 0) { /* floor division: -1 ms is 1969-12-31T23:59:59.999Z */
        rem += MS_PER_DAY;
        days--;
    }
    cc_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return CC_ERR_VALIDATION;

    memcpy(tmp, "0000-00-00T00:00:00.000Z", ISO8601_OUT_LEN);
    put_digits(tmp, y, 4);
    put_digits(tmp + 5, m, 2);
    put_digits(tmp + 8, d, 2);
    put_digits(tmp + 11, rem / 3600000, 2);
    put_digits(tmp + 14, rem / 60000 % 60, 2);
    put_digits(tmp + 17, rem / 1000 % 60, 2);
    put_digits(tmp + 20, rem % 1000, 3);
    memcpy(buf, tmp, ISO8601_OUT_LEN);
    return CC_OK;
}
