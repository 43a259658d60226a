"""`make soak` driver (run by tools/soak.sh): the whole stack under a steady mixed load for
SOAK_S seconds, watching the daemons' memory and open files. Prints "soak: <name> <value>"
lines at the end; asserts nothing about them (the exit status is 0 when the run completed).

The stack is the integration tests' (tests/integration/harness.py): mosquitto with the
coldchain plugin, ingestd and apid on free loopback ports, a temporary database. Set-up
through the API: SOAK_CUSTOMERS customers, each with a location, two freezer cells
(-25..-15 C) and SOAK_DEVICES / SOAK_CUSTOMERS devices.

Load, all at once:
- build/bench_load: every device connected with its own key, QoS 1 readings round-robin
  at SOAK_RATE readings/s in total, SOAK_HIGH_RATIO of each device's readings above the
  range, evenly spread, so alerts are raised and resolved all the time (alert churn).
- SOAK_HTTP_CLIENTS threads, each a dashboard user: signs in (again every
  SOAK_LOGIN_EVERY_S), then loops over lists (devices, alerts, cells), the 24 h readings
  query, the latest reading, the customer dashboard and a one-hour CSV export, one request
  every SOAK_HTTP_PAUSE_S. Latency is measured per request.
- SOAK_FEEDS WebSocket live feeds (two per customer, at most 8 per user in the SPEC), read
  by one thread that answers the server's pings; a feed that closes is counted as dropped
  and opened again.
- Every SOAK_SAMPLE_S: RSS (VmRSS) and open fds (/proc/<pid>/fd) of mosquitto, ingestd
  and apid, and apid's heap in use (coldchain_heap_in_use_bytes of its /metrics: RSS also
  counts freed memory malloc keeps for reuse, this does not), and apid's RSS by kind of
  mapping (rss_classes: malloc's main heap, its other arenas, thread stacks, other anonymous
  memory, files), which says where a growth is.

Figures: each daemon's RSS and fds at the first and the last sample, and their slope per
hour (least squares over the samples after SOAK_WARMUP_S); the same for apid's heap in use
and each kind of its RSS (apid_rss_<kind>_*), and its number of thread stacks; HTTP requests, 5xx answers,
refused or failed connections, p50/p99 latency; feeds opened, dropped, messages received;
readings published, acknowledged (bench_load), stored (database) and missing; ingestd's
failed transactions and error lines in each daemon's log.
"""
import base64
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
from harness import BUILD, Stack, wait_for  # noqa: E402


def env_num(name, default, kind=int):
    v = os.environ.get(name, "")
    try:
        return kind(v) if v != "" else default
    except ValueError:
        sys.exit("soak: %s must be a number, got %r" % (name, v))


