-- A delivery given up as FAILED and then sent after all moves from deliveries_failed to
-- deliveries_sent (docs/alerts.md "A late PUBACK after FAILED").
--
-- Two workers on one database: one claims a delivery and is slow to send it; its lease runs
-- out, the other retries until the attempts run out and records FAILED (deliveries_failed
-- + 1); then the first one's send succeeds and the row becomes SENT (deliveries_sent + 1).
-- One delivery counted twice, sent + failed above the deliveries. It did go out: SENT is
-- right, and the failure it was counted as is taken back here, in the transaction of the
-- change. The alert events' counts (mqtt) are the delivery worker's since 0012
-- (cc_notify_deliver.c mark_acked does the same there). The statement goes inside the
-- existing trigger rather than a trigger of its own: every trigger is a sub-program SQLite
-- enters for each updated row.
DROP TRIGGER deliveries_count_update;
CREATE TRIGGER deliveries_count_update AFTER UPDATE OF status ON notification_deliveries
WHEN NEW.status IN ('SENT', 'FAILED') AND OLD.status <> NEW.status
BEGIN
    UPDATE stat_counters SET value = value + 1
    WHERE name = CASE NEW.status WHEN 'SENT' THEN 'deliveries_sent' ELSE 'deliveries_failed' END
      AND label = NEW.channel;
    UPDATE stat_counters SET value = value - 1
    WHERE OLD.status = 'FAILED' AND name = 'deliveries_failed' AND label = NEW.channel;
END;
