// Pure helpers of drgatectl: rendering of jobs, CommCells and errors (human and JSON), exit codes,
// and parsing of command-line values. Nothing here does I/O, so all of it is unit-tested.
#ifndef DRGATE_TOOLS_DRGATECTL_OUTPUT_H_
#define DRGATE_TOOLS_DRGATECTL_OUTPUT_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "drgate/v1/drgate.pb.h"

namespace drgate::cli {

// The process exit codes: a contract with runbooks, documented in `drgatectl --help` and the
// README. Codes 1, 5, 6 and 7 only come from commands that wait (backup --wait, ensure --wait,
// jobs watch); each outcome of a wait has its own code so a script can tell them apart.
enum ExitCode : int {
  kExitOk = 0,           // Success; when waiting: the job SUCCEEDED.
  kExitJobFailed = 1,    // The job FAILED, or ended UNKNOWN.
  kExitUsage = 2,        // Bad flags or unreadable local files (token, certificates).
  kExitRefused = 3,      // drgate refused the request; retrying the same call won't help.
  kExitUnavailable = 4,  // drgate or the CommServe unreachable, unavailable or failing.
  kExitWaitTimeout = 5,  // --wait-timeout reached before the job finished.
  kExitJobSucceededWithErrors = 6,  // The job ended SUCCEEDED_WITH_ERRORS.
  kExitJobKilled = 7,               // The job was KILLED.
};

// Maps the status of a failed call to the exit code: kExitRefused when the request itself or the
// configuration must change, kExitUnavailable when a later retry may succeed (also for codes
// outside the canonical set). OK maps to kExitOk.
int ExitCodeFor(grpc::StatusCode code);

// The exit code for a job a command waited for: kExitOk for SUCCEEDED,
// kExitJobSucceededWithErrors, kExitJobKilled, and kExitJobFailed for FAILED, UNKNOWN and every
// other state (callers only ask for terminal states).
int ExitCodeForJobState(v1::JobState state);

// Whether the job will not change any more (SUCCEEDED*, FAILED, KILLED, UNKNOWN).
bool IsTerminal(v1::JobState state);

// Whether a wait should keep going after a WatchJob/GetJob call failed with `code`: the server or
// the network is briefly unavailable. Any other failure ends the wait.
bool IsRetryableWhileWaiting(grpc::StatusCode code);

// "NOT_FOUND" for grpc::StatusCode::NOT_FOUND; "CODE_<n>" for values outside the enum.
std::string StatusCodeName(grpc::StatusCode code);

// Parses "500ms", "30s", "5m", "4h", "2d" and sums like "1h30m". A bare number is rejected (the
// unit is never guessed). Returns nullopt on a malformed value or on overflow.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The shortest form ParseDuration reads back: "1h30m", "500ms", "0s".
std::string FormatDuration(std::chrono::milliseconds duration);

// "running" -> JOB_STATE_RUNNING; also "succeeded_with_errors" and "succeeded-with-errors".
// Case-insensitive. Returns nullopt for anything that is not a concrete state.
std::optional<v1::JobState> ParseJobState(std::string_view text);

// "full" / "differential" -> BackupType; nullopt otherwise.
std::optional<v1::BackupType> ParseBackupType(std::string_view text);

// "SUCCEEDED_WITH_ERRORS" for JOB_STATE_SUCCEEDED_WITH_ERRORS (the enum name without prefix).
std::string JobStateName(v1::JobState state);

// "full", "differential", "unspecified".
std::string BackupTypeName(v1::BackupType type);

// "drgate" / "commserv" -> JobOrigin (case-insensitive); nullopt otherwise.
std::optional<v1::JobOrigin> ParseJobOrigin(std::string_view text);
// "drgate", "commserv", "-" (unspecified: a server older than origins).
std::string JobOriginName(v1::JobOrigin origin);

// One CommCell's line of `drgatectl status`, computed from its ListCommCells entry and its
// recent jobs (any order; every origin).
struct CommCellStatus {
  std::string name;
  bool reachable = false;
  const v1::Job* last_full = nullptr;          // latest success (also with errors) by end time
  const v1::Job* last_differential = nullptr;  // same, differential
  std::vector<const v1::Job*> running;         // not terminal
  const v1::Job* last_failure = nullptr;       // latest FAILED or KILLED by end time
  std::optional<int32_t> retained_fulls;       // unset while the options are unknown
  std::optional<bool> offsite;                 // a copy leaves the CommServe host
};
// The pointers point into `jobs`, which must outlive the result.
CommCellStatus BuildCommCellStatus(const v1::CommCell& commcell,
                                   const google::protobuf::RepeatedPtrField<v1::Job>& jobs);

// One line per CommCell: `cs1  reachable  full 3h ago (commserv)  differential none  running -
// last failure 2d ago (drgate: disk full)  retained fulls 5  offsite no`. Ages from `now`.
std::string RenderStatus(const std::vector<CommCellStatus>& cells,
                         const google::protobuf::Timestamp& now);
// [{"commcell": ..., "reachable": ..., "last_full": {job_id, origin, end_time, age_seconds} or
// null, "last_differential": ..., "running": [{job_id, origin, backup_type, state}],
// "last_failure": {... , failure_reason} or null, "retained_fulls": N or null,
// "offsite": bool or null}]
nlohmann::ordered_json StatusToJson(const std::vector<CommCellStatus>& cells,
                                    const google::protobuf::Timestamp& now);

// RFC 3339 UTC with seconds precision ("2024-05-01T10:00:00Z"); "-" for an unset timestamp
// (zero seconds and nanos: the proto default).
std::string FormatTimestamp(const google::protobuf::Timestamp& timestamp);

// Formats 16 random bytes as a UUID version 4 (RFC 4122): sets the version and variant bits.
std::string FormatUuidV4(std::array<std::uint8_t, 16> bytes);

// A failed call as drgatectl reports it: the gRPC status plus the google.rpc.ErrorInfo the
// server attaches (empty reason and metadata when there is none or it cannot be parsed).
struct RpcError {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  std::string reason;
  std::string domain;
  std::map<std::string, std::string> metadata;
};

// Reads the ErrorInfo from the serialized google.rpc.Status in status.error_details().
RpcError ParseRpcError(const grpc::Status& status);

// `drgatectl: TriggerBackup failed: NOT_FOUND: commcell "x" is not configured (reason
// COMMCELL_NOT_FOUND)`, without a trailing newline.
std::string RenderErrorHuman(std::string_view method, const RpcError& error);

// {"code":"NOT_FOUND","message":"...","reason":"...","metadata":{...}}: every key always present.
nlohmann::ordered_json ErrorToJson(const RpcError& error);

// The message in protobuf's JSON mapping with proto field names (snake_case), enums as names and
// every scalar field present, so scripts see the same keys for every job.
nlohmann::ordered_json MessageToJson(const google::protobuf::Message& message);

// `job 2141 on cs1: RUNNING 42% (full, compression off) task 433`; the percentage only while
// the job is QUEUED, RUNNING or SUSPENDED, and `: <failure_reason>` when there is one.
std::string RenderJobSummary(const v1::Job& job);

// One "key: value" line per field of the job, for `jobs get`.
std::string RenderJobDetail(const v1::Job& job);

// The job summary plus a line saying when the answer is an earlier job.
std::string RenderTriggerResponse(const v1::TriggerBackupResponse& response);

// A table of jobs (one per line, with a header), "no jobs" when empty, and the token for the next
// page when there is one.
std::string RenderJobTable(const v1::ListJobsResponse& response);

// A table of CommCells with their reachability; "no commcells configured" when empty.
std::string RenderCommCellTable(const v1::ListCommCellsResponse& response);

// What a waiting command prints to stderr when a job changes: a summary of `current` when its
// state, percentage or CommServe status differ from `previous` (or there is no previous);
// nullopt when nothing a reader cares about changed.
std::optional<std::string> RenderProgress(const v1::Job* previous, const v1::Job& current);

// The progress line a waiting command redraws in place on a terminal, without newline:
// `[#########-----------]  45%  RUNNING  job 2141 on cs1  (1m12s)`. `width` is the number of
// cells between the brackets (negative counts as 0). The bar is full for SUCCEEDED and
// SUCCEEDED_WITH_ERRORS and otherwise shows percent_complete clamped to 0-100, so a failed job
// keeps the progress it made. `elapsed` is how long the command has waited, printed as "12s",
// "1m05s" or "2h03m04s" (whole seconds; negative counts as 0).
std::string RenderProgressBar(const v1::Job& job, int width, std::chrono::milliseconds elapsed);

}  // namespace drgate::cli

#endif  // DRGATE_TOOLS_DRGATECTL_OUTPUT_H_
