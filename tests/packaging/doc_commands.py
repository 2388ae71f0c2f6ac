#!/usr/bin/python3
"""The operator's command lines, taken from the documentation itself, for the rehearsals.

usage: doc_commands.py ROOT exec              every `kubectl ... exec deploy/drgate -- CMD` CMD
       doc_commands.py ROOT check             exit 1 when a documented exec line is not in
                                              tests/packaging/rehearsed-exec.txt (or the list
                                              names one the documents no longer have)
       doc_commands.py ROOT exit-codes DRGATECTL
                                              exit 1 when docs/cli.md's exit code table and
                                              `DRGATECTL --help` differ (codes; the states and
                                              gRPC codes each code names)
       doc_commands.py ROOT alerts            exit 1 when deploy/README.md's alert table and
                                              deploy/prometheus/drgate-alerts.yaml differ
                                              (names, `for`, severity)
       doc_commands.py ROOT block FILE START  the lines of the ```sh blocks of FILE after the
                                              first line starting with START, up to the next
                                              numbered step or heading (continuations joined)

Where exec lines are looked for: deploy/README.md, the alert runbooks
(deploy/prometheus/drgate-alerts.yaml), the CronJob example and every docs/*.md. The generated
PrometheusRule and the promtool tests repeat the runbooks and are not read.
A documented exec line is the text after `exec deploy/drgate -- ` up to the end of the line, a
backquote, or the prose after it: ` shows `, ` (`, `; ` or a final `.`.
"""
import pathlib
import re
import sys

EXEC = re.compile(r"kubectl(?: -n drgate)? exec(?: -n drgate)? deploy/drgate -- (.*)$")
PROSE = re.compile(r"`| shows | \(|; |\.$")


def exec_sources(root: pathlib.Path):
    yield root / "deploy/README.md"
    yield root / "deploy/prometheus/drgate-alerts.yaml"
    yield root / "deploy/kubernetes/examples/cronjob-backup.yaml"
    yield from sorted((root / "docs").glob("*.md"))


def exec_lines(root: pathlib.Path) -> dict:
    """Documented command -> the first file:line naming it."""
    found = {}
    for path in exec_sources(root):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = EXEC.search(line)
            if not m:
                continue
            cmd = PROSE.split(m.group(1), maxsplit=1)[0].strip()
            if cmd and cmd != "...":
                found.setdefault(cmd, f"{path.relative_to(root)}:{n}")
    return found


def rehearsed(root: pathlib.Path) -> dict:
    """tests/packaging/rehearsed-exec.txt: `EXIT<TAB>COMMAND` lines -> {COMMAND: EXIT}."""
    out = {}
    path = root / "tests/packaging/rehearsed-exec.txt"
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        code, cmd = line.split("\t", 1)
        out[cmd] = int(code)
    return out


def block(root: pathlib.Path, file: str, start: str):
    lines = (root / file).read_text().splitlines()
    try:
        i = next(n for n, l in enumerate(lines) if l.strip().startswith(start))
    except StopIteration:
        sys.exit(f"doc_commands: {file} has no line starting with {start!r}")
    out, in_sh, joined = [], False, ""
    for line in lines[i + 1:]:
        s = line.strip()
        if not in_sh and (re.match(r"\d+\. \*\*", s) or s.startswith("#")):
            break
        if s.startswith("```"):
            in_sh = (not in_sh) and s in ("```sh", "```bash")
            continue
        if not in_sh or not s:
            continue
        joined += s[:-1] + " " if s.endswith("\\") else s
        if not s.endswith("\\"):
            out.append(joined)
            joined = ""
    return out


def caps(text: str) -> set:
    """The upper-case words of a text: job states and gRPC codes."""
    return set(re.findall(r"\b[A-Z][A-Z_]{2,}\b", text))


def check_exit_codes(root: pathlib.Path, drgatectl: str) -> int:
    import subprocess
    help_text = subprocess.run([drgatectl, "--help"], capture_output=True, text=True,
                               check=True).stdout
    block = help_text[help_text.index("Exit codes"):]
    helped, code = {}, None
    for line in block.splitlines()[1:]:
        m = re.match(r"\s{2}(\d)\s+(.*)", line)
        if m:
            code = int(m.group(1))
            helped[code] = m.group(2)
        elif code is not None and line.startswith("     "):
            helped[code] += " " + line.strip()
    documented = {}
    for line in (root / "docs/cli.md").read_text().splitlines():
        m = re.match(r"\| (\d) \| (.*) \|$", line)
        if m:
            documented[int(m.group(1))] = m.group(2)
    bad = 0
    if set(helped) != set(documented) or not helped:
        print(f"exit codes: drgatectl --help has {sorted(helped)}, docs/cli.md {sorted(documented)}")
        bad += 1
    for code in sorted(set(helped) & set(documented)):
        if caps(helped[code]) != caps(documented[code]):
            print(f"exit code {code}: drgatectl --help names {sorted(caps(helped[code]))}, "
                  f"docs/cli.md {sorted(caps(documented[code]))}")
            bad += 1
    print(f"doc_commands: {len(helped)} exit codes compared, {bad} problem(s)")
    return 1 if bad else 0


def check_alerts(root: pathlib.Path) -> int:
    import yaml
    rules = yaml.safe_load((root / "deploy/prometheus/drgate-alerts.yaml").read_text())
    want = {}
    for group in rules["groups"]:
        for r in group["rules"]:
            if "alert" in r:
                want[r["alert"]] = (r.get("for", "-"), r["labels"]["severity"])
    have = {}
    for line in (root / "deploy/README.md").read_text().splitlines():
        m = re.match(r"\| `(Drgate\w+)` \| .* \| ([^|]+) \| (\w+) \|$", line)
        if m:
            have[m.group(1)] = (m.group(2).strip(), m.group(3))
    bad = 0
    for name in sorted(set(want) | set(have)):
        if want.get(name) != have.get(name):
            print(f"alert {name}: drgate-alerts.yaml (for, severity) = {want.get(name)}, "
                  f"deploy/README.md's table = {have.get(name)}")
            bad += 1
    print(f"doc_commands: {len(want)} alerts compared, {bad} problem(s)")
    return 1 if bad or not want else 0


def main() -> int:
    root, what = pathlib.Path(sys.argv[1]).resolve(), sys.argv[2]
    if what == "exec":
        for cmd in exec_lines(root):
            print(cmd)
        return 0
    if what == "check":
        documented, listed = exec_lines(root), rehearsed(root)
        bad = 0
        for cmd, where in documented.items():
            if cmd not in listed:
                print(f"{where}: `{cmd}` is documented but not rehearsed: add it to "
                      "tests/packaging/rehearsed-exec.txt with its expected exit code")
                bad += 1
        for cmd in listed:
            if cmd not in documented:
                print(f"tests/packaging/rehearsed-exec.txt: `{cmd}` is no longer documented")
                bad += 1
        if not documented:
            print("no documented exec line found: the extraction is broken")
            bad += 1
        print(f"doc_commands: {len(documented)} documented exec lines, {bad} problem(s)")
        return 1 if bad else 0
    if what == "exit-codes":
        return check_exit_codes(root, sys.argv[3])
    if what == "alerts":
        return check_alerts(root)
    if what == "block":
        for line in block(root, sys.argv[3], sys.argv[4]):
            print(line)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
