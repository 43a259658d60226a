"""Device authentication over HTTP for clustered brokers (issue 15 point 3): apid's
/internal/mqtt/ endpoints, sent the requests EMQX 5 (HTTP authn/authz), mosquitto-go-auth
(HTTP backend, json and form params) and VerneMQ (webhooks) send, with the bodies their
documentation gives for the placeholders a deployment configures (docs/scaling.md).

The stack runs apid with MQTT_AUTH_HTTP_SECRET and MQTT_AUTH_HTTP_LISTEN (the endpoints on a
listener of their own), beside mosquitto with the coldchain plugin on the same database: one
table of cases is put to both, and the endpoint must answer what the plugin does
(plugin_and_endpoints_agree). Two more apid on the same database check the endpoints when
the secret is unset (404) and when they share the public port (with RATE_LIMIT_AUTH=2 for
failed secrets). Runs on SQLite and, with CC_TEST_STORE=pg, on PostgreSQL."""
import hashlib
import json
import os
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import paho.mqtt.client as mqtt

from apitest import NO_LIMITS, expect, expect_error
from harness import BUILD, Cases, Stack, free_port, wait_port

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

SECRET = secrets.token_hex(24)
HDR = "X-MQTT-Auth-Secret"
BODY_MAX = 4096  # CC_MQTT_AUTH_BODY_MAX (common/api/cc_mqtt_req.h)


def post(port, path, body=None, headers=None, form=None, raw=None):
    """POST as a broker does: JSON (application/json) or a form body. (status, body)."""
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        ctype = "application/x-www-form-urlencoded"
    else:
        data = raw if raw is not None else json.dumps(body).encode()
        ctype = "application/json"
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method="POST")
    req.add_header("Content-Type", ctype)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            st, payload = r.status, r.read()
    except urllib.error.HTTPError as e:
        st, payload = e.code, e.read()
    try:
        return st, json.loads(payload.decode() or "null")
    except ValueError:
        return st, payload


class Broker:
    """The requests of one broker kind, aimed at one apid port."""

    def __init__(self, port):
        self.port = port
        self.h = {HDR: SECRET}

    # EMQX 5: authn body {"clientid":"${clientid}","username":"${username}",
    # "password":"${password}"}; authz body with ${clientid} ${username} ${topic} ${action}
    # ${qos} ${retain}, every placeholder rendered inside a JSON string; the secret in a
    # configured header.
    def emqx_authn(self, user, pw, cid):
        return post(self.port, "/internal/mqtt/emqx/authn",
                    {"clientid": cid, "username": user, "password": pw}, self.h)

    def emqx_authz(self, user, cid, topic, action):
        return post(self.port, "/internal/mqtt/emqx/authz",
                    {"clientid": cid, "username": user, "topic": topic, "action": action,
                     "qos": "1", "retain": "false"}, self.h)

    # mosquitto-go-auth HTTP backend (backends/http.go): json params {username, password,
    # clientid} / {username} / {username, clientid, topic, acc (a number)}, or the same as a
    # form (acc a string); it sends no custom header, so the secret is in the URI.
    def gauth(self, what, form=False, **fields):
        path = "/internal/mqtt/gauth/%s?secret=%s" % (what, SECRET)
        if form:
            return post(self.port, path, form={k: str(v) for k, v in fields.items()})
        return post(self.port, path, fields)

    # VerneMQ webhooks (vmq_webhooks), header vernemq-hook: <hook>.
    def vmq(self, hook, body):
        return post(self.port, "/internal/mqtt/vernemq/%s?secret=%s" % (hook, SECRET), body,
                    {"vernemq-hook": hook})


def emqx_result(res):
    st, body = res
    expect(st == 200, "EMQX answer status %s: %r" % (st, body))
    return body["result"]


def gauth_ok(res):
    """Allowed (200 {"ok":true}) or refused (403 {"ok":false}); anything else fails."""
    st, body = res
    expect((st, body.get("ok") if isinstance(body, dict) else None) in ((200, True), (403, False)),
           "go-auth answer %s %r" % (st, body))
    return st == 200


