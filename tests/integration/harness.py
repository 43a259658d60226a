"""Integration-test harness: a real mosquitto (with the coldchain plugin), ingestd and
apid on free loopback ports, with a temporary SQLite database seeded by ccctl.

CC_TEST_STORE=pg runs the same stack on PostgreSQL instead: each Stack starts its own
throwaway cluster (tools/pgtest.sh, a Unix socket, no TCP; a copy of the run's migrated
template cluster under run.py, see pg_template) and points COLDCHAIN_DB and the
broker plugin at it; Stack.sql() then reads it through psycopg2 with the same "?"
placeholders, so a test that reads the database through the harness runs on both stores.

Each test script builds a Stack, uses real MQTT and HTTP clients, and stops everything
in `finally`; on failure the daemons' stderr is printed. Cases report "ok <name>" or
"FAIL <name>: why" lines, which tests/integration/run.py counts.
"""
import contextlib
import csv
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("CC_BUILD", "build"))  # relative to the repo
# The broker plugin is always the plain build: a sanitized .so cannot load into mosquitto.
# CC_PLUGIN: another build of it (e.g. the previous commit's, to see a regression test fail).
PLUGIN = os.environ.get("CC_PLUGIN") or os.path.join(ROOT, "build", "coldchain_auth.so")
STORE = os.environ.get("CC_TEST_STORE", "sqlite")  # "sqlite" or "pg"
if STORE not in ("sqlite", "pg"):
    raise SystemExit("CC_TEST_STORE must be sqlite or pg, not %r" % STORE)


