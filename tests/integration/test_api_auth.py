"""HTTP API authentication against the real apid: login, me, tokens (expired, tampered,
alg none, wrong typ, wrong secret), refresh rotation and reuse revocation, logout."""
import time

from apitest import (NO_LIMITS, Cases, Stack, expect, expect_error, forge, jwt_secret, login,
                     token)

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True


def main():
    cases = Cases()
    with Stack(ingestd=False, env=NO_LIMITS) as s:
        def login_ok():
            body = login(s, "customer1")
            expect(set(body) >= {"accessToken", "refreshToken", "expiresIn", "user"}, body)
            expect(body["expiresIn"] == 900, body)
            expect(body["user"] == {"id": 2, "email": "customer1@example.com",
                                    "role": "CUSTOMER", "name": body["user"]["name"]}, body)
            expect("password" not in str(body) and "scrypt" not in str(body), body)
        cases.run("login_success", login_ok)

        def login_case_insensitive():
            st, _, body = s.http("POST", "/api/auth/login",
                                 {"email": "Customer1@EXAMPLE.com", "password": "customer123"})
            expect(st == 200 and body["user"]["id"] == 2, (st, body))
        cases.run("login_email_case_insensitive", login_case_insensitive)

        def login_wrong_password():
            expect_error(s.http("POST", "/api/auth/login",
                                {"email": "customer1@example.com", "password": "wrong-password"}),
                         401, "INVALID_CREDENTIALS")
        cases.run("login_wrong_password_401", login_wrong_password)

        def login_unknown_email_same_answer():
            r1 = s.http("POST", "/api/auth/login",
                        {"email": "nobody@example.com", "password": "whatever123"})
            r2 = s.http("POST", "/api/auth/login",
                        {"email": "customer1@example.com", "password": "whatever123"})
            expect_error(r1, 401, "INVALID_CREDENTIALS")
            expect(r1[2] == r2[2], "answers differ: %r vs %r" % (r1[2], r2[2]))
        cases.run("login_unknown_email_same_answer", login_unknown_email_same_answer)

        def login_unknown_email_same_timing():
            def timed(email):
                t0 = time.perf_counter()
                s.http("POST", "/api/auth/login", {"email": email, "password": "whatever123"})
                return time.perf_counter() - t0
            known = sorted(timed("customer1@example.com") for _ in range(5))[2]
            unknown = sorted(timed("nobody@example.com") for _ in range(5))[2]
            # Both pay one scrypt of the same cost: the medians are close (a factor of 3
            # leaves room for a busy machine; a missing dummy verify is ~100x faster).
            expect(unknown > known / 3 and unknown < known * 3,
                   "median known %.1f ms, unknown %.1f ms" % (known * 1e3, unknown * 1e3))
        cases.run("login_unknown_email_same_timing", login_unknown_email_same_timing)

        def login_missing_fields():
            st, _, body = s.http("POST", "/api/auth/login", {})
            expect_error((st, None, body), 400, "VALIDATION_ERROR")
            fields = sorted(d["field"] for d in body["error"]["details"])
            expect(fields == ["email", "password"], body)
        cases.run("login_missing_fields_400", login_missing_fields)

        def login_bad_json():
            expect_error(s.http("POST", "/api/auth/login", raw=b'{"email": "a@b.c",'), 400,
                         "BAD_JSON")
        cases.run("login_bad_json_400", login_bad_json)

        def me():
            t = token(s, "tech")
            st, _, body = s.http("GET", "/api/auth/me", token=t)
            expect(st == 200 and body["id"] == 1 and body["role"] == "TECHNICIAN", (st, body))
            expect(body["customerIds"] == [2, 3], body)
            expect("passwordHash" not in body and "password_hash" not in body, body)
        cases.run("me", me)

        def me_without_token():
            expect_error(s.http("GET", "/api/auth/me"), 401, "UNAUTHORIZED")
            expect_error(s.http("GET", "/api/auth/me", headers={"Authorization": "Basic eA=="}),
                         401, "UNAUTHORIZED")
            expect_error(s.http("GET", "/api/auth/me", token="not.a.jwt"), 401, "UNAUTHORIZED")
        cases.run("me_without_token_401", me_without_token)

        key = jwt_secret(s)
        now = int(time.time())
        good = {"sub": "2", "role": "CUSTOMER", "typ": "access", "iat": now, "exp": now + 600}
        hdr = {"alg": "HS256", "typ": "JWT"}

        def forged_good_accepted():
            st, _, body = s.http("GET", "/api/auth/me", token=forge(hdr, good, key))
            expect(st == 200 and body["id"] == 2, (st, body))
        cases.run("token_signed_with_secret_accepted", forged_good_accepted)

        def expired():
            claims = dict(good, iat=now - 1000, exp=now - 10)
            expect_error(s.http("GET", "/api/auth/me", token=forge(hdr, claims, key)), 401,
                         "TOKEN_EXPIRED")
        cases.run("token_expired_401_TOKEN_EXPIRED", expired)

        def expired_bad_signature():
            claims = dict(good, iat=now - 1000, exp=now - 10)
            expect_error(s.http("GET", "/api/auth/me", token=forge(hdr, claims, b"x" * 32)), 401,
                         "UNAUTHORIZED")
        cases.run("token_expired_and_badly_signed_401_UNAUTHORIZED", expired_bad_signature)

        def tampered():
            t = forge(hdr, good, key)
            h, c, sig = t.split(".")
            other = forge(hdr, dict(good, sub="4", role="ADMIN"), key).split(".")[1]
            expect_error(s.http("GET", "/api/users", token=h + "." + other + "." + sig), 401,
                         "UNAUTHORIZED")
        cases.run("token_tampered_401", tampered)

        def alg_none():
            for h in ({"alg": "none", "typ": "JWT"}, {"alg": "None"}, {"alg": "HS512"},
                      {"alg": "RS256"}):
                t = forge(h, dict(good, sub="4", role="ADMIN"), None)
                expect_error(s.http("GET", "/api/auth/me", token=t), 401, "UNAUTHORIZED")
                t = forge(h, dict(good, sub="4", role="ADMIN"), key)
                expect_error(s.http("GET", "/api/auth/me", token=t), 401, "UNAUTHORIZED")
        cases.run("token_alg_none_and_others_401", alg_none)

        def wrong_secret():
            expect_error(s.http("GET", "/api/auth/me", token=forge(hdr, good, b"k" * 64)), 401,
                         "UNAUTHORIZED")
        cases.run("token_wrong_secret_401", wrong_secret)

        def refresh_as_access():
            rt = login(s, "customer1")["refreshToken"]
            expect_error(s.http("GET", "/api/auth/me", token=rt), 401, "UNAUTHORIZED")
            claims = dict(good, typ="refresh")
            expect_error(s.http("GET", "/api/auth/me", token=forge(hdr, claims, key)), 401,
                         "UNAUTHORIZED")
        cases.run("refresh_token_as_access_401", refresh_as_access)

        def access_as_refresh():
            at = login(s, "customer1")["accessToken"]
            expect_error(s.http("POST", "/api/auth/refresh", {"refreshToken": at}), 401,
                         "UNAUTHORIZED")
        cases.run("access_token_as_refresh_401", access_as_refresh)

        def refresh_rotation_and_reuse():
            first = login(s, "customer2")
            st, _, second = s.http("POST", "/api/auth/refresh",
                                   {"refreshToken": first["refreshToken"]})
            expect(st == 200, (st, second))
            expect(second["refreshToken"] != first["refreshToken"], "refresh token not rotated")
            expect(second["user"]["id"] == 3, second)
            st, _, body = s.http("GET", "/api/auth/me", token=second["accessToken"])
            expect(st == 200, (st, body))
            # The new refresh token works once more ...
            st, _, third = s.http("POST", "/api/auth/refresh",
                                  {"refreshToken": second["refreshToken"]})
            expect(st == 200, (st, third))
            # ... and replaying an old one revokes the whole family.
            expect_error(s.http("POST", "/api/auth/refresh",
                                {"refreshToken": first["refreshToken"]}), 401, "UNAUTHORIZED")
            expect_error(s.http("POST", "/api/auth/refresh",
                                {"refreshToken": third["refreshToken"]}), 401, "UNAUTHORIZED")
            # Stored hashed: no row holds the token itself.
            rows = s.sql("SELECT token_hash, revoked_at FROM refresh_tokens WHERE user_id = 3")
            expect(all(r[1] is not None for r in rows), rows)
            expect(all(r[0] != third["refreshToken"] and len(r[0]) == 64 for r in rows), rows)
            audit = s.scalar("SELECT count(*) FROM audit_log WHERE action = 'token_reuse'")
            expect(audit >= 1, "no token_reuse audit row")
        cases.run("refresh_rotation_and_reuse_revokes_family", refresh_rotation_and_reuse)

        def other_family_survives():
            a = login(s, "customer1")
            b = login(s, "customer1")
            st, _, a2 = s.http("POST", "/api/auth/refresh", {"refreshToken": a["refreshToken"]})
            expect(st == 200, a2)
            s.http("POST", "/api/auth/refresh", {"refreshToken": a["refreshToken"]})  # reuse
            st, _, b2 = s.http("POST", "/api/auth/refresh", {"refreshToken": b["refreshToken"]})
            expect(st == 200, "a second sign-in was revoked with the first: %r" % (b2,))
        cases.run("reuse_revokes_only_its_family", other_family_survives)

        def refresh_garbage():
            expect_error(s.http("POST", "/api/auth/refresh", {"refreshToken": "abc"}), 401,
                         "UNAUTHORIZED")
            expect_error(s.http("POST", "/api/auth/refresh", {}), 400, "VALIDATION_ERROR")
        cases.run("refresh_garbage", refresh_garbage)

        def logout():
            body = login(s, "tech")
            at, rt = body["accessToken"], body["refreshToken"]
            st, _, refreshed = s.http("POST", "/api/auth/refresh", {"refreshToken": rt})
            expect(st == 200, refreshed)
            rt2 = refreshed["refreshToken"]
            expect_error(s.http("POST", "/api/auth/logout", {"refreshToken": rt2}), 401,
                         "UNAUTHORIZED")  # signed-in route
            st, _, out = s.http("POST", "/api/auth/logout", {"refreshToken": rt2}, token=at)
            expect(st == 204, (st, out))
            expect_error(s.http("POST", "/api/auth/refresh", {"refreshToken": rt2}), 401,
                         "UNAUTHORIZED")
            # Another user's token cannot be logged out by this user.
            other = login(s, "customer1")
            expect_error(s.http("POST", "/api/auth/logout",
                                {"refreshToken": other["refreshToken"]}, token=at), 401,
                         "UNAUTHORIZED")
            st, _, _ = s.http("POST", "/api/auth/refresh",
                              {"refreshToken": other["refreshToken"]})
            expect(st == 200, "another user's session was ended")
        cases.run("logout_revokes_family", logout)

        def disabled_user():
            admin = token(s, "admin")
            t2 = token(s, "customer2")
            st, _, body = s.http("PATCH", "/api/users/3", {"disabled": True}, token=admin)
            expect(st == 200 and body["disabled"] is True, (st, body))
            expect_error(s.http("GET", "/api/auth/me", token=t2), 401, "UNAUTHORIZED")
            expect_error(s.http("POST", "/api/auth/login",
                                {"email": "customer2@example.com", "password": "customer123"}),
                         401, "INVALID_CREDENTIALS")
            st, _, body = s.http("PATCH", "/api/users/3", {"disabled": False}, token=admin)
            expect(st == 200 and body["disabled"] is False, (st, body))
            login(s, "customer2")
        cases.run("disabled_user_refused", disabled_user)

        def audit_login():
            n = s.scalar("SELECT count(*) FROM audit_log WHERE action = 'login'")
            expect(n >= 5, "login audit rows: %r" % n)
            detail = s.sql("SELECT detail FROM audit_log")
            expect(all("customer123" not in (d[0] or "") for d in detail), "password in audit")
        cases.run("audit_has_logins_no_secrets", audit_login)

        def request_log_has_no_secrets():
            with open(s.logs["apid"]) as f:
                log = f.read()
            expect("http_request" in log and "status=200" in log, "no request log lines")
            expect("duration_ms=" in log and "user=2" in log, "request log fields missing")
            expect("customer123" not in log and "eyJ" not in log, "secret in the log")
        cases.run("request_log_no_secrets", request_log_has_no_secrets)
    cases.exit()


if __name__ == "__main__":
    main()
