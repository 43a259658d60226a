#!/bin/sh
# bench_store.sh - the ingest path's store, SQLite against PostgreSQL on the same load
# (issue 14 point 3; tools/bench_store.c): a temporary SQLite file and a throwaway
# PostgreSQL 15 cluster (tools/pgtest.sh: Unix socket, fsync off), both removed at the
# end. Prints "bench: store_sqlite_ingest_rate", "bench: store_pg_ingest_rate" and
# "bench: store_pg_vs_sqlite_ratio", and CPU seconds per 100k readings (less disturbed by
# a shared machine than the rates): store_sqlite_cpu_per_100k, store_pg_client_cpu_per_100k
# and store_pg_backend_cpu_per_100k (the server backend, from /proc); asserts nothing. Environment: BUILD (build),
# BENCH_STORE_READINGS (200000), BENCH_PG_PORT (the socket's port, 55431).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
[ -x "$BUILD/bench_store" ] || make --no-print-directory "$BUILD/bench_store" >&2
dir=$(mktemp -d /tmp/cc-bench-store-XXXXXX)
chmod 755 "$dir"
cleanup() {
    sh tools/pgtest.sh stop "$dir/pg" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
url=$(sh tools/pgtest.sh start "$dir/pg" "${BENCH_PG_PORT:-55431}")
"$BUILD/bench_store" "$dir/bench.db" "$url"
