"""ccctl's backup, restore and device cert against a real PostgreSQL 15 (issue 14 point 4),
and restore on SQLite, its counterpart.

One throwaway cluster (tools/pgtest.sh, socket port 55416), stopped in `finally`. The
backup/restore/cert cases use a database whose schema psql loads from
schema/pg/0001_init.sql (known rows, ids and all); the others a database per case that
`ccctl migrate` creates (the PostgreSQL migration runner) and ccctl fills:

- migrate: prints the schema version, twice the same; seed: the demo data, its keys file
  0600, a second seed changes nothing; seed, backup, restore: every table's rows equal;
- user add (an e-mail taken in another case is a conflict: citext), --link-technician
  (a non-technician rolls the new customer back); device add prints its key once, stores
  only its hash, conflicts and unknown cells; device import on PostgreSQL;

- backup: a pg_dump custom-format archive, mode 0600, no .tmp left, read by
  pg_restore --list; a missing directory fails;
- a password in COLDCHAIN_DB never reaches pg_dump's command line: it goes to a 0600
  passfile named by PGPASSFILE, removed afterwards (a stub pg_dump records what it got),
  and a URL with a password works with the real pg_dump;
- restore into a fresh database: the rows are there, ids and all; a non-empty database is
  refused and left as it was; a restore failing midway (or a cut archive) leaves no
  table (one transaction);
- device cert reads the device's id from PostgreSQL (SAN urn:coldchain:device:<id>);
- SQLite: restore copies a backup into a new file and refuses to overwrite one."""
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile

from apitest import expect
from harness import BUILD, ROOT, Cases

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

