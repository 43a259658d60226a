"""Input limits (SPEC §5 "Input limits", issue 12 items 1, 2 and 9) against the real stack.

Deeply nested JSON ('[' x 10,000, 1,000 and 33) sent to every route with a body (login,
refresh, bulk import, HTTP ingestion with a device key) answers 400 BAD_JSON with the SPEC
error shape, and apid still answers /health afterwards (cJSON recursing on a civetweb
worker's 100 KiB stack used to kill it). A bearer token whose payload is 1,000 (or 1,400)
nested '[' - with a bad signature, and with a valid one made with the stack's own JWT
secret - is refused with 401 through the Authorization header, /api/auth/refresh and
/api/ws?token=, and apid lives on (libjwt used to parse the payload before checking the
HMAC). An MQTT reading nesting 1,000 levels becomes a dead letter with BAD_JSON and an
errors message, and ingestd lives on. A request path carrying " status=200 user=4
addr=10.9.9.9" (or a newline) cannot make the request log claim another status, user or
address."""
import json
import os
import queue
import re
import socket
import subprocess
import time

from apitest import (NO_LIMITS, Cases, Stack, b64url, expect, expect_error, jwt_secret,
                     raw_http, token)
from harness import off_the_second, subscribe_acked, wait_for

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

DEPTHS = (10000, 1000, 33)  # 33 = CC_JSON_MAX_DEPTH + 1, the first depth refused
TOKEN_DEPTHS = (1000, 1400)  # 1,400 is about the deepest a 2 KiB token carries
HEADER = {"alg": "HS256", "typ": "JWT"}


def nested(n):
    return b"[" * n + b"]" * n


def alive(s):
    """apid answers /health; if it died, it is restarted so that later cases still run
    (and fail for their own reason, not for this one's)."""
    p = s.procs["apid"]
    st = None
    try:
        st = s.http("GET", "/health")[0]
    except OSError:
        try:
            p.wait(timeout=5)  # a crash resets the connection a moment before the exit
        except subprocess.TimeoutExpired:
            pass
    if p.poll() is not None:
        s.procs.pop("apid")
        s.start_apid()
        raise AssertionError("apid died (exit %s)" % p.returncode)
    expect(st == 200, "/health answered %s" % st)


def deep_token(depth, key):
    """header.payload.signature with a payload of depth '[' (not JSON-closed: what an
    attacker sends); signed with key, or a well-formed but wrong signature."""
    import hashlib
    import hmac
    signing = b64url(json.dumps(HEADER, separators=(",", ":")).encode()) + "." + \
        b64url(b"[" * depth)
    if key is None:
        sig = b64url(b"\x00" * 32)
    else:
        sig = b64url(hmac.new(key, signing.encode(), hashlib.sha256).digest())
    return signing + "." + sig


def ws_status(s, tok):
    """Status of a WebSocket handshake on /api/ws?token=tok (0 if apid closed it)."""
    sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=10)
    try:
        sock.sendall(("GET /api/ws?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n" % tok).encode())
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return 0
            data += chunk
        return int(data.split(b" ", 2)[1])
    except OSError:
        return 0
    finally:
        sock.close()


def logfmt(msg):
    """key=value pairs of a request-log msg; a value may be "quoted" with \\ escapes.
    Returns a list of (key, value) in order, so a repeated key is visible."""
    pairs = []
    for m in re.finditer(r'([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|\S*)', msg):
        v = m.group(2)
        if v.startswith('"'):
            v = v[1:-1]
        pairs.append((m.group(1), v))
    return pairs


