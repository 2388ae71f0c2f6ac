#include "tools/commserv-sim/service.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace commserv_sim {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;

constexpr std::array<std::string_view, 3> kBasePaths = {"/commandcenter/api", "/webconsole/api",
                                                        "/SearchSvc/CVWebService.svc"};
constexpr std::string_view kAdminPrefix = "/_sim/";
constexpr std::array<std::string_view, 13> kFaultEndpoints = {
    "*",    "Login", "RenewLoginToken", "Logout",     "DRBackup",  "Job",     "JobList",
    "Kill", "Pause", "Resume",          "JobDetails", "DROptions", "NotFound"};
// The documented answer of Commcell/DRBackup/Options until the admin API changes it: the export
// stays on the CommServe's local drive and is not uploaded (so no copy leaves the host).
constexpr std::string_view kDefaultDrOptions =
    R"({"properties":{"DRDumpLocation":"C:\\Program Files\\Commvault\\DR","UseLocalDrive":1,)"
    R"("UseNetworkShare":0,"isUserAccountEnabled":0,"DRNumFulls":5,)"
    R"("uploadBackupMetadataToCloud":false}})";
constexpr std::chrono::seconds kDefaultCompletedLookup{24 * 60 * 60};

std::string_view View(boost::beast::string_view text) {
  return {text.data(), text.size()};
}

std::string_view Header(const HttpRequest& request, std::string_view name) {
  return View(request[boost::beast::string_view(name.data(), name.size())]);
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

std::optional<int64_t> ParseCount(std::string_view text) {
  if (text.empty() || text.size() > 18 ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return std::nullopt;
  }
  return std::stoll(std::string(text));
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out.push_back(' ');
    } else if (text[i] == '%' && i + 2 < text.size() &&
               std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// The decoded value of query parameter `name` (case-insensitive), if present.
std::optional<std::string> QueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t end = std::min(query.find('&'), query.size());
    const std::string_view pair = query.substr(0, end);
    const size_t equals = std::min(pair.find('='), pair.size());
    if (IEquals(PercentDecode(pair.substr(0, equals)), name)) {
      return PercentDecode(pair.substr(std::min(equals + 1, pair.size())));
    }
    query.remove_prefix(std::min(end + 1, query.size()));
  }
  return std::nullopt;
}

HttpResponse MakeResponse(http::status status, std::string_view content_type, std::string body) {
  HttpResponse response(status, 11);
  response.set(http::field::server, "commserv-sim");
  response.set(http::field::content_type,
               boost::beast::string_view(content_type.data(), content_type.size()));
  response.body() = std::move(body);
  return response;
}

HttpResponse Json(std::string body, http::status status = http::status::ok) {
  return MakeResponse(status, "application/json", std::move(body));
}

HttpResponse Text(http::status status, std::string body) {
  return MakeResponse(status, "text/plain", std::move(body));
}

HttpResponse InFormat(Format format, std::string body) {
  return MakeResponse(http::status::ok, MediaType(format), std::move(body));
}

HttpResponse AdminOk() {
  return Json(json{{"ok", true}}.dump());
}

HttpResponse AdminError(http::status status, std::string_view message) {
  return Json(json{{"error", message}}.dump(), status);
}

HttpResponse MethodNotAllowed(http::verb allowed) {
  HttpResponse response = Text(http::status::method_not_allowed, "Method Not Allowed");
  response.set(http::field::allow, http::to_string(allowed));
  return response;
}

// The answer format of a request to DRBackup (or a fault standing in for one).
Format AnswerFormat(const HttpRequest& request) {
  return ResponseFormat(Header(request, "Accept"), RequestFormat(Header(request, "Content-Type")));
}

}  // namespace

Service::Service(CommservState& state, ServiceOptions options)
    : state_(state), options_(options), dr_options_body_(kDefaultDrOptions) {}

