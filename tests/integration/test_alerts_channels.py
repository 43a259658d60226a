"""Notification channels end to end: a webhook reaches a local HTTP receiver with a
valid X-Coldchain-Signature; with the receiver down it is retried and delivered once it
is back; an e-mail reaches a local SMTP sink (a small one of our own) with the right
recipients and subject; MQTT carries alerts/{coldCellId} only (SPEC §3): one message per
alert event (raise, acknowledge, resolve) at QoS 1, and nothing per user (no
notifications/{userId}), while the per-user notifications are still stored and sent by
webhook and e-mail."""
import email
import email.header
import hashlib
import hmac
import json
import queue
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alerts_common import ENV, Device, alerts, devices_of, login, now_ms, recipients
from harness import Cases, Stack, free_port, subscribe_acked, wait_for

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

SECRET = "webhook-test-secret"


class Hook:
    """A webhook receiver that can be stopped and started again on the same port."""

    def __init__(self, port):
        self.port, self.got, self.server = port, [], None

    def start(self):
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.got.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def for_alert(self, alert_id, kind):
        out = []
        for headers, body in self.got:
            obj = json.loads(body)
            if obj.get("alertId") == alert_id and obj.get("kind") == kind:
                out.append((headers, body, obj))
        return out


class SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP to take mail: records (envelope from, recipients, data)."""
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port):
        self.mails = []

        class H(socketserver.StreamRequestHandler):
            def handle(self):
                w = self.wfile.write
                w(b"220 sink ESMTP\r\n")
                frm, rcpt = None, []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode(errors="replace").strip()
                    up = cmd.upper()
                    if up.startswith("EHLO") or up.startswith("HELO"):
                        w(b"250 sink\r\n")
                    elif up.startswith("MAIL FROM:"):
                        frm, rcpt = cmd[10:].strip(), []
                        w(b"250 OK\r\n")
                    elif up.startswith("RCPT TO:"):
                        rcpt.append(cmd[8:].strip())
                        w(b"250 OK\r\n")
                    elif up == "DATA":
                        w(b"354 go\r\n")
                        data = []
                        while True:
                            l = self.rfile.readline()
                            if not l or l == b".\r\n":
                                break
                            data.append(l)
                        sink.mails.append((frm, rcpt, b"".join(data).decode(errors="replace")))
                        w(b"250 queued\r\n")
                    elif up == "QUIT":
                        w(b"221 bye\r\n")
                        return
                    else:
                        w(b"250 OK\r\n")
        sink = self
        super().__init__(("127.0.0.1", port), H)


def main():
    cases = Cases()
    hook_port, smtp_port = free_port(), free_port()
    hook = Hook(hook_port)
    hook.start()
    sink = SmtpSink(smtp_port)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    env = dict(ENV, WEBHOOK_URL="http://127.0.0.1:%d/hook" % hook_port, WEBHOOK_SECRET=SECRET,
               SMTP_URL="smtp://127.0.0.1:%d" % smtp_port, SMTP_FROM="alerts@coldchain.test")
    try:
        with Stack(env=env) as st:
            devs = devices_of(st, "customer1@example.com")
            serial, dev_id, cell_id, lo, hi = devs[0]
            serial2, dev2, cell2, lo2, hi2 = devs[1]
            want_users = recipients(st, cell_id)
            # A name outside ASCII: the e-mail subject must carry it RFC 2047-encoded.
            cell_name = "Kühlraum Süd"
            st.sql("UPDATE cold_cells SET name = ? WHERE id = ?", (cell_name, cell_id))
            emails = {u: st.scalar("SELECT email FROM users WHERE id = ?", (u,)) for u in want_users}
            ops = st.operator_client()
            mq = queue.Queue()
            ops.on_message = lambda c, u, m: mq.put((m.topic, json.loads(m.payload), m.qos))
            assert subscribe_acked(ops, ["alerts/#", "notifications/#"]) == [1, 1]
            d = Device(st, serial)
            t = max(now_ms(), 1 + st.scalar("SELECT newest_ts FROM devices WHERE id = ?", (dev_id,)))
            d.publish({"temperature": hi + 2, "ts": t})
            aid = alerts(st, dev_id, "HIGH_TEMP", "ACTIVE")[0][0]

            def webhook_signed():
                wait_for(lambda: len(hook.for_alert(aid, "ALERT")) == len(want_users), timeout=15,
                         what="webhook posts")
                got = hook.for_alert(aid, "ALERT")
                assert sorted(o["userId"] for _, _, o in got) == want_users, got
                for headers, body, _ in got:
                    sig = headers.get("X-Coldchain-Signature")
                    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                    assert sig == good, (sig, good)
                    assert headers.get("Content-Type") == "application/json"
                wait_for(lambda: st.scalar("SELECT count(*) FROM notification_deliveries d JOIN"
                                           " notifications n ON n.id = d.notification_id WHERE"
                                           " n.alert_id = ? AND d.channel = 'webhook' AND"
                                           " d.status = 'SENT'", (aid,)) == len(want_users),
                         what="webhook deliveries SENT")
            cases.run("webhook reaches the receiver with a valid signature", webhook_signed)

            def email_sent():
                def mine():
                    return [m for m in sink.mails if "Alert: HIGH_TEMP" in m[2]]
                wait_for(lambda: len(mine()) == len(want_users), timeout=15, what="emails")
                rcpts = sorted(r for _, rs, _ in mine() for r in rs)
                assert rcpts == sorted("<%s>" % emails[u] for u in want_users), rcpts
                for frm, rs, data in mine():
                    assert frm == "<alerts@coldchain.test>", frm
                    msg = email.message_from_string(data.replace("\r\n", "\n"))
                    raw = msg["Subject"]
                    assert raw is not None and raw.isascii(), raw  # 8-bit headers are not allowed
                    subject = str(email.header.make_header(email.header.decode_header(raw)))
                    assert subject.startswith("[coldchain] Alert: HIGH_TEMP in %s (" % cell_name), \
                        subject
                    assert ("To: <%s>" % rs[0][1:-1]) in data, data
            cases.run("e-mail reaches the SMTP sink with the right recipients and subject",
                      email_sent)

            def mqtt_alerts_only():
                seen = []

                def pump():
                    while not mq.empty():
                        seen.append(mq.get())
                    return seen

                def mine():
                    return [(o, qos) for tp, o, qos in pump()
                            if tp == "alerts/%d" % cell_id and o.get("id") == aid]
                wait_for(lambda: [o for o, _ in mine() if o.get("status") == "ACTIVE"],
                         timeout=10, what="alerts/{cell} on create")
                # Acknowledge (twice: the first acknowledgement stays, so one event) ...
                tok = login(st, "customer1@example.com")
                for _ in range(2):
                    s_, _, body = st.http("PATCH", "/api/alerts/%d/acknowledge" % aid, token=tok)
                    assert s_ == 200 and body.get("acknowledgedAt"), (s_, body)
                wait_for(lambda: [o for o, _ in mine() if o.get("acknowledgedAt")],
                         timeout=10, what="alerts/{cell} on acknowledge")
                # ... then the device's reading back in range resolves it.
                t2 = 1 + st.scalar("SELECT newest_ts FROM devices WHERE id = ?", (dev_id,))
                d.publish({"temperature": (lo + hi) / 2, "ts": max(now_ms(), t2)})
                wait_for(lambda: [o for o, _ in mine() if o.get("status") == "RESOLVED"],
                         timeout=10, what="alerts/{cell} on resolve")
                wait_for(lambda: len(hook.for_alert(aid, "ALERT_RESOLVED")) == len(want_users),
                         timeout=15, what="ALERT_RESOLVED webhook posts")
                time.sleep(3)  # ingestd's delivery worker runs every second: room for extras
                got = mine()
                states = [("RESOLVED" if o["status"] == "RESOLVED" else
                           "ACKNOWLEDGED" if o.get("acknowledgedAt") else "CREATED")
                          for o, _ in got]
                assert states == ["CREATED", "ACKNOWLEDGED", "RESOLVED"], states
                assert [qos for _, qos in got] == [1, 1, 1], [qos for _, qos in got]
                per_user = [(tp, o) for tp, o, _ in seen if tp.startswith("notifications/")]
                assert per_user == [], per_user
                # The per-user notifications still exist and went out on the other channels.
                for kind in ("ALERT", "ALERT_RESOLVED"):
                    users = [r[0] for r in st.sql("SELECT user_id FROM notifications WHERE"
                                                  " alert_id = ? AND kind = ? ORDER BY user_id",
                                                  (aid, kind))]
                    assert users == want_users, (kind, users)

                def chans():
                    return [tuple(r) for r in st.sql(
                        "SELECT d.channel, d.status, count(*) FROM notification_deliveries d"
                        " JOIN notifications n ON n.id = d.notification_id WHERE n.alert_id = ?"
                        " GROUP BY 1, 2 ORDER BY 1, 2", (aid,))]
                want = [("email", "SENT", 2 * len(want_users)),
                        ("webhook", "SENT", 2 * len(want_users))]
                wait_for(lambda: chans() == want or None, timeout=15,
                         what="e-mail and webhook SENT, no mqtt delivery")
            cases.run("MQTT: alerts/{coldCellId} once per event (create, acknowledge, resolve) at"
                      " QoS 1; nothing on notifications/#", mqtt_alerts_only)

            def webhook_retried():
                hook.stop()
                d2 = Device(st, serial2)
                t2 = max(now_ms(), 1 + st.scalar("SELECT newest_ts FROM devices WHERE id = ?",
                                                 (dev2,)))
                d2.publish({"temperature": hi2 + 2, "ts": t2})
                aid2 = alerts(st, dev2, "HIGH_TEMP", "ACTIVE")[0][0]
                q = ("SELECT min(d.attempts), max(d.status) FROM notification_deliveries d JOIN"
                     " notifications n ON n.id = d.notification_id WHERE n.alert_id = ? AND"
                     " n.kind = 'ALERT' AND d.channel = 'webhook'")
                wait_for(lambda: (st.sql(q, (aid2,))[0][0] or 0) >= 2, timeout=20,
                         what="two failed webhook attempts")
                assert st.sql(q, (aid2,))[0][1] == "PENDING"
                assert hook.for_alert(aid2, "ALERT") == []
                # The backlog is visible to the operator: coldchain_outbox_pending (counted
                # at most every 2 s) shows the notifications still pending on the webhook.
                pending = "coldchain_outbox_pending{kind=\"notification\"}"
                wait_for(lambda: st.metric(pending) == st.scalar(
                    "SELECT count(*) FROM notifications WHERE status = 'PENDING'") >= len(want_users),
                    timeout=10, what="outbox gauge showing the pending notifications")
                hook.start()
                wait_for(lambda: len(hook.for_alert(aid2, "ALERT")) == len(want_users),
                         timeout=30, what="webhook delivered after the receiver came back")
                wait_for(lambda: st.sql(q, (aid2,))[0][1] == "SENT", what="deliveries SENT")
                time.sleep(2)
                assert len(hook.for_alert(aid2, "ALERT")) == len(want_users), "delivered twice"
                d2.close()
            cases.run("webhook receiver down: retried with backoff, delivered once it is back",
                      webhook_retried)
            ops.loop_stop()
            d.close()
    finally:
        hook.stop()
        sink.shutdown()
        sink.server_close()
    cases.exit()


if __name__ == "__main__":
    main()
