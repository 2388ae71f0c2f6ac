// The simulator's own reading of the CommServe REST wire format: request parsing and response
// encoding as pure functions (bytes in, value or error out). Shares no code with drgate's core.
// Every function here is thread-safe (no shared state).
#ifndef DRGATE_TOOLS_COMMSERV_SIM_WIRE_H_
#define DRGATE_TOOLS_COMMSERV_SIM_WIRE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace commserv_sim {

// Body format of a request or an answer.
enum class Format { kJson, kXml };

// The request body format named by a Content-Type header: XML when it mentions "xml", else JSON.
Format RequestFormat(std::string_view content_type);

// The answer format: what the Accept header names (json or xml), else `request_format`.
Format ResponseFormat(std::string_view accept, Format request_format);

// The Content-Type value to send for `format`.
std::string_view MediaType(Format format);

// Outcome of a parse: exactly one of `value` and `error` is meaningful.
template <typename T>
struct Parsed {
  std::optional<T> value;  // Set on success.
  std::string error;       // Why the input was rejected; empty on success.
};

// Decodes standard base64 (RFC 4648 alphabet, padding required). nullopt if `text` is not base64.
std::optional<std::string> DecodeBase64(std::string_view text);

enum class BackupLevel { kFull, kDifferential };

// "Full" or "Differential", as the job summary's backupLevelName shows it.
std::string_view BackupLevelName(BackupLevel level);

struct DrBackupRequest {
  BackupLevel level = BackupLevel::kFull;
  bool compression = false;
};

// Parses a CommServ/DRBackup body. JSON accepts JSON booleans/numbers and the seed document's
// string forms ("false", "1", "3"); XML accepts the TMMsg_CommcellDRBackupReq attributes.
// backupType is required; isCompressionEnabled defaults to false; jobType defaults to immediate.
Parsed<DrBackupRequest> ParseDrBackupRequest(std::string_view body, Format format);

struct LoginRequest {
  std::string username;
  std::string password_base64;
};

// Parses a Login body: a JSON object with string "username" and "password".
Parsed<LoginRequest> ParseLoginRequest(std::string_view body);

// Parses a RenewLoginToken body and returns its "sessionId".
Parsed<std::string> ParseRenewRequest(std::string_view body);

// Parses a JobDetails body and returns its "jobId" (a number or a numeric string).
Parsed<int64_t> ParseJobDetailsRequest(std::string_view body);

// What Job/{id} and the job list show of one job.
struct JobSummary {
  int64_t job_id = 0;
  std::string status;
  int percent_complete = 0;
  int64_t job_start_time = 0;  // Epoch seconds.
  int64_t job_end_time = 0;    // Epoch seconds; 0 while the job is not finished.
  int64_t last_update_time = 0;
  std::string pending_reason;
  std::string current_phase_name;
  BackupLevel level = BackupLevel::kFull;
};

std::string EncodeLoginSuccess(std::string_view token, std::string_view user_name);
std::string EncodeLoginFailure();  // 200 errList form.
std::string EncodeAccessDenied();  // 401 body.
std::string EncodeRenewSuccess(std::string_view token);
std::string EncodeRenewFailure();
std::string EncodeJobActionSuccess();  // {"errorCode":0}
std::string EncodeJobDetails(std::string_view reason_for_job_delay);

// TMMsg_CreateTaskResp. Job ids are JSON strings unless `ids_as_numbers`.
std::string EncodeCreateTask(Format format, int64_t task_id, const std::vector<int64_t>& job_ids,
                             bool ids_as_numbers);

// {"errorCode","errorMessage"} or <TMMsg_GenericResp errorCode="" errorMessage=""/>.
std::string EncodeGenericResponse(Format format, int error_code, std::string_view message);

// {"totalRecordsWithoutPaging": total, "jobs": [{"jobSummary": {...}}, ...]}
std::string EncodeJobList(int64_t total_records, const std::vector<JobSummary>& jobs);

}  // namespace commserv_sim

#endif  // DRGATE_TOOLS_COMMSERV_SIM_WIRE_H_
