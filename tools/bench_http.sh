#!/bin/sh
# The HTTP section of `make bench` (issue 3): authenticated GET /api/devices under wrk with
# keep-alive connections, against a civetweb baseline measured in the same run, and the
# median time of a login (slow on purpose: scrypt). Prints numbers, asserts nothing about
# them; fails only when the runs themselves are not valid (a process does not start, a
# login or GET /api/devices does not answer 200, or wrk sees errors or non-2xx answers).
#
# Everything runs on 127.0.0.1 on free ports in a temporary directory; every process it
# starts is stopped by PID when it ends, however it ends.
#
# Setup: `ccctl migrate` + `ccctl seed` into a fresh database; build/bench_civet_baseline
# (civetweb with apid's settings, one handler answering a constant) and build/apid with
# RATE_LIMIT_API=1000000 (the configuration's maximum) and RATE_LIMIT_AUTH=1000, so that
# no request is refused with 429. apid is started without a broker (MQTT_URL points at a
# free port where nothing listens: HTTP must not depend on MQTT); if it does not come up
# that way, mosquitto is started with tools/broker_conf.sh on that port and apid again.
#
# Runs, in this order, each `wrk -t BENCH_HTTP_THREADS -c BENCH_HTTP_CONNECTIONS
# -d BENCH_HTTP_DURATION_S --latency` after a BENCH_HTTP_WARMUP_S warm-up:
#   baseline  GET / on the baseline (constant 15-byte JSON body)
#   devices   GET /api/devices on apid as customer1 (Authorization: Bearer <access token>,
#             set by a wrk Lua script so the token is not on a command line)
#   health    GET /health on apid, for reference (routing + request log, no auth, no SQL)
# then BENCH_HTTP_LOGINS logins of customer1 (POST /api/auth/login, a new connection each,
# timed client-side from connect to the whole answer read), then, on PostgreSQL (issue 14;
# BENCH_HTTP_PG=0 skips it): a throwaway tools/pgtest.sh cluster (Unix socket port
# BENCH_HTTP_PG_PORT, 55442; fsync off), `ccctl migrate` + `ccctl seed` into it, apid
# against its URL in place of the SQLite one (stopped first: the two never share the CPU):
#   devices_pg  GET /api/devices as customer1, as devices
# Figures: http_<run>_rate (req/s, wrk's Requests/sec), http_<run>_p50/_p99 (ms, wrk's
# latency distribution), http_devices_vs_baseline_ratio, login_median (ms),
# http_devices_pg_vs_sqlite_ratio (devices_pg's rate over devices').
# Keep BENCH_HTTP_CONNECTIONS <= 16: civetweb has 16 worker threads and a keep-alive
# connection holds one, so more connections would queue behind them.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

: "${BENCH_HTTP_THREADS:=2}"
: "${BENCH_HTTP_CONNECTIONS:=16}"
: "${BENCH_HTTP_DURATION_S:=10}"
: "${BENCH_HTTP_WARMUP_S:=2}"
: "${BENCH_HTTP_LOGINS:=15}"
: "${BENCH_KEEP:=0}" # 1 keeps the temporary directory (logs, database)
: "${BENCH_HTTP_PG:=1}"
: "${BENCH_HTTP_PG_PORT:=55442}"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

say() { echo "bench_http: $*" >&2; }
die() {
    say "$*"
    exit 1
}
STOP_WAIT_S=10
# shellcheck source=tools/benchlib.sh
. "$(dirname "$0")/benchlib.sh"

for b in apid ccctl bench_civet_baseline; do
    [ -x "$BUILD/$b" ] || make --no-print-directory "$BUILD/$b" >&2 || die "cannot build $BUILD/$b"
done
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
[ "$BENCH_HTTP_CONNECTIONS" -le 16 ] ||
    say "warning: $BENCH_HTTP_CONNECTIONS connections > civetweb's 16 worker threads"

TMP=$(mktemp -d /tmp/cc-bench-http.XXXXXX)
PIDS=""
PG_STARTED=0

