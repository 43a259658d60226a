/* fixture.c - the unit tests' temporary, migrated, optionally seeded store (fixture.h). */
#include "cc_store_sqlite.h"
#include "fixture.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cc_rc.h"

#define FIXTURE_DIR_TEMPLATE "/tmp/cc-test-XXXXXX"

int fixture_open(struct fixture *fx, unsigned flags, int store_flags, const char *seed_sql)
{
    int rc = CC_ERR_IO;

    memset(fx, 0, sizeof *fx);
    if (flags & FIXTURE_FILE) {
        snprintf(fx->dir, sizeof fx->dir, "%s", FIXTURE_DIR_TEMPLATE);
        if (mkdtemp(fx->dir) == NULL) {
            fx->dir[0] = '\0';
            goto fail;
        }
        snprintf(fx->path, sizeof fx->path, "%s/cc.db", fx->dir);
        if (flags & FIXTURE_NO_STORE)
            return CC_OK;
    } else {
        snprintf(fx->path, sizeof fx->path, ":memory:");
    }
    rc = cc_store_open(fx->path, CC_STORE_CREATE | CC_STORE_MIGRATE | store_flags, &fx->st);
    if (rc != CC_OK)
        goto fail;
    if (seed_sql != NULL && (rc = fixture_exec(fx->st, seed_sql)) != CC_OK)
        goto fail;
    return CC_OK;

fail:
    fprintf(stderr, "fixture_open %s: %s\n", fx->path, cc_rc_code(rc));
    fixture_close(fx);
    return rc;
}

int fixture_exec(struct cc_store *st, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(cc_store_db(st), sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "fixture_exec: %s\n", err != NULL ? err : "?");
        sqlite3_free(err);
        return CC_ERR_DB;
    }
    return CC_OK;
}

void fixture_close(struct fixture *fx)
{
    char file[FIXTURE_DIR_MAX + 256];
    struct dirent *e;
    DIR *d;

    cc_store_close(fx->st);
    /* Every file, not only cc.db, -wal and -shm: a test may leave more (a backup, a reopen). */
    if (fx->dir[0] != '\0' && (d = opendir(fx->dir)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(file, sizeof file, "%s/%s", fx->dir, e->d_name);
            unlink(file);
        }
        closedir(d);
        rmdir(fx->dir);
    }
    memset(fx, 0, sizeof *fx);
}
