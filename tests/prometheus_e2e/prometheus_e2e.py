#!/usr/bin/env python3
"""End to end with a real Prometheus: drgate's metrics, the dashboard's queries and the alert rules.

Starts commserv-sim (TLS), drgate and /usr/bin/prometheus on loopback ports chosen at run time.
Prometheus scrapes drgate every second as job "drgate" and evaluates
deploy/prometheus/drgate-alerts.yaml every second. Then:

1. waits for the first scrape (every drgate_* series exists at 0 from startup, so increase() sees
   the outcomes below);
2. one full DR backup that succeeds (drgatectl backup --wait, exit 0) and one the CommServe fails
   (drgatectl backup, then POST /_sim/jobs/{id} {"status": "Failed", ...}, then drgatectl backup
   --wait with the same request id: deduplicated, exit 1);
3. waits until Prometheus has scraped both outcomes (drgate_backup_jobs_finished_total);
4. evaluates through /api/v1/query every query of deploy/grafana/drgate-dashboard.json (template
   variables replaced: $commcell=cs1, $job=drgate, $__interval/$__rate_interval=1m) and every alert
   expression as Prometheus loaded it (/api/v1/rules, matched against the rule file's alerts):
   each must answer status "success"; panels without a trailing "> 0" filter must return data;
   the variables' label_values() must list cs1 and drgate; every rule must be healthy;
5. checks the alert expressions' results against what happened (DrgateDrBackupFailed has a
   series {commcell="cs1", backup_type="full", state="failed"}, the others none) and that
   /api/v1/alerts has DrgateDrBackupFailed pending or firing.

Every process is stopped at the end (SIGTERM, then SIGKILL), also on failure; their output is
printed when a check fails. Standard library only; about 20 s.

usage: prometheus_e2e.py --prometheus P --drgate D --drgatectl C --sim S --source-dir REPO
"""
import argparse
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from proclib import CHILD_ENV, Failure, Proc, log  # noqa: E402

DEADLINE = time.monotonic() + 90  # the whole run; CTest's TIMEOUT is above it
VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "5m",
             "$commcell": "cs1", "$job": "drgate"}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, data=None, ctx=None, timeout=5):
    req = urllib.request.Request(url, data=data.encode() if data is not None else None,
                                 headers={"Content-Type": "application/json"} if data else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ctx))
    with opener.open(req, timeout=timeout) as r:
        return r.status, r.read().decode()


def eventually(what, fn, timeout, interval=0.25):
    """Calls fn until it returns a truthy value; Failure after timeout (or the global deadline)."""
    end = min(time.monotonic() + timeout, DEADLINE)
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
            last = e
        if time.monotonic() >= end:
            raise Failure(f"timed out waiting for {what} (last: {last!r})")
        time.sleep(interval)


class PromAPI:
    def __init__(self, base):
        self.base = base

    def get(self, path, **params):
        q = urllib.parse.urlencode(params, doseq=True)
        try:
            _, body = http(f"{self.base}{path}?{q}")
        except urllib.error.HTTPError as e:  # 400/422: PromQL errors come with a JSON body
            body = e.read().decode()
        return json.loads(body)

    def query(self, expr):
        return self.get("/api/v1/query", query=expr)

    def values(self, expr):
        """{frozenset(labels): value} of an instant query that must succeed."""
        r = self.query(expr)
        if r.get("status") != "success":
            raise Failure(f"query failed: {expr}: {r.get('errorType')}: {r.get('error')}")
        return {frozenset(s["metric"].items()): float(s["value"][1]) for s in r["data"]["result"]}


def run_ctl(drgatectl, server, args, timeout=30):
    argv = [drgatectl, "--server", server, "--output", "json", "--timeout", "10s"] + args
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=CHILD_ENV)
    try:
        doc = json.loads(r.stdout) if r.stdout.strip() else {}
    except ValueError:
        doc = {"unparsed": r.stdout}
    return r.returncode, doc, r.stderr


