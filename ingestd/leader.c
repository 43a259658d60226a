/* leader.c - the active / standby lease of ingestd (see leader.h). */
#include "leader.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_config.h"
#include "cc_lease.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_time.h"

#define STANDBY_REMIND_MS 60000 /* the "still standby" log line */

struct ingest_leader {
    char name[160]; /* the lease's name: "ingestd:" + client id */
    char lock_path[PATH_MAX];
    int lock_fd;         /* the flock, held for the life of the process once taken */
    struct cc_store *st; /* PostgreSQL: the lease's own session; NULL on SQLite */
    pthread_mutex_t mu;  /* st is used by the writer and the watch thread */
    int poll_ms;
    int timeout_ms;
    int file_held;
    int64_t epoch; /* PostgreSQL: this holding's number (cc_lease_epoch_next); 0 not yet */
    int active;    /* the lease is ours (atomic: /metrics reads it) */
    int watching;  /* the watch thread runs */
    int stopping;  /* atomic: ends the watch thread */
    pthread_t watch;
};

static int open_lock(struct ingest_leader *l, const char *journal_dir)
{
    if (mkdir(journal_dir, 0700) != 0 && errno != EEXIST) {
        cc_log_error("journal_mkdir_failed", "%s: %s", journal_dir, strerror(errno));
        return CC_ERR_IO;
    }
    if (snprintf(l->lock_path, sizeof l->lock_path, "%s/lock", journal_dir) >=
        (int)sizeof l->lock_path)
        return CC_ERR_IO;
    l->lock_fd = open(l->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (l->lock_fd < 0) {
        cc_log_error("lease_open_failed", "%s: %s", l->lock_path, strerror(errno));
        return CC_ERR_IO;
    }
    return CC_OK;
}

int ingest_leader_new(const struct cc_config *cfg, const char *client_id, const char *journal_dir,
                      struct ingest_leader **out)
{
    struct ingest_leader *l = calloc(1, sizeof *l);
    int rc;

    if (l == NULL)
        return CC_ERR_NOMEM;
    l->lock_fd = -1;
    pthread_mutex_init(&l->mu, NULL);
    snprintf(l->name, sizeof l->name, "ingestd:%s", client_id);
    l->poll_ms = cfg->ingest_standby_poll_ms;
    l->timeout_ms = cfg->ingest_lease_timeout_ms;
    rc = open_lock(l, journal_dir);
    if (rc == CC_OK && cc_config_db_is_url(cfg)) {
        rc = cc_store_open(cfg->db_path, 0, &l->st);
        if (rc != CC_OK)
            cc_log_error("lease_open_failed", "cannot open the lease's database session");
    }
    if (rc != CC_OK) {
        ingest_leader_free(l);
        return rc;
    }
    *out = l;
    return CC_OK;
}

/* One attempt: the file first (free, local), then PostgreSQL's lock. 1 when both are held. */
static int try_once(struct ingest_leader *l)
{
    int held = 0;

    if (!l->file_held && flock(l->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return 0;
    l->file_held = 1; /* kept while PostgreSQL's lock is awaited: it is another box's */
    if (l->st == NULL)
        return 1;
    pthread_mutex_lock(&l->mu);
    int rc = cc_lease_try(l->st, l->name, l->timeout_ms, &held);
    pthread_mutex_unlock(&l->mu);
    if (rc != CC_OK)
        cc_log_warn("lease_try_failed", "%s: %s; trying again", l->name, cc_rc_code(rc));
    return held;
}

int ingest_leader_acquire(struct ingest_leader *l, volatile sig_atomic_t *stop)
{
    int64_t t0 = cc_mono_ms(), reminded = 0;
    int waited = 0;

    for (;;) {
        int got = try_once(l);
        if (got) {
            __atomic_store_n(&l->active, 1, __ATOMIC_RELEASE);
            if (waited)
                cc_log_info("took_over", "%s: lease taken after %lld ms as standby; now active",
                            l->name, (long long)(cc_mono_ms() - t0));
            else
                cc_log_info("active", "%s: lease taken", l->name);
            return 1;
        }
        if (!waited || cc_mono_ms() - reminded >= STANDBY_REMIND_MS) {
            cc_log_info("standby", "%s: another ingestd is active; trying every %d ms", l->name,
                        l->poll_ms);
            reminded = cc_mono_ms();
        }
        waited = 1;
        for (int slept = 0; slept < l->poll_ms && !*stop; slept += 50)
            cc_sleep_ms(l->poll_ms - slept < 50 ? l->poll_ms - slept : 50);
        if (*stop)
            return 0;
    }
}

enum lease_state { LEASE_LOST, LEASE_HELD, LEASE_UNKNOWN };

/* Whether the lease holds; under l->mu. The file cannot be lost; PostgreSQL's session can.
 * The holding is counted once, at the first check: the writer's, before its first commit,
 * after ingestd has migrated (the leases table exists). A session that went away (the
 * store revives on a new one, which holds nothing) is taken again when nobody else holds
 * the lease, and kept only when no other holding was counted meanwhile. */
static enum lease_state lease_state(struct ingest_leader *l)
{
    int held = 0;
    int64_t epoch = 0;

    if (l->epoch == 0) {
        /* Counted only while held: a holding counted after losing the lock could hide
         * another process's holding in between. */
        if (cc_lease_held(l->st, l->name, &held) != CC_OK)
            return LEASE_UNKNOWN;
        if (!held)
            return LEASE_LOST;
        if (cc_lease_epoch_next(l->st, l->name, &l->epoch) != CC_OK) {
            l->epoch = 0;
            return LEASE_UNKNOWN;
        }
        cc_log_info("lease_epoch", "%s: holding number %lld", l->name, (long long)l->epoch);
        return LEASE_HELD;
    }
    if (cc_lease_held(l->st, l->name, &held) != CC_OK)
        return LEASE_UNKNOWN;
    if (held)
        return LEASE_HELD;
    if (cc_lease_try(l->st, l->name, l->timeout_ms, &held) != CC_OK)
        return LEASE_UNKNOWN;
    if (!held)
        return LEASE_LOST; /* another process holds it now */
    if (cc_lease_epoch(l->st, l->name, &epoch) != CC_OK)
        return LEASE_UNKNOWN; /* held again; the next check compares */
    if (epoch != l->epoch)
        return LEASE_LOST; /* someone else was active in between: our state is stale */
    cc_log_warn("lease_regained",
                "%s: the lease's session had ended (a PostgreSQL restart or a cut connection); "
                "taken again, no other holder in between",
                l->name);
    return LEASE_HELD;
}

static enum lease_state still_held(struct ingest_leader *l)
{
    enum lease_state r;

    if (l->st == NULL)
        return LEASE_HELD;
    pthread_mutex_lock(&l->mu);
    r = lease_state(l);
    pthread_mutex_unlock(&l->mu);
    return r;
}

static void fence(struct ingest_leader *l, const char *who)
{
    cc_log_error("fenced",
                 "%s: the lease is lost (seen by the %s); exiting without committing "
                 "or acknowledging more: the journal keeps the rest for the next active",
                 l->name, who);
    _exit(INGEST_EXIT_FENCED);
}

static void *watch(void *arg)
{
    struct ingest_leader *l = arg;

    while (!__atomic_load_n(&l->stopping, __ATOMIC_ACQUIRE)) {
        for (int slept = 0; slept < l->poll_ms; slept += 50)
            cc_sleep_ms(l->poll_ms - slept < 50 ? l->poll_ms - slept : 50);
        /* LEASE_UNKNOWN (PostgreSQL away): wait; the writer commits nothing meanwhile. */
        if (!__atomic_load_n(&l->stopping, __ATOMIC_ACQUIRE) && still_held(l) == LEASE_LOST)
            fence(l, "lease watch");
    }
    return NULL;
}

int ingest_leader_watch(struct ingest_leader *l)
{
    if (l->st == NULL)
        return CC_OK; /* an flock is held until the process ends: nothing to watch */
    if (pthread_create(&l->watch, NULL, watch, l) != 0)
        return CC_ERR_INTERNAL;
    l->watching = 1;
    return CC_OK;
}

int ingest_leader_check(void *leader, struct cc_store *tx)
{
    struct ingest_leader *l = leader;
    int64_t counted = 0, mine;

    switch (still_held(l)) {
    case LEASE_HELD:
        break;
    case LEASE_UNKNOWN:
        return CC_ERR_DB; /* not now: the batch is rolled back and retried */
    case LEASE_LOST:
        fence(l, "writer, before a commit");
    }
    if (l->st == NULL)
        return CC_OK; /* one box: the flock cannot be lost */
    /* still_held asked on the lease's own session, which can end between that answer and
     * this COMMIT while another box takes the lease. Reading the count in this transaction,
     * row locked, closes that window: the other one counts its holding only after this
     * commit, and its first commit comes after that. */
    pthread_mutex_lock(&l->mu);
    mine = l->epoch;
    pthread_mutex_unlock(&l->mu);
    if (cc_lease_epoch_in_tx(tx, l->name, &counted) != CC_OK)
        return CC_ERR_DB;
    if (counted != mine)
        fence(l, "writer, inside its transaction (another holding was counted)");
    return CC_OK;
}

int ingest_leader_active(const struct ingest_leader *l)
{
    return l != NULL && __atomic_load_n(&l->active, __ATOMIC_ACQUIRE);
}

void ingest_leader_free(struct ingest_leader *l)
{
    if (l == NULL)
        return;
    if (l->watching) {
        __atomic_store_n(&l->stopping, 1, __ATOMIC_RELEASE);
        pthread_join(l->watch, NULL);
    }
    cc_store_close(l->st); /* PostgreSQL's lock goes with its session */
    pthread_mutex_destroy(&l->mu);
    if (l->lock_fd >= 0)
        close(l->lock_fd); /* and the flock with the last descriptor */
    free(l);
}
