#!/bin/sh
# `make soak`: the whole stack under a steady mixed load for SOAK_S seconds (default 600),
# sampling each daemon's RSS and open fds; prints "soak: <name> <value>" lines at the end
# (tools/soak.py says what each one is). Not part of `make test`: it asserts nothing.
#
# Every process is started by tools/soak.py (through tests/integration/harness.py, on free
# loopback ports in a temporary directory) and stopped by its PID when it ends, however it
# ends; SIGINT/SIGTERM here stops the driver, whose cleanup stops the rest. The driver is
# bounded: SOAK_S, plus set-up, plus at most a few minutes of draining.
#
# Knobs (environment): SOAK_S, SOAK_SAMPLE_S (30), SOAK_WARMUP_S (min(300, SOAK_S/4)),
# SOAK_DEVICES (1000), SOAK_CUSTOMERS (25), SOAK_RATE (200 readings/s), SOAK_HIGH_RATIO
# (0.1), SOAK_HTTP_CLIENTS (20), SOAK_HTTP_PAUSE_S (0.5), SOAK_FEEDS (50); BUILD (build).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

for b in ingestd apid ccctl bench_load; do
    [ -e "$BUILD/$b" ] || { echo "soak: $BUILD/$b missing (run: make all)" >&2; exit 1; }
done
# The plugin is always the plain build's (harness.py); build it if BUILD is another one.
[ -e build/coldchain_auth.so ] || { echo "soak: build/coldchain_auth.so missing (run: make)" >&2; exit 1; }

limit=$(( ${SOAK_S:-600} + 900 ))
CC_BUILD=$BUILD timeout -k 30 "$limit" "$PY" -u tools/soak.py &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 130' INT TERM
rc=0
wait $pid || rc=$?
exit $rc
