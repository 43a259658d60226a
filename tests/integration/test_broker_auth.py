#!/usr/bin/python3
"""Broker auth: the coldchain_auth plugin together with passwd/acl under mosquitto 2.0.11.

Standalone: makes a temporary SQLite database from schema/0001_init.sql with two devices,
generates the broker config with tools/broker_conf.sh on a free loopback port, starts
mosquitto, runs the cases, stops mosquitto in `finally`. Prints "ok <case>" or
"FAIL <case>: why" per case and the broker's stderr if anything failed. Exit 0 = all passed.

Needs build/coldchain_auth.so (make build/coldchain_auth.so) and python3-paho-mqtt 1.6.
"""
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

import harness
from apitest import NO_LIMITS, expect, expect_error, token

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# CC_PLUGIN: another build of the plugin (e.g. the previous commit's, to see a test fail).
PLUGIN = os.environ.get("CC_PLUGIN") or os.path.join(ROOT, "build", "coldchain_auth.so")
SCHEMA = os.path.join(ROOT, "schema", "0001_init.sql")
BROKER_CONF = os.path.join(ROOT, "tools", "broker_conf.sh")

OPERATOR = "ingestd"
OPERATOR_PW = "operator-secret-pw"
DEV_A, KEY_A = "CC-TEST-A", "a" * 64
DEV_B, KEY_B = "CC-TEST-B", "b" * 64
KEY_A2 = "c" * 64  # A's regenerated key
DEV_CLASH, KEY_CLASH = OPERATOR, "d" * 64  # a device whose serial is the operator's name
INGESTD_CLIENT_ID = "coldchain-ingestd"  # ingestd/main.c CLIENT_ID_DEFAULT
TIMEOUT_S = 5.0

# CONNACK codes of MQTT 3.1.1 as paho reports them.
CONNACK_ACCEPTED = 0
CONNACK_NOT_AUTHORISED = 5
SUBACK_FAILURE = 0x80


class CaseFailed(Exception):
    pass


def check(cond, why):
    if not cond:
        raise CaseFailed(why)


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A paho client that records CONNACK, SUBACK and messages, with blocking helpers."""

    _n = 0

    def __init__(self, port, username, password, client_id=None, will=None):
        Client._n += 1
        self.port = port
        # A device's client id is its serial (SPEC §3); operators' test clients get their own.
        if client_id is None:
            client_id = (username if username and username.startswith("CC-TEST")
                         else "test-%s-%d-%d" % (username, os.getpid(), Client._n))
        self.client_id = client_id
        self.c = mqtt.Client(client_id=self.client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:  # (topic, payload): the last will, QoS 1, not retained
            self.c.will_set(will[0], will[1], qos=1, retain=False)
        self.cond = threading.Condition()
        self.connack = None
        self.subacks = {}
        self.messages = []
        self.disconnects = 0
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, rc):
        with self.cond:
            self.connack = rc
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc):
        with self.cond:
            self.disconnects += 1
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted_qos):
        with self.cond:
            self.subacks[mid] = list(granted_qos)
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append((msg.topic, msg.payload.decode(errors="replace")))
            self.cond.notify_all()

    def _wait(self, pred, what):
        with self.cond:
            if not self.cond.wait_for(pred, TIMEOUT_S):
                raise CaseFailed("timed out waiting for " + what)

    def connect(self):
        """Returns the CONNACK code. A refused client is stopped (no reconnect loop)."""
        self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        self._wait(lambda: self.connack is not None, "CONNACK of " + self.client_id)
        if self.connack != CONNACK_ACCEPTED:
            self.close()
        return self.connack

    def subscribe(self, topic, qos):
        """Returns the granted QoS list of the SUBACK."""
        rc, mid = self.c.subscribe(topic, qos)
        check(rc == mqtt.MQTT_ERR_SUCCESS, "subscribe %s: paho rc %d" % (topic, rc))
        self._wait(lambda: mid in self.subacks, "SUBACK for " + topic)
        return self.subacks[mid]

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish()  # PUBACK: mosquitto acknowledges denied publishes too
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, "publish %s: paho rc %d" % (topic, info.rc))

    def wait_disconnected(self):
        self._wait(lambda: self.disconnects > 0, "the broker to close " + self.client_id)

    def wait_message(self, topic, payload):
        self._wait(lambda: (topic, payload) in self.messages, "%s %s" % (topic, payload))

    def received(self, topic):
        with self.cond:
            return [m for m in self.messages if m[0] == topic]

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()

    def drop(self):
        """Ends the connection without DISCONNECT (a device losing power or network): the
        broker then publishes the client's last will."""
        self.c.loop_stop()
        sock = self.c.socket()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def make_db(path):
    db = sqlite3.connect(path, isolation_level=None)
    with open(SCHEMA) as f:
        db.executescript(f.read())
    db.execute("PRAGMA journal_mode=WAL")
    now = int(time.time() * 1000)
    db.execute("INSERT INTO users (id, email, password_hash, role, name, created_at) "
               "VALUES (1, 'c@example.com', 'x', 'CUSTOMER', 'C', ?)", (now,))
    db.execute("INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'L', ?)",
               (now,))
    db.execute("INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at) "
               "VALUES (1, 1, 'Cell', 2, 8, ?)", (now,))
    for serial, key in ((DEV_A, KEY_A), (DEV_B, KEY_B)):
        add_device(db, serial, key)
    return db


