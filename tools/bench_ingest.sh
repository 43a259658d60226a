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
#   A  baseline: build/bench_count, subscribed like ingestd (devices/+/readings at
#      BENCH_BASE_QOS, the QoS ingestd receives at: 2 while the generated broker config has
#      `upgrade_outgoing_qos true` (ingestd's Paho client, QoS 2), else 1 (libmosquitto,
#      QoS 1, acknowledged after the journal)), does nothing but count. When that is QoS 2,
#      the same at QoS 1 too (informative only: ingestd does not get that lighter exchange).
#   B  ingestd (a fresh copy of the database) stores the load.
#   C  as B, with half of each device's readings above the cell's range, alternating, so
#      that alerts are raised and resolved all the time (whatever cc_alert.c does).
#   E  as C, run by build/ingestd-no-mqtt-notify: ingestd built without the MQTT
#      channel (Makefile), so the outbox is written but no alert event is published on
#      alerts/ (notifications never go over MQTT, SPEC §3). C against E prices that channel;
#      E against B is what
#      the alert engine and the outbox writes cost ingest.
#   T  as B, but every device connects over TLS (the broker's TLS listener, certificate from
#      tools/devca.sh, bench_load --cafile), run right after B so that the two share the
#      machine's state: ingest_tls_vs_plain_ratio = T / B (the handshakes, then symmetric
#      crypto on the device leg; ingestd's own leg stays plain on loopback, as deployed).
#      bench_load's side of the 1000 TLS sessions runs on the same cores as the broker, so
#      the ratio is a lower bound for a broker whose devices are elsewhere.
#   D  latency: ingestd at a steady open-loop rate, BENCH_LATENCY_RATE readings/s (default
#      half of B's committed rate), BENCH_LATENCY_READINGS readings.
#   F  burst (issue 13): BENCH_BURST_READINGS readings (100,000) on the topics of the
#      BENCH_DEVICES devices, through ONE publisher with BENCH_BURST_INFLIGHT (1000)
#      unacknowledged, open loop (as fast as the broker acknowledges), while ingestd runs.
#      The publisher is bench_load --one-publisher: one connection under the operator
#      account of the generated passwd (client id coldchain-bench-publisher), which
#      broker-config/acl lets publish anywhere under devices/ (`readwrite devices/#`; the
#      plugin defers operators to the files); the broker config is the real one, unchanged.
#      Baseline, on a fresh broker and the same load: bench_count at QoS 1 with a
#      persistent session (--session), like ingestd's.
#   G  backlog (issue 13): ingestd connects once (its persistent session and subscription
#      now exist in the broker) and is stopped by PID; the burst of F is published into
#      its queue; then ingestd is started again and drains it. Baseline: a bench_count
#      session made the same way (--subscribe-only), the backlog, then bench_count started
#      on that session.
#   F and G run BENCH_BURST_ROUNDS times (default 3), each round F's baseline, F, G's
#      baseline, G back to back: on this shared 2-core VM one phase alone moved by a factor
#      of 2 within minutes, so their figures are medians over the rounds (the ratios are
#      the median of the rounds' own ratios), with _min, _max and _rounds for the ratios
#      and ingestd's rates.
#   Every phase that runs ingestd also prints ingest_<phase>_vmhwm_mib: ingestd's VmHWM
#      (peak RSS) read from /proc/<pid>/status just before it is stopped (phase G: the
#      process that drained the backlog; F and G: the largest over the rounds).
# Definitions:
#   *_rate (baseline, ingest)  readings / (last delivery or commit - first PUBLISH), where the
#      commit time is when ingestd's coldchain_ingest_readings_accepted_total is seen to have
#      grown by BENCH_READINGS (polled every 20 ms);
#   *_latency                  ingestd's own quantiles of commit time - reading ts (1 ms
#      resolution) over every reading of the phase (baseline: delivery time - ts). In the
#      closed-loop phases they include the wait in the window (about window / rate);
#      ingest_paced_* is the latency of phase D;
#   *_ratio                    ingest / baseline (BENCH_BASE_QOS), churn / plain ingest.
#   ingest_burst_rate          readings / (last commit - first PUBLISH), as *_rate above;
#      baseline_burst_rate to the last delivery; ingest_burst_ratio = ingest / baseline;
#   ingest_backlog_drain_rate  readings / (the moment ingestd's accepted counter is seen to
#      have reached BENCH_BURST_READINGS, polled every 20 ms - the moment ingestd was
#      started); baseline_backlog_drain_rate = messages / (last delivery - bench_count's
#      start); ingest_backlog_drain_ratio = ingest / baseline.
#   alert_churn_*_written/sent  outbox rows (per-recipient notifications, alert events) the
#      churn phase wrote, and those the delivery worker had published when ingestd stopped.
#   alert_churn_vs_plain_ratio is the median over BENCH_CHURN_ROUNDS (default 3) pairs of
#      phases B and C run back to back (B, C, E, B2, C2, E2, B3, C3, E3), each pair's ratio
#      printed too: on this shared 2-core VM one phase alone moves by +-10 % from run to
#      run, so a single pair's ratio moved by as much as 0.15. The other figures come from
#      the first pair. alert_churn_no_mqtt_vs_plain_ratio is the same over B and E.
#   H  failover (issue 15 point 2): an active and a standby ingestd (same client id, same
#      journal directory, docs/scaling.md) on one database; a steady open-loop load of
#      BENCH_FAILOVER_READINGS at BENCH_FAILOVER_RATE readings/s; once a third is committed
#      the active one is killed with SIGKILL and the standby takes over. A poller reads both
#      /metrics every 20 ms. failover_rate = readings stored / (last commit - first PUBLISH);
#      failover_gap_s = the standby's first commit - the active's last commit seen (20 ms
#      resolution); failover_takeover_s = the kill - the standby's /healthz saying active;
#      failover_lost = readings the broker acknowledged to the publisher - rows stored
#      (counted in the database, not assumed).
# BENCH_PHASES (default "baseline plain burst backlog tls churn nomqtt paced failover") runs
# a subset, for experiments.
# BENCH_STORE=pg runs the phases on PostgreSQL (issue 14): a throwaway cluster
# (tools/pgtest.sh, socket port BENCH_PG_PORT, fsync off as for bench_store.sh), the
# provisioned database copied per phase with CREATE DATABASE ... TEMPLATE, the broker's
# plugin authenticating against the provisioned one. The plain phase also prints
# ingest_plain_ingestd_cpu_per_100k and, on PostgreSQL, ingest_plain_pg_backend_cpu_per_100k:
# the CPU seconds of that phase database's server backends (all of ingestd's connections),
# read from /proc just before ingestd stops. The churn phase's outbox figures are SQLite's
# only.
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
: "${BENCH_MEMDUMP:=0}"        # 1: what holds ingestd's memory before each stop, see mem_dump
: "${BENCH_PHASES:=baseline plain burst backlog tls churn nomqtt paced failover}" # a subset
: "${BENCH_CHURN_ROUNDS:=3}"   # pairs of plain and churn phases for the churn ratio
: "${BENCH_BASE_QOS:=auto}"    # phase A's QoS; auto: the QoS ingestd receives at (see A)
: "${BENCH_BURST_READINGS:=100000}" # phases F and G
: "${BENCH_BURST_INFLIGHT:=1000}"   # the one publisher's window in F and G
: "${BENCH_BURST_TIMEOUT_S:=180}"   # F and G: publishing, and committing or draining, each
: "${BENCH_BURST_ROUNDS:=3}"        # F and G rounds: medians of the rates and ratios
: "${BENCH_STORE:=sqlite}"          # sqlite or pg
: "${BENCH_PG_PORT:=55431}"         # BENCH_STORE=pg: the cluster's socket port
case $BENCH_STORE in sqlite | pg) ;; *) echo "BENCH_STORE must be sqlite or pg" >&2; exit 2 ;; esac
: "${BENCH_FAILOVER_READINGS:=60000}" # phase H
: "${BENCH_FAILOVER_RATE:=2000}"      # phase H's steady offered load, readings/s

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
    if [ "$BENCH_STORE" = pg ]; then sh tools/pgtest.sh stop "$TMP/pg" >/dev/null 2>&1 || true; fi
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
if [ "$BENCH_STORE" = pg ]; then
    chmod 755 "$TMP" # the postgres user reaches its cluster's directory
    DB=$(sh tools/pgtest.sh start "$TMP/pg" "$BENCH_PG_PORT") || die "PostgreSQL did not start"
