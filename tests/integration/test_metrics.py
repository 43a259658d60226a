"""Prometheus metrics of both daemons: apid GET /metrics and ingestd's INGEST_METRICS_PORT.

After some traffic, each exposition is parsed strictly (text format 0.0.4): every sample
belongs to a family announced by # HELP and # TYPE, names and labels follow the grammar,
values are numbers, counters are non-negative, and every histogram has monotonic buckets
ending with +Inf equal to _count. Then specific series must have moved: a request counts
under its route template, a 429 increments the rate-limited counter, /metrics itself is
never limited, the WebSocket gauge follows an open feed, and ingestd counts accepted
readings and rejections by error code."""
import json
import math
import re
import time
import urllib.request

from apitest import Cases, Stack, expect, token
from test_ws import connect, wait_for_feed

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse(text):
    """{family: {"type", "help", "samples": [(name, labels dict, value)]}}; raises on any
    deviation from the format."""
    fams, cur = {}, None
    expect(text.endswith("\n"), "exposition must end with a newline")
    for ln, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (ln, line)
        if line.startswith("# HELP "):
            parts = line.split(" ", 3)
            expect(len(parts) == 4 and NAME.match(parts[2]), where)
            expect(parts[2] not in fams, "family announced twice, " + where)
            cur = fams[parts[2]] = {"help": parts[3], "type": None, "samples": []}
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            expect(len(parts) == 4 and parts[2] in fams and parts[3] in TYPES, where)
            expect(fams[parts[2]]["type"] is None and not fams[parts[2]]["samples"],
                   "TYPE after samples or twice, " + where)
            fams[parts[2]]["type"] = parts[3]
            continue
        expect(not line.startswith("#") and line.strip() == line and line, where)
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        expect(m is not None, "bad sample, " + where)
        name, lab, val = m.groups()
        labels = {}
        if lab:
            body, pos = lab[1:-1], 0
            while pos < len(body):
                lm = LABEL.match(body, pos)
                expect(lm is not None, "bad labels, " + where)
                expect(lm.group(1) not in labels, "label twice, " + where)
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        expect(val in ("+Inf", "-Inf", "NaN") or re.match(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$", val),
               "bad value, " + where)
        value = float(val)
        fam = None
        for suffix in ("", "_bucket", "_sum", "_count"):
            base = name[:len(name) - len(suffix)] if suffix and name.endswith(suffix) else name
            if (suffix == "" or name.endswith(suffix)) and base in fams:
                if suffix and fams[base]["type"] not in ("histogram", "summary"):
                    continue
                fam = base
                break
        expect(fam is not None and fam == (cur and next(k for k in fams if fams[k] is cur)),
               "sample outside its family's block, " + where)
        expect(fams[fam]["type"] is not None, "sample before TYPE, " + where)
        if fams[fam]["type"] == "counter" or name.endswith("_count") or name.endswith("_bucket"):
            expect(value >= 0 and not math.isnan(value), "negative counter, " + where)
        fams[fam]["samples"].append((name, labels, value))
    for fname, f in fams.items():
        expect(f["type"] is not None, "no TYPE for " + fname)
        if f["type"] == "histogram":
            check_histogram(fname, f["samples"])
    return fams


def check_histogram(fname, samples):
    series = {}
    for name, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if name == fname + "_bucket":
            expect("le" in labels, "bucket without le in " + fname)
            s["buckets"].append((float(labels["le"]), value))
        elif name == fname + "_sum":
            s["sum"] = value
        elif name == fname + "_count":
            s["count"] = value
    for key, s in series.items():
        b = s["buckets"]
        expect(b and s["sum"] is not None and s["count"] is not None, "%s%r incomplete" % (fname, key))
        expect([le for le, _ in b] == sorted(le for le, _ in b), "%s le not ascending" % fname)
        expect(all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)),
               "%s%r buckets not monotonic: %r" % (fname, key, b))
        expect(b[-1][0] == math.inf and b[-1][1] == s["count"],
               "%s%r +Inf %r != count %r" % (fname, key, b[-1], s["count"]))


