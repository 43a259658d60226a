#!/usr/bin/python3
"""Generates docs/openapi.json from docs/openapi.yaml (the source), so apid can embed it
with no YAML parser at build time (tools/gen_openapi_c.sh). Needs python3-yaml.

  gen_openapi.py [SRC.yaml [OUT.json]]     write OUT (default docs/openapi.json)
  gen_openapi.py --check [SRC [OUT]]       exit 1 if OUT is not what SRC gives
  gen_openapi.py --routes [SRC]            print "METHOD /path/{param}" per operation
"""
import json
import os
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def load(src):
    with open(src, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1"):
        raise SystemExit("%s: not an OpenAPI 3.1 document" % src)
    return doc


def render(doc):
    # '?' is never written raw, so no C trigraph can appear once embedded.
    text = json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    return text.replace("?", "\\u003f")


def routes(doc):
    out = []
    for path, item in doc.get("paths", {}).items():
        for m in METHODS:
            if m in item:
                out.append("%s %s" % (m.upper(), path))
    return out


def main(argv):
    mode = "write"
    if argv and argv[0] in ("--check", "--routes"):
        mode = argv.pop(0)[2:]
    src = argv[0] if argv else os.path.join(ROOT, "docs", "openapi.yaml")
    out = argv[1] if len(argv) > 1 else os.path.join(ROOT, "docs", "openapi.json")
    doc = load(src)
    if mode == "routes":
        print("\n".join(routes(doc)))
        return 0
    text = render(doc)
    if mode == "check":
        try:
            with open(out, encoding="utf-8") as f:
                same = f.read() == text
        except OSError:
            same = False
        if not same:
            print("%s is out of date: run `make openapi`" % out, file=sys.stderr)
            return 1
        return 0
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
