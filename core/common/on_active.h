#pragma once

namespace drgate::jobs {

// What to do when the CommServe refuses a trigger because a DR job is already running (the
// `on_active` key of a CommCell). Lives in core/common because both core/config (which parses
// it) and core/jobs (which acts on it) need it, and config must not depend on jobs.
enum class OnActive {
  // Answer ABORTED (reason DR_JOB_ALREADY_RUNNING, the running job's id in metadata). The
  // default: the caller asked for a new backup, and a job that started earlier may predate the
  // change they want captured; EnsureRecentBackup is the call for "any recent backup will do".
  kReject,
  // Answer the running job (deduplicated = true), recording it when drgate did not start it.
  kReuse,
};

}  // namespace drgate::jobs
