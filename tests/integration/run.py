"""Runs every tests/integration/test_*.py (or those named on the command line) and prints
"integration: N passed, M failed". A case is a line "ok ..." or "FAIL ..."; a script that
exits non-zero without printing a FAIL line counts as one failure."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = int(os.environ.get("CC_TEST_TIMEOUT", "600"))
STEPS = ("pg", "migrate", "seed", "broker", "ingestd", "apid", "stop")


def stack_times(path):
    """The harness's one line per stack (harness._record_start), summed by step."""
    n, sums = 0, dict.fromkeys(STEPS, 0.0)
    try:
        with open(path) as f:
            for line in f:
                n += 1
                for k, v in json.loads(line).items():
                    sums[k] = sums.get(k, 0.0) + v
    except (OSError, ValueError):
        pass
    return n, sums


def fmt_times(n, sums):
    return "%d stacks, %.1fs to start and stop (%s)" % (n, sum(sums.values()), ", ".join(
        "%s %.1f" % (k, sums[k]) for k in STEPS if sums.get(k)))


def main():
    scripts = [os.path.abspath(a) for a in sys.argv[1:]] or sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    passed = failed = 0
    run_t0 = time.time()
    all_n, all_sums = 0, dict.fromkeys(STEPS, 0.0)
    times_fd, times_path = tempfile.mkstemp(prefix="cc-stack-times-")
    os.close(times_fd)
    for s in scripts:
        t0 = time.time()
        print("== %s" % os.path.basename(s), flush=True)
        open(times_path, "w").close()
        env = dict(os.environ, CC_STACK_TIMES=times_path)
        try:
            p = subprocess.run(["/usr/bin/python3", "-u", s], capture_output=True, text=True,
                               timeout=TIMEOUT_S, cwd=os.path.dirname(os.path.dirname(HERE)),
                               env=env)
            out, rc = p.stdout + p.stderr, p.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            out += "\nTIMEOUT after %ds" % TIMEOUT_S
            rc = -1
        ok = sum(1 for l in out.splitlines() if l.startswith("ok "))
        bad = sum(1 for l in out.splitlines() if l.startswith("FAIL "))
        if rc != 0 and bad == 0:
            bad = 1
        if rc != 0 or bad:
            sys.stdout.write(out)
        else:
            for l in out.splitlines():
                if l.startswith("ok ") or l.startswith("bench:"):
                    print("  " + l)
        n, sums = stack_times(times_path)
        all_n += n
        for k, v in sums.items():
            all_sums[k] = all_sums.get(k, 0.0) + v
        print("   %s: %d ok, %d failed in %.1fs; %s" % (os.path.basename(s), ok, bad,
                                                      time.time() - t0, fmt_times(n, sums)),
              flush=True)
        passed += ok
        failed += bad
    os.unlink(times_path)
    print("   all: %.1fs; %s" % (time.time() - run_t0, fmt_times(all_n, all_sums)))
    print("%s: %d passed, %d failed" % (os.environ.get("CC_SUITE", "integration"), passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