fi
# A phase's database: a copy of the provisioned one (a file, or a database made from the
# template cc_template, which nobody connects to: CREATE DATABASE needs that).
phase_db() { # dir
    if [ "$BENCH_STORE" = pg ]; then
        echo "$DB" | sed "s|^postgresql:///coldchain?|postgresql:///p_$1?|"
    else
        echo "$TMP/$1/coldchain.db"
    fi
}
copy_db() { # dir
    mkdir -p "$TMP/$1"
    if [ "$BENCH_STORE" = pg ]; then
        psql -qX -v ON_ERROR_STOP=1 "$DB" -c "CREATE DATABASE \"p_$1\" TEMPLATE cc_template" \
            >/dev/null || die "cannot copy the database for $1"
    else
        cp "$DB" "$TMP/$1/coldchain.db"
    fi
}
COLDCHAIN_DB=$DB LOG_LEVEL=warn "$BUILD/ccctl" migrate >/dev/null
# One transaction: a customer, a location, the cells, the devices with SHA-256 key hashes.
# PostgreSQL: the same rows as one SQL script for psql.
(umask 077 && "$PY" - "$DB" "$KEYS" "$BENCH_DEVICES" "$BENCH_CELLS" "$TMP/provision.sql" <<'EOF'
import hashlib, secrets, sqlite3, sys, time
db, keys_path, n_dev, n_cells, sql_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
now = int(time.time() * 1000)
rows, lines = [], ["serial,key"]
for d in range(n_dev):
    serial = "BENCH-FRZ-%05d" % (d + 1)
    key = secrets.token_hex(32)
    rows.append((serial, d % n_cells, hashlib.sha256(key.encode()).hexdigest(), key[:8], now))
    lines.append("%s,%s" % (serial, key))
if db.startswith("postgres"):
    # Ids fixed here (a fresh database): cells 1..n_cells, a device's cell by its index.
    out = ["INSERT INTO users (id, email, password_hash, role, name, created_at)"
           " VALUES (1, 'bench@example.com', '!', 'CUSTOMER', 'Bench', %d);" % now,
           "INSERT INTO locations (id, customer_id, name, created_at) VALUES (1, 1, 'Bench', %d);" % now]
    out += ["INSERT INTO cold_cells (id, location_id, name, min_temp, max_temp, created_at)"
            " VALUES (%d, 1, 'Bench freezer %d', -25.0, -15.0, %d);" % (c + 1, c + 1, now)
            for c in range(n_cells)]
    out += ["INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
            " created_at) VALUES ('%s', %d, '%s', '%s', %d);" % (s, c + 1, h, p, t)
            for s, c, h, p, t in rows]
    for t in ("users", "locations", "cold_cells"):
        out.append("SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT max(id) FROM %s));" % (t, t))
    with open(sql_path, "w") as f:
        f.write("\n".join(out) + "\n")
else:
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
    con.executemany("INSERT INTO devices (serial_number, cold_cell_id, api_key_hash, api_key_prefix,"
                    " created_at) VALUES (?, ?, ?, ?, ?)",
                    [(s, cells[c], h, p, t) for s, c, h, p, t in rows])
    con.commit()
    con.close()
with open(keys_path, "w") as f:
    f.write("\n".join(lines) + "\n")
EOF
) || die "provisioning failed"
if [ "$BENCH_STORE" = pg ]; then
    psql -qX -v ON_ERROR_STOP=1 -1 -f "$TMP/provision.sql" "$DB" >/dev/null || die "provisioning failed"
    psql -qX -v ON_ERROR_STOP=1 "$DB" -c "CREATE DATABASE cc_template TEMPLATE coldchain" \
        >/dev/null || die "cannot make the template database"
