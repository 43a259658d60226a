/* cc_walckpt.c - WAL checkpointer thread, see cc_walckpt.h. */
#include "cc_walckpt.h"

#include <pthread.h>
#include <stdlib.h>

#include "cc_db.h"
#include "cc_gate.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"
#include "cc_worker.h"

struct cc_walckpt {
    struct cc_worker w; /* its thread, lock, condition and stop flag */
    int wanted;         /* under mu: a commit left `step` pages to copy, or `restart` in all */
    long long copied;   /* under mu: WAL frames in the database file after the last run */
    int step, restart, limit;
    sqlite3 *db; /* the thread's own connection */
    struct cc_gate *gate;
    struct cc_walckpt_stats stats; /* under mu */
};

/* One PASSIVE checkpoint of db. Returns the SQLite code; *log and *done get the WAL size
 * and the frames in the database file afterwards (-1 when unknown). */
static int checkpoint(sqlite3 *db, int *log, int *done)
{
    *log = -1;
    *done = -1;
    return sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, log, done);
}

static int is_busy(int src)
{
    return (src & 0xff) == SQLITE_BUSY || (src & 0xff) == SQLITE_LOCKED;
}

/* Whether the tail is copied inside the gate (see cc_walckpt.h): when the gate is free at
 * once, or, waiting for it, when the WAL is long enough that it must start over. On 1 the
 * gate is held. */
static int take_gate(struct cc_walckpt *c, int log)
{
    if (c->gate == NULL || log <= 0)
        return 0;
    if (cc_gate_try_enter(c->gate))
        return 1;
    if (log < c->restart)
        return 0;
    cc_gate_enter(c->gate);
    return 1;
}

static void run_once(struct cc_walckpt *c)
{
    int64_t t0 = cc_mono_ms(), t1, t2;
    int log, done, gated = 0;
    int src = checkpoint(c->db, &log, &done);

    t1 = t2 = cc_mono_ms();
    if (src == SQLITE_OK && done >= 0 && take_gate(c, log)) {
        t1 = cc_mono_ms();
        src = checkpoint(c->db, &log, &done);
        cc_gate_leave(c->gate);
        t2 = cc_mono_ms();
        gated = 1;
    }

    pthread_mutex_lock(&c->w.mu);
    c->stats.runs++;
    if (src == SQLITE_OK) {
        if (done > 0 && done > c->copied)
            c->stats.frames += (unsigned long long)(done - c->copied);
        c->copied = done > 0 ? done : 0;
    } else if (is_busy(src)) {
        c->stats.busy++; /* another connection checkpoints: it does the work */
    } else {
        c->stats.errors++;
    }
    c->stats.seconds_sum += (double)(t2 - t0) / 1000.0;
    if (gated) {
        c->stats.gated_runs++;
        c->stats.gated_seconds_sum += (double)(t2 - t1) / 1000.0;
    }
    unsigned long long errors = c->stats.errors;
    pthread_mutex_unlock(&c->w.mu);
    if (src != SQLITE_OK && !is_busy(src) && errors % 100 == 1)
        cc_log_warn("wal_checkpoint_failed",
                    "%s (%llu so far); commits checkpoint in place past the limit",
                    sqlite3_errstr(src), errors);
}

static void *run(void *arg)
{
    struct cc_walckpt *c = arg;

    pthread_setname_np(pthread_self(), "cc-walckpt"); /* for top, perf, bench_ingest.sh */

    pthread_mutex_lock(&c->w.mu);
    for (;;) {
        while (!c->wanted && !c->w.stopping)
            pthread_cond_wait(&c->w.wake, &c->w.mu);
        if (c->w.stopping)
            break;
        c->wanted = 0;
        pthread_mutex_unlock(&c->w.mu);
        run_once(c);
        pthread_mutex_lock(&c->w.mu);
    }
    pthread_mutex_unlock(&c->w.mu);
    return NULL;
}

/* sqlite3_wal_hook callback: runs in the committing thread after COMMIT, with the write
 * lock released, so it may checkpoint. Its result would be the statement's error (the
 * commit having happened): always SQLITE_OK. */
static int on_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct cc_walckpt *c = arg;

    (void)name; /* "main": checkpoint() covers every attached database */
    pthread_mutex_lock(&c->w.mu);
    c->stats.last_wal_pages = pages;
    if (pages < c->copied)
        c->copied = 0; /* the WAL started over */
    /* At `restart` every commit asks, even with little left to copy: the run's gated
     * pass is what lets the WAL start over. */
    if ((pages - c->copied >= c->step || pages >= c->restart) && !c->wanted) {
        c->wanted = 1;
        pthread_cond_signal(&c->w.wake);
    }
    pthread_mutex_unlock(&c->w.mu);
    if (pages >= c->limit) {
        int log, done;
        checkpoint(db, &log, &done);
        pthread_mutex_lock(&c->w.mu);
        c->stats.inline_runs++;
        pthread_mutex_unlock(&c->w.mu);
    }
    return SQLITE_OK;
}

void cc_walckpt_attach(struct cc_walckpt *c, sqlite3 *db)
{
    sqlite3_wal_hook(db, on_commit, c); /* replaces sqlite3_wal_autocheckpoint's hook */
}

int cc_walckpt_start(const char *db_path, int step, int restart, int limit, struct cc_gate *gate,
                     struct cc_walckpt **out)
{
    struct cc_walckpt *c;
    int rc;

    if (step < 1 || restart < step || limit < restart)
        return CC_ERR_INTERNAL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return CC_ERR_NOMEM;
    c->step = step;
    c->restart = restart;
    c->limit = limit;
    c->gate = gate;
    /* CC_DB_CREATE: it may start before the writer's connection creates the file. */
    rc = cc_db_open(db_path, CC_DB_CREATE, &c->db);
    if (rc != CC_OK) {
        free(c);
        return rc;
    }
    /* Its own commits (there are none) must not signal itself. */
    sqlite3_wal_autocheckpoint(c->db, 0);
    if (cc_worker_start(&c->w, run, c) != CC_OK) {
        cc_db_close(c->db);
        free(c);
        return CC_ERR_INTERNAL;
    }
    *out = c;
    return CC_OK;
}

void cc_walckpt_stop(struct cc_walckpt *c)
{
    if (c == NULL)
        return;
    cc_worker_stop(&c->w);
    cc_db_close(c->db);
    free(c);
}

void cc_walckpt_get_stats(struct cc_walckpt *c, struct cc_walckpt_stats *out)
{
    pthread_mutex_lock(&c->w.mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->w.mu);
}
