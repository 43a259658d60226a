#!/bin/sh
# Runs every cmocka binary in $1 and prints "unit(<dir>): N passed, M failed".
# Each test case counts once. Exit status 1 if any failed or a binary crashed.
dir=$1
pass=0
fail=0
# The PostgreSQL tests each start a throwaway cluster (tests/unit/fixture.c, tools/pgtest.sh):
# one initdb for the whole run, each cluster a copy of it (PGTEST_TEMPLATE: its role and empty
# database, as initdb and pgtest.sh leave them; the tests migrate it themselves).
tpl=""
if [ -z "${PGTEST_TEMPLATE:-}" ] && [ -x /usr/lib/postgresql/15/bin/initdb ]; then
    tpl=$(mktemp -d /tmp/cc-unit-pgtpl-XXXXXX)
    chmod 755 "$tpl"
    if sh tools/pgtest.sh start "$tpl/c" 5432 >/dev/null && sh tools/pgtest.sh halt "$tpl/c"; then
        export PGTEST_TEMPLATE="$tpl/c"
    else
        echo "run_unit.sh: no template cluster, each test runs initdb" >&2
    fi
fi
for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1)
    st=$?
    p=$(printf '%s\n' "$out" | grep -c '^\[       OK \]')
    f=$(printf '%s\n' "$out" | grep -c '^\[  FAILED  \] test_')
    if [ "$st" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # crashed or sanitizer abort: count the binary as one failure
    fi
    if [ "$st" -ne 0 ]; then
        printf '%s\n' "$out" | tail -40
    fi
    pass=$((pass + p))
    fail=$((fail + f))
done
[ -n "$tpl" ] && sh tools/pgtest.sh stop "$tpl/c" && rm -rf "$tpl"
echo "unit($dir): $pass passed, $fail failed"
[ "$fail" -eq 0 ]
