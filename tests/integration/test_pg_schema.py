"""The PostgreSQL schema (schema/pg/, docs/postgresql.md) against the SQLite one (schema/),
on a real PostgreSQL 15 cluster started by tools/pgtest.sh:

- the two schemas stay equivalent: same tables, columns, NOT NULL-ness, unique keys,
  foreign keys, indexes, defaults, CHECK counts, triggers and seed rows, apart from the
  documented differences of readings (KNOWN_DIFFERENCES); a SQLite migration without
  its PostgreSQL twin fails here;
- readings' monthly partitions: routing, the default partition, ensure/drop functions;
- schema/pg/ingest.sql: it stores each key once (the first of in-batch duplicates, none
  already stored, none of an unknown device), returns the keys it stored and leaves the
  rollups to the store (their sums are checked in tests/unit/test_store_pg.c against
  SQLite's and against a recomputation); coldchain_temp_q equals base/cc_rollup_math.c's
  cc_query_temp_q (compiled here and called through ctypes);
- every trigger, run side by side with SQLite where both dialects accept the statement.

Env: CC_PG_PORT names the cluster's socket (a free port by default), PGBIN as pgtest.sh.
"""
import calendar
import ctypes
import glob
import math
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

from harness import ROOT, Cases, free_port

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

PG_DIR_PREFIX = "ccpg-schema-"
MS_DAY = 86400000


def ms(y, m, d=1, hh=0):
    """Epoch ms of a UTC date."""
    return calendar.timegm((y, m, d, hh, 0, 0)) * 1000


# What the PostgreSQL schema leaves out on purpose (docs/postgresql.md "What differs").
# readings: the key is (device_id, ts) because a partitioned table's unique keys must hold
# the partition key, so id is not unique by constraint; no foreign keys (issue 14: 25-45 %
# of the ingest rate), the triggers devices_delete_readings / cold_cells_delete_readings
# do their ON DELETE CASCADE.
KNOWN_DIFFERENCES = {
    ("unique only in sqlite", "readings", ("id",), False),
    ("fk only in sqlite", "readings", ("device_id",), "devices", ("id",), "CASCADE"),
    ("fk only in sqlite", "readings", ("cold_cell_id",), "cold_cells", ("id",), "CASCADE"),
    ("trigger only in pg", "audit_log_no_truncate"),
    ("trigger only in pg", "devices_delete_readings"),
    ("trigger only in pg", "cold_cells_delete_readings"),
}
PG_ONLY_TABLES = {"schema_migrations"}  # PRAGMA user_version's counterpart


class Pg:
    """psql against one database; rows come back as lists of strings (NULL as None)."""

    SEP = "\x1f"
    NULL = "<NULL>"

    def __init__(self, url):
        self.url = url

    def run(self, sql, single_tx=False):
        argv = ["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-F", self.SEP, "-P",
                "null=" + self.NULL, "-d", self.url]
        if single_tx:
            argv.append("-1")
        p = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("psql failed: %s\n--- sql:\n%s" % (p.stderr.strip(), sql[:2000]))
        return [[None if c == self.NULL else c for c in line.split(self.SEP)]
                for line in p.stdout.splitlines() if line != ""]

    def fails(self, sql):
        """Runs sql, which must fail; returns psql's error text."""
        p = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", self.url],
                           input=sql, capture_output=True, text=True, timeout=120)
        if p.returncode == 0:
            raise AssertionError("expected an error from: %s" % sql)
        return p.stderr

    def val(self, sql):
        rows = self.run(sql)
        return rows[0][0] if rows else None


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


# ---------------------------------------------------------------- schemas as plain data

def sqlite_schema_db(extra_sql=""):
    db = sqlite3.connect(":memory:")
    for f in sorted(glob.glob(os.path.join(ROOT, "schema", "[0-9]*.sql"))):
        with open(f) as fh:
            db.executescript(fh.read())
    if extra_sql:
        db.executescript(extra_sql)
    return db