def dashboard_queries(path):
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)

    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    queries, variables = [], []
    for p in walk(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                queries.append((f'panel {p.get("id")} "{p.get("title")}" {t.get("refId", "")}',
                                t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            variables.append((v.get("name"), q))
    return queries, variables


def substitute(expr):
    for var, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + var[1:] + "}", value).replace(var, value)
    if "$" in expr:
        raise Failure(f"unsubstituted variable in: {expr}")
    return expr


def main():
    ap = argparse.ArgumentParser()
    for a in ("--prometheus", "--drgate", "--drgatectl", "--sim", "--source-dir"):
        ap.add_argument(a, required=True)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    rules_file = os.path.join(args.source_dir, "deploy", "prometheus", "drgate-alerts.yaml")
    dashboard = os.path.join(args.source_dir, "deploy", "grafana", "drgate-dashboard.json")

    tmp = tempfile.mkdtemp(prefix="drgate-prom-e2e-")
    procs = []
    failed = True
    start = time.monotonic()
    try:
        # commserv-sim over TLS with its generated certificate; jobs run 1.5 s.
        sim = Proc("commserv-sim", [args.sim, "--listen", "127.0.0.1:0", "--quiet",
                                    "--username", "admin", "--password", "s3cret",
                                    "--cert-out", os.path.join(tmp, "sim-cert"),
                                    "--job-duration-ms", "1500"], DEADLINE)
        procs.append(sim)
        sim_url = sim.wait_for(r"commserv-sim listening on (\S+)")
        sim_cert = sim.wait_for(r"commserv-sim certificate (\S+)")
        sim_ctx = ssl.create_default_context(cafile=sim_cert)
        # The DR backups go to a network share, as they should: DrgateDrBackupNotOffsite stays
        # quiet and the "Where DR backups go" panels have data (docs/dr-history.md).
        status, body = http(f"{sim_url}/_sim/dr-options", json.dumps(
            {"body": {"properties": {"DRDumpLocation": "\\\\backup01\\dr", "UseNetworkShare": 1,
                                     "UseLocalDrive": 0, "DRNumFulls": 5}}}), ctx=sim_ctx)
        if status != 200:
            raise Failure(f"POST /_sim/dr-options: {status} {body}")

        with open(os.path.join(tmp, "password"), "w") as f:
            f.write("s3cret\n")
        config = os.path.join(tmp, "drgate.yaml")
        with open(config, "w") as f:
            f.write("registry: {path: state/drgate.db}\n"
                    "shutdown_grace: 2s\n"
                    "auth: {mode: insecure}\n"
                    "tracking: {poll_interval: 200ms, intent_grace: 31s, intent_give_up: 60s}\n"
                    "commcells:\n"
                    "  - name: cs1\n"
                    f"    url: {sim_url}/commandcenter/api\n"
                    "    username: admin\n"
                    "    password_file: password\n"
                    "    request_timeout: 10s\n"
                    f"    ca_file: {sim_cert}\n")
        drgate = Proc("drgate", [args.drgate, "--config", config, "--grpc-listen", "127.0.0.1:0",
                                 "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"],
                      DEADLINE)
        procs.append(drgate)
        grpc_addr = drgate.wait_for(r"gRPC listening on (\S+)")
        metrics_addr = drgate.wait_for(r"metrics listening on (\S+)")
        log(f"commserv-sim {sim_url}, drgate gRPC {grpc_addr} metrics {metrics_addr}")

        # Prometheus: scrape every 1 s as job "drgate", evaluate the rule file every 1 s.
        prom_port = free_port()
        prom_cfg = os.path.join(tmp, "prometheus.yml")
        with open(prom_cfg, "w") as f:  # JSON is YAML
            json.dump({
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                           "evaluation_interval": "1s"},
                "rule_files": [rules_file],
                "scrape_configs": [{"job_name": "drgate", "metrics_path": "/metrics",
                                    "static_configs": [{"targets": [metrics_addr]}]}],
            }, f, indent=1)
        prom = Proc("prometheus", [args.prometheus, f"--config.file={prom_cfg}",
                                   f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
                                   f"--web.listen-address=127.0.0.1:{prom_port}",
                                   "--log.level=warn"], DEADLINE)
        procs.append(prom)
        api = PromAPI(f"http://127.0.0.1:{prom_port}")
        eventually("Prometheus ready", lambda: http(f"{api.base}/-/ready")[0] == 200, 20)
        log(f"prometheus on 127.0.0.1:{prom_port} ({time.monotonic() - start:.1f}s)")

        # 1. The first scrape: the finished-jobs counters exist at 0.
        eventually("the first scrape of drgate", lambda: api.values(
            'drgate_backup_jobs_finished_total{job="drgate",commcell="cs1",state="failed"}'), 15)

        # 2. One success, one failure.
        rc, doc, err = run_ctl(args.drgatectl, grpc_addr,
                               ["backup", "--commcell", "cs1", "--type", "full",
                                "--request-id", "e2e-ok", "--wait", "--wait-timeout", "30s"])
        if rc != 0:
            raise Failure(f"drgatectl backup --wait (success): exit {rc}: {doc} {err}")
        log("backup e2e-ok: drgatectl exit 0 (succeeded)")

        rc, doc, err = run_ctl(args.drgatectl, grpc_addr,
                               ["backup", "--commcell", "cs1", "--type", "full",
                                "--request-id", "e2e-fail"])
        job_id = (doc.get("job") or {}).get("job_id")
        if rc != 0 or not job_id:
            raise Failure(f"drgatectl backup (to fail): exit {rc}: {doc} {err}")
        status, body = http(f"{sim_url}/_sim/jobs/{job_id}", json.dumps(
            {"status": "Failed", "pendingReason": "e2e: DR backup share full"}), ctx=sim_ctx)
        if status != 200:
            raise Failure(f"POST /_sim/jobs/{job_id}: {status} {body}")
        rc, doc, err = run_ctl(args.drgatectl, grpc_addr,
                               ["backup", "--commcell", "cs1", "--type", "full",
                                "--request-id", "e2e-fail", "--wait", "--wait-timeout", "30s"])
        if rc != 1:
            raise Failure(f"drgatectl backup --wait (failed job {job_id}): exit {rc}, expected 1: "
                          f"{doc} {err}")
        log(f"backup e2e-fail: job {job_id} forced Failed, drgatectl exit 1 (failed)")

        # 3. Prometheus has scraped both outcomes.
        finished = 'sum by (state) (drgate_backup_jobs_finished_total{job="drgate",commcell="cs1"})'
        eventually("both outcomes in Prometheus", lambda: (
            lambda v: v.get(frozenset({("state", "succeeded")})) == 1 and
            v.get(frozenset({("state", "failed")})) == 1)(api.values(finished)), 15)
        # Two rule evaluations after that scrape, so the alerts reflect it.
        time.sleep(2.5)
        log(f"Prometheus has scraped succeeded=1, failed=1 ({time.monotonic() - start:.1f}s)")

        problems = []

        # 4a. Every dashboard query.
        queries, variables = dashboard_queries(dashboard)
        for where, expr in queries:
            q = substitute(expr)
            r = api.query(q)
            if r.get("status") != "success":
                problems.append(f"dashboard {where}: {r.get('errorType')}: {r.get('error')}\n"
                                f"    {q}")
                continue
            n = len(r["data"]["result"])
            may_be_empty = re.search(r">\s*0\s*$", q) is not None
            if n == 0 and not may_be_empty:
                problems.append(f"dashboard {where}: no data with drgate's real metrics:\n    {q}")
            log(f"  ok  {n:2d} series  dashboard {where}")
        for name, q in variables:
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q, re.S)
            if not m:
                problems.append(f"dashboard variable {name}: not label_values(): {q}")
                continue
            r = api.get(f"/api/v1/label/{m.group(2)}/values", **{"match[]": m.group(1)})
            want = VARIABLES.get("$" + name)
            if r.get("status") != "success" or want not in r.get("data", []):
                problems.append(f"dashboard variable {name}: {q} -> {r} (expected {want!r})")
            else:
                log(f"  ok  variable ${name} = {r['data']}")

        # 4b. Every alert expression, as Prometheus loaded it; all rules healthy.
        with open(rules_file, encoding="utf-8") as f:
            file_alerts = re.findall(r"^\s*-\s*alert:\s*(\S+)\s*$", f.read(), re.M)
        rules = api.get("/api/v1/rules")
        loaded = [r for g in rules["data"]["groups"] for r in g["rules"]]
        if sorted(r["name"] for r in loaded if r["type"] == "alerting") != sorted(file_alerts):
            problems.append(f"rules loaded {[r['name'] for r in loaded]} != file {file_alerts}")
        fired = {}
        for rule in loaded:
            if rule.get("health") != "ok" or rule.get("lastError"):
                problems.append(f"rule {rule['name']}: health {rule.get('health')}: "
                                f"{rule.get('lastError')}")
            r = api.query(rule["query"])
            if r.get("status") != "success":
                problems.append(f"alert {rule['name']}: {r.get('errorType')}: {r.get('error')}")
                continue
            fired[rule["name"]] = [s["metric"] for s in r["data"]["result"]]
            log(f"  ok  {len(fired[rule['name']]):2d} series  alert {rule['name']}")

        # 5. What the alerts say about what happened.
        expect_failed = {"commcell": "cs1", "backup_type": "full", "state": "failed"}
        if fired.get("DrgateDrBackupFailed") != [expect_failed]:
            problems.append(f"DrgateDrBackupFailed expr: {fired.get('DrgateDrBackupFailed')}, "
                            f"expected [{expect_failed}]")
        for name, series in fired.items():
            if name != "DrgateDrBackupFailed" and series:
                problems.append(f"{name} expr returns {series}: nothing should alert here")
        alerts = api.get("/api/v1/alerts")["data"]["alerts"]
        states = [(a["labels"].get("alertname"), a["state"], a["labels"].get("state"))
                  for a in alerts]
        if not any(n == "DrgateDrBackupFailed" and s in ("pending", "firing") and st == "failed"
                   for n, s, st in states):
            problems.append(f"/api/v1/alerts has no DrgateDrBackupFailed pending/firing: {states}")
        else:
            log(f"  ok  /api/v1/alerts: {states}")

        if problems:
            raise Failure("\n".join(problems))
        failed = False
        print(f"prometheus_e2e: PASS in {time.monotonic() - start:.1f}s: {len(queries)} dashboard "
              f"queries and {len(variables)} variables, {len(loaded)} alert expressions evaluated "
              f"by Prometheus without error; DrgateDrBackupFailed "
              f"{[s for n, s, _ in states if n == 'DrgateDrBackupFailed'][0]}")
        return 0
    except Failure as e:
        print(f"prometheus_e2e: FAIL after {time.monotonic() - start:.1f}s:\n{e}", file=sys.stderr)
        return 1
    finally:
        for p in reversed(procs):
            rc = p.stop()
            if failed:
                print(f"--- {p.name} (exit {rc}), last lines:\n{p.output()}", file=sys.stderr)
        if args.keep:
            print(f"prometheus_e2e: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
