#!/usr/bin/env bash
# proto-compat against the committed baseline, on copies of proto/drgate/v1/drgate.proto:
#   untouched                        -> compatible (exit 0)
#   Job.task_id renumbered 3 -> 99   -> exit 1, FIELD_NO_DELETE "renumbered to 99"
#   JobState value JOB_STATE_KILLED removed -> exit 1, ENUM_VALUE_NO_DELETE "was removed"
#   a field added, an enum value added -> compatible
# usage: check_broken_proto.sh PROTO_COMPAT PROTOC SOURCE_DIR
set -euo pipefail
checker=$1 protoc=$2 src=$3
baseline=$src/proto/baseline/drgate_v1.binpb
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "check_broken_proto: $*" >&2; exit 1; }

# check NAME SED_SCRIPT EXPECTED_EXIT EXPECTED_TEXT
check() {
  local name=$1 script=$2 want=$3 text=$4 dir=$work/$1 rc=0
  mkdir -p "$dir/drgate/v1"
  sed -e "$script" "$src/proto/drgate/v1/drgate.proto" >"$dir/drgate/v1/drgate.proto"
  if [[ -n $script ]] && cmp -s "$dir/drgate/v1/drgate.proto" "$src/proto/drgate/v1/drgate.proto"; then
    fail "$name: the edit '$script' changed nothing (has the .proto changed?)"
  fi
  "$protoc" --proto_path="$dir" --proto_path="${DRGATE_GOOGLEAPIS_DIR:-/usr/share/gocode/src/github.com/gogo/googleapis}" \
    --include_imports --descriptor_set_out="$dir/set.binpb" \
    drgate/v1/drgate.proto
  "$checker" --package drgate.v1 "$baseline" "$dir/set.binpb" >"$dir/out" 2>&1 || rc=$?
  cat "$dir/out"
  [[ $rc == "$want" ]] || fail "$name: exit $rc, expected $want"
  if [[ -n $text ]] && ! grep -qF -- "$text" "$dir/out"; then
    fail "$name: output lacks '$text'"
  fi
  echo "check_broken_proto: $name: exit $rc as expected"
}

check untouched '' 0 'is compatible'
# Job's field 3 is task_id (the only task_id of the file); the test edits its declaration line.
[[ $(grep -cE '^\s+int64 task_id = 3;' "$src/proto/drgate/v1/drgate.proto") == 1 ]] ||
  fail "one 'int64 task_id = 3;' (Job) expected in drgate.proto: adapt this test"
check renumbered_field 's/^\(\s*int64 task_id =\) 3;/\1 99;/' 1 \
  'FIELD_NO_DELETE: drgate.v1.Job: field 3 (task_id) was renumbered to 99'
check removed_enum_value '/^\s*JOB_STATE_KILLED = /d' 1 \
  'ENUM_VALUE_NO_DELETE: drgate.v1.JobState: value'
check added_field_and_value \
  '/^message ListCommCellsRequest {}/s//message ListCommCellsRequest { string added_field = 1; }/' \
  0 'is compatible'