SOAK_S = env_num("SOAK_S", 600)
SAMPLE_S = env_num("SOAK_SAMPLE_S", 30)
WARMUP_S = env_num("SOAK_WARMUP_S", min(300, SOAK_S // 4))
DEVICES = env_num("SOAK_DEVICES", 1000)
CUSTOMERS = env_num("SOAK_CUSTOMERS", 25)
RATE = env_num("SOAK_RATE", 200)  # readings per second, all devices together
HIGH_RATIO = env_num("SOAK_HIGH_RATIO", 0.1, float)
HTTP_CLIENTS = env_num("SOAK_HTTP_CLIENTS", 20)
HTTP_PAUSE_S = env_num("SOAK_HTTP_PAUSE_S", 0.5, float)
LOGIN_EVERY_S = env_num("SOAK_LOGIN_EVERY_S", 300)
FEEDS = env_num("SOAK_FEEDS", 50)
DRAIN_S = 120  # after the load: how long stored readings may take to catch up
PASSWORD = "soak-password-1"


def say(msg):
    sys.stderr.write("soak: %s\n" % msg)
    sys.stderr.flush()


def out(name, value):
    print("soak: %s %s" % (name, value))
    sys.stdout.flush()


def http(port, method, path, body=None, tok=None, timeout=30):
    """(status, body bytes); status 0 when the connection failed."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if tok:
        req.add_header("Authorization", "Bearer " + tok)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError) as e:
        return 0, repr(e).encode()


def api(port, method, path, body=None, tok=None, want=(200, 201)):
    st, raw = http(port, method, path, body, tok)
    if st not in want:
        raise RuntimeError("%s %s: %s %r" % (method, path, st, raw[:300]))
    return json.loads(raw.decode() or "null")


def login(port, email, password, tries=5):
    for i in range(tries):
        try:
            return api(port, "POST", "/api/auth/login",
                       {"email": email, "password": password})["accessToken"]
        except RuntimeError as e:
            if i == tries - 1:
                raise
            say("login of %s failed (%s); again" % (email, e))
            time.sleep(1)


# -- set-up --------------------------------------------------------------------------------
def provision(s, keys_path):
    port = s.http_port
    admin = login(port, "admin@example.com", "admin123")
    customers, cells = [], []
    per = max(1, DEVICES // CUSTOMERS)
    lines = ["serial,key"]
    n = 0
    for c in range(CUSTOMERS):
        email = "soak%02d@example.com" % c
        u = api(port, "POST", "/api/users", {"email": email, "password": PASSWORD,
                                             "role": "CUSTOMER", "name": "Soak %d" % c}, admin)
        loc = api(port, "POST", "/api/locations", {"name": "Soak site %d" % c, "address": "x",
                                                   "customerId": u["id"]}, admin)
        mine = []
        for k in range(2):
            cell = api(port, "POST", "/api/coldcells", {"locationId": loc["id"],
                                                        "name": "Soak freezer %d.%d" % (c, k),
                                                        "minTemp": -25.0, "maxTemp": -15.0},
                       admin)
            mine.append(cell["id"])
        count = per if c < CUSTOMERS - 1 else DEVICES - n
        for d in range(count):
            dev = api(port, "POST", "/api/devices", {"coldCellId": mine[d % 2],
                                                     "serialNumber": "SOAK-FRZ-%05d" % (n + 1),
                                                     "firmwareVersion": "1.0"}, admin)
            lines.append("%s,%s" % (dev["serialNumber"], dev["apiKey"]))
            n += 1
        customers.append(email)
        cells.append(mine)
    with open(keys_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(keys_path, 0o600)
    return customers, cells


# -- HTTP clients --------------------------------------------------------------------------
class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.lat_ms = []
        self.requests = 0
        self.status_5xx = 0
        self.refused = 0
        self.other = {}

    def add(self, st, ms, what):
        with self.lock:
            self.requests += 1
            if st == 0:
                self.refused += 1
                return
            self.lat_ms.append(ms)
            if st >= 500:
                self.status_5xx += 1
            if st not in (200, 201):
                self.other[(what, st)] = self.other.get((what, st), 0) + 1


def http_client(port, email, cells, stats, stop):
    tok, signed_at = None, 0.0
    now_ms = lambda: int(time.time() * 1000)  # noqa: E731

    def iso(ms):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".000Z"

    def timed(what, method, path):
        t0 = time.time()
        st, raw = http(port, method, path, tok=tok)
        stats.add(st, (time.time() - t0) * 1000, what)
        return st, raw

    paths = [
        ("devices", "/api/devices"),
        ("alerts", "/api/alerts?limit=50"),
        ("cells", "/api/coldcells"),
        ("readings", "/api/readings/coldcells/%d/readings?range=24h" % cells[0]),
        ("latest", "/api/coldcells/%d/latest" % cells[1]),
        ("dashboard", "/api/dashboard/customer"),
        ("export", None),
        ("notifications", "/api/notifications?limit=20"),
    ]
    i = 0
    while not stop.is_set():
        if tok is None or time.time() - signed_at >= LOGIN_EVERY_S:
            t0 = time.time()
            st, raw = http(port, "POST", "/api/auth/login", {"email": email, "password": PASSWORD})
            stats.add(st, (time.time() - t0) * 1000, "login")
            if st == 200:
                tok, signed_at = json.loads(raw.decode())["accessToken"], time.time()
            else:
                stop.wait(1.0)
                continue
        what, path = paths[i % len(paths)]
        if path is None:
            path = "/api/readings/coldcells/%d/export.csv?from=%s&to=%s" % (
                cells[i % 2], quote(iso(now_ms() - 3600 * 1000)), quote(iso(now_ms())))
        st, _ = timed(what, "GET", path)
        if st == 401:
            tok = None
        i += 1
        stop.wait(HTTP_PAUSE_S)


# -- WebSocket feeds -----------------------------------------------------------------------
class Feed:
    def __init__(self, port, tok):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /api/ws?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (quote(tok, safe=""), key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("closed during the handshake")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if int(head.split()[1]) != 101:
            self.sock.close()
            raise OSError("upgrade refused: %r" % head[:100])
        self.sock.setblocking(False)
        self.messages = 0

    def pump(self):
        """Reads what is there; False when the server closed the feed."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                return False
            if not chunk:
                return False
            self.buf += chunk
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, off = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
            if len(self.buf) < off + n:
                break
            payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
            op = b0 & 0x0F
            if op == 0x1:
                self.messages += 1
            elif op == 0x9:
                self.send(0xA, payload)
            elif op == 0x8:
                return False
        return True

    def send(self, opcode, payload):
        mask = os.urandom(4)
        frame = bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(
            b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.setblocking(True)
        try:
            self.sock.sendall(frame)
        finally:
            self.sock.setblocking(False)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def feeds_thread(port, users, fstats, stop):
    sel = selectors.DefaultSelector()
    toks = {}

    def open_feed(email):
        if email not in toks:
            toks[email] = login(port, email, PASSWORD)
        try:
            f = Feed(port, toks[email])
        except OSError as e:
            fstats["refused"] += 1
            say("feed for %s refused: %s" % (email, e))
            return
        fstats["opened"] += 1
        sel.register(f.sock, selectors.EVENT_READ, (f, email))

    for k in range(FEEDS):
        open_feed(users[k % len(users)])
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.5):
            f, email = key.data
            if not f.pump():
                if stop.is_set():
                    break  # apid is stopping with the rest
                fstats["dropped"] += 1
                fstats["messages"] += f.messages
                sel.unregister(f.sock)
                f.close()
                say("feed of %s closed by the server; opening it again" % email)
                open_feed(email)
    for key in list(sel.get_map().values()):
        f, _ = key.data
        fstats["messages"] += f.messages
        sel.unregister(f.sock)
        f.close()


# -- sampling ------------------------------------------------------------------------------
def sample(pid):
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


# glibc places each arena other than the main one in its own heap, a mapping aligned to
# HEAP_MAX_SIZE (2 * 32 MiB on 64-bit); a thread's stack is an anonymous mapping right
# above its guard page (a small PROT_NONE mapping).
ARENA_ALIGN = 64 << 20
GUARD_MAX = 64 << 10
RSS_CLASSES = ("heap", "arenas", "stacks", "anon", "files")


def rss_classes(pid):
    """Rss in kB of each kind of mapping in /proc/<pid>/smaps: heap (the main arena, [heap]),
    arenas (glibc's other arenas), stacks (threads' and [stack]), anon (other anonymous
    memory: malloc's blocks of M_MMAP_THRESHOLD and more, libraries' own mmaps), files
    (libraries, SQLite's -shm); plus the number of thread stacks ("n_stacks")."""
    kb = dict.fromkeys(RSS_CLASSES, 0)
    kb["n_stacks"] = 0
    prev = None  # (end, perms, path, size) of the mapping before
    cur = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split(None, 5)
            if "-" in head[0] and ":" not in head[0]:
                start, end = (int(x, 16) for x in head[0].split("-"))
                perms, path = head[1], head[5].strip() if len(head) > 5 else ""
                if path == "[heap]":
                    cur = "heap"
                elif path == "[stack]":
                    cur = "stacks"
                elif path.startswith("["):
                    cur = "files"  # [vdso], [vvar]: the kernel's, a few pages
                elif path:
                    cur = "files"
                elif (prev is not None and prev[0] == start and prev[1].startswith("---")
                      and not prev[2] and prev[3] <= GUARD_MAX and perms.startswith("rw")):
                    cur = "stacks"
                    kb["n_stacks"] += 1
                elif start % ARENA_ALIGN == 0:
                    cur = "arenas"
                else:
                    cur = "anon"
                prev = (end, perms, path, end - start)
            elif head[0] == "Rss:":
                kb[cur] += int(head[1])
    return kb


def heap_kb(port):
    """apid's coldchain_heap_in_use_bytes in kB; -1 when /metrics did not answer."""
    st, raw = http(port, "GET", "/metrics")
    for line in raw.decode(errors="replace").splitlines() if st == 200 else ():
        if line.startswith("coldchain_heap_in_use_bytes "):
            return int(float(line.split()[1])) // 1024
    return -1


def slope_per_hour(points):
    """Least-squares slope of (t seconds, v) points, per hour; 0 with fewer than 2."""
    if len(points) < 2:
        return 0.0
    n = float(len(points))
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in points) / den * 3600.0


def percentile(sorted_v, p):
    if not sorted_v:
        return 0.0
    return sorted_v[min(len(sorted_v) - 1, int(p / 100.0 * len(sorted_v)))]


def log_errors(path):
    n = 0
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if '"level":"error"' in line or " Error:" in line:
                    n += 1
    except OSError:
        pass
    return n


def main():
    # SIGTERM (tools/soak.sh, timeout) unwinds like Ctrl-C: the finally blocks stop
    # everything that was started, by PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    daemons = ("mosquitto", "ingestd", "apid")
    env = {"RATE_LIMIT_API": "1000000", "RATE_LIMIT_AUTH": "1000000",
           "ACCESS_TOKEN_TTL_S": str(max(900, SOAK_S + 3600))}
    s = Stack(env=env)
    load = None
    stop = threading.Event()
    threads = []
    try:
        with s:
            t_setup = time.time()
            keys = os.path.join(s.dir, "keys.csv")
            users, cells = provision(s, keys)
            say("%d devices of %d customers provisioned in %.0f s (%s)"
                % (DEVICES, len(users), time.time() - t_setup, s.dir))
            count = int(RATE * SOAK_S)
            load_log = open(os.path.join(s.dir, "bench_load.log"), "wb")
            load_err = os.path.join(s.dir, "bench_load.err")
            load = harness.subprocess.Popen(
                [os.path.join(BUILD, "bench_load"), "--keys", keys, "--port", str(s.mqtt_port),
                 "--devices", str(DEVICES), "--count", str(count), "--rate", str(RATE),
                 "--high-ratio", str(HIGH_RATIO), "--inflight", "20",
                 "--timeout", str(SOAK_S + 120), "--quiet"],
                stdout=load_log, stderr=open(load_err, "wb"), start_new_session=True)
            load_log.close()
            stats = Stats()
            fstats = {"opened": 0, "dropped": 0, "refused": 0, "messages": 0}
            for k in range(HTTP_CLIENTS):
                threads.append(threading.Thread(target=http_client, daemon=True, args=(
                    s.http_port, users[k % len(users)], cells[k % len(cells)], stats, stop)))
            threads.append(threading.Thread(target=feeds_thread, daemon=True,
                                            args=(s.http_port, users, fstats, stop)))
            for t in threads:
                t.start()

            pids = {name: s.procs[name].pid for name in daemons}
            samples = {name: [] for name in daemons}
            heap = []  # (t, apid heap in use kB)
            classes = []  # (t, rss_classes(apid))
            t0 = time.time()
            next_sample = t0
            while time.time() - t0 < SOAK_S:
                if time.time() >= next_sample:
                    el = time.time() - t0
                    for name in daemons:
                        if s.procs[name].poll() is not None:
                            raise RuntimeError("%s exited with %s" % (name, s.procs[name].returncode))
                        samples[name].append((el,) + sample(pids[name]))
                    heap.append((el, heap_kb(s.http_port)))
                    classes.append((el, rss_classes(pids["apid"])))
                    say("t=%4.0f s  %s  apid heap %d kB (rss %s)  http=%d 5xx=%d feeds=%d/%d"
                        " dropped=%d" % (
                            el, "  ".join("%s %d kB %d fds" % (n, samples[n][-1][1],
                                                               samples[n][-1][2])
                                          for n in daemons), heap[-1][1],
                            " ".join("%s %d" % (c, classes[-1][1][c]) for c in RSS_CLASSES),
                            stats.requests, stats.status_5xx, fstats["opened"] - fstats["dropped"],
                            FEEDS, fstats["dropped"]))
                    next_sample += SAMPLE_S
                if load.poll() is not None and load.returncode != 0:
                    say("bench_load ended early (%s)" % load.returncode)
                time.sleep(0.5)
            el = time.time() - t0
            for name in daemons:
                samples[name].append((el,) + sample(pids[name]))
            heap.append((el, heap_kb(s.http_port)))
            classes.append((el, rss_classes(pids["apid"])))
            stop.set()
            for t in threads:
                t.join(60)
            try:
                load.wait(timeout=max(60, SOAK_S // 4))
            except harness.subprocess.TimeoutExpired:
                say("bench_load still publishing after the soak: stopping it")
                load.terminate()
                load.wait(30)
            published = acked = 0
            with open(os.path.join(s.dir, "bench_load.log")) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 3 and p[0] == "bench:" and p[1] == "load_published":
                        published = int(float(p[2]))
                    if len(p) >= 3 and p[0] == "bench:" and p[1] == "load_puback_count":
                        acked = int(float(p[2]))

            def stored():
                return s.scalar("SELECT COUNT(*) FROM readings r JOIN devices d ON"
                                " d.id = r.device_id WHERE d.serial_number LIKE 'SOAK-%'")
            try:
                wait_for(lambda: stored() >= acked, timeout=DRAIN_S, interval=1.0,
                         what="stored readings to catch up")
            except AssertionError as e:
                say(str(e))
            n_stored = stored()

            for name in daemons:
                pts = samples[name]
                after = [p for p in pts if p[0] >= WARMUP_S] or pts
                out("%s_rss_start_kb" % name, pts[0][1])
                out("%s_rss_end_kb" % name, pts[-1][1])
                out("%s_rss_slope_kb_per_h" % name, "%.0f" % slope_per_hour([(t, r) for t, r, _ in after]))
                out("%s_fds_start" % name, pts[0][2])
                out("%s_fds_end" % name, pts[-1][2])
                out("%s_fds_slope_per_h" % name, "%.1f" % slope_per_hour([(t, f) for t, _, f in after]))
            heap_after = [p for p in heap if p[0] >= WARMUP_S and p[1] >= 0] or heap
            out("apid_heap_start_kb", heap[0][1])
            out("apid_heap_end_kb", heap[-1][1])
            out("apid_heap_slope_kb_per_h", "%.0f" % slope_per_hour(heap_after))
            cls_after = [p for p in classes if p[0] >= WARMUP_S] or classes
            for c in RSS_CLASSES:
                out("apid_rss_%s_start_kb" % c, classes[0][1][c])
                out("apid_rss_%s_end_kb" % c, classes[-1][1][c])
                out("apid_rss_%s_slope_kb_per_h" % c,
                    "%.0f" % slope_per_hour([(t, k[c]) for t, k in cls_after]))
            out("apid_thread_stacks", classes[-1][1]["n_stacks"])
            lat = sorted(stats.lat_ms)
            out("duration_s", "%.0f" % el)
            out("samples", len(samples["apid"]))
            out("http_requests", stats.requests)
            out("http_5xx", stats.status_5xx)
            out("http_refused", stats.refused)
            out("http_other_status", sum(stats.other.values()))
            out("http_p50_ms", "%.1f" % percentile(lat, 50))
            out("http_p99_ms", "%.1f" % percentile(lat, 99))
            out("feeds_opened", fstats["opened"])
            out("feeds_dropped", fstats["dropped"])
            out("feeds_refused", fstats["refused"])
            out("feed_messages", fstats["messages"])
            out("readings_published", published)
            out("readings_acked", acked)
            out("readings_stored", n_stored)
            out("readings_missing", max(0, acked - n_stored))
            out("ingest_db_errors", int(s.metric("coldchain_ingest_db_errors_total") or 0))
            out("ingest_rejected", int(s.metric("coldchain_ingest_rejected_total") or 0))
            out("alerts_raised", s.scalar("SELECT COUNT(*) FROM alerts"))
            out("notifications", s.scalar("SELECT COUNT(*) FROM notifications"))
            for name in daemons:
                out("%s_log_errors" % name, log_errors(s.logs[name]))
            if stats.other:
                say("non-2xx answers: %r" % stats.other)
    finally:
        stop.set()
        if load is not None and load.poll() is None:
            load.terminate()
            try:
                load.wait(10)
            except harness.subprocess.TimeoutExpired:
                load.kill()
                load.wait()


if __name__ == "__main__":
    main()