cleanup() {
    trap - EXIT INT TERM
    for p in $PIDS; do stop_pid "$p"; done
    [ "$PG_STARTED" = 1 ] && sh tools/pgtest.sh stop "$TMP/pg" >/dev/null 2>&1
    if [ "$BENCH_KEEP" = 1 ]; then
        say "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

out() { # name value unit
    echo "bench: $1 ${2:-n/a} $3"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.3f\n", a / b }'
}

# --- wrk output ------------------------------------------------------------------------
wrk_rate() { awk '$1 == "Requests/sec:" { print $2 }' "$1"; }

# A quantile of wrk's "Latency Distribution" ("50%  579.00us"), in ms.
wrk_quantile_ms() { # file quantile (50%, 99%)
    awk -v q="$2" '
        $1 == q && $2 ~ /^[0-9.]+(us|ms|s|m)$/ {
            v = $2; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
            f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : 60000
            printf "%.3f\n", v * f
        }' "$1"
}

# Requests wrk counted as failed: non-2xx/3xx answers plus socket errors.
wrk_errors() {
    awk '
        $1 == "Non-2xx" { n += $NF }
        $1 == "Socket" && $2 == "errors:" {
            for (i = 3; i <= NF; i++) { v = $i; sub(/,$/, "", v); if (v ~ /^[0-9]+$/) n += v }
        }
        END { print n + 0 }' "$1"
}

# Runs wrk in the background and waits for it, so that a signal reaches the trap at once.
wrk_run() { # tag seconds url [lua script]
    tag=$1 secs=$2 url=$3
    script=${4:-}
    set -- -t "$BENCH_HTTP_THREADS" -c "$BENCH_HTTP_CONNECTIONS" -d "${secs}s" --latency
    [ -n "$script" ] && set -- "$@" -s "$script"
    timeout -k 5 $((secs + 30)) wrk "$@" "$url" >"$TMP/wrk-$tag.out" 2>&1 &
    wpid=$!
    PIDS="$PIDS $wpid"
    wrc=0
    wait "$wpid" || wrc=$?
    forget_pid "$wpid"
    [ $wrc = 0 ] || {
        cat "$TMP/wrk-$tag.out" >&2
        die "wrk ($tag) failed with status $wrc"
    }
}

# Warm-up, then the measured run; prints the run's figures. A run with non-2xx answers or
# socket errors marks the section failed (its figures are still printed).
measure() { # tag url lua-script-or-empty
    [ "$BENCH_HTTP_WARMUP_S" -gt 0 ] && wrk_run "$1-warmup" "$BENCH_HTTP_WARMUP_S" "$2" "$3"
    wrk_run "$1" "$BENCH_HTTP_DURATION_S" "$2" "$3"
    f="$TMP/wrk-$1.out"
    errs=$(wrk_errors "$f")
    if [ "$errs" != 0 ]; then
        cat "$f" >&2
        say "$1: $errs failed requests (non-2xx or socket errors)"
        FAILED=1
    fi
    out "http_$1_rate" "$(wrk_rate "$f")" req/s
    out "http_$1_p50" "$(wrk_quantile_ms "$f" 50%)" ms
    out "http_$1_p99" "$(wrk_quantile_ms "$f" 99%)" ms
    say "$1: $(grep -E 'requests in' "$f" | sed 's/^ *//')"
}
FAILED=0

# --- setup -----------------------------------------------------------------------------
DB="$TMP/data/coldchain.db"
mkdir -p "$TMP/data"
COLDCHAIN_DB=$DB LOG_LEVEL=warn "$BUILD/ccctl" migrate >"$TMP/ccctl.log" 2>&1 ||
    die "ccctl migrate failed: $(tail -3 "$TMP/ccctl.log")"
COLDCHAIN_DB=$DB LOG_LEVEL=warn "$BUILD/ccctl" seed >>"$TMP/ccctl.log" 2>&1 ||
    die "ccctl seed failed: $(tail -3 "$TMP/ccctl.log")"

BASE_PORT=$(free_port)
"$BUILD/bench_civet_baseline" "$BASE_PORT" >"$TMP/baseline.log" 2>&1 &
BASE_PID=$!
PIDS="$PIDS $BASE_PID"
wait_port "$BASE_PORT" 10 "$BASE_PID" || {
    tail -20 "$TMP/baseline.log" >&2
    die "bench_civet_baseline did not start"
}

HTTP_PORT=$(free_port)
MQTT_PORT=$(free_port) # nothing listens there unless apid turns out to need a broker
MQTT_USERNAME=bench-apid
MQTT_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export MQTT_USERNAME MQTT_PASSWORD

APID_PID=""
start_apid() { # tag
    (
        cd "$TMP"
        exec env COLDCHAIN_DB="$DB" HTTP_PORT="$HTTP_PORT" HTTP_BIND=127.0.0.1 \
            MQTT_URL="tcp://127.0.0.1:$MQTT_PORT" MQTT_PORT="$MQTT_PORT" LOG_LEVEL=error \
            RATE_LIMIT_API=1000000 RATE_LIMIT_AUTH=1000 "$BUILD/apid"
    ) >"$TMP/apid-$1.log" 2>&1 &
    APID_PID=$!
    PIDS="$PIDS $APID_PID"
    wait_port "$HTTP_PORT" "$2" "$APID_PID"
}

if ! start_apid nobroker 10; then
    say "apid did not serve HTTP without a broker: $(tail -3 "$TMP/apid-nobroker.log")"
    stop_pid "$APID_PID"
    forget_pid "$APID_PID"
    command -v mosquitto >/dev/null || die "mosquitto not found (make deps)"
    sh tools/broker_conf.sh "$TMP/broker" "$MQTT_PORT" "$DB" "$BUILD/coldchain_auth.so" \
        "$MQTT_USERNAME" >/dev/null || die "broker_conf.sh failed" # password: MQTT_PASSWORD
    mkdir -p "$TMP/broker/data"
    mosquitto -c "$TMP/broker/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
    BROKER_PID=$!
    PIDS="$PIDS $BROKER_PID"
    wait_port "$MQTT_PORT" 10 "$BROKER_PID" || {
        tail -20 "$TMP/mosquitto.log" >&2
        die "mosquitto did not start"
    }
    say "started mosquitto on $MQTT_PORT for apid"
    start_apid broker 20 || {
        tail -20 "$TMP/apid-broker.log" >&2
        die "apid did not start"
    }
fi
say "baseline on $BASE_PORT, apid on $HTTP_PORT ($TMP)"

# A first login gives the access token for wrk (not timed); GET /api/devices must answer
# 200 with customer1's devices before anything is measured.
auth_lua() { # lua-file
    (umask 077 && "$PY" - "$HTTP_PORT" "$1" <<'EOF') || die "login or GET /api/devices failed"
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
n = len(json.loads(body)["items"])
if n == 0:
    sys.exit("GET /api/devices: no devices")
print("bench_http: GET /api/devices answers %d devices, %d bytes" % (n, len(body)), file=sys.stderr)
with open(lua, "w") as f:
    f.write('wrk.method = "GET"\nwrk.headers["Authorization"] = "Bearer %s"\n' % token)
EOF
}
auth_lua "$TMP/auth.lua"

# --- runs ------------------------------------------------------------------------------
measure baseline "http://127.0.0.1:$BASE_PORT/" ""
stop_pid "$BASE_PID"
forget_pid "$BASE_PID"
measure devices "http://127.0.0.1:$HTTP_PORT/api/devices" "$TMP/auth.lua"
out http_devices_vs_baseline_ratio \
    "$(ratio "$(wrk_rate "$TMP/wrk-devices.out")" "$(wrk_rate "$TMP/wrk-baseline.out")")" ratio
measure health "http://127.0.0.1:$HTTP_PORT/health" ""

"$PY" - "$HTTP_PORT" "$BENCH_HTTP_LOGINS" <<'EOF' || die "login timing failed"
import http.client, json, statistics, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
body = json.dumps({"email": "customer1@example.com", "password": "customer123"})
times = []
for _ in range(n):
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/api/auth/login", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    times.append((time.perf_counter() - t0) * 1e3)
    c.close()
    if r.status != 200:
        sys.exit("login: HTTP %d %s" % (r.status, data[:200]))
times.sort()
print("bench: login_median %.1f ms" % statistics.median(times))
print("bench_http: %d logins, min %.1f ms, max %.1f ms" % (n, times[0], times[-1]), file=sys.stderr)
EOF

# --- PostgreSQL ------------------------------------------------------------------------
if [ "$BENCH_HTTP_PG" = 1 ]; then
    stop_pid "$APID_PID"
    forget_pid "$APID_PID"
    chmod 711 "$TMP" # the postgres user reaches its cluster directory; nothing else here
    PG_STARTED=1
    DB=$(sh tools/pgtest.sh start "$TMP/pg" "$BENCH_HTTP_PG_PORT") || die "PostgreSQL did not start"
    COLDCHAIN_DB=$DB LOG_LEVEL=warn "$BUILD/ccctl" migrate >>"$TMP/ccctl.log" 2>&1 ||
        die "ccctl migrate (PostgreSQL) failed: $(tail -3 "$TMP/ccctl.log")"
    COLDCHAIN_DB=$DB LOG_LEVEL=warn "$BUILD/ccctl" seed >>"$TMP/ccctl.log" 2>&1 ||
        die "ccctl seed (PostgreSQL) failed: $(tail -3 "$TMP/ccctl.log")"
    HTTP_PORT=$(free_port)
    start_apid pg 20 || {
        tail -20 "$TMP/apid-pg.log" >&2
        die "apid on PostgreSQL did not start"
    }
    say "apid on PostgreSQL on $HTTP_PORT"
    auth_lua "$TMP/auth-pg.lua"
    measure devices_pg "http://127.0.0.1:$HTTP_PORT/api/devices" "$TMP/auth-pg.lua"
    out http_devices_pg_vs_sqlite_ratio \
        "$(ratio "$(wrk_rate "$TMP/wrk-devices_pg.out")" "$(wrk_rate "$TMP/wrk-devices.out")")" ratio
fi

[ "$FAILED" = 0 ] || die "some runs had failed requests (see above)"
