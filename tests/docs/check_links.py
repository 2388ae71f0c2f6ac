#!/usr/bin/env python3
"""Checks the documentation's relative links and that no section of the old README got lost.

usage: check_links.py SOURCE_DIR [--sections FILE]
- Every relative link [text](path#anchor) in README.md, CHANGELOG.md, deploy/README.md and
  docs/*.md (outside code blocks and inline code) names an existing file, and its #anchor (or a
  bare #anchor) a heading of that Markdown file, slugged as GitHub does.
- With --sections: each line of FILE (a section title of the README before it became a landing
  page) is found in a heading of README.md or docs/*.md (case-insensitive substring).
Exit 1 with one line per problem.
"""
import pathlib
import re
import sys

LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def strip_code(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code removed."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else re.sub(r"`[^`]*`", "``", line))
    return out


def slug(heading: str) -> str:
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)  # GitHub keeps letters, digits, '_', '-' and spaces
    return s.replace(" ", "-")


def headings(path: pathlib.Path) -> tuple[list[str], set[str]]:
    titles, anchors, seen = [], set(), {}
    fenced = False
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if not m:
            continue
        title = m.group(2)
        titles.append(title)
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return titles, anchors


def main() -> int:
    root = pathlib.Path(sys.argv[1]).resolve()
    sections = None
    if "--sections" in sys.argv:
        sections = pathlib.Path(sys.argv[sys.argv.index("--sections") + 1])
    files = [root / "README.md", root / "CHANGELOG.md", root / "deploy" / "README.md"]
    files += sorted((root / "docs").glob("*.md"))
    problems, links = [], 0
    for f in files:
        if not f.exists():
            problems.append(f"{f.relative_to(root)}: missing")
            continue
        for lineno, line in enumerate(strip_code(f.read_text(encoding="utf-8")), 1):
            for m in LINK.finditer(line):
                target = m.group(1)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                links += 1
                path, _, anchor = target.partition("#")
                dest = (f.parent / path).resolve() if path else f
                where = f"{f.relative_to(root)}:{lineno}: {target}"
                if not dest.exists():
                    problems.append(f"{where}: no such file")
                    continue
                if root not in dest.parents and dest != root:
                    problems.append(f"{where}: points outside the repository")
                    continue
                if anchor:
                    if dest.suffix != ".md":
                        problems.append(f"{where}: anchor on a file that is not Markdown")
                    elif anchor not in headings(dest)[1]:
                        problems.append(f"{where}: no heading with anchor #{anchor} in "
                                        f"{dest.relative_to(root)}")
    if sections is not None:
        titles = []
        for f in [root / "README.md"] + sorted((root / "docs").glob("*.md")):
            titles += [t.lower() for t in headings(f)[0]]
        for want in sections.read_text(encoding="utf-8").split("\n"):
            want = want.strip()
            if want and not want.startswith("#") and not any(want.lower() in t for t in titles):
                problems.append(f"old README section '{want}': no heading in README.md or docs/")
    for p in problems:
        print(f"check_links: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_links: {links} relative links in {len(files)} files resolve"
          + ("; every old README section has a heading" if sections else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
