/* ccctl_import.c - `ccctl device import FILE [--format csv|json]`: bulk provisioning.
 *
 * Reads the whole file (at most CC_BULK_MAX_INPUT bytes; "-" is stdin), checks every
 * row (cc_bulk_parse), then creates every device in one transaction
 * (cc_bulk_provision): one bad row and nothing is created, with every bad row reported
 * on stderr by its line number. On success stdout receives "serialNumber,apiKey" and
 * one line per device: the keys are shown this once. Progress goes to stderr. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cc_bulk.h"
#include "cc_error.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "ccctl.h"

#define PROGRESS_EVERY 500 /* devices between two progress lines when stderr is no tty */

struct progress {
    int tty; /* stderr is a terminal: rewrite one line */
};

static void on_progress(void *ctx, size_t done, size_t total)
{
    const struct progress *pg = ctx;

    if (pg->tty)
        fprintf(stderr, "\rccctl: import: %zu/%zu devices", done, total);
    else if (done % PROGRESS_EVERY == 0 || done == total)
        fprintf(stderr, "ccctl: import: %zu/%zu devices\n", done, total);
    if (pg->tty && done == total)
        fputc('\n', stderr);
}

/* Reads path ("-": stdin) into a malloc'd buffer of at most CC_BULK_MAX_INPUT bytes
 * (one more is read to notice a larger file). CC_OK, CC_ERR_TOO_LARGE, CC_ERR_IO or
 * CC_ERR_NOMEM. */
static int read_all(const char *path, char **out, size_t *outlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = CC_BULK_MAX_INPUT + 1, len = 0;
    char *buf = NULL;
    int rc = CC_OK;

    if (f == NULL) {
        fprintf(stderr, "ccctl: cannot open %s: %s\n", path, strerror(errno));
        return CC_ERR_IO;
    }
    buf = malloc(cap + 1);
    if (buf == NULL) {
        rc = CC_ERR_NOMEM;
        goto out;
    }
    while (len < cap) {
        size_t n = fread(buf + len, 1, cap - len, f);

        if (n == 0)
            break;
        len += n;
    }
    if (ferror(f)) {
        fprintf(stderr, "ccctl: cannot read %s: %s\n", path, strerror(errno));
        rc = CC_ERR_IO;
    } else if (len > CC_BULK_MAX_INPUT) {
        fprintf(stderr, "ccctl: %s is larger than %d bytes\n", path, CC_BULK_MAX_INPUT);
        rc = CC_ERR_TOO_LARGE;
    }
out:
    if (f != stdin)
        fclose(f);
    if (rc != CC_OK) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return CC_OK;
}

/* Prints every problem of a cc_bulk error, one line each, by line number. */
static void print_problems(const char *path, const cJSON *err)
{
    const cJSON *details =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(err, "error"), "details");
    const cJSON *d;
    int n = cJSON_GetArraySize(details);

    fprintf(stderr, "ccctl: %s: %s: %s\n", path, cc_error_code(err), cc_error_message(err));
    cJSON_ArrayForEach(d, details)
    {
        const cJSON *field = cJSON_GetObjectItemCaseSensitive(d, "field");
        const cJSON *issue = cJSON_GetObjectItemCaseSensitive(d, "issue");
        const cJSON *line = cJSON_GetObjectItemCaseSensitive(d, "line");

        if (cJSON_IsNumber(line))
            fprintf(stderr, "  %s:%d: %s: %s\n", path, line->valueint,
                    cJSON_IsString(field) ? field->valuestring : "",
                    cJSON_IsString(issue) ? issue->valuestring : "");
        else
            fprintf(stderr, "  %s: %s: %s\n", path, cJSON_IsString(field) ? field->valuestring : "",
                    cJSON_IsString(issue) ? issue->valuestring : "");
    }
    fprintf(stderr, "ccctl: %d problem%s; nothing was created\n", n > 0 ? n : 1, n == 1 ? "" : "s");
}

int ccctl_device_import(int argc, char **argv, const struct cc_config *cfg)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    struct progress pg = {isatty(STDERR_FILENO)};
    struct cc_store *st = NULL;
    struct cc_bulk *b = NULL;
    const char *path;
    char *buf = NULL;
    size_t len = 0;
    cJSON *err = NULL;
    int format = 0;
    int c, rc;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'f' && (format = cc_bulk_format_parse(optarg)) != 0)
            continue;
        if (c == 'f')
            fprintf(stderr, "ccctl: --format must be csv or json\n");
        return ccctl_usage();
    }
    if (optind != argc - 1 || argv[optind][0] == '\0')
        return ccctl_usage();
    path = argv[optind];
    if (format == 0)
        format = cc_bulk_format_guess(path);

    c = read_all(path, &buf, &len);
    if (c != CC_OK)
        return c == CC_ERR_TOO_LARGE ? CCCTL_EXIT_DATAERR : CCCTL_EXIT_FAIL;
    c = cc_bulk_parse(buf, len, format, &b, &err);
    free(buf);
    if (c != CC_OK) {
        if (err != NULL)
            print_problems(path, err);
        else
            fprintf(stderr, "ccctl: reading %s failed (%s)\n", path, cc_rc_code(c));
        cJSON_Delete(err);
        return c == CC_ERR_NOMEM ? CCCTL_EXIT_FAIL : CCCTL_EXIT_DATAERR;
    }
    fprintf(stderr, "ccctl: import: %zu devices read from %s\n", b->count, path);

    if (cc_store_open(cfg->db_path, CC_STORE_CREATE | CC_STORE_MIGRATE, &st) != CC_OK) {
        char label[PATH_MAX];

        fprintf(stderr, "ccctl: cannot open database %s\n",
                ccctl_db_label(cfg->db_path, label, sizeof label));
        rc = CCCTL_EXIT_FAIL;
        goto out;
    }
    c = cc_bulk_provision(st, NULL, b, on_progress, &pg, &err);
    if (c != CC_OK) {
        if (err != NULL)
            print_problems(path, err);
        else
            fprintf(stderr, "ccctl: the import failed (%s); nothing was created\n", cc_rc_code(c));
        rc = CCCTL_EXIT_FAIL;
        goto out;
    }
    /* The keys exist only here: print them once. */
    printf("serialNumber,apiKey\n");
    for (size_t i = 0; i < b->count; i++)
        printf("%s,%s\n", b->items[i].serial, b->items[i].key);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr,
                "ccctl: writing the keys failed: %s; the %zu devices exist: "
                "regenerate their keys\n",
                strerror(errno), b->count);
        rc = CCCTL_EXIT_FAIL;
        goto out;
    }
    fprintf(stderr, "ccctl: imported %zu devices; their API keys (on stdout) are shown once\n",
            b->count);
    rc = CCCTL_EXIT_OK;
out:
    cJSON_Delete(err);
    cc_bulk_free(b);
    cc_store_close(st);
    return rc;
}
