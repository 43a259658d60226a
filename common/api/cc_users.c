/* cc_users.c - users and technician-customer links for the admin routes. */
#include "cc_users.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cc_audit.h"
#include "cc_crypto.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_input.h"
#include "cc_log.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_time.h"

#define USER_COLS                                                                                  \
    "u.id, u.email, u.role, u.name, u.disabled, u.created_at, "                                    \
    "CASE WHEN u.role = 'TECHNICIAN' THEN (SELECT json_group_array(x.customer_id) FROM "           \
    "(SELECT customer_id FROM technician_customers WHERE technician_id = u.id "                    \
    "ORDER BY customer_id) x) END"

static const char sql_principal[] =
    "SELECT role, disabled, token_version, created_at FROM users WHERE id = ?1";
static const char sql_list[] = "SELECT " USER_COLS " FROM users u WHERE (?1 = 4 OR u.id = ?2) "
                               "ORDER BY u.id LIMIT ?3 OFFSET ?4";
static const char sql_count[] = "SELECT count(*) FROM users u WHERE (?1 = 4 OR u.id = ?2)";
static const char sql_get[] = "SELECT " USER_COLS " FROM users u WHERE u.id = ?1";
static const char sql_update[] =
    "UPDATE users SET email = coalesce(?2, email), password_hash = coalesce(?3, password_hash),"
    " role = coalesce(?4, role), name = coalesce(?5, name), disabled = coalesce(?6, disabled)"
    " WHERE id = ?1";
static const char sql_role_of[] = "SELECT role FROM users WHERE id = ?1";
static const char sql_owns_locations[] = "SELECT count(*) FROM locations WHERE customer_id = ?1";
static const char sql_unlink_as_tech[] =
    "DELETE FROM technician_customers WHERE technician_id = ?1";
static const char sql_unlink_as_cust[] = "DELETE FROM technician_customers WHERE customer_id = ?1";
static const char sql_revoke_tokens[] =
    "UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL";
static const char sql_delete[] = "DELETE FROM users WHERE id = ?1";
static const char sql_link[] =
    "INSERT OR IGNORE INTO technician_customers (technician_id, customer_id) VALUES (?1, ?2)";
static const char sql_unlink[] =
    "DELETE FROM technician_customers WHERE technician_id = ?1 AND customer_id = ?2";

static cJSON *user_row(sqlite3_stmt *s)
{
    cJSON *o = cJSON_CreateObject();
    const unsigned char *ids;

    if (o == NULL)
        return NULL;
    if (cc_sql_json_int(o, "id", s, 0) != CC_OK || cc_sql_json_text(o, "email", s, 1) != CC_OK ||
        cc_sql_json_text(o, "role", s, 2) != CC_OK || cc_sql_json_text(o, "name", s, 3) != CC_OK ||
        cc_sql_json_bool(o, "disabled", s, 4) != CC_OK ||
        cc_sql_json_time(o, "createdAt", s, 5) != CC_OK)
        goto fail;
    ids = sqlite3_column_text(s, 6);
    if (ids != NULL) {
        cJSON *arr = cJSON_Parse((const char *)ids);

        if (arr == NULL || !cJSON_AddItemToObject(o, "customerIds", arr)) {
            cJSON_Delete(arr);
            goto fail;
        }
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* The principal of user_id; with a token (tok set) also refuses one issued with another
 * token_version or in a second before the user was created. */
static int principal(struct cc_store *st, int64_t user_id, int tok, int64_t iat_s, int64_t ver,
                     struct cc_principal *out)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    int src, rc, role;

    rc = cc_sql_prepare(db, sql_principal, &stmt);
    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, user_id) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src == SQLITE_DONE) {
        rc = CC_ERR_UNAUTHORIZED;
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = cc_sql_step_rc(db, src, "principal");
        goto out;
    }
    role = cc_role_parse((const char *)sqlite3_column_text(stmt, 0));
    if (role == CC_ROLE_NONE || sqlite3_column_int(stmt, 1) != 0) {
        rc = CC_ERR_UNAUTHORIZED;
        goto out;
    }
    /* iat has second precision, created_at millisecond: a token of the creation second
     * itself is accepted (it cannot be told apart), one of any earlier second is not. */
    if (tok && (sqlite3_column_int64(stmt, 2) != ver ||
                iat_s < cc_users_created_second(sqlite3_column_int64(stmt, 3)))) {
        rc = CC_ERR_UNAUTHORIZED;
        goto out;
    }
    out->user_id = user_id;
    out->role = role;
    rc = CC_OK;
out:
    cc_sql_release(stmt);
    return rc;
}

int64_t cc_users_created_second(int64_t created_at_ms)
{
    /* Floor division: created_at is epoch ms, never negative in practice. */
    return created_at_ms >= 0 ? created_at_ms / 1000 : -((999 - created_at_ms) / 1000);
}