def sqlite_model(db):
    m = {"tables": {}, "triggers": set(), "seed": {}}
    tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for t in tables:
        cols, notnull, defaults, pk = [], {}, {}, []
        for cid, name, typ, nn, dflt, pkpos in db.execute("PRAGMA table_info(%s)" % t):
            cols.append(name)
            notnull[name] = bool(nn) or pkpos > 0  # a primary key column holds no NULL
            defaults[name] = norm_default(dflt)
            if pkpos:
                pk.append((pkpos, name))
        uniques = set()
        if pk:
            uniques.add((tuple(sorted(n for _, n in pk)), False))
        indexes = set()
        for _, iname, unique, origin, partial in db.execute("PRAGMA index_list(%s)" % t):
            icols = tuple(r[2] for r in db.execute("PRAGMA index_info(%s)" % iname))
            if unique:
                uniques.add((tuple(sorted(icols)), bool(partial)))
            else:
                indexes.add(icols)
        fks = set()
        fkrows = {}
        for fid, seq, ref, frm, to, _upd, ondel, _m in db.execute(
                "PRAGMA foreign_key_list(%s)" % t):
            fkrows.setdefault(fid, [ref, [], [], ondel])
            fkrows[fid][1].append(frm)
            fkrows[fid][2].append(to)
        for ref, frm, to, ondel in fkrows.values():
            fks.add((tuple(frm), ref, tuple(to), ondel))
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (t,)).fetchone()[0]
        m["tables"][t] = {"columns": set(cols), "notnull": notnull, "defaults": defaults,
                          "uniques": uniques, "indexes": indexes, "fks": fks,
                          "checks": len(re.findall(r"\bCHECK\s*\(", sql))}
    m["triggers"] = {r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    m["seed"]["stat_counters"] = sorted(tuple(str(c) for c in r) for r in db.execute(
        "SELECT name, label, value FROM stat_counters"))
    m["seed"]["ingest_checkpoint"] = sorted(tuple(str(c) for c in r) for r in db.execute(
        "SELECT id, journal_gen, journal_offset FROM ingest_checkpoint"))
    return m


def norm_default(d):
    """A column default as text without quotes' casts: '0', 'UTC', '0.5', None."""
    if d is None:
        return None
    d = re.sub(r"::[a-z ]+$", "", d.strip())
    if d.startswith("nextval("):
        return None  # an id from a sequence: SQLite's rowid, no default there
    if d.startswith("'") and d.endswith("'"):
        d = d[1:-1]
    return d


# The tables compared: public, ordinary or partitioned, no partition children.
PG_TABLES = ("SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
             " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition")


def pg_model(pg):
    """The same model as sqlite_model, from the catalog: one query per kind of object."""
    m = {"tables": {}, "triggers": set(), "seed": {}}
    for t in [r[0] for r in pg.run("SELECT oid::regclass::text FROM pg_class WHERE oid IN (%s)"
                                   % PG_TABLES)]:
        if t not in PG_ONLY_TABLES:
            m["tables"][t] = {"columns": set(), "notnull": {}, "defaults": {}, "uniques": set(),
                              "indexes": set(), "fks": set(), "checks": 0}
    tabs = m["tables"]
    for t, name, nn, dflt in pg.run(
            "SELECT a.attrelid::regclass::text, a.attname, a.attnotnull,"
            " pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d"
            " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid IN (%s) AND a.attnum > 0 AND NOT a.attisdropped" % PG_TABLES):
        if t in tabs:
            tabs[t]["columns"].add(name)
            tabs[t]["notnull"][name] = nn == "t"
            tabs[t]["defaults"][name] = norm_default(dflt)
    for t, uniq, partial, expr, icols in pg.run(
            "SELECT i.indrelid::regclass::text, i.indisunique, i.indpred IS NOT NULL,"
            " 0 = ANY(i.indkey::int2[]),"
            " (SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM"
            "  unnest(i.indkey::int2[]) WITH ORDINALITY k (attnum, n)"
            "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)"
            " FROM pg_index i WHERE i.indrelid IN (%s)" % PG_TABLES):
        if t not in tabs:
            continue
        expect(expr == "f", "%s has an expression index: compare it by hand" % t)
        icols = tuple(icols.split(","))
        if uniq == "t":
            tabs[t]["uniques"].add((tuple(sorted(icols)), partial == "t"))
        else:
            tabs[t]["indexes"].add(icols)
    actions = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
               "d": "SET DEFAULT"}
    for t, frm, ref, to, ondel in pg.run(
            "SELECT c.conrelid::regclass::text,"
            " (SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM"
            "  unnest(c.conkey) WITH ORDINALITY k (attnum, n) JOIN pg_attribute a"
            "  ON a.attrelid = c.conrelid AND a.attnum = k.attnum),"
            " c.confrelid::regclass::text,"
            " (SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM"
            "  unnest(c.confkey) WITH ORDINALITY k (attnum, n) JOIN pg_attribute a"
            "  ON a.attrelid = c.confrelid AND a.attnum = k.attnum),"
            " c.confdeltype FROM pg_constraint c"
            " WHERE c.conrelid IN (%s) AND c.contype = 'f'" % PG_TABLES):
        if t in tabs:
            tabs[t]["fks"].add((tuple(frm.split(",")), ref, tuple(to.split(",")), actions[ondel]))
    for t, n in pg.run("SELECT conrelid::regclass::text, count(*) FROM pg_constraint"
                       " WHERE conrelid IN (%s) AND contype = 'c' GROUP BY 1" % PG_TABLES):
        if t in tabs:
            tabs[t]["checks"] = int(n)
    m["triggers"] = {r[0] for r in pg.run(
        "SELECT tgname FROM pg_trigger WHERE tgrelid IN (%s) AND NOT tgisinternal" % PG_TABLES)}
    m["seed"]["stat_counters"] = sorted(tuple(r) for r in pg.run(
        "SELECT name, label, value FROM stat_counters"))
    m["seed"]["ingest_checkpoint"] = sorted(tuple(r) for r in pg.run(
        "SELECT id, journal_gen, journal_offset FROM ingest_checkpoint"))
    return m


