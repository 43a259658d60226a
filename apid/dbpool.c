/* dbpool.c - the pool of database connections lent to apid's workers (dbpool.h). */
#include "dbpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_time.h"

struct slot {
    struct cc_store *st; /* NULL until opened; CC_STORE_POOLED: it keeps its statements */
    int reading;         /* a read transaction is open on st */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    const char *path;
    struct slot slots[API_DB_CONNS];
    struct slot *idle[API_DB_CONNS]; /* a stack: the warmest connection goes out first */
    int n_idle;
    atomic_int n_open; /* slots whose connection is open, for /metrics */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The slot this thread holds, if any (a worker serves one request at a time). */
static _Thread_local struct slot *held;

int api_db_init(const char *path)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pool.freed, &ca);
    pthread_condattr_destroy(&ca);
    pool.path = path;
    for (int i = 0; i < API_DB_CONNS; i++)
        pool.idle[i] = &pool.slots[API_DB_CONNS - 1 - i];
    pool.n_idle = API_DB_CONNS;
    return CC_OK;
}

void api_db_free(void)
{
    for (int i = 0; i < API_DB_CONNS; i++) {
        struct slot *s = &pool.slots[i];

        cc_store_close(s->st); /* with the statements cached on it */
        s->st = NULL;
    }
    pool.n_idle = 0;
    atomic_store(&pool.n_open, 0);
}

int api_db_open_count(void)
{
    return atomic_load(&pool.n_open);
}

/* Takes an idle slot, waiting at most API_DB_WAIT_MS; NULL on time-out. */
static struct slot *slot_take(void)
{
    struct timespec until;
    struct slot *s = NULL;
    int err = 0;

    until = cc_deadline(CLOCK_MONOTONIC, API_DB_WAIT_MS);
    pthread_mutex_lock(&pool.mu);
    while (pool.n_idle == 0 && err != ETIMEDOUT)
        err = pthread_cond_timedwait(&pool.freed, &pool.mu, &until);
    if (pool.n_idle > 0)
        s = pool.idle[--pool.n_idle];
    pthread_mutex_unlock(&pool.mu);
    return s;
}

static void slot_give(struct slot *s)
{
    pthread_mutex_lock(&pool.mu);
    pool.idle[pool.n_idle++] = s;
    pthread_cond_signal(&pool.freed);
    pthread_mutex_unlock(&pool.mu);
}

int api_db_take(struct api_req *r, int read_tx)
{
    struct slot *s;

    if (held != NULL)
        api_db_give(r);
    s = slot_take();
    if (s == NULL) {
        cc_log_warn("db_pool_exhausted", "no free connection within %d ms", API_DB_WAIT_MS);
        return CC_ERR_DB;
    }
    if (s->st == NULL) {
        if (cc_store_open(pool.path, CC_STORE_POOLED, &s->st) != CC_OK ||
            cc_store_set_cache_kib(s->st, API_DB_CACHE_KIB) != CC_OK) {
            cc_log_error("worker_db_open_failed", "%s", pool.path);
            cc_store_close(s->st);
            s->st = NULL;
            slot_give(s);
            return CC_ERR_DB;
        }
        atomic_fetch_add(&pool.n_open, 1);
    }
    /* A request run again (server.c) gets a connection opened anew: the others of the pool
     * may be dying with the one it lost, not yet visibly. */
    if ((r->retried ? cc_store_reconnect(s->st) : cc_store_check(s->st)) != CC_OK) {
        /* The server is away (logged): the pool keeps the store and opens it again on a
         * later take, once the server is back. */
        slot_give(s);
        return CC_ERR_DB;
    }
    cc_store_thread_enter(s->st);
    held = s;
    s->reading = read_tx && cc_store_read_begin(s->st) == CC_OK;
    cc_store_retry_mark(s->st);
    r->st = s->st;
    return CC_OK;
}

void api_db_give(struct api_req *r)
{
    struct slot *s = held;

    r->st = NULL;
    if (s == NULL)
        return;
    if (s->reading)
        cc_store_read_end(s->st);
    s->reading = 0;
    if (cc_store_in_transaction(s->st)) {
        /* A handler left a transaction open: a bug, but the next borrower must not
         * inherit it. */
        cc_log_error("db_tx_left_open", "rolled back before reuse");
        cc_store_rollback(s->st);
    }
    cc_store_thread_leave(s->st);
    held = NULL;
    slot_give(s);
}
