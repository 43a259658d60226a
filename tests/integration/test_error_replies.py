"""A device cannot make ingestd fill the broker with error replies (issue 12). ingestd answers
every refused message on devices/{serial}/errors at QoS 1 (SPEC §3); a device that subscribes
there and never reads (or is offline with a persistent session) has the broker queue every
reply, without bound. ingestd now caps the replies per device with a token bucket
(INGEST_ERROR_REPLY_BURST at once, then INGEST_ERROR_REPLIES_PER_MIN): the refused messages
are still dead-lettered and counted, the replies over the cap are not published but counted in
coldchain_error_replies_suppressed_total, and the device's next reply says how many of its
replies were left out ("suppressed": N in the error object).

With a burst of 5 and 60 a minute (one a second, set through the environment so the test
waits seconds, not minutes), a device sending 500 bad messages gets at most the burst plus
one a second of the time the flood took, not 500; another device's first bad message is
answered at once; a second later the flooding device is answered again. And end to end: a
device subscribed to its errors topic that never reads its socket sends 50,000 bad messages
and the broker's live heap stays flat (19.3 MB more without the cap)."""
import json
import math
import queue
import re
import socket
import struct
import time

from harness import Cases, Stack, wait_for
from test_broker_queue import HeapWatch, recv_exact, s16, varint

BURST = 5
PER_MIN = 60
REFILL_S = 60.0 / PER_MIN
FLOOD = 500  # < CC_REJECTED_PER_DEVICE_MAX (1,000): every one stays a dead letter
SILENT_FLOOD = 50000  # bad messages from the device that never reads
MAX_HEAP_GROWTH_MB = 5  # the broker's live heap after them (19.3 MB without the cap)


def dead_letters(st, serial):
    return st.scalar("SELECT count(*) FROM rejected_messages WHERE topic = ?",
                     ("devices/%s/readings" % serial,))