def add_device(db, serial, key):
    db.execute("INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
               " created_at) VALUES (?, 1, ?, ?, ?)",
               (serial, sha256_hex(key), key[:8], int(time.time() * 1000)))


class Broker:
    def __init__(self, tmp, db_path):
        self.port = free_port()
        conf_dir = os.path.join(tmp, "broker")
        subprocess.run(["sh", BROKER_CONF, conf_dir, str(self.port), db_path, PLUGIN,
                        OPERATOR], env=dict(os.environ, MQTT_PASSWORD=OPERATOR_PW), check=True,
                       stdout=subprocess.DEVNULL)
        self.conf = os.path.join(conf_dir, "mosquitto.conf")
        self.log_path = os.path.join(tmp, "mosquitto.stderr")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited with %d at start" % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("mosquitto did not listen on %d" % self.port)
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def stderr(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


# ---------------------------------------------------------------- cases

def case_device_right_key(ctx):
    c = Client(ctx.port, DEV_A, KEY_A)
    rc = c.connect()
    check(rc == CONNACK_ACCEPTED, "CONNACK %s, want 0" % rc)
    c.close()


def case_device_wrong_key_refused(ctx):
    rc = Client(ctx.port, DEV_A, KEY_B).connect()
    check(rc == CONNACK_NOT_AUTHORISED, "CONNACK %s, want 5" % rc)
    rc = Client(ctx.port, DEV_A, None).connect()
    check(rc == CONNACK_NOT_AUTHORISED, "no password: CONNACK %s, want 5" % rc)


def case_unknown_user_refused(ctx):
    rc = Client(ctx.port, "nobody-known", "whatever").connect()
    check(rc == CONNACK_NOT_AUTHORISED, "CONNACK %s, want 5" % rc)
    rc = Client(ctx.port, None, None).connect()
    check(rc == CONNACK_NOT_AUTHORISED, "anonymous: CONNACK %s, want 5" % rc)


def case_operator_wrong_password_refused(ctx):
    rc = Client(ctx.port, OPERATOR, "not-the-password").connect()
    check(rc == CONNACK_NOT_AUTHORISED, "CONNACK %s, want 5" % rc)


def case_operator_receives_device_readings(ctx):
    ctx.op.wait_message("devices/%s/readings" % DEV_A, "own-1")


def case_cross_device_publish_dropped(ctx):
    # mosquitto 2.0.11 acknowledges a denied PUBLISH (3.1.1: plain PUBACK) and then closes
    # the connection, so each forged publish gets its own connection. After the PUBACK the
    # broker has decided; a message published after that, even on another connection,
    # reaches the operator after anything the forged one could have produced.
    for topic in ("devices/%s/readings" % DEV_B, "devices/%s/errors" % DEV_A, "alerts/1"):
        c = Client(ctx.port, DEV_A, KEY_A)
        check(c.connect() == CONNACK_ACCEPTED, "device A refused")
        c.publish(topic, "forged")
        c.wait_disconnected()
        c.close()
    c = Client(ctx.port, DEV_A, KEY_A)
    check(c.connect() == CONNACK_ACCEPTED, "device A refused")
    c.publish("devices/%s/status" % DEV_A, "own-status")
    c.publish("devices/%s/readings" % DEV_A, "own-2")
    ctx.op.wait_message("devices/%s/readings" % DEV_A, "own-2")
    check(c.disconnects == 0, "broker closed A after its own publishes")
    c.close()
    check(("devices/%s/status" % DEV_A, "own-status") in ctx.op.messages,
          "own status publish did not arrive")
    check(not ctx.op.received("devices/%s/readings" % DEV_B),
          "operator received A's publish to B's readings")
    check(("devices/%s/errors" % DEV_A, "forged") not in ctx.op.messages,
          "operator received A's publish to its own errors topic")
    check(not ctx.op.received("alerts/1"), "operator received A's publish to alerts/1")


def case_device_subscribe_scoped(ctx):
    dev = Client(ctx.port, DEV_A, KEY_A)
    check(dev.connect() == CONNACK_ACCEPTED, "device A refused")
    for topic in ("devices/%s/errors" % DEV_B, "devices/+/readings", "devices/#", "#",
                  "+/%s/errors" % DEV_A, "$share/g/devices/%s/errors" % DEV_B):
        granted = dev.subscribe(topic, 1)
        check(granted == [SUBACK_FAILURE], "subscribe %s: SUBACK %s, want [0x80]" % (topic, granted))
    granted = dev.subscribe("devices/%s/errors" % DEV_A, 1)
    check(granted == [1], "own errors: SUBACK %s, want [1]" % granted)
    granted = dev.subscribe("devices/%s/#" % DEV_A, 1)
    check(granted == [1], "own devices/A/#: SUBACK %s, want [1]" % granted)
    # The operator (acl file) may write errors; A gets its own, and nothing of B's.
    ctx.op.publish("devices/%s/errors" % DEV_B, "err-b")
    ctx.op.publish("devices/%s/errors" % DEV_A, "err-a")
    dev.wait_message("devices/%s/errors" % DEV_A, "err-a")
    check(not dev.received("devices/%s/errors" % DEV_B), "A received B's errors")
    check(dev.disconnects == 0, "a refused SUBSCRIBE closed the connection")
    dev.close()


def case_key_change_without_reload(ctx):
    ctx.db.execute("UPDATE devices SET api_key_hash = ? WHERE serial_number = ?",
                   (sha256_hex(KEY_A2), DEV_A))
    rc = Client(ctx.port, DEV_A, KEY_A).connect()
    check(rc == CONNACK_NOT_AUTHORISED, "old key after change: CONNACK %s, want 5" % rc)
    c = Client(ctx.port, DEV_A, KEY_A2)
    rc = c.connect()
    check(rc == CONNACK_ACCEPTED, "new key: CONNACK %s, want 0" % rc)
    c.publish("devices/%s/readings" % DEV_A, "after-rotation")
    ctx.op.wait_message("devices/%s/readings" % DEV_A, "after-rotation")
    c.close()


def case_key_change_cuts_connected_device(ctx):
    # A device already connected with a key that is then regenerated loses access at its
    # next publish: the plugin compares the login's key hash with the database's.
    c = Client(ctx.port, DEV_A, KEY_A2)
    check(c.connect() == CONNACK_ACCEPTED, "current key refused")
    c.publish("devices/%s/readings" % DEV_A, "before-second-rotation")
    ctx.op.wait_message("devices/%s/readings" % DEV_A, "before-second-rotation")
    ctx.db.execute("UPDATE devices SET api_key_hash = ? WHERE serial_number = ?",
                   (sha256_hex("e" * 64), DEV_A))
    c.publish("devices/%s/readings" % DEV_A, "with-revoked-key")
    c.wait_disconnected()
    time.sleep(0.5)
    check(("devices/%s/readings" % DEV_A, "with-revoked-key") not in
          ctx.op.received("devices/%s/readings" % DEV_A),
          "a publish with a revoked key was delivered")
    c.close()
    ctx.db.execute("UPDATE devices SET api_key_hash = ? WHERE serial_number = ?",
                   (sha256_hex(KEY_A2), DEV_A))


def case_operator_not_a_device_uses_files(ctx):
    # ingestd is in passwd and acl and in no devices row: it connected, subscribed to
    # devices/# and received readings above. Here: a fresh connection and its acl rights.
    c = Client(ctx.port, OPERATOR, OPERATOR_PW)
    check(c.connect() == CONNACK_ACCEPTED, "operator refused")
    granted = c.subscribe("alerts/#", 1)
    check(granted == [1], "subscribe alerts/# (write-only in acl): SUBACK %s" % granted)
    granted = c.subscribe("devices/+/readings", 2)
    check(granted == [2], "subscribe devices/+/readings: SUBACK %s, want [2]" % granted)
    # SPEC §3: MQTT carries no per-user notifications, so the acl grants nothing under
    # notifications/, not even to the operators. mosquitto 2.0.11 grants the SUBSCRIBE and
    # filters at delivery; a publish there must reach nobody (2.0.11 also drops the
    # connection of an acl_file user publishing outside its acl, so it comes from a client
    # of its own, which is closed before alerts/1 is published: once alerts/1 has arrived,
    # notifications/1 would have too).
    check(c.subscribe("notifications/#", 1) is not None, "subscribe notifications/#")
    p = Client(ctx.port, OPERATOR, OPERATOR_PW)
    check(p.connect() == CONNACK_ACCEPTED, "second operator client refused")
    p.c.publish("notifications/1", "n", qos=0)
    p.close()
    p = Client(ctx.port, OPERATOR, OPERATOR_PW)
    check(p.connect() == CONNACK_ACCEPTED, "third operator client refused")
    p.publish("alerts/1", "a")
    p.close()
    c.wait_message("alerts/1", "a")
    check(c.received("notifications/1") == [],
          "notifications/1 delivered: %s" % c.received("notifications/1"))
    c.close()


def case_device_named_like_operator(ctx):
    # A device whose serial is the operator's username must not get in with its key, and the
    # operator must keep its rights.
    add_device(ctx.db, DEV_CLASH, KEY_CLASH)
    try:
        rc = Client(ctx.port, DEV_CLASH, KEY_CLASH).connect()
        check(rc == CONNACK_NOT_AUTHORISED,
              "device key for username %r: CONNACK %s, want 5" % (DEV_CLASH, rc))
        c = Client(ctx.port, OPERATOR, OPERATOR_PW)
        check(c.connect() == CONNACK_ACCEPTED, "operator refused while a device has its name")
        granted = c.subscribe("devices/+/readings", 2)
        check(granted == [2], "operator subscribe: SUBACK %s, want [2]" % granted)
        dev = Client(ctx.port, DEV_B, KEY_B)
        check(dev.connect() == CONNACK_ACCEPTED, "device B refused")
        dev.publish("devices/%s/readings" % DEV_B, "b-1")
        c.wait_message("devices/%s/readings" % DEV_B, "b-1")
        dev.close()
        c.close()
    finally:
        ctx.db.execute("DELETE FROM devices WHERE serial_number = ?", (DEV_CLASH,))


def case_device_deleted_loses_access(ctx):
    # Deleting the device row takes effect at the next ACL check of a live connection: the
    # plugin no longer knows the serial, defers, and the acl file has no rule for it.
    serial, key = "CC-TEST-DEL", "e" * 64
    add_device(ctx.db, serial, key)
    c = Client(ctx.port, serial, key)
    check(c.connect() == CONNACK_ACCEPTED, "new device refused")
    c.publish("devices/%s/readings" % serial, "before-delete")
    ctx.op.wait_message("devices/%s/readings" % serial, "before-delete")
    ctx.db.execute("DELETE FROM devices WHERE serial_number = ?", (serial,))
    c.publish("devices/%s/readings" % serial, "after-delete")
    c.wait_disconnected()
    c.close()
    rc = Client(ctx.port, serial, key).connect()
    check(rc == CONNACK_NOT_AUTHORISED, "deleted device: CONNACK %s, want 5" % rc)
    marker = Client(ctx.port, DEV_B, KEY_B)
    check(marker.connect() == CONNACK_ACCEPTED, "device B refused")
    marker.publish("devices/%s/readings" % DEV_B, "after-delete-marker")
    ctx.op.wait_message("devices/%s/readings" % DEV_B, "after-delete-marker")
    marker.close()
    check(("devices/%s/readings" % serial, "after-delete") not in ctx.op.messages,
          "a deleted device's publish was delivered")


# These run after key_change_cuts_connected_device: A's key is KEY_A2 from here on.

def case_device_client_id_must_be_serial(ctx):
    for cid in (INGESTD_CLIENT_ID, "coldchain-apid-1-abcdef", DEV_B, DEV_A + "x", "x" + DEV_A,
                DEV_A.lower(), ""):
        rc = Client(ctx.port, DEV_A, KEY_A2, client_id=cid).connect()
        check(rc == CONNACK_NOT_AUTHORISED, "client id %r: CONNACK %s, want 5" % (cid, rc))
    c = Client(ctx.port, DEV_A, KEY_A2, client_id=DEV_A)
    check(c.connect() == CONNACK_ACCEPTED, "own serial as client id refused")
    c.close()


def case_device_cannot_take_over_operator_session(ctx):
    # The attack: a device key with ingestd's client id. The operator's connection
    # must stay up and keep receiving.
    op = Client(ctx.port, OPERATOR, OPERATOR_PW, client_id=INGESTD_CLIENT_ID)
    check(op.connect() == CONNACK_ACCEPTED, "operator refused")
    check(op.subscribe("devices/#", 1) == [1], "operator subscribe refused")
    for _ in range(3):
        rc = Client(ctx.port, DEV_B, KEY_B, client_id=INGESTD_CLIENT_ID).connect()
        check(rc == CONNACK_NOT_AUTHORISED, "device as %s: CONNACK %s, want 5" %
              (INGESTD_CLIENT_ID, rc))
    dev = Client(ctx.port, DEV_A, KEY_A2)
    check(dev.connect() == CONNACK_ACCEPTED, "device A refused")
    dev.publish("devices/%s/readings" % DEV_A, "after-takeover-attempt")
    op.wait_message("devices/%s/readings" % DEV_A, "after-takeover-attempt")
    check(op.disconnects == 0, "the operator's session was taken over")
    dev.close()
    op.close()


def case_device_cannot_take_over_other_device(ctx):
    b = Client(ctx.port, DEV_B, KEY_B)
    check(b.connect() == CONNACK_ACCEPTED, "device B refused")
    rc = Client(ctx.port, DEV_A, KEY_A2, client_id=DEV_B).connect()
    check(rc == CONNACK_NOT_AUTHORISED, "A with B's client id: CONNACK %s, want 5" % rc)
    b.publish("devices/%s/readings" % DEV_B, "b-still-here")
    ctx.op.wait_message("devices/%s/readings" % DEV_B, "b-still-here")
    check(b.disconnects == 0, "device B's session was taken over")
    b.close()



def marker_after(ctx, tag):
    """A publish of B's that the operator receives after anything published before it."""
    marker = Client(ctx.port, DEV_B, KEY_B)
    check(marker.connect() == CONNACK_ACCEPTED, "device B refused")
    marker.publish("devices/%s/readings" % DEV_B, tag)
    ctx.op.wait_message("devices/%s/readings" % DEV_B, tag)
    marker.close()


def with_will(ctx, topic, payload, birth):
    """Device A connected with this last will, once the operator has its birth message."""
    c = Client(ctx.port, DEV_A, KEY_A2, will=(topic, payload))
    check(c.connect() == CONNACK_ACCEPTED, "device A refused")
    c.publish("devices/%s/status" % DEV_A, birth)
    ctx.op.wait_message("devices/%s/status" % DEV_A, birth)
    return c


def case_device_last_will_delivered(ctx):
    # SPEC §3: a device's status topic carries its MQTT last will. mosquitto 2.0.11 tells the
    # plugin of the disconnect before it checks the will's publish; the plugin had already
    # forgotten the session then, refused the will, and no device ever went OFFLINE by it.
    topic = "devices/%s/status" % DEV_A
    with_will(ctx, topic, "will-a-1", "birth-a-1").drop()
    ctx.op.wait_message(topic, "will-a-1")


def case_device_last_will_elsewhere_dropped(ctx):
    # A will is a publish like any other: on another device's topic it is refused.
    with_will(ctx, "devices/%s/status" % DEV_B, "forged-will", "birth-a-2").drop()
    marker_after(ctx, "after-forged-will")
    check(("devices/%s/status" % DEV_B, "forged-will") not in ctx.op.messages,
          "A's will on B's status topic was delivered")


def case_device_last_will_after_key_change_dropped(ctx):
    # The will is checked against the key the device logged in with, as its publishes are:
    # a device whose key was regenerated meanwhile cannot speak once more through its will.
    topic = "devices/%s/status" % DEV_A
    c = with_will(ctx, topic, "will-revoked", "birth-a-3")
    ctx.db.execute("UPDATE devices SET api_key_hash = ? WHERE serial_number = ?",
                   (sha256_hex("f" * 64), DEV_A))
    try:
        c.drop()
        marker_after(ctx, "after-revoked-will")
    finally:
        ctx.db.execute("UPDATE devices SET api_key_hash = ? WHERE serial_number = ?",
                       (sha256_hex(KEY_A2), DEV_A))
    check((topic, "will-revoked") not in ctx.op.messages,
          "the will of a device whose key was regenerated was delivered")


def case_device_retained_not_kept(ctx):
    # A device's publish with the retain flag is delivered live, but the broker does not keep
    # it: serials are reused and the broker's retained messages had no bound (1 MiB per
    # device topic, kept across restarts after the device was deleted, and replayed to every
    # new subscriber of devices/#, ingestd and apid included).
    dev = Client(ctx.port, DEV_A, KEY_A2)
    check(dev.connect() == CONNACK_ACCEPTED, "device A refused")
    for kind in ("readings", "status"):
        dev.publish("devices/%s/%s" % (DEV_A, kind), "retained-" + kind, retain=True)
        ctx.op.wait_message("devices/%s/%s" % (DEV_A, kind), "retained-" + kind)
    fresh = Client(ctx.port, OPERATOR, OPERATOR_PW)
    check(fresh.connect() == CONNACK_ACCEPTED, "operator refused")
    check(fresh.subscribe("devices/%s/#" % DEV_A, 1) == [1], "operator subscribe refused")
    # A retained copy comes right after the SUBACK, before anything published later.
    dev.publish("devices/%s/readings" % DEV_A, "after-retained")
    fresh.wait_message("devices/%s/readings" % DEV_A, "after-retained")
    dev.close()
    fresh.close()
    kept = [m for m in fresh.messages if m[1].startswith("retained-")]
    check(not kept, "the broker kept a device's retained publish: %r" % kept)


def case_reserved_serial_row_refused(ctx):
    # A row that bypassed the API's serial rule (bulk import, SQL) still cannot log in with
    # an operator's client id.
    add_device(ctx.db, INGESTD_CLIENT_ID, KEY_CLASH)
    try:
        rc = Client(ctx.port, INGESTD_CLIENT_ID, KEY_CLASH,
                    client_id=INGESTD_CLIENT_ID).connect()
        check(rc == CONNACK_NOT_AUTHORISED, "reserved serial: CONNACK %s, want 5" % rc)
    finally:
        ctx.db.execute("DELETE FROM devices WHERE serial_number = ?", (INGESTD_CLIENT_ID,))


def case_broker_conf_password_not_in_argv(ctx):
    """Issue 12 item 10: broker_conf.sh never runs a command with the operator password in
    its argv or environment (strace sees every execve), and the passwd it writes works (the
    operator logged in with it above) and holds no clear text."""
    secret = "pw-%s-never-in-argv" % os.getpid()
    out = os.path.join(ctx.tmp, "conf-strace")
    for how, env, extra, stdin in (
            ("env", dict(os.environ, MQTT_PASSWORD=secret), [], None),
            ("stdin", dict(os.environ), ["-"], secret + "\n")):
        trace = os.path.join(ctx.tmp, "execve-%s.trace" % how)
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(["strace", "-f", "-v", "-s", "65536", "-qq", "-e", "trace=execve", "-o",
                        trace, "sh", BROKER_CONF, out, "1883", ctx.db_path, PLUGIN, OPERATOR]
                       + extra, env=env, input=stdin, text=True, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(trace) as f:
            execs = [l for l in f if "execve(" in l]
        check(len(execs) > 3, "%s: strace saw %d execve calls" % (how, len(execs)))
        # The script itself was started by us with MQTT_PASSWORD set: skip that one exec.
        leaks = [l.split("execve(", 1)[1][:80] for l in execs
                 if secret in l and BROKER_CONF not in l.split("], ", 1)[0]]
        check(not leaks, "%s: password in argv/env of %s" % (how, leaks))
        with open(os.path.join(out, "passwd")) as f:
            text = f.read()
        check(secret not in text and text.startswith(OPERATOR + ":$7$"),
              "%s: passwd is not hashed" % how)
        check(os.stat(os.path.join(out, "passwd")).st_mode & 0o077 == 0,
              "%s: passwd readable by others" % how)
        check(not [n for n in os.listdir(out) if n.startswith(".passwd")],
              "%s: clear-text directory left behind" % how)
    # The old interface took the password as a 6th argument: now refused, never used.
    shutil.rmtree(out, ignore_errors=True)
    p = subprocess.run(["sh", BROKER_CONF, out, "1883", ctx.db_path, PLUGIN, OPERATOR, secret],
                       env=dict(os.environ), capture_output=True, text=True)
    check(p.returncode != 0 and "never argv" in p.stderr,
          "a password in argv was accepted: rc %d %s" % (p.returncode, p.stderr.strip()))


# ---------------------------------------------------------------- the whole stack
# The reproduction with ingestd, apid and a device made through the API.

ATTACK_SERIAL = "ATTACK-1"
N_VICTIM_READINGS = 200


def stack_reserved_serials_refused(s, tok, cell_id):
    for serial in (INGESTD_CLIENT_ID, "coldchain-apid-1-abcdef", "Coldchain-x", "COLDCHAIN-"):
        expect_error(s.http("POST", "/api/devices", {"coldCellId": cell_id, "serialNumber": serial},
                            token=tok), 400, "VALIDATION_ERROR")
    st, _, dev = s.http("GET", "/api/devices", token=tok)
    dev_id = [d for d in dev["items"] if d["serialNumber"] == ATTACK_SERIAL][0]["id"]
    expect_error(s.http("PATCH", "/api/devices/%d" % dev_id, {"serialNumber": INGESTD_CLIENT_ID},
                        token=tok), 400, "VALIDATION_ERROR")
    # A serial that merely contains the word is an ordinary serial.
    st, _, body = s.http("POST", "/api/devices", {"coldCellId": cell_id,
                                                  "serialNumber": "my-coldchain-1"}, token=tok)
    expect(st == 201, "my-coldchain-1: %s %r" % (st, body))


def stack_takeover_while_other_customer_publishes(s, attack_key, victim, victim_key):
    """Another customer's device publishes N readings while the attacker keeps connecting
    with ingestd's client id: every reading is stored and ingestd never loses its session."""
    stop = threading.Event()
    attempts = {"n": 0, "accepted": 0}

    def attacker():
        while not stop.is_set():
            try:
                c = s.mqtt_client(ATTACK_SERIAL, attack_key, client_id=INGESTD_CLIENT_ID)
            except ConnectionRefusedError:
                attempts["n"] += 1
                time.sleep(0.05)
                continue
            attempts["n"] += 1
            attempts["accepted"] += 1
            time.sleep(0.2)
            c.disconnect()
            c.loop_stop()

    t = threading.Thread(target=attacker, daemon=True)
    t.start()
    try:
        dev = s.mqtt_client(victim, victim_key, client_id=victim)
        now_ms = int(time.time() * 1000)
        for i in range(N_VICTIM_READINGS):
            body = '{"temperature":4.125,"ts":%d}' % (now_ms - (N_VICTIM_READINGS - i) * 1000)
            info = dev.publish("devices/%s/readings" % victim, body, qos=1)
            info.wait_for_publish()
            expect(info.rc == mqtt.MQTT_ERR_SUCCESS, "publish %d: rc %d" % (i, info.rc))
            time.sleep(0.005)
        dev.disconnect()
        dev.loop_stop()
        count_sql = ("SELECT count(*) FROM readings WHERE device_id = "
                     "(SELECT id FROM devices WHERE serial_number = ?) AND ts >= ? "
                     "AND temperature = 4.125")  # the seed's readings are not counted
        try:
            harness.wait_for(lambda: s.scalar(count_sql, (victim, now_ms - 300000)) ==
                             N_VICTIM_READINGS, timeout=30, what="all readings stored")
        except AssertionError:
            raise AssertionError("%s of %d readings stored" %
                                 (s.scalar(count_sql, (victim, now_ms - 300000)),
                                  N_VICTIM_READINGS))
    finally:
        stop.set()
        t.join(10)
    expect(attempts["n"] > 0, "the attacker never tried")
    expect(attempts["accepted"] == 0, "the broker admitted %d of %d takeover attempts" %
           (attempts["accepted"], attempts["n"]))
    with open(s.logs["ingestd"], "rb") as f:
        log = f.read()
    expect(b"broker_connection_lost" not in log, "ingestd lost its broker connection")


def stack_client_id_rules(s, attack_key, victim, victim_key):
    v = s.mqtt_client(victim, victim_key, client_id=victim)
    lost = []
    v.on_disconnect = lambda cl, ud, rc: lost.append(rc)
    try:
        s.mqtt_client(ATTACK_SERIAL, attack_key, client_id=victim)
        raise AssertionError("attacker admitted with the victim's serial as client id")
    except ConnectionRefusedError:
        pass
    own = s.mqtt_client(ATTACK_SERIAL, attack_key, client_id=ATTACK_SERIAL)
    own.disconnect()
    own.loop_stop()
    time.sleep(0.3)
    expect(not lost, "the victim's session was closed")
    v.disconnect()
    v.loop_stop()


def stack_last_will_sets_offline(s, tok, serial, key):
    # The whole chain of SPEC §3's last will: broker (plugin), ingestd, the API's status.
    st, _, devs = s.http("GET", "/api/devices", token=tok)
    dev_id = [d["id"] for d in devs["items"] if d["serialNumber"] == serial][0]
    topic = "devices/%s/status" % serial
    c = s.mqtt_client(serial, key, connect=False)
    c.will_set(topic, '{"online":false}', qos=1, retain=False)
    connected = []
    c.on_connect = lambda cl, ud, flags, code: connected.append(code)
    c.connect("127.0.0.1", s.mqtt_port, keepalive=30)
    c.loop_start()
    harness.wait_for(lambda: connected, what="CONNACK")
    expect(connected == [0], "CONNACK %s" % connected)
    c.publish(topic, '{"online":true,"firmwareVersion":"2.0.0"}', qos=1).wait_for_publish()

    def status():
        return s.http("GET", "/api/devices/%d" % dev_id, token=tok)[2]["status"]
    harness.wait_for(lambda: status() == "ONLINE", what="birth message stored")
    c.loop_stop()
    c.socket().shutdown(socket.SHUT_RDWR)
    c.socket().close()
    harness.wait_for(lambda: status() == "OFFLINE", what="the last will sets the device OFFLINE")


def stack_main():
    cases = harness.Cases()
    with harness.Stack(env=NO_LIMITS) as s:
        tok = token(s, "customer2")
        st, _, cells = s.http("GET", "/api/coldcells", token=tok)
        expect(st == 200 and cells["items"], "customer2 has no cells: %s %r" % (st, cells))
        cell_id = cells["items"][0]["id"]
        st, _, dev = s.http("POST", "/api/devices", {"coldCellId": cell_id,
                                                     "serialNumber": ATTACK_SERIAL}, token=tok)
        expect(st == 201 and dev.get("apiKey"), "create device: %s %r" % (st, dev))
        attack_key = dev["apiKey"]
        victim = s.scalar("SELECT d.serial_number FROM devices d JOIN cold_cells c ON "
                          "c.id = d.cold_cell_id JOIN locations l ON l.id = c.location_id "
                          "JOIN users u ON u.id = l.customer_id "
                          "WHERE u.email = 'customer1@example.com' ORDER BY d.id LIMIT 1")
        victim_key = s.keys[victim]
        cases.run("api_refuses_reserved_serials", stack_reserved_serials_refused, s, tok, cell_id)
        cases.run("device_with_ingestd_client_id_loses_no_reading",
                  stack_takeover_while_other_customer_publishes, s, attack_key, victim,
                  victim_key)
        cases.run("device_with_other_serial_refused_own_accepted", stack_client_id_rules, s,
                  attack_key, victim, victim_key)
        cases.run("device_last_will_sets_offline", stack_last_will_sets_offline, s, tok,
                  ATTACK_SERIAL, attack_key)
    return cases.failed


class Ctx:
    pass


def main():
    if not os.path.exists(PLUGIN):
        print("FAIL setup: %s missing (run: make build/coldchain_auth.so)" % PLUGIN)
        return 2
    tmp = tempfile.mkdtemp(prefix="cc-broker-auth-")
    broker = None
    failures = 0
    ctx = Ctx()
    try:
        ctx.tmp = tmp
        ctx.db_path = os.path.join(tmp, "coldchain.db")
        ctx.db = make_db(ctx.db_path)
        broker = Broker(tmp, os.path.join(tmp, "coldchain.db"))
        ctx.port = broker.port

        # Long-lived: the operator on devices/# at QoS 2 (as ingestd), device A connected.
        ctx.op = Client(ctx.port, OPERATOR, OPERATOR_PW)
        check(ctx.op.connect() == CONNACK_ACCEPTED, "operator refused at setup")
        check(ctx.op.subscribe("devices/#", 2) == [2], "operator subscribe devices/# refused")
        check(ctx.op.subscribe("alerts/#", 1) == [1], "operator subscribe alerts/# refused")
        dev_a = Client(ctx.port, DEV_A, KEY_A)
        check(dev_a.connect() == CONNACK_ACCEPTED, "device A refused at setup")
        dev_a.publish("devices/%s/readings" % DEV_A, "own-1")
        dev_a.close()

        cases = [
            ("device_right_key_connects", case_device_right_key),
            ("device_wrong_key_refused", case_device_wrong_key_refused),
            ("unknown_user_refused", case_unknown_user_refused),
            ("operator_wrong_password_refused", case_operator_wrong_password_refused),
            ("operator_receives_device_readings", case_operator_receives_device_readings),
            ("cross_device_publish_dropped", case_cross_device_publish_dropped),
            ("device_subscribe_scoped", case_device_subscribe_scoped),
            ("key_change_without_reload", case_key_change_without_reload),
            ("key_change_cuts_connected_device", case_key_change_cuts_connected_device),
            ("operator_not_a_device_uses_files", case_operator_not_a_device_uses_files),
            ("device_named_like_operator", case_device_named_like_operator),
            ("device_deleted_loses_access", case_device_deleted_loses_access),
            ("device_client_id_must_be_serial", case_device_client_id_must_be_serial),
            ("device_cannot_take_over_operator_session",
             case_device_cannot_take_over_operator_session),
            ("device_cannot_take_over_other_device", case_device_cannot_take_over_other_device),
            ("device_last_will_delivered", case_device_last_will_delivered),
            ("device_last_will_elsewhere_dropped", case_device_last_will_elsewhere_dropped),
            ("device_last_will_after_key_change_dropped",
             case_device_last_will_after_key_change_dropped),
            ("device_retained_not_kept", case_device_retained_not_kept),
            ("reserved_serial_row_refused", case_reserved_serial_row_refused),
            ("broker_conf_password_not_in_argv", case_broker_conf_password_not_in_argv),
        ]
        for name, fn in cases:
            try:
                fn(ctx)
                print("ok %s" % name)
            except CaseFailed as e:
                failures += 1
                print("FAIL %s: %s" % (name, e))
        if broker.proc.poll() is not None:
            failures += 1
            print("FAIL broker_alive: mosquitto exited with %d" % broker.proc.returncode)
        ctx.op.close()
    except (CaseFailed, RuntimeError, subprocess.CalledProcessError, OSError) as e:
        failures += 1
        print("FAIL setup: %s" % e)
    finally:
        if broker is not None:
            broker.stop()
            if failures:
                sys.stdout.write("---- mosquitto stderr ----\n" + broker.stderr())
        shutil.rmtree(tmp, ignore_errors=True)
    failures += stack_main()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
