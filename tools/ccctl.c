/* ccctl.c - the coldchain admin CLI: migrate, seed, user add, device add, simulate
 * (device import: ccctl_import.c; backup and restore: ccctl_backup.c, on PostgreSQL
 * ccctl_pg.c). Every command runs on SQLite or PostgreSQL, whichever COLDCHAIN_DB names:
 * SQL goes through the store (cc_dbi.h).
 *
 * Configuration comes from the environment like the daemons' (COLDCHAIN_DB, MQTT_URL,
 * LOG_LEVEL, ...); a bad value exits 2 naming the variable. Logs go to stderr as
 * cc_log lines; results (ids, keys) go to stdout. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cc_config.h"
#include "cc_error.h"
#include "cc_log.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_role.h"
#include "cc_seed.h"
#include "cc_store.h"
#include "cc_time.h"
#include "ccctl.h"

static const char usage_text[] =
    "usage: ccctl <command> [options]\n"
    "\n"
    "  migrate                      create COLDCHAIN_DB if missing, apply migrations,\n"
    "                               print the schema version\n"
    "  seed [--keys-file F]         migrate, then load the SPEC §7 demo data into an empty\n"
    "                               database; prints the device keys once (F receives\n"
    "                               \"serial,key\" lines, mode 0600)\n"
    "  user add --email E --password P --role CUSTOMER|TECHNICIAN|ADMIN --name N\n"
    "           [--link-technician ID]\n"
    "                               prints the new user's id; the password may come from\n"
    "                               CCCTL_PASSWORD instead of --password\n"
    "  device add --cell ID --serial S [--firmware V]\n"
    "                               prints \"serial,key\" (the API key is shown once)\n"
    "  device import FILE [--format csv|json]\n"
    "                               create devices in one transaction from a CSV file (header\n"
    "                               serialNumber,coldCellId,firmwareVersion) or a JSON array\n"
    "                               of such objects (FILE - is stdin); one bad row and none\n"
    "                               is created; prints \"serialNumber,apiKey\" lines once\n"
    "  device cert SERIAL [--ca-dir D] [--out D] [--days N]\n"
    "                               a certificate for an existing device (CN = SERIAL, SAN\n"
    "                               urn:coldchain:device:<id>; N days, default 825)\n"
    "                               signed by the development CA D (default: tls/ beside\n"
    "                               COLDCHAIN_DB, made by tools/devca.sh; required when\n"
    "                               COLDCHAIN_DB is a URL); writes\n"
    "                               D/devices/SERIAL.crt and .key (0600) or into --out\n"
    "  backup FILE                  copy COLDCHAIN_DB to FILE, safe while ingestd and apid\n"
    "                               run: SQLite's online backup API, or for a PostgreSQL\n"
    "                               URL a pg_dump custom-format (-Fc) archive (a password\n"
    "                               in the URL goes to pg_dump through a 0600 PGPASSFILE)\n"
    "  restore FILE                 the reverse: FILE into COLDCHAIN_DB, which must not\n"
    "                               exist (SQLite) or must hold no table (PostgreSQL:\n"
    "                               pg_restore in one transaction)\n"
    "  simulate [--devices S:K,...|--keys-file F] [--rate N] [--duration S] [--count N]\n"
    "           [--url tcp://127.0.0.1:1883] [--qos 0|1] [--high-ratio R]\n"
    "           [--profile freezer|fridge] [--cafile CA [--cert C --key K]]\n"
    "                               publish readings as the devices, paced to N/s in total;\n"
    "                               --cafile: over TLS (--url ssl://127.0.0.1:8883), the\n"
    "                               broker's certificate checked against CA; --cert/--key:\n"
    "                               a device certificate (--url ssl://127.0.0.1:8884)\n"
    "\n"
    "Environment: COLDCHAIN_DB (data/coldchain.db, or a postgresql:// URL), MQTT_URL,\n"
    "LOG_LEVEL, LOG_FORMAT.\n"
    "Exit: 0 ok, 1 failed, 2 bad configuration, 64 usage, 65 invalid field.\n";

int ccctl_usage(void)
{
    fputs(usage_text, stderr);
    return CCCTL_EXIT_USAGE;
}

int ccctl_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s == '\0')
        return 0;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

int ccctl_parse_double(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    double v;

    if (s == NULL || *s == '\0')
        return 0;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

/* Prints a SPEC §5 error object for a person: the message, then one line per detail. */
static void print_error(const cJSON *err)
{
    const cJSON *details =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(err, "error"), "details");
    const cJSON *d;

    fprintf(stderr, "ccctl: %s: %s\n", cc_error_code(err), cc_error_message(err));
    cJSON_ArrayForEach(d, details)
    {
        const cJSON *field = cJSON_GetObjectItemCaseSensitive(d, "field");
        const cJSON *issue = cJSON_GetObjectItemCaseSensitive(d, "issue");

        if (cJSON_IsString(field) && cJSON_IsString(issue))
            fprintf(stderr, "  %s: %s\n", field->valuestring, issue->valuestring);
    }
}

