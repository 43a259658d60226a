#!/bin/sh
# bench_http_cpu.sh - CPU per authenticated GET /api/devices (customer1, seed data) on
# SQLite and on PostgreSQL: apid's utime+stime and, on PostgreSQL, that of every backend
# of the cluster (children of its postmaster), read from /proc around one wrk run, divided
# by the requests wrk completed. On a machine shared with other work a request rate moves
# with the neighbours; CPU per request moves much less, so two builds can be compared
# run after run (issue 14: docs/api.md "On PostgreSQL").
#
#   sh tools/bench_http_cpu.sh [BUILD]     prints "cpu: <store> requests N rate R p50 P
#                                          apid A ms/req db D ms/req total T ms/req"
#
# Environment: BENCH_CPU_DURATION_S (6: the measured run, after a 2 s warm-up),
# BENCH_CPU_PG_PORT (55431: the cluster's socket name), BENCH_CPU_PG_URL_SUFFIX (appended
# to the cluster's URL, e.g. "&options=-c%20plan_cache_mode%3Dforce_generic_plan").
# Everything runs on 127.0.0.1 / a Unix socket in a temporary directory and is stopped by
# PID (apid) or pgtest.sh (the cluster) however the script ends.
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
DUR=${BENCH_CPU_DURATION_S:-6}
PGPORT=${BENCH_CPU_PG_PORT:-55431}
T=$(mktemp -d /tmp/cc-bench-cpu.XXXXXX)
chmod 711 "$T" # the postgres user reaches its cluster directory
APID=""
cleanup() {
    if [ -n "$APID" ]; then
        kill "$APID" 2>/dev/null
        wait "$APID" 2>/dev/null || true
    fi
    sh tools/pgtest.sh stop "$T/pg" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Every backend and helper process of the cluster (a process that ended meanwhile: 0).
pg_ticks() {
    s=0
    for p in $(pgrep -P "$(head -1 "$T/pg/data/postmaster.pid")"); do
        t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        s=$((s + t))
    done
    echo "$s"
}

run() { # store-url-or-path tag
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    COLDCHAIN_DB=$1 HTTP_PORT=$port HTTP_BIND=127.0.0.1 MQTT_URL=tcp://127.0.0.1:1 \
        LOG_LEVEL=error RATE_LIMIT_API=1000000 RATE_LIMIT_AUTH=1000 "$B/apid" >"$T/apid.log" 2>&1 &
    APID=$!
    /usr/bin/python3 - "$port" "$T/auth.lua" <<'PY'
import http.client, json, os, sys, time
port, lua = int(sys.argv[1]), sys.argv[2]
deadline = time.time() + 20
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/api/auth/login", headers={"Content-Type": "application/json"},
                  body=json.dumps({"email": "customer1@example.com", "password": "customer123"}))
        r = c.getresponse()
        body = r.read()
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
if r.status != 200:
    sys.exit("login: HTTP %d" % r.status)
fd = os.open(lua, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, ('wrk.headers["Authorization"] = "Bearer %s"\n' % json.loads(body)["accessToken"]).encode())
os.close(fd)
PY
    url="http://127.0.0.1:$port/api/devices"
    wrk -t2 -c16 -d2s -s "$T/auth.lua" "$url" >/dev/null
    a0=$(ticks "$APID")
    p0=0
    [ "$2" = pg ] && p0=$(pg_ticks)
    wrk -t2 -c16 -d"${DUR}s" --latency -s "$T/auth.lua" "$url" >"$T/wrk.out"
    a1=$(ticks "$APID")
    p1=0
    [ "$2" = pg ] && p1=$(pg_ticks)
    awk -v a=$((a1 - a0)) -v p=$((p1 - p0)) -v hz="$(getconf CLK_TCK)" -v t="$2" '
        /requests in/ { n = $1 }
        $1 == "Requests/sec:" { rate = $2 }
        $1 == "50%" { p50 = $2 }
        $1 == "Non-2xx" { bad = $NF }
        END {
            if (n == 0 || bad > 0) { print "bench_http_cpu: wrk failed" > "/dev/stderr"; exit 1 }
            printf "cpu: %s requests %d rate %s p50 %s apid %.3f ms/req db %.3f ms/req total %.3f ms/req\n",
                t, n, rate, p50, a / hz / n * 1e3, p / hz / n * 1e3, (a + p) / hz / n * 1e3
        }' "$T/wrk.out"
    kill "$APID"
    wait "$APID" 2>/dev/null || true
    APID=""
}

mkdir -p "$T/data"
COLDCHAIN_DB=$T/data/c.db LOG_LEVEL=warn "$B/ccctl" migrate >/dev/null
COLDCHAIN_DB=$T/data/c.db LOG_LEVEL=warn "$B/ccctl" seed >/dev/null
run "$T/data/c.db" sqlite
url=$(sh tools/pgtest.sh start "$T/pg" "$PGPORT")
COLDCHAIN_DB=$url LOG_LEVEL=warn "$B/ccctl" migrate >/dev/null
COLDCHAIN_DB=$url LOG_LEVEL=warn "$B/ccctl" seed >/dev/null
run "$url${BENCH_CPU_PG_URL_SUFFIX:-}" pg
