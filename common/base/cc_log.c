/* cc_log.c - JSON-lines (or text) logger on stderr, one write(2) per line. */
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_APP_MAX 32     /* bytes, including NUL */
#define LOG_MSG_MAX 2048   /* bytes of formatted message before escaping */
#define LOG_LINE_MAX 8192  /* bytes of one output line, newline included */
#define LOG_FIELD_MAX 4096 /* bytes of output one escaped field may take */

static char log_app[LOG_APP_MAX] = "coldchain";
static int log_min_level = CC_LOG_INFO;
static int log_json = 1;
/* write(2) of one line is atomic for pipes only up to PIPE_BUF; the mutex keeps long
 * lines from different threads of this process from interleaving as well. */
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const level_upper[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void cc_log_init(const char *app, int min_level, int json)
{
    size_t n;

    if (app == NULL || app[0] == '\0')
        app = "coldchain";
    n = strlen(app);
    if (n >= sizeof(log_app))
        n = sizeof(log_app) - 1;
    memcpy(log_app, app, n);
    log_app[n] = '\0';
    if (min_level < CC_LOG_DEBUG)
        min_level = CC_LOG_DEBUG;
    if (min_level > CC_LOG_ERROR)
        min_level = CC_LOG_ERROR;
    log_min_level = min_level;
    log_json = json ? 1 : 0;
}

/* ASCII-only case-insensitive equality; strcasecmp would consult the locale. */
static int ascii_ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char ca = (*a >= 'A' && *a <= 'Z') ? (char)(*a + 32) : *a;
        char cb = (*b >= 'A' && *b <= 'Z') ? (char)(*b + 32) : *b;

        if (ca != cb)
            return 0;
    }
    return *a == *b;
}

int cc_log_level_parse(const char *s, int *out)
{
    int level;

    if (s == NULL || out == NULL)
        return CC_ERR_CONFIG;
    if (ascii_ieq(s, "debug"))
        level = CC_LOG_DEBUG;
    else if (ascii_ieq(s, "info"))
        level = CC_LOG_INFO;
    else if (ascii_ieq(s, "warn") || ascii_ieq(s, "warning"))
        level = CC_LOG_WARN;
    else if (ascii_ieq(s, "error"))
        level = CC_LOG_ERROR;
    else
        return CC_ERR_CONFIG;
    *out = level;
    return CC_OK;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes available), or 0 if the
 * bytes there are not valid UTF-8 (overlong forms, surrogates, > U+10FFFF, cut short). */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0; /* continuation byte, C0/C1 (overlong) or F5..FF */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* vsnprintf cuts at a byte count; drop a multi-byte character it cut in half, so the
 * truncated message does not end in a spurious U+FFFD. */
static void trim_partial_utf8(char *s)
{
    size_t n = strlen(s);

    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];

        if ((c & 0xC0) == 0x80)
            continue; /* continuation byte: keep looking for the lead */
        if (c >= 0xC0) {
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;

            if (need > back)
                s[n - back] = '\0';
        }
        return;
    }
}

struct outbuf {
    char *p;
    size_t len;
    size_t cap;
    int full;
};

static void out_bytes(struct outbuf *o, const char *s, size_t n)
{
    if (o->full || o->cap - o->len < n) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void out_str(struct outbuf *o, const char *s)
{
    out_bytes(o, s, strlen(s));
}

/* Appends s escaped: as a JSON string body when json, else with control characters
 * and backslashes escaped so a message can never forge a second text line. Invalid
 * UTF-8 becomes U+FFFD. Stops at a character boundary once max output bytes are used,
 * and returns 1 if it had to stop. */
static int out_escaped(struct outbuf *o, const char *s, int json, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), start = o->len;

    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *piece = esc;
        size_t plen, step = 1;
        unsigned char c = u[i];

        if (c == '"' && json) {
            piece = "\\\"";
        } else if (c == '\\') {
            piece = "\\\\";
        } else if (c == '\n') {
            piece = "\\n";
        } else if (c == '\r') {
            piece = "\\r";
        } else if (c == '\t') {
            piece = "\\t";
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)c);
        } else {
            step = utf8_seq_len(u + i, n - i);
            if (step == 0) {
                piece = "\xEF\xBF\xBD"; /* U+FFFD for one bad byte */
                step = 1;
            } else {
                piece = s + i;
            }
        }
        plen = (piece == s + i) ? step : strlen(piece);
        if (o->len - start + plen > max)
            return 1;
        out_bytes(o, piece, plen);
        i += step;
    }
    return 0;
}

