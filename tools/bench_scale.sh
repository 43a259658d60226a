#!/bin/sh
# The two-apid section of `make bench` (issue 15, docs/scaling.md): GET /api/devices under
# wrk through nginx in front of two apid, against one apid direct, on the same database,
# for SQLite and for PostgreSQL. Prints numbers, asserts nothing about them; fails only when
# a run is not valid (a process does not start, login or GET /api/devices does not answer
# 200, wrk sees errors or non-2xx answers, or one of the two apid served nothing).
#
# Per store (BENCH_SCALE_STORES, "sqlite pg"): `ccctl migrate` + `ccctl seed` into a fresh
# database (SQLite file, or a tools/pgtest.sh cluster on socket port BENCH_SCALE_PG_PORT,
# 55443), two apid (A and B) on free loopback ports sharing it and one JWT_SECRET,
# without a broker (HTTP does not need one) and with RATE_LIMIT_API=1000000; nginx
# (Debian's, non-daemon, pid, logs and temp files in the temporary directory) with
# deploy/nginx/coldchain.conf rendered for loopback: its upstream holds A and B, its HTTPS
# server listens in plain HTTP (TLS costs the same however many apid are behind it, and
# would hide the difference measured here); every proxy setting is the production one.
# Runs, each `wrk -t BENCH_SCALE_THREADS -c BENCH_SCALE_CONNECTIONS -d BENCH_SCALE_DURATION_S`
# after a BENCH_SCALE_WARMUP_S warm-up, A token set by a wrk Lua script:
#   one_apid        straight to A
#   two_apid_nginx  through nginx, which spreads requests over A and B (round robin)
# Figures: http_one_apid, http_two_apid_nginx (req/s), http_two_apid_ratio (two over one),
# and each run's CPU per 1,000 requests (http_one_apid_cpu, apid A; http_two_apid_nginx_cpu,
# both apid and nginx's workers; ms, from /proc/<pid>/stat, warm-up included on both sides:
# less disturbed by other load than the rates), with a _pg suffix for PostgreSQL; on
# stderr how many requests each apid answered.
# On a machine with fewer cores than nginx + two apid + wrk need, the ratio says what the
# proxy hop costs more than what a second instance adds (docs/scaling.md).
#
# Everything binds 127.0.0.1; every process started is stopped by PID however it ends.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

: "${BENCH_SCALE_STORES:=sqlite pg}"
: "${BENCH_SCALE_THREADS:=2}"
: "${BENCH_SCALE_CONNECTIONS:=16}"
: "${BENCH_SCALE_DURATION_S:=10}"
: "${BENCH_SCALE_WARMUP_S:=2}"
: "${BENCH_SCALE_PG_PORT:=55443}"
: "${BENCH_SCALE_NGINX_WORKERS:=1}"
: "${BENCH_KEEP:=0}"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

say() { echo "bench_scale: $*" >&2; }
die() {
    say "$*"
    exit 1
}
STOP_WAIT_S=10
# shellcheck source=tools/benchlib.sh
. "$(dirname "$0")/benchlib.sh"

for b in apid ccctl; do
    [ -x "$BUILD/$b" ] || make --no-print-directory "$BUILD/$b" >&2 || die "cannot build $BUILD/$b"
done
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
[ -x "$NGINX" ] || die "nginx not found (apt-get install nginx)"

TMP=$(mktemp -d /tmp/cc-bench-scale.XXXXXX)
chmod 711 "$TMP" # the postgres user reaches its cluster directory; nothing else here
PIDS=""
PG_DIR=""

cleanup() {
    trap - EXIT INT TERM
    for p in $PIDS; do stop_pid "$p"; done
    [ -n "$PG_DIR" ] && sh tools/pgtest.sh stop "$PG_DIR" >/dev/null 2>&1
    if [ "$BENCH_KEEP" = 1 ]; then
        say "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.3f\n", a / b }'
}
wrk_rate() { awk '$1 == "Requests/sec:" { print $2 }' "$1"; }
wrk_errors() {
    awk '
        $1 == "Non-2xx" { n += $NF }
        $1 == "Socket" && $2 == "errors:" {
            for (i = 3; i <= NF; i++) { v = $i; sub(/,$/, "", v); if (v ~ /^[0-9]+$/) n += v }
        }
        END { print n + 0 }' "$1"
}

# wrk in the background, waited for, so that a signal reaches the trap at once.
wrk_run() { # out-file seconds url lua
    timeout -k 5 $(($2 + 30)) wrk -t "$BENCH_SCALE_THREADS" -c "$BENCH_SCALE_CONNECTIONS" \
        -d "$2s" --latency -s "$4" "$3" >"$1" 2>&1 &
    wpid=$!
    PIDS="$PIDS $wpid"
    wrc=0
    wait "$wpid" || wrc=$?
    forget_pid "$wpid"
    [ $wrc = 0 ] || {
        cat "$1" >&2
        die "wrk failed with status $wrc"
    }
}

