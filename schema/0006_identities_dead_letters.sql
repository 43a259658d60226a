-- Identities that cannot be inherited, and dead letters with a per-device cap (issue 12
-- items 4 and 8; SPEC §2 rejected_messages, SPEC §5 "Identities").
--
-- 1. Ids are never reused. Without AUTOINCREMENT SQLite gives a new row max(id) + 1, so
--    deleting the newest user and creating another handed the new user the old id, and
--    with it every token and URL that named the old one. Every table whose id appears in
--    a token or a URL (users, locations, cold_cells, devices, alerts, notifications,
--    refresh_tokens) is rebuilt with AUTOINCREMENT, by SQLite's procedure for schema
--    changes ALTER TABLE cannot make (lang_altertable.html, section 7): create the new
--    table, copy, drop the old one, rename, then recreate its indexes and triggers, which
--    are copied here exactly as 0001, 0002 and 0004 wrote them. cc_db_migrate runs every
--    migration with foreign_keys OFF (DROP TABLE would otherwise delete the rows of every
--    child table through ON DELETE CASCADE) and checks PRAGMA foreign_key_check before it
--    commits. The tables that only point at these keep their REFERENCES clauses: they
--    name the tables, which have the same names afterwards.
--    sqlite_sequence starts at the highest id the table or the audit log has ever named,
--    so an id deleted before this migration is not handed out either.
-- 2. users.token_version, carried in every token as claim "ver": a token whose ver is not
--    the user's current one is refused (cc_auth_bearer, cc_auth_refresh). The trigger
--    users_password_changed raises it and revokes the user's refresh tokens whenever
--    password_hash changes, whatever path changed it (PATCH /api/users/:id, ccctl, SQL).
-- 3. rejected_messages.device_id (the device the topic names, 0 for a topic naming no
--    known device) and seq (1, 2, 3, ... per device_id, in arrival order) with the index
--    (device_id, seq): cc_store_dead_letter keeps the newest CC_REJECTED_PER_DEVICE_MAX
--    rows of a device by deleting seq <= newest - max, two index searches per insert
--    whatever the table's size. stat_counters 'rejected_dropped' counts those deletions.

CREATE TABLE users_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('CUSTOMER', 'TECHNICIAN', 'ADMIN')),
    name          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    token_version INTEGER NOT NULL DEFAULT 0
);
INSERT INTO users_new (id, email, password_hash, role, name, created_at, disabled)
SELECT id, email, password_hash, role, name, created_at, disabled FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

CREATE TABLE locations_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    address     TEXT    NOT NULL DEFAULT '',
    timezone    TEXT    NOT NULL DEFAULT 'UTC',
    created_at  INTEGER NOT NULL
);
INSERT INTO locations_new (id, customer_id, name, address, timezone, created_at)
SELECT id, customer_id, name, address, timezone, created_at FROM locations;
DROP TABLE locations;
ALTER TABLE locations_new RENAME TO locations;
CREATE INDEX locations_customer ON locations (customer_id);

CREATE TABLE cold_cells_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    location_id   INTEGER NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    min_temp      REAL    NOT NULL,
    max_temp      REAL    NOT NULL,
    hysteresis    REAL    NOT NULL DEFAULT 0.5 CHECK (hysteresis >= 0),
    alarm_delay_s INTEGER NOT NULL DEFAULT 0 CHECK (alarm_delay_s >= 0),
    created_at    INTEGER NOT NULL,
    CHECK (min_temp < max_temp)
);
INSERT INTO cold_cells_new (id, location_id, name, min_temp, max_temp, hysteresis,
                            alarm_delay_s, created_at)
SELECT id, location_id, name, min_temp, max_temp, hysteresis, alarm_delay_s, created_at
FROM cold_cells;
DROP TABLE cold_cells;
ALTER TABLE cold_cells_new RENAME TO cold_cells;
CREATE INDEX cold_cells_location ON cold_cells (location_id);

CREATE TABLE devices_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    serial_number    TEXT    NOT NULL UNIQUE,
    cold_cell_id     INTEGER NOT NULL REFERENCES cold_cells (id) ON DELETE CASCADE,
    api_key_hash     TEXT    NOT NULL,              -- hex SHA-256 of the key
    api_key_prefix   TEXT    NOT NULL,              -- first characters, to recognise a key
    firmware_version TEXT,
    status           TEXT    NOT NULL DEFAULT 'NEVER_SEEN'
                             CHECK (status IN ('ONLINE', 'OFFLINE', 'NEVER_SEEN')),
    last_seen_at     INTEGER,
    newest_ts        INTEGER,                       -- newest stored reading ts: alert ordering
    created_at       INTEGER NOT NULL
);
INSERT INTO devices_new (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix,
                         firmware_version, status, last_seen_at, newest_ts, created_at)
SELECT id, serial_number, cold_cell_id, api_key_hash, api_key_prefix, firmware_version,
       status, last_seen_at, newest_ts, created_at
FROM devices;
DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;
CREATE INDEX devices_cold_cell ON devices (cold_cell_id);

