-- A delivery given up as FAILED and then acknowledged after all moves from
-- deliveries_failed to deliveries_sent (docs/alerts.md "A late PUBACK after FAILED").
--
-- Two ingestd on one database: one hands an alert event to its MQTT client and holds it
-- (PENDING under CC_NOTIFY_ACK_LEASE_MS); the other, once the lease has run out, retries it
-- until its attempts run out and marks it FAILED (deliveries_failed + 1); then the first
-- one's PUBACK arrives and the row becomes SENT (deliveries_sent + 1). One event counted
-- twice, sent + failed above the events. The event did go out: SENT is right, and the
-- failure it was counted as is taken back here, in the transaction of the change. The same
-- holds for a notification's delivery (a claim whose lease ran out while its send was
-- slow). The counting triggers get a second statement rather than a trigger of their own:
-- every trigger is a sub-program SQLite enters for each updated row, and the worker
-- updates an event's status twice (hand-over, acknowledgement); the statement runs only
-- when the trigger fires and stops at its constant OLD.status test otherwise.
DROP TRIGGER alert_events_count_update;
CREATE TRIGGER alert_events_count_update AFTER UPDATE OF status ON alert_events
WHEN NEW.status IN ('SENT', 'FAILED') AND OLD.status <> NEW.status
BEGIN
    UPDATE stat_counters SET value = value + 1
    WHERE name = CASE NEW.status WHEN 'SENT' THEN 'deliveries_sent' ELSE 'deliveries_failed' END
      AND label = 'mqtt';
    UPDATE stat_counters SET value = value - 1
    WHERE OLD.status = 'FAILED' AND name = 'deliveries_failed' AND label = 'mqtt';
END;
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
