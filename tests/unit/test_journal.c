/* test_journal.c - the receive journal: append, replay from a position, torn tails,
 * segments and trimming; and ingestd's parser of stored PUBLISH packets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_journal.h"
#include "cc_rc.h"
/* The parser of an older ingestd's Paho store lives in ingestd. */
#include "../../ingestd/paho_legacy.c"

struct seen {
    int n;
    char topics[16][64];
    char payloads[16][64];
    int64_t received[16];
    struct cc_journal_pos last;
};

static int collect(void *ctx, int64_t received_at, const char *topic, size_t topic_len,
                   const void *payload, size_t len, struct cc_journal_pos end)
{
    struct seen *s = ctx;
    if (s->n < 16) {
        snprintf(s->topics[s->n], 64, "%.*s", (int)topic_len, topic);
        snprintf(s->payloads[s->n], 64, "%.*s", (int)len, (const char *)payload);
        s->received[s->n] = received_at;
    }
    s->n++;
    s->last = end;
    return CC_OK;
}

static void tmpdir(char *out, size_t n)
{
    snprintf(out, n, "/tmp/cc-journal-XXXXXX");
    assert_non_null(mkdtemp(out));
}

static void rmdir_all(const char *dir)
{
    DIR *d = opendir(dir);
    char path[512];
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void append(struct cc_journal *j, const char *topic, const char *payload, int64_t at,
                   struct cc_journal_pos *pos)
{
    assert_int_equal(cc_journal_append(j, at, topic, strlen(topic), payload, strlen(payload), pos),
                     CC_OK);
}

static void test_journal_replays_what_was_not_committed(void **state)
{
    (void)state;
    char dir[64];
    struct cc_journal *j = NULL;
    struct cc_journal_pos p1, p2, p3, zero = {0, 0};
    struct seen s;

    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    append(j, "devices/A/readings", "{\"temperature\":1}", 100, &p1);
    append(j, "devices/B/readings", "{\"temperature\":2}", 200, &p2);
    append(j, "devices/A/status", "", 300, &p3);
    assert_true(p1.gen == p2.gen && p1.offset < p2.offset && p2.offset < p3.offset);
    cc_journal_close(j);

    /* A restart: records of the old segment are replayed, from the committed position. */
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cc_journal_replay(j, zero, collect, &s), CC_OK);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.topics[1], "devices/B/readings");
    assert_string_equal(s.payloads[1], "{\"temperature\":2}");
    assert_int_equal(s.received[2], 300);
    assert_string_equal(s.payloads[2], "");
    assert_true(s.last.gen == p3.gen && s.last.offset == p3.offset);

    memset(&s, 0, sizeof(s));
    assert_int_equal(cc_journal_replay(j, p1, collect, &s), CC_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.topics[0], "devices/B/readings");

    memset(&s, 0, sizeof(s));
    assert_int_equal(cc_journal_replay(j, p3, collect, &s), CC_OK);
    assert_int_equal(s.n, 0);
    cc_journal_close(j);
    rmdir_all(dir);
}

/* INGEST_FSYNC: syncs succeed (and leave every record replayable); a sync with nothing
 * appended since the last one is a no-op. */
static void test_journal_sync(void **state)
{
    (void)state;
    char dir[64];
    struct cc_journal *j = NULL;
    struct cc_journal_pos p;

    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    assert_int_equal(cc_journal_sync(j), CC_OK); /* nothing appended yet */
    cc_journal_set_sync(j, 1);
    append(j, "devices/A/readings", "{\"temperature\":1}", 100, &p);
    assert_int_equal(cc_journal_sync(j), CC_OK);
    assert_int_equal(cc_journal_sync(j), CC_OK); /* clean: no-op */
    append(j, "devices/A/readings", "{\"temperature\":2}", 200, &p);
    assert_int_equal(cc_journal_sync(j), CC_OK);
    cc_journal_close(j);
    {
        struct cc_journal_pos zero = {0, 0};
        struct seen s;

        assert_int_equal(cc_journal_open(dir, &j), CC_OK);
        memset(&s, 0, sizeof(s));
        assert_int_equal(cc_journal_replay(j, zero, collect, &s), CC_OK);
        assert_int_equal(s.n, 2);
        cc_journal_close(j);
    }
    rmdir_all(dir);
}

