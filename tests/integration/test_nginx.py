"""deploy/nginx/coldchain.conf in front of the real apid (issue 16 items 3 and 4, issue 12
"Connections"): the production file rendered for test ports (listen lines, upstream, a
self-signed certificate made with the openssl CLI), checked with `nginx -t`, then nginx
started as a test process (non-daemon, pid, logs and temp paths in a temp dir):

- HTTPS login answers 200 with HSTS; TLS is 1.2 or newer;
- the client address apid logs is the one nginx forwards (the test connects from
  127.0.0.2), and an X-Forwarded-For sent by the client is not believed;
- plain HTTP redirects to HTTPS; /metrics is not exposed; a body over 64 KiB is refused
  by nginx with the SPEC error shape;
- a WebSocket to /api/ws?token=... through nginx receives the feed's hello message."""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import urllib.parse

from apitest import NO_LIMITS, Cases, Stack, expect, token
from harness import ROOT, free_port, wait_port

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

CONF = os.path.join(ROOT, "deploy", "nginx", "coldchain.conf")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CLIENT_ADDR = "127.0.0.2"  # the test's source address: apid's socket peer stays 127.0.0.1
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def render(d, https_port, http_port, apid_port, cert, key):
    """The production file with test ports and paths; every replacement must apply."""
    with open(CONF) as f:
        text = f.read()
    subs = [
        (r"(?m)^\s*listen \[::\]:443 ssl http2;\n", ""),
        (r"(?m)^\s*listen \[::\]:80;\n", ""),
        (r"listen 443 ssl http2;", "listen 127.0.0.1:%d ssl http2;" % https_port),
        (r"listen 80;", "listen 127.0.0.1:%d;" % http_port),
        (r"server 127\.0\.0\.1:8080;", "server 127.0.0.1:%d;" % apid_port),
        (r"/etc/ssl/coldchain/fullchain\.pem", cert),
        (r"/etc/ssl/coldchain/privkey\.pem", key),
        (r"/var/log/nginx/access\.log", os.path.join(d, "access.log")),
    ]
    for pat, rep in subs:
        text, n = re.subn(pat, rep, text)
        expect(n == 1, "deploy/nginx/coldchain.conf: %r matched %d times" % (pat, n))
    site = os.path.join(d, "coldchain.conf")
    with open(site, "w") as f:
        f.write(text)
    top = os.path.join(d, "nginx.conf")
    with open(top, "w") as f:
        f.write("""# test wrapper around deploy/nginx/coldchain.conf
user root;
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 256; }
http {
    access_log %(d)s/access.log;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    include %(site)s;
}
""" % {"d": d, "site": site})
    return top


def self_signed(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", key, "-out", cert], capture_output=True, text=True)
    expect(p.returncode == 0, "openssl: %s" % p.stderr)
    return cert, key


INTERNAL_SECRET = "nginx-test-broker-secret-0123456789"


def https(port, ctx, method, path, body=None, headers=None):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20,
                                    source_address=(CLIENT_ADDR, 0))
    try:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        version = c.sock.version() if c.sock else None
        return r.status, {k.lower(): v for k, v in r.getheaders()}, payload, version
    finally:
        c.close()


