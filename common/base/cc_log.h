/* cc_log.h - one JSON object per line on stderr (or plain text with LOG_FORMAT=text).
 *
 * Each line: {"ts":"<ISO-8601>","level":"info","app":"ingestd","event":"reading_rejected",
 * "msg":"<formatted text, JSON-escaped>"}. Thread-safe: a line is written with one
 * write(2) call. Never pass secrets, keys, tokens or passwords. Values a client chose
 * go into a message through cc_log_quote (issue 12 item 9: a request path carrying
 * " status=200 user=4" made the request log claim another status and user). */
#ifndef CC_LOG_H
#define CC_LOG_H

#include <stddef.h>

enum cc_log_level { CC_LOG_DEBUG = 0, CC_LOG_INFO, CC_LOG_WARN, CC_LOG_ERROR };

#define CC_LOG_QUOTED_MAX 256 /* bytes of one quoted client value, quotes and NUL included */

/* Sets the process name printed as "app", the minimum level and the format.
 * Call once at start, before threads. */
void cc_log_init(const char *app, int min_level, int json);
/* Parses "debug", "info", "warn", "error". Returns CC_OK or CC_ERR_CONFIG. */
int cc_log_level_parse(const char *s, int *out);

void cc_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes s into out (cap bytes, at least 8) as one double-quoted value for a
 * "key=value" message, so that nothing a client sends (a path, a method, a header) can
 * read as another key=value pair or start a new line: '"', '\\', '=', space, every
 * control byte, DEL and every byte >= 0x80 become \xNN. A value cut to fit ends in
 * "..." inside the quotes. NULL becomes "". Returns out, to be passed to cc_log as %s.
 * Thread-safe. */
const char *cc_log_quote(const char *s, char *out, size_t cap);

#define cc_log_debug(ev, ...) cc_log(CC_LOG_DEBUG, ev, __VA_ARGS__)
#define cc_log_info(ev, ...) cc_log(CC_LOG_INFO, ev, __VA_ARGS__)
#define cc_log_warn(ev, ...) cc_log(CC_LOG_WARN, ev, __VA_ARGS__)
#define cc_log_error(ev, ...) cc_log(CC_LOG_ERROR, ev, __VA_ARGS__)

#endif
