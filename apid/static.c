/* static.c - the web dashboard: apid serves the files of web/ at `/` (issue 6.4).
 *
 * The directory: COLDCHAIN_WEB_DIR if set (it must be a directory holding index.html, or
 * apid exits 2; set but empty turns static serving off); unset, the first web/ holding
 * index.html found beside the apid binary or up to three directories above it (so
 * build/apid and build/asan/apid both find <repo>/web whatever the cwd), then ./web.
 * None found: static serving is off and `/` answers the JSON 404 like any unknown path.
 *
 * What reaches civetweb's file handler (api_static_wanted): GET or HEAD only, never a path
 * under /api/ nor /health, /ready, /metrics (API routes always win), no dot segment or hidden
 * file ("/."), only the dashboard's own kinds of file (.html .js .css .svg .png .ico), and only
 * if that regular file exists; `/` is index.html. Everything else goes through the API
 * pipeline. Directory listing is off (main.c). Static files are not rate limited.
 * Thread: api_static_init once before mg_start; api_static_wanted from any worker after. */
#include "api.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_rc.h"

#define WEB_PARENTS_MAX 3 /* directories above the binary's that may hold web/ */

static char web_dir[PATH_MAX]; /* resolved directory, "" = off; read-only after init */

static const char *const web_exts[] = {".html", ".js", ".css", ".svg", ".png", ".ico"};

/* 1 if dir/index.html is a regular file. */
static int has_index(const char *dir)
{
    char p[PATH_MAX];
    struct stat sb;

    if (snprintf(p, sizeof p, "%s/index.html", dir) >= (int)sizeof p)
        return 0;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Resolves dir into web_dir if it holds index.html. 1 on success. */
static int take(const char *dir)
{
    char real[PATH_MAX];

    if (realpath(dir, real) == NULL || !has_index(real))
        return 0;
    snprintf(web_dir, sizeof web_dir, "%s", real);
    return 1;
}

int api_static_init(char *err, size_t errlen)
{
    const char *env = getenv("COLDCHAIN_WEB_DIR");
    char exe[PATH_MAX], cand[PATH_MAX];
    ssize_t n;

    web_dir[0] = '\0';
    if (env != NULL) {
        if (env[0] == '\0')
            return CC_OK; /* explicitly off */
        if (!take(env)) {
            snprintf(err, errlen, "COLDCHAIN_WEB_DIR: %s is not a directory holding index.html",
                     env);
            return CC_ERR_CONFIG;
        }
        return CC_OK;
    }
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        char *slash;

        exe[n] = '\0';
        for (int up = 0; up <= WEB_PARENTS_MAX; up++) {
            slash = strrchr(exe, '/');
            if (slash == NULL)
                break;
            *slash = '\0'; /* exe is now the directory one level up */
            if (snprintf(cand, sizeof cand, "%s/web", exe[0] ? exe : "") < (int)sizeof cand &&
                take(cand))
                return CC_OK;
        }
    }
    take("web");
    return CC_OK;
}

const char *api_static_dir(void)
{
    return web_dir[0] ? web_dir : NULL;
}

/* 1 if path ends with one of the dashboard's file kinds. */
static int web_ext(const char *path)
{
    size_t n = strlen(path);

    for (size_t i = 0; i < sizeof web_exts / sizeof web_exts[0]; i++) {
        size_t e = strlen(web_exts[i]);

        if (n > e && strcasecmp(path + n - e, web_exts[i]) == 0)
            return 1;
    }
    return 0;
}

int api_static_wanted(const char *method, const char *path)
{
    char p[PATH_MAX];
    struct stat sb;

    if (web_dir[0] == '\0' || method == NULL || path == NULL || path[0] != '/')
        return 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return 0;
    if (strcmp(path, "/") == 0)
        return 1; /* index.html, checked at start */
    if (strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0 || api_route_unlimited(path) ||
        strstr(path, "/.") != NULL || strchr(path, '\\') != NULL || !web_ext(path))
        return 0;
    if (snprintf(p, sizeof p, "%s%s", web_dir, path) >= (int)sizeof p)
        return 0;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}
