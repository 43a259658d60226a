"""Durability: once the broker has accepted a reading it is stored exactly once, whatever
happens to ingestd (kill -9 at any instant, then restart) or to the broker (restart with
persistence).

A 20,000-reading QoS 1 stream from the seeded devices runs while ingestd is killed with
SIGKILL at several points (and restarted at once), and in a second run while mosquitto is
restarted. Every reading has a distinct (device, ts), so "exactly 20,000 rows" means
nothing lost and nothing stored twice.
"""
import json
import threading
import time

import paho.mqtt.client as mqtt

from harness import Cases, Stack, wait_for

TOTAL = 20000


class Publisher:
    """Publishes TOTAL readings spread over the seeded devices at QoS 1 and counts PUBACKs."""

    def __init__(self, st, total=TOTAL, rate=4000):
        self.st = st
        self.total = total
        self.rate = rate
        self.acked = 0
        self.lock = threading.Lock()
        self.clients = []
        serials = sorted(st.keys)
        self.base = int(time.time() * 1000) - 10 * 86400 * 1000  # far from the seed's 24 h
        for s in serials:
            c = mqtt.Client(client_id=s, clean_session=False)  # SPEC §3: client id = serial
            c.username_pw_set(s, st.keys[s])
            c.max_inflight_messages_set(500)
            c.max_queued_messages_set(0)
            c.reconnect_delay_set(0.1, 1)
            c.on_publish = self._on_publish
            c.connect("127.0.0.1", st.mqtt_port, keepalive=10)
            c.loop_start()
            self.clients.append((s, c))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_publish(self, c, u, mid):
        with self.lock:
            self.acked += 1

    def _run(self):
        t0 = time.time()
        n = len(self.clients)
        for i in range(self.total):
            serial, c = self.clients[i % n]
            ts = self.base + (i // n)  # distinct per device: one ms apart
            c.publish("devices/%s/readings" % serial,
                      json.dumps({"temperature": -18.0 + (i % 7) * 0.1, "ts": ts}), qos=1)
            if i % 200 == 0:
                ahead = i / self.rate - (time.time() - t0)
                if ahead > 0:
                    time.sleep(ahead)

    def start(self):
        self.thread.start()

    def finish(self, timeout=120):
        self.thread.join(timeout)
        wait_for(lambda: self.acked >= self.total, timeout=timeout, interval=0.2,
                 what="all %d PUBACKs (have %d)" % (self.total, self.acked))
        for _, c in self.clients:
            c.disconnect()
            c.loop_stop()


def stored(st):
    return st.scalar("SELECT COUNT(*) FROM readings WHERE ts >= ? AND ts < ?",
                     (st._dur_base, st._dur_base + 86400 * 1000))


def run_stream(st, disrupt):
    pub = Publisher(st)
    st._dur_base = pub.base
    pub.start()
    disrupt(pub)
    pub.finish()
    wait_for(lambda: stored(st) >= TOTAL, timeout=120, interval=0.25,
             what="%d readings stored" % TOTAL)
    time.sleep(1.0)  # anything late and duplicated would show now
    n = stored(st)
    assert n == TOTAL, "stored %d readings, expected exactly %d" % (n, TOTAL)
    dup = st.scalar("SELECT COUNT(*) FROM (SELECT device_id, ts FROM readings GROUP BY 1, 2 "
                    "HAVING COUNT(*) > 1) d")
    assert dup == 0, dup


def kill_at(points):
    def disrupt(pub):
        st = pub.st
        for p in points:
            wait_for(lambda: stored(st) >= p, timeout=120, interval=0.02,
                     what="%d stored before the kill" % p)
            st.kill("ingestd")
            st.start_ingestd()
    return disrupt


def main():
    cases = Cases()

    def kill9():
        with Stack(apid=False) as st:
            run_stream(st, kill_at([1500, 6000, 11000, 17000]))
    cases.run("kill -9 of ingestd at 4 points of a 20,000-reading stream: exactly 20,000 stored",
              kill9)

    def kill9_fast():
        # Kill immediately after restarts, while the backlog is being replayed.
        with Stack(apid=False) as st:
            def disrupt(pub):
                for _ in range(4):
                    time.sleep(0.7)
                    st.kill("ingestd")
                    st.start_ingestd()
            run_stream(st, disrupt)
    cases.run("kill -9 of ingestd every 0.7 s, during replay too: exactly 20,000 stored",
              kill9_fast)

    def broker_restart():
        with Stack(apid=False) as st:
            def disrupt(pub):
                wait_for(lambda: stored(st) >= 5000, timeout=120, interval=0.02,
                         what="5000 stored")
                assert st.stop("mosquitto") == 0
                time.sleep(0.5)
                st.start_broker()
            run_stream(st, disrupt)
    cases.run("broker restart mid-stream: nothing lost, nothing doubled", broker_restart)
    cases.exit()


if __name__ == "__main__":
    main()
