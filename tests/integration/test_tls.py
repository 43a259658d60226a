"""MQTT over TLS (issue 16 items 1, 2 and 4): the broker's TLS listener with the development CA
of tools/devca.sh, the device-certificate listener, and the plain listener in production mode.

A device over TLS with the dev CA is admitted and its reading stored; with another CA the
handshake fails; a TLS 1.1 client is refused (tls_version tlsv1.2); a device certificate is
accepted only for its own serial and client id, and only for the devices row it was issued
for: its subjectAltName URI urn:coldchain:device:<id> must name the id of the row whose serial
is the username (a device deleted and created again, or another device renamed to a freed
serial, has another id: ids are never reused); in production the plain listener is loopback
only, or absent."""
import json
import os
import secrets
import socket
import ssl
import subprocess
import time

import paho.mqtt.client as mqtt

import harness
from apitest import NO_LIMITS, expect, token

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

DEVCA = os.path.join(harness.ROOT, "tools", "devca.sh")
BROKER_CONF = os.path.join(harness.ROOT, "tools", "broker_conf.sh")
CONNACK_NOT_AUTHORISED = 5


def tls_client(port, username, password, ca, client_id, cert=None, key=None, timeout=10):
    """Connects over TLS; returns (client, CONNACK code). The handshake's failures raise."""
    c = mqtt.Client(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)
    c.tls_set(ca_certs=ca, certfile=cert, keyfile=key, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if username is not None:
        c.username_pw_set(username, password)
    rc = {}
    c.on_connect = lambda cl, ud, fl, code: rc.setdefault("code", code)
    # TLS 1.3 sends a refusal of the client's certificate after the handshake: the socket
    # closes before any CONNACK.
    c.on_disconnect = lambda cl, ud, code: rc.setdefault("code", "closed")
    c.connect("127.0.0.1", port, keepalive=30)  # TCP + TLS handshake happen here
    c.loop_start()
    harness.wait_for(lambda: "code" in rc, timeout=timeout, what="CONNACK")
    if rc["code"] != 0:
        c.loop_stop()
    return c, rc["code"]


def close(c):
    c.disconnect()
    c.loop_stop()


def readings_of(s, serial, marker):
    return s.scalar("SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                    "WHERE d.serial_number = ? AND r.temperature = ?", (serial, marker))


def publish_and_wait_stored(s, c, serial, marker):
    info = c.publish("devices/%s/readings" % serial, json.dumps({"temperature": marker}), qos=1)
    info.wait_for_publish()
    harness.wait_for(lambda: readings_of(s, serial, marker) == 1, timeout=15,
                     what="reading %s of %s stored" % (marker, serial))


def mqtt_string(s):
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def raw_tls_connect(port, ca, client_id, username, password=None, cert=None, key=None):
    """TLS handshake, then one MQTT 3.1.1 CONNECT; returns the bytes the broker answers
    (b"" if it closes). Raises what the TLS layer raises."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    flags = 0x02 | 0x80 | (0x40 if password is not None else 0)
    body = (mqtt_string("MQTT") + bytes([4, flags, 0, 30]) + mqtt_string(client_id) +
            mqtt_string(username) + (mqtt_string(password) if password is not None else b""))
    n, rem = len(body), b""
    while True:
        byte, n = n % 128, n // 128
        rem += bytes([byte | (0x80 if n else 0)])
        if not n:
            break
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as t:
            t.sendall(b"\x10" + rem + body)
            return t.recv(4)


def expect_tls_refused(what, *args, **kw):
    try:
        answer = raw_tls_connect(*args, **kw)
    except (ssl.SSLError, ConnectionError, OSError):
        return
    expect(answer == b"", "%s: admitted at the TLS layer (answer %r)" % (what, answer))


def expect_handshake_fails(fn, what):
    """fn connects with tls_client; the TLS layer must refuse: an exception during the
    handshake, or (TLS 1.3) the socket closed before the CONNACK."""
    try:
        c, rc = fn()
    except (ssl.SSLError, ConnectionError, OSError):
        return
    close(c)
    expect(rc == "closed", "%s: admitted at the TLS layer (CONNACK %s)" % (what, rc))


def main():
    cases = harness.Cases()
    with harness.Stack(tls=True, env=NO_LIMITS) as s:
        ca = os.path.join(s.tls_dir, "ca.crt")
        serials = sorted(s.keys)
        a, b = serials[0], serials[1]
        other_ca_dir = os.path.join(s.dir, "other-ca")
        subprocess.run(["sh", DEVCA, other_ca_dir], check=True, capture_output=True)
        other_ca = os.path.join(other_ca_dir, "ca.crt")

        def devca_files():
            st = {n: os.stat(os.path.join(s.tls_dir, n)).st_mode & 0o777
                  for n in ("ca.key", "server.key", "ca.crt", "server.crt")}
            expect(st["ca.key"] == 0o600 and st["server.key"] == 0o600, st)
            expect(os.stat(s.tls_dir).st_mode & 0o077 == 0, "tls dir readable by others")
            before = open(ca).read()
            subprocess.run(["sh", DEVCA, s.tls_dir], check=True, capture_output=True)
            expect(open(ca).read() == before, "devca.sh replaced an existing CA")
        cases.run("devca_keys_0600_and_kept", devca_files)

        def tls_device_accepted():
            c, rc = tls_client(s.mqtt_tls_port, a, s.keys[a], ca, a)
            expect(rc == 0, "CONNACK %s over TLS" % rc)
            publish_and_wait_stored(s, c, a, 3.2513)
            close(c)
        cases.run("device_over_tls_with_dev_ca_stored", tls_device_accepted)

        def tls_client_id_rule():
            c, rc = tls_client(s.mqtt_tls_port, a, s.keys[a], ca, "coldchain-ingestd")
            expect(rc == CONNACK_NOT_AUTHORISED, "ingestd's client id over TLS: CONNACK %s" % rc)
        cases.run("tls_device_with_ingestd_client_id_refused", tls_client_id_rule)

        def wrong_ca_refused():
            expect_handshake_fails(lambda: tls_client(s.mqtt_tls_port, a, s.keys[a], other_ca, a),
                                   "client trusting another CA")
        cases.run("device_with_wrong_ca_refused", wrong_ca_refused)

        def tls11_refused():
            def handshake(version):
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.load_verify_locations(ca)
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
                ctx.minimum_version = ssl.TLSVersion.TLSv1_1 if version == "1.1" else \
                    ssl.TLSVersion.TLSv1_2
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1 if version == "1.1" else \
                    ssl.TLSVersion.TLSv1_2
                with socket.create_connection(("127.0.0.1", s.mqtt_tls_port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as t:
                        return t.version()
            # Debian's OpenSSL 3 already refuses TLS 1.1 at its default security level, so
            # the handshake alone cannot tell whether the config says so: check it too,
            # for builds and systems where OpenSSL would still agree to 1.1.
            with open(os.path.join(s.dir, "broker", "mosquitto.conf")) as f:
                lines = [l.strip() for l in f]
            listeners = [l for l in lines if l.startswith("listener ")]
            expect(lines.count("tls_version tlsv1.2") == len(listeners) - 1 == 2,
                   "every TLS listener needs tls_version tlsv1.2: %r" % listeners)
            expect(handshake("1.2") == "TLSv1.2", "the same client over TLS 1.2 failed")
            try:
                v = handshake("1.1")
            except (ssl.SSLError, ConnectionError, OSError):
                return
            raise AssertionError("a TLS 1.1-only client was accepted (%s)" % v)
        cases.run("tls_1_1_client_refused", tls11_refused)

        def simulate_over_tls():
            url = "ssl://127.0.0.1:%d" % s.mqtt_tls_port
            before = s.scalar("SELECT count(*) FROM readings r JOIN devices d ON "
                              "d.id = r.device_id WHERE d.serial_number = ?", (b,))
            p = s.ccctl("simulate", "--devices", "%s:%s" % (b, s.keys[b]), "--url", url,
                        "--cafile", ca, "--count", "5", "--rate", "50", check=False)
            expect(p.returncode == 0, "simulate over TLS: %d %s" % (p.returncode, p.stderr))
            harness.wait_for(lambda: s.scalar(
                "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                "WHERE d.serial_number = ?", (b,)) >= before + 5, timeout=15,
                what="simulated readings stored")
            p = s.ccctl("simulate", "--devices", "%s:%s" % (b, s.keys[b]), "--url", url,
                        "--cafile", other_ca, "--count", "1", check=False)
            expect(p.returncode != 0, "simulate trusted a server its CA did not sign")
            p = s.ccctl("simulate", "--devices", "%s:%s" % (b, s.keys[b]), "--url",
                        "tcp://127.0.0.1:%d" % s.mqtt_port, "--cafile", ca, "--count", "1",
                        check=False)
            expect(p.returncode == 64, "--cafile with a tcp:// URL: exit %d" % p.returncode)
        cases.run("ccctl_simulate_cafile_over_tls", simulate_over_tls)

        def cert_for(serial, out=None):
            """A certificate from `ccctl device cert`; out: its own directory, so that a
            later certificate for the same serial does not replace the files."""
            extra = ("--out", os.path.join(s.dir, out)) if out else ()
            p = s.ccctl("device", "cert", serial, "--ca-dir", s.tls_dir, *extra)
            crt, key = p.stdout.split()
            expect(os.stat(key).st_mode & 0o077 == 0, "device key readable by others")
            return crt, key

        def device_cert_own_serial():
            crt, key = cert_for(a)
            c, rc = tls_client(s.mqtt_cert_port, a, None, ca, a, cert=crt, key=key)
            expect(rc == 0, "own certificate, no key: CONNACK %s" % rc)
            publish_and_wait_stored(s, c, a, 3.5171)
            close(c)
        cases.run("device_certificate_own_serial_accepted", device_cert_own_serial)

        def simulate_with_device_cert():
            crt, key = cert_for(b)
            url = "ssl://127.0.0.1:%d" % s.mqtt_cert_port
            count = "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id " \
                    "WHERE d.serial_number = ?"
            before = s.scalar(count, (b,))
            # The key in --devices is a wrong one: the certificate alone admits the device.
            p = s.ccctl("simulate", "--devices", "%s:%s" % (b, "0" * 64), "--url", url,
                        "--cafile", ca, "--cert", crt, "--key", key, "--count", "3", check=False)
            expect(p.returncode == 0, "simulate with a certificate: %d %s" % (p.returncode,
                                                                           p.stderr))
            harness.wait_for(lambda: s.scalar(count, (b,)) >= before + 3, timeout=15,
                             what="readings sent with a device certificate stored")
        cases.run("ccctl_simulate_with_device_certificate", simulate_with_device_cert)

        def device_cert_other_serial():
            crt_b, key_b = cert_for(b)
            # B's certificate used to log in as A: refused, even with A's key.
            for pw in (None, s.keys[a]):
                c, rc = tls_client(s.mqtt_cert_port, a, pw, ca, a, cert=crt_b, key=key_b)
                expect(rc == CONNACK_NOT_AUTHORISED, "B's certificate as A (key %s): CONNACK %s"
                       % (pw is not None, rc))
            # Its own serial but another client id: the client-id rule still holds.
            c, rc = tls_client(s.mqtt_cert_port, b, None, ca, "coldchain-ingestd", cert=crt_b,
                               key=key_b)
            expect(rc == CONNACK_NOT_AUTHORISED, "certificate with ingestd's client id: %s" % rc)
            # And its topics: B may not publish as A.
            c, rc = tls_client(s.mqtt_cert_port, b, None, ca, b, cert=crt_b, key=key_b)
            expect(rc == 0, "B's own certificate refused: %s" % rc)
            c.publish("devices/%s/readings" % a, json.dumps({"temperature": 3.7519}), qos=1)
            time.sleep(1)
            close(c)
            expect(readings_of(s, a, 3.7519) == 0, "B's certificate published as A")
        cases.run("device_certificate_other_serial_refused", device_cert_other_serial)

        def cert_listener_needs_cert():
            # Control: the same raw client with its own certificate gets CONNACK 0.
            crt, key = cert_for(a)
            answer = raw_tls_connect(s.mqtt_cert_port, ca, a, a, cert=crt, key=key)
            expect(answer[:1] == b"\x20" and answer[3:4] == b"\x00", "own cert: %r" % answer)
            expect_tls_refused("no client certificate", s.mqtt_cert_port, ca, a, a, s.keys[a])
            other = os.path.join(s.dir, "other-devs")
            p = s.ccctl("device", "cert", a, "--ca-dir", other_ca_dir, "--out", other)
            crt, key = p.stdout.split()
            expect_tls_refused("a device certificate from another CA", s.mqtt_cert_port, ca, a,
                               a, cert=crt, key=key)
        cases.run("certificate_listener_refuses_missing_or_foreign_cert",
                  cert_listener_needs_cert)

        # -- a certificate belongs to one devices row (ids are never reused; serials are) --
        c1, c2 = token(s, "customer1"), token(s, "customer2")
        CELL_C1, CELL_C2 = 1, 4  # seeded: customer1's Walk-in Freezer, customer2's Fish Freezer
        bound = {}

        def create_device(tok, cell, serial):
            st, _, d = s.http("POST", "/api/devices", {"coldCellId": cell,
                                                       "serialNumber": serial}, token=tok)
            expect(st == 201, "create %s in cell %d: %s %r" % (serial, cell, st, d))
            return d["id"]

        def delete_device(tok, dev_id):
            st, _, d = s.http("DELETE", "/api/devices/%d" % dev_id, token=tok)
            expect(st == 204, "delete device %d: %s %r" % (dev_id, st, d))

        def stored(dev_id, marker):
            return s.scalar("SELECT count(*) FROM readings WHERE device_id = ? AND "
                            "temperature = ?", (dev_id, marker))

        def cert_refused(serial, crt, key, what, into=None, marker=None):
            """CONNACK 5 for this certificate as serial. If the broker admits it, first
            show what that costs: a reading stored in the row `into`."""
            c, rc = tls_client(s.mqtt_cert_port, serial, None, ca, serial, cert=crt, key=key)
            if rc == 0:
                if into is not None:
                    publish_and_wait_stored(s, c, serial, marker)
                close(c)
                raise AssertionError("%s: CONNACK 0%s" % (what, "" if into is None else
                                     ", reading stored in device %d" % into))
            expect(rc == CONNACK_NOT_AUTHORISED, "%s: CONNACK %s" % (what, rc))

        def old_cert_after_recreate():
            serial = "CC-CERT-0001"
            id_a = create_device(c1, CELL_C1, serial)
            crt, key = cert_for(serial, "gen-a")
            c, rc = tls_client(s.mqtt_cert_port, serial, None, ca, serial, cert=crt, key=key)
            expect(rc == 0, "control: A's certificate while A exists: CONNACK %s" % rc)
            publish_and_wait_stored(s, c, serial, 4.1011)
            close(c)
            delete_device(c1, id_a)
            id_b = create_device(c2, CELL_C2, serial)  # another customer, another cell
            expect(id_b != id_a, "device id %d reused" % id_b)
            bound.update(serial=serial, id_b=id_b)
            cert_refused(serial, crt, key, "A's certificate after A was deleted and B created "
                         "with its serial", into=id_b, marker=4.1013)
        cases.run("old_certificate_refused_after_device_deleted_and_serial_recreated",
                  old_cert_after_recreate)

        def connected_old_cert_cut_off():
            serial = "CC-CERT-0004"
            id_a = create_device(c1, CELL_C1, serial)
            crt, key = cert_for(serial, "gen-a4")
            c, rc = tls_client(s.mqtt_cert_port, serial, None, ca, serial, cert=crt, key=key)
            expect(rc == 0, "control: CONNACK %s" % rc)
            try:
                publish_and_wait_stored(s, c, serial, 4.2011)
                gone = []
                c.on_disconnect = lambda cl, ud, code: gone.append(code)
                delete_device(c1, id_a)
                id_b = create_device(c2, CELL_C2, serial)
                c.publish("devices/%s/readings" % serial, json.dumps({"temperature": 4.2013}),
                          qos=1)
                # Refused: mosquitto closes the connection. Admitted: ingestd stores it.
                harness.wait_for(lambda: gone or stored(id_b, 4.2013), timeout=15,
                                 what="the publish refused or stored")
                time.sleep(0.5)
                expect(stored(id_b, 4.2013) == 0, "a connection opened with A's certificate "
                       "wrote into B (created with A's serial after A was deleted)")
            finally:
                close(c)
        cases.run("connected_old_certificate_cut_off_when_serial_recreated",
                  connected_old_cert_cut_off)

        def old_cert_after_rename():
            serial = "CC-CERT-0002"
            id_a = create_device(c1, CELL_C1, serial)
            crt, key = cert_for(serial, "gen-a2")
            delete_device(c1, id_a)
            id_c = create_device(c2, CELL_C2, "CC-CERT-0003")
            st, _, d = s.http("PATCH", "/api/devices/%d" % id_c, {"serialNumber": serial},
                              token=c2)
            expect(st == 200, "rename to the freed serial: %s %r" % (st, d))
            cert_refused(serial, crt, key, "A's certificate after C was renamed to A's serial",
                         into=id_c, marker=4.3013)
        cases.run("old_certificate_refused_for_device_renamed_to_freed_serial",
                  old_cert_after_rename)

        def fresh_cert_for_new_device():
            serial, id_b = bound["serial"], bound["id_b"]
            crt, key = cert_for(serial, "gen-b")
            san = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-ext",
                                  "subjectAltName"], capture_output=True, text=True).stdout
            expect("URI:urn:coldchain:device:%d" % id_b in san, "no device id in %r" % san)
            c, rc = tls_client(s.mqtt_cert_port, serial, None, ca, serial, cert=crt, key=key)
            expect(rc == 0, "B's own new certificate: CONNACK %s" % rc)
            info = c.publish("devices/%s/readings" % serial, json.dumps({"temperature": 4.4011}),
                             qos=1)
            info.wait_for_publish()
            harness.wait_for(lambda: stored(id_b, 4.4011) == 1, timeout=15,
                             what="B's reading stored under B's id")
            close(c)
        cases.run("fresh_certificate_for_new_device_accepted_and_stored",
                  fresh_cert_for_new_device)

        def cert_for_unknown_serial():
            out = os.path.join(s.dir, "unknown")
            p = s.ccctl("device", "cert", "CC-NO-SUCH-1", "--ca-dir", s.tls_dir, "--out", out,
                        check=False)
            expect(p.returncode == 1 and "CC-NO-SUCH-1" in p.stderr,
                   "cert for an unknown serial: exit %d %r" % (p.returncode, p.stderr))
            expect(not os.path.exists(os.path.join(out, "CC-NO-SUCH-1.crt")), "file written")
        cases.run("ccctl_device_cert_unknown_serial_refused", cert_for_unknown_serial)

        def hand_made(name, cn, san=None):
            """A client certificate signed by the dev CA with openssl, as an operator's own
            CA would sign a device's CSR: CN = cn, subjectAltName = san (None: none)."""
            d = os.path.join(s.dir, "hand-made")
            os.makedirs(d, exist_ok=True)
            key, csr, crt, ext = (os.path.join(d, name + x) for x in (".key", ".csr", ".crt",
                                                                        ".ext"))
            subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                            csr, "-subj", "/O=coldchain/CN=" + cn], check=True,
                           capture_output=True)
            with open(ext, "w") as f:
                f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                        "extendedKeyUsage=clientAuth\n")
                if san:
                    f.write("subjectAltName=%s\n" % san)
            subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey",
                            os.path.join(s.tls_dir, "ca.key"), "-set_serial",
                            "0x" + secrets.token_hex(16), "-days", "2", "-extfile", ext, "-out",
                            crt], check=True, capture_output=True)
            return crt, key

        def cert_needs_its_device_id():
            dev = s.scalar("SELECT id FROM devices WHERE serial_number = ?", (a,))
            uri = "URI:urn:coldchain:device:%d" % dev
            crt, key = hand_made("right", a, uri)
            c, rc = tls_client(s.mqtt_cert_port, a, None, ca, a, cert=crt, key=key)
            expect(rc == 0, "control: an openssl-signed certificate with %s: %s" % (uri, rc))
            close(c)
            for name, san in (("none", None),
                              ("dns-only", "DNS:%s" % a),
                              ("other-id", "URI:urn:coldchain:device:%d" % (dev + 1000)),
                              ("twice", "%s,%s" % (uri, uri)),
                              ("two-ids", "%s,URI:urn:coldchain:device:%d" % (uri, dev + 1000)),
                              ("leading-zero", "URI:urn:coldchain:device:0%d" % dev),
                              ("suffix", "%sx" % uri)):
                crt, key = hand_made(name, a, san)
                cert_refused(a, crt, key, "certificate with subjectAltName %s" % san)
        cases.run("certificate_without_its_device_id_refused", cert_needs_its_device_id)

        # -- production mode: the plain listener ---------------------------------------
        def conf(name, port, **env):
            out = os.path.join(s.dir, name)
            e = s.env(COLDCHAIN_ENV="production", MQTT_TLS_PORT=str(harness.free_port()),
                      MQTT_TLS_CERT=os.path.join(s.tls_dir, "server.crt"),
                      MQTT_TLS_KEY=os.path.join(s.tls_dir, "server.key"))
            e.pop("MQTT_BIND", None)
            e.pop("MQTT_TLS_BIND", None)
            e.update(env)
            p = subprocess.run(["sh", BROKER_CONF, out, str(port), s.db_url, harness.PLUGIN,
                                s.mqtt_user], env=e, capture_output=True, text=True)
            return p, os.path.join(out, "mosquitto.conf"), int(e["MQTT_TLS_PORT"])

        def listeners(path):
            with open(path) as f:
                return [l.split()[1:] for l in f if l.startswith("listener ")]

        def production_refuses_placeholder_secrets():
            # .env.example's placeholders are public: a copy left as it is (cp .env.example
            # .env; docker compose up) let anyone sign an admin token (JWT_SECRET, 43
            # characters, passed the 32 minimum) and log in to the broker as the operator
            # (MQTT_PASSWORD: devices/# and alerts/# read and write). In production every
            # program that reads them refuses one, naming the variable, not echoing it.
            with open(os.path.join(harness.ROOT, ".env.example")) as f:
                example = dict(l.strip().split("=", 1) for l in f
                               if "=" in l and not l.lstrip().startswith("#"))
            jwt, mqtt_pw = example["JWT_SECRET"], example["MQTT_PASSWORD"]
            p, _, _ = conf("prod-placeholder", harness.free_port(), MQTT_PASSWORD=mqtt_pw)
            expect(p.returncode != 0 and "MQTT_PASSWORD" in p.stderr,
                   "broker_conf.sh took the placeholder password: %s" % p.stderr)
            good = "0123456789abcdef" * 4
            for prog, env, var in (("apid", {"JWT_SECRET": jwt}, "JWT_SECRET"),
                                   ("apid", {"JWT_SECRET": good, "MQTT_PASSWORD": mqtt_pw},
                                    "MQTT_PASSWORD"),
                                   ("ingestd", {"JWT_SECRET": good, "MQTT_PASSWORD": mqtt_pw},
                                    "MQTT_PASSWORD")):
                e = s.env(COLDCHAIN_ENV="production", HTTP_PORT=str(harness.free_port()),
                          INGEST_METRICS_PORT=str(harness.free_port()), **env)
                p = subprocess.run([os.path.join(harness.BUILD, prog)], env=e,
                                   capture_output=True, text=True, timeout=30)
                expect(p.returncode == 2 and var in p.stderr,
                       "%s with %s from .env.example: exit %s, %s"
                       % (prog, var, p.returncode, p.stderr[-300:]))
                expect(env[var] not in p.stderr, "%s echoed the secret" % prog)
        cases.run("production_refuses_the_placeholder_secrets_of_env_example",
                  production_refuses_placeholder_secrets)

        def production_plain_loopback_only():
            p, _, _ = conf("prod-any", harness.free_port(), MQTT_BIND="0.0.0.0")
            expect(p.returncode != 0 and "loopback" in p.stderr,
                   "production with MQTT_BIND=0.0.0.0 accepted: %s" % p.stderr)
            port = harness.free_port()
            p, path, tls_port = conf("prod", port)
            expect(p.returncode == 0, p.stderr)
            ls = listeners(path)
            # Plain on loopback; TLS, for devices, on every address (production's default).
            expect(sorted(ls) == sorted([[str(port), "127.0.0.1"], [str(tls_port), "0.0.0.0"]]),
                   ls)
            name = "mosquitto-prod"
            proc = s._spawn(name, ["mosquitto", "-c", path])
            try:
                harness.wait_port(port, proc=proc)
                # The address other hosts would use: the one of the default route, if any.
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    try:
                        u.connect(("192.0.2.1", 9))
                        outside = u.getsockname()[0]
                    except OSError:
                        outside = None
                if outside and not outside.startswith("127."):
                    with socket.socket() as t:
                        t.settimeout(2)
                        expect(t.connect_ex((outside, port)) != 0,
                               "plain MQTT reachable on %s:%d" % (outside, port))
                    with socket.socket() as t:
                        t.settimeout(2)
                        expect(t.connect_ex((outside, tls_port)) == 0,
                               "TLS listener not reachable on %s:%d" % (outside, tls_port))
                else:
                    print("note: no non-loopback address here; checked the config only")
                c = s.mqtt_client(a, s.keys[a])  # the stack's own broker: loopback works
                close(c)
            finally:
                s.stop(name)
        cases.run("production_plain_listener_loopback_only", production_plain_loopback_only)

        def production_plain_off():
            p, path, tls_port = conf("prod-off", 0)
            expect(p.returncode == 0, p.stderr)
            ls = listeners(path)
            expect(ls == [[str(tls_port), "0.0.0.0"]], ls)
            p, _, _ = conf("prod-none", 0, MQTT_TLS_PORT="0")
            expect(p.returncode != 0, "a config with no listener at all was written")
        cases.run("production_plain_listener_off_with_port_0", production_plain_off)
    cases.exit()


if __name__ == "__main__":
    main()
