-- Running totals for the metrics endpoints (cc_stats.h), kept by triggers.
--
-- /metrics used to count alerts and deliveries with GROUP BY over whole tables: a scrape
-- cost grew with every alert ever raised (measured: two civetweb workers took 44 % of
-- ingestd's CPU under the alert-churn bench, polled every 20 ms). One row per counter is
-- read instead. The triggers fire inside the transaction that changes the row, on every
-- path (ingestd, HTTP ingestion, manual resolve, jobs), so the totals cannot drift from
-- what was committed. Deleting rows does not lower them: they are Prometheus counters.
CREATE TABLE stat_counters (
    name  TEXT    NOT NULL,   -- alerts_raised, alerts_resolved, deliveries_sent, deliveries_failed
    label TEXT    NOT NULL,   -- alert type or channel
    value INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, label)
) WITHOUT ROWID;

INSERT INTO stat_counters (name, label, value)
SELECT k.name, t.label, 0
FROM (SELECT 'alerts_raised' AS name UNION ALL SELECT 'alerts_resolved') k,
     (SELECT 'HIGH_TEMP' AS label UNION ALL SELECT 'LOW_TEMP' UNION ALL SELECT 'POWER_LOSS'
      UNION ALL SELECT 'SENSOR_ERROR') t;
INSERT INTO stat_counters (name, label, value)
SELECT k.name, c.label, 0
FROM (SELECT 'deliveries_sent' AS name UNION ALL SELECT 'deliveries_failed') k,
     (SELECT 'mqtt' AS label UNION ALL SELECT 'webhook' UNION ALL SELECT 'email') c;

-- What is already stored counts.
UPDATE stat_counters SET value =
    (SELECT COUNT(*) FROM alerts a WHERE a.type = stat_counters.label)
WHERE name = 'alerts_raised';
UPDATE stat_counters SET value =
    (SELECT COUNT(*) FROM alerts a WHERE a.type = stat_counters.label AND a.status = 'RESOLVED')
WHERE name = 'alerts_resolved';
UPDATE stat_counters SET value =
    (SELECT COUNT(*) FROM notification_deliveries d
     WHERE d.channel = stat_counters.label AND d.status = 'SENT')
WHERE name = 'deliveries_sent';
UPDATE stat_counters SET value =
    (SELECT COUNT(*) FROM notification_deliveries d
     WHERE d.channel = stat_counters.label AND d.status = 'FAILED')
WHERE name = 'deliveries_failed';

-- An upsert that re-triggers an ACTIVE alert takes its DO UPDATE path: no AFTER INSERT.
CREATE TRIGGER alerts_count_raised AFTER INSERT ON alerts
BEGIN
    UPDATE stat_counters SET value = value + 1 WHERE name = 'alerts_raised' AND label = NEW.type;
    UPDATE stat_counters SET value = value + 1
    WHERE NEW.status = 'RESOLVED' AND name = 'alerts_resolved' AND label = NEW.type;
END;

CREATE TRIGGER alerts_count_resolved AFTER UPDATE OF status ON alerts
WHEN OLD.status <> 'RESOLVED' AND NEW.status = 'RESOLVED'
BEGIN
    UPDATE stat_counters SET value = value + 1 WHERE name = 'alerts_resolved' AND label = NEW.type;
END;

CREATE TRIGGER deliveries_count_insert AFTER INSERT ON notification_deliveries
WHEN NEW.status IN ('SENT', 'FAILED')
BEGIN
    UPDATE stat_counters SET value = value + 1
    WHERE name = CASE NEW.status WHEN 'SENT' THEN 'deliveries_sent' ELSE 'deliveries_failed' END
      AND label = NEW.channel;
END;

CREATE TRIGGER deliveries_count_update AFTER UPDATE OF status ON notification_deliveries
WHEN NEW.status IN ('SENT', 'FAILED') AND OLD.status <> NEW.status
BEGIN
    UPDATE stat_counters SET value = value + 1
    WHERE name = CASE NEW.status WHEN 'SENT' THEN 'deliveries_sent' ELSE 'deliveries_failed' END
      AND label = NEW.channel;
END;