static void test_journal_torn_tail_ends_replay(void **state)
{
    (void)state;
    char dir[64], path[128];
    struct cc_journal *j = NULL;
    struct cc_journal_pos p1, p2, zero = {0, 0};
    struct seen s;
    struct stat stt;

    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    append(j, "devices/A/readings", "{\"temperature\":1}", 1, &p1);
    append(j, "devices/A/readings", "{\"temperature\":2}", 2, &p2);
    cc_journal_close(j);
    /* Cut the last record in half, as a crash in the middle of write(2) would. */
    snprintf(path, sizeof(path), "%s/journal.%016llx", dir, (unsigned long long)p1.gen);
    assert_int_equal(stat(path, &stt), 0);
    assert_int_equal(truncate(path, stt.st_size - 5), 0);
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cc_journal_replay(j, zero, collect, &s), CC_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.payloads[0], "{\"temperature\":1}");
    cc_journal_close(j);
    rmdir_all(dir);
}

/* A write cut short (a full disk; here the file size limit) leaves no torn record: the
 * record is cut off again, the caller sees the errno, and the next records are appended
 * to the same segment where replay reaches them. */
static void test_journal_failed_append_leaves_no_torn_record(void **state)
{
    (void)state;
    char dir[64], path[128], big[200];
    struct cc_journal *j = NULL;
    struct cc_journal_pos p1, p2, p3, zero = {0, 0};
    struct rlimit old, lim;
    struct seen s;
    struct stat stt;
    int rc, err;

    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    append(j, "devices/A/readings", "{\"temperature\":1}", 1, &p1);
    snprintf(path, sizeof(path), "%s/journal.%016llx", dir, (unsigned long long)p1.gen);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)p1.offset + 40; /* room for part of the next record only */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = cc_journal_append(j, 2, "devices/A/readings", 18, big, strlen(big), &p2);
    err = errno;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(rc, CC_ERR_IO);
    assert_int_equal(err, EFBIG);
    assert_int_equal(stat(path, &stt), 0);
    assert_int_equal(stt.st_size, p1.offset); /* the partial record is gone */
    assert_int_equal(cc_journal_segments(j), 1);
    append(j, "devices/A/readings", "{\"temperature\":3}", 3, &p3);
    assert_int_equal(p3.gen, p1.gen);
    cc_journal_close(j);

    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cc_journal_replay(j, zero, collect, &s), CC_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.payloads[1], "{\"temperature\":3}");
    cc_journal_close(j);
    rmdir_all(dir);
}

static int64_t file_size(const char *dir, int64_t gen)
{
    char path[128];
    struct stat stt;

    snprintf(path, sizeof(path), "%s/journal.%016llx", dir, (unsigned long long)gen);
    assert_int_equal(stat(path, &stt), 0);
    return (int64_t)stt.st_size;
}

static void stage(struct cc_journal *j, const char *topic, const char *payload, int64_t at,
                  int64_t *rel)
{
    assert_int_equal(cc_journal_stage(j, at, topic, strlen(topic), payload, strlen(payload), rel),
                     CC_OK);
}

/* A read round: staged records are in memory only (the file does not grow) until one
 * write puts them all in the file; each ends at base + its rel_end, the positions an
 * append would have given, and replay returns them in order. */
