-- MQTT carries alert events only (SPEC §3, issue 13 point 4; docs/alerts.md).
--
-- 1. People have no broker accounts, so per-user notifications are no longer published on
--    notifications/{userId}: they are stored (GET /api/notifications) and sent by webhook
--    and e-mail. The delivery worker never creates an 'mqtt' notification_deliveries row
--    again. Rows already queued for that channel at upgrade (PENDING) would never be sent
--    and would keep their notification PENDING for ever, so they are deleted, and their
--    notifications made due at once: the worker's next pass recomputes each one's status
--    from the deliveries left (SENT when none is left). SENT and FAILED 'mqtt' rows stay as
--    history; the CHECK on channel still admits 'mqtt' for them.
-- 2. alerts/{coldCellId} is published on acknowledge too: alert_events.event admits
--    'ACKNOWLEDGED' (written by cc_notify_alert_acknowledged in the acknowledge's
--    transaction; UNIQUE (alert_id, event) keeps it to the first acknowledgement). A CHECK
--    cannot be altered in SQLite, so the table is rebuilt by the procedure 0006 follows
--    (create, copy, drop, rename, recreate the index), its text otherwise exactly 0002's.
-- 3. coldchain_notifications_sent_total / _failed_total {channel="mqtt"} (stat_counters
--    deliveries_sent / deliveries_failed, label 'mqtt') count the alert events published
--    or given up from now on, so the channel's counters keep meaning "what went out over
--    MQTT". Events sent before this migration are not added.

UPDATE notifications SET next_attempt_at = 0
WHERE status = 'PENDING' AND id IN (SELECT notification_id FROM notification_deliveries
                                    WHERE channel = 'mqtt' AND status = 'PENDING');
DELETE FROM notification_deliveries WHERE channel = 'mqtt' AND status = 'PENDING';

CREATE TABLE alert_events_new (
    id              INTEGER PRIMARY KEY,
    alert_id        INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    cold_cell_id    INTEGER NOT NULL,
    event           TEXT    NOT NULL CHECK (event IN ('CREATED', 'ESCALATED', 'RESOLVED', 'ACKNOWLEDGED')),
    payload         TEXT    NOT NULL,               -- the alert object (JSON) at that moment
    status          TEXT    NOT NULL DEFAULT 'PENDING'
                            CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    UNIQUE (alert_id, event)
);
INSERT INTO alert_events_new (id, alert_id, cold_cell_id, event, payload, status, attempts,
                              next_attempt_at, created_at, sent_at, last_error)
SELECT id, alert_id, cold_cell_id, event, payload, status, attempts, next_attempt_at,
       created_at, sent_at, last_error FROM alert_events;
DROP TABLE alert_events;
ALTER TABLE alert_events_new RENAME TO alert_events;
CREATE INDEX alert_events_due ON alert_events (status, next_attempt_at);

CREATE TRIGGER alert_events_count_update AFTER UPDATE OF status ON alert_events
WHEN NEW.status IN ('SENT', 'FAILED') AND OLD.status <> NEW.status
BEGIN
    UPDATE stat_counters SET value = value + 1
    WHERE name = CASE NEW.status WHEN 'SENT' THEN 'deliveries_sent' ELSE 'deliveries_failed' END
      AND label = 'mqtt';
END;
