/* cc_users.c - the user resource (its rules: passwords, roles, self-protection), the
 * principal of a token, and technician-customer links. */
#include "cc_users.h"

#include <string.h>

#include "cc_audit.h"
#include "cc_crypto.h"
#include "cc_error.h"
#include "cc_input.h"
#include "cc_provision.h"
#include "cc_rc.h"
#include "cc_resource.h"
#include "cc_time.h"

/* customerIds of a technician: a JSON array made by each dialect's aggregate (SQLite's
 * json_group_array gives [] for none, PostgreSQL's json_agg NULL, hence the coalesce). */
#define USER_COLS_HEAD "u.id, u.email, u.role, u.name, u.disabled, u.created_at, "
#define USER_COLS                                                                                  \
    USER_COLS_HEAD                                                                                 \
    "CASE WHEN u.role = 'TECHNICIAN' THEN (SELECT json_group_array(x.customer_id) FROM "           \
    "(SELECT customer_id FROM technician_customers WHERE technician_id = u.id "                    \
    "ORDER BY customer_id) x) END"
#define USER_COLS_PG                                                                               \
    USER_COLS_HEAD                                                                                 \
    "CASE WHEN u.role = 'TECHNICIAN' THEN (SELECT coalesce(json_agg(x.customer_id ORDER BY "       \
    "x.customer_id), '[]'::json) FROM technician_customers x WHERE x.technician_id = u.id) END"
#define USER_SCOPE " FROM users u WHERE ($1 = 4 OR u.id = $2)"

static const char sql_principal[] =
    "SELECT role, disabled, token_version, created_at FROM users WHERE id = $1";
static const char sql_list[] = "SELECT " USER_COLS USER_SCOPE " ORDER BY u.id LIMIT $3 OFFSET $4";
static const char sql_list_pg[] =
    "SELECT " USER_COLS_PG USER_SCOPE " ORDER BY u.id LIMIT $3 OFFSET $4";
static const char sql_count[] = "SELECT count(*)" USER_SCOPE;
static const char sql_get[] = "SELECT " USER_COLS " FROM users u WHERE u.id = $1";
static const char sql_get_pg[] = "SELECT " USER_COLS_PG " FROM users u WHERE u.id = $1";
static const char sql_update[] =
    "UPDATE users SET email = coalesce($2, email), password_hash = coalesce($3, password_hash),"
    " role = coalesce($4, role), name = coalesce($5, name), disabled = coalesce($6, disabled)"
    " WHERE id = $1";
static const char sql_role_of[] = "SELECT role FROM users WHERE id = $1";
static const char sql_owns_locations[] = "SELECT count(*) FROM locations WHERE customer_id = $1";
static const char sql_unlink_as_tech[] =
    "DELETE FROM technician_customers WHERE technician_id = $1";
static const char sql_unlink_as_cust[] = "DELETE FROM technician_customers WHERE customer_id = $1";
static const char sql_revoke_tokens[] =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
static const char sql_delete[] = "DELETE FROM users WHERE id = $1";
static const char sql_link[] =
    "INSERT INTO technician_customers (technician_id, customer_id) VALUES ($1, $2)"
    " ON CONFLICT (technician_id, customer_id) DO NOTHING";
static const char sql_unlink[] =
    "DELETE FROM technician_customers WHERE technician_id = $1 AND customer_id = $2";

static const struct cc_column user_cols[] = {
    {"id", CC_COL_INT},           {"email", CC_COL_TEXT},    {"role", CC_COL_TEXT},
    {"name", CC_COL_TEXT},        {"disabled", CC_COL_BOOL}, {"createdAt", CC_COL_TIME},
    {"customerIds", CC_COL_JSON},
};

static const struct cc_column principal_cols[] = {
    {"role", CC_COL_TEXT}, {"disabled", CC_COL_INT}, {"ver", CC_COL_INT}, {"created", CC_COL_INT}};

/* A number member of a row cc_resource_query read (integers up to 2^53 exactly). */
static int64_t int_of(const cJSON *row, const char *name)
{
    return (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(row, name));
}

/* The principal of user_id; with a token (tok set) also refuses one issued with another
 * token_version or in a second before the user was created. */
static int principal(struct cc_store *st, int64_t user_id, int tok, int64_t iat_s, int64_t ver,
                     struct cc_principal *out)
{
    const struct cc_value arg = cc_value_int(user_id);
    cJSON *row = NULL;
    int rc, role;

