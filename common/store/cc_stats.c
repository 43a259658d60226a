/* cc_stats.c - alert and notification totals for the metrics endpoints (cc_stats.h). */
#include "cc_stats.h"

#include <string.h>

#include "cc_log.h"
#include "cc_rc.h"
#include "cc_dbi.h"
#include "cc_store.h"
#include "cc_store_impl.h"

const char *const cc_stats_alert_types[CC_STATS_ALERT_TYPES] = {"HIGH_TEMP", "LOW_TEMP",
                                                                "POWER_LOSS", "SENSOR_ERROR"};
const char *const cc_stats_channels[CC_STATS_CHANNELS] = {"mqtt", "webhook", "email"};

/* The totals of schema/0004_stat_counters.sql: eight and six rows. The same
 * text on SQLite and PostgreSQL (CASE, not SQLite's boolean arithmetic). */
static const char sql_alerts[] =
    "SELECT label, sum(CASE WHEN name = 'alerts_raised' THEN value ELSE 0 END),"
    " sum(CASE WHEN name = 'alerts_resolved' THEN value ELSE 0 END)"
    " FROM stat_counters WHERE name IN ('alerts_raised', 'alerts_resolved') GROUP BY label";
static const char sql_deliveries[] =
    "SELECT label, sum(CASE WHEN name = 'deliveries_sent' THEN value ELSE 0 END),"
    " sum(CASE WHEN name = 'deliveries_failed' THEN value ELSE 0 END) FROM stat_counters"
    " WHERE name IN ('deliveries_sent', 'deliveries_failed') GROUP BY label";
/* An upsert, not an UPDATE: a counter row gone (deleted by hand, a partial restore) comes
 * back from this commit on instead of failing every commit that counts, which stopped
 * ingestd's writer (it retries a failed batch for ever). */
static const char sql_count[] =
    "INSERT INTO stat_counters (name, label, value) VALUES ($2, $3, $1)"
    " ON CONFLICT (name, label) DO UPDATE SET value = stat_counters.value + excluded.value";
static const char *const counter_names[CC_STATS_COUNTERS] = {
    "alerts_raised", "alerts_resolved", "deliveries_sent", "deliveries_failed"};
static const char sql_pending_n[] = "SELECT count(*) FROM notifications WHERE status = 'PENDING'";
static const char sql_pending_e[] = "SELECT count(*) FROM alert_events WHERE status = 'PENDING'";

/* The label names of counter (in *names) and their number. */
static int labels_of(int counter, const char *const **names)
{
    if (counter <= CC_STATS_ALERTS_RESOLVED) {
        *names = cc_stats_alert_types;
        return CC_STATS_ALERT_TYPES;
    }
    *names = cc_stats_channels;
    return CC_STATS_CHANNELS;
}

/* The slot of counter's first label in stat_counts. */
static int first_slot(int counter)
{
    return counter <= CC_STATS_ALERTS_RESOLVED
               ? counter * CC_STATS_ALERT_TYPES
               : 2 * CC_STATS_ALERT_TYPES +
                     (counter - CC_STATS_DELIVERIES_SENT) * CC_STATS_CHANNELS;
}

/* Adds delta to the transaction's count of counter and label (cc_stats_count). */
static int count_delta(struct cc_store *st, int counter, int label, int delta)
{
    const char *const *names;

    if (cc_store_tx_id(st) == 0 || counter < 0 || counter >= CC_STATS_COUNTERS || label < 0 ||
        label >= labels_of(counter, &names))
        return CC_ERR_INTERNAL;
    st->stat_counts[first_slot(counter) + label] += delta;
    return CC_OK;
}

int cc_stats_count(struct cc_store *st, int counter, int label)
{
    return count_delta(st, counter, label, 1);
}

int cc_stats_uncount(struct cc_store *st, int counter, int label)
{
    return count_delta(st, counter, label, -1);
}

void cc_stats_drop(struct cc_store *st)
{
    memset(st->stat_counts, 0, sizeof st->stat_counts);
}

/* Adds n to the total of counter and label. */
static int add(struct cc_store *st, int counter, const char *label, int64_t n)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, sql_count, &stmt);

    if (rc == CC_OK)
        rc = cc_stmt_bind_int64(stmt, 1, n);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 2, counter_names[counter]);
    if (rc == CC_OK)
        rc = cc_stmt_bind_text(stmt, 3, label);
    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_OK && cc_stmt_changes(stmt) != 1) {
        cc_log_error("stat_counter_not_written", "%s %s", counter_names[counter], label);
        rc = CC_ERR_DB;
    }
    cc_stmt_release(stmt);
    return rc;
}

/* In one fixed order, so that two PostgreSQL sessions flushing at once lock the rows they
 * share in the same order (no deadlock). */
int cc_stats_flush(struct cc_store *st)
{
    int rc = CC_OK;

    for (int c = 0; rc == CC_OK && c < CC_STATS_COUNTERS; c++) {
        const char *const *names;
        int n = labels_of(c, &names);

        for (int l = 0; rc == CC_OK && l < n; l++) {
            int64_t v = st->stat_counts[first_slot(c) + l];

            if (v != 0)
                rc = add(st, c, names[l], v);
        }
    }
    cc_stats_drop(st);
    return rc == CC_OK ? CC_OK : CC_ERR_DB;
}

static int slot(const char *const *names, int n, const char *s)
{
    for (int i = 0; s != NULL && i < n; i++) {
        if (strcmp(names[i], s) == 0)
            return i;
    }
    return -1;
}

/* Runs sql (rows: name, a, b) into a[] / b[] by the slot of name in names. */
static int load(struct cc_store *st, const char *sql, const char *const *names, int n,
                unsigned long long *a, unsigned long long *b)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, sql, &stmt);

    while (rc == CC_OK && (rc = cc_stmt_step(stmt)) == CC_ROW) {
        int i = slot(names, n, cc_stmt_column_text(stmt, 0));

        rc = CC_OK;
        if (i < 0)
            continue;
        a[i] = (unsigned long long)cc_stmt_column_int64(stmt, 1);
        b[i] = (unsigned long long)cc_stmt_column_int64(stmt, 2);
    }
    cc_stmt_release(stmt);
    return rc == CC_OK ? CC_OK : CC_ERR_DB;
}

static int count(struct cc_store *st, const char *sql, unsigned long long *out)
{
    struct cc_stmt *stmt = NULL;
    int rc = cc_stmt_prepare(st, sql, &stmt);

    if (rc == CC_OK)
        rc = cc_stmt_step(stmt);
    if (rc == CC_ROW) {
        *out = (unsigned long long)cc_stmt_column_int64(stmt, 0);
        rc = CC_OK;
    } else {
        rc = CC_ERR_DB; /* a count always has its row */
    }
    cc_stmt_release(stmt);
    return rc;
}

int cc_stats_outbox(struct cc_store *st, unsigned long long *notifications,
                    unsigned long long *events)
{
    int rc = count(st, sql_pending_n, notifications);

    return rc == CC_OK ? count(st, sql_pending_e, events) : rc;
}

int cc_stats_load(struct cc_store *st, struct cc_stats *out)
{
    int rc;

    memset(out, 0, sizeof *out);
    rc = load(st, sql_alerts, cc_stats_alert_types, CC_STATS_ALERT_TYPES, out->alerts_raised,
              out->alerts_resolved);
    if (rc == CC_OK)
        rc = load(st, sql_deliveries, cc_stats_channels, CC_STATS_CHANNELS, out->notifications_sent,
                  out->notifications_failed);
    return rc;
}
