"""ingestd failover (issue 15 point 2; docs/scaling.md "ingestd failover").

Two ingestd with the same client id on one stack: the first holds the lease (the flock in
its journal directory, and on PostgreSQL the advisory lock too) and consumes; the second
waits as a standby and consumes nothing. A QoS 1 stream of numbered readings from every
seeded device runs while the active one is killed with SIGKILL, three times, the killed one
restarted as the next standby each time. Then every reading is stored exactly once, each
takeover took less than TAKEOVER_MAX_S, and the alert engine saw every device in order (its
newest_ts is the last reading published, and the high stretch at the end of each device's
stream left exactly one ACTIVE HIGH_TEMP alert and nothing resolved).

Two boxes (PostgreSQL): each ingestd with a data directory of its own, so a standby cannot
replay the dead active's journal; with INGEST_ACK=commit nothing acknowledged lives only
there, and the same kill rounds store every reading once.

Fence: on PostgreSQL, an active whose lease session ends (terminated backend, a PostgreSQL
restart; a SIGSTOP longer than INGEST_LEASE_TIMEOUT_MS) takes the lease again and goes on
when no other ingestd held it meanwhile (one box: the standby cannot, the flock is the
active's); on two boxes, when the standby took it (and even if it died since: the holdings
are counted), the old active exits with INGEST_EXIT_FENCED before committing more. Nothing
is lost or stored twice. On SQLite the lease is an flock, which a paused process keeps: the
standby stays a standby.
"""
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt

import harness
from harness import BUILD, Cases, Stack, free_port, wait_for, wait_port

PER_DEVICE = 1500       # readings per device in the failover stream
HIGH_LAST = 100         # the last HIGH_LAST readings of each device are above max_temp
STEP_MS = 100           # reading ts spacing per device
TAKEOVER_MAX_S = 5.0    # kill -9 of the active to the standby connected to the broker
POLL_MS = 1000          # INGEST_STANDBY_POLL_MS: the default
EXIT_FENCED = 3         # INGEST_EXIT_FENCED (ingestd/leader.h)
PG = harness.STORE == "pg"


class Ingestd:
    """One ingestd process of the stack, with its own metrics port and log."""

    def __init__(self, st, name, **env):
        self.st, self.name = st, name
        self.port = free_port()
        self.env = dict(INGEST_METRICS_PORT=str(self.port), **env)
        self.proc = None

    def start(self):
        self.proc = self.st._spawn(self.name, [os.path.join(BUILD, "ingestd")],
                                   env=self.st.env(**self.env))
        wait_port(self.port, timeout=20, proc=self.proc)
        return self

    def log(self):
        with open(self.st.logs[self.name], "rb") as f:
            return f.read().decode(errors="replace")

    def get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def role(self):
        return json.loads(self.get("/healthz")[1])["role"]

    def metric(self, name):
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def connected(self):
        return "broker_connected" in self.log()

    def kill(self, sig=signal.SIGKILL):
        self.st.stop(self.name, sig=sig)


