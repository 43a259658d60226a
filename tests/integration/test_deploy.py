"""Offline checks of the deployment files (no Docker engine, no systemd as PID 1 here).

- deploy/*.service and coldchain.target: `systemd-analyze verify` (with /opt/coldchain
  pointed at this tree so the ExecStart binaries exist), the hardening options the issue
  asks for, and `systemd-analyze security --offline` exposure at most 3.0 ("OK");
- docker-compose.yml: parses as YAML, has the three daemons on one data volume, and every
  build context, env_file example and command it names exists;
- its `scale` profile (issue 15 point 5): exactly PostgreSQL, nginx, two apid, mosquitto and
  an active and a standby ingestd (same client id, same data volume) start; every service
  binds and reaches what it
  should; the second apid and the standby refuse to start on SQLite (the entry script, run
  here); nginx's configuration as the nginx image renders it passes `nginx -t` with the real
  nginx and proxies the WebSocket upgrade;
- Dockerfile: every COPY source exists, every stage is Debian, nothing runs `curl | sh`,
  and the entry script handles each compose command."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

from harness import ROOT, Cases, free_port

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

DEPLOY = os.path.join(ROOT, "deploy")
UNITS = ("coldchain-mosquitto.service", "coldchain-ingestd.service", "coldchain-apid.service")
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes", "ReadWritePaths": "/var/lib/coldchain",
    "User": "coldchain", "EnvironmentFile": "/etc/coldchain/coldchain.env",
    "Restart": "on-failure", "KillSignal": "SIGTERM",
}
MAX_EXPOSURE = 3.0


def unit_settings(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


# What `docker compose --profile scale up` starts (issue 15 point 5): the standby ingestd
# waits on the lease (issue 15 point 2).
SCALE_STARTED = {"postgres", "setup", "mosquitto", "ingestd", "ingestd-standby", "apid", "apid-b",
                 "nginx"}


def active(svc, profile):
    """Whether `docker compose [--profile profile] up` starts this service."""
    profiles = svc.get("profiles")
    if profiles and profile not in profiles:
        return False
    return ((svc.get("deploy") or {}).get("replicas", 1)) != 0


def local_units():
    """The units with /opt/coldchain replaced by this tree, in a temporary directory."""
    d = tempfile.mkdtemp(prefix="cc-units-")
    for f in glob.glob(os.path.join(DEPLOY, "*.service")) + glob.glob(
            os.path.join(DEPLOY, "*.target")):
        with open(f) as src, open(os.path.join(d, os.path.basename(f)), "w") as dst:
            dst.write(src.read().replace("/opt/coldchain", ROOT))
    return d


def main():
    cases = Cases()
    have_systemd = shutil.which("systemd-analyze") is not None

    def units_present():
        for u in UNITS + ("coldchain.target", "README.md", "coldchain.env.example"):
            expect(os.path.exists(os.path.join(DEPLOY, u)), "deploy/%s missing" % u)
    cases.run("deploy_files_present", units_present)

    def hardening():
        for u in UNITS:
            s = unit_settings(os.path.join(DEPLOY, u))
            for k, v in HARDENING.items():
                expect(v in s.get(k, []), "%s: %s=%s missing" % (u, k, v))
            expect("TimeoutStopSec" in s, "%s: no TimeoutStopSec" % u)
            expect(any("coldchain.target" in v for v in s.get("PartOf", [])) and
                   any("coldchain.target" in v for v in s.get("WantedBy", [])),
                   "%s: not part of coldchain.target" % u)
        ing = unit_settings(os.path.join(DEPLOY, "coldchain-ingestd.service"))
        expect(any("coldchain-mosquitto.service" in v for v in ing.get("After", [])),
               "ingestd does not start after the broker")
    cases.run("units_hardened_and_ordered", hardening)

    def verify():
        expect(have_systemd, "systemd-analyze not installed (apt-get install systemd)")
        d = local_units()
        try:
            files = sorted(glob.glob(os.path.join(d, "*")))
            p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + files,
                               capture_output=True, text=True, timeout=60)
            out = (p.stdout + p.stderr).strip()
            # A missing `coldchain` user is expected on a build machine; nothing else is.
            lines = [l for l in out.splitlines() if l and "coldchain" in l.lower()
                     and "user" not in l.lower()]
            expect(p.returncode == 0 and not lines, "systemd-analyze verify: %s" % out)
            for u in UNITS:
                p = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                                    os.path.join(d, u)], capture_output=True, text=True,
                                   timeout=60)
                m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
                expect(m is not None, "%s: no exposure level: %s" % (u, p.stdout[-300:]
                                                                     + p.stderr))
                expect(float(m.group(1)) <= MAX_EXPOSURE, "%s: exposure %s > %.1f"
                       % (u, m.group(1), MAX_EXPOSURE))
        finally:
            shutil.rmtree(d, ignore_errors=True)
    cases.run("systemd_analyze_verify_and_security", verify)

    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)

    def compose_ok():
        services = compose.get("services", {})
        for name in ("mosquitto", "ingestd", "apid"):
            expect(name in services, "compose: no %s service" % name)
        volumes = set(compose.get("volumes", {}) or {})
        for name, svc in services.items():
            build = svc.get("build")
            if build is not None:
                ctx = build if isinstance(build, str) else build.get("context", ".")
                dockerfile = "Dockerfile" if isinstance(build, str) else build.get(
                    "dockerfile", "Dockerfile")
                expect(os.path.isfile(os.path.join(ROOT, ctx, dockerfile)),
                       "compose %s: no %s in %s" % (name, dockerfile, ctx))
            for ef in svc.get("env_file", []) if isinstance(svc.get("env_file"), list) else \
                    [svc["env_file"]] if "env_file" in svc else []:
                expect(os.path.exists(os.path.join(ROOT, ef)) or
                       os.path.exists(os.path.join(ROOT, ef + ".example")),
                       "compose %s: env_file %s (nor %s.example) exists" % (name, ef, ef))
            for v in svc.get("volumes", []):
                src = v.split(":")[0] if isinstance(v, str) else v.get("source")
                expect(src in volumes or os.path.exists(os.path.join(ROOT, src)),
                       "compose %s: volume %s undefined" % (name, src))
            for dep in (svc.get("depends_on") or []):
                expect(dep in services, "compose %s: depends on unknown %s" % (name, dep))
        data = {name: [v for v in svc.get("volumes", [])] for name, svc in services.items()
                if name in ("mosquitto", "ingestd", "apid")}
        mounts = {tuple(v) for v in data.values()}
        expect(len(mounts) == 1, "the three daemons do not share one data volume: %r" % data)
    cases.run("docker_compose_parses_and_references_exist", compose_ok)

    def compose_postgres_profile():
        services = compose.get("services", {})
        pg = services.get("postgres")
        expect(pg is not None, "compose: no postgres service")
        expect("postgres" in pg.get("profiles", []), "compose postgres: not in profile postgres")
        expect(pg.get("image", "").startswith("postgres:15"), "compose postgres: not PostgreSQL 15")
        expect("healthcheck" in pg, "compose postgres: no healthcheck")
        dep = (services["setup"].get("depends_on") or {}).get("postgres", {})
        expect(dep.get("condition") == "service_healthy" and dep.get("required") is False,
               "compose setup: must wait for postgres when the profile runs, not need it: %r" % dep)
        with open(os.path.join(ROOT, ".env.example")) as f:
            env = f.read()
        expect(re.search(r"^# COLDCHAIN_DB=postgresql://\S+@postgres:5432/coldchain$", env, re.M),
               ".env.example: no COLDCHAIN_DB URL for the postgres profile")
    cases.run("docker_compose_postgres_profile", compose_postgres_profile)

    def compose_scale_profile():
        services = compose.get("services", {})
        started = {n for n, svc in services.items() if active(svc, "scale")}
        expect(started == SCALE_STARTED, "compose --profile scale starts %s, want %s"
               % (sorted(started), sorted(SCALE_STARTED)))
        expect(not {n for n, svc in services.items() if active(svc, None)} & {"postgres", "apid-b"},
               "compose without a profile starts a scale service")
        pg = services["postgres"]
        expect("scale" in pg.get("profiles", []), "compose postgres: not in profile scale")
        for name in ("apid", "apid-b"):
            svc = services[name]
            env = svc.get("environment", {})
            expect(env.get("HTTP_BIND") == "0.0.0.0" and env.get("TRUST_PROXY") == "1",
                   "compose %s: must listen on the project network behind the proxy: %r"
                   % (name, env))
            expect(svc.get("expose") == ["8080"] and "ports" not in svc,
                   "compose %s: must publish nothing (only nginx reaches it)" % name)
            expect(svc.get("command") == ["apid"], "compose %s: runs %r" % (name, svc.get("command")))
        b = services["apid-b"]
        expect("apid" in ((b.get("networks") or {}).get("default") or {}).get("aliases", []),
               "compose apid-b: not reachable as `apid` (nginx's upstream name)")
        dep = (services["nginx"].get("depends_on") or {})
        expect(isinstance(dep, dict) and "apid" in dep and
               dep.get("apid-b", {}).get("required") is False,
               "compose nginx: must start after apid and, with the profile, apid-b: %r" % dep)
        expect(services["nginx"].get("ports") == ["80:80", "443:443"],
               "compose nginx: ports %r" % services["nginx"].get("ports"))
        expect(all(p.startswith("127.0.0.1:") for p in services["mosquitto"].get("ports", [])),
               "compose mosquitto: publishes beyond loopback")
        active_ing, standby = services["ingestd"], services["ingestd-standby"]
        for name, svc in (("ingestd", active_ing), ("ingestd-standby", standby)):
            env = svc.get("environment", {})
            expect(env.get("MQTT_URL") == "tcp://mosquitto:1883", "compose %s: MQTT_URL %r"
                   % (name, env.get("MQTT_URL")))
            expect(svc.get("command") == ["ingestd"], "compose %s: runs %r" % (name, svc.get("command")))
            expect(env.get("INGEST_CLIENT_ID", "").startswith("coldchain-"),
                   "compose %s: INGEST_CLIENT_ID %r not under the operators' prefix"
                   % (name, env.get("INGEST_CLIENT_ID")))
        expect(standby["environment"]["INGEST_CLIENT_ID"] == active_ing["environment"]["INGEST_CLIENT_ID"],
               "compose: the standby must take over the active one's broker session (same id)")
        expect(standby.get("profiles") == ["scale"] and b.get("profiles") == ["scale"],
               "compose: apid-b and ingestd-standby belong to the scale profile only")
        with open(os.path.join(ROOT, "docker-compose.yml")) as f:
            text = f.read()
        expect(re.search(r"(?m)^  # The standby.*\n(  #.*\n)*  ingestd-standby:", text),
               "compose: ingestd-standby is not documented")
        for name in ("apid", "apid-b", "ingestd", "ingestd-standby", "mosquitto", "setup"):
            expect(services[name].get("volumes") == ["data:/data"],
                   "compose %s: not on the shared data volume" % name)
            expect(services[name].get("env_file") == ".env", "compose %s: no .env" % name)
        for name in ("apid-b", "ingestd-standby"):
            expect(services[name]["environment"].get("REQUIRE_POSTGRES") == "1",
                   "compose %s: may start on SQLite" % name)
    cases.run("docker_compose_scale_profile", compose_scale_profile)

    def scale_needs_postgres():
        script = os.path.join(ROOT, "tools", "docker-entry.sh")
        env = dict(os.environ, MQTT_PASSWORD="x", REQUIRE_POSTGRES="1",
                   COLDCHAIN_DB="/nonexistent/coldchain.db")
        p = subprocess.run(["sh", script, "apid"], env=env, capture_output=True, text=True,
                           timeout=30)
        expect(p.returncode == 64 and "postgresql://" in p.stderr,
               "REQUIRE_POSTGRES=1 on SQLite: exit %s %r" % (p.returncode, p.stderr))
        # On a PostgreSQL URL the check passes: exec then fails on /app/build/apid, absent here.
        env["COLDCHAIN_DB"] = "postgresql://coldchain@postgres:5432/coldchain"
        p = subprocess.run(["sh", script, "apid"], env=env, capture_output=True, text=True,
                           timeout=30)
        expect(p.returncode != 64 and "/app/build/apid" in p.stderr,
               "REQUIRE_POSTGRES=1 on PostgreSQL: exit %s %r" % (p.returncode, p.stderr))
    cases.run("scale_services_refuse_sqlite", scale_needs_postgres)

    def nginx_image_config():
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        expect(os.path.exists(nginx), "nginx not installed (apt-get install nginx)")
        with open(os.path.join(DEPLOY, "nginx", "Dockerfile")) as f:
            m = re.search(r"sed -i '(s/[^']*)' /etc/nginx/conf.d/coldchain.conf", f.read())
        expect(m is not None, "deploy/nginx/Dockerfile: no sed of the upstream")
        d = tempfile.mkdtemp(prefix="cc-nginx-")
        try:
            conf = os.path.join(d, "coldchain.conf")
            shutil.copy(os.path.join(DEPLOY, "nginx", "coldchain.conf"), conf)
            subprocess.run(["sed", "-i", m.group(1), conf], check=True)
            with open(conf) as f:
                text = f.read()
            ups = re.search(r"upstream coldchain_apid \{([^}]*)\}", text)
            expect(ups and re.findall(r"^\s*server (\S+);", ups.group(1), re.M) == ["apid:8080"],
                   "the image's upstream is not the service name apid: %r" % (ups and ups.group(1)))
            ws = re.search(r"location = /api/ws \{([^}]*)\}", text)
            expect(ws and "proxy_set_header Upgrade $http_upgrade;" in ws.group(1) and
                   "proxy_set_header Connection $coldchain_connection;" in ws.group(1),
                   "no WebSocket upgrade for /api/ws")
            # No Docker DNS here: `localhost` stands for `apid`, a name with several
            # addresses (127.0.0.1 and ::1), as `apid` has with the scale profile.
            cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                                "/CN=localhost", "-keyout", key, "-out", cert],
                               capture_output=True, text=True)
            expect(p.returncode == 0, "openssl: %s" % p.stderr)
            for pat, rep in ((r"server apid:8080;", "server localhost:%d;" % free_port()),
                             (r"(?m)^\s*listen \[::\]:443 ssl http2;\n", ""),
                             (r"(?m)^\s*listen \[::\]:80;\n", ""),
                             (r"listen 443 ssl http2;", "listen 127.0.0.1:%d ssl http2;" % free_port()),
                             (r"listen 80;", "listen 127.0.0.1:%d;" % free_port()),
                             (r"/etc/ssl/coldchain/fullchain\.pem", cert),
                             (r"/etc/ssl/coldchain/privkey\.pem", key)):
                text, n = re.subn(pat, rep, text)
                expect(n == 1, "coldchain.conf: %r matched %d times" % (pat, n))
            with open(conf, "w") as f:
                f.write(text)
            top = os.path.join(d, "nginx.conf")
            with open(top, "w") as f:
                f.write("worker_processes 1;\npid %(d)s/nginx.pid;\nerror_log %(d)s/error.log;\n"
                        "events { worker_connections 64; }\nhttp {\n access_log off;\n"
                        " client_body_temp_path %(d)s/body;\n proxy_temp_path %(d)s/proxy;\n"
                        " fastcgi_temp_path %(d)s/fastcgi;\n uwsgi_temp_path %(d)s/uwsgi;\n"
                        " scgi_temp_path %(d)s/scgi;\n include %(c)s;\n}\n" % {"d": d, "c": conf})
            p = subprocess.run([nginx, "-t", "-c", top, "-p", d, "-e",
                                os.path.join(d, "error.log")], capture_output=True, text=True,
                               timeout=30)
            expect(p.returncode == 0, "nginx -t: %s" % (p.stdout + p.stderr))
        finally:
            shutil.rmtree(d, ignore_errors=True)
    cases.run("nginx_image_config_passes_nginx_t", nginx_image_config)

    def dockerfile_ok():
        with open(os.path.join(ROOT, "Dockerfile")) as f:
            text = f.read()
        # join continuation lines
        lines = re.sub(r"\\\n", " ", text).splitlines()
        stages = []
        for line in lines:
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            op = words[0].upper()
            expect(op in ("FROM", "RUN", "COPY", "ADD", "WORKDIR", "ENV", "VOLUME",
                          "ENTRYPOINT", "CMD", "EXPOSE", "USER", "ARG", "LABEL",
                          "HEALTHCHECK", "STOPSIGNAL"), "Dockerfile: unknown instruction %s"
                   % op)
            if op == "FROM":
                expect(words[1].startswith("debian:"), "Dockerfile: stage not Debian: %s" % line)
                stages.append(words[-1] if len(words) > 3 and words[2].upper() == "AS" else None)
            if op == "COPY" and not any(w.startswith("--from") for w in words):
                for src in [w for w in words[1:-1] if not w.startswith("--")]:
                    expect(os.path.exists(os.path.join(ROOT, src)),
                           "Dockerfile: COPY source %s missing" % src)
            if op == "RUN":
                expect(not re.search(r"curl[^|]*\|\s*(ba)?sh", line),
                       "Dockerfile: pipes a download into a shell")
        expect(len(stages) >= 1, "Dockerfile: no FROM")
        m = re.search(r'ENTRYPOINT\s+\[([^\]]*)\]', text)
        expect(m is not None, "Dockerfile: no exec-form ENTRYPOINT")
        entry = [w.strip().strip('"') for w in m.group(1).split(",")]
        script = next((w for w in entry if w.endswith(".sh")), None)
        expect(script is not None, "ENTRYPOINT runs no script")
        local = os.path.join(ROOT, "tools", os.path.basename(script))
        expect(os.path.exists(local), "entry script %s not in tools/" % script)
        with open(local) as f:
            body = f.read()
        for name, svc in compose["services"].items():
            for arg in svc.get("command", []) or []:
                expect(re.search(r"^\s*%s\)" % re.escape(arg), body, re.M),
                       "entry script has no case for compose command %r" % arg)
        p = subprocess.run(["sh", "-n", local], capture_output=True, text=True)
        expect(p.returncode == 0, "entry script: %s" % p.stderr)
    cases.run("dockerfile_references_exist", dockerfile_ok)

    cases.exit()


if __name__ == "__main__":
    sys.exit(main())