def ws_hello(port, ctx, path):
    """WebSocket handshake over TLS; returns the first text message as JSON."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=20,
                                   source_address=(CLIENT_ADDR, 0))
    sk = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sk.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n" % (path, port, key)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sk.recv(4096)
            expect(chunk, "closed before the handshake answer: %r" % buf)
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        expect(lines[0].split()[1] == "101", "handshake answer: %r" % head)
        hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                for l in lines[1:] if ":" in l}
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        expect(hdrs.get("sec-websocket-accept") == want, "bad Sec-WebSocket-Accept")

        def read(n):
            nonlocal buf
            while len(buf) < n:
                chunk = sk.recv(65536)
                expect(chunk, "connection closed")
                buf += chunk
            out, buf = buf[:n], buf[n:]
            return out
        while True:
            b0, b1 = read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", read(8))[0]
            payload = read(n)
            if b0 & 0x0F == 0x1:
                return json.loads(payload.decode())
            expect(b0 & 0x0F != 0x8, "closed: %r" % payload)
    finally:
        sk.close()


def main():
    cases = Cases()
    d = tempfile.mkdtemp(prefix="cc-nginx-")
    nginx = None
    try:
        # The broker endpoints on apid's public port (no MQTT_AUTH_HTTP_LISTEN): nginx must
        # still not pass them on.
        with Stack(ingestd=False, env=dict(NO_LIMITS, TRUST_PROXY="1",
                                           MQTT_AUTH_HTTP_SECRET=INTERNAL_SECRET)) as s:
            https_port, http_port = free_port(), free_port()
            cert, key = self_signed(d)
            top = render(d, https_port, http_port, s.http_port, cert, key)

            def config_test():
                p = subprocess.run([NGINX, "-t", "-c", top, "-p", d, "-e",
                                    os.path.join(d, "error.log")],
                                   capture_output=True, text=True, timeout=30)
                expect(p.returncode == 0, "nginx -t: %s" % (p.stdout + p.stderr))
            if not cases.run("nginx_t_accepts_the_config", config_test):
                cases.exit()

            nginx = subprocess.Popen([NGINX, "-c", top, "-p", d, "-e",
                                      os.path.join(d, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
            wait_port(https_port, proc=nginx)
            ctx = ssl.create_default_context(cafile=cert)

            def login_over_https():
                st, h, body, version = https(https_port, ctx, "POST", "/api/auth/login",
                                             {"email": "customer1@example.com",
                                              "password": "customer123"})
                expect(st == 200, "login: %s %r" % (st, body[:200]))
                expect("accessToken" in json.loads(body), body[:200])
                hsts = h.get("strict-transport-security", "")
                m = re.search(r"max-age=(\d+)", hsts)
                expect(m and int(m.group(1)) >= 31536000, "HSTS: %r" % hsts)
                expect(version in ("TLSv1.2", "TLSv1.3"), "TLS version %r" % version)
            cases.run("https_login_200_with_hsts", login_over_https)

            def tls12_client():
                c12 = ssl.create_default_context(cafile=cert)
                c12.maximum_version = ssl.TLSVersion.TLSv1_2
                st, _, _, version = https(https_port, c12, "GET", "/health")
                expect(st == 200 and version == "TLSv1.2", (st, version))
            cases.run("a_tls_1_2_client_is_served", tls12_client)

            tok = token(s, "customer1")

            def forwarded_address_logged():
                st, _, body, _ = https(https_port, ctx, "GET", "/api/auth/me",
                                       headers={"Authorization": "Bearer " + tok,
                                                "X-Forwarded-For": "203.0.113.7"})
                expect(st == 200, "me: %s %r" % (st, body[:200]))

                def logged():
                    with open(s.logs["apid"], errors="replace") as f:
                        return [l for l in f if "http_request" in l and "/api/auth/me" in l]
                lines = []
                deadline = time.time() + 10
                while time.time() < deadline and not lines:
                    lines = logged()
                    time.sleep(0.1)
                expect(lines, "apid logged no request for /api/auth/me")
                expect(CLIENT_ADDR in lines[-1], "apid logged another address: %s" % lines[-1])
                expect("203.0.113.7" not in lines[-1], "the client's own X-Forwarded-For "
                       "was believed: %s" % lines[-1])
            cases.run("apid_logs_the_forwarded_client_address", forwarded_address_logged)

            def http_redirects():
                c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
                c.request("GET", "/api/auth/me")
                r = c.getresponse()
                r.read()
                c.close()
                expect(r.status == 301 and r.getheader("Location", "").startswith("https://"),
                       (r.status, r.getheader("Location")))
            cases.run("plain_http_redirects_to_https", http_redirects)

            def metrics_hidden():
                st, _, _, _ = https(https_port, ctx, "GET", "/metrics")
                expect(st == 404, "/metrics through nginx: %s" % st)
            cases.run("metrics_not_exposed", metrics_hidden)

            def internal_hidden():
                body = {"clientid": "x", "username": "x", "password": "x"}
                st, _, _, _ = https(https_port, ctx, "POST", "/internal/mqtt/emqx/authn", body,
                                    {"X-MQTT-Auth-Secret": INTERNAL_SECRET})
                expect(st == 404, "/internal/ through nginx: %s" % st)
                direct = s.http("POST", "/internal/mqtt/emqx/authn", body,
                                headers={"X-MQTT-Auth-Secret": INTERNAL_SECRET})
                expect(direct[0] == 200, "apid itself does not serve it: %s" % (direct,))
            cases.run("internal_broker_endpoints_not_exposed", internal_hidden)

            def big_body_refused():
                st, h, body, _ = https(https_port, ctx, "POST", "/api/auth/login",
                                       b"{" + b" " * (65 * 1024) + b"}")
                expect(st == 413, "status %s" % st)
                expect(json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE", body[:200])
            cases.run("body_over_64k_refused_by_nginx_with_the_spec_error", big_body_refused)

            def export_through_nginx():
                # The CSV export streams (chunked) from apid; nginx buffers it and the
                # client gets the same bytes as directly from apid.
                cell = s.scalar("SELECT cold_cell_id FROM devices WHERE serial_number ="
                                " 'CC-FRZ-0001'")
                now = int(time.time())
                q = "/api/readings/coldcells/%d/export.csv?from=%s&to=%s" % (
                    cell, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 2 * 86400)),
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60)))
                st, h, body, _ = https(https_port, ctx, "GET", q,
                                       headers={"Authorization": "Bearer " + tok})
                expect(st == 200 and h.get("content-type", "").startswith("text/csv"),
                       (st, h.get("content-type")))
                dst, _, direct = s.http("GET", q, token=tok)
                expect(dst == 200 and body == direct, "export through nginx differs (%d vs %d"
                       " bytes)" % (len(body), len(direct)))
                expect(body.count(b"\r\n") > 10, "the seeded readings are in it")
            cases.run("csv_export_through_nginx_equals_the_direct_one", export_through_nginx)

            def websocket_through_nginx():
                deadline = time.time() + 20
                while time.time() < deadline:
                    with open(s.logs["apid"], "rb") as f:
                        if b"feed_broker_connected" in f.read():
                            break
                    time.sleep(0.1)
                hello = ws_hello(https_port, ctx,
                                 "/api/ws?token=" + urllib.parse.quote(tok, safe=""))
                expect(hello.get("type") == "hello", "first message: %r" % hello)
            cases.run("websocket_through_nginx_receives_hello", websocket_through_nginx)

            def websocket_token_not_in_access_log():
                # A browser's feed carries its access token in the query string (docs/
                # websocket.md); nginx's default log format writes the whole request line, so
                # every token went into access.log (Debian: /var/log/nginx/access.log, read by
                # group adm, often shipped elsewhere). ws_hello has closed its connection:
                # nginx logs the upgraded request once it ends.
                log = os.path.join(d, "access.log")

                def ws_lines():
                    with open(log, errors="replace") as f:
                        return [l for l in f if "/api/ws" in l]
                deadline = time.time() + 10
                while time.time() < deadline and not ws_lines():
                    time.sleep(0.1)
                expect(ws_lines(), "nginx logged no request for /api/ws")
                with open(log, errors="replace") as f:
                    text = f.read()
                expect(tok not in text and "token=" not in text,
                       "the access token is in nginx's access log: %s" % ws_lines()[-1][:200])
            cases.run("websocket_token_not_in_nginx_access_log", websocket_token_not_in_access_log)
    finally:
        if nginx is not None:
            nginx.terminate()
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
        if cases.failed:
            try:
                with open(os.path.join(d, "error.log"), errors="replace") as f:
                    print("----- nginx error.log -----\n" + "".join(f.readlines()[-30:]))
            except OSError:
                pass
        shutil.rmtree(d, ignore_errors=True)
    cases.exit()


if __name__ == "__main__":
    main()