class Stream:
    """PER_DEVICE numbered readings per seeded device at QoS 1; counts PUBACKs."""

    def __init__(self, st, per_device=PER_DEVICE, rate=2500):
        self.st, self.per_device, self.rate = st, per_device, rate
        self.acked = 0
        self.lock = threading.Lock()
        self.serials = sorted(st.keys)
        self.total = per_device * len(self.serials)
        self.base = int(time.time() * 1000)  # after the seed's newest readings
        self.cells = {r[0]: (float(r[1]), float(r[2])) for r in st.sql(
            "SELECT d.serial_number, c.min_temp, c.max_temp FROM devices d "
            "JOIN cold_cells c ON c.id = d.cold_cell_id")}
        self.clients = []
        for s in self.serials:
            c = mqtt.Client(client_id=s, clean_session=False)
            c.username_pw_set(s, st.keys[s])
            c.max_inflight_messages_set(500)
            c.max_queued_messages_set(0)
            c.on_publish = self._on_publish
            c.connect("127.0.0.1", st.mqtt_port, keepalive=10)
            c.loop_start()
            self.clients.append((s, c))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_publish(self, c, u, mid):
        with self.lock:
            self.acked += 1

    def ts(self, i):
        return self.base + i * STEP_MS

    def _run(self):
        t0 = time.time()
        n = len(self.clients)
        for k in range(self.total):
            serial, c = self.clients[k % n]
            i = k // n
            lo, hi = self.cells[serial]
            temp = hi + 5.0 if i >= self.per_device - HIGH_LAST else (lo + hi) / 2
            c.publish("devices/%s/readings" % serial,
                      json.dumps({"temperature": temp, "ts": self.ts(i), "n": i}), qos=1)
            if k % 200 == 0:
                ahead = k / self.rate - (time.time() - t0)
                if ahead > 0:
                    time.sleep(ahead)

    def start(self):
        self.thread.start()
        return self

    def finish(self, timeout=180):
        self.thread.join(timeout)
        wait_for(lambda: self.acked >= self.total, timeout=timeout, interval=0.2,
                 what="all %d PUBACKs (have %d)" % (self.total, self.acked))
        for _, c in self.clients:
            c.disconnect()
            c.loop_stop()

    def stored(self):
        return self.st.scalar("SELECT COUNT(*) FROM readings WHERE ts >= ?", (self.base,))

    def check_exactly_once(self):
        wait_for(lambda: self.stored() >= self.total, timeout=180, interval=0.25,
                 what="%d readings stored (have %d)" % (self.total, self.stored()))
        time.sleep(1.0)  # anything late and duplicated would show now
        rows = self.st.sql("SELECT d.serial_number, COUNT(*), COUNT(DISTINCT r.ts) "
                           "FROM readings r JOIN devices d ON d.id = r.device_id "
                           "WHERE r.ts >= ? GROUP BY d.serial_number", (self.base,))
        per = {r[0]: (int(r[1]), int(r[2])) for r in rows}
        for s in self.serials:
            assert per.get(s) == (self.per_device, self.per_device), \
                "%s: %r readings (rows, distinct ts), expected %d" % (s, per.get(s),
                                                                      self.per_device)

    def check_order(self):
        """What the alert engine saw, per device: its newest reading is the last one, and
        the high stretch at the end opened one HIGH_TEMP alert, never resolved."""
        last = self.ts(self.per_device - 1)
        newest = {r[0]: int(r[1]) for r in self.st.sql(
            "SELECT serial_number, newest_ts FROM devices")}
        alerts = self.st.sql(
            "SELECT d.serial_number, a.type, a.status FROM alerts a "
            "JOIN devices d ON d.id = a.device_id WHERE a.last_triggered_at >= ?", (self.base,))
        for s in self.serials:
            assert newest[s] == last, "%s: newest_ts %d, expected %d" % (s, newest[s], last)
            mine = [(t, stt) for (ser, t, stt) in alerts if ser == s]
            assert mine == [("HIGH_TEMP", "ACTIVE")], "%s: alerts %r" % (s, mine)


def prepare(st):
    # The seed's open alerts would absorb our HIGH_TEMP trigger: close them first. No alarm
    # delay, so each device's high stretch raises its alert whatever the batch boundaries.
    st.sql("UPDATE alerts SET status = 'RESOLVED', resolved_at = ? WHERE status = 'ACTIVE'",
           (int(time.time() * 1000) - 1,))
    st.sql("UPDATE cold_cells SET alarm_delay_s = 0")


def start_pair(st, **env):
    a = Ingestd(st, "ingestd_a", **env).start()
    wait_for(a.connected, timeout=20, what="a connected")
    b = Ingestd(st, "ingestd_b", **env).start()
    wait_for(lambda: "standby" in b.log(), timeout=20, what="b standby")
    return a, b


def standby_idle(st):
    """The standby says so and consumes nothing while the active one lives."""
    prepare(st)
    a, b = start_pair(st)
    s = Stream(st, per_device=50).start()
    s.finish()
    s.check_exactly_once()
    assert a.role() == "active" and a.metric("coldchain_ingest_active") == 1
    assert a.metric("coldchain_ingest_mqtt_received_total") >= s.total
    assert b.role() == "standby", b.role()
    assert b.get("/readyz")[0] == 503 and a.get("/readyz")[0] == 200
    for m in ("coldchain_ingest_active", "coldchain_ingest_mqtt_received_total",
              "coldchain_ingest_messages_total", "coldchain_ingest_commits_total"):
        assert b.metric(m) == 0, "%s = %s on the standby" % (m, b.metric(m))
    assert not b.connected(), "the standby connected to the broker"


