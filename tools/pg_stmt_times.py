#!/usr/bin/python3
"""pg_stmt_times.py - server time per statement from a PostgreSQL log written with
log_min_duration_statement=0 (docs/queries.md): for each statement text, how many times
it was executed and the time its binds and executions took, in total and per execution.
Reads the log on stdin (a slice of it: tail -c +OFFSET server.log); prints the statements
whose text contains FILTER (default: readings_), slowest total first.
Usage: python3 tools/pg_stmt_times.py [FILTER] < slice.log"""
import re
import sys
from collections import defaultdict

LINE = re.compile(r"\[(\d+)\] LOG:  duration: ([0-9.]+) ms  (parse|bind|execute) [^:]*: (.*)")


def short(text):
    """The statement's opening and end: where the texts here differ."""
    return text if len(text) <= 150 else text[:70] + " ... " + text[-75:]


def main():
    want = sys.argv[1] if len(sys.argv) > 1 else "readings_"
    tot = defaultdict(lambda: {"parse": 0.0, "bind": 0.0, "execute": 0.0, "n": 0})
    for line in sys.stdin:
        m = LINE.search(line)
        if not m or want not in m.group(4):
            continue
        key = m.group(4).strip()
        t = tot[key]
        t[m.group(3)] += float(m.group(2))
        if m.group(3) == "execute":
            t["n"] += 1
    rows = sorted(tot.items(), key=lambda kv: -(kv[1]["bind"] + kv[1]["execute"]))
    print("%6s %10s %10s %10s %9s  %s" % ("execs", "bind_ms", "exec_ms", "parse_ms",
                                          "ms/exec", "statement"))
    for key, t in rows:
        n = max(t["n"], 1)
        print("%6d %10.3f %10.3f %10.3f %9.3f  %s" % (t["n"], t["bind"], t["execute"], t["parse"],
                                                      (t["bind"] + t["execute"]) / n, short(key)))


if __name__ == "__main__":
    main()
