/* cc_stats.h - totals for the metrics endpoints, read from the database at scrape time.
 *
 * Alerts raised and resolved by type (every alert cc_alert_ops.h raised, and those it
 * resolved), and notification deliveries SENT and FAILED by channel
 * (notification_deliveries, alert_events), in the stat_counters table. The webhook and
 * e-mail totals are kept by the triggers of schema/0004_stat_counters.sql; the alert
 * totals and the alert events' (mqtt) by the store (cc_stats_count below,
 * schema/0012_alert_counts_without_triggers.sql); all in the transactions that change
 * those rows. They only grow (deleting rows does not
 * lower them) and cost the same to read whatever the size of the tables: fourteen rows.
 * Thread: the caller's store. Codes: CC_OK, CC_ERR_DB. */
#ifndef CC_STATS_H
#define CC_STATS_H

struct cc_store;

#define CC_STATS_ALERT_TYPES 4 /* HIGH_TEMP, LOW_TEMP, POWER_LOSS, SENSOR_ERROR */
#define CC_STATS_CHANNELS 3    /* mqtt, webhook, email */
#define CC_STATS_MQTT 0        /* the index of mqtt in cc_stats_channels */

extern const char *const cc_stats_alert_types[CC_STATS_ALERT_TYPES];
extern const char *const cc_stats_channels[CC_STATS_CHANNELS];

struct cc_stats {
    unsigned long long alerts_raised[CC_STATS_ALERT_TYPES];
    unsigned long long alerts_resolved[CC_STATS_ALERT_TYPES];
    unsigned long long notifications_sent[CC_STATS_CHANNELS];
    unsigned long long notifications_failed[CC_STATS_CHANNELS];
};

/* The totals the store counts (cc_stats_count): the alert ones by type, the delivery ones
 * by channel (of those only mqtt, the alert events, is counted by the store: the webhook
 * and e-mail deliveries keep their triggers). */
enum cc_stats_counter {
    CC_STATS_ALERTS_RAISED = 0,
    CC_STATS_ALERTS_RESOLVED,
    CC_STATS_DELIVERIES_SENT,
    CC_STATS_DELIVERIES_FAILED,
    CC_STATS_COUNTERS
};
/* One slot per (counter, label) the store can count. */
#define CC_STATS_SLOTS (2 * CC_STATS_ALERT_TYPES + 2 * CC_STATS_CHANNELS)

/* Counts one event of counter with label (the index of its name in cc_stats_alert_types
 * for the alert counters, in cc_stats_channels for the delivery ones) in the transaction
 * cc_store_begin opened on st: the store adds it up in memory and cc_store_commit writes
 * each total it touched with one UPDATE of stat_counters just before COMMIT; a rollback
 * (or a failed commit) drops it. Replaces the per-row triggers, whose statement journal
 * cost each alert change ~14,000 instructions on SQLite (docs/alerts.md, 2026-12-08).
 * CC_OK; CC_ERR_INTERNAL outside such a transaction (nothing would write the count) or
 * for a counter or label out of range. */
int cc_stats_count(struct cc_store *st, int counter, int label);
/* Takes one back, in the same way: a delivery counted FAILED that was sent after all (a late
 * PUBACK, docs/alerts.md "A late PUBACK after FAILED") moves from failed to sent. */
int cc_stats_uncount(struct cc_store *st, int counter, int label);

/* Fills *out (zeroed first) from st. CC_OK or CC_ERR_DB (out then holds what was read). */
int cc_stats_load(struct cc_store *st, struct cc_stats *out);

/* The outbox backlog: notifications and alert events still PENDING (on any channel).
 * Counted over the due indexes, so it costs in proportion to the backlog: callers
 * scrape it at most every few seconds. CC_OK or CC_ERR_DB. */
int cc_stats_outbox(struct cc_store *st, unsigned long long *notifications,
                    unsigned long long *events);

#endif
