"""Helpers shared by the test_alerts_*.py scripts: sign in, find the seed's devices by
owner and cell type, publish readings over MQTT or HTTP, and count alert rows."""
import json
import time

from harness import wait_for

# Rate limits high enough for 1000 HTTP readings and a few sign-ins per script.
ENV = {"RATE_LIMIT_API": "1000000", "RATE_LIMIT_AUTH": "1000"}
PASSWORDS = {"customer1@example.com": "customer123", "customer2@example.com": "customer123",
             "tech@example.com": "technician123", "admin@example.com": "admin123"}


def now_ms():
    return int(time.time() * 1000)


def login(st, email):
    status, _, body = st.http("POST", "/api/auth/login",
                              {"email": email, "password": PASSWORDS[email]})
    assert status == 200, (status, body)
    return body["accessToken"]


def user_id(st, email):
    return st.scalar("SELECT id FROM users WHERE email = ?", (email,))


def devices_of(st, email, fridge=True):
    """(serial, device id, cell id, min, max) of the customer's devices: fridges (max > 0),
    freezers, or all (fridge=None)."""
    rows = st.sql("SELECT d.serial_number, d.id, c.id, c.min_temp, c.max_temp FROM devices d"
                  " JOIN cold_cells c ON c.id = d.cold_cell_id JOIN locations l ON"
                  " l.id = c.location_id JOIN users u ON u.id = l.customer_id WHERE u.email = ?"
                  " ORDER BY d.id", (email,))
    return [r for r in rows if (fridge is None or (r[4] > 0) == fridge) and r[0] in st.keys]


def recipients(st, cell_id):
    """User ids of the cell's customer and its linked technicians."""
    cust = st.scalar("SELECT l.customer_id FROM cold_cells c JOIN locations l ON"
                     " l.id = c.location_id WHERE c.id = ?", (cell_id,))
    techs = [r[0] for r in st.sql("SELECT technician_id FROM technician_customers WHERE"
                                  " customer_id = ?", (cust,))]
    return sorted([cust] + techs)


class Device:
    """One device publishing over MQTT (QoS 1) and HTTP."""

    def __init__(self, st, serial):
        self.st, self.serial, self.key = st, serial, st.keys[serial]
        self.id = st.scalar("SELECT id FROM devices WHERE serial_number = ?", (serial,))
        self.mqtt = None

    def publish(self, reading, wait=True):
        if self.mqtt is None:
            self.mqtt = self.st.mqtt_client(self.serial, self.key)
        body = dict(reading)
        body.setdefault("ts", now_ms())
        self.mqtt.publish("devices/%s/readings" % self.serial, json.dumps(body),
                          qos=1).wait_for_publish()
        if wait:
            self.wait_stored(body["ts"])
        return body["ts"]

    def post(self, reading):
        return self.st.http("POST", "/api/readings/devices/%s/readings" % self.serial, reading,
                            headers={"x-device-key": self.key})

    def wait_stored(self, ts, timeout=15):
        wait_for(lambda: self.st.scalar("SELECT count(*) FROM readings WHERE device_id = ?"
                                        " AND ts = ?", (self.id, ts)) == 1,
                 timeout=timeout, what="reading ts=%d stored" % ts)

    def close(self):
        if self.mqtt is not None:
            self.mqtt.loop_stop()
            self.mqtt.disconnect()
            self.mqtt = None


def alerts(st, device_id, type_, status=None):
    q = "SELECT id, status, trigger_count, resolved_by FROM alerts WHERE device_id = ? AND type = ?"
    args = [device_id, type_]
    if status:
        q += " AND status = ?"
        args.append(status)
    return st.sql(q + " ORDER BY id", tuple(args))


def notes_per_user(st, alert_id, kind):
    """{user_id: rows} of one alert's notifications of one kind."""
    return dict(st.sql("SELECT user_id, count(*) FROM notifications WHERE alert_id = ? AND"
                       " kind = ? GROUP BY user_id", (alert_id, kind)))


def event_backlog(st, n, payload=lambda alert_id: "{}"):
    """n resolved alerts of the seed's first device, one PENDING CREATED event each, due now:
    an outbox backlog no alert rule can add to. Returns (cell id, alert ids)."""
    dev, cell = st.sql("SELECT id, cold_cell_id FROM devices ORDER BY id LIMIT 1")[0]
    base = st.scalar("SELECT coalesce(max(id), 0) FROM alerts") + 1
    ids = [base + i for i in range(n)]
    now = now_ms()
    st.sql_many("INSERT INTO alerts (id, cold_cell_id, device_id, type, status, message,"
                " first_triggered_at, last_triggered_at, trigger_count, resolved_at)"
                " VALUES (?, ?, ?, 'HIGH_TEMP', 'RESOLVED', 'w', ?, ?, 1, ?)",
                [(a, cell, dev, now, now, now) for a in ids])
    st.sql_many("INSERT INTO alert_events (alert_id, cold_cell_id, event, payload, status,"
                " attempts, next_attempt_at, created_at)"
                " VALUES (?, ?, 'CREATED', ?, 'PENDING', 0, ?, ?)",
                [(a, cell, payload(a), now, now) for a in ids])
    return cell, ids
