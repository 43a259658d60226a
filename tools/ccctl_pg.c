/* ccctl_pg.c - `ccctl backup` and `ccctl restore` when COLDCHAIN_DB is a PostgreSQL URL:
 * pg_dump in its custom format (-Fc) and pg_restore into an empty database.
 *
 * The URL reaches pg_dump and pg_restore as --dbname, on their command line, where every
 * local user can read it (ps, /proc). So a password never goes there: it is taken out of
 * the URL (user:password@ and a password= parameter) and written to a passfile of its own,
 * mode 0600 in a 0700 directory, named by PGPASSFILE in the child's environment only and
 * removed when the child ends. PGPASSWORD is not used for it: it is readable in
 * /proc/PID/environ by the same user and documented by libpq as insecure. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cc_crypto.h"
#include "cc_fs.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "ccctl.h"

#define PG_ARGV_MAX 12 /* arguments of one pg_dump / pg_restore run, NULL included */

int ccctl_is_pg_url(const char *db)
{
    return strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0;
}

/* Percent-decodes src[0..n) into out (libpq decodes %XX only, '+' stays). 0, or -1 when
 * it does not fit, a %XX is malformed or decodes to NUL. */
static int pct_decode(const char *src, size_t n, char *out, size_t outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)src[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= n)
                return -1;
            hi = cc_hex_value((unsigned char)src[i + 1]);
            lo = cc_hex_value((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

int ccctl_pg_url_split(const char *url, char *bare, size_t barelen, char *pw, size_t pwlen)
{
    const char *auth = strstr(url, "://");
    const char *auth_end, *at = NULL, *colon = NULL, *q;
    size_t o = 0;
    int has_pw = 0;

    if (auth == NULL || barelen == 0 || pwlen == 0)
        return -1;
    auth += 3;
    pw[0] = '\0';
    auth_end = auth + strcspn(auth, "/?");
    for (const char *p = auth; p < auth_end; p++)
        if (*p == '@')
            at = p; /* the last one: a host never holds '@' */
    if (at != NULL)
        colon = memchr(auth, ':', (size_t)(at - auth));
    /* Everything up to the password, then from the '@' on. */
    if (colon != NULL) {
        if (pct_decode(colon + 1, (size_t)(at - colon - 1), pw, pwlen) != 0)
            return -1;
        has_pw = 1;
    }
    q = colon != NULL ? colon : auth_end;
    if ((size_t)(q - url) >= barelen)
        return -1;
    memcpy(bare, url, (size_t)(q - url));
    o = (size_t)(q - url);
    if (colon != NULL)
        q = at;
    /* The path, then the parameters without password=. */
    while (*q != '\0' && *q != '?') {
        if (o + 1 >= barelen)
            return -1;
        bare[o++] = *q++;
    }
    if (*q == '?') {
        char sep = '?';

        q++;
        while (*q != '\0') {
            size_t len = strcspn(q, "&");

            if (len >= 9 && strncmp(q, "password=", 9) == 0) {
                if (pct_decode(q + 9, len - 9, pw, pwlen) != 0)
                    return -1;
                has_pw = 1;
            } else if (len > 0) {
                if (o + 1 + len >= barelen)
                    return -1;
                bare[o++] = sep;
                memcpy(bare + o, q, len);
                o += len;
                sep = '&';
            }
            q += len;
            if (*q == '&')
                q++;
        }
    }
    bare[o] = '\0';
    return has_pw;
}

/* Writes pw as the one line of a new passfile dir/pgpass, mode 0600, matching any host,
 * port, database and user (the URL names them). 0, or -1 (reported). */
static int write_passfile(const char *dir, const char *pw, char *path, size_t pathlen)
{
    FILE *f = NULL;
    int fd = -1;
    int ok = 1;

    if (strpbrk(pw, "\r\n") != NULL) {
        fprintf(stderr, "ccctl: the password in COLDCHAIN_DB holds a line break: a passfile "
                        "cannot carry it\n");
        return -1;
    }
    if (snprintf(path, pathlen, "%s/pgpass", dir) >= (int)pathlen)
        return -1;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "ccctl: cannot create a passfile in %s: %s\n", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    ok &= fputs("*:*:*:*:", f) >= 0;
    /* ':' and '\' are the format's separators: escaped with a backslash. */
    for (const char *p = pw; *p != '\0'; p++) {
        if (*p == ':' || *p == '\\')
            ok &= fputc('\\', f) != EOF;
        ok &= fputc(*p, f) != EOF;
    }
    ok &= fputc('\n', f) != EOF;
    ok &= fclose(f) == 0;
    if (!ok) {
        fprintf(stderr, "ccctl: cannot write the passfile in %s\n", dir);
        unlink(path);
        return -1;
    }
    return 0;
}

/* Runs argv[0] (found on PATH) with PGPASSFILE=passfile when passfile is not NULL, waits
 * for it. Its exit status, or -1 (reported) when it could not run or was killed. */
static int run_child(char *const argv[], const char *passfile)
{
    pid_t pid;
    int status;

    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "ccctl: cannot start %s: %s\n", argv[0], strerror(errno));
        return -1;
    }
    if (pid == 0) {
        if (passfile != NULL && setenv("PGPASSFILE", passfile, 1) != 0)
            _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "ccctl: cannot run %s: %s (install postgresql-client-15)\n", argv[0],
                strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "ccctl: waiting for %s: %s\n", argv[0], strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    fprintf(stderr, "ccctl: %s ended by signal %d\n", argv[0],
            WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return -1;
}

/* The URL and passfile a pg_* run uses: the URL without its password, and the password
 * (if any) in a private passfile. Undone by conn_done on every path. */
struct conn {
    char url[CCCTL_PG_URL_MAX];
    char dir[PATH_MAX]; /* "" when there is no passfile */
    char passfile[PATH_MAX];
};

/* Fills c from url. 0, or -1 (reported; nothing left behind). */
static int conn_prepare(const char *url, struct conn *c)
{
    char pw[CCCTL_PG_URL_MAX];
    const char *tmpdir = getenv("TMPDIR");
    int has_pw;

    c->dir[0] = c->passfile[0] = '\0';
    has_pw = ccctl_pg_url_split(url, c->url, sizeof c->url, pw, sizeof pw);
    if (has_pw < 0) {
        fprintf(stderr,
                "ccctl: COLDCHAIN_DB is not a URL ccctl can hand to pg_dump (longer "
                "than %d bytes, or a malformed %%XX)\n",
                CCCTL_PG_URL_MAX - 1);
        return -1;
    }
    if (has_pw == 0)
        return 0;
    if (tmpdir == NULL || *tmpdir == '\0')
        tmpdir = "/tmp";
    if (snprintf(c->dir, sizeof c->dir, "%s/ccctl-pgpass-XXXXXX", tmpdir) >= (int)sizeof c->dir ||
        mkdtemp(c->dir) == NULL) {
        fprintf(stderr, "ccctl: cannot create a private directory in %s: %s\n", tmpdir,
                strerror(errno));
        c->dir[0] = '\0';
        OPENSSL_cleanse(pw, sizeof pw);
        return -1;
    }
    has_pw = write_passfile(c->dir, pw, c->passfile, sizeof c->passfile);
    OPENSSL_cleanse(pw, sizeof pw);
    if (has_pw != 0) {
        c->passfile[0] = '\0';
        rmdir(c->dir);
        c->dir[0] = '\0';
    }
    return has_pw;
}

static void conn_done(struct conn *c)
{
    if (c->passfile[0] != '\0')
        unlink(c->passfile);
    if (c->dir[0] != '\0')
        rmdir(c->dir);
    c->dir[0] = c->passfile[0] = '\0';
}

/* Runs argv with the connection's passfile. The exit status, -1 when it did not run. */
static int run_pg(char *const argv[], const struct conn *c)
{
    return run_child(argv, c->passfile[0] != '\0' ? c->passfile : NULL);
}

int ccctl_pg_backup(const char *url, const char *path)
{
    char tmp[PATH_MAX], dbarg[CCCTL_PG_URL_MAX + 16], filearg[PATH_MAX + 16];
    struct conn c;
    int created = 0;
    int fd, s;
    int rc = CCCTL_EXIT_FAIL;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp ||
        snprintf(filearg, sizeof filearg, "--file=%s", tmp) >= (int)sizeof filearg) {
        fprintf(stderr, "ccctl: backup: path too long\n");
        return CCCTL_EXIT_USAGE;
    }
    if (conn_prepare(url, &c) != 0)
        return CCCTL_EXIT_FAIL;
    snprintf(dbarg, sizeof dbarg, "--dbname=%s", c.url);
    /* Mode 0600 before pg_dump writes into it (fopen keeps it): the dump holds password
     * hashes. */
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        fprintf(stderr, "ccctl: backup: cannot create %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    created = 1;
    fprintf(stderr, "ccctl: backup: pg_dump of the PostgreSQL database to %s\n", path);
    {
        char *dump[PG_ARGV_MAX] = {"pg_dump", "--format=custom", "--no-password",
                                   dbarg,     filearg,           NULL};
        char *list[PG_ARGV_MAX] = {"pg_restore", "--list", tmp, NULL};
        int devnull;
        int saved;

        s = run_pg(dump, &c);
        if (s != 0) {
            fprintf(stderr, "ccctl: backup: pg_dump failed (exit %d)\n", s);
            goto out;
        }
        /* Checked before it replaces anything: pg_restore can read its table of contents. */
        fflush(stdout);
        saved = dup(STDOUT_FILENO);
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (saved < 0 || devnull < 0 || dup2(devnull, STDOUT_FILENO) < 0) {
            if (saved >= 0)
                close(saved);
            if (devnull >= 0)
                close(devnull);
            fprintf(stderr, "ccctl: backup: %s\n", strerror(errno));
            goto out;
        }
        close(devnull);
        s = run_child(list, NULL);
        dup2(saved, STDOUT_FILENO);
        close(saved);
        if (s != 0) {
            fprintf(stderr, "ccctl: backup: pg_restore --list cannot read the dump (exit %d)\n", s);
            goto out;
        }
    }
    if (cc_fs_replace(tmp, path) != 0) {
        fprintf(stderr, "ccctl: backup: cannot move %s to %s: %s\n", tmp, path, strerror(errno));
        goto out;
    }
    created = 0;
    fprintf(stderr, "ccctl: backup: custom-format dump written to %s\n", path);
    printf("%s\n", path);
    rc = CCCTL_EXIT_OK;
out:
    if (created)
        unlink(tmp);
    conn_done(&c);
    return rc;
}

/* Tables in the database behind url outside the system schemas: *n. CC_OK or an error
 * (the store logged it). */
static int count_tables(const char *url, int64_t *n)
{
    static const char sql[] =
        "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s "
        "ON s.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND "
        "s.nspname NOT IN ('pg_catalog', 'information_schema') AND s.nspname NOT LIKE 'pg_toast%'";
    struct cc_store *st = NULL;
    struct cc_stmt *s = NULL;
    int rc;

    rc = cc_store_open(url, CC_STORE_READONLY, &st);
    if (rc == CC_OK)
        rc = cc_stmt_prepare(st, sql, &s);
    if (rc == CC_OK && (rc = cc_stmt_step(s)) == CC_ROW) {
        *n = cc_stmt_column_int64(s, 0);
        rc = CC_OK;
    } else if (rc == CC_OK) {
        rc = CC_ERR_DB;
    }
    cc_stmt_release(s);
    cc_store_close(st);
    return rc;
}

int ccctl_pg_restore(const char *url, const char *path)
{
    char dbarg[CCCTL_PG_URL_MAX + 16];
    char *file = (char *)path;
    struct conn c;
    int64_t tables = 0;
    int s, rc;

    if (access(path, R_OK) != 0) {
        fprintf(stderr, "ccctl: restore: cannot read %s: %s\n", path, strerror(errno));
        return CCCTL_EXIT_FAIL;
    }
    rc = count_tables(url, &tables);
    if (rc != CC_OK) {
        fprintf(stderr, "ccctl: restore: cannot read the PostgreSQL database (%s)\n",
                cc_rc_code(rc));
        return CCCTL_EXIT_FAIL;
    }
    if (tables != 0) {
        fprintf(stderr,
                "ccctl: restore: the PostgreSQL database is not empty (%lld tables): restore "
                "into a new database (createdb) and point COLDCHAIN_DB at it\n",
                (long long)tables);
        return CCCTL_EXIT_FAIL;
    }
    if (conn_prepare(url, &c) != 0)
        return CCCTL_EXIT_FAIL;
    snprintf(dbarg, sizeof dbarg, "--dbname=%s", c.url);
    fprintf(stderr, "ccctl: restore: pg_restore of %s into the PostgreSQL database\n", path);
    {
        /* One transaction: a failed restore leaves the database empty, as it was. Owners and
         * grants are the dumped cluster's: the URL's role owns what it restores. */
        char *argv[PG_ARGV_MAX] = {"pg_restore",
                                   "--no-password",
                                   "--exit-on-error",
                                   "--single-transaction",
                                   "--no-owner",
                                   "--no-privileges",
                                   dbarg,
                                   file,
                                   NULL};

        s = run_pg(argv, &c);
    }
    conn_done(&c);
    if (s != 0) {
        fprintf(stderr, "ccctl: restore: pg_restore failed (exit %d); nothing was restored\n", s);
        return CCCTL_EXIT_FAIL;
    }
    fprintf(stderr, "ccctl: restore: %s restored\n", path);
    return CCCTL_EXIT_OK;
}

const char *ccctl_db_label(const char *db, char *buf, size_t buflen)
{
    char pw[CCCTL_PG_URL_MAX];

    if (!ccctl_is_pg_url(db))
        snprintf(buf, buflen, "%s", db);
    else if (ccctl_pg_url_split(db, buf, buflen, pw, sizeof pw) < 0)
        snprintf(buf, buflen, "the PostgreSQL database of COLDCHAIN_DB");
    OPENSSL_cleanse(pw, sizeof pw);
    return buf;
}
