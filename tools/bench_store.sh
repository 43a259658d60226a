#!/bin/sh
# bench_store.sh - the ingest path's store, SQLite against PostgreSQL on the same load
# (issue 14 point 3; tools/bench_store.c): a temporary SQLite file and a throwaway
# PostgreSQL 15 cluster (tools/pgtest.sh, Unix socket), both removed at the end.
# The cluster runs with a production server's durability (PGTEST_DURABLE=1: fsync,
# synchronous_commit and full_page_writes on, docs/postgresql.md "Recommended settings"),
# as SQLite runs with the daemons' (WAL, synchronous=NORMAL); BENCH_PG_DURABLE=0 gives the
# test settings instead (all three off). The two stores' batches are interleaved
# (bench_store.c; BENCH_STORE_ORDER=sequential for one store after the other).
# Prints "bench: store_sqlite_ingest_rate", "bench: store_pg_ingest_rate" and
# "bench: store_pg_vs_sqlite_ratio", and CPU seconds per 100k readings (less disturbed by
# a shared machine than the rates): store_sqlite_cpu_per_100k, store_pg_client_cpu_per_100k,
# store_pg_backend_cpu_per_100k (the server backend, from /proc) and
# store_pg_cluster_cpu_per_100k (every process of the cluster: the backend plus the
# checkpointer, WAL writer and autovacuum; migration and seeding included), and the WAL
# the run wrote per reading (store_pg_wal_bytes_per_reading); asserts nothing.
# Environment: BUILD (build), BENCH_STORE_READINGS (200000), BENCH_STORE_BATCH (1000
# messages per transaction), BENCH_PG_PORT (the socket's port, 55431), BENCH_PG_DURABLE (1),
# BENCH_STORE_ORDER (interleaved).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$BUILD/bench_store" ] || make --no-print-directory "$BUILD/bench_store" >&2
dir=$(mktemp -d /tmp/cc-bench-store-XXXXXX)
chmod 755 "$dir"
cleanup() {
    sh tools/pgtest.sh stop "$dir/pg" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
url=$(PGTEST_DURABLE=${BENCH_PG_DURABLE:-1} sh tools/pgtest.sh start "$dir/pg" "${BENCH_PG_PORT:-55431}")

# CPU seconds of the whole cluster so far: the postmaster's own, its reaped children's
# (a backend that exited, an autovacuum worker) and its live children's (/proc stat
# fields 14-17 after the command name).
cluster_cpu() {
    pm=$(head -n 1 "$dir/pg/data/postmaster.pid")
    { cat "/proc/$pm/stat"; for c in $(pgrep -P "$pm"); do cat "/proc/$c/stat" 2>/dev/null || true; done; } |
        sed 's/.*) //' |
        awk -v t="$(getconf CLK_TCK)" '{ s += $12 + $13; if (NR == 1) s += $14 + $15 } END { printf "%.2f", s / t }'
}
wal_lsn() {
    "$PGBIN/psql" -X -qAt -d "$url" -c "SELECT pg_current_wal_lsn() - '0/0'"
}

cpu0=$(cluster_cpu)
wal0=$(wal_lsn)
"$BUILD/bench_store" "$dir/bench.db" "$url"
sleep 1 # the backend exits with bench_store: let the postmaster reap it
wal1=$(wal_lsn)
cpu1=$(cluster_cpu)
awk -v a="$cpu0" -v b="$cpu1" -v n="${BENCH_STORE_READINGS:-200000}" \
    'BEGIN { printf "bench: store_pg_cluster_cpu_per_100k %.2f s\n", (b - a) * 100000 / n }'
awk -v a="$wal0" -v b="$wal1" -v n="${BENCH_STORE_READINGS:-200000}" \
    'BEGIN { printf "bench: store_pg_wal_bytes_per_reading %.0f bytes\n", (b - a) / n }'
