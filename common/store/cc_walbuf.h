/* cc_walbuf.h - a VFS over SQLite's default one that gathers the frames a commit appends
 * to the WAL into one write (cc_db_open opens every writing connection through it).
 *
 * SQLite writes each WAL frame as two writes, its 24-byte header and the page: a commit
 * of the ingest path's ~250 dirty pages was ~500 pwrite calls, each a system call and an
 * ext4 write over one or two page-cache pages (a frame is not page-aligned). Here the
 * contiguous writes are held in a buffer and written in one call when the commit frame
 * (a header whose "database size" field is nonzero) is complete, before SQLite goes on to
 * mark the commit in the WAL index: when COMMIT returns, the file holds exactly what it
 * held unbuffered, so a kill -9 at any instant loses nothing more, and a reader (another
 * connection, the checkpointer) never sees a committed frame that is not in the file.
 * Anything else on the file (read, sync, truncate, size, file control, close) writes what
 * is held first. The other files pass straight through.
 * Thread: as SQLite's files (one connection's file is used by one thread at a time). */
#ifndef CC_WALBUF_H
#define CC_WALBUF_H

#include <sqlite3.h>

#define CC_WALBUF_VFS "cc_walbuf"
/* Held per WAL file at most, then written: SQLite's unix VFS takes at most 128 KiB - 1 in
 * one write (it masks the length with 0x1ffff). A 1 MiB commit is 16 writes, not 500. */
#define CC_WALBUF_BYTES (64 * 1024)

/* Registers the VFS (not as the default) once per process. 0, or -1 when the default VFS
 * is too old to wrap (then the callers open with the default). */
int cc_walbuf_register(void);
/* Writes handed to the default VFS by this VFS's files since the process started (tests). */
unsigned long long cc_walbuf_writes(void);

#endif
