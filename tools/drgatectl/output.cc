#include "tools/drgatectl/output.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <limits>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace drgate::cli {
namespace {

using nlohmann::ordered_json;
using std::chrono::milliseconds;

std::string ToLower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string ToUpper(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

// Pads every column to its widest cell; the last column is not padded.
std::string RenderTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

bool ShowsPercent(v1::JobState state) {
  return state == v1::JOB_STATE_QUEUED || state == v1::JOB_STATE_RUNNING ||
         state == v1::JOB_STATE_SUSPENDED;
}

std::string StateWithPercent(const v1::Job& job) {
  std::string out = JobStateName(job.state());
  if (ShowsPercent(job.state())) out += " " + std::to_string(job.percent_complete()) + "%";
  return out;
}

// "12s", "1m05s", "2h03m04s": whole seconds, zero-padded after the leading unit so the line
// keeps its width while it is redrawn.
std::string FormatElapsed(milliseconds elapsed) {
  const std::int64_t total = std::max<std::int64_t>(elapsed.count(), 0) / 1000;
  const std::int64_t hours = total / 3600;
  const std::int64_t minutes = total / 60 % 60;
  const std::int64_t seconds = total % 60;
  auto two_digits = [](std::int64_t n) { return (n < 10 ? "0" : "") + std::to_string(n); };
  if (hours > 0) {
    return std::to_string(hours) + "h" + two_digits(minutes) + "m" + two_digits(seconds) + "s";
  }
  if (minutes > 0) return std::to_string(minutes) + "m" + two_digits(seconds) + "s";
  return std::to_string(seconds) + "s";
}

}  // namespace

int ExitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::UNAUTHENTICATED: return kExitRefused;
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DATA_LOSS:
    default:
      // Unknown future codes: assume the failure is on the server's side, not the request's.
      return kExitUnavailable;
  }
}

int ExitCodeForJobState(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_SUCCEEDED: return kExitOk;
    case v1::JOB_STATE_SUCCEEDED_WITH_ERRORS: return kExitJobSucceededWithErrors;
    case v1::JOB_STATE_KILLED: return kExitJobKilled;
    default: return kExitJobFailed;
  }
}

bool IsTerminal(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_SUCCEEDED:
    case v1::JOB_STATE_SUCCEEDED_WITH_ERRORS:
    case v1::JOB_STATE_FAILED:
    case v1::JOB_STATE_KILLED:
    case v1::JOB_STATE_UNKNOWN: return true;
    default: return false;
  }
}

bool IsRetryableWhileWaiting(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

std::string StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "CODE_" + std::to_string(static_cast<int>(code));
  }
}

std::optional<milliseconds> ParseDuration(std::string_view text) {
  struct Unit {
    std::string_view name;
    std::int64_t ms;
  };
  // "ms" before "m" so the longest unit wins.
  static constexpr Unit kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
  if (text.empty()) return std::nullopt;
  std::int64_t total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[pos]))) return std::nullopt;
    std::int64_t number = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      int digit = text[pos] - '0';
      if (number > (std::numeric_limits<std::int64_t>::max() - digit) / 10) return std::nullopt;
      number = number * 10 + digit;
      ++pos;
    }
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (text.substr(pos, candidate.name.size()) == candidate.name) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr) return std::nullopt;
    pos += unit->name.size();
    if (number > std::numeric_limits<std::int64_t>::max() / unit->ms) return std::nullopt;
    std::int64_t part = number * unit->ms;
    if (total > std::numeric_limits<std::int64_t>::max() - part) return std::nullopt;
    total += part;
  }
  return milliseconds(total);
}

std::string FormatDuration(milliseconds duration) {
  std::int64_t ms = duration.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  struct Unit {
    const char* name;
    std::int64_t ms;
  };
  static constexpr Unit kUnits[] = {
      {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}, {"ms", 1}};
  for (const Unit& unit : kUnits) {
    if (ms >= unit.ms) {
      out += std::to_string(ms / unit.ms) + unit.name;
      ms %= unit.ms;
    }
  }
  return out;
}

std::optional<v1::JobState> ParseJobState(std::string_view text) {
  std::string name = ToUpper(text);
  std::replace(name.begin(), name.end(), '-', '_');
  v1::JobState state;
  if (name.empty() || name == "UNSPECIFIED" || !v1::JobState_Parse("JOB_STATE_" + name, &state)) {
    return std::nullopt;
  }
  return state;
}