measure() { # tag url lua: sets RATE (not a subshell: a signal must find wrk in $PIDS)
    [ "$BENCH_SCALE_WARMUP_S" -gt 0 ] && wrk_run "$TMP/wrk-$1-warmup.out" "$BENCH_SCALE_WARMUP_S" "$2" "$3"
    wrk_run "$TMP/wrk-$1.out" "$BENCH_SCALE_DURATION_S" "$2" "$3"
    errs=$(wrk_errors "$TMP/wrk-$1.out")
    [ "$errs" = 0 ] || {
        cat "$TMP/wrk-$1.out" >&2
        die "$1: $errs failed requests (non-2xx or socket errors)"
    }
    say "$1: $(grep -E 'requests in' "$TMP/wrk-$1.out" | sed 's/^ *//')"
    RATE=$(wrk_rate "$TMP/wrk-$1.out")
}

# Requests wrk made in a run and its warm-up.
wrk_requests() { # tag
    cat "$TMP/wrk-$1.out" "$TMP/wrk-$1-warmup.out" 2>/dev/null |
        awk '$2 == "requests" && $3 == "in" { n += $1 } END { print n + 0 }'
}

# CPU seconds of processes, summed.
cpu_sum() { # pid...
    for p in "$@"; do cpu_s "$p"; done | awk '{ s += $1 } END { printf "%.2f\n", s }'
}

cpu_ms_per_1k() { # cpu-before cpu-after requests
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n + 0 == 0) print "n/a"; else printf "%.1f\n", (b - a) * 1e6 / n }'
}

# GET /api/devices answered 200 by one apid so far (its /metrics, loopback).
served() { # port
    "$PY" - "$1" <<'EOF'
import re, sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode()
print(int(sum(float(m.group(1)) for m in re.finditer(
    r'^coldchain_http_requests_total\{route="/api/devices",method="GET",status="200"\} (\S+)$',
    text, re.M))))
EOF
}

start_apid() { # tag db port
    (
        cd "$TMP"
        exec env COLDCHAIN_DB="$2" COLDCHAIN_DATA_DIR="$TMP/data" HTTP_PORT="$3" \
            HTTP_BIND=127.0.0.1 MQTT_URL="tcp://127.0.0.1:$MQTT_PORT" MQTT_PORT="$MQTT_PORT" \
            LOG_LEVEL=error RATE_LIMIT_API=1000000 RATE_LIMIT_AUTH=1000 "$BUILD/apid"
    ) >"$TMP/apid-$1.log" 2>&1 &
    APID_PID=$!
    PIDS="$PIDS $APID_PID"
    wait_port "$3" 20 "$APID_PID" || {
        tail -20 "$TMP/apid-$1.log" >&2
        die "apid $1 did not start"
    }
}

# deploy/nginx/coldchain.conf for loopback: every substitution must apply exactly once.
render_nginx() { # dir listen-port redirect-port apid-a-port apid-b-port
    "$PY" - "$ROOT/deploy/nginx/coldchain.conf" "$@" "$BENCH_SCALE_NGINX_WORKERS" <<'EOF'
import re, sys
conf, d, port, redirect, a, b, workers = sys.argv[1:]
text = open(conf).read()
for pat, rep in [
        (r"(?m)^\s*listen \[::\]:443 ssl http2;\n", ""),
        (r"(?m)^\s*listen \[::\]:80;\n", ""),
        (r"listen 443 ssl http2;", "listen 127.0.0.1:%s;" % port),
        (r"listen 80;", "listen 127.0.0.1:%s;" % redirect),
        (r"server 127\.0\.0\.1:8080;", "server 127.0.0.1:%s;\n    server 127.0.0.1:%s;" % (a, b))]:
    text, n = re.subn(pat, rep, text)
    if n != 1:
        sys.exit("coldchain.conf: %r matched %d times" % (pat, n))
text, n = re.subn(r"(?m)^\s*ssl_\w+ .*;\n", "", text)
if n == 0:
    sys.exit("coldchain.conf: no ssl_ lines to leave out")
open(d + "/coldchain.conf", "w").write(text)
open(d + "/nginx.conf", "w").write("""worker_processes %s;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    include %s/coldchain.conf;
}
""" % ((workers,) + (d,) * 8))
EOF
}

auth_lua() { # port lua-file
    (umask 077 && "$PY" - "$1" "$2" <<'EOF') || die "login or GET /api/devices failed"
import http.client, json, sys
port, lua = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
c.request("POST", "/api/auth/login",
          body=json.dumps({"email": "customer1@example.com", "password": "customer123"}),
          headers={"Content-Type": "application/json"})
r = c.getresponse()
body = r.read()
if r.status != 200:
    sys.exit("login: HTTP %d %s" % (r.status, body[:200]))
token = json.loads(body)["accessToken"]
c.request("GET", "/api/devices", headers={"Authorization": "Bearer " + token})
r = c.getresponse()
body = r.read()
if r.status != 200:
    sys.exit("GET /api/devices: HTTP %d %s" % (r.status, body[:200]))
with open(lua, "w") as f:
    f.write('wrk.method = "GET"\nwrk.headers["Authorization"] = "Bearer %s"\n' % token)
EOF
}

