/* cc_journal.c - segmented append-only receive journal (see cc_journal.h). */
#include "cc_journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cc_log.h"
#include "cc_rc.h"

#define MAGIC "CCJ1"
#define REC_HEAD 8        /* u32 length + u32 crc */
#define BODY_FIXED 10     /* i64 received_at + u16 topic length */
#define MAX_SEGMENTS 4096 /* segments considered in one directory */

struct cc_journal {
    pthread_mutex_t mu;
    char dir[PATH_MAX];
    int fd;           /* current segment, opened for append */
    int64_t gen;      /* current segment's generation */
    int64_t size;     /* bytes in the current segment */
    int sync;         /* cc_journal_set_sync: segments are made durable too */
    int dirty;        /* appended since the last cc_journal_sync */
    int gen_unsynced; /* the current segment's directory entry is not yet durable */
    /* Staged records (cc_journal_stage): the staging thread's alone, never under mu. */
    unsigned char *stage;
    size_t staged;    /* bytes in stage */
    size_t stage_cap; /* bytes allocated */
};

/* The stage's first allocation: a read round of small readings fits without growing. */
#define STAGE_INITIAL (64 * 1024)

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* Running CRC: start with 0xFFFFFFFF, finish by inverting. */
static uint32_t crc_update(uint32_t c, const void *data, size_t n)
{
    const unsigned char *p = data;

    pthread_once(&crc_once, crc_init);
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c;
}

uint32_t cc_crc32(const void *data, size_t n)
{
    return crc_update(0xFFFFFFFFu, data, n) ^ 0xFFFFFFFFu;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_i64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(u >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t get_i64(const unsigned char *p)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = (u << 8) | p[i];
    return (int64_t)u;
}

static int seg_path(const struct cc_journal *j, int64_t gen, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/journal.%016" PRIx64, j->dir, (uint64_t)gen);
    return (n < 0 || (size_t)n >= outlen) ? CC_ERR_IO : CC_OK;
}

static int write_all(int fd, const struct iovec *iov, int cnt)
{
    struct iovec v[4];
    size_t total = 0;

    memcpy(v, iov, sizeof(v[0]) * (size_t)cnt);
    for (int i = 0; i < cnt; i++)
        total += v[i].iov_len;
    while (total > 0) {
        ssize_t w = writev(fd, v, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return CC_ERR_IO;
        }
        total -= (size_t)w;
        /* A short write: advance through the vector and write the rest. */
        while (cnt > 0 && (size_t)w >= v[0].iov_len) {
            w -= (ssize_t)v[0].iov_len;
            memmove(v, v + 1, sizeof(v[0]) * (size_t)(cnt - 1));
            cnt--;
        }
        if (cnt > 0) {
            v[0].iov_base = (char *)v[0].iov_base + w;
            v[0].iov_len -= (size_t)w;
        }
    }
    return CC_OK;
}

/* Lists segment generations in dir, sorted ascending. Caller frees *gens. */
static int list_segments(const char *dir, int64_t **gens, int *n)
{
    DIR *d = opendir(dir);
    int64_t *v = NULL;
    int cnt = 0;

    if (d == NULL)
        return CC_ERR_IO;
    v = malloc(sizeof(*v) * MAX_SEGMENTS);
    if (v == NULL) {
        closedir(d);
        return CC_ERR_NOMEM;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char *end = NULL;
        if (strncmp(e->d_name, "journal.", 8) != 0 || strlen(e->d_name) != 24)
            continue;
        errno = 0;
        unsigned long long g = strtoull(e->d_name + 8, &end, 16);
        if (errno != 0 || *end != '\0' || g > INT64_MAX)
            continue;
        if (cnt == MAX_SEGMENTS) {
            cc_log_error("journal_too_many_segments", "more than %d segments in %s", MAX_SEGMENTS,
                         dir);
            break;
        }
        v[cnt++] = (int64_t)g;
    }
    closedir(d);
    for (int a = 1; a < cnt; a++) /* insertion sort: a handful of segments */
        for (int b = a; b > 0 && v[b - 1] > v[b]; b--) {
            int64_t t = v[b];
            v[b] = v[b - 1];
            v[b - 1] = t;
        }
    *gens = v;
    *n = cnt;
    return CC_OK;
}

/* fsync of the journal directory: makes a new segment's name durable. */
static int sync_dir(struct cc_journal *j)
{
    int fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return CC_ERR_IO;
    rc = fsync(fd) == 0 ? CC_OK : CC_ERR_IO;
    close(fd);
    return rc;
}

/* Creates segment gen and makes it current. Lock held. */
static int open_segment(struct cc_journal *j, int64_t gen)
{
    char path[PATH_MAX + 32];
    unsigned char head[CC_JOURNAL_HEADER] = {0};
    struct iovec iov = {head, sizeof(head)};
    int fd;

    if (seg_path(j, gen, path, sizeof(path)) != CC_OK)
        return CC_ERR_IO;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        cc_log_error("journal_open_failed", "%s: %s", path, strerror(errno));
        return CC_ERR_IO;
    }
    memcpy(head, MAGIC, 4);
    put_i64(head + 8, gen);
    if (write_all(fd, &iov, 1) != CC_OK) {
        close(fd);
        return CC_ERR_IO;
    }
    if (j->fd >= 0) {
        /* In sync mode the records of the segment left behind were acknowledged on the
         * strength of a later cc_journal_sync, which only covers the new one: flush it
         * now, and the directory entry of the new one with it. */
        if (j->sync && (fdatasync(j->fd) != 0 || sync_dir(j) != CC_OK)) {
            cc_log_error("journal_sync_failed", "%s: %s", j->dir, strerror(errno));
            close(fd);
            return CC_ERR_IO;
        }
        close(j->fd);
    } else {
        j->gen_unsynced = 1; /* the first segment: cc_journal_sync makes its name durable */
    }
    j->fd = fd;
    j->gen = gen;
    j->size = CC_JOURNAL_HEADER;
    j->dirty = 1;
    return CC_OK;
}

