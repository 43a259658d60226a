"""The tenant-isolation matrix against the real apid and the SPEC §7 seed.

customer1 (user 2) owns locations 1-2, cold cells 1-3 and devices 1-3; customer2 (user 3)
owns location 3, cold cell 4 and device 4; the technician (user 1) is linked to both.
For every GET/PATCH/DELETE route (and regenerate-key), customer1 addressing each of
customer2's objects gets 404 and the object is unchanged; references to customer2's
objects in bodies get 404; the technician sees and changes both customers' objects; an
unlinked technician sees nothing; customers and technicians get 403 on admin routes."""
from apitest import NO_LIMITS, Cases, Stack, expect, expect_error, token

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

C1 = {"locations": [1, 2], "coldcells": [1, 2, 3], "devices": [1, 2, 3]}
C2 = {"locations": [3], "coldcells": [4], "devices": [4]}
PATCH_BODY = {"locations": {"name": "hijacked"}, "coldcells": {"name": "hijacked"},
              "devices": {"firmwareVersion": "6.6.6"}}


def snapshot(s):
    return (s.sql("SELECT * FROM locations ORDER BY id"),
            s.sql("SELECT * FROM cold_cells ORDER BY id"),
            s.sql("SELECT id, serial_number, cold_cell_id, api_key_hash, firmware_version"
                  " FROM devices ORDER BY id"))


