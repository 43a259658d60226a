"""Offline checks of the deployment files (no Docker engine, no systemd as PID 1 here).

- deploy/*.service and coldchain.target: `systemd-analyze verify` (with /opt/coldchain
  pointed at this tree so the ExecStart binaries exist), the hardening options the issue
  asks for, and `systemd-analyze security --offline` exposure at most 3.0 ("OK");
- docker-compose.yml: parses as YAML, has the three daemons on one data volume, and every
  build context, env_file example and command it names exists;
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

from harness import ROOT, Cases

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
        expect(pg.get("profiles") == ["postgres"], "compose postgres: not in profile postgres")
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
