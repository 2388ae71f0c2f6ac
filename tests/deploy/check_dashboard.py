#!/usr/bin/env python3
"""Checks deploy/grafana/drgate-dashboard.json beyond "is JSON".

- every panel (also inside rows) has a unique id, a title, and targets with an expr;
- every metric name in a panel expr or a template variable query is in known_metrics.txt;
- with --sources FILE...: every drgate/grpc metric in known_metrics.txt is registered in those
  sources (`.Name("...")`), so the list cannot drift from the code;
- with --rules FILE...: every drgate_* / grpc_server_* name in those files (alert rules, their
  tests, runbooks) is in known_metrics.txt too;
- with --promtool PATH: every expr (variables replaced by sample values) parses as PromQL
  (written as recording rules to a temporary file and checked with `promtool check rules`).

Standard library only. Exit 0 when all checks pass, 1 otherwise (the errors on stderr).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

# PromQL words that look like identifiers but are not metric names.
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "atan2"}
# Sample values for Grafana's variables, so that exprs can be parsed.
VARIABLES = {"$__rate_interval": "5m", "$__interval": "5m", "$__range": "1h",
             "$commcell": ".*", "$job": ".*"}


def load_known(path):
    known, registered = set(), {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, kind = line.split()
            registered[name] = kind
            known.add(name)
            if kind == "histogram":
                known.update({name + "_bucket", name + "_sum", name + "_count"})
    return known, registered


def metric_names(expr):
    """The metric names an expr reads (a small PromQL scanner, enough for dashboards)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", expr, re.S)
    if m:  # a variable query: label_values(selector, label)
        expr = m.group(1)
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                                       # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                                      # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\w+|\$\{[^}]*\}", " ", e)                              # variables
    e = re.sub(r"(?<![\w:])[0-9][\w.]*", " ", e)                           # numbers, durations
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("("):          # a function
            continue
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dashboard")
    ap.add_argument("known")
    ap.add_argument("--sources", nargs="*", default=[])
    ap.add_argument("--rules", nargs="*", default=[])
    ap.add_argument("--promtool")
    args = ap.parse_args()

    errors = []
    with open(args.dashboard, encoding="utf-8") as f:
        dash = json.load(f)
    known, registered = load_known(args.known)

    exprs = []  # (where, expr)
    ids = set()
    for p in walk_panels(dash.get("panels", [])):
        where = f'panel {p.get("id")} "{p.get("title")}"'
        if p.get("id") in ids:
            errors.append(f"{where}: duplicate panel id")
        ids.add(p.get("id"))
        if not p.get("title"):
            errors.append(f"{where}: no title")
        if p.get("type") == "row":
            continue
        targets = p.get("targets", [])
        if not targets:
            errors.append(f"{where}: no targets")
        for t in targets:
            if not t.get("expr"):
                errors.append(f"{where}: target {t.get('refId')} has no expr")
            else:
                exprs.append((where, t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            exprs.append((f'variable "{v.get("name")}"', q))
    if not exprs:
        errors.append("no exprs found")

    for where, expr in exprs:
        for name in sorted(metric_names(expr) - known):
            errors.append(f"{where}: unknown metric {name!r} in: {expr}")

    for path in args.rules:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for name in sorted(set(re.findall(r"\b(?:drgate|grpc_server|process)_[A-Za-z0-9_]+", text)) - known):
            errors.append(f"{path}: unknown metric {name!r}")

    if args.sources:
        defined = set()
        for src in args.sources:
            with open(src, encoding="utf-8") as f:
                text = f.read()
            # prometheus-cpp builders (.Name("...")) and families built at scrape time
            # (core/metrics/process_metrics.cc: Add(out, "...", ...)).
            defined.update(re.findall(r'\.Name\("([A-Za-z_:][A-Za-z0-9_:]*)"\)', text))
            defined.update(re.findall(r'\bAdd\(out, "([A-Za-z_:][A-Za-z0-9_:]*)"', text))
        for name, kind in sorted(registered.items()):
            if kind != "scrape" and name not in defined:
                errors.append(f"{args.known}: {name!r} is not registered in {' '.join(args.sources)}")

    if args.promtool:
        rules = {"groups": [{"name": "dashboard", "rules": []}]}
        for i, (where, expr) in enumerate(exprs):
            if expr.startswith("label_values("):
                continue
            e = expr
            for var, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
                e = e.replace(var, value)
            rules["groups"][0]["rules"].append({"record": f"dashboard:expr_{i}", "expr": e})
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(rules, f)  # JSON is YAML
            tmp = f.name
        try:
            r = subprocess.run([args.promtool, "check", "rules", tmp], capture_output=True, text=True)
            if r.returncode != 0:
                errors.append("promtool rejects a dashboard expr:\n" + r.stdout + r.stderr)
        finally:
            os.unlink(tmp)

    for e in errors:
        print("check_dashboard: " + e, file=sys.stderr)
    if not errors:
        print(f"check_dashboard: {len(exprs)} dashboard queries and {len(args.rules)} rule files OK")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
