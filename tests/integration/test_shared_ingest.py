"""Two ingestd sharing one subscription (issue 15 point 4): INGEST_SHARE_GROUP=coldchain on
both members, one mosquitto 2.0.11 (which shares $share/... round-robin, message by
message), one database (SQLite file or, with CC_TEST_STORE=pg, one PostgreSQL).

The reference: member A alone in the group receives device D1's sequence in order; its
alerts are what one in-order ingestd makes of it. Then member B joins, A is stopped
(SIGSTOP) while device D2 publishes the same sequence, so round-robin leaves half of it
waiting in A while B stores the other half; A resumes and commits readings older than what
B already stored. Asserted: every reading of D2 stored once; both members received some;
coldchain_ingest_late_total summed over the members rose; D2's final alert state equals
D1's; D2 has no alert created or resolved beyond D1's (late readings are skipped by the
alert engine, so the shared run can only have fewer transitions, never extra ones)."""
import json
import os
import signal
import time
import urllib.request

import harness
from harness import Cases, Stack, free_port, wait_for, wait_port

GROUP = "coldchain"
# 5.0 is inside 2..8 °C by more than the hysteresis, 9.9 above 8: each reading alone decides
# HIGH_TEMP (no alarm delay), so the final state is the last reading's. Period 3 with
# round-robin's period 2: each member gets both values. The last one (index 24) is in
# range: the member that stores it must resolve an alert the other member raised.
PATTERN = (5.0, 9.9, 9.9)
N = 25
SEQ = [PATTERN[i % len(PATTERN)] for i in range(N)]
STEP_MS = 1000


