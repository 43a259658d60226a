"""Runs every tests/integration/test_*.py (or those named on the command line) and prints
"integration: N passed, M failed". A case is a line "ok ..." or "FAIL ..."; a script that
exits non-zero without printing a FAIL line counts as one failure.

Side by side: a test file that says `RUN_SIDE_BY_SIDE = True` at its top level (it checks
no duration and no load-dependent bound, so another file's CPU use cannot fail it) runs
beside another such file, CC_TEST_JOBS (2) at a time, each in a port range of its own
(harness.free_port, CC_PORT_SLOT). Every other file runs alone, first. Each file's output is
printed whole when it ends, with its time and its stacks' start and stop seconds
(harness._record_start), then the sums for the run."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = int(os.environ.get("CC_TEST_TIMEOUT", "600"))
JOBS = int(os.environ.get("CC_TEST_JOBS", "2"))  # side-by-side files at a time; 1: one by one
STEPS = ("pg", "migrate", "seed", "broker", "ingestd", "apid", "stop")
SIDE_BY_SIDE_RE = re.compile(r"^RUN_SIDE_BY_SIDE = True\b", re.M)


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


def side_by_side(script):
    with open(script) as f:
        return SIDE_BY_SIDE_RE.search(f.read()) is not None


class Run:
    def __init__(self, tmp):
        self.tmp = tmp
        self.lock = threading.Lock()
        self.passed = self.failed = 0
        self.n, self.sums = 0, dict.fromkeys(STEPS, 0.0)
        # PostgreSQL: one initdb and migrate for the whole run; each stack's cluster starts
        # as a copy of it (harness.pg_template). Under /tmp: the postgres user must reach it.
        self.env = dict(os.environ)
        self.env.setdefault("CC_PG_TEMPLATE", os.path.join(tmp, "pgtemplate"))

    def one(self, script, slot):
        t0 = time.time()
        times_path = os.path.join(self.tmp, "stack-times-%d" % slot)
        open(times_path, "w").close()
        env = dict(self.env, CC_STACK_TIMES=times_path)
        if slot >= 0:
            env["CC_PORT_SLOT"] = str(slot)
        try:
            p = subprocess.run(["/usr/bin/python3", "-u", script], capture_output=True, text=True,
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
        text = ["== %s%s\n" % (os.path.basename(script), "" if slot < 0 else " (side by side)")]
        if rc != 0 or bad:
            text.append(out if out.endswith("\n") else out + "\n")
        else:
            text += ["  " + l + "\n" for l in out.splitlines()
                     if l.startswith("ok ") or l.startswith("bench:")]
        n, sums = stack_times(times_path)
        text.append("   %s: %d ok, %d failed in %.1fs; %s\n" % (
            os.path.basename(script), ok, bad, time.time() - t0, fmt_times(n, sums)))
        with self.lock:
            sys.stdout.write("".join(text))
            sys.stdout.flush()
            self.passed += ok
            self.failed += bad
            self.n += n
            for k, v in sums.items():
                self.sums[k] = self.sums.get(k, 0.0) + v

    def pool(self, scripts, jobs):
        queue = list(scripts)

        def worker(slot):
            while True:
                with self.lock:
                    if not queue:
                        return
                    s = queue.pop(0)
                self.one(s, slot)
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def main():
    scripts = [os.path.abspath(a) for a in sys.argv[1:]] or sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    run_t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="cc-run-", dir="/tmp")
    os.chmod(tmp, 0o755)
    run = Run(tmp)
    try:
        shared = [s for s in scripts if JOBS > 1 and side_by_side(s)]
        for s in scripts:
            if s not in shared:
                run.one(s, -1)
        run.pool(shared, min(JOBS, len(shared)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the template is halted: no server to stop
    print("   all: %.1fs; %s" % (time.time() - run_t0, fmt_times(run.n, run.sums)))
    print("%s: %d passed, %d failed" % (os.environ.get("CC_SUITE", "integration"), run.passed,
                                        run.failed))
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
