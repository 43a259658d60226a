"""Runs every tests/integration/test_*.py (or those named on the command line) and prints
"integration: N passed, M failed". A case is a line "ok ..." or "FAIL ..."; a script that
exits non-zero without printing a FAIL line counts as one failure."""
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = int(os.environ.get("CC_TEST_TIMEOUT", "600"))


def main():
    scripts = [os.path.abspath(a) for a in sys.argv[1:]] or sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    passed = failed = 0
    for s in scripts:
        t0 = time.time()
        print("== %s" % os.path.basename(s), flush=True)
        try:
            p = subprocess.run(["/usr/bin/python3", "-u", s], capture_output=True, text=True,
                               timeout=TIMEOUT_S, cwd=os.path.dirname(os.path.dirname(HERE)))
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
        print("   %s: %d ok, %d failed in %.1fs" % (os.path.basename(s), ok, bad, time.time() - t0),
              flush=True)
        passed += ok
        failed += bad
    print("%s: %d passed, %d failed" % (os.environ.get("CC_SUITE", "integration"), passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
