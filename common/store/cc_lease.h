/* cc_lease.h - a named lease held by one process at a time on PostgreSQL: a session-level
 * advisory lock on a connection of its own (issue 15 point 2, docs/scaling.md "ingestd
 * failover"). ingestd takes the lease named after its broker client id, so one ingestd per
 * broker session is active and the others wait as standbys; two different client ids never
 * block each other.
 *
 * The lock lives as long as the session that took it, which is why the store must be one
 * of its own (a pooled or shared connection would hand it to whoever runs next) and why
 * cc_lease_held asks PostgreSQL rather than trusting the connection: a store whose session
 * PostgreSQL ended revives itself (cc_dbi_pg) on a new session that holds nothing. */
#ifndef CC_LEASE_H
#define CC_LEASE_H

#include <stdint.h>

struct cc_store;

/* The first int4 key of coldchain's leases ("cclk"), so that they do not collide with an
 * advisory lock another application on the same database takes with one bigint key. */
#define CC_LEASE_NAMESPACE 0x63636c6b

/* The second int4 key for name (FNV-1a, 31 bits: an oid PostgreSQL shows as positive). */
int32_t cc_lease_key(const char *name);

/* Tries to take the lease on st's session (st: a PostgreSQL store used for nothing else).
 * idle_timeout_ms > 0 makes PostgreSQL end the session once idle that long
 * (idle_session_timeout), so a holder that stops answering (SIGSTOP, a hung host) loses the
 * lease instead of keeping it forever: the holder must call cc_lease_held more often.
 * *held is 1 when st's session holds it now. CC_OK, CC_ERR_DB (logged), CC_ERR_VALIDATION
 * on a SQLite store (one box: ingestd locks a file instead). */
int cc_lease_try(struct cc_store *st, const char *name, int idle_timeout_ms, int *held);

/* Whether st's session still holds the lease: *held 0 when PostgreSQL ended the session
 * (then the store is back on a new one, which holds nothing). CC_OK or CC_ERR_DB: a
 * caller that cannot ask must behave as if it lost the lease. */
int cc_lease_held(struct cc_store *st, const char *name, int *held);

/* The holdings of a lease are counted in the leases table (schema 0009 / pg 0004): right
 * after cc_lease_try took it, the holder calls cc_lease_epoch_next, which adds one and gives
 * the new count in *epoch. An active whose lock went away with its session (a PostgreSQL
 * restart, a dropped connection) takes it again with cc_lease_try and compares
 * cc_lease_epoch with its own: equal means no other process held the lease in between, so
 * it may go on; different, it must stop (another one was active). *epoch is 0 for a name
 * never held. CC_OK, CC_ERR_DB (logged), CC_ERR_VALIDATION on SQLite. */
int cc_lease_epoch_next(struct cc_store *st, const char *name, int64_t *epoch);
int cc_lease_epoch(struct cc_store *st, const char *name, int64_t *epoch);

/* cc_lease_epoch inside the caller's open transaction on st (the writer's, not the lease's
 * own session), locking the count's row FOR SHARE until that transaction ends. A holder
 * that compares it with its own just before COMMIT cannot commit after another process
 * counted its holding: that process's cc_lease_epoch_next waits for the row until this
 * commit is done, and every later check sees its count. Same returns as cc_lease_epoch. */
int cc_lease_epoch_in_tx(struct cc_store *st, const char *name, int64_t *epoch);

#endif
