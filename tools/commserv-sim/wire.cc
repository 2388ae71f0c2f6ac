#include "tools/commserv-sim/wire.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <sstream>

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

namespace commserv_sim {
namespace {

using nlohmann::json;

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return Lower(haystack).find(needle) != std::string::npos;
}

// Parses `body` as a JSON object; nullopt when it is not one.
std::optional<json> ParseObject(std::string_view body) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  return parsed;
}

std::optional<bool> FlagFromText(std::string_view text) {
  const std::string lower = Lower(text);
  if (lower == "true" || lower == "1") return true;
  if (lower == "false" || lower == "0") return false;
  return std::nullopt;
}

// A JSON flag given as a boolean, 0/1, or one of the strings "true", "false", "1", "0".
std::optional<bool> Flag(const json& value) {
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_string()) return FlagFromText(value.get_ref<const std::string&>());
  if (value.is_number_integer()) {
    const auto number = value.get<int64_t>();
    if (number == 0 || number == 1) return number == 1;
  }
  return std::nullopt;
}

// An integer given as a JSON integer or a string of decimal digits.
std::optional<int64_t> Integer(const json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (!value.is_string()) return std::nullopt;
  const auto& text = value.get_ref<const std::string&>();
  if (text.empty() || text.size() > 18 ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return std::nullopt;
  }
  return std::stoll(text);
}

Parsed<DrBackupRequest> Reject(std::string what) {
  return {std::nullopt, std::move(what)};
}

Parsed<DrBackupRequest> ParseDrBackupJson(std::string_view body) {
  const auto object = ParseObject(body);
  if (!object) return Reject("body is not a JSON object");
  DrBackupRequest request;
  if (const auto it = object->find("isCompressionEnabled"); it != object->end()) {
    const auto flag = Flag(*it);
    if (!flag) return Reject("isCompressionEnabled must be true or false");
    request.compression = *flag;
  }
  if (const auto it = object->find("jobType"); it != object->end()) {
    if (Integer(*it) != 1) return Reject("jobType must be 1 (immediate)");
  }
  const auto type = object->find("backupType");
  if (type == object->end()) return Reject("backupType is missing");
  const auto level = Integer(*type);
  if (level == 1) {
    request.level = BackupLevel::kFull;
  } else if (level == 3) {
    request.level = BackupLevel::kDifferential;
  } else {
    return Reject("backupType must be 1 (full) or 3 (differential)");
  }
  return {request, ""};
}

Parsed<DrBackupRequest> ParseDrBackupXml(std::string_view body) {
  pugi::xml_document document;
  if (!document.load_buffer(body.data(), body.size())) return Reject("body is not XML");
  const pugi::xml_node root = document.document_element();
  if (std::string_view(root.name()) != "TMMsg_CommcellDRBackupReq") {
    return Reject("root element must be TMMsg_CommcellDRBackupReq");
  }
  DrBackupRequest request;
  if (const auto attribute = root.attribute("isCompressionEnabled")) {
    const auto flag = FlagFromText(attribute.value());
    if (!flag) return Reject("isCompressionEnabled must be true or false");
    request.compression = *flag;
  }
  if (const auto attribute = root.attribute("jobType")) {
    if (Lower(attribute.value()) != "immediate") return Reject("jobType must be IMMEDIATE");
  }
  const auto type = root.attribute("backupType");
  if (!type) return Reject("backupType is missing");
  const std::string level = Lower(type.value());
  if (level == "full") {
    request.level = BackupLevel::kFull;
  } else if (level == "differential") {
    request.level = BackupLevel::kDifferential;
  } else {
    return Reject("backupType must be full or differential");
  }
  return {request, ""};
}

std::string XmlToString(const pugi::xml_document& document) {
  std::ostringstream out;
  document.save(out, "", pugi::format_raw | pugi::format_no_declaration);
  return out.str();
}

json SummaryToJson(const JobSummary& job) {
  return {{"jobId", job.job_id},
          {"status", job.status},
          {"percentComplete", job.percent_complete},
          {"jobStartTime", job.job_start_time},
          {"jobEndTime", job.job_end_time},
          {"lastUpdateTime", job.last_update_time},
          {"pendingReason", job.pending_reason},
          {"currentPhaseName", job.current_phase_name},
          {"localizedOperationName", "Disaster Recovery Backup"},
          {"jobType", "DR Backup"},
          {"backupLevelName", BackupLevelName(job.level)}};
}

}  // namespace

Format RequestFormat(std::string_view content_type) {
  return Contains(content_type, "xml") ? Format::kXml : Format::kJson;
}

Format ResponseFormat(std::string_view accept, Format request_format) {
  if (Contains(accept, "json")) return Format::kJson;
  if (Contains(accept, "xml")) return Format::kXml;
  return request_format;
}

std::string_view MediaType(Format format) {
  return format == Format::kXml ? "application/xml" : "application/json";
}

