#pragma once

// The CommServe wire codec: pure functions from values to bytes and from HTTP responses to
// results or errors. No I/O, no clocks, no globals: exhaustively table-tested and fuzzed.
//
// Error conventions of every Decode* function (docs/commserv-api.md describes the API):
//   - HTTP 200 with {"errorCode": N != 0, "errorMessage": "..."} (or an XML *_GenericResp with
//     errorCode != 0), or errList[0].errLogMessage: the CommServe refused the request.
//     -> reason UPSTREAM_REJECTED (code FAILED_PRECONDITION), message carries the upstream text;
//        when that text says a DR job "is already running": reason DR_JOB_ALREADY_RUNNING, code
//        ABORTED, with metadata "active_job_id" when the text names the job ("job [2100]").
//     The error objects recognised: top-level errorCode/errorMessage, errList[0] (errorCode,
//     errLogMessage), "error": {...}; in XML the root's attributes (TMMsg_GenericResp,
//     CVGui_GenericResp, App_GenericResp, ...) or an <errList>/<error> child. A non-zero code, or
//     a message without a code, is an error; errorCode 0 is not. "already in progress" counts as
//     "already running" too, and the check also applies to 4xx/5xx bodies.
//   - HTTP 401: UNAUTHENTICATED, reason UPSTREAM_UNAUTHENTICATED (the session layer renews or
//     logs in again; it is never shown to a caller as is).
//   - HTTP 5xx, 429, 502-504: UNAVAILABLE, reason UPSTREAM_HTTP_5XX / UPSTREAM_RATE_LIMITED, with
//     the HTML <title> (or the first line of a plain-text body) in the message. A Retry-After in
//     seconds on 429/503 becomes metadata "retry_after_seconds".
//   - other 4xx: FAILED_PRECONDITION, reason UPSTREAM_HTTP_4XX, plain-text body in the message
//     (or errorMessage when the body is a JSON/XML error object).
//   - 3xx: FAILED_PRECONDITION, reason UPSTREAM_REDIRECTED (the configured root is wrong); any
//     other status (0, 1xx, >599): INTERNAL, MALFORMED_UPSTREAM_RESPONSE.
//   - a 2xx body that is not the expected JSON/XML, or lacks required fields: INTERNAL, reason
//     MALFORMED_UPSTREAM_RESPONSE, message says what was wrong ("body is not JSON: ..." /
//     "missing taskId" / "jobIds is empty" / "unexpected content type text/html").
// JSON vs XML: the content type decides when it names json or xml (text/html on a 2xx is
// malformed); otherwise the first non-space byte ('{'/'[' or '<').
// Every error carries metadata "http_status", and "upstream_error_code" when the body had one.
// Upstream texts in messages are sanitized (valid UTF-8, no control characters) and truncated to
// 512 bytes. Decoders never throw and accept any bytes (they are fuzzed).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/common/job.h"
#include "core/common/status.h"
#include "core/commserv/http.h"

