/* disk.c - reserve file and full state of ingestd's disk (see disk.h). */
#include "disk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"

struct ingest_disk {
    pthread_mutex_t mu;
    pthread_cond_t space;
    char dir[PATH_MAX];
    char path[PATH_MAX];
    int full;
    int have_reserve;
    int64_t entered_ms; /* monotonic: when the full state began */
    int64_t polled_ms;
    int64_t reminded_ms;
};

/* Creates (or re-creates) the reserve file. Lock held or not yet shared. */
static int make_reserve(struct ingest_disk *g)
{
    int fd = open(g->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    int err;

    if (fd < 0)
        return errno;
    err = posix_fallocate(fd, 0, INGEST_DISK_RESERVE);
    if (err != 0 && ftruncate(fd, 0) != 0)
        err = errno;
    close(fd);
    if (err != 0) {
        unlink(g->path);
        return err;
    }
    g->have_reserve = 1;
    return 0;
}

static int64_t free_bytes(const char *dir)
{
    struct statvfs v;

    if (statvfs(dir, &v) != 0)
        return -1;
    return (int64_t)v.f_bavail * (int64_t)v.f_frsize;
}

int ingest_disk_open(const char *dir, const char *name, struct ingest_disk **out)
{
    struct ingest_disk *g = calloc(1, sizeof(*g));
    int err;

    if (g == NULL)
        return CC_ERR_NOMEM;
    if (snprintf(g->dir, sizeof(g->dir), "%s", dir) >= (int)sizeof(g->dir) ||
        snprintf(g->path, sizeof(g->path), "%s/%s.reserve", dir, name) >= (int)sizeof(g->path)) {
        free(g);
        return CC_ERR_IO;
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->space, NULL);
    err = make_reserve(g);
    if (err != 0)
        cc_log_warn("disk_reserve_failed",
                    "%s: %s; a full disk may leave messages Paho acknowledged in memory only",
                    g->path, strerror(err));
    *out = g;
    return CC_OK;
}

void ingest_disk_close(struct ingest_disk *g)
{
    if (g == NULL)
        return;
    pthread_cond_destroy(&g->space);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* Enters the full state. Lock held. 1 if the reserve was released now. */
static int enter_full(struct ingest_disk *g, const char *what, const char *why)
{
    int released = 0;

    if (g->full)
        return 0;
    g->full = 1;
    g->entered_ms = g->polled_ms = g->reminded_ms = cc_mono_ms();
    if (g->have_reserve) {
        released = unlink(g->path) == 0;
        g->have_reserve = 0;
    }
    cc_log_error("disk_full",
                 "%s: %s writing the %s; not taking messages from the broker (it keeps them) "
                 "until %ld MiB are free%s",
                 g->dir, why, what, (INGEST_DISK_RESERVE + INGEST_DISK_RESUME_FREE) >> 20,
                 released ? "; reserve released for the messages already acknowledged" : "");
    return released;
}

int ingest_disk_failed(struct ingest_disk *g, const char *what, int err)
{
    int retry;

    if (g == NULL || (err != ENOSPC && err != EDQUOT))
        return 0;
    pthread_mutex_lock(&g->mu);
    retry = enter_full(g, what, strerror(err));
    pthread_mutex_unlock(&g->mu);
    return retry;
}

int ingest_disk_check(struct ingest_disk *g, const char *what)
{
    int64_t avail;
    int full;

    if (g == NULL)
        return 0;
    pthread_mutex_lock(&g->mu);
    avail = free_bytes(g->dir);
    if (!g->full && avail >= 0 && avail < INGEST_DISK_RESERVE)
        enter_full(g, what, strerror(ENOSPC));
    full = g->full;
    pthread_mutex_unlock(&g->mu);
    return full;
}

int ingest_disk_full(struct ingest_disk *g)
{
    int full;

    if (g == NULL)
        return 0;
    pthread_mutex_lock(&g->mu);
    full = g->full;
    pthread_mutex_unlock(&g->mu);
    return full;
}

int ingest_disk_wait(struct ingest_disk *g, long ms)
{
    struct timespec until;
    int full;

    if (g == NULL)
        return 0;
    until = cc_deadline(CLOCK_REALTIME, ms);
    pthread_mutex_lock(&g->mu);
    while (g->full && pthread_cond_timedwait(&g->space, &g->mu, &until) == 0)
        ;
    full = g->full;
    pthread_mutex_unlock(&g->mu);
    return full;
}

void ingest_disk_poll(struct ingest_disk *g)
{
    int64_t now, avail;
    int err;

    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    now = cc_mono_ms();
    if (!g->full || now - g->polled_ms < INGEST_DISK_POLL_MS)
        goto out;
    g->polled_ms = now;
    avail = free_bytes(g->dir);
    if (avail < INGEST_DISK_RESERVE + INGEST_DISK_RESUME_FREE) {
        if (now - g->reminded_ms >= INGEST_DISK_REMIND_MS) {
            g->reminded_ms = now;
            cc_log_error("disk_full", "%s: still full after %lld s (%lld bytes free)", g->dir,
                         (long long)((now - g->entered_ms) / 1000), (long long)avail);
        }
        goto out;
    }
    err = make_reserve(g);
    if (err != 0) {
        cc_log_warn("disk_reserve_failed", "%s: %s; trying again", g->path, strerror(err));
        goto out;
    }
    g->full = 0;
    pthread_cond_broadcast(&g->space);
    cc_log_info("disk_space_returned", "%s: %lld bytes free after %lld s; taking messages again",
                g->dir, (long long)avail, (long long)((now - g->entered_ms) / 1000));
out:
    pthread_mutex_unlock(&g->mu);
}