def request_lines(s, marker):
    with open(s.logs["apid"], "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    return [l for l in lines if marker in l]


def send_until_close(port, req):
    """Sends raw bytes, returns all apid answers until it closes the connection (a 10 s
    timeout raises: a connection kept open is a failure of the tests that use this)."""
    sk = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sk.sendall(req)
        data = b""
        while True:
            chunk = sk.recv(65536)
            if not chunk:
                return data
            data += chunk
    finally:
        sk.close()


def main():
    cases = Cases()
    with Stack(env=dict(NO_LIMITS)) as s:
        serial = sorted(s.keys)[0]
        cust = token(s, "customer1")
        routes = [
            ("login", "POST", "/api/auth/login", {}),
            ("refresh", "POST", "/api/auth/refresh", {}),
            ("bulk import", "POST", "/api/devices/bulk", {"Authorization": "Bearer " + cust}),
            ("http ingestion", "POST", "/api/readings/devices/%s/readings" % serial,
             {"x-device-key": s.keys[serial]}),
        ]
        for name, method, path, headers in routes:
            for depth in DEPTHS:
                def deep_body(method=method, path=path, headers=headers, depth=depth):
                    try:
                        res = s.http(method, path, raw=nested(depth), headers=headers)
                    except OSError as e:
                        alive(s)
                        raise AssertionError("no answer: %s" % e)
                    alive(s)
                    expect_error(res, 400, "BAD_JSON")
                cases.run("%s: %d nested [ -> 400 BAD_JSON, apid alive" % (name, depth),
                          deep_body)

        def depth_32_still_parsed():
            # 32 levels pass the gate: the body is then judged on its content (a login
            # body that is an array is a VALIDATION_ERROR, not BAD_JSON).
            st, _, body = s.http("POST", "/api/auth/login", raw=nested(32))
            expect(st == 400 and body["error"]["code"] == "VALIDATION_ERROR", (st, body))
            obj = b'{"email":"a@b.c","password":"x","x":' + nested(31) + b"}"
            st, _, body = s.http("POST", "/api/auth/login", raw=obj)
            expect(st == 401, (st, body))
        cases.run("32 levels still accepted by the parser", depth_32_still_parsed)

        key = jwt_secret(s)
        for depth in TOKEN_DEPTHS:
            for signed in (False, True):
                tok = deep_token(depth, key if signed else None)
                label = "%d-deep token, %s signature" % (depth, "valid" if signed else "bad")

                def bearer(tok=tok):
                    try:
                        res = s.http("GET", "/api/auth/me", token=tok)
                    except OSError as e:
                        alive(s)
                        raise AssertionError("no answer: %s" % e)
                    alive(s)
                    expect_error(res, 401, "UNAUTHORIZED")
                cases.run(label + ": Authorization -> 401, apid alive", bearer)

                def refresh(tok=tok):
                    try:
                        res = s.http("POST", "/api/auth/refresh", {"refreshToken": tok})
                    except OSError as e:
                        alive(s)
                        raise AssertionError("no answer: %s" % e)
                    alive(s)
                    expect_error(res, 401, "UNAUTHORIZED")
                cases.run(label + ": /api/auth/refresh -> 401, apid alive", refresh)

                def ws(tok=tok):
                    st = ws_status(s, tok)
                    alive(s)
                    expect(st == 401, "handshake answered %s" % st)
                cases.run(label + ": /api/ws?token= -> 401, apid alive", ws)

        def log_fields_not_forged():
            mark = "nothing%d" % int(time.time() * 1000)
            st, _, _ = raw_http(s, ("GET /api/%s%%20status=200%%20user=4%%20addr=10.9.9.9 "
                                    "HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % mark)
                                .encode())
            expect(st in (401, 404), st)
            lines = wait_for(lambda: request_lines(s, mark), timeout=5, what="request log line")
            expect(len(lines) == 1, lines)
            rec = json.loads(lines[0])
            expect(rec.get("event") == "http_request", rec)
            pairs = logfmt(rec["msg"])
            keys = [k for k, _ in pairs]
            expect(sorted(keys) == sorted(set(keys)), "a key appears twice: %r" % rec["msg"])
            got = dict(pairs)
            expect(got.get("status") == str(st), "status %r, answered %s: %r"
                   % (got.get("status"), st, rec["msg"]))
            expect(got.get("user") == "0", "user %r: %r" % (got.get("user"), rec["msg"]))
            expect(got.get("addr") == "127.0.0.1", "addr %r: %r" % (got.get("addr"), rec["msg"]))
            expect(mark in got.get("path", ""), "path %r" % got.get("path"))
            # Even a reader that only looks for "status=" and "addr=" anywhere finds the truth.
            expect(re.findall(r"status=(\d+)", rec["msg"]) == [str(st)], rec["msg"])
            expect("10.9.9.9" not in re.findall(r"addr=\"?([0-9.]+)", rec["msg"]), rec["msg"])
        cases.run("request log: a path cannot forge status, user or addr", log_fields_not_forged)

        def log_no_new_line():
            mark = "nl%d" % int(time.time() * 1000)
            st, _, _ = raw_http(s, ("GET /api/%s%%0a%%7b%%22event%%22:%%22forged%%22%%7d%%0d%%0a"
                                    "x%%09y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                    % mark).encode())
            lines = wait_for(lambda: request_lines(s, mark), timeout=5, what="request log line")
            expect(len(lines) == 1, lines)
            rec = json.loads(lines[0])
            expect(rec.get("event") == "http_request", rec)
            expect("\n" not in rec["msg"] and "\r" not in rec["msg"] and "\t" not in rec["msg"],
                   repr(rec["msg"]))
            expect(dict(logfmt(rec["msg"])).get("status") == str(st), rec["msg"])
        cases.run("request log: a path cannot start a new line", log_no_new_line)

        def mqtt_deep_reading():
            dev = s.mqtt_client(serial, s.keys[serial], client_id=serial)
            errors = queue.Queue()
            dev.on_message = lambda c, u, m: errors.put((m.topic, m.payload))
            expect(subscribe_acked(dev, ["devices/%s/errors" % serial]) == [1], "SUBACK")
            dead = s.scalar("SELECT COUNT(*) FROM rejected_messages")
            try:
                dev.publish("devices/%s/readings" % serial, nested(1000),
                            qos=1).wait_for_publish()
                topic, body = errors.get(timeout=10)
                expect(topic == "devices/%s/errors" % serial, topic)
                err = json.loads(body)["error"]
                expect(err["code"] == "BAD_JSON", err)
                wait_for(lambda: s.scalar("SELECT COUNT(*) FROM rejected_messages") == dead + 1,
                         what="dead letter")
                row = s.sql("SELECT topic, error_code FROM rejected_messages ORDER BY id DESC "
                            "LIMIT 1")[0]
                expect(row == ("devices/%s/readings" % serial, "BAD_JSON"), row)
                expect(s.procs["ingestd"].poll() is None, "ingestd died")
                # ingestd still stores a good reading after it.
                # Off the whole second and counted for this device only: no seed reading
                # (of any device) can be counted with it.
                ts = off_the_second(int(time.time() * 1000) - 500)
                dev.publish("devices/%s/readings" % serial,
                            json.dumps({"temperature": 4.5, "ts": ts}), qos=1).wait_for_publish()
                wait_for(lambda: s.scalar("SELECT COUNT(*) FROM readings r JOIN devices d ON"
                                          " d.id = r.device_id WHERE d.serial_number = ? AND"
                                          " r.ts = ?", (serial, ts)) == 1,
                         what="reading after the deep one")
            finally:
                dev.loop_stop()
                dev.disconnect()
        cases.run("mqtt: 1000 nested [ -> dead letter BAD_JSON + errors message, ingestd alive",
                  mqtt_deep_reading)

        # The escape \u0000 inside a JSON string: cJSON decodes it to a NUL byte, and every C
        # string after it ends there, so "Depot\u0000 of customer 2" was stored as "Depot",
        # a password "customer123\u0000anything" logged in, a new password
        # "abcdefgh\u0000<24 more>" was silently only its first 8 characters, and a device's
        # firmwareVersion lost its tail. The gate refuses such a document whole.
        def nul_escape_http():
            n = s.scalar("SELECT COUNT(*) FROM locations")
            raw = b'{"name":"Depot\\u0000 of customer 2","address":"Main St"}'
            expect_error(s.http("POST", "/api/locations", raw=raw,
                                headers={"Authorization": "Bearer " + cust}), 400, "BAD_JSON")
            expect(s.scalar("SELECT COUNT(*) FROM locations") == n, "a location was created")
            raw = b'{"email":"customer1@example.com","password":"customer123\\u0000anything"}'
            expect_error(s.http("POST", "/api/auth/login", raw=raw), 400, "BAD_JSON")
            # A backslash escaped before "u0000" is text, not a NUL: still accepted.
            raw = b'{"name":"Depot \\\\u0000","address":"Main St"}'
            st, _, body = s.http("POST", "/api/locations", raw=raw,
                                 headers={"Authorization": "Bearer " + cust})
            expect(st == 201 and body["name"] == "Depot \\u0000", (st, body))
        cases.run("http: \\u0000 in a string -> 400 BAD_JSON, nothing stored cut short",
                  nul_escape_http)

        def nul_escape_mqtt_status():
            dev = s.mqtt_client(serial, s.keys[serial], client_id=serial)
            dead = s.scalar("SELECT COUNT(*) FROM rejected_messages")
            try:
                dev.publish("devices/%s/status" % serial,
                            b'{"online":true,"firmwareVersion":"9.9\\u0000-evil"}',
                            qos=1).wait_for_publish()
                wait_for(lambda: s.scalar("SELECT COUNT(*) FROM rejected_messages") == dead + 1,
                         what="dead letter")
                row = s.sql("SELECT topic, error_code FROM rejected_messages ORDER BY id DESC "
                            "LIMIT 1")[0]
                expect(row == ("devices/%s/status" % serial, "BAD_JSON"), row)
                fw = s.scalar("SELECT firmware_version FROM devices WHERE serial_number = ?",
                              (serial,))
                expect(fw != "9.9", "firmwareVersion stored cut at the NUL: %r" % fw)
            finally:
                dev.loop_stop()
                dev.disconnect()
        cases.run("mqtt status: \\u0000 in firmwareVersion -> dead letter BAD_JSON",
                  nul_escape_mqtt_status)

        # Requests civetweb refuses itself, before apid's handler runs, answered
        # "Error 400: Bad Request" in text/plain: SPEC §5 wants every error in its shape.
        def civetweb_refusals_in_error_shape():
            for label, req, status, code in (
                    ("unknown method", b"FOO /api/alerts HTTP/1.1\r\nHost: x\r\n\r\n", 400,
                     "VALIDATION_ERROR"),
                    ("no HTTP version", b"GET /health\r\n\r\n", 400, "VALIDATION_ERROR"),
                    ("HTTP/9.9", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 505,
                     "VALIDATION_ERROR"),
                    ("Content-Length -1", b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: -1\r\n\r\n{}", 411, "VALIDATION_ERROR"),
                    ("a 70,000-byte header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: "
                     + b"a" * 70000 + b"\r\n\r\n", 400, "VALIDATION_ERROR")):
                data = send_until_close(s.http_port, req)
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                hdrs = {k.strip().lower(): v.strip() for k, _, v in
                        (line.partition(":") for line in lines[1:])}
                expect(lines[0].split()[1:2] == [str(status)], "%s: %r" % (label, lines[0]))
                expect(hdrs.get("content-type") == "application/json", "%s: %r" % (label, data))
                expect(hdrs.get("content-length") == str(len(body)), "%s: %r" % (label, data))
                try:
                    err = json.loads(body)["error"]
                except ValueError:
                    raise AssertionError("%s: not the SPEC error shape: %r" % (label, body))
                expect(err.get("code") == code and isinstance(err.get("message"), str),
                       "%s: %r" % (label, err))
            alive(s)
        cases.run("requests civetweb refuses itself answer in the SPEC error shape",
                  civetweb_refusals_in_error_shape)

        # A request whose body length two parties could read differently (RFC 9112 6.3):
        # civetweb took the first Content-Length, a proxy may take the last, or the
        # Transfer-Encoding; what one of them reads as the body the other reads as the next
        # request (smuggling). Refused with 400 in the SPEC shape, and the connection closed
        # unread: the bytes after the head must never be served as a request.
        def ambiguous_framing_refused():
            smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            for label, head, body in (
                    ("two Content-Lengths", b"Content-Length: 2\r\nContent-Length: %d\r\n"
                     % (2 + len(smuggled)), b"{}" + smuggled),
                    ("Content-Length and chunked", b"Content-Length: %d\r\n"
                     b"Transfer-Encoding: chunked\r\n" % (7 + len(smuggled)),
                     b"2\r\n{}\r\n0\r\n\r\n" + smuggled),
                    ("Transfer-Encoding other than chunked",
                     b"Transfer-Encoding: gzip, chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n"
                     + smuggled),
                    ("two Transfer-Encodings", b"Transfer-Encoding: chunked\r\n"
                     b"Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n" + smuggled)):
                for path in (b"/api/auth/login", b"/index.html"):
                    req = (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: application/json\r\n" + head + b"\r\n" + body)
                    data = send_until_close(s.http_port, req)
                    what = "%s %s" % (label, path.decode())
                    expect(data.startswith(b"HTTP/1.1 400 "), "%s: %r" % (what, data[:200]))
                    expect(data.count(b"HTTP/1.1 ") == 1, "%s: a second answer: %r" % (what, data))
                    _, _, rbody = data.partition(b"\r\n\r\n")
                    try:
                        err = json.loads(rbody)["error"]
                    except ValueError:
                        raise AssertionError("%s: not the SPEC error shape: %r" % (what, rbody))
                    expect(err.get("code") == "VALIDATION_ERROR", "%s: %r" % (what, err))
            alive(s)
        cases.run("a body length two parties could read differently -> 400, closed",
                  ambiguous_framing_refused)

        # A request line in absolute-form (RFC 9112 3.2.2: a server MUST accept it). civetweb
        # routes one only when it names this listener's port (and, by default, a host under
        # its "authentication_domain", mydomain.com), and closed every other one without a
        # byte of answer. Served when the port is apid's (the host and the Host header play
        # no part: apid is no proxy); any other authority, and the asterisk-form, 400 in the
        # SPEC shape and closed (docs/api.md "Absolute-form request targets").
        def absolute_form():
            port = s.http_port
            served = (
                ("http, Host elsewhere", b"GET http://127.0.0.1:%d/health HTTP/1.1\r\n"
                 b"Host: other.example\r\n" % port, 200, None),
                ("another host name", b"GET http://api.example:%d/health HTTP/1.1\r\n"
                 b"Host: 127.0.0.1\r\n" % port, 200, None),
                ("HTTP/1.0 without Host", b"GET http://127.0.0.1:%d/health HTTP/1.0\r\n" % port,
                 200, None),
                ("query string kept", b"GET HTTP://127.0.0.1:%d/api/alerts?status= HTTP/1.1\r\n"
                 b"Host: x\r\nAuthorization: Bearer %s\r\n" % (port, cust.encode()), 400,
                 "VALIDATION_ERROR"),
                ("routed and checked", b"GET http://127.0.0.1:%d/api/auth/me HTTP/1.1\r\n"
                 b"Host: x\r\n" % port, 401, "UNAUTHORIZED"),
                ("another port", b"GET http://127.0.0.1:%d/health HTTP/1.1\r\nHost: x\r\n"
                 % (port + 1 if port < 65535 else port - 1), 400, "VALIDATION_ERROR"),
                ("no port (80)", b"GET http://127.0.0.1/health HTTP/1.1\r\nHost: x\r\n", 400,
                 "VALIDATION_ERROR"),
                ("https, no port (443)", b"POST https://127.0.0.1/api/auth/login HTTP/1.1\r\n"
                 b"Host: x\r\nContent-Length: 2\r\n\r\n{}", 400, "VALIDATION_ERROR"),
                ("asterisk-form", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n", 400,
                 "VALIDATION_ERROR"),
                # civetweb answers these itself: one answer, not a second one from apid
                ("bad port", b"GET http://127.0.0.1:99999/health HTTP/1.1\r\nHost: x\r\n",
                 400, "VALIDATION_ERROR"),
                ("another port, bad Content-Length", b"GET http://127.0.0.1:1/health HTTP/1.1"
                 b"\r\nHost: x\r\nContent-Length: -1\r\n", 411, "VALIDATION_ERROR"))
            for label, head, status, code in served:
                req = head if b"\r\n\r\n" in head else head + b"Connection: close\r\n\r\n"
                data = send_until_close(port, req)
                n = len(re.findall(rb"HTTP/1\.[01] \d{3} ", data))
                expect(n == 1, "%s: %d answers: %r" % (label, n, data[:300]))
                head_b, _, body = data.partition(b"\r\n\r\n")
                line = head_b.split(b"\r\n")[0].decode("latin-1")
                expect(line.split()[1:2] == [str(status)], "%s: %r" % (label, data[:300]))
                try:
                    doc = json.loads(body)
                except ValueError:
                    raise AssertionError("%s: not JSON: %r" % (label, body))
                if code is None:
                    expect(doc == {"status": "ok"}, "%s: %r" % (label, doc))
                    continue
                err = doc.get("error") if isinstance(doc, dict) else None
                expect(isinstance(err, dict) and err.get("code") == code
                       and isinstance(err.get("message"), str), "%s: %r" % (label, doc))
            # Served in absolute-form, the connection stays usable for the next request.
            data = send_until_close(port, b"GET http://127.0.0.1:%d/health HTTP/1.1\r\nHost: x"
                                    b"\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n"
                                    b"Connection: close\r\n\r\n" % port)
            expect(data.count(b"HTTP/1.1 200 ") == 2, "keep-alive: %r" % data[:400])
            alive(s)
        cases.run("absolute-form request line: served on this port, else 400, never silent",
                  absolute_form)
    cases.exit()


if __name__ == "__main__":
    main()
