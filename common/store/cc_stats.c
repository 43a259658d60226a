/* cc_stats.c - alert and notification totals for the metrics endpoints (cc_stats.h). */
#include "cc_stats.h"

#include <string.h>

#include "cc_rc.h"
#include "cc_dbi.h"
#include "cc_store.h"

const char *const cc_stats_alert_types[CC_STATS_ALERT_TYPES] = {"HIGH_TEMP", "LOW_TEMP",
                                                                "POWER_LOSS", "SENSOR_ERROR"};
const char *const cc_stats_channels[CC_STATS_CHANNELS] = {"mqtt", "webhook", "email"};

/* The trigger-kept totals of schema/0004_stat_counters.sql: eight and six rows. The same
 * text on SQLite and PostgreSQL (CASE, not SQLite's boolean arithmetic). */
static const char sql_alerts[] =
    "SELECT label, sum(CASE WHEN name = 'alerts_raised' THEN value ELSE 0 END),"
    " sum(CASE WHEN name = 'alerts_resolved' THEN value ELSE 0 END)"
    " FROM stat_counters WHERE name IN ('alerts_raised', 'alerts_resolved') GROUP BY label";
static const char sql_deliveries[] =
    "SELECT label, sum(CASE WHEN name = 'deliveries_sent' THEN value ELSE 0 END),"
    " sum(CASE WHEN name = 'deliveries_failed' THEN value ELSE 0 END) FROM stat_counters"
    " WHERE name IN ('deliveries_sent', 'deliveries_failed') GROUP BY label";
static const char sql_pending_n[] = "SELECT count(*) FROM notifications WHERE status = 'PENDING'";
static const char sql_pending_e[] = "SELECT count(*) FROM alert_events WHERE status = 'PENDING'";

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