static void test_journal_stage_writes_a_round_at_once(void **state)
{
    (void)state;
    char dir[64];
    struct cc_journal *j = NULL;
    struct cc_journal_pos p0, base, p4, zero = {0, 0};
    int64_t r1, r2, r3;
    struct seen s;

    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    append(j, "devices/A/readings", "{\"temperature\":0}", 10, &p0);
    stage(j, "devices/A/readings", "{\"temperature\":1}", 11, &r1);
    stage(j, "devices/B/readings", "{\"temperature\":2}", 12, &r2);
    stage(j, "devices/A/status", "", 13, &r3);
    assert_true(0 < r1 && r1 < r2 && r2 < r3);
    assert_int_equal(cc_journal_staged(j), (size_t)r3);
    assert_int_equal(file_size(dir, p0.gen), p0.offset); /* nothing written yet */
    assert_int_equal(cc_journal_write_staged(j, &base), CC_OK);
    assert_true(base.gen == p0.gen && base.offset == p0.offset);
    assert_int_equal(cc_journal_staged(j), 0);
    assert_int_equal(file_size(dir, p0.gen), p0.offset + r3);
    /* An append goes on after the round, as it would after three appends. */
    append(j, "devices/C/readings", "{\"temperature\":4}", 14, &p4);
    assert_true(p4.offset > base.offset + r3);
    /* Writing an empty stage writes nothing. */
    assert_int_equal(cc_journal_write_staged(j, &base), CC_OK);
    assert_int_equal(file_size(dir, p0.gen), p4.offset);
    cc_journal_close(j);

    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cc_journal_replay(j, p0, collect, &s), CC_OK);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.topics[1], "devices/B/readings");
    assert_string_equal(s.payloads[1], "{\"temperature\":2}");
    assert_int_equal(s.received[2], 13);
    assert_string_equal(s.payloads[2], "");
    assert_int_equal(s.received[3], 14);
    /* Replay from the second staged record's end: the rest only. */
    memset(&s, 0, sizeof(s));
    {
        struct cc_journal_pos from = {p0.gen, p0.offset + r2};
        assert_int_equal(cc_journal_replay(j, from, collect, &s), CC_OK);
    }
    assert_int_equal(s.n, 2);
    assert_string_equal(s.topics[0], "devices/A/status");
    memset(&s, 0, sizeof(s));
    assert_int_equal(cc_journal_replay(j, zero, collect, &s), CC_OK);
    assert_int_equal(s.n, 5);
    cc_journal_close(j);
    rmdir_all(dir);
}

/* The stage holds at most CC_JOURNAL_STAGE_MAX bytes: the record that would pass it is
 * refused (CC_ERR_TOO_LARGE) and not staged; an empty stage takes one record larger than
 * that; a discarded stage leaves nothing in the file. */
static void test_journal_stage_is_bounded(void **state)
{
    (void)state;
    char dir[64], payload[1000];
    struct cc_journal *j = NULL;
    struct cc_journal_pos base, zero = {0, 0};
    int64_t rel = 0, last = 0;
    size_t before;
    int n = 0, rc;
    struct seen s;
    char *big = malloc(CC_JOURNAL_STAGE_MAX + 100);

    assert_non_null(big);
    memset(payload, 'p', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    memset(big, 'b', CC_JOURNAL_STAGE_MAX + 99);
    big[CC_JOURNAL_STAGE_MAX + 99] = '\0';
    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    while ((rc = cc_journal_stage(j, 1, "t", 1, payload, strlen(payload), &rel)) == CC_OK) {
        last = rel;
        n++;
        assert_true(n <= CC_JOURNAL_STAGE_MAX / 1000 + 1);
    }
    assert_int_equal(rc, CC_ERR_TOO_LARGE);
    assert_true(n >= CC_JOURNAL_STAGE_MAX / 1100);
    before = cc_journal_staged(j);
    assert_int_equal(before, (size_t)last); /* the refused record was not staged */
    assert_true(before <= CC_JOURNAL_STAGE_MAX);
    cc_journal_discard_staged(j);
    assert_int_equal(cc_journal_staged(j), 0);
    assert_int_equal(cc_journal_write_staged(j, &base), CC_OK);
    assert_int_equal(file_size(dir, base.gen), CC_JOURNAL_HEADER); /* nothing written */
    /* An empty stage takes a record larger than its bound, alone. */
    assert_int_equal(cc_journal_stage(j, 2, "t", 1, big, strlen(big), &rel), CC_OK);
    assert_int_equal(cc_journal_stage(j, 3, "t", 1, "x", 1, &rel), CC_ERR_TOO_LARGE);
    assert_int_equal(cc_journal_write_staged(j, &base), CC_OK);
    stage(j, "t", "after", 4, &rel);
    assert_int_equal(cc_journal_write_staged(j, &base), CC_OK);
    cc_journal_close(j);
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cc_journal_replay(j, zero, collect, &s), CC_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.received[0], 2);
    assert_string_equal(s.payloads[1], "after");
    cc_journal_close(j);
    free(big);
    rmdir_all(dir);
}

/* A round's write cut short (a full disk; here the file size limit): nothing of it stays in
 * the file, the records stay staged, and the next try writes them all where replay finds
 * them. */
