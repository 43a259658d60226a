/* cc_lease.c - named leases on PostgreSQL advisory locks (see cc_lease.h). */
#include "cc_lease.h"

#include <stdio.h>

#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_rc.h"

/* The session setting first: on a revived session it is gone with the old one, and a lease
 * taken without it would outlive a paused holder. */
static const char sql_timeout[] = "SELECT set_config('idle_session_timeout', $1, false)";
static const char sql_try[] = "SELECT pg_try_advisory_lock($1::integer, $2::integer)";
/* The two-int4 form shows in pg_locks as classid, objid and objsubid 2. */
static const char sql_held[] =
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
    "AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2 AND granted";

/* Each holding counts itself (cc_lease.h): the first INSERTs 1, later ones add one. */
static const char sql_epoch_next[] =
    "INSERT INTO leases (name, epoch) VALUES ($1, 1)"
    " ON CONFLICT (name) DO UPDATE SET epoch = leases.epoch + 1 RETURNING epoch";
static const char sql_epoch[] = "SELECT epoch FROM leases WHERE name = $1";
static const char sql_epoch_in_tx[] = "SELECT epoch FROM leases WHERE name = $1 FOR SHARE";

int32_t cc_lease_key(const char *name)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return (int32_t)(h & 0x7fffffffu);
}

/* Runs a one-row, one-column query with the two keys as $1, $2; *out is the column. */
static int ask(struct cc_store *st, const char *sql, const char *name, int64_t *out)
{
    struct cc_stmt *s = NULL;
    int rc = cc_stmt_prepare(st, sql, &s);

    if (rc == CC_OK)
        rc = cc_stmt_bind_all(s, "ii", (int64_t)CC_LEASE_NAMESPACE, (int64_t)cc_lease_key(name));
    if (rc == CC_OK) {
        rc = cc_stmt_step(s);
        if (rc == CC_ROW) {
            *out = cc_stmt_column_int64(s, 0);
            rc = CC_OK;
        } else if (rc == CC_OK) {
            rc = CC_ERR_DB; /* a query that returns no row: not PostgreSQL as we know it */
        }
    }
    cc_stmt_release(s);
    return rc;
}

int cc_lease_try(struct cc_store *st, const char *name, int idle_timeout_ms, int *held)
{
    struct cc_stmt *s = NULL;
    char ms[32];
    int64_t got = 0;
    int rc;

    *held = 0;
    if (cc_store_dialect(st) != CC_DIALECT_PG)
        return CC_ERR_VALIDATION;
    snprintf(ms, sizeof ms, "%d", idle_timeout_ms > 0 ? idle_timeout_ms : 0);
    rc = cc_stmt_prepare(st, sql_timeout, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 1, ms);
    if (rc == CC_OK) {
        do
            rc = cc_stmt_step(s);
        while (rc == CC_ROW); /* set_config's one row: its value, not wanted */
    }
    cc_stmt_release(s);
    if (rc == CC_OK)
        rc = ask(st, sql_try, name, &got);
    if (rc != CC_OK)
        return rc;
    *held = got != 0; /* pg_try_advisory_lock's boolean reads as 1 / 0 */
    return CC_OK;
}

int cc_lease_held(struct cc_store *st, const char *name, int *held)
{
    int64_t n = 0;
    int rc;

    *held = 0;
    if (cc_store_dialect(st) != CC_DIALECT_PG)
        return CC_ERR_VALIDATION;
    rc = ask(st, sql_held, name, &n);
    if (rc != CC_OK)
        return rc;
    *held = n > 0;
    return CC_OK;
}

/* Runs sql with name as $1; *epoch is its one row's column, 0 when there is no row. */
static int epoch_query(struct cc_store *st, const char *sql, const char *name, int64_t *epoch)
{
    struct cc_stmt *s = NULL;
    int rc;

    *epoch = 0;
    if (cc_store_dialect(st) != CC_DIALECT_PG)
        return CC_ERR_VALIDATION;
    rc = cc_stmt_prepare(st, sql, &s);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(s, 1, name);
    if (rc == CC_OK) {
        rc = cc_stmt_step(s);
        if (rc == CC_ROW) {
            *epoch = cc_stmt_column_int64(s, 0);
            rc = cc_stmt_step(s); /* the end: the statement is done (and committed) */
        }
    }
    cc_stmt_release(s);
    return rc;
}

int cc_lease_epoch_next(struct cc_store *st, const char *name, int64_t *epoch)
{
    int rc = epoch_query(st, sql_epoch_next, name, epoch);

    return rc == CC_OK && *epoch <= 0 ? CC_ERR_DB : rc;
}

int cc_lease_epoch(struct cc_store *st, const char *name, int64_t *epoch)
{
    return epoch_query(st, sql_epoch, name, epoch);
}

int cc_lease_epoch_in_tx(struct cc_store *st, const char *name, int64_t *epoch)
{
    return epoch_query(st, sql_epoch_in_tx, name, epoch);
}