Service::Route Service::MatchRoute(std::string_view path, std::string_view* prefix) {
  // A one-segment prefix ("/cc17/commandcenter/api/..."): the rest is routed as without it.
  if (path.size() > 1 && path.front() == '/') {
    const size_t slash = path.find('/', 1);
    if (slash != std::string_view::npos) {
      const std::string_view tail = path.substr(slash);
      for (const std::string_view base : kBasePaths) {
        if (tail.substr(0, base.size()) == base && path.substr(0, base.size()) != base) {
          if (prefix != nullptr) *prefix = path.substr(1, slash - 1);
          path = tail;
          break;
        }
      }
    }
  }
  return MatchBaseRoute(path);
}

Service::Route Service::MatchBaseRoute(std::string_view path) {
  std::string_view rest;
  bool under_base = false;
  for (const std::string_view base : kBasePaths) {
    if (path.substr(0, base.size()) == base && path.size() > base.size() &&
        path[base.size()] == '/') {
      rest = path.substr(base.size() + 1);
      if (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);  // Tolerate "//".
      under_base = true;
      break;
    }
  }
  if (!under_base) return {};
  using http::verb;
  if (rest == "Login") return {Endpoint::kLogin, "Login", verb::post};
  if (rest == "RenewLoginToken") return {Endpoint::kRenewLoginToken, "RenewLoginToken", verb::post};
  if (rest == "Logout") return {Endpoint::kLogout, "Logout", verb::post};
  if (rest == "CommServ/DRBackup") return {Endpoint::kDrBackup, "DRBackup", verb::post};
  if (rest == "JobDetails") return {Endpoint::kJobDetails, "JobDetails", verb::post};
  if (rest == "Job") return {Endpoint::kJobList, "JobList", verb::get};
  if (rest == "Commcell/DRBackup/Options") return {Endpoint::kDrOptions, "DROptions", verb::get};
  if (rest.substr(0, 4) != "Job/") return {};
  rest.remove_prefix(4);
  const size_t slash = std::min(rest.find('/'), rest.size());
  const auto job_id = ParseCount(rest.substr(0, slash));
  if (!job_id) return {};
  rest.remove_prefix(slash);
  if (rest.empty()) return {Endpoint::kJob, "Job", verb::get, *job_id};
  if (rest == "/action/kill") return {Endpoint::kKill, "Kill", verb::post, *job_id};
  if (rest == "/action/pause") return {Endpoint::kPause, "Pause", verb::post, *job_id};
  if (rest == "/action/resume") return {Endpoint::kResume, "Resume", verb::post, *job_id};
  return {};
}

Reply Service::Handle(const HttpRequest& request) {
  const std::string_view target = View(request.target());
  const size_t question = std::min(target.find('?'), target.size());
  const std::string_view path = target.substr(0, question);
  const std::string query(target.substr(std::min(question + 1, target.size())));
  if (path.substr(0, kAdminPrefix.size()) == kAdminPrefix) {
    return Reply::Answer(HandleAdmin(request, path, query));
  }

  std::string_view prefix;
  const Route route = MatchRoute(path, &prefix);
  std::optional<Fault> fault;
  {
    std::lock_guard lock(mu_);
    requests_.push_back(RecordedRequest{
        .method = std::string(View(request.method_string())),
        .target = std::string(target),
        .content_type = std::string(Header(request, "Content-Type")),
        .accept = std::string(Header(request, "Accept")),
        .has_authtoken = request.find("Authtoken") != request.end(),
        .body = request.body(),
        .endpoint = std::string(route.name),
    });
    ++endpoint_counts_[std::string(route.name)];
    if (!prefix.empty()) ++prefix_counts_[std::string(prefix)][std::string(route.name)];
    if (request.method() == http::verb::post) {
      if (route.endpoint == Endpoint::kDrBackup) ++drbackup_posts_;
      if (route.endpoint == Endpoint::kLogin) ++logins_;
    }
    for (Fault& rule : faults_) {
      if (rule.connection_level() || rule.remaining == 0 ||
          (rule.endpoint != "*" && rule.endpoint != route.name)) {
        continue;
      }
      if (rule.skip > 0) {
        --rule.skip;  // This request passes; the rule stays first in line for the next ones.
        break;
      }
      fault = rule;
      if (rule.remaining > 0) --rule.remaining;
      ++faults_applied_;
      break;
    }
  }

  if (!fault) return Reply::Answer(Respond(route, request, query));
  if (fault->action == Fault::Action::kDelay) {
    auto saved = std::make_shared<const HttpRequest>(request);
    return Reply::After(fault->delay, [this, route, saved, query] {
      return Reply::Answer(Respond(route, *saved, query));
    });
  }
  std::optional<HttpResponse> real;
  if (fault->after_side_effect || fault->action == Fault::Action::kWrongContentType) {
    real = Respond(route, request, query);
  }
  return FaultReply(*fault, request, std::move(real));
}