def own_dirs(st, env):
    """Two boxes: each ingestd its own data directory (its own journal)."""
    def env_for(name):
        d = os.path.join(st.dir, name + "-data")
        os.makedirs(d, exist_ok=True)
        return dict(env, COLDCHAIN_DATA_DIR=d)
    return env_for


def kill_rounds(st, env_for=None):
    """kill -9 of the active one mid-stream, three times; each takeover timed."""
    prepare(st)
    env_for = env_for or (lambda name: {})
    active = Ingestd(st, "ingestd_a", **env_for("ingestd_a")).start()
    wait_for(active.connected, timeout=20, what="a connected")
    standby = Ingestd(st, "ingestd_b", **env_for("ingestd_b")).start()
    wait_for(lambda: "standby" in standby.log(), timeout=20, what="b standby")
    s = Stream(st).start()
    times = []
    for frac in (0.2, 0.45, 0.7):
        wait_for(lambda: s.stored() >= frac * s.total, timeout=120, interval=0.02,
                 what="%d stored before the kill" % (frac * s.total))
        t0 = time.time()
        active.kill()
        wait_for(lambda: "took_over" in standby.log() and standby.log().count(
            "broker_connected") > 0 and standby.role() == "active",
            timeout=30, interval=0.02, what="%s takes over" % standby.name)
        times.append(time.time() - t0)
        # The killed one comes back as the next standby (its log starts over).
        os.unlink(st.logs[active.name])
        killed = Ingestd(st, active.name, **env_for(active.name)).start()
        wait_for(lambda: "standby" in killed.log(), timeout=20, what="restarted as standby")
        active, standby = standby, killed
    s.finish()
    s.check_exactly_once()
    s.check_order()
    print("takeover seconds: %s" % ", ".join("%.2f" % t for t in times))
    assert max(times) < TAKEOVER_MAX_S, times


def stalled_kill(st, ack="commit"):
    """Two boxes, the active's commits held back (a lock on readings) when it is killed:
    with INGEST_ACK=journal what it acknowledged since would live only in its own journal,
    which the standby on the other box cannot read (lost); with commit it acknowledged
    none of it, and the broker gives it all to the standby."""
    prepare(st)
    env_for = own_dirs(st, {"INGEST_ACK": ack})
    a = Ingestd(st, "ingestd_a", **env_for("ingestd_a")).start()
    wait_for(a.connected, timeout=20, what="a connected")
    b = Ingestd(st, "ingestd_b", **env_for("ingestd_b")).start()
    wait_for(lambda: "standby" in b.log(), timeout=20, what="b standby")
    s = Stream(st, per_device=400).start()
    wait_for(lambda: s.stored() >= s.total // 4, timeout=60, interval=0.02,
             what="a quarter stored")
    con = st.pg.connect()
    try:
        cur = con.cursor()
        cur.execute("LOCK TABLE readings IN SHARE MODE")  # inserts wait; the loop goes on
        # Something received and not committed when it dies (with commit, one read round:
        # the loop then waits for the writer, unacknowledged).
        time.sleep(1.0)
        wait_for(lambda: a.metric("coldchain_ingest_mqtt_received_total") >
                 a.metric("coldchain_ingest_messages_total"), timeout=20, interval=0.05,
                 what="a has received what it could not commit")
        a.kill()
    finally:
        con.rollback()
        con.close()
    wait_for(lambda: b.role() == "active" and b.connected(), timeout=10, what="b takes over")
    s.finish()
    s.check_exactly_once()
    s.check_order()


def pg_lease_backend(st):
    rows = st.sql("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = ? "
                  "AND objsubid = 2 AND granted", (0x63636c6b,))
    assert len(rows) == 1, rows
    return rows[0][0]