def main():
    cases = Cases()
    with Stack(ingestd=False, env=NO_LIMITS) as s:
        c1 = token(s, "customer1")
        tech = token(s, "tech")
        admin = token(s, "admin")
        before = snapshot(s)

        for kind, ids in C2.items():
            for oid in ids:
                def get_other(kind=kind, oid=oid):
                    expect_error(s.http("GET", "/api/%s/%d" % (kind, oid), token=c1), 404,
                                 "NOT_FOUND")
                cases.run("customer1_GET_%s_%d_of_customer2_404" % (kind, oid), get_other)

                def patch_other(kind=kind, oid=oid):
                    expect_error(s.http("PATCH", "/api/%s/%d" % (kind, oid), PATCH_BODY[kind],
                                        token=c1), 404, "NOT_FOUND")
                cases.run("customer1_PATCH_%s_%d_of_customer2_404" % (kind, oid), patch_other)

                def delete_other(kind=kind, oid=oid):
                    expect_error(s.http("DELETE", "/api/%s/%d" % (kind, oid), token=c1), 404,
                                 "NOT_FOUND")
                cases.run("customer1_DELETE_%s_%d_of_customer2_404" % (kind, oid),
                          delete_other)

        def regen_other():
            expect_error(s.http("POST", "/api/devices/4/regenerate-key", token=c1), 404,
                         "NOT_FOUND")
        cases.run("customer1_POST_regenerate_key_device_4_of_customer2_404", regen_other)

        def nonexistent_same_answer():
            a = s.http("GET", "/api/devices/4", token=c1)
            b = s.http("GET", "/api/devices/999", token=c1)
            expect(a[0] == b[0] == 404 and a[2] == b[2], (a, b))
        cases.run("someone_elses_equals_nonexistent", nonexistent_same_answer)

        def references_in_bodies():
            expect_error(s.http("POST", "/api/locations", {"name": "x", "customerId": 3},
                                token=c1), 404, "NOT_FOUND")
            expect_error(s.http("POST", "/api/coldcells", {"locationId": 3, "name": "x",
                                                           "minTemp": 2, "maxTemp": 8},
                                token=c1), 404, "NOT_FOUND")
            expect_error(s.http("POST", "/api/devices", {"coldCellId": 4,
                                                         "serialNumber": "EVIL-1"},
                                token=c1), 404, "NOT_FOUND")
            expect_error(s.http("PATCH", "/api/devices/1", {"coldCellId": 4}, token=c1), 404,
                         "NOT_FOUND")
            expect_error(s.http("PATCH", "/api/coldcells/1", {"locationId": 3}, token=c1), 404,
                         "NOT_FOUND")
            expect_error(s.http("PATCH", "/api/locations/1", {"customerId": 3}, token=c1), 404,
                         "NOT_FOUND")
        cases.run("customer1_references_to_customer2_objects_404", references_in_bodies)

        def nothing_changed():
            expect(snapshot(s) == before, "customer2's data changed")
            n = s.scalar("SELECT count(*) FROM devices WHERE serial_number = 'EVIL-1'")
            expect(n == 0, "device created in another tenant's cell")
        cases.run("customer2_data_unchanged", nothing_changed)

        def lists_are_own():
            for kind, ids in C1.items():
                st, _, body = s.http("GET", "/api/" + kind, token=c1)
                got = [o["id"] for o in body["items"]]
                expect(st == 200 and got == ids and body["total"] == len(ids), (kind, body))
            st, _, body = s.http("GET", "/api/devices?coldCellId=4", token=c1)
            expect(st == 200 and body["items"] == [] and body["total"] == 0, body)
            st, _, body = s.http("GET", "/api/coldcells?locationId=3", token=c1)
            expect(st == 200 and body["items"] == [] and body["total"] == 0, body)
            st, _, body = s.http("GET", "/api/locations?customerId=3", token=c1)
            expect(st == 200 and body["items"] == [] and body["total"] == 0, body)
        cases.run("customer1_lists_only_own", lists_are_own)

        def tech_sees_both():
            for kind in C1:
                st, _, body = s.http("GET", "/api/" + kind, token=tech)
                got = [o["id"] for o in body["items"]]
                expect(st == 200 and got == C1[kind] + C2[kind], (kind, body))
                for oid in C1[kind] + C2[kind]:
                    st, _, one = s.http("GET", "/api/%s/%d" % (kind, oid), token=tech)
                    expect(st == 200 and one["id"] == oid, (kind, oid, st, one))
        cases.run("technician_sees_both_customers", tech_sees_both)

        def tech_changes_both():
            for oid, name in ((1, "Kitchen (tech)"), (3, "Market Hall (tech)")):
                st, _, body = s.http("PATCH", "/api/locations/%d" % oid, {"name": name},
                                     token=tech)
                expect(st == 200 and body["name"] == name, (st, body))
            st, _, body = s.http("POST", "/api/coldcells", {"locationId": 3, "name": "Tech cell",
                                                            "minTemp": 0, "maxTemp": 4},
                                 token=tech)
            expect(st == 201 and body["locationId"] == 3, (st, body))
        cases.run("technician_changes_both_customers", tech_changes_both)

        def unlinked_tech():
            st, _, body = s.http("POST", "/api/users", {"email": "tech2@example.com",
                                                        "password": "technician456",
                                                        "role": "TECHNICIAN",
                                                        "name": "Unlinked Tech"}, token=admin)
            expect(st == 201, (st, body))
            st, _, t2 = s.http("POST", "/api/auth/login", {"email": "tech2@example.com",
                                                           "password": "technician456"})
            t2 = t2["accessToken"]
            for kind in C1:
                st, _, body = s.http("GET", "/api/" + kind, token=t2)
                expect(st == 200 and body["items"] == [] and body["total"] == 0, (kind, body))
                for oid in C1[kind] + C2[kind]:
                    expect_error(s.http("GET", "/api/%s/%d" % (kind, oid), token=t2), 404,
                                 "NOT_FOUND")
            # Linking gives access at once; unlinking takes it away.
            uid = body and s.scalar("SELECT id FROM users WHERE email = 'tech2@example.com'")
            st, _, _ = s.http("PUT", "/api/users/%d/customers/3" % uid, token=admin)
            expect(st == 204, st)
            st, _, one = s.http("GET", "/api/devices/4", token=t2)
            expect(st == 200, (st, one))
            expect_error(s.http("GET", "/api/devices/1", token=t2), 404, "NOT_FOUND")
            st, _, _ = s.http("DELETE", "/api/users/%d/customers/3" % uid, token=admin)
            expect(st == 204, st)
            expect_error(s.http("GET", "/api/devices/4", token=t2), 404, "NOT_FOUND")
        cases.run("unlinked_technician_sees_nothing_until_linked", unlinked_tech)

        admin_routes = [("GET", "/api/users", None), ("POST", "/api/users",
                                                        {"email": "x@example.com",
                                                         "password": "password123",
                                                         "role": "ADMIN", "name": "x"}),
                        ("GET", "/api/users/2", None), ("GET", "/api/users/3", None),
                        ("PATCH", "/api/users/2", {"role": "ADMIN"}),
                        ("DELETE", "/api/users/3", None),
                        ("PUT", "/api/users/1/customers/2", None),
                        ("DELETE", "/api/users/1/customers/2", None)]
        for who in ("customer1", "tech"):
            t = c1 if who == "customer1" else tech
            for method, path, body in admin_routes:
                def forbidden(method=method, path=path, body=body, t=t):
                    expect_error(s.http(method, path, body, token=t), 403, "FORBIDDEN")
                cases.run("%s_%s_%s_403" % (who, method, path.replace("/", "_")), forbidden)

        def admin_unchanged():
            expect(s.scalar("SELECT role FROM users WHERE id = 2") == "CUSTOMER", "role changed")
            expect(s.scalar("SELECT count(*) FROM users WHERE email = 'x@example.com'") == 0,
                   "user created by a non-admin")
            expect(s.scalar("SELECT count(*) FROM technician_customers WHERE technician_id = 1")
                   == 2, "links changed")
        cases.run("admin_data_unchanged_after_403s", admin_unchanged)

        def admin_sees_all():
            for kind in C1:
                st, _, body = s.http("GET", "/api/" + kind, token=admin)
                expect(st == 200 and body["total"] >= len(C1[kind]) + len(C2[kind]), body)
        cases.run("admin_sees_everything", admin_sees_all)
    cases.exit()


if __name__ == "__main__":
    main()
