/* cc_worker.c - see cc_worker.h. */
#include "cc_worker.h"

#include <time.h>

#include "cc_rc.h"

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
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until); /* the condition's default clock */
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
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