/* Bytes of c once quoted: itself, or \xNN. */
static size_t quoted_len(unsigned char c)
{
    return (c > 0x20 && c < 0x7F && c != '"' && c != '\\' && c != '=') ? 1 : 4;
}

const char *cc_log_quote(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u;
    size_t o = 0, full = 0, room;

    if (out == NULL || cap < 8)
        return "\"\"";
    u = (const unsigned char *)(s != NULL ? s : "");
    for (size_t i = 0; u[i]; i++)
        full += quoted_len(u[i]);
    /* Content room between the quotes; a value that does not fit also needs "...". */
    room = full + 3 <= cap ? full : cap - 3 - 3;
    out[o++] = '"';
    for (; *u && o - 1 + quoted_len(*u) <= room; u++) {
        if (quoted_len(*u) == 1) {
            out[o++] = (char)*u;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[*u >> 4];
            out[o++] = hex[*u & 0x0F];
        }
    }
    if (*u) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

void cc_log(int level, const char *event, const char *fmt, ...)
{
    char msg[LOG_MSG_MAX];
    char line[LOG_LINE_MAX];
    char ts[CC_ISO8601_LEN];
    struct outbuf o = {line, 0, sizeof(line) - 1, 0}; /* keep a byte for '\n' */
    int truncated = 0, n;
    va_list ap;
    const char *p;
    size_t left;

    if (level < CC_LOG_DEBUG)
        level = CC_LOG_DEBUG;
    if (level > CC_LOG_ERROR)
        level = CC_LOG_ERROR;
    if (level < log_min_level)
        return;
    if (event == NULL)
        event = "log";
    if (fmt == NULL)
        fmt = "";

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        msg[0] = '\0';
    } else if ((size_t)n >= sizeof(msg)) {
        truncated = 1;
        trim_partial_utf8(msg);
    }
    if (cc_time_format_iso8601(cc_now_ms(), ts, sizeof(ts)) != CC_OK)
        memcpy(ts, "0000-00-00T00:00:00.000Z", 25);

    if (log_json) {
        out_str(&o, "{\"ts\":\"");
        out_str(&o, ts);
        out_str(&o, "\",\"level\":\"");
        out_str(&o, level_names[level]);
        out_str(&o, "\",\"app\":\"");
        out_escaped(&o, log_app, 1, LOG_APP_MAX * 6);
        out_str(&o, "\",\"event\":\"");
        out_escaped(&o, event, 1, 256);
        out_str(&o, "\",\"msg\":\"");
        if (out_escaped(&o, msg, 1, LOG_FIELD_MAX))
            truncated = 1;
        out_str(&o, "\"");
        if (truncated)
            out_str(&o, ",\"truncated\":true");
        out_str(&o, "}");
    } else {
        out_str(&o, ts);
        out_str(&o, " ");
        out_str(&o, level_upper[level]);
        out_str(&o, " ");
        out_escaped(&o, log_app, 0, LOG_APP_MAX * 6);
        out_str(&o, " ");
        out_escaped(&o, event, 0, 256);
        out_str(&o, ": ");
        if (out_escaped(&o, msg, 0, LOG_FIELD_MAX))
            truncated = 1;
        if (truncated)
            out_str(&o, " [truncated]");
    }
    /* The field limits above keep the line well inside LOG_LINE_MAX, so full can
     * only mean a bug; a cut JSON line would be worse than a placeholder. */
    if (o.full) {
        o.full = 0;
        o.len = 0;
        out_str(&o, log_json ? "{\"level\":\"error\",\"event\":\"log_overflow\"}" : "log_overflow");
    }
    line[o.len++] = '\n';

    p = line;
    left = o.len;
    if (left <= PIPE_BUF) {
        /* One write(2) of at most PIPE_BUF bytes is atomic on a pipe and is not interleaved
         * on a file, so the usual short line needs no lock: apid logs every request from
         * many threads, and a lock held across the system call serialised them all. */
        ssize_t w;

        do {
            w = write(STDERR_FILENO, p, left);
        } while (w < 0 && errno == EINTR);
        if (w < 0 || (size_t)w == left)
            return;
        p += w; /* a partial write: finish under the lock */
        left -= (size_t)w;
    }
    pthread_mutex_lock(&log_mutex);
    while (left > 0) {
        ssize_t w = write(STDERR_FILENO, p, left);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            break; /* nowhere left to report a logging failure */
        }
        p += w;
        left -= (size_t)w;
    }
    pthread_mutex_unlock(&log_mutex);
}
