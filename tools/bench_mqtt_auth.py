"""The broker endpoints' cost (docs/scaling.md): N EMQX authz and authn requests from one
keep-alive client against apid on its own internal listener, milliseconds per request and
apid's CPU seconds per 10k (utime + stime from /proc). Run from the repository root:
  CC_BUILD=build [CC_TEST_STORE=pg] [N=5000] /usr/bin/python3 tools/bench_mqtt_auth.py"""
import http.client, json, os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from apitest import NO_LIMITS
from harness import Stack, free_port, wait_port
SECRET = "bench-secret-0123456789abcdef"
N = int(os.environ.get("N", "5000"))
def cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
port = free_port()
with Stack(ingestd=False, env=dict(NO_LIMITS, MQTT_AUTH_HTTP_SECRET=SECRET,
                                   MQTT_AUTH_HTTP_LISTEN="127.0.0.1:%d" % port)) as s:
    wait_port(port)
    dev = sorted(s.keys)[0]; key = s.keys[dev]
    pid = s.procs["apid"].pid
    c = http.client.HTTPConnection("127.0.0.1", port)
    h = {"Content-Type": "application/json", "X-MQTT-Auth-Secret": SECRET}
    for name, path, body in (
        ("emqx authz publish", "/internal/mqtt/emqx/authz",
         {"clientid": dev, "username": dev, "topic": "devices/%s/readings" % dev, "action": "publish", "qos": "1", "retain": "false"}),
        ("emqx authn", "/internal/mqtt/emqx/authn", {"clientid": dev, "username": dev, "password": key})):
        data = json.dumps(body).encode()
        c0, t0 = cpu(pid), time.time()
        for _ in range(N):
            c.request("POST", path, body=data, headers=h)
            r = c.getresponse(); r.read()
            assert r.status == 200
        t1, c1 = time.time(), cpu(pid)
        print("%s (%s store): %d requests, %.3f ms each (one keep-alive client), apid CPU %.2f s per 10k"
              % (name, "pg" if s.pg else "sqlite", N, (t1 - t0) * 1e3 / N, (c1 - c0) * 10000 / N))
