#!/usr/bin/python3
"""Acceptance tests of examples/: each scenario starts commserv-sim and drgate on loopback ports
chosen at run time, runs one example against them as a user would, and checks what happened
upstream through the simulator's admin API (/_sim/jobs, /_sim/stats).

The simulator's jobs run for 10 minutes, so a job ends only when this driver says so
(POST /_sim/jobs/{id} {"status": "Completed"} or {"status": "Failed", "pendingReason": ...}):
no scenario depends on timing. Standard library only.

usage: examples_test.py go|ansible|ansible_http|python --bin-dir BUILD/bin --source-dir REPO
                        [--go-gate BIN]
"""
import argparse
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from proclib import CHILD_ENV, Failure, Proc, log  # noqa: E402

DEADLINE = time.monotonic() + 100  # the whole scenario; CTest's TIMEOUT is above it
CHILD_ENV.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "false",
                  "ANSIBLE_STDOUT_CALLBACK": "default"})
COMMCELL = "cs1"


def check(cond, what):
    if not cond:
        raise Failure(what)
    log(f"  ok  {what.splitlines()[0]}")


class Sim:
    """commserv-sim's admin API."""

    def __init__(self, url, cafile):
        self.url = url
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                  urllib.request.HTTPSHandler(context=self.ctx))

    def call(self, path, body=None):
        req = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"} if body is not None else {})
        with self.opener.open(req, timeout=5) as r:
            return json.loads(r.read().decode() or "null")

    def jobs(self):
        return self.call("/_sim/jobs")

    def posts(self):
        return self.call("/_sim/stats")["drbackup_posts"]

    def wait_for_jobs(self, count, client=None, timeout=30):
        """Waits until the simulator has `count` jobs; returns the newest one's id (a string).
        Gives up early when the `client` process exits first."""
        end = min(time.monotonic() + timeout, DEADLINE)
        while True:
            exited = client is not None and client.poll() is not None
            jobs = self.jobs()
            if len(jobs) >= count:
                if len(jobs) > count:
                    raise Failure(f"{len(jobs)} jobs in the simulator, expected {count}: {jobs}")
                return str(max(int(j["id"]) for j in jobs))
            if exited:
                raise Failure(f"the client exited before job #{count} appeared: {jobs}")
            if time.monotonic() >= end:
                raise Failure(f"no job #{count} in the simulator within {timeout}s: {jobs}")
            time.sleep(0.05)

    def finish(self, job_id, status, reason=None):
        body = {"status": status}
        if reason:
            body["pendingReason"] = reason
        self.call(f"/_sim/jobs/{job_id}", body)


