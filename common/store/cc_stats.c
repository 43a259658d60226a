/* cc_stats.c - alert and notification totals for the metrics endpoints (cc_stats.h). */
#include "cc_stats.h"

#include <string.h>

#include "cc_rc.h"
#include "cc_sql.h"
#include "cc_store.h"

const char *const cc_stats_alert_types[CC_STATS_ALERT_TYPES] = {"HIGH_TEMP", "LOW_TEMP",
                                                                "POWER_LOSS", "SENSOR_ERROR"};
const char *const cc_stats_channels[CC_STATS_CHANNELS] = {"mqtt", "webhook", "email"};

/* The trigger-kept totals of schema/0004_stat_counters.sql: eight and six rows. */
static const char sql_alerts[] =
    "SELECT label, sum(value * (name = 'alerts_raised')), sum(value * (name = 'alerts_resolved'))"
    " FROM stat_counters WHERE name IN ('alerts_raised', 'alerts_resolved') GROUP BY label";
static const char sql_deliveries[] =
    "SELECT label, sum(value * (name = 'deliveries_sent')),"
    " sum(value * (name = 'deliveries_failed')) FROM stat_counters"
    " WHERE name IN ('deliveries_sent', 'deliveries_failed') GROUP BY label";

static int slot(const char *const *names, int n, const unsigned char *s)
{
    for (int i = 0; s != NULL && i < n; i++) {
        if (strcmp(names[i], (const char *)s) == 0)
            return i;
    }
    return -1;
}

/* Runs sql (rows: name, a, b) into a[] / b[] by the slot of name in names. */
static int load(sqlite3 *db, const char *sql, const char *const *names, int n,
                unsigned long long *a, unsigned long long *b)
{
    sqlite3_stmt *stmt = NULL;
    int rc, src;

    rc = cc_sql_prepare(db, sql, &stmt);
    if (rc != CC_OK)
        return rc;
    while ((src = sqlite3_step(stmt)) == SQLITE_ROW) {
        int i = slot(names, n, sqlite3_column_text(stmt, 0));

        if (i < 0)
            continue;
        a[i] = (unsigned long long)sqlite3_column_int64(stmt, 1);
        b[i] = (unsigned long long)sqlite3_column_int64(stmt, 2);
    }
    if (src != SQLITE_DONE)
        rc = cc_sql_step_rc(db, src, "stats");
    cc_sql_release(stmt);
    return rc;
}

static int count(sqlite3 *db, const char *sql, unsigned long long *out)
{
    sqlite3_stmt *stmt = NULL;
    int src, rc = cc_sql_prepare(db, sql, &stmt);

    if (rc != CC_OK)
        return rc;
    src = sqlite3_step(stmt);
    if (src == SQLITE_ROW)
        *out = (unsigned long long)sqlite3_column_int64(stmt, 0);
    else
        rc = cc_sql_step_rc(db, src, "outbox");
    cc_sql_release(stmt);
    return rc;
}

int cc_stats_outbox(struct cc_store *st, unsigned long long *notifications,
                    unsigned long long *events)
{
    sqlite3 *db = cc_store_db(st);
    static const char sql_n[] = "SELECT count(*) FROM notifications WHERE status = 'PENDING'";
    static const char sql_e[] = "SELECT count(*) FROM alert_events WHERE status = 'PENDING'";
    int rc = count(db, sql_n, notifications);

    return rc == CC_OK ? count(db, sql_e, events) : rc;
}

int cc_stats_load(struct cc_store *st, struct cc_stats *out)
{
    sqlite3 *db = cc_store_db(st);
    int rc;

    memset(out, 0, sizeof *out);
    rc = load(db, sql_alerts, cc_stats_alert_types, CC_STATS_ALERT_TYPES, out->alerts_raised,
              out->alerts_resolved);
    if (rc == CC_OK)
        rc = load(db, sql_deliveries, cc_stats_channels, CC_STATS_CHANNELS, out->notifications_sent,
                  out->notifications_failed);
    return rc;
}
