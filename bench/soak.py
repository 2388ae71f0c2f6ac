#!/usr/bin/env python3
"""Soak: drgate under mixed load with upstream faults, sampling its memory.

Starts commserv-sim and drgate (from --bin-dir), then for --duration runs, through drgatectl:
  - triggers with fresh request ids (some repeated, to exercise deduplication), full and
    differential;
  - GetJob and ListJobs readers;
  - a watcher that follows the newest job with WatchJob until it ends;
and every --fault-every seconds injects one simulator fault from a fixed rotation (HTTP 500 with
HTML, 200 with errorCode, 429 with Retry-After, a connection closed before the answer, a slow
job list, a 401 storm). Every --sample seconds it reads drgate's RSS, RssAnon and RssFile from
/proc and the live heap, allocator-free bytes, SQLite's share of the heap and the thread count
from drgate's /metrics (drgate_malloc_*, drgate_sqlite_memory_bytes, process_threads).

drgate runs with tracking.retention --retention (default 2m), so finished jobs are pruned and the
registry reaches a steady size during the warm-up, as it does in production over its 90 days;
with --retention 0s the registry, and SQLite's page caches over it, grow for the whole run.

The summary prints calls by type, every error by code/reason split into expected (what the
injected faults and the 2 full + 1 differential rule can cause) and unexpected ones, then for RSS,
RssAnon and the live heap the start (after --warmup), end, maximum and the slope of a
least-squares line through the samples after the warm-up (and through each half of them), and a
memory verdict: flat when over the second half neither RSS nor the live heap grows by more than
2% of its start per 10 minutes (glibc's heap footprint settles for about 30 minutes while the live
heap stays flat, hence the 45-minute default). Exit code 1 when an
unexpected error occurred or drgate died (and, with --fail-on-growth, when memory is not flat).

Only the Python standard library is used.
  bench/soak.py --bin-dir build/bin                 # 45 minutes
  bench/soak.py --bin-dir build/bin --duration 600  # 10 minutes: errors, not the memory verdict
  bench/soak.py --bin-dir build/bin --duration 60   # a quick try
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
# Memory counts as flat when, over the second half of the samples after the warm-up, it grows by
# at most this much of its start per 10 minutes (a least-squares slope). The second half because
# glibc's heap footprint keeps settling for about 30 minutes (allocator-free bytes rise, then level
# off) while the live heap stays flat: a leak grows in both halves, settling only in the first.
FLAT_PCT_PER_10_MIN = 2.0

# (name, fault rules for POST /_sim/faults). Counts are small: each fault affects a few requests.
FAULTS = [
    ("drbackup_500_html", [{"endpoint": "DRBackup", "action": "status", "http_status": 500,
                            "content_type": "text/html", "count": 3,
                            "body": "<html><head><title>Internal Server Error</title></head>"
                                    "<body>boom</body></html>"}]),
    ("drbackup_error_code", [{"endpoint": "DRBackup", "action": "error_code", "count": 3,
                              "error_code": 2, "message": "Simulated refusal"}]),
    ("drbackup_429", [{"endpoint": "DRBackup", "action": "status", "http_status": 429,
                       "headers": {"Retry-After": "1"}, "count": 3}]),
    ("drbackup_close", [{"endpoint": "DRBackup", "action": "close", "count": 2}]),
    ("joblist_slow", [{"endpoint": "JobList", "action": "delay", "delay_ms": 1500, "count": 3}]),
    ("drbackup_401_storm", [{"endpoint": "DRBackup", "action": "unauthorized", "count": 4}]),
]

# Errors a caller can get from the load above while those faults are injected. Anything else
# (INTERNAL, NOT_FOUND for a job drgate acknowledged, DEADLINE_EXCEEDED, a drgate that does not
# answer) is unexpected.
EXPECTED = {
    "ABORTED/DR_JOB_ALREADY_RUNNING",      # the CommServe's 2 full + 1 differential rule
    "UNAVAILABLE/UPSTREAM_HTTP_5XX",
    "UNAVAILABLE/UPSTREAM_RATE_LIMITED",
    "UNAVAILABLE/UPSTREAM_UNREACHABLE",    # connection closed before the answer
    "UNAVAILABLE/UPSTREAM_TIMEOUT",
    "UNAVAILABLE/TRIGGER_OUTCOME_PENDING",  # a retry of a request id whose answer was lost
    "UNAVAILABLE/CIRCUIT_OPEN",            # a circuit breaker, where the client has one
    "FAILED_PRECONDITION/UPSTREAM_REJECTED",
    "FAILED_PRECONDITION/UPSTREAM_AUTH_FAILED",  # a 401 storm longer than one renewal
}


def log(*args):
    print("soak:", *args, flush=True)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_line(proc, pattern, timeout=60):
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited before {pattern!r}")
            continue
        m = rx.search(line.decode(errors="replace"))
        if m:
            return m.group(1)
    raise RuntimeError(f"timed out waiting for {pattern!r}")


def rss_kib(pid):
    """(VmRSS, RssAnon, RssFile) in KiB. RssFile includes the registry pages drgate's read
    connections map (they grow with the database, not with leaks); RssAnon is the heap."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0])
    return (values.get("VmRSS", -1), values.get("RssAnon", -1), values.get("RssFile", -1))


