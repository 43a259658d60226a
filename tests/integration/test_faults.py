"""Faults (issue 12 "Faults"): what the stack does when the disk fills, when the database is
read-only, when apid writes while ingestd ingests at full rate, and when the broker is down at
start. Each case runs the real mosquitto, ingestd and apid.

- full_disk: COLDCHAIN_DB's directory is a tmpfs of 8 MiB that the test fills. Readings
  published at QoS 1 while it is full are not lost: ingestd logs a clear error, stays up
  without spinning, stops taking messages from the broker (so a kill -9 while the disk is
  full loses nothing: the broker still holds them), and resumes by itself once space
  returns; every reading is stored exactly once. apid answers a write with a 5xx in the
  SPEC error shape and stays up.
- read_only: the same tmpfs remounted read-only: ingestd and apid exit at start with a
  non-zero status and a message naming the path.
- busy: apid creates and updates objects through the API while ingestd ingests a stream of
  readings with alert churn: no request fails (no 5xx) and no log says the database was
  locked or busy.
- broker_down: apid started without a broker serves /ready and login, and its live feed
  delivers readings once the broker comes up; ingestd started without a broker waits and
  connects when it comes up.
"""
import base64
import errno
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from urllib.parse import quote

import paho.mqtt.client as mqtt

from apitest import NO_LIMITS, Cases, Stack, expect, expect_error, token
from harness import BUILD, STORE, wait_for

TMPFS_SIZE = "8m"
FULL_FOR_S = 40  # how long the first full-disk case keeps the disk full
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- helpers -------------------------------------------------------------------------------
def mount_tmpfs(path, size=TMPFS_SIZE):
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("cannot mount a tmpfs on %s (the fault tests need root): %s"
                             % (path, p.stderr.strip()))


def umount(s):
    """Unmounts the tmpfs at s.data and removes what the stack left (rmtree stops at a mount)."""
    subprocess.run(["umount", "-l", s.data], capture_output=True)
    shutil.rmtree(s.dir, ignore_errors=True)