static int open_store(const struct cc_config *cfg, struct cc_store **st)
{
    char label[PATH_MAX];

    if (cc_store_open(cfg->db_path, CC_STORE_CREATE | CC_STORE_MIGRATE, st) != CC_OK) {
        fprintf(stderr, "ccctl: cannot open database %s\n",
                ccctl_db_label(cfg->db_path, label, sizeof label));
        return CCCTL_EXIT_FAIL;
    }
    return CCCTL_EXIT_OK;
}

/* getopt_long over argv[0..argc) of a subcommand: argv[0] is its name. */
static void getopt_reset(void)
{
    optind = 1;
    opterr = 0;
}

static int cmd_migrate(int argc, char **argv, const struct cc_config *cfg)
{
    struct cc_store *st = NULL;
    char label[PATH_MAX];
    int version = 0;
    int rc;

    (void)argv;
    if (argc != 1)
        return ccctl_usage();
    rc = open_store(cfg, &st);
    if (rc != CCCTL_EXIT_OK)
        return rc;
    if (cc_store_schema_version(st, &version) != CC_OK) {
        fprintf(stderr, "ccctl: cannot read the schema version of %s\n",
                ccctl_db_label(cfg->db_path, label, sizeof label));
        rc = CCCTL_EXIT_FAIL;
    } else {
        printf("schema version %d\n", version);
    }
    cc_store_close(st);
    return rc;
}

/* Writes "serial,key" lines to path through a 0600 temporary file and a rename, so
 * the file is never readable by others nor half-written. CC_OK or CC_ERR_IO. */
static int write_keys_file(const char *path, const struct cc_seed_key keys[CC_SEED_DEVICES])
{
    char tmp[PATH_MAX];
    FILE *f = NULL;
    int fd = -1;
    int ok = 1;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return CC_ERR_IO;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0)
        goto fail;
    f = fdopen(fd, "w");
    if (f == NULL)
        goto fail;
    fd = -1;
    for (int d = 0; d < CC_SEED_DEVICES; d++)
        ok &= fprintf(f, "%s,%s\n", keys[d].serial, keys[d].key) > 0;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    f = NULL;
    if (!ok || rename(tmp, path) != 0)
        goto fail;
    return CC_OK;

fail:
    fprintf(stderr, "ccctl: cannot write keys file %s: %s\n", path, strerror(errno));
    if (f != NULL)
        fclose(f);
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return CC_ERR_IO;
}

static int cmd_seed(int argc, char **argv, const struct cc_config *cfg)
{
    static const struct option opts[] = {
        {"keys-file", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    struct cc_seed_key keys[CC_SEED_DEVICES];
    struct cc_store *st = NULL;
    char label[PATH_MAX];
    const char *keys_file = NULL;
    int seeded = 0;
    int c;
    int rc;

    getopt_reset();
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'k')
            keys_file = optarg;
        else
            return ccctl_usage();
    }
    if (optind != argc || (keys_file != NULL && *keys_file == '\0'))
        return ccctl_usage();

    rc = open_store(cfg, &st);
    if (rc != CCCTL_EXIT_OK)
        return rc;
    c = cc_seed_keys(st, cc_now_ms(), stdout, &seeded, keys);
    cc_store_close(st);
    if (c != CC_OK && !seeded) {
        fprintf(stderr, "ccctl: seeding %s failed (%s)\n",
                ccctl_db_label(cfg->db_path, label, sizeof label), cc_rc_code(c));
        return CCCTL_EXIT_FAIL;
    }
    if (!seeded) {
        printf("database already seeded: nothing changed\n");
        if (keys_file != NULL)
            fprintf(stderr, "ccctl: keys file %s left as it is\n", keys_file);
        return CCCTL_EXIT_OK;
    }
    rc = c == CC_OK ? CCCTL_EXIT_OK : CCCTL_EXIT_FAIL; /* CC_ERR_IO: the report */
    if (keys_file != NULL && write_keys_file(keys_file, keys) != CC_OK)
        rc = CCCTL_EXIT_FAIL;
    OPENSSL_cleanse(keys, sizeof keys);
    return rc;
}

