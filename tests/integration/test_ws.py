"""The live feed GET /api/ws (docs/websocket.md) against the real stack.

Two customers on two tenants and the technician are connected at once; readings are
published over MQTT with each device's own key. Each customer gets its own cells' readings
and never the other's (we wait several seconds after the last publish); the technician
gets both. Bad, expired and refresh tokens are refused before the upgrade; a token that
expires while connected ends the socket with 4401; an alert raised by ingestd arrives as
{"type":"alert"}; a plain GET answers the SPEC error body. The WebSocket client is a
minimal RFC 6455 one on the standard library (handshake, masked client frames, parsing).

Limits (SPEC §5 "Live feed"): a frame announcing 300 MB is refused with 1009 from its head
(apid's memory does not grow); 32 sockets of one user get 8 feeds and 429 for the rest;
1,000 feeds of 125 users all get a published reading while /ready and an authenticated GET
still answer within 1 s; a socket that never reads is ended (apid's end of the TCP
connection is gone, not just a close frame queued) once its token expires, and a second
stack with WS_PING_INTERVAL_S=2 ends a socket that does not answer pings while one that
answers stays."""
import base64
import hashlib
import json
import os
import resource
import socket
import struct
import threading
import time

import harness
from apitest import NO_LIMITS, Cases, Stack, expect, expect_error, forge, jwt_secret, login, token

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
QUIET_S = 4.0  # how long we wait for a message that must not come


class WSError(Exception):
    pass


class WS:
    """A WebSocket client: connect() raises WSError with the HTTP status when refused."""

    def __init__(self, port, path, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                self.sock.close()
                raise WSError("closed before the handshake answer (%r)" % head)
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                for l in lines[1:] if ":" in l}
        if self.status != 101:
            body = self.buf
            n = int(hdrs.get("content-length", "0"))
            while len(body) < n:
                body += self.sock.recv(4096)
            self.sock.close()
            raise WSError(self.status, json.loads(body.decode() or "null"))
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        expect(hdrs.get("sec-websocket-accept") == want, "bad Sec-WebSocket-Accept")
        self.close_code = None

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, opcode, payload=b""):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self, timeout):
        """The next text message as JSON, ("close", code) or None on timeout (pings are
        answered on the way, and do not extend the wait)."""
        deadline = time.time() + timeout
        try:
            while True:
                left = deadline - time.time()
                if left <= 0 and len(self.buf) < 2:
                    return None
                self.sock.settimeout(max(left, 0.01))
                b0, b1 = self._read(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._read(8))[0]
                expect(not b1 & 0x80, "server frames must not be masked")
                payload = self._read(n)
                op = b0 & 0x0F
                if op == 0x1:
                    return json.loads(payload.decode())
                if op == 0x9:
                    self.send(0xA, payload)
                elif op == 0x8:
                    self.close_code = struct.unpack(">H", payload[:2])[0] if n >= 2 else 1005
                    return ("close", self.close_code)
        except socket.timeout:
            return None

    def drain(self, seconds):
        """Every message within seconds."""
        out, end = [], time.time() + seconds
        while time.time() < end:
            m = self.recv(max(0.05, end - time.time()))
            if m is None:
                break
            out.append(m)
            if isinstance(m, tuple):
                break
        return out

    def close(self):
        try:
            self.send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


def connect(s, tok, rcvbuf=None):
    from urllib.parse import quote
    return WS(s.http_port, "/api/ws?token=" + quote(tok, safe=""), rcvbuf=rcvbuf)