std::optional<v1::BackupType> ParseBackupType(std::string_view text) {
  std::string name = ToLower(text);
  if (name == "full") return v1::BACKUP_TYPE_FULL;
  if (name == "differential") return v1::BACKUP_TYPE_DIFFERENTIAL;
  return std::nullopt;
}

std::string JobStateName(v1::JobState state) {
  const std::string& name = v1::JobState_Name(state);
  if (name.empty()) return "STATE_" + std::to_string(static_cast<int>(state));
  constexpr std::string_view kPrefix = "JOB_STATE_";
  return name.substr(kPrefix.size());
}

std::string BackupTypeName(v1::BackupType type) {
  const std::string& name = v1::BackupType_Name(type);
  if (name.empty()) return "type " + std::to_string(static_cast<int>(type));
  constexpr std::string_view kPrefix = "BACKUP_TYPE_";
  return ToLower(std::string_view(name).substr(kPrefix.size()));
}

std::string FormatTimestamp(const google::protobuf::Timestamp& timestamp) {
  if (timestamp.seconds() == 0 && timestamp.nanos() == 0) return "-";
  std::time_t seconds = static_cast<std::time_t>(timestamp.seconds());
  std::tm tm{};
  if (gmtime_r(&seconds, &tm) == nullptr) return "-";
  char buffer[32];
  size_t n = std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return n == 0 ? "-" : std::string(buffer, n);
}

std::string FormatUuidV4(std::array<std::uint8_t, 16> bytes) {
  bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0f) | 0x40);  // Version 4.
  bytes[8] = static_cast<std::uint8_t>((bytes[8] & 0x3f) | 0x80);  // Variant 10xx.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 0x0f];
  }
  return out;
}

RpcError ParseRpcError(const grpc::Status& status) {
  RpcError error;
  error.code = status.error_code();
  error.message = status.error_message();
  if (status.error_details().empty()) return error;
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return error;
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.Is<google::rpc::ErrorInfo>() && any.UnpackTo(&info)) {
      error.reason = info.reason();
      error.domain = info.domain();
      error.metadata.insert(info.metadata().begin(), info.metadata().end());
      break;
    }
  }
  return error;
}

std::string RenderErrorHuman(std::string_view method, const RpcError& error) {
  std::string out = "drgatectl: ";
  out += method;
  out += " failed: ";
  out += StatusCodeName(error.code);
  if (!error.message.empty()) out += ": " + error.message;
  if (!error.reason.empty()) out += " (reason " + error.reason + ")";
  return out;
}

nlohmann::ordered_json ErrorToJson(const RpcError& error) {
  nlohmann::ordered_json metadata = nlohmann::ordered_json::object();
  for (const auto& [key, value] : error.metadata) metadata[key] = value;
  return nlohmann::ordered_json{{"code", StatusCodeName(error.code)},
                                {"message", error.message},
                                {"reason", error.reason},
                                {"metadata", std::move(metadata)}};
}

nlohmann::ordered_json MessageToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  // Printing a well-formed message only fails on invalid UTF-8 in a string field: report that
  // rather than emitting a half document.
  if (!status.ok()) {
    return nlohmann::ordered_json{{"json_error", std::string(status.message())}};
  }
  return nlohmann::ordered_json::parse(text);
}

std::string RenderJobSummary(const v1::Job& job) {
  std::string out = "job " + (job.job_id().empty() ? std::string("?") : job.job_id());
  if (!job.commcell().empty()) out += " on " + job.commcell();
  out += ": " + StateWithPercent(job);
  out += " (" + BackupTypeName(job.backup_type()) + ", compression " +
         (job.compression() ? "on" : "off") + ")";
  if (job.task_id() != 0) out += " task " + std::to_string(job.task_id());
  if (!job.failure_reason().empty()) out += ": " + job.failure_reason();
  return out;
}

std::string RenderJobDetail(const v1::Job& job) {
  auto or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  std::vector<std::vector<std::string>> rows = {
      {"job:", or_dash(job.job_id())},
      {"commcell:", or_dash(job.commcell())},
      {"state:", StateWithPercent(job)},
      {"commserv status:", or_dash(job.commserv_status())},
      {"type:", BackupTypeName(job.backup_type())},
      {"compression:", job.compression() ? "on" : "off"},
      {"task:", job.task_id() == 0 ? "-" : std::to_string(job.task_id())},
      {"request id:", or_dash(job.request_id())},
      {"requested by:", or_dash(job.requested_by())},
      {"created:", FormatTimestamp(job.create_time())},
      {"started:", FormatTimestamp(job.start_time())},
      {"ended:", FormatTimestamp(job.end_time())},
      {"updated:", FormatTimestamp(job.update_time())},
  };
  if (!job.failure_reason().empty()) rows.push_back({"failure reason:", job.failure_reason()});
  return RenderTable(rows);
}

