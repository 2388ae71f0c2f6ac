#pragma once

#include <memory>
#include <string>

#include "core/commserv/client.h"

namespace drgate::jobs {

// What to do when the CommServe refuses a trigger because a DR job is already running.
enum class OnActive {
  // Answer ABORTED (reason DR_JOB_ALREADY_RUNNING, the running job's id in metadata). The
  // default: the caller asked for a new backup, and a job that started earlier may predate the
  // change they want captured; EnsureRecentBackup is the call for "any recent backup will do".
  kReject,
  // Answer the running job (deduplicated = true), recording it when drgate did not start it.
  kReuse,
};

// One configured CommCell as core/jobs sees it.
struct CommCell {
  std::string name;
  std::string url;  // without credentials
  std::shared_ptr<commserv::CommServClient> client;
  OnActive on_active = OnActive::kReject;
};

}  // namespace drgate::jobs
