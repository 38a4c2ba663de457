#!/usr/bin/env python3
"""Validates nvmetrace's JSON output against the schemas next to this script.

    validate.py [--report FILE ...] [--pdus FILE ...] [--events FILE ...] [--json] [--coverage]

--report FILE: a document from `nvmetrace --format json`, checked against
nvmetrace.report-1.schema.json. --pdus FILE: the lines of `nvmetrace pdus --format json`, each
checked against nvmetrace.pdus-1.schema.json. --events FILE: the lines of `nvmetrace monitor` (and the finding lines
of `nvmetrace -i --format json`), each checked against nvmetrace.event-1.schema.json, whose
definitions are completed with the report schema's (the finding object is the report's). Besides the schema, every object's keys must be in
sorted order (as nvmetrace writes them) and appear once, and numbers must be finite.
--coverage lists the fields the schemas define that none of the files used. --json prints the
result as one JSON object. Exit status: 0 when everything is valid, 1 when something is not, 3
when the jsonschema module (Debian: python3-jsonschema, 4.x, draft 2020-12) is missing.
"""
import argparse
import json
import os
import sys

try:
    from jsonschema import Draft202012Validator
except ImportError as e:  # pragma: no cover
    print(f"validate.py: cannot import jsonschema.Draft202012Validator ({e}); install python3-jsonschema "
          f"(apt-get install python3-jsonschema) or `pip install 'jsonschema>=4'`", file=sys.stderr)
    sys.exit(3)

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = {"report": "nvmetrace.report-1.schema.json", "pdus": "nvmetrace.pdus-1.schema.json",
           "events": "nvmetrace.event-1.schema.json"}
KINDS = ("report", "pdus", "events")


class Unsorted(Exception):
    pass


def load_validator(kind):
    with open(os.path.join(HERE, SCHEMAS[kind]), encoding="utf-8") as f:
        schema = json.load(f)
    if kind == "events":
        # The report's definitions, under the event schema's own (which win): one document, so
        # that "#/$defs/finding" resolves with any jsonschema 4.x.
        with open(os.path.join(HERE, SCHEMAS["report"]), encoding="utf-8") as f:
            schema["$defs"] = {**json.load(f)["$defs"], **schema.get("$defs", {})}
    Draft202012Validator.check_schema(schema)
    return schema, Draft202012Validator(schema)


def parse(text, where, problems):
    """json.loads that also reports objects whose keys are not sorted or repeat, and NaN/Infinity."""
    def pairs(items):
        keys = [k for k, _ in items]
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            problems.append(f"{where}: keys not sorted (or repeated): {keys}")
        return dict(items)

    def constant(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)


def schema_paths(schema, node, path, out, seen):
    """Every field path the schema defines (arrays as [])."""
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if ref and ref.startswith("#/"):
        if (ref, path) in seen:
            return
        seen.add((ref, path))
        target = schema
        for part in ref[2:].split("/"):
            target = target[part]
        schema_paths(schema, target, path, out, seen)
    for key, sub in node.get("properties", {}).items():
        out.add(f"{path}.{key}")
        schema_paths(schema, sub, f"{path}.{key}", out, seen)
    if "items" in node:
        schema_paths(schema, node["items"], path + "[]", out, seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            schema_paths(schema, sub, path, out, seen)


def instance_paths(value, path, out):
    if isinstance(value, dict):
        for key, sub in value.items():
            out.add(f"{path}.{key}")
            instance_paths(sub, f"{path}.{key}", out)
    elif isinstance(value, list):
        for sub in value:
            instance_paths(sub, path + "[]", out)


def main():
    ap = argparse.ArgumentParser(description="Validate nvmetrace JSON output against its schemas.")
    ap.add_argument("--report", nargs="+", default=[], metavar="FILE", help="nvmetrace --format json documents")
    ap.add_argument("--pdus", nargs="+", default=[], metavar="FILE", help="nvmetrace pdus --format json output")
    ap.add_argument("--events", nargs="+", default=[], metavar="FILE", help="nvmetrace monitor event lines")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--coverage", action="store_true", help="list schema fields no file used")
    args = ap.parse_args()

    errors, unsorted = [], []
    counts = {k: 0 for k in KINDS}
    used = {k: set() for k in KINDS}
    for kind, files in (("report", args.report), ("pdus", args.pdus), ("events", args.events)):
        if not files:
            continue
        schema, validator = load_validator(kind)
        for name in files:
            with open(name, encoding="utf-8") as f:
                text = f.read()
            if kind == "report":
                docs = [(name, text)]
            else:
                docs = [(f"{name}:{i + 1}", line) for i, line in enumerate(text.split("\n")) if line]
            for where, doc in docs:
                try:
                    value = parse(doc, where, unsorted)
                except ValueError as e:
                    errors.append(f"{where}: not JSON: {e}")
                    continue
                counts[kind] += 1
                instance_paths(value, "", used[kind])
                for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
                    at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path) or "."
                    errors.append(f"{where}: {at}: {e.message[:300]}")

    uncovered = {}
    if args.coverage:
        for kind in KINDS:
            if kind == "events" and not args.events:
                continue
            schema, _ = load_validator(kind)
            defined = set()
            schema_paths(schema, schema, "", defined, set())
            uncovered[kind] = sorted(defined - used[kind])

    result = {"objects": counts, "errors": errors, "unsorted": unsorted, "uncovered": uncovered}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for line in errors + unsorted:
            print(line)
        for kind, paths in uncovered.items():
            for p in paths:
                print(f"{kind}: no file used {p}")
        print(f"{counts['report']} reports, {counts['pdus']} PDU lines, {counts['events']} event lines: "
              f"{len(errors)} schema errors, {len(unsorted)} objects with unsorted keys")
    return 1 if errors or unsorted else 0


if __name__ == "__main__":
    sys.exit(main())
