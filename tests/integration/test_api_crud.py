"""Every management endpoint's success path against the real apid, the audit log, field
errors and conflicts, HTTP ingestion, and the protocol edges: /health, /ready, 404,
405, BAD_JSON, 413 (Content-Length and chunked), CORS preflight, keep-alive."""
import json
import os
import re
import subprocess

import harness

from apitest import (NO_LIMITS, Cases, Stack, expect, expect_error, raw_http, token)

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def audit_rows(s, entity, entity_id):
    return s.sql("SELECT action, actor_user_id, detail FROM audit_log WHERE entity = ? AND "
                 "entity_id = ? ORDER BY id", (entity, entity_id))


def main():
    cases = Cases()
    with Stack(ingestd=False, env=dict(NO_LIMITS, CORS_ORIGINS="https://dash.example")) as s:
        admin = token(s, "admin")
        c1 = token(s, "customer1")
        tech = token(s, "tech")
        ids = {}

        def health_ready():
            st, _, body = s.http("GET", "/health")
            expect(st == 200 and body == {"status": "ok"}, (st, body))
            st, _, body = s.http("GET", "/ready")
            expect(st == 200 and body["status"] == "ready", (st, body))
        cases.run("health_and_ready", health_ready)

        def unknown_route():
            for path in ("/nope", "/api/devices/abc", "/api/devices/1/extra", "/api/users/0"):
                expect_error(s.http("GET", path, token=admin), 404, "NOT_FOUND")
        cases.run("unknown_route_404_json", unknown_route)

        def wrong_method():
            st, headers, body = s.http("DELETE", "/api/devices", token=admin)
            expect_error((st, headers, body), 405, "METHOD_NOT_ALLOWED")
            expect(headers.get("Allow") == "GET, POST", headers)
            expect_error(s.http("POST", "/health"), 405, "METHOD_NOT_ALLOWED")
        cases.run("wrong_method_405_json", wrong_method)

        def bad_json():
            for raw in (b"{", b"not json", b'{"name": "x"} trailing', b""):
                expect_error(s.http("POST", "/api/locations", token=c1, raw=raw), 400,
                             "BAD_JSON")
            expect_error(s.http("POST", "/api/locations", token=c1, raw=b"[1,2]"), 400,
                         "VALIDATION_ERROR")
        cases.run("malformed_json_400_BAD_JSON", bad_json)

        def too_large_content_length():
            # Only the headers go out: the server must answer without waiting for the body.
            req = ("POST /api/locations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n" % c1)
            st, headers, body = raw_http(s, req.encode(), read_timeout=5)
            expect(st == 413, (st, body))
            expect(json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE", body)
            expect(headers.get("connection") == "close", headers)
        cases.run("body_over_64KiB_413_without_reading", too_large_content_length)

        def too_large_exact_edges():
            ok = b'{"name":"' + b"x" * (65536 - 11) + b'"}'
            expect(len(ok) == 65536, len(ok))
            st, _, body = s.http("POST", "/api/locations", token=c1, raw=ok)
            expect(st == 400 and body["error"]["code"] == "VALIDATION_ERROR", (st, body))
            expect_error(s.http("POST", "/api/locations", token=c1, raw=ok[:-2] + b'x"}'), 413,
                         "PAYLOAD_TOO_LARGE")
        cases.run("body_64KiB_read_64KiB_plus_1_refused", too_large_exact_edges)

        def too_large_chunked():
            chunk = b"x" * 8192
            body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(12)) + b"0\r\n\r\n"
            req = ("POST /api/locations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n" % c1).encode() + body
            st, _, out = raw_http(s, req)
            expect(st == 413, (st, out))
        cases.run("chunked_body_over_64KiB_413", too_large_chunked)

        def chunked_small_ok():
            payload = json.dumps({"name": "Chunked site"}).encode()
            req = ("POST /api/locations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n" % c1).encode()
            req += b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
            st, _, out = raw_http(s, req)
            expect(st == 201 and json.loads(out)["customerId"] == 2, (st, out))
        cases.run("chunked_small_body_accepted", chunked_small_ok)

        def cors():
            st, h, _ = raw_http(s, b"OPTIONS /api/devices HTTP/1.1\r\nHost: x\r\n"
                                   b"Origin: https://dash.example\r\n"
                                   b"Access-Control-Request-Method: POST\r\n"
                                   b"Access-Control-Request-Headers: authorization\r\n\r\n")
            expect(st == 204, st)
            expect(h.get("access-control-allow-origin") == "https://dash.example", h)
            expect("POST" in h.get("access-control-allow-methods", ""), h)
            expect("Authorization" in h.get("access-control-allow-headers", ""), h)
            st, h, _ = raw_http(s, b"OPTIONS /api/devices HTTP/1.1\r\nHost: x\r\n"
                                   b"Origin: https://evil.example\r\n"
                                   b"Access-Control-Request-Method: POST\r\n\r\n")
            expect(st == 403 and "access-control-allow-origin" not in h, (st, h))
            st, h, _ = s.http("GET", "/api/devices", token=c1,
                              headers={"Origin": "https://dash.example"})
            expect(st == 200 and h.get("Access-Control-Allow-Origin") == "https://dash.example",
                   h)
            st, h, _ = s.http("GET", "/api/devices", token=c1,
                              headers={"Origin": "https://evil.example"})
            expect(st == 200 and "Access-Control-Allow-Origin" not in h, h)
        cases.run("cors_preflight_and_origins", cors)

        def keep_alive():
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=10)
            for _ in range(3):
                conn.request("GET", "/api/devices", headers={"Authorization": "Bearer " + c1})
                r = conn.getresponse()
                expect(r.status == 200, r.status)
                r.read()
            conn.request("GET", "/nope")
            r = conn.getresponse()
            expect(r.status == 404, r.status)
            r.read()
            conn.request("GET", "/health")
            expect(conn.getresponse().status == 200, "keep-alive broken after an error")
            conn.close()
        cases.run("keep_alive_across_answers", keep_alive)

        # -- users (admin) ------------------------------------------------------------------
        def users_crud():
            st, _, body = s.http("GET", "/api/users", token=admin)
            expect(st == 200 and body["total"] == 4 and len(body["items"]) == 4, body)
            for u in body["items"]:
                expect(set(u) >= {"id", "email", "role", "name", "createdAt"}, u)
                expect(not any("hash" in k.lower() or "password" in k.lower() for k in u), u)
            st, _, u = s.http("POST", "/api/users", {"email": "New.Customer@example.com",
                                                     "password": "newcustomer1",
                                                     "role": "CUSTOMER", "name": "New Co"},
                              token=admin)
            expect(st == 201 and u["role"] == "CUSTOMER" and ISO.match(u["createdAt"]), (st, u))
            ids["user"] = u["id"]
            st, _, one = s.http("GET", "/api/users/%d" % u["id"], token=admin)
            expect(st == 200 and one == u, (one, u))
            st, _, p = s.http("PATCH", "/api/users/%d" % u["id"], {"name": "New Co Ltd",
                                                                   "password": "changed-pass1"},
                              token=admin)
            expect(st == 200 and p["name"] == "New Co Ltd" and "passwordChanged" not in p, p)
            st, _, lg = s.http("POST", "/api/auth/login", {"email": "new.customer@example.com",
                                                           "password": "changed-pass1"})
            expect(st == 200, (st, lg))
            rows = audit_rows(s, "user", u["id"])
            expect([r[0] for r in rows][:2] == ["create", "update"], rows)
            detail = json.loads(rows[1][2])
            expect(detail["old"]["name"] == "New Co" and detail["new"]["name"] == "New Co Ltd",
                   detail)
            expect(detail["new"].get("passwordChanged") is True, detail)
            expect(rows[0][1] == 4, "actor is not the admin: %r" % (rows,))
            all_detail = " ".join(r[0] or "" for r in s.sql("SELECT detail FROM audit_log"))
            expect("changed-pass1" not in all_detail and "scrypt$" not in all_detail,
                   "secret in audit")
        cases.run("users_list_create_get_patch", users_crud)

        def users_errors():
            st, _, body = s.http("POST", "/api/users", {"email": "bad", "password": "short",
                                                        "role": "KING"}, token=admin)
            expect_error((st, None, body), 400, "VALIDATION_ERROR")
            fields = sorted(d["field"] for d in body["error"]["details"])
            expect(fields == ["email", "name", "password", "role"], body)
            expect_error(s.http("POST", "/api/users", {"email": "CUSTOMER1@example.com",
                                                       "password": "password123",
                                                       "role": "CUSTOMER", "name": "Dup"},
                                token=admin), 409, "CONFLICT")
            expect_error(s.http("PATCH", "/api/users/%d" % ids["user"],
                                {"email": "tech@example.com"}, token=admin), 409, "CONFLICT")
            expect_error(s.http("PATCH", "/api/users/4", {"role": "CUSTOMER"}, token=admin), 409,
                         "CONFLICT")
            expect_error(s.http("DELETE", "/api/users/4", token=admin), 409, "CONFLICT")
            expect_error(s.http("GET", "/api/users/999", token=admin), 404, "NOT_FOUND")
        cases.run("users_validation_and_conflicts", users_errors)

        def links():
            uid = ids["user"]
            st, _, _ = s.http("PUT", "/api/users/1/customers/%d" % uid, token=admin)
            expect(st == 204, st)
            st, _, _ = s.http("PUT", "/api/users/1/customers/%d" % uid, token=admin)
            expect(st == 204, "link is not idempotent")
            st, _, me = s.http("GET", "/api/users/1", token=admin)
            expect(uid in me["customerIds"], me)
            expect_error(s.http("PUT", "/api/users/2/customers/3", token=admin), 400,
                         "VALIDATION_ERROR")
            expect_error(s.http("PUT", "/api/users/1/customers/999", token=admin), 404,
                         "NOT_FOUND")
            st, _, _ = s.http("DELETE", "/api/users/1/customers/%d" % uid, token=admin)
            expect(st == 204, st)
            expect_error(s.http("DELETE", "/api/users/1/customers/%d" % uid, token=admin), 404,
                         "NOT_FOUND")
            acts = [r[0] for r in s.sql("SELECT action FROM audit_log WHERE "
                                        "entity = 'technician_customer'")]
            expect(acts == ["link", "unlink"], acts)
        cases.run("technician_customer_link_unlink", links)

        # -- locations, cells, devices ------------------------------------------------------
        def locations():
            st, _, loc = s.http("POST", "/api/locations", {"name": "Depot", "address": "1 Road",
                                                           "timezone": "Europe/Berlin"},
                                token=c1)
            expect(st == 201 and loc["customerId"] == 2 and loc["timezone"] == "Europe/Berlin",
                   (st, loc))
            ids["loc"] = loc["id"]
            st, _, loc2 = s.http("POST", "/api/locations", {"name": "Depot 2",
                                                            "customerId": 3}, token=tech)
            expect(st == 201 and loc2["customerId"] == 3 and loc2["timezone"] == "UTC", loc2)
            st, _, one = s.http("GET", "/api/locations/%d" % loc["id"], token=c1)
            expect(st == 200 and one == loc, one)
            st, _, p = s.http("PATCH", "/api/locations/%d" % loc["id"], {"address": "2 Road"},
                              token=c1)
            expect(st == 200 and p["address"] == "2 Road" and p["name"] == "Depot", p)
            st, _, body = s.http("POST", "/api/locations", {"name": "", "timezone": "Mars/Base",
                                                            "address": 7}, token=c1)
            expect_error((st, None, body), 400, "VALIDATION_ERROR")
            fields = sorted(d["field"] for d in body["error"]["details"])
            expect(fields == ["address", "name", "timezone"], body)
            expect_error(s.http("POST", "/api/locations", {"name": "No owner"}, token=admin), 400,
                         "VALIDATION_ERROR")
            st, _, _ = s.http("DELETE", "/api/locations/%d" % loc2["id"], token=tech)
            expect(st == 204, st)
            expect_error(s.http("GET", "/api/locations/%d" % loc2["id"], token=tech), 404,
                         "NOT_FOUND")
            acts = [r[0] for r in audit_rows(s, "location", loc2["id"])]
            expect(acts == ["create", "delete"], acts)
        cases.run("locations_crud", locations)

        def coldcells():
            st, _, c = s.http("POST", "/api/coldcells", {"locationId": ids["loc"],
                                                         "name": "Vaccine fridge",
                                                         "minTemp": 2, "maxTemp": 8},
                              token=c1)
            expect(st == 201 and c["hysteresis"] == 0.5 and c["alarmDelayS"] == 0, (st, c))
            ids["cell"] = c["id"]
            st, _, p = s.http("PATCH", "/api/coldcells/%d" % c["id"],
                              {"maxTemp": 6, "hysteresis": 0.2, "alarmDelayS": 300}, token=c1)
            expect(st == 200 and p["maxTemp"] == 6 and p["alarmDelayS"] == 300, p)
            st, _, body = s.http("PATCH", "/api/coldcells/%d" % c["id"], {"minTemp": 7},
                                 token=c1)
            expect_error((st, None, body), 400, "VALIDATION_ERROR")
            expect(body["error"]["details"][0]["field"] == "maxTemp", body)
            st, _, body = s.http("POST", "/api/coldcells", {"locationId": ids["loc"], "name": 5,
                                                            "minTemp": "cold", "maxTemp": 500,
                                                            "hysteresis": -1,
                                                            "alarmDelayS": 1.5}, token=c1)
            expect_error((st, None, body), 400, "VALIDATION_ERROR")
            fields = sorted(d["field"] for d in body["error"]["details"])
            expect(fields == ["alarmDelayS", "hysteresis", "maxTemp", "minTemp", "name"], body)
            st, _, one = s.http("GET", "/api/coldcells/%d" % c["id"], token=tech)
            expect(st == 200 and one["minTemp"] == 2, one)
            st, _, lst = s.http("GET", "/api/coldcells?locationId=%d" % ids["loc"], token=c1)
            expect(st == 200 and [x["id"] for x in lst["items"]] == [c["id"]], lst)
        cases.run("coldcells_crud_and_thresholds", coldcells)

        def devices():
            st, _, d = s.http("POST", "/api/devices", {"coldCellId": ids["cell"],
                                                       "serialNumber": "CC-TEST-0001",
                                                       "firmwareVersion": "2.0.0"}, token=c1)
            expect(st == 201 and d["status"] == "NEVER_SEEN" and len(d["apiKey"]) == 64,
                   (st, d))
            expect(d["apiKeyPrefix"] == d["apiKey"][:8] and d["lastSeenAt"] is None, d)
            ids["dev"], ids["key"] = d["id"], d["apiKey"]
            st, _, one = s.http("GET", "/api/devices/%d" % d["id"], token=c1)
            expect(st == 200 and "apiKey" not in one and "apiKeyHash" not in one, one)
            st, _, lst = s.http("GET", "/api/devices", token=c1)
            expect(all("apiKey" not in x for x in lst["items"]), lst)
            expect(d["apiKey"] not in json.dumps(lst), "key leaked in list")
            st, _, p = s.http("PATCH", "/api/devices/%d" % d["id"], {"firmwareVersion": None},
                              token=c1)
            expect(st == 200 and p["firmwareVersion"] is None and "apiKey" not in p, p)
            expect_error(s.http("POST", "/api/devices", {"coldCellId": ids["cell"],
                                                         "serialNumber": "CC-FRZ-0001"},
                                token=c1), 409, "CONFLICT")
            st, _, body = s.http("POST", "/api/devices", {"serialNumber": "bad serial/#"},
                                 token=c1)
            expect_error((st, None, body), 400, "VALIDATION_ERROR")
            fields = sorted(d2["field"] for d2 in body["error"]["details"])
            expect(fields == ["coldCellId", "serialNumber"], body)
            st, _, r = s.http("POST", "/api/devices/%d/regenerate-key" % d["id"], token=c1)
            expect(st == 200 and len(r["apiKey"]) == 64 and r["apiKey"] != ids["key"], (st, r))
            expect(r["apiKeyPrefix"] == r["apiKey"][:8], r)
            ids["key"] = r["apiKey"]
            acts = [x[0] for x in audit_rows(s, "device", d["id"])]
            expect(acts == ["create", "update", "regenerate_key"], acts)
            details = " ".join(x[2] for x in audit_rows(s, "device", d["id"]))
            expect(ids["key"] not in details, "key in audit")
        cases.run("devices_crud_and_regenerate_key", devices)

        def ingest_http():
            path = "/api/readings/devices/CC-TEST-0001/readings"
            st, _, body = s.http("POST", path, {"temperature": 4.5, "humidity": 40},
                                 headers={"x-device-key": ids["key"]})
            expect(st == 201 and body["temperature"] == 4.5, (st, body))
            st, _, dev = s.http("GET", "/api/devices/%d" % ids["dev"], token=c1)
            expect(dev["status"] == "ONLINE" and dev["lastSeenAt"] is not None, dev)
            n = s.scalar("SELECT count(*) FROM readings WHERE device_id = ?", (ids["dev"],))
            expect(n == 1, n)
            st, _, body = s.http("POST", path, [{"temperature": 4.0, "ts": 1},
                                                {"temperature": "x"}],
                                 headers={"x-device-key": ids["key"]})
            expect_error((st, None, body), 400, "VALIDATION_ERROR")
            expect(len(body["error"]["details"]) >= 2, body)
            expect(s.scalar("SELECT count(*) FROM readings WHERE device_id = ?",
                            (ids["dev"],)) == 1, "partial batch stored")
            expect_error(s.http("POST", path, {"temperature": 4.0},
                                headers={"x-device-key": "0" * 64}), 401, "UNAUTHORIZED")
            expect_error(s.http("POST", path, {"temperature": 4.0}), 401, "UNAUTHORIZED")
            expect_error(s.http("POST", "/api/readings/devices/NOPE/readings",
                                {"temperature": 4.0}, headers={"x-device-key": ids["key"]}),
                         401, "UNAUTHORIZED")
            expect_error(s.http("POST", path, raw=b"{nope", headers={"x-device-key": ids["key"]}),
                         400, "BAD_JSON")
            st, _, body = s.http("POST", path, [{"temperature": 3.0}, {"temperature": 3.5,
                                                                       "ts": "2020-01-01"}][:1],
                                 headers={"x-device-key": ids["key"]})
            expect(st == 201 and body["accepted"] == 1, (st, body))
        cases.run("http_ingestion", ingest_http)

        def deletes_cascade():
            st, _, _ = s.http("DELETE", "/api/devices/%d" % ids["dev"], token=c1)
            expect(st == 204, st)
            expect(s.scalar("SELECT count(*) FROM readings WHERE device_id = ?",
                            (ids["dev"],)) == 0, "readings left")
            st, _, _ = s.http("DELETE", "/api/coldcells/%d" % ids["cell"], token=c1)
            expect(st == 204, st)
            st, _, _ = s.http("DELETE", "/api/locations/%d" % ids["loc"], token=c1)
            expect(st == 204, st)
            st, _, _ = s.http("DELETE", "/api/users/%d" % ids["user"], token=admin)
            expect(st == 204, st)
            expect_error(s.http("GET", "/api/users/%d" % ids["user"], token=admin), 404,
                         "NOT_FOUND")
            acts = s.sql("SELECT entity, action FROM audit_log WHERE action = 'delete'")
            for want in (("device", "delete"), ("cold_cell", "delete"), ("location", "delete"),
                         ("user", "delete")):
                expect(want in acts, (want, acts))
        cases.run("deletes_and_audit", deletes_cascade)

        def audit_append_only():
            try:
                s.sql("DELETE FROM audit_log")
            except harness.DB_ERRORS:
                pass
            else:
                raise AssertionError("audit_log rows could be deleted")
            expect(s.scalar("SELECT count(*) FROM audit_log") > 10, "audit rows missing")
        cases.run("audit_log_append_only", audit_append_only)

        def sigterm_exit_0():
            code = s.stop("apid")
            expect(code == 0, "apid exited %r on SIGTERM" % (code,))
            with open(s.logs["apid"]) as f:
                expect('"event":"stopped"' in f.read(), "no stopped line")
        cases.run("sigterm_stops_cleanly_exit_0", sigterm_exit_0)

        def bad_config_exit_2():
            for var, value in (("HTTP_PORT", "eighty"), ("RATE_LIMIT_API", "-5"),
                               ("ACCESS_TOKEN_TTL_S", "x")):
                p = subprocess.run([os.path.join(harness.BUILD, "apid")],
                                   env=s.env(**{var: value}), capture_output=True, text=True,
                                   timeout=20)
                expect(p.returncode == 2, (var, p.returncode, p.stderr))
                expect(var in p.stderr, (var, p.stderr))
        cases.run("bad_configuration_exit_2_naming_variable", bad_config_exit_2)
    cases.exit()


if __name__ == "__main__":
    main()