ConnectionFault Service::OnConnection() {
  std::lock_guard lock(mu_);
  for (Fault& rule : faults_) {
    if (!rule.connection_level() || rule.remaining == 0) continue;
    if (rule.skip > 0) {
      --rule.skip;
      return ConnectionFault::kNone;
    }
    if (rule.remaining > 0) --rule.remaining;
    ++faults_applied_;
    return rule.action == Fault::Action::kExpiredCert ? ConnectionFault::kExpiredCertificate
                                                      : ConnectionFault::kHandshakeFailure;
  }
  return ConnectionFault::kNone;
}

namespace {

// An HTTP/1.1 response written by hand: `promised` in Content-Length, `body` sent.
std::string RawResponse(const HttpResponse& response, size_t promised) {
  std::string out = "HTTP/1.1 " + std::to_string(response.result_int()) + " " +
                    std::string(response.reason()) + "\r\n";
  for (const auto& field : response) {
    if (field.name() == http::field::content_length || field.name() == http::field::connection) {
      continue;
    }
    out += std::string(field.name_string()) + ": " + std::string(field.value()) + "\r\n";
  }
  out += "Content-Length: " + std::to_string(promised) + "\r\nConnection: close\r\n\r\n";
  out += response.body();
  return out;
}

}  // namespace

Reply Service::FaultReply(const Fault& fault, const HttpRequest& request,
                          std::optional<HttpResponse> real) const {
  const Format format = AnswerFormat(request);
  switch (fault.action) {
    case Fault::Action::kHang: {
      // Nothing is sent; the connection stays open until the hold ends (or the client leaves).
      return Reply::After(fault.delay, [] { return Reply::Close(); });
    }
    case Fault::Action::kReset: return Reply::Reset();
    case Fault::Action::kMalformed:
      return Reply::Answer(InFormat(format, format == Format::kXml
                                                ? "<TMMsg_CreateTaskResp taskId=\"4\"><jobIds val="
                                                : "{\"taskId\": 4, \"jobIds\": [\"21"));
    case Fault::Action::kTruncate: {
      HttpResponse response =
          real ? std::move(*real)
               : InFormat(format, EncodeGenericResponse(format, 0, "truncated by commserv-sim"));
      const size_t promised = response.body().size() + static_cast<size_t>(fault.missing_bytes);
      return Reply::Raw(RawResponse(response, promised));
    }
    case Fault::Action::kWrongContentType: {
      HttpResponse response = std::move(*real);
      response.set(http::field::content_type, fault.content_type);
      return Reply::Answer(std::move(response));
    }
    case Fault::Action::kOversized: {
      // A well-formed answer in the right format, padded past any sensible size limit.
      const size_t size = static_cast<size_t>(fault.size_bytes);
      std::string body = format == Format::kXml ? "<TMMsg_CreateTaskResp taskId=\"4\"><!--"
                                                : "{\"taskId\": 4, \"padding\": \"";
      const std::string tail = format == Format::kXml ? "--></TMMsg_CreateTaskResp>" : "\"}";
      if (size > body.size() + tail.size()) body.append(size - body.size() - tail.size(), 'x');
      body += tail;
      return Reply::Answer(InFormat(format, std::move(body)));
    }
    case Fault::Action::kTlsHandshakeFailure:
    case Fault::Action::kExpiredCert: break;  // Connection-level: never matched to a request.
    default: break;
  }
  switch (fault.action) {
    case Fault::Action::kStatus: {
      HttpResponse response = MakeResponse(static_cast<http::status>(fault.http_status),
                                           fault.content_type, fault.body);
      if (fault.content_type.empty()) response.erase(http::field::content_type);
      for (const auto& [name, value] : fault.headers) response.set(name, value);
      return Reply::Answer(std::move(response));
    }
    case Fault::Action::kErrorCode: {
      return Reply::Answer(
          InFormat(format, EncodeGenericResponse(format, fault.error_code, fault.message)));
    }
    case Fault::Action::kUnauthorized:
      return Reply::Answer(Json(EncodeAccessDenied(), http::status::unauthorized));
    default: break;  // kClose; kDelay is handled by the caller: closing is the safe reading.
  }
  return Reply::Close();
}