def metric_value(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def drain(q):
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


class Device:
    """A device that reads its own errors topic and keeps every reply it is sent."""

    def __init__(self, st, serial):
        self.serial = serial
        self.replies = queue.Queue()
        self.c = st.mqtt_client(serial, st.keys[serial], client_id=serial)
        self.c.on_message = lambda c, u, m: self.replies.put((m.topic, json.loads(m.payload)))
        sub = {}
        self.c.on_subscribe = lambda c, u, mid, granted: sub.update(granted=granted)
        self.c.subscribe("devices/%s/errors" % serial, qos=1)
        wait_for(lambda: "granted" in sub, timeout=10, what="SUBACK")
        assert sub["granted"][0] == 1, "subscription refused: %r" % (sub["granted"],)

    def publish_all(self, payloads):
        infos = [self.c.publish("devices/%s/readings" % self.serial, p, qos=1) for p in payloads]
        for i in infos:
            i.wait_for_publish(timeout=60)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def main():
    cases = Cases()
    env = {"INGEST_ERROR_REPLY_BURST": str(BURST), "INGEST_ERROR_REPLIES_PER_MIN": str(PER_MIN)}
    with Stack(apid=False, env=env) as st:
        serials = sorted(st.keys)
        a = Device(st, serials[0])
        b = Device(st, serials[1])
        flood = {}

        def flood_is_capped():
            t0 = time.time()
            a.publish_all([b"bad-%04d {" % i for i in range(FLOOD)])
            wait_for(lambda: dead_letters(st, a.serial) == FLOOD, timeout=120,
                     what="%d dead letters" % FLOOD)
            # Every reply decision is taken by now (each follows its dead letter's commit).
            elapsed = time.time() - t0
            # Each bad message is either answered or counted as suppressed: wait until the
            # replies received and the counter add up to the flood (a fixed second was not
            # always enough for the last replies to land on a loaded machine), then give
            # any extra reply a second to show.
            got = []

            def all_accounted():
                got.extend(drain(a.replies))
                left_out = metric_value(st.metrics(), "coldchain_error_replies_suppressed_total")
                return left_out is not None and len(got) + left_out >= FLOOD
            wait_for(all_accounted, timeout=30, interval=0.1,
                     what="replies + suppressed = %d" % FLOOD)
            time.sleep(1.0)
            got.extend(drain(a.replies))
            flood["replies"] = got
            allowed = BURST + math.ceil(elapsed / REFILL_S) + 1
            print("  %d bad messages in %.1f s: %d replies (cap %d)" % (FLOOD, elapsed, len(got),
                                                                      allowed))
            assert all(t == "devices/%s/errors" % a.serial for t, _ in got), got[:3]
            assert len(got) <= allowed, "%d replies to %d bad messages, want at most %d" % (
                len(got), FLOOD, allowed)
            # The first errors always get through, each in the SPEC §5 shape, none suppressed.
            assert len(got) >= BURST, "only %d replies, the first %d must all arrive" % (
                len(got), BURST)
            for _, body in got[:BURST]:
                err = body["error"]
                assert err["code"] == "BAD_JSON" and err["message"], err
                assert "suppressed" not in err, err
            # Not published is not forgotten: dead-lettered and counted, every one.
            text = st.metrics()
            rejected = metric_value(text, 'coldchain_ingest_rejected_total{code="BAD_JSON"}')
            assert rejected == FLOOD, "coldchain_ingest_rejected_total BAD_JSON %r" % rejected
            suppressed = metric_value(text, "coldchain_error_replies_suppressed_total")
            assert suppressed == FLOOD - len(got), (
                "coldchain_error_replies_suppressed_total %r, want %d" % (suppressed,
                                                                          FLOOD - len(got)))
        cases.run("flood_of_500_bad_messages_gets_at_most_burst_plus_refill_replies",
                  flood_is_capped)

        def other_device_answered():
            # Right after the flood device A has no tokens left; B's first error is B's own.
            b.publish_all([b"b-bad {"])
            topic, body = b.replies.get(timeout=10)
            assert topic == "devices/%s/errors" % b.serial, topic
            assert body["error"]["code"] == "BAD_JSON", body
            assert "suppressed" not in body["error"], body
            assert dead_letters(st, b.serial) == 1
        cases.run("another_device_first_bad_message_still_answered", other_device_answered)

        def refilled_reply_counts_suppressed():
            time.sleep(2 * REFILL_S)  # one token back at least
            drain(a.replies)
            a.publish_all([b"after-the-flood {"])
            topic, body = a.replies.get(timeout=10)
            assert topic == "devices/%s/errors" % a.serial, topic
            err = body["error"]
            assert err["code"] == "BAD_JSON" and err["message"], err
            # Every reply left out is reported to the device by a later reply, exactly once.
            replies = flood.get("replies", []) + [(topic, body)]
            told = sum(r["error"].get("suppressed", 0) for _, r in replies)
            suppressed = st.metric("coldchain_error_replies_suppressed_total")
            assert suppressed is not None and suppressed > 0, suppressed
            assert told == suppressed, "replies told of %d suppressed, the counter says %r" % (
                told, suppressed)
            assert isinstance(err.get("suppressed", 0), int), err
            assert dead_letters(st, a.serial) == FLOOD + 1
        cases.run("after_the_refill_interval_replies_resume_and_say_how_many_were_suppressed",
                  refilled_reply_counts_suppressed)

        def never_reading_device_leaves_broker_heap_flat():
            serial = serials[2]
            sk = socket.create_connection(("127.0.0.1", st.mqtt_port), timeout=10)
            # Raw socket, tiny receive buffer: this client really never reads.
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            heap = None
            try:
                head = s16(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 600)
                pay = s16(serial.encode()) + s16(serial.encode()) + s16(st.keys[serial].encode())
                sk.sendall(b"\x10" + varint(len(head) + len(pay)) + head + pay)
                assert recv_exact(sk, 4) == b"\x20\x02\x00\x00", "CONNACK refused"
                sub = struct.pack("!H", 1) + s16(("devices/%s/errors" % serial).encode()) + b"\x01"
                sk.sendall(b"\x82" + varint(len(sub)) + sub)
                assert recv_exact(sk, 5) == b"\x90\x03\x00\x01\x01", "errors topic refused"
                heap = HeapWatch(st)
                before = heap.now_mb()
                rejected0 = st.metric('coldchain_ingest_rejected_total{code="BAD_JSON"}')
                topic = s16(("devices/%s/readings" % serial).encode())
                buf = b""
                for i in range(SILENT_FLOOD):
                    pkt = topic + b"bad %d {" % i
                    buf += b"\x30" + varint(len(pkt)) + pkt  # QoS 0: no PUBACKs to not read
                    if len(buf) >= 65536:
                        sk.sendall(buf)
                        buf = b""
                sk.sendall(buf)
                wait_for(lambda: st.metric('coldchain_ingest_rejected_total{code="BAD_JSON"}')
                         >= rejected0 + SILENT_FLOOD, timeout=300, what="every message handled")
                after = heap.now_mb()
                print("  broker heap %.1f -> %.1f MB after %d bad messages from a device that "
                      "never reads" % (before, after, SILENT_FLOOD))
                assert after - before <= MAX_HEAP_GROWTH_MB, (
                    "the broker holds %.1f MB more: error replies queued for a device that "
                    "never reads" % (after - before))
            finally:
                if heap is not None:
                    heap.close()
                sk.close()
        cases.run("device_that_never_reads_its_errors_cannot_grow_the_broker",
                  never_reading_device_leaves_broker_heap_flat)

        a.close()
        b.close()
    cases.exit()


if __name__ == "__main__":
    main()
