/* cc_kvlog.c - in-memory map backed by an append-only, checksummed log (cc_kvlog.h). */
#include "cc_kvlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cc_journal.h" /* cc_crc32 */
#include "cc_log.h"
#include "cc_rc.h"

#define BUCKETS 4096 /* hash buckets; Paho keeps about one entry per in-flight message */
#define OP_PUT 1
#define OP_DEL 2
#define OP_CLEAR 3
#define REC_HEAD 11 /* u32 length, u32 crc, u8 op, u16 key length */

struct entry {
    struct entry *next;
    char *key;
    char *val;
    size_t len;
};

struct cc_kvlog {
    pthread_mutex_t mu;
    char path[PATH_MAX];
    int fd;
    struct entry *b[BUCKETS];
    size_t count;
    size_t live_bytes; /* record bytes the live entries would need */
    size_t log_bytes;  /* bytes in the log file */
};

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % BUCKETS;
}

static struct entry **find(struct cc_kvlog *kv, const char *key)
{
    struct entry **pp = &kv->b[hash(key)];
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

static size_t rec_size(size_t klen, size_t vlen)
{
    return REC_HEAD + klen + vlen;
}

static void drop(struct cc_kvlog *kv, struct entry **pp)
{
    struct entry *e = *pp;
    *pp = e->next;
    kv->live_bytes -= rec_size(strlen(e->key), e->len);
    kv->count--;
    free(e->key);
    free(e->val);
    free(e);
}

static void drop_all(struct cc_kvlog *kv)
{
    for (int i = 0; i < BUCKETS; i++)
        while (kv->b[i])
            drop(kv, &kv->b[i]);
}

/* Sets key to val (taking ownership of val) in memory. */
static int mem_put(struct cc_kvlog *kv, const char *key, char *val, size_t len)
{
    struct entry **pp = find(kv, key);
    struct entry *e;

    if (*pp) {
        e = *pp;
        kv->live_bytes -= e->len;
        free(e->val);
        e->val = val;
        e->len = len;
        kv->live_bytes += len;
        return CC_OK;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL || (e->key = strdup(key)) == NULL) {
        free(e);
        free(val);
        return CC_ERR_NOMEM;
    }
    e->val = val;
    e->len = len;
    e->next = kv->b[hash(key)];
    kv->b[hash(key)] = e;
    kv->count++;
    kv->live_bytes += rec_size(strlen(key), len);
    return CC_OK;
}

static int write_rec(int fd, int op, const char *key, int n, char *const bufs[], const int lens[])
{
    unsigned char head[REC_HEAD];
    struct iovec iov[2 + 8];
    size_t klen = strlen(key), vlen = 0, total, done = 0;
    uint32_t crc;
    int cnt = 0;

    if (n > 8)
        return CC_ERR_VALIDATION;
    for (int i = 0; i < n; i++)
        vlen += (size_t)lens[i];
    total = 3 + klen + vlen; /* op, key length, key, value */
    head[8] = (unsigned char)op;
    head[9] = (unsigned char)(klen & 0xFF);
    head[10] = (unsigned char)(klen >> 8);
    {
        /* CRC of op..value: small records, so one scratch copy is cheap and simple. */
        unsigned char *tmp = malloc(total);
        if (tmp == NULL)
            return CC_ERR_NOMEM;
        memcpy(tmp, head + 8, 3);
        memcpy(tmp + 3, key, klen);
        for (int i = 0; i < n; i++) {
            memcpy(tmp + 3 + klen + done, bufs[i], (size_t)lens[i]);
            done += (size_t)lens[i];
        }
        crc = cc_crc32(tmp, total);
        free(tmp);
    }
    for (int i = 0; i < 4; i++) {
        head[i] = (unsigned char)(total >> (8 * i));
        head[4 + i] = (unsigned char)(crc >> (8 * i));
    }
    iov[cnt].iov_base = head;
    iov[cnt++].iov_len = REC_HEAD;
    iov[cnt].iov_base = (void *)key;
    iov[cnt++].iov_len = klen;
    for (int i = 0; i < n; i++) {
        iov[cnt].iov_base = bufs[i];
        iov[cnt++].iov_len = (size_t)lens[i];
    }
    size_t want = REC_HEAD + klen + vlen;
    ssize_t w;
    do {
        w = writev(fd, iov, cnt);
    } while (w < 0 && errno == EINTR);
    /* A short write to a regular file means the disk is full: report it; the torn
     * record fails its CRC on the next load and ends the log there. */
    if (w < 0 || (size_t)w != want)
        return CC_ERR_IO;
    return CC_OK;
}

static int load(struct cc_kvlog *kv)
{
    FILE *f = fopen(kv->path, "rb");
    unsigned char head[REC_HEAD];
    char *buf = NULL;
    size_t off = 0;
    int rc = CC_OK;

    if (f == NULL)
        return errno == ENOENT ? CC_OK : CC_ERR_IO;
    buf = malloc(3 + CC_KVLOG_KEY_MAX + CC_KVLOG_VALUE_MAX);
    if (buf == NULL) {
        fclose(f);
        return CC_ERR_NOMEM;
    }
    while (fread(head, 1, 8, f) == 8) {
        uint32_t total = 0, crc = 0;
        for (int i = 3; i >= 0; i--) {
            total = (total << 8) | head[i];
            crc = (crc << 8) | head[4 + i];
        }
        if (total < 3 || total > 3 + CC_KVLOG_KEY_MAX + CC_KVLOG_VALUE_MAX ||
            fread(buf, 1, total, f) != total || cc_crc32(buf, total) != crc)
            break; /* torn tail: a crash in the middle of a write */
        int op = (unsigned char)buf[0];
        size_t klen = (size_t)(unsigned char)buf[1] | (size_t)(unsigned char)buf[2] << 8;
        if (klen > CC_KVLOG_KEY_MAX || 3 + klen > total)
            break;
        char key[CC_KVLOG_KEY_MAX + 1];
        memcpy(key, buf + 3, klen);
        key[klen] = '\0';
        size_t vlen = total - 3 - klen;
        if (op == OP_PUT) {
            char *val = malloc(vlen ? vlen : 1);
            if (val == NULL) {
                rc = CC_ERR_NOMEM;
                break;
            }
            memcpy(val, buf + 3 + klen, vlen);
            if ((rc = mem_put(kv, key, val, vlen)) != CC_OK)
                break;
        } else if (op == OP_DEL) {
            struct entry **pp = find(kv, key);
            if (*pp)
                drop(kv, pp);
        } else if (op == OP_CLEAR) {
            drop_all(kv);
        } else {
            break;
        }
        off += 8 + total;
    }
    free(buf);
    fclose(f);
    kv->log_bytes = off;
    /* Cut a torn tail so new records are not appended behind garbage. */
    if (rc == CC_OK && truncate(kv->path, (off_t)off) != 0 && errno != ENOENT)
        rc = CC_ERR_IO;
    return rc;
}

/* Rewrites the log with only the live entries. Lock held. */
static int compact(struct cc_kvlog *kv)
{
    char tmp[PATH_MAX + 8];
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.tmp", kv->path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return CC_ERR_IO;
    for (int i = 0; i < BUCKETS; i++)
        for (struct entry *e = kv->b[i]; e; e = e->next) {
            char *bufs[1] = {e->val};
            int lens[1] = {(int)e->len};
            if (write_rec(fd, OP_PUT, e->key, 1, bufs, lens) != CC_OK) {
                close(fd);
                unlink(tmp);
                return CC_ERR_IO;
            }
        }
    if (rename(tmp, kv->path) != 0) {
        close(fd);
        unlink(tmp);
        return CC_ERR_IO;
    }
    close(kv->fd);
    kv->fd = open(kv->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    close(fd);
    if (kv->fd < 0)
        return CC_ERR_IO;
    kv->log_bytes = kv->live_bytes;
    return CC_OK;
}

static void maybe_compact(struct cc_kvlog *kv)
{
    if (kv->log_bytes > CC_KVLOG_COMPACT_MIN && kv->log_bytes > 4 * kv->live_bytes &&
        compact(kv) != CC_OK)
        cc_log_warn("kvlog_compact_failed", "%s: %s", kv->path, strerror(errno));
}

int cc_kvlog_open(const char *path, struct cc_kvlog **out)
{
    struct cc_kvlog *kv;
    int rc;

    if (strlen(path) >= PATH_MAX - 8)
        return CC_ERR_IO;
    kv = calloc(1, sizeof(*kv));
    if (kv == NULL)
        return CC_ERR_NOMEM;
    pthread_mutex_init(&kv->mu, NULL);
    snprintf(kv->path, sizeof(kv->path), "%s", path);
    rc = load(kv);
    if (rc == CC_OK) {
        kv->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (kv->fd < 0)
            rc = CC_ERR_IO;
    }
    if (rc != CC_OK) {
        cc_log_error("kvlog_open_failed", "%s: %s", path, strerror(errno));
        drop_all(kv);
        pthread_mutex_destroy(&kv->mu);
        free(kv);
        return rc;
    }
    *out = kv;
    return CC_OK;
}

void cc_kvlog_close(struct cc_kvlog *kv)
{
    if (kv == NULL)
        return;
    drop_all(kv);
    if (kv->fd >= 0)
        close(kv->fd);
    pthread_mutex_destroy(&kv->mu);
    free(kv);
}

int cc_kvlog_put(struct cc_kvlog *kv, const char *key, int n, char *const bufs[], const int lens[])
{
    size_t klen = strlen(key), vlen = 0, done = 0;
    char *val;
    int rc;

    if (klen > CC_KVLOG_KEY_MAX || n < 0)
        return CC_ERR_VALIDATION;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 0)
            return CC_ERR_VALIDATION;
        vlen += (size_t)lens[i];
    }
    if (vlen > CC_KVLOG_VALUE_MAX)
        return CC_ERR_VALIDATION;
    val = malloc(vlen ? vlen : 1);
    if (val == NULL)
        return CC_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        memcpy(val + done, bufs[i], (size_t)lens[i]);
        done += (size_t)lens[i];
    }
    pthread_mutex_lock(&kv->mu);
    rc = write_rec(kv->fd, OP_PUT, key, n, bufs, lens);
    if (rc == CC_OK) {
        kv->log_bytes += rec_size(klen, vlen);
        rc = mem_put(kv, key, val, vlen);
    } else {
        free(val);
    }
    pthread_mutex_unlock(&kv->mu);
    return rc;
}

