"""The broker's queue for ingestd's session is bounded (issue 13 "Back-pressure", README):
max_queued_bytes = MQTT_QUEUE_BYTES. With ingestd stopped, a device publishes more than the
bound holds; once ingestd is back, what the bound held is stored and the rest was dropped
by the broker instead of growing its memory. (With the bound removed all 600 arrive.)"""
import json
import time

import paho.mqtt.client as mqtt

from harness import Cases, Stack, wait_for

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

QUEUE_BYTES = 20000   # MQTT_QUEUE_BYTES for this broker
PUBLISHES = 600       # ~55 bytes of payload each: ~33,000 bytes, more than the bound


def main():
    cases = Cases()

    def bounded():
        with Stack(apid=False, env={"MQTT_QUEUE_BYTES": str(QUEUE_BYTES)}) as st:
            assert st.stop("ingestd") == 0  # its persistent session stays with the broker
            serial = sorted(st.keys)[0]
            c = mqtt.Client(client_id=serial, clean_session=True)
            c.username_pw_set(serial, st.keys[serial])
            c.max_inflight_messages_set(100)
            c.max_queued_messages_set(0)
            c.connect("127.0.0.1", st.mqtt_port, keepalive=30)
            c.loop_start()
            base = int(time.time() * 1000) - 3 * 3600 * 1000
            size = 0
            try:
                infos = []
                for i in range(PUBLISHES):
                    body = json.dumps({"temperature": -18.25, "humidity": 40.5, "ts": base + i})
                    size = len(body)
                    infos.append(c.publish("devices/%s/readings" % serial, body, qos=1))
                for info in infos:
                    info.wait_for_publish(10)
                    assert info.is_published(), "the broker did not acknowledge a publish"
            finally:
                c.disconnect()
                c.loop_stop()
            st.start_ingestd()
            held = QUEUE_BYTES // size
            q = ("SELECT COUNT(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                 "WHERE d.serial_number = ? AND r.ts >= ? AND r.ts < ?")
            args = (serial, base, base + PUBLISHES)
            wait_for(lambda: st.scalar(q, args) >= held // 2, timeout=30,
                     what="the queued readings stored")
            time.sleep(2)  # anything more that was queued arrives now
            n = st.scalar(q, args)
            print("    %d published while ingestd was stopped, %d bytes each; bound %d bytes "
                  "(%d messages); %d stored" % (PUBLISHES, size, QUEUE_BYTES, held, n))
            assert n <= held + 2, "stored %d: more than the bound holds (%d)" % (n, held)
            assert n >= held // 2, "stored %d: the bound should hold ~%d" % (n, held)
            assert n < PUBLISHES
    cases.run("MQTT_QUEUE_BYTES bounds ingestd's backlog in the broker; what fits is stored",
              bounded)
    cases.exit()


if __name__ == "__main__":
    main()
