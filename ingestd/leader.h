/* leader.h - which ingestd of a broker session is the active one (issue 15 point 2;
 * docs/scaling.md "ingestd failover").
 *
 * Every ingestd started with the same INGEST_CLIENT_ID competes for one lease: an flock(2)
 * on the lock file in its journal directory (one box: the same directory, hence the same
 * journal), and on PostgreSQL also a session-level advisory lock named after the client id
 * (cc_lease.h; across boxes). The winner is the active one; the others wait as standbys,
 * trying every INGEST_STANDBY_POLL_MS, and only once they hold the lease open the journal
 * (replaying what the dead active acknowledged but did not commit) and connect to the broker
 * with the same client id, which hands them the session's backlog and its unacknowledged
 * messages.
 *
 * An active that loses its PostgreSQL lease (its session ended: a network cut, a PostgreSQL
 * restart, INGEST_LEASE_TIMEOUT_MS of silence while paused) takes it again if it can and no
 * other ingestd held it in between (the holdings are counted: cc_lease_epoch), and goes on;
 * otherwise it is fenced: it exits at once, committing and acknowledging nothing more, as if
 * killed; what it had journaled stays for the next active. While PostgreSQL does not answer
 * it neither commits nor exits. The writer asks before every commit, a watch thread once
 * per poll. */
#ifndef INGEST_LEADER_H
#define INGEST_LEADER_H

#include <signal.h>

/* The exit status of a fenced ingestd: a supervisor restarts it, and it waits as a standby. */
#define INGEST_EXIT_FENCED 3

struct cc_config;
struct cc_store;
struct ingest_leader;

/* journal_dir: this client id's journal directory (created if missing; its lock file is
 * the one-box lease). cfg is read during the call only. CC_OK, CC_ERR_IO, CC_ERR_DB. */
int ingest_leader_new(const struct cc_config *cfg, const char *client_id, const char *journal_dir,
                      struct ingest_leader **out);
/* Waits until this process holds the lease (returns 1) or *stop is set (returns 0). */
int ingest_leader_acquire(struct ingest_leader *l, volatile sig_atomic_t *stop);
/* Starts the thread that checks the lease every poll and fences on its loss. CC_OK or
 * CC_ERR_INTERNAL. */
int ingest_leader_watch(struct ingest_leader *l);
/* The writer's check before a commit (an ingest_fence_fn): CC_OK when the lease is still
 * held (or, lost with its session, taken again with no other holder in between: the epoch,
 * cc_lease.h) and, on PostgreSQL, the count read inside the writer's transaction on tx is
 * still this holding's (cc_lease_epoch_in_tx: no other process can count a holding until
 * this commit is done, so none commits before it); CC_ERR_DB when PostgreSQL cannot be
 * asked now (the batch is retried); else logs and exits with INGEST_EXIT_FENCED. */
int ingest_leader_check(void *leader, struct cc_store *tx);
/* 1 once acquired. Thread-safe. */
int ingest_leader_active(const struct ingest_leader *l);
void ingest_leader_free(struct ingest_leader *l);

#endif
