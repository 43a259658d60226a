"""apid's memory stays flat once every worker has served (issue 12 "Soak": make soak saw apid
grow 73 -> 346 MB in 30 minutes). civetweb hands each connection to the worker that has
waited longest, so under a steady load all API_NUM_THREADS + API_SLOW_CLIENTS_MAX (1,040)
workers serve in turn; with glibc's per-thread cache of freed blocks (tcache, up to about
235 KiB a thread, given back only when the thread ends) each worker kept its own. apid now
runs with that cache off (GLIBC_TUNABLES glibc.malloc.tcache_count=0, set by apid itself;
an operator's own GLIBC_TUNABLES is kept and a tcache_count given there wins).

heap_flat_after_every_worker_served: once the pooled connections have prepared the
statements of a few routes and every worker has served one request, ROUNDS more rounds of
WORKERS concurrent requests (each worker now meets another route) leave
coldchain_heap_in_use_bytes (apid /metrics: live blocks and per-thread caches) within
HEAP_GROWTH_MAX. Rounds in which the pool opens one of its API_DB_CONNS connections for the
first time (coldchain_db_pool_open_connections grows; each costs a few hundred KiB, once)
start the count over. Memory is compared, never time."""
import resource
import socket
import time

from apitest import NO_LIMITS, Cases, Stack, expect, token

WORKERS = 900            # concurrent connections per round: most of apid's 1,040 workers
ROUNDS = 3               # rounds measured after the first one that reaches every worker ...
MAX_ROUNDS = 10          # ... in which no pooled connection is opened for the first time
WARM_CLIENTS = 48        # concurrent requests per warm-up round: more than API_DB_CONNS (32)
HEAP_GROWTH_MAX = 2 << 20  # bytes over ROUNDS: 0.1-0.8 MB seen; with thread caches 5.9 MB
PATHS = ["/api/devices", "/api/alerts?limit=50", "/api/coldcells", "/api/locations",
         "/api/auth/me", "/api/notifications?limit=20"]


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def burst(port, tok, n, shift):
    """n connections opened first, then each sends one GET (paths rotated by shift) and
    reads its answer to the end: n requests in the workers at once. The number of 200s."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(n)]
    ok = 0
    try:
        time.sleep(0.3)  # every connection accepted and waiting in a worker
        for i, c in enumerate(socks):
            path = PATHS[(i + shift) % len(PATHS)]
            c.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                       "Connection: close\r\n\r\n" % (path, tok)).encode())
        for c in socks:
            data = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                data += d
            ok += data.startswith(b"HTTP/1.1 200 ")
    finally:
        for c in socks:
            c.close()
    return ok


def sample(s):
    """(coldchain_heap_in_use_bytes, coldchain_db_pool_open_connections) of apid /metrics."""
    st, _, body = s.http("GET", "/metrics")
    expect(st == 200, "/metrics: %s" % st)
    if isinstance(body, bytes):
        body = body.decode()
    got = {}
    for line in body.splitlines():
        name, _, value = line.partition(" ")
        if name in ("coldchain_heap_in_use_bytes", "coldchain_db_pool_open_connections"):
            got[name] = int(float(value))
    expect(len(got) == 2, "/metrics lacks the heap or pool gauge: %r" % got)
    return got["coldchain_heap_in_use_bytes"], got["coldchain_db_pool_open_connections"]


def main():
    cases = Cases()
    raise_nofile(WORKERS + 256)
    with Stack(ingestd=False, env=NO_LIMITS) as s:
        def heap_flat():
            tok = token(s, "admin")
            for shift in range(len(PATHS)):
                for _ in range(3):
                    expect(burst(s.http_port, tok, WARM_CLIENTS, shift) == WARM_CLIENTS,
                           "warm-up: a request failed")
            expect(burst(s.http_port, tok, WORKERS, 0) == WORKERS, "round 0: a request failed")
            base, opened = sample(s)
            seen, quiet = [], 0
            for r in range(1, MAX_ROUNDS + 1):
                expect(burst(s.http_port, tok, WORKERS, r) == WORKERS,
                       "round %d: a request failed" % r)
                heap, now_open = sample(s)
                if now_open != opened:  # a pooled connection's first use: start over
                    base, opened, seen, quiet = heap, now_open, [], 0
                    continue
                seen.append(heap)
                quiet += 1
                if quiet == ROUNDS:
                    break
            expect(quiet == ROUNDS, "the pool opened connections in every round")
            expect(seen[-1] - base <= HEAP_GROWTH_MAX,
                   "heap in use %d -> %s bytes over %d rounds of %d requests (at most +%d)"
                   % (base, seen, ROUNDS, WORKERS, HEAP_GROWTH_MAX))
        cases.run("heap_flat_after_every_worker_served", heap_flat)

    # An operator's own GLIBC_TUNABLES is kept and extended: apid executes itself once more,
    # never in a loop, and serves.
    with Stack(ingestd=False, seed=False,
               env=dict(NO_LIMITS, GLIBC_TUNABLES="glibc.malloc.arena_max=4")) as s:
        def serves():
            st, _, _ = s.http("GET", "/ready")
            expect(st == 200, "/ready: %s" % st)
            expect(s.procs["apid"].poll() is None, "apid exited")
        cases.run("serves_with_operator_tunables", serves)
    cases.exit()


if __name__ == "__main__":
    main()