def metric_at(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def connected(s, name):
    try:
        with open(s.logs[name], "rb") as f:
            return b"broker_connected" in f.read()
    except OSError:
        return False


def start_member(s, name, port):
    p = s._spawn(name, [os.path.join(harness.BUILD, "ingestd")],
                 env=s.env(INGEST_SHARE_GROUP=GROUP, INGEST_CLIENT_ID="coldchain-ingestd-" + name,
                           INGEST_METRICS_PORT=str(port)))
    wait_port(port, timeout=20, proc=p)
    wait_for(lambda: connected(s, name), timeout=20, what=name + " connected")
    return p


def publish_seq(s, serial, base_ts):
    c = s.mqtt_client(serial, s.keys[serial])
    try:
        infos = [c.publish("devices/%s/readings" % serial,
                           json.dumps({"ts": base_ts + i * STEP_MS, "temperature": t}), qos=1)
                 for i, t in enumerate(SEQ)]
        for info in infos:
            info.wait_for_publish()
    finally:
        c.loop_stop()
        c.disconnect()


def count(s, dev_id, base_ts):
    return s.scalar("SELECT count(*) FROM readings WHERE device_id = ? AND ts >= ?",
                    (dev_id, base_ts))


def alerts(s, dev_id, base_ts):
    """(type, status, first trigger and resolution as offsets from base_ts) per alert."""
    rows = s.sql("SELECT type, status, first_triggered_at, resolved_at FROM alerts"
                 " WHERE device_id = ? AND first_triggered_at >= ?"
                 " ORDER BY first_triggered_at, id", (dev_id, base_ts))
    return [(t, st, f - base_ts, None if r is None else r - base_ts) for t, st, f, r in rows]


def active(rows):
    return sorted(t for t, st, _, _ in rows if st == "ACTIVE")


def main():
    cases = Cases()
    with Stack(ingestd=False, apid=False, env={"INGEST_SHARE_GROUP": GROUP}) as s:
        # Devices without an ACTIVE alert from the seed, whose readings end about now.
        devs = s.sql("SELECT d.serial_number, d.id, d.cold_cell_id FROM devices d"
                     " WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.device_id = d.id"
                     " AND a.status = 'ACTIVE') ORDER BY d.id")
        devs = [d for d in devs if d[0] in s.keys][:2]
        (sn1, id1, cell1), (sn2, id2, cell2) = devs
        # One rule set for both cells: 2..8 °C, hysteresis 0.5, no alarm delay.
        s.sql("UPDATE cold_cells SET min_temp = 2, max_temp = 8, hysteresis = 0.5,"
              " alarm_delay_s = 0 WHERE id IN (?, ?)", (cell1, cell2))
        # After the seed's readings (the newest is about now: anything older would be late
        # from the start), within the 5 minutes ahead that validation accepts.
        now = int(time.time() * 1000)
        base1 = now + 5 * 1000
        base2 = now + 60 * 1000
        port_a, port_b = free_port(), free_port()
        a = start_member(s, "a", port_a)

        ref = {}

        def in_order_reference():
            publish_seq(s, sn1, base1)
            wait_for(lambda: count(s, id1, base1) == N, timeout=30, what="D1's readings stored")
            ref["alerts"] = alerts(s, id1, base1)
            late = metric_at(port_a, "coldchain_ingest_late_total")
            assert late == 0, "one member in order: nothing late (%r)" % late
            # In order, every excursion raises one alert and every return resolves it.
            runs = sum(1 for i, t in enumerate(SEQ) if t > 8 and (i == 0 or SEQ[i - 1] <= 8))
            assert len(ref["alerts"]) == runs, (runs, ref["alerts"])
            assert active(ref["alerts"]) == ([] if SEQ[-1] < 8 else ["HIGH_TEMP"]), ref
        if not cases.run("one_member_in_order_reference", in_order_reference):
            cases.exit()

        start_member(s, "b", port_b)
        got = {}

        def shared_out_of_order():
            before_a = metric_at(port_a, "coldchain_ingest_messages_total")
            a.send_signal(signal.SIGSTOP)
            try:
                publish_seq(s, sn2, base2)
                # B stores its half; A holds the other half unread until it resumes.
                wait_for(lambda: count(s, id2, base2) > 0, timeout=30, what="B stores its share")
                last = -1
                while count(s, id2, base2) != last:
                    last = count(s, id2, base2)
                    time.sleep(1.0)
                got["b_alone"] = last
            finally:
                a.send_signal(signal.SIGCONT)
            wait_for(lambda: count(s, id2, base2) == N, timeout=30, what="D2's readings stored")
            got["a"] = metric_at(port_a, "coldchain_ingest_messages_total") - before_a
            got["b"] = metric_at(port_b, "coldchain_ingest_messages_total")
            got["late"] = (metric_at(port_a, "coldchain_ingest_late_total") +
                           metric_at(port_b, "coldchain_ingest_late_total"))
            got["alerts"] = alerts(s, id2, base2)
            print("shared run: A %d messages, B %d (%d stored while A was stopped), late %d;"
                  " alerts in order %d, shared %d" % (got["a"], got["b"], got["b_alone"],
                                                       got["late"], len(ref["alerts"]),
                                                       len(got["alerts"])))
        if not cases.run("two_members_round_robin_stream", shared_out_of_order):
            cases.exit()

        def stored_once():
            rows = s.sql("SELECT ts FROM readings WHERE device_id = ? AND ts >= ? ORDER BY ts",
                         (id2, base2))
            assert [r[0] for r in rows] == [base2 + i * STEP_MS for i in range(N)], rows
            dups = (metric_at(port_a, "coldchain_ingest_readings_duplicate_total") +
                    metric_at(port_b, "coldchain_ingest_readings_duplicate_total"))
            assert dups == 0, "no reading went to both members (%r duplicates)" % dups
        cases.run("every_reading_stored_once", stored_once)

        def both_members_shared():
            assert got["a"] > 0 and got["b"] > 0, got
            assert got["a"] + got["b"] == N, got
            assert 0 < got["b_alone"] < N, got
        cases.run("round_robin_gave_both_members_messages", both_members_shared)

        def late_counted():
            assert got["late"] > 0, "A's readings came after B's newer ones: %r" % got
        cases.run("late_total_rises_when_out_of_order", late_counted)

        def final_state_as_in_order():
            assert active(got["alerts"]) == active(ref["alerts"]), (got["alerts"], ref["alerts"])
        cases.run("final_alert_state_equals_in_order", final_state_as_in_order)

        def no_flapping():
            created_ref, created = len(ref["alerts"]), len(got["alerts"])
            resolved_ref = sum(1 for x in ref["alerts"] if x[1] == "RESOLVED")
            resolved = sum(1 for x in got["alerts"] if x[1] == "RESOLVED")
            assert created <= created_ref and resolved <= resolved_ref, \
                (got["alerts"], ref["alerts"])
            # Each transition of the shared run happened at a reading that warrants it (raised
            # at a 9.9, resolved at a later 5.0), one alert after the other: a late reading
            # never raised or resolved anything out of its order.
            prev_end = -1
            for t, st, first, resolved in got["alerts"]:
                i = first // STEP_MS
                assert t == "HIGH_TEMP" and SEQ[i] > 8 and i > prev_end, got["alerts"]
                if resolved is None:
                    assert st == "ACTIVE", got["alerts"]
                    prev_end = N
                    continue
                j = resolved // STEP_MS
                assert st == "RESOLVED" and SEQ[j] <= 7.5 and j > i, got["alerts"]
                prev_end = j
        cases.run("no_alert_created_or_resolved_beyond_in_order", no_flapping)
    cases.exit()


if __name__ == "__main__":
    main()
