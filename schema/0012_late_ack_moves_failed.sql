-- A delivery given up as FAILED and then acknowledged after all moves from
-- deliveries_failed to deliveries_sent (docs/alerts.md "A late PUBACK after FAILED").
--
-- Two ingestd on one database: one hands an alert event to its MQTT client and holds it
-- (PENDING under CC_NOTIFY_ACK_LEASE_MS); the other, once the lease has run out, retries
-- it until its attempts run out and marks it FAILED (deliveries_failed + 1); then the first
-- one's PUBACK arrives and the row becomes SENT (deliveries_sent + 1). One event counted
-- twice, sent + failed above the events. The event did go out: SENT is right, and the
-- failure it was counted as is taken back here, in the transaction of the change. The same
-- holds for a notification's delivery (a claim whose lease ran out while its send was
-- slow). The rows changing FAILED -> SENT are rare, so the extra trigger costs the
-- ordinary paths only its WHEN test.
CREATE TRIGGER alert_events_count_unfail AFTER UPDATE OF status ON alert_events
WHEN OLD.status = 'FAILED' AND NEW.status = 'SENT'
BEGIN
    UPDATE stat_counters SET value = value - 1
    WHERE name = 'deliveries_failed' AND label = 'mqtt';
END;
CREATE TRIGGER deliveries_count_unfail AFTER UPDATE OF status ON notification_deliveries
WHEN OLD.status = 'FAILED' AND NEW.status = 'SENT'
BEGIN
    UPDATE stat_counters SET value = value - 1
    WHERE name = 'deliveries_failed' AND label = NEW.channel;
END;
