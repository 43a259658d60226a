#!/bin/sh
# bench_query.sh - the readings query benchmark (issue 5), SQLite and PostgreSQL in the same
# run (issue 14): a database of over 10 million readings (1000 devices; cached as
# build/bench_query.db, rebuilt only when missing or incomplete), then the 30-day query of
# one cell: p50/p99 of 100 runs through the common function (cc_query_readings) and through
# HTTP (apid on a free port against that database), with the plain GROUP BY timed in the
# same run. Then the same on PostgreSQL: a throwaway tools/pgtest.sh cluster (socket port
# BENCH_QUERY_PG_PORT, 55441; started and stopped here, kept only with BENCH_QUERY_PG_KEEP)
# loaded through cc_store_readings_insert (the rollups are ingest's) with the same cell, range and
# values, timed the same way and through apid on that URL; PostgreSQL as a ratio to SQLite.
# Unless BENCH_QUERY_PG_FULL=1 the PostgreSQL copy has the benchmark cell's 30 days in
# full but the 999 other devices 20 times sparser (about 540,000 readings, not 10 M: the
# full load takes minutes), and its figures say so: "_pg_small" instead of "_pg".
# Prints "bench:" lines; asserts nothing but that the rollup answer equals the raw one on
# both stores and that PostgreSQL's equals SQLite's. Besides the p50/p99 (wall time, which a
# shared machine's load moves a lot): query_30d<tag>_rows_read (rows the database returned
# to one query) and query_30d<tag>_client_cpu_per_query / _server_cpu_per_query (CPU of this
# process and of the PostgreSQL backend per query, over 500 more queries; load moves them
# much less). For server time per statement: PGOPTIONS='-c log_min_duration_statement=0',
# then python3 tools/pg_stmt_times.py < the cluster's server.log (the part of this run).
# Environment: BUILD (build), BENCH_QUERY_DB (BUILD/bench_query.db), BENCH_QUERY_PG_PORT,
# BENCH_QUERY_PG_FULL (0), BENCH_QUERY_PG (1; 0 skips PostgreSQL), BENCH_QUERY_PG_KEEP (a
# directory under /tmp: the cluster lives there and is halted, not removed, at the end, so
# the next run with the same directory and the same BENCH_QUERY_PG_FULL skips the load,
# minutes for the full copy; remove the directory to load afresh).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DB=${BENCH_QUERY_DB:-$BUILD/bench_query.db}
PG=${BENCH_QUERY_PG:-1}
PG_PORT=${BENCH_QUERY_PG_PORT:-55441}
KEEP=${BENCH_QUERY_PG_KEEP:-}
tag=_pg_small
[ "${BENCH_QUERY_PG_FULL:-0}" = 1 ] && tag=_pg
for b in bench_query apid; do
    [ -x "$BUILD/$b" ] || make --no-print-directory "$BUILD/$b" >&2
done

echo "bench_query: database $DB (built on first use, about a minute)" >&2
"$BUILD/bench_query" build "$DB"

