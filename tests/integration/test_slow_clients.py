"""Slow and idle HTTP clients never starve apid (SPEC §5 "Live feed", last sentence; issue 12
item 7): while 1,000 connections trickle their request headers one byte at a time, or open
and send nothing, /ready and an authenticated GET (/api/auth/me) each answer within 1 s.
A connection that has not sent its whole request head within API_REQUEST_TIMEOUT_MS is
closed by apid. However many workers serve requests, apid keeps at most API_DB_CONNS
SQLite connections; it raises RLIMIT_NOFILE to what its limits need at start, or refuses
to start naming the limit.

Plain sockets and select(); the tricklers are one thread that sends one byte to each open
socket every TRICKLE_EVERY_S."""
import os
import resource
import select
import socket
import subprocess
import threading
import time

from apitest import NO_LIMITS, Cases, Stack, expect, token
from harness import BUILD, wait_port

SLOW = 1000              # connections that trickle or idle (SPEC: 1,000)
TRICKLE_EVERY_S = 0.5    # one byte per connection per round
ANSWER_WITHIN_S = 1.0    # SPEC §5
HEADER_TIMEOUT_S = 5.0   # apid's API_REQUEST_TIMEOUT_MS (apid/main.c)
HEADER_MARGIN_S = 4.0
DB_CONNS = 32            # apid's API_DB_CONNS (apid/dbpool.h)
OWN_CONNS = 2            # connections outside the pool (the live feed's)
CLIENTS = 64             # concurrent clients ...
REQUESTS_PER_CLIENT = 25  # ... each sending this many requests, one connection each
LOGINS = 150             # logins at once, each from an address of its own
HEAD = b"GET /api/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200 + b"\r\n"


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def timed_get(port, path, tok=None, timeout=10.0):
    """(status, seconds) of one GET on a fresh connection; status None when no answer came."""
    t0 = time.time()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except socket.timeout:
        return None, time.time() - t0
    try:
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % path
        if tok:
            req += "Authorization: Bearer %s\r\n" % tok
        s.sendall((req + "\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return None, time.time() - t0
    finally:
        s.close()
    if not data.startswith(b"HTTP/"):
        return None, time.time() - t0
    return int(data.split()[1]), time.time() - t0


class Slow:
    """SLOW connections: even ones trickle HEAD a byte at a time, odd ones send nothing."""

    def __init__(self, port, n):
        self.socks, self.sent = [], []
        for i in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            self.socks.append(s)
            self.sent.append(0)
        self.opened_at = time.time()
        self.stop = threading.Event()
        self.ended = set()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            for i, s in enumerate(self.socks):
                if i % 2 == 0 and s.fileno() >= 0 and self.sent[i] < len(HEAD):
                    try:
                        if s.send(HEAD[self.sent[i]:self.sent[i] + 1]) == 1:
                            self.sent[i] += 1
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        pass
            self.stop.wait(TRICKLE_EVERY_S)

    def count_closed(self):
        """How many of the sockets the server has closed (EOF or reset)."""
        live = [s for s in self.socks if s.fileno() >= 0 and s not in self.ended]
        for k in range(0, len(live), 500):
            r, _, _ = select.select(live[k:k + 500], [], [], 0)
            for s in r:
                try:
                    if s.recv(4096) == b"":
                        self.ended.add(s)
                except (ConnectionResetError, BrokenPipeError):
                    self.ended.add(s)
                except BlockingIOError:
                    pass
        return len(self.ended)

    def close(self):
        self.stop.set()
        self.t.join(5)
        for s in self.socks:
            s.close()


def main():
    raise_nofile(4 * SLOW + 256)
    cases = Cases()
    with Stack(ingestd=False, env=NO_LIMITS) as s:
        tok = token(s, "customer1")
        slow = Slow(s.http_port, SLOW)
        try:
            time.sleep(1.5)  # every slow connection is open and has sent a few bytes

            def ready_answers():
                for _ in range(5):
                    st, secs = timed_get(s.http_port, "/ready")
                    expect(st == 200 and secs <= ANSWER_WITHIN_S,
                           "/ready: status %s after %.2f s with %d slow connections"
                           % (st, secs, SLOW))
                    time.sleep(0.1)
            cases.run("ready_answers_within_1s_while_1000_connections_trickle", ready_answers)

            def me_answers():
                for _ in range(5):
                    st, secs = timed_get(s.http_port, "/api/auth/me", tok)
                    expect(st == 200 and secs <= ANSWER_WITHIN_S,
                           "/api/auth/me: status %s after %.2f s with %d slow connections"
                           % (st, secs, SLOW))
                    time.sleep(0.1)
            cases.run("authenticated_get_answers_within_1s_while_1000_connections_trickle",
                      me_answers)

            def slow_heads_are_cut():
                # Neither the tricklers (HEAD takes longer than the timeout at this pace)
                # nor the idle ones finish a request head: apid closes them all once
                # API_REQUEST_TIMEOUT_MS has passed since they connected (a margin of
                # HEADER_MARGIN_S for a loaded machine).
                expect(len(HEAD) * TRICKLE_EVERY_S > 2 * HEADER_TIMEOUT_S, "test pace")
                deadline = slow.opened_at + HEADER_TIMEOUT_S + HEADER_MARGIN_S
                closed = 0
                while time.time() < deadline and closed < SLOW:
                    time.sleep(0.25)
                    closed = slow.count_closed()
                expect(closed == SLOW, "%d of %d slow connections closed by apid within %.0f s"
                       " of connecting" % (closed, SLOW, HEADER_TIMEOUT_S + HEADER_MARGIN_S))
            cases.run("connections_without_a_request_head_are_closed_after_the_header_timeout",
                      slow_heads_are_cut)
        finally:
            slow.close()

        def still_serving():
            st, secs = timed_get(s.http_port, "/api/auth/me", tok)
            expect(st == 200, "after the slow clients: %s" % st)
        cases.run("apid_serves_after_the_slow_clients_are_gone", still_serving)

        def connections_pooled():
            # Requests from many clients at once go round civetweb's 1,000+ workers, yet
            # apid never has more than API_DB_CONNS SQLite connections open.
            statuses = []

            def client():
                for _ in range(REQUESTS_PER_CLIENT):
                    statuses.append(timed_get(s.http_port, "/api/devices", tok)[0])
            ts = [threading.Thread(target=client) for _ in range(CLIENTS)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(120)
            expect(statuses.count(200) == CLIENTS * REQUESTS_PER_CLIENT,
                   "statuses: %r" % sorted(set(statuses), key=str))
            pid = s.procs["apid"].pid
            open_db = 0
            if s.pg is not None:  # apid's server connections, by their application_name
                open_db = s.scalar("SELECT count(*) FROM pg_stat_activity"
                                   " WHERE application_name = 'apid'")
            else:
                db = os.path.realpath(s.db_path)
                for fd in os.listdir("/proc/%d/fd" % pid):
                    try:
                        if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == db:
                            open_db += 1
                    except OSError:
                        pass
            expect(0 < open_db <= DB_CONNS + OWN_CONNS, "apid holds %d connections to the"
                   " database (at most %d + %d)" % (open_db, DB_CONNS, OWN_CONNS))
        cases.run("database_connections_stay_within_the_pool", connections_pooled)

        def logins_hold_no_connection_while_waiting():
            # A login waits for one of CC_SCRYPT_CONCURRENT_MAX (4) password-hash slots, ~0.1 s
            # each. It used to wait holding a pooled database connection: LOGINS logins at
            # once (from 30 addresses the auth limit, 5 each, lets through) held all 32, so
            # an authenticated GET waited API_DB_WAIT_MS (5 s) and 93 of 150 logins answered
            # 503. Each login comes from its own loopback address, as from many clients.
            body = b'{"email":"nobody@example.com","password":"wrong-password"}'
            req = (b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                   % len(body)) + body
            statuses = []

            def login(i):
                c = socket.socket()
                c.settimeout(120)
                try:
                    c.bind(("127.0.%d.%d" % (1 + i // 250, 1 + i % 250), 0))
                    c.connect(("127.0.0.1", s.http_port))
                    c.sendall(req)
                    statuses.append(int(c.recv(64).split()[1]))
                finally:
                    c.close()
            ts = [threading.Thread(target=login, args=(i,)) for i in range(LOGINS)]
            for t in ts:
                t.start()
            gets = []
            while any(t.is_alive() for t in ts):
                gets.append(timed_get(s.http_port, "/api/auth/me", tok))
                time.sleep(0.1)
            for t in ts:
                t.join(120)
            expect(statuses == [401] * LOGINS, "login answers: %r" %
                   {st: statuses.count(st) for st in set(statuses)})
            expect(gets and all(st == 200 and secs <= ANSWER_WITHIN_S for st, secs in gets),
                   "/api/auth/me during %d logins: %r" % (LOGINS, gets))
        cases.run("logins_waiting_for_a_password_hash_slot_hold_no_database_connection",
                  logins_hold_no_connection_while_waiting)

    def fd_limits():
        # The soft limit is raised to what the limits need (and logged); a hard limit
        # below that stops apid at start with a message naming it.
        def low_limit(soft, hard):
            return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        expect(hard >= 8192, "this machine's hard limit %d is too low for apid" % hard)
        with Stack(ingestd=False, apid=False, env=NO_LIMITS) as s2:
            p = subprocess.run([os.path.join(BUILD, "apid")], env=s2.env(),
                               preexec_fn=low_limit(256, 256), capture_output=True, text=True,
                               timeout=30)
            expect(p.returncode == 2, "apid with a hard limit of 256 files: exit %s, %s"
                   % (p.returncode, p.stderr[-300:]))
            expect("RLIMIT_NOFILE" in p.stderr, "no message naming the limit: %s" % p.stderr[-300:])
            log = os.path.join(s2.dir, "apid-raised.log")
            with open(log, "wb") as f:
                ap = subprocess.Popen([os.path.join(BUILD, "apid")], env=s2.env(), stdout=f,
                                      stderr=f, preexec_fn=low_limit(256, hard))
            try:
                wait_port(s2.http_port, timeout=20, proc=ap)
                with open("/proc/%d/limits" % ap.pid) as f:
                    soft = [l.split()[3] for l in f if l.startswith("Max open files")][0]
                expect(int(soft) > 256, "soft limit not raised: %s" % soft)
                with open(log, "rb") as f:
                    expect(b"fd_limit" in f.read(), "the raised limit is not logged")
            finally:
                ap.terminate()
                ap.wait(20)
    cases.run("fd_limit_raised_at_start_or_refused_by_name", fd_limits)
    cases.exit()


if __name__ == "__main__":
    main()
