#!/bin/sh
# The ingest section of `make bench` (tools/bench.sh runs it first). Prints numbers, asserts
# nothing. Everything runs on 127.0.0.1 on free ports in a temporary directory; every
# process it starts is stopped by PID when it ends, however it ends.
#
# Setup: a database with BENCH_DEVICES devices in BENCH_CELLS freezer cells (-25..-15 C),
# provisioned by `ccctl migrate` plus one bulk insert (SHA-256 of fresh keys), and the
# real mosquitto configuration (tools/broker_conf.sh, with the coldchain plugin).
# Each phase gets a fresh broker (empty persistence) and sends the same load with
# build/bench_load: BENCH_DEVICES device connections, QoS 1, BENCH_READINGS readings
# round-robin, at most BENCH_INFLIGHT unacknowledged per device, ts = send time in epoch ms.
#
# The throughput phases run a closed loop: at most BENCH_WINDOW readings are published
# and not yet received (baseline) or committed (ingest). Open loop ("as fast as the
# broker acknowledges") measures mosquitto 2.0.11's collapse rather than a capacity: its
# QoS 2 delivery to a subscriber slows down as the subscriber's queue grows (each
# PUBREC/PUBCOMP scans the in-flight list, which max_inflight_messages does not bound for
# upgraded messages), so a backlog feeds itself. BENCH_RATE > 0 replaces the window by an
# open-loop rate, for experiments.
#   A  baseline: build/bench_count, subscribed like ingestd (devices/+/readings at QoS 2,
#      the broker upgrading the QoS 1 messages), does nothing but count. Then the same at
#      QoS 1 (informative only: ingestd does not get that lighter exchange).
#   B  ingestd (a fresh copy of the database) stores the load.
#   C  as B, with half of each device's readings above the cell's range, alternating, so
#      that alerts are raised and resolved all the time (whatever cc_alert.c does).
#   E  as C, run by build/ingestd-no-mqtt-notify: ingestd built without the MQTT
#      notification channel (Makefile), so the outbox is written but nothing is published
#      on alerts/ and notifications/. C against E prices that channel; E against B is what
#      the alert engine and the outbox writes cost ingest.
#   T  as B, but every device connects over TLS (the broker's TLS listener, certificate from
#      tools/devca.sh, bench_load --cafile), run right after B so that the two share the
#      machine's state: ingest_tls_vs_plain_ratio = T / B (the handshakes, then symmetric
#      crypto on the device leg; ingestd's own leg stays plain on loopback, as deployed).
#      bench_load's side of the 1000 TLS sessions runs on the same cores as the broker, so
#      the ratio is a lower bound for a broker whose devices are elsewhere.
#   D  latency: ingestd at a steady open-loop rate, BENCH_LATENCY_RATE readings/s (default
#      half of B's committed rate), BENCH_LATENCY_READINGS readings.
# Definitions:
#   *_rate (baseline, ingest)  readings / (last delivery or commit - first PUBLISH), where the
#      commit time is when ingestd's coldchain_ingest_readings_accepted_total is seen to have
#      grown by BENCH_READINGS (polled every 20 ms);
#   *_latency                  ingestd's own quantiles of commit time - reading ts (1 ms
#      resolution) over every reading of the phase (baseline: delivery time - ts). In the
#      closed-loop phases they include the wait in the window (about window / rate);
#      ingest_paced_* is the latency of phase D;
#   *_ratio                    ingest / baseline (QoS 2), churn / plain ingest.
#   alert_churn_*_written/sent  outbox rows (per-recipient notifications, alert events) the
#      churn phase wrote, and those the delivery worker had published when ingestd stopped.
#   alert_churn_vs_plain_ratio is the median over BENCH_CHURN_ROUNDS (default 3) pairs of
#      phases B and C run back to back (B, C, E, B2, C2, E2, B3, C3, E3), each pair's ratio
#      printed too: on this shared 2-core VM one phase alone moves by +-10 % from run to
#      run, so a single pair's ratio moved by as much as 0.15. The other figures come from
#      the first pair. alert_churn_no_mqtt_vs_plain_ratio is the same over B and E.
# BENCH_PHASES (default "baseline plain churn nomqtt paced") runs a subset, for experiments.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

