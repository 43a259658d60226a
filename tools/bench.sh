#!/bin/sh
# `make bench`: runs the benchmark sections and prints their figures, one per line, as
# "bench: <name> <value> <unit>". Asserts nothing about the numbers.
#
# Sections are tools/bench_<area>.sh scripts: tools/bench_ingest.sh first, then every
# other tools/bench_*.sh in name order (tools/bench_http.sh, tools/bench_query.sh,
# tools/bench_scale.sh: two apid behind nginx against one, tools/bench_store.sh: the store
# alone, SQLite against PostgreSQL, ...).
# Each section starts what it needs on free loopback ports in its own temporary
# directory and stops it by PID, however it ends; its progress goes to stderr and its
# figures to stdout. A section that fails is reported and the next one still runs; the
# exit status is then 1. BENCH_ONLY=ingest (a space-separated list) runs only those.
set -u
cd "$(dirname "$0")/.." || exit 1

status=0
t0=$(date +%s)
SECTION_PID=""
# A section runs in the background so that a signal here reaches it at once; the
# section's own trap then stops what it started.
# shellcheck disable=SC2317 # invoked by the trap
on_signal() {
    trap - INT TERM
    [ -n "$SECTION_PID" ] && kill -TERM "$SECTION_PID" 2>/dev/null && wait "$SECTION_PID"
    exit 130
}
trap on_signal INT TERM

wanted() {
    [ -z "${BENCH_ONLY:-}" ] && return 0
    for w in $BENCH_ONLY; do [ "$w" = "$1" ] && return 0; done
    return 1
}

run_section() {
    name=$(basename "$1" .sh)
    name=${name#bench_}
    wanted "$name" || return 0
    echo "bench: --- $name" >&2
    s0=$(date +%s)
    sh "$1" &
    SECTION_PID=$!
    rc=0
    wait "$SECTION_PID" || rc=$?
    SECTION_PID=""
    if [ $rc = 0 ]; then
        echo "bench: $name done in $(($(date +%s) - s0)) s" >&2
    else
        echo "bench: section $name failed (exit $rc)" >&2
        status=1
    fi
}

run_section tools/bench_ingest.sh
for f in tools/bench_*.sh; do
    [ -f "$f" ] || continue
    [ "$f" = tools/bench_ingest.sh ] && continue
    run_section "$f"
done
echo "bench: total_time $(($(date +%s) - t0)) s"
exit $status
