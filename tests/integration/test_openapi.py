"""The OpenAPI document against apid's live routing table.

`build/apid --routes` prints the routing table ("METHOD /path/:param"); docs/openapi.yaml
must document exactly those routes (":param" is "{param}" there, same names). A route in
the table but not in the document, or in the document but not in the table, fails and is
named. Also: docs/openapi.json is what docs/openapi.yaml gives (`make openapi`), every $ref
resolves, every operation has its error answers, and apid serves the document at
GET /api/openapi.json. The broker endpoints under /internal/ (apid/h_mqtt_auth.c) are left
out on purpose: they are not the public API, and docs/scaling.md documents them."""
import json
import os
import re
import subprocess
import sys

import yaml

from harness import BUILD, ROOT, Cases, Stack

# tests/integration/run.py may run this file beside another one: it checks no duration
# and no load-dependent bound.
RUN_SIDE_BY_SIDE = True

DOC_YAML = os.path.join(ROOT, "docs", "openapi.yaml")
DOC_JSON = os.path.join(ROOT, "docs", "openapi.json")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Operations that need no bearer token (security: []).
PUBLIC = {("POST", "/api/auth/login"), ("POST", "/api/auth/refresh"), ("GET", "/health"),
          ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/api/openapi.json"),
          ("GET", "/api/ws"), ("POST", "/api/readings/devices/{serialNumber}/readings")}


INTERNAL = "/internal/"


def table_routes(internal=False):
    """The public routes of the table, or with internal=True those under /internal/."""
    p = subprocess.run([os.path.join(BUILD, "apid"), "--routes"], capture_output=True,
                       text=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError("apid --routes exited %d: %s" % (p.returncode, p.stderr))
    out = set()
    for line in p.stdout.splitlines():
        if not line.strip():
            continue
        method, path = line.split(None, 1)
        if path.strip().startswith(INTERNAL) != internal:
            continue
        out.add((method.upper(), re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"{\1}", path.strip())))
    if not out:
        raise AssertionError("apid --routes printed nothing")
    return out


def load_doc():
    with open(DOC_YAML, encoding="utf-8") as f:
        return yaml.safe_load(f)


def doc_routes(doc):
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in METHODS
            if m in item}


def fmt(routes):
    return ", ".join("%s %s" % r for r in sorted(routes, key=lambda r: (r[1], r[0])))


def resolve(doc, ref):
    if not ref.startswith("#/"):
        raise AssertionError("external $ref %s" % ref)
    node = doc
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            raise AssertionError("unresolved $ref %s" % ref)
        node = node[part]
    return node


def walk_refs(node, found):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                found.append(v)
            else:
                walk_refs(v, found)
    elif isinstance(node, list):
        for v in node:
            walk_refs(v, found)


