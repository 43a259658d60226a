"""QoS 1 ingest: a message is acknowledged to the broker only after ingestd has journaled it
(issue 13; README "Architecture / Durability").

ingestd receives with libmosquitto in threaded mode, whose PUBACK is only queued while the
message callback runs and is written by ingestd's own loop after the read round
(ingestd/mqtt.h). That is how libmosquitto 2.0.x behaves, not a documented promise, so these
cases pin it with the real daemon, traced by strace (its fault injection holds a thread in
a system call):
- held before the journal's writev: kill -9 -> the broker sends the message again to the
  next ingestd, which stores it once (with Paho's early PUBACK it was lost);
- held after the writev returned, before the round's PUBACKs are written: kill -9 -> stored
  once (journal replay and redelivery meet in the unique index);
- the order of system calls: the journal writev comes before the socket write of the PUBACK,
  and with INGEST_FSYNC=1 an fdatasync comes between them;
- a read round of several messages (queued in ingestd's socket while it is stopped): ONE
  journal writev for all of them, before any of their PUBACKs, FIONREAD not once per
  message (ingestd/mqtt.c read_round), and fewer socket read(2)s and PUBACK write(2)s
  than messages (ingestd/sockbuf.c: libmosquitto's byte-sized header reads served from one
  buffer, its PUBACKs gathered into one write).
"""
import json
import os
import re
import signal
import subprocess
import time

import paho.mqtt.client as mqtt

from harness import Cases, Stack, wait_for

HOLD_US = 60 * 1000 * 1000  # strace holds the thread this long: far beyond the test


def device(st):
    serial = sorted(st.keys)[0]
    c = mqtt.Client(client_id=serial, clean_session=True)  # SPEC §3: client id = serial
    c.username_pw_set(serial, st.keys[serial])
    c.connect("127.0.0.1", st.mqtt_port, keepalive=10)
    c.loop_start()
    return serial, c


def publish(c, serial, ts):
    info = c.publish("devices/%s/readings" % serial,
                     json.dumps({"temperature": -18.5, "ts": ts}), qos=1)
    info.wait_for_publish(10)
    assert info.is_published(), "the broker did not acknowledge the device's publish"