: "${BENCH_DEVICES:=1000}"
: "${BENCH_CELLS:=100}"
: "${BENCH_READINGS:=200000}"
: "${BENCH_INFLIGHT:=20}"
: "${BENCH_RATE:=0}"             # > 0: open-loop rate instead of the window
: "${BENCH_WINDOW:=1000}"
: "${BENCH_LATENCY_RATE:=0}"     # 0: half of phase B's committed rate
: "${BENCH_LATENCY_READINGS:=40000}"
: "${BENCH_QOS1_BASELINE:=1}"  # 0 skips the informative QoS 1 baseline
: "${BENCH_PHASE_TIMEOUT_S:=120}"
: "${BENCH_KEEP:=0}"           # 1 keeps the temporary directory (logs, databases)
: "${BENCH_PHASES:=baseline plain tls churn nomqtt paced}" # a subset, for experiments
: "${BENCH_CHURN_ROUNDS:=3}"   # pairs of plain and churn phases for the churn ratio

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

say() { echo "bench_ingest: $*" >&2; }
die() {
    say "$*"
    exit 1
}
STOP_WAIT_S=15
# shellcheck source=tools/benchlib.sh
. "$(dirname "$0")/benchlib.sh"

for b in ingestd ccctl bench_load bench_count coldchain_auth.so; do
    [ -e "$BUILD/$b" ] || die "$BUILD/$b missing (run: make all)"
done
command -v mosquitto >/dev/null || die "mosquitto not found (make deps)"

TMP=$(mktemp -d /tmp/cc-bench.XXXXXX)
PIDS=""