PG_PORT = "55416"  # this suite's socket name (tools/pgtest.sh PORT)
PGBIN = "/usr/lib/postgresql/15/bin"


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cc-ccctl-pg-", dir="/tmp")
        os.chmod(self.dir, 0o755)  # the postgres user must reach the socket directory
        self.sock = os.path.join(self.dir, "c")
        p = subprocess.run(["sh", os.path.join(ROOT, "tools", "pgtest.sh"), "start", self.sock,
                            PG_PORT], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError("PostgreSQL did not start: %s %s" % (p.stdout, p.stderr))
        self.url = self.db_url("coldchain")

    def db_url(self, name):
        return "postgresql:///%s?host=%s&port=%s&user=coldchain" % (name, self.sock, PG_PORT)

    def psql(self, db, sql, *extra):
        p = subprocess.run([os.path.join(PGBIN, "psql"), self.db_url(db), "-qAt", "-v",
                            "ON_ERROR_STOP=1", *extra] + (["-c", sql] if sql else []),
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("psql: %s" % p.stderr)
        return p.stdout.strip()

    def createdb(self, name):
        self.psql("coldchain", "CREATE DATABASE %s" % name)
        return self.db_url(name)

    def close(self):
        subprocess.run(["sh", os.path.join(ROOT, "tools", "pgtest.sh"), "stop", self.sock],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def ccctl(db, *args, path=None, check=True):
    env = dict(os.environ, COLDCHAIN_DB=db, LOG_LEVEL="info")
    if path is not None:
        env["PATH"] = path + ":" + env["PATH"]
    p = subprocess.run([os.path.join(BUILD, "ccctl")] + list(args), env=env,
                       capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise RuntimeError("ccctl %s failed (%d): %s %s" % (" ".join(args), p.returncode,
                                                            p.stdout, p.stderr))
    return p


SEED_SQL = """
INSERT INTO users (email, password_hash, role, name, created_at)
    VALUES ('Owner@Example.com', 'hash-1', 'CUSTOMER', 'Owner', 1000);
INSERT INTO locations (customer_id, name, created_at)
    SELECT id, 'Depot', 1001 FROM users WHERE email = 'owner@example.com';
INSERT INTO cold_cells (location_id, name, min_temp, max_temp, created_at)
    SELECT id, 'Freezer', -25, -15, 1002 FROM locations;
INSERT INTO devices (id, serial_number, cold_cell_id, api_key_hash, api_key_prefix, created_at)
    SELECT 41, 'SN-PG-1', id, 'khash-1', 'kpre', 1003 FROM cold_cells;
INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, api_key_prefix, created_at)
    SELECT 'SN-PG-2', id, 'khash-2', 'kpre', 1004 FROM cold_cells;
"""

ROWS_SQL = ("SELECT string_agg(serial_number || '/' || id || '/' || api_key_hash, ',' "
            "ORDER BY serial_number) FROM devices")


def main():
    cases = Cases()
    cl = Cluster()
    work = tempfile.mkdtemp(prefix="cc-ccctl-pg-w-")
    try:
        schema = os.path.join(ROOT, "schema", "pg", "0001_init.sql")
        cl.psql("coldchain", None, "-f", schema)
        cl.psql("coldchain", SEED_SQL)
        want_rows = cl.psql("coldchain", ROWS_SQL)
        expect(want_rows.startswith("SN-PG-1/41/khash-1,"), "seed rows: %r" % want_rows)
        dump = os.path.join(work, "coldchain.dump")

        def backup_writes_custom_dump():
            p = ccctl(cl.url, "backup", dump)
            expect(p.stdout.strip() == dump, "stdout %r" % p.stdout)
            expect(os.path.exists(dump) and not os.path.exists(dump + ".tmp"), "no dump file")
            expect(stat.S_IMODE(os.stat(dump).st_mode) == 0o600, "dump is not mode 0600")
            with open(dump, "rb") as f:
                expect(f.read(5) == b"PGDMP", "not a pg_dump custom-format archive")
            lst = subprocess.run(["pg_restore", "--list", dump], capture_output=True,
                                 text=True, timeout=60)
            expect(lst.returncode == 0, "pg_restore --list: %s" % lst.stderr)
            expect("TABLE DATA public devices" in lst.stdout, "no devices data in the dump")
            p = ccctl(cl.url, "backup", os.path.join(work, "no-such-dir", "x.dump"), check=False)
            expect(p.returncode == 1, "backup into a missing directory: exit %d" % p.returncode)
        cases.run("backup_writes_a_custom_format_dump", backup_writes_custom_dump)

        def restore_into_fresh_database():
            url = cl.createdb("restored")
            p = ccctl(url, "restore", dump)
            expect(p.returncode == 0, p.stderr)
            expect(cl.psql("restored", ROWS_SQL) == want_rows, "restored devices differ")
            expect(cl.psql("restored", "SELECT email FROM users WHERE email = 'OWNER@example.com'")
                   == "Owner@Example.com", "users.email lost its citext type")
            # An identity column restored with its sequence: the next id follows the rows.
            cl.psql("restored", "INSERT INTO users (email, password_hash, role, name, "
                    "created_at) VALUES ('next@example.com', 'h', 'ADMIN', 'N', 1)")
            expect(cl.psql("restored", "SELECT count(*) FROM users") == "2", "insert after")
        cases.run("restore_into_a_fresh_database_has_the_rows", restore_into_fresh_database)

        def restore_refuses_non_empty():
            before = cl.psql("restored", "SELECT count(*) FROM users")
            p = ccctl(cl.db_url("restored"), "restore", dump, check=False)
            expect(p.returncode == 1, "restore over a database: exit %d" % p.returncode)
            expect("not empty" in p.stderr, p.stderr)
            expect(cl.psql("restored", "SELECT count(*) FROM users") == before, "rows changed")
        cases.run("restore_refuses_a_non_empty_database", restore_refuses_non_empty)

        def restore_failing_midway_restores_nothing():
            url = cl.createdb("broken")
            # No table yet, but a type named like one: CREATE TABLE users fails after the
            # tables before it were created, which the one transaction takes back.
            cl.psql("broken", "CREATE TYPE users AS (x integer)")
            p = ccctl(url, "restore", dump, check=False)
            expect(p.returncode == 1, "a failing restore: exit %d" % p.returncode)
            expect(cl.psql("broken", "SELECT count(*) FROM pg_tables WHERE schemaname = "
                           "'public'") == "0", "a failed restore left tables behind")
            cl.psql("broken", "DROP TYPE users")
            bad = os.path.join(work, "bad.dump")
            with open(dump, "rb") as f:
                data = f.read()
            with open(bad, "wb") as f:  # the archive cut short
                f.write(data[:len(data) * 2 // 3])
            p = ccctl(url, "restore", bad, check=False)
            expect(p.returncode == 1, "a cut archive restored: exit %d" % p.returncode)
            expect(cl.psql("broken", "SELECT count(*) FROM pg_tables WHERE schemaname = "
                           "'public'") == "0", "a cut archive left tables behind")
            p = ccctl(url, "restore", os.path.join(work, "missing.dump"), check=False)
            expect(p.returncode == 1, "a missing archive: exit %d" % p.returncode)
        cases.run("restore_failing_midway_restores_nothing", restore_failing_midway_restores_nothing)

        def password_goes_to_a_passfile():
            # A stub pg_dump/pg_restore first on PATH records its argv and passfile.
            stub_dir = os.path.join(work, "stub")
            os.makedirs(stub_dir, exist_ok=True)
            rec = os.path.join(work, "rec")
            with open(os.path.join(stub_dir, "pg_dump"), "w") as f:
                f.write("#!/bin/sh\n"
                        "{ printf '%%s\\n' \"$@\"; echo \"PGPASSFILE=$PGPASSFILE\";\n"
                        "  stat -c %%a \"$PGPASSFILE\"; cat \"$PGPASSFILE\"; } > %s\n"
                        "for a; do case $a in --file=*) printf PGDMP > \"${a#--file=}\";; "
                        "esac; done\nexit 0\n" % rec)
            with open(os.path.join(stub_dir, "pg_restore"), "w") as f:
                f.write("#!/bin/sh\nexit 0\n")
            os.chmod(os.path.join(stub_dir, "pg_dump"), 0o755)
            os.chmod(os.path.join(stub_dir, "pg_restore"), 0o755)
            secret = "s3:cr\\t@x"  # ':' and '\' escaped in a passfile; '@' inside the password
            url = ("postgresql://coldchain:%s@/coldchain?host=%s&port=%s" %
                   ("s3%3Acr%5Ct%40x", cl.sock, PG_PORT))
            p = ccctl(url, "backup", os.path.join(work, "stub.dump"), path=stub_dir)
            with open(rec) as f:
                got = f.read().splitlines()
            args = [l for l in got if l.startswith("--")]
            expect("--dbname=postgresql://coldchain@/coldchain?host=%s&port=%s" %
                   (cl.sock, PG_PORT) in args, "pg_dump's --dbname: %r" % args)
            expect(not any("s3" in a for a in args), "the password is on pg_dump's command line")
            passfile = got[len(args)].split("=", 1)[1]
            expect(got[len(args) + 1] == "600", "passfile mode %s" % got[len(args) + 1])
            expect(got[len(args) + 2] == "*:*:*:*:s3\\:cr\\\\t@x", "passfile %r" % got[-1])
            expect(not os.path.exists(passfile) and not os.path.exists(os.path.dirname(passfile)),
                   "the passfile was left behind")
            expect(secret not in p.stderr and "s3%3A" not in p.stderr, "password on stderr")
            # password= as a parameter: taken out the same way.
            url2 = "postgresql:///coldchain?host=%s&password=pw%%26x&port=%s" % (cl.sock, PG_PORT)
            ccctl(url2, "backup", os.path.join(work, "stub2.dump"), path=stub_dir)
            with open(rec) as f:
                got = f.read().splitlines()
            expect("--dbname=postgresql:///coldchain?host=%s&port=%s" % (cl.sock, PG_PORT)
                   in got, "password= left in the URL: %r" % got)
            expect(got[-1] == "*:*:*:*:pw&x", "passfile %r" % got[-1])
            # The real pg_dump with a password URL (trust authentication ignores it).
            real = os.path.join(work, "pw.dump")
            ccctl(url, "backup", real)
            expect(os.path.getsize(real) > 1000, "no dump through a password URL")
        cases.run("a_password_goes_to_a_0600_passfile_not_argv", password_goes_to_a_passfile)

        def device_cert_reads_postgresql():
            ca = os.path.join(work, "tls")
            subprocess.run(["sh", os.path.join(ROOT, "tools", "devca.sh"), ca], check=True,
                           capture_output=True, timeout=60)
            p = ccctl(cl.url, "device", "cert", "SN-PG-1", "--ca-dir", ca)
            crt, key = p.stdout.split()
            expect(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "device key not 0600")
            text = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-ext",
                                   "subjectAltName"], capture_output=True, text=True,
                                  check=True).stdout
            expect("URI:urn:coldchain:device:41" in text, "SAN: %r" % text)
            p = ccctl(cl.url, "device", "cert", "SN-NONE", "--ca-dir", ca, check=False)
            expect(p.returncode == 1 and "NOT_FOUND" in p.stderr, "unknown serial: %r" % p.stderr)
            p = ccctl(cl.url, "device", "cert", "SN-PG-1", check=False)
            expect(p.returncode == 64 and "--ca-dir" in p.stderr, "no --ca-dir on a URL")
        cases.run("device_cert_reads_the_device_id_from_postgresql", device_cert_reads_postgresql)

        def migrate_and_version():
            url = cl.createdb("migrated")
            p = ccctl(url, "migrate")
            first = p.stdout.strip()
            expect(first.startswith("schema version ") and int(first.split()[-1]) >= 1,
                   "migrate printed %r" % p.stdout)
            expect(cl.psql("migrated", "SELECT count(*) FROM pg_tables WHERE tablename = "
                           "'devices'") == "1", "no devices table after migrate")
            p = ccctl(url, "migrate")
            expect(p.stdout.strip() == first, "second migrate: %r then %r" % (first, p.stdout))
        cases.run("migrate_creates_the_schema_and_prints_its_version", migrate_and_version)

        def user_and_device_add():
            url = cl.db_url("migrated")
            tech = ccctl(url, "user", "add", "--email", "tech@example.com", "--password",
                         "Secret-pass-1", "--role", "TECHNICIAN", "--name", "Tech")
            tech_id = int(tech.stdout.strip())
            cust = ccctl(url, "user", "add", "--email", "cust@example.com", "--password",
                         "Secret-pass-1", "--role", "CUSTOMER", "--name", "Cust",
                         "--link-technician", str(tech_id))
            cust_id = int(cust.stdout.strip())
            expect(cl.psql("migrated", "SELECT technician_id || '/' || customer_id FROM "
                           "technician_customers") == "%d/%d" % (tech_id, cust_id), "no link")
            p = ccctl(url, "user", "add", "--email", "TECH@example.com", "--password",
                      "Secret-pass-1", "--role", "ADMIN", "--name", "Dup", check=False)
            expect(p.returncode == 1 and "CONFLICT" in p.stderr, "taken e-mail: %r" % p.stderr)
            p = ccctl(url, "user", "add", "--email", "c2@example.com", "--password",
                      "Secret-pass-1", "--role", "CUSTOMER", "--name", "C2",
                      "--link-technician", str(cust_id), check=False)
            expect(p.returncode == 65, "link to a customer: exit %d" % p.returncode)
            expect(cl.psql("migrated", "SELECT count(*) FROM users WHERE email = "
                           "'c2@example.com'") == "0", "the customer stayed without its link")
            cl.psql("migrated", "INSERT INTO locations (customer_id, name, created_at) VALUES "
                    "(%d, 'L', 1); INSERT INTO cold_cells (location_id, name, min_temp, "
                    "max_temp, created_at) SELECT id, 'C', 2, 8, 1 FROM locations" % cust_id)
            cell = cl.psql("migrated", "SELECT id FROM cold_cells")
            p = ccctl(url, "device", "add", "--cell", cell, "--serial", "SN-ADD-1")
            serial, key = p.stdout.strip().split(",")
            expect(serial == "SN-ADD-1" and len(key) == 64, "device add printed %r" % p.stdout)
            expect(p.stdout.count(key) == 1 and key not in p.stderr, "key shown more than once")
            expect(cl.psql("migrated", "SELECT count(*) FROM devices WHERE serial_number = "
                           "'SN-ADD-1' AND api_key_hash <> '%s'" % key) == "1", "key in clear")
            p = ccctl(url, "device", "add", "--cell", cell, "--serial", "SN-ADD-1", check=False)
            expect(p.returncode == 1 and "CONFLICT" in p.stderr, "taken serial: %r" % p.stderr)
            p = ccctl(url, "device", "add", "--cell", "999999", "--serial", "SN-ADD-2",
                      check=False)
            expect(p.returncode == 1 and "NOT_FOUND" in p.stderr, "no cell: %r" % p.stderr)
            csv_path = os.path.join(work, "devices.csv")
            with open(csv_path, "w") as f:
                f.write("serialNumber,coldCellId,firmwareVersion\nSN-IMP-1,%s,1.0\n"
                        "SN-IMP-2,%s,\n" % (cell, cell))
            p = ccctl(url, "device", "import", csv_path)
            lines = p.stdout.strip().splitlines()
            expect(lines[0] == "serialNumber,apiKey" and len(lines) == 3, "import: %r" % lines)
            expect(cl.psql("migrated", "SELECT count(*) FROM devices") == "3", "import rows")
        cases.run("user_add_and_device_add_on_postgresql", user_and_device_add)

        def seed_backup_restore():
            url = cl.createdb("seeded")
            keys = os.path.join(work, "keys.csv")
            p = ccctl(url, "seed", "--keys-file", keys)
            expect(stat.S_IMODE(os.stat(keys).st_mode) == 0o600, "keys file not 0600")
            with open(keys) as f:
                n_keys = len(f.read().splitlines())
            expect(n_keys >= 1 and cl.psql("seeded", "SELECT count(*) FROM devices") ==
                   str(n_keys), "seeded devices and keys differ")
            p = ccctl(url, "seed")
            expect("already seeded" in p.stdout, "second seed: %r" % p.stdout)
            tables = cl.psql("seeded", "SELECT string_agg(tablename, ' ' ORDER BY tablename) "
                             "FROM pg_tables WHERE schemaname = 'public'").split()
            counts = " || ".join("(SELECT count(*) FROM %s)::text || ' '" % t for t in tables)
            want = cl.psql("seeded", "SELECT " + counts)
            expect(int(cl.psql("seeded", "SELECT count(*) FROM readings")) > 0, "no readings")
            out = os.path.join(work, "seeded.dump")
            ccctl(url, "backup", out)
            ccctl(cl.createdb("seeded_copy"), "restore", out)
            expect(cl.psql("seeded_copy", "SELECT " + counts) == want, "row counts differ")
        cases.run("seed_backup_restore_keeps_every_table", seed_backup_restore)

        def sqlite_restore():
            db = os.path.join(work, "a.db")
            ccctl(db, "migrate")
            c = sqlite3.connect(db)
            c.execute("INSERT INTO users (email, password_hash, role, name, created_at) "
                      "VALUES ('a@example.com', 'h', 'ADMIN', 'A', 1)")
            c.commit()
            c.close()
            copy = os.path.join(work, "a-backup.db")
            ccctl(db, "backup", copy)
            target = os.path.join(work, "b.db")
            p = ccctl(target, "restore", copy)
            expect(os.path.exists(target) and not os.path.exists(target + ".tmp"), "no file")
            expect(stat.S_IMODE(os.stat(target).st_mode) == 0o600, "restored db not 0600")
            c = sqlite3.connect(target)
            n = c.execute("SELECT count(*) FROM users WHERE email = 'a@example.com'").fetchone()
            c.close()
            expect(n[0] == 1, "restored rows: %r" % n)
            p = ccctl(target, "restore", copy, check=False)
            expect(p.returncode == 1 and "exists" in p.stderr, "restore over a file: %r"
                   % p.stderr)
            p = ccctl(os.path.join(work, "c.db"), "restore", os.path.join(work, "none.db"),
                      check=False)
            expect(p.returncode == 1 and not os.path.exists(os.path.join(work, "c.db")),
                   "restore of a missing file")
        cases.run("sqlite_restore_copies_into_a_new_file_only", sqlite_restore)
    finally:
        cl.close()
        shutil.rmtree(work, ignore_errors=True)
    cases.exit()


if __name__ == "__main__":
    sys.exit(main())
