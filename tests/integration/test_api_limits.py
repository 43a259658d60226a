"""Rate limits against the real apid with the SPEC defaults for auth (5 per window): the
6th login in a window answers 429 RATE_LIMITED with Retry-After in whole seconds;
/health, /ready and /metrics are never limited; unauthenticated requests count toward
the API limit; X-Forwarded-For counts only with TRUST_PROXY=1."""
from apitest import Cases, Stack, expect, expect_error

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

CREDS = {"email": "customer1@example.com", "password": "customer123"}


def main():
    cases = Cases()
    with Stack(ingestd=False, env={"RATE_LIMIT_API": "20", "RATE_LIMIT_AUTH": "5",
                                   "RATE_LIMIT_WINDOW_S": "900"}) as s:
        def sixth_login():
            for i in range(5):
                st, _, body = s.http("POST", "/api/auth/login", CREDS)
                expect(st == 200, "login %d: %s %r" % (i + 1, st, body))
            st, headers, body = s.http("POST", "/api/auth/login", CREDS)
            expect_error((st, headers, body), 429, "RATE_LIMITED")
            ra = headers.get("Retry-After")
            expect(ra is not None and ra.isdigit() and 1 <= int(ra) <= 900, headers)
            # Wrong passwords count too, and the limit holds for refresh as well.
            expect_error(s.http("POST", "/api/auth/refresh", {"refreshToken": "x"}), 429,
                         "RATE_LIMITED")
        cases.run("sixth_login_429_with_retry_after", sixth_login)

        def health_never_limited():
            for _ in range(60):
                st, _, _ = s.http("GET", "/health")
                expect(st == 200, st)
                st, _, _ = s.http("GET", "/ready")
                expect(st == 200, st)
        cases.run("health_and_ready_never_limited", health_never_limited)

        def api_limit_counts_anonymous():
            statuses = [s.http("GET", "/api/devices")[0] for _ in range(25)]
            expect(statuses[:20] == [401] * 20, statuses)
            expect(statuses[20:] == [429] * 5, statuses)
            st, h, body = s.http("GET", "/nope")
            expect_error((st, h, body), 429, "RATE_LIMITED")
            expect(h.get("Retry-After", "").isdigit(), h)
        cases.run("api_limit_counts_unauthenticated", api_limit_counts_anonymous)

        def xff_ignored_without_trust():
            st, _, _ = s.http("GET", "/api/devices", headers={"X-Forwarded-For": "203.0.113.9"})
            expect(st == 429, "X-Forwarded-For was honoured with TRUST_PROXY=0")
        cases.run("x_forwarded_for_ignored_without_trust_proxy", xff_ignored_without_trust)

    with Stack(ingestd=False, env={"RATE_LIMIT_API": "3", "RATE_LIMIT_AUTH": "5",
                                   "TRUST_PROXY": "1"}) as s:
        def xff_with_trust():
            def get(addr):
                return s.http("GET", "/api/devices",
                              headers={"X-Forwarded-For": "198.51.100.1, " + addr})[0]
            a = [get("203.0.113.1") for _ in range(4)]
            b = [get("203.0.113.2") for _ in range(4)]
            expect(a == [401, 401, 401, 429] and b == [401, 401, 401, 429], (a, b))
        cases.run("x_forwarded_for_counts_with_trust_proxy", xff_with_trust)
    cases.exit()


if __name__ == "__main__":
    main()
