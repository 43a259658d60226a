#!/bin/sh
# Installs the Debian packages coldchain needs, only those that are missing.
# `apt-get update` runs only when something is missing and a first install attempt fails.
set -eu
# chromium + fonts-liberation: the web dashboard test (tests/browser; node and npm come with the machine).
# nginx + openssl: deploy/nginx/coldchain.conf and its test (tests/integration/test_nginx.py).
# postgresql-15 + libpq-dev: the PostgreSQL store and its throwaway test cluster (tools/pgtest.sh);
# postgresql-15 brings postgresql-client-15: pg_dump/pg_restore for `ccctl backup|restore`.
# python3-psycopg2: the integration harness reads a PostgreSQL store the way it reads SQLite.
# strace: test_broker_auth checks that broker_conf.sh never puts the MQTT password in argv.
# clang + libclang-rt-14-dev: the libFuzzer targets (make fuzz, tests/fuzz).
PKGS="build-essential pkg-config libpaho-mqtt-dev mosquitto mosquitto-dev libmosquitto-dev
mosquitto-clients libcivetweb-dev libcjson-dev libsqlite3-dev sqlite3 libssl-dev
libcurl4-openssl-dev libjwt-dev libcmocka-dev python3 python3-paho-mqtt python3-yaml systemd wrk
strace postgresql-15 libpq-dev python3-psycopg2
chromium fonts-liberation clang libclang-rt-14-dev nginx openssl ${EXTRA_PKGS:-}"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "deps: missing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: run as root:  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends $missing; then
    apt-get update
    apt-get install -y --no-install-recommends $missing
fi