int cc_journal_open(const char *dir, struct cc_journal **out)
{
    struct cc_journal *j = NULL;
    int64_t *gens = NULL;
    int n = 0, rc;

    if (strlen(dir) >= PATH_MAX - 32)
        return CC_ERR_IO;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        cc_log_error("journal_mkdir_failed", "%s: %s", dir, strerror(errno));
        return CC_ERR_IO;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        return CC_ERR_NOMEM;
    pthread_mutex_init(&j->mu, NULL);
    snprintf(j->dir, sizeof(j->dir), "%s", dir);
    j->fd = -1;
    rc = list_segments(dir, &gens, &n);
    if (rc != CC_OK)
        goto fail;
    /* New records go to a fresh segment: the old ones stay intact for replay. */
    rc = open_segment(j, n > 0 ? gens[n - 1] + 1 : 1);
    if (rc != CC_OK)
        goto fail;
    free(gens);
    *out = j;
    return CC_OK;
fail:
    free(gens);
    pthread_mutex_destroy(&j->mu);
    free(j);
    return rc;
}

void cc_journal_set_sync(struct cc_journal *j, int on)
{
    pthread_mutex_lock(&j->mu);
    j->sync = on;
    pthread_mutex_unlock(&j->mu);
}

int cc_journal_sync(struct cc_journal *j)
{
    int rc = CC_OK;

    pthread_mutex_lock(&j->mu);
    if (j->dirty) {
        if (fdatasync(j->fd) != 0 || (j->sync && j->gen_unsynced && sync_dir(j) != CC_OK)) {
            cc_log_error("journal_sync_failed", "%s/journal.%016" PRIx64 ": %s", j->dir,
                         (uint64_t)j->gen, strerror(errno));
            rc = CC_ERR_IO;
        } else {
            j->dirty = 0;
            j->gen_unsynced = 0;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

void cc_journal_close(struct cc_journal *j)
{
    if (j == NULL)
        return;
    if (j->fd >= 0)
        close(j->fd);
    pthread_mutex_destroy(&j->mu);
    free(j->stage);
    free(j);
}

/* The record head (length, CRC, received_at, topic length) of a record. */
static void record_head(unsigned char head[REC_HEAD + BODY_FIXED], int64_t received_at,
                        const char *topic, size_t topic_len, const void *payload, size_t len)
{
    uint32_t crc;

    put_i64(head + REC_HEAD, received_at);
    head[REC_HEAD + 8] = (unsigned char)(topic_len & 0xFF);
    head[REC_HEAD + 9] = (unsigned char)(topic_len >> 8);
    /* CRC over the body pieces, chained without copying them together. */
    crc = crc_update(0xFFFFFFFFu, head + REC_HEAD, BODY_FIXED);
    crc = crc_update(crc, topic, topic_len);
    crc = crc_update(crc, payload, len) ^ 0xFFFFFFFFu;
    put_u32(head, (uint32_t)(BODY_FIXED + topic_len + len));
    put_u32(head + 4, crc);
}

/* Writes whole records at the end of the current segment (a new one first if it is full);
 * *start receives where they begin. Lock held. On failure nothing is left in the file. */
static int write_records(struct cc_journal *j, const struct iovec *iov, int cnt, size_t bytes,
                         struct cc_journal_pos *start)
{
    int rc;

    if (j->size >= CC_JOURNAL_SEGMENT_MAX) {
        rc = open_segment(j, j->gen + 1);
        if (rc != CC_OK)
            return rc;
    }
    rc = write_all(j->fd, iov, cnt);
    if (rc != CC_OK) {
        int err = errno;
        cc_log_error("journal_write_failed", "%s/journal.%016" PRIx64 ": %s", j->dir,
                     (uint64_t)j->gen, strerror(err));
        /* A partial record may be on disk: cut it, so the next records are never behind
         * a torn one (replay stops there). Shrinking needs no space; if even that fails,
         * go on in a new segment. */
        if (ftruncate(j->fd, (off_t)j->size) != 0)
            open_segment(j, j->gen + 1);
        errno = err; /* for the caller: ENOSPC tells a full disk */
        return rc;
    }
    start->gen = j->gen;
    start->offset = j->size;
    j->size += (int64_t)bytes;
    j->dirty = 1;
    return CC_OK;
}

int cc_journal_append(struct cc_journal *j, int64_t received_at, const char *topic,
                      size_t topic_len, const void *payload, size_t len, struct cc_journal_pos *end)
{
    unsigned char head[REC_HEAD + BODY_FIXED];
    struct iovec iov[3];
    struct cc_journal_pos start;
    size_t body = BODY_FIXED + topic_len + len;
    int rc;

    if (topic_len > CC_JOURNAL_TOPIC_MAX || body > CC_JOURNAL_RECORD_MAX)
        return CC_ERR_VALIDATION;
    record_head(head, received_at, topic, topic_len, payload, len);
    iov[0].iov_base = head;
    iov[0].iov_len = sizeof(head);
    iov[1].iov_base = (void *)topic;
    iov[1].iov_len = topic_len;
    iov[2].iov_base = (void *)payload;
    iov[2].iov_len = len;

    pthread_mutex_lock(&j->mu);
    rc = write_records(j, iov, len > 0 ? 3 : 2, REC_HEAD + body, &start);
    if (rc == CC_OK) {
        end->gen = start.gen;
        end->offset = start.offset + (int64_t)(REC_HEAD + body);
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int cc_journal_stage(struct cc_journal *j, int64_t received_at, const char *topic, size_t topic_len,
                     const void *payload, size_t len, int64_t *rel_end)
{
    size_t body = BODY_FIXED + topic_len + len;
    size_t rec = REC_HEAD + body;
    unsigned char *p;

    if (topic_len > CC_JOURNAL_TOPIC_MAX || body > CC_JOURNAL_RECORD_MAX)
        return CC_ERR_VALIDATION;
    if (j->staged > 0 && j->staged + rec > CC_JOURNAL_STAGE_MAX)
        return CC_ERR_TOO_LARGE; /* write what is staged first */
    if (j->staged + rec > j->stage_cap) {
        size_t cap = j->stage_cap > 0 ? j->stage_cap : STAGE_INITIAL;
        while (cap < j->staged + rec)
            cap *= 2;
        p = realloc(j->stage, cap);
        if (p == NULL)
            return CC_ERR_NOMEM;
        j->stage = p;
        j->stage_cap = cap;
    }
    p = j->stage + j->staged;
    record_head(p, received_at, topic, topic_len, payload, len);
    memcpy(p + REC_HEAD + BODY_FIXED, topic, topic_len);
    if (len > 0)
        memcpy(p + REC_HEAD + BODY_FIXED + topic_len, payload, len);
    j->staged += rec;
    *rel_end = (int64_t)j->staged;
    return CC_OK;
}

size_t cc_journal_staged(const struct cc_journal *j)
{
    return j->staged;
}

/* After a write or a discard: a stage grown past its bound for one large record (the one
 * case cc_journal_stage lets it) is given back. */
static void stage_reset(struct cc_journal *j)
{
    j->staged = 0;
    if (j->stage_cap > CC_JOURNAL_STAGE_MAX) {
        free(j->stage);
        j->stage = NULL;
        j->stage_cap = 0;
    }
}

int cc_journal_write_staged(struct cc_journal *j, struct cc_journal_pos *base)
{
    struct iovec iov = {j->stage, j->staged};
    int rc = CC_OK;

    pthread_mutex_lock(&j->mu);
    if (j->staged == 0) {
        base->gen = j->gen;
        base->offset = j->size;
    } else {
        rc = write_records(j, &iov, 1, j->staged, base);
    }
    pthread_mutex_unlock(&j->mu);
    if (rc == CC_OK)
        stage_reset(j);
    return rc;
}

void cc_journal_discard_staged(struct cc_journal *j)
{
    stage_reset(j);
}

/* Replays one segment from offset `from`. */
static int replay_segment(struct cc_journal *j, int64_t gen, int64_t from, cc_journal_fn fn,
                          void *ctx)
{
    char path[PATH_MAX + 32];
    unsigned char head[CC_JOURNAL_HEADER];
    unsigned char *buf = NULL;
    FILE *f = NULL;
    int64_t off;
    int rc = CC_OK;

    if (seg_path(j, gen, path, sizeof(path)) != CC_OK)
        return CC_ERR_IO;
    f = fopen(path, "rb");
    if (f == NULL)
        return CC_ERR_IO;
    if (fread(head, 1, sizeof(head), f) != sizeof(head) || memcmp(head, MAGIC, 4) != 0 ||
        get_i64(head + 8) != gen) {
        cc_log_warn("journal_bad_header", "segment %s has no valid header: skipped", path);
        goto out;
    }
    off = from < CC_JOURNAL_HEADER ? CC_JOURNAL_HEADER : from;
    if (fseeko(f, (off_t)off, SEEK_SET) != 0) {
        rc = CC_ERR_IO;
        goto out;
    }
    buf = malloc(CC_JOURNAL_RECORD_MAX);
    if (buf == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        unsigned char rh[REC_HEAD];
        size_t got = fread(rh, 1, REC_HEAD, f);
        if (got == 0)
            break;
        uint32_t body = get_u32(rh);
        if (got < REC_HEAD || body < BODY_FIXED || body > CC_JOURNAL_RECORD_MAX ||
            fread(buf, 1, body, f) != body || cc_crc32(buf, body) != get_u32(rh + 4)) {
            cc_log_warn("journal_torn_record",
                        "segment %s: record at offset %lld is incomplete: end of segment", path,
                        (long long)off);
            break;
        }
        size_t tlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        if (BODY_FIXED + tlen > body) {
            cc_log_warn("journal_bad_record", "segment %s: bad topic length at %lld", path,
                        (long long)off);
            break;
        }
        off += REC_HEAD + body;
        struct cc_journal_pos end = {gen, off};
        rc = fn(ctx, get_i64(buf), (const char *)buf + BODY_FIXED, tlen, buf + BODY_FIXED + tlen,
                body - BODY_FIXED - tlen, end);
        if (rc != CC_OK)
            break;
    }
out:
    free(buf);
    fclose(f);
    return rc;
}

int cc_journal_replay(struct cc_journal *j, struct cc_journal_pos from, cc_journal_fn fn, void *ctx)
{
    int64_t *gens = NULL;
    int n = 0, rc;

    pthread_mutex_lock(&j->mu);
    rc = list_segments(j->dir, &gens, &n);
    pthread_mutex_unlock(&j->mu);
    if (rc != CC_OK)
        return rc;
    for (int i = 0; i < n && rc == CC_OK; i++) {
        if (gens[i] < from.gen || gens[i] >= j->gen)
            continue; /* consumed, or the live segment (replay covers older ones only) */
        rc = replay_segment(j, gens[i], gens[i] == from.gen ? from.offset : 0, fn, ctx);
    }
    free(gens);
    return rc;
}

int cc_journal_trim(struct cc_journal *j, struct cc_journal_pos committed)
{
    int64_t *gens = NULL;
    int n = 0, rc;

    pthread_mutex_lock(&j->mu);
    rc = list_segments(j->dir, &gens, &n);
    for (int i = 0; rc == CC_OK && i < n; i++) {
        char path[PATH_MAX + 32];
        if (gens[i] >= committed.gen || gens[i] >= j->gen)
            continue;
        if (seg_path(j, gens[i], path, sizeof(path)) == CC_OK && unlink(path) != 0 &&
            errno != ENOENT) {
            cc_log_error("journal_unlink_failed", "%s: %s", path, strerror(errno));
            rc = CC_ERR_IO;
        }
    }
    pthread_mutex_unlock(&j->mu);
    free(gens);
    return rc;
}

int cc_journal_trim_durable(struct cc_journal *j, struct cc_journal_pos committed,
                            int (*durable)(void *ctx), void *ctx)
{
    int64_t *gens = NULL;
    int n = 0, due = 0, rc;

    pthread_mutex_lock(&j->mu);
    rc = list_segments(j->dir, &gens, &n);
    for (int i = 0; rc == CC_OK && i < n; i++)
        due |= gens[i] < committed.gen && gens[i] < j->gen;
    pthread_mutex_unlock(&j->mu);
    free(gens);
    if (rc != CC_OK || !due)
        return rc;
    rc = durable(ctx);
    return rc == CC_OK ? cc_journal_trim(j, committed) : rc;
}

int cc_journal_segments(struct cc_journal *j)
{
    int64_t *gens = NULL;
    int n = 0;

    pthread_mutex_lock(&j->mu);
    if (list_segments(j->dir, &gens, &n) != CC_OK)
        n = -1;
    pthread_mutex_unlock(&j->mu);
    free(gens);
    return n;
}