/* Links technician tech_id to customer customer_id inside the open transaction:
 * CC_OK, CC_ERR_VALIDATION (tech_id is not a technician) or CC_ERR_DB. */
static int link_technician(struct cc_store *st, int64_t tech_id, int64_t customer_id)
{
    static const char sql_role[] = "SELECT role FROM users WHERE id = $1";
    static const char sql_link[] =
        "INSERT INTO technician_customers (technician_id, customer_id) VALUES ($1, $2)";
    struct cc_stmt *s = NULL;
    const char *role;
    int rc;

    rc = cc_stmt_prepare(st, sql_role, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, tech_id);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_OK || (rc == CC_ROW && ((role = cc_stmt_column_text(s, 0)) == NULL ||
                                         cc_role_parse(role) != CC_ROLE_TECHNICIAN))) {
        fprintf(stderr, "ccctl: --link-technician: user %" PRId64 " is not a technician\n",
                tech_id);
        rc = CC_ERR_VALIDATION;
        goto out;
    }
    if (rc != CC_ROW)
        goto fail;
    cc_stmt_release(s);
    s = NULL;
    rc = cc_stmt_prepare(st, sql_link, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, tech_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 2, customer_id);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc != CC_OK)
        goto fail;
out:
    cc_stmt_release(s);
    return rc;
fail: /* the store logged the database's message */
    fprintf(stderr, "ccctl: linking the technician failed (%s)\n", cc_rc_code(rc));
    cc_stmt_release(s);
    return CC_ERR_DB;
}

static int cmd_user_add(int argc, char **argv, const struct cc_config *cfg)
{
    static const struct option opts[] = {
        {"email", required_argument, NULL, 'e'},
        {"password", required_argument, NULL, 'p'},
        {"role", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'n'},
        {"link-technician", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *email = NULL, *password = NULL, *role = NULL, *name = NULL;
    int64_t tech_id = 0;
    int64_t id = 0;
    struct cc_store *st = NULL;
    char label[PATH_MAX];
    cJSON *err = NULL;
    int in_tx = 0;
    int c;
    int rc;

    getopt_reset();
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            email = optarg;
            break;
        case 'p':
            password = optarg;
            break;
        case 'r':
            role = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 't':
            if (!ccctl_parse_i64(optarg, 1, INT64_MAX, &tech_id)) {
                fprintf(stderr, "ccctl: --link-technician needs a user id\n");
                return ccctl_usage();
            }
            break;
        default:
            return ccctl_usage();
        }
    }
    if (password == NULL)
        password = getenv("CCCTL_PASSWORD");
    if (optind != argc || email == NULL || password == NULL || role == NULL || name == NULL)
        return ccctl_usage();
    if (tech_id != 0 && cc_role_parse(role) != CC_ROLE_CUSTOMER) {
        fprintf(stderr, "ccctl: --link-technician applies to a CUSTOMER only\n");
        return ccctl_usage();
    }

    rc = open_store(cfg, &st);
    if (rc != CCCTL_EXIT_OK)
        return rc;
    if (cc_store_begin(st) != CC_OK) {
        fprintf(stderr, "ccctl: cannot start a transaction on %s\n",
                ccctl_db_label(cfg->db_path, label, sizeof label));
        rc = CCCTL_EXIT_FAIL;
        goto out;
    }
    in_tx = 1;
    c = cc_provision_user(st, email, password, role, name, &id, &err);
    if (c == CC_OK && tech_id != 0)
        c = link_technician(st, tech_id, id);
    if (c == CC_OK && cc_store_commit(st) != CC_OK)
        c = CC_ERR_DB;
    if (c == CC_OK) {
        in_tx = 0;
        cc_log_info("user_created", "id=%" PRId64 " role=%s%s", id, role,
                    tech_id != 0 ? " linked to a technician" : "");
        printf("%" PRId64 "\n", id);
        rc = CCCTL_EXIT_OK;
    } else if (c == CC_ERR_VALIDATION) {
        if (err != NULL)
            print_error(err);
        rc = CCCTL_EXIT_DATAERR;
    } else if (c == CC_ERR_CONFLICT) {
        fprintf(stderr, "ccctl: CONFLICT: a user with e-mail %s exists\n", email);
        rc = CCCTL_EXIT_FAIL;
    } else {
        fprintf(stderr, "ccctl: creating the user failed (%s)\n", cc_rc_code(c));
        rc = CCCTL_EXIT_FAIL;
    }
out:
    if (in_tx)
        cc_store_rollback(st);
    cJSON_Delete(err);
    cc_store_close(st);
    return rc;
}