int cc_kvlog_get(struct cc_kvlog *kv, const char *key, char **val, int *len)
{
    int rc = CC_ERR_NOT_FOUND;

    pthread_mutex_lock(&kv->mu);
    struct entry *e = *find(kv, key);
    if (e) {
        char *copy = malloc(e->len ? e->len : 1);
        if (copy == NULL) {
            rc = CC_ERR_NOMEM;
        } else {
            memcpy(copy, e->val, e->len);
            *val = copy;
            *len = (int)e->len;
            rc = CC_OK;
        }
    }
    pthread_mutex_unlock(&kv->mu);
    return rc;
}

int cc_kvlog_remove(struct cc_kvlog *kv, const char *key)
{
    int rc = CC_ERR_NOT_FOUND;

    pthread_mutex_lock(&kv->mu);
    struct entry **pp = find(kv, key);
    if (*pp) {
        rc = write_rec(kv->fd, OP_DEL, key, 0, NULL, NULL);
        if (rc == CC_OK) {
            kv->log_bytes += rec_size(strlen(key), 0);
            drop(kv, pp);
            maybe_compact(kv);
        }
    }
    pthread_mutex_unlock(&kv->mu);
    return rc;
}

int cc_kvlog_contains(struct cc_kvlog *kv, const char *key)
{
    pthread_mutex_lock(&kv->mu);
    int found = *find(kv, key) != NULL;
    pthread_mutex_unlock(&kv->mu);
    return found;
}

