/* cc_walbuf.c - a VFS over the default one that gathers a transaction's WAL frames into
 * one write, see cc_walbuf.h. */
#include "cc_walbuf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(CC_WALBUF_BYTES <= 0x1ffff, "the unix VFS writes at most 0x1ffff bytes at once");

#define WAL_FRAME_HDR 24 /* SQLite's WAL frame header; bytes 4..7: nonzero on a commit */

struct walbuf_file {
    sqlite3_file base;   /* our methods */
    sqlite3_file *under; /* the default VFS's file, right behind this struct */
    int wal;             /* a WAL file: its writes are gathered */
    int commit_next;     /* the last write was a commit frame's header: flush after the page */
    unsigned char *buf;  /* CC_WALBUF_BYTES, allocated on the first gathered write */
    sqlite3_int64 off;   /* file offset of buf[0] */
    int len;             /* bytes held */
};

static sqlite3_vfs walbuf_vfs;
static sqlite3_io_methods walbuf_methods;
static sqlite3_vfs *under_vfs;
static unsigned long long walbuf_writes; /* writes passed down (all files), atomic */

static int down_write(struct walbuf_file *f, const void *p, int n, sqlite3_int64 off)
{
    __atomic_fetch_add(&walbuf_writes, 1, __ATOMIC_RELAXED);
    return f->under->pMethods->xWrite(f->under, p, n, off);
}

/* Writes what is held, in one call, and forgets it whether or not the write succeeded.
 * Everything held belongs to the transaction being written (a commit ends in a flush), so
 * a failed write fails that transaction: SQLite rolls it back and its frames are garbage.
 * Keeping them to write later (at close, before the next write) would put a complete,
 * correctly checksummed commit of a rolled-back transaction in the file, and a crash before
 * the next commit overwrote it would let WAL recovery replay it
 * (test_failed_commit_never_reaches_the_file). */
static int flush(struct walbuf_file *f)
{
    int rc = SQLITE_OK;

    if (f->len > 0)
        rc = down_write(f, f->buf, f->len, f->off);
    f->len = 0;
    return rc;
}

static int w_close(sqlite3_file *pf)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = flush(f);
    int rc2 = f->under->pMethods != NULL ? f->under->pMethods->xClose(f->under) : SQLITE_OK;

    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *pf, void *p, int n, sqlite3_int64 off)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = flush(f);

    return rc != SQLITE_OK ? rc : f->under->pMethods->xRead(f->under, p, n, off);
}

static int w_write(sqlite3_file *pf, const void *p, int n, sqlite3_int64 off)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    const unsigned char *b = p;
    int commit = f->commit_next;
    int rc;

    if (!f->wal)
        return down_write(f, p, n, off);
    f->commit_next = n == WAL_FRAME_HDR && (b[4] | b[5] | b[6] | b[7]) != 0;
    if (f->len > 0 && (off != f->off + f->len || f->len + n > CC_WALBUF_BYTES)) {
        rc = flush(f);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (n > CC_WALBUF_BYTES)
        return down_write(f, p, n, off);
    if (f->buf == NULL && (f->buf = malloc(CC_WALBUF_BYTES)) == NULL)
        return down_write(f, p, n, off);
    if (f->len == 0)
        f->off = off;
    memcpy(f->buf + f->len, p, (size_t)n);
    f->len += n;
    /* The commit frame complete: the transaction reaches the file before SQLite marks it
     * committed in the WAL index, as it would unbuffered. */
    return commit ? flush(f) : SQLITE_OK;
}

static int w_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = flush(f);

    return rc != SQLITE_OK ? rc : f->under->pMethods->xTruncate(f->under, size);
}

static int w_sync(sqlite3_file *pf, int flags)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = flush(f);

    return rc != SQLITE_OK ? rc : f->under->pMethods->xSync(f->under, flags);
}

static int w_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = flush(f);

    return rc != SQLITE_OK ? rc : f->under->pMethods->xFileSize(f->under, size);
}

static int w_lock(sqlite3_file *pf, int lock)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;

    return f->under->pMethods->xLock(f->under, lock);
}

static int w_unlock(sqlite3_file *pf, int lock)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = flush(f);

    return rc != SQLITE_OK ? rc : f->under->pMethods->xUnlock(f->under, lock);
}

static int w_check_reserved(sqlite3_file *pf, int *out)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;

    return f->under->pMethods->xCheckReservedLock(f->under, out);
}

/* No flush: no file control reads the file's bytes, and SQLite ignores the result of
 * some (SQLITE_FCNTL_SIZE_HINT), where a failed flush would go unnoticed. */
static int w_file_control(sqlite3_file *pf, int op, void *arg)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc;

    if (op == SQLITE_FCNTL_VFSNAME) {
        rc = f->under->pMethods->xFileControl(f->under, op, arg);
        if (rc == SQLITE_OK) /* the default VFS's name is ours too (unix names itself) */
            *(char **)arg = sqlite3_mprintf("cc_walbuf/%z", *(char **)arg);
        return rc;
    }
    return f->under->pMethods->xFileControl(f->under, op, arg);
}

