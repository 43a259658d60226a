"""Dead letters cannot grow without bound (SPEC §2 rejected_messages, issue 12 item 8), with
the real broker and ingestd: a device flooding 1,100 bad messages keeps exactly its newest
1,000 (CC_REJECTED_PER_DEVICE_MAX), the 100 oldest are dropped and counted in
coldchain_rejected_dropped_total, other devices' dead letters are untouched, a topic that
names no known device counts under its own bucket, and the retention job deletes dead
letters older than REJECTED_RETENTION_DAYS."""
import time

from harness import Cases, Stack, wait_for

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

PER_DEVICE_MAX = 1000  # CC_REJECTED_PER_DEVICE_MAX (common/store/cc_store.h)
FLOOD = 1100
DAY_MS = 86400000


def rows(st, serial):
    return st.scalar("SELECT count(*) FROM rejected_messages WHERE topic LIKE ?",
                     ("devices/%s/%%" % serial,))


def publish_all(client, topic, payloads):
    infos = [client.publish(topic, p, qos=1) for p in payloads]
    for i in infos:
        i.wait_for_publish(timeout=30)


def main():
    cases = Cases()
    with Stack(apid=False, env={"REJECTED_RETENTION_DAYS": "7"}) as st:
        serials = sorted(st.keys)
        a, b = serials[0], serials[1]
        dev_a = st.mqtt_client(a, st.keys[a], client_id=a)
        dev_b = st.mqtt_client(b, st.keys[b], client_id=b)
        op = st.operator_client()

        def flood_keeps_newest():
            publish_all(dev_b, "devices/%s/readings" % b, [b"b-bad-%d" % i for i in range(3)])
            wait_for(lambda: rows(st, b) == 3, timeout=20, what="3 dead letters of b")
            b_ids = st.sql("SELECT id FROM rejected_messages WHERE topic LIKE ? ORDER BY id",
                           ("devices/%s/%%" % b,))
            publish_all(dev_a, "devices/%s/readings" % a,
                        [b"a-bad-%04d {" % i for i in range(FLOOD)])
            # The last one in is the newest: once it is stored every message is.
            last = b"a-bad-%04d {" % (FLOOD - 1)
            wait_for(lambda: st.scalar("SELECT count(*) FROM rejected_messages WHERE payload = ?",
                                       (last,)) == 1, timeout=60, what="the last dead letter")
            n = rows(st, a)
            assert n == PER_DEVICE_MAX, "device %s keeps %d dead letters, want %d" % (
                a, n, PER_DEVICE_MAX)
            kept = [r[0] for r in st.sql("SELECT payload FROM rejected_messages WHERE topic LIKE ?"
                                         " ORDER BY id", ("devices/%s/%%" % a,))]
            want = [b"a-bad-%04d {" % i for i in range(FLOOD - PER_DEVICE_MAX, FLOOD)]
            assert kept == want, "not the newest %d: first kept %r" % (PER_DEVICE_MAX, kept[:2])
            assert st.sql("SELECT id FROM rejected_messages WHERE topic LIKE ? ORDER BY id",
                          ("devices/%s/%%" % b,)) == b_ids, "another device's dead letters changed"
            dropped = st.metric("coldchain_rejected_dropped_total")
            assert dropped == FLOOD - PER_DEVICE_MAX, "coldchain_rejected_dropped_total %r" % dropped
            assert st.scalar("SELECT value FROM stat_counters WHERE name = 'rejected_dropped'") \
                == FLOOD - PER_DEVICE_MAX
        cases.run("flood_of_1100_keeps_newest_1000_and_counts_100_dropped", flood_keeps_newest)

        def no_device_bucket():
            # An operator may publish to a topic naming no known device: those dead letters
            # share one bucket (device_id 0), separate from every device's.
            publish_all(op, "devices/NO-SUCH-DEVICE/readings", [b'{"temperature": 5}'] * 2)
            wait_for(lambda: rows(st, "NO-SUCH-DEVICE") == 2, timeout=20,
                     what="2 dead letters of an unknown device")
            assert st.scalar("SELECT count(DISTINCT device_id) FROM rejected_messages WHERE"
                             " topic LIKE 'devices/NO-SUCH-DEVICE/%'") == 1
            assert st.scalar("SELECT max(device_id) FROM rejected_messages WHERE"
                             " topic LIKE 'devices/NO-SUCH-DEVICE/%'") == 0
            assert rows(st, a) == PER_DEVICE_MAX
        cases.run("topic_naming_no_device_counts_in_its_own_bucket", no_device_bucket)

        def retention_deletes_old():
            now = int(time.time() * 1000)
            dev_b_id = st.scalar("SELECT id FROM devices WHERE serial_number = ?", (b,))
            old = [(now - 8 * DAY_MS - i, "devices/%s/readings" % b, b"old", 3, "BAD_JSON", "m",
                    dev_b_id, 100 + i) for i in range(30)]
            old += [(now - 30 * DAY_MS, "other/topic", b"old", 3, "VALIDATION_ERROR", "m", 0, 50)]
            young = [(now - 6 * DAY_MS, "devices/%s/readings" % b, b"young", 5, "BAD_JSON", "m",
                      dev_b_id, 200)]
            # ingestd runs retention at start, then every minute: insert while it is
            # stopped, then start it.
            st.stop("ingestd")
            st.sql_many("INSERT INTO rejected_messages (received_at, topic, payload,"
                        " payload_size, error_code, error_message, device_id, seq)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", old + young)
            before_a = rows(st, a)
            assert st.scalar("SELECT count(*) FROM rejected_messages WHERE payload = ?",
                             (b"old",)) == len(old)
            st.start_ingestd()
            wait_for(lambda: st.scalar("SELECT count(*) FROM rejected_messages WHERE payload = ?",
                                       (b"old",)) == 0, timeout=30, what="old dead letters deleted")
            assert st.scalar("SELECT count(*) FROM rejected_messages WHERE payload = ?",
                             (b"young",)) == 1
            assert st.scalar("SELECT count(*) FROM rejected_messages WHERE received_at < ?",
                             (now - 7 * DAY_MS,)) == 0
            assert rows(st, a) == before_a, "recent dead letters were deleted"
        cases.run("retention_deletes_dead_letters_older_than_7_days", retention_deletes_old)

        for c in (dev_a, dev_b, op):
            c.loop_stop()
            c.disconnect()
    cases.exit()


if __name__ == "__main__":
    main()