std::optional<std::string> DecodeBase64(std::string_view text) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') {
    ++padding;
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t bits = 0;
  int bit_count = 0;
  for (size_t i = 0; i < text.size() - padding; ++i) {
    const size_t value = kAlphabet.find(text[i]);
    if (value == std::string_view::npos) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(value);
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out.push_back(static_cast<char>((bits >> bit_count) & 0xFF));
    }
  }
  // Leftover bits must be zero, or the text was not produced by an encoder.
  if ((bits & ((1u << bit_count) - 1)) != 0) return std::nullopt;
  return out;
}

std::string_view BackupLevelName(BackupLevel level) {
  return level == BackupLevel::kFull ? "Full" : "Differential";
}

Parsed<DrBackupRequest> ParseDrBackupRequest(std::string_view body, Format format) {
  return format == Format::kXml ? ParseDrBackupXml(body) : ParseDrBackupJson(body);
}

Parsed<LoginRequest> ParseLoginRequest(std::string_view body) {
  const auto object = ParseObject(body);
  if (!object) return {std::nullopt, "body is not a JSON object"};
  const auto user = object->find("username");
  const auto password = object->find("password");
  if (user == object->end() || !user->is_string() || password == object->end() ||
      !password->is_string()) {
    return {std::nullopt, "username and password must be strings"};
  }
  return {LoginRequest{user->get<std::string>(), password->get<std::string>()}, ""};
}

Parsed<std::string> ParseRenewRequest(std::string_view body) {
  const auto object = ParseObject(body);
  if (!object) return {std::nullopt, "body is not a JSON object"};
  const auto session = object->find("sessionId");
  if (session == object->end() || !session->is_string()) {
    return {std::nullopt, "sessionId must be a string"};
  }
  return {session->get<std::string>(), ""};
}

Parsed<int64_t> ParseJobDetailsRequest(std::string_view body) {
  const auto object = ParseObject(body);
  if (!object) return {std::nullopt, "body is not a JSON object"};
  const auto job = object->find("jobId");
  if (job == object->end()) return {std::nullopt, "jobId is missing"};
  const auto id = Integer(*job);
  if (!id) return {std::nullopt, "jobId must be a number"};
  return {*id, ""};
}

std::string EncodeLoginSuccess(std::string_view token, std::string_view user_name) {
  return json{{"token", token}, {"userName", user_name}}.dump();
}

std::string EncodeLoginFailure() {
  return json{
      {"errList", json::array({{{"errLogMessage", "Login failed: invalid username or password"},
                                {"errorCode", 5}}})}}
      .dump();
}

std::string EncodeAccessDenied() {
  return json{{"errorCode", 5}, {"errorMessage", "Access denied"}}.dump();
}

std::string EncodeRenewSuccess(std::string_view token) {
  return json{{"token", token}}.dump();
}

std::string EncodeRenewFailure() {
  return json{{"error", {{"errorCode", 5}, {"errorString", "Invalid session"}}}}.dump();
}

std::string EncodeJobActionSuccess() {
  return json{{"errorCode", 0}}.dump();
}

std::string EncodeJobDetails(std::string_view reason_for_job_delay) {
  return json{
      {"job", {{"jobDetail", {{"progressInfo", {{"reasonForJobDelay", reason_for_job_delay}}}}}}}}
      .dump();
}

std::string EncodeCreateTask(Format format, int64_t task_id, const std::vector<int64_t>& job_ids,
                             bool ids_as_numbers) {
  if (format == Format::kXml) {
    pugi::xml_document document;
    pugi::xml_node root = document.append_child("TMMsg_CreateTaskResp");
    root.append_attribute("taskId").set_value(static_cast<long long>(task_id));
    for (const int64_t id : job_ids) {
      root.append_child("jobIds").append_attribute("val").set_value(static_cast<long long>(id));
    }
    return XmlToString(document);
  }
  json ids = json::array();
  for (const int64_t id : job_ids) {
    ids.push_back(ids_as_numbers ? json(id) : json(std::to_string(id)));
  }
  return json{{"taskId", task_id}, {"jobIds", ids}}.dump();
}

std::string EncodeGenericResponse(Format format, int error_code, std::string_view message) {
  if (format == Format::kXml) {
    pugi::xml_document document;
    pugi::xml_node root = document.append_child("TMMsg_GenericResp");
    root.append_attribute("errorCode").set_value(error_code);
    root.append_attribute("errorMessage").set_value(std::string(message).c_str());
    return XmlToString(document);
  }
  return json{{"errorCode", error_code}, {"errorMessage", message}}.dump();
}

std::string EncodeJobList(int64_t total_records, const std::vector<JobSummary>& jobs) {
  json list = json::array();
  for (const JobSummary& job : jobs) list.push_back({{"jobSummary", SummaryToJson(job)}});
  return json{{"totalRecordsWithoutPaging", total_records}, {"jobs", list}}.dump();
}

}  // namespace commserv_sim