class Stack:
    """commserv-sim (TLS) + drgate, with their state in `tmp`. With `http`, drgate also serves
    HTTP/JSON on a loopback port of its choice (`self.http_url`)."""

    def __init__(self, args, tmp, grpc_tls=False, tokens=False, http=False):
        self.args, self.tmp, self.procs = args, tmp, []
        try:
            self._start(grpc_tls, tokens, http)
        except BaseException:
            self.stop(show=True)
            raise

    def _start(self, grpc_tls, tokens, http):
        args, tmp = self.args, self.tmp
        self.ctl = os.path.join(args.bin_dir, "drgatectl")
        sim = self.start("commserv-sim", [
            os.path.join(args.bin_dir, "commserv-sim"), "--listen", "127.0.0.1:0", "--quiet",
            "--username", "admin", "--password", "s3cret", "--cert-out",
            os.path.join(tmp, "sim-cert"), "--job-duration-ms", "600000"])
        sim_url = sim.wait_for(r"commserv-sim listening on (\S+)")
        self.cert = sim.wait_for(r"commserv-sim certificate (\S+)")
        self.sim = Sim(sim_url, self.cert)
        with open(os.path.join(tmp, "password"), "w") as f:
            f.write("s3cret\n")
        config = [
            "registry: {path: state/drgate.db}",
            "shutdown_grace: 2s",
            "tracking: {poll_interval: 100ms}",
        ]
        if grpc_tls:  # the simulator's self-signed certificate is for localhost and 127.0.0.1
            key = os.path.join(os.path.dirname(self.cert), "key.pem")
            config.append(f"grpc: {{tls: {{cert_file: {self.cert}, key_file: {key}}}}}")
        if http:
            config.append("http: {listen: 127.0.0.1:0}")
        self.token_file = None
        if tokens:
            self.token_file = os.path.join(tmp, "operator.token")
            entry = self.run_ctl(["token", "hash", "--generate", "--token-out", self.token_file,
                                  "--identity", "examples-operator", "--role", "operator"])
            with open(os.path.join(tmp, "tokens.yaml"), "w") as f:
                f.write("tokens:\n" + entry)
            config.append("auth: {mode: tokens, tokens_file: tokens.yaml, "
                          "rate_limit: {triggers_per_minute: 600, burst: 100}}")
        else:
            config.append("auth: {mode: insecure}")
        config += [
            "commcells:",
            f"  - name: {COMMCELL}",
            f"    url: {sim_url}/commandcenter/api",
            "    username: admin",
            "    password_file: password",
            f"    ca_file: {self.cert}",
        ]
        path = os.path.join(tmp, "drgate.yaml")
        with open(path, "w") as f:
            f.write("\n".join(config) + "\n")
        drgate = self.start("drgate", [
            os.path.join(args.bin_dir, "drgate"), "--config", path, "--grpc-listen",
            "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"])
        self.server = drgate.wait_for(r"gRPC listening on (\S+)")
        self.http_url = None
        if http:
            self.http_url = "http://" + drgate.wait_for(r"HTTP listening on (\S+)")
        log(f"commserv-sim {sim_url}, drgate {self.server}"
            f"{' (TLS)' if grpc_tls else ''}{' (tokens)' if tokens else ''}"
            f"{', HTTP ' + self.http_url if http else ''}")

    def start(self, name, argv):
        p = Proc(name, argv, DEADLINE)
        self.procs.append(p)
        return p

    def run_ctl(self, argv):
        r = subprocess.run([self.ctl] + argv, capture_output=True, text=True, timeout=30,
                           env=CHILD_ENV)
        if r.returncode != 0:
            raise Failure(f"drgatectl {argv}: exit {r.returncode}: {r.stderr}")
        return r.stdout

    def stop(self, show):
        for p in reversed(self.procs):
            rc = p.stop()
            if show:
                print(f"--- {p.name} (exit {rc}), last lines:\n{p.output()}", file=sys.stderr)


def run(argv, timeout=20):
    """Runs a client that must end by itself (no job left to finish); returns
    (exit code, stdout, stderr)."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, env=CHILD_ENV,
                           timeout=max(1, min(timeout, DEADLINE - time.monotonic())))
    except subprocess.TimeoutExpired as e:
        out = "".join(x.decode(errors="replace") if isinstance(x, bytes) else x
                      for x in (e.stdout or "", e.stderr or ""))
        raise Failure(f"{argv[0]} still running after {e.timeout:.0f}s (waiting for a job that "
                      f"should not exist?):\n{out}") from e
    return r.returncode, r.stdout, r.stderr


def run_while(argv, sim, job_count, status, reason=None, timeout=60):
    """Starts a client, waits for job #job_count in the simulator, ends that job with `status`,
    then waits for the client. Returns (job id, exit code, stdout, stderr)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=CHILD_ENV)
    try:
        job_id = sim.wait_for_jobs(job_count, p)
        sim.finish(job_id, status, reason)
        out, err = p.communicate(timeout=max(1, min(timeout, DEADLINE - time.monotonic())))
        return job_id, p.returncode, out, err
    except (Failure, subprocess.TimeoutExpired) as e:
        if p.poll() is None:
            p.kill()
        out, err = p.communicate()
        raise Failure(f"{e}\n{argv[0]} (exit {p.returncode}):\n{out}{err}") from e


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def scenario_go(args, tmp):
    stack = Stack(args, tmp, grpc_tls=True, tokens=True)
    try:
        sim = stack.sim
        gate = [args.go_gate, "--server", stack.server, "--commcell", COMMCELL,
                "--ca-file", stack.cert, "--token-file", stack.token_file,
                "--call-timeout", "10s", "--wait-timeout", "60s", "--initial-backoff", "50ms"]

        # 1. The upgrade's backup: triggered, followed, succeeds -> exit 0.
        upgrade = ["--upgrade-id", "prod/commserve-upgrade@42"]
        job_id, rc, _, err = run_while(gate + upgrade, sim, 1, "Completed")
        check(rc == 0, f"first run exits 0 after job {job_id} succeeded (exit {rc})\n{err}")
        check(f"DR backup job {job_id} on {COMMCELL} started" in err,
              f"first run started job {job_id}\n{err}")

        # 2. The controller restarts and reconciles the same upgrade: no second backup.
        rc, _, err = run(gate + upgrade)
        check(rc == 0, f"second run with the same upgrade id exits 0 (exit {rc})\n{err}")
        check(f"DR backup job {job_id} on {COMMCELL} found again (deduplicated)" in err,
              f"second run found job {job_id} again\n{err}")
        posts = sim.posts()
        check(posts == 1, f"two runs of one upgrade caused exactly one upstream POST ({posts})")
        check(len(sim.jobs()) == 1, "one job in the simulator")

        # 3. Another upgrade whose backup fails: non-zero, naming the job and the reason.
        reason = "examples test: the DR backup share is full"
        job_id, rc, _, err = run_while(gate + ["--upgrade-id", "prod/commserve-upgrade@43"], sim,
                                       2, "Failed", reason)
        want = (f"FAILED: DR backup job {job_id} on CommCell {COMMCELL} ended JOB_STATE_FAILED: "
                f"{reason}")
        check(rc == 1, f"a failed backup exits 1 (exit {rc})\n{err}")
        check(want in last_line(err), f"its last line names the failure: {want!r}\n{err}")

        # 4. UNAVAILABLE is retried with back-off: the CommServe answers 503 once.
        sim.call("/_sim/faults", {"endpoint": "DRBackup", "action": "status",
                                  "http_status": 503, "count": 1})
        job_id, rc, _, err = run_while(gate + ["--upgrade-id", "prod/commserve-upgrade@44"], sim,
                                       3, "Completed")
        check(rc == 0, f"a trigger retried after UNAVAILABLE succeeds (exit {rc})\n{err}")
        check(re.search(r"TriggerBackup: UNAVAILABLE \(UPSTREAM_HTTP_5XX\).*retry 1/5", err),
              f"the 503 was retried once\n{err}")
        check(f"DR backup job {job_id} on {COMMCELL} started" in err,
              f"the retry started job {job_id}\n{err}")

        # 5. Other codes are not retried: without the token drgate answers UNAUTHENTICATED.
        no_token = [a for a in gate if a not in ("--token-file", stack.token_file)]
        rc, _, err = run(no_token + ["--upgrade-id", "prod/commserve-upgrade@45"])
        check(rc == 3, f"a call without the token exits 3 (exit {rc})\n{err}")
        check("TriggerBackup failed after 1 attempt(s): UNAUTHENTICATED (MISSING_CREDENTIALS)"
              in last_line(err), f"it names UNAUTHENTICATED after one attempt\n{err}")
        check(len(sim.jobs()) == 3, "no job for the refused call")
        return stack
    except BaseException:
        stack.stop(show=True)
        raise


