"""An alert event is SENT only once the broker acknowledged it (docs/alerts.md, "Delivery
worker"). With the broker down, ingestd hands its alert events to libmosquitto, which keeps
them in memory; a kill -9 then loses that copy. The rows must still say PENDING (under a
lease, CC_NOTIFY_ACK_LEASE_MS), so that the next ingestd sends them again once the lease
runs out: every event reaches a subscriber of alerts/# (at least once), none FAILED, and
coldchain_notifications_sent_total{channel="mqtt"} counts them once each. Before the fix
the rows were SENT at the hand-over and the restarted ingestd sent nothing."""
import json
import queue
import time

from alerts_common import event_backlog
from harness import Cases, Stack, wait_for

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

EVENTS = 40
LEASE_S = 30  # CC_NOTIFY_ACK_LEASE_MS


def count(st, where, args=()):
    return st.scalar("SELECT count(*) FROM alert_events WHERE " + where, args)


def mqtt_sent_total(st):
    return st.scalar("SELECT value FROM stat_counters WHERE name = 'deliveries_sent'"
                     " AND label = 'mqtt'")


def main():
    cases = Cases()

    def kill_while_unacknowledged():
        with Stack(apid=False) as st:
            first_event = st.scalar("SELECT coalesce(max(id), 0) FROM alert_events") + 1
            sent0 = mqtt_sent_total(st)
            assert st.stop("mosquitto") == 0
            now = int(time.time() * 1000)
            cell, ids = event_backlog(st, EVENTS, lambda a: json.dumps({"id": a}))
            mine = "id >= ?"
            # Broker down: each handed to libmosquitto once, none acknowledged, so none SENT.
            wait_for(lambda: count(st, mine + " AND attempts = 1", (first_event,)) == EVENTS,
                     timeout=30, what="every event handed over")
            time.sleep(1.5)  # another delivery tick: held, not handed over twice
            assert count(st, mine + " AND status = 'SENT'", (first_event,)) == 0, \
                "SENT before any PUBACK"
            assert count(st, mine + " AND status = 'PENDING' AND attempts = 1 AND"
                         " next_attempt_at > ?", (first_event, now)) == EVENTS
            assert mqtt_sent_total(st) == sent0
            st.kill("ingestd")  # libmosquitto's copies are gone
            st.start_broker()
            got = queue.Queue()
            sub = st.operator_client()
            sub.on_message = lambda c, u, m: got.put((m.topic, json.loads(m.payload)))
            subscribed = queue.Queue()
            sub.on_subscribe = lambda c, u, mid, q: subscribed.put(q)
            sub.subscribe("alerts/#", qos=1)
            assert subscribed.get(timeout=10) == (1,)
            st.start_ingestd()
            seen = {}

            def all_arrived():
                while not got.empty():
                    topic, obj = got.get()
                    if topic == "alerts/%d" % cell and obj.get("id") in ids:
                        seen[obj["id"]] = seen.get(obj["id"], 0) + 1
                return len(seen) == EVENTS
            wait_for(all_arrived, timeout=LEASE_S + 45, interval=0.2,
                     what="every event at the subscriber after the lease (%d of %d)"
                     % (len(seen), EVENTS))
            wait_for(lambda: count(st, mine + " AND status = 'SENT'", (first_event,)) == EVENTS,
                     timeout=15, what="every event SENT once acknowledged")
            assert count(st, "status = 'FAILED'") == 0
            assert count(st, mine + " AND attempts = 2", (first_event,)) == EVENTS
            assert mqtt_sent_total(st) == sent0 + EVENTS, (mqtt_sent_total(st), sent0)
            sub.loop_stop()
            sub.disconnect()
    cases.run("kill -9 with alert events unacknowledged (broker down): all arrive after restart",
              kill_while_unacknowledged)

    def sent_after_puback():
        with Stack(apid=False) as st:
            got = queue.Queue()
            sub = st.operator_client()
            sub.on_message = lambda c, u, m: got.put(json.loads(m.payload))
            subscribed = queue.Queue()
            sub.on_subscribe = lambda c, u, mid, q: subscribed.put(q)
            sub.subscribe("alerts/#", qos=1)
            assert subscribed.get(timeout=10) == (1,)
            cell, (base,) = event_backlog(st, 1, lambda a: json.dumps({"id": a}))
            assert got.get(timeout=10) == {"id": base}
            # The PUBACK is recorded at the worker's next pass (a second at most).
            wait_for(lambda: st.scalar("SELECT status FROM alert_events WHERE alert_id = ?",
                                       (base,)) == "SENT", timeout=10, what="SENT")
            assert st.scalar("SELECT attempts FROM alert_events WHERE alert_id = ?", (base,)) == 1
            sub.loop_stop()
            sub.disconnect()
    cases.run("broker up: the event arrives and is SENT after its PUBACK", sent_after_puback)
    def reused_event_id():
        # SQLite reuses the largest rowid once its row is gone (alert_events.id is not
        # AUTOINCREMENT). An event held unacknowledged (broker down) whose row goes with its
        # alert (a cold cell or device deleted: ON DELETE CASCADE) leaves its id to the next
        # event. That event is another one: it must be published (not taken as "held"), and
        # the old message's PUBACK must not mark it SENT. PostgreSQL's identity never reuses.
        with Stack(apid=False) as st:
            sub_id = "t-reuse-%d" % int(time.time())
            got = queue.Queue()
            sub = st.mqtt_client(st.mqtt_user, st.mqtt_password, client_id=sub_id, clean=False)
            subscribed = queue.Queue()
            sub.on_subscribe = lambda c, u, mid, q: subscribed.put(q)
            sub.subscribe("alerts/#", qos=1)
            assert subscribed.get(timeout=10) == (1,)
            sub.loop_stop()
            sub.disconnect()  # a persistent session: the broker queues alerts/# for it
            assert st.stop("mosquitto") == 0
            cell, (old_alert,) = event_backlog(st, 1, lambda a: json.dumps({"id": a}))
            old_event = st.scalar("SELECT id FROM alert_events WHERE alert_id = ?", (old_alert,))
            wait_for(lambda: st.scalar("SELECT attempts FROM alert_events WHERE id = ?",
                                       (old_event,)) == 1, timeout=30, what="handed over")
            # What deleting its cold cell or device does (ON DELETE CASCADE, which the
            # test's own connection does not enforce): the alert and its events go.
            st.sql("DELETE FROM alert_events WHERE alert_id = ?", (old_alert,))
            st.sql("DELETE FROM alerts WHERE id = ?", (old_alert,))
            dev = st.scalar("SELECT id FROM devices ORDER BY id LIMIT 1")
            new_alert = old_alert + 1000  # alert ids are never reused
            now = int(time.time() * 1000)
            st.sql("INSERT INTO alerts (id, cold_cell_id, device_id, type, status, message,"
                   " first_triggered_at, last_triggered_at, trigger_count, resolved_at)"
                   " VALUES (?, ?, ?, 'HIGH_TEMP', 'RESOLVED', 'w', ?, ?, 1, ?)",
                   (new_alert, cell, dev, now, now, now))
            st.sql("INSERT INTO alert_events (alert_id, cold_cell_id, event, payload, status,"
                   " attempts, next_attempt_at, created_at)"
                   " VALUES (?, ?, 'CREATED', ?, 'PENDING', 0, ?, ?)",
                   (new_alert, cell, json.dumps({"id": new_alert}), now, now))
            new_event = st.scalar("SELECT id FROM alert_events WHERE alert_id = ?", (new_alert,))
            st.start_broker()
            sub = st.mqtt_client(st.mqtt_user, st.mqtt_password, client_id=sub_id, clean=False,
                                 connect=False)
            sub.on_message = lambda c, u, m: got.put(json.loads(m.payload))
            sub.connect("127.0.0.1", st.mqtt_port, keepalive=30)
            sub.loop_start()
            seen = set()

            def arrived():
                while not got.empty():
                    seen.add(got.get().get("id"))
                return new_alert in seen
            wait_for(arrived, timeout=20, interval=0.2,
                     what="the new event (id %d, the old one's %d) at the subscriber: %s,"
                     " its row %s" % (new_event, old_event, sorted(seen),
                                      st.sql("SELECT status, attempts FROM alert_events"
                                             " WHERE alert_id = ?", (new_alert,))))
            wait_for(lambda: st.scalar("SELECT status FROM alert_events WHERE alert_id = ?",
                                       (new_alert,)) == "SENT", timeout=10, what="SENT")
            assert st.scalar("SELECT attempts FROM alert_events WHERE alert_id = ?",
                             (new_alert,)) == 1
            sub.loop_stop()
            sub.disconnect()
    cases.run("an event id reused (its held predecessor's row deleted): the new event is sent",
              reused_event_id)
    cases.exit()


if __name__ == "__main__":
    main()