def differences(lite, pgm):
    """Every difference between the two models, as tuples; KNOWN_DIFFERENCES removed."""
    diffs = set()
    for t in set(lite["tables"]) | set(pgm["tables"]):
        if t not in pgm["tables"]:
            diffs.add(("table only in sqlite", t))
            continue
        if t not in lite["tables"]:
            diffs.add(("table only in pg", t))
            continue
        a, b = lite["tables"][t], pgm["tables"][t]
        for c in a["columns"] ^ b["columns"]:
            diffs.add(("column only in " + ("sqlite" if c in a["columns"] else "pg"), t, c))
        for c in a["columns"] & b["columns"]:
            if a["notnull"][c] != b["notnull"][c]:
                diffs.add(("NOT NULL differs", t, c, a["notnull"][c], b["notnull"][c]))
            if a["defaults"][c] != b["defaults"][c]:
                diffs.add(("default differs", t, c, a["defaults"][c], b["defaults"][c]))
        for u in a["uniques"] - b["uniques"]:
            diffs.add(("unique only in sqlite", t) + u)
        for u in b["uniques"] - a["uniques"]:
            diffs.add(("unique only in pg", t) + u)
        for i in a["indexes"] ^ b["indexes"]:
            diffs.add(("index only in " + ("sqlite" if i in a["indexes"] else "pg"), t, i))
        for f in a["fks"] - b["fks"]:
            diffs.add(("fk only in sqlite", t) + f)
        for f in b["fks"] - a["fks"]:
            diffs.add(("fk only in pg", t) + f)
        if a["checks"] != b["checks"]:
            diffs.add(("CHECK count differs", t, a["checks"], b["checks"]))
    for g in lite["triggers"] - pgm["triggers"]:
        diffs.add(("trigger only in sqlite", g))
    for g in pgm["triggers"] - lite["triggers"]:
        diffs.add(("trigger only in pg", g))
    for k in lite["seed"]:
        if lite["seed"][k] != pgm["seed"][k]:
            diffs.add(("seed rows differ", k))
    return diffs - KNOWN_DIFFERENCES


# ---------------------------------------------------------------- the exact rollup terms

class RollupMath:
    """base/cc_rollup_math.c itself, compiled into a shared object and called via ctypes."""

    def __init__(self, tmp):
        so = os.path.join(tmp, "cc_rollup_math.so")
        subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-shared", "-fPIC", "-o", so,
                        os.path.join(ROOT, "common", "base", "cc_rollup_math.c"), "-lm"],
                       check=True)
        self.lib = ctypes.CDLL(so)
        self.lib.cc_query_temp_q.restype = ctypes.c_int64
        self.lib.cc_query_temp_q.argtypes = [ctypes.c_double]

    def temp_q(self, t):
        return self.lib.cc_query_temp_q(t)


def arr(values, kind):
    def one(v):
        if v is None:
            return "NULL"
        return repr(float(v)) if kind == "f" else str(int(v))
    return "'{%s}'" % ",".join(one(v) for v in values)


def load_ingest_sql():
    with open(os.path.join(ROOT, "schema", "pg", "ingest.sql")) as fh:
        text = fh.read()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return body.strip().rstrip(";")


INGEST_TYPES = ("bigint[], bigint[], bigint[], double precision[], double precision[],"
                " integer[], integer[], double precision[], bigint[]")


def ingest(pg, batch):
    """Runs schema/pg/ingest.sql on batch [(device, cell, ts, t), ...] as given (the store
    sends it sorted and without duplicates; a duplicate sent anyway must still be stored
    once): the positions (1-based) of the keys it returns, each key's first position."""
    n = len(batch)
    args = ", ".join([
        arr([b[0] for b in batch], "i"), arr([b[1] for b in batch], "i"),
        arr([b[2] for b in batch], "i"), arr([b[3] for b in batch], "f"),
        arr([50.0] * n, "f"), arr([1] * n, "i"), arr([None] * n, "i"),
        arr([None] * n, "f"), arr([b[2] + 5 for b in batch], "i")])
    rows = pg.run("PREPARE ingest (%s) AS %s;\nEXECUTE ingest(%s);"
                  % (INGEST_TYPES, load_ingest_sql(), args))
    first = {}
    for i, b in enumerate(batch):
        first.setdefault((b[0], b[2]), i + 1)
    keys = [(int(r[0]), int(r[1])) for r in rows]
    expect(len(keys) == len(set(keys)), "a key returned twice: %r" % keys)
    expect(all(k in first for k in keys), "a key not sent: %r" % keys)
    return sorted(first[k] for k in keys)