cleanup() {
    trap - EXIT INT TERM
    for p in $PIDS; do stop_pid "$p"; done
    if [ "$BENCH_KEEP" = 1 ]; then
        say "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_file() { # path seconds
    i=0
    while [ ! -e "$1" ] && [ $i -lt $(($2 * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -e "$1" ]
}

# The value of "bench: <name> <value> <unit>" in a file.
val() {
    [ -f "$1" ] || return 0 # a phase left out by BENCH_PHASES
    awk -v n="$2" '$1 == "bench:" && $2 == n { v = $3 } END { if (v != "") print v }' "$1"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.3f\n", a / b }'
}

out() { # name value unit
    echo "bench: $1 ${2:-n/a} $3"
}

# --- setup -----------------------------------------------------------------------------
t_setup=$(date +%s)
MQTT_PORT=$(free_port)
MQTT_USERNAME=bench-ingestd
MQTT_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export MQTT_USERNAME MQTT_PASSWORD
DB="$TMP/template/coldchain.db"
KEYS="$TMP/keys.csv"
mkdir -p "$TMP/template"
COLDCHAIN_DB=$DB LOG_LEVEL=warn "$BUILD/ccctl" migrate >/dev/null
# One transaction: a customer, a location, the cells, the devices with SHA-256 key hashes.
(umask 077 && "$PY" - "$DB" "$KEYS" "$BENCH_DEVICES" "$BENCH_CELLS" <<'EOF'
import hashlib, secrets, sqlite3, sys, time
db, keys_path, n_dev, n_cells = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
now = int(time.time() * 1000)
con = sqlite3.connect(db)
con.execute("BEGIN IMMEDIATE")
cur = con.execute("INSERT INTO users (email, password_hash, role, name, created_at)"
                  " VALUES ('bench@example.com', '!', 'CUSTOMER', 'Bench', ?)", (now,))
user = cur.lastrowid
cur = con.execute("INSERT INTO locations (customer_id, name, created_at) VALUES (?, 'Bench', ?)",
                  (user, now))
loc = cur.lastrowid
cells = []
for c in range(n_cells):
    cur = con.execute("INSERT INTO cold_cells (location_id, name, min_temp, max_temp, created_at)"
                      " VALUES (?, ?, -25.0, -15.0, ?)", (loc, "Bench freezer %d" % (c + 1), now))
    cells.append(cur.lastrowid)
rows, lines = [], ["serial,key"]
for d in range(n_dev):
    serial = "BENCH-FRZ-%05d" % (d + 1)
    key = secrets.token_hex(32)
    rows.append((serial, cells[d % n_cells], hashlib.sha256(key.encode()).hexdigest(), key[:8], now))
    lines.append("%s,%s" % (serial, key))
con.executemany("INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
                " created_at) VALUES (?, ?, ?, ?, ?)", rows)
con.commit()
con.close()
with open(keys_path, "w") as f:
    f.write("\n".join(lines) + "\n")
EOF
) || die "provisioning failed"
# TLS listener for phase T, with a throw-away development CA; no device-certificate one.
MQTT_TLS_PORT=$(free_port)
sh tools/devca.sh "$TMP/tls" >/dev/null || die "devca.sh failed"
MQTT_PASSWORD=$MQTT_PASSWORD MQTT_TLS_PORT=$MQTT_TLS_PORT MQTT_TLS_CERT_PORT=0 \
    MQTT_TLS_CERT="$TMP/tls/server.crt" MQTT_TLS_KEY="$TMP/tls/server.key" MQTT_TLS_CAFILE= \
    sh tools/broker_conf.sh "$TMP/broker" "$MQTT_PORT" "$DB" \
    "$BUILD/coldchain_auth.so" "$MQTT_USERNAME" >/dev/null || die "broker_conf.sh failed"
say "$BENCH_DEVICES devices in $BENCH_CELLS cells provisioned in $(($(date +%s) - t_setup)) s ($TMP)"

BROKER_PID=""
start_broker() { # phase
    rm -rf "$TMP/broker/data"
    mkdir -p "$TMP/broker/data"
    mosquitto -c "$TMP/broker/mosquitto.conf" >"$TMP/mosquitto-$1.log" 2>&1 &
    BROKER_PID=$!
    PIDS="$PIDS $BROKER_PID"
    wait_port "$MQTT_PORT" 10 "$BROKER_PID" || {
        tail -20 "$TMP/mosquitto-$1.log" >&2
        die "mosquitto did not start"
    }
}

stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    stop_pid "$BROKER_PID"
    forget_pid "$BROKER_PID"
    BROKER_PID=""
}

# Flow control of the throughput phases: the window, or BENCH_RATE.
if [ "$BENCH_RATE" != 0 ]; then
    FLOW="--rate $BENCH_RATE"
else
    FLOW="--window $BENCH_WINDOW"
fi

# Runs bench_load in the background and waits for it, so that a signal to this script
# is handled at once (the trap stops it with the rest). Returns its exit status.
load() { # log_file extra-args...
    f=$1
    shift
    timeout -k 5 $((BENCH_PHASE_TIMEOUT_S * 2 + 30)) "$BUILD/bench_load" --keys "$KEYS" \
        --port "$MQTT_PORT" --devices "$BENCH_DEVICES" --inflight "$BENCH_INFLIGHT" \
        --timeout "$BENCH_PHASE_TIMEOUT_S" --commit-timeout "$BENCH_PHASE_TIMEOUT_S" \
        "$@" >"$f" 2>"$f.err" &
    lpid=$!
    PIDS="$PIDS $lpid"
    lrc=0
    wait "$lpid" || lrc=$?
    forget_pid "$lpid"
    return $lrc
}

# Phase A: the broker alone, into a subscriber that only counts. $1 = QoS, $2 = tag.
baseline() {
    start_broker "baseline-$2"
    rm -f "$TMP/ready"
    timeout -k 5 $((BENCH_PHASE_TIMEOUT_S + 30)) "$BUILD/bench_count" \
        --url "tcp://127.0.0.1:$MQTT_PORT" --qos "$1" --count "$BENCH_READINGS" \
        --timeout "$BENCH_PHASE_TIMEOUT_S" --ready-file "$TMP/ready" --quiet \
        --count-file "$TMP/count-$2.cnt" >"$TMP/count-$2.out" 2>"$TMP/count-$2.err" &
    cpid=$!
    PIDS="$PIDS $cpid"
    wait_file "$TMP/ready" 15 || {
        cat "$TMP/count-$2.err" >&2
        die "bench_count did not subscribe"
    }
    t0=$(date +%s)
    # shellcheck disable=SC2086 # FLOW is two words
    load "$TMP/load-$2.out" --count "$BENCH_READINGS" $FLOW --count-file "$TMP/count-$2.cnt" ||
        say "baseline $2: bench_load failed: $(tail -3 "$TMP/load-$2.out.err")"
    crc=0
    wait "$cpid" || crc=$?
    [ $crc = 0 ] || say "baseline $2: bench_count did not see every message: $(tail -3 "$TMP/count-$2.err")"
    forget_pid "$cpid"
    stop_broker
    say "baseline $2 (QoS $1): $(val "$TMP/count-$2.out" count_rate) msg/s," \
        "load $(val "$TMP/load-$2.out" load_publish_rate) msg/s, $(($(date +%s) - t0)) s"
}

# Phases B to E: ingestd stores the load. $1 = tag, then bench_load arguments;
# INGESTD_BIN (default build/ingestd) is the binary to run.
ingest() {
    tag=$1
    shift
    bin=${INGESTD_BIN:-$BUILD/ingestd}
    start_broker "$tag"
    mkdir -p "$TMP/$tag"
    cp "$DB" "$TMP/$tag/coldchain.db"
    mport=$(free_port)
    COLDCHAIN_DB="$TMP/$tag/coldchain.db" MQTT_URL="tcp://127.0.0.1:$MQTT_PORT" \
        INGEST_METRICS_PORT="$mport" HTTP_PORT="$(free_port)" \
        LOG_LEVEL=info "$bin" >"$TMP/ingestd-$tag.log" 2>&1 &
    ipid=$!
    PIDS="$PIDS $ipid"
    i=0
    until grep -q broker_connected "$TMP/ingestd-$tag.log" 2>/dev/null; do
        if ! kill -0 "$ipid" 2>/dev/null || [ $i -ge 200 ]; then
            tail -20 "$TMP/ingestd-$tag.log" >&2
            die "ingestd did not connect"
        fi
        sleep 0.1
        i=$((i + 1))
    done
    wait_port "$mport" 10 "$ipid" || die "ingestd metrics did not start"
    t0=$(date +%s)
    load "$TMP/load-$tag.out" --metrics-url "http://127.0.0.1:$mport/metrics" "$@" ||
        say "$tag: bench_load failed: $(tail -3 "$TMP/load-$tag.out.err")"
    stop_pid "$ipid"
    forget_pid "$ipid"
    stop_broker
    say "$tag: $(val "$TMP/load-$tag.out" load_commit_rate) readings/s committed," \
        "load $(val "$TMP/load-$tag.out" load_publish_rate) msg/s, $(($(date +%s) - t0)) s"
}

phase() { case " $BENCH_PHASES " in *" $1 "*) return 0 ;; esac; return 1; }
if phase baseline; then
    baseline 2 qos2
    [ "$BENCH_QOS1_BASELINE" = 1 ] && baseline 1 qos1
