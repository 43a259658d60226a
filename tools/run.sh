#!/bin/sh
# `make run`: one stack in the foreground - mosquitto (with the coldchain plugin),
# ingestd and apid - on MQTT_PORT / HTTP_PORT / INGEST_METRICS_PORT with COLDCHAIN_DB.
# Seeds an empty database. Ctrl-C (SIGINT) or SIGTERM stops all three cleanly.
# Several stacks run side by side with different ports and databases.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)

: "${COLDCHAIN_DB:=data/coldchain.db}"
: "${MQTT_PORT:=1883}"
: "${HTTP_PORT:=8080}"
: "${INGEST_METRICS_PORT:=9101}"
: "${MQTT_URL:=tcp://127.0.0.1:$MQTT_PORT}"
: "${MQTT_USERNAME:=ingestd}"
# COLDCHAIN_DB may be a PostgreSQL URL (docs/postgresql.md): the database must exist; the
# broker's files, ingestd's journal and the secrets then live in COLDCHAIN_DATA_DIR (data/).
case "$COLDCHAIN_DB" in
postgresql://* | postgres://*) DATA=${COLDCHAIN_DATA_DIR:-$ROOT/data} ;;
/*) DATA=$(dirname "$COLDCHAIN_DB") ;;
*)
    COLDCHAIN_DB="$ROOT/$COLDCHAIN_DB"
    DATA=$(dirname "$COLDCHAIN_DB")
    ;;
esac
case "$DATA" in /*) ;; *) DATA="$ROOT/$DATA" ;; esac
COLDCHAIN_DATA_DIR=$DATA
export COLDCHAIN_DATA_DIR
mkdir -p "$DATA"
chmod 700 "$DATA"

# The ingestd operator's broker password: generated at first start, never committed.
if [ -z "${MQTT_PASSWORD:-}" ]; then
    if [ ! -s "$DATA/mqtt.secret" ]; then
        (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$DATA/mqtt.secret")
    fi
    MQTT_PASSWORD=$(cat "$DATA/mqtt.secret")
fi
export COLDCHAIN_DB MQTT_PORT HTTP_PORT INGEST_METRICS_PORT MQTT_URL MQTT_USERNAME MQTT_PASSWORD

build/ccctl migrate >/dev/null
KEYS="$DATA/device-keys.csv"
seed_out=$(build/ccctl seed --keys-file "$KEYS")
echo "$seed_out"

# MQTT over TLS for devices: a development CA and server certificate made on first start by
# tools/devca.sh, kept beside the database in $DATA/tls (keys 0600; data/ is never committed).
# MQTT_TLS_CERT/MQTT_TLS_KEY/MQTT_TLS_CAFILE name other files; MQTT_TLS_PORT=0 turns TLS off.
: "${MQTT_TLS_PORT:=8883}"
: "${MQTT_TLS_CERT_PORT:=8884}"
TLS_DIR="$DATA/tls"
if [ "$MQTT_TLS_PORT" != 0 ] && [ -z "${MQTT_TLS_CERT:-}" ]; then
    sh tools/devca.sh "$TLS_DIR" >/dev/null
    MQTT_TLS_CERT="$TLS_DIR/server.crt"
    MQTT_TLS_KEY="$TLS_DIR/server.key"
    : "${MQTT_TLS_CAFILE:=$TLS_DIR/ca.crt}"
fi
export MQTT_TLS_PORT MQTT_TLS_CERT_PORT
[ -z "${MQTT_TLS_CERT:-}" ] || export MQTT_TLS_CERT MQTT_TLS_KEY
[ -z "${MQTT_TLS_CAFILE:-}" ] || export MQTT_TLS_CAFILE

# MQTT_PASSWORD reaches broker_conf.sh through the environment only (never argv).
sh tools/broker_conf.sh "$DATA/broker" "$MQTT_PORT" "$COLDCHAIN_DB" "$ROOT/build/coldchain_auth.so" \
    "$MQTT_USERNAME" >/dev/null

pids=""
stop_all() {
    trap - INT TERM
    echo "make run: stopping"
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    exit 0
}
trap stop_all INT TERM

mosquitto -c "$DATA/broker/mosquitto.conf" &
pids="$pids $!"
sleep 0.5
build/ingestd &
pids="$pids $!"
build/apid &
pids="$pids $!"

cat <<EOT

coldchain is running
  HTTP API        http://127.0.0.1:$HTTP_PORT/   (health: /health, ready: /ready)
                  plain HTTP on loopback, for development; production puts nginx (HTTPS) in front: deploy/README.md
  MQTT broker     tcp://127.0.0.1:$MQTT_PORT     (devices: username = serial, password = API key)
EOT
if [ -n "${MQTT_TLS_CERT:-}" ]; then
    cat <<EOT
  MQTT over TLS   ssl://127.0.0.1:$MQTT_TLS_PORT     (same login; server certificate $MQTT_TLS_CERT)
EOT
    [ -z "${MQTT_TLS_CAFILE:-}" ] || cat <<EOT
  device certs    ssl://127.0.0.1:$MQTT_TLS_CERT_PORT     (bound to the device row, no key; build/ccctl device cert SERIAL)
  development CA  $MQTT_TLS_CAFILE (keys beside it, mode 0600; never committed)
  simulate (TLS)  build/ccctl simulate --keys-file $KEYS --url ssl://127.0.0.1:$MQTT_TLS_PORT --cafile ${MQTT_TLS_CAFILE:-CA}
EOT
fi
cat <<EOT
  ingest metrics  http://127.0.0.1:$INGEST_METRICS_PORT/metrics
  database        $COLDCHAIN_DB
  test users      admin@example.com / admin123, tech@example.com / technician123,
                  customer1@example.com / customer123, customer2@example.com / customer123
  device keys     $KEYS (shown once at seeding, kept there mode 0600)
  simulate        build/ccctl simulate --keys-file $KEYS --url $MQTT_URL --rate 10 --duration 60
Ctrl-C stops all three.
EOT

# If any of the three dies, stop the others.
while :; do
    for p in $pids; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "make run: process $p exited" >&2
            stop_all
        fi
    done
    sleep 1
done