static void test_journal_failed_stage_write_keeps_the_round(void **state)
{
    (void)state;
    char dir[64], big[200];
    struct cc_journal *j = NULL;
    struct cc_journal_pos p0, base, zero = {0, 0};
    struct rlimit old, lim;
    int64_t r1, r2;
    struct seen s;
    int rc, err;

    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    append(j, "devices/A/readings", "{\"temperature\":0}", 1, &p0);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    stage(j, "devices/A/readings", big, 2, &r1);
    stage(j, "devices/A/readings", "{\"temperature\":3}", 3, &r2);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)p0.offset + 100; /* room for part of the round only */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = cc_journal_write_staged(j, &base);
    err = errno;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(rc, CC_ERR_IO);
    assert_int_equal(err, EFBIG);
    assert_int_equal(file_size(dir, p0.gen), p0.offset); /* the partial round is gone */
    assert_int_equal(cc_journal_staged(j), (size_t)r2);  /* and still staged */
    assert_int_equal(cc_journal_write_staged(j, &base), CC_OK);
    assert_true(base.gen == p0.gen && base.offset == p0.offset);
    cc_journal_close(j);

    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cc_journal_replay(j, zero, collect, &s), CC_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.received[1], 2);
    assert_string_equal(s.payloads[2], "{\"temperature\":3}");
    assert_true(s.last.gen == base.gen && s.last.offset == base.offset + r2);
    cc_journal_close(j);
    rmdir_all(dir);
}

static void test_journal_corrupt_byte_fails_crc(void **state)
{
    (void)state;
    char dir[64], path[128];
    struct cc_journal *j = NULL;
    struct cc_journal_pos p1, p2, zero = {0, 0};
    struct seen s;
    int fd;

    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    append(j, "devices/A/readings", "{\"temperature\":1}", 1, &p1);
    append(j, "devices/A/readings", "{\"temperature\":2}", 2, &p2);
    cc_journal_close(j);
    snprintf(path, sizeof(path), "%s/journal.%016llx", dir, (unsigned long long)p1.gen);
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, p2.offset - 2), 1);
    close(fd);
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cc_journal_replay(j, zero, collect, &s), CC_OK);
    assert_int_equal(s.n, 1);
    cc_journal_close(j);
    rmdir_all(dir);
}

static void test_journal_trim_removes_committed_segments(void **state)
{
    (void)state;
    char dir[64];
    struct cc_journal *j = NULL;
    struct cc_journal_pos p1, p2;

    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    append(j, "t", "a", 1, &p1);
    cc_journal_close(j);
    assert_int_equal(cc_journal_open(dir, &j), CC_OK); /* segment 2 is live */
    append(j, "t", "b", 2, &p2);
    assert_true(p2.gen == p1.gen + 1);
    assert_int_equal(cc_journal_segments(j), 2);
    /* Committed inside segment 1: nothing to delete yet. */
    assert_int_equal(cc_journal_trim(j, p1), CC_OK);
    assert_int_equal(cc_journal_segments(j), 2);
    /* Committed into segment 2: segment 1 is wholly in the database. */
    assert_int_equal(cc_journal_trim(j, p2), CC_OK);
    assert_int_equal(cc_journal_segments(j), 1);
    cc_journal_close(j);
    rmdir_all(dir);
}

struct durable_probe {
    struct cc_journal *j;
    int calls, segments_seen, rc;
};

static int durable_probe(void *ctx)
{
    struct durable_probe *p = ctx;

    p->calls++;
    p->segments_seen = cc_journal_segments(p->j); /* nothing deleted before the sync */
    return p->rc;
}

/* A segment goes only after the database said its commits are durable; a failed sync
 * deletes nothing, and no sync is asked for while nothing is due. */
static void test_journal_trim_durable_syncs_first(void **state)
{
    (void)state;
    char dir[64];
    struct cc_journal *j = NULL;
    struct cc_journal_pos p1, p2;
    struct durable_probe probe = {0};

    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    append(j, "t", "a", 1, &p1);
    cc_journal_close(j);
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    append(j, "t", "b", 2, &p2);
    probe.j = j;
    assert_int_equal(cc_journal_trim_durable(j, p1, durable_probe, &probe), CC_OK);
    assert_int_equal(probe.calls, 0);
    probe.rc = CC_ERR_IO;
    assert_int_equal(cc_journal_trim_durable(j, p2, durable_probe, &probe), CC_ERR_IO);
    assert_int_equal(probe.calls, 1);
    assert_int_equal(cc_journal_segments(j), 2);
    probe.rc = CC_OK;
    assert_int_equal(cc_journal_trim_durable(j, p2, durable_probe, &probe), CC_OK);
    assert_int_equal(probe.calls, 2);
    assert_int_equal(probe.segments_seen, 2);
    assert_int_equal(cc_journal_segments(j), 1);
    assert_int_equal(cc_journal_trim_durable(j, p2, durable_probe, &probe), CC_OK);
    assert_int_equal(probe.calls, 2);
    cc_journal_close(j);
    rmdir_all(dir);
}

