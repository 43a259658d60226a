"""Two apid on one database (issue 15 point 1): what one instance issues, the other accepts.

Both instances share the stack's database (SQLite file or, with CC_TEST_STORE=pg, one
PostgreSQL) and its data directory (the JWT secret). Cases: an access token issued by A is
accepted by B; a refresh token issued by A rotates on B, and presenting A's old one again
(on A) is a reuse that ends the family on both; the same refresh token raced on A and B at
once gives exactly one new session and ends the family (never two successors), five times;
the live feed on B carries a reading published after A issued the token.
Rate limits are per instance (docs/scaling.md): not asserted here."""
import threading
import time
from urllib.parse import quote

import harness
from alerts_common import Device
from apitest import NO_LIMITS, expect, login
from harness import Cases, Stack, free_port, wait_port
from test_ws import WS, readings_of

ROUNDS = 5


def start_second_apid(s):
    port = free_port()
    p = s._spawn("apid2", [harness.os.path.join(harness.BUILD, "apid")],
                 env=s.env(HTTP_PORT=str(port), **NO_LIMITS))
    wait_port(port, timeout=20, proc=p)
    return port


def refresh(s, port, tok):
    return s.http("POST", "/api/auth/refresh", {"refreshToken": tok}, port=port)


def main():
    cases = Cases()
    with Stack(env=NO_LIMITS) as s:
        b = start_second_apid(s)

        def access_token_crosses():
            a = login(s, "customer1")
            st, _, me = s.http("GET", "/api/auth/me", token=a["accessToken"], port=b)
            expect(st == 200 and me.get("email") == "customer1@example.com", (st, me))
        cases.run("access_token_from_a_accepted_by_b", access_token_crosses)

        def refresh_crosses():
            a = login(s, "customer1")
            st, _, r = refresh(s, b, a["refreshToken"])
            expect(st == 200 and r.get("refreshToken"), ("rotate on b", st, r))
            st, _, x = refresh(s, s.http_port, a["refreshToken"])  # the old one, on a
            expect(st == 401, ("reuse on a must be refused", st, x))
            st, _, x = refresh(s, b, r["refreshToken"])  # the family has ended
            expect(st == 401, ("the successor must end with its family", st, x))
        cases.run("refresh_rotates_across_and_reuse_ends_the_family", refresh_crosses)

        def refresh_race():
            for i in range(ROUNDS):
                a = login(s, "customer1")
                gate = threading.Barrier(2)
                out = {}

                def go(port):
                    gate.wait()
                    out[port] = refresh(s, port, a["refreshToken"])

                ts = [threading.Thread(target=go, args=(p,)) for p in (s.http_port, b)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join(30)
                codes = sorted(v[0] for v in out.values())
                expect(codes == [200, 401], ("round %d: one new session, one refusal" % i, out))
                winner = [v[2] for v in out.values() if v[0] == 200][0]
                st, _, x = refresh(s, b, winner["refreshToken"])
                expect(st == 401, ("round %d: the race must end the family" % i, st, x))
        cases.run("refresh_raced_on_both_never_two_successors", refresh_race)

        def feed_on_b():
            harness.wait_for(lambda: b"feed_broker_connected" in open(s.logs["apid2"], "rb").read(),
                             timeout=20, what="b's feed connected to the broker")
            tok = login(s, "customer1")["accessToken"]
            ws = WS(b, "/api/ws?token=" + quote(tok, safe=""))
            try:
                ws.drain(1.0)  # the hello
                serial = sorted(s.keys)[0]
                d = Device(s, serial)
                d.publish({"temperature": 4.2})
                got = []
                deadline = time.time() + 15
                while not got and time.time() < deadline:
                    got = readings_of(ws.drain(1.0))
                expect(got, "no reading on b's live feed")
            finally:
                ws.close()
        cases.run("live_feed_on_b_carries_readings", feed_on_b)
    cases.exit()


if __name__ == "__main__":
    main()
