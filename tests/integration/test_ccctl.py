"""ccctl device import, POST /api/devices/bulk and ccctl backup against a real stack.

- import CSV and JSON: the keys are printed once (stdout only, never in the database or a
  log), and each one authenticates at the broker (mosquitto + the coldchain plugin);
- a bad file (malformed rows, or an unknown cell / existing serial) creates nothing and
  names every bad line;
- POST /api/devices/bulk: 201 with [{serialNumber, apiKey, id}]; a customer bulk-creating
  in another customer's cell gets 404 and nothing is created;
- ccctl backup while ingestd is ingesting: the copy passes PRAGMA integrity_check and its
  row counts are plausible."""
import json
import os
import re
import sqlite3
import stat
import subprocess
import threading
import time

from apitest import NO_LIMITS, expect, expect_error, token
from harness import Cases, Stack, wait_for

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

KEY_RE = re.compile(r"^[0-9a-f]{64}$")


def write(stack, name, text):
    path = os.path.join(stack.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def device_count(s):
    return s.scalar("SELECT count(*) FROM devices")


def parse_keys(stdout):
    lines = stdout.strip().splitlines()
    expect(lines and lines[0] == "serialNumber,apiKey", "no CSV header: %r" % stdout)
    keys = {}
    for line in lines[1:]:
        serial, key = line.split(",")
        expect(KEY_RE.match(key), "not a key: %r" % line)
        keys[serial] = key
    return keys


def authenticates(s, serial, key):
    try:
        c = s.mqtt_client(serial, key)
    except ConnectionRefusedError:
        return False
    c.disconnect()
    c.loop_stop()
    return True


def check_keys(s, keys, p):
    """Each key: once on stdout, nowhere else; works at the broker; a wrong one does not."""
    for serial, key in keys.items():
        expect(p.stdout.count(key) == 1, "key of %s printed %d times" % (serial,
                                                                          p.stdout.count(key)))
        expect(key not in p.stderr, "key of %s on stderr" % serial)
        expect(s.scalar("SELECT count(*) FROM devices WHERE serial_number = ? AND "
                        "status = 'NEVER_SEEN' AND api_key_hash != ?", (serial, key)) == 1,
               "device %s not stored (or its key stored in clear)" % serial)
        expect(authenticates(s, serial, key), "%s: its key is refused by the broker" % serial)
        expect(not authenticates(s, serial, "0" * 64), "%s: a wrong key is accepted" % serial)
    for name, path in s.logs.items():
        with open(path, errors="replace") as f:
            text = f.read()
        for key in keys.values():
            expect(key not in text, "a key appears in the %s log" % name)


def publish_and_store(s, serial, key):
    c = s.mqtt_client(serial, key)
    try:
        ts = int(time.time() * 1000)
        c.publish("devices/%s/readings" % serial, json.dumps({"temperature": 4.2, "ts": ts}),
                  qos=1).wait_for_publish(10)
        wait_for(lambda: s.scalar("SELECT count(*) FROM readings r JOIN devices d ON "
                                  "d.id = r.device_id WHERE d.serial_number = ?",
                                  (serial,)) == 1, timeout=15, what="reading stored")
    finally:
        c.disconnect()
        c.loop_stop()


def schema_version(s):
    if s.pg is not None:
        return s.scalar("SELECT max(version) FROM schema_migrations")
    return s.scalar("PRAGMA user_version")


def restored_pg_counts(s, dump):
    """A pg_dump archive restored into a new database of the same cluster: its counts."""
    con = s.pg.connect()
    con.autocommit = True
    try:
        con.cursor().execute("CREATE DATABASE restored")
    finally:
        con.close()
    p = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "-h", s.pg.sock_dir,
                        "-p", str(s.pg.port), "-U", "coldchain", "-d", "restored", dump],
                       capture_output=True, text=True, timeout=120)
    expect(p.returncode == 0, "pg_restore: %s" % p.stderr[-500:])
    con = s.pg.connect("restored")
    try:
        cur = con.cursor()
        out = []
        for q in ("SELECT count(*) FROM readings", "SELECT count(*) FROM users",
                  "SELECT count(*) FROM devices", "SELECT max(version) FROM schema_migrations"):
            cur.execute(q)
            out.append(cur.fetchone()[0])
        return out
    finally:
        con.close()


