/* test_log.c - cc_log: every line is one valid JSON object (or one text line), escaped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"

#define CAPTURE_MAX (8 << 20) /* bytes */

static FILE *cap_file;
static int cap_saved_fd = -1;

/* Points fd 2 at a temporary file until capture_end. */
static void capture_begin(void)
{
    fflush(stderr);
    cap_file = tmpfile();
    assert_non_null(cap_file);
    cap_saved_fd = dup(STDERR_FILENO);
    assert_true(cap_saved_fd >= 0);
    assert_true(dup2(fileno(cap_file), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written (caller frees). */
static char *capture_end(void)
{
    char *buf = malloc(CAPTURE_MAX + 1);
    size_t n;

    dup2(cap_saved_fd, STDERR_FILENO);
    close(cap_saved_fd);
    cap_saved_fd = -1;
    assert_non_null(buf);
    rewind(cap_file);
    n = fread(buf, 1, CAPTURE_MAX, cap_file);
    buf[n] = '\0';
    fclose(cap_file);
    cap_file = NULL;
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Parses a single captured JSON line; fails unless it is exactly one line. */
static cJSON *parse_one_line(const char *out)
{
    size_t len = strlen(out);
    cJSON *j;

    assert_int_equal(count_lines(out), 1);
    assert_true(len > 0 && out[len - 1] == '\n');
    j = cJSON_Parse(out);
    if (j == NULL)
        fail_msg("not JSON: %s", out);
    assert_true(cJSON_IsObject(j));
    return j;
}

static const char *str_field(const cJSON *j, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, name);

    assert_true(cJSON_IsString(f));
    return f->valuestring;
}

static int setup_json(void **state)
{
    (void)state;
    cc_log_init("testapp", CC_LOG_DEBUG, 1);
    return 0;
}

static void test_log_json_fields(void **state)
{
    (void)state;
    int64_t before = cc_now_ms(), ts;
    char *out;
    cJSON *j;

    capture_begin();
    cc_log_info("reading_rejected", "device %s sent %d bad values", "SN-1", 3);
    out = capture_end();
    j = parse_one_line(out);
    assert_string_equal(str_field(j, "level"), "info");
    assert_string_equal(str_field(j, "app"), "testapp");
    assert_string_equal(str_field(j, "event"), "reading_rejected");
    assert_string_equal(str_field(j, "msg"), "device SN-1 sent 3 bad values");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "truncated"));
    /* ts is ISO-8601 UTC with milliseconds, and now */
    assert_int_equal(strlen(str_field(j, "ts")), 24);
    assert_int_equal(cc_time_parse_iso8601(str_field(j, "ts"), &ts), CC_OK);
    assert_true(ts >= before - 1000 && ts <= cc_now_ms() + 1000);
    assert_int_equal(str_field(j, "ts")[23], 'Z');
    cJSON_Delete(j);
    free(out);
}

static void test_log_json_level_names(void **state)
{
    (void)state;
    static const char *const names[] = {"debug", "info", "warn", "error"};

    for (int lvl = CC_LOG_DEBUG; lvl <= CC_LOG_ERROR; lvl++) {
        char *out;
        cJSON *j;

        capture_begin();
        cc_log(lvl, "ev", "x");
        out = capture_end();
        j = parse_one_line(out);
        assert_string_equal(str_field(j, "level"), names[lvl]);
        cJSON_Delete(j);
        free(out);
    }
}

static void test_log_json_escapes_specials(void **state)
{
    (void)state;
    const char *msg = "quote\" back\\slash\nnew\ttab\rcr\x01"
                      "ctl\x1f"
                      "end\x7f/";
    char *out;
    cJSON *j;

    capture_begin();
    cc_log_warn("ev", "%s", msg);
    out = capture_end();
    /* the raw text holds the escapes, not the characters */
    assert_non_null(strstr(out, "quote\\\" back\\\\slash\\nnew\\ttab\\rcr\\u0001ctl\\u001fend"));
    assert_null(strchr(out, '\t'));
    assert_null(strchr(out, '\r'));
    j = parse_one_line(out);
    assert_string_equal(str_field(j, "msg"), msg);
    cJSON_Delete(j);
    free(out);
}

static void test_log_json_escapes_event(void **state)
{
    (void)state;
    char *out;
    cJSON *j;

    capture_begin();
    cc_log_info("odd\"event\n", "m");
    out = capture_end();
    j = parse_one_line(out);
    assert_string_equal(str_field(j, "event"), "odd\"event\n");
    cJSON_Delete(j);
    free(out);
}

static void test_log_json_keeps_valid_utf8(void **state)
{
    (void)state;
    const char *msg = "5 \xc2\xb0"
                      "C \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf";
    char *out;
    cJSON *j;

    capture_begin();
    cc_log_info("ev", "%s", msg);
    out = capture_end();
    j = parse_one_line(out);
    assert_string_equal(str_field(j, "msg"), msg);
    cJSON_Delete(j);
    free(out);
}

static void test_log_json_replaces_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b"}, /* never valid */
        {"a\x80"
         "b",
         "a\xef\xbf\xbd"
         "b"},                                                    /* lone continuation */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* UTF-16 surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"x\xe2\x82", "x\xef\xbf\xbd\xef\xbf\xbd"}, /* cut short at the end */
        {"\xe2\x82"
         "A",
         "\xef\xbf\xbd\xef\xbf\xbd"
         "A"}, /* cut short by ASCII */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out;
        cJSON *j;

        capture_begin();
        cc_log_info("ev", "%s", cases[i].in);
        out = capture_end();
        j = parse_one_line(out);
        if (strcmp(str_field(j, "msg"), cases[i].want) != 0)
            fail_msg("case %zu: got %s", i, out);
        cJSON_Delete(j);
        free(out);
    }
}

