#!/usr/bin/env python3
"""Crash test: sustained triggers and reads while drgate is SIGKILLed at random moments.

Starts commserv-sim (jobs finish at once, so the 2 full + 1 differential rule never refuses a
trigger) and drgate on one registry, then runs worker threads that trigger DR backups with
distinct request ids through drgatectl (retrying the same request id after a failure, as a
well-behaved caller does) and readers that GetJob acknowledged jobs. A killer SIGKILLs drgate at
random moments and restarts it on the same registry. After the load, drgate is restarted one last
time and left to reconcile its open intents, and the test checks:

  1. every acknowledged job (TriggerBackup answered OK with a job id) is in the registry, with its
     request id (ListJobs and GetJob);
  2. no request id has more than one job in the registry;
  3. the simulator saw no job triggered twice for one request id: every job the simulator started
     is in drgate's registry (a second trigger for a request id would leave a job drgate never
     recorded), each under exactly one request id, and the number of DRBackup POSTs equals the
     number of jobs the simulator started (no POST was refused) and the number of distinct
     request ids that ended with a CommServe job;
  4. no intent is left open, and GetJob of an acknowledged job never answered NOT_FOUND while
     drgate was up.

Only the Python standard library is used. Exit code 0 when every check holds, 1 otherwise.

Usage: crash_test.py --bin-dir build/bin [--kills 3] [--duration 20] [--workers 4] [--seed N]
The short form (CTest crash_test) is 3 kills in about 20 s of load; a longer run:
  tests/crash/crash_test.py --bin-dir build/bin --kills 30 --duration 300
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

COMMCELL = "cs1"


def log(*args):
    print("crash_test:", *args, flush=True)


class Proc:
    """A child process whose stdout is scanned for a line; stderr goes to a log file."""

    def __init__(self, argv, log_path):
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                  stdin=subprocess.DEVNULL)
        self.lines = []

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                if self.p.poll() is not None:
                    raise RuntimeError(f"process exited ({self.p.returncode}) before {pattern!r}")
                continue
            text = line.decode(errors="replace").strip()
            self.lines.append(text)
            m = rx.search(text)
            if m:
                return m.group(1)
        raise RuntimeError(f"timed out waiting for {pattern!r}")

    def kill(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        self.log.close()

    def terminate(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


class Drgate:
    """drgate on fixed ports (so callers keep their address across restarts)."""

    def __init__(self, bin_dir, config, grpc_port, metrics_port, log_path):
        self.argv = [os.path.join(bin_dir, "drgate"), "--config", config, "--grpc-listen",
                     f"127.0.0.1:{grpc_port}", "--metrics-listen", f"127.0.0.1:{metrics_port}",
                     "--log-level", "warn"]
        self.log_path = log_path
        self.proc = None
        self.up = threading.Event()
        self.starts = 0

    def start(self):
        # The previous process's port may linger for a moment after SIGKILL: retry briefly.
        for attempt in range(50):
            self.proc = Proc(self.argv, self.log_path)
            try:
                self.proc.wait_for(r"gRPC listening on (\S+)")
                self.proc.wait_for(r"metrics listening on (\S+)")
                break
            except RuntimeError:
                self.proc.kill()
                if attempt == 49:
                    raise
                time.sleep(0.1)
        self.starts += 1
        self.up.set()

    def kill(self):
        self.up.clear()
        self.proc.kill()

    def stop(self):
        self.up.clear()
        self.proc.terminate()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Ctl:
    def __init__(self, bin_dir, server):
        self.exe = os.path.join(bin_dir, "drgatectl")
        self.server = server

    def run(self, *args, timeout="5s"):
        argv = [self.exe, "--server", self.server, "--output", "json", "--timeout", timeout,
                *args]
        try:
            out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 timeout=30).stdout
        except subprocess.TimeoutExpired:
            return {"error": {"code": "CLIENT_TIMEOUT", "reason": ""}}
        try:
            return json.loads(out)
        except ValueError:
            return {"error": {"code": "BAD_OUTPUT", "reason": out[:200].decode(errors="replace")}}


class Stats:
    def __init__(self):
        self.mu = threading.Lock()
        self.acknowledged = {}   # request id -> job id (TriggerBackup OK)
        self.definitive_errors = {}  # request id -> (code, reason) of a final non-retryable error
        self.kinds = {}  # request id -> the backup type it was first sent with
        self.unsettled = set()   # request ids whose last answer was still UNAVAILABLE
        self.codes = {}          # error code/reason -> count
        self.triggers = 0
        self.gets = 0
        self.get_not_found_while_up = []
        self.violations = []

    def count(self, key):
        with self.mu:
            self.codes[key] = self.codes.get(key, 0) + 1


def trigger_worker(ctl, drgate, stats, prefix, stop, rng):
    n = 0
    while not stop.is_set():
        n += 1
        rid = f"{prefix}-{n}"
        kind = rng.choice(["full", "differential"])
        with stats.mu:
            stats.kinds[rid] = kind  # a retry repeats the request exactly (REQUEST_ID_REUSED)
        settled = False
        for _attempt in range(200):
            if stop.is_set() and _attempt > 0:
                break
            drgate.up.wait(timeout=5)
            reply = ctl.run("backup", "--commcell", COMMCELL, "--type", kind, "--request-id", rid)
            with stats.mu:
                stats.triggers += 1
            if "job" in reply:
                job_id = reply["job"]["job_id"]
                with stats.mu:
                    earlier = stats.acknowledged.get(rid)
                    if earlier is not None and earlier != job_id:
                        stats.violations.append(
                            f"request id {rid} answered job {earlier}, later job {job_id}")
                    stats.acknowledged[rid] = job_id
                    stats.unsettled.discard(rid)
                settled = True
                break
            err = reply.get("error", {})
            code, reason = err.get("code", "?"), err.get("reason", "")
            stats.count(f"{code}/{reason}" if reason else code)
            if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CLIENT_TIMEOUT", "CANCELLED"):
                # drgate is down, restarting, or the outcome is being reconciled: retry the same
                # request id, as a caller must, never a new one.
                with stats.mu:
                    stats.unsettled.add(rid)
                time.sleep(0.2)
                continue
            with stats.mu:
                stats.definitive_errors[rid] = (code, reason)
                stats.unsettled.discard(rid)
            settled = True
            break
        if not settled:
            with stats.mu:
                stats.unsettled.add(rid)


def reader_worker(ctl, drgate, stats, stop, rng):
    while not stop.is_set():
        with stats.mu:
            known = list(stats.acknowledged.items())
        if not known:
            time.sleep(0.05)
            continue
        rid, job_id = rng.choice(known)
        was_up = drgate.up.is_set()
        reply = ctl.run("jobs", "get", "--commcell", COMMCELL, job_id)
        with stats.mu:
            stats.gets += 1
        if "job_id" in reply:
            if reply.get("request_id") != rid:
                with stats.mu:
                    stats.violations.append(f"GetJob {job_id}: request id {reply.get('request_id')}"
                                            f", acknowledged for {rid}")
            continue
        err = reply.get("error", {})
        code = err.get("code", "?")
        stats.count("get:" + code)
        if code == "NOT_FOUND" and was_up and drgate.up.is_set():
            with stats.mu:
                stats.get_not_found_while_up.append(job_id)


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--duration", type=float, default=20, help="seconds of load")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    log(f"seed {seed} (repeat with --seed {seed}); {args.kills} kills in {args.duration:.0f}s")
    rng = random.Random(seed)

    tmp = tempfile.mkdtemp(prefix="drgate-crash-")
    sim = drgate = None
    ok = False
    try:
        sim = Proc([os.path.join(args.bin_dir, "commserv-sim"), "--listen", "127.0.0.1:0",
                    "--plain", "--quiet", "--username", "admin", "--password", "s3cret",
                    "--job-duration-ms", "0"], os.path.join(tmp, "sim.log"))
        sim_url = sim.wait_for(r"commserv-sim listening on (\S+)")
        with open(os.path.join(tmp, "password"), "w") as f:
            f.write("s3cret")
        config = os.path.join(tmp, "drgate.yaml")
        with open(config, "w") as f:
            # Short timeouts and grace periods, so intents left by a kill are reconciled within
            # seconds of the restart (intent_grace must exceed 2 x (connect + request) timeout).
            f.write(f"""auth: {{mode: insecure}}