def scenario_ansible(args, tmp):
    # Ansible's temporary files stay in this run's folder, not in $HOME.
    CHILD_ENV.update({"ANSIBLE_LOCAL_TEMP": os.path.join(tmp, "ansible-local"),
                      "ANSIBLE_REMOTE_TEMP": os.path.join(tmp, "ansible-remote")})
    stack = Stack(args, tmp, tokens=True)
    try:
        sim = stack.sim
        play = os.path.join(args.source_dir, "examples", "ansible")
        cmd = [shutil.which("ansible-playbook") or "ansible-playbook",
               "-i", os.path.join(play, "inventory.ini"), os.path.join(play, "dr-backup.yml"),
               "-e", f"drgatectl_path={stack.ctl}", "-e", f"drgate_server={stack.server}",
               "-e", f"drgate_commcell={COMMCELL}", "-e", f"drgate_token_file={stack.token_file}",
               "-e", "drgate_wait_timeout=60s"]

        job_id, rc, out, err = run_while(cmd + ["-e", "drgate_request_id=ansible-ok"], sim, 1,
                                         "Completed")
        check(rc == 0, f"the play succeeds for a succeeding backup (exit {rc})\n{out}{err}")
        check(f"DR backup job {job_id} on CommCell {COMMCELL} JOB_STATE_SUCCEEDED" in out,
              f"it reports job {job_id} succeeded\n{out}")

        # The default is ensure --max-age 6h: a second play, with another request id, answers
        # the job that just succeeded and starts nothing.
        rc, out, err = run(cmd + ["-e", "drgate_request_id=ansible-again"])
        check(rc == 0 and sim.posts() == 1,
              f"ensure answers the recent backup, no second POST (exit {rc}, "
              f"{sim.posts()} POSTs)\n{out}{err}")

        reason = "examples test: media agent offline"
        job_id, rc, out, err = run_while(cmd + ["-e", "drgate_request_id=ansible-fail",
                                                "-e", "drgate_max_age="], sim, 2,
                                         "Failed", reason)
        want = (f"DR backup job {job_id} on CommCell {COMMCELL} ended JOB_STATE_FAILED: {reason} "
                f"(drgatectl exit 1)")
        check(rc == 2, f"the play fails for a failing backup (ansible-playbook exit {rc})\n{out}")
        check(re.search(r"fatal: \[localhost\]: FAILED! => .*" + re.escape(want), out),
              f"the failed task says {want!r}\n{out}")
        check(sim.posts() == 2, "one upstream POST per play")
        return stack
    except BaseException:
        stack.stop(show=True)
        raise


