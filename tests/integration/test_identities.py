"""Identities cannot be inherited (SPEC §5 "Identities", issue 12 item 4) against the real
apid: a deleted user's id is never given to the next user, a deleted user's tokens are
refused, a token issued before its user was created or before the user's password changed
is refused (access and refresh), and a password change revokes the refresh tokens."""
import time

from apitest import (NO_LIMITS, Cases, Stack, expect, expect_error, forge, jwt_secret,
                     token)

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True


def create_user(s, admin, email, role, password="password123"):
    st, _, u = s.http("POST", "/api/users", {"email": email, "password": password, "role": role,
                                            "name": email.split("@")[0]}, token=admin)
    expect(st == 201, "create %s: %s %r" % (email, st, u))
    return u


def sign_in(s, email, password="password123"):
    st, _, body = s.http("POST", "/api/auth/login", {"email": email, "password": password})
    expect(st == 200, "login %s: %s %r" % (email, st, body))
    return body


def main():
    cases = Cases()
    with Stack(ingestd=False, env=NO_LIMITS) as s:
        admin = token(s, "admin")

        def id_not_reused():
            # The reproduction: delete technician N, create an ADMIN (got id N).
            tech = create_user(s, admin, "tech5@example.com", "TECHNICIAN")
            old = sign_in(s, "tech5@example.com")
            st, _, _ = s.http("GET", "/api/auth/me", token=old["accessToken"])
            expect(st == 200, "the technician's token works before the delete: %s" % st)
            expect_error(s.http("GET", "/api/users", token=old["accessToken"]), 403, "FORBIDDEN")
            st, _, body = s.http("DELETE", "/api/users/%d" % tech["id"], token=admin)
            expect(st == 204, "delete: %s %r" % (st, body))
            expect_error(s.http("GET", "/api/auth/me", token=old["accessToken"]), 401,
                         "UNAUTHORIZED")
            new_admin = create_user(s, admin, "admin5@example.com", "ADMIN")
            expect(new_admin["id"] != tech["id"],
                   "the new admin inherited the deleted technician's id %d" % tech["id"])
            expect(new_admin["id"] > tech["id"], (new_admin, tech))
            expect_error(s.http("GET", "/api/users", token=old["accessToken"]), 401,
                         "UNAUTHORIZED")
            expect_error(s.http("GET", "/api/auth/me", token=old["accessToken"]), 401,
                         "UNAUTHORIZED")
            expect_error(s.http("POST", "/api/auth/refresh",
                                {"refreshToken": old["refreshToken"]}), 401, "UNAUTHORIZED")
        cases.run("deleted_technician_id_not_reused_and_old_token_401", id_not_reused)

        def other_ids_not_reused():
            # Every table whose id appears in a URL: delete the newest row, create another.
            cust = create_user(s, admin, "cust-ids@example.com", "CUSTOMER")
            ctok = sign_in(s, "cust-ids@example.com")["accessToken"]
            st, _, loc = s.http("POST", "/api/locations", {"name": "L", "address": "A"},
                                token=ctok)
            expect(st == 201, (st, loc))
            st, _, loc2 = s.http("POST", "/api/locations", {"name": "L2", "address": "A"},
                                 token=ctok)
            expect(st == 201, (st, loc2))
            st, _, _ = s.http("DELETE", "/api/locations/%d" % loc2["id"], token=ctok)
            expect(st == 204, st)
            st, _, loc3 = s.http("POST", "/api/locations", {"name": "L3", "address": "A"},
                                 token=ctok)
            expect(st == 201 and loc3["id"] > loc2["id"], (loc2, loc3))
            cell_body = {"locationId": loc["id"], "name": "C", "minTemp": 2, "maxTemp": 8}
            st, _, c1 = s.http("POST", "/api/coldcells", cell_body, token=ctok)
            expect(st == 201, (st, c1))
            st, _, _ = s.http("DELETE", "/api/coldcells/%d" % c1["id"], token=ctok)
            expect(st == 204, st)
            st, _, c2 = s.http("POST", "/api/coldcells", cell_body, token=ctok)
            expect(st == 201 and c2["id"] > c1["id"], (c1, c2))
            dev_body = {"coldCellId": c2["id"], "serialNumber": "ID-REUSE-1"}
            st, _, d1 = s.http("POST", "/api/devices", dev_body, token=ctok)
            expect(st == 201, (st, d1))
            st, _, _ = s.http("DELETE", "/api/devices/%d" % d1["id"], token=ctok)
            expect(st == 204, st)
            st, _, d2 = s.http("POST", "/api/devices", dev_body, token=ctok)
            expect(st == 201 and d2["id"] > d1["id"], (d1, d2))
            expect(cust["id"] > 0, cust)
        cases.run("location_cell_device_ids_not_reused", other_ids_not_reused)

        def password_change():
            u = create_user(s, admin, "pw-change@example.com", "CUSTOMER", "first-password")
            old = sign_in(s, "pw-change@example.com", "first-password")
            st, _, _ = s.http("GET", "/api/auth/me", token=old["accessToken"])
            expect(st == 200, st)
            st, _, body = s.http("PATCH", "/api/users/%d" % u["id"],
                                 {"password": "second-password"}, token=admin)
            expect(st == 200, (st, body))
            expect_error(s.http("GET", "/api/auth/me", token=old["accessToken"]), 401,
                         "UNAUTHORIZED")
            expect_error(s.http("POST", "/api/auth/refresh",
                                {"refreshToken": old["refreshToken"]}), 401, "UNAUTHORIZED")
            expect_error(s.http("POST", "/api/auth/login", {"email": "pw-change@example.com",
                                                           "password": "first-password"}),
                         401, "INVALID_CREDENTIALS")
            new = sign_in(s, "pw-change@example.com", "second-password")
            st, _, me = s.http("GET", "/api/auth/me", token=new["accessToken"])
            expect(st == 200 and me["id"] == u["id"], (st, me))
            st, _, pair = s.http("POST", "/api/auth/refresh", {"refreshToken": new["refreshToken"]})
            expect(st == 200, (st, pair))
            st, _, _ = s.http("GET", "/api/auth/me", token=pair["accessToken"])
            expect(st == 200, st)
            # A change of anything but the password leaves the tokens alone.
            st, _, _ = s.http("PATCH", "/api/users/%d" % u["id"], {"name": "Renamed"},
                              token=admin)
            expect(st == 200, st)
            st, _, _ = s.http("GET", "/api/auth/me", token=pair["accessToken"])
            expect(st == 200, "a rename refused the token: %s" % st)
        cases.run("password_change_refuses_old_access_and_refresh_tokens", password_change)

        def issued_before_created():
            # A well-signed token whose iat is before the user was created (what a token of
            # an earlier holder of the id looks like) is refused; one issued at or after is
            # accepted. iat has second precision: the rule compares whole seconds.
            u = create_user(s, admin, "late@example.com", "CUSTOMER")
            created_ms = s.scalar("SELECT created_at FROM users WHERE id = ?", (u["id"],))
            ver = s.scalar("SELECT token_version FROM users WHERE id = ?", (u["id"],))
            key = jwt_secret(s)
            now = int(time.time())

            def tok(iat):
                return forge({"alg": "HS256", "typ": "JWT"},
                             {"sub": str(u["id"]), "role": "CUSTOMER", "typ": "access",
                              "iat": iat, "exp": now + 600, "jti": "x" * 43, "ver": ver}, key)
            st, _, _ = s.http("GET", "/api/auth/me", token=tok(created_ms // 1000))
            expect(st == 200, "a token of the creation second was refused: %s" % st)
            expect_error(s.http("GET", "/api/auth/me", token=tok(created_ms // 1000 - 1)), 401,
                         "UNAUTHORIZED")
            expect_error(s.http("GET", "/api/auth/me", token=tok(created_ms // 1000 - 3600)), 401,
                         "UNAUTHORIZED")
        cases.run("token_issued_before_user_created_401", issued_before_created)

        def wrong_version():
            u = create_user(s, admin, "ver@example.com", "CUSTOMER")
            ver = s.scalar("SELECT token_version FROM users WHERE id = ?", (u["id"],))
            key = jwt_secret(s)
            now = int(time.time())
            for bad in (ver + 1, ver - 1):
                t = forge({"alg": "HS256", "typ": "JWT"},
                          {"sub": str(u["id"]), "role": "CUSTOMER", "typ": "access", "iat": now,
                           "exp": now + 600, "jti": "y" * 43, "ver": bad}, key)
                expect_error(s.http("GET", "/api/auth/me", token=t), 401, "UNAUTHORIZED")
        cases.run("token_with_another_version_401", wrong_version)
    cases.exit()


if __name__ == "__main__":
    main()
