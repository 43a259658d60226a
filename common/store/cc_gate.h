/* cc_gate.h - a first-come, first-served lock for the write transactions of one process.
 *
 * SQLite lets one writer at a time and makes the others wait in its busy handler, which
 * sleeps 1, 2, 5, 10 ... ms between tries. Inside ingestd that is the wrong policy: the
 * writer thread commits back to back and a job thread (delivery worker, offline check)
 * almost never finds the lock free, while the writer, when it does lose, sleeps for
 * milliseconds after the lock was freed. Threads of one process that share a gate take
 * turns in arrival order (a ticket lock) and wake the moment the previous transaction
 * ends; SQLite's busy handler then only arbitrates with other processes (apid).
 * Thread-safe. */
#ifndef CC_GATE_H
#define CC_GATE_H

#include <pthread.h>

struct cc_gate {
    pthread_mutex_t mu;
    pthread_cond_t turn;
    unsigned long next;    /* the ticket the next arrival takes */
    unsigned long serving; /* the ticket that holds the gate */
};

void cc_gate_init(struct cc_gate *g);
void cc_gate_destroy(struct cc_gate *g);
void cc_gate_enter(struct cc_gate *g); /* waits for this thread's turn */
/* Takes the gate only if nobody holds it or waits for it: 1 if taken, else 0. */
int cc_gate_try_enter(struct cc_gate *g);
void cc_gate_leave(struct cc_gate *g);

#endif
