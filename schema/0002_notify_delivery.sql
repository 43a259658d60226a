-- Notification delivery per channel, and the outbox of alert events (docs/alerts.md).
--
-- A notifications row is one event for one recipient (what GET /api/notifications
-- lists); its channel column is 'inbox'. Each configured channel (mqtt, webhook, email)
-- gets a notification_deliveries row, created by the delivery worker when it first takes
-- the notification, with its own attempts and backoff; notifications.status, attempts
-- and next_attempt_at summarise those rows. alert_events holds the alert object to
-- publish on alerts/{coldCellId} once per created, escalated and resolved alert.

CREATE TABLE notification_deliveries (
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel         TEXT    NOT NULL CHECK (channel IN ('mqtt', 'webhook', 'email')),
    status          TEXT    NOT NULL DEFAULT 'PENDING'
                            CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    PRIMARY KEY (notification_id, channel)
) WITHOUT ROWID;

CREATE TABLE alert_events (
    id              INTEGER PRIMARY KEY,
    alert_id        INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    cold_cell_id    INTEGER NOT NULL,
    event           TEXT    NOT NULL CHECK (event IN ('CREATED', 'ESCALATED', 'RESOLVED')),
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
CREATE INDEX alert_events_due ON alert_events (status, next_attempt_at);

-- The offline check and escalation scan these.
CREATE INDEX alerts_device_type ON alerts (device_id, type, first_triggered_at);
CREATE INDEX alerts_active_first ON alerts (first_triggered_at) WHERE status = 'ACTIVE';
