"""One device must not be able to fill the broker's memory through its own session. The
broker keeps unlimited queues (max_queued_messages 0, max_queued_bytes 0: ingestd's
persistent session must lose nothing while ingestd is down), so anything delivered to a
client that never reads stays in the broker. A device subscribed to devices/{serial}/#
that stopped reading got every one of its own readings back, up to 1 MiB each
(message_size_limit): 150 such publishes took the broker from 9 to 358 MB. A device now
receives only devices/{serial}/errors (SPEC §3: the topic ingestd answers it on).

The socket is raw so that the client really never reads: paho's loop would drain it."""
import queue
import socket
import struct
import time

import harness
from apitest import Cases, expect

PUBLISHES = 150             # 1 MB each
BODY = b"x" * (1000 * 1000)
MAX_GROWTH_MB = 64          # the broker's heap growth allowed after all of them
SYS_INTERVAL_S = 10         # broker-config/mosquitto.conf.in sys_interval


def varint(n):
    out = b""
    while True:
        d, n = n % 128, n // 128
        out += bytes([d | (0x80 if n else 0)])
        if not n:
            return out


def s16(b):
    return struct.pack("!H", len(b)) + b


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def recv_exact(sk, n):
    data = b""
    while len(data) < n:
        chunk = sk.recv(n - len(data))
        expect(chunk, "the broker closed the connection")
        data += chunk
    return data


class HeapWatch:
    """The broker's live heap ($SYS/broker/heap/current, bytes), as the operator sees it.
    mosquitto publishes it every sys_interval (10 s), and only when it has changed."""

    def __init__(self, s):
        self.latest, self.at = None, 0.0
        self.c = s.operator_client()
        self.c.on_message = self._on_heap
        self.c.subscribe("$SYS/broker/heap/current", qos=0)

    def _on_heap(self, c, u, m):
        self.latest, self.at = int(m.payload.split()[0]), time.time()

    def now_mb(self):
        """The heap as of now: the first value published after this call, or, when none
        comes within a full sys_interval (mosquitto publishes only a change), the last."""
        harness.wait_for(lambda: self.latest is not None, timeout=30, what="$SYS heap")
        # A value that arrives well after the call was measured after it (a loopback
        # delivery takes milliseconds); no need to sit out the whole interval for it.
        fresh = time.time() + 0.5
        deadline = time.time() + SYS_INTERVAL_S + 1
        while time.time() < deadline and self.at < fresh:
            time.sleep(0.1)
        return self.latest / 1e6

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def main():
    cases = Cases()
    with harness.Stack(apid=False) as s:
        serial = sorted(s.keys)[0]
        broker = s.procs["mosquitto"].pid

        def never_reading_device():
            sk = socket.create_connection(("127.0.0.1", s.mqtt_port), timeout=10)
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            try:
                head = s16(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 600)
                pay = s16(serial.encode()) + s16(serial.encode()) + s16(s.keys[serial].encode())
                sk.sendall(b"\x10" + varint(len(head) + len(pay)) + head + pay)
                expect(recv_exact(sk, 4) == b"\x20\x02\x00\x00", "CONNACK refused")
                sub = struct.pack("!H", 1) + s16(("devices/%s/#" % serial).encode()) + b"\x01"
                sk.sendall(b"\x82" + varint(len(sub)) + sub)
                expect(recv_exact(sk, 5) == b"\x90\x03\x00\x01\x01", "devices/%s/# refused"
                       % serial)
                heap = HeapWatch(s)
                before_heap = heap.now_mb()
                before = rss_mb(broker)
                topic = s16(("devices/%s/readings" % serial).encode())
                for i in range(PUBLISHES):
                    pkt = topic + struct.pack("!H", i + 1) + BODY  # QoS 1
                    sk.sendall(b"\x32" + varint(len(pkt)) + pkt)
                # The broker has read every publish once ingestd has rejected them all.
                harness.wait_for(lambda: s.scalar("SELECT count(*) FROM rejected_messages")
                                 >= PUBLISHES, timeout=60, what="every publish handled")
                # RSS keeps the peak (a loaded machine lets ingestd fall behind the burst and
                # the broker hold it for ingestd meanwhile; glibc keeps the freed heap), so
                # the verdict is the broker's own count of live heap bytes, published in
                # $SYS/broker/heap/current every sys_interval: what it still holds now.
                after_heap = heap.now_mb()
                heap.close()
                print("  broker heap %.1f -> %.1f MB (RSS %d -> %d MB) after %d x 1 MB from a "
                      "device that never reads" % (before_heap, after_heap, before,
                                                   rss_mb(broker), PUBLISHES))
                expect(after_heap - before_heap <= MAX_GROWTH_MB,
                       "the broker holds %.1f MB more: a device's own publishes kept for it"
                       % (after_heap - before_heap))
            finally:
                sk.close()
        cases.run("device_that_never_reads_cannot_fill_the_broker", never_reading_device)
    cases.exit()


if __name__ == "__main__":
    main()
