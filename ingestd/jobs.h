/* jobs.h - ingestd's background jobs on timers, in one thread with its own store:
 * the offline check, escalation, the daily report, retention and notification
 * delivery. The rules live in common/ (cc_jobs_*, cc_notify_*); this thread only
 * decides when they run. */
#ifndef INGEST_JOBS_H
#define INGEST_JOBS_H

#include "cc_config.h"
#include "cc_notify.h"

struct ingest_jobs;

struct cc_gate;
struct cc_walckpt;
/* How many more publishes the client takes now (ingest_mqtt_publish_room). */
typedef int (*ingest_room_fn)(void *ctx);

/* gate: shared with the writer (cc_gate.h), or NULL. ckpt: as for the writer, or NULL.
 * publish, room and acked (all called with ctx) carry the alert events
 * (ingest_mqtt_publish_event, _publish_room, _take_acked). */
int ingest_jobs_start(const struct cc_config *cfg, struct cc_gate *gate, struct cc_walckpt *ckpt,
                      cc_notify_publish_fn publish, ingest_room_fn room, cc_notify_acked_fn acked,
                      void *ctx, struct ingest_jobs **out);
/* The thread's SQLite page cache limit in KiB (INGEST_JOBS_CACHE_KIB), as its connection
 * reported it at start; 0 on PostgreSQL. */
int ingest_jobs_cache_kib(const struct ingest_jobs *j);
/* Stops the thread after the job in hand, then marks SENT the alert events acknowledged
 * since its last pass (call it after the broker connection has ended, before freeing it);
 * NULL is a no-op. */
void ingest_jobs_stop(struct ingest_jobs *j);

#endif
