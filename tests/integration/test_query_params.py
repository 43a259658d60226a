"""Query parameters of every list and query endpoint (SPEC §5) against the real apid: a
parameter given empty (`?status=`, `?status`) or more than once (`?status=ACTIVE&status=
RESOLVED`) answers 400 VALIDATION_ERROR in the SPEC error shape with the parameter named in
details[].field, on every route that reads it. An empty filter used to mean "no filter"
(`/api/alerts?status=` listed every alert) and a repeated one took its first value, so a
client, a proxy or a cache that reads the last one saw another list than apid served. The
same routes answer 200 with the parameter given once (the table's control): the 400s come
from the parameter, not from the route. docs/api.md "Query parameters"."""
from apitest import NO_LIMITS, Cases, Stack, expect, expect_error, token

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

FROM = "2026-11-01T00:00:00.000Z"
TO = "2026-11-02T00:00:00.000Z"
ID_FILTERS = {"/api/alerts": "coldCellId", "/api/devices": "coldCellId",
              "/api/coldcells": "locationId", "/api/locations": "customerId"}
LISTS = ("/api/alerts", "/api/notifications", "/api/devices", "/api/coldcells",
         "/api/locations", "/api/users")


def table(cell, ids):
    """(path with its query, the field the 400 must name, the same route's valid query)."""
    rows = []
    for path in LISTS:
        for p, good in (("limit", "5"), ("offset", "0")):
            rows.append((path, p, "", good))
    for path, p in ID_FILTERS.items():
        rows.append((path, p, "", str(ids[p])))
    rows.append(("/api/alerts", "status", "", "ACTIVE"))
    rows.append(("/api/alerts", "type", "", "HIGH_TEMP"))
    readings = "/api/readings/coldcells/%d/readings" % cell
    export = "/api/readings/coldcells/%d/export.csv" % cell
    rows.append((readings, "range", "", "7d"))
    rows.append((readings, "from", "to=" + TO, FROM))
    rows.append((readings, "to", "from=" + FROM, TO))
    rows.append((export, "from", "to=" + TO, FROM))
    rows.append((export, "to", "from=" + FROM, TO))
    cases = []
    for path, p, rest, good in rows:
        other = {"5": "6", "0": "1", "ACTIVE": "RESOLVED", "HIGH_TEMP": "LOW_TEMP", "7d": "30d",
                 FROM: "2026-10-31T00:00:00.000Z", TO: "2026-11-03T00:00:00.000Z"}.get(good, good)

        def q(*params):
            return path + "?" + "&".join([x for x in params + (rest,) if x])
        cases.append(("%s: %s empty" % (path, p), q(p + "="), p, q(p + "=" + good)))
        cases.append(("%s: %s without =" % (path, p), q(p), p, None))
        cases.append(("%s: %s twice, different" % (path, p), q(p + "=" + good, p + "=" + other),
                      p, None))
        cases.append(("%s: %s twice, the same" % (path, p), q(p + "=" + good, p + "=" + good),
                      p, None))
        cases.append(("%s: %s once, then empty" % (path, p), q(p + "=" + good, p + "="), p, None))
    return cases


def main():
    cases = Cases()
    with Stack(ingestd=False, env=NO_LIMITS) as s:
        admin = token(s, "admin")
        st, _, cells = s.http("GET", "/api/coldcells", token=admin)
        expect(st == 200 and cells["items"], "cold cells: %s %r" % (st, cells))
        cell = cells["items"][0]
        ids = {"coldCellId": cell["id"], "locationId": cell["locationId"]}
        st, _, loc = s.http("GET", "/api/locations/%d" % cell["locationId"], token=admin)
        expect(st == 200, "location: %s %r" % (st, loc))
        ids["customerId"] = loc["customerId"]

        for name, path, field, good in table(cell["id"], ids):
            def refused(path=path, field=field, good=good):
                res = s.http("GET", path, token=admin)
                expect_error(res, 400, "VALIDATION_ERROR")
                details = res[2]["error"].get("details") or []
                expect(any(d.get("field") == field for d in details),
                       "details do not name %s: %r" % (field, res[2]))
                if good is not None:
                    st, _, body = s.http("GET", good, token=admin)
                    expect(st == 200, "control %s: %s %r" % (good, st, body))
            cases.run(name + " -> 400 VALIDATION_ERROR naming it", refused)
    cases.exit()


if __name__ == "__main__":
    main()
