/* cc_worker.c - see cc_worker.h. */
#include "cc_worker.h"

#include "cc_rc.h"
#include "cc_time.h"

int cc_worker_start(struct cc_worker *w, void *(*fn)(void *), void *arg)
{
    w->stopping = 0;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, fn, arg) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->wake);
        return CC_ERR_INTERNAL;
    }
    return CC_OK;
}

void cc_worker_wait_ms(struct cc_worker *w, long ms)
{
    struct timespec until = cc_deadline(CLOCK_REALTIME, ms); /* the condition's default clock */

    pthread_cond_timedwait(&w->wake, &w->mu, &until);
}

void cc_worker_stop(struct cc_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->wake);
}
