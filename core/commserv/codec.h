#pragma once

// The CommServe wire codec: pure functions from values to bytes and from HTTP responses to
// results or errors. No I/O, no clocks, no globals: exhaustively table-tested and fuzzed.
//
// Error conventions of every Decode* function (see ../shared/commserv-api.md):
//   - HTTP 200 with {"errorCode": N != 0, "errorMessage": "..."} (or an XML *_GenericResp with
//     errorCode != 0), or errList[0].errLogMessage: the CommServe refused the request.
//     -> reason UPSTREAM_REJECTED (code FAILED_PRECONDITION), message carries the upstream text;
//        when that text says a DR job "is already running": reason DR_JOB_ALREADY_RUNNING, code
//        ABORTED.
//   - HTTP 401: UNAUTHENTICATED, reason UPSTREAM_UNAUTHENTICATED (the session layer renews or
//     logs in again; it is never shown to a caller as is).
//   - HTTP 5xx, 429, 502-504: UNAVAILABLE, reason UPSTREAM_HTTP_5XX / UPSTREAM_RATE_LIMITED, with
//     the HTML <title> (or the first line of a plain-text body) in the message.
//   - other 4xx: FAILED_PRECONDITION, reason UPSTREAM_HTTP_4XX, plain-text body in the message.
//   - a 200 body that is not the expected JSON/XML, or lacks required fields: INTERNAL, reason
//     MALFORMED_UPSTREAM_RESPONSE, message says what was wrong ("body is not JSON: ..." /
//     "missing taskId" / "jobIds is empty").
// Every error carries metadata "http_status". Upstream texts are truncated to 512 bytes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/commserv/http.h"
#include "core/common/job.h"
#include "core/common/status.h"

namespace drgate::commserv {

enum class WireFormat { kJson, kXml };

// "application/json" / "application/xml"
const char* ContentTypeOf(WireFormat format);

struct DrBackupRequest {
  BackupType backup_type = BackupType::kFull;
  bool compression = false;
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
// The format is taken from the response's content type when it names json or xml, else `format`.
StatusOr<DrBackupResult> DecodeDrBackupResponse(const HttpResponse& response, WireFormat format);

// Login (always JSON): {"username":..., "password":"<base64(password)>", "domain":"",
// "deviceId":..., "timeout":30}. The result holds the password in base64; callers must not log it.
std::string EncodeLoginRequest(const std::string& username, const std::string& password,
                               const std::string& device_id);

// The token as issued ("QSDK ..."). A failed login (errList[0].errLogMessage, 401
// {"errorCode":5,...}) is UNAUTHENTICATED with reason UPSTREAM_LOGIN_FAILED and the upstream text
// (plus "account locked" when isAccountLocked is true).
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
};

// {"totalRecordsWithoutPaging":N,"jobs":[{"jobSummary":{...}}]}. N = 0 yields an empty vector
// (a freshly submitted id may be missing for a few seconds: not an error).
StatusOr<std::vector<JobSummary>> DecodeJobList(const HttpResponse& response);

// Maps a CommServe status text (case-insensitive) to a state. An unknown text maps to
// std::nullopt: not terminal, the caller keeps the raw text in commserv_status.
std::optional<JobState> MapJobStatus(std::string_view status);

// Kill/pause/resume: {"errorCode":0} is success, else UPSTREAM_REJECTED with the message.
Status DecodeGenericResponse(const HttpResponse& response);

// The useful text of an error body: HTML <title>, else the first non-empty line, truncated.
std::string ErrorTextOf(std::string_view body);

}  // namespace drgate::commserv
