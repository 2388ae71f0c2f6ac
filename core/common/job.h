#pragma once

// drgate's domain types for DR backup jobs, shared by the CommServe client, the registry and the
// orchestration. They mirror drgate.v1 in meaning; plugin/ translates between the two.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace drgate {

enum class BackupType { kFull = 1, kDifferential = 2 };

// "full" / "differential" (stable: used in metric labels, the registry and the CLI).
const char* BackupTypeName(BackupType type);
std::optional<BackupType> ParseBackupType(std::string_view name);

enum class JobState {
  kSubmitted = 1,
  kQueued = 2,
  kRunning = 3,
  kSuspended = 4,
  kSucceeded = 5,
  kSucceededWithErrors = 6,
  kFailed = 7,
  kKilled = 8,
  kUnknown = 9,
};

// "submitted", "queued", ... (stable: used in the registry and metric labels).
const char* JobStateName(JobState state);
std::optional<JobState> ParseJobState(std::string_view name);
bool IsTerminal(JobState state);

using TimePoint = std::chrono::system_clock::time_point;

// Who started a DR backup job: drgate itself, or the CommServe (its own DR schedule or an
// administrator; the CommServe's job list does not say which).
enum class JobOrigin { kDrgate = 1, kCommserv = 2 };

// "drgate" / "commserv" (stable: used in metric labels, the registry and the CLI).
const char* JobOriginName(JobOrigin origin);
std::optional<JobOrigin> ParseJobOrigin(std::string_view name);

// One DR backup job of a CommCell, as recorded in the registry: one drgate started, or one it
// found in the CommServe's DR job history (origin kCommserv).
struct Job {
  std::string commcell;
  std::string job_id;  // the CommServe's id, verbatim
  int64_t task_id = 0;
  BackupType backup_type = BackupType::kFull;
  bool compression = false;
  JobState state = JobState::kSubmitted;
  std::string commserv_status;
  int32_t percent_complete = 0;
  std::string failure_reason;
  std::string request_id;    // empty when the caller gave none
  std::string requested_by;  // caller identity, never a credential
  TimePoint create_time{};
  std::optional<TimePoint> start_time;
  std::optional<TimePoint> end_time;
  TimePoint update_time{};
  JobOrigin origin = JobOrigin::kDrgate;

  friend bool operator==(const Job&, const Job&) = default;
};

}  // namespace drgate
