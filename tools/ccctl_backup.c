/* ccctl_backup.c - `ccctl backup FILE`: a consistent copy of COLDCHAIN_DB while ingestd
 * and apid keep running; `ccctl restore FILE`: the same copy the other way, into a
 * database file that does not exist yet. SQLite: the online backup API, behind
 * cc_store_backup.h (the copy is made into FILE.tmp, mode 0600, checked, fsync'ed and
 * renamed over FILE). A PostgreSQL URL goes to pg_dump and pg_restore instead
 * (ccctl_pg.c). */
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "cc_rc.h"
#include "cc_store_backup.h"
#include "ccctl.h"

/* Copies the SQLite database src_path to path, in the words of verb ("backup",
 * "restore"). An exit status. */
static int sqlite_copy(const char *verb, const char *src_path, int src_readonly, const char *path)
{
    char err[PATH_MAX + 256];
    int pages = 0;
    int rc;

    fprintf(stderr, "ccctl: %s: copying %s to %s\n", verb, src_path, path);
    rc = cc_store_sqlite_copy(src_path, src_readonly, path, &pages, err, sizeof err);
    if (rc != CC_OK) {
        fprintf(stderr, "ccctl: %s: %s\n", verb, err);
        return rc == CC_ERR_VALIDATION ? CCCTL_EXIT_USAGE : CCCTL_EXIT_FAIL;
    }
    fprintf(stderr, "ccctl: %s: %d pages written to %s\n", verb, pages, path);
    return CCCTL_EXIT_OK;
}

/* FILE of `ccctl backup|restore FILE`, or NULL after printing the usage. */
static const char *file_arg(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '\0' || argv[1][0] == '-') {
        ccctl_usage();
        return NULL;
    }
    return argv[1];
}

int ccctl_backup(int argc, char **argv, const struct cc_config *cfg)
{
    const char *path = file_arg(argc, argv);
    int rc;

    if (path == NULL)
        return CCCTL_EXIT_USAGE;
    if (ccctl_is_pg_url(cfg->db_path))
        return ccctl_pg_backup(cfg->db_path, path);
    rc = sqlite_copy("backup", cfg->db_path, 0, path);
    if (rc == CCCTL_EXIT_OK)
        printf("%s\n", path);
    return rc;
}

int ccctl_restore(int argc, char **argv, const struct cc_config *cfg)
{
    static const char *const suffixes[] = {"", "-wal", "-journal"};
    const char *path = file_arg(argc, argv);
    char name[PATH_MAX];

    if (path == NULL)
        return CCCTL_EXIT_USAGE;
    if (ccctl_is_pg_url(cfg->db_path))
        return ccctl_pg_restore(cfg->db_path, path);
    /* Never over a database (nor beside a stale WAL a new file would pick up): the
     * daemons may have it open, and its rows would be lost. */
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        if (snprintf(name, sizeof name, "%s%s", cfg->db_path, suffixes[i]) >= (int)sizeof name) {
            fprintf(stderr, "ccctl: restore: path too long\n");
            return CCCTL_EXIT_USAGE;
        }
        if (access(name, F_OK) == 0) {
            fprintf(stderr,
                    "ccctl: restore: %s exists: stop the daemons and move it away first, or "
                    "point COLDCHAIN_DB at a new file\n",
                    name);
            return CCCTL_EXIT_FAIL;
        }
    }
    return sqlite_copy("restore", path, 1, cfg->db_path);
}