HttpResponse Service::Respond(const Route& route, const HttpRequest& request,
                              std::string_view query) {
  if (route.endpoint == Endpoint::kNotFound) return Text(http::status::not_found, "Not Found");
  if (request.method() != route.method) return MethodNotAllowed(route.method);
  switch (route.endpoint) {
    case Endpoint::kLogin: return HandleLogin(request);
    case Endpoint::kRenewLoginToken: return HandleRenew(request);
    case Endpoint::kLogout:
      state_.Logout(Header(request, "Authtoken"));
      return Text(http::status::ok, "User logged out");
    default: break;
  }
  if (!state_.Authenticate(Header(request, "Authtoken"))) {
    return Json(EncodeAccessDenied(), http::status::unauthorized);
  }
  switch (route.endpoint) {
    case Endpoint::kDrBackup: return HandleDrBackup(request);
    case Endpoint::kJob: {
      const auto job = state_.FindJob(route.job_id);
      if (!job) return Json(EncodeJobList(0, {}));
      return Json(EncodeJobList(1, {*job}));
    }
    case Endpoint::kJobList: return HandleJobList(request, query);
    case Endpoint::kKill:
    case Endpoint::kPause:
    case Endpoint::kResume: return HandleJobAction(route);
    case Endpoint::kJobDetails: return HandleJobDetails(request);
    case Endpoint::kDrOptions: return HandleDrOptions();
    default: return Text(http::status::not_found, "Not Found");
  }
}

HttpResponse Service::HandleLogin(const HttpRequest& request) {
  const auto login = ParseLoginRequest(request.body());
  std::optional<std::string> token;
  if (login.value) {
    if (const auto password = DecodeBase64(login.value->password_base64)) {
      token = state_.Login(login.value->username, *password);
    }
  }
  if (token) return Json(EncodeLoginSuccess(*token, state_.username()));
  if (options_.login_failure_status == 401) {
    return Json(EncodeAccessDenied(), http::status::unauthorized);
  }
  return Json(EncodeLoginFailure());
}

HttpResponse Service::HandleRenew(const HttpRequest& request) {
  const auto old_token = ParseRenewRequest(request.body());
  const auto token = old_token.value ? state_.RenewToken(*old_token.value) : std::nullopt;
  return Json(token ? EncodeRenewSuccess(*token) : EncodeRenewFailure());
}

HttpResponse Service::HandleDrBackup(const HttpRequest& request) {
  const Format format = AnswerFormat(request);
  const auto parsed =
      ParseDrBackupRequest(request.body(), RequestFormat(Header(request, "Content-Type")));
  if (!parsed.value) {
    return InFormat(format, EncodeGenericResponse(format, 2, "Invalid input: " + parsed.error));
  }
  const Submission submission = state_.SubmitDrBackup(*parsed.value);
  if (!submission.accepted) {
    return InFormat(format, EncodeGenericResponse(format, 1,
                                                  "DR backup job [" +
                                                      std::to_string(submission.running_job_id) +
                                                      "] is already running."));
  }
  return InFormat(format, EncodeCreateTask(format, submission.task_id, {submission.job_id},
                                           options_.job_ids_as_numbers));
}

