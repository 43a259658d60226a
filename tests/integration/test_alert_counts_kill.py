"""Alert and alert-event totals survive kill -9 (issue 13: kept by the store, not triggers).

Readings that swing each seeded device's cell out of range and back raise and resolve alerts
(and write alert events the worker sends over MQTT) while ingestd is killed with SIGKILL at
three points and restarted. Once everything is stored and delivered, ingestd's /metrics
totals must have moved exactly as the rows did: alerts by type, resolved ones by type, and
alert events SENT and FAILED (mqtt). A count flushed twice, leaked into a later transaction
or lost with a rolled-back one shows as a difference."""
import json
import re
import time

import paho.mqtt.client as mqtt

from harness import Cases, Stack, wait_for

TYPES = ("HIGH_TEMP", "LOW_TEMP", "POWER_LOSS", "SENSOR_ERROR")
PER_DEVICE = 400  # readings per device: 200 swings out of range and back


def totals(st):
    """(raised by type, resolved by type, mqtt sent, mqtt failed) as ingestd exposes them."""
    text = st.metrics()

    def v(fam, label, val):
        m = re.search(r'^%s\{%s="%s"\} (\S+)$' % (fam, label, val), text, re.M)
        return float(m.group(1)) if m else 0.0
    return ({t: v("coldchain_alerts_raised_total", "type", t) for t in TYPES},
            {t: v("coldchain_alerts_resolved_total", "type", t) for t in TYPES},
            v("coldchain_notifications_sent_total", "channel", "mqtt"),
            v("coldchain_notifications_failed_total", "channel", "mqtt"))


def rows(st):
    """The same four figures counted from the tables."""
    raised = dict(st.sql("SELECT type, count(*) FROM alerts GROUP BY type"))
    resolved = dict(st.sql("SELECT type, count(*) FROM alerts WHERE status = 'RESOLVED'"
                           " GROUP BY type"))
    return ({t: float(raised.get(t, 0)) for t in TYPES},
            {t: float(resolved.get(t, 0)) for t in TYPES},
            float(st.scalar("SELECT count(*) FROM alert_events WHERE status = 'SENT'")),
            float(st.scalar("SELECT count(*) FROM alert_events WHERE status = 'FAILED'")))


def delta(a, b):
    return ({t: a[0][t] - b[0][t] for t in TYPES}, {t: a[1][t] - b[1][t] for t in TYPES},
            a[2] - b[2], a[3] - b[3])


def main():
    cases = Cases()

    def churn_with_kills():
        with Stack() as st:
            cells = dict(st.sql("SELECT d.serial_number, (c.min_temp + c.max_temp) / 2.0"
                                " FROM devices d JOIN cold_cells c ON c.id = d.cold_cell_id"))
            before_m, before_r = totals(st), rows(st)
            clients = []
            for s in sorted(st.keys):
                c = mqtt.Client(client_id=s, clean_session=False)
                c.username_pw_set(s, st.keys[s])
                c.max_inflight_messages_set(200)
                c.reconnect_delay_set(0.1, 1)
                c.connect("127.0.0.1", st.mqtt_port, keepalive=10)
                c.loop_start()
                clients.append((s, c))
            base = int(time.time() * 1000)
            infos = []
            for k in range(PER_DEVICE):
                for s, c in clients:
                    temp = 40.0 if k % 2 == 0 else cells[s]  # out of range, then back in
                    infos.append(c.publish("devices/%s/readings" % s,
                                           json.dumps({"temperature": temp, "ts": base + k}),
                                           qos=1))
                if k in (60, 180, 300):
                    st.kill("ingestd")
                    st.start_ingestd()
            for i in infos:
                i.wait_for_publish(60)
            total = PER_DEVICE * len(clients)
            wait_for(lambda: st.scalar("SELECT count(*) FROM readings WHERE ts >= ?",
                                       (base,)) >= total, timeout=120, interval=0.25,
                     what="%d readings stored" % total)
            wait_for(lambda: st.scalar("SELECT count(*) FROM alert_events"
                                       " WHERE status = 'PENDING'") == 0,
                     timeout=120, interval=0.25, what="alert events delivered")
            for _, c in clients:
                c.disconnect()
                c.loop_stop()
            time.sleep(2.5)  # a scrape may read totals a moment old
            got, want = delta(totals(st), before_m), delta(rows(st), before_r)
            assert sum(want[0].values()) >= 100, "too few alerts raised: %r" % (want,)
            assert got == want, "metrics moved %r, rows %r" % (got, want)

    cases.run("kill -9 of ingestd during alert churn: metrics totals equal the rows",
              churn_with_kills)
    cases.exit()


if __name__ == "__main__":
    main()
