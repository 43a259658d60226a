#!/bin/sh
# deps_check.sh - the Makefile's header dependencies (-MMD -MP) hold in $BUILD and $FUZZ_DIR.
# For each row "header output expect", `make -q -W header output` (make pretends the header
# was just modified, touching nothing) must find the output out of date ("rebuilt") or up to
# date ("kept"): a header rebuilds what includes it, in every build directory, and nothing
# else. Outputs not built yet are skipped and counted. Run by `make unit`; `make deps-check`.
B=${BUILD:-build}
F=${FUZZ_DIR:-build/fuzz}
MAKE=${MAKE:-make}
checked=0
skipped=0
failed=0
while read -r hdr out expect; do
    [ -n "$hdr" ] || continue
    if [ ! -e "$out" ]; then
        skipped=$((skipped + 1))
        continue
    fi
    # Up to date first, or a "rebuilt" row would pass for any reason.
    if ! $MAKE -q BUILD="$B" "$out" >/dev/null 2>&1; then
        echo "deps-check: $out is out of date before the check: build it first" >&2
        failed=$((failed + 1))
        continue
    fi
    if $MAKE -q BUILD="$B" -W "$hdr" "$out" >/dev/null 2>&1; then got=kept; else got=rebuilt; fi
    if [ "$got" != "$expect" ]; then
        echo "deps-check: editing $hdr: $out $got, expected $expect" >&2
        failed=$((failed + 1))
    fi
    checked=$((checked + 1))
done <<ROWS
apid/api.h $B/obj/apid/h_openapi.o rebuilt
apid/api.h $B/apid rebuilt
apid/api.h $B/obj/common/base/cc_time.o kept
apid/api.h $B/ingestd kept
common/base/cc_time.h $B/obj/common/base/cc_time.o rebuilt
common/store/cc_store.h $B/obj/ingestd/main.o rebuilt
common/store/cc_store.h $B/bench_alerts rebuilt
common/api/cc_query.h $B/obj/tools/bench_query.o rebuilt
common/api/cc_query.h $B/obj/tools/bench_alerts.o kept
tools/ccctl.h $B/obj/tools/ccctl.o rebuilt
broker-config/cc_auth_rules.h $B/coldchain_auth.so rebuilt
tests/unit/fixture.h $B/tests/test_access rebuilt
tests/unit/fixture.h $B/obj/common/base/cc_time.o kept
common/base/cc_rc.h $B/tests/test_error rebuilt
tests/fuzz/fuzz.h $F/fuzz_json rebuilt
apid/api.h $F/obj/apid/h_openapi.o rebuilt
apid/api.h $F/obj/common/base/cc_time.o kept
ROWS
echo "deps-check($B, $F): $checked checked, $skipped skipped (not built), $failed failed"
[ "$failed" -eq 0 ]
