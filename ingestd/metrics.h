/* metrics.h - ingestd's Prometheus endpoint (GET /metrics on INGEST_METRICS_PORT,
 * loopback). The numbers come from the writer and the MQTT loop. */
#ifndef INGEST_METRICS_H
#define INGEST_METRICS_H

#include "mqtt.h"
#include "writer.h"

struct ingest_metrics;

/* Starts the endpoint on 127.0.0.1:port; alert and notification totals are read from
 * db_path at each scrape (cc_stats.h). CC_OK or CC_ERR_IO. */
struct cc_walckpt;
/* ckpt: the WAL checkpointer whose counters are shown, or NULL. */
int ingest_metrics_start(int port, const char *db_path, struct ingest_writer *w,
                         struct ingest_mqtt_counters *mq, struct cc_walckpt *ckpt,
                         struct ingest_metrics **out);
/* A standby's endpoint is started with w NULL: it reports coldchain_ingest_active 0 and zero
 * writer counters until ingestd takes over and hands its writer here. GET /healthz answers
 * 200 with the role; GET /readyz 200 when active, 503 while standby. */
void ingest_metrics_set_active(struct ingest_metrics *m, struct ingest_writer *w,
                               struct cc_walckpt *ckpt);
/* The jobs thread's page cache (ingest_jobs_cache_kib), shown once it is known. */
void ingest_metrics_set_jobs_cache_kib(struct ingest_metrics *m, int kib);
void ingest_metrics_stop(struct ingest_metrics *m);

#endif
