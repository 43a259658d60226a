/* cc_stats.h - totals for the metrics endpoints, read from the database at scrape time.
 *
 * Alerts raised and resolved by type (every alerts row, and those RESOLVED), and
 * notification deliveries SENT and FAILED by channel (notification_deliveries), as kept
 * by the triggers of schema/0004_stat_counters.sql in the transactions that change those
 * rows. They only grow (deleting rows does not lower them) and cost the same to read
 * whatever the size of the tables: fourteen rows.
 * Thread: the caller's store. Codes: CC_OK, CC_ERR_DB. */
#ifndef CC_STATS_H
#define CC_STATS_H

struct cc_store;

#define CC_STATS_ALERT_TYPES 4 /* HIGH_TEMP, LOW_TEMP, POWER_LOSS, SENSOR_ERROR */
#define CC_STATS_CHANNELS 3    /* mqtt, webhook, email */

extern const char *const cc_stats_alert_types[CC_STATS_ALERT_TYPES];
extern const char *const cc_stats_channels[CC_STATS_CHANNELS];

struct cc_stats {
    unsigned long long alerts_raised[CC_STATS_ALERT_TYPES];
    unsigned long long alerts_resolved[CC_STATS_ALERT_TYPES];
    unsigned long long notifications_sent[CC_STATS_CHANNELS];
    unsigned long long notifications_failed[CC_STATS_CHANNELS];
};

/* Fills *out (zeroed first) from st. CC_OK or CC_ERR_DB (out then holds what was read). */
int cc_stats_load(struct cc_store *st, struct cc_stats *out);

/* The outbox backlog: notifications and alert events still PENDING (on any channel).
 * Counted over the due indexes, so it costs in proportion to the backlog: callers
 * scrape it at most every few seconds. CC_OK or CC_ERR_DB. */
int cc_stats_outbox(struct cc_store *st, unsigned long long *notifications,
                    unsigned long long *events);

#endif