fi
# TLS listener for phase T, with a throw-away development CA; no device-certificate one.
MQTT_TLS_PORT=$(free_port)
sh tools/devca.sh "$TMP/tls" >/dev/null || die "devca.sh failed"
MQTT_PASSWORD=$MQTT_PASSWORD MQTT_TLS_PORT=$MQTT_TLS_PORT MQTT_TLS_CERT_PORT=0 \
    MQTT_TLS_CERT="$TMP/tls/server.crt" MQTT_TLS_KEY="$TMP/tls/server.key" MQTT_TLS_CAFILE='' \
    sh tools/broker_conf.sh "$TMP/broker" "$MQTT_PORT" "$DB" \
    "$BUILD/coldchain_auth.so" "$MQTT_USERNAME" >/dev/null || die "broker_conf.sh failed"
say "$BENCH_DEVICES devices in $BENCH_CELLS cells provisioned in $(($(date +%s) - t_setup)) s ($TMP)"
if [ "$BENCH_BASE_QOS" = auto ]; then
    BENCH_BASE_QOS=1
    if grep -q '^upgrade_outgoing_qos true' "$TMP/broker/mosquitto.conf"; then BENCH_BASE_QOS=2; fi
fi
case $BENCH_BASE_QOS in 1 | 2) ;; *) die "BENCH_BASE_QOS must be auto, 1 or 2" ;; esac

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
    lt=$((BENCH_PHASE_TIMEOUT_S > BENCH_BURST_TIMEOUT_S ? BENCH_PHASE_TIMEOUT_S : BENCH_BURST_TIMEOUT_S))
    timeout -k 5 $((lt * 2 + 30)) "$BUILD/bench_load" --keys "$KEYS" \
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

# bench_count in the background: $1 = QoS, $2 = tag, then its extra arguments. Sets CPID.
# Its figures go to $TMP/count-<tag>.out.
start_count() {
    cq=$1
    ctag=$2
    shift 2
    rm -f "$TMP/ready"
    timeout -k 5 $((BENCH_BURST_TIMEOUT_S + BENCH_PHASE_TIMEOUT_S + 30)) "$BUILD/bench_count" \
        --url "tcp://127.0.0.1:$MQTT_PORT" --qos "$cq" --timeout "$BENCH_PHASE_TIMEOUT_S" \
        --ready-file "$TMP/ready" --quiet "$@" \
        >"$TMP/count-$ctag.out" 2>"$TMP/count-$ctag.err" &
    CPID=$!
    PIDS="$PIDS $CPID"
}

# Waits for the bench_count of start_count; $1 = tag. Returns its exit status.
wait_count() {
    crc=0
    wait "$CPID" || crc=$?
    forget_pid "$CPID"
    [ $crc = 0 ] || say "$1: bench_count did not see every message: $(tail -3 "$TMP/count-$1.err")"
    return $crc
}

wait_ready() { # tag
    wait_file "$TMP/ready" 15 || {
        cat "$TMP/count-$1.err" >&2
        die "bench_count did not subscribe"
    }
}

# Phase A: the broker alone, into a subscriber that only counts. $1 = QoS, $2 = tag.
baseline() {
    start_broker "baseline-$2"
    start_count "$1" "$2" --count "$BENCH_READINGS" --count-file "$TMP/count-$2.cnt"
    wait_ready "$2"
    t0=$(date +%s)
    # shellcheck disable=SC2086 # FLOW is two words
    load "$TMP/load-$2.out" --count "$BENCH_READINGS" $FLOW --count-file "$TMP/count-$2.cnt" ||
        say "baseline $2: bench_load failed: $(tail -3 "$TMP/load-$2.out.err")"
    wait_count "baseline $2" || true
    stop_broker
    say "baseline $2 (QoS $1): $(val "$TMP/count-$2.out" count_rate) msg/s," \
        "load $(val "$TMP/load-$2.out" load_publish_rate) msg/s, $(($(date +%s) - t0)) s"
}