# A password for this run only (the database is a local throwaway).
BENCH_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export BENCH_PASSWORD
APID=""
PGDIR=""
LOG=$(mktemp)
cleanup() {
    if [ -n "$APID" ]; then
        kill "$APID" 2>/dev/null
        wait "$APID" 2>/dev/null
    fi
    if [ -n "$PGDIR" ] && [ -n "$KEEP" ]; then
        sh tools/pgtest.sh halt "$PGDIR/pg" >/dev/null 2>&1
    elif [ -n "$PGDIR" ]; then
        sh tools/pgtest.sh stop "$PGDIR/pg" >/dev/null 2>&1
        rm -rf "$PGDIR"
    fi
    rm -f "$LOG" "$LOG.http" "$LOG.pghttp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The HTTP figures: apid on a free port against store (a file or a URL), 100 timed GETs.
# Not in a subshell (no pipe, no $(...)), so that the trap knows apid's PID.
http_query() { # store tag cell from to
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    COLDCHAIN_DB=$1 HTTP_PORT=$port HTTP_BIND=127.0.0.1 LOG_LEVEL=error \
        RATE_LIMIT_API=1000000 RATE_LIMIT_AUTH=1000 "$BUILD/apid" 2>"$LOG" &
    APID=$!
    hrc=0
    /usr/bin/python3 - "$port" "$3" "$4" "$5" "$2" <<'PY' || hrc=$?
import http.client, json, os, sys, time, urllib.parse
port, cell, frm, to, tag = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
deadline = time.time() + 20
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/api/auth/login",
                  body=json.dumps({"email": "bench@example.com",
                                   "password": os.environ["BENCH_PASSWORD"]}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = json.loads(r.read())
        break
    except (ConnectionError, OSError):
        if time.time() > deadline:
            raise
        time.sleep(0.1)
token = body["accessToken"]
path = "/api/readings/coldcells/%s/readings?from=%s&to=%s" % (
    cell, urllib.parse.quote(frm), urllib.parse.quote(to))
hdr = {"Authorization": "Bearer " + token}
times = []
for i in range(105):
    t0 = time.perf_counter()
    c.request("GET", path, headers=hdr)
    r = c.getresponse()
    data = r.read()
    dt = (time.perf_counter() - t0) * 1e3
    if r.status != 200:
        sys.exit("HTTP %d: %s" % (r.status, data[:200]))
    if i >= 5:
        times.append(dt)
times.sort()
ans = json.loads(data)
print("bench: query_30d%s_http_p50 %.3f ms" % (tag, times[49]))
print("bench: query_30d%s_http_p99 %.3f ms" % (tag, times[98]))
print("bench: query_30d%s_http_series %d count %d" % (tag, len(ans["series"]), ans["stats"]["count"]))
PY
    kill "$APID" 2>/dev/null
    wait "$APID" 2>/dev/null
    APID=""
    [ $hrc = 0 ] || { cat "$LOG" >&2; exit 1; }
}

# Prints the value of figure name in out (text).
figure() { printf '%s\n' "$1" | awk -v n="$2" '$1 == "bench:" && $2 == n { print $3 }'; }

out=$("$BUILD/bench_query" run "$DB")
printf '%s\n' "$out" | grep '^bench:'
set -- $(printf '%s\n' "$out" | sed -n 's/^range //p')
cell=$1 from=$2 to=$3
http_query "$DB" "" "$cell" "$from" "$to" >"$LOG.http"
cat "$LOG.http"
[ "$PG" = 1 ] || exit 0

if [ -n "$KEEP" ]; then
    mkdir -p "$KEEP"
    PGDIR=$KEEP
else
    PGDIR=$(mktemp -d /tmp/cc-bench-query-XXXXXX)
fi
chmod 755 "$PGDIR"
url=$(sh tools/pgtest.sh start "$PGDIR/pg" "$PG_PORT")
echo "bench_query: PostgreSQL copy ($tag), loading" >&2
pgout=$("$BUILD/bench_query" pg "$url" "$DB")
printf '%s\n' "$pgout" | grep '^bench:'
ratio=$(awk -v a="$(figure "$pgout" "query_30d${tag}_common_p50")" \
    -v b="$(figure "$out" query_30d_common_p50)" \
    'BEGIN { if (a == "" || b + 0 == 0) print "n/a"; else printf "%.3f\n", a / b }')
echo "bench: query${tag}_vs_sqlite_p50_ratio $ratio ratio"
http_query "$url" "$tag" "$cell" "$from" "$to" >"$LOG.pghttp"
cat "$LOG.pghttp"
ratio=$(awk -v a="$(figure "$(cat "$LOG.pghttp")" "query_30d${tag}_http_p50")" \
    -v b="$(figure "$(cat "$LOG.http")" query_30d_http_p50)" \
    'BEGIN { if (a == "" || b + 0 == 0) print "n/a"; else printf "%.3f\n", a / b }')
echo "bench: query${tag}_http_vs_sqlite_p50_ratio $ratio ratio"

