#!/bin/sh
# A throwaway PostgreSQL 15 cluster for tests and benchmarks (issue 14): no TCP at all,
# one Unix socket in the cluster's own directory, trust authentication, fsync off.
#
#   sh tools/pgtest.sh start DIR [PORT]   initdb + start; prints the COLDCHAIN_DB URL
#   sh tools/pgtest.sh stop DIR           fast shutdown, then removes DIR
#   sh tools/pgtest.sh down DIR           fast shutdown, DIR kept (a database outage)
#   sh tools/pgtest.sh up DIR             starts it again as `start` did
#   sh tools/pgtest.sh halt DIR           fast shutdown, keeps DIR: a later start on the
#                                         same DIR starts that cluster again (no initdb),
#                                         for benchmarks that keep a loaded copy
#
# PGTEST_TEMPLATE=TDIR (start only): a fresh DIR starts as a copy of TDIR's cluster, a
# `start` then `halt`ed one (its role, database and whatever was put in them, e.g. a
# migrated schema), instead of running initdb: the tests start many clusters, and on the
# loaded 2-core machine a copy and start took 0.35-1.4 s where initdb and start took 4-7.9 s
# (tests/run_unit.sh, tests/integration/harness.py pg_template).
#
# PGTEST_DURABLE=1 (start only): the durability settings of a production server instead
# (fsync, synchronous_commit and full_page_writes on, PostgreSQL's defaults, as
# docs/postgresql.md "Recommended settings" asks), for benchmarks (tools/bench_store.sh).
#
# DIR's parent must be searchable by the postgres user (e.g. under /tmp).
# PORT only names the socket (DIR/.s.PGSQL.PORT); 5432 unless given. As root the server
# runs as the postgres user (initdb refuses root), as anyone else as that user. The URL
# is postgresql:///coldchain?host=DIR&port=PORT&user=coldchain, a database and role both
# named coldchain, the role a superuser so that migrations may create what they need.
set -eu
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|down|up|halt DIR [PORT]" >&2; exit 2; }

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    port=${3:-5432}
    fresh=1
    [ -f "$dir/data/PG_VERSION" ] && fresh=0
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    chmod 700 "$dir"
    if [ $fresh = 1 ] && [ -n "${PGTEST_TEMPLATE:-}" ]; then
        [ -f "$PGTEST_TEMPLATE/data/PG_VERSION" ] && [ ! -f "$PGTEST_TEMPLATE/data/postmaster.pid" ] ||
            { echo "$0: PGTEST_TEMPLATE=$PGTEST_TEMPLATE is not a halted cluster" >&2; exit 1; }
        cp -a "$PGTEST_TEMPLATE/data" "$dir/data" # keeps the postgres owner and mode 700
        fresh=0                                     # the role and database came with it
    fi
    if [ $fresh = 1 ]; then
        as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
            --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # Test settings: durability is the OS's business here (fsync off), logs to a file.
    # Kept for `up`, which starts the same server again.
    nosync="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${PGTEST_DURABLE:-0}" = 1 ] && nosync=""
    echo "-k $dir -p $port -c listen_addresses='' $nosync -c max_connections=200" >"$dir/options"
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "$(cat "$dir/options")" start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    if [ $fresh = 1 ]; then
        as_pg "$PGBIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
            -c "CREATE ROLE coldchain LOGIN SUPERUSER" \
            -c "CREATE DATABASE coldchain OWNER coldchain" >/dev/null
    fi
    echo "postgresql:///coldchain?host=$dir&port=$port&user=coldchain"
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
down)
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
    ;;
up)
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "$(cat "$dir/options")" start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    ;;
halt)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null || true
    fi
    ;;
*)
    echo "usage: $0 start|stop|down|up|halt DIR [PORT]" >&2
    exit 2
    ;;
esac
