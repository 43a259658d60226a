"""Readings queries, latest, CSV export and dashboards over a real stack: readings are
published over MQTT with the seeded devices' keys, then the HTTP answers are checked
against what was published (statistics computed here) and against the database."""
import calendar
import csv
import io
import json
import math
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from apitest import NO_LIMITS, expect, expect_error, token  # noqa: E402

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

MIN = 60000


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def parse_iso(s):
    base, frac = s.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac)


def q(s):
    return urllib.parse.quote(s, safe="")


def mkt(temps):
    m = sum(math.exp(-10000.0 / (t + 273.15)) for t in temps) / len(temps)
    return 10000.0 / -math.log(m) - 273.15


def minutes_out(rows, lo, hi):
    """rows: (ts, device_id, temperature); the interval to the next reading counts when
    the earlier one is outside lo..hi."""
    rows = sorted(rows)
    ms = 0
    for a, b in zip(rows, rows[1:]):
        if a[2] < lo or a[2] > hi:
            ms += b[0] - a[0]
    return ms / 60000.0


def close(a, b, tol, what):
    expect(a is not None and abs(a - b) <= tol, "%s: got %r, want %r" % (what, a, b))


def main():
    cases = harness.Cases()
    with harness.Stack(env=NO_LIMITS) as st:
        serial = sorted(st.keys)[0]
        dev_id, cell, lo, hi, owner_email = st.sql(
            "SELECT d.id, c.id, c.min_temp, c.max_temp, u.email FROM devices d"
            " JOIN cold_cells c ON c.id = d.cold_cell_id JOIN locations l ON l.id = c.location_id"
            " JOIN users u ON u.id = l.customer_id WHERE d.serial_number = ?", (serial,))[0]
        owner = "customer1" if owner_email.startswith("customer1") else "customer2"
        other = "customer2" if owner == "customer1" else "customer1"
        tok = token(st, owner)
        tok_other = token(st, other)
        tok_tech = token(st, "tech")
        tok_admin = token(st, "admin")
        dev = st.mqtt_client(serial, st.keys[serial])

        now = int(time.time() * 1000)
        # A window two days ago (no seeded readings there), starting off any boundary.
        w0 = (now - 2 * 86400000) // 3600000 * 3600000 + 17000
        mid = (lo + hi) / 2.0
        published = []  # (ts, temperature)
        for i in range(100):
            t = round(mid + (hi - lo) * 0.8 * math.sin(i / 6.0) + (i % 7) * 0.01, 2)
            published.append((w0 + i * MIN + (i % 3) * 1000, t))

        def send(items):
            arr = [{"ts": ts, "temperature": t} for ts, t in items]
            dev.publish("devices/%s/readings" % serial, json.dumps(arr), qos=1).wait_for_publish()

        def count_in(a, b):
            return st.scalar("SELECT count(*) FROM readings WHERE cold_cell_id = ? AND ts >= ?"
                             " AND ts < ?", (cell, a, b))

        def publish_window():
            # The newer half first, then the older half (late readings), then a
            # redelivery of some: stored once.
            send(published[50:])
            send(published[:50])
            send(published[40:60])
            harness.wait_for(lambda: count_in(w0, w0 + 200 * MIN) == 100, timeout=20,
                             what="100 readings stored")
        cases.run("readings published over MQTT are stored once", publish_window)

        f_ms, t_ms = w0 + 30 * MIN + 500, w0 + 85 * MIN + 250  # off every boundary
        inside = [(ts, t) for ts, t in published if f_ms <= ts < t_ms]

        def stats_match():
            code, _, body = st.http("GET", "/api/readings/coldcells/%d/readings?from=%s&to=%s"
                                    % (cell, q(iso(f_ms)), q(iso(t_ms))), token=tok)
            expect(code == 200, "status %s: %r" % (code, body))
            temps = [t for _, t in inside]
            s = body["stats"]
            expect(body["coldCellId"] == cell and body["bucketSeconds"] == 300, repr(body)[:200])
            expect(body["from"] == iso(f_ms) and body["to"] == iso(t_ms), "from/to echo")
            expect(s["count"] == len(inside), "count %s, want %s" % (s["count"], len(inside)))
            expect(s["min"] == min(temps) and s["max"] == max(temps), "min/max %r" % s)
            close(s["avg"], sum(temps) / len(temps), 0.0011, "avg")
            close(s["mkt"], mkt(temps), 0.0011, "mkt")
            close(s["minutesOutOfRange"],
                  minutes_out([(ts, dev_id, t) for ts, t in inside], lo, hi), 0.006,
                  "minutesOutOfRange")
            expect(s["minutesOutOfRange"] > 0, "the window crosses the thresholds")
            # Series: aligned 5-minute buckets, each with the readings it holds.
            want = {}
            for ts, t in inside:
                want.setdefault(ts // 300000 * 300000, []).append(t)
            got = {parse_iso(b["t"]): b for b in body["series"]}
            expect(sorted(got) == sorted(want), "bucket times %r" % sorted(got)[:3])
            for k, b in got.items():
                expect(k % 300000 == 0, "aligned")
                expect(b["count"] == len(want[k]) and b["min"] == min(want[k]) and
                       b["max"] == max(want[k]), "bucket %s: %r" % (iso(k), b))
                close(b["avg"], sum(want[k]) / len(want[k]), 0.0011, "bucket avg")
        cases.run("from/to stats equal what was published (late and duplicate included)",
                  stats_match)

        def ranges():
            for rng, bucket in (("24h", 300), ("7d", 1800), ("30d", 7200)):
                code, _, body = st.http("GET", "/api/readings/coldcells/%d/readings?range=%s"
                                        % (cell, rng), token=tok)
                expect(code == 200, "%s: %s %r" % (rng, code, body))
                expect(body["range"] == rng and body["bucketSeconds"] == bucket, rng)
                a, b = parse_iso(body["from"]), parse_iso(body["to"])
                expect(b - a == {"24h": 1, "7d": 7, "30d": 30}[rng] * 86400000, "span")
                expect(body["stats"]["count"] == count_in(a, b), "%s count" % rng)
                expect(sum(x["count"] for x in body["series"]) == body["stats"]["count"], rng)
                ts = [parse_iso(x["t"]) for x in body["series"]]
                expect(all(t % (bucket * 1000) == 0 for t in ts), "%s aligned" % rng)
                expect(ts == sorted(set(ts)), "%s ascending, no empty buckets" % rng)
                rows = st.sql("SELECT min(temperature), max(temperature) FROM readings"
                              " WHERE cold_cell_id = ? AND ts >= ? AND ts < ?", (cell, a, b))[0]
                expect((body["stats"]["min"], body["stats"]["max"]) == rows, "%s min/max" % rng)
            code, _, body = st.http("GET", "/api/readings/coldcells/%d/readings" % cell, token=tok)
            expect(code == 200 and body["range"] == "24h", "default range is 24h")
        cases.run("range=24h|7d|30d: bucket size, alignment, counts from the database", ranges)

        def backends_lost():
            # PostgreSQL only: apid's pooled sessions end under it (a server restart, as
            # far as they can tell) while the 30-day query sends its statements ahead and
            # defers its read transaction's BEGIN. A request may fail on a dead session
            # (one per pooled connection); every answer after is the same as before, never
            # an empty or partial one, and the pool is whole again.
            path = "/api/readings/coldcells/%d/readings?from=%s&to=%s" % (
                cell, q(iso(f_ms - 86400000 * 29)), q(iso(t_ms)))
            code, _, before = st.http("GET", path, token=tok)
            expect(code == 200 and before["stats"]["count"] >= len(inside), "before: %s" % code)
            killed = st.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                               " WHERE application_name = 'apid'")
            expect(killed >= 1, "apid has a session to end")
            failed, ok = 0, 0
            for _ in range(killed + 3):
                code, _, body = st.http("GET", path, token=tok)
                if code == 200:
                    ok += 1
                    expect(body == before, "an answer after the loss: %r" % (repr(body)[:200],))
                else:
                    failed += 1
                    expect(code >= 500, "a failure is the server's: %s" % code)
            expect(failed <= killed and ok >= 3, "failed %d, ok %d, killed %d"
                   % (failed, ok, killed))
        if st.pg is not None:
            cases.run("PostgreSQL: apid's sessions lost mid-stream, the 30-day query answers"
                      " as before", backends_lost)

        def bad_ranges():
            base = "/api/readings/coldcells/%d/readings?" % cell
            for qs in ("range=1h", "range=24h&from=%s&to=%s" % (q(iso(f_ms)), q(iso(t_ms))),
                       "from=%s&to=%s" % (q(iso(t_ms)), q(iso(f_ms))),
                       "from=%s&to=%s" % (q(iso(f_ms)), q(iso(f_ms))),
                       "from=%s" % q(iso(f_ms)), "from=nope&to=%s" % q(iso(t_ms)),
                       "from=2020-01-01T00:00:00Z&to=2022-01-01T00:00:00Z"):
                expect_error(st.http("GET", base + qs, token=tok), 400, "VALIDATION_ERROR")
        cases.run("a bad range, from >= to or a too long span -> 400 VALIDATION_ERROR",
                  bad_ranges)

        def unwritable_instants():
            # An offset that moves year 0000 or 9999 outside the years an answer can write:
            # "from" answered null (and the export took it) before the parser refused it.
            for path in ("readings?from=%s&to=0000-01-01T01:00:00Z"
                         % q("0000-01-01T00:00:00+14:00"),
                         "readings?from=9999-12-31T00:00:00Z&to=%s"
                         % q("9999-12-31T23:00:00-14:00"),
                         "export.csv?from=%s&to=0000-01-01T01:00:00Z"
                         % q("0000-01-01T00:00:00+14:00")):
                expect_error(st.http("GET", "/api/readings/coldcells/%d/%s" % (cell, path),
                                     token=tok), 400, "VALIDATION_ERROR")
            code, _, body = st.http("GET", "/api/readings/coldcells/%d/readings?from=%s&to=%s"
                                    % (cell, q("0000-01-01T00:00:00-14:00"),
                                       q("0000-01-02T00:00:00Z")), token=tok)
            expect(code == 200 and body["from"] == "0000-01-01T14:00:00.000Z", (code, body))
        cases.run("from/to outside years 0000..9999 once in UTC -> 400 VALIDATION_ERROR",
                  unwritable_instants)

        def others_cell_404():
            for path in ("/api/readings/coldcells/%d/readings?range=24h" % cell,
                         "/api/coldcells/%d/latest" % cell,
                         "/api/readings/coldcells/%d/export.csv?from=%s&to=%s"
                         % (cell, q(iso(f_ms)), q(iso(t_ms))),
                         "/api/readings/coldcells/999999/readings"):
                expect_error(st.http("GET", path, token=tok_other), 404, "NOT_FOUND")
            code, _, _ = st.http("GET", "/api/coldcells/%d/latest" % cell, token=tok_tech)
            expect(code == 200, "the linked technician sees it")
            expect_error(st.http("GET", "/api/coldcells/%d/latest" % cell), 401, "UNAUTHORIZED")
        cases.run("someone else's cell -> 404 on readings, latest and export", others_cell_404)

        def latest_by_ts():
            newest = int(time.time() * 1000) - 1000
            send([(newest, 4.25)])
            harness.wait_for(lambda: st.scalar("SELECT count(*) FROM readings WHERE device_id = ?"
                                               " AND ts = ?", (dev_id, newest)), what="stored")
            code, _, body = st.http("GET", "/api/coldcells/%d/latest" % cell, token=tok)
            expect(code == 200 and body["ts"] == iso(newest) and body["temperature"] == 4.25,
                   repr(body))
            send([(newest - 10 * MIN, 9.5)])  # arrives later, but older
            harness.wait_for(lambda: st.scalar("SELECT count(*) FROM readings WHERE device_id = ?"
                                               " AND ts = ?", (dev_id, newest - 10 * MIN)),
                             what="stored")
            code, _, body = st.http("GET", "/api/coldcells/%d/latest" % cell, token=tok)
            expect(body["ts"] == iso(newest) and body["serialNumber"] == serial, repr(body))
        cases.run("latest is the newest by timestamp, not by arrival", latest_by_ts)

        def csv_export():
            code, headers, body = st.http(
                "GET", "/api/readings/coldcells/%d/export.csv?from=%s&to=%s"
                % (cell, q(iso(f_ms)), q(iso(t_ms))), token=tok)
            expect(code == 200, "status %s" % code)
            h = {k.lower(): v for k, v in headers.items()}
            expect(h.get("content-type", "").startswith("text/csv"), repr(h))
            expect(h.get("transfer-encoding") == "chunked", "streamed: %r" % h)
            text = body.decode() if isinstance(body, bytes) else json.dumps(body)
            rows = list(csv.reader(io.StringIO(text, newline="")))
            expect(rows[0][:5] == ["ts", "coldCellId", "deviceId", "serialNumber", "temperature"],
                   repr(rows[0]))
            got = [(parse_iso(r[0]), float(r[4])) for r in rows[1:]]
            expect(got == sorted(inside), "rows differ: %r vs %r" % (got[:3], sorted(inside)[:3]))
            expect(all(r[1] == str(cell) and r[3] == serial for r in rows[1:]), "cell, serial")
            expect(text.endswith("\r\n"), "CRLF lines")
            expect_error(st.http("GET", "/api/readings/coldcells/%d/export.csv" % cell, token=tok),
                         400, "VALIDATION_ERROR")
        cases.run("export.csv parses with csv and matches the data", csv_export)

        def dashboards():
            code, _, body = st.http("GET", "/api/dashboard/customer", token=tok)
            expect(code == 200, "status %s: %r" % (code, body))
            n_loc = st.scalar("SELECT count(*) FROM locations l JOIN users u ON"
                              " u.id = l.customer_id WHERE u.email = ?", (owner_email,))
            n_cells = st.scalar("SELECT count(*) FROM cold_cells c JOIN locations l ON"
                                " l.id = c.location_id JOIN users u ON u.id = l.customer_id"
                                " WHERE u.email = ?", (owner_email,))
            expect(len(body["locations"]) == n_loc == body["summary"]["locations"], "locations")
            expect(body["summary"]["coldCells"] == n_cells, "cells")
            cells = {c["id"]: c for loc in body["locations"] for c in loc["coldCells"]}
            expect(cells[cell]["latest"]["temperature"] == 4.25, "latest in the dashboard")
            expect([d["serialNumber"] for d in cells[cell]["devices"]] == [serial], "devices")
            expect(cells[cell]["devices"][0]["status"] == "ONLINE", "device status")
            active = st.scalar("SELECT count(*) FROM alerts a JOIN cold_cells c ON"
                               " c.id = a.cold_cell_id JOIN locations l ON l.id = c.location_id"
                               " JOIN users u ON u.id = l.customer_id WHERE u.email = ?"
                               " AND a.status = 'ACTIVE'", (owner_email,))
            expect(len(body["activeAlerts"]) == active == body["summary"]["activeAlerts"],
                   "active alerts %r vs %s" % (body["summary"], active))

            expect_error(st.http("GET", "/api/dashboard/technician", token=tok), 403, "FORBIDDEN")
            for who, tk in (("tech", tok_tech), ("admin", tok_admin)):
                code, _, t = st.http("GET", "/api/dashboard/technician", token=tk)
                expect(code == 200, "%s: %s %r" % (who, code, t))
                if who == "tech":
                    want_customers = st.scalar(
                        "SELECT count(*) FROM technician_customers tc JOIN users u ON"
                        " u.id = tc.technician_id WHERE u.email = 'tech@example.com'")
                else:
                    want_customers = st.scalar("SELECT count(*) FROM users WHERE role = 'CUSTOMER'")
                expect(t["customers"] == want_customers == len(t["customerList"]), who)
                expect(t["coldCells"] == sum(c["coldCells"] for c in t["customerList"]), who)
                expect(t["activeAlerts"] == sum(t["alertsByType"].values()), who)
                expect(set(t["alertsByType"]) == {"HIGH_TEMP", "LOW_TEMP", "POWER_LOSS",
                                                  "SENSOR_ERROR"}, who)
                for c in t["customerList"]:
                    n = st.scalar("SELECT count(*) FROM devices d JOIN cold_cells c ON"
                                  " c.id = d.cold_cell_id JOIN locations l ON"
                                  " l.id = c.location_id WHERE l.customer_id = ?", (c["id"],))
                    expect(c["devices"] == n, "%s devices of %s" % (who, c["email"]))
            # The counts follow the data: an active alert raised in the database.
            before = st.http("GET", "/api/dashboard/technician", token=tok_admin)[2]
            st.sql("INSERT INTO alerts (cold_cell_id, device_id, type, message,"
                   " first_triggered_at, last_triggered_at) SELECT ?, ?, 'POWER_LOSS', 't',"
                   " 1, 1 WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE cold_cell_id = ? AND"
                   " device_id = ? AND type = 'POWER_LOSS' AND status = 'ACTIVE')",
                   (cell, dev_id, cell, dev_id))
            after = st.http("GET", "/api/dashboard/technician", token=tok_admin)[2]
            want = st.scalar("SELECT count(*) FROM alerts WHERE status = 'ACTIVE'")
            expect(after["activeAlerts"] == want, "admin sees every active alert")
            expect(after["alertsByType"]["POWER_LOSS"] >= 1, repr(after["alertsByType"]))
            expect(after["activeAlerts"] >= before["activeAlerts"], "follows the data")
        cases.run("dashboards: counts follow the database; customer -> 403 on technician",
                  dashboards)

        dev.loop_stop()
        dev.disconnect()
    cases.exit()


if __name__ == "__main__":
    main()