# The burst of phases F and G: one publisher, BENCH_BURST_INFLIGHT in flight, open loop.
# $1 = log file, then more bench_load arguments.
burst_load() {
    f=$1
    shift
    load "$f" --count "$BENCH_BURST_READINGS" --one-publisher --inflight "$BENCH_BURST_INFLIGHT" \
        --timeout "$BENCH_BURST_TIMEOUT_S" --commit-timeout "$BENCH_BURST_TIMEOUT_S" "$@"
}

# Phase F's baseline: bench_count (QoS 1, persistent session) receives the burst.
# $1 = the round's suffix ("", "-2", ...).
baseline_burst() {
    b=burst-base$1
    start_broker "$b"
    start_count 1 "$b" --session coldchain-bench-count --count "$BENCH_BURST_READINGS" \
        --timeout "$BENCH_BURST_TIMEOUT_S"
    wait_ready "$b"
    t0=$(date +%s)
    burst_load "$TMP/load-$b.out" ||
        say "$b: bench_load failed: $(tail -3 "$TMP/load-$b.out.err")"
    wait_count "$b" || true
    stop_broker
    say "$b (QoS 1): $(val "$TMP/count-$b.out" count_rate) msg/s," \
        "load $(val "$TMP/load-$b.out" load_publish_rate) msg/s, $(($(date +%s) - t0)) s"
}

# Phase G's baseline: a bench_count session, the backlog queued for it, then bench_count
# started on it to drain. $1 = the round's suffix.
baseline_backlog() {
    b=backlog-base$1
    start_broker "$b"
    start_count 1 "$b-prime" --session coldchain-bench-count --subscribe-only
    wait_count "$b session" || die "bench_count could not make its session"
    t0=$(date +%s)
    burst_load "$TMP/load-$b.out" ||
        say "$b: bench_load failed: $(tail -3 "$TMP/load-$b.out.err")"
    start_count 1 "$b" --session coldchain-bench-count --count "$BENCH_BURST_READINGS" \
        --timeout "$BENCH_BURST_TIMEOUT_S"
    wait_count "$b" || true
    stop_broker
    say "$b (QoS 1): drained $(val "$TMP/count-$b.out" count_received)" \
        "at $(val "$TMP/count-$b.out" count_drain_rate) msg/s," \
        "queued at $(val "$TMP/load-$b.out" load_publish_rate) msg/s, $(($(date +%s) - t0)) s"
}

# Starts ingestd on the phase's database ($TMP/<dir>/coldchain.db); $1 = tag (its log is
# $TMP/ingestd-<tag>.log), $2 = dir, $3 = 1 to wait until it is connected and serves its
# metrics. INGESTD_BIN (default build/ingestd) is the binary. Sets IPID and MPORT.
start_ingestd() {
    bin=${INGESTD_BIN:-$BUILD/ingestd}
    MPORT=$(free_port)
    # COLDCHAIN_DATA_DIR: the journal's directory (beside a SQLite file by default).
    COLDCHAIN_DB="$(phase_db "$2")" COLDCHAIN_DATA_DIR="$TMP/$2" MQTT_URL="tcp://127.0.0.1:$MQTT_PORT" \
        INGEST_METRICS_PORT="$MPORT" HTTP_PORT="$(free_port)" \
        LOG_LEVEL=info "$bin" >"$TMP/ingestd-$1.log" 2>&1 &
    IPID=$!
    PIDS="$PIDS $IPID"
    [ "$3" = 1 ] || return 0
    i=0
    until grep -q broker_connected "$TMP/ingestd-$1.log" 2>/dev/null; do
        if ! kill -0 "$IPID" 2>/dev/null || [ $i -ge 200 ]; then
            tail -20 "$TMP/ingestd-$1.log" >&2
            die "ingestd did not connect"
        fi
        sleep 0.1
        i=$((i + 1))
    done
    wait_port "$MPORT" 10 "$IPID" || die "ingestd metrics did not start"
}

# BENCH_MEMDUMP=1 (with BENCH_KEEP=1 to read them): ingestd's smaps and glibc's
# malloc_stats (per arena; gdb calls it in the process, which prints to its log) in
# $TMP/mem-<tag>, taken just before the stop. The arenas keep their peaks (README
# "Back-pressure"), so this is what held the phase's VmHWM. $1 = pid, $2 = file, $3 = log.
mem_dump() {
    cp "/proc/$1/smaps" "$2.smaps" 2>/dev/null || return 0
    lines=$(wc -l <"$3")
    # $2.arenas: the arenas in malloc_stats' order (0 = main_arena), then the one each
    # thread allocates from (needs libc's debug symbols; else nothing).
    cat >"$2.gdb" <<'EOF'
call (void)malloc_stats()
set $a = &main_arena
set $i = 0
while $i == 0 || $a != &main_arena
  printf "arena %d %p\n", $i, $a
  set $a = $a->next
  set $i = $i + 1
end
thread apply all p thread_arena
EOF
    gdb -batch -p "$1" -x "$2.gdb" 2>&1 | grep -E '^arena|^Thread|^\$' >"$2.arenas" ||
        say "mem_dump: gdb failed"
    sleep 0.2
    {
        # RSS by mapping: the heap, anonymous mappings (thread arenas, stacks), files.
        awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : "[anon]" }
             $1 == "Rss:" { rss[name] += $2 }
             END { for (n in rss) if (rss[n] >= 64) printf "rss %7d KiB %s\n", rss[n], n }' \
            "$2.smaps" | sort -k2 -n -r
        tail -n +"$((lines + 1))" "$3" | grep -v '^{' || true
    } >"$2"
}