HttpResponse Service::HandleJobList(const HttpRequest& request, std::string_view query) {
  JobCategory category = JobCategory::kActive;
  if (const auto text = QueryParam(query, "jobCategory")) {
    if (IEquals(*text, "Active")) {
      category = JobCategory::kActive;
    } else if (IEquals(*text, "Finished")) {
      category = JobCategory::kFinished;
    } else if (IEquals(*text, "All")) {
      category = JobCategory::kAll;
    } else {
      return Json(EncodeGenericResponse(Format::kJson, 2, "Invalid input: jobCategory"));
    }
  }
  // The simulator only knows DR backup jobs: a filter that excludes them yields nothing.
  if (const auto filter = QueryParam(query, "jobFilter")) {
    std::string upper = *filter;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (upper.find("CSDRBKP") == std::string::npos) return Json(EncodeJobList(0, {}));
  }
  std::chrono::seconds lookup = kDefaultCompletedLookup;
  if (const auto text = QueryParam(query, "completedJobLookupTime")) {
    if (const auto seconds = ParseCount(*text)) lookup = std::chrono::seconds(*seconds);
  }
  std::vector<JobSummary> jobs = state_.ListJobs(category, lookup);
  const auto total = static_cast<int64_t>(jobs.size());
  const auto offset = std::min<int64_t>(ParseCount(Header(request, "offset")).value_or(0), total);
  const auto limit = ParseCount(Header(request, "limit")).value_or(total);
  jobs.erase(jobs.begin(), jobs.begin() + offset);
  if (limit < static_cast<int64_t>(jobs.size())) jobs.resize(limit);
  return Json(EncodeJobList(total, jobs));
}

HttpResponse Service::HandleJobAction(const Route& route) {
  const JobAction action = route.endpoint == Endpoint::kKill    ? JobAction::kKill
                           : route.endpoint == Endpoint::kPause ? JobAction::kPause
                                                                : JobAction::kResume;
  const ActionResult result = state_.ApplyAction(route.job_id, action);
  if (result.error_code == 0) return Json(EncodeJobActionSuccess());
  return Json(EncodeGenericResponse(Format::kJson, result.error_code, result.message));
}

HttpResponse Service::HandleJobDetails(const HttpRequest& request) {
  const auto job_id = ParseJobDetailsRequest(request.body());
  if (!job_id.value) {
    return Json(EncodeGenericResponse(Format::kJson, 2, "Invalid input: " + job_id.error));
  }
  const auto reason = state_.DelayReason(*job_id.value);
  if (!reason) {
    return Json(EncodeGenericResponse(Format::kJson, 1,
                                      "Job [" + std::to_string(*job_id.value) + "] not found"));
  }
  return Json(EncodeJobDetails(*reason));
}

HttpResponse Service::HandleDrOptions() {
  std::lock_guard lock(mu_);
  if (dr_options_status_ != 200) {
    return Text(static_cast<http::status>(dr_options_status_), "Not Found");
  }
  return Json(dr_options_body_);
}

HttpResponse Service::HandleAdmin(const HttpRequest& request, std::string_view path,
                                  std::string_view query) {
  const std::string_view name = path.substr(kAdminPrefix.size());
  const http::verb method = request.method();
  using http::verb;
  if (name == "requests")
    return method == verb::get ? AdminRequests() : MethodNotAllowed(verb::get);
  if (name == "reset")
    return method == verb::post ? AdminReset(query) : MethodNotAllowed(verb::post);
  if (name == "jobs") return method == verb::get ? AdminJobs() : MethodNotAllowed(verb::get);
  if (name == "stats") return method == verb::get ? AdminStats() : MethodNotAllowed(verb::get);
  if (name == "expire-tokens") {
    if (method != verb::post) return MethodNotAllowed(verb::post);
    state_.ExpireAllTokens();
    return AdminOk();
  }
  if (name == "faults") {
    if (method == verb::post) return AdminAddFaults(request);
    if (method == verb::get) return AdminFaults();
    if (method == verb::delete_) {
      std::lock_guard lock(mu_);
      faults_.clear();
      return AdminOk();
    }
    return MethodNotAllowed(verb::post);
  }
  if (name == "history") {
    return method == verb::post ? AdminSeedHistory(request) : MethodNotAllowed(verb::post);
  }
  if (name == "dr-options") {
    if (method == verb::post) return AdminSetDrOptions(request);
    if (method == verb::get) return AdminDrOptions();
    return MethodNotAllowed(verb::post);
  }
  if (name.substr(0, 5) == "jobs/") {
    const auto job_id = ParseCount(name.substr(5));
    if (!job_id) return Text(http::status::not_found, "Not Found");
    return method == verb::post ? AdminForceJob(*job_id, request) : MethodNotAllowed(verb::post);
  }
  return Text(http::status::not_found, "Not Found");
}

