#!/bin/sh
# bench_alerts.sh - the writer's share of alert churn (issue 4), without broker or Paho:
# build/bench_alerts stores the same readings with and without an alert change per
# reading through cc_ingest_readings, then times the delivery worker over the outbox it
# wrote (see tools/bench_alerts.c). A temporary database in /tmp, removed at the end.
# Prints "bench:" lines; asserts nothing. Environment: BUILD (build),
# BENCH_ALERT_READINGS (40000), BENCH_ALERT_ROUNDS (3).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
[ -x "$BUILD/bench_alerts" ] || make --no-print-directory "$BUILD/bench_alerts" >&2
"$BUILD/bench_alerts" "${BENCH_ALERT_READINGS:-40000}"
