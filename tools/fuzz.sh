#!/bin/sh
# Runs every libFuzzer target of build/fuzz/ (built by `make fuzz-build`) one after the
# other, FUZZ_S seconds each (default 60), and prints one line per target and a summary
# line "fuzz: N passed, M failed" (N: targets that ran clean: no crash, leak, timeout or
# broken invariant, and the committed corpus replayed without one).
#
# Each target starts from its committed seeds, tests/fuzz/corpus/<name>/, read-only: new
# inputs go to build/fuzz/corpus/<name>/ (kept between runs, so a long campaign keeps
# its coverage). Findings are saved as build/fuzz/findings/<name>-crash-<sha1> (or leak-,
# timeout-, oom-); once the cause is fixed, copy the file into the target's seed
# directory so the replay keeps it found (tests/fuzz/README.md).
#
# Targets run one at a time, on one core each (the machine is shared).
# Environment: FUZZ_S (seconds per target), FUZZ_TARGETS (space-separated names, default
# all), FUZZ_ARGS (extra libFuzzer flags, e.g. -runs=10000000), FUZZ_BINDIR (where the
# binaries are, default build/fuzz: a long campaign can run copies while the tree is
# rebuilt).
cd "$(dirname "$0")/.."
dir=build/fuzz
secs=${FUZZ_S:-60}
findings=$dir/findings
mkdir -p "$findings"
passed=0
failed=0
targets=${FUZZ_TARGETS:-$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c | sed 's/^fuzz_//'; done)}
for t in $targets; do
    bin=${FUZZ_BINDIR:-$dir}/fuzz_$t
    seeds=tests/fuzz/corpus/$t
    work=$dir/corpus/$t
    log=$dir/fuzz_$t.log
    if [ ! -x "$bin" ]; then
        echo "fuzz $t: FAIL (no binary $bin: run make fuzz-build)"
        failed=$((failed + 1))
        continue
    fi
    mkdir -p "$work" "$seeds"
    before=$(ls "$findings" | grep -c "^$t-" || true)
    tmp=$dir/tmp/$t.$$ # this run's scratch databases (fuzz_feed.c, fuzz_ingest.c)
    mkdir -p "$tmp"
    # -timeout: one input that takes this long is a hang (a finding); -rss_limit_mb: a
    # leak or an allocation this large is one too. The seed directory comes second so it
    # is only read: libFuzzer writes new inputs into the first directory.
    # shellcheck disable=SC2086
    FUZZ_TMPDIR=$tmp "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$findings/$t-" ${FUZZ_ARGS:-} \
        "$work" "$seeds" >"$log.$$" 2>&1
    rc=$?
    mv "$log.$$" "$log" # written apart, so two runs of one target never mix their logs
    rm -rf "$tmp"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    after=$(ls "$findings" | grep -c "^$t-" || true)
    new=$((after - before))
    if [ "$rc" -eq 0 ] && [ "$new" -eq 0 ]; then
        echo "fuzz $t: ok, ${execs:-0} execs (${rate:-0}/s), 0 findings"
        passed=$((passed + 1))
    else
        echo "fuzz $t: FAIL, ${execs:-0} execs, $new findings (exit $rc), log $log:"
        grep -E 'ERROR|invariant broken|SUMMARY|^artifact_prefix|Test unit written' "$log" |
            head -n 8 | sed 's/^/    /'
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
