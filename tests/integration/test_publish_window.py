"""The delivery worker's publish window (INGEST_PUBLISH_WINDOW, ingestd/mqtt.h) across a
broker outage: with the broker down, ingestd hands libmosquitto at most the window's worth
of alert events (each PENDING under a lease until its PUBACK) and leaves the rest PENDING
untried; once the broker is back, the held ones are acknowledged and marked SENT, the window
opens again and every event goes out. A window that never reopened (publish_pending stuck
after the reconnect) would leave the backlog PENDING for good."""
import time

from alerts_common import event_backlog
from harness import Cases, Stack, wait_for

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

WINDOW = 1000  # INGEST_PUBLISH_WINDOW
EVENTS = WINDOW + 500


def count(st, status):
    return st.scalar("SELECT count(*) FROM alert_events WHERE status = ?", (status,))


def handed(st):
    return st.scalar("SELECT count(*) FROM alert_events WHERE status = 'PENDING' AND"
                     " attempts = 1")


def main():
    cases = Cases()

    def outage_backlog_drains():
        with Stack(apid=False) as st:
            sent0 = count(st, "SENT")
            assert count(st, "PENDING") == 0
            assert st.stop("mosquitto") == 0
            event_backlog(st, EVENTS)
            # Broker down: one window handed over (PENDING, one attempt, not acknowledged),
            # the rest held back untried.
            wait_for(lambda: handed(st) == WINDOW, timeout=30,
                     what="a window's worth handed over")
            time.sleep(2.5)  # two more delivery ticks: still no more than the window
            assert handed(st) == WINDOW, handed(st)
            assert count(st, "SENT") == sent0, count(st, "SENT")
            assert count(st, "PENDING") == EVENTS, count(st, "PENDING")
            st.start_broker()
            wait_for(lambda: count(st, "PENDING") == 0, timeout=60,
                     what="the backlog delivered after the broker came back")
            assert count(st, "SENT") - sent0 == EVENTS, count(st, "SENT")
            assert count(st, "FAILED") == 0, count(st, "FAILED")
    cases.run("broker down with more alert events than the window, then back: all go out",
              outage_backlog_drains)
    cases.exit()


if __name__ == "__main__":
    main()
