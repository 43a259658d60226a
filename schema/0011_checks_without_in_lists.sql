-- CHECKs on the tables every alert change and every reading writes, without IN lists of
-- more than two values (issue 13, docs/alerts.md "The cost of one alert change").
--
-- SQLite evaluates a CHECK (col IN ('A', 'B', 'C')) by building a temporary b-tree of the
-- constants, on every INSERT and on every UPDATE that sets the column: a new in-memory
-- database, pages zeroed, three inserts, then freed (OP_OpenEphemeral; with two values or
-- fewer it compares instead). bench_alerts counted about six per alert change and one per
-- reading (UPDATE devices SET status = 'ONLINE' ...), about a fifth of the writer's CPU
-- under alert churn and a seventh of a plain reading. col = 'A' OR col = 'B' OR col = 'C'
-- admits exactly the same values and is evaluated by comparisons. The tables are rebuilt
-- by the procedure 0006 follows (SQLite cannot alter a CHECK): create, copy, drop, rename,
-- recreate the indexes and triggers exactly as they are now; each table's text is
-- otherwise the one in force (0006, 0007, 0010). AUTOINCREMENT tables keep their
-- sqlite_sequence value, so an id is never handed out twice. PostgreSQL evaluates an IN
-- list by comparisons and keeps its CHECKs (schema/pg/: the same values, the same count
-- of CHECKs per table, which test_pg_schema compares).

CREATE TABLE devices_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    serial_number    TEXT    NOT NULL UNIQUE,
    cold_cell_id     INTEGER NOT NULL REFERENCES cold_cells (id) ON DELETE CASCADE,
    api_key_hash     TEXT    NOT NULL,              -- hex SHA-256 of the key
    api_key_prefix   TEXT    NOT NULL,              -- first characters, to recognise a key
    firmware_version TEXT,
    status           TEXT    NOT NULL DEFAULT 'NEVER_SEEN'
                             CHECK (status = 'ONLINE' OR status = 'OFFLINE' OR status = 'NEVER_SEEN'),
    last_seen_at     INTEGER,
    newest_ts        INTEGER,                       -- newest stored reading ts: alert ordering
    created_at       INTEGER NOT NULL
);
INSERT INTO devices_new (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix, firmware_version, status, last_seen_at, newest_ts, created_at)
SELECT id, serial_number, cold_cell_id, api_key_hash, api_key_prefix, firmware_version, status, last_seen_at, newest_ts, created_at FROM devices;
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT s.seq FROM sqlite_sequence s
    WHERE s.name = 'devices'), 0)) WHERE name = 'devices_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'devices_new', seq FROM sqlite_sequence
WHERE name = 'devices' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'devices_new');
DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;
CREATE INDEX devices_cold_cell ON devices (cold_cell_id);

CREATE TABLE alerts_new (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    cold_cell_id       INTEGER NOT NULL REFERENCES cold_cells (id) ON DELETE CASCADE,
    device_id          INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    type               TEXT    NOT NULL
                               CHECK (type = 'HIGH_TEMP' OR type = 'LOW_TEMP' OR type = 'POWER_LOSS' OR type = 'SENSOR_ERROR'),
    status             TEXT    NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'RESOLVED')),
    value              REAL,
    threshold          REAL,
    message            TEXT    NOT NULL,
    first_triggered_at INTEGER NOT NULL,
    last_triggered_at  INTEGER NOT NULL,
    trigger_count      INTEGER NOT NULL DEFAULT 1,
    acknowledged_at    INTEGER,
    acknowledged_by    INTEGER REFERENCES users (id) ON DELETE SET NULL,
    escalated_at       INTEGER,
    resolved_at        INTEGER,
    resolved_by        INTEGER REFERENCES users (id) ON DELETE SET NULL,
    resolution_note    TEXT
);
INSERT INTO alerts_new (id, cold_cell_id, device_id, type, status, value, threshold, message, first_triggered_at, last_triggered_at, trigger_count, acknowledged_at, acknowledged_by, escalated_at, resolved_at, resolved_by, resolution_note)
SELECT id, cold_cell_id, device_id, type, status, value, threshold, message, first_triggered_at, last_triggered_at, trigger_count, acknowledged_at, acknowledged_by, escalated_at, resolved_at, resolved_by, resolution_note FROM alerts;
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT s.seq FROM sqlite_sequence s
    WHERE s.name = 'alerts'), 0)) WHERE name = 'alerts_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'alerts_new', seq FROM sqlite_sequence