def proc_status(pid, field):
    """A /proc/<pid>/status field in kB (VmRSS, VmSize)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (field, pid))


def tcp_state(local_port, remote_port):
    """The state (hex, '01' = ESTABLISHED) of the TCP socket local_port -> remote_port on
    127.0.0.1 (ours or apid's), or None when the kernel no longer has it."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            lport = int(parts[1].split(":")[1], 16)
            rport = int(parts[2].split(":")[1], 16)
            if lport == local_port and rport == remote_port:
                return parts[3]
    return None


def wait_tcp_ended(w, port, timeout):
    """Seconds until apid has ended w's TCP connection: apid's end of it (local port port,
    peer w's port) is gone from the kernel's table, so neither a descriptor nor a buffer
    of it is left; AssertionError after timeout. w is never read.

    apid's end, not ours: apid ends it with a reset (SO_LINGER 0), and a client that does
    not read may legitimately never see that reset. Once its receive memory is spent
    (a 4 KiB SO_RCVBUF under load) its kernel drops segments apid already sent, so apid's
    next sequence number, which the RST carries, lies beyond the window it still offers,
    and the RST is discarded (RFC 793 / 5961). Our end then stays ESTABLISHED forever
    although apid holds nothing; the first segment it sends afterwards (a window update
    once it reads) is answered with a fresh RST."""
    lport, t0 = w.sock.getsockname()[1], time.time()
    while time.time() - t0 < timeout:
        if tcp_state(port, lport) is None:
            return time.time() - t0
        time.sleep(0.25)
    raise AssertionError("apid still holds the connection (state %s) after %.0f s"
                         % (tcp_state(port, lport), timeout))


def refused(s, tok, status, code):
    try:
        w = connect(s, tok)
    except WSError as e:
        expect(e.args[0] == status, "status %r, want %d" % (e.args, status))
        expect(isinstance(e.args[1], dict) and e.args[1]["error"]["code"] == code,
               "body %r, want %s" % (e.args[1], code))
        return
    w.close()
    raise AssertionError("the upgrade was accepted")


def readings_of(msgs):
    return [m for m in msgs if isinstance(m, dict) and m.get("type") == "reading"]


def main():
    cases = Cases()
    # Pings as rare as allowed: the cases below hold sockets that do not read for a while.
    with Stack(env=dict(NO_LIMITS, WS_PING_INTERVAL_S="50")) as s:
        owners = dict(s.sql("SELECT d.serial_number, l.customer_id FROM devices d JOIN cold_cells c"
                            " ON c.id = d.cold_cell_id JOIN locations l ON l.id = c.location_id"))
        cells = dict(s.sql("SELECT serial_number, cold_cell_id FROM devices"))
        users = dict(s.sql("SELECT email, id FROM users"))
        c1_id, c2_id = users["customer1@example.com"], users["customer2@example.com"]
        cases.check("seed_tenants_as_expected",
                    owners == {"CC-FRZ-0001": c1_id, "CC-FRG-0001": c1_id,
                               "CC-FRG-0002": c1_id, "CC-FRZ-0002": c2_id}, repr(owners))
        c1_cells = {cells[k] for k, v in owners.items() if v == c1_id}
        c2_cells = {cells[k] for k, v in owners.items() if v == c2_id}

        t1, t2, tt = token(s, "customer1"), token(s, "customer2"), token(s, "tech")
        wait_for_feed(s)
        w1, w2, wt = connect(s, t1), connect(s, t2), connect(s, tt)
        hellos = [w.recv(5) for w in (w1, w2, wt)]

        def hello():
            expect(all(isinstance(h, dict) and h.get("type") == "hello" for h in hellos), hellos)
            expect(set(hellos[0]["coldCellIds"]) == c1_cells, hellos[0])
            expect(set(hellos[1]["coldCellIds"]) == c2_cells, hellos[1])
            expect(set(hellos[2]["coldCellIds"]) == c1_cells | c2_cells, hellos[2])
        cases.run("hello_lists_the_users_cells", hello)

        # Three readings per device, each with a distinct temperature to recognise it.
        sent = {}
        pubs = {serial: s.mqtt_client(serial, s.keys[serial]) for serial in sorted(s.keys)}
        for k, serial in enumerate(sorted(s.keys)):
            for i in range(3):
                temp = round(-20.0 + k / 2 + i / 10.0, 2) if "FRZ" in serial else round(4.0 + k / 10 + i / 100.0, 2)
                sent.setdefault(serial, []).append(temp)
                pubs[serial].publish("devices/%s/readings" % serial,
                                     json.dumps({"temperature": temp, "humidity": 50}),
                                     qos=1).wait_for_publish(10)
        # An invalid reading is never sent to anyone.
        pubs["CC-FRZ-0001"].publish("devices/CC-FRZ-0001/readings",
                                    json.dumps({"temperature": 999}), qos=1).wait_for_publish(10)
        raw = {name: w.drain(QUIET_S) for name, w in (("c1", w1), ("c2", w2), ("tech", wt))}
        got = {name: readings_of(msgs) for name, msgs in raw.items()}

        def every_message_in_own_cells():
            for name, own in (("c1", c1_cells), ("c2", c2_cells)):
                for m in raw[name]:
                    expect(isinstance(m, dict), m)
                    cell = m.get("coldCellId", (m.get("alert") or {}).get("coldCellId"))
                    expect(cell in own, "%s got %r" % (name, m))
        cases.run("no_message_of_any_type_crosses_tenants", every_message_in_own_cells)

        def by_serial(rs):
            out = {}
            for m in rs:
                out.setdefault(m["reading"]["serialNumber"], []).append(m["reading"]["temperature"])
            return out

        c1_serials = {k for k, v in owners.items() if v == c1_id}
        c2_serials = {k for k, v in owners.items() if v == c2_id}

        def customer1_own_only():
            b = by_serial(got["c1"])
            expect(set(b) == c1_serials, "customer1 got %r" % b)
            for serial in c1_serials:
                expect(b[serial] == sent[serial], (serial, b[serial], sent[serial]))
            for m in got["c1"]:
                expect(m["coldCellId"] in c1_cells, m)
        cases.run("customer1_gets_its_readings_and_never_customer2s", customer1_own_only)

        def customer2_own_only():
            b = by_serial(got["c2"])
            expect(set(b) == c2_serials, "customer2 got %r" % b)
            for serial in c2_serials:
                expect(b[serial] == sent[serial], (serial, b[serial], sent[serial]))
            for m in got["c2"]:
                expect(m["coldCellId"] in c2_cells, m)
        cases.run("customer2_gets_its_readings_and_never_customer1s", customer2_own_only)

        def tech_both():
            b = by_serial(got["tech"])
            expect(set(b) == c1_serials | c2_serials, "technician got %r" % b)
        cases.run("technician_gets_both_tenants", tech_both)

        def reading_shape():
            m = got["c1"][0]
            r = m["reading"]
            expect(m["coldCellId"] == cells[r["serialNumber"]], m)
            expect(isinstance(r["deviceId"], int) and r["ts"].endswith("Z"), r)
            expect(r["humidity"] == 50 and "batteryLevel" not in r, r)
            expect(not any(t == 999 for x in got.values() for t in
                           [mm["reading"]["temperature"] for mm in x]), "invalid reading relayed")
        cases.run("reading_message_shape_and_invalid_not_relayed", reading_shape)

        def ping_pong():
            w1.send(0x1, b'{"type":"ping"}')
            m = w1.recv(5)
            expect(m == {"type": "pong"}, m)
        cases.run("ping_is_answered_with_pong", ping_pong)

        def alert_arrives():
            # customer2's freezer goes warm: ingestd raises HIGH_TEMP and publishes it.
            pubs["CC-FRZ-0002"].publish("devices/CC-FRZ-0002/readings",
                                        json.dumps({"temperature": 12.5}), qos=1).wait_for_publish(10)
            deadline, alert = time.time() + 15, None
            while time.time() < deadline and alert is None:
                for m in w2.drain(1.0):
                    if isinstance(m, dict) and m.get("type") == "alert":
                        alert = m["alert"]
            expect(alert is not None, "no alert message for customer2")
            expect(alert["coldCellId"] in c2_cells and alert["status"] == "ACTIVE" and
                   alert["type"] == "HIGH_TEMP", alert)
            leaked = [m for m in w1.drain(2.0) if isinstance(m, dict) and m.get("type") == "alert"]
            expect(not leaked, "customer1 got customer2's alert: %r" % leaked)
        cases.run("alert_change_arrives_as_type_alert_to_its_tenant_only", alert_arrives)

        def acknowledge_arrives():
            # An acknowledge made through the API reaches the feed as an alert change.
            alert_id = s.scalar("SELECT id FROM alerts WHERE status = 'ACTIVE' AND cold_cell_id"
                                " IN (%s) ORDER BY id DESC LIMIT 1" % ",".join(map(str, c2_cells)))
            expect(alert_id is not None, "no active alert of customer2 to acknowledge")
            st_, _, body = s.http("PATCH", "/api/alerts/%d/acknowledge" % alert_id, token=t2)
            expect(st_ == 200, (st_, body))
            deadline, got = time.time() + 10, None
            while time.time() < deadline and got is None:
                for m in w2.drain(1.0):
                    if (isinstance(m, dict) and m.get("type") == "alert" and
                            m["alert"].get("id") == alert_id and m["alert"].get("acknowledgedAt")):
                        got = m["alert"]
            expect(got is not None, "the acknowledge did not reach customer2's feed")
            leaked = [m for m in w1.drain(1.0) if isinstance(m, dict) and m.get("type") == "alert"]
            expect(not leaked, "customer1 got customer2's acknowledge: %r" % leaked)
        cases.run("acknowledge_reaches_the_feed_of_its_tenant_only", acknowledge_arrives)

        for w in (w1, w2, wt):
            w.close()
        for c in pubs.values():
            c.loop_stop()
            c.disconnect()

        key = jwt_secret(s)
        now = int(time.time())
        c1_claims = {"sub": str(c1_id), "role": "CUSTOMER", "typ": "access"}

        cases.run("bad_token_refused_401", lambda: refused(s, "not.a.jwt", 401, "UNAUTHORIZED"))
        cases.run("missing_token_refused_401",
                  lambda: refused_path(s, "/api/ws", 401, "UNAUTHORIZED"))
        cases.run("expired_token_refused_401_token_expired", lambda: refused(
            s, forge({"alg": "HS256", "typ": "JWT"},
                     dict(c1_claims, iat=now - 7200, exp=now - 3600), key),
            401, "TOKEN_EXPIRED"))
        cases.run("refresh_token_refused_401", lambda: refused(
            s, login(s, "customer1")["refreshToken"], 401, "UNAUTHORIZED"))
        cases.run("wrong_key_refused_401", lambda: refused(
            s, forge({"alg": "HS256", "typ": "JWT"}, dict(c1_claims, iat=now, exp=now + 600),
                     b"another-secret-of-enough-length"), 401, "UNAUTHORIZED"))

        def expiry_closes_4401():
            # Its own clock, not main's now: the cases before this one log in (scrypt), and
            # on a loaded machine under ASan they can take the token's 3 s before it is used.
            t = int(time.time())
            tok = forge({"alg": "HS256", "typ": "JWT"}, dict(c1_claims, iat=t, exp=t + 3), key)
            w = connect(s, tok)
            msgs = w.drain(8)
            w.sock.close()
            expect(("close", 4401) in msgs, msgs)
        cases.run("token_expiring_while_connected_closes_4401", expiry_closes_4401)

        def plain_get():
            expect_error(s.http("GET", "/api/ws?token=" + t1), 400, "VALIDATION_ERROR")
        cases.run("plain_GET_without_upgrade_answers_400_spec_body", plain_get)

        def apid_logs_no_token():
            with open(s.logs["apid"], "rb") as f:
                log = f.read()
            expect(t1.encode() not in log and tt.encode() not in log, "a token is in the log")
        cases.run("apid_never_logs_the_token", apid_logs_no_token)

        apid_pid = s.procs["apid"].pid
        cases.run("frame_announcing_300MB_closes_1009_without_buffering",
                  lambda: oversized_frame(s, t1, apid_pid))
        cases.run("one_user_gets_8_feeds_then_429_others_still_served",
                  lambda: per_user_limit(s, t2, tt))
        cases.run("socket_that_never_reads_is_ended_when_its_token_expires",
                  lambda: expiry_ends_silent_socket(s, pubs_key(s), c1_claims, key))
        cases.run("thousand_feeds_of_125_users_all_get_a_reading_and_ready_answers",
                  lambda: thousand_feeds(s))
        cases.run("unmasked_client_frame_closes_1002", lambda: unmasked_frame(s, t1))
        cases.run("disabled_user_is_closed_4401_within_60s", lambda: disabled_user(s))
        # SPEC §5 "Identities": a password change ends the tokens issued before it, the
        # feeds opened with them included.
        cases.run("password_change_closes_feed_4401_within_60s",
                  lambda: disabled_user(s, {"password": "a-new-password-123"}))

    with Stack(env=dict(NO_LIMITS, WS_PING_INTERVAL_S="2")) as s:
        t1 = token(s, "customer1")
        wait_for_feed(s)
        cases.run("unanswered_pings_end_the_socket_answered_ones_keep_it",
                  lambda: unanswered_ping(s, t1))

    with Stack(env=NO_LIMITS) as s:
        cases.run("retained_reading_of_a_reused_serial_not_replayed_to_its_new_owner",
                  lambda: retained_replay(s))
    cases.exit()


def retained_replay(s):
    # The feed is a live view (docs/websocket.md): a retained copy the broker hands apid at
    # its SUBSCRIBE is not live. Serials are reused (ids are not): customer1's device leaves,
    # customer2 creates one with its serial, and at apid's next subscribe (a broker restart)
    # the broker replayed customer1's retained reading, which the feed mapped to the serial's
    # new cell and sent to customer2.
    serial = "CC-FRZ-0001"
    old_id = s.scalar("SELECT id FROM devices WHERE serial_number = ?", (serial,))
    t1, t2 = token(s, "customer1"), token(s, "customer2")
    wait_for_feed(s)
    # The plugin keeps no device's publish as retained (test_broker_auth
    # device_retained_not_kept); a broker without it (HTTP auth, docs/scaling.md) or a copy
    # kept from before it still may: an operator's retained publish stands for those here.
    op = s.operator_client()
    op.publish("devices/%s/readings" % serial, json.dumps({"temperature": -42.5}), qos=1,
               retain=True).wait_for_publish(10)
    op.disconnect()
    op.loop_stop()
    st, _, body = s.http("DELETE", "/api/devices/%d" % old_id, token=t1)
    expect(st == 204, "delete: %s %r" % (st, body))
    cell = s.scalar("SELECT c.id FROM cold_cells c JOIN locations l ON l.id = c.location_id"
                    " JOIN users u ON u.id = l.customer_id"
                    " WHERE u.email = 'customer2@example.com' ORDER BY c.id LIMIT 1")
    st, _, body = s.http("POST", "/api/devices", {"coldCellId": cell, "serialNumber": serial},
                         token=t2)
    expect(st == 201, "create: %s %r" % (st, body))
    w = connect(s, t2)
    try:
        hello = w.recv(5)
        expect(isinstance(hello, dict) and cell in hello.get("coldCellIds", []), hello)
        s.stop("mosquitto")
        s.start_broker()

        def resubscribed():
            with open(s.logs["apid"], "rb") as f:
                return f.read().count(b"feed_broker_connected") >= 2
        harness.wait_for(resubscribed, timeout=30, what="apid back at the broker")
        msgs = w.drain(QUIET_S)
        expect(not readings_of(msgs), "customer2's feed got %r" % readings_of(msgs))
        # The feed is back: the new device's own live reading arrives.
        dev = s.mqtt_client(serial, body["apiKey"])
        dev.publish("devices/%s/readings" % serial, json.dumps({"temperature": -18.25}),
                    qos=1).wait_for_publish(10)
        got = readings_of(w.drain(QUIET_S))
        dev.disconnect()
        dev.loop_stop()
        expect([m["reading"]["temperature"] for m in got] == [-18.25], got)
    finally:
        w.close()


def pubs_key(s):
    return s.keys["CC-FRG-0001"]


def oversized_frame(s, tok, pid):
    w = connect(s, tok)
    expect(w.recv(5).get("type") == "hello", "no hello")
    w.send(0x1, b'{"type":"ping"}')  # one round trip first: the feed is settled
    expect(w.recv(5) == {"type": "pong"}, "no pong")
    rss0, vm0 = proc_status(pid, "VmRSS"), proc_status(pid, "VmSize")
    # Text frame, masked, 64-bit length 300,000,000, then only 8 KiB of it.
    head = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", 300_000_000) + os.urandom(4)
    try:
        w.sock.sendall(head + os.urandom(8192))
    except OSError:
        pass  # the server may already have closed
    got = w.recv(10)
    expect(got == ("close", 1009), "want close 1009, got %r" % (got,))
    w.sock.settimeout(10)
    try:
        while w.sock.recv(65536):
            pass
    except (ConnectionResetError, socket.timeout) as e:
        expect(isinstance(e, ConnectionResetError), "the server did not end the connection")
    rss1, vm1 = proc_status(pid, "VmRSS"), proc_status(pid, "VmSize")
    w.sock.close()
    expect(rss1 - rss0 < 8 * 1024, "RSS grew by %d kB" % (rss1 - rss0))
    expect(vm1 - vm0 < 100 * 1024, "VmSize grew by %d kB (a buffer of the announced size?)"
           % (vm1 - vm0))


def unmasked_frame(s, tok):
    w = connect(s, tok)
    expect(w.recv(5).get("type") == "hello", "no hello")
    w.sock.sendall(bytes([0x81, 0x04]) + b"ping")  # RFC 6455 5.1: clients must mask
    got = w.recv(10)
    w.sock.close()
    expect(got == ("close", 1002), "want close 1002, got %r" % (got,))


def disabled_user(s, change=None):
    """A user with no cells gets no messages, so only the periodic check can see it."""
    change = change or {"disabled": True}
    tok = create_users(s, 1, "CUSTOMER")[0]
    me = s.http("GET", "/api/auth/me", token=tok)[2]
    w = connect(s, tok)
    try:
        expect(w.recv(5).get("type") == "hello", "no hello")
        st_, _, body = s.http("PATCH", "/api/users/%d" % me["id"], change,
                              token=token(s, "admin"))
        expect(st_ == 200, (st_, body))
        t0, got = time.time(), None
        while got is None and time.time() - t0 < 60:
            m = w.recv(max(0.1, 60 - (time.time() - t0)))
            if isinstance(m, tuple):
                got = m
        expect(got == ("close", 4401), "want close 4401 within 60 s, got %r" % (got,))
        w.sock.settimeout(10)
        try:
            rest = w.sock.recv(100)
        except ConnectionResetError:
            rest = b""
        expect(rest == b"", "the connection was not ended after the close")
        print("  (closed %.1f s after the user was disabled)" % (time.time() - t0))
    finally:
        w.sock.close()


def per_user_limit(s, tok, other):
    open_, refused_ = [], []
    try:
        for _ in range(32):
            try:
                open_.append(connect(s, tok))
            except WSError as e:
                refused_.append(e.args)
        expect(len(open_) == 8, "%d feeds accepted for one user, want 8" % len(open_))
        for st_, body in refused_:
            expect(st_ == 429 and body["error"]["code"] == "RATE_LIMITED", (st_, body))
        for w in open_:
            expect(w.recv(5).get("type") == "hello", "an accepted feed got no hello")
        o = connect(s, other)
        expect(o.recv(5).get("type") == "hello", "another user got no feed")
        o.close()
        # A slot comes back once one of the eight is closed.
        open_.pop().close()
        deadline, w = time.time() + 10, None
        while w is None and time.time() < deadline:
            try:
                w = connect(s, tok)
            except WSError as e:
                expect(e.args[0] == 429, e.args)
                time.sleep(0.2)
        expect(w is not None, "the freed slot never came back")
        open_.append(w)
    finally:
        for w in open_:
            w.close()


def expiry_ends_silent_socket(s, device_key, claims, key):
    now = int(time.time())
    # 10 s of life: enough to connect and fill the socket on a loaded machine, well
    # inside the 60 s the SPEC allows for the close.
    tok = forge({"alg": "HS256", "typ": "JWT"}, dict(claims, iat=now, exp=now + 10), key)
    w = connect(s, tok, rcvbuf=4096)
    # Fill what we never read: readings of customer1's fridge, to the small receive buffer.
    pub = s.mqtt_client("CC-FRG-0001", device_key, client_id="CC-FRG-0001")
    try:
        for i in range(300):
            info = pub.publish("devices/CC-FRG-0001/readings",
                               json.dumps({"temperature": 4.0 + (i % 10) / 10, "humidity": 40}),
                               qos=1)
        info.wait_for_publish(20)
    finally:
        pub.loop_stop()
        pub.disconnect()
    t = wait_tcp_ended(w, s.http_port, 60)
    mine = tcp_state(w.sock.getsockname()[1], s.http_port)
    w.sock.close()
    print("  (ended %.1f s after the readings, token expired at +10 s; our end: %s)"
          % (t, mine or "gone"))


def create_users(s, n, role, link_to=None):
    """n users through the API as the admin, logged in: their access tokens."""
    admin = token(s, "admin")
    tag = os.urandom(3).hex()
    out, errors, lock = [None] * n, [], threading.Lock()

    def make(i):
        try:
            email, pw = "feed%s-%d@example.com" % (tag, i), "feed-password-%d" % i
            st_, _, body = s.http("POST", "/api/users", {"email": email, "password": pw,
                                                         "role": role, "name": "F%d" % i},
                                  token=admin)
            expect(st_ == 201, (st_, body))
            if link_to is not None:
                st_, _, b2 = s.http("PUT", "/api/users/%d/customers/%d" % (body["id"], link_to),
                                    token=admin)
                expect(st_ in (200, 201, 204), (st_, b2))
            st_, _, lg = s.http("POST", "/api/auth/login", {"email": email, "password": pw})
            expect(st_ == 200, (st_, lg))
            out[i] = lg["accessToken"]
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(repr(e))

    todo = list(range(n))

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            make(i)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expect(not errors, errors[:3])
    return out


def thousand_feeds(s):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    c1 = s.scalar("SELECT id FROM users WHERE email = 'customer1@example.com'")
    toks = create_users(s, 125, "TECHNICIAN", link_to=c1)
    feeds = []
    pid = s.procs["apid"].pid
    try:
        rss0, t0 = proc_status(pid, "VmRSS"), time.time()
        for tok in toks:
            for _ in range(8):
                feeds.append(connect(s, tok))
        print("  (1000 feeds opened in %.1f s; apid VmRSS %.1f -> %.1f MiB, %d threads)"
              % (time.time() - t0, rss0 / 1024, proc_status(pid, "VmRSS") / 1024,
                 proc_status(pid, "Threads")))
        t = time.time()
        st_, _, body = s.http("GET", "/ready")
        expect(st_ == 200 and time.time() - t < 1.0, "/ready: %s in %.2f s" % (st_, time.time() - t))
        t = time.time()
        st_, _, body = s.http("GET", "/api/auth/me", token=toks[0])
        expect(st_ == 200 and time.time() - t < 1.0, "GET /me: %s in %.2f s" % (st_, time.time() - t))
        pub = s.mqtt_client("CC-FRG-0001", s.keys["CC-FRG-0001"], client_id="CC-FRG-0001")
        pub.publish("devices/CC-FRG-0001/readings",
                    json.dumps({"temperature": 5.55, "humidity": 41}), qos=1).wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        deadline, missing = time.time() + 60, 0
        for w in feeds:
            got = False
            while not got and time.time() < deadline:
                m = w.recv(max(0.1, deadline - time.time()))
                if m is None or isinstance(m, tuple):
                    break
                got = m.get("type") == "reading" and m["reading"]["temperature"] == 5.55
            missing += not got
        expect(missing == 0, "%d of %d feeds did not get the reading" % (missing, len(feeds)))
    finally:
        for w in feeds:
            w.close()


def unanswered_ping(s, tok):
    silent, live = connect(s, tok), connect(s, tok)
    try:
        # live reads (and answers pings, WS.recv does) for 8 s; silent never reads.
        msgs = live.drain(8)
        expect(not any(isinstance(m, tuple) for m in msgs), "the answering socket closed: %r" % msgs)
        live.send(0x1, b'{"type":"ping"}')
        m = None
        for _ in range(10):
            m = live.recv(5)
            if m == {"type": "pong"}:
                break
        expect(m == {"type": "pong"}, "the answering socket is not served: %r" % (m,))
        t = wait_tcp_ended(silent, s.http_port, 30)
        print("  (unanswered: ended after %.1f s more)" % t)
    finally:
        silent.sock.close()
        live.close()


def refused_path(s, path, status, code):
    try:
        w = WS(s.http_port, path)
    except WSError as e:
        expect(e.args[0] == status and e.args[1]["error"]["code"] == code, e.args)
        return
    w.close()
    raise AssertionError("the upgrade was accepted")


def wait_for_feed(s, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(s.logs["apid"], "rb") as f:
            if b"feed_broker_connected" in f.read():
                return
        time.sleep(0.1)
    raise AssertionError("apid never connected to the broker")


if __name__ == "__main__":
    main()
