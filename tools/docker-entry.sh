#!/bin/sh
# Container entry point: `setup` migrates, seeds an empty database and writes the broker
# configuration into the shared volume; `mosquitto`, `ingestd` and `apid` run one process.
set -eu
: "${COLDCHAIN_DB:=/data/coldchain.db}"
: "${MQTT_PORT:=1883}"
: "${MQTT_USERNAME:=ingestd}"
: "${MQTT_PASSWORD:?MQTT_PASSWORD must be set (see .env.example)}"
# With COLDCHAIN_DB a PostgreSQL URL (the postgres profile) the files stay on the volume.
case "$COLDCHAIN_DB" in
postgresql://* | postgres://*) DATA=${COLDCHAIN_DATA_DIR:-/data} ;;
*) DATA=$(dirname "$COLDCHAIN_DB") ;;
esac
COLDCHAIN_DATA_DIR=$DATA
export COLDCHAIN_DATA_DIR
# The scale profile's second apid and standby ingestd (docker-compose.yml) share the
# database with the first ones across containers: PostgreSQL, as the profile says.
if [ "${REQUIRE_POSTGRES:-0}" = 1 ]; then
    case "$COLDCHAIN_DB" in
    postgresql://* | postgres://*) ;;
    *)
        echo "docker-entry.sh: the scale profile needs COLDCHAIN_DB=postgresql://... (.env.example)" >&2
        exit 64
        ;;
    esac
fi
case "${1:-}" in
setup)
    /app/build/ccctl migrate
    /app/build/ccctl seed --keys-file "$DATA/device-keys.csv"
    MQTT_BIND=0.0.0.0 sh /app/tools/broker_conf.sh "$DATA/broker" "$MQTT_PORT" "$COLDCHAIN_DB" \
        /app/build/coldchain_auth.so "$MQTT_USERNAME" # MQTT_PASSWORD: from the environment
    ;;
mosquitto) exec mosquitto -c "$DATA/broker/mosquitto.conf" ;;
ingestd) exec /app/build/ingestd ;;
apid) exec /app/build/apid ;;
*)
    echo "usage: docker-entry.sh setup|mosquitto|ingestd|apid" >&2
    exit 64
    ;;
esac