def main():
    cases = Cases()
    doc = load_doc()
    table = table_routes()
    documented = doc_routes(doc)

    def json_in_sync():
        p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "gen_openapi.py"),
                            "--check", DOC_YAML, DOC_JSON], capture_output=True, text=True)
        if p.returncode != 0:
            raise AssertionError(p.stderr.strip() or "docs/openapi.json out of date")
    cases.run("openapi_json_generated_from_yaml", json_in_sync)

    def table_in_doc():
        missing = table - documented
        if missing:
            raise AssertionError("%d route(s) of apid missing from docs/openapi.yaml: %s"
                                 % (len(missing), fmt(missing)))
    cases.run("every_apid_route_documented", table_in_doc)

    def doc_in_table():
        missing = documented - table
        if missing:
            raise AssertionError("%d documented route(s) missing from apid's routing table: %s"
                                 % (len(missing), fmt(missing)))
    cases.run("every_documented_route_in_apid", doc_in_table)

    def internal_left_out():
        inner = table_routes(internal=True)
        if not inner:
            raise AssertionError("apid --routes lists no %s route" % INTERNAL)
        leaked = {r for r in documented if r[1].startswith(INTERNAL)}
        if leaked:
            raise AssertionError("internal routes in the public document: %s" % fmt(leaked))
    cases.run("internal_routes_not_in_public_document", internal_left_out)

    def refs_resolve():
        refs = []
        walk_refs(doc, refs)
        for r in set(refs):
            resolve(doc, r)
        if len(refs) < 50:
            raise AssertionError("only %d $refs: the shared components are not used" % len(refs))
    cases.run("every_ref_resolves", refs_resolve)

    def error_shape():
        err = doc["components"]["schemas"]["Error"]
        inner = err["properties"]["error"]
        if err.get("required") != ["error"] or set(inner["required"]) != {"code", "message"}:
            raise AssertionError("Error schema is not the SPEC §5 shape")
        codes = set(inner["properties"]["code"]["enum"])
        for c in ("VALIDATION_ERROR", "BAD_JSON", "UNAUTHORIZED", "TOKEN_EXPIRED",
                  "INVALID_CREDENTIALS", "FORBIDDEN", "NOT_FOUND", "CONFLICT",
                  "PAYLOAD_TOO_LARGE", "RATE_LIMITED", "INTERNAL"):
            if c not in codes:
                raise AssertionError("Error code %s missing" % c)
        sch = doc["components"]["securitySchemes"]
        if sch["bearerAuth"] != {**sch["bearerAuth"], "type": "http", "scheme": "bearer",
                                 "bearerFormat": "JWT"}:
            raise AssertionError("bearerAuth is not bearer JWT")
        if (sch["deviceKey"]["type"], sch["deviceKey"]["in"], sch["deviceKey"]["name"]) != \
                ("apiKey", "header", "x-device-key"):
            raise AssertionError("deviceKey is not the x-device-key header")
    cases.run("error_component_and_security_schemes", error_shape)

    def operations_complete():
        problems = []
        ids = set()
        for path, item in doc["paths"].items():
            for m in METHODS:
                op = item.get(m)
                if op is None:
                    continue
                name = "%s %s" % (m.upper(), path)
                resp = op.get("responses", {})
                codes = set(resp)
                if not any(c.startswith("2") or c == "101" for c in codes):
                    problems.append(name + ": no success answer")
                public = (m.upper(), path) in PUBLIC
                if public != (op.get("security") == [] or "deviceKey" in json.dumps(
                        op.get("security", ""))):
                    problems.append(name + ": security does not match who may call it")
                if not public and "401" not in codes:
                    problems.append(name + ": no 401")
                if path.startswith("/api/") and "429" not in codes:
                    problems.append(name + ": no 429")
                if "{" in path and not public and "404" not in codes and \
                        not path.startswith("/api/users"):
                    problems.append(name + ": no 404")
                if m in ("post", "put", "patch") and "requestBody" in op and "400" not in codes:
                    problems.append(name + ": a body but no 400")
                for c, r in resp.items():
                    if c[0] in "45" and "$ref" not in r and "content" not in r:
                        problems.append(name + ": error %s has no body" % c)
                params = set(re.findall(r"{([^}]+)}", path))
                declared = {p.get("name") for p in item.get("parameters", []) + op.get(
                    "parameters", []) for p in [resolve(doc, p["$ref"]) if "$ref" in p else p]
                    if p.get("in") == "path"}
                if params != declared:
                    problems.append(name + ": path parameters %s declared %s" % (params, declared))
                if op.get("operationId") in ids:
                    problems.append(name + ": duplicate operationId")
                ids.add(op.get("operationId"))
        if problems:
            raise AssertionError("; ".join(problems))
    cases.run("every_operation_has_answers_errors_and_params", operations_complete)

    with Stack(seed=False, ingestd=False) as s:
        def served():
            st, headers, body = s.http("GET", "/api/openapi.json")
            if st != 200:
                raise AssertionError("GET /api/openapi.json: %s %r" % (st, body))
            if "application/json" not in headers.get("Content-Type", ""):
                raise AssertionError("content type %r" % headers.get("Content-Type"))
            with open(DOC_JSON, encoding="utf-8") as f:
                want = json.load(f)
            if body != want:
                raise AssertionError("served document differs from docs/openapi.json")
            if body != doc:
                raise AssertionError("served document differs from docs/openapi.yaml")
        cases.run("apid_serves_openapi_json", served)

    print("openapi: %d routes in apid, %d documented" % (len(table), len(documented)))
    cases.exit()


if __name__ == "__main__":
    sys.exit(main())