def scenario_ansible_http(args, tmp):
    """examples/ansible/dr-backup-http.yml: the same play with only the uri module, against
    drgate's HTTP/JSON port."""
    CHILD_ENV.update({"ANSIBLE_LOCAL_TEMP": os.path.join(tmp, "ansible-local"),
                      "ANSIBLE_REMOTE_TEMP": os.path.join(tmp, "ansible-remote")})
    stack = Stack(args, tmp, tokens=True, http=True)
    try:
        sim = stack.sim
        with open(stack.token_file) as f:
            token = f.read().strip()
        play = os.path.join(args.source_dir, "examples", "ansible")
        base = [shutil.which("ansible-playbook") or "ansible-playbook",
                "-i", os.path.join(play, "inventory.ini"), os.path.join(play, "dr-backup-http.yml"),
                "-e", f"drgate_http_url={stack.http_url}", "-e", "drgate_wait_timeout=60s",
                "-e", "drgate_poll_interval=1s"]
        cmd = base + ["-e", f"drgate_commcell={COMMCELL}",
                      "-e", f"drgate_token_file={stack.token_file}"]

        # 1. A succeeding backup: exit 0, the job named.
        ok = ["-e", "drgate_request_id=ansible-http-ok"]
        job_id, rc, out, err = run_while(cmd + ok, sim, 1, "Completed")
        check(rc == 0, f"the play succeeds for a succeeding backup (exit {rc})\n{out}{err}")
        check(f"DR backup job {job_id} on CommCell {COMMCELL} JOB_STATE_SUCCEEDED" in out,
              f"it reports job {job_id} succeeded\n{out}")

        # 2. The play run again with the same Idempotency-Key: the same job, no second backup.
        rc, out, err = run(cmd + ok)
        check(rc == 0, f"a re-run with the same key succeeds (exit {rc})\n{out}{err}")
        check(f"DR backup job {job_id} on CommCell {COMMCELL} JOB_STATE_SUCCEEDED (found again: "
              "Idempotency-Key ansible-http-ok)" in out, f"it finds job {job_id} again\n{out}")
        check(sim.posts() == 1 and len(sim.jobs()) == 1, "one upstream POST for both runs")

        # 2b. The default is ensureRecent (drgate_max_age 6h): another key answers the job that
        #     just succeeded and starts nothing.
        rc, out, err = run(cmd + ["-e", "drgate_request_id=ansible-http-again"])
        check(rc == 0 and f"DR backup job {job_id} on CommCell {COMMCELL} JOB_STATE_SUCCEEDED" in out
              and sim.posts() == 1, f"ensureRecent answers job {job_id}, no second POST "
              f"(exit {rc}, {sim.posts()} POSTs)\n{out}{err}")

        # 3. A failing backup, the token given as a variable and the CommCell found through
        #    GET /v1/commcells: the play fails naming the job, its state and the reason.
        reason = "examples test: media agent offline"
        fail = base + ["-e", f"drgate_token={token}", "-e", "drgate_request_id=ansible-http-fail",
                       "-e", "drgate_max_age="]
        job_id, rc, out, err = run_while(fail, sim, 2, "Failed", reason)
        want = (f"DR backup job {job_id} on CommCell {COMMCELL} ended JOB_STATE_FAILED: {reason} "
                f"(CommServe status: Failed)")
        check(rc == 2, f"the play fails for a failing backup (ansible-playbook exit {rc})\n{out}")
        check(re.search(r"fatal: \[localhost\]: FAILED! => .*" + re.escape(want), out),
              f"the failed task says {want!r}\n{out}")

        # 4. drgate answers 503 (the CommServe did): the trigger is retried with the same key and
        #    starts one job. With -vvv, as a log would hold it: the token stays out (no_log).
        sim.call("/_sim/faults", {"endpoint": "DRBackup", "action": "status",
                                  "http_status": 503, "count": 1})
        retry = cmd + ["-vvv", "-e", "drgate_request_id=ansible-http-retry", "-e", "drgate_max_age="]
        job_id, rc, out, err = run_while(retry, sim, 3, "Completed")
        check(rc == 0, f"the play succeeds after a 503 (exit {rc})\n{out}{err}")
        check("FAILED - RETRYING: [localhost]: Trigger the DR backup" in out and
              f"DR backup job {job_id} on CommCell {COMMCELL} JOB_STATE_SUCCEEDED" in out,
              f"the trigger was retried and job {job_id} succeeded\n{out}")
        check(token not in out + err, "the token is not in the -vvv output")

        # 5. Without the token: drgate's 401 and its reason, no job.
        rc, out, err = run(base + ["-e", f"drgate_commcell={COMMCELL}",
                                   "-e", "drgate_request_id=ansible-http-anon"])
        want = (f"DR backup was not started on CommCell {COMMCELL}: HTTP 401 UNAUTHENTICATED "
                "(MISSING_CREDENTIALS)")
        check(rc == 2 and re.search(r"fatal: \[localhost\]: FAILED! => .*" + re.escape(want), out),
              f"a play without the token fails naming {want!r} (exit {rc})\n{out}")
        check(len(sim.jobs()) == 3, "no job for the refused play")
        return stack
    except BaseException:
        stack.stop(show=True)
        raise


