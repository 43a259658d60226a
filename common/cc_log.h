/* cc_log.h - one JSON object per line on stderr (or plain text with LOG_FORMAT=text).
 *
 * Each line: {"ts":"<ISO-8601>","level":"info","app":"ingestd","event":"reading_rejected",
 * "msg":"<formatted text, JSON-escaped>"}. Thread-safe: a line is written with one
 * write(2) call. Never pass secrets, keys, tokens or passwords. */
#ifndef CC_LOG_H
#define CC_LOG_H

enum cc_log_level { CC_LOG_DEBUG = 0, CC_LOG_INFO, CC_LOG_WARN, CC_LOG_ERROR };

/* Sets the process name printed as "app", the minimum level and the format.
 * Call once at start, before threads. */
void cc_log_init(const char *app, int min_level, int json);
/* Parses "debug", "info", "warn", "error". Returns CC_OK or CC_ERR_CONFIG. */
int cc_log_level_parse(const char *s, int *out);

void cc_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define cc_log_debug(ev, ...) cc_log(CC_LOG_DEBUG, ev, __VA_ARGS__)
#define cc_log_info(ev, ...) cc_log(CC_LOG_INFO, ev, __VA_ARGS__)
#define cc_log_warn(ev, ...) cc_log(CC_LOG_WARN, ev, __VA_ARGS__)
#define cc_log_error(ev, ...) cc_log(CC_LOG_ERROR, ev, __VA_ARGS__)

#endif