def count(st, serial, ts):
    return st.scalar("SELECT COUNT(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                     "WHERE d.serial_number = ? AND r.ts = ?", (serial, ts))


def trace(st, log, *args):
    """strace attached to every thread of the running ingestd; returns the Popen."""
    pid = st.procs["ingestd"].pid
    p = subprocess.Popen(["strace", "-f", "-qq", "-o", log, "-p", str(pid)] + list(args),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    # Attached once the process's tracer is strace (every thread is seized at once).
    wait_for(lambda: tracer_of(pid) == p.pid, timeout=10, what="strace attached")
    time.sleep(0.3)
    return p


def tracer_of(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def held_thread(pid):
    """True while one of the process's threads sits in a tracing stop (strace's delay)."""
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "t":
                    return True
    except OSError:
        pass
    return False


def stop_trace(p):
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait(10)


def kill_inside(st, inject, what):
    serial, c = device(st)
    base = int(time.time() * 1000) - 3600 * 1000
    try:
        publish(c, serial, base)  # ingestd is connected and subscribed
        wait_for(lambda: count(st, serial, base) == 1, timeout=20, what="first reading")
        log = os.path.join(st.dir, "strace-%s.log" % what)
        tr = trace(st, log, "-e", "trace=writev", "-e", "inject=writev:" + inject)
        try:
            publish(c, serial, base + 1)
            pid = st.procs["ingestd"].pid
            wait_for(lambda: held_thread(pid), timeout=10, what="ingestd held in writev")
            time.sleep(1.0)  # a PUBACK written early would have gone by now
            assert count(st, serial, base + 1) == 0, "stored while the callback was held"
            os.kill(pid, signal.SIGKILL)
        finally:
            stop_trace(tr)  # a traced process held in a stop is reaped once strace is gone
        st.kill("ingestd")
        st.start_ingestd()
        wait_for(lambda: count(st, serial, base + 1) >= 1, timeout=30,
                 what="the held message stored after the restart")
        time.sleep(1.0)  # a second copy would show now
        n = count(st, serial, base + 1)
        assert n == 1, "stored %d times" % n
    finally:
        c.disconnect()
        c.loop_stop()


def journal_writes(lines):
    """Indexes of the writev calls on a journal segment (strace -y names the file)."""
    return [i for i, l in enumerate(lines)
            if re.search(r'\bwritev\(\d+<[^>]*\.journal/journal\.[0-9a-f]+>', l)]


def puback_writes(lines):
    """Indexes of the PUBACK writes: fixed header 0x40, remaining length 2 (strace -x prints
    \\x40\\x02; -y puts the socket's name after the descriptor)."""
    return [i for i, l in enumerate(lines) if re.search(r'\bwrite\(\d+(<.*?>)?, "\\x40\\x02', l)]


def one_round(st, n):
    """Stops ingestd, publishes n readings (they wait in its socket), traces it and lets it
    go on: it reads them in one round. Returns the trace's lines."""
    serial, c = device(st)
    base = int(time.time() * 1000) - 10800 * 1000
    pid = st.procs["ingestd"].pid
    try:
        publish(c, serial, base)
        wait_for(lambda: count(st, serial, base) == 1, timeout=20, what="first reading")
        log = os.path.join(st.dir, "strace-round.log")
        tr = None
        os.kill(pid, signal.SIGSTOP)
        try:
            for k in range(1, n + 1):
                publish(c, serial, base + k)  # the broker acknowledges the device at once
            time.sleep(0.5)  # the broker's sends to ingestd are in its socket by now
            tr = trace(st, log, "-e", "trace=writev,write,ioctl,read", "-x", "-y", "-s", "16")
        finally:
            os.kill(pid, signal.SIGCONT)
        try:
            wait_for(lambda: st.scalar(
                "SELECT COUNT(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                "WHERE d.serial_number = ? AND r.ts > ? AND r.ts <= ?",
                (serial, base, base + n)) == n, timeout=20, what="the round's readings stored")
            time.sleep(0.3)
        finally:
            if tr is not None:
                stop_trace(tr)
    finally:
        c.disconnect()
        c.loop_stop()
    with open(log) as f:
        return f.read().splitlines()


def syscall_order(st, env_fsync):
    """Publishes one reading under strace and returns the indexes of the journal writev,
    the fdatasync (or None) and the PUBACK write in the trace."""
    serial, c = device(st)
    base = int(time.time() * 1000) - 7200 * 1000
    try:
        publish(c, serial, base)
        wait_for(lambda: count(st, serial, base) == 1, timeout=20, what="first reading")
        log = os.path.join(st.dir, "strace-order-%d.log" % env_fsync)
        tr = trace(st, log, "-e", "trace=writev,write,fdatasync", "-x", "-y", "-s", "16")
        try:
            publish(c, serial, base + 1)
            wait_for(lambda: count(st, serial, base + 1) == 1, timeout=20, what="traced reading")
            time.sleep(0.3)
        finally:
            stop_trace(tr)
    finally:
        c.disconnect()
        c.loop_stop()
    with open(log) as f:
        lines = f.read().splitlines()
    journal = journal_writes(lines)
    assert journal, "no journal writev in the trace:\n" + "\n".join(lines[-20:])
    j = journal[0]
    pubacks = [i for i in puback_writes(lines) if i > j]
    assert pubacks, "no PUBACK written after the journal writev:\n" + "\n".join(lines[-20:])
    early = [i for i in puback_writes(lines) if i < j]
    syncs = [i for i, l in enumerate(lines) if "fdatasync(" in l and j < i < pubacks[0]]
    return j, early, syncs, pubacks[0]


def main():
    cases = Cases()

    def before_journal():
        with Stack(apid=False) as st:
            kill_inside(st, "delay_enter=%d" % HOLD_US, "enter")
    cases.run("kill -9 while the callback waits to journal: the broker redelivers, stored once",
              before_journal)

    def after_journal():
        with Stack(apid=False) as st:
            kill_inside(st, "delay_exit=%d" % HOLD_US, "exit")
    cases.run("kill -9 after the journal write, inside the callback: stored once",
              after_journal)

    def order_plain():
        with Stack(apid=False) as st:
            j, early, syncs, ack = syscall_order(st, 0)
            assert not syncs, "fdatasync without INGEST_FSYNC: %r" % syncs
            assert j < ack
    cases.run("PUBACK written after the journal writev", order_plain)

    def order_fsync():
        with Stack(apid=False, env={"INGEST_FSYNC": "1"}) as st:
            j, early, syncs, ack = syscall_order(st, 1)
            assert syncs, "INGEST_FSYNC=1: no fdatasync between the journal write and the PUBACK"
    cases.run("INGEST_FSYNC=1: journal writev, fdatasync, then the PUBACK", order_fsync)

    def round_of_many():
        n = 10
        with Stack(apid=False) as st:
            lines = one_round(st, n)
        tail = "\n".join(lines[-30:])
        journal = journal_writes(lines)
        pubacks = puback_writes(lines)
        assert len(journal) == 1, "%d journal writevs for one round of %d:\n%s" % (
            len(journal), n, tail)
        # ingestd/sockbuf.c: the round's PUBACKs (4 bytes each) leave in one write(2).
        sizes = [re.search(r'= (\d+)$', lines[i]) for i in pubacks]
        acked = sum(int(m.group(1)) // 4 for m in sizes if m)
        assert acked >= n, "%d PUBACKs for %d messages:\n%s" % (acked, n, tail)
        assert len(pubacks) < n, "%d PUBACK writes for %d messages:\n%s" % (
            len(pubacks), n, tail)
        assert min(pubacks) > journal[0], "a PUBACK before the round's journal writev:\n" + tail
        fionread = [l for l in lines if "FIONREAD" in l]
        assert len(fionread) < n, "%d FIONREAD for %d messages:\n%s" % (len(fionread), n, tail)
        # ingestd/sockbuf.c: libmosquitto's reads of a packet (header byte, length bytes,
        # the rest: 3-4 each) come from one read(2) of the whole round.
        fd = re.search(r'\bwrite\((\d+)', lines[pubacks[0]]).group(1)
        reads = [l for l in lines if re.search(r'\bread\(%s\b' % fd, l)]
        assert len(reads) < n, "%d socket reads for %d messages:\n%s" % (
            len(reads), n, "\n".join(reads[-30:]))
    cases.run("a read round of many messages: one journal writev before all their PUBACKs",
              round_of_many)
    cases.exit()


if __name__ == "__main__":
    main()