registry: {{path: {tmp}/registry/drgate.db}}
log: {{format: json}}
shutdown_grace: 2s
tracking:
  poll_interval: 300ms
  max_backoff: 1s
  unseen_grace: 30s
  intent_grace: 3500ms
  intent_give_up: 6s
  probe_interval: 0s
commcells:
  - name: {COMMCELL}
    url: {sim_url}/commandcenter/api
    username: admin
    password_file: password
    connect_timeout: 500ms
    request_timeout: 1s
""")
        grpc_port, metrics_port = free_port(), free_port()
        drgate = Drgate(args.bin_dir, config, grpc_port, metrics_port,
                        os.path.join(tmp, "drgate.log"))
        drgate.start()
        ctl = Ctl(args.bin_dir, f"127.0.0.1:{grpc_port}")
        stats = Stats()
        stop = threading.Event()
        threads = []
        for w in range(args.workers):
            threads.append(threading.Thread(
                target=trigger_worker,
                args=(ctl, drgate, stats, f"crash-{seed}-{w}", stop, random.Random(seed + w))))
        for r in range(args.readers):
            threads.append(threading.Thread(target=reader_worker,
                                            args=(ctl, drgate, stats, stop,
                                                  random.Random(seed + 1000 + r))))
        for t in threads:
            t.start()

        # Kill moments: uniformly random within the load window, at least 1 s apart.
        start = time.monotonic()
        moments = sorted(rng.uniform(1.0, max(1.5, args.duration - 1.0))
                         for _ in range(args.kills))
        for i in range(1, len(moments)):
            moments[i] = max(moments[i], moments[i - 1] + 1.0)
        for k, at in enumerate(moments):
            time.sleep(max(0.0, start + at - time.monotonic()))
            drgate.kill()
            log(f"kill {k + 1}/{args.kills} at {time.monotonic() - start:.1f}s "
                f"({len(stats.acknowledged)} acknowledged so far)")
            time.sleep(rng.uniform(0.0, 0.5))
            drgate.start()
        time.sleep(max(0.0, start + args.duration - time.monotonic()))
        stop.set()
        for t in threads:
            t.join()
        log(f"load done: {stats.triggers} TriggerBackup calls, {stats.gets} GetJob calls, "
            f"{len(stats.acknowledged)} acknowledged, errors {dict(sorted(stats.codes.items()))}")

        # Settle: one more clean restart, then wait until the tracker has closed every intent
        # (adopted the CommServe's job or recorded an UNKNOWN job for the request id).
        drgate.kill()
        drgate.start()
        deadline = time.monotonic() + 60
        sim_base = sim_url
        registry = {}
        while True:
            # Intents first, then the list: an intent is closed in the same transaction that
            # records its job, so a list taken after the count sees every settled job.
            open_intents = intent_count(os.path.join(tmp, "registry", "drgate.db"))
            listed = ctl.run("jobs", "list", "--commcell", COMMCELL, "--all", "--page-size", "1000")
            jobs = listed.get("jobs", []) if "error" not in listed else []
            if "error" not in listed and open_intents == 0:
                break
            if time.monotonic() > deadline:
                stats.violations.append(f"{open_intents} intents still open after 60 s")
                break
            time.sleep(0.5)
        for job in jobs:
            registry.setdefault(job.get("request_id", ""), []).append(job)

        # Retry every request id that never got a definitive answer. One with a record (a job,
        # adopted or UNKNOWN) must answer it, deduplicated, and send nothing; one without (drgate
        # died before writing its intent, so nothing was sent) may trigger now, once.
        posts_before = http_json(sim_base + "/_sim/stats")["drbackup_posts"]
        fresh = 0
        for rid in sorted(stats.unsettled):
            reply = ctl.run("backup", "--commcell", COMMCELL, "--type", stats.kinds[rid],
                            "--request-id", rid)
            recorded = [j["job_id"] for j in registry.get(rid, [])]
            if "job" not in reply:
                stats.violations.append(f"retry of unsettled {rid} failed: {reply.get('error')}")
                continue
            stats.acknowledged[rid] = reply["job"]["job_id"]
            if recorded:
                if not reply.get("deduplicated") or reply["job"]["job_id"] not in recorded:
                    stats.violations.append(f"retry of {rid} answered {reply['job']['job_id']} "
                                            f"(deduplicated={reply.get('deduplicated')}), "
                                            f"recorded {recorded}")
            elif not reply.get("deduplicated"):
                fresh += 1
        posts_after = http_json(sim_base + "/_sim/stats")["drbackup_posts"]
        if posts_after - posts_before != fresh:
            stats.violations.append(f"retrying unsettled request ids sent "
                                    f"{posts_after - posts_before} POSTs for {fresh} new jobs")
        if fresh:
            listed = ctl.run("jobs", "list", "--commcell", COMMCELL, "--all", "--page-size",
                             "1000")
            registry = {}
            for job in listed.get("jobs", []):
                registry.setdefault(job.get("request_id", ""), []).append(job)
        log(f"{len(stats.unsettled)} request ids without an answer were retried: "
            f"{len(stats.unsettled) - fresh} answered their recorded job, {fresh} triggered "
            f"(their first attempt never reached the registry)")

        sim_jobs = {str(j["id"]) for j in http_json(sim_base + "/_sim/jobs")}
        check(stats, registry, sim_jobs, posts_after)
        unknown = sum(1 for js in registry.values() for j in js
                      if j.get("state") == "JOB_STATE_UNKNOWN")
        log(f"registry: {sum(len(v) for v in registry.values())} jobs ({unknown} UNKNOWN: "
            f"intents whose POST never reached the simulator); simulator: {len(sim_jobs)} jobs, "
            f"{posts_after} DRBackup POSTs; drgate started {drgate.starts} times")
        if stats.violations:
            for v in stats.violations[:50]:
                log("VIOLATION:", v)
            log(f"FAILED with {len(stats.violations)} violation(s); logs in {tmp}")
            args.keep = True
        else:
            ok = True
            log("OK")
    finally:
        if drgate is not None and drgate.proc is not None:
            drgate.stop()
        if sim is not None:
            sim.terminate()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


def intent_count(db_path):
    """Open intents, read straight from the registry file (read-only, drgate keeps running)."""
    import sqlite3
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM intents WHERE resolved = 0").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return -1


def check(stats, registry, sim_jobs, posts):
    v = stats.violations
    # 1. Every acknowledged job is in the registry under its request id.
    for rid, job_id in sorted(stats.acknowledged.items()):
        ids = [j["job_id"] for j in registry.get(rid, [])]
        if job_id not in ids:
            v.append(f"acknowledged job {job_id} (request id {rid}) is not in the registry "
                     f"(registry has {ids})")
    for job_id in stats.get_not_found_while_up:
        v.append(f"GetJob {job_id} answered NOT_FOUND while drgate was up")
    # 2. At most one job per request id.
    for rid, jobs in registry.items():
        if rid and len(jobs) > 1:
            v.append(f"request id {rid} has {len(jobs)} jobs: {[j['job_id'] for j in jobs]}")
    # 3. The simulator's view: every job it started is drgate's, under one request id; one POST
    # per job; one job per request id that reached the CommServe.
    recorded = {j["job_id"]: rid for rid, jobs in registry.items() for j in jobs
                if j.get("state") != "JOB_STATE_UNKNOWN"}
    for job_id in sorted(sim_jobs - set(recorded)):
        v.append(f"simulator job {job_id} is in no request id's record (triggered twice?)")
    for job_id in sorted(set(recorded) - sim_jobs):
        v.append(f"registry job {job_id} was never started by the simulator")
    if posts != len(sim_jobs):
        v.append(f"{posts} DRBackup POSTs but {len(sim_jobs)} simulator jobs")
    with_job = {rid for rid, jobs in registry.items()
                if any(j.get("state") != "JOB_STATE_UNKNOWN" for j in jobs)}
    if len(with_job) != len(sim_jobs):
        v.append(f"{len(with_job)} request ids ended with a CommServe job, simulator started "
                 f"{len(sim_jobs)}")
    if not stats.acknowledged:
        v.append("no trigger was acknowledged: the load did not run")
    for rid, (code, reason) in stats.definitive_errors.items():
        v.append(f"request id {rid}: unexpected {code}/{reason}")


if __name__ == "__main__":
    sys.exit(main())
