/* cc_role.h - the user roles: their bits and their names, the one definition of both.
 *
 * The names are what the users.role column and the JWT's role claim hold. SQL never
 * spells them: a statement that selects by role binds cc_role_name(CC_ROLE_...) as a
 * parameter. Pure functions; any thread. */
#ifndef CC_ROLE_H
#define CC_ROLE_H

/* Roles are bits so that a route can name the set it allows. CC_ACCESS_SQL (cc_access.h)
 * compares the bound role with the ADMIN and TECHNICIAN bits: cc_role.c asserts them. */
enum cc_role {
    CC_ROLE_NONE = 0,
    CC_ROLE_CUSTOMER = 1,
    CC_ROLE_TECHNICIAN = 2,
    CC_ROLE_ADMIN = 4,
};
#define CC_ROLE_ANY (CC_ROLE_CUSTOMER | CC_ROLE_TECHNICIAN | CC_ROLE_ADMIN)

/* The names, for static tables (tools/cc_seed.c); code calls cc_role_name. */
#define CC_ROLE_NAME_CUSTOMER "CUSTOMER"
#define CC_ROLE_NAME_TECHNICIAN "TECHNICIAN"
#define CC_ROLE_NAME_ADMIN "ADMIN"

/* "CUSTOMER" -> CC_ROLE_CUSTOMER, ...; CC_ROLE_NONE if unknown (or NULL). */
int cc_role_parse(const char *s);
/* CC_ROLE_CUSTOMER -> "CUSTOMER", ...; "" if not exactly one known bit. Static storage. */
const char *cc_role_name(int role);

#endif
