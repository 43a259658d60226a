/* ccctl_cert.c - `ccctl device cert SERIAL`: a device certificate (CN = serial, subjectAltName
 * URI urn:coldchain:device:<id>) signed by the development CA of tools/devca.sh, for the
 * broker's device-certificate listener (issue 16 item 2). The id binds the certificate to the
 * devices row: the plugin refuses it once the serial names another row (device deleted and
 * created again, or another renamed to the serial). Production CAs issue their own; this is
 * for development and tests. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cc_auth_rules.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "ccctl.h"

#define CERT_DAYS_DEFAULT 825 /* validity of a device certificate */
#define CERT_DAYS_MAX 3650    /* no longer than the development CA itself */
#define CERT_SERIAL_BITS 128  /* random certificate serial number */
#define CERT_BACKDATE_S 300   /* notBefore this far back: devices with a slightly late clock */
#define CERT_SAN_MAX 64       /* bytes of "URI:" CC_AUTH_CERT_URI_PREFIX and an int64 */

/* devices.id of serial into *id: 1 found, 0 no such device, -1 database error (reported;
 * the store logged the database's message). */
static int device_id_of(const char *db_path, const char *serial, int64_t *id)
{
    static const char sql[] = "SELECT id FROM devices WHERE serial_number = $1";
    struct cc_store *st = NULL;
    struct cc_stmt *s = NULL;
    int found = -1;
    int rc;

    rc = cc_store_open(db_path, CC_STORE_READONLY, &st);
    if (rc == CC_OK)
        rc = cc_stmt_prepare(st, sql, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 1, serial);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_ROW) {
        *id = cc_stmt_column_int64(s, 0);
        found = 1;
    } else if (rc == CC_OK) {
        found = 0;
    }
    if (found < 0) {
        char label[PATH_MAX];

        fprintf(stderr, "ccctl: cannot read devices from %s (%s)\n",
                ccctl_db_label(db_path, label, sizeof label), cc_rc_code(rc));
    }
    cc_stmt_release(s);
    cc_store_close(st);
    return found;
}

/* Reads the CA's certificate and key from dir/ca.crt and dir/ca.key. 0 or -1 (reported). */
static int load_ca(const char *dir, X509 **ca, EVP_PKEY **ca_key)
{
    char path[PATH_MAX];
    FILE *f;

    if (snprintf(path, sizeof path, "%s/ca.crt", dir) >= (int)sizeof path ||
        (f = fopen(path, "r")) == NULL) {
        fprintf(stderr, "ccctl: cannot read %s/ca.crt (create the CA: sh tools/devca.sh %s)\n", dir,
                dir);
        return -1;
    }
    *ca = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (snprintf(path, sizeof path, "%s/ca.key", dir) >= (int)sizeof path ||
        (f = fopen(path, "r")) == NULL) {
        fprintf(stderr, "ccctl: cannot read %s/ca.key\n", dir);
        return -1;
    }
    *ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (*ca == NULL || *ca_key == NULL || X509_check_private_key(*ca, *ca_key) != 1) {
        fprintf(stderr, "ccctl: %s/ca.crt and ca.key are not a certificate and its key\n", dir);
        return -1;
    }
    return 0;
}

static int add_ext(X509 *crt, X509 *ca, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, ca, crt, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return 0;
    ok = X509_add_ext(crt, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* The certificate for device device_id (serial) and its new key, signed by ca. NULL on
 * failure. */
static X509 *issue(const char *serial, int64_t device_id, long days, X509 *ca, EVP_PKEY *ca_key,
                   EVP_PKEY *key)
{
    X509 *crt = X509_new();
    BIGNUM *bn = BN_new();
    X509_NAME *name;
    char san[CERT_SAN_MAX];

    /* In an extension, not in the subject DN: CAs commonly copy a CSR's subject as the
     * requester wrote it, but set the extensions themselves. */
    if (snprintf(san, sizeof san, "URI:" CC_AUTH_CERT_URI_PREFIX "%" PRId64, device_id) >=
        (int)sizeof san)
        goto fail;
    if (crt == NULL || bn == NULL || !X509_set_version(crt, 2) ||
        !BN_rand(bn, CERT_SERIAL_BITS, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt)) ||
        !X509_gmtime_adj(X509_getm_notBefore(crt), -CERT_BACKDATE_S) ||
        !X509_gmtime_adj(X509_getm_notAfter(crt), days * 86400L) || !X509_set_pubkey(crt, key))
        goto fail;
    name = X509_get_subject_name(crt);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"coldchain", -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)serial, -1, -1,
                                    0) ||
        !X509_set_issuer_name(crt, X509_get_subject_name(ca)) ||
        !add_ext(crt, ca, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(crt, ca, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(crt, ca, NID_ext_key_usage, "clientAuth") ||
        !add_ext(crt, ca, NID_subject_alt_name, san) ||
        !add_ext(crt, ca, NID_authority_key_identifier, "keyid") ||
        X509_sign(crt, ca_key, EVP_sha256()) <= 0)
        goto fail;
    BN_free(bn);
    return crt;
fail:
    BN_free(bn);
    X509_free(crt);
    return NULL;
}