def regained_terminated(st):
    """PostgreSQL, one box: the active's lease session ends (as in a PostgreSQL restart).
    The standby cannot take the lease (the journal's flock is the active's), so the active
    takes the advisory lock again, finds no other holding counted (the epoch) and goes on:
    no exit, nothing lost or doubled."""
    prepare(st)
    a, b = start_pair(st, INGEST_STANDBY_POLL_MS="300")
    s = Stream(st, per_device=600).start()
    wait_for(lambda: s.stored() >= s.total // 3, timeout=60, interval=0.02, what="a third stored")
    st.sql("SELECT pg_terminate_backend(?)", (pg_lease_backend(st),))
    wait_for(lambda: "lease_regained" in a.log(), timeout=10, what="a takes its lease again")
    s.finish()
    s.check_exactly_once()
    s.check_order()
    assert a.proc.poll() is None and a.role() == "active", a.proc.returncode
    assert "fenced" not in a.log()
    assert b.role() == "standby" and not b.connected()


def fenced_two_boxes(st, standby_dies):
    """PostgreSQL, two boxes (INGEST_ACK=commit): the active is paused and its lease session
    ended; the standby on the other box takes the lease and consumes. When the active comes
    back it must not go on: the lease is held by the other one (standby_dies False), or free
    again but counted by another holding in between (standby_dies True: the epoch differs).
    Either way it exits fenced (3), and every reading is stored once."""
    prepare(st)
    # A short lease timeout: it is also how long PostgreSQL lets the paused active's open
    # transaction hold its row locks (idle_in_transaction_session_timeout), which the
    # standby's first commit would otherwise wait on.
    env_for = own_dirs(st, {"INGEST_ACK": "commit", "INGEST_STANDBY_POLL_MS": "300",
                            "INGEST_LEASE_TIMEOUT_MS": "1500"})
    a = Ingestd(st, "ingestd_a", **env_for("ingestd_a")).start()
    wait_for(a.connected, timeout=20, what="a connected")
    b = Ingestd(st, "ingestd_b", **env_for("ingestd_b")).start()
    wait_for(lambda: "standby" in b.log(), timeout=20, what="b standby")
    s = Stream(st, per_device=600).start()
    wait_for(lambda: s.stored() >= s.total // 3, timeout=60, interval=0.02, what="a third stored")
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        st.sql("SELECT pg_terminate_backend(?)", (pg_lease_backend(st),))
        wait_for(lambda: b.role() == "active" and b.connected(), timeout=20, what="b takes over")
        if standby_dies:
            wait_for(lambda: s.stored() >= s.total * 2 // 3, timeout=60, interval=0.02,
                     what="b stores some")
            b.kill()
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    wait_for(lambda: a.proc.poll() is not None, timeout=10, what="a exits fenced")
    assert a.proc.returncode == EXIT_FENCED, a.proc.returncode
    assert "fenced" in a.log() and "lease_regained" not in a.log()
    if standby_dies:
        # Someone must finish the stream: a third ingestd takes the free lease.
        c = Ingestd(st, "ingestd_c", **env_for("ingestd_c")).start()
        wait_for(lambda: c.role() == "active" and c.connected(), timeout=10, what="c active")
    s.finish()
    s.check_exactly_once()
    s.check_order()


def counted_elsewhere(st):
    """PostgreSQL: another holding is counted (the leases row's epoch moves) while the active
    still holds its advisory lock, as when its lease session ended just after its last check
    and another box took the lease. Its next commit must not happen: the writer reads the
    count inside its transaction, row locked, and exits fenced. What it had received stays in
    its journal for the next active (one box: ingestd_c replays it)."""
    prepare(st)
    a = Ingestd(st, "ingestd_a").start()
    wait_for(a.connected, timeout=20, what="a connected")
    s = Stream(st, per_device=600).start()
    wait_for(lambda: s.stored() >= s.total // 3, timeout=60, interval=0.02, what="a third stored")
    st.sql("UPDATE leases SET epoch = epoch + 1")  # waits for a commit in flight, not longer
    stored = s.stored()
    wait_for(lambda: a.proc.poll() is not None, timeout=10, what="a exits fenced")
    assert a.proc.returncode == EXIT_FENCED, a.proc.returncode
    assert "another holding was counted" in a.log(), a.log()[-2000:]
    assert s.stored() == stored, "a committed after the count moved: %d -> %d" % (
        stored, s.stored())
    c = Ingestd(st, "ingestd_c").start()
    wait_for(lambda: c.role() == "active" and c.connected(), timeout=10, what="c active")
    s.finish()
    s.check_exactly_once()
    s.check_order()


def paused_active(st):
    """SIGSTOP of the active one longer than the lease timeout, then SIGCONT."""
    prepare(st)
    a, b = start_pair(st, INGEST_STANDBY_POLL_MS="300", INGEST_LEASE_TIMEOUT_MS="1500")
    s = Stream(st, per_device=600).start()
    wait_for(lambda: s.stored() >= s.total // 3, timeout=60, interval=0.02, what="a third stored")
    os.kill(a.proc.pid, signal.SIGSTOP)
    time.sleep(4.0)  # > INGEST_LEASE_TIMEOUT_MS + a poll
    # One box: the paused one keeps the journal's flock, so the standby cannot take over
    # (and must not: the journal would have two writers).
    assert b.role() == "standby" and not b.connected()
    os.kill(a.proc.pid, signal.SIGCONT)
    if PG:
        # PostgreSQL ended its silent lease session; back, it takes the lock again (the
        # standby could not: the flock) and, no other holding counted, goes on.
        wait_for(lambda: "lease_regained" in a.log(), timeout=10, what="a takes its lease again")
    time.sleep(1.0)
    assert a.proc.poll() is None and a.role() == "active" and b.role() == "standby"
    s.finish()
    s.check_exactly_once()
    s.check_order()


def main():
    cases = Cases()
    for name, fn in (
            ("the standby consumes nothing while the active lives; /healthz, /readyz, "
             "coldchain_ingest_active say which is which", standby_idle),
            ("kill -9 of the active 3 times mid-stream: every reading once, takeover < %.0f s, "
             "per-device order as the alert engine sees it" % TAKEOVER_MAX_S, kill_rounds),
            ("a paused active (SIGSTOP past INGEST_LEASE_TIMEOUT_MS): the standby waits (flock)%s, "
             "nothing lost or doubled" % (", the active takes its lease again" if PG else ""),
             paused_active)):
        def run(f=fn):
            with Stack(apid=False, ingestd=False) as st:
                f(st)
        cases.run(name, run)
    if PG:
        def run_boxes():
            with Stack(apid=False, ingestd=False) as st:
                kill_rounds(st, own_dirs(st, {"INGEST_ACK": "commit"}))
        cases.run("PostgreSQL, two boxes (a data directory, hence a journal, each) with "
                  "INGEST_ACK=commit: kill -9 of the active 3 times, every reading once, in "
                  "order, takeover < %.0f s" % TAKEOVER_MAX_S, run_boxes)

        def run_stalled():
            with Stack(apid=False, ingestd=False) as st:
                stalled_kill(st)
        cases.run("PostgreSQL, two boxes, INGEST_ACK=commit: the active killed while its "
                  "commits wait: nothing it received is lost (it acknowledged none of it)",
                  run_stalled)

        def run_regained():
            with Stack(apid=False, ingestd=False) as st:
                regained_terminated(st)
        cases.run("PostgreSQL, one box: the active's lease session terminated: it takes the "
                  "lease again (no other holding) and goes on, nothing lost or doubled",
                  run_regained)

        def run_counted():
            with Stack(apid=False, ingestd=False) as st:
                counted_elsewhere(st)
        cases.run("PostgreSQL: another holding counted while the active keeps its lock: its "
                  "writer reads the count in its transaction and exits fenced (3) before its "
                  "next commit; nothing lost or doubled", run_counted)

        for dies in (False, True):
            def run_fenced(d=dies):
                with Stack(apid=False, ingestd=False) as st:
                    fenced_two_boxes(st, d)
            cases.run("PostgreSQL, two boxes: a paused active whose lease the standby took%s "
                      "exits fenced (3) on its return, nothing lost or doubled"
                      % (" (and died: the epoch differs)" if dies else ""), run_fenced)
    cases.exit()


if __name__ == "__main__":
    main()