# Records ingestd's peak RSS in $TMP/vmhwm-<tag> (while it still runs) and its CPU seconds
# (PostgreSQL: its backends' too, $TMP/pgcpu-<tag>), then stops it.
stop_ingestd() { # tag [dir, default tag]
    kib=$(vmhwm_kib "$IPID")
    if [ -n "$kib" ]; then echo "bench: vmhwm $kib KiB" >"$TMP/vmhwm-$1"; fi
    if [ "$BENCH_MEMDUMP" = 1 ]; then mem_dump "$IPID" "$TMP/mem-$1" "$TMP/ingestd-$1.log"; fi
    cpu=$(cpu_s "$IPID")
    if [ -n "$cpu" ]; then echo "bench: cpu $cpu s" >"$TMP/cpu-$1"; fi
    # Per thread (broker loop, writer) and the shape of the work: messages per read round
    # and per commit, from ingestd's own counters (a figure that moves with the machine's
    # load: the busier the cores, the larger the rounds and batches, the less CPU a reading).
    tc=$(thread_cpu_s "$IPID")
    shape=$("$PY" - "$MPORT" <<'EOF' 2>/dev/null || true
import re, sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read()
def v(n):
    m = re.search(rb"^" + n.encode() + rb" (\S+)", body, re.M)
    return float(m.group(1)) if m else 0.0
msgs, rounds, commits = v("coldchain_ingest_mqtt_received_total"), v("coldchain_ingest_read_rounds_total"), v("coldchain_ingest_commits_total")
print("%.1f %.1f" % (msgs / rounds if rounds else 0, v("coldchain_ingest_messages_total") / commits if commits else 0))
EOF
)
    {
        echo "bench: threads ${tc:-n/a} s"
        echo "bench: per_round ${shape%% *} msgs"
        echo "bench: per_commit ${shape##* } msgs"
    } >"$TMP/threads-$1"
    if [ "$BENCH_STORE" = pg ]; then
        # The phase database's backends: the postmaster's children titled with its name.
        pm=$(head -1 "$TMP/pg/data/postmaster.pid")
        tot=0
        for b in $(ps --ppid "$pm" -o pid=,args= | awk -v d="p_${2:-$1}" '$4 == d { print $1 }'); do
            tot=$(awk -v a="$tot" -v b="$(cpu_s "$b")" 'BEGIN { printf "%.2f", a + b }')
        done
        echo "bench: pgcpu $tot s" >"$TMP/pgcpu-$1"
    fi
    stop_pid "$IPID"
    forget_pid "$IPID"
}

# Phases B to F: ingestd stores the load. $1 = tag, then bench_load arguments (with
# --one-publisher, the burst of phase F).
ingest() {
    tag=$1
    shift
    start_broker "$tag"
    copy_db "$tag"
    start_ingestd "$tag" "$tag" 1
    t0=$(date +%s)
    case " $* " in
    *" --one-publisher "*) burst_load "$TMP/load-$tag.out" --metrics-url "http://127.0.0.1:$MPORT/metrics" "$@" ;;
    *) load "$TMP/load-$tag.out" --metrics-url "http://127.0.0.1:$MPORT/metrics" "$@" ;;
    esac || say "$tag: bench_load failed: $(tail -3 "$TMP/load-$tag.out.err")"
    stop_ingestd "$tag"
    stop_broker
    say "$tag: $(val "$TMP/load-$tag.out" load_commit_rate) readings/s committed," \
        "load $(val "$TMP/load-$tag.out" load_publish_rate) msg/s," \
        "VmHWM $(val "$TMP/vmhwm-$tag" vmhwm) KiB, ingestd CPU $(val "$TMP/cpu-$tag" cpu) s" \
        "($(val "$TMP/threads-$tag" threads) s), $(val "$TMP/threads-$tag" per_round) msgs/round," \
        "$(val "$TMP/threads-$tag" per_commit) msgs/commit, $(($(date +%s) - t0)) s"
}

