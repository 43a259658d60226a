#!/bin/sh
# Runs every cmocka binary in $1 and prints "unit(<dir>): N passed, M failed".
# Each test case counts once. Exit status 1 if any failed or a binary crashed.
dir=$1
pass=0
fail=0
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
echo "unit($dir): $pass passed, $fail failed"
[ "$fail" -eq 0 ]
