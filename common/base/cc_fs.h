/* cc_fs.h - putting a finished file in place durably.
 *
 * A backup (ccctl backup, on either store) is written to a temporary name and only then
 * renamed over its target, so a crash leaves the old file or the new one, never half of
 * one; the fsyncs make the rename itself survive a power cut. Thread-safe. */
#ifndef CC_FS_H
#define CC_FS_H

/* fsyncs tmp, renames it to path, then fsyncs path's directory. 0, or -1 with errno set
 * (tmp's fsync or the rename failed: tmp is left for the caller to remove). A failed
 * fsync of the directory is not reported: the file is in place, only the rename's
 * durability is weaker. */
int cc_fs_replace(const char *tmp, const char *path);

#endif