fi
# shellcheck disable=SC2086 # FLOW is two words
phase plain && ingest plain --count "$BENCH_READINGS" $FLOW
# shellcheck disable=SC2086
phase tls && ingest tls --count "$BENCH_READINGS" $FLOW --port "$MQTT_TLS_PORT" \
    --cafile "$TMP/tls/ca.crt"
# shellcheck disable=SC2086
phase churn && ingest churn --count "$BENCH_READINGS" $FLOW --high-ratio 0.5
NOMQTT_BIN=$BUILD/ingestd-no-mqtt-notify
if phase nomqtt && [ ! -x "$NOMQTT_BIN" ]; then
    make --no-print-directory BUILD="$BUILD" "$NOMQTT_BIN" >&2 || die "cannot build $NOMQTT_BIN"
fi
nomqtt() { # tag
    # shellcheck disable=SC2086
    phase nomqtt && INGESTD_BIN=$NOMQTT_BIN ingest "$1" --count "$BENCH_READINGS" $FLOW \
        --high-ratio 0.5
    return 0
}
nomqtt nomqtt
if phase plain && { phase churn || phase nomqtt; }; then
    r=2
    while [ $r -le "$BENCH_CHURN_ROUNDS" ]; do
        # shellcheck disable=SC2086
        ingest "plain-$r" --count "$BENCH_READINGS" $FLOW
        # shellcheck disable=SC2086
        phase churn && ingest "churn-$r" --count "$BENCH_READINGS" $FLOW --high-ratio 0.5
        nomqtt "nomqtt-$r"
        r=$((r + 1))
    done
fi
if phase paced; then
    lat_rate=$BENCH_LATENCY_RATE
    if [ "$lat_rate" = 0 ]; then
        lat_rate=$(awk -v r="$(val "$TMP/load-plain.out" load_commit_rate)" \
            'BEGIN { r = int(r / 200) * 100; print (r < 100 ? 100 : r) }')
    fi
    ingest paced --count "$BENCH_LATENCY_READINGS" --rate "$lat_rate"
fi