int cc_users_principal(struct cc_store *st, int64_t user_id, struct cc_principal *out)
{
    return principal(st, user_id, 0, 0, 0, out);
}

int cc_users_token_principal(struct cc_store *st, int64_t user_id, int64_t iat_s, int64_t ver,
                             struct cc_principal *out)
{
    return principal(st, user_id, 1, iat_s, ver, out);
}

static int bind_principal(sqlite3_stmt *stmt, const void *ctx)
{
    return cc_access_bind(stmt, ctx) == SQLITE_OK ? CC_OK : CC_ERR_DB;
}

int cc_users_list(struct cc_store *st, const struct cc_principal *p, const struct cc_page *pg,
                  cJSON **out)
{
    return cc_sql_list_page(cc_store_db(st), sql_list, sql_count, bind_principal, p, 3, pg,
                            user_row, out);
}

/* Loads user id as JSON, no access check. */
static int load(sqlite3 *db, int64_t id, cJSON **out)
{
    return cc_sql_get(db, sql_get, id, user_row, out);
}

int cc_users_get(struct cc_store *st, const struct cc_principal *p, int64_t id, cJSON **out)
{
    int rc = cc_access_check(st, p, CC_ENTITY_USER, id, CC_ACCESS_READ);

    if (rc != CC_OK)
        return rc;
    return load(cc_store_db(st), id, out);
}

int cc_users_email_valid(const char *email)
{
    size_t len = strlen(email);
    const char *at = strchr(email, '@');
    const char *domain, *dot;

    if (len == 0 || len > CC_EMAIL_MAX || at == NULL || at == email || strchr(at + 1, '@'))
        return 0;
    for (const unsigned char *u = (const unsigned char *)email; *u; u++) {
        if (*u <= 0x20 || *u == 0x7f)
            return 0;
    }
    if (cc_input_utf8_len(email) < 0)
        return 0;
    domain = at + 1;
    dot = strchr(domain, '.');
    return *domain != '\0' && dot != NULL && dot != domain && domain[strlen(domain) - 1] != '.';
}

/* Reads and checks {email, password, role, name} (flags: required or not). The rules
 * are cc_provision_user's, checked here too so one answer lists every bad field. */
static void read_fields(struct cc_input *in, unsigned req, const char **email,
                        const char **password, const char **role, const char **name)
{
    if (cc_input_text(in, "email", req | CC_INPUT_NONEMPTY, CC_EMAIL_MAX, email) == CC_INPUT_SET &&
        !cc_users_email_valid(*email))
        cc_input_problem(in, "email", "must be a valid e-mail address");
    if (cc_input_text(in, "password", req | CC_INPUT_NONEMPTY, CC_PASSWORD_MAX, password) ==
            CC_INPUT_SET &&
        strlen(*password) < CC_PASSWORD_MIN)
        cc_input_problem(in, "password", "must be at least 8 characters");
    if (cc_input_text(in, "role", req | CC_INPUT_NONEMPTY, 16, role) == CC_INPUT_SET &&
        cc_role_parse(*role) == CC_ROLE_NONE)
        cc_input_problem(in, "role", "must be CUSTOMER, TECHNICIAN or ADMIN");
    cc_input_text(in, "name", req | CC_INPUT_NONEMPTY, CC_NAME_MAX, name);
}

static cJSON *error_msg(int rc, const char *msg)
{
    return cc_error_new(rc, msg);
}

int cc_users_create(struct cc_store *st, const struct cc_principal *p, const cJSON *body,
                    cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    struct cc_input in;
    const char *email = NULL, *password = NULL, *role = NULL, *name = NULL;
    cJSON *user = NULL;
    int64_t id = 0;
    int rc;

    if (p->role != CC_ROLE_ADMIN)
        return CC_ERR_FORBIDDEN;
    cc_input_init(&in, body);
    read_fields(&in, CC_INPUT_REQUIRED, &email, &password, &role, &name);
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        return rc;

    /* A deferred BEGIN: cc_provision_user hashes the password (slow on purpose) before
     * its INSERT, and the write lock is taken only by that INSERT. */
    rc = cc_db_exec(db, "BEGIN");
    if (rc != CC_OK)
        return rc;
    rc = cc_provision_user(st, email, password, role, name, &id, err);
    if (rc == CC_ERR_CONFLICT && err != NULL && *err == NULL)
        *err = error_msg(CC_ERR_CONFLICT, "a user with this email already exists");
    if (rc == CC_OK)
        rc = load(db, id, &user);
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "create", "user", id, NULL, user);
    rc = cc_sql_end(db, rc);
    if (rc != CC_OK) {
        cJSON_Delete(user);
        return rc;
    }
    *out = user;
    return CC_OK;
}

