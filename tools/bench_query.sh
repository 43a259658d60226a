#!/bin/sh
# bench_query.sh - the readings query benchmark (issue 5): a database of over 10 million
# readings (1000 devices; cached as build/bench_query.db, rebuilt only when missing or
# incomplete), then the 30-day query of one cell: p50/p99 of 100 runs through the common
# function (cc_query_readings) and through HTTP (apid on a free port against that
# database), with the plain GROUP BY timed in the same run. Prints "bench:" lines;
# asserts nothing but that the rollup answer equals the raw one.
# Environment: BUILD (build), BENCH_QUERY_DB (BUILD/bench_query.db).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DB=${BENCH_QUERY_DB:-$BUILD/bench_query.db}
for b in bench_query apid; do
    [ -x "$BUILD/$b" ] || make --no-print-directory "$BUILD/$b" >&2
done

echo "bench_query: database $DB (built on first use, about a minute)" >&2
"$BUILD/bench_query" build "$DB"

# A password for this run only (the database is a local throwaway).
BENCH_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export BENCH_PASSWORD
out=$("$BUILD/bench_query" run "$DB")
printf '%s\n' "$out" | grep '^bench:'
set -- $(printf '%s\n' "$out" | sed -n 's/^range //p')
cell=$1 from=$2 to=$3

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
COLDCHAIN_DB=$DB HTTP_PORT=$port HTTP_BIND=127.0.0.1 LOG_LEVEL=error \
    RATE_LIMIT_API=1000000 RATE_LIMIT_AUTH=1000 "$BUILD/apid" 2>"$log" &
apid=$!
trap 'kill $apid 2>/dev/null; wait $apid 2>/dev/null; rm -f "$log"' EXIT INT TERM
/usr/bin/python3 - "$port" "$cell" "$from" "$to" <<'PY'
import http.client, json, os, sys, time, urllib.parse
port, cell, frm, to = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
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
print("bench: query_30d_http_p50 %.3f ms" % times[49])
print("bench: query_30d_http_p99 %.3f ms" % times[98])
print("bench: query_30d_http_series %d count %d" % (len(ans["series"]), ans["stats"]["count"]))
PY