int cc_kvlog_keys(struct cc_kvlog *kv, char ***keys, int *n)
{
    char **v = NULL;
    int cnt = 0;

    pthread_mutex_lock(&kv->mu);
    if (kv->count > 0) {
        v = calloc(kv->count, sizeof(*v));
        if (v == NULL)
            goto nomem;
        for (int i = 0; i < BUCKETS; i++)
            for (struct entry *e = kv->b[i]; e; e = e->next) {
                if ((v[cnt] = strdup(e->key)) == NULL)
                    goto nomem;
                cnt++;
            }
    }
    pthread_mutex_unlock(&kv->mu);
    *keys = v;
    *n = cnt;
    return CC_OK;
nomem:
    pthread_mutex_unlock(&kv->mu);
    for (int i = 0; v && i < cnt; i++)
        free(v[i]);
    free(v);
    return CC_ERR_NOMEM;
}

int cc_kvlog_clear(struct cc_kvlog *kv)
{
    int rc;

    pthread_mutex_lock(&kv->mu);
    rc = write_rec(kv->fd, OP_CLEAR, "", 0, NULL, NULL);
    if (rc == CC_OK) {
        drop_all(kv);
        kv->log_bytes += rec_size(0, 0);
        maybe_compact(kv);
    }
    pthread_mutex_unlock(&kv->mu);
    return rc;
}

size_t cc_kvlog_count(struct cc_kvlog *kv)
{
    pthread_mutex_lock(&kv->mu);
    size_t n = kv->count;
    pthread_mutex_unlock(&kv->mu);
    return n;
}
