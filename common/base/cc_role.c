/* cc_role.c - role bits and names (cc_role.h). */
#include "cc_role.h"

#include <string.h>

/* CC_ACCESS_SQL spells these two bits as SQL numbers ("?1 = 4", "?1 = 2"). */
_Static_assert(CC_ROLE_ADMIN == 4 && CC_ROLE_TECHNICIAN == 2, "CC_ACCESS_SQL's role bits");

static const struct {
    int role;
    const char *name;
} roles[] = {
    {CC_ROLE_CUSTOMER, CC_ROLE_NAME_CUSTOMER},
    {CC_ROLE_TECHNICIAN, CC_ROLE_NAME_TECHNICIAN},
    {CC_ROLE_ADMIN, CC_ROLE_NAME_ADMIN},
};

int cc_role_parse(const char *s)
{
    if (s == NULL)
        return CC_ROLE_NONE;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        if (strcmp(s, roles[i].name) == 0)
            return roles[i].role;
    }
    return CC_ROLE_NONE;
}

const char *cc_role_name(int role)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        if (roles[i].role == role)
            return roles[i].name;
    }
    return "";
}