# Phase G: ingestd makes its session and stops; the burst is queued for it; a new ingestd
# drains it. The drain is timed from the new process's start to the poll that sees its
# accepted counter at BENCH_BURST_READINGS; the figures go to $TMP/drain-<tag>.out.
# $1 = the round's suffix.
ingest_backlog() {
    g=backlog$1
    start_broker "$g"
    copy_db "$g"
    start_ingestd "$g-prime" "$g" 1
    stop_ingestd "$g-prime" "$g"
    t0=$(date +%s)
    burst_load "$TMP/load-$g.out" ||
        say "$g: bench_load failed: $(tail -3 "$TMP/load-$g.out.err")"
    start_ns=$(now_ns)
    start_ingestd "$g" "$g" 0
    timeout -k 5 $((BENCH_BURST_TIMEOUT_S + 30)) "$PY" - "$MPORT" "$BENCH_BURST_READINGS" \
        "$BENCH_BURST_TIMEOUT_S" "$start_ns" "$IPID" >"$TMP/drain-$g.out" \
        2>"$TMP/drain-$g.err" <<'EOF' &
import os, re, sys, time, urllib.request
port, want, limit, start_ns, pid = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
url = "http://127.0.0.1:%s/metrics" % port
pat = re.compile(rb"^coldchain_ingest_readings_accepted_total (\d+)", re.M)
got, done_ns, last_print = 0, None, time.monotonic()
while (time.time_ns() - start_ns) / 1e9 < limit:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            m = pat.search(r.read())
        if m:
            got = int(m.group(1))
    except OSError:
        pass  # not serving yet
    if got >= want:
        done_ns = time.time_ns()
        break
    try:
        os.kill(pid, 0)
    except OSError:
        print("ingestd exited with %d of %d committed" % (got, want), file=sys.stderr)
        break
    if time.monotonic() - last_print >= 5:
        print("drain: %d committed" % got, file=sys.stderr)
        last_print = time.monotonic()
    time.sleep(0.02)
end_ns = done_ns if done_ns is not None else time.time_ns()
secs = (end_ns - start_ns) / 1e9
print("bench: drain_committed %d readings" % got)
print("bench: drain_time %.3f s" % secs)
if done_ns is not None:
    print("bench: drain_rate %.0f readings/s" % (got / secs))
sys.exit(0 if done_ns is not None else 1)
EOF
    ppid=$!
    PIDS="$PIDS $ppid"
    prc=0
    wait "$ppid" || prc=$?
    forget_pid "$ppid"
    [ $prc = 0 ] || say "$g: not drained: $(tail -3 "$TMP/drain-$g.err")"
    stop_ingestd "$g" "$g"
    stop_broker
    say "$g: $(val "$TMP/drain-$g.out" drain_committed) readings drained at" \
        "$(val "$TMP/drain-$g.out" drain_rate) readings/s, queued at" \
        "$(val "$TMP/load-$g.out" load_publish_rate) msg/s," \
        "VmHWM $(val "$TMP/vmhwm-$g" vmhwm) KiB, ingestd CPU $(val "$TMP/cpu-$g" cpu) s," \
        "$(($(date +%s) - t0)) s"
}

phase() { case " $BENCH_PHASES " in *" $1 "*) return 0 ;; esac; return 1; }
if phase baseline; then
    baseline "$BENCH_BASE_QOS" base
    if [ "$BENCH_BASE_QOS" = 2 ] && [ "$BENCH_QOS1_BASELINE" = 1 ]; then baseline 1 qos1; fi
fi
# shellcheck disable=SC2086 # FLOW is two words
phase plain && ingest plain --count "$BENCH_READINGS" $FLOW
# shellcheck disable=SC2086
phase tls && ingest tls --count "$BENCH_READINGS" $FLOW --port "$MQTT_TLS_PORT" \
    --cafile "$TMP/tls/ca.crt"
# F and G, BENCH_BURST_ROUNDS times: each ingest phase right after its own baseline.
r=1
while [ $r -le "$BENCH_BURST_ROUNDS" ]; do
    sfx=""
    if [ $r -gt 1 ]; then sfx="-$r"; fi
    if phase burst; then
        baseline_burst "$sfx"
        ingest "burst$sfx" --one-publisher
    fi
    if phase backlog; then
        baseline_backlog "$sfx"
        ingest_backlog "$sfx"
    fi
    r=$((r + 1))
done
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

