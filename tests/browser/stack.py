"""Starts one coldchain stack for the browser test (tests/integration/harness.py: mosquitto,
ingestd and apid on free loopback ports, seeded database) and talks over stdin/stdout.

stdout, first line: {"http": port, "mqtt": port, "dir": tmpdir, "serials": [...]} once ready.
stdin, one command a line, each answered with one JSON line on stdout:
  publish <serial> <json>   publishes <json> to devices/<serial>/readings (QoS 1) with the
                            device's own credentials, waits for the PUBACK -> {"ok": true}
  logs                      prints the daemons' last log lines (to stderr) -> {"ok": true}
The stack stops when stdin closes (or on "quit")."""
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

# The browser logs in a few times and polls; the default limits (100 / 5 per 15 min) are
# for real clients, not for one test address hammering its own stack.
ENV = {"RATE_LIMIT_API": "100000", "RATE_LIMIT_AUTH": "1000", "LOG_LEVEL": "info"}


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def publish(st, clients, serial, payload):
    if serial not in st.keys:
        return {"ok": False, "error": "unknown serial %s" % serial}
    c = clients.get(serial)
    if c is None:
        c = st.mqtt_client(serial, st.keys[serial])
        clients[serial] = c
    info = c.publish("devices/%s/readings" % serial, payload, qos=1)
    info.wait_for_publish(timeout=10)
    return {"ok": info.is_published()}


def main():
    clients = {}
    with harness.Stack(env=ENV) as st:
        reply({"http": st.http_port, "mqtt": st.mqtt_port, "dir": st.dir,
               "serials": sorted(st.keys)})
        try:
            for line in sys.stdin:
                cmd, _, rest = line.strip().partition(" ")
                try:
                    if cmd == "publish":
                        serial, _, payload = rest.partition(" ")
                        reply(publish(st, clients, serial, payload))
                    elif cmd == "logs":
                        sys.stdout, saved = sys.stderr, sys.stdout
                        try:
                            st.dump_logs()
                        finally:
                            sys.stdout = saved
                        reply({"ok": True})
                    elif cmd == "quit":
                        break
                    elif cmd:
                        reply({"ok": False, "error": "unknown command %s" % cmd})
                except Exception as e:  # noqa: BLE001 - answer, keep the stack up
                    traceback.print_exc(file=sys.stderr)
                    reply({"ok": False, "error": str(e)})
        finally:
            for c in clients.values():
                c.loop_stop()
                c.disconnect()


if __name__ == "__main__":
    main()