def seconds(duration):
    """drgate's duration syntax ("90s", "2m", "1h", "90d") in seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", duration)
    if not m:
        raise SystemExit(f"soak: bad duration {duration!r} (e.g. 2m, 90s, 0s)")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def heap_kib(metrics_url):
    """(live heap, allocator free) in KiB from drgate's drgate_malloc_* gauges: the live heap is
    what the program holds; free bytes are what glibc keeps for reuse (RssAnon counts both)."""
    values = {}
    try:
        text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    except OSError:
        return (-1, -1)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("drgate_malloc_in_use_bytes", "drgate_malloc_free_bytes",
                    "drgate_sqlite_memory_bytes", "process_threads"):
            values[name] = int(float(value)) // (1 if name == "process_threads" else 1024)
    return (values.get("drgate_malloc_in_use_bytes", -1), values.get("drgate_malloc_free_bytes", -1),
            values.get("drgate_sqlite_memory_bytes", -1), values.get("process_threads", -1))


class Counters:
    def __init__(self):
        self.mu = threading.Lock()
        self.calls = {}
        self.errors = {}
        self.jobs = []  # (time.monotonic() when acknowledged, job id), newest last

    def call(self, kind):
        with self.mu:
            self.calls[kind] = self.calls.get(kind, 0) + 1

    def error(self, kind, reply):
        err = reply.get("error", {})
        key = err.get("code", "NO_ANSWER")
        if err.get("reason"):
            key += "/" + err["reason"]
        with self.mu:
            self.errors[(kind, key)] = self.errors.get((kind, key), 0) + 1


class Ctl:
    def __init__(self, exe, server):
        self.exe, self.server = exe, server

    def run(self, *args, timeout="10s", wall=60):
        argv = [self.exe, "--server", self.server, "--output", "json", "--timeout", timeout, *args]
        try:
            out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 timeout=wall).stdout
        except subprocess.TimeoutExpired:
            return {"error": {"code": "CLIENT_TIMEOUT"}}
        try:
            return json.loads(out) if out.strip() else {"error": {"code": "NO_OUTPUT"}}
        except ValueError:
            return {"error": {"code": "BAD_OUTPUT"}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                     "bin"))
    ap.add_argument("--duration", type=float, default=2700,
                    help="seconds of load (default 2700: the heap footprint settles in about 30 "
                         "minutes; 600 is enough for errors, not for the memory verdict)")
    ap.add_argument("--fault-every", type=float, default=15, help="seconds between faults")
    ap.add_argument("--sample", type=float, default=5, help="seconds between RSS samples")
    ap.add_argument("--warmup", type=float, default=180,
                    help="seconds before the memory baseline (default 180: the registry reaches "
                         "its steady size after about --retention)")
    ap.add_argument("--fail-on-growth", action="store_true",
                    help="exit 1 when memory is not flat")
    ap.add_argument("--retention", default="2m",
                    help="drgate's tracking.retention (default 2m: the registry, and its caches, "
                         "reach a steady size within the warm-up; 0s keeps every job)")
    ap.add_argument("--readers", type=int, default=3)
    ap.add_argument("--triggers-per-second", type=float, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    bin_dir = os.path.abspath(args.bin_dir)
    tmp = tempfile.mkdtemp(prefix="drgate-soak-")
    procs = []
    try:
        sim = subprocess.Popen(
            [os.path.join(bin_dir, "commserv-sim"), "--listen", "127.0.0.1:0", "--plain",
             "--quiet", "--username", "admin", "--password", "s3cret", "--job-duration-ms",
             "3000"], stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "sim.log"), "wb"))
        procs.append(sim)
        sim_url = wait_line(sim, r"commserv-sim listening on (\S+)")
        with open(os.path.join(tmp, "password"), "w") as f:
            f.write("s3cret")
        config = os.path.join(tmp, "drgate.yaml")
        with open(config, "w") as f:
            f.write(f"""auth: {{mode: insecure}}