/* Role of user id into *role. CC_OK, CC_ERR_NOT_FOUND or CC_ERR_DB. */
static int role_of(sqlite3 *db, int64_t id, int *role)
{
    sqlite3_stmt *stmt = NULL;
    int src, rc = cc_sql_prepare(db, sql_role_of, &stmt);

    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto out;
    }
    src = sqlite3_step(stmt);
    if (src == SQLITE_ROW) {
        *role = cc_role_parse((const char *)sqlite3_column_text(stmt, 0));
        rc = CC_OK;
    } else if (src == SQLITE_DONE) {
        rc = CC_ERR_NOT_FOUND;
    } else {
        rc = cc_sql_step_rc(db, src, "user role");
    }
out:
    cc_sql_release(stmt);
    return rc;
}

/* Runs a one-parameter write statement with id (and now as ?2 when it has one). */
static int exec_id(sqlite3 *db, const char *sql, int64_t id)
{
    sqlite3_stmt *stmt = NULL;
    int rc = cc_sql_prepare(db, sql, &stmt);

    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK ||
        (sqlite3_bind_parameter_count(stmt) >= 2 &&
         sqlite3_bind_int64(stmt, 2, cc_now_ms()) != SQLITE_OK))
        rc = CC_ERR_DB;
    else
        rc = cc_sql_exec(db, stmt);
    cc_sql_release(stmt);
    return rc;
}

static int count_id(sqlite3 *db, const char *sql, int64_t id, int64_t *n)
{
    sqlite3_stmt *stmt = NULL;
    int rc = cc_sql_prepare(db, sql, &stmt);

    if (rc != CC_OK)
        return rc;
    if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK)
        rc = CC_ERR_DB;
    else
        rc = cc_sql_int64(db, stmt, n);
    cc_sql_release(stmt);
    return rc;
}

int cc_users_update(struct cc_store *st, const struct cc_principal *p, int64_t id,
                    const cJSON *body, cJSON **out, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    struct cc_input in;
    const char *email = NULL, *password = NULL, *role = NULL, *name = NULL;
    char hash[CC_PASSWORD_HASH_MAX];
    int disabled = -1, got_disabled;
    int old_role = CC_ROLE_NONE, new_role = CC_ROLE_NONE;
    cJSON *before = NULL, *after = NULL;
    int64_t owned = 0;
    int rc;

    hash[0] = '\0';
    if (p->role != CC_ROLE_ADMIN)
        return CC_ERR_FORBIDDEN;
    cc_input_init(&in, body);
    read_fields(&in, 0, &email, &password, &role, &name);
    if (role != NULL)
        new_role = cc_role_parse(role);
    got_disabled = cc_input_bool(&in, "disabled", 0, &disabled);
    if (got_disabled != CC_INPUT_SET)
        disabled = -1;
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        return rc;

    /* Hash before taking the write lock: scrypt is slow on purpose. */
    if (password != NULL && cc_password_hash(password, hash, sizeof hash) != CC_OK)
        return CC_ERR_INTERNAL;

    rc = cc_db_begin(db);
    if (rc != CC_OK)
        goto done;
    rc = cc_access_check(st, p, CC_ENTITY_USER, id, CC_ACCESS_WRITE);
    if (rc == CC_OK)
        rc = load(db, id, &before);
    if (rc == CC_OK)
        rc = role_of(db, id, &old_role);
    if (rc != CC_OK)
        goto end;
    if (id == p->user_id && ((new_role != CC_ROLE_NONE && new_role != old_role) || disabled == 1)) {
        rc = CC_ERR_CONFLICT;
        *err = error_msg(rc, "an admin cannot change their own role or disable themselves");
        goto end;
    }
    if (old_role == CC_ROLE_CUSTOMER && new_role != CC_ROLE_NONE && new_role != old_role) {
        rc = count_id(db, sql_owns_locations, id, &owned);
        if (rc != CC_OK)
            goto end;
        if (owned > 0) {
            rc = CC_ERR_CONFLICT;
            *err = error_msg(rc, "a customer who owns locations must stay a customer");
            goto end;
        }
    }
    rc = cc_sql_prepare(db, sql_update, &stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK ||
        cc_sql_bind_text_or_null(stmt, 2, email) != SQLITE_OK ||
        cc_sql_bind_text_or_null(stmt, 3, hash[0] ? hash : NULL) != SQLITE_OK ||
        cc_sql_bind_text_or_null(stmt, 4, new_role != CC_ROLE_NONE ? role : NULL) != SQLITE_OK ||
        cc_sql_bind_text_or_null(stmt, 5, name) != SQLITE_OK ||
        (disabled >= 0 ? sqlite3_bind_int(stmt, 6, disabled) : sqlite3_bind_null(stmt, 6)) !=
            SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    rc = cc_sql_exec(db, stmt);
    cc_sql_release(stmt);
    stmt = NULL;
    if (rc == CC_ERR_CONFLICT) {
        *err = error_msg(rc, "a user with this email already exists");
        goto end;
    }
    if (rc == CC_OK && new_role != CC_ROLE_NONE && new_role != old_role) {
        if (new_role != CC_ROLE_TECHNICIAN)
            rc = exec_id(db, sql_unlink_as_tech, id);
        if (rc == CC_OK && new_role != CC_ROLE_CUSTOMER)
            rc = exec_id(db, sql_unlink_as_cust, id);
    }
    if (rc == CC_OK && (hash[0] || disabled == 1))
        rc = exec_id(db, sql_revoke_tokens, id);
    if (rc == CC_OK)
        rc = load(db, id, &after);
    if (rc == CC_OK && hash[0] && !cJSON_AddTrueToObject(after, "passwordChanged"))
        rc = CC_ERR_NOMEM;
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "update", "user", id, before, after);
    if (rc == CC_OK && hash[0])
        cJSON_DeleteItemFromObjectCaseSensitive(after, "passwordChanged");
end:
    cc_sql_release(stmt);
    rc = cc_sql_end(db, rc);
done:
    OPENSSL_cleanse(hash, sizeof hash);
    cJSON_Delete(before);
    if (rc != CC_OK) {
        cJSON_Delete(after);
        return rc;
    }
    *out = after;
    return CC_OK;
}