def fill_disk(path):
    """Writes a file at path until the filesystem is full; returns its size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    total = 0
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            buf = b"\0" * chunk
            while True:
                try:
                    total += os.write(fd, buf)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return total


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def log_text(s, name):
    with open(s.logs[name], errors="replace") as f:
        return f.read()


def log_errors(s, name):
    out = []
    for line in log_text(s, name).splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("level") == "error":
            out.append(line)
    return out


class Readings:
    """Publishes readings with distinct (device, ts) at QoS 1 and waits for the broker's
    PUBACKs (the broker has accepted them: from then on they must be stored)."""

    def __init__(self, s, serial, base):
        self.s, self.serial, self.base, self.next = s, serial, base, 0
        self.acked = 0
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id=serial, clean_session=True)
        self.c.username_pw_set(serial, s.keys[serial])
        self.c.max_inflight_messages_set(1000)
        self.c.max_queued_messages_set(0)
        self.c.on_publish = self._acked
        self.c.connect("127.0.0.1", s.mqtt_port, keepalive=30)
        self.c.loop_start()

    def _acked(self, c, u, mid):
        with self.lock:
            self.acked += 1

    def publish(self, n, temperature=-18.0):
        want = self.acked + n
        for _ in range(n):
            self.c.publish("devices/%s/readings" % self.serial,
                           json.dumps({"temperature": temperature, "ts": self.base + self.next}),
                           qos=1)
            self.next += 1
        wait_for(lambda: self.acked >= want, timeout=30, interval=0.05,
                 what="broker PUBACKs (%d of %d)" % (self.acked, want))

    def stored(self):
        return self.s.scalar("SELECT COUNT(*) FROM readings r JOIN devices d ON d.id = r.device_id"
                             " WHERE d.serial_number = ? AND r.ts >= ? AND r.ts < ?",
                             (self.serial, self.base, self.base + 10 ** 6))

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class WS:
    """A minimal RFC 6455 client: handshake, then text messages as JSON."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("closed before the handshake answer (%r)" % head)
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        self.status = int(head.split()[1])
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        expect(self.status == 101 and want.encode() in head, "upgrade refused: %r" % head)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask +
                          bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self, timeout):
        """The next text message as JSON, or None on timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                b0, b1 = self._read(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._read(8))[0]
                payload = self._read(n)
                op = b0 & 0x0F
                if op == 0x1:
                    return json.loads(payload.decode())
                if op == 0x9:
                    self._send(0xA, payload)
                elif op == 0x8:
                    raise EOFError("closed by the server: %r" % payload)
        except socket.timeout:
            return None

    def close(self):
        try:
            self._send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


# -- a. full disk --------------------------------------------------------------------------
def case_full_disk(cases):
    s = Stack(ingestd=False, apid=False, env=NO_LIMITS)
    mount_tmpfs(s.data)
    try:
        with s:
            s.start_ingestd()
            s.start_apid()
            admin = token(s, "admin")
            serial = sorted(k for k in s.keys if "FRZ" in k)[0]
            pub = Readings(s, serial, int(time.time() * 1000) - 10 * 86400 * 1000)
            filler = os.path.join(s.data, "filler")
            ingestd = s.procs["ingestd"]

            pub.publish(50)
            wait_for(lambda: pub.stored() == 50, timeout=30, what="50 readings before the fill")

            def full_then_resume():
                t_full = time.time()
                fill_disk(filler)
                pub.publish(300)  # the broker has them all
                time.sleep(4)
                expect(ingestd.poll() is None, "ingestd died: %s" % ingestd.returncode)
                errs = [e for e in log_errors(s, "ingestd") if "No space left" in e]
                expect(errs, "no error line saying the disk is full: %r"
                       % log_errors(s, "ingestd")[-5:])
                # Blocked, not spinning: well under a third of one core while it waits.
                c0 = cpu_seconds(ingestd.pid)
                time.sleep(5)
                used = cpu_seconds(ingestd.pid) - c0
                print("full disk: ingestd used %.2f s of CPU in 5 s" % used)
                expect(used < 1.5, "ingestd used %.2f s of CPU in 5 s while the disk was full"
                       % used)
                # apid: a write answers the SPEC error shape, apid stays up. ingestd has
                # given its reserve back to the disk by now: take that space too.
                fill_disk(filler + "2")
                res = s.http("POST", "/api/locations", {"name": "full-disk", "address": "x",
                                                        "customerId": 2}, token=admin)
                if STORE == "pg":
                    # The database is not on this disk (only ingestd's journal is): apid
                    # writes on.
                    expect(res[0] == 201, "a write with PostgreSQL answered %s %r"
                           % (res[0], res[2]))
                else:
                    expect(res[0] in (500, 503), "a write on a full disk answered %s %r"
                           % (res[0], res[2]))
                    expect_error(res, res[0],
                                 "INTERNAL" if res[0] == 500 else res[2]["error"]["code"])
                print("full disk: apid answered %s %r" % (res[0], res[2]))
                expect(s.procs["apid"].poll() is None, "apid died")
                st, _, _ = s.http("GET", "/health")
                expect(st == 200, "apid /health %s" % st)
                # Full for longer than the broker's keepalive grace (1.5 x 20 s): the broker
                # drops the connection of an ingestd that waits, which must come back.
                time.sleep(max(0.0, FULL_FOR_S - (time.time() - t_full)))
                os.unlink(filler)
                os.unlink(filler + "2")
                wait_for(lambda: pub.stored() == 350, timeout=90, interval=0.25,
                         what="all 350 readings stored after space returned (have %s)"
                         % pub.stored())
                expect(ingestd.poll() is None, "ingestd died")
                st, _, _ = s.http("POST", "/api/locations", {"name": "after", "address": "x",
                                                             "customerId": 2}, token=admin)
                expect(st == 201, "apid write after space returned: %s" % st)
            cases.run("full_disk_stalls_without_loss_and_resumes_by_itself", full_then_resume)

            def full_then_kill9():
                fill_disk(filler)
                pub.publish(300)
                time.sleep(3)
                # Whatever ingestd acknowledged it had made durable; the rest is the broker's.
                s.kill("ingestd")
                os.unlink(filler)
                s.start_ingestd()
                wait_for(lambda: pub.stored() == 650, timeout=90, interval=0.25,
                         what="all 650 readings stored after kill -9 on a full disk (have %s)"
                         % pub.stored())
                time.sleep(1)
                expect(pub.stored() == 650, "stored %d, want exactly 650" % pub.stored())
            cases.run("full_disk_kill9_loses_nothing_the_broker_kept_it", full_then_kill9)

            def full_then_sigterm():
                before = log_text(s, "ingestd").count('"disk_full"')
                fill_disk(filler)
                pub.publish(100)
                wait_for(lambda: log_text(s, "ingestd").count('"disk_full"') > before, timeout=20,
                         what="ingestd in the full state")
                time.sleep(1)
                t0 = time.time()
                rc = s.stop("ingestd", timeout=20)
                expect(rc == 0, "ingestd stopped with %s on a full disk (SIGTERM)" % rc)
                print("full disk: SIGTERM answered in %.1f s" % (time.time() - t0))
                os.unlink(filler)
                s.start_ingestd()
                wait_for(lambda: pub.stored() == 750, timeout=90, interval=0.25,
                         what="all 750 readings stored after a stop on a full disk (have %s)"
                         % pub.stored())
            cases.run("full_disk_sigterm_exits_0_and_loses_nothing", full_then_sigterm)
            pub.close()
    finally:
        umount(s)


# -- b. read-only database -----------------------------------------------------------------
def case_read_only(cases):
    s = Stack(ingestd=False, apid=False, env=NO_LIMITS)
    mount_tmpfs(s.data)
    try:
        with s:
            # A first start writes the secrets and the journal; then the filesystem goes read-only.
            s.start_ingestd()
            s.start_apid()
            s.stop("ingestd")
            s.stop("apid")
            s.stop("mosquitto")  # its plugin holds the database open: the remount needs none
            p = subprocess.run(["mount", "-o", "remount,ro", s.data], capture_output=True,
                               text=True)
            expect(p.returncode == 0, "remount read-only: %s" % p.stderr)

            for name in ("ingestd", "apid"):
                def exits(name=name):
                    proc = s._spawn(name, [os.path.join(BUILD, name)])
                    try:
                        rc = proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        raise AssertionError("%s still running on a read-only database" % name)
                    finally:
                        s.procs.pop(name, None)
                        if proc.poll() is None:
                            proc.kill()
                            proc.wait()
                    expect(rc != 0, "%s exited 0" % name)
                    errs = [e for e in log_errors(s, name) if s.db_path in e]
                    expect(errs and any("read-only" in e.lower() or "readonly" in e.lower()
                                        for e in errs),
                           "%s: no error naming %s as read-only: %r"
                           % (name, s.db_path, log_errors(s, name)[-5:]))
                cases.run("read_only_database_%s_exits_with_a_clear_error" % name, exits)
    finally:
        umount(s)


# -- c. apid writes while ingestd ingests --------------------------------------------------
BUSY_S = 20


def case_busy(cases):
    with Stack(env=NO_LIMITS) as s:
        admin = token(s, "admin")
        cells = [r[0] for r in s.sql("SELECT id FROM cold_cells ORDER BY id")]
        stop = threading.Event()
        statuses = {}
        lock = threading.Lock()

        def count(what, st):
            with lock:
                statuses.setdefault(st, []).append(what)

        def http_writer(k):
            i = 0
            while not stop.is_set():
                i += 1
                serial = "BUSY-%d-%d" % (k, i)
                st, _, body = s.http("POST", "/api/devices",
                                     {"coldCellId": cells[i % len(cells)], "serialNumber": serial,
                                      "firmwareVersion": "1.0"}, token=admin)
                count("create device", st)
                if st == 201:
                    st, _, _ = s.http("PATCH", "/api/devices/%d" % body["id"],
                                      {"firmwareVersion": "1.%d" % i}, token=admin)
                    count("patch device", st)
                st, _, body = s.http("POST", "/api/locations",
                                     {"name": "busy %d %d" % (k, i), "address": "x",
                                      "customerId": 2}, token=admin)
                count("create location", st)
                st, _, body = s.http("GET", "/api/alerts?status=ACTIVE&limit=5", token=admin)
                count("list alerts", st)
                for a in (body or {}).get("items", [])[:2] if st == 200 else []:
                    st, _, _ = s.http("PATCH", "/api/alerts/%d/acknowledge" % a["id"], {},
                                      token=admin)
                    count("acknowledge", st)

        def mqtt_stream():
            clients = []
            for serial in sorted(s.keys):
                c = mqtt.Client(client_id=serial, clean_session=True)
                c.username_pw_set(serial, s.keys[serial])
                c.max_inflight_messages_set(1000)
                c.max_queued_messages_set(0)
                c.connect("127.0.0.1", s.mqtt_port, keepalive=30)
                c.loop_start()
                clients.append((serial, c))
            # Newer than the seed's readings (older ones change no alert), 1 ms apart.
            base = int(time.time() * 1000)
            i = 0
            t0 = time.time()
            while not stop.is_set():
                for serial, c in clients:
                    # Alert churn: every 20th reading of a device is far out of range.
                    temp = 40.0 if (i // 10) % 2 else (-18.0 if "FRZ" in serial else 4.0)
                    c.publish("devices/%s/readings" % serial,
                              json.dumps({"temperature": temp, "ts": base + i}), qos=1)
                i += 1
                ahead = i * len(clients) / 2000.0 - (time.time() - t0)  # ~2,000 readings/s
                if ahead > 0:
                    time.sleep(ahead)
            for _, c in clients:
                c.disconnect()
                c.loop_stop()

        def run():
            threads = [threading.Thread(target=mqtt_stream)]
            threads += [threading.Thread(target=http_writer, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            time.sleep(BUSY_S)
            stop.set()
            for t in threads:
                t.join(60)
            bad = {st: v[:3] for st, v in statuses.items() if st >= 500}
            total = sum(len(v) for v in statuses.values())
            print("busy: %d requests, statuses %s" % (total, {k: len(v) for k, v in statuses.items()}))
            expect(total > 40, "only %d requests in %d s" % (total, BUSY_S))
            expect(not bad, "5xx answers while ingestd ingests: %r" % bad)
            expect(set(statuses) <= {200, 201, 409}, "unexpected statuses %r" % set(statuses))
            for name in ("apid", "ingestd"):
                t = log_text(s, name).lower()
                for word in ("database is locked", "sqlite_busy", "database table is locked"):
                    expect(word not in t, "%s log says %r" % (name, word))
            stored = s.scalar("SELECT COUNT(*) FROM readings")
            alerts = s.scalar("SELECT COUNT(*) FROM alerts")
            print("busy: %d readings stored, %d alerts" % (stored, alerts))
            expect(stored > 1000, "ingestd stored only %s readings" % stored)
            expect(alerts > 10, "no alert churn: %s alerts" % alerts)
        cases.run("apid_writes_while_ingestd_ingests_never_busy", run)


# -- d. broker down at start ---------------------------------------------------------------
def case_broker_down(cases):
    with Stack(ingestd=False, apid=False, env=NO_LIMITS) as s:
        s.stop("mosquitto")
        serial = sorted(k for k in s.keys if "FRZ" in k)[0]

        def apid_without_broker():
            s.start_apid()
            st, _, _ = s.http("GET", "/ready")
            expect(st == 200, "/ready %s with the broker down" % st)
            tok = token(s, "customer1")
            ws = WS(s.http_port, "/api/ws?token=" + quote(tok, safe=""))
            hello = ws.recv(10)
            expect(isinstance(hello, dict) and hello.get("type") == "hello", hello)
            s.start_broker()
            c = s.mqtt_client(serial, s.keys[serial])
            got = None
            deadline = time.time() + 40
            try:
                while got is None and time.time() < deadline:
                    c.publish("devices/%s/readings" % serial,
                              json.dumps({"temperature": -18.5}), qos=1).wait_for_publish(10)
                    m = ws.recv(1.0)
                    while m is not None and m.get("type") != "reading":
                        m = ws.recv(0.2)
                    got = m
            finally:
                c.disconnect()
                c.loop_stop()
                ws.close()
            expect(got is not None and got["reading"]["serialNumber"] == serial,
                   "no reading on the live feed 40 s after the broker came up: %r" % got)
        cases.run("apid_starts_without_broker_and_feed_connects_later", apid_without_broker)

        def ingestd_without_broker():
            s.stop("mosquitto")
            p = s.start_ingestd(wait=False)
            time.sleep(3)
            expect(p.poll() is None, "ingestd exited %s without a broker" % p.returncode)
            expect(not s.ingestd_connected(), "ingestd says connected with no broker")
            s.start_broker()
            wait_for(s.ingestd_connected, timeout=30, what="ingestd connected to the late broker")
            base = int(time.time() * 1000) - 3600 * 1000
            pub = Readings(s, serial, base)
            pub.publish(10)
            wait_for(lambda: pub.stored() == 10, timeout=30, what="10 readings stored")
            pub.close()
        cases.run("ingestd_started_before_broker_waits_and_connects", ingestd_without_broker)


# -- e. PostgreSQL down mid-stream ---------------------------------------------------------
PG_DOWN_S = 10  # how long the database stays down in the first outage


def case_pg_down(cases):
    with Stack(env=NO_LIMITS) as s:
        admin = token(s, "admin")
        serial = sorted(k for k in s.keys if "FRZ" in k)[0]
        pub = Readings(s, serial, int(time.time() * 1000) - 10 * 86400 * 1000)
        pub.publish(50)
        wait_for(lambda: pub.stored() == 50, timeout=30, what="50 readings before the outage")

        def apid_answers_5xx():
            for res in (s.http("GET", "/api/devices", token=admin),
                        s.http("POST", "/api/locations", {"name": "pg-down", "address": "x",
                                                          "customerId": 2}, token=admin)):
                expect(res[0] in (500, 503), "apid answered %s %r with PostgreSQL down"
                       % (res[0], res[2]))
                expect_error(res, res[0], "INTERNAL" if res[0] == 500 else res[2]["error"]["code"])
            st, _, _ = s.http("GET", "/ready")
            expect(st == 503, "/ready %s with PostgreSQL down" % st)
            st, _, _ = s.http("GET", "/health")
            expect(st == 200, "/health %s (liveness needs no database)" % st)

        def apid_recovers():
            wait_for(lambda: s.http("GET", "/ready")[0] == 200, timeout=30,
                     what="apid /ready after PostgreSQL came back")
            st, _, body = s.http("GET", "/api/devices", token=admin)
            expect(st == 200, "GET /api/devices after the outage: %s %r" % (st, body))
            st, _, body = s.http("POST", "/api/locations", {"name": "pg-up", "address": "x",
                                                            "customerId": 2}, token=admin)
            expect(st == 201, "a write after the outage: %s %r" % (st, body))

        def down_then_up():
            ingestd = s.procs["ingestd"]
            broker_log_at = len(log_text(s, "mosquitto"))
            t_down = time.time()
            s.pg.down()
            pub.publish(300)  # connected devices still publish: the broker has them all
            wait_for(lambda: '"commit_failed"' in log_text(s, "ingestd"), timeout=20,
                     what="ingestd's error line for the failed commit")
            expect(ingestd.poll() is None, "ingestd died: %s" % ingestd.returncode)
            # A new login cannot be checked: refused (never let in unchecked).
            other = sorted(k for k in s.keys if k != serial)[0]
            try:
                c = s.mqtt_client(other, s.keys[other])
                c.disconnect()
                c.loop_stop()
                raise AssertionError("device %s logged in with PostgreSQL down" % other)
            except ConnectionRefusedError:
                pass
            apid_answers_5xx()
            expect(s.procs["apid"].poll() is None, "apid died")
            # Retrying, not spinning.
            c0 = cpu_seconds(ingestd.pid)
            time.sleep(3)
            used = cpu_seconds(ingestd.pid) - c0
            print("pg down: ingestd used %.2f s of CPU in 3 s" % used)
            expect(used < 1.0, "ingestd used %.2f s of CPU in 3 s with PostgreSQL down" % used)
            time.sleep(max(0.0, PG_DOWN_S - (time.time() - t_down)))
            # The plugin reopens a failed store at most once per AUTH_REOPEN_BACKOFF_MS (2 s):
            # the broker's one thread must not try a new connection on every publish check
            # (300 publishes here; each failed reopen logs one line).
            reopens = log_text(s, "mosquitto")[broker_log_at:].count("device lookup failed")
            outage_s = time.time() - t_down
            print("pg down: %d plugin reopens in %.1f s" % (reopens, outage_s))
            expect(1 <= reopens <= outage_s / 2 + 2,
                   "%d failed plugin reopens in %.1f s (at most one per 2 s)" % (reopens, outage_s))
            s.pg.up()
            wait_for(lambda: pub.stored() == 350, timeout=60, interval=0.25,
                     what="all 350 readings stored after PostgreSQL came back (have %s)"
                     % pub.stored())
            time.sleep(1)
            expect(pub.stored() == 350, "stored %d, want exactly 350" % pub.stored())
            expect(ingestd.poll() is None, "ingestd died")
            apid_recovers()
            expect(s.procs["apid"].poll() is None, "apid died")
        cases.run("pg_down_mid_stream_loses_nothing_and_both_recover", down_then_up)

        def down_kill9_up():
            s.pg.down()
            pub.publish(100)
            time.sleep(2)
            # What ingestd acknowledged is in its journal, the rest still the broker's.
            s.kill("ingestd")
            # Started during the outage, ingestd stops with a clear error (its supervisor,
            # systemd's Restart=on-failure or compose's restart policy, starts it again),
            # as on an unusable database file; it names the server, never the URL's password.
            p = s.start_ingestd(wait=False)
            try:
                rc = p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError("ingestd neither ran nor exited with PostgreSQL down")
            expect(rc != 0, "ingestd exited 0 with PostgreSQL down")
            errs = [e for e in log_errors(s, "ingestd") if '"db_open_failed"' in e]
            expect(errs, "no db_open_failed error: %r" % log_errors(s, "ingestd")[-5:])
            s.procs.pop("ingestd", None)
            s.pg.up()
            s.start_ingestd()
            wait_for(lambda: pub.stored() == 450, timeout=60, interval=0.25,
                     what="all 450 readings stored after kill -9 during the outage (have %s)"
                     % pub.stored())
            time.sleep(1)
            expect(pub.stored() == 450, "stored %d, want exactly 450" % pub.stored())
        cases.run("pg_down_kill9_ingestd_loses_nothing", down_kill9_up)
        pub.close()


# Which store each case runs on. full_disk fills COLDCHAIN_DATA_DIR, which holds the SQLite
# file and, on either store, ingestd's journal; pg_down is the database server's outage.
# read_only: SQLite only, it is the database FILE's mount that turns read-only.
STORES = {"full_disk": ("sqlite", "pg"), "read_only": ("sqlite",), "busy": ("sqlite", "pg"),
          "broker_down": ("sqlite", "pg"), "pg_down": ("pg",)}


def main():
    cases = Cases()
    which = os.environ.get("FAULTS", "full_disk,read_only,busy,broker_down,pg_down").split(",")
    for name, fn in (("full_disk", case_full_disk), ("read_only", case_read_only),
                     ("busy", case_busy), ("broker_down", case_broker_down),
                     ("pg_down", case_pg_down)):
        if name in which and STORE in STORES[name]:
            fn(cases)
    cases.exit()


if __name__ == "__main__":
    main()