def value(fams, fam, name=None, **labels):
    for n, l, v in fams.get(fam, {}).get("samples", []):
        if n == (name or fam) and all(l.get(k) == str(x) for k, x in labels.items()):
            return v
    return 0.0


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def main():
    cases = Cases()
    env = {"RATE_LIMIT_API": "8", "RATE_LIMIT_AUTH": "1000"}
    with Stack(env=env) as s:
        apid_url = "http://127.0.0.1:%d/metrics" % s.http_port
        before = parse(get(apid_url)[2])
        tok = token(s, "customer1")
        for _ in range(3):
            s.http("GET", "/api/coldcells/1", token=tok)
        s.http("GET", "/api/coldcells/2", token=tok)
        s.http("GET", "/api/no/such/route", token=tok)
        wait_for_feed(s)
        w = connect(s, token(s, "customer2"))  # the upgrade counts towards the limit too
        w.recv(5)  # hello
        statuses = [s.http("GET", "/api/locations", token=tok)[0] for _ in range(8)]
        # apid counts a request after its answer is written, so a scrape that follows the
        # last answer at once may be a few microseconds early: scrape until all eight
        # /api/locations requests are in (or 5 s pass, and the checks below say what is off).
        deadline = time.time() + 5
        while True:
            st, ctype, text = get(apid_url)
            after = parse(text)
            seen = sum(v for n, l, v in after.get("coldchain_http_requests_total", {})
                       .get("samples", []) if l.get("route") == "/api/locations")
            if seen >= len(statuses) or time.time() > deadline:
                break
            time.sleep(0.05)

        cases.check("apid_metrics_200_text_plain",
                    st == 200 and ctype.startswith("text/plain"), "%s %s" % (st, ctype))
        cases.run("apid_exposition_parses_strictly", lambda: parse(text))

        def route_template_counted():
            v = value(after, "coldchain_http_requests_total", route="/api/coldcells/:id",
                      method="GET", status=200)
            expect(v == 4, "GET /api/coldcells/:id 200 = %r" % v)
            expect(value(after, "coldchain_http_requests_total", route="other", method="GET",
                         status=404) >= 1, "unmatched path not under route=other")
            expect(not any("/api/coldcells/1" == l.get("route") for _, l, _ in
                           after["coldchain_http_requests_total"]["samples"]),
                   "a raw path is used as a label")
        cases.run("request_counted_under_its_route_template", route_template_counted)

        def histogram_by_route():
            c = value(after, "coldchain_http_request_duration_seconds",
                      "coldchain_http_request_duration_seconds_count", route="/api/coldcells/:id")
            expect(c == 4, "histogram count %r" % c)
        cases.run("latency_histogram_by_route_template", histogram_by_route)

        def rate_limited_counted():
            expect(429 in statuses, statuses)
            n429 = statuses.count(429)
            d = (value(after, "coldchain_http_rate_limited_total") -
                 value(before, "coldchain_http_rate_limited_total"))
            expect(d >= n429, "rate-limited moved by %r, %d 429s" % (d, n429))
            expect(value(after, "coldchain_http_requests_total", route="/api/locations",
                         method="GET", status=429) == n429, "429 series")
        cases.run("a_429_increments_rate_limited_total", rate_limited_counted)

        def metrics_never_limited():
            for _ in range(5):
                expect(get(apid_url)[0] == 200, "metrics limited")
        cases.run("metrics_never_rate_limited", metrics_never_limited)

        def ws_gauge():
            expect(value(after, "coldchain_ws_connections") == 1,
                   value(after, "coldchain_ws_connections"))
            expect(value(after, "coldchain_ws_messages_sent_total") >= 1, "hello not counted")
            w.close()
            deadline = time.time() + 5
            while time.time() < deadline:
                if value(parse(get(apid_url)[2]), "coldchain_ws_connections") == 0:
                    return
                time.sleep(0.1)
            raise AssertionError("gauge did not return to 0")
        cases.run("ws_connections_gauge_and_messages_sent", ws_gauge)

        # ingestd: accepted and rejected by code.
        ing_before = parse(s.metrics())
        p = s.mqtt_client("CC-FRZ-0001", s.keys["CC-FRZ-0001"])
        # Off the whole second: the seed's readings sit on whole seconds (its newest is
        # "this second"), and a collision would be counted as a duplicate, not accepted.
        now_ms = int(time.time() * 1000) // 1000 * 1000 + 7
        for i in range(3):  # distinct ts: two readings in one ms would be one (device, ts)
            p.publish("devices/CC-FRZ-0001/readings",
                      json.dumps({"temperature": -18 + i / 10, "ts": now_ms - 1000 * (3 - i)}),
                      qos=1).wait_for_publish(10)
        p.publish("devices/CC-FRZ-0001/readings", "not json", qos=1).wait_for_publish(10)
        p.publish("devices/CC-FRZ-0001/readings", json.dumps({"temperature": "x"}),
                  qos=1).wait_for_publish(10)
        want = value(ing_before, "coldchain_ingest_readings_accepted_total") + 3
        deadline, ing = time.time() + 10, None
        while time.time() < deadline:
            ing_text = s.metrics()
            ing = parse(ing_text)
            if (value(ing, "coldchain_ingest_readings_accepted_total") >= want and
                    value(ing, "coldchain_ingest_rejected_total", code="VALIDATION_ERROR") >= 1):
                break
            time.sleep(0.2)
        p.loop_stop()
        p.disconnect()

        cases.run("ingestd_exposition_parses_strictly", lambda: parse(s.metrics()))

        def ingest_counts():
            expect(value(ing, "coldchain_ingest_readings_accepted_total") == want,
                   value(ing, "coldchain_ingest_readings_accepted_total"))
            for code in ("BAD_JSON", "VALIDATION_ERROR"):
                d = (value(ing, "coldchain_ingest_rejected_total", code=code) -
                     value(ing_before, "coldchain_ingest_rejected_total", code=code))
                expect(d == 1, "%s moved by %r" % (code, d))
        cases.run("ingestd_accepted_and_rejected_by_code", ingest_counts)

        def ingest_lag_histogram():
            # The three readings are 3, 2 and 1 s old when published: each is counted
            # once, in no bucket under 0.5 s and in the 30 s one (the writer copies only
            # the histogram's used buckets to a scrape; the rest must still add up).
            h = "coldchain_ingest_publish_lag_seconds"

            def moved(name, **labels):
                return value(ing, h, name, **labels) - value(ing_before, h, name, **labels)
            expect(moved(h + "_count") == 3, moved(h + "_count"))
            expect(moved(h + "_bucket", le="+Inf") == 3, moved(h + "_bucket", le="+Inf"))
            expect(moved(h + "_bucket", le="30") == 3, moved(h + "_bucket", le="30"))
            expect(moved(h + "_bucket", le="0.5") == 0, moved(h + "_bucket", le="0.5"))
            expect(moved(h + "_sum") >= 6.0, moved(h + "_sum"))
        cases.run("ingestd_lag_histogram_counts_each_reading", ingest_lag_histogram)

        def ingest_alerts_and_notifications():
            # The seed holds two resolved alerts (HIGH_TEMP, POWER_LOSS); raise one more.
            p2 = s.mqtt_client("CC-FRZ-0002", s.keys["CC-FRZ-0002"])
            p2.publish("devices/CC-FRZ-0002/readings", json.dumps({"temperature": 9.5}),
                       qos=1).wait_for_publish(10)
            p2.loop_stop()
            p2.disconnect()
            deadline = time.time() + 15
            while True:
                m = parse(s.metrics())
                raised = {t: value(m, "coldchain_alerts_raised_total", type=t)
                          for t in ("HIGH_TEMP", "LOW_TEMP", "POWER_LOSS", "SENSOR_ERROR")}
                sent = value(m, "coldchain_notifications_sent_total", channel="mqtt")
                db_raised = dict(s.sql("SELECT type, COUNT(*) FROM alerts GROUP BY type"))
                if raised["HIGH_TEMP"] >= 2 and sent >= 1 or time.time() > deadline:
                    break
                time.sleep(0.3)
            expect(raised == {t: float(db_raised.get(t, 0)) for t in raised}, (raised, db_raised))
            expect(value(m, "coldchain_alerts_resolved_total", type="POWER_LOSS") == 1, "resolved")
            expect(sent >= 1, "no mqtt notification counted as sent")
            for ch in ("mqtt", "webhook", "email"):
                expect(("coldchain_notifications_failed_total", {"channel": ch}) in
                       [(n, l) for n, l, _ in m["coldchain_notifications_failed_total"]["samples"]],
                       "failed_total{channel=%s} missing" % ch)
        cases.run("ingestd_alerts_by_type_and_notifications_by_channel",
                  ingest_alerts_and_notifications)

        def outbox_backlog_gauge():
            # Counted at most every 2 s: poll until the gauge matches the table (with
            # only the mqtt channel configured everything gets sent, so both reach 0).
            deadline, got, want = time.time() + 15, None, None
            while time.time() < deadline:
                m = parse(s.metrics())
                got = (value(m, "coldchain_outbox_pending", kind="notification"),
                       value(m, "coldchain_outbox_pending", kind="alert_event"))
                want = (float(s.scalar("SELECT count(*) FROM notifications WHERE status = 'PENDING'")),
                        float(s.scalar("SELECT count(*) FROM alert_events WHERE status = 'PENDING'")))
                if got == want:
                    break
                time.sleep(0.5)
            expect(got == want, "outbox gauge %r, tables %r" % (got, want))
            expect(s.scalar("SELECT count(*) FROM alert_events") > 0, "no alert event written")
        cases.run("ingestd_outbox_pending_gauge_matches_the_tables", outbox_backlog_gauge)

        def wal_checkpointer_exposed():
            # The WAL checkpointer thread (common/store/cc_walckpt.c): after the commits above
            # the WAL holds pages, and no run failed or had to be done in place.
            m = parse(s.metrics())
            if s.pg is not None:
                # PostgreSQL checkpoints by itself: no checkpointer thread, no series.
                expect(not [k for k in m if k.startswith("coldchain_wal_")],
                       "WAL series on PostgreSQL: %r" % [k for k in m if "wal" in k])
                return
            expect(value(m, "coldchain_wal_pages") > 0, "coldchain_wal_pages is 0")
            for result in ("ok", "busy", "error"):
                expect(("coldchain_wal_checkpoints_total", {"result": result}) in
                       [(n, l) for n, l, _ in m["coldchain_wal_checkpoints_total"]["samples"]],
                       "checkpoints_total{result=%s} missing" % result)
            expect(value(m, "coldchain_wal_checkpoints_total", result="error") == 0, "errors")
            expect(value(m, "coldchain_wal_inline_checkpoints_total") == 0, "inline runs")
            expect("coldchain_wal_checkpoint_frames_total" in m, "frames_total missing")
        cases.run("ingestd_wal_checkpointer_series", wal_checkpointer_exposed)

        def page_caches_as_budgeted():
            # ingestd's memory budget (README "Back-pressure") rests on each connection's
            # SQLite page cache: the writer's CACHE_SIZE_PRAGMA (cc_db.c), the jobs thread's
            # INGEST_JOBS_CACHE_KIB and the scrapes' INGEST_METRICS_CACHE_KIB, as each
            # connection reads it back. PostgreSQL: the server's cache, no series.
            m = parse(s.metrics())
            if s.pg is not None:
                expect("coldchain_db_cache_kib" not in m, "cache series on PostgreSQL")
                return
            got = {l["connection"]: v for _, l, v in m["coldchain_db_cache_kib"]["samples"]}
            expect(got == {"writer": 8192, "jobs": 1024, "metrics": 256}, got)
        cases.run("ingestd_page_caches_as_budgeted", page_caches_as_budgeted)

        def remote_refused_by_default():
            # Every client here is loopback; the rule is in metrics.c (peer address only).
            st2, _, body = s.http("GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
            expect(st2 == 200, "X-Forwarded-For must not change the loopback decision: %s" % st2)
        cases.run("forwarded_for_header_does_not_count", remote_refused_by_default)
    cases.exit()


if __name__ == "__main__":
    main()