int cc_users_delete(struct cc_store *st, const struct cc_principal *p, int64_t id, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    cJSON *before = NULL;
    int rc;

    if (p->role != CC_ROLE_ADMIN)
        return CC_ERR_FORBIDDEN;
    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = cc_access_check(st, p, CC_ENTITY_USER, id, CC_ACCESS_WRITE);
    if (rc == CC_OK && id == p->user_id) {
        rc = CC_ERR_CONFLICT;
        *err = error_msg(rc, "an admin cannot delete themselves");
    }
    if (rc == CC_OK)
        rc = load(db, id, &before);
    if (rc == CC_OK)
        rc = exec_id(db, sql_delete, id);
    if (rc == CC_OK)
        rc = cc_audit_append(st, p->user_id, "delete", "user", id, before, NULL);
    rc = cc_sql_end(db, rc);
    cJSON_Delete(before);
    return rc;
}

int cc_users_link(struct cc_store *st, const struct cc_principal *p, int64_t technician_id,
                  int64_t customer_id, int link, cJSON **err)
{
    sqlite3 *db = cc_store_db(st);
    sqlite3_stmt *stmt = NULL;
    struct cc_input in;
    cJSON *pair = NULL;
    int trole = CC_ROLE_NONE, crole = CC_ROLE_NONE;
    int rc;

    if (p->role != CC_ROLE_ADMIN)
        return CC_ERR_FORBIDDEN;
    rc = cc_db_begin(db);
    if (rc != CC_OK)
        return rc;
    rc = role_of(db, technician_id, &trole);
    if (rc == CC_OK)
        rc = role_of(db, customer_id, &crole);
    if (rc != CC_OK)
        goto end;
    cc_input_init(&in, NULL);
    if (trole != CC_ROLE_TECHNICIAN)
        cc_input_problem(&in, "technicianId", "must be the id of a technician");
    if (crole != CC_ROLE_CUSTOMER)
        cc_input_problem(&in, "customerId", "must be the id of a customer");
    rc = cc_input_finish(&in, err);
    if (rc != CC_OK)
        goto end;
    rc = cc_sql_prepare(db, link ? sql_link : sql_unlink, &stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_bind_int64(stmt, 1, technician_id) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, customer_id) != SQLITE_OK) {
        rc = CC_ERR_DB;
        goto end;
    }
    rc = cc_sql_exec(db, stmt);
    if (rc != CC_OK)
        goto end;
    if (sqlite3_changes(db) == 0) {
        /* Linking twice is fine; unlinking what is not linked is not found. */
        rc = link ? CC_OK : CC_ERR_NOT_FOUND;
        goto end;
    }
    pair = cJSON_CreateObject();
    if (pair == NULL ||
        cJSON_AddNumberToObject(pair, "technicianId", (double)technician_id) == NULL ||
        cJSON_AddNumberToObject(pair, "customerId", (double)customer_id) == NULL) {
        rc = CC_ERR_NOMEM;
        goto end;
    }
    rc = cc_audit_append(st, p->user_id, link ? "link" : "unlink", "technician_customer",
                         technician_id, link ? NULL : pair, link ? pair : NULL);
end:
    cc_sql_release(stmt);
    rc = cc_sql_end(db, rc);
    cJSON_Delete(pair);
    return rc;
}