std::string RenderTriggerResponse(const v1::TriggerBackupResponse& response) {
  std::string out = RenderJobSummary(response.job()) + "\n";
  if (response.deduplicated()) out += "deduplicated: answered with an earlier job\n";
  return out;
}

std::optional<v1::JobOrigin> ParseJobOrigin(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "drgate") return v1::JOB_ORIGIN_DRGATE;
  if (lower == "commserv") return v1::JOB_ORIGIN_COMMSERV;
  return std::nullopt;
}

std::string JobOriginName(v1::JobOrigin origin) {
  switch (origin) {
    case v1::JOB_ORIGIN_DRGATE: return "drgate";
    case v1::JOB_ORIGIN_COMMSERV: return "commserv";
    default: return "-";
  }
}

namespace {

int64_t EndSeconds(const v1::Job& job) {
  return job.end_time().seconds() != 0 ? job.end_time().seconds() : job.update_time().seconds();
}

// "45s", "12m", "3h", "2d".
std::string Age(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 60) return std::to_string(seconds) + "s";
  if (seconds < 3600) return std::to_string(seconds / 60) + "m";
  if (seconds < 2 * 86400) return std::to_string(seconds / 3600) + "h";
  return std::to_string(seconds / 86400) + "d";
}

std::string DescribeFinished(const v1::Job* job, const google::protobuf::Timestamp& now,
                             bool with_reason) {
  if (job == nullptr) return "none";
  std::string out = Age(now.seconds() - EndSeconds(*job)) + " ago (" + JobOriginName(job->origin());
  if (with_reason && !job->failure_reason().empty()) out += ": " + job->failure_reason();
  return out + ")";
}

ordered_json FinishedToJson(const v1::Job* job, const google::protobuf::Timestamp& now,
                            bool with_reason) {
  if (job == nullptr) return nullptr;
  ordered_json out = {{"job_id", job->job_id()},
                      {"origin", JobOriginName(job->origin())},
                      {"end_time", FormatTimestamp(job->end_time())},
                      {"age_seconds", std::max<int64_t>(0, now.seconds() - EndSeconds(*job))}};
  if (with_reason) out["failure_reason"] = job->failure_reason();
  return out;
}

}  // namespace

CommCellStatus BuildCommCellStatus(const v1::CommCell& commcell,
                                   const google::protobuf::RepeatedPtrField<v1::Job>& jobs) {
  CommCellStatus status;
  status.name = commcell.name();
  status.reachable = commcell.reachable();
  auto later = [](const v1::Job* current, const v1::Job& candidate) {
    return current == nullptr || EndSeconds(candidate) > EndSeconds(*current);
  };
  for (const v1::Job& job : jobs) {
    switch (job.state()) {
      case v1::JOB_STATE_SUCCEEDED:
      case v1::JOB_STATE_SUCCEEDED_WITH_ERRORS: {
        const v1::Job*& slot = job.backup_type() == v1::BACKUP_TYPE_DIFFERENTIAL
                                   ? status.last_differential
                                   : status.last_full;
        if (later(slot, job)) slot = &job;
        break;
      }
      case v1::JOB_STATE_FAILED:
      case v1::JOB_STATE_KILLED:
        if (later(status.last_failure, job)) status.last_failure = &job;
        break;
      case v1::JOB_STATE_UNKNOWN: break;
      default: status.running.push_back(&job);
    }
  }
  if (commcell.has_dr_backup_options()) {
    const v1::DrBackupOptions& options = commcell.dr_backup_options();
    if (options.retained_fulls() > 0) status.retained_fulls = options.retained_fulls();
    status.offsite = options.network_share() || options.cloud_upload();
  }
  return status;
}

std::string RenderStatus(const std::vector<CommCellStatus>& cells,
                         const google::protobuf::Timestamp& now) {
  if (cells.empty()) return "no commcells configured\n";
  std::vector<std::vector<std::string>> rows = {{"COMMCELL", "REACHABLE", "LAST FULL",
                                                 "LAST DIFFERENTIAL", "RUNNING", "LAST FAILURE",
                                                 "RETAINED FULLS", "OFFSITE"}};
  for (const CommCellStatus& cell : cells) {
    std::string running;
    for (const v1::Job* job : cell.running) {
      if (!running.empty()) running += ", ";
      running += job->job_id() + " " + BackupTypeName(job->backup_type()) + " (" +
                 JobOriginName(job->origin()) + ")";
    }
    rows.push_back({cell.name, cell.reachable ? "yes" : "no",
                    DescribeFinished(cell.last_full, now, false),
                    DescribeFinished(cell.last_differential, now, false),
                    running.empty() ? "-" : running, DescribeFinished(cell.last_failure, now, true),
                    cell.retained_fulls ? std::to_string(*cell.retained_fulls) : "unknown",
                    cell.offsite ? (*cell.offsite ? "yes" : "no") : "unknown"});
  }
  return RenderTable(rows);
}