# ---------------------------------------------------------------- fixtures

FIXTURE_SQL = """
INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES
    (1, 'Owner@Example.com', 'h1', 'CUSTOMER', 'owner', 0),
    (2, 'tech@example.com', 'h2', 'TECHNICIAN', 'tech', 0);
INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'site', 0);
INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at) VALUES
    (1, 1, 'c1', 2, 8, 0), (2, 1, 'c2', 2, 8, 0), (3, 1, 'c3', 2, 8, 0);
INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix, created_at)
VALUES (1, 'D1', 1, 'k', 'p', 0), (2, 'D2', 1, 'k', 'p', 0), (3, 'D3', 2, 'k', 'p', 0),
       (4, 'D4', 3, 'k', 'p', 0), (5, 'D5', 3, 'k', 'p', 0);
"""

# Both dialects accept every statement; run on each, the counters must agree.
COUNTER_SCRIPT = [
    "INSERT INTO alerts (id, cold_cell_id, device_id, type, message, first_triggered_at,"
    " last_triggered_at) VALUES (1, 1, 1, 'HIGH_TEMP', 'm', 1, 1)",
    "INSERT INTO alerts (id, cold_cell_id, device_id, type, status, message,"
    " first_triggered_at, last_triggered_at) VALUES (2, 1, 2, 'LOW_TEMP', 'RESOLVED', 'm', 1, 1)",
    # re-trigger of the ACTIVE alert: the DO UPDATE path, no AFTER INSERT
    "INSERT INTO alerts (cold_cell_id, device_id, type, message, first_triggered_at,"
    " last_triggered_at) VALUES (1, 1, 'HIGH_TEMP', 'm', 2, 2)"
    " ON CONFLICT (cold_cell_id, device_id, type) WHERE status = 'ACTIVE'"
    " DO UPDATE SET trigger_count = alerts.trigger_count + 1,"
    " last_triggered_at = excluded.last_triggered_at",
    "UPDATE alerts SET status = 'RESOLVED', resolved_at = 3 WHERE id = 1",
    "UPDATE alerts SET status = 'RESOLVED', resolved_at = 4 WHERE id = 1",  # no change
    "UPDATE alerts SET message = 'x' WHERE id = 2",                          # not status
    "INSERT INTO notifications (id, user_id, alert_id, kind, channel, payload,"
    " next_attempt_at, created_at) VALUES (1, 1, 1, 'ALERT', 'inbox', '{}', 0, 0)",
    "INSERT INTO notification_deliveries (notification_id, channel, status, next_attempt_at)"
    " VALUES (1, 'webhook', 'SENT', 0)",
    "INSERT INTO notification_deliveries (notification_id, channel, next_attempt_at)"
    " VALUES (1, 'email', 0)",
    "UPDATE notification_deliveries SET attempts = 1 WHERE channel = 'email'",
    "UPDATE notification_deliveries SET status = 'FAILED' WHERE channel = 'email'",
    "UPDATE notification_deliveries SET status = 'FAILED' WHERE channel = 'email'",
    "INSERT INTO alert_events (id, alert_id, cold_cell_id, event, payload, next_attempt_at,"
    " created_at) VALUES (1, 1, 1, 'CREATED', '{}', 0, 0)",
    "INSERT INTO alert_events (id, alert_id, cold_cell_id, event, payload, next_attempt_at,"
    " created_at) VALUES (2, 1, 1, 'RESOLVED', '{}', 0, 0)",
    "UPDATE alert_events SET status = 'SENT' WHERE id = 1",
    "UPDATE alert_events SET status = 'FAILED' WHERE id = 2",
    "UPDATE alert_events SET status = 'FAILED' WHERE id = 2",
    # given up, then acknowledged after all (a late PUBACK): counted by the worker, not here
    "INSERT INTO alert_events (id, alert_id, cold_cell_id, event, payload, next_attempt_at,"
    " created_at) VALUES (3, 1, 1, 'ESCALATED', '{}', 0, 0)",
    "UPDATE alert_events SET status = 'FAILED' WHERE id = 3",
    "UPDATE alert_events SET status = 'SENT' WHERE id = 3",
    "UPDATE alert_events SET status = 'SENT' WHERE id = 3",
    "INSERT INTO notification_deliveries (notification_id, channel, status, next_attempt_at)"
    " VALUES (1, 'mqtt', 'FAILED', 0)",
    "UPDATE notification_deliveries SET status = 'SENT' WHERE channel = 'mqtt'",
]
# The alert totals and the alert events' (mqtt) do not move: no trigger counts alerts or
# alert_events rows since schema/0012 and pg/0008; cc_alert_ops counts its raises and
# resolves, the delivery worker the events it sends, and the store writes them at commit
# (test_alert_pg: alert_counts_at_commit).
COUNTERS_AFTER = {  # what the script must leave, whatever both dialects say
    ("deliveries_sent", "webhook"): 1, ("deliveries_failed", "email"): 1,
    # the notification delivery given up and then sent (a late outcome): failed -1, sent +1
    ("deliveries_sent", "mqtt"): 1,
}