static int w_sector_size(sqlite3_file *pf)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;

    return f->under->pMethods->xSectorSize(f->under);
}

static int w_device_characteristics(sqlite3_file *pf)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;

    return f->under->pMethods->xDeviceCharacteristics(f->under);
}

static int w_shm_map(sqlite3_file *pf, int region, int size, int extend, void volatile **pp)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;

    return f->under->pMethods->xShmMap(f->under, region, size, extend, pp);
}

static int w_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;

    return f->under->pMethods->xShmLock(f->under, offset, n, flags);
}

static void w_shm_barrier(sqlite3_file *pf)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;

    f->under->pMethods->xShmBarrier(f->under);
}

static int w_shm_unmap(sqlite3_file *pf, int del)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;

    return f->under->pMethods->xShmUnmap(f->under, del);
}

static int w_fetch(sqlite3_file *pf, sqlite3_int64 off, int n, void **pp)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc = flush(f);

    return rc != SQLITE_OK ? rc : f->under->pMethods->xFetch(f->under, off, n, pp);
}

static int w_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;

    return f->under->pMethods->xUnfetch(f->under, off, p);
}

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *out_flags)
{
    struct walbuf_file *f = (struct walbuf_file *)pf;
    int rc;

    (void)vfs;
    memset(f, 0, sizeof *f);
    f->under = (sqlite3_file *)(f + 1);
    rc = under_vfs->xOpen(under_vfs, name, f->under, flags, out_flags);
    if (rc != SQLITE_OK || f->under->pMethods == NULL) {
        f->base.pMethods = NULL; /* SQLite closes nothing it was not given */
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    f->base.pMethods = &walbuf_methods;
    return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return under_vfs->xDelete(under_vfs, name, sync_dir);
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return under_vfs->xAccess(under_vfs, name, flags, out);
}

static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return under_vfs->xFullPathname(under_vfs, name, n, out);
}

static void *v_dl_open(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return under_vfs->xDlOpen(under_vfs, name);
}

static void v_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
    (void)vfs;
    under_vfs->xDlError(under_vfs, n, msg);
}

static void (*v_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    (void)vfs;
    return under_vfs->xDlSym(under_vfs, h, sym);
}

static void v_dl_close(sqlite3_vfs *vfs, void *h)
{
    (void)vfs;
    under_vfs->xDlClose(under_vfs, h);
}

static int v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return under_vfs->xRandomness(under_vfs, n, out);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return under_vfs->xSleep(under_vfs, us);
}

static int v_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return under_vfs->xCurrentTime(under_vfs, out);
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return under_vfs->xGetLastError(under_vfs, n, out);
}

static int v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return under_vfs->xCurrentTimeInt64(under_vfs, out);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int register_rc = SQLITE_ERROR;

static void do_register(void)
{
    under_vfs = sqlite3_vfs_find(NULL);
    if (under_vfs == NULL || under_vfs->iVersion < 2 || under_vfs->xCurrentTimeInt64 == NULL)
        return;
    walbuf_methods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = w_close,
        .xRead = w_read,
        .xWrite = w_write,
        .xTruncate = w_truncate,
        .xSync = w_sync,
        .xFileSize = w_file_size,
        .xLock = w_lock,
        .xUnlock = w_unlock,
        .xCheckReservedLock = w_check_reserved,
        .xFileControl = w_file_control,
        .xSectorSize = w_sector_size,
        .xDeviceCharacteristics = w_device_characteristics,
        .xShmMap = w_shm_map,
        .xShmLock = w_shm_lock,
        .xShmBarrier = w_shm_barrier,
        .xShmUnmap = w_shm_unmap,
        .xFetch = w_fetch,
        .xUnfetch = w_unfetch,
    };
    walbuf_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct walbuf_file) + under_vfs->szOsFile,
        .mxPathname = under_vfs->mxPathname,
        .zName = CC_WALBUF_VFS,
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_full_pathname,
        .xDlOpen = v_dl_open,
        .xDlError = v_dl_error,
        .xDlSym = v_dl_sym,
        .xDlClose = v_dl_close,
        .xRandomness = v_randomness,
        .xSleep = v_sleep,
        .xCurrentTime = v_current_time,
        .xGetLastError = v_last_error,
        .xCurrentTimeInt64 = v_current_time64,
    };
    register_rc = sqlite3_vfs_register(&walbuf_vfs, 0);
}

int cc_walbuf_register(void)
{
    pthread_once(&once, do_register);
    return register_rc == SQLITE_OK ? 0 : -1;
}

unsigned long long cc_walbuf_writes(void)
{
    return __atomic_load_n(&walbuf_writes, __ATOMIC_RELAXED);
}
