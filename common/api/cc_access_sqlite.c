/* cc_access_sqlite.c - the access rule on SQLite handles, for the modules that still
 * prepare their own SQLite statements (cc_access.h names them). Goes with the last. */
#include "cc_access.h"

int cc_access_bind(sqlite3_stmt *stmt, const struct cc_principal *p)
{
    int src = sqlite3_bind_int(stmt, 1, p->role);

    if (src == SQLITE_OK)
        src = sqlite3_bind_int64(stmt, 2, p->user_id);
    return src;
}
