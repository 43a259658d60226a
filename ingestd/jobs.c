/* jobs.c - the timer thread of ingestd (see jobs.h). */
#include "jobs.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "cc_db.h"
#include "cc_log.h"
#include "cc_rc.h"
#include "cc_store.h"
#include "cc_time.h"

#define TICK_MS 1000 /* how often the timers are looked at */

struct ingest_jobs {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int stopping;
    const struct cc_config *cfg;
    ingest_publish_fn publish;
    void *ctx;
    struct cc_store *st;
};

static void *run(void *arg)
{
    struct ingest_jobs *j = arg;

    pthread_mutex_lock(&j->mu);
    while (!j->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += TICK_MS / 1000;
        pthread_cond_timedwait(&j->wake, &j->mu, &until);
        if (j->stopping)
            break;
        pthread_mutex_unlock(&j->mu);
        /* Jobs run here, each idempotent and safe with two ingestd at once. */
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

int ingest_jobs_start(const struct cc_config *cfg, ingest_publish_fn publish, void *ctx,
                      struct ingest_jobs **out)
{
    struct ingest_jobs *j = calloc(1, sizeof(*j));
    int rc;

    if (j == NULL)
        return CC_ERR_NOMEM;
    j->cfg = cfg;
    j->publish = publish;
    j->ctx = ctx;
    rc = cc_store_open(cfg->db_path, 0, &j->st);
    if (rc != CC_OK) {
        free(j);
        return rc;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->wake, NULL);
    if (pthread_create(&j->thread, NULL, run, j) != 0) {
        cc_store_close(j->st);
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->wake);
        free(j);
        return CC_ERR_INTERNAL;
    }
    *out = j;
    return CC_OK;
}

void ingest_jobs_stop(struct ingest_jobs *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    j->stopping = 1;
    pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    cc_store_close(j->st);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->wake);
    free(j);
}