static void test_log_level_filter(void **state)
{
    (void)state;
    char *out;

    cc_log_init("testapp", CC_LOG_WARN, 1);
    capture_begin();
    cc_log_debug("ev", "dropped");
    cc_log_info("ev", "dropped");
    cc_log_warn("ev", "kept1");
    cc_log_error("ev", "kept2");
    out = capture_end();
    assert_int_equal(count_lines(out), 2);
    assert_null(strstr(out, "dropped"));
    assert_non_null(strstr(out, "kept1"));
    assert_non_null(strstr(out, "kept2"));
    free(out);
    cc_log_init("testapp", CC_LOG_DEBUG, 1);
}

static void test_log_long_message_truncated_but_valid(void **state)
{
    (void)state;
    char *big = malloc(20001), *out;
    cJSON *j, *t;

    assert_non_null(big);
    memset(big, '"', 20000); /* every byte doubles when escaped */
    big[20000] = '\0';
    capture_begin();
    cc_log_info("ev", "%s", big);
    out = capture_end();
    j = parse_one_line(out);
    t = cJSON_GetObjectItemCaseSensitive(j, "truncated");
    assert_true(cJSON_IsTrue(t));
    assert_true(strlen(str_field(j, "msg")) > 100);
    assert_true(strlen(str_field(j, "msg")) < 20000);
    assert_int_equal(strspn(str_field(j, "msg"), "\""), strlen(str_field(j, "msg")));
    cJSON_Delete(j);
    free(out);
    free(big);
}

static void test_log_truncation_keeps_utf8_whole(void **state)
{
    (void)state;
    char big[6001], *out;
    cJSON *j;
    const char *msg;

    /* 2000 three-byte characters: longer than the message limit */
    for (int i = 0; i < 2000; i++)
        memcpy(big + 3 * i, "\xe2\x82\xac", 3);
    big[6000] = '\0';
    capture_begin();
    cc_log_info("ev", "%s", big);
    out = capture_end();
    j = parse_one_line(out);
    msg = str_field(j, "msg");
    /* cut at a character boundary: only whole euro signs, no U+FFFD from a
     * character cut in half */
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "truncated")));
    assert_true(strlen(msg) > 300);
    assert_int_equal(strlen(msg) % 3, 0);
    for (size_t i = 0; i + 3 <= strlen(msg); i += 3)
        assert_memory_equal(msg + i, "\xe2\x82\xac", 3);
    cJSON_Delete(j);
    free(out);
}

