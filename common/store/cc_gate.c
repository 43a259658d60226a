/* cc_gate.c - ticket lock for write transactions, see cc_gate.h. */
#include "cc_gate.h"

void cc_gate_init(struct cc_gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->turn, NULL);
    g->next = 0;
    g->serving = 0;
}

void cc_gate_destroy(struct cc_gate *g)
{
    pthread_cond_destroy(&g->turn);
    pthread_mutex_destroy(&g->mu);
}

void cc_gate_enter(struct cc_gate *g)
{
    unsigned long mine;

    pthread_mutex_lock(&g->mu);
    mine = g->next++;
    while (g->serving != mine)
        pthread_cond_wait(&g->turn, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

int cc_gate_try_enter(struct cc_gate *g)
{
    int taken = 0;

    pthread_mutex_lock(&g->mu);
    if (g->serving == g->next) {
        g->next++;
        taken = 1;
    }
    pthread_mutex_unlock(&g->mu);
    return taken;
}

void cc_gate_leave(struct cc_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->serving++;
    /* Every waiter checks its ticket; there are only a few threads. */
    pthread_cond_broadcast(&g->turn);
    pthread_mutex_unlock(&g->mu);
}
