/* cc_walckpt.h - a WAL checkpointer thread for a process whose writer commits back to back.
 *
 * SQLite's automatic checkpoint runs in the connection that commits past 1,000 WAL pages,
 * right after its COMMIT: ingestd's writer thread copied pages into the database file and
 * waited in fdatasync there (measured under the alert-churn bench: 13 % of the writer's
 * wall time in fdatasync, the writer being the bottleneck). Connections attached here
 * instead tell a thread of their own, which checkpoints from its own connection while
 * they go on.
 *
 * A run starts when `step` WAL pages are not yet copied, and after every commit once the
 * WAL has reached `restart` pages. It is a PASSIVE checkpoint with
 * no lock of ours, concurrent with the writers; then, inside the process's write gate
 * (cc_gate.h), a second one for the frames committed meanwhile, when the gate is free at
 * once, or in any case when the WAL has reached `restart` pages. SQLite starts the WAL
 * file over only when a write transaction begins with every frame copied, and that second
 * pass guarantees it (no transaction of this process is open): without it a writer that
 * always has work would grow the WAL for ever, and with it on every run the writer would
 * wait for the tail's copy and syncs each time. Should the thread fall behind anyway (a
 * stuck disk), a commit that leaves `limit` pages or more in the WAL checkpoints in place,
 * as SQLite's automatic checkpoint would. Thread-safe. */
#ifndef CC_WALCKPT_H
#define CC_WALCKPT_H

/* struct sqlite3 (sqlite3.h's typedef names the same type), not the header: ingestd
 * includes this one and otherwise no database header (issue 14). */
struct sqlite3;
struct cc_gate;
struct cc_walckpt;

struct cc_walckpt_stats {
    unsigned long long runs;        /* checkpoint runs of the thread */
    unsigned long long frames;      /* WAL frames copied into the database by them */
    unsigned long long busy;        /* runs that found another checkpoint going on */
    unsigned long long errors;      /* runs that failed otherwise (logged) */
    unsigned long long gated_runs;  /* of which with a second pass inside the gate */
    unsigned long long inline_runs; /* checkpoints a committing connection had to run */
    double seconds_sum;             /* time spent in runs */
    double gated_seconds_sum;       /* of which inside the write gate */
    long long last_wal_pages;       /* WAL size after the last commit seen */
};

/* Opens its own connection to db_path (creating the file if need be) and starts the
 * thread. Sizes in WAL pages, 1 <= step <= restart <= limit (see above); gate: the write
 * gate of the process, or NULL (then no second pass). CC_OK or CC_ERR_*. */
int cc_walckpt_start(const char *db_path, int step, int restart, int limit, struct cc_gate *gate,
                     struct cc_walckpt **out);
/* Replaces db's automatic checkpoint by a signal to c. c must outlive db. */
void cc_walckpt_attach(struct cc_walckpt *c, struct sqlite3 *db);
/* Stops the thread (after the run in progress) and closes its connection. NULL is fine. */
void cc_walckpt_stop(struct cc_walckpt *c);
void cc_walckpt_get_stats(struct cc_walckpt *c, struct cc_walckpt_stats *out);

#endif