# Phase H: active + standby, kill -9 of the active a third of the way through.
ingest_failover() {
    h=failover
    start_broker "$h"
    mkdir -p "$TMP/$h"
    cp "$DB" "$TMP/$h/coldchain.db"
    start_ingestd "$h-a" "$h" 1
    apid_=$IPID
    aport=$MPORT
    start_ingestd "$h-b" "$h" 0
    bpid=$IPID
    bport=$MPORT
    wait_port "$bport" 10 "$bpid" || die "the standby's metrics did not start"
    t0=$(date +%s)
    start_ns=$(now_ns)
    timeout -k 5 $((BENCH_PHASE_TIMEOUT_S * 2 + 30)) "$PY" - "$aport" "$bport" "$apid_" \
        "$((BENCH_FAILOVER_READINGS / 3))" "$BENCH_FAILOVER_READINGS" "$BENCH_PHASE_TIMEOUT_S" \
        "$start_ns" "$TMP/$h/coldchain.db" >"$TMP/failover-mon.out" 2>"$TMP/failover-mon.err" <<'EOF2' &
import json, os, re, signal, sqlite3, sys, time, urllib.request
aport, bport, apid = sys.argv[1], sys.argv[2], int(sys.argv[3])
kill_at, want, limit, start_ns = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
db = sys.argv[8]
def stored():  # the active's last commits may postdate its last poll: the rows decide the end
    con = sqlite3.connect(db, timeout=5)
    try:
        return con.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    finally:
        con.close()
pat = re.compile(rb"^coldchain_ingest_readings_accepted_total (\d+)", re.M)
def get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s%s" % (port, path), timeout=1) as r:
            return r.read()
    except OSError:
        return None
def accepted(port):
    body = get(port, "/metrics")
    m = pat.search(body) if body else None
    return int(m.group(1)) if m else None
a = b = 0
a_last_ns = b_first_ns = kill_ns = took_ns = last_ns = None
turn = 0
while (time.time_ns() - start_ns) / 1e9 < limit * 2:
    now = time.time_ns()
    if kill_ns is None:
        v = accepted(aport)
        if v is not None and v > a:
            a, a_last_ns = v, now
        if a >= kill_at:
            os.kill(apid, signal.SIGKILL)
            kill_ns = time.time_ns()
    else:
        if took_ns is None:
            h = get(bport, "/healthz")
            if h and json.loads(h).get("role") == "active":
                took_ns = now
        v = accepted(bport)
        if v is not None and v > b:
            if b_first_ns is None:
                b_first_ns = now
            b, last_ns = v, now
        turn += 1
        if a + b >= want or (turn % 10 == 0 and stored() >= want):
            break
    time.sleep(0.02)
print("bench: mon_active_committed %d readings" % a)
print("bench: mon_standby_committed %d readings" % b)
if kill_ns is not None and a_last_ns is not None and b_first_ns is not None:
    print("bench: mon_gap %.3f s" % ((b_first_ns - a_last_ns) / 1e9))
if kill_ns is not None and took_ns is not None:
    print("bench: mon_takeover %.3f s" % ((took_ns - kill_ns) / 1e9))
if last_ns is not None:
    print("bench: mon_time %.3f s" % ((last_ns - start_ns) / 1e9))
EOF2
    mpid=$!
    PIDS="$PIDS $mpid"
    load "$TMP/load-$h.out" --count "$BENCH_FAILOVER_READINGS" --rate "$BENCH_FAILOVER_RATE" ||
        say "$h: bench_load failed: $(tail -3 "$TMP/load-$h.out.err")"
    mrc=0
    wait "$mpid" || mrc=$?
    forget_pid "$mpid"
    [ $mrc = 0 ] || say "$h: the monitor failed: $(tail -3 "$TMP/failover-mon.err")"
    forget_pid "$apid_" # killed by the monitor
    IPID=$bpid
    stop_ingestd "$h"
    stop_broker
    # Counted, not assumed: what the broker acknowledged (bench_load) against the rows.
    stored=$("$PY" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM readings").fetchone()[0])' "$TMP/$h/coldchain.db")
    sent=$(val "$TMP/load-$h.out" load_puback_count)
    {
        echo "bench: stored $stored readings"
        echo "bench: sent $sent readings"
    } >"$TMP/failover-db.out"
    say "$h: $stored of $sent readings stored; gap $(val "$TMP/failover-mon.out" mon_gap) s," \
        "takeover $(val "$TMP/failover-mon.out" mon_takeover) s, $(($(date +%s) - t0)) s"
}
phase failover && ingest_failover

# --- figures ---------------------------------------------------------------------------
plain=$(val "$TMP/load-plain.out" load_commit_rate)
churn=$(val "$TMP/load-churn.out" load_commit_rate)
base=$(val "$TMP/count-base.out" count_rate)
incomplete() { # tag name [expected, default BENCH_READINGS]
    want=${3:-$BENCH_READINGS}
    [ -f "$TMP/load-$1.out" ] || return 0 # a phase left out by BENCH_PHASES
    n=$(val "$TMP/load-$1.out" load_committed)
    if [ "${n:-0}" != "$want" ]; then
        say "$1: only ${n:-0} of $want readings committed within the time limit"
        out "$2" "${n:-0}" readings
    fi
}
[ "$BENCH_RATE" != 0 ] && out ingest_offered_rate "$BENCH_RATE" readings/s
[ "$BENCH_RATE" = 0 ] && out ingest_window "$BENCH_WINDOW" readings
out ingest_store "$BENCH_STORE" store
out ingest_committed_rate "$plain" readings/s
incomplete plain ingest_committed
# CPU per 100k readings committed: less disturbed by the shared machine than the rate.
per100k() { awk -v c="$1" -v n="$BENCH_READINGS" 'BEGIN { if (c == "") print "n/a"; else printf "%.2f\n", c * 100000 / n }'; }
if [ -f "$TMP/cpu-plain" ]; then
    out ingest_plain_ingestd_cpu_per_100k "$(per100k "$(val "$TMP/cpu-plain" cpu)")" s
fi
if [ -f "$TMP/pgcpu-plain" ]; then
    out ingest_plain_pg_backend_cpu_per_100k "$(per100k "$(val "$TMP/pgcpu-plain" pgcpu)")" s
fi
out ingest_p50_latency "$(val "$TMP/load-plain.out" load_commit_p50_latency)" ms
out ingest_p99_latency "$(val "$TMP/load-plain.out" load_commit_p99_latency)" ms
if phase paced; then
    out ingest_paced_rate "$(val "$TMP/load-paced.out" load_commit_rate)" readings/s
    out ingest_paced_p50_latency "$(val "$TMP/load-paced.out" load_commit_p50_latency)" ms
    out ingest_paced_p99_latency "$(val "$TMP/load-paced.out" load_commit_p99_latency)" ms
fi
out broker_baseline_qos "$BENCH_BASE_QOS" qos
out broker_baseline_rate "$base" msg/s
out broker_baseline_p50_latency "$(val "$TMP/count-base.out" count_p50_latency)" ms
out broker_baseline_p99_latency "$(val "$TMP/count-base.out" count_p99_latency)" ms
if [ "$BENCH_BASE_QOS" = 2 ] && [ "$BENCH_QOS1_BASELINE" = 1 ]; then
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
# The median, min and max of numbers (n/a left out): "median min max count", or "n/a".
med() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -n | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        print m, a[1], a[NR], NR }'
}
# One issue-13 figure over the rounds: $1 = name, $2 = unit, $3 = 1 for the spread too,
# then one value per round. Prints the median as <name>; with $3 = 1 and more than one
# round, also <name>_min, _max and _rounds.
rounds_out() {
    name=$1
    unit=$2
    spread=$3
    shift 3
    # shellcheck disable=SC2046 # one number per word
    set -- $(med "$@")
    out "$name" "$1" "$unit"
    if [ "$spread" = 1 ] && [ $# -eq 4 ] && [ "$4" -gt 1 ]; then
        out "${name}_min" "$2" "$unit"
        out "${name}_max" "$3" "$unit"
        out "${name}_rounds" "$4" rounds
    fi
}
# The values of one figure over the rounds: $1 = file stem (tag without the round), $2 =
# the file's kind (load, count, drain, vmhwm), $3 = the figure's name in it.
per_round() {
    r=1
    while [ $r -le "$BENCH_BURST_ROUNDS" ]; do
        sfx=""
        if [ $r -gt 1 ]; then sfx="-$r"; fi
        case $2 in
        vmhwm) f="$TMP/vmhwm-$1$sfx" ;;
        *) f="$TMP/$2-$1$sfx.out" ;;
        esac
        v=$(val "$f" "$3")
        echo "${v:-n/a}"
        r=$((r + 1))
    done
}
# Per round: the ratio of two lists of values given as "a1 a2 ... -- b1 b2 ...".
ratios() {
    a=""
    while [ "$1" != -- ]; do
        a="$a $1"
        shift
    done
    shift
    for x in $a; do
        ratio "$x" "$1"
        shift
    done
}
# KiB values to MiB, n/a kept.
mib() {
    for k in "$@"; do
        case $k in n/a) echo n/a ;; *) awk -v k="$k" 'BEGIN { printf "%.1f\n", k / 1024 }' ;; esac
    done
}
if phase burst; then
    # shellcheck disable=SC2046 # one value per word
    set -- $(per_round burst load load_commit_rate)
    bi="$*"
    # shellcheck disable=SC2046
    set -- $(per_round burst-base count count_rate)
    bb="$*"
    # shellcheck disable=SC2086,SC2046 # lists of numbers, one per word
    {
        rounds_out ingest_burst_rate readings/s 1 $bi
        rounds_out baseline_burst_rate msg/s 0 $bb
        rounds_out ingest_burst_ratio ratio 1 $(ratios $bi -- $bb)
        rounds_out ingest_burst_publish_rate msg/s 0 $(per_round burst load load_publish_rate)
    }
    for n in $(per_round burst load load_committed); do
        if [ "$n" != "$BENCH_BURST_READINGS" ]; then
            say "burst: a round committed only $n of $BENCH_BURST_READINGS readings in time"
            out ingest_burst_committed_min "$n" readings
            break
        fi
    done
    # shellcheck disable=SC2046
    set -- $(med $(mib $(per_round burst vmhwm vmhwm)))
    out ingest_burst_vmhwm_mib "${3:-n/a}" MiB # the largest over the rounds
