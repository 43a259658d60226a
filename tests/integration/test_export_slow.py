"""The CSV export (GET /api/readings/coldcells/:id/export.csv) to a slow client (issue 12
item 7): it must not hold one read snapshot for as long as the client takes to read, so
the WAL can be checkpointed while ingest goes on, and the bytes are exactly those of a
fast export; a client that stops reading is dropped after API_REQUEST_TIMEOUT_MS.

The test's own connection asks SQLite for a passive checkpoint while the slow export is
under way and writes are landing: with a snapshot pinned since the export began, the
frames written after it can never be checkpointed (checkpointed < log); with an export
that reads page by page, each in a short transaction, they can.

On PostgreSQL (CC_TEST_STORE=pg) the same holds in PostgreSQL's terms: a snapshot held for
the whole export would keep VACUUM from removing anything newer than it. The probe reads
pg_stat_activity: the oldest snapshot (backend_xmin) any other backend holds must be younger
than PG_SNAPSHOT_MAX_S in most probes while ingest goes on."""
import os
import socket
import sqlite3
import threading
import time
import urllib.parse

from apitest import NO_LIMITS, Cases, Stack, expect, token

ROWS = 60000            # readings in the exported window (about 7 MB of CSV)
SLOW_READ = 4096        # bytes the slow client reads at a time ...
SLOW_EVERY_S = 0.1      # ... this often (40 KB/s)
SLOW_FOR_S = 6.0        # how long it reads slowly before it drains the rest
WRITE_TIMEOUT_S = 5.0   # apid's API_REQUEST_TIMEOUT_MS
HOUR_MS = 3600000
PG_SNAPSHOT_MAX_S = 1.0  # the oldest snapshot another backend may hold (a page takes ms)
PG_OLDEST_SNAPSHOT = ("SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)"
                      " FROM pg_stat_activity WHERE datname = current_database()"
                      " AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL")


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".%03dZ" % (ms % 1000)


def load_rows(s, device_id, cell_id, t0):
    s.sql_many("INSERT INTO readings (device_id, cold_cell_id, ts, temperature, humidity,"
               " power_status, door_status, battery_level, received_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [(device_id, cell_id, t0 + i * 1000, -18.0 + (i % 97) / 10.0, 40 + i % 20,
                 1, int(i % 5 == 0), 90, t0 + i * 1000 + 250) for i in range(ROWS)])


class Probe:
    """What a snapshot pinned since the export began would prevent: on SQLite a passive
    checkpoint of the whole WAL, on PostgreSQL a young oldest snapshot. ok(p) judges one
    probe."""

    def __init__(self, s):
        self.pg = s.pg is not None
        self.con = s.pg.connect() if self.pg else sqlite3.connect(s.db_path, timeout=30)
        if self.pg:
            self.con.autocommit = True  # no snapshot of the probe's own held open

    def take(self):
        if self.pg:
            with self.con.cursor() as cur:
                cur.execute(PG_OLDEST_SNAPSHOT)
                return float(cur.fetchone()[0])
        busy, log, ckpt = self.con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return (log, ckpt)

    def ok(self, p):
        return p < PG_SNAPSHOT_MAX_S if self.pg else (p[0] >= 0 and p[1] == p[0])

    def close(self):
        self.con.close()


