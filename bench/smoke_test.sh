#!/usr/bin/env bash
# bench_smoke: runs every benchmark scenario briefly (bench/run.sh --quick) and checks that the
# result table is well-formed and complete. Never asserts a timing.
# Usage: smoke_test.sh BIN_DIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bash "$here/run.sh" --quick --bin "$1" --out "$out" >"$out/stdout"
table=$out/results.md
fail() {
  echo "bench_smoke: $*" >&2
  cat "$out/stdout" >&2
  exit 1
}
grep -qx '| scenario | measure | result | target | verdict |' "$table" || fail "no table header"
grep -qx '| --- | --- | --- | --- | --- |' "$table" || fail "no header separator"
# Every row has exactly five cells, and none is empty.
awk -F'|' '/^\|/ && NF != 7 { print "bad row: " $0; bad = 1 } END { exit bad }' "$table" ||
  fail "malformed rows"
grep -qF '|  |' "$table" && fail "a row has an empty cell"
for scenario in 'registry 10000 jobs' 'read GetJob @1' 'read GetJob @16' 'read GetJob @256' \
  'read ListJobs/50 @1' 'read ListJobs/50 @256' 'read ListJobs/10 @16' 'trigger latency' 'tracking [0-9]+ CommCells x 1 job\(s\)' \
  'tracking [0-9]+ CommCells x 3 job\(s\) \+ [0-9]+ watchers' '/metrics, [0-9]+ CommCells' \
  'isolation [0-9]+ CommCells, [0-9]+ hung' 'estate, [0-9]+ CommCells, per-CommCell histograms' \
  'estate, [0-9]+ CommCells, estate metrics'; do
  grep -qE "^\| $scenario \|" "$table" || fail "no row for '$scenario'"
done
for measure in 'c/b at p50' 'a/c at p50' 'upstream requests per poll interval' 'scrape p50' \
  'start to every DR history read (backfilled)'; do
  grep -qF "$measure" "$table" || fail "no '$measure' row"
done
# Failed calls are reported as an "errors" row: the smoke run must have none.
if grep -q '| errors |' "$table"; then fail "calls failed"; fi
# Raw samples for the plot.
for f in trigger-a-runbook trigger-b-beast trigger-c-drgate trigger-b0-beast-cold; do
  [[ -s $out/$f.txt ]] || fail "no raw samples $f.txt"
done
echo "bench_smoke: table of $(grep -c '^| [a-z/(]' "$table") rows is well-formed"
