#include "core/common/job.h"

namespace drgate {

const char* BackupTypeName(BackupType type) {
  switch (type) {
    case BackupType::kFull: return "full";
    case BackupType::kDifferential: return "differential";
  }
  return "full";
}

std::optional<BackupType> ParseBackupType(std::string_view name) {
  if (name == "full") return BackupType::kFull;
  if (name == "differential") return BackupType::kDifferential;
  return std::nullopt;
}

const char* JobOriginName(JobOrigin origin) {
  switch (origin) {
    case JobOrigin::kDrgate: return "drgate";
    case JobOrigin::kCommserv: return "commserv";
  }
  return "drgate";
}

std::optional<JobOrigin> ParseJobOrigin(std::string_view name) {
  if (name == "drgate") return JobOrigin::kDrgate;
  if (name == "commserv") return JobOrigin::kCommserv;
  return std::nullopt;
}

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kSubmitted: return "submitted";
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kSuspended: return "suspended";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kSucceededWithErrors: return "succeeded_with_errors";
    case JobState::kFailed: return "failed";
    case JobState::kKilled: return "killed";
    case JobState::kUnknown: return "unknown";
  }
  return "unknown";
}

std::optional<JobState> ParseJobState(std::string_view name) {
  for (int i = 1; i <= 9; ++i) {
    auto s = static_cast<JobState>(i);
    if (name == JobStateName(s)) return s;
  }
  return std::nullopt;
}

bool IsTerminal(JobState state) {
  switch (state) {
    case JobState::kSucceeded:
    case JobState::kSucceededWithErrors:
    case JobState::kFailed:
    case JobState::kKilled: return true;
    default: return false;
  }
}

}  // namespace drgate
