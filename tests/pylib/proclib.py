"""Child processes for drgate's Python test drivers (tests/examples, tests/prometheus_e2e).

Standard library only. A driver imports it after putting this folder on sys.path:

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pylib"))
    from proclib import CHILD_ENV, Failure, Proc, log
"""
import os
import re
import signal
import subprocess
import threading
import time

# Everything runs on loopback: no proxy from the environment, for urllib and for the children
# (gRPC honours http_proxy / grpc_proxy too). Drivers may add to CHILD_ENV before starting
# children.
PROXY_VARS = {"http_proxy", "https_proxy", "grpc_proxy", "all_proxy", "no_proxy"}
CHILD_ENV = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}


class Failure(Exception):
    """A check failed; the message says which and what was seen."""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Proc:
    """A child process whose stdout+stderr lines are collected by a thread.

    `deadline` (time.monotonic()) bounds every wait_for, whatever its own timeout: the driver's
    whole run must end before CTest's TIMEOUT.
    """

    def __init__(self, name, argv, deadline, cwd=None):
        self.name = name
        self.deadline = deadline
        self.lines = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(argv, cwd=cwd, env=CHILD_ENV, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  errors="replace")
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pattern, timeout=15):
        """The first group of the first output line matching `pattern`, waiting for it."""
        rx = re.compile(pattern)
        end = min(time.monotonic() + timeout, self.deadline)
        with self.cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m.group(1)
                seen = len(self.lines)
                if self.p.poll() is not None and not self.t.is_alive():
                    raise Failure(f"{self.name} exited ({self.p.returncode}) before /{pattern}/")
                left = end - time.monotonic()
                if left <= 0:
                    raise Failure(f"{self.name}: no /{pattern}/ within {timeout}s")
                self.cond.wait(min(left, 0.2))

    def stop(self):
        """SIGTERM, then SIGKILL after 10 s; the exit code."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
        self.t.join(timeout=2)
        return self.p.returncode

    def output(self, last=40):
        with self.cond:
            return "\n".join(f"  {self.name}| {line}" for line in self.lines[-last:])
