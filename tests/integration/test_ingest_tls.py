"""ingestd over TLS: MQTT_URL=ssl://host:port makes ingestd connect to the broker's TLS
listener, verifying the broker's certificate against MQTT_TLS_CAFILE (README
"Configuration"); a certificate from another CA is refused and nothing is received."""
import json
import os
import subprocess
import time

import paho.mqtt.client as mqtt

from harness import Cases, Stack, wait_for

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True


def reading_stored(st, serial, ts):
    return st.scalar("SELECT COUNT(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                     "WHERE d.serial_number = ? AND r.ts = ?", (serial, ts)) == 1


def publish(st, serial, ts):
    c = mqtt.Client(client_id=serial, clean_session=True)
    c.username_pw_set(serial, st.keys[serial])
    c.connect("127.0.0.1", st.mqtt_port, keepalive=10)
    c.loop_start()
    try:
        info = c.publish("devices/%s/readings" % serial,
                         json.dumps({"temperature": -18.0, "ts": ts}), qos=1)
        info.wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


def main():
    cases = Cases()

    def over_tls():
        st = Stack(apid=False, ingestd=False, tls=True)
        with st:
            st.extra_env.update(MQTT_URL="ssl://localhost:%d" % st.mqtt_tls_port,
                                MQTT_TLS_CAFILE=os.path.join(st.tls_dir, "ca.crt"))
            st.start_ingestd()
            serial = sorted(st.keys)[0]
            ts = int(time.time() * 1000) - 60000
            publish(st, serial, ts)
            wait_for(lambda: reading_stored(st, serial, ts), timeout=20,
                     what="reading stored through the TLS connection")
    cases.run("MQTT_URL=ssl://: ingestd verifies the broker and receives over TLS", over_tls)

    def wrong_ca():
        st = Stack(apid=False, ingestd=False, tls=True)
        with st:
            other = os.path.join(st.dir, "other-ca")
            subprocess.run(["sh", os.path.join(os.path.dirname(__file__), "..", "..", "tools",
                                               "devca.sh"), other],
                           check=True, capture_output=True)
            st.extra_env.update(MQTT_URL="ssl://localhost:%d" % st.mqtt_tls_port,
                                MQTT_TLS_CAFILE=os.path.join(other, "ca.crt"))
            st.start_ingestd(wait=False)
            time.sleep(3)
            with open(st.logs["ingestd"], "rb") as f:
                log = f.read()
            assert b"broker_connected" not in log, "connected to a broker it cannot verify"
            assert b"broker_connect_failed" in log or b"broker_connection_lost" in log, log[-800:]
            assert st.procs["ingestd"].poll() is None, "ingestd exited instead of retrying"
    cases.run("a broker certificate from another CA is refused (and retried)", wrong_ca)
    cases.exit()


if __name__ == "__main__":
    main()
