"""Alert engine end to end (SPEC §4, issue 4): real mosquitto + plugin, ingestd, apid.

HIGH_TEMP raised, kept through the hysteresis band, auto-resolved; POWER_LOSS raised
and resolved; a late reading resolves nothing; the alarm delay holds across an ingestd
restart; 1000 high readings over HTTP and 1000 over MQTT at once give exactly one ACTIVE
alert and one ALERT notification per recipient; manual resolve, 409 on a second resolve,
404 for someone else's alert; acknowledge; the notifications API.
"""
import threading

from alerts_common import (ENV, Device, alerts, devices_of, login, notes_per_user, now_ms,
                           recipients, user_id)
from harness import Cases, Stack, wait_for

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True


def newest(st, device_id):
    return st.scalar("SELECT coalesce(newest_ts, 0) FROM devices WHERE id = ?", (device_id,))


def main():
    cases = Cases()
    with Stack(env=ENV) as st:
        fridges1 = devices_of(st, "customer1@example.com")
        fridges2 = devices_of(st, "customer2@example.com", fridge=None)
        assert len(fridges1) >= 2 and fridges2, "seed: two fridges for customer1, a device for 2"
        serial, dev_id, cell_id, lo, hi = fridges1[0]
        dev = Device(st, serial)

        def threshold_hysteresis_autoresolve():
            dev.publish({"temperature": (lo + hi) / 2})
            assert alerts(st, dev_id, "HIGH_TEMP", "ACTIVE") == []
            dev.publish({"temperature": hi + 1.0})
            rows = alerts(st, dev_id, "HIGH_TEMP", "ACTIVE")
            assert len(rows) == 1, rows
            aid = rows[0][0]
            dev.publish({"temperature": hi + 2.0})
            dev.publish({"temperature": hi - 0.3})  # inside the 0.5 hysteresis band
            rows = alerts(st, dev_id, "HIGH_TEMP", "ACTIVE")
            assert len(rows) == 1 and rows[0][0] == aid and rows[0][2] == 2, rows
            dev.publish({"temperature": hi - 0.5})
            assert st.scalar("SELECT status FROM alerts WHERE id = ?", (aid,)) == "RESOLVED"
            assert st.scalar("SELECT resolved_by FROM alerts WHERE id = ?", (aid,)) is None
            want = {u: 1 for u in recipients(st, cell_id)}
            assert len(want) == 2, want
            assert notes_per_user(st, aid, "ALERT") == want, notes_per_user(st, aid, "ALERT")
            assert notes_per_user(st, aid, "ALERT_RESOLVED") == want
            assert st.scalar("SELECT count(*) FROM alert_events WHERE alert_id = ?", (aid,)) == 2
        cases.run("HIGH_TEMP threshold -> hysteresis -> auto-resolve", threshold_hysteresis_autoresolve)

        def power_loss():
            dev.publish({"temperature": (lo + hi) / 2, "powerStatus": False})
            rows = alerts(st, dev_id, "POWER_LOSS", "ACTIVE")
            assert len(rows) == 1, rows
            dev.publish({"temperature": (lo + hi) / 2})  # no powerStatus: no change
            assert len(alerts(st, dev_id, "POWER_LOSS", "ACTIVE")) == 1
            dev.publish({"temperature": (lo + hi) / 2, "powerStatus": True})
            assert alerts(st, dev_id, "POWER_LOSS", "ACTIVE") == []
            assert st.scalar("SELECT status FROM alerts WHERE id = ?", (rows[0][0],)) == "RESOLVED"
            assert len(alerts(st, dev_id, "POWER_LOSS")) == 1
        cases.run("POWER_LOSS raised and resolved", power_loss)

        def late_reading():
            t = now_ms()
            dev.publish({"temperature": hi + 3.0, "ts": t})
            rows = alerts(st, dev_id, "HIGH_TEMP", "ACTIVE")
            assert len(rows) == 1, rows
            dev.publish({"temperature": (lo + hi) / 2, "ts": t - 60000})  # older: stored only
            assert alerts(st, dev_id, "HIGH_TEMP", "ACTIVE") == rows
            dev.publish({"temperature": (lo + hi) / 2, "ts": t + 1})
            assert alerts(st, dev_id, "HIGH_TEMP", "ACTIVE") == []
        cases.run("a late reading resolves nothing", late_reading)

        tok1 = login(st, "customer1@example.com")
        tok2 = login(st, "customer2@example.com")
        admin = login(st, "admin@example.com")

        def manual_resolve():
            dev.publish({"temperature": hi + 4.0})
            aid = alerts(st, dev_id, "HIGH_TEMP", "ACTIVE")[0][0]
            s, _, body = st.http("GET", "/api/alerts?status=ACTIVE&type=HIGH_TEMP&coldCellId=%d"
                                 % cell_id, token=tok1)
            assert s == 200 and [a["id"] for a in body["items"]] == [aid], body
            assert body["total"] == 1
            s, _, body = st.http("GET", "/api/alerts/%d" % aid, token=tok2)
            assert s == 404 and body["error"]["code"] == "NOT_FOUND", (s, body)
            s, _, body = st.http("PATCH", "/api/alerts/%d/resolve" % aid, {"note": "x"}, token=tok2)
            assert s == 404, (s, body)
            s, _, body = st.http("PATCH", "/api/alerts/%d/acknowledge" % aid, token=tok1)
            assert s == 200 and body["status"] == "ACTIVE" and body["acknowledgedAt"], body
            s, _, body = st.http("PATCH", "/api/alerts/%d/resolve" % aid,
                                 {"note": "door closed"}, token=tok1)
            assert s == 200, (s, body)
            assert body["status"] == "RESOLVED" and body["resolutionNote"] == "door closed"
            assert body["resolvedBy"] == user_id(st, "customer1@example.com"), body
            s, _, body = st.http("PATCH", "/api/alerts/%d/resolve" % aid, token=tok1)
            assert s == 409 and body["error"]["code"] == "CONFLICT", (s, body)
            want = {u: 1 for u in recipients(st, cell_id)}
            assert notes_per_user(st, aid, "ALERT_RESOLVED") == want
            s, _, body = st.http("GET", "/api/notifications?limit=500", token=tok1)
            assert s == 200, (s, body)
            mine = [n for n in body["items"] if n["alertId"] == aid]
            assert sorted(n["kind"] for n in mine) == ["ALERT", "ALERT_RESOLVED"], mine
            s, _, other = st.http("GET", "/api/notifications?limit=500", token=tok2)
            assert all(n["alertId"] != aid for n in other["items"]), other
            nid = mine[0]["id"]
            s, _, body = st.http("PATCH", "/api/notifications/%d/read" % nid, token=tok2)
            assert s == 404, (s, body)
            s, _, body = st.http("PATCH", "/api/notifications/%d/read" % nid, token=tok1)
            assert s == 200 and body["readAt"], (s, body)
            dev.publish({"temperature": (lo + hi) / 2})
        cases.run("manual resolve, second resolve 409, someone else's alert 404", manual_resolve)

        def list_filters():
            s, _, body = st.http("GET", "/api/alerts?limit=2", token=admin)
            assert s == 200 and len(body["items"]) <= 2 and body["total"] >= 4, body
            firsts = [a["firstTriggeredAt"] for a in body["items"]]
            assert firsts == sorted(firsts, reverse=True), firsts
            s, _, body = st.http("GET", "/api/alerts?status=OPEN", token=admin)
            assert s == 400 and body["error"]["code"] == "VALIDATION_ERROR", body
            s, _, body = st.http("GET", "/api/alerts?limit=501", token=admin)
            assert s == 400, body
            s, _, body = st.http("GET", "/api/alerts", token=tok2)
            assert all(a["coldCellId"] != cell_id for a in body["items"]), body
        cases.run("alerts list: filters, limits, newest first, tenant isolation", list_filters)

        serial_d, dev_d, cell_d, lo_d, hi_d = fridges1[1]

        def alarm_delay_restart():
            s, _, body = st.http("PATCH", "/api/coldcells/%d" % cell_d, {"alarmDelayS": 6},
                                 token=admin)
            assert s == 200 and body["alarmDelayS"] == 6, (s, body)
            d = Device(st, serial_d)
            t = max(now_ms(), newest(st, dev_d) + 1)
            d.publish({"temperature": hi_d + 2, "ts": t})
            d.publish({"temperature": hi_d + 2, "ts": t + 3000})
            assert alerts(st, dev_d, "HIGH_TEMP") == []
            assert st.scalar("SELECT since_ts FROM alert_pending WHERE device_id = ?", (dev_d,)) == t
            d.close()
            st.stop("ingestd")
            st.start_ingestd()
            d = Device(st, serial_d)
            d.publish({"temperature": hi_d + 2, "ts": t + 5999})
            assert alerts(st, dev_d, "HIGH_TEMP") == [], "raised before the delay"
            d.publish({"temperature": hi_d + 2, "ts": t + 6000})
            rows = alerts(st, dev_d, "HIGH_TEMP", "ACTIVE")
            assert len(rows) == 1, rows
            d.publish({"temperature": (lo_d + hi_d) / 2, "ts": t + 7000})
            assert alerts(st, dev_d, "HIGH_TEMP", "ACTIVE") == []
            d.close()
        cases.run("alarm delay: none before, one after, an ingestd restart does not reset it",
                  alarm_delay_restart)

        serial_c, dev_c, cell_c, lo_c, hi_c = fridges2[0]

        def thousand_concurrent():
            d = Device(st, serial_c)
            d.mqtt = st.mqtt_client(serial_c, st.keys[serial_c])
            base = max(now_ms() - 60000, newest(st, dev_c) + 1)
            errors = []

            def http_worker(k):
                for i in range(k, 1000, 4):
                    s, _, body = d.post({"temperature": hi_c + 3, "ts": base + 2 * i})
                    if s != 201:
                        errors.append((s, body))

            def mqtt_worker():
                for i in range(1000):
                    d.mqtt.publish("devices/%s/readings" % serial_c,
                                   '{"temperature":%s,"ts":%d}' % (hi_c + 3, base + 2 * i + 1),
                                   qos=1)
            threads = [threading.Thread(target=http_worker, args=(k,)) for k in range(4)]
            threads.append(threading.Thread(target=mqtt_worker))
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            assert not errors, errors[:3]
            wait_for(lambda: st.scalar("SELECT count(*) FROM readings WHERE device_id = ? AND"
                                       " ts >= ? AND ts < ?", (dev_c, base, base + 2000)) == 2000,
                     timeout=60,
                     what="2000 readings stored")
            rows = alerts(st, dev_c, "HIGH_TEMP")
            assert len(rows) == 1 and rows[0][1] == "ACTIVE", rows
            aid = rows[0][0]
            want = {u: 1 for u in recipients(st, cell_c)}
            assert notes_per_user(st, aid, "ALERT") == want, notes_per_user(st, aid, "ALERT")
            assert st.scalar("SELECT count(*) FROM notifications WHERE alert_id = ?", (aid,)) == \
                len(want)
            assert st.scalar("SELECT count(*) FROM alert_events WHERE alert_id = ?", (aid,)) == 1
            d.close()
        cases.run("1000 high readings over HTTP and MQTT at once: one ACTIVE alert, one ALERT"
                  " notification per recipient", thousand_concurrent)
        dev.close()
    cases.exit()


if __name__ == "__main__":
    main()
