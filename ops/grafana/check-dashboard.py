#!/usr/bin/env python3
"""Checks the Grafana dashboard's PromQL with promtool.

    python3 ops/grafana/check-dashboard.py ops/grafana/nvmetrace-dashboard.json

Every `expr` of every panel (rows' nested panels too) and the metric of each
`label_values(METRIC, LABEL)` variable query become recording rules in a temporary
rules file, with the dashboard's variables replaced by values PromQL accepts:
$instance by .* and $__rate_interval by 5m. Any other variable left in an
expression is an error (add it here first). `promtool check rules` then parses
them all. Also checked: schemaVersion 39, a `datasource` variable of Prometheus
data sources, an `instance` variable, unique panel ids, and a refId on each
target.

Exit status: 0 when all is well, 1 when something is wrong, 2 for bad usage.
promtool is looked up on PATH, else /usr/bin/promtool (Debian: apt-get install
prometheus); $PROMTOOL overrides both.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SUBSTITUTIONS = [
    (re.compile(r"\$\{instance(:[a-z]+)?\}|\$instance\b"), ".*"),
    (re.compile(r"\$\{__rate_interval\}|\$__rate_interval\b"), "5m"),
]
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$")


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def promtool_path():
    return os.environ.get("PROMTOOL") or shutil.which("promtool") or "/usr/bin/promtool"


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} DASHBOARD.json", file=sys.stderr)
        return 2
    path = argv[1]
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)

    problems = []
    exprs = []  # (where, PromQL)

    if dash.get("schemaVersion") != 39:
        problems.append(f"schemaVersion is {dash.get('schemaVersion')!r}, not 39")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no `datasource` variable of type datasource with query prometheus")
    inst = variables.get("instance")
    if not inst:
        problems.append("no `instance` variable")
    for name, v in variables.items():
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = LABEL_VALUES.match(q)
        if not m:
            problems.append(f"variable {name}: query {q!r} is not label_values(METRIC, LABEL)")
            continue
        exprs.append((f"variable {name}", m.group(1)))

    ids = set()
    for p in walk_panels(dash.get("panels")):
        pid = p.get("id")
        if pid in ids:
            problems.append(f"panel id {pid} used twice")
        ids.add(pid)
        for t in p.get("targets", []):
            where = f"panel {pid} {p.get('title')!r} target {t.get('refId')}"
            if not t.get("refId"):
                problems.append(f"{where}: no refId")
            expr = t.get("expr")
            if not expr or not expr.strip():
                problems.append(f"{where}: no expr")
                continue
            exprs.append((where, expr))

    if not exprs:
        problems.append("no expressions found")

    rules = []
    for i, (where, expr) in enumerate(exprs):
        for pattern, value in SUBSTITUTIONS:
            expr = pattern.sub(value, expr)
        if "$" in expr:
            problems.append(f"{where}: a variable is left after substitution: {expr}")
            continue
        rules.append({"record": f"dashboard:expr_{i}", "expr": expr})

    if problems:
        for p in problems:
            print(f"{path}: {p}", file=sys.stderr)
        return 1

    promtool = promtool_path()
    if not os.access(promtool, os.X_OK):
        print(f"promtool not found ({promtool}): apt-get install prometheus", file=sys.stderr)
        return 1
    # JSON is YAML: promtool reads it as a rules file.
    with tempfile.TemporaryDirectory(prefix="nvmetrace-dashboard-") as tmp:
        rules_path = os.path.join(tmp, "dashboard-rules.yml")
        with open(rules_path, "w", encoding="utf-8") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, indent=2)
        run = subprocess.run([promtool, "check", "rules", rules_path], capture_output=True, text=True)
        sys.stdout.write(run.stdout)
        sys.stderr.write(run.stderr)
        if run.returncode != 0:
            # Name the failing expressions: promtool numbers the rules from 1 in file order.
            for n in sorted({int(n) for n in re.findall(r"rule (\d+)", run.stdout + run.stderr)}):
                if 1 <= n <= len(rules):
                    print(f"  rule {n}: {rules[n - 1]['expr']}", file=sys.stderr)
            print(f"{path}: promtool check rules failed ({run.returncode})", file=sys.stderr)
            return 1
    print(f"{path}: {len(rules)} expressions valid")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
