#!/usr/bin/python3
"""Writes the committed seed corpora, tests/fuzz/corpus/<target>/, from the cases below:
small, meaningful inputs (valid readings, arrays, ISO times, CSV files, tokens, frames,
topics) in each target's input format (see the comment at the top of each fuzz_*.c).
Run it again after changing a target's format; files are named by content hash, so
regression inputs copied in by hand (crash-*, see README.md) are left alone."""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
JWT_KEY = b"fuzz-jwt-key-0123456789abcdef-32"  # fuzz_jwt.c KEY
NOW_S = 1764000000  # fuzz_*.c NOW_S / NOW_MS


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def iso(s):
    import datetime
    t = datetime.datetime.fromtimestamp(s, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(header, payload, key=JWT_KEY):
    h = b64(header.encode())
    p = b64(payload.encode())
    sig = hmac.new(key, (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64(sig)


def mask_frame(op, payload, fin=True, key=b"\x11\x22\x33\x44", announce=None):
    n = len(payload) if announce is None else announce
    head = bytes([(0x80 if fin else 0) | op])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def main():
    ts = iso(NOW_S - 60)
    reading = {"ts": ts, "temperature": 4.2, "humidity": 55.0, "powerStatus": True,
               "doorStatus": False, "batteryLevel": 88}
    # fuzz_validate: 0x00 readings payload, 0x01 status payload
    for doc in [reading, {"temperature": -18.5}, [reading, {"temperature": 151}],
                [{"temperature": 3, "ts": iso(NOW_S - 40 * 86400)}],
                {"temperature": "4"}, [], {"temperature": 1e308}, {"temperature": 4, "ts": "x"}]:
        put("validate", b"\x00" + json.dumps(doc).encode())
    put("validate", b"\x00" + ("[" * 40 + "]" * 40).encode())
    put("validate", b"\x00" + json.dumps([{"temperature": i % 50} for i in range(120)]).encode())
    put("validate", b"\x00\xff\xfe{}")
    for doc in [{"online": True, "firmwareVersion": "1.2.3"}, {"online": False},
                {"online": "yes"}, {"firmwareVersion": "x" * 70, "online": True}, [1]]:
        put("validate", b"\x01" + json.dumps(doc).encode())

    # fuzz_ingest: 0x00 devices/DA1/readings, 0x02 devices/DA1/status, 0x04 an unknown
    # device, 0x06 topic\0payload, 0x01 HTTP readings for DA1 (all or nothing)
    for sel, doc in [(0, reading), (0, [reading, {"temperature": 151}, reading]), (1, [reading, {"temperature": "x"}]),
                     (1, {"temperature": 9.5, "ts": iso(NOW_S - 30)}), (2, {"online": True, "firmwareVersion": "2.0"}),
                     (4, reading), (0, [{"temperature": 30, "ts": iso(NOW_S - 600 + 60 * i)} for i in range(10)]),
                     (0, [{"temperature": 4, "powerStatus": False, "ts": iso(NOW_S - 300 + 30 * i)} for i in range(8)])]:
        put("ingest", bytes([sel]) + json.dumps(doc).encode())
    put("ingest", b"\x00" + b"[" * 5000)
    put("ingest", b"\x06devices/DA2/readings\x00" + json.dumps(reading).encode())
    put("ingest", b"\x06devices//readings\x00{}")
    put("ingest", b"\x06devices/DA1/readings/extra\x00{}")
    put("ingest", b"\x06devices/DA1/errors\x00" + b"x" * 5000)

    # fuzz_log_quote: buffer size - 8, then a value a client chose
    for cap, v in [(248, "/api/nothing status=200 user=4 addr=10.9.9.9"), (0, "GET"), (10, "/api/\u00e9t\u00e9"),
                   (248, 'a"b\\c\nd\re\tf\x7f'), (30, "x" * 200), (8, "\\x41...")]:
        put("log_quote", bytes([cap]) + v.encode())

    # fuzz_json: documents at and around the depth bound, brackets inside strings
    for doc in ["{}", "[]", "1", '"x"', "[" * 32 + "]" * 32, "[" * 33 + "]" * 33,
                '{"a":' * 32 + "1" + "}" * 32, '{"a":' * 33 + "1" + "}" * 33,
                '["[[[[", "\\"[[[", {"k": "]]]"}]', "[" * 2000, "]]]]][[[", '"\\\\"[[',
                '{"a":[1,2,{"b":null}],"c":"\\u005b"}', "[" * 31 + '"' + "[" * 50 + '"' + "]" * 31]:
        put("json", doc)

    # fuzz_jwt: 0x00 raw access token, 0x12 raw refresh token, 0x01 signed header\0payload
    # (access), 0x10 the same wanting a refresh token, 0x02 claims for a round trip
    hdr = '{"alg":"HS256","typ":"JWT"}'
    access = json.dumps({"sub": "2", "role": "CUSTOMER", "typ": "access", "iat": NOW_S - 10,
                         "exp": NOW_S + 900, "jti": "abc", "ver": 1})
    refresh = json.dumps({"sub": "4", "role": "ADMIN", "typ": "refresh", "iat": NOW_S - 10,
                          "exp": NOW_S + 86400, "jti": "def", "fam": "ZmFtaWx5"})
    put("jwt", b"\x00" + token(hdr, access).encode())
    put("jwt", b"\x12" + token(hdr, refresh).encode())
    put("jwt", b"\x00" + token('{"alg":"none"}', access).encode())
    put("jwt", b"\x00" + token(hdr, access, b"another-key-another-key-1234").encode())
    put("jwt", b"\x00" + (b64(hdr.encode()) + "." + b64(b"[" * 1400) + ".AAAA").encode())
    put("jwt", b"\x01" + hdr.encode() + b"\x00" + access.encode())
    put("jwt", b"\x10" + hdr.encode() + b"\x00" + refresh.encode())
    put("jwt", b"\x01" + hdr.encode() + b"\x00" + b"[" * 1400)
    put("jwt", b"\x01" + hdr.encode() + b"\x00" + b'{"sub":"2","role":"CUSTOMER","typ":"access","iat":1.5e9,"exp":1e300}')
    put("jwt", b"\x01" + b'{"alg":"HS256","typ":"JWT","x":' + b"[" * 100 + b"\x00" + access.encode())
    put("jwt", b"\x02" + struct.pack("<QQQQ", 10, 1 | 4, 5 | (1000 << 16), 3) + b"ZmFtaWx5")
    put("jwt", b"\x02" + struct.pack("<QQQQ", 7, 2, 50 | (10 << 16), 0))

    # fuzz_time: 0x00 string to parse, 0x01 eight bytes of epoch ms to format
    for s in ["2026-11-25T06:00:00.000Z", "2026-11-25T06:00:00Z", "2026-11-25", "2024-02-29T23:59:59.999+14:00",
              "2023-02-29T00:00:00Z", "0000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z",
              "2026-11-25 06:00:00.123456789-05:30", "2026-11-25T24:00:00Z", "2026-11-25T06:00:00+1400"]:
        put("time", b"\x00" + s.encode())
    for ms in [0, NOW_S * 1000, -1, 253402300799999, -62167219200000, 2**62]:
        put("time", b"\x01" + struct.pack("<q", ms) + b"\x00")

    # fuzz_http_body: bodies of the routes with a JSON body
    for doc in ['{"email":"admin@coldchain.local","password":"Admin123!"}', '{"refreshToken":"x.y.z"}',
                '{"name":"Freezer 1","minTemp":-25,"maxTemp":-15,"coldCellId":3,"enabled":true}',
                '{"name":""}', '{"name":"\\u0000"}', "[1]", "", "{} x", '{"name":' * 40 + "1" + "}" * 40,
                "[" * 10000, '{"name":"' + "é" * 120 + '","minTemp":1e999}']:
        put("http_body", doc)

    # fuzz_http_query: selector byte (see LLVMFuzzerTestOneInput), then the string
    for sel, s in [(0, "limit=50&offset=100"), (0, "limit=%35%30"), (1, "range=24h&x=%zz"),
                   (8, "from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z"), (0x40, "limit=123456789"),
                   (16, "coldCellId=3&coldCellId=4"), (18, "token=a.b.c&a"),
                   (2, "limit=500&offset=0&coldCellId=7&status=ACTIVE&type=HIGH_TEMP&range=7d"),
                   (2, "from=2026-01-01T00:00:00Z&to=2027-03-01T00:00:00Z"), (2, "limit=0&offset=-1&range=1y"),
                   (3, "/api/users/5"), (11, "/api/users"), (19, "/api/users/5/customers/2"),
                   (35, "/api/users/007"), (3, "/api/readings/coldcells/12/readings"),
                   (11, "/api/readings/devices/SN-1/readings"), (3, "/api/alerts/99999999999999999999"),
                   (19, "/api/alerts/3/resolve"), (3, "//api//users/"),
                   (6, "10.0.0.1"), (14, "203.0.113.9, 10.9.9.9"), (14, "1.2.3.4 status=200 user=4"),
                   (14, "::1"), (14, "garbage")]:
        put("http_query", bytes([sel]) + s.encode())
    for lst, org in [("https://a.example,https://b.example", "https://b.example"), ("*", "http://x"),
                     ("https://a.example/", "https://a.example"), ("", "https://a.example")]:
        put("http_query", b"\x04" + lst.encode() + b"\x00" + org.encode())

    # fuzz_bulk: 0x00 CSV, 0x01 JSON
    for csv in ["serialNumber,coldCellId,firmwareVersion\nSN-1,3,1.0\nSN-2,3,\n",
                "coldCellId,serialNumber\r\n1,A\r\n2,B\r\n", 'serialNumber,coldCellId\n"SN,1",3\n"a""b",2\n',
                "serialNumber,coldCellId\nSN-1,0\nSN 2,x\n", "serialNumber\nSN-1\n", "\n\n\n",
                'serialNumber,coldCellId,firmwareVersion\n"multi\nline",1,"' + "v" * 300 + '"\n']:
        put("bulk", b"\x00" + csv.encode())
    for doc in ['[{"serialNumber":"SN-1","coldCellId":3,"firmwareVersion":"1.0"}]',
                '[{"serialNumber":"SN-1","coldCellId":3},{"serialNumber":"SN-1","coldCellId":3}]',
                '[{"serialNumber":5,"coldCellId":"3"}]', "{}", "[]", "[" * 5000]:
        put("bulk", b"\x01" + doc.encode())

    # fuzz_auth_rules: access byte (0 read, 1 write, 2 subscribe, 3 unsubscribe), serial\0topic
    for acc, serial, other in [(1, "SN-1", "devices/SN-1/readings"), (1, "SN-1", "devices/SN-1/status"),
                               (1, "SN-1", "devices/SN-2/readings"), (2, "SN-1", "devices/SN-1/#"),
                               (2, "SN-1", "devices/+/readings"), (2, "SN-1", "#"), (0, "SN-1", "devices/SN-1/errors"),
                               (3, "SN-1", "anything"), (1, "coldchain-ingestd", "devices/coldchain-ingestd/readings"),
                               (0, "SN-1", "SN-1"), (0, "SN-1", "coldchain-ingestd"), (1, "SN+1", "devices/SN+1/readings"),
                               (1, "a" * 64, "devices/" + "a" * 64 + "/readings"), (1, "a" * 65, "x")]:
        put("auth_rules", bytes([acc]) + serial.encode() + b"\x00" + other.encode())

    # ... 0x80: certificate URIs (length byte + bytes each), 0xc0: username\0common name
    def uris(*us):
        return b"\x80" + b"".join(bytes([len(u)]) + u for u in us)
    for u in [uris(b"urn:coldchain:device:42"), uris(b"URN:Coldchain:Device:7", b"https://x"),
              uris(b"urn:coldchain:device:1", b"urn:coldchain:device:1"), uris(b"urn:coldchain:device:042"),
              uris(b"urn:coldchain:device:9223372036854775807"), uris(b"urn:coldchain:device:9223372036854775808"),
              uris(b"urn:coldchain:device:5\x00"), uris(*([b"a"] * 9)), uris(b"urn:coldchain:device:")]:
        put("auth_rules", u)
    for user, cn in [(b"SN-1", b"SN-1"), (b"SN-1", b"SN-1\x00x"), (b"coldchain-x", b"coldchain-x"), (b"SN-1", b"SN-2")]:
        put("auth_rules", b"\xc0" + user + b"\x00" + cn)

    # fuzz_feed: 0-3 a known topic (DA1 readings, DB1 readings, alerts/1, alerts/3), else topic\0payload
    put("feed", b"\x00" + json.dumps(reading).encode())
    put("feed", b"\x01" + json.dumps([reading, {"temperature": 500}]).encode())
    put("feed", b"\x02" + b'{"id":7,"coldCellId":1,"type":"HIGH_TEMP","status":"ACTIVE"}')
    put("feed", b"\x03" + b'{"id":8,"coldCellId":1,"type":"HIGH_TEMP"}')
    put("feed", b"\x02" + b'{"type":"ping"}')
    put("feed", b"\x04devices/NOPE/readings\x00" + json.dumps(reading).encode())
    put("feed", b"\x04alerts/2\x00{}")
    put("feed", b"\x04alerts/-1\x00{}")
    put("feed", b"\x04devices/DA2/status\x00{\"online\":true}")
    put("feed", b"\x02" + b"[" * 40)

    # fuzz_wsframe: 0x00 raw client bytes, 0x01/0x11 a message to frame (text/binary; the
    # top three bits place the fragment split), 0x02 close code + reason, 0x03 a key
    ping = mask_frame(0x1, b'{"type":"ping"}')
    put("wsframe", b"\x00" + ping)
    put("wsframe", b"\x00" + mask_frame(0x9, b"hi") + ping + mask_frame(0x8, struct.pack(">H", 1000) + b"bye"))
    put("wsframe", b"\x00" + mask_frame(0x1, b"", announce=300 * 1024 * 1024))
    put("wsframe", b"\x00" + mask_frame(0x1, b"abc", fin=False) + mask_frame(0x0, b"def"))
    put("wsframe", b"\x00" + mask_frame(0x2, bytes(range(200))))
    put("wsframe", b"\x00" + mask_frame(0x1, b"\xc3\x28"))
    put("wsframe", b"\x00\x81\x05hello")  # unmasked
    put("wsframe", b"\x00" + mask_frame(0x9, b"x" * 126))
    put("wsframe", b"\x41" + b'{"type":"ping"}')
    put("wsframe", b"\x91" + bytes(range(256)) * 4)
    put("wsframe", b"\xe1" + "€uro".encode())
    put("wsframe", b"\x02" + struct.pack(">H", 1009) + b"message too big")
    put("wsframe", b"\x02" + struct.pack(">H", 4401) + "é".encode() * 80)
    put("wsframe", b"\x03dGhlIHNhbXBsZSBub25jZQ==")
    put("wsframe", b"\x03dGhlIHNhbXBsZSBub25jZQ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