MQTT_PORT=$(free_port) # nothing listens there: apid serves HTTP without a broker
JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
MQTT_USERNAME=bench-apid
MQTT_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export JWT_SECRET MQTT_USERNAME MQTT_PASSWORD

for store in $BENCH_SCALE_STORES; do
    case $store in
    sqlite)
        sfx=""
        mkdir -p "$TMP/sqlite"
        DB="$TMP/sqlite/coldchain.db"
        ;;
    pg)
        sfx="_pg"
        PG_DIR="$TMP/pg"
        DB=$(sh tools/pgtest.sh start "$PG_DIR" "$BENCH_SCALE_PG_PORT") || die "PostgreSQL did not start"
        ;;
    *) die "BENCH_SCALE_STORES: sqlite or pg, not $store" ;;
    esac
    rm -rf "$TMP/data" && mkdir -p "$TMP/data"
    for c in migrate seed; do
        COLDCHAIN_DB=$DB COLDCHAIN_DATA_DIR="$TMP/data" LOG_LEVEL=warn "$BUILD/ccctl" $c \
            >>"$TMP/ccctl.log" 2>&1 || die "ccctl $c ($store) failed: $(tail -3 "$TMP/ccctl.log")"
    done
    PORT_A=$(free_port)
    start_apid "a$sfx" "$DB" "$PORT_A"
    PID_A=$APID_PID
    PORT_B=$(free_port)
    start_apid "b$sfx" "$DB" "$PORT_B"
    PID_B=$APID_PID
    ND="$TMP/nginx$sfx"
    mkdir -p "$ND"
    NGINX_PORT=$(free_port)
    render_nginx "$ND" "$NGINX_PORT" "$(free_port)" "$PORT_A" "$PORT_B" || die "cannot render nginx's configuration"
    "$NGINX" -t -c "$ND/nginx.conf" -p "$ND" -e "$ND/error.log" >"$ND/t.log" 2>&1 || {
        cat "$ND/t.log" >&2
        die "nginx -t refused the configuration"
    }
    "$NGINX" -c "$ND/nginx.conf" -p "$ND" -e "$ND/error.log" >/dev/null 2>&1 &
    NGINX_PID=$!
    PIDS="$PIDS $NGINX_PID"
    wait_port "$NGINX_PORT" 10 "$NGINX_PID" || die "nginx did not start: $(tail -3 "$ND/error.log")"
    say "$store: apid A on $PORT_A, B on $PORT_B, nginx on $NGINX_PORT ($TMP)"
    auth_lua "$PORT_A" "$TMP/auth$sfx.lua"

    WORKERS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
    c0=$(cpu_sum "$PID_A")
    measure "one_apid$sfx" "http://127.0.0.1:$PORT_A/api/devices" "$TMP/auth$sfx.lua"
    one=$RATE
    one_cpu=$(cpu_ms_per_1k "$c0" "$(cpu_sum "$PID_A")" "$(wrk_requests "one_apid$sfx")")
    a0=$(served "$PORT_A")
    b0=$(served "$PORT_B")
    # shellcheck disable=SC2086 # one PID a word
    c0=$(cpu_sum "$PID_A" "$PID_B" $WORKERS)
    measure "two_apid_nginx$sfx" "http://127.0.0.1:$NGINX_PORT/api/devices" "$TMP/auth$sfx.lua"
    two=$RATE
    # shellcheck disable=SC2086
    two_cpu=$(cpu_ms_per_1k "$c0" "$(cpu_sum "$PID_A" "$PID_B" $WORKERS)" \
        "$(wrk_requests "two_apid_nginx$sfx")")
    a1=$(served "$PORT_A")
    b1=$(served "$PORT_B")
    say "$store through nginx: apid A answered $((a1 - a0)), apid B $((b1 - b0))"
    if [ $((a1 - a0)) -le 0 ] || [ $((b1 - b0)) -le 0 ]; then
        die "nginx did not spread the load over both apid"
    fi
    echo "bench: http_one_apid$sfx $one req/s"
    echo "bench: http_two_apid_nginx$sfx $two req/s"
    echo "bench: http_two_apid_ratio$sfx $(ratio "$two" "$one") ratio"
    echo "bench: http_one_apid_cpu$sfx $one_cpu ms/1k requests"
    echo "bench: http_two_apid_nginx_cpu$sfx $two_cpu ms/1k requests"

    for p in $NGINX_PID $PID_A $PID_B; do
        stop_pid "$p"
        forget_pid "$p"
    done
    if [ -n "$PG_DIR" ]; then
        sh tools/pgtest.sh stop "$PG_DIR" >/dev/null 2>&1
        PG_DIR=""
    fi
done
