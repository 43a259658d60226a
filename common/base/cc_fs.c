/* cc_fs.c - putting a finished file in place durably (see cc_fs.h). */
#include "cc_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

/* fsync()s the file or directory at path. 0, or -1 with errno set. */
static int sync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    int r, saved;

    if (fd < 0)
        return -1;
    r = fsync(fd);
    saved = errno;
    close(fd);
    errno = saved;
    return r;
}

int cc_fs_replace(const char *tmp, const char *path)
{
    char dir[PATH_MAX];

    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (sync_path(tmp, 0) != 0 || rename(tmp, path) != 0)
        return -1;
    sync_path(dirname(dir), 1);
    return 0;
}