# --- figures ---------------------------------------------------------------------------
plain=$(val "$TMP/load-plain.out" load_commit_rate)
churn=$(val "$TMP/load-churn.out" load_commit_rate)
base=$(val "$TMP/count-qos2.out" count_rate)
incomplete() { # tag name
    n=$(val "$TMP/load-$1.out" load_committed)
    if [ "${n:-0}" != "$BENCH_READINGS" ]; then
        say "$1: only ${n:-0} of $BENCH_READINGS readings committed within the time limit"
        out "$2" "${n:-0}" readings
    fi
}
[ "$BENCH_RATE" != 0 ] && out ingest_offered_rate "$BENCH_RATE" readings/s
[ "$BENCH_RATE" = 0 ] && out ingest_window "$BENCH_WINDOW" readings
out ingest_committed_rate "$plain" readings/s
incomplete plain ingest_committed
out ingest_p50_latency "$(val "$TMP/load-plain.out" load_commit_p50_latency)" ms
out ingest_p99_latency "$(val "$TMP/load-plain.out" load_commit_p99_latency)" ms
out ingest_paced_rate "$(val "$TMP/load-paced.out" load_commit_rate)" readings/s
out ingest_paced_p50_latency "$(val "$TMP/load-paced.out" load_commit_p50_latency)" ms
out ingest_paced_p99_latency "$(val "$TMP/load-paced.out" load_commit_p99_latency)" ms
out broker_baseline_rate "$base" msg/s
out broker_baseline_p50_latency "$(val "$TMP/count-qos2.out" count_p50_latency)" ms
out broker_baseline_p99_latency "$(val "$TMP/count-qos2.out" count_p99_latency)" ms
if [ "$BENCH_QOS1_BASELINE" = 1 ]; then
    out broker_baseline_qos1_rate "$(val "$TMP/count-qos1.out" count_rate)" msg/s
fi
out ingest_vs_baseline_ratio "$(ratio "$plain" "$base")" ratio
if phase tls; then
    out ingest_tls_rate "$(val "$TMP/load-tls.out" load_commit_rate)" readings/s
    incomplete tls ingest_tls_committed
    out ingest_tls_p50_latency "$(val "$TMP/load-tls.out" load_commit_p50_latency)" ms
    out ingest_tls_p99_latency "$(val "$TMP/load-tls.out" load_commit_p99_latency)" ms
    out ingest_tls_vs_plain_ratio "$(ratio "$(val "$TMP/load-tls.out" load_commit_rate)" "$plain")" ratio
fi
out ingest_alert_churn_rate "$churn" readings/s
incomplete churn ingest_alert_churn_committed
out ingest_alert_churn_p50_latency "$(val "$TMP/load-churn.out" load_commit_p50_latency)" ms
out ingest_alert_churn_p99_latency "$(val "$TMP/load-churn.out" load_commit_p99_latency)" ms
# One ratio per pair, then their median (and range). $1 = the tag of the phase set
# against plain, $2 = the name of the figures.
pair_ratios() {
    name=$2
    pairs=""
    r=1
    while [ $r -le "$BENCH_CHURN_ROUNDS" ]; do
        sfx=""
        [ $r -gt 1 ] && sfx="-$r"
        q=$(ratio "$(val "$TMP/load-$1$sfx.out" load_commit_rate)" \
            "$(val "$TMP/load-plain$sfx.out" load_commit_rate)")
        if [ "$q" != n/a ]; then
            out "${name}_pair$r" "$q" ratio
            pairs="$pairs $q"
        fi
        r=$((r + 1))
    done
    if [ -n "$pairs" ]; then
        # shellcheck disable=SC2086,SC2046 # one ratio per word
        set -- $(printf '%s\n' $pairs | sort -n | awk '{ a[NR] = $1 } END {
            m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
            printf "%.3f %s %s %d\n", m, a[1], a[NR], NR }')
        out "$name" "$1" ratio
        out "${name}_min" "$2" ratio
        out "${name}_max" "$3" ratio
        out "${name%_vs_plain_ratio}_pairs" "$4" pairs
    else
        out "$name" n/a ratio
    fi
}
pair_ratios churn alert_churn_vs_plain_ratio
if phase nomqtt; then
    out ingest_alert_churn_no_mqtt_rate "$(val "$TMP/load-nomqtt.out" load_commit_rate)" readings/s
    incomplete nomqtt ingest_alert_churn_no_mqtt_committed
    pair_ratios nomqtt alert_churn_no_mqtt_vs_plain_ratio
fi
# What the delivery worker (MQTT channel) sent while the churn phase ran, from the
# phase's database after ingestd stopped: outbox rows written, and those SENT.
if [ -f "$TMP/churn/coldchain.db" ]; then
    "$PY" - "$TMP/churn/coldchain.db" <<'EOF2' || say "churn: cannot read the outbox"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for table, name in (("notifications", "notifications"), ("alert_events", "alert_events")):
    total, sent = con.execute("SELECT count(*), coalesce(sum(status = 'SENT'), 0) FROM %s" % table).fetchone()
    print("bench: alert_churn_%s_written %d rows" % (name, total))
    print("bench: alert_churn_%s_sent %d rows" % (name, sent))
EOF2
fi
