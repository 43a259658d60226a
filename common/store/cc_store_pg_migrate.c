/* cc_store_pg_migrate.c - the PostgreSQL store's schema: its migrations (schema/pg/,
 * embedded as cc_pg_migrations), its version, and the monthly partitions of readings
 * (docs/postgresql.md).
 *
 * Each migration runs in its own transaction that first takes one advisory lock, so that
 * processes starting at once (ingestd, apid, ccctl) apply each file once: the second
 * waits for the first's COMMIT, then reads the version again and finds nothing to do.
 * Each file records itself in schema_migrations as its last statement (0001_init.sql),
 * which is what the version is read from. */
#include <stdio.h>

#include "cc_db.h"
#include "cc_dbi.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_store_impl.h"

/* The one key every migrating process queues on (hashtext: a stable int4 of the name;
 * coldchain_ensure_partitions uses its own name). */
#define MIGRATION_LOCK "SELECT pg_advisory_xact_lock(hashtext('coldchain_migrations'))"

/* to_regclass: no error when the table is missing (a fresh database), unlike a SELECT on
 * it, which would also abort an open transaction. */
static const char sql_has_table[] =
    "SELECT CAST(to_regclass('schema_migrations') IS NOT NULL AS integer)";
static const char sql_version[] = "SELECT coalesce(max(version), 0) FROM schema_migrations";
static const char sql_partitions[] = "SELECT coldchain_ensure_partitions($1, $2)";
/* The tables every access predicate joins (users, links, locations, cells, devices). They
 * stay small, so autovacuum's analyze threshold (50 rows + 10 %) may never be reached:
 * without statistics each list statement keeps a custom plan, planned at every execution
 * (docs/queries.md, "GET /api/devices on PostgreSQL"). */
#define REFERENCE_TABLES "users, technician_customers, locations, cold_cells, devices"
static const char sql_reference_stale[] =
    "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = current_schema()"
    " AND relname IN ('users', 'technician_customers', 'locations', 'cold_cells', 'devices')"
    " AND n_mod_since_analyze > 0"
    " AND coalesce(greatest(last_analyze, last_autoanalyze), '-infinity')"
    " < to_timestamp($1 / 1000.0) - make_interval(secs => $2)";

/* Runs a one-row, one-integer query (bound $1, $2 when nparams says). CC_OK or CC_ERR_DB. */
static int query_int(struct cc_store *st, const char *sql, int nparams, int64_t p1, int64_t p2,
                     int64_t *out)
{
    struct cc_stmt *s = NULL;
    int64_t v = 0;
    int rc = cc_stmt_prepare(st, sql, &s);

    if (rc == CC_OK && nparams >= 1)
        rc = cc_stmt_bind_int64(s, 1, p1);
    if (rc == CC_OK && nparams >= 2)
        rc = cc_stmt_bind_int64(s, 2, p2);
    if (rc == CC_OK) {
        rc = cc_stmt_step(s);
        if (rc == CC_ROW) {
            v = cc_stmt_column_int64(s, 0);
            rc = cc_stmt_step(s);
        } else if (rc == CC_OK) {
            cc_log_error("db_error", "a one-row query returned no row");
            rc = CC_ERR_DB;
        }
    }
    cc_stmt_release(s);
    if (rc == CC_OK)
        *out = v;
    return rc == CC_OK || rc == CC_ERR_NOMEM ? rc : CC_ERR_DB;
}

int cc_store_pg_schema_version(struct cc_store *st, int *out)
{
    int64_t has = 0, v = 0;
    int rc = query_int(st, sql_has_table, 0, 0, 0, &has);

    if (rc == CC_OK && has)
        rc = query_int(st, sql_version, 0, 0, 0, &v);
    if (rc == CC_OK)
        *out = (int)v;
    return rc;
}

int cc_store_pg_schema_latest(void)
{
    int latest = 0;

    for (int i = 0; i < cc_pg_migrations_count; i++)
        if (cc_pg_migrations[i].version > latest)
            latest = cc_pg_migrations[i].version;
    return latest;
}

/* Applies m in its own transaction under the migration lock, unless another process
 * got there first. CC_OK or CC_ERR_DB (rolled back, logged). */
static int apply_one(struct cc_store *st, const struct cc_migration *m)
{
    int current = 0, after = 0;
    int rc;

    rc = cc_dbi_pg_exec(st, "BEGIN");
    if (rc == CC_OK)
        rc = cc_dbi_pg_exec(st, MIGRATION_LOCK);
    /* Re-read under the lock: a concurrent start may have applied it meanwhile. */
    if (rc == CC_OK)
        rc = cc_store_pg_schema_version(st, &current);
    if (rc != CC_OK)
        goto fail;
    if (current >= m->version)
        return cc_dbi_pg_commit(st);
    rc = cc_dbi_pg_exec(st, m->sql);
    if (rc == CC_OK)
        rc = cc_store_pg_schema_version(st, &after);
    if (rc != CC_OK)
        goto fail;
    if (after != m->version) {
        cc_log_error("db_migration_failed",
                     "migration %s did not record itself in schema_migrations (version %d)",
                     m->name, after);
        goto fail;
    }
    rc = cc_dbi_pg_commit(st);
    if (rc != CC_OK)
        goto fail;
    cc_log_info("db_migrated", "applied migration %s (PostgreSQL)", m->name);
    return CC_OK;

fail:
    if (cc_dbi_pg_in_transaction(st))
        cc_dbi_pg_exec(st, "ROLLBACK");
    cc_log_error("db_migration_failed", "migration %s failed and was rolled back", m->name);
    return CC_ERR_DB;
}

int cc_store_pg_migrate(struct cc_store *st)
{
    int latest = cc_store_pg_schema_latest();
    int current = 0, prev = 0;
    int rc = cc_store_pg_schema_version(st, &current);

    if (rc != CC_OK)
        return rc;
    if (current > latest) {
        cc_log_error("db_too_new",
                     "database schema version %d is newer than this program's %d: "
                     "upgrade the program",
                     current, latest);
        return CC_ERR_DB;
    }
    for (int i = 0; rc == CC_OK && i < cc_pg_migrations_count; i++) {
        const struct cc_migration *m = &cc_pg_migrations[i];

        if (m->version <= prev) {
            cc_log_error("db_migration_failed", "migration %s is out of order", m->name);
            return CC_ERR_DB;
        }
        prev = m->version;
        if (m->version > current)
            rc = apply_one(st, m);
    }
    return rc;
}

int cc_store_pg_partitions(struct cc_store *st, int64_t now_ms)
{
    int64_t created = 0;
    int rc = query_int(st, sql_partitions, 2, now_ms, CC_PG_PARTITIONS_AHEAD, &created);

    if (rc == CC_OK && created > 0)
        cc_log_info("db_partitions", "created %lld readings partition(s)", (long long)created);
    return rc;
}

int cc_store_pg_analyze_reference(struct cc_store *st, int64_t now_ms)
{
    int64_t stale = 0;
    int rc = query_int(st, sql_reference_stale, 2, now_ms, CC_PG_ANALYZE_EVERY_S, &stale);

    if (rc != CC_OK || stale == 0)
        return rc;
    /* ANALYZE takes no parameters; the list is this file's constant. Its lock (SHARE UPDATE
     * EXCLUSIVE) blocks neither reads nor writes; a second process doing the same waits. */
    rc = cc_store_exec(st, "ANALYZE " REFERENCE_TABLES);
    if (rc == CC_OK)
        cc_log_info("db_analyzed", "%lld reference table(s) had changed", (long long)stale);
    return rc == CC_OK ? CC_OK : CC_ERR_DB;
}