static void test_log_text_mode(void **state)
{
    (void)state;
    char *out;

    cc_log_init("ingestd", CC_LOG_INFO, 0);
    capture_begin();
    cc_log_warn("db_busy", "retry \"%d\"\nFAKE LINE", 2);
    out = capture_end();
    cc_log_init("testapp", CC_LOG_DEBUG, 1);
    assert_int_equal(count_lines(out), 1);
    assert_int_equal(out[23], 'Z');
    assert_non_null(strstr(out, " WARN ingestd db_busy: retry \"2\"\\nFAKE LINE\n"));
    assert_null(strchr(out, '{'));
    free(out);
}

static void test_log_level_parse(void **state)
{
    (void)state;
    int lvl = -7;

    assert_int_equal(cc_log_level_parse("debug", &lvl), CC_OK);
    assert_int_equal(lvl, CC_LOG_DEBUG);
    assert_int_equal(cc_log_level_parse("info", &lvl), CC_OK);
    assert_int_equal(lvl, CC_LOG_INFO);
    assert_int_equal(cc_log_level_parse("warn", &lvl), CC_OK);
    assert_int_equal(lvl, CC_LOG_WARN);
    assert_int_equal(cc_log_level_parse("ERROR", &lvl), CC_OK);
    assert_int_equal(lvl, CC_LOG_ERROR);
    lvl = -7;
    assert_int_equal(cc_log_level_parse("", &lvl), CC_ERR_CONFIG);
    assert_int_equal(cc_log_level_parse("verbose", &lvl), CC_ERR_CONFIG);
    assert_int_equal(cc_log_level_parse("info ", &lvl), CC_ERR_CONFIG);
    assert_int_equal(cc_log_level_parse("inf", &lvl), CC_ERR_CONFIG);
    assert_int_equal(cc_log_level_parse(NULL, &lvl), CC_ERR_CONFIG);
    assert_int_equal(lvl, -7);
}

#define THREADS 8
#define LINES_PER_THREAD 200

static void *log_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[3000];

    /* long enough that lines exceed PIPE_BUF-ish sizes when escaped */
    memset(pad, 'a' + id, sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < LINES_PER_THREAD; i++)
        cc_log_info("ev", "t%d i%d %s", id, i, pad);
    return NULL;
}

static void test_log_threads_never_interleave(void **state)
{
    (void)state;
    pthread_t th[THREADS];
    char *out, *line, *save = NULL;
    int n = 0;

    capture_begin();
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, log_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    out = capture_end();
    assert_int_equal(count_lines(out), THREADS * LINES_PER_THREAD);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);

        if (j == NULL)
            fail_msg("line %d is not JSON", n);
        cJSON_Delete(j);
        n++;
    }
    assert_int_equal(n, THREADS * LINES_PER_THREAD);
    free(out);
}

static void test_log_quote_plain_and_escaped(void **state)
{
    char q[CC_LOG_QUOTED_MAX];

    (void)state;
    assert_string_equal(cc_log_quote("/api/devices", q, sizeof q), "\"/api/devices\"");
    assert_string_equal(cc_log_quote("GET", q, sizeof q), "\"GET\"");
    assert_string_equal(cc_log_quote("", q, sizeof q), "\"\"");
    assert_string_equal(cc_log_quote(NULL, q, sizeof q), "\"\"");
    assert_string_equal(cc_log_quote("a b=c", q, sizeof q), "\"a\\x20b\\x3dc\"");
    assert_string_equal(cc_log_quote("q\"\\", q, sizeof q), "\"q\\x22\\x5c\"");
    assert_string_equal(cc_log_quote("\n\r\t\x7f", q, sizeof q), "\"\\x0a\\x0d\\x09\\x7f\"");
    assert_string_equal(cc_log_quote("caf\xc3\xa9", q, sizeof q), "\"caf\\xc3\\xa9\"");
    /* The result is the buffer, so it can be a printf argument. */
    assert_ptr_equal(cc_log_quote("x", q, sizeof q), q);
    /* Too small a buffer gets an empty value, never an overflow. */
    assert_string_equal(cc_log_quote("abc", q, 7), "\"\"");
}