CREATE TABLE alerts_new (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    cold_cell_id       INTEGER NOT NULL REFERENCES cold_cells (id) ON DELETE CASCADE,
    device_id          INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    type               TEXT    NOT NULL
                               CHECK (type IN ('HIGH_TEMP', 'LOW_TEMP', 'POWER_LOSS', 'SENSOR_ERROR')),
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
INSERT INTO alerts_new (id, cold_cell_id, device_id, type, status, value, threshold, message,
                        first_triggered_at, last_triggered_at, trigger_count, acknowledged_at,
                        acknowledged_by, escalated_at, resolved_at, resolved_by,
                        resolution_note)
SELECT id, cold_cell_id, device_id, type, status, value, threshold, message,
       first_triggered_at, last_triggered_at, trigger_count, acknowledged_at, acknowledged_by,
       escalated_at, resolved_at, resolved_by, resolution_note
FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_new RENAME TO alerts;
CREATE UNIQUE INDEX alerts_one_active ON alerts (cold_cell_id, device_id, type)
    WHERE status = 'ACTIVE';
CREATE INDEX alerts_cell_first ON alerts (cold_cell_id, first_triggered_at);
CREATE INDEX alerts_status_first ON alerts (status, first_triggered_at);
CREATE INDEX alerts_device_type ON alerts (device_id, type, first_triggered_at);
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

CREATE TABLE notifications_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    alert_id        INTEGER REFERENCES alerts (id) ON DELETE SET NULL,
    kind            TEXT    NOT NULL
                            CHECK (kind IN ('ALERT', 'ALERT_RESOLVED', 'ESCALATION', 'DAILY_REPORT', 'SYSTEM')),
    channel         TEXT    NOT NULL,               -- mqtt, webhook, email
    payload         TEXT    NOT NULL,               -- JSON
    status          TEXT    NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    read_at         INTEGER,
    last_error      TEXT
);
INSERT INTO notifications_new (id, user_id, alert_id, kind, channel, payload, status, attempts,
                               next_attempt_at, created_at, sent_at, read_at, last_error)
SELECT id, user_id, alert_id, kind, channel, payload, status, attempts, next_attempt_at,
       created_at, sent_at, read_at, last_error
FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_user ON notifications (user_id, created_at);
-- One notification per (alert, recipient, kind, channel): racing writers cannot double-send.
CREATE UNIQUE INDEX notifications_once ON notifications (alert_id, user_id, kind, channel)
    WHERE alert_id IS NOT NULL;

CREATE TABLE refresh_tokens_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
INSERT INTO refresh_tokens_new (id, user_id, family_id, token_hash, created_at, expires_at,
                                revoked_at)
SELECT id, user_id, family_id, token_hash, created_at, expires_at, revoked_at
FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_new RENAME TO refresh_tokens;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- The copies set each sequence to the largest id copied; the audit log remembers ids of
-- rows deleted since (entity names as cc_audit_append writes them).
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT max(a.entity_id) FROM audit_log a
    WHERE a.entity = CASE sqlite_sequence.name
        WHEN 'users' THEN 'user' WHEN 'locations' THEN 'location'
        WHEN 'cold_cells' THEN 'cold_cell' WHEN 'devices' THEN 'device'
        WHEN 'alerts' THEN 'alert' WHEN 'notifications' THEN 'notification'
        WHEN 'refresh_tokens' THEN 'refresh_token' END), 0));
INSERT INTO sqlite_sequence (name, seq)
SELECT t.name, coalesce((SELECT max(a.entity_id) FROM audit_log a WHERE a.entity = t.entity), 0)
FROM (SELECT 'users' AS name, 'user' AS entity UNION ALL SELECT 'locations', 'location'
      UNION ALL SELECT 'cold_cells', 'cold_cell' UNION ALL SELECT 'devices', 'device'
      UNION ALL SELECT 'alerts', 'alert' UNION ALL SELECT 'notifications', 'notification'
      UNION ALL SELECT 'refresh_tokens', 'refresh_token') t
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence s WHERE s.name = t.name);

-- Any change of a password hash ends every token issued before it (access tokens by
-- their "ver" claim, refresh tokens by revocation). IS NOT: an UPDATE that names the
-- column but keeps its value (coalesce(?, password_hash)) changes nothing.
CREATE TRIGGER users_password_changed AFTER UPDATE OF password_hash ON users
WHEN OLD.password_hash IS NOT NEW.password_hash
BEGIN
    UPDATE users SET token_version = token_version + 1 WHERE id = NEW.id;
    UPDATE refresh_tokens
    SET revoked_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    WHERE user_id = NEW.id AND revoked_at IS NULL;
END;

ALTER TABLE rejected_messages ADD COLUMN device_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rejected_messages ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE rejected_messages SET device_id = coalesce((SELECT d.id FROM devices d
    WHERE d.serial_number = substr(rejected_messages.topic, 9,
                                   instr(substr(rejected_messages.topic, 9), '/') - 1)), 0)
WHERE topic LIKE 'devices/%/%';
UPDATE rejected_messages SET seq = r.n
FROM (SELECT id, row_number() OVER (PARTITION BY device_id ORDER BY id) AS n
      FROM rejected_messages) r
WHERE rejected_messages.id = r.id;
CREATE INDEX rejected_messages_device_seq ON rejected_messages (device_id, seq);

INSERT INTO stat_counters (name, label, value) VALUES ('rejected_dropped', '', 0);