fi
if phase backlog; then
    # shellcheck disable=SC2046
    set -- $(per_round backlog drain drain_rate)
    gi="$*"
    # shellcheck disable=SC2046
    set -- $(per_round backlog-base count count_drain_rate)
    gb="$*"
    # shellcheck disable=SC2086,SC2046 # lists of numbers, one per word
    {
        rounds_out ingest_backlog_drain_rate readings/s 1 $gi
        rounds_out baseline_backlog_drain_rate msg/s 0 $gb
        rounds_out ingest_backlog_drain_ratio ratio 1 $(ratios $gi -- $gb)
        rounds_out ingest_backlog_queue_rate msg/s 0 $(per_round backlog load load_publish_rate)
    }
    for n in $(per_round backlog drain drain_committed); do
        if [ "$n" != "$BENCH_BURST_READINGS" ]; then
            say "backlog: a round drained only $n of $BENCH_BURST_READINGS readings in time"
            out ingest_backlog_committed_min "$n" readings
            break
        fi
    done
    # shellcheck disable=SC2046
    set -- $(med $(mib $(per_round backlog vmhwm vmhwm)))
    out ingest_backlog_vmhwm_mib "${3:-n/a}" MiB
fi
for t in plain tls churn nomqtt paced; do
    k=$(val "$TMP/vmhwm-$t" vmhwm)
    if [ -n "$k" ]; then
        out "ingest_${t}_vmhwm_mib" "$(awk -v k="$k" 'BEGIN { printf "%.1f", k / 1024 }')" MiB
    fi
done
if phase failover; then
    fst=$(val "$TMP/failover-db.out" stored)
    fsent=$(val "$TMP/failover-db.out" sent)
    out failover_offered_rate "$BENCH_FAILOVER_RATE" readings/s
    out failover_publish_rate "$(val "$TMP/load-failover.out" load_publish_rate)" msg/s
    # From the load's first PUBLISH (after bench_load's device connections) to the last commit.
    out failover_rate "$(awk -v n="$fst" -v t="$(val "$TMP/failover-mon.out" mon_time)" \
        -v c="$(val "$TMP/load-failover.out" load_connect_time)" \
        'BEGIN { t -= c; if (n == "" || t <= 0) print "n/a"; else printf "%.0f\n", n / t }')" \
        readings/s
    out failover_gap_s "$(val "$TMP/failover-mon.out" mon_gap)" "seconds without commits"
    out failover_takeover_s "$(val "$TMP/failover-mon.out" mon_takeover)" s
    out failover_lost "$(awk -v a="$fsent" -v b="$fst" \
        'BEGIN { if (a == "" || b == "") print "n/a"; else print a - b }')" readings
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
