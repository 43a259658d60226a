/* fixture.c - the unit tests' temporary, migrated, optionally seeded store (fixture.h). */
#include "cc_dbi.h"
#include "fixture.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    int rc = cc_store_exec(st, sql);

    if (rc != CC_OK)
        fprintf(stderr, "fixture_exec: %s\n", cc_rc_code(rc));
    return rc;
}

int fixture_int(struct cc_store *st, const char *sql, int64_t *out)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql, &s);

    if (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        *out = cc_stmt_column_int64(s, 0);
        rc = CC_OK;
    } else if (rc == CC_OK) {
        rc = CC_ERR_NOT_FOUND;
    }
    cc_stmt_release(s);
    if (rc != CC_OK)
        fprintf(stderr, "fixture_int: %s: %s\n", sql, cc_rc_code(rc));
    return rc;
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

int fixture_pg_stop(const char *dir)
{
    char cmd[160];

    snprintf(cmd, sizeof cmd, "sh tools/pgtest.sh stop %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int fixture_pg_start(const char *name, const char *port, char *dir, size_t dirlen, char *url,
                     size_t urllen)
{
    char cmd[160];
    FILE *p;

    snprintf(dir, dirlen, "/tmp/cc-test-%s-%ld", name, (long)getpid());
    snprintf(cmd, sizeof cmd, "sh tools/pgtest.sh start %s %s", dir, port);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    if (fgets(url, (int)urllen, p) == NULL)
        url[0] = '\0';
    if (pclose(p) != 0 || strncmp(url, "postgresql://", 13) != 0) {
        fprintf(stderr, "%s: PostgreSQL did not start (%s)\n", name, cmd);
        fixture_pg_stop(dir); /* cmocka runs no teardown after a failed setup */
        return -1;
    }
    url[strcspn(url, "\n")] = '\0';
    return 0;
}

char *fixture_pg_schema(void)
{
    FILE *f = fopen(FIXTURE_PG_SCHEMA, "rb");
    char *buf = malloc(FIXTURE_PG_SCHEMA_MAX + 1);
    size_t n = 0;

    if (f != NULL && buf != NULL)
        n = fread(buf, 1, FIXTURE_PG_SCHEMA_MAX + 1, f);
    if (f != NULL)
        fclose(f);
    if (buf == NULL || n == 0 || n > FIXTURE_PG_SCHEMA_MAX) {
        fprintf(stderr, "cannot read %s (at most %d bytes)\n", FIXTURE_PG_SCHEMA,
                FIXTURE_PG_SCHEMA_MAX);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int fixture_pg_terminate(struct cc_store *by, int64_t pid)
{
    static const char sql[] =
        "SELECT CAST(pg_terminate_backend(CAST($1 AS integer), $2) AS integer)";
    struct cc_stmt *s = NULL;
    int64_t gone = 0;
    int rc = cc_stmt_prepare(by, sql, &s);

    if (rc == CC_OK)
        rc = cc_stmt_bind_all(s, "ii", pid, (int64_t)FIXTURE_PG_WAIT_MS);
    if (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        gone = cc_stmt_column_int64(s, 0);
        rc = CC_OK;
    }
    cc_stmt_release(s);
    if (rc != CC_OK || gone != 1) {
        fprintf(stderr, "backend %lld not ended within %d ms (rc %d)\n", (long long)pid,
                FIXTURE_PG_WAIT_MS, rc);
        return CC_ERR_DB;
    }
    return CC_OK;
}
