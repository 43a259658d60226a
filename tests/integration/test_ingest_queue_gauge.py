"""ingestd's writer queue in bytes, as /metrics shows it (README "Back-pressure"): while the
database's write lock is held by another session (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
EXCLUSIVE lock on readings), a device publishes 60 arrays of 1,000 readings (about 3.3 MB
of copies, more than the queue holds). coldchain_ingest_queue_bytes rises above zero, reaches
INGEST_QUEUE_BYTES_MAX (the bound is what stops the queue: the broker keeps the rest) and
never passes it by more than one read round (ingestd/writer.h: the hand-over that waited
then queues what it holds, at most a CC_JOURNAL_STAGE_MAX stage and 48 bytes a copy for
INGEST_READ_ROUND_MAX messages). Once the lock is released the queue drains to 0 and every
reading is stored once."""
import json
import re
import sqlite3
import time

from harness import STORE, Cases, Stack, wait_for

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

QUEUE_BYTES_MAX = 2 * 1024 * 1024      # INGEST_QUEUE_BYTES_MAX (ingestd/writer.h)
ROUND_BYTES_MAX = 256 * 1024 + 48 * 1000  # CC_JOURNAL_STAGE_MAX + 48 x INGEST_READ_ROUND_MAX
MESSAGES = 60
PER_MESSAGE = 1000  # SPEC §3: an array of up to 1000 readings
GAUGE = "coldchain_ingest_queue_bytes"


class WriteLock:
    """Another session holding the lock every commit of ingestd's writer needs."""

    def __init__(self, st):
        if STORE == "pg":
            self.con = st.pg.connect()
            cur = self.con.cursor()
            cur.execute("LOCK TABLE readings IN EXCLUSIVE MODE")  # reads go on, writes wait
        else:
            self.con = sqlite3.connect(st.db_path, isolation_level=None, timeout=10)
            self.con.execute("BEGIN IMMEDIATE")

    def release(self):
        self.con.rollback()
        self.con.close()


def main():
    cases = Cases()
    with Stack(apid=False) as st:
        serial = sorted(k for k in st.keys if "FRZ" in k)[0]  # -18.25 °C raises no alert
        base = int(time.time() * 1000) - 3 * 86400 * 1000

        def gauge():
            v = st.metric(GAUGE)
            return None if v is None else float(v)

        def stored():
            return st.scalar("SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id"
                             " WHERE d.serial_number = ? AND r.ts >= ? AND r.ts < ?",
                             (serial, base, base + MESSAGES * PER_MESSAGE))

        def fills_to_the_bound_then_drains():
            text = st.metrics()
            m = re.search(r"# HELP %s .*at most (\d+)" % GAUGE, text)
            assert m and int(m.group(1)) == QUEUE_BYTES_MAX, \
                "the HELP line does not state the bound %d: %r" % (QUEUE_BYTES_MAX, m)
            wait_for(lambda: gauge() == 0, timeout=20, what="an empty queue at start")
            lock = WriteLock(st)
            c = st.mqtt_client(serial, st.keys[serial])
            samples = []
            try:
                infos = []
                for i in range(MESSAGES):
                    body = json.dumps([{"temperature": -18.25, "humidity": 40.5,
                                        "ts": base + i * PER_MESSAGE + k}
                                       for k in range(PER_MESSAGE)])
                    infos.append(c.publish("devices/%s/readings" % serial, body, qos=1))
                deadline = time.time() + 60
                while time.time() < deadline:
                    samples.append(gauge())
                    if samples[-1] is not None and samples[-1] >= QUEUE_BYTES_MAX:
                        break
                    time.sleep(0.05)
                # Held a while at the bound: it stays there, not above by more than a round.
                t_end = time.time() + 3
                while time.time() < t_end:
                    samples.append(gauge())
                    time.sleep(0.05)
            finally:
                lock.release()
            vals = [v for v in samples if v is not None]
            print("%s while locked: %d samples, min %.0f, max %.0f (bound %d + round %d)"
                  % (GAUGE, len(vals), min(vals), max(vals), QUEUE_BYTES_MAX, ROUND_BYTES_MAX))
            assert len(vals) == len(samples), "the gauge went missing: %r" % samples[:20]
            assert max(vals) > 0, "the gauge never rose above 0"
            assert max(vals) >= QUEUE_BYTES_MAX, \
                "the queue never reached its bound: max %.0f" % max(vals)
            assert max(vals) <= QUEUE_BYTES_MAX + ROUND_BYTES_MAX, \
                "the queue passed its bound by more than a round: %.0f" % max(vals)
            assert stored() == 0, "a commit went through the held lock"
            wait_for(lambda: stored() == MESSAGES * PER_MESSAGE, timeout=120,
                     what="every reading stored after the release")
            wait_for(lambda: gauge() == 0, timeout=20, what="the gauge back to 0")
            for info in infos:
                info.wait_for_publish(timeout=30)
            c.loop_stop()
            c.disconnect()
        cases.run("coldchain_ingest_queue_bytes: rises, holds at INGEST_QUEUE_BYTES_MAX, "
                  "drains to 0", fills_to_the_bound_then_drains)
    cases.exit()


if __name__ == "__main__":
    main()