HttpResponse Service::AdminRequests() {
  json list = json::array();
  std::lock_guard lock(mu_);
  for (const RecordedRequest& recorded : requests_) {
    list.push_back({{"method", recorded.method},
                    {"target", recorded.target},
                    {"content_type", recorded.content_type},
                    {"accept", recorded.accept},
                    {"has_authtoken", recorded.has_authtoken},
                    {"body", recorded.body},
                    {"endpoint", recorded.endpoint}});
  }
  return Json(list.dump(-1, ' ', false, json::error_handler_t::replace));
}

HttpResponse Service::AdminReset(std::string_view query) {
  {
    std::lock_guard lock(mu_);
    requests_.clear();
    faults_.clear();
    endpoint_counts_.clear();
    drbackup_posts_ = 0;
    logins_ = 0;
    faults_applied_ = 0;
  }
  {
    std::lock_guard lock(mu_);
    dr_options_status_ = 200;
    dr_options_body_ = std::string(kDefaultDrOptions);
  }
  state_.ClearJobs();
  if (QueryParam(query, "tokens") == "1") state_.ClearTokens();
  return AdminOk();
}

HttpResponse Service::AdminJobs() {
  json list = json::array();
  for (const JobRecord& job : state_.AllJobs()) {
    list.push_back({{"id", job.summary.job_id},
                    {"task_id", job.task_id},
                    {"type", BackupLevelName(job.summary.level)},
                    {"compression", job.compression},
                    {"status", job.summary.status},
                    {"percent", job.summary.percent_complete},
                    {"pending_reason", job.summary.pending_reason},
                    {"visible", job.visible}});
  }
  return Json(list.dump());
}