def main():
    cases = Cases()
    with Stack(env=NO_LIMITS) as s:
        seeded = sorted(s.keys)

        def import_csv():
            before = device_count(s)
            path = write(s, "devices.csv",
                         "serialNumber,coldCellId,firmwareVersion\r\n"
                         "IMP-CSV-1,1,1.0.0\r\n"
                         "IMP-CSV-2,2,\r\n"
                         "\"IMP-CSV-3\",4,\"2.1, beta\"\r\n")
            p = s.ccctl("device", "import", path)
            keys = parse_keys(p.stdout)
            expect(sorted(keys) == ["IMP-CSV-1", "IMP-CSV-2", "IMP-CSV-3"], "keys %r" % keys)
            expect(device_count(s) == before + 3, "not 3 devices created")
            expect("3/3" in p.stderr, "no progress line on stderr: %r" % p.stderr)
            expect(s.scalar("SELECT firmware_version FROM devices WHERE serial_number = "
                            "'IMP-CSV-3'") == "2.1, beta", "quoted firmware not kept")
            check_keys(s, keys, p)
            publish_and_store(s, "IMP-CSV-1", keys["IMP-CSV-1"])
        cases.run("import_csv_keys_once_and_they_authenticate", import_csv)

        def import_json():
            before = device_count(s)
            path = write(s, "devices.data", json.dumps([
                {"serialNumber": "IMP-JSON-1", "coldCellId": 3, "firmwareVersion": "9.9"},
                {"serialNumber": "IMP-JSON-2", "coldCellId": 1},
            ], indent=1))
            p = s.ccctl("device", "import", path, "--format", "json")
            keys = parse_keys(p.stdout)
            expect(sorted(keys) == ["IMP-JSON-1", "IMP-JSON-2"], "keys %r" % keys)
            expect(device_count(s) == before + 2, "not 2 devices created")
            check_keys(s, keys, p)
        cases.run("import_json_keys_once_and_they_authenticate", import_json)

        def import_bad_rows():
            before = device_count(s)
            path = write(s, "bad.csv",
                         "serialNumber,coldCellId,firmwareVersion\n"
                         "GOOD-1,1,\n"
                         "bad serial!,1,\n"       # line 3
                         "GOOD-2,x,\n"            # line 4
                         "GOOD-3,1\n"             # line 5
                         "GOOD-1,2,\n")           # line 6: duplicate
            p = s.ccctl("device", "import", path, check=False)
            expect(p.returncode != 0, "a bad file was accepted")
            expect(device_count(s) == before, "a bad file created devices")
            expect(p.stdout.strip() == "", "keys printed for a failed import: %r" % p.stdout)
            for line in (3, 4, 5, 6):
                expect("bad.csv:%d:" % line in p.stderr, "line %d not reported: %s"
                       % (line, p.stderr))
            expect("bad.csv:2:" not in p.stderr, "a good line reported")
        cases.run("import_bad_rows_creates_nothing_and_names_every_line", import_bad_rows)

        def import_bad_targets():
            before = device_count(s)
            rows = [{"serialNumber": "NEW-OK-1", "coldCellId": 1},
                    {"serialNumber": seeded[0], "coldCellId": 1},
                    {"serialNumber": "NEW-OK-2", "coldCellId": 999}]
            # one object per line: lines 2, 3 and 4
            path = write(s, "bad.json", "[\n" + ",\n".join(json.dumps(r) for r in rows)
                         + "\n]\n")
            p = s.ccctl("device", "import", path, check=False)
            expect(p.returncode != 0, "a bad file was accepted")
            expect(device_count(s) == before, "a bad file created devices")
            expect(s.scalar("SELECT count(*) FROM devices WHERE serial_number LIKE 'NEW-OK-%'")
                   == 0, "the good rows of a bad file were created")
            expect("conflict" in p.stderr and "not_found" in p.stderr, p.stderr)
            expect("bad.json:3:" in p.stderr and "bad.json:4:" in p.stderr,
                   "lines not reported: %s" % p.stderr)
        cases.run("import_unknown_cell_or_taken_serial_creates_nothing", import_bad_targets)

        c1 = token(s, "customer1")

        def http_bulk():
            body = [{"serialNumber": "HTTP-B-1", "coldCellId": 1, "firmwareVersion": "1.0"},
                    {"serialNumber": "HTTP-B-2", "coldCellId": 2}]
            st, _, out = s.http("POST", "/api/devices/bulk", body, token=c1)
            expect(st == 201, "status %s: %r" % (st, out))
            expect([o["serialNumber"] for o in out] == ["HTTP-B-1", "HTTP-B-2"], repr(out))
            for o in out:
                expect(KEY_RE.match(o["apiKey"]) and isinstance(o["id"], int), repr(o))
                st2, _, dev = s.http("GET", "/api/devices/%d" % o["id"], token=c1)
                expect(st2 == 200 and dev["serialNumber"] == o["serialNumber"]
                       and "apiKey" not in dev, "device %r" % (dev,))
                expect(authenticates(s, o["serialNumber"], o["apiKey"]),
                       "%s refused at the broker" % o["serialNumber"])
            expect(s.scalar("SELECT count(*) FROM audit_log WHERE action = 'create' AND "
                            "entity = 'device' AND entity_id IN (?, ?)",
                            (out[0]["id"], out[1]["id"])) == 2, "no audit rows")
        cases.run("http_bulk_201_with_keys", http_bulk)

        def http_bulk_other_tenant():
            before = device_count(s)
            body = [{"serialNumber": "HTTP-X-1", "coldCellId": 1},
                    {"serialNumber": "HTTP-X-2", "coldCellId": 4}]  # customer2's cell
            res = s.http("POST", "/api/devices/bulk", body, token=c1)
            expect_error(res, 404, "NOT_FOUND")
            expect(device_count(s) == before, "devices created despite the 404")
            d = res[2]["error"].get("details", [])
            expect(len(d) == 1 and d[0]["field"] == "[1].coldCellId", repr(d))
        cases.run("http_bulk_other_customers_cell_404_nothing_created", http_bulk_other_tenant)

        def http_bulk_bad():
            before = device_count(s)
            expect_error(s.http("POST", "/api/devices/bulk", raw=b"[{", token=c1), 400,
                         "BAD_JSON")
            res = s.http("POST", "/api/devices/bulk",
                         [{"serialNumber": "ok-1", "coldCellId": 1}, {"coldCellId": 0}],
                         token=c1)
            expect_error(res, 400, "VALIDATION_ERROR")
            fields = [d["field"] for d in res[2]["error"]["details"]]
            expect(fields == ["[1].serialNumber", "[1].coldCellId"], repr(fields))
            expect_error(s.http("POST", "/api/devices/bulk", {"serialNumber": "x"}, token=c1),
                         400, "VALIDATION_ERROR")
            expect_error(s.http("POST", "/api/devices/bulk", [], token=None), 401, "UNAUTHORIZED")
            expect(device_count(s) == before, "devices created by bad requests")
        cases.run("http_bulk_bad_bodies_400_401", http_bulk_bad)

        def backup_while_ingesting():
            serial = seeded[0]
            stop = threading.Event()
            sent = [0]

            def publisher():
                c = s.mqtt_client(serial, s.keys[serial])
                base = int(time.time() * 1000) - 60000
                try:
                    while not stop.is_set():
                        batch = [{"temperature": -18.0, "ts": base + sent[0] + i}
                                 for i in range(50)]
                        c.publish("devices/%s/readings" % serial, json.dumps(batch), qos=1)
                        sent[0] += 50
                        time.sleep(0.01)
                finally:
                    c.disconnect()
                    c.loop_stop()
            before = s.scalar("SELECT count(*) FROM readings")
            t = threading.Thread(target=publisher)
            t.start()
            try:
                wait_for(lambda: s.scalar("SELECT count(*) FROM readings") > before + 200,
                         timeout=20, what="ingestion under way")
                out = os.path.join(s.dir, "backup", "coldchain-backup.db")
                os.makedirs(os.path.dirname(out))
                during = s.scalar("SELECT count(*) FROM readings")
                p = s.ccctl("backup", out)
                after_backup = s.scalar("SELECT count(*) FROM readings")
            finally:
                stop.set()
                t.join(10)
            expect(after_backup > during, "ingestion stalled during the backup")
            expect(os.path.exists(out) and not os.path.exists(out + ".tmp"), "no backup file")
            expect(stat.S_IMODE(os.stat(out).st_mode) == 0o600, "backup is not mode 0600")
            if s.pg is not None:
                n, users, devices, version = restored_pg_counts(s, out)
            else:
                con = sqlite3.connect("file:%s?mode=ro" % out, uri=True)
                try:
                    expect(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok",
                           "integrity_check failed")
                    n = con.execute("SELECT count(*) FROM readings").fetchone()[0]
                    users = con.execute("SELECT count(*) FROM users").fetchone()[0]
                    devices = con.execute("SELECT count(*) FROM devices").fetchone()[0]
                    version = con.execute("PRAGMA user_version").fetchone()[0]
                finally:
                    con.close()
            expect(during <= n <= after_backup, "readings %d not within [%d, %d]"
                   % (n, during, after_backup))
            expect(users == s.scalar("SELECT count(*) FROM users"), "users differ")
            expect(devices == device_count(s), "devices differ")
            expect(version == schema_version(s), "schema version differs")
            if s.pg is None:
                expect("pages written" in p.stderr, p.stderr)
            print("  backup: %d readings copied while %d were published" % (n, sent[0]))
        cases.run("backup_while_ingesting_is_consistent", backup_while_ingesting)

        def backup_bad_target():
            p = s.ccctl("backup", os.path.join(s.dir, "no-such-dir", "x.db"), check=False)
            expect(p.returncode != 0, "backup into a missing directory succeeded")
            p = s.ccctl("backup", check=False)
            expect(p.returncode == 64, "no usage error without FILE")
        cases.run("backup_refuses_bad_targets", backup_bad_target)

    cases.exit()


if __name__ == "__main__":
    main()