def open_export(port, path, tok, rcvbuf=None):
    """A raw HTTP/1.1 GET of the export; returns the socket and the bytes after the head."""
    sk = socket.socket()
    if rcvbuf:
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sk.settimeout(30)
    sk.connect(("127.0.0.1", port))
    sk.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                "Connection: close\r\n\r\n" % (path, tok)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sk.recv(SLOW_READ)
        expect(chunk, "closed before the head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    expect(head.startswith(b"HTTP/1.1 200"), head[:80])
    expect(b"transfer-encoding: chunked" in head.lower(), head)
    return sk, rest


def dechunk(raw):
    """The body of a chunked transfer; raises if the final chunk is missing."""
    out, pos = [], 0
    while True:
        eol = raw.index(b"\r\n", pos)
        n = int(raw[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if n == 0:
            return b"".join(out)
        out.append(raw[pos:pos + n])
        expect(raw[pos + n:pos + n + 2] == b"\r\n", "bad chunk end")
        pos += n + 2


def read_all(sk, buf):
    while True:
        chunk = sk.recv(1 << 16)
        if not chunk:
            return buf
        buf += chunk


def main():
    cases = Cases()
    with Stack(ingestd=False, env=NO_LIMITS) as s:
        serial = "CC-FRZ-0001"
        dev_id, cell = s.sql("SELECT id, cold_cell_id FROM devices WHERE serial_number = ?",
                             (serial,))[0]
        other = [k for k in s.keys if k != serial][0]
        tok = token(s, "customer1")
        now = int(time.time() * 1000)
        t0 = (now - 3 * 86400000) // HOUR_MS * HOUR_MS
        load_rows(s, dev_id, cell, t0)
        path = "/api/readings/coldcells/%d/export.csv?from=%s&to=%s" % (
            cell, urllib.parse.quote(iso(t0)), urllib.parse.quote(iso(t0 + 86400000)))

        fast = {}

        def fast_export():
            sk, rest = open_export(s.http_port, path, tok)
            body = dechunk(read_all(sk, rest))
            sk.close()
            lines = body.split(b"\r\n")
            expect(lines[0].startswith(b"ts,coldCellId,deviceId"), lines[0])
            expect(len(lines) == ROWS + 2 and lines[-1] == b"", "%d lines" % len(lines))
            fast["body"] = body
        cases.run("fast_export_has_every_row", fast_export)

        stop = threading.Event()
        posted = [0]

        def ingest():
            # HTTP ingestion through apid (the same path as MQTT's alert engine and
            # store), readings of now: outside the exported window.
            while not stop.is_set():
                st, _, _ = s.http("POST", "/api/readings/devices/%s/readings" % other,
                                  {"temperature": 4.0, "ts": int(time.time() * 1000)},
                                  headers={"x-device-key": s.keys[other]})
                if st == 201:
                    posted[0] += 1
                stop.wait(0.02)

        def slow_export_checkpoints():
            sk, buf = open_export(s.http_port, path, tok, rcvbuf=8192)
            w = threading.Thread(target=ingest, daemon=True)
            w.start()
            probes = []
            probe = Probe(s)
            try:
                end = time.time() + SLOW_FOR_S
                next_probe = time.time() + 1.0
                while time.time() < end:
                    buf += sk.recv(SLOW_READ)
                    time.sleep(SLOW_EVERY_S)
                    if time.time() >= next_probe:
                        probes.append((posted[0], probe.take()))
                        next_probe = time.time() + 1.0
                stop.set()
                w.join(10)
                expect(len(buf) < len(fast["body"]) // 2,
                       "the export was not slowed down (%d bytes read)" % len(buf))
                buf = read_all(sk, buf)
            finally:
                stop.set()
                probe.close()
                sk.close()
            expect(posted[0] > 20, "ingest went on (%d readings)" % posted[0])
            good = [p for p in probes if probe.ok(p[1])]
            expect(len(good) * 2 > len(probes),
                   "a snapshot stayed pinned while the slow export ran: (posted, %s) %r"
                   % ("oldest snapshot s" if probe.pg else "(wal frames, checkpointed)", probes))
            body = dechunk(buf)
            expect(body == fast["body"], "slow export differs from the fast one (%d vs %d bytes)"
                   % (len(body), len(fast["body"])))
            if probe.pg:
                print("  (posted, oldest snapshot s) during the slow export: %r" % probes)
            else:
                print("  (posted, (wal frames, checkpointed)) during the slow export: %r; -wal %d"
                      " bytes" % (probes, os.path.getsize(s.db_path + "-wal")))
        cases.run("slow_export_lets_the_wal_checkpoint_and_equals_the_fast_one"
                  if s.pg is None else "slow_export_pins_no_snapshot_and_equals_the_fast_one",
                  slow_export_checkpoints)

        def stalled_reader_is_dropped():
            sk, _ = open_export(s.http_port, path, tok, rcvbuf=8192)
            t_start = time.time()
            try:
                def failed():
                    with open(s.logs["apid"], "rb") as f:
                        return b"csv_export_failed" in f.read()
                deadline = t_start + WRITE_TIMEOUT_S + 10
                while time.time() < deadline and not failed():
                    time.sleep(0.25)
                expect(failed(), "apid still writing to a client that reads nothing after %.0f s"
                       % (time.time() - t_start))
            finally:
                sk.close()
            st, _, body = s.http("GET", "/api/auth/me", token=tok)
            expect(st == 200, "apid after the stalled export: %s %r" % (st, body))
        cases.run("a_client_that_stops_reading_is_dropped_after_the_write_timeout",
                  stalled_reader_is_dropped)
    cases.exit()


if __name__ == "__main__":
    main()