    rc = cc_resource_query(st, sql_principal, &arg, 1, principal_cols, 4, 0, &row);
    if (rc != CC_OK)
        return rc == CC_ERR_NOT_FOUND ? CC_ERR_UNAUTHORIZED : rc;
    role = cc_role_parse(cJSON_GetStringValue(cJSON_GetObjectItem(row, "role")));
    rc = CC_ERR_UNAUTHORIZED;
    if (role == CC_ROLE_NONE || int_of(row, "disabled") != 0)
        goto out;
    /* iat has second precision, created_at millisecond: a token of the creation second
     * itself is accepted (it cannot be told apart), one of any earlier second is not. */
    if (tok &&
        (int_of(row, "ver") != ver || iat_s < cc_users_created_second(int_of(row, "created"))))
        goto out;
    out->user_id = user_id;
    out->role = role;
    rc = CC_OK;
out:
    cJSON_Delete(row);
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

/* Reads and checks {email, password, role, name} (required on create) and, on update,
 * disabled. The rules are cc_provision_user's, checked here too so one answer lists every
 * bad field. Values: email, password (update: its hash, by prepare), role, name,
 * disabled. */
static void read_user(struct cc_resource_write *w, struct cc_input *in)
{
    const unsigned req = w->verb == CC_RESOURCE_CREATE ? CC_INPUT_REQUIRED : 0;
    const char *email = NULL, *password = NULL, *role = NULL, *name = NULL;
    int disabled = -1;

    if (cc_input_text(in, "email", req | CC_INPUT_NONEMPTY, CC_EMAIL_MAX, &email) == CC_INPUT_SET &&
        !cc_users_email_valid(email))
        cc_input_problem(in, "email", "must be a valid e-mail address");
    if (cc_input_text(in, "password", req | CC_INPUT_NONEMPTY, CC_PASSWORD_MAX, &password) ==
            CC_INPUT_SET &&
        strlen(password) < CC_PASSWORD_MIN)
        cc_input_problem(in, "password", "must be at least 8 characters");
    if (cc_input_text(in, "role", req | CC_INPUT_NONEMPTY, 16, &role) == CC_INPUT_SET &&
        cc_role_parse(role) == CC_ROLE_NONE)
        cc_input_problem(in, "role", "must be CUSTOMER, TECHNICIAN or ADMIN");
    cc_input_text(in, "name", req | CC_INPUT_NONEMPTY, CC_NAME_MAX, &name);
    w->v[0] = cc_value_text(email);
    w->v[1] = cc_value_text(password);
    w->v[2] = cc_value_text(role);
    w->v[3] = cc_value_text(name);
    if (w->verb == CC_RESOURCE_UPDATE &&
        cc_input_bool(in, "disabled", 0, &disabled) == CC_INPUT_SET)
        w->v[4] = cc_value_int(disabled);
}

_Static_assert(CC_PASSWORD_HASH_MAX <= CC_RESOURCE_SECRET_MAX, "a hash fits a write's secret");

/* Hashes a new password before the write lock: scrypt is slow on purpose. */
static int hash_password(struct cc_resource_write *w)
{
    if (w->verb != CC_RESOURCE_UPDATE || w->v[1].kind == CC_VALUE_NULL)
        return CC_OK;
    if (cc_password_hash(w->v[1].s, w->secret, sizeof w->secret) != CC_OK)
        return CC_ERR_INTERNAL;
    w->v[1] = cc_value_text(w->secret);
    return CC_OK;
}

/* A new user: cc_provision_user hashes the password and inserts. */
static int insert_user(struct cc_resource_write *w)
{
    return cc_provision_user(w->st, w->v[0].s, w->v[1].s, w->v[2].s, w->v[3].s, &w->id, w->err);
}

static const struct cc_column role_col[] = {{"role", CC_COL_TEXT}};
static const struct cc_column count_col[] = {{"n", CC_COL_INT}};

/* Role of user id into *role. CC_OK, CC_ERR_NOT_FOUND or CC_ERR_DB. */
static int role_of(struct cc_store *st, int64_t id, int *role)
{
    const struct cc_value arg = cc_value_int(id);
    cJSON *row = NULL;
    int rc = cc_resource_query(st, sql_role_of, &arg, 1, role_col, 1, 0, &row);

    if (rc == CC_OK)
        *role = cc_role_parse(cJSON_GetStringValue(cJSON_GetObjectItem(row, "role")));
    cJSON_Delete(row);
    return rc;
}

/* The role a valid update sets, CC_ROLE_NONE when it sets none. */
static int new_role(const struct cc_resource_write *w)
{
    return w->v[2].kind == CC_VALUE_TEXT ? cc_role_parse(w->v[2].s) : CC_ROLE_NONE;
}

/* An admin neither deletes nor demotes nor disables themselves; a customer who owns
 * locations stays a customer. Keeps the old role in w->aux for after_user. */
static int check_user(struct cc_resource_write *w)
{
    const struct cc_value arg = cc_value_int(w->id);
    int old_role = CC_ROLE_NONE, role = new_role(w);
    cJSON *row = NULL;
    int64_t owned;
    int rc;

    if (w->verb == CC_RESOURCE_DELETE) {
        if (w->id != w->p->user_id)
            return CC_OK;
        *w->err = cc_error_new(CC_ERR_CONFLICT, "an admin cannot delete themselves");
        return CC_ERR_CONFLICT;
    }
    if (w->verb != CC_RESOURCE_UPDATE)
        return CC_OK;
    rc = role_of(w->st, w->id, &old_role);
    if (rc != CC_OK)
        return rc;
    w->aux = old_role;
    if (w->id == w->p->user_id && ((role != CC_ROLE_NONE && role != old_role) || w->v[4].i == 1)) {
        *w->err = cc_error_new(CC_ERR_CONFLICT,
                               "an admin cannot change their own role or disable themselves");
        return CC_ERR_CONFLICT;
    }
    if (old_role != CC_ROLE_CUSTOMER || role == CC_ROLE_NONE || role == old_role)
        return CC_OK;
    rc = cc_resource_query(w->st, sql_owns_locations, &arg, 1, count_col, 1, 0, &row);
    owned = rc == CC_OK ? (int64_t)cJSON_GetObjectItem(row, "n")->valuedouble : 0;
    cJSON_Delete(row);
    if (rc != CC_OK || owned == 0)
        return rc;
    *w->err = cc_error_new(CC_ERR_CONFLICT, "a customer who owns locations must stay a customer");
    return CC_ERR_CONFLICT;
}

/* After an update: a role change drops links that no longer fit; a new password or
 * disabling revokes the refresh tokens. */
static int after_user(struct cc_resource_write *w)
{
    const struct cc_value args[2] = {cc_value_int(w->id), cc_value_int(cc_now_ms())};
    int role = new_role(w), rc = CC_OK;

    if (w->verb != CC_RESOURCE_UPDATE)
        return CC_OK;
    if (role != CC_ROLE_NONE && role != (int)w->aux) {
        if (role != CC_ROLE_TECHNICIAN)
            rc = cc_resource_exec(w->st, sql_unlink_as_tech, args, 1, NULL);
        if (rc == CC_OK && role != CC_ROLE_CUSTOMER)
            rc = cc_resource_exec(w->st, sql_unlink_as_cust, args, 1, NULL);
    }
    if (rc == CC_OK && (w->secret[0] || w->v[4].i == 1))
        rc = cc_resource_exec(w->st, sql_revoke_tokens, args, 2, NULL);
    return rc;
}

/* The audit row says that the password changed (never what to). */
static int audit_password(struct cc_resource_write *w, cJSON *audit)
{
    if (w->verb != CC_RESOURCE_UPDATE || w->secret[0] == '\0')
        return CC_OK;
    return cJSON_AddTrueToObject(audit, "passwordChanged") != NULL ? CC_OK : CC_ERR_NOMEM;
}

const struct cc_resource cc_users_resource = {
    .name = "user",
    .entity = CC_ENTITY_USER,
    .write_roles = CC_ROLE_ADMIN,
    .flags = CC_RESOURCE_DEFERRED_CREATE,
    CC_RESOURCE_COLUMNS(user_cols),
    .sql = {sql_get, sql_list, sql_count, NULL, sql_update, sql_delete},
    .pg = {.get = sql_get_pg, .list = sql_list_pg},
    .conflict = "a user with this email already exists",
    .read = read_user,
    .prepare = hash_password,
    .check = check_user,
    .insert = insert_user,
    .after = after_user,
    .audit_extra = audit_password,
};

int cc_users_get(struct cc_store *st, const struct cc_principal *p, int64_t id, cJSON **out)
{
    return cc_resource_get(st, &cc_users_resource, p, id, out);
}

int cc_users_link(struct cc_store *st, const struct cc_principal *p, int64_t technician_id,
                  int64_t customer_id, int link, cJSON **err)
{
    const struct cc_value pair_args[2] = {cc_value_int(technician_id), cc_value_int(customer_id)};
    struct cc_input in;
    cJSON *pair = NULL;
    int trole = CC_ROLE_NONE, crole = CC_ROLE_NONE;
    int64_t changed = 0;
    int rc;

    if (p->role != CC_ROLE_ADMIN)
        return CC_ERR_FORBIDDEN;
    rc = cc_resource_begin(st);
    if (rc != CC_OK)
        return rc;
    rc = role_of(st, technician_id, &trole);
    if (rc == CC_OK)
        rc = role_of(st, customer_id, &crole);
    if (rc != CC_OK)
        goto end;
    cc_input_init(&in, NULL);
    if (trole != CC_ROLE_TECHNICIAN)
        cc_input_problem(&in, "technicianId", "must be the id of a technician");
    if (crole != CC_ROLE_CUSTOMER)
        cc_input_problem(&in, "customerId", "must be the id of a customer");
    rc = cc_input_finish(&in, err);
    if (rc == CC_OK)
        rc = cc_resource_exec(st, link ? sql_link : sql_unlink, pair_args, 2, &changed);
    if (rc != CC_OK)
        goto end;
    if (changed == 0) {
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
    rc = cc_resource_end(st, rc);
    cJSON_Delete(pair);
    return rc;
}
