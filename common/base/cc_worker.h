/* cc_worker.h - one background thread that sleeps on a condition until it has work or is
 * told to stop (ingestd's jobs, the WAL checkpointer).
 *
 * The thread function uses w->mu, w->wake and w->stopping itself: it waits on wake under mu
 * and returns soon after it sees stopping set. Thread: start and stop from one owner. */
#ifndef CC_WORKER_H
#define CC_WORKER_H

#include <pthread.h>

struct cc_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int stopping; /* under mu */
};

/* Initialises w and runs fn(arg) on a new thread. CC_OK, or CC_ERR_INTERNAL with nothing
 * left to stop. */
int cc_worker_start(struct cc_worker *w, void *(*fn)(void *), void *arg);
/* For the thread function, holding w->mu: waits on w->wake for at most ms (a signal, the
 * stop or a spurious wake-up ends it sooner; the caller looks at its state again). */
void cc_worker_wait_ms(struct cc_worker *w, long ms);
/* Sets stopping, wakes the thread, waits for it to return and frees w's lock and condition. */
void cc_worker_stop(struct cc_worker *w);

#endif
