/* cc_users.h - user management and technician-customer links (SPEC §5, admin routes).
 *
 * A user as the API shows it: {id, email, role, name, disabled, createdAt} and, for a
 * technician, customerIds (the linked customers). No answer holds a password or its
 * hash. Every function checks access itself (cc_access.h): users are the admin's, and
 * anyone may read themselves. Writes run in one transaction with their audit row.
 * Objects returned through out are the caller's (cJSON_Delete); *err, when set, is a
 * SPEC §5 error object for the answer (caller deletes).
 * Thread: the caller's store. Codes: CC_OK, CC_ERR_VALIDATION (*err), CC_ERR_FORBIDDEN,
 * CC_ERR_NOT_FOUND, CC_ERR_CONFLICT (*err), CC_ERR_UNAUTHORIZED, CC_ERR_DB,
 * CC_ERR_NOMEM, CC_ERR_INTERNAL. */
#ifndef CC_USERS_H
#define CC_USERS_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_access.h"
#include "cc_page.h"
#include "cc_store.h"

/* The principal of a verified token's subject, from the database (so a role change,
 * a deletion or disabling counts at once). CC_OK, CC_ERR_UNAUTHORIZED (no such user,
 * or disabled) or CC_ERR_DB. */
int cc_users_principal(struct cc_store *st, int64_t user_id, struct cc_principal *out);
/* The same for the subject of a token issued at iat_s (epoch seconds) carrying claim
 * ver: CC_ERR_UNAUTHORIZED also when ver is not the user's token_version (the password
 * changed since: schema/0006 trigger users_password_changed) or when iat_s is before
 * cc_users_created_second(users.created_at) (the token was issued before this user
 * existed, e.g. to an earlier holder of a reused id). A token of the creation second
 * itself passes: iat has second precision. SPEC §5 "Identities". */
int cc_users_token_principal(struct cc_store *st, int64_t user_id, int64_t iat_s, int64_t ver,
                             struct cc_principal *out);
/* The epoch second (floor) of a millisecond time: the iat a token issued then carries. */
int64_t cc_users_created_second(int64_t created_at_ms);

/* The descriptor (cc_resource.h): GET/POST /api/users, GET/PATCH/DELETE /api/users/:id;
 * writes are the admin's. Create body {email,password,role,name}. Update body any subset
 * of {email,password,role,name,disabled}: a new password or disabling revokes the user's
 * refresh tokens; a role change drops links that no longer fit. Admins cannot change their
 * own role nor disable nor delete themselves, and a customer who owns locations keeps the
 * CUSTOMER role (CC_ERR_CONFLICT). Deleting a user deletes, by the schema's cascades,
 * everything they own (locations, cells, devices, readings, alerts, notifications, tokens,
 * links). List: an admin sees everyone, others themselves. */
struct cc_resource;
extern const struct cc_resource cc_users_resource;

/* One user (GET /api/auth/me). */
int cc_users_get(struct cc_store *st, const struct cc_principal *p, int64_t id, cJSON **out);
/* Links (link = 1) or unlinks (0) a technician and a customer; admins only. Linking is
 * idempotent; unlinking a pair that is not linked is CC_ERR_NOT_FOUND. A user of the
 * wrong role is CC_ERR_VALIDATION. */
int cc_users_link(struct cc_store *st, const struct cc_principal *p, int64_t technician_id,
                  int64_t customer_id, int link, cJSON **err);

/* Checks an e-mail address's shape (local@domain.tld, no blanks, <= 254 bytes). */
int cc_users_email_valid(const char *email);

#endif