static void test_journal_refuses_oversized_record(void **state)
{
    (void)state;
    char dir[64];
    struct cc_journal *j = NULL;
    struct cc_journal_pos p;
    char *big = calloc(1, CC_JOURNAL_RECORD_MAX + 1);

    assert_non_null(big);
    tmpdir(dir, sizeof(dir));
    assert_int_equal(cc_journal_open(dir, &j), CC_OK);
    assert_int_equal(cc_journal_append(j, 1, "t", 1, big, CC_JOURNAL_RECORD_MAX, &p),
                     CC_ERR_VALIDATION);
    free(big);
    cc_journal_close(j);
    rmdir_all(dir);
}

static void test_journal_crc32_known_value(void **state)
{
    (void)state;
    /* The standard check value of CRC-32/IEEE. */
    assert_int_equal(cc_crc32("123456789", 9), 0xCBF43926u);
}

static void test_paho_legacy_parses_publish_packet(void **state)
{
    (void)state;
    /* PUBLISH QoS 2: topic "a/b", packet id 7, payload "{}" */
    const char pkt[] = {0x34, 9, 0, 3, 'a', '/', 'b', 0, 7, '{', '}'};
    struct ingest_publish p;

    assert_int_equal(ingest_parse_publish(pkt, sizeof(pkt), &p), CC_OK);
    assert_int_equal(p.topic_len, 3);
    assert_memory_equal(p.topic, "a/b", 3);
    assert_int_equal(p.len, 2);
    assert_memory_equal(p.payload, "{}", 2);
}

static void test_paho_legacy_rejects_bad_packets(void **state)
{
    (void)state;
    const char not_publish[] = {0x20, 2, 0, 0};
    const char short_len[] = {0x34, 20, 0, 3, 'a', '/', 'b'};
    const char topic_overrun[] = {0x34, 4, 0, 9, 'a', 'b'};
    const char no_packet_id[] = {0x34, 5, 0, 3, 'a', '/', 'b'};
    struct ingest_publish p;

    assert_int_equal(ingest_parse_publish(not_publish, sizeof(not_publish), &p), CC_ERR_VALIDATION);
    assert_int_equal(ingest_parse_publish(short_len, sizeof(short_len), &p), CC_ERR_VALIDATION);
    assert_int_equal(ingest_parse_publish(topic_overrun, sizeof(topic_overrun), &p),
                     CC_ERR_VALIDATION);
    assert_int_equal(ingest_parse_publish(no_packet_id, sizeof(no_packet_id), &p),
                     CC_ERR_VALIDATION);
    assert_int_equal(ingest_parse_publish(not_publish, 1, &p), CC_ERR_VALIDATION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_replays_what_was_not_committed),
        cmocka_unit_test(test_journal_torn_tail_ends_replay),
        cmocka_unit_test(test_journal_failed_append_leaves_no_torn_record),
        cmocka_unit_test(test_journal_corrupt_byte_fails_crc),
        cmocka_unit_test(test_journal_trim_removes_committed_segments),
        cmocka_unit_test(test_journal_trim_durable_syncs_first),
        cmocka_unit_test(test_journal_refuses_oversized_record),
        cmocka_unit_test(test_journal_crc32_known_value),
        cmocka_unit_test(test_journal_sync),
        cmocka_unit_test(test_journal_stage_writes_a_round_at_once),
        cmocka_unit_test(test_journal_stage_is_bounded),
        cmocka_unit_test(test_journal_failed_stage_write_keeps_the_round),
        cmocka_unit_test(test_paho_legacy_parses_publish_packet),
        cmocka_unit_test(test_paho_legacy_rejects_bad_packets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