namespace drgate::commserv {

enum class WireFormat { kJson, kXml };

// "application/json" / "application/xml"
const char* ContentTypeOf(WireFormat format);

struct DrBackupRequest {
  BackupType backup_type = BackupType::kFull;
  bool compression = false;
  // Not on the wire: the caller's deadline (from its gRPC deadline). The client gives up by
  // then, or after its request_timeout when that comes first. nullopt: request_timeout only.
  std::optional<TimePoint> deadline{};
};

struct DrBackupResult {
  int64_t task_id = 0;
  std::vector<std::string> job_ids;  // at least one on success; numbers become decimal strings
};

// JSON: {"isCompressionEnabled":false,"jobType":1,"backupType":1}   (3 = differential)
// XML:  <TMMsg_CommcellDRBackupReq isCompressionEnabled="false" jobType="IMMEDIATE"
//        backupType="full"/>
std::string EncodeDrBackupRequest(const DrBackupRequest& request, WireFormat format);

// Success: JSON {"taskId":433,"jobIds":["2141"]} (ids may be numbers), XML
// <TMMsg_CreateTaskResp taskId="434"><jobIds val="2142"/></TMMsg_CreateTaskResp>.
// The format is taken from the response's content type when it names json or xml, else from the
// first byte, else `format`. Job ids must be decimal digits (they go into URL paths). When the
// body holds job ids AND an error code, the job ids win: a started job must be followed.
StatusOr<DrBackupResult> DecodeDrBackupResponse(const HttpResponse& response, WireFormat format);

// Login (always JSON): {"username":..., "password":"<base64(password)>", "domain":"",
// "deviceId":..., "timeout":30}. The result holds the password in base64; callers must not log it.
std::string EncodeLoginRequest(const std::string& username, const std::string& password,
                               const std::string& device_id);

// The token as issued ("QSDK ...", passed through NormalizeToken; a token with characters that
// cannot go into a header is MALFORMED_UPSTREAM_RESPONSE). A failed login
// (errList[0].errLogMessage, 401 {"errorCode":5,...}, errorCode != 0) is UNAUTHENTICATED with
// reason UPSTREAM_LOGIN_FAILED and the upstream text (plus "account locked" and metadata
// account_locked=true when isAccountLocked is true).
StatusOr<std::string> DecodeLoginResponse(const HttpResponse& response);

// RenewLoginToken: {"sessionId":"<old token>","deviceId":...} -> {"token":"..."}; an
// {"error":{...}} body is UNAUTHENTICATED, reason UPSTREAM_RENEW_FAILED.
std::string EncodeRenewRequest(const std::string& token, const std::string& device_id);
StatusOr<std::string> DecodeRenewResponse(const HttpResponse& response);

// A token given by a user: "QSDK " is prepended when it has no prefix (as the Python SDK does).
std::string NormalizeToken(std::string_view token);

// One job as the CommServe reports it (GET Job/{id} and the DR job list).
struct JobSummary {
  std::string job_id;
  std::string status;  // raw text, e.g. "Completed w/ one or more errors"
  int32_t percent_complete = 0;
  int64_t start_time = 0;  // epoch seconds, 0 when unknown
  int64_t end_time = 0;    // epoch seconds, 0 while running
  int64_t last_update_time = 0;
  std::string pending_reason;
  std::string phase;
  std::string operation;
  // "Full" / "Differential" when the CommServe says (backupLevelName); empty when it does not.
  std::string backup_level;
};

// {"totalRecordsWithoutPaging":N,"jobs":[{"jobSummary":{...}}]}. N = 0 (or no "jobs") yields an
// empty vector (a freshly submitted id may be missing for a few seconds: not an error). Numbers
// may come as strings; unreadable numbers become 0, percent is clamped to 0..100. An entry
// without jobSummary.jobId fails the whole decode (MALFORMED_UPSTREAM_RESPONSE). Texts are
// sanitized and cut to 512 bytes; pendingReason loses its HTML tags.
StatusOr<std::vector<JobSummary>> DecodeJobList(const HttpResponse& response);

// One page of the DR job list: the jobs it holds and totalRecordsWithoutPaging (the size of the
// whole list; the number of jobs on the page when the field is missing or unreadable).
struct JobListPage {
  std::vector<JobSummary> jobs;
  int64_t total = 0;
};
// DecodeJobList, keeping totalRecordsWithoutPaging for paging with the limit/offset headers.
StatusOr<JobListPage> DecodeJobListPage(const HttpResponse& response);

// The CommServe's DR backup options (GET Commcell/DRBackup/Options), field by field: nullopt
// when the answer does not say (a missing or unreadable field is unknown, not false).
struct DrBackupOptions {
  std::optional<std::string> destination;  // DRDumpLocation
  std::optional<int32_t> retained_fulls;   // DRNumFulls
  std::optional<bool> local_drive;         // UseLocalDrive
  std::optional<bool> network_share;       // UseNetworkShare
  std::optional<bool> cloud_upload;        // uploadBackupMetadataToCloud, or a cloudLibrary

  friend bool operator==(const DrBackupOptions&, const DrBackupOptions&) = default;
};

// True when a copy of the DR export leaves the CommServe host (a network share or the cloud
// upload is on); false when both are known to be off; nullopt when that cannot be told.
std::optional<bool> CopyLeavesHost(const DrBackupOptions& options);

// Reason of the errors DecodeDrBackupOptions returns when the options cannot be known: HTTP 404
// (NOT_FOUND; releases without the endpoint) or a 2xx body that is not a JSON object (INTERNAL).
// Callers treat the options as unknown. Other errors follow the conventions above.

// {"properties": {...}} or the same fields without the wrapper. Flags may be 1/0, booleans or
// strings ("1", "true"); numbers may be strings ("5"). A cloudLibrary object with any content
// means the cloud upload is on. Texts are sanitized and cut to 512 bytes.
StatusOr<DrBackupOptions> DecodeDrBackupOptions(const HttpResponse& response);

// Maps a CommServe status text (case-insensitive, whitespace-tolerant) to a state:
//   Running, Running (cannot be verified), Kill Pending, Interrupt Pending, Interrupted -> kRunning
//     (not finished: a pending kill/interrupt is not an outcome, an interrupted job is resumed
//     by the CommServe);
//   Waiting, Pending, Queued -> kQueued;  Suspended, Suspend Pending -> kSuspended;
//   Completed, Completed w/ one or more warnings, Committed -> kSucceeded;
//   Completed w/ one or more errors -> kSucceededWithErrors;
//   Failed, Failed to Start, Abnormal Terminated Cleanup -> kFailed;  Killed -> kKilled.
// An unlisted text containing "killed", "completed"/"committed" (with "error": with errors) or
// "failed" maps to that finished state, so a job never looks alive forever. Any other text maps
// to std::nullopt: not terminal, the caller keeps the raw text in commserv_status.
std::optional<JobState> MapJobStatus(std::string_view status);

// Kill/pause/resume: {"errorCode":0} is success, else UPSTREAM_REJECTED with the message. A 2xx
// body without any error object (or an empty 2xx body) is success too.
Status DecodeGenericResponse(const HttpResponse& response);

// The useful text of an error body: HTML <title>, else the first non-empty line (tags stripped
// when the body is markup), sanitized and truncated to 512 bytes ("..." marks a cut).
std::string ErrorTextOf(std::string_view body);

}  // namespace drgate::commserv