def scenario_python(args, tmp):
    stack = Stack(args, tmp)
    try:
        sim = stack.sim
        py = "/usr/bin/python3"  # Debian's, with python3-grpcio and python3-protobuf
        here = os.path.join(args.source_dir, "examples", "python")
        trigger = [py, os.path.join(here, "trigger_backup.py"), "--server", stack.server,
                   "--commcell", COMMCELL, "--timeout", "10"]

        rc, out, err = run(trigger + ["--request-id", "python-1"])
        jobs = sim.jobs()
        check(rc == 0 and len(jobs) == 1, f"trigger_backup.py exits 0, one job ({rc}, {jobs})\n{err}")
        job_id = str(jobs[0]["id"])
        check(out == job_id + "\n", f"it prints the simulator's job id {job_id} ({out!r})")

        rc, out, err = run(trigger + ["--request-id", "python-1"])
        check(rc == 0 and out == job_id + "\n" and "deduplicated" in err,
              f"the same request id prints the same job id, deduplicated ({rc}, {out!r})\n{err}")
        check(sim.posts() == 1, "one upstream POST for both calls")

        rc, out, err = run([py, os.path.join(here, "trigger_backup.py"), "--server", stack.server,
                            "--commcell", "nope", "--timeout", "10"])
        check(rc == 3 and out == "" and
              "TriggerBackup failed: NOT_FOUND COMMCELL_NOT_FOUND" in err,
              f"an unknown CommCell exits 3 naming NOT_FOUND COMMCELL_NOT_FOUND ({rc})\n{err}")

        reflect = [py, os.path.join(here, "reflect.py"), "--server", stack.server]
        rc, out, err = run(reflect + ["list"])
        check(rc == 0 and {"drgate.v1.DrBackupService", "grpc.health.v1.Health"} <=
              set(out.split()), f"reflect.py list shows the services ({rc})\n{out}{err}")
        rc, out, err = run(reflect + ["describe", "drgate.v1.DrBackupService"])
        check(rc == 0 and "  rpc WatchJob(drgate.v1.WatchJobRequest) returns "
              "(stream drgate.v1.Job);" in out,
              f"reflect.py describe shows WatchJob's signature ({rc})\n{out}{err}")
        rc, out, err = run(reflect + ["describe", "drgate.v1.TriggerBackupRequest"])
        check(rc == 0 and "  string request_id = 4;" in out,
              f"reflect.py describe shows a message's fields ({rc})\n{out}{err}")
        return stack
    except BaseException:
        stack.stop(show=True)
        raise


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["go", "ansible", "ansible_http", "python"])
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--go-gate", help="the built drgate-upgrade-gate (scenario go)")
    args = ap.parse_args()
    args.bin_dir = os.path.abspath(args.bin_dir)
    args.source_dir = os.path.abspath(args.source_dir)
    tmp = tempfile.mkdtemp(prefix=f"drgate-examples-{args.scenario}-")
    start = time.monotonic()
    try:
        stack = globals()[f"scenario_{args.scenario}"](args, tmp)
        stack.stop(show=False)
        print(f"examples_test {args.scenario}: PASS in {time.monotonic() - start:.1f}s")
        return 0
    except (Failure, subprocess.TimeoutExpired, OSError) as e:
        print(f"examples_test {args.scenario}: FAIL after {time.monotonic() - start:.1f}s:\n{e}",
              file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