registry: {{path: {tmp}/drgate.db}}
log: {{format: json}}
tracking: {{poll_interval: 1s, max_backoff: 5s, retention: {args.retention}}}
commcells:
  - name: {COMMCELL}
    url: {sim_url}/commandcenter/api
    username: admin
    password_file: password
    connect_timeout: 2s
    request_timeout: 5s
""")
        port = free_port()
        drgate = subprocess.Popen(
            [os.path.join(bin_dir, "drgate"), "--config", config, "--grpc-listen",
             f"127.0.0.1:{port}", "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "drgate.log"), "wb"))
        procs.append(drgate)
        wait_line(drgate, r"gRPC listening on (\S+)")
        metrics_url = "http://" + wait_line(drgate, r"metrics listening on (\S+)") + "/metrics"
        ctl = Ctl(os.path.join(bin_dir, "drgatectl"), f"127.0.0.1:{port}")
        c = Counters()
        keep_for = seconds(args.retention) / 2
        stop = threading.Event()

        def triggers():
            n = 0
            while not stop.is_set():
                n += 1
                # One in five repeats an earlier request id: answered by deduplication.
                rid = f"soak-{rng.randrange(1, n)}" if n > 5 and rng.random() < 0.2 else f"soak-{n}"
                kind = "full" if rng.random() < 0.7 else "differential"
                reply = ctl.run("backup", "--commcell", COMMCELL, "--type", kind,
                                "--request-id", rid)
                c.call("TriggerBackup")
                if "job" in reply:
                    # A deduplicated answer may be an older job, closer to its pruning.
                    if not reply.get("deduplicated"):
                        with c.mu:
                            c.jobs.append((time.monotonic(), reply["job"]["job_id"]))
                else:
                    c.error("TriggerBackup", reply)
                stop.wait(1.0 / args.triggers_per_second)

        def reader(i):
            r = random.Random(args.seed + i)
            while not stop.is_set():
                with c.mu:
                    # Only jobs well within the retention: older ones may have been pruned.
                    while c.jobs and keep_for and c.jobs[0][0] < time.monotonic() - keep_for:
                        c.jobs.pop(0)
                    job = r.choice(c.jobs)[1] if c.jobs else None
                if job is not None and r.random() < 0.6:
                    reply = ctl.run("jobs", "get", "--commcell", COMMCELL, job)
                    c.call("GetJob")
                    if "job_id" not in reply:
                        c.error("GetJob", reply)
                else:
                    reply = ctl.run("jobs", "list", "--commcell", COMMCELL, "--page-size", "50")
                    c.call("ListJobs")
                    if "error" in reply:
                        c.error("ListJobs", reply)

        def watcher():
            while not stop.is_set():
                with c.mu:
                    job = c.jobs[-1][1] if c.jobs else None
                if job is None:
                    stop.wait(0.5)
                    continue
                reply = ctl.run("jobs", "watch", "--commcell", COMMCELL, job, timeout="30s")
                c.call("WatchJob")
                if isinstance(reply, dict) and reply.get("error"):
                    c.error("WatchJob", reply)

        threads = [threading.Thread(target=triggers), threading.Thread(target=watcher)]
        threads += [threading.Thread(target=reader, args=(i,)) for i in range(args.readers)]
        for t in threads:
            t.start()

        start = time.monotonic()
        samples = []  # (seconds since start, RSS KiB)
        next_fault = start + args.fault_every
        fault_i = 0
        faults_injected = {}
        while time.monotonic() - start < args.duration:
            now = time.monotonic()
            if drgate.poll() is not None:
                log(f"drgate exited with {drgate.returncode}")
                break
            samples.append((now - start, rss_kib(drgate.pid) + heap_kib(metrics_url)))
            if now >= next_fault:
                name, rules = FAULTS[fault_i % len(FAULTS)]
                fault_i += 1
                req = urllib.request.Request(sim_url + "/_sim/faults", data=json.dumps(rules).encode(),
                                             method="POST",
                                             headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=10).read()
                faults_injected[name] = faults_injected.get(name, 0) + 1
                next_fault += args.fault_every
            time.sleep(min(args.sample, max(0.0, start + args.duration - time.monotonic())))
        stop.set()
        for t in threads:
            t.join()
        alive = drgate.poll() is None
        if alive:
            samples.append((time.monotonic() - start,
                            rss_kib(drgate.pid) + heap_kib(metrics_url)))
        return summary(args, c, samples, faults_injected, alive, tmp)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def slope_kib_per_min(points):
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    return (sxy / sxx) * 60 if sxx else 0.0


def summary(args, c, samples, faults, alive, tmp):
    steady_all = [s for s in samples if s[0] >= args.warmup] or samples
    steady = [(t, v[0]) for t, v in steady_all]
    anon = [(t, v[1]) for t, v in steady_all]
    rss = [s[1] for s in steady]
    expected = {k: v for k, v in c.errors.items() if k[1] in EXPECTED}
    unexpected = {k: v for k, v in c.errors.items() if k[1] not in EXPECTED}
    print()
    print(f"soak summary ({args.duration:.0f} s, load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print("  calls:", ", ".join(f"{k} {v}" for k, v in sorted(c.calls.items())),
          f"({sum(c.calls.values()) / max(1.0, samples[-1][0] if samples else 1):.1f}/s)")
    print("  faults injected:", ", ".join(f"{k} x{v}" for k, v in sorted(faults.items())) or "none")
    print("  expected errors:", ", ".join(f"{k[0]} {k[1]}: {v}" for k, v in sorted(expected.items()))
          or "none")
    print("  UNEXPECTED errors:",
          ", ".join(f"{k[0]} {k[1]}: {v}" for k, v in sorted(unexpected.items())) or "none")
    flat = None
    if rss:
        def line(label, points):
            """start/end/max and slope of one series; its growth per 10 min as % of its start."""
            values = [v for _, v in points]
            slope = slope_kib_per_min(points)
            pct = slope * 10 / max(1, values[0]) * 100
            half = len(points) // 2
            print(f"  {label}: start {values[0]}, end {values[-1]}, max {max(values)}; slope "
                  f"{slope:+.1f} KiB/min ({pct:+.2f}% of start per 10 min; halves "
                  f"{slope_kib_per_min(points[:half]):+.1f} / "
                  f"{slope_kib_per_min(points[half:]):+.1f})")
            return slope_kib_per_min(points[half:]) * 10 / max(1, values[0]) * 100

        print(f"  memory after the {args.warmup:.0f} s warm-up, KiB ({len(steady_all)} samples):")
        rss_pct = line("RSS", steady)
        line("RssAnon (heap, stacks, allocator retention)", anon)
        live_pct = line("live heap (drgate_malloc_in_use_bytes)",
                        [(t, v[3]) for t, v in steady_all])
        line("SQLite's part of it (drgate_sqlite_memory_bytes)", [(t, v[5]) for t, v in steady_all])
        print(f"  allocator free bytes: start {steady_all[0][1][4]}, end {steady_all[-1][1][4]}; "
              f"threads: start {steady_all[0][1][6]}, end {steady_all[-1][1][6]}")
        flat = rss_pct <= FLAT_PCT_PER_10_MIN and live_pct <= FLAT_PCT_PER_10_MIN
        print(f"  memory: {'FLAT' if flat else 'GROWING'} over the second half (RSS "
              f"{rss_pct:+.2f}%, live heap {live_pct:+.2f}% of start per 10 min; flat means at "
              f"most {FLAT_PCT_PER_10_MIN:.0f}% each)")
        print("  RSS/RssAnon/RssFile/live/free/sqlite (KiB)/threads each minute:",
              " ".join(f"{t / 60:.0f}m:{v[0]}/{v[1]}/{v[2]}/{v[3]}/{v[4]}/{v[5]}/{v[6]}"
                       for t, v in samples if int(t) % 60 < args.sample))
    print(f"  drgate {'still serving' if alive else 'DIED'} at the end")
    if not alive or unexpected:
        return 1
    return 1 if args.fail_on_growth and flat is False else 0


if __name__ == "__main__":
    sys.exit(main())
