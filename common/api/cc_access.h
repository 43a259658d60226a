/* cc_access.h - who may see and change what (SPEC §5 "Access"): the one place.
 *
 * The rule: an ADMIN may read and change everything; a CUSTOMER what belongs to
 * them (their locations and everything under them); a TECHNICIAN what belongs to the
 * customers linked to them in technician_customers. Users are the admin's; a
 * notification is its recipient's. An object the principal may not see answers
 * CC_ERR_NOT_FOUND, exactly like one that does not exist, so ids cannot be probed.
 *
 * cc_access_check answers for one object. List queries apply the same rule with
 * CC_ACCESS_SQL_N, its SQL form (the checks below are built from that macro too).
 * Thread: the caller's store. Codes: CC_OK, CC_ERR_NOT_FOUND, CC_ERR_DB. */
#ifndef CC_ACCESS_H
#define CC_ACCESS_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "cc_role.h" /* the role bits and names (base/), for everyone who includes this */
#include "cc_store.h"

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
/* May p read (or, with CC_ACCESS_WRITE, change) the object entity/id? CC_OK when it
 * may, CC_ERR_NOT_FOUND when it does not exist or p may not see it, CC_ERR_DB. Read
 * and write follow the same rule today; callers still say which they mean. */
int cc_access_check(struct cc_store *st, const struct cc_principal *p, int entity, int64_t id,
                    int mode);

/* Binds the principal to $1 and $2 of a statement built with CC_ACCESS_SQL_N.
 * CC_OK or CC_ERR_DB (logged). */
int cc_access_bind_stmt(struct cc_stmt *s, const struct cc_principal *p);

#endif
