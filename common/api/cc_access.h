/* cc_access.h - who may see and change what (SPEC §5 "Access"): the one place.
 *
 * The rule: an ADMIN may read and change everything; a CUSTOMER what belongs to
 * them (their locations and everything under them); a TECHNICIAN what belongs to the
 * customers linked to them in technician_customers. Users are the admin's; a
 * notification is its recipient's. An object the principal may not see answers
 * CC_ERR_NOT_FOUND, exactly like one that does not exist, so ids cannot be probed.
 *
 * cc_access_check answers for one object. List queries apply the same rule with
 * CC_ACCESS_SQL, its SQL form (the checks below are built from that macro too).
 * Thread: the caller's store. Codes: CC_OK, CC_ERR_NOT_FOUND, CC_ERR_DB. */
#ifndef CC_ACCESS_H
#define CC_ACCESS_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_store.h"

/* Roles are bits so that a route can name the set it allows. */
enum cc_role {
    CC_ROLE_NONE = 0,
    CC_ROLE_CUSTOMER = 1,
    CC_ROLE_TECHNICIAN = 2,
    CC_ROLE_ADMIN = 4,
};
#define CC_ROLE_ANY (CC_ROLE_CUSTOMER | CC_ROLE_TECHNICIAN | CC_ROLE_ADMIN)

/* The signed-in user a request acts for. */
struct cc_principal {
    int64_t user_id;
    int role; /* one enum cc_role bit */
};

enum cc_entity {
    CC_ENTITY_USER = 1, /* any user: admins; others only themselves */
    CC_ENTITY_CUSTOMER, /* a user whose role is CUSTOMER, as an owner */
    CC_ENTITY_LOCATION,
    CC_ENTITY_COLDCELL,
    CC_ENTITY_DEVICE,
    CC_ENTITY_ALERT,
    CC_ENTITY_NOTIFICATION, /* only its recipient, whatever the role */
};

enum cc_access_mode { CC_ACCESS_READ = 0, CC_ACCESS_WRITE = 1 };

/* The SQL form of the rule for cc_dbi.h statements (both dialects): true when the
 * customer id expression col is visible to the principal whose role bit is bound as $1
 * and whose user id is bound as $2 (cc_access_bind_stmt). A statement using it numbers
 * its own parameters from $3. */
#define CC_ACCESS_SQL_N(col)                                                                       \
    "($1 = 4 OR " col " = $2 OR ($1 = 2 AND " col " IN (SELECT tc.customer_id FROM "               \
    "technician_customers tc WHERE tc.technician_id = $2)))"
/* The same rule with ?1/?2, for the modules that still prepare SQLite statements
 * themselves (cc_access_bind); the numbering is CC_ACCESS_SQL_N's. */
#define CC_ACCESS_SQL(col)                                                                         \
    "(?1 = 4 OR " col " = ?2 OR (?1 = 2 AND " col " IN (SELECT tc.customer_id FROM "               \
    "technician_customers tc WHERE tc.technician_id = ?2)))"

/* "CUSTOMER" -> CC_ROLE_CUSTOMER, ...; CC_ROLE_NONE if unknown. */
int cc_role_parse(const char *s);
/* CC_ROLE_CUSTOMER -> "CUSTOMER", ...; "" if not exactly one known bit. */
const char *cc_role_name(int role);

/* May p read (or, with CC_ACCESS_WRITE, change) the object entity/id? CC_OK when it
 * may, CC_ERR_NOT_FOUND when it does not exist or p may not see it, CC_ERR_DB. Read
 * and write follow the same rule today; callers still say which they mean. */
int cc_access_check(struct cc_store *st, const struct cc_principal *p, int entity, int64_t id,
                    int mode);

/* Binds the principal to $1 and $2 of a statement built with CC_ACCESS_SQL_N.
 * CC_OK or CC_ERR_DB (logged). */
int cc_access_bind_stmt(struct cc_stmt *s, const struct cc_principal *p);

/* Binds the principal to ?1 and ?2 of a statement built with CC_ACCESS_SQL.
 * SQLITE_OK or an SQLite error. */
int cc_access_bind(sqlite3_stmt *stmt, const struct cc_principal *p);

/* Deletes row id of an entity the principal may change, with its audit row, in one
 * transaction: load(db, id, &before) gives the old object for the audit detail, sql_delete
 * takes the id as ?1, audit_entity names it in audit_log ("location", "cold_cell").
 * CC_OK, CC_ERR_NOT_FOUND (absent or someone else's), CC_ERR_DB or CC_ERR_NOMEM. */
int cc_access_delete(struct cc_store *st, const struct cc_principal *p, int entity,
                     const char *audit_entity, int64_t id,
                     int (*load)(sqlite3 *db, int64_t id, cJSON **out), const char *sql_delete);

struct cc_page;
/* Answers {"items":[...],"total":N} for an access-scoped list. Both statements take the
 * principal as ?1/?2 (cc_access_bind) and, when filter > 0, the filter id as ?3; the list
 * statement also takes limit ?4 and offset ?5. rows turns a row into an item.
 * CC_OK (*out set), CC_ERR_DB or CC_ERR_NOMEM. */
int cc_access_list(sqlite3 *db, const char *sql_list, const char *sql_count,
                   const struct cc_principal *p, int64_t filter, const struct cc_page *pg,
                   cJSON *(*rows)(sqlite3_stmt *), cJSON **out);

#endif
