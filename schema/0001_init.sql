-- coldchain data model (SPEC §2). All times are INTEGER epoch milliseconds UTC.
-- Applied once, in one transaction, by cc_db_migrate(); never edit after it ships.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('CUSTOMER', 'TECHNICIAN', 'ADMIN')),
    name          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
);

CREATE TABLE technician_customers (
    technician_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    customer_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (technician_id, customer_id)
) WITHOUT ROWID;
CREATE INDEX technician_customers_customer ON technician_customers (customer_id);

CREATE TABLE locations (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    address     TEXT    NOT NULL DEFAULT '',
    timezone    TEXT    NOT NULL DEFAULT 'UTC',
    created_at  INTEGER NOT NULL
);
CREATE INDEX locations_customer ON locations (customer_id);

CREATE TABLE cold_cells (
    id            INTEGER PRIMARY KEY,
    location_id   INTEGER NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    min_temp      REAL    NOT NULL,
    max_temp      REAL    NOT NULL,
    hysteresis    REAL    NOT NULL DEFAULT 0.5 CHECK (hysteresis >= 0),
    alarm_delay_s INTEGER NOT NULL DEFAULT 0 CHECK (alarm_delay_s >= 0),
    created_at    INTEGER NOT NULL,
    CHECK (min_temp < max_temp)
);
CREATE INDEX cold_cells_location ON cold_cells (location_id);

CREATE TABLE devices (
    id               INTEGER PRIMARY KEY,
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
CREATE INDEX devices_cold_cell ON devices (cold_cell_id);

CREATE TABLE readings (
    id            INTEGER PRIMARY KEY,
    device_id     INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    cold_cell_id  INTEGER NOT NULL REFERENCES cold_cells (id) ON DELETE CASCADE,
    ts            INTEGER NOT NULL,
    temperature   REAL    NOT NULL,
    humidity      REAL,
    power_status  INTEGER CHECK (power_status IN (0, 1)),
    door_status   INTEGER CHECK (door_status IN (0, 1)),
    battery_level REAL,
    received_at   INTEGER NOT NULL,
    UNIQUE (device_id, ts)
);
CREATE INDEX readings_cell_ts ON readings (cold_cell_id, ts);

-- Five-minute rollups per cell, kept in the ingest transaction (queries issue).
CREATE TABLE readings_5m (
    cold_cell_id INTEGER NOT NULL REFERENCES cold_cells (id) ON DELETE CASCADE,
    bucket_ts    INTEGER NOT NULL,                  -- multiple of 300000
    min_temp     REAL    NOT NULL,
    max_temp     REAL    NOT NULL,
    sum_temp     REAL    NOT NULL,
    count        INTEGER NOT NULL,
    mkt_sum      REAL    NOT NULL,                  -- sum of exp(-dH/R / T_kelvin)
    PRIMARY KEY (cold_cell_id, bucket_ts)
) WITHOUT ROWID;

CREATE TABLE alerts (
    id                 INTEGER PRIMARY KEY,
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
CREATE UNIQUE INDEX alerts_one_active ON alerts (cold_cell_id, device_id, type)
    WHERE status = 'ACTIVE';
CREATE INDEX alerts_cell_first ON alerts (cold_cell_id, first_triggered_at);
CREATE INDEX alerts_status_first ON alerts (status, first_triggered_at);

-- Start of a pending excursion, so a restart does not reset an alarm delay.
CREATE TABLE alert_pending (
    device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    type      TEXT    NOT NULL,
    since_ts  INTEGER NOT NULL,
    PRIMARY KEY (device_id, type)
) WITHOUT ROWID;

CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY,
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
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_user ON notifications (user_id, created_at);
-- One notification per (alert, recipient, kind, channel): racing writers cannot double-send.
CREATE UNIQUE INDEX notifications_once ON notifications (alert_id, user_id, kind, channel)
    WHERE alert_id IS NOT NULL;

CREATE TABLE refresh_tokens (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE rejected_messages (
    id            INTEGER PRIMARY KEY,
    received_at   INTEGER NOT NULL,
    topic         TEXT    NOT NULL,
    payload       BLOB    NOT NULL,                 -- at most 4 KiB, the first bytes
    payload_size  INTEGER NOT NULL,                 -- the size that arrived
    error_code    TEXT    NOT NULL,
    error_message TEXT    NOT NULL
);
CREATE INDEX rejected_messages_received ON rejected_messages (received_at);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    ts            INTEGER NOT NULL,
    actor_user_id INTEGER,
    action        TEXT    NOT NULL,
    entity        TEXT    NOT NULL,
    entity_id     INTEGER,
    detail        TEXT                               -- JSON: old and new values
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE daily_reports (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day         TEXT    NOT NULL,                   -- YYYY-MM-DD (UTC) the report covers
    payload     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (customer_id, day)
);

-- ingestd's journal position committed with the readings it produced (exactly-once replay).
CREATE TABLE ingest_checkpoint (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    journal_gen    INTEGER NOT NULL,
    journal_offset INTEGER NOT NULL
);
INSERT INTO ingest_checkpoint (id, journal_gen, journal_offset) VALUES (1, 0, 0);