WHERE name = 'alerts' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'alerts_new');
DROP TABLE alerts;
ALTER TABLE alerts_new RENAME TO alerts;
CREATE UNIQUE INDEX alerts_one_active ON alerts (cold_cell_id, device_id, type)
    WHERE status = 'ACTIVE';
CREATE INDEX alerts_cell_first ON alerts (cold_cell_id, first_triggered_at);
CREATE INDEX alerts_status_first ON alerts (status, first_triggered_at);
CREATE INDEX alerts_device_type ON alerts (device_id, type, first_triggered_at);
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

CREATE TABLE notifications_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    alert_id        INTEGER REFERENCES alerts (id) ON DELETE SET NULL,
    kind            TEXT    NOT NULL
                            CHECK (kind = 'ALERT' OR kind = 'ALERT_RESOLVED' OR kind = 'ESCALATION' OR kind = 'DAILY_REPORT' OR kind = 'SYSTEM'),
    channel         TEXT    NOT NULL,               -- mqtt, webhook, email
    payload         TEXT    NOT NULL,               -- JSON
    status          TEXT    NOT NULL DEFAULT 'PENDING' CHECK (status = 'PENDING' OR status = 'SENT' OR status = 'FAILED'),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    read_at         INTEGER,
    last_error      TEXT
);
INSERT INTO notifications_new (id, user_id, alert_id, kind, channel, payload, status, attempts, next_attempt_at, created_at, sent_at, read_at, last_error)
SELECT id, user_id, alert_id, kind, channel, payload, status, attempts, next_attempt_at, created_at, sent_at, read_at, last_error FROM notifications;
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT s.seq FROM sqlite_sequence s
    WHERE s.name = 'notifications'), 0)) WHERE name = 'notifications_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'notifications_new', seq FROM sqlite_sequence
WHERE name = 'notifications' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'notifications_new');
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_user ON notifications (user_id, created_at);
CREATE UNIQUE INDEX notifications_once ON notifications (alert_id, user_id, kind, channel)
    WHERE alert_id IS NOT NULL;
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'PENDING';

CREATE TABLE alert_events_new (
    id              INTEGER PRIMARY KEY,
    alert_id        INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    cold_cell_id    INTEGER NOT NULL,
    event           TEXT    NOT NULL CHECK (event = 'CREATED' OR event = 'ESCALATED' OR event = 'RESOLVED' OR event = 'ACKNOWLEDGED'),
    payload         TEXT    NOT NULL,               -- the alert object (JSON) at that moment
    status          TEXT    NOT NULL DEFAULT 'PENDING'
                            CHECK (status = 'PENDING' OR status = 'SENT' OR status = 'FAILED'),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    UNIQUE (alert_id, event)
);
INSERT INTO alert_events_new (id, alert_id, cold_cell_id, event, payload, status, attempts, next_attempt_at, created_at, sent_at, last_error)
SELECT id, alert_id, cold_cell_id, event, payload, status, attempts, next_attempt_at, created_at, sent_at, last_error FROM alert_events;
DROP TABLE alert_events;
ALTER TABLE alert_events_new RENAME TO alert_events;
CREATE INDEX alert_events_due ON alert_events (next_attempt_at) WHERE status = 'PENDING';
CREATE TRIGGER alert_events_count_update AFTER UPDATE OF status ON alert_events
WHEN NEW.status IN ('SENT', 'FAILED') AND OLD.status <> NEW.status
BEGIN
    UPDATE stat_counters SET value = value + 1
    WHERE name = CASE NEW.status WHEN 'SENT' THEN 'deliveries_sent' ELSE 'deliveries_failed' END
      AND label = 'mqtt';
END;

CREATE TABLE notification_deliveries_new (
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel         TEXT    NOT NULL CHECK (channel = 'mqtt' OR channel = 'webhook' OR channel = 'email'),
    status          TEXT    NOT NULL DEFAULT 'PENDING'
                            CHECK (status = 'PENDING' OR status = 'SENT' OR status = 'FAILED'),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    PRIMARY KEY (notification_id, channel)
) WITHOUT ROWID;
INSERT INTO notification_deliveries_new (notification_id, channel, status, attempts, next_attempt_at, sent_at, last_error)
SELECT notification_id, channel, status, attempts, next_attempt_at, sent_at, last_error FROM notification_deliveries;
DROP TABLE notification_deliveries;
ALTER TABLE notification_deliveries_new RENAME TO notification_deliveries;
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