ordered_json StatusToJson(const std::vector<CommCellStatus>& cells,
                          const google::protobuf::Timestamp& now) {
  ordered_json out = ordered_json::array();
  for (const CommCellStatus& cell : cells) {
    ordered_json running = ordered_json::array();
    for (const v1::Job* job : cell.running) {
      running.push_back({{"job_id", job->job_id()},
                         {"origin", JobOriginName(job->origin())},
                         {"backup_type", BackupTypeName(job->backup_type())},
                         {"state", JobStateName(job->state())}});
    }
    out.push_back(
        {{"commcell", cell.name},
         {"reachable", cell.reachable},
         {"last_full", FinishedToJson(cell.last_full, now, false)},
         {"last_differential", FinishedToJson(cell.last_differential, now, false)},
         {"running", running},
         {"last_failure", FinishedToJson(cell.last_failure, now, true)},
         {"retained_fulls",
          cell.retained_fulls ? ordered_json(*cell.retained_fulls) : ordered_json(nullptr)},
         {"offsite", cell.offsite ? ordered_json(*cell.offsite) : ordered_json(nullptr)}});
  }
  return out;
}

std::string RenderJobTable(const v1::ListJobsResponse& response) {
  std::string out;
  if (response.jobs().empty()) {
    out = "no jobs\n";
  } else {
    std::vector<std::vector<std::string>> rows = {
        {"JOB", "COMMCELL", "TYPE", "ORIGIN", "STATE", "PCT", "CREATED", "ENDED", "FAILURE"}};
    for (const v1::Job& job : response.jobs()) {
      rows.push_back({job.job_id(), job.commcell(), BackupTypeName(job.backup_type()),
                      JobOriginName(job.origin()), JobStateName(job.state()),
                      std::to_string(job.percent_complete()) + "%",
                      FormatTimestamp(job.create_time()), FormatTimestamp(job.end_time()),
                      job.failure_reason()});
    }
    out = RenderTable(rows);
  }
  if (!response.next_page_token().empty()) {
    out += "more jobs: --page-token " + response.next_page_token() + " (or --all)\n";
  }
  return out;
}

std::string RenderCommCellTable(const v1::ListCommCellsResponse& response) {
  if (response.commcells().empty()) return "no commcells configured\n";
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "REACHABLE", "LAST CONTACT", "URL", "LAST ERROR"}};
  for (const v1::CommCell& commcell : response.commcells()) {
    rows.push_back({commcell.name(), commcell.reachable() ? "yes" : "no",
                    FormatTimestamp(commcell.last_contact_time()), commcell.url(),
                    commcell.last_error()});
  }
  return RenderTable(rows);
}

std::optional<std::string> RenderProgress(const v1::Job* previous, const v1::Job& current) {
  if (previous != nullptr && previous->state() == current.state() &&
      previous->percent_complete() == current.percent_complete() &&
      previous->commserv_status() == current.commserv_status()) {
    return std::nullopt;
  }
  std::string out = RenderJobSummary(current);
  if (!current.commserv_status().empty()) out += " [" + current.commserv_status() + "]";
  return out;
}

std::string RenderProgressBar(const v1::Job& job, int width, milliseconds elapsed) {
  const bool succeeded =
      job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_SUCCEEDED_WITH_ERRORS;
  const int percent = succeeded ? 100 : std::clamp(job.percent_complete(), 0, 100);
  width = std::max(width, 0);
  const int filled = width * percent / 100;
  std::string out = "[" + std::string(filled, '#') + std::string(width - filled, '-') + "] ";
  std::string percent_text = std::to_string(percent);
  out += std::string(3 - percent_text.size(), ' ') + percent_text + "%  ";
  out += JobStateName(job.state());
  out += "  job " + (job.job_id().empty() ? std::string("?") : job.job_id());
  if (!job.commcell().empty()) out += " on " + job.commcell();
  out += "  (" + FormatElapsed(elapsed) + ")";
  return out;
}

}  // namespace drgate::cli
