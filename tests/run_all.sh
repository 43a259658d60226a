#!/bin/sh
# `make test`: unit tests (plain and under ASan+UBSan), integration tests against the
# real broker and daemons, then one summary line "N passed, M failed" over every suite.
cd "$(dirname "$0")/.."
log=$(mktemp)
status=0
rcfile=$(mktemp)
run() {
    { "$@" 2>&1; echo $? >"$rcfile"; } | tee -a "$log"
    return "$(cat "$rcfile")"
}
run make --no-print-directory unit || status=1
run make --no-print-directory unit-asan || status=1
run /usr/bin/python3 tests/integration/run.py || status=1
# The same suites on PostgreSQL (issue 14): each stack starts its own throwaway cluster
# (tools/pgtest.sh). A case with no PostgreSQL meaning (a read-only database FILE, SQLite's
# WAL or heap limit) has a PostgreSQL counterpart in its file, which says which runs where.
# Left out: test_pg_schema / test_ccctl_pg (PostgreSQL already: they start their own
# cluster on the first pass).
run env CC_TEST_STORE=pg CC_SUITE=integration-pg /usr/bin/python3 tests/integration/run.py \
    $(ls tests/integration/test_*.py | grep -v -e test_pg_schema -e test_ccctl_pg) || status=1
# The daemons again, built with ASan+UBSan, through the suites that exercise the most code.
run make --no-print-directory BUILD=build/asan SAN=1 OPT=-O1 all || status=1
run env CC_BUILD=build/asan CC_SUITE=integration-asan /usr/bin/python3 tests/integration/run.py \
    $(ls tests/integration/test_ingest_mqtt.py tests/integration/test_durability.py \
        tests/integration/test_redelivery.py tests/integration/test_ingest_tls.py \
        tests/integration/test_api_*.py tests/integration/test_alerts_*.py tests/integration/test_ws.py 2>/dev/null) || status=1
# Every libFuzzer target for a few seconds, after replaying its committed corpus (so a
# crash found once stays found): one line "fuzz: N passed, M failed" (tools/fuzz.sh).
run make --no-print-directory fuzz-build || status=1
run env FUZZ_S="${FUZZ_TEST_S:-3}" sh tools/fuzz.sh || status=1
if [ -f tests/browser/run.sh ]; then
    run sh tests/browser/run.sh || status=1
fi
# Every suite prints "<suite>: N passed, M failed"; add them up.
total=$(grep -E '^[a-z()/_.-]+: [0-9]+ passed, [0-9]+ failed$' "$log" |
    awk '{p += $2; f += $4} END {printf "%d %d", p, f}')
rm -f "$log" "$rcfile"
p=${total% *}
f=${total#* }
[ -z "$p" ] && p=0
[ -z "$f" ] && f=0
# A suite that crashed before printing its line still fails the run.
if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
fi
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