HttpResponse Service::AdminForceJob(int64_t job_id, const HttpRequest& request) {
  const json body = json::parse(request.body(), nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return AdminError(http::status::bad_request, "body must be an object");
  const auto status = body.find("status");
  const auto outcome = body.find("outcome");
  const auto reason = body.find("pendingReason");
  if ((status != body.end() && !status->is_string()) ||
      (outcome != body.end() && !outcome->is_string()) ||
      (reason != body.end() && !reason->is_string()) ||
      (status == body.end() && outcome == body.end())) {
    return AdminError(http::status::bad_request,
                      "expected string \"status\" (and \"pendingReason\") or \"outcome\"");
  }
  bool found = true;
  if (outcome != body.end()) found = state_.SetOutcome(job_id, outcome->get<std::string>());
  if (found && status != body.end()) {
    found = state_.ForceStatus(
        job_id, status->get<std::string>(),
        reason != body.end() ? std::optional(reason->get<std::string>()) : std::nullopt);
  }
  return found ? AdminOk() : AdminError(http::status::not_found, "unknown job");
}

HttpResponse Service::AdminSeedHistory(const HttpRequest& request) {
  json body = json::parse(request.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_object()) body = json::array({body});
  if (!body.is_array()) return AdminError(http::status::bad_request, "expected a JSON array");
  std::vector<HistoryEntry> entries;
  for (const json& item : body) {
    if (!item.is_object() || !item.contains("start") || !item.contains("end") ||
        !item["start"].is_number_integer() || !item["end"].is_number_integer()) {
      return AdminError(http::status::bad_request,
                        "each entry needs integer \"start\" and \"end\" (epoch seconds)");
    }
    HistoryEntry entry;
    entry.start = TimePoint(std::chrono::seconds(item["start"].get<int64_t>()));
    entry.end = TimePoint(std::chrono::seconds(item["end"].get<int64_t>()));
    const json level = item.value("level", json("Full"));
    if (level == "Full") {
      entry.level = BackupLevel::kFull;
    } else if (level == "Differential") {
      entry.level = BackupLevel::kDifferential;
    } else {
      return AdminError(http::status::bad_request, "level must be \"Full\" or \"Differential\"");
    }
    const json status = item.value("status", json("Completed"));
    const json reason = item.value("reason", json(""));
    if (!status.is_string() || !reason.is_string()) {
      return AdminError(http::status::bad_request, "status and reason must be strings");
    }
    entry.status = status.get<std::string>();
    entry.reason = reason.get<std::string>();
    entries.push_back(std::move(entry));
  }
  json ids = json::array();
  for (const HistoryEntry& entry : entries) {
    std::string error;
    const auto id = state_.SeedHistory(entry, &error);
    if (!id) return AdminError(http::status::bad_request, error);
    ids.push_back(*id);
  }
  return Json(json{{"ok", true}, {"job_ids", ids}}.dump());
}

HttpResponse Service::AdminSetDrOptions(const HttpRequest& request) {
  const json body = json::parse(request.body(), nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return AdminError(http::status::bad_request, "body must be an object");
  const auto status = body.find("http_status");
  const auto answer = body.find("body");
  if (status != body.end() && (!status->is_number_unsigned() || *status < 100 || *status > 999)) {
    return AdminError(http::status::bad_request, "http_status must be 100-999");
  }
  if (status == body.end() && answer == body.end()) {
    return AdminError(http::status::bad_request, "expected \"body\" and/or \"http_status\"");
  }
  std::lock_guard lock(mu_);
  dr_options_status_ = status != body.end() ? status->get<unsigned>() : 200;
  if (answer != body.end()) {
    // A string is sent verbatim (for bodies that are not valid JSON); anything else is dumped.
    dr_options_body_ = answer->is_string() ? answer->get<std::string>() : answer->dump();
  }
  return AdminOk();
}

HttpResponse Service::AdminDrOptions() {
  std::lock_guard lock(mu_);
  return Json(json{{"http_status", dr_options_status_}, {"body", dr_options_body_}}.dump());
}

Service::Fault Service::ParseFault(const json& rule) {
  if (!rule.is_object()) throw std::invalid_argument("a fault rule must be an object");
  Fault fault;
  fault.endpoint = rule.value("endpoint", "*");
  if (std::find(kFaultEndpoints.begin(), kFaultEndpoints.end(), fault.endpoint) ==
      kFaultEndpoints.end()) {
    throw std::invalid_argument("unknown endpoint: " + fault.endpoint);
  }
  fault.remaining = rule.value("count", int64_t{1});
  const std::string action = rule.at("action").get<std::string>();
  if (action == "status") {
    fault.action = Fault::Action::kStatus;
  } else if (action == "error_code") {
    fault.action = Fault::Action::kErrorCode;
  } else if (action == "unauthorized") {
    fault.action = Fault::Action::kUnauthorized;
  } else if (action == "delay") {
    fault.action = Fault::Action::kDelay;
  } else if (action == "close") {
    fault.action = Fault::Action::kClose;
  } else if (action == "hang") {
    fault.action = Fault::Action::kHang;
  } else if (action == "reset") {
    fault.action = Fault::Action::kReset;
  } else if (action == "malformed") {
    fault.action = Fault::Action::kMalformed;
  } else if (action == "truncate") {
    fault.action = Fault::Action::kTruncate;
  } else if (action == "wrong_content_type") {
    fault.action = Fault::Action::kWrongContentType;
    fault.content_type = "text/html";
  } else if (action == "oversized") {
    fault.action = Fault::Action::kOversized;
  } else if (action == "tls_handshake_failure") {
    fault.action = Fault::Action::kTlsHandshakeFailure;
  } else if (action == "expired_cert") {
    fault.action = Fault::Action::kExpiredCert;
  } else {
    throw std::invalid_argument("unknown action: " + action);
  }
  if (fault.connection_level() && fault.endpoint != "*") {
    throw std::invalid_argument(action +
                                " happens before any request is read: endpoint must be \"*\"");
  }
  fault.skip = rule.value("skip", int64_t{0});
  if (fault.skip < 0) throw std::invalid_argument("skip must not be negative");
  fault.http_status = rule.value("http_status", 500u);
  if (fault.http_status < 100 || fault.http_status > 999) {
    throw std::invalid_argument("http_status out of range");
  }
  fault.content_type = rule.value("content_type", fault.content_type);
  fault.body = rule.value("body", "");
  const json headers = rule.value("headers", json::object());
  for (const auto& [name, value] : headers.items()) {
    fault.headers.emplace_back(name, value.get<std::string>());
  }
  fault.error_code = rule.value("error_code", fault.error_code);
  fault.message = rule.value("message", fault.message);
  fault.delay = std::chrono::milliseconds(
      rule.value("delay_ms", fault.action == Fault::Action::kHang ? int64_t{600000} : int64_t{0}));
  if (fault.delay.count() < 0) throw std::invalid_argument("delay_ms must not be negative");
  fault.after_side_effect = rule.value("after_side_effect", false);
  fault.size_bytes = rule.value("size_bytes", fault.size_bytes);
  if (fault.size_bytes < 0 || fault.size_bytes > (int64_t{1} << 30)) {
    throw std::invalid_argument("size_bytes must be 0-1073741824");
  }
  fault.missing_bytes = rule.value("missing_bytes", fault.missing_bytes);
  if (fault.missing_bytes < 1) throw std::invalid_argument("missing_bytes must be at least 1");
  return fault;
}

HttpResponse Service::AdminAddFaults(const HttpRequest& request) {
  json body = json::parse(request.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_object()) body = json::array({body});
  if (!body.is_array()) return AdminError(http::status::bad_request, "expected a JSON array");
  try {
    AddFaults(body);
  } catch (const std::exception& error) {
    return AdminError(http::status::bad_request, error.what());
  }
  return AdminOk();
}

void Service::AddFaults(const json& rules) {
  const json list = rules.is_object() ? json::array({rules}) : rules;
  if (!list.is_array()) throw std::invalid_argument("expected a JSON array of fault rules");
  std::vector<Fault> parsed;
  for (size_t i = 0; i < list.size(); ++i) {
    try {
      parsed.push_back(ParseFault(list[i]));
    } catch (const std::exception& error) {
      throw std::invalid_argument("fault rule " + std::to_string(i) + ": " + error.what());
    }
  }
  std::lock_guard lock(mu_);
  faults_.insert(faults_.end(), parsed.begin(), parsed.end());
}

HttpResponse Service::AdminFaults() {
  static constexpr std::array<std::string_view, 13> kActionNames = {
      "status",       "error_code",
      "unauthorized", "delay",
      "close",        "hang",
      "reset",        "malformed",
      "truncate",     "wrong_content_type",
      "oversized",    "tls_handshake_failure",
      "expired_cert"};
  json list = json::array();
  std::lock_guard lock(mu_);
  for (const Fault& fault : faults_) {
    list.push_back({{"endpoint", fault.endpoint},
                    {"count", fault.remaining},
                    {"skip", fault.skip},
                    {"action", kActionNames[static_cast<size_t>(fault.action)]}});
  }
  return Json(list.dump());
}

HttpResponse Service::AdminStats() {
  const int64_t scheduled_starts = state_.ScheduledStarts();
  std::lock_guard lock(mu_);
  return Json(json{{"requests_by_endpoint", endpoint_counts_},
                   {"drbackup_posts", drbackup_posts_},
                   {"logins", logins_},
                   {"faults_applied", faults_applied_},
                   {"scheduled_starts", scheduled_starts},
                   {"requests_by_prefix", prefix_counts_}}
                  .dump());
}

}  // namespace commserv_sim