/* Writes a PEM file through a temporary name, mode `mode` from the start (a key is never
 * readable by others, not even for a moment). 0 or -1 (reported). */
static int write_pem(const char *path, mode_t mode, X509 *crt, EVP_PKEY *key)
{
    char tmp[PATH_MAX];
    FILE *f = NULL;
    int fd;
    int ok;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        if (fd >= 0)
            close(fd);
        fprintf(stderr, "ccctl: cannot write %s\n", tmp);
        return -1;
    }
    ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, crt);
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        unlink(tmp);
        fprintf(stderr, "ccctl: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int ccctl_device_cert(int argc, char **argv, const struct cc_config *cfg)
{
    static const struct option opts[] = {{"ca-dir", required_argument, NULL, 'c'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"days", required_argument, NULL, 'd'},
                                         {NULL, 0, NULL, 0}};
    char ca_dir[PATH_MAX] = "";
    char out_dir[PATH_MAX] = "";
    char crt_path[PATH_MAX];
    char key_path[PATH_MAX];
    int64_t days = CERT_DAYS_DEFAULT;
    int64_t device_id = 0;
    int found;
    const char *serial;
    X509 *ca = NULL, *crt = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    int rc = CCCTL_EXIT_FAIL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c' && strlen(optarg) < sizeof ca_dir)
            snprintf(ca_dir, sizeof ca_dir, "%s", optarg);
        else if (c == 'o' && strlen(optarg) < sizeof out_dir)
            snprintf(out_dir, sizeof out_dir, "%s", optarg);
        else if (c != 'd' || !ccctl_parse_i64(optarg, 1, CERT_DAYS_MAX, &days))
            return ccctl_usage();
    }
    if (optind != argc - 1)
        return ccctl_usage();
    serial = argv[optind];
    if (!cc_auth_is_device_name(serial)) {
        fprintf(stderr,
                "ccctl: '%s' is not a device serial (1..%d of [A-Za-z0-9._-], not "
                "starting with '" CC_AUTH_OPERATOR_PREFIX "')\n",
                serial, CC_AUTH_SERIAL_MAX);
        return CCCTL_EXIT_DATAERR;
    }
    if (ca_dir[0] == '\0' && ccctl_is_pg_url(cfg->db_path)) {
        fprintf(stderr, "ccctl: COLDCHAIN_DB is a URL, so there is no data directory beside "
                        "it: name the CA with --ca-dir\n");
        return CCCTL_EXIT_USAGE;
    }
    if (ca_dir[0] == '\0') { /* where tools/run.sh keeps the development CA */
        char data[PATH_MAX];
        cc_config_data_dir(cfg, data, sizeof data);
        if (snprintf(ca_dir, sizeof ca_dir, "%s/tls", data) >= (int)sizeof ca_dir)
            return CCCTL_EXIT_USAGE;
    }
    if (out_dir[0] == '\0' &&
        snprintf(out_dir, sizeof out_dir, "%s/devices", ca_dir) >= (int)sizeof out_dir)
        return CCCTL_EXIT_USAGE;
    if (snprintf(crt_path, sizeof crt_path, "%s/%s.crt", out_dir, serial) >= (int)sizeof crt_path ||
        snprintf(key_path, sizeof key_path, "%s/%s.key", out_dir, serial) >= (int)sizeof key_path)
        return CCCTL_EXIT_USAGE;
    /* The certificate names the row, so the row must exist now (COLDCHAIN_DB). */
    found = device_id_of(cfg->db_path, serial, &device_id);
    if (found == 0)
        fprintf(stderr, "ccctl: NOT_FOUND: no device with serial %s\n", serial);
    if (found != 1)
        goto out;
    if (load_ca(ca_dir, &ca, &ca_key) != 0)
        goto out;
    if (mkdir(out_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "ccctl: cannot create %s\n", out_dir);
        goto out;
    }
    key = EVP_EC_gen("P-256");
    crt = key ? issue(serial, device_id, (long)days, ca, ca_key, key) : NULL;
    if (crt == NULL) {
        fprintf(stderr, "ccctl: cannot issue the certificate\n");
        goto out;
    }
    if (write_pem(key_path, 0600, NULL, key) != 0 || write_pem(crt_path, 0644, crt, NULL) != 0)
        goto out;
    cc_log_info("device_cert_issued", "serial=%s device_id=%" PRId64 " days=%" PRId64, serial,
                device_id, days);
    printf("%s\n%s\n", crt_path, key_path);
    rc = CCCTL_EXIT_OK;
out:
    X509_free(crt);
    EVP_PKEY_free(key);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}