def pg_template():
    """The directory of a halted, migrated cluster that every PgCluster of this run starts
    as a copy of (tools/pgtest.sh PGTEST_TEMPLATE), or None: CC_PG_TEMPLATE names it
    (run.py makes one per run, under /tmp); the first PgCluster to need it builds it, under
    a lock, so that test files run side by side build it once. Each stack still runs
    `ccctl migrate` itself (a no-op on the copy, as on a restarted server) and its own seed:
    the seed's readings are relative to the time it runs."""
    path = os.environ.get("CC_PG_TEMPLATE")
    if not path:
        return None
    import fcntl
    cluster = os.path.join(path, "c")
    with open(path.rstrip("/") + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(cluster, "data", "PG_VERSION")):
            return cluster
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
        pgtest = os.path.join(ROOT, "tools", "pgtest.sh")
        port = str(free_port())
        p = subprocess.run(["sh", pgtest, "start", cluster, port], capture_output=True,
                           text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("template cluster did not start: %s %s" % (p.stdout, p.stderr))
        data = tempfile.mkdtemp(prefix="cc-pgtpl-data-")
        try:
            m = subprocess.run([os.path.join(BUILD, "ccctl"), "migrate"], capture_output=True,
                               text=True, timeout=120,
                               env=dict(os.environ, COLDCHAIN_DB=p.stdout.strip().splitlines()[-1],
                                        COLDCHAIN_DATA_DIR=data))
        finally:
            shutil.rmtree(data, ignore_errors=True)
            h = subprocess.run(["sh", pgtest, "halt", cluster], capture_output=True, timeout=60)
        if m.returncode != 0 or h.returncode != 0:
            subprocess.run(["sh", pgtest, "stop", cluster], capture_output=True, timeout=60)
            raise RuntimeError("template cluster: migrate %d %s %s, halt %d" % (
                m.returncode, m.stdout, m.stderr, h.returncode))
        return cluster


class PgCluster:
    """A throwaway PostgreSQL 15 cluster (tools/pgtest.sh) in its own /tmp directory (the
    postgres user must reach it, so not inside a root-only mkdtemp). A copy of the run's
    template cluster when there is one (pg_template)."""

    def __init__(self):
        template = pg_template()
        self.dir = tempfile.mkdtemp(prefix="cc-pg-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = free_port()  # names the socket only
        env = dict(os.environ)
        env.pop("PGTEST_TEMPLATE", None)
        if template:
            env["PGTEST_TEMPLATE"] = template
        p = subprocess.run(["sh", os.path.join(ROOT, "tools", "pgtest.sh"), "start",
                            os.path.join(self.dir, "c"), str(self.port)],
                           capture_output=True, text=True, timeout=60, env=env)
        if p.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError("PostgreSQL did not start: %s %s" % (p.stdout, p.stderr))
        self.url = p.stdout.strip().splitlines()[-1]
        self.sock_dir = os.path.join(self.dir, "c")

    def connect(self, dbname="coldchain"):
        import psycopg2  # Debian's python3-psycopg2 (tools/deps.sh)
        return psycopg2.connect(dbname=dbname, user="coldchain", host=self.sock_dir,
                                port=self.port)

    def _ctl(self, cmd):
        p = subprocess.run(["sh", os.path.join(ROOT, "tools", "pgtest.sh"), cmd,
                            os.path.join(self.dir, "c")], capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            raise RuntimeError("pgtest.sh %s: %s %s" % (cmd, p.stdout, p.stderr))

    def down(self):
        """A database outage: fast shutdown (every connection dropped), data kept."""
        self._ctl("down")

    def up(self):
        self._ctl("up")

    def close(self):
        subprocess.run(["sh", os.path.join(ROOT, "tools", "pgtest.sh"), "stop",
                        os.path.join(self.dir, "c")], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def _db_errors():
    errs = [sqlite3.DatabaseError]
    try:
        import psycopg2  # only when the tests run on PostgreSQL too
        errs.append(psycopg2.DatabaseError)
    except ImportError:
        pass
    return tuple(errs)


# What Stack.sql() raises when the database refuses a statement, on either store.
DB_ERRORS = _db_errors()


def _pg_query(query):
    """SQLite's "?" placeholders as psycopg2's "%s" (and a literal % doubled): the tests'
    SQL stays one text. "?" inside a string literal is not a placeholder."""
    out, quoted = [], False
    for ch in query:
        if ch == "'":
            quoted = not quoted
        if ch == "?" and not quoted:
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


# run.py runs test files side by side, each with CC_PORT_SLOT set to its worker's number:
# a port the kernel hands one file (bind to 0, then released for a daemon to take) could be
# handed to the other before the daemon binds it. So each slot takes its ports from a range
# of its own, below the kernel's ephemeral range (32768-60999, where client sockets' ports
# come from), in turn, skipping any port in use.
PORT_SLOT_BASE = 20000  # slot k: PORT_SLOT_BASE + k * PORT_SLOT_SIZE, PORT_SLOT_SIZE ports
PORT_SLOT_SIZE = 1500
PORT_SLOTS = 4  # slots 0..3: the ranges end at 26000, below the ephemeral range
_port_slot = os.environ.get("CC_PORT_SLOT")
# Where in its range a file starts: random, so that two runs at once on one machine (a
# developer's and CI's, both with slot 0) do not walk the same ports in step, where the check
# below and a daemon's bind race (seen: apid "Address already in use" on 20012). Files of one
# run that share a slot run one after the other, so within a run the walk is still in turn.
_port_next = [random.randrange(PORT_SLOT_SIZE)]


def _bindable(port):
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port():
    if _port_slot is not None:
        slot = int(_port_slot)
        if not 0 <= slot < PORT_SLOTS:
            raise SystemExit("CC_PORT_SLOT must be 0..%d, not %r" % (PORT_SLOTS - 1, _port_slot))
        for _ in range(PORT_SLOT_SIZE):
            port = PORT_SLOT_BASE + slot * PORT_SLOT_SIZE + _port_next[0] % PORT_SLOT_SIZE
            _port_next[0] += 1
            if _bindable(port):
                return port
        raise RuntimeError("no free port in slot %d's range" % slot)
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening" % proc.returncode)
        with contextlib.closing(socket.socket()) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("port %d not listening after %.1fs" % (port, timeout))


def off_the_second(ms):
    """ms moved to 7 ms past its whole second. The seed's readings sit on whole seconds
    (ccctl seed: the newest "this second", the others every 20 minutes before it), so a
    reading a test stamps with this can never share a seed reading's (device, ts) and be
    stored as a duplicate instead of a new row."""
    return ms // 1000 * 1000 + 7


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last=%r)" % (timeout, what, last))


def subscribe_acked(client, topics, qos=1, timeout=10.0):
    """Subscribes client (its network loop running) to each of topics and returns the granted
    QoS of each once the broker acknowledged them (SUBACK): a message published after this,
    by anyone, reaches client. A sleep after subscribe() let a loaded broker take a
    publish of another client's first and drop it for this one."""
    acked = {}
    before = client.on_subscribe
    client.on_subscribe = lambda c, u, mid, granted: acked.__setitem__(mid, granted)
    try:
        mids = [client.subscribe(t, qos=qos)[1] for t in topics]
        wait_for(lambda: all(m in acked for m in mids), timeout=timeout,
                 what="SUBACK for %s" % ", ".join(topics))
    finally:
        client.on_subscribe = before
    return [acked[m][0] for m in mids]


class Stack:
    """One coldchain stack. Use as a context manager."""

    def __init__(self, seed=True, ingestd=True, apid=True, env=None, keep=False, tls=False):
        self.dir = tempfile.mkdtemp(prefix="cc-it-")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.db_path = os.path.join(self.data, "coldchain.db")
        self.mqtt_port = free_port()
        self.http_port = free_port()
        self.metrics_port = free_port()
        self.mqtt_user = "ingestd"
        self.mqtt_password = secrets.token_hex(16)
        self.want_seed, self.want_ingestd, self.want_apid = seed, ingestd, apid
        self.extra_env = env or {}
        self.keep = keep or os.environ.get("CC_KEEP") == "1"
        # tls=True: a development CA (tools/devca.sh) in <dir>/tls, and the broker's TLS and
        # device-certificate listeners on free ports (mqtt_tls_port, mqtt_cert_port).
        self.tls = tls
        self.tls_dir = os.path.join(self.dir, "tls")
        self.mqtt_tls_port = free_port() if tls else 0
        self.mqtt_cert_port = free_port() if tls else 0
        self.procs = {}
        self.logs = {}
        self.keys = {}
        # Seconds each step of the start took (run.py sums them per file: CC_STACK_TIMES).
        self.start_times = {}
        t0 = time.time()
        # CC_TEST_STORE=pg: the database is a PostgreSQL cluster of this stack's own.
        self.pg = PgCluster() if STORE == "pg" else None
        self.start_times["pg"] = time.time() - t0
        self.db_url = self.pg.url if self.pg else self.db_path

    # -- environment -------------------------------------------------------------------
    def env(self, **more):
        e = dict(os.environ)
        e.update({
            "COLDCHAIN_DB": self.db_url,
            "COLDCHAIN_DATA_DIR": self.data,  # the journal and secrets, for either store
            "MQTT_URL": "tcp://127.0.0.1:%d" % self.mqtt_port,
            "MQTT_PORT": str(self.mqtt_port),
            "MQTT_USERNAME": self.mqtt_user,
            "MQTT_PASSWORD": self.mqtt_password,
            "HTTP_PORT": str(self.http_port),
            "HTTP_BIND": "127.0.0.1",
            "INGEST_METRICS_PORT": str(self.metrics_port),
            "LOG_LEVEL": "info",
        })
        e.update(self.extra_env)
        e.update(more)
        return e

    def ccctl(self, *args, check=True, **env):
        p = subprocess.run([os.path.join(BUILD, "ccctl")] + list(args), env=self.env(**env),
                           capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError("ccctl %s failed (%d): %s %s" % (" ".join(args), p.returncode,
                                                                p.stdout, p.stderr))
        return p

    # -- processes ---------------------------------------------------------------------
    def _spawn(self, name, argv, env=None):
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        self.logs[name] = log.name
        p = subprocess.Popen(argv, stdout=log, stderr=log, env=env or self.env(),
                             cwd=self.dir, start_new_session=True)
        log.close()
        self.procs[name] = p
        return p

    def start_broker(self):
        conf_dir = os.path.join(self.dir, "broker")
        if not os.path.exists(os.path.join(conf_dir, "mosquitto.conf")):
            env = self.env()
            if self.tls:
                subprocess.run(["sh", os.path.join(ROOT, "tools", "devca.sh"), self.tls_dir],
                               check=True, capture_output=True)
                env.update(MQTT_TLS_PORT=str(self.mqtt_tls_port),
                           MQTT_TLS_CERT_PORT=str(self.mqtt_cert_port),
                           MQTT_TLS_CERT=os.path.join(self.tls_dir, "server.crt"),
                           MQTT_TLS_KEY=os.path.join(self.tls_dir, "server.key"),
                           MQTT_TLS_CAFILE=os.path.join(self.tls_dir, "ca.crt"))
            # The password goes through the environment (MQTT_PASSWORD), never argv.
            subprocess.run(["sh", os.path.join(ROOT, "tools", "broker_conf.sh"), conf_dir,
                            str(self.mqtt_port), self.db_url,
                            PLUGIN, self.mqtt_user], env=env, check=True,
                           capture_output=True)
        p = self._spawn("mosquitto", ["mosquitto", "-c", os.path.join(conf_dir, "mosquitto.conf")])
        for port in (self.mqtt_port, self.mqtt_tls_port, self.mqtt_cert_port):
            if port:
                wait_port(port, proc=p)

    def start_ingestd(self, wait=True):
        p = self._spawn("ingestd", [os.path.join(BUILD, "ingestd")])
        if wait:
            wait_port(self.metrics_port, timeout=20, proc=p)
            wait_for(lambda: self.ingestd_connected(), timeout=20, what="ingestd connected")
        return p

    def ingestd_connected(self):
        try:
            with open(self.logs["ingestd"], "rb") as f:
                return b"broker_connected" in f.read()
        except OSError:
            return False

    def start_apid(self):
        p = self._spawn("apid", [os.path.join(BUILD, "apid")])
        wait_port(self.http_port, timeout=20, proc=p)

    def stop(self, name, sig=signal.SIGTERM, timeout=20):
        p = self.procs.pop(name, None)
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def kill(self, name):
        return self.stop(name, sig=signal.SIGKILL)

    def _timed(self, step, fn, *args):
        t0 = time.time()
        r = fn(*args)
        self.start_times[step] = self.start_times.get(step, 0.0) + time.time() - t0
        return r

    def _seed(self):
        keys_file = os.path.join(self.dir, "keys.csv")
        self.ccctl("seed", "--keys-file", keys_file)
        with open(keys_file) as f:
            for row in csv.reader(f):
                if len(row) >= 2 and not row[0].startswith("#") and row[0] != "serial":
                    self.keys[row[0]] = row[1]

    def __enter__(self):
        try:
            self._timed("migrate", self.ccctl, "migrate")
            if self.want_seed:
                self._timed("seed", self._seed)
            self._timed("broker", self.start_broker)
            if self.want_ingestd:
                self._timed("ingestd", self.start_ingestd)
            if self.want_apid:
                self._timed("apid", self.start_apid)
        except BaseException:
            self.dump_logs()
            self.close()
            raise
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            self.dump_logs()
        self.close()
        return False

    def close(self):
        t0 = time.time()
        for name in ("apid", "ingestd", "mosquitto"):
            self.stop(name)
        for name in list(self.procs):
            self.stop(name)
        if self.pg is not None and not self.keep:
            self.pg.close()
            self.pg = None
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self.start_times:
            self.start_times["stop"] = time.time() - t0
            _record_start(self.start_times)
            self.start_times = {}  # a second close() records nothing

    def dump_logs(self, tail=60):
        for name, path in self.logs.items():
            try:
                with open(path, "r", errors="replace") as f:
                    lines = f.readlines()[-tail:]
            except OSError:
                continue
            sys.stdout.write("----- %s (last %d lines) -----\n" % (name, len(lines)))
            sys.stdout.writelines(lines)

    # -- clients -----------------------------------------------------------------------
    def sql(self, query, args=()):
        if self.pg is not None:
            con = self.pg.connect()
            try:
                with con:  # one transaction, committed
                    with con.cursor() as cur:
                        cur.execute(_pg_query(query), tuple(args))
                        if not cur.description:
                            return []
                        # bytea arrives as memoryview; SQLite gives bytes: one type for tests.
                        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                                for r in cur.fetchall()]
            finally:
                con.close()
        con = sqlite3.connect(self.db_path, timeout=10)
        try:
            rows = con.execute(query, args).fetchall()
            con.commit()  # a write through sql() is kept, as on PostgreSQL
            return rows
        finally:
            con.close()

    def sql_many(self, query, rows):
        """One statement for each row of args, in one transaction, on either store."""
        if self.pg is not None:
            con = self.pg.connect()
            try:
                with con:
                    import psycopg2.extras
                    with con.cursor() as cur:  # pages of statements, not one round trip each
                        psycopg2.extras.execute_batch(cur, _pg_query(query),
                                                      [tuple(r) for r in rows], page_size=1000)
            finally:
                con.close()
            return
        con = sqlite3.connect(self.db_path, timeout=10)
        try:
            con.executemany(query, rows)
            con.commit()
        finally:
            con.close()

    def scalar(self, query, args=()):
        rows = self.sql(query, args)
        return rows[0][0] if rows else None

    def mqtt_client(self, username, password, client_id=None, clean=True, connect=True):
        if client_id is None:  # SPEC §3: a device's client id is its serial
            client_id = username if username != self.mqtt_user else "t-" + secrets.token_hex(4)
        c = mqtt.Client(client_id=client_id, clean_session=clean)
        c.username_pw_set(username, password)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        if connect:
            rc = {}

            def on_connect(cl, ud, flags, code):
                rc["code"] = code
            c.on_connect = on_connect
            c.connect("127.0.0.1", self.mqtt_port, keepalive=30)
            c.loop_start()
            wait_for(lambda: "code" in rc, timeout=10, what="CONNACK")
            if rc["code"] != 0:
                c.loop_stop()
                raise ConnectionRefusedError("CONNACK %d" % rc["code"])
        return c

    def operator_client(self, **kw):
        return self.mqtt_client(self.mqtt_user, self.mqtt_password, **kw)

    def http(self, method, path, body=None, token=None, headers=None, raw=None, port=None):
        url = "http://127.0.0.1:%d%s" % (port or self.http_port, path)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                payload = r.read()
                return r.status, dict(r.headers), _json_or_text(payload)
        except urllib.error.HTTPError as e:
            payload = e.read()
            return e.code, dict(e.headers), _json_or_text(payload)

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=10) as r:
            return r.read().decode()

    def metric(self, name):
        for line in self.metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None


def _record_start(times):
    """One JSON line per stack start in the file CC_STACK_TIMES names (run.py sets it and
    prints the sums), so the cost of starting stacks stays visible next to each suite's."""
    path = os.environ.get("CC_STACK_TIMES")
    if not path:
        return
    with open(path, "a") as f:
        f.write(json.dumps(times) + "\n")


def _json_or_text(payload):
    try:
        return json.loads(payload.decode() or "null")
    except (ValueError, UnicodeDecodeError):
        return payload


class Cases:
    """Runs named cases, printing ok/FAIL lines; exit status 1 if any failed."""

    def __init__(self):
        self.failed = 0
        self.passed = 0

    def run(self, name, fn, *args):
        t0 = time.time()
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - report every failure, go on with the rest
            self.failed += 1
            print("FAIL %s: %s" % (name, e))
            traceback.print_exc(file=sys.stdout)
            return False
        self.passed += 1
        print("ok %s (%.1fs)" % (name, time.time() - t0))
        sys.stdout.flush()
        return True

    def check(self, name, cond, why=""):
        def f():
            if not cond:
                raise AssertionError(why or "condition false")
        return self.run(name, f)

    def exit(self):
        sys.exit(1 if self.failed else 0)