def mqtt_connack(s, user, pw, cid):
    """The CONNACK the plugin gives (0 accepted, 5 not authorised)."""
    c = mqtt.Client(client_id=cid, clean_session=True)
    c.username_pw_set(user, pw)
    got = {}
    c.on_connect = lambda cl, ud, fl, rc: got.setdefault("rc", rc)
    c.connect("127.0.0.1", s.mqtt_port, keepalive=30)
    c.loop_start()
    deadline = time.time() + 10
    while "rc" not in got and time.time() < deadline:
        time.sleep(0.02)
    c.disconnect()
    c.loop_stop()
    expect("rc" in got, "no CONNACK for %s" % user)
    return got["rc"]


def mqtt_suback(client, topic):
    """Granted QoS (0..2) or 0x80 for one filter, on a connected paho client."""
    done = threading.Event()
    got = {}

    def on_subscribe(cl, ud, mid, granted):
        got["q"] = granted[0]
        done.set()
    client.on_subscribe = on_subscribe
    client.subscribe(topic, qos=1)
    expect(done.wait(10), "no SUBACK for %s" % topic)
    return got["q"]


def main():
    cases = Cases()
    internal = free_port()
    env = dict(NO_LIMITS, MQTT_AUTH_HTTP_SECRET=SECRET,
               MQTT_AUTH_HTTP_LISTEN="127.0.0.1:%d" % internal)
    with Stack(ingestd=False, env=env) as s:
        b = Broker(internal)
        serials = sorted(s.keys)
        dev, other = serials[0], serials[1]
        key, other_key = s.keys[dev], s.keys[other]
        op, op_pw = s.mqtt_user, s.mqtt_password
        wait_port(internal, proc=s.procs["apid"])

        # -- EMQX 5 ---------------------------------------------------------------------
        def emqx_connect():
            expect(b.emqx_authn(dev, key, dev) == (200, {"result": "allow", "is_superuser": False}),
                   "good device: %r" % (b.emqx_authn(dev, key, dev),))
            expect(emqx_result(b.emqx_authn(dev, "0" * 64, dev)) == "deny", "wrong key allowed")
            expect(emqx_result(b.emqx_authn(dev, other_key, dev)) == "deny",
                   "another device's key allowed")
            expect(emqx_result(b.emqx_authn(dev, key, other)) == "deny",
                   "client id != serial allowed")
            expect(emqx_result(b.emqx_authn(dev, key, "coldchain-ingestd")) == "deny",
                   "device with ingestd's client id allowed")
            expect(emqx_result(b.emqx_authn(op, op_pw, "coldchain-ingestd")) == "allow",
                   "operator refused")
            expect(emqx_result(b.emqx_authn(op, "wrong", "x")) == "deny",
                   "operator with a wrong password allowed")
            # Not ours: the next authenticator of EMQX's chain decides (none: refused).
            expect(emqx_result(b.emqx_authn("nobody-here", "x", "nobody-here")) == "ignore",
                   "unknown name not ignored")
            expect(emqx_result(b.emqx_authn("", "", "anon")) == "ignore", "anonymous not ignored")
        cases.run("emqx_authn_device_operator_unknown", emqx_connect)

        def emqx_topics():
            allow = [(dev, dev, "devices/%s/readings" % dev, "publish"),
                     (dev, dev, "devices/%s/status" % dev, "publish"),
                     (dev, dev, "devices/%s/errors" % dev, "subscribe"),
                     (dev, dev, "devices/%s/#" % dev, "subscribe"),
                     (op, "coldchain-ingestd", "devices/+/readings", "subscribe"),
                     (op, "coldchain-ingestd", "$share/coldchain/devices/+/readings",
                      "subscribe"),
                     (op, "coldchain-ingestd", "devices/%s/errors" % dev, "publish"),
                     (op, "coldchain-ingestd", "alerts/7", "publish")]
            deny = [(dev, dev, "devices/%s/readings" % other, "publish"),
                    (dev, dev, "devices/%s/errors" % dev, "publish"),
                    (dev, dev, "alerts/1", "publish"),
                    (dev, dev, "devices/+/readings", "subscribe"),
                    (dev, dev, "devices/#", "subscribe"),
                    (dev, dev, "#", "subscribe"),
                    (dev, dev, "+/%s/errors" % dev, "subscribe"),
                    (dev, dev, "devices/%s/errors" % other, "subscribe"),
                    (dev, other, "devices/%s/readings" % dev, "publish"),  # client id != serial
                    (dev, dev, "devices/%s/readings" % dev, "all"),
                    (op, "coldchain-ingestd", "#", "subscribe"),
                    (op, "coldchain-ingestd", "notifications/1", "publish"),
                    ("nobody-here", "nobody-here", "devices/nobody-here/readings", "publish")]
            for u, c, t, a in allow:
                expect(emqx_result(b.emqx_authz(u, c, t, a)) == "allow",
                       "%s %s %s refused" % (u, a, t))
            for u, c, t, a in deny:
                expect(emqx_result(b.emqx_authz(u, c, t, a)) == "deny",
                       "%s %s %s allowed" % (u, a, t))
        cases.run("emqx_authz_own_topics_only_wildcards_refused", emqx_topics)

        # -- mosquitto-go-auth --------------------------------------------------------------
        def gauth_checks():
            for form in (False, True):
                m = "form" if form else "json"
                expect(gauth_ok(b.gauth("user", form, username=dev, password=key, clientid=dev)),
                       "%s: good device refused" % m)
                expect(not gauth_ok(b.gauth("user", form, username=dev, password="0" * 64,
                                            clientid=dev)), "%s: wrong key allowed" % m)
                expect(not gauth_ok(b.gauth("user", form, username=dev, password=key,
                                            clientid=other)), "%s: client id != serial" % m)
                expect(gauth_ok(b.gauth("user", form, username=op, password=op_pw,
                                        clientid="coldchain-ingestd")), "%s: operator" % m)
                expect(not gauth_ok(b.gauth("superuser", form, username=op)),
                       "%s: operator is a superuser" % m)
                expect(not gauth_ok(b.gauth("superuser", form, username=dev)),
                       "%s: device is a superuser" % m)
                acl = [(2, "devices/%s/readings" % dev, True), (1, "devices/%s/errors" % dev, True),
                       (4, "devices/%s/#" % dev, True), (1, "devices/%s/readings" % dev, False),
                       (2, "devices/%s/readings" % other, False), (4, "devices/#", False),
                       (4, "devices/+/readings", False), (3, "devices/%s/readings" % dev, False),
                       (5, "devices/%s/errors" % dev, False)]
                for acc, topic, want in acl:
                    got = gauth_ok(b.gauth("acl", form, username=dev, clientid=dev, topic=topic,
                                           acc=acc))
                    expect(got == want, "%s: acc %d on %s: %s" % (m, acc, topic, got))
                expect(gauth_ok(b.gauth("acl", form, username=op, clientid="coldchain-ingestd",
                                        topic="devices/+/readings", acc=4)), "%s: operator" % m)
                expect(gauth_ok(b.gauth("acl", form, username=op, clientid="coldchain-ingestd",
                                        topic="devices/%s/errors" % dev, acc=3)),
                       "%s: operator readwrite" % m)
            # go-auth's json response mode reads {"ok","error"} from a 200.
            expect(b.gauth("user", username=dev, password=key, clientid=dev) ==
                   (200, {"ok": True, "error": ""}), "json response mode shape")
        cases.run("gauth_json_and_form_user_superuser_acl", gauth_checks)

        # -- VerneMQ --------------------------------------------------------------------
        def vmq_hooks():
            reg = {"peer_addr": "127.0.0.1", "peer_port": 50000, "username": dev,
                   "password": key, "mountpoint": "", "client_id": dev, "clean_session": True}
            expect(b.vmq("auth_on_register", reg) == (200, {"result": "ok"}), "good device")
            st, body = b.vmq("auth_on_register", dict(reg, password="0" * 64))
            expect(st == 200 and body["result"] == {"error": "not_allowed"}, "wrong key: %r" % body)
            st, body = b.vmq("auth_on_register", dict(reg, client_id=other))
            expect(body["result"] == {"error": "not_allowed"}, "client id != serial: %r" % body)
            st, body = b.vmq("auth_on_register", dict(reg, username="nobody-here"))
            expect(body == {"result": "next"}, "unknown: %r" % body)
            pub = {"username": dev, "client_id": dev, "mountpoint": "", "qos": 1,
                   "topic": "devices/%s/readings" % dev, "payload": "e30=", "retain": False}
            expect(b.vmq("auth_on_publish", pub) == (200, {"result": "ok"}), "own topic")
            st, body = b.vmq("auth_on_publish", dict(pub, topic="devices/%s/readings" % other))
            expect(body["result"] == {"error": "not_allowed"}, "other topic: %r" % body)
            sub = {"username": dev, "client_id": dev, "mountpoint": "",
                   "topics": [{"topic": "devices/%s/errors" % dev, "qos": 1}]}
            expect(b.vmq("auth_on_subscribe", sub) == (200, {"result": "ok"}), "own filter")
            st, body = b.vmq("auth_on_subscribe", dict(sub, topics=[
                {"topic": "devices/%s/errors" % dev, "qos": 1}, {"topic": "devices/#", "qos": 1}]))
            expect(body == {"result": "ok", "topics": [
                {"topic": "devices/%s/errors" % dev, "qos": 1},
                {"topic": "devices/#", "qos": 128}]}, "mixed filters: %r" % body)
            st, body = b.vmq("auth_on_subscribe", dict(sub, topics=[{"topic": "#", "qos": 0}]))
            expect(body["result"] == {"error": "not_allowed"}, "wildcard: %r" % body)
        cases.run("vernemq_register_publish_subscribe", vmq_hooks)

        # -- the plugin and the endpoint on one table ------------------------------------
        def agree():
            clash_key = "d" * 64  # a device row whose serial is the operator's name
            cell = s.scalar("SELECT cold_cell_id FROM devices WHERE serial_number = ?", (dev,))
            s.sql("INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, "
                  "api_key_prefix, status, created_at) VALUES (?, ?, ?, ?, 'NEVER_SEEN', 0)",
                  (op, cell, hashlib.sha256(clash_key.encode()).hexdigest(), clash_key[:8]))
            table = [(dev, key, dev), (dev, "0" * 64, dev), (dev, key, other), (dev, None, dev),
                     (dev, key, "coldchain-ingestd"), (other, other_key, other),
                     (dev, other_key, dev), ("nobody-here", "x", "nobody-here"),
                     (op, op_pw, "t-op-1"), (op, "wrong", "t-op-2"), (op, clash_key, "t-op-3"),
                     ("coldchain-x", "x", "coldchain-x")]
            for user, pw, cid in table:
                plugin = mqtt_connack(s, user, pw, cid) == 0
                http = emqx_result(b.emqx_authn(user, pw or "", cid)) == "allow"
                gauth = gauth_ok(b.gauth("user", username=user, password=pw or "", clientid=cid))
                expect(plugin == http == gauth, "CONNECT %s/%s: plugin %s, emqx %s, go-auth %s"
                       % (user, cid, plugin, http, gauth))
            c = s.mqtt_client(dev, key)
            try:
                for f in ["devices/%s/errors" % dev, "devices/%s/#" % dev, "devices/%s/x/y" % dev,
                          "devices/%s/errors" % other, "devices/+/readings", "devices/#", "#",
                          "+/%s/errors" % dev, "$share/g/devices/%s/errors" % dev,
                          "devices/%s" % dev]:
                    plugin = mqtt_suback(c, f) != 0x80
                    http = emqx_result(b.emqx_authz(dev, dev, f, "subscribe")) == "allow"
                    gauth = gauth_ok(b.gauth("acl", username=dev, clientid=dev, topic=f, acc=4))
                    expect(plugin == http == gauth, "SUBSCRIBE %s: plugin %s, emqx %s, go-auth %s"
                           % (f, plugin, http, gauth))
            finally:
                c.disconnect()
                c.loop_stop()
        cases.run("plugin_and_endpoints_agree", agree)

        def deleted_device_denied():
            s.sql("DELETE FROM devices WHERE serial_number = ?", (other,))
            expect(emqx_result(b.emqx_authz(other, other, "devices/%s/readings" % other,
                                            "publish")) == "deny", "deleted device may publish")
            expect(emqx_result(b.emqx_authn(other, other_key, other)) == "ignore",
                   "deleted device not unknown")
        cases.run("deleted_device_denied", deleted_device_denied)

        # -- the guard and the limits ----------------------------------------------------
        def secret_header():
            body = {"clientid": dev, "username": dev, "password": key}
            res = post(internal, "/internal/mqtt/emqx/authn", body)
            expect_error((res[0], None, res[1]), 401, "UNAUTHORIZED")
            res = post(internal, "/internal/mqtt/emqx/authn", body, {HDR: SECRET[:-1] + "x"})
            expect_error((res[0], None, res[1]), 403, "FORBIDDEN")
            res = post(internal, "/internal/mqtt/gauth/user?secret=nope", body)
            expect_error((res[0], None, res[1]), 403, "FORBIDDEN")
            # The query form is for go-auth and VerneMQ only; EMQX sets the header.
            res = post(internal, "/internal/mqtt/emqx/authn?secret=" + SECRET, body)
            expect_error((res[0], None, res[1]), 401, "UNAUTHORIZED")
        cases.run("missing_or_wrong_secret_refused", secret_header)

        def bad_bodies():
            big = {"clientid": dev, "username": dev, "password": "x" * (BODY_MAX + 10)}
            st, body = post(internal, "/internal/mqtt/emqx/authn", big, b.h)
            expect(st == 200 and body["result"] == "deny" and
                   body["error"]["code"] == "PAYLOAD_TOO_LARGE", "emqx oversize: %s %r"
                   % (st, body))
            st, body = post(internal, "/internal/mqtt/gauth/user?secret=" + SECRET, big)
            expect_error((st, None, body), 413, "PAYLOAD_TOO_LARGE")
            st, body = post(internal, "/internal/mqtt/emqx/authz", raw=b"{not json", headers=b.h)
            expect(st == 200 and body["result"] == "deny" and body["error"]["code"] == "BAD_JSON",
                   "emqx bad json: %s %r" % (st, body))
            st, body = post(internal, "/internal/mqtt/gauth/acl?secret=" + SECRET,
                            raw=b'{"a":' * 5 + b"1" + b"}" * 5)
            expect_error((st, None, body), 400, "BAD_JSON")
            st, body = post(internal, "/internal/mqtt/emqx/authn",
                            {"clientid": dev, "username": "x" * 300, "password": key}, b.h)
            expect(body["result"] == "deny" and body["error"]["code"] == "VALIDATION_ERROR",
                   "long username: %r" % body)
            st, body = post(internal, "/internal/mqtt/emqx/authn",
                            {"clientid": dev, "username": dev + "\u0000x", "password": key}, b.h)
            expect(body["result"] == "deny" and body["error"]["code"] == "BAD_JSON",
                   "NUL in username: %r" % body)
            st, body = post(internal, "/internal/mqtt/emqx/authz",
                            {"clientid": dev, "username": dev, "action": "publish"}, b.h)
            expect(body["result"] == "deny" and body["error"]["code"] == "VALIDATION_ERROR",
                   "no topic: %r" % body)
        cases.run("oversize_bad_json_long_fields_denied", bad_bodies)

        def listeners_apart():
            body = {"clientid": dev, "username": dev, "password": key}
            res = post(s.http_port, "/internal/mqtt/emqx/authn", body, b.h)
            expect_error((res[0], None, res[1]), 404, "NOT_FOUND")
            st, _, _ = s.http("GET", "/health", port=internal)
            expect(st == 404, "the internal listener serves /health: %s" % st)
            st, _, _ = s.http("GET", "/health")
            expect(st == 200, "public /health %s" % st)
        cases.run("internal_listener_apart_from_public_port", listeners_apart)

        def other_apid(extra):
            port = free_port()
            e = s.env(HTTP_PORT=str(port), **extra)
            for k in ("MQTT_AUTH_HTTP_SECRET", "MQTT_AUTH_HTTP_LISTEN"):
                if k not in extra:
                    e.pop(k, None)
            name = "apid-%d" % port
            p = s._spawn(name, [os.path.join(BUILD, "apid")], env=e)
            wait_port(port, timeout=20, proc=p)
            return name, port

        def disabled():
            name, port = other_apid({"RATE_LIMIT_API": "3"})
            try:
                body = {"clientid": dev, "username": dev, "password": key}
                for path in ("/internal/mqtt/emqx/authn", "/internal/mqtt/gauth/user",
                             "/internal/mqtt/vernemq/auth_on_register"):
                    res = post(port, path, body, b.h)
                    expect_error((res[0], None, res[1]), 404, "NOT_FOUND")
                # Switched off, the paths are like any other: counted against RATE_LIMIT_API.
                res = post(port, "/internal/mqtt/emqx/authn", body, b.h)
                expect_error((res[0], None, res[1]), 429, "RATE_LIMITED")
            finally:
                s.stop(name)
        cases.run("disabled_without_secret_404", disabled)

        def public_port_and_limit():
            name, port = other_apid({"MQTT_AUTH_HTTP_SECRET": SECRET, "RATE_LIMIT_AUTH": "2"})
            try:
                pb = Broker(port)
                expect(emqx_result(pb.emqx_authn(dev, key, dev)) == "allow", "on the public port")
                body = {"clientid": dev, "username": dev, "password": key}
                for want in (403, 403, 429):
                    st, b2 = post(port, "/internal/mqtt/emqx/authn", body, {HDR: "wrong-secret"})
                    expect(st == want, "failed secret: %s, want %s" % (st, want))
                # Broker traffic is not counted against the API limit, and the right secret
                # is not refused by its address's failures.
                for _ in range(5):
                    expect(emqx_result(pb.emqx_authn(dev, key, dev)) == "allow", "limited")
            finally:
                s.stop(name)
        cases.run("public_port_when_no_listener_failed_secrets_limited", public_port_and_limit)

        def bad_config():
            for extra, var in (({"MQTT_AUTH_HTTP_SECRET": "short"}, "MQTT_AUTH_HTTP_SECRET"),
                               ({"MQTT_AUTH_HTTP_LISTEN": "127.0.0.1:9"}, "MQTT_AUTH_HTTP_LISTEN"),
                               ({"MQTT_AUTH_HTTP_SECRET": SECRET,
                                 "MQTT_AUTH_HTTP_LISTEN": "127.0.0.1"}, "MQTT_AUTH_HTTP_LISTEN")):
                e = s.env(HTTP_PORT=str(free_port()), **extra)
                for k in ("MQTT_AUTH_HTTP_SECRET", "MQTT_AUTH_HTTP_LISTEN"):
                    if k not in extra:
                        e.pop(k, None)
                p = subprocess.run([os.path.join(BUILD, "apid")], env=e, capture_output=True,
                                   text=True, timeout=30)
                expect(p.returncode == 2 and var in p.stderr, "%r: exit %s, %s"
                       % (extra, p.returncode, p.stderr))
        cases.run("bad_config_names_the_variable", bad_config)

        def key_never_logged():
            with open(s.logs["apid"], "rb") as f:
                log = f.read()
            for secret in (key, other_key, op_pw, SECRET):
                expect(secret.encode() not in log, "a secret is in apid's log")
        cases.run("no_key_or_secret_in_log", key_never_logged)
    cases.exit()


if __name__ == "__main__":
    main()
