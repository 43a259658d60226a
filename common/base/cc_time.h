/* cc_time.h - epoch milliseconds, ISO-8601 parsing and formatting (UTC).
 * Thread-safe; no locale or TZ dependence. */
#ifndef CC_TIME_H
#define CC_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CC_ISO8601_LEN 32 /* buffer size for cc_time_format */

/* Wall-clock now, epoch ms. */
int64_t cc_now_ms(void);
/* Monotonic clock in ms, for durations and timers. */
int64_t cc_mono_ms(void);
/* Sleeps about ms milliseconds (a signal may end it early: callers re-check their state). */
void cc_sleep_ms(long ms);
/* The time ms milliseconds from now on clock (CLOCK_REALTIME, or CLOCK_MONOTONIC for a
 * condition variable set to it): the absolute deadline pthread_cond_timedwait takes. */
struct timespec cc_deadline(clockid_t clock, long ms);

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff...][Z|±HH:MM|±HHMM]" (a space is accepted for T;
 * no zone means UTC; a date alone "YYYY-MM-DD" is midnight UTC). Validates every
 * field (month 1-12, day within the month, leap years, hour 0-23, minute/second 0-59,
 * offset up to ±14:00), and that the instant in UTC lies in years 0000..9999, the ones
 * cc_time_format_iso8601 writes. Returns CC_OK and writes *out_ms, or CC_ERR_VALIDATION. */
int cc_time_parse_iso8601(const char *s, int64_t *out_ms);

/* Writes "2026-11-26T05:45:00.000Z" into buf (at least CC_ISO8601_LEN bytes).
 * Returns CC_OK, or CC_ERR_VALIDATION for years outside 0000..9999. */
int cc_time_format_iso8601(int64_t ms, char *buf, size_t buflen);

/* Days since 1970-01-01 for a civil date, and back (proleptic Gregorian). */
int64_t cc_days_from_civil(int64_t y, unsigned m, unsigned d);
void cc_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

#endif