static void test_log_quote_truncates_inside_quotes(void **state)
{
    char q[CC_LOG_QUOTED_MAX], small[12], exact[8];
    char big[1000];

    (void)state;
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cc_log_quote(big, q, sizeof q);
    assert_int_equal(strlen(q), sizeof q - 1);
    assert_int_equal(q[0], '"');
    assert_memory_equal(q + strlen(q) - 4, "...\"", 4);
    /* An escape is never cut in half: in 12 bytes, 6 are left for "a==b": "a\x3d" fits,
     * the second \x3d does not. */
    assert_string_equal(cc_log_quote("a==b", small, sizeof small), "\"a\\x3d...\"");
    /* A value that fits exactly is not cut. */
    assert_string_equal(cc_log_quote("abcde", exact, sizeof exact), "\"abcde\"");
    assert_string_equal(cc_log_quote("abcdef", exact, sizeof exact), "\"ab...\"");
}

/* Counts key=value pairs named key in a request-log msg, the way a logfmt reader (or a
 * grep for " status=") sees them: quoted values are skipped whole. */
static int count_key(const char *msg, const char *key)
{
    size_t kl = strlen(key);
    int n = 0, in_q = 0;

    for (const char *p = msg; *p; p++) {
        if (in_q) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            else if (*p == '"')
                in_q = 0;
            continue;
        }
        if (*p == '"') {
            in_q = 1;
            continue;
        }
        if ((p == msg || p[-1] == ' ') && strncmp(p, key, kl) == 0 && p[kl] == '=')
            n++;
    }
    return n;
}

/* Issue 12 item 9: a path of "/api/nothing status=200 user=4 addr=10.9.9.9" logged the
 * way apid logs a request yields one status, one user and one addr, the real ones, and
 * neither a new line nor another pair. */
static void test_log_request_fields_cannot_be_forged(void **state)
{
    static const char *const paths[] = {
        "/api/nothing status=200 user=4 addr=10.9.9.9",
        "/api/x\" status=200 user=\"4",
        "/api/x\nstatus=200\r\n{\"event\":\"forged\"}",
        "/api/x\tstatus=200\\ user=4",
    };
    char qm[CC_LOG_QUOTED_MAX], qp[CC_LOG_QUOTED_MAX], qa[CC_LOG_QUOTED_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        cJSON *j;
        const char *msg;
        char *out;

        capture_begin();
        cc_log_info("http_request",
                    "method=%s path=%s status=%d duration_ms=%.3f user=%lld addr=%s",
                    cc_log_quote("GET", qm, sizeof qm), cc_log_quote(paths[i], qp, sizeof qp), 404,
                    0.5, 0LL, cc_log_quote("127.0.0.1", qa, sizeof qa));
        out = capture_end();
        j = parse_one_line(out);
        msg = str_field(j, "msg");
        if (count_key(msg, "status") != 1 || count_key(msg, "user") != 1 ||
            count_key(msg, "addr") != 1 || count_key(msg, "path") != 1)
            fail_msg("forged pair in %s", msg);
        /* Even a reader that ignores quoting finds the real values only. */
        assert_null(strstr(msg, "status=200"));
        assert_null(strstr(msg, "user=4"));
        assert_null(strstr(msg, "addr=10.9.9.9"));
        assert_non_null(strstr(msg, "status=404"));
        assert_null(strchr(msg, '\n'));
        assert_null(strchr(msg, '\r'));
        cJSON_Delete(j);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_log_json_fields, setup_json),
        cmocka_unit_test_setup(test_log_json_level_names, setup_json),
        cmocka_unit_test_setup(test_log_json_escapes_specials, setup_json),
        cmocka_unit_test_setup(test_log_json_escapes_event, setup_json),
        cmocka_unit_test_setup(test_log_json_keeps_valid_utf8, setup_json),
        cmocka_unit_test_setup(test_log_json_replaces_invalid_utf8, setup_json),
        cmocka_unit_test_setup(test_log_level_filter, setup_json),
        cmocka_unit_test_setup(test_log_long_message_truncated_but_valid, setup_json),
        cmocka_unit_test_setup(test_log_truncation_keeps_utf8_whole, setup_json),
        cmocka_unit_test_setup(test_log_text_mode, setup_json),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test_setup(test_log_threads_never_interleave, setup_json),
        cmocka_unit_test(test_log_quote_plain_and_escaped),
        cmocka_unit_test(test_log_quote_truncates_inside_quotes),
        cmocka_unit_test_setup(test_log_request_fields_cannot_be_forged, setup_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
