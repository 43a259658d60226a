"""Helpers shared by the HTTP API tests (test_api_*.py): sign-in, JWT forging with the
stack's own secret, and raw HTTP for what urllib cannot send (oversized or chunked
bodies, odd methods)."""
import base64
import hashlib
import hmac
import json
import os
import socket

import harness

# Limits high enough that no test but the rate-limit one ever meets them.
NO_LIMITS = {"RATE_LIMIT_API": "1000000", "RATE_LIMIT_AUTH": "1000000"}

SEED_USERS = {
    "tech": ("tech@example.com", "technician123"),
    "customer1": ("customer1@example.com", "customer123"),
    "customer2": ("customer2@example.com", "customer123"),
    "admin": ("admin@example.com", "admin123"),
}


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


def expect_error(res, status, code):
    st, _, body = res
    expect(st == status, "status %s, want %s: %r" % (st, status, body))
    expect(isinstance(body, dict) and isinstance(body.get("error"), dict),
           "no SPEC error object: %r" % (body,))
    expect(body["error"].get("code") == code,
           "code %r, want %r: %r" % (body["error"].get("code"), code, body))
    expect(isinstance(body["error"].get("message"), str), "no message: %r" % (body,))


def login(stack, who):
    email, password = SEED_USERS[who]
    st, _, body = stack.http("POST", "/api/auth/login", {"email": email, "password": password})
    expect(st == 200, "login %s: %s %r" % (who, st, body))
    return body


def token(stack, who):
    return login(stack, who)["accessToken"]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_secret(stack):
    with open(os.path.join(stack.data, "jwt.secret")) as f:
        return f.read().strip().encode()


def forge(header, claims, key):
    """A JWT with these header and claims, signed HS256 with key (None: no signature)."""
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    c = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing = (h + "." + c).encode()
    sig = b64url(hmac.new(key, signing, hashlib.sha256).digest()) if key is not None else ""
    return h + "." + c + "." + sig


def raw_http(stack, request_bytes, read_timeout=10):
    """Sends raw bytes, returns (status, headers dict lower-cased, body bytes)."""
    s = socket.create_connection(("127.0.0.1", stack.http_port), timeout=read_timeout)
    try:
        s.sendall(request_bytes)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:length]
    finally:
        s.close()


Stack = harness.Stack
Cases = harness.Cases
