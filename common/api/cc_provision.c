/* cc_provision.c - checks and inserts new users and devices (ccctl and apid). */
#include "cc_provision.h"
#include "cc_auth_rules.h"
#include "cc_input.h"

#include <stddef.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cc_error.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_role.h"
#include "cc_time.h"
#include "cc_validate.h"

/* Collects validation problems: the error tree is created at the first one, and its
 * message is that problem's sentence. A failed allocation is remembered in nomem. */
struct problems {
    cJSON *err; /* NULL until the first problem */
    int count;
    int nomem;
};

static void problem(struct problems *p, const char *field, const char *issue, const char *sentence)
{
    p->count++;
    if (p->nomem)
        return;
    if (p->err == NULL) {
        p->err = cc_error_new(CC_ERR_VALIDATION, sentence);
        if (p->err == NULL) {
            p->nomem = 1;
            return;
        }
    }
    if (cc_error_add_detail(p->err, field, issue) != CC_OK)
        p->nomem = 1;
}

/* Hands the collected problems to the caller: CC_OK when there were none, else
 * CC_ERR_VALIDATION with *err (if err is not NULL) or CC_ERR_NOMEM. */
static int problems_finish(struct problems *p, cJSON **err)
{
    if (p->count == 0)
        return CC_OK;
    if (p->nomem) {
        cJSON_Delete(p->err);
        return CC_ERR_NOMEM;
    }
    if (err != NULL)
        *err = p->err;
    else
        cJSON_Delete(p->err);
    p->err = NULL;
    return CC_ERR_VALIDATION;
}

/* 1 if email has the shape local@domain.tld: one '@', a non-empty local part, a
 * domain holding a dot that neither starts nor ends it, no spaces or control
 * characters, at most CC_EMAIL_MAX bytes. */
static int email_valid(const char *email)
{
    size_t len = strlen(email);
    const char *at = strchr(email, '@');
    const char *domain;
    const char *dot;

    if (len == 0 || len > CC_EMAIL_MAX || at == NULL || at == email)
        return 0;
    if (strchr(at + 1, '@') != NULL)
        return 0;
    for (const unsigned char *u = (const unsigned char *)email; *u; u++) {
        if (*u <= 0x20 || *u == 0x7f)
            return 0;
    }
    if (cc_input_utf8_len(email) < 0)
        return 0;
    domain = at + 1;
    dot = strchr(domain, '.');
    if (*domain == '\0' || dot == NULL || dot == domain || domain[strlen(domain) - 1] == '.')
        return 0;
    return 1;
}

static int role_valid(const char *role)
{
    return cc_role_parse(role) != CC_ROLE_NONE;
}

int cc_provision_serial_valid(const char *serial)
{
    size_t n = 0;

    if (serial == NULL)
        return 0;
    for (const char *c = serial; *c; c++, n++) {
        if (n >= CC_SERIAL_MAX)
            return 0;
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return 0;
    }
    return n > 0;
}

/* The inserts. ON CONFLICT DO NOTHING: an e-mail or serial already taken inserts no row
 * (RETURNING none: CC_ERR_CONFLICT) instead of failing, because on PostgreSQL a failed
 * statement would abort the caller's transaction, and cc_bulk goes on after a conflict to
 * report every bad row. users.email's key is case-insensitive in both dialects (COLLATE
 * NOCASE, citext). */
static const char sql_user_insert[] =
    "INSERT INTO users (email, password_hash, role, name, created_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO NOTHING RETURNING id";
static const char sql_cell_exists[] = "SELECT 1 FROM cold_cells WHERE id = $1";
static const char sql_device_insert[] =
    "INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, "
    "api_key_prefix, firmware_version, status, created_at) "
    "VALUES ($1, $2, $3, $4, $5, 'NEVER_SEEN', $6) ON CONFLICT (serial_number) DO NOTHING "
    "RETURNING id";
static const char sql_key_update[] =
    "UPDATE devices SET api_key_hash = $1, api_key_prefix = $2 WHERE id = $3";

/* Opens a transaction unless the caller has one; *own says whether we did. */
static int tx_open(struct cc_store *st, int *own)
{
    *own = 0;
    if (cc_store_in_transaction(st))
        return CC_OK;
    if (cc_store_begin(st) != CC_OK)
        return CC_ERR_DB;
    *own = 1;
    return CC_OK;
}

static int tx_close(struct cc_store *st, int own, int rc)
{
    if (!own)
        return rc;
    if (rc == CC_OK)
        return cc_store_commit(st) == CC_OK ? CC_OK : CC_ERR_DB;
    cc_store_rollback(st);
    return rc;
}

