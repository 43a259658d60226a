"""Device API keys across the HTTP API and the real broker (mosquitto + coldchain_auth):
a key made by POST /api/devices connects; after POST /api/devices/:id/regenerate-key the
old key is refused at the broker on a new connection and over HTTP, the new key is
accepted by both, and a reading published with it is stored by ingestd."""
import json
import time

from apitest import NO_LIMITS, Cases, Stack, expect, expect_error, token

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True


def main():
    cases = Cases()
    with Stack(ingestd=True, env=NO_LIMITS) as s:
        c1 = token(s, "customer1")
        state = {}

        def new_device_connects():
            st, _, d = s.http("POST", "/api/devices", {"coldCellId": 1,
                                                       "serialNumber": "CC-KEY-0001"}, token=c1)
            expect(st == 201, (st, d))
            state.update(id=d["id"], serial=d["serialNumber"], old=d["apiKey"])
            cl = s.mqtt_client(d["serialNumber"], d["apiKey"])
            cl.disconnect()
            cl.loop_stop()
        cases.run("created_key_accepted_at_broker", new_device_connects)

        def regenerate():
            st, _, d = s.http("POST", "/api/devices/%d/regenerate-key" % state["id"], token=c1)
            expect(st == 200 and d["apiKey"] != state["old"], (st, d))
            state["new"] = d["apiKey"]
        cases.run("regenerate_key", regenerate)

        def old_refused():
            try:
                cl = s.mqtt_client(state["serial"], state["old"])
            except ConnectionRefusedError:
                return
            cl.disconnect()
            cl.loop_stop()
            raise AssertionError("the old key still connects")
        cases.run("old_key_refused_at_broker_new_connection", old_refused)

        def new_accepted_and_stored():
            cl = s.mqtt_client(state["serial"], state["new"])
            try:
                info = cl.publish("devices/%s/readings" % state["serial"],
                                  json.dumps({"temperature": -18.5}), qos=1)
                info.wait_for_publish(timeout=10)
            finally:
                cl.disconnect()
                cl.loop_stop()
            deadline = time.time() + 15
            while time.time() < deadline:
                if s.scalar("SELECT count(*) FROM readings WHERE device_id = ?",
                            (state["id"],)) == 1:
                    return
                time.sleep(0.1)
            raise AssertionError("the reading published with the new key was not stored")
        cases.run("new_key_accepted_at_broker_and_reading_stored", new_accepted_and_stored)

        def http_keys():
            path = "/api/readings/devices/%s/readings" % state["serial"]
            expect_error(s.http("POST", path, {"temperature": -18.0},
                                headers={"x-device-key": state["old"]}), 401, "UNAUTHORIZED")
            st, _, body = s.http("POST", path, {"temperature": -18.0},
                                 headers={"x-device-key": state["new"]})
            expect(st == 201, (st, body))
        cases.run("old_key_refused_new_key_accepted_over_http", http_keys)

        def seeded_device():
            serial = "CC-FRZ-0001"
            key = s.keys[serial]
            cl = s.mqtt_client(serial, key)
            cl.disconnect()
            cl.loop_stop()
            st, _, d = s.http("POST", "/api/devices/1/regenerate-key", token=token(s, "tech"))
            expect(st == 200, (st, d))
            try:
                cl = s.mqtt_client(serial, key)
            except ConnectionRefusedError:
                pass
            else:
                cl.disconnect()
                cl.loop_stop()
                raise AssertionError("the seeded key still connects")
            cl = s.mqtt_client(serial, d["apiKey"])
            cl.disconnect()
            cl.loop_stop()
        cases.run("seeded_device_key_regenerated_by_technician", seeded_device)

        def deleted_device_refused():
            st, _, _ = s.http("DELETE", "/api/devices/%d" % state["id"], token=c1)
            expect(st == 204, st)
            try:
                cl = s.mqtt_client(state["serial"], state["new"])
            except ConnectionRefusedError:
                return
            cl.disconnect()
            cl.loop_stop()
            raise AssertionError("a deleted device still connects")
        cases.run("deleted_device_refused_at_broker", deleted_device_refused)
    cases.exit()


if __name__ == "__main__":
    main()
