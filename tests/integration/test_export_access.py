"""The CSV export reads page by page, each page in its own short transaction, so it can
outlive the request's access check by hours when the client reads slowly (issue 12 item 7
made it so). Access must hold for every page, not only the first: a user disabled, or a
technician unlinked from the customer, while the export runs gets no further page; the
transfer ends without its last chunk (a truncated download, never a short file that
looks complete)."""
import socket
import time
import urllib.parse

from apitest import NO_LIMITS, Cases, Stack, expect, token

ROWS = 150000         # readings in the window (one every 0.5 s): 150 pages, about 13 MB,
                      # more than the kernel's socket buffers hold (tcp_wmem: 4 MB)
HOUR_MS = 3600000


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".%03dZ" % (ms % 1000)


def load_rows(s, device_id, cell_id, t0):
    s.sql_many("INSERT INTO readings (device_id, cold_cell_id, ts, temperature, humidity,"
               " power_status, door_status, battery_level, received_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               ((device_id, cell_id, t0 + i * 500, -18.0, 40, 1, 0, 90, t0 + i * 500)
                for i in range(ROWS)))


def write_sql(s, sql):
    s.sql(sql)


def open_export(port, path, tok, rcvbuf=4096):
    sk = socket.socket()
    if rcvbuf:
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sk.settimeout(30)
    sk.connect(("127.0.0.1", port))
    sk.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                "Connection: close\r\n\r\n" % (path, tok)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sk.recv(4096)
        expect(chunk, "closed before the head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    expect(head.startswith(b"HTTP/1.1 200"), head[:80])
    return sk, rest


def read_all(sk, buf):
    while True:
        try:
            chunk = sk.recv(1 << 16)
        except ConnectionResetError:
            return buf
        if not chunk:
            return buf
        buf += chunk


def main():
    cases = Cases()
    with Stack(ingestd=False, env=NO_LIMITS) as s:
        serial = "CC-FRZ-0001"
        dev_id, cell = s.sql("SELECT id, cold_cell_id FROM devices WHERE serial_number = ?",
                             (serial,))[0]
        now = int(time.time() * 1000)
        t0 = (now - 3 * 86400000) // HOUR_MS * HOUR_MS
        load_rows(s, dev_id, cell, t0)
        path = "/api/readings/coldcells/%d/export.csv?from=%s&to=%s" % (
            cell, urllib.parse.quote(iso(t0)), urllib.parse.quote(iso(t0 + 86400000)))
        full_len = ROWS * 60  # a lower bound of the whole export's bytes

        def export_stops(who, revoke, restore):
            tok = token(s, who)
            sk, buf = open_export(s.http_port, path, tok)
            try:
                # Read a little, so that apid is blocked on a page well before the end.
                end = time.time() + 1.0
                while time.time() < end:
                    buf += sk.recv(2048)
                    time.sleep(0.05)
                expect(len(buf) < full_len // 2, "the export was not slowed (%d)" % len(buf))
                write_sql(s, revoke)
                buf = read_all(sk, buf)
            finally:
                sk.close()
                write_sql(s, restore)
            expect(not buf.endswith(b"0\r\n\r\n"),
                   "the export ran to its last chunk (%d bytes) after access ended" % len(buf))
            expect(len(buf) < full_len, "every row went out (%d bytes)" % len(buf))

        cases.run("disabled_user_gets_no_further_page",
                  export_stops, "customer1",
                  "UPDATE users SET disabled = 1 WHERE email = 'customer1@example.com'",
                  "UPDATE users SET disabled = 0 WHERE email = 'customer1@example.com'")

        owner = s.scalar("SELECT l.customer_id FROM cold_cells c JOIN locations l"
                         " ON l.id = c.location_id WHERE c.id = ?", (cell,))
        tech = s.scalar("SELECT technician_id FROM technician_customers WHERE customer_id = ?",
                        (owner,))
        temail = s.scalar("SELECT email FROM users WHERE id = ?", (tech,))
        expect(temail is not None, "the seed links no technician to customer %s" % owner)
        cases.run("unlinked_technician_gets_no_further_page",
                  export_stops, temail.split("@")[0],
                  "DELETE FROM technician_customers WHERE technician_id = %d" % tech,
                  "INSERT INTO technician_customers (technician_id, customer_id)"
                  " VALUES (%d, %d)" % (tech, owner))

        def fast_export_complete():
            tok = token(s, "customer1")
            sk, rest = open_export(s.http_port, path, tok, rcvbuf=None)
            buf = read_all(sk, rest)
            sk.close()
            expect(buf.endswith(b"0\r\n\r\n"), "the export did not end with its last chunk")
            expect(buf.count(b"\r\n") > ROWS, "rows missing (%d lines)" % buf.count(b"\r\n"))
        cases.run("an_export_with_access_throughout_is_complete", fast_export_complete)
    cases.exit()


if __name__ == "__main__":
    main()