/* Steps a bound INSERT ... RETURNING id: *id and CC_OK, CC_ERR_CONFLICT when it inserted
 * nothing (ON CONFLICT DO NOTHING), or CC_ERR_DB. Releases s. */
static int insert_returning(struct cc_stmt *s, int64_t *id)
{
    int rc = cc_stmt_step(s);

    if (rc == CC_ROW) {
        *id = cc_stmt_column_int64(s, 0);
        rc = cc_stmt_step(s); /* to the end: the statement is finished, not just begun */
    } else if (rc == CC_OK) {
        rc = CC_ERR_CONFLICT;
    }
    cc_stmt_release(s);
    return rc;
}

int cc_provision_user(struct cc_store *st, const char *email, const char *password,
                      const char *role, const char *name, int64_t *id, cJSON **err)
{
    struct problems p = {0};
    char hash[CC_PASSWORD_HASH_MAX];
    struct cc_stmt *s = NULL;
    int own = 0;
    int rc;
    long name_len;
    size_t pw_len;
    int64_t new_id = 0;

    if (email == NULL || *email == '\0')
        problem(&p, "email", "required", "email is required");
    else if (strlen(email) > CC_EMAIL_MAX)
        problem(&p, "email", "too_long", "email must be at most 254 characters");
    else if (!email_valid(email))
        problem(&p, "email", "invalid", "email must be a valid e-mail address");

    pw_len = password == NULL ? 0 : strlen(password);
    if (pw_len == 0)
        problem(&p, "password", "required", "password is required");
    else if (pw_len < CC_PASSWORD_MIN)
        problem(&p, "password", "too_short", "password must be at least 8 characters");
    else if (pw_len > CC_PASSWORD_MAX)
        problem(&p, "password", "too_long", "password must be at most 256 characters");

    if (role == NULL || *role == '\0')
        problem(&p, "role", "required", "role is required");
    else if (!role_valid(role))
        problem(&p, "role", "invalid", "role must be CUSTOMER, TECHNICIAN or ADMIN");

    name_len = name == NULL ? 0 : cc_input_utf8_len(name);
    if (name == NULL || *name == '\0')
        problem(&p, "name", "required", "name is required");
    else if (name_len < 0)
        problem(&p, "name", "invalid", "name must be UTF-8 text without control characters");
    else if (name_len > CC_NAME_MAX)
        problem(&p, "name", "too_long", "name must be at most 200 characters");

    rc = problems_finish(&p, err);
    if (rc != CC_OK)
        return rc;

    /* Hash before taking the write lock: scrypt is slow on purpose. */
    if (cc_password_hash(password, hash, sizeof hash) != CC_OK)
        return CC_ERR_INTERNAL;

    rc = tx_open(st, &own);
    if (rc != CC_OK)
        goto out;
    rc = cc_stmt_prepare(st, sql_user_insert, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_all(s, "tttti", email, hash, role, name, (int64_t)cc_now_ms());
    if (rc == CC_OK)
        rc = insert_returning(s, &new_id);
    else
        cc_stmt_release(s);

out:
    OPENSSL_cleanse(hash, sizeof hash);
    rc = tx_close(st, own, rc);
    if (rc == CC_OK) {
        *id = new_id;
        if (own) /* else the caller's transaction may still roll back: it logs */
            cc_log_info("user_created", "id=%lld role=%s", (long long)new_id, role);
    }
    return rc;
}

/* Looks the cold cell up: CC_OK, CC_ERR_NOT_FOUND or CC_ERR_DB. */
static int cell_exists(struct cc_store *st, int64_t cold_cell_id)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql_cell_exists, &s);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 1, cold_cell_id);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_ROW)
        rc = CC_OK;
    else if (rc == CC_OK)
        rc = CC_ERR_NOT_FOUND;
    cc_stmt_release(s);
    return rc;
}

/* A fresh key with the hash and prefix stored for it. */
static int key_make(char key[CC_API_KEY_LEN], char hash[CC_SHA256_HEX_LEN],
                    char prefix[CC_API_KEY_PREFIX_LEN])
{
    char unused_hash[CC_SHA256_HEX_LEN];
    char unused_prefix[CC_API_KEY_PREFIX_LEN];

    if (cc_api_key_new(key, unused_hash, unused_prefix) != CC_OK)
        return CC_ERR_INTERNAL;
    if (strlen(key) != CC_API_KEY_LEN - 1)
        return CC_ERR_INTERNAL;
    cc_sha256_hex(key, strlen(key), hash);
    memcpy(prefix, key, CC_API_KEY_PREFIX_LEN - 1);
    prefix[CC_API_KEY_PREFIX_LEN - 1] = '\0';
    return CC_OK;
}