static int cmd_device_add(int argc, char **argv, const struct cc_config *cfg)
{
    static const struct option opts[] = {
        {"cell", required_argument, NULL, 'c'},
        {"serial", required_argument, NULL, 's'},
        {"firmware", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *serial = NULL, *firmware = NULL;
    int64_t cell_id = 0;
    int64_t id = 0;
    char key[CC_API_KEY_LEN];
    struct cc_store *st = NULL;
    cJSON *err = NULL;
    int c;
    int rc;

    getopt_reset();
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (!ccctl_parse_i64(optarg, 1, INT64_MAX, &cell_id)) {
                fprintf(stderr, "ccctl: --cell needs a cold cell id\n");
                return ccctl_usage();
            }
            break;
        case 's':
            serial = optarg;
            break;
        case 'f':
            firmware = optarg;
            break;
        default:
            return ccctl_usage();
        }
    }
    if (optind != argc || cell_id == 0 || serial == NULL)
        return ccctl_usage();

    rc = open_store(cfg, &st);
    if (rc != CCCTL_EXIT_OK)
        return rc;
    c = cc_provision_device(st, cell_id, serial, firmware, &id, key, &err);
    switch (c) {
    case CC_OK:
        printf("%s,%s\n", serial, key);
        fflush(stdout);
        fprintf(stderr,
                "ccctl: device %" PRId64 " created in cold cell %" PRId64
                "; its API key (on stdout) is shown once\n",
                id, cell_id);
        OPENSSL_cleanse(key, sizeof key);
        rc = CCCTL_EXIT_OK;
        break;
    case CC_ERR_VALIDATION:
        if (err != NULL)
            print_error(err);
        rc = CCCTL_EXIT_DATAERR;
        break;
    case CC_ERR_NOT_FOUND:
        fprintf(stderr, "ccctl: NOT_FOUND: no cold cell %" PRId64 "\n", cell_id);
        rc = CCCTL_EXIT_FAIL;
        break;
    case CC_ERR_CONFLICT:
        fprintf(stderr, "ccctl: CONFLICT: a device with serial %s exists\n", serial);
        rc = CCCTL_EXIT_FAIL;
        break;
    default:
        fprintf(stderr, "ccctl: creating the device failed (%s)\n", cc_rc_code(c));
        rc = CCCTL_EXIT_FAIL;
        break;
    }
    cJSON_Delete(err);
    cc_store_close(st);
    return rc;
}

int main(int argc, char **argv)
{
    struct cc_config cfg;
    char err[512];
    const char *cmd;
    const char *sub = NULL;

    if (argc < 2)
        return ccctl_usage();
    cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return CCCTL_EXIT_OK;
    }
    if (strcmp(cmd, "user") == 0 || strcmp(cmd, "device") == 0) {
        if (argc < 3 || (strcmp(argv[2], "add") != 0 &&
                         (strcmp(cmd, "device") != 0 ||
                          (strcmp(argv[2], "import") != 0 && strcmp(argv[2], "cert") != 0))))
            return ccctl_usage();
        sub = argv[2];
    } else if (strcmp(cmd, "migrate") != 0 && strcmp(cmd, "seed") != 0 &&
               strcmp(cmd, "simulate") != 0 && strcmp(cmd, "backup") != 0 &&
               strcmp(cmd, "restore") != 0) {
        fprintf(stderr, "ccctl: unknown command '%s'\n", cmd);
        return ccctl_usage();
    }

    if (cc_config_load(&cfg, err, sizeof err) != CC_OK) {
        fprintf(stderr, "ccctl: %s\n", err);
        return CCCTL_EXIT_CONFIG;
    }
    cc_log_init("ccctl", cfg.log_level, cfg.log_json);

    /* Each subcommand sees its own argv: argv[0] is its name. */
    if (sub != NULL) {
        if (strcmp(cmd, "user") == 0)
            return cmd_user_add(argc - 2, argv + 2, &cfg);
        if (strcmp(sub, "import") == 0)
            return ccctl_device_import(argc - 2, argv + 2, &cfg);
        if (strcmp(sub, "cert") == 0)
            return ccctl_device_cert(argc - 2, argv + 2, &cfg);
        return cmd_device_add(argc - 2, argv + 2, &cfg);
    }
    if (strcmp(cmd, "backup") == 0)
        return ccctl_backup(argc - 1, argv + 1, &cfg);
    if (strcmp(cmd, "restore") == 0)
        return ccctl_restore(argc - 1, argv + 1, &cfg);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(argc - 1, argv + 1, &cfg);
    if (strcmp(cmd, "seed") == 0)
        return cmd_seed(argc - 1, argv + 1, &cfg);
    return ccctl_simulate(argc - 1, argv + 1, &cfg);
}
