"""ingestd's timer jobs end to end, with OFFLINE_AFTER_S=2 and ESCALATE_AFTER_S=3:
a silent device goes OFFLINE with one SENSOR_ERROR, a reading resolves it and sets it
ONLINE; an ACTIVE alert is escalated exactly once, to the linked technicians and every
admin."""
import time

from alerts_common import ENV, Device, alerts, devices_of, notes_per_user, now_ms, recipients
from harness import Cases, Stack, wait_for


def main():
    cases = Cases()
    env = dict(ENV, OFFLINE_AFTER_S="2", ESCALATE_AFTER_S="3")
    with Stack(env=env) as st:
        serial, dev_id, cell_id, lo, hi = devices_of(st, "customer1@example.com")[0]
        serial2, dev2, cell2, lo2, hi2 = devices_of(st, "customer1@example.com")[1]
        admins = [r[0] for r in st.sql("SELECT id FROM users WHERE role = 'ADMIN'")]
        techs = [u for u in recipients(st, cell_id)
                 if st.scalar("SELECT role FROM users WHERE id = ?", (u,)) == "TECHNICIAN"]

        def offline_sensor_error():
            d = Device(st, serial)
            d.publish({"temperature": (lo + hi) / 2, "ts": max(now_ms(), 1 + st.scalar(
                "SELECT newest_ts FROM devices WHERE id = ?", (dev_id,)))})
            wait_for(lambda: len(alerts(st, dev_id, "SENSOR_ERROR", "ACTIVE")) == 1, timeout=10,
                     what="SENSOR_ERROR raised")
            assert st.scalar("SELECT status FROM devices WHERE id = ?", (dev_id,)) == "OFFLINE"
            aid = alerts(st, dev_id, "SENSOR_ERROR", "ACTIVE")[0][0]
            time.sleep(2.5)  # more ticks: still one alert, no duplicate notification
            assert len(alerts(st, dev_id, "SENSOR_ERROR", "ACTIVE")) == 1
            want = {u: 1 for u in recipients(st, cell_id)}
            assert notes_per_user(st, aid, "ALERT") == want, notes_per_user(st, aid, "ALERT")
            d.publish({"temperature": (lo + hi) / 2})
            assert st.scalar("SELECT status FROM alerts WHERE id = ?", (aid,)) == "RESOLVED"
            assert st.scalar("SELECT status FROM devices WHERE id = ?", (dev_id,)) == "ONLINE"
            assert notes_per_user(st, aid, "ALERT_RESOLVED") == want
            d.close()
        cases.run("offline -> SENSOR_ERROR + OFFLINE -> a reading -> resolved + ONLINE",
                  offline_sensor_error)

        def escalation_once():
            d = Device(st, serial2)
            keep = True
            t = max(now_ms(), 1 + st.scalar("SELECT newest_ts FROM devices WHERE id = ?", (dev2,)))
            d.publish({"temperature": hi2 + 2, "ts": t})
            aid = alerts(st, dev2, "HIGH_TEMP", "ACTIVE")[0][0]
            wait_for(lambda: st.scalar("SELECT escalated_at FROM alerts WHERE id = ?", (aid,)),
                     timeout=10, what="escalated")
            first = st.scalar("SELECT escalated_at FROM alerts WHERE id = ?", (aid,))
            assert first >= t + 3000, (first, t)
            time.sleep(3)
            assert keep and st.scalar("SELECT escalated_at FROM alerts WHERE id = ?", (aid,)) == first
            want = {u: 1 for u in techs + admins}
            assert len(want) >= 2, want
            assert notes_per_user(st, aid, "ESCALATION") == want, notes_per_user(st, aid, "ESCALATION")
            assert st.scalar("SELECT count(*) FROM alert_events WHERE alert_id = ? AND"
                             " event = 'ESCALATED'", (aid,)) == 1
            d.close()
        cases.run("escalation exactly once, to linked technicians and every admin", escalation_once)
    cases.exit()


if __name__ == "__main__":
    main()