int cc_provision_device(struct cc_store *st, int64_t cold_cell_id, const char *serial,
                        const char *firmware, int64_t *id, char key[CC_API_KEY_LEN], cJSON **err)
{
    struct problems p = {0};
    char new_key[CC_API_KEY_LEN];
    char hash[CC_SHA256_HEX_LEN];
    char prefix[CC_API_KEY_PREFIX_LEN];
    struct cc_stmt *s = NULL;
    int own = 0;
    int rc;
    int64_t new_id = 0;

    if (cold_cell_id <= 0)
        problem(&p, "coldCellId", "invalid", "coldCellId must be a positive integer");
    if (serial == NULL || *serial == '\0')
        problem(&p, "serialNumber", "required", "serialNumber is required");
    else if (strlen(serial) > CC_SERIAL_MAX)
        problem(&p, "serialNumber", "too_long", "serialNumber must be at most 64 characters");
    else if (!cc_provision_serial_valid(serial))
        problem(&p, "serialNumber", "invalid",
                "serialNumber may hold only letters, digits, '.', '_' and '-'");
    else if (cc_auth_name_reserved(serial)) /* the serial is the device's MQTT client id */
        problem(&p, "serialNumber", "reserved",
                "serialNumber must not start with '" CC_AUTH_OPERATOR_PREFIX
                "' (client ids reserved for the operators' programs)");
    if (firmware != NULL && *firmware == '\0')
        firmware = NULL;
    if (firmware != NULL) {
        long n = cc_input_utf8_len(firmware);

        if (n < 0)
            problem(&p, "firmwareVersion", "invalid",
                    "firmwareVersion must be text without control characters");
        else if (strlen(firmware) > CC_FIRMWARE_MAX)
            problem(&p, "firmwareVersion", "too_long",
                    "firmwareVersion must be at most 64 characters");
    }
    rc = problems_finish(&p, err);
    if (rc != CC_OK)
        return rc;

    rc = key_make(new_key, hash, prefix);
    if (rc != CC_OK)
        goto out;
    rc = tx_open(st, &own);
    if (rc != CC_OK)
        goto out;
    rc = cell_exists(st, cold_cell_id);
    if (rc != CC_OK)
        goto out;
    rc = cc_stmt_prepare(st, sql_device_insert, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 1, serial);
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 2, cold_cell_id);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 3, hash);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 4, prefix);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 5, firmware); /* NULL binds NULL */
    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(s, 6, cc_now_ms());
    if (rc == CC_OK)
        rc = insert_returning(s, &new_id);
    else
        cc_stmt_release(s);

out:
    rc = tx_close(st, own, rc);
    if (rc == CC_OK) {
        *id = new_id;
        memcpy(key, new_key, CC_API_KEY_LEN);
        if (own)
            cc_log_info("device_created", "id=%lld serial=%s cold_cell_id=%lld", (long long)new_id,
                        serial, (long long)cold_cell_id);
    }
    OPENSSL_cleanse(new_key, sizeof new_key);
    return rc;
}

int cc_provision_regenerate_key(struct cc_store *st, int64_t device_id, char key[CC_API_KEY_LEN])
{
    char new_key[CC_API_KEY_LEN];
    char hash[CC_SHA256_HEX_LEN];
    char prefix[CC_API_KEY_PREFIX_LEN];
    struct cc_stmt *s = NULL;
    int own = 0;
    int rc;

    rc = key_make(new_key, hash, prefix);
    if (rc != CC_OK)
        goto out;
    rc = tx_open(st, &own);
    if (rc != CC_OK)
        goto out;
    rc = cc_stmt_prepare(st, sql_key_update, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_all(s, "tti", hash, prefix, device_id);
    if (rc == CC_OK)
        rc = cc_stmt_step(s);
    if (rc == CC_OK && cc_stmt_changes(s) != 1)
        rc = CC_ERR_NOT_FOUND;
    cc_stmt_release(s);

out:
    rc = tx_close(st, own, rc);
    if (rc == CC_OK) {
        memcpy(key, new_key, CC_API_KEY_LEN);
        if (own)
            cc_log_info("device_key_regenerated", "id=%lld", (long long)device_id);
    }
    OPENSSL_cleanse(new_key, sizeof new_key);
    return rc;
}