PASSWORD_SCRIPT = [
    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at)"
    " VALUES (1, 2, 'f1', 't1', 0, 9), (2, 2, 'f2', 't2', 0, 9), (4, 1, 'f4', 't4', 0, 9)",
    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at,"
    " revoked_at) VALUES (3, 2, 'f1', 't3', 0, 9, 5)",
    "UPDATE users SET name = 'renamed' WHERE id = 2",                           # no change
    "UPDATE users SET password_hash = coalesce(NULL, password_hash) WHERE id = 2",  # same value
    "UPDATE users SET password_hash = 'new' WHERE id = 2",
]


def main():
    cases = Cases()
    tmp = tempfile.mkdtemp(prefix=PG_DIR_PREFIX, dir="/tmp")
    os.chmod(tmp, 0o755)
    pgdir = os.path.join(tmp, "pg")
    port = os.environ.get("CC_PG_PORT") or str(free_port())
    try:
        t0 = time.time()
        p = subprocess.run(["sh", os.path.join(ROOT, "tools", "pgtest.sh"), "start", pgdir, port],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            print("FAIL pg_cluster_start: %s" % p.stderr)
            sys.exit(1)
        pg = Pg(p.stdout.strip().splitlines()[-1])
        print("# cluster up in %.1fs" % (time.time() - t0))
        cmath = RollupMath(tmp)
        run_cases(cases, pg, cmath)
    finally:
        # Also after a failed start: pgtest.sh stop is a no-op without a running server.
        subprocess.run(["sh", os.path.join(ROOT, "tools", "pgtest.sh"), "stop", pgdir],
                       capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", tmp])
    cases.exit()


def run_cases(cases, pg, cmath):
    files = sorted(glob.glob(os.path.join(ROOT, "schema", "pg", "[0-9][0-9][0-9][0-9]_*.sql")))

    def migrations_apply():
        expect(files, "no schema/pg/NNNN_*.sql")
        for f in files:
            with open(f) as fh:
                pg.run(fh.read(), single_tx=True)
        got = pg.run("SELECT version, name FROM schema_migrations ORDER BY version")
        want = [[str(int(os.path.basename(f)[:4])), os.path.basename(f)[:-4]] for f in files]
        expect(got == want, "schema_migrations %r, files %r" % (got, want))
        with open(files[0]) as fh:
            err = pg.fails(fh.read())
        expect("already exists" in err, "re-applying %s: %s" % (files[0], err))
    if not cases.run("pg_migrations_apply_in_order_and_record_themselves", migrations_apply):
        return

    def equivalent():
        d = differences(sqlite_model(sqlite_schema_db()), pg_model(pg))
        expect(not d, "SQLite and PostgreSQL schemas differ:\n  " +
               "\n  ".join(repr(x) for x in sorted(d, key=repr)))
    cases.run("pg_schema_equivalent_to_sqlite", equivalent)

    def drift_detected():
        # The comparison itself: a SQLite migration without a PG twin must show up.
        lite = sqlite_model(sqlite_schema_db(
            "ALTER TABLE devices ADD COLUMN location_hint TEXT NOT NULL DEFAULT '';"
            "CREATE UNIQUE INDEX devices_prefix ON devices (api_key_prefix);"
            "CREATE TABLE extra (id INTEGER PRIMARY KEY);"
            "CREATE TRIGGER extra_t AFTER INSERT ON extra BEGIN SELECT 1; END;"))
        d = differences(lite, pg_model(pg))
        want = {("column only in sqlite", "devices", "location_hint"),
                ("unique only in sqlite", "devices", ("api_key_prefix",), False),
                ("table only in sqlite", "extra"), ("trigger only in sqlite", "extra_t")}
        expect(want <= d, "undetected: %r (got %r)" % (want - d, d))
    cases.run("pg_schema_comparison_detects_a_missing_twin", drift_detected)

    pg.run(FIXTURE_SQL)

    def citext_email():
        err = pg.fails("INSERT INTO users (id, email, password_hash, role, name, created_at)"
                       " VALUES (10, 'OWNER@example.COM', 'h', 'CUSTOMER', 'x', 0)")
        expect("users_email_key" in err, err)
        expect(pg.val("SELECT id FROM users WHERE email = 'owner@EXAMPLE.com'") == "1",
               "case-insensitive lookup")
    cases.run("pg_users_email_unique_case_insensitive", citext_email)

    jan, feb, mar = ms(2030, 1, 15), ms(2030, 2, 10), ms(2030, 3, 20)

    def partitions():
        n = int(pg.val("SELECT coldchain_ensure_partitions(%d, 2)" % ms(2030, 1, 31, 23)))
        expect(n == 3, "created %d, want 3" % n)
        n = int(pg.val("SELECT coldchain_ensure_partitions(%d, 2)" % jan))
        expect(n == 0, "second call created %d" % n)
        pg.run("INSERT INTO readings (device_id, cold_cell_id, ts, temperature, received_at)"
               " VALUES (1, 1, %d, 4, 0), (1, 1, %d, 4, 0), (1, 1, %d, 4, 0),"
               " (1, 1, %d, 4, 0)" % (jan, feb, mar, ms(2030, 2, 1) - 1))
        got = pg.run("SELECT ts, tableoid::regclass FROM readings WHERE ts >= %d ORDER BY ts"
                     % ms(2030, 1))
        want = [[str(jan), "readings_203001"], [str(ms(2030, 2, 1) - 1), "readings_203001"],
                [str(feb), "readings_203002"], [str(mar), "readings_203003"]]
        expect(got == want, "routing %r" % got)
        bounds = pg.val("SELECT pg_get_expr(relpartbound, oid) FROM pg_class"
                        " WHERE relname = 'readings_203002'")
        expect(bounds == "FOR VALUES FROM ('%d') TO ('%d')" % (ms(2030, 2), ms(2030, 3)), bounds)
    cases.run("pg_readings_three_months_three_partitions_ensure_idempotent", partitions)

    def default_partition():
        jun = ms(2031, 6, 5)
        pg.run("INSERT INTO readings (device_id, cold_cell_id, ts, temperature, received_at)"
               " VALUES (2, 1, %d, 6.5, 0)" % jun)
        where = pg.run("SELECT id, tableoid::regclass FROM readings WHERE ts = %d" % jun)
        expect(len(where) == 1 and where[0][1] == "readings_default", where)
        # A month asked for now, plus every month waiting in the default partition.
        n = int(pg.val("SELECT coldchain_ensure_partitions(%d, 0)" % mar))
        expect(n == 1, "created %d, want 1 (2031-06)" % n)
        after = pg.run("SELECT id, tableoid::regclass, temperature FROM readings WHERE ts = %d"
                       % jun)
        expect(after == [[where[0][0], "readings_203106", "6.5"]], after)
        expect(pg.val("SELECT count(*) FROM readings_default") == "0", "default not emptied")
        idx = pg.run("SELECT indexrelid::regclass FROM pg_index"
                     " WHERE indrelid = 'readings_203106'::regclass ORDER BY 1")
        expect(len(idx) == 2, "the attached partition's indexes: %r" % idx)
        err = pg.fails("INSERT INTO readings (device_id, cold_cell_id, ts, temperature,"
                       " received_at) VALUES (2, 1, %d, 1, 0)" % jun)
        expect("readings_203106_pkey" in err, "key enforced after the move: " + err)
        for bad in ("%d, 121" % jan, "%d, -1" % jan, "-1, 0", "253402300800000, 0"):
            err = pg.fails("SELECT coldchain_ensure_partitions(%s)" % bad)
            expect("out of range" in err, "(%s): %s" % (bad, err))
    cases.run("pg_readings_default_partition_keeps_and_ensure_moves", default_partition)

    def drop_partitions():
        n = int(pg.val("SELECT coldchain_drop_partitions_before(%d)" % feb))
        expect(n == 1, "dropped %d, want 1 (2030-01 only)" % n)
        parts = [r[0] for r in pg.run(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'readings'::regclass AND c.relname LIKE 'readings_20%'"
            " ORDER BY 1")]
        expect("readings_203001" not in parts and "readings_203002" in parts
               and "readings_203003" in parts and "readings_203106" in parts, parts)
        left = [int(r[0]) for r in pg.run(
            "SELECT ts FROM readings WHERE ts >= %d ORDER BY ts" % ms(2030, 1))]
        expect(left == [feb, mar, ms(2031, 6, 5)], left)
        n = int(pg.val("SELECT coldchain_drop_partitions_before(%d)" % ms(2030, 3)))
        expect(n == 1, "a month ending exactly at ts: dropped %d, want 1" % n)
        n = int(pg.val("SELECT coldchain_drop_partitions_before(%d)" % ms(2030, 3)))
        expect(n == 0, "again: dropped %d" % n)
        expect(pg.val("SELECT count(*) FROM pg_class WHERE relname = 'readings_default'") == "1",
               "the default partition is never dropped")
    cases.run("pg_drop_partitions_before_drops_only_older_months", drop_partitions)

    def temp_q_exact():
        vals = [0.0, 3.7, -3.7, 2.5 / 2 ** 20, -2.5 / 2 ** 20, 5 + 2.5 / 2 ** 20,
                -(5 + 2.5 / 2 ** 20), 3.5 / 2 ** 20, 0.49999999999999994 / 2 ** 20,
                149.99999999999997, -99.99999999999999, 1e9, 1e9 + 1, 1e-300, 21.123456789]
        got = [int(r[0]) for r in pg.run(
            "SELECT coldchain_temp_q(v) FROM unnest(%s::double precision[]) WITH ORDINALITY"
            " u (v, n) ORDER BY n" % arr(vals, "f"))]
        want = [cmath.temp_q(v) for v in vals]
        expect(got == want, "coldchain_temp_q %r, cc_query_temp_q %r" % (got, want))
        special = pg.run("SELECT coldchain_temp_q('NaN'), coldchain_temp_q('Infinity')")
        expect(special == [["0", "0"]], special)
    cases.run("pg_temp_q_equals_cc_query_temp_q_incl_ties", temp_q_exact)

    base = ms(2029, 5, 1)

    def batch_insert():
        pg.val("SELECT coldchain_ensure_partitions(%d, 1)" % base)
        first = [(4, 3, base + 1000, 4.0), (4, 3, base + 61000, 5.25)]
        expect(ingest(pg, first) == [1, 2], "first batch")
        # Ties of temp_q, a warm reading (large MKT term: carries across the limbs), the
        # stored (4, base + 1000) again with another value, a duplicate inside the batch,
        # an unknown device, buckets of both sizes and a reading older than the bucket's.
        second = [
            (4, 3, base + 1000, 40.0),                   # 1 already stored: skipped
            (5, 3, base + 2000, 5 + 2.5 / 2 ** 20),      # 2
            (5, 3, base + 2000, 7.0),                    # 3 duplicate in batch: skipped
            (99, 3, base + 3000, 3.0),                   # 4 no such device: skipped
            (4, 3, base + 301000, 140.0),                # 5 next 5-min bucket, same 30-min
            (5, 3, base + 1801000, -(3 + 2.5 / 2 ** 20)),  # 6 next 30-min bucket
            (4, 3, base + 500, 2.0),                     # 7 older than the bucket's first
            (4, 3, base + 302000, 149.5),                # 8
        ]
        got = ingest(pg, second)
        expect(got == [2, 5, 6, 7, 8], "stored positions %r" % got)
        stored = pg.run("SELECT temperature FROM readings WHERE device_id = 4 AND ts = %d"
                        % (base + 1000))
        expect(stored == [["4"]], "the stored reading was overwritten: %r" % stored)
        dup = pg.run("SELECT temperature FROM readings WHERE device_id = 5 AND ts = %d"
                     % (base + 2000))
        expect(dup == [[repr(5 + 2.5 / 2 ** 20)]], "first of the in-batch duplicates: %r" % dup)
        expect(ingest(pg, second) == [], "replay of the whole batch")
        # The rollups are the store's (cc_store_pg_rollup.c), from the keys returned.
        n5 = pg.val("SELECT count(*) FROM readings_5m WHERE cold_cell_id = 3")
        expect(n5 == "0", "the insert statement wrote rollups: %s" % n5)
    cases.run("pg_batch_insert_stores_each_key_once_and_returns_it", batch_insert)

    def batch_many():
        # 1200 readings over three cells, in three overlapping batches, shuffled.
        rnd = random.Random(14)
        rows = [(1 + (i % 2), 1, base + i * 97000 + rnd.randrange(1000),
                 round(rnd.uniform(-30, 60), rnd.choice([1, 2, 6]))) for i in range(1000)]
        rows += [(3, 2, base + i * 300000, rnd.uniform(-99, 149)) for i in range(200)]
        rnd.shuffle(rows)
        got = [len(ingest(pg, rows[:500])), len(ingest(pg, rows[400:900])),
               len(ingest(pg, rows[850:]))]
        expect(got == [500, 400, 300], "keys returned per batch: %r" % got)
        n = int(pg.val("SELECT count(*) FROM readings WHERE cold_cell_id IN (1, 2)"
                       " AND ts >= %d AND ts < %d" % (base, base + 40 * MS_DAY)))
        expect(n == 1200, "readings stored: %d" % n)
    cases.run("pg_batch_insert_1200_readings_overlapping_batches", batch_many)

    def counters():
        lite = sqlite_schema_db(FIXTURE_SQL)
        before = dict(((r[0], r[1]), int(r[2])) for r in pg.run(
            "SELECT name, label, value FROM stat_counters"))
        for s in COUNTER_SCRIPT:
            pg.run(s)
            lite.execute(s)
        pg_after = dict(((r[0], r[1]), int(r[2])) for r in pg.run(
            "SELECT name, label, value FROM stat_counters"))
        lite_after = dict(((r[0], r[1]), int(r[2])) for r in lite.execute(
            "SELECT name, label, value FROM stat_counters"))
        moved = {k: v - before[k] for k, v in pg_after.items() if v != before[k]}
        expect(moved == COUNTERS_AFTER, "PostgreSQL counters moved %r" % moved)
        expect(pg_after == lite_after, "PostgreSQL %r, SQLite %r" % (pg_after, lite_after))
        tc = pg.val("SELECT trigger_count FROM alerts WHERE id = 1")
        expect(tc == "2", "the re-trigger upsert: trigger_count %s" % tc)
    cases.run("pg_stat_counters_move_as_in_sqlite", counters)

    def audit_log():
        pg.run("INSERT INTO audit_log (ts, actor_user_id, action, entity, entity_id, detail)"
               " VALUES (1, 1, 'create', 'user', 2, '{}')")
        for s in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log",
                  "TRUNCATE audit_log"):
            err = pg.fails(s)
            expect("audit_log is append-only" in err, "%s: %s" % (s, err))
        rows = pg.run("SELECT ts, action FROM audit_log")
        expect(rows == [["1", "create"]], rows)
    cases.run("pg_audit_log_rejects_update_delete_truncate", audit_log)

    def password_trigger():
        lite = sqlite_schema_db(FIXTURE_SQL)
        t0 = int(time.time() * 1000)
        for s in PASSWORD_SCRIPT:
            pg.run(s)
            lite.execute(s)
        t1 = int(time.time() * 1000)
        q = "SELECT id, token_version FROM users ORDER BY id"
        got = [[int(c) for c in r] for r in pg.run(q)]
        expect(got == [[1, 0], [2, 1]], "token_version %r" % got)
        expect(got == [list(r) for r in lite.execute(q)], "SQLite differs: %r"
               % lite.execute(q).fetchall())
        q = "SELECT id, revoked_at FROM refresh_tokens ORDER BY id"
        toks = {int(r[0]): (int(r[1]) if r[1] is not None else None) for r in pg.run(q)}
        expect(toks[3] == 5 and toks[4] is None, "untouched tokens %r" % toks)
        for i in (1, 2):
            expect(toks[i] is not None and t0 - 1000 <= toks[i] <= t1 + 1000,
                   "token %d revoked_at %r not in [%d, %d]" % (i, toks[i], t0, t1))
        lite_toks = dict(lite.execute(q).fetchall())
        expect({k: v is None for k, v in toks.items()} ==
               {k: v is None for k, v in lite_toks.items()}, "SQLite %r" % lite_toks)
        pg.run("UPDATE users SET password_hash = 'newer', token_version = 7 WHERE id = 2")
        v = pg.val("SELECT token_version FROM users WHERE id = 2")
        lite.execute("UPDATE users SET password_hash = 'newer', token_version = 7 WHERE id = 2")
        lv = lite.execute("SELECT token_version FROM users WHERE id = 2").fetchone()[0]
        expect(v == "8" and lv == 8, "explicit version plus change: pg %s sqlite %s" % (v, lv))
    cases.run("pg_users_password_trigger_bumps_version_and_revokes", password_trigger)

    def delete_triggers():
        # Device 1 moves from cell 1 to cell 2, writes there, and is deleted; cell 2 goes
        # too. What ON DELETE CASCADE removed in SQLite must be gone, the rest stay.
        t = ms(2029, 8, 3)
        pg.val("SELECT coldchain_ensure_partitions(%d, 0)" % t)
        pg.run("UPDATE devices SET cold_cell_id = 2 WHERE id = 1")
        pg.run("INSERT INTO readings (device_id, cold_cell_id, ts, temperature, received_at)"
               " VALUES (1, 2, %d, 3, 0), (2, 1, %d, 3, 0), (3, 2, %d, 3, 0),"
               " (2, 2, %d, 3, 0)" % (t, t, t, t + 1))
        pg.run("INSERT INTO readings (device_id, cold_cell_id, ts, temperature, received_at)"
               " VALUES (1, 1, %d, 3, 0)" % ms(2040, 1))  # into readings_default
        n1 = int(pg.val("SELECT count(*) FROM readings WHERE device_id = 1"))
        expect(n1 >= 3, "device 1 readings %d" % n1)
        pg.run("DELETE FROM devices WHERE id = 1")
        expect(pg.val("SELECT count(*) FROM readings WHERE device_id = 1") == "0",
               "device 1's readings survived its delete")
        n2 = int(pg.val("SELECT count(*) FROM readings WHERE device_id = 2"))
        pg.run("DELETE FROM cold_cells WHERE id = 2")
        left = pg.run("SELECT device_id, cold_cell_id FROM readings WHERE cold_cell_id = 2"
                      " OR device_id = 3")
        expect(left == [], "cell 2's readings survived its delete: %r" % left)
        n2b = int(pg.val("SELECT count(*) FROM readings WHERE device_id = 2"))
        expect(n2b == n2 - 1, "device 2 (still in cell 1) lost %d readings, want 1 (its"
               " cell-2 one)" % (n2 - n2b))
        expect(pg.val("SELECT count(*) FROM readings_5m WHERE cold_cell_id = 2") == "0",
               "rollups of the deleted cell")
    cases.run("pg_device_and_cell_delete_remove_their_readings", delete_triggers)


if __name__ == "__main__":
    main()
