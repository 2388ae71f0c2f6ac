// The fault matrix: every upstream fault commserv-sim can inject, against a real commserv-sim and
// a real drgate. For each: the exact gRPC code and ErrorInfo reason the caller of TriggerBackup
// gets, the metric series that counted it, a registry that stays consistent (no half job; an
// answer lost after the CommServe acted is reconciled, never posted twice), and a server that
// serves the next request.
//
// Every case starts its own simulator and drgate (fresh connections, fresh session), so cases
// run in parallel under ctest -j. Timeouts are short: request_timeout 1 s, intent_grace 3 s.

#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using namespace std::chrono_literals;
using v1::BACKUP_TYPE_DIFFERENTIAL;
using v1::BACKUP_TYPE_FULL;
using Json = nlohmann::json;

// One series of the exposition: prometheus-cpp writes labels sorted by name.
std::string Series(const std::string& name, const std::map<std::string, std::string>& labels) {
  std::string out = name + "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    out += (first ? "" : ",") + k + "=\"" + v + "\"";
    first = false;
  }
  return out + "}";
}

std::optional<google::rpc::RetryInfo> RetryInfoOf(const grpc::Status& status) {
  google::rpc::Status rich;
  if (!rich.ParseFromString(status.error_details())) return std::nullopt;
  for (const auto& any : rich.details()) {
    google::rpc::RetryInfo info;
    if (any.UnpackTo(&info)) return info;
  }
  return std::nullopt;
}

std::string Describe(const grpc::Status& s) {
  return std::to_string(s.error_code()) + " [" + ErrorInfoOf(s).reason() + "] " + s.error_message();
}

// Per-case drgate settings beyond the defaults below.
struct Settings {
  std::string format = "json";
  std::string request_timeout = "1s";
  // Short back-offs keep the cases fast; the counts stay exact.
  std::string retry = "{max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms}";
  std::string extra;  // more keys of the CommCell, each line "    key: value\n"
  // No probes and no DR history read: the only upstream traffic is the test's (history on has
  // tests of its own, dr_history_integration_test). intent_grace must exceed
  // 2 x connect_timeout + 2 x request_timeout (the config validates it).
  std::string tracking =
      "tracking: {history: false, poll_interval: 200ms, intent_grace: 3s, intent_give_up: 3500ms, "
      "probe_interval: 0s}\n";
};

class FaultMatrixTest : public ::testing::Test {
 protected:
  void Start(const Settings& s = {}, std::vector<std::string> sim_args = {}) {
    sim_ = std::make_unique<Sim>(dir_, std::move(sim_args));
    dir_.Write("password", "s3cret\n");
    const std::string yaml =
        "auth: {mode: insecure}\n"
        "registry: {path: state/drgate.db}\n"
        "shutdown_grace: 2s\n" +
        s.tracking + "commcells:\n" +
        sim_->CommCellYaml("cs1", "    format: " + s.format +
                                      "\n"
                                      "    connect_timeout: 400ms\n"
                                      "    request_timeout: " +
                                      s.request_timeout + "\n    retry: " + s.retry + "\n") +
        s.extra;
    drgate_ = std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml));
  }

  grpc::Status Trigger(const std::string& request_id, v1::TriggerBackupResponse* out,
                       v1::BackupType type = BACKUP_TYPE_FULL,
                       std::chrono::milliseconds deadline = 10s) {
    return drgate_->Trigger("cs1", type, request_id, out, deadline);
  }
  grpc::Status GetJob(const std::string& job_id, v1::Job* out) {
    return drgate_->GetJob("cs1", job_id, out, 5s);
  }
  // The recorded jobs carrying `request_id`.
  std::vector<v1::Job> JobsFor(const std::string& request_id) {
    v1::ListJobsRequest req;
    req.set_commcell("cs1");
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(5s));
    grpc::Status s = drgate_->stub().ListJobs(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << Describe(s);
    std::vector<v1::Job> out;
    for (const auto& j : resp.jobs()) {
      if (j.request_id() == request_id) out.push_back(j);
    }
    return out;
  }
  std::vector<std::string> SimJobIds() {
    std::vector<std::string> ids;
    for (const auto& j : sim_->admin().Json("GET", "/_sim/jobs")) {
      ids.push_back(j["id"].is_string() ? j["id"].get<std::string>()
                                        : std::to_string(j["id"].get<long long>()));
    }
    return ids;
  }
  int64_t Posts() { return sim_->admin().Json("GET", "/_sim/stats").at("drbackup_posts"); }
  double Metric(const std::string& name, std::map<std::string, std::string> labels) {
    labels["commcell"] = "cs1";
    return MetricValue(drgate_->Metrics(), Series(name, labels));
  }
  void ClearFaults() { sim_->admin().Call("DELETE", "/_sim/faults"); }

  TempDir dir_;
  std::unique_ptr<Sim> sim_;
  std::unique_ptr<Drgate> drgate_;
};

// What the registry must show after the faulted trigger.
enum class Registry {
  kNothingStarted,  // a known failure: no job, the intent closed; the same request id may retry
  kAdopted,         // the CommServe acted but the answer was lost: reconciled, never re-posted
  kUnknown,         // the answer was lost and the CommServe did nothing: settled as UNKNOWN
};

struct FaultCase {
  std::string name;
  Json faults;
  grpc::StatusCode code;
  std::string reason;
  std::string message_part{};               // "" = not checked
  std::map<std::string, double> metrics{};  // series "name{labels without commcell}" -> value
  Registry registry = Registry::kNothingStarted;
  int64_t posts = 1;  // DRBackup POSTs the simulator saw for the faulted trigger
  Settings settings{};
  std::optional<int64_t> retry_after_ms{};  // a google.rpc.RetryInfo with this delay
  std::string request_sent{};               // ErrorInfo metadata, "" = not checked
};

void PrintTo(const FaultCase& c, std::ostream* os) {
  *os << c.name;
}

class FaultMatrix : public FaultMatrixTest, public ::testing::WithParamInterface<FaultCase> {};

// "name{a=\"b\"}" with commcell="cs1" added, as Series() writes it.
double MetricOf(const std::string& exposition, const std::string& spec) {
  const auto brace = spec.find('{');
  std::map<std::string, std::string> labels{{"commcell", "cs1"}};
  std::string body = spec.substr(brace + 1, spec.size() - brace - 2);
  std::size_t pos = 0;
  while (pos < body.size()) {
    const auto eq = body.find('=', pos);
    const auto end = body.find('"', eq + 2);
    labels[body.substr(pos, eq - pos)] = body.substr(eq + 2, end - eq - 2);
    pos = end + 2;
  }
  return MetricValue(exposition, Series(spec.substr(0, brace), labels));
}

TEST_P(FaultMatrix, CallerGetsTheDocumentedErrorAndNothingIsLostOrDoubled) {
  const FaultCase& c = GetParam();
  Start(c.settings);
  sim_->Fault(c.faults);

  v1::TriggerBackupResponse resp;
  const std::string rid = "matrix-" + c.name;
  grpc::Status s = Trigger(rid, &resp);
  ASSERT_EQ(s.error_code(), c.code) << Describe(s);
  if (s.ok()) {
    // A fault the policies absorb: the job is recorded as the CommServe started it.
    const auto jobs = JobsFor(rid);
    ASSERT_EQ(jobs.size(), 1u);
    EXPECT_EQ(jobs[0].job_id(), resp.job().job_id());
    EXPECT_EQ(SimJobIds(), std::vector<std::string>{resp.job().job_id()});
    const std::string metrics = drgate_->Metrics();
    for (const auto& [spec, value] : c.metrics) {
      EXPECT_EQ(MetricOf(metrics, spec), value) << spec;
    }
    EXPECT_EQ(Posts(), c.posts);
    grpc::Status next = Trigger(rid + "-next", &resp, BACKUP_TYPE_DIFFERENTIAL);
    EXPECT_TRUE(next.ok()) << Describe(next);
    return;
  }
  const auto info = ErrorInfoOf(s);
  EXPECT_EQ(info.reason(), c.reason) << Describe(s);
  EXPECT_EQ(info.domain(), "drgate");
  EXPECT_EQ(info.metadata().at("commcell"), "cs1");
  if (!c.message_part.empty()) {
    EXPECT_NE(s.error_message().find(c.message_part), std::string::npos) << Describe(s);
  }
  if (!c.request_sent.empty()) {
    ASSERT_TRUE(info.metadata().count("request_sent")) << Describe(s);
    EXPECT_EQ(info.metadata().at("request_sent"), c.request_sent);
  }
  if (c.retry_after_ms) {
    auto retry = RetryInfoOf(s);
    ASSERT_TRUE(retry.has_value()) << Describe(s);
    EXPECT_EQ(retry->retry_delay().seconds() * 1000 + retry->retry_delay().nanos() / 1000000,
              *c.retry_after_ms);
  }
  const std::string metrics = drgate_->Metrics();
  for (const auto& [spec, value] : c.metrics) {
    EXPECT_EQ(MetricOf(metrics, spec), value) << spec;
  }
  EXPECT_EQ(Posts(), c.posts);
  ClearFaults();

  switch (c.registry) {
    case Registry::kNothingStarted: {
      EXPECT_TRUE(JobsFor(rid).empty());
      EXPECT_TRUE(SimJobIds().empty());
      // The intent was closed: the same request id triggers cleanly now.
      grpc::Status again = Trigger(rid, &resp);
      ASSERT_TRUE(again.ok()) << Describe(again);
      EXPECT_FALSE(resp.deduplicated());
      EXPECT_EQ(SimJobIds(), std::vector<std::string>{resp.job().job_id()});
      EXPECT_EQ(Posts(), c.posts + 1);
      break;
    }
    case Registry::kAdopted:
    case Registry::kUnknown: {
      const auto upstream = SimJobIds();
      EXPECT_EQ(upstream.size(), c.registry == Registry::kAdopted ? 1u : 0u);
      EXPECT_TRUE(JobsFor(rid).empty()) << "no half job while the outcome is unknown";
      // The same request id is held back while the outcome is reconciled: no second POST.
      grpc::Status pending = Trigger(rid, &resp);
      EXPECT_EQ(pending.error_code(), grpc::StatusCode::UNAVAILABLE) << Describe(pending);
      EXPECT_EQ(ErrorInfoOf(pending).reason(), "TRIGGER_OUTCOME_PENDING");
      std::vector<v1::Job> settled;
      ASSERT_TRUE(Eventually(
          [&] {
            settled = JobsFor(rid);
            return !settled.empty();
          },
          8s));
      ASSERT_EQ(settled.size(), 1u);
      if (c.registry == Registry::kAdopted) {
        EXPECT_EQ(settled[0].job_id(), upstream.at(0));
        EXPECT_NE(settled[0].state(), v1::JOB_STATE_UNKNOWN);
      } else {
        EXPECT_EQ(settled[0].state(), v1::JOB_STATE_UNKNOWN);
      }
      grpc::Status dedup = Trigger(rid, &resp);
      ASSERT_TRUE(dedup.ok()) << Describe(dedup);
      EXPECT_TRUE(resp.deduplicated());
      EXPECT_EQ(resp.job().job_id(), settled[0].job_id());
      EXPECT_EQ(Posts(), c.posts) << "the ambiguous POST was never sent again";
      v1::Job got;
      grpc::Status get = GetJob(settled[0].job_id(), &got);
      ASSERT_TRUE(get.ok()) << Describe(get);
      EXPECT_EQ(got.request_id(), rid);
      break;
    }
  }
  // The server keeps serving: a new trigger works.
  grpc::Status next = Trigger(rid + "-next", &resp, BACKUP_TYPE_DIFFERENTIAL);
  EXPECT_TRUE(next.ok()) << Describe(next);
}

const Json kHtml500 = Json{{"endpoint", "DRBackup"},
                           {"action", "status"},
                           {"http_status", 500},
                           {"content_type", "text/html"},
                           {"body",
                            "<html><head><title>Service Temporarily Down</title></head>"
                            "<body>IIS</body></html>"}};

Settings Xml() {
  Settings s;
  s.format = "xml";
  return s;
}
Settings SmallResponses() {
  Settings s;
  s.extra = "    max_response_bytes: 65536\n";
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Faults, FaultMatrix,
    ::testing::Values(
        FaultCase{"added_latency",
                  {{"endpoint", "DRBackup"}, {"action", "delay"}, {"delay_ms", 300}},
                  grpc::StatusCode::OK,
                  "",
                  "",
                  {{"drgate_backup_triggers_total{backup_type=\"full\",result=\"submitted\"}", 1},
                   {"drgate_commserv_requests_total{code=\"200\",endpoint=\"drbackup\"}", 1},
                   {"drgate_commserv_request_duration_seconds_bucket{endpoint=\"drbackup\","
                    "le=\"0.25\"}",
                    0},
                   {"drgate_commserv_request_duration_seconds_count{endpoint=\"drbackup\"}", 1}}},
        FaultCase{"no_answer",
                  {{"endpoint", "DRBackup"},
                   {"action", "hang"},
                   {"delay_ms", 3000},
                   {"after_side_effect", true}},
                  grpc::StatusCode::UNAVAILABLE,
                  "UPSTREAM_TIMEOUT",
                  "read: timed out after",
                  {{"drgate_commserv_requests_total{code=\"error\",endpoint=\"drbackup\"}", 1},
                   {"drgate_backup_trigger_failures_total{reason=\"timeout\"}", 1},
                   {"drgate_commserv_retries_total{endpoint=\"drbackup\"}", 0}},
                  Registry::kAdopted,
                  1,
                  {},
                  std::nullopt,
                  "true"},
        FaultCase{"reset_before_read",
                  {{"endpoint", "DRBackup"}, {"action", "reset"}},
                  grpc::StatusCode::UNAVAILABLE,
                  "UPSTREAM_UNREACHABLE",
                  "read: ",
                  {{"drgate_commserv_requests_total{code=\"error\",endpoint=\"drbackup\"}", 1},
                   {"drgate_backup_trigger_failures_total{reason=\"unreachable\"}", 1}},
                  Registry::kUnknown,
                  1,
                  {},
                  std::nullopt,
                  "true"},
        FaultCase{"reset_after_side_effect",
                  {{"endpoint", "DRBackup"}, {"action", "reset"}, {"after_side_effect", true}},
                  grpc::StatusCode::UNAVAILABLE,
                  "UPSTREAM_UNREACHABLE",
                  "may have reached the CommServe",
                  {{"drgate_commserv_requests_total{code=\"error\",endpoint=\"drbackup\"}", 1},
                   {"drgate_commserv_retries_total{endpoint=\"drbackup\"}", 0},
                   {"drgate_backup_trigger_failures_total{reason=\"unreachable\"}", 1}},
                  Registry::kAdopted,
                  1,
                  {},
                  std::nullopt,
                  "true"},
        FaultCase{"http_500_html",
                  kHtml500,
                  grpc::StatusCode::UNAVAILABLE,
                  "UPSTREAM_HTTP_5XX",
                  "Service Temporarily Down",
                  {{"drgate_commserv_requests_total{code=\"500\",endpoint=\"drbackup\"}", 1},
                   {"drgate_commserv_retries_total{endpoint=\"drbackup\"}", 0},
                   {"drgate_backup_trigger_failures_total{reason=\"upstream_error\"}", 1}}},
        FaultCase{"http_429_retry_after",
                  {{"endpoint", "DRBackup"},
                   {"action", "status"},
                   {"http_status", 429},
                   {"body", "Too many requests"},
                   {"headers", {{"Retry-After", "2"}}}},
                  grpc::StatusCode::UNAVAILABLE,
                  "UPSTREAM_RATE_LIMITED",
                  "rate limited",
                  {{"drgate_commserv_requests_total{code=\"429\",endpoint=\"drbackup\"}", 1},
                   {"drgate_backup_trigger_failures_total{reason=\"upstream_error\"}", 1}},
                  Registry::kNothingStarted,
                  1,
                  {},
                  2000},
        FaultCase{"unauthorized_storm",
                  {{"endpoint", "DRBackup"}, {"action", "unauthorized"}, {"count", 3}},
                  grpc::StatusCode::FAILED_PRECONDITION,
                  "UPSTREAM_AUTH_FAILED",
                  "HTTP 401",
                  {{"drgate_commserv_requests_total{code=\"401\",endpoint=\"drbackup\"}", 3},
                   {"drgate_commserv_requests_total{code=\"200\",endpoint=\"renew\"}", 1},
                   {"drgate_commserv_logins_total{result=\"success\"}", 2},
                   {"drgate_backup_trigger_failures_total{reason=\"authentication\"}", 1}},
                  Registry::kNothingStarted,
                  3},
        // A 401 storm on every endpoint refuses drgate's login itself: the CommServe refuses
        // drgate's credentials, which is what UPSTREAM_LOGIN_FAILED says (UPSTREAM_AUTH_FAILED is
        // for a session rejected after a login that succeeded; docs/hostile-input.md).
        FaultCase{"unauthorized_storm_login",
                  {{"action", "unauthorized"}, {"count", 1}},
                  grpc::StatusCode::FAILED_PRECONDITION,
                  "UPSTREAM_LOGIN_FAILED",
                  "login failed: HTTP 401",
                  {{"drgate_commserv_requests_total{code=\"401\",endpoint=\"login\"}", 1},
                   {"drgate_commserv_logins_total{result=\"failure\"}", 1},
                   {"drgate_backup_trigger_failures_total{reason=\"authentication\"}", 1}},
                  Registry::kNothingStarted,
                  0},
        FaultCase{"error_code_in_200",
                  {{"endpoint", "DRBackup"},
                   {"action", "error_code"},
                   {"error_code", 2},
                   {"message", "DR backup destination is not configured"}},
                  grpc::StatusCode::FAILED_PRECONDITION,
                  "UPSTREAM_REJECTED",
                  "DR backup destination is not configured",
                  {{"drgate_commserv_requests_total{code=\"200\",endpoint=\"drbackup\"}", 1},
                   {"drgate_backup_trigger_failures_total{reason=\"rejected\"}", 1},
                   {"drgate_backup_triggers_total{backup_type=\"full\",result=\"rejected\"}", 1}}},
        FaultCase{"malformed_json",
                  {{"endpoint", "DRBackup"}, {"action", "malformed"}, {"after_side_effect", true}},
                  grpc::StatusCode::INTERNAL,
                  "MALFORMED_UPSTREAM_RESPONSE",
                  "not JSON",
                  {{"drgate_commserv_requests_total{code=\"200\",endpoint=\"drbackup\"}", 1},
                   {"drgate_backup_trigger_failures_total{reason=\"malformed_response\"}", 1}},
                  Registry::kAdopted,
                  1,
                  {},
                  std::nullopt,
                  "true"},
        FaultCase{"malformed_xml",
                  {{"endpoint", "DRBackup"}, {"action", "malformed"}},
                  grpc::StatusCode::INTERNAL,
                  "MALFORMED_UPSTREAM_RESPONSE",
                  "",
                  {{"drgate_backup_trigger_failures_total{reason=\"malformed_response\"}", 1}},
                  Registry::kUnknown,
                  1,
                  Xml(),
                  std::nullopt,
                  "true"},
        FaultCase{"truncated_body",
                  {{"endpoint", "DRBackup"}, {"action", "truncate"}, {"after_side_effect", true}},
                  grpc::StatusCode::UNAVAILABLE,
                  "UPSTREAM_UNREACHABLE",
                  "read: ",
                  {{"drgate_commserv_requests_total{code=\"error\",endpoint=\"drbackup\"}", 1},
                   {"drgate_backup_trigger_failures_total{reason=\"unreachable\"}", 1}},
                  Registry::kAdopted,
                  1,
                  {},
                  std::nullopt,
                  "true"},
        FaultCase{"wrong_content_type",
                  {{"endpoint", "DRBackup"}, {"action", "wrong_content_type"}},
                  grpc::StatusCode::INTERNAL,
                  "MALFORMED_UPSTREAM_RESPONSE",
                  "text/html",
                  {{"drgate_backup_trigger_failures_total{reason=\"malformed_response\"}", 1}},
                  Registry::kAdopted,
                  1,
                  {},
                  std::nullopt,
                  "true"},
        FaultCase{"oversized_body",
                  {{"endpoint", "DRBackup"},
                   {"action", "oversized"},
                   {"size_bytes", 200000},
                   {"after_side_effect", true}},
                  grpc::StatusCode::UNAVAILABLE,
                  "UPSTREAM_RESPONSE_TOO_LARGE",
                  "exceeds 65536 bytes",
                  {{"drgate_commserv_requests_total{code=\"error\",endpoint=\"drbackup\"}", 1},
                   {"drgate_commserv_retries_total{endpoint=\"drbackup\"}", 0},
                   {"drgate_backup_trigger_failures_total{reason=\"upstream_error\"}", 1}},
                  Registry::kAdopted,
                  1,
                  SmallResponses(),
                  std::nullopt,
                  "true"},
        FaultCase{"tls_handshake_failure",
                  {{"action", "tls_handshake_failure"}, {"count", 100}},
                  grpc::StatusCode::UNAVAILABLE,
                  "UPSTREAM_TLS_ERROR",
                  "handshake: ",
                  {{"drgate_commserv_requests_total{code=\"error\",endpoint=\"login\"}", 3},
                   {"drgate_commserv_retries_total{endpoint=\"login\"}", 2},
                   {"drgate_backup_trigger_failures_total{reason=\"tls\"}", 1}},
                  Registry::kNothingStarted,
                  0,
                  {},
                  std::nullopt,
                  "false"},
        FaultCase{"expired_certificate",
                  {{"action", "expired_cert"}, {"count", 1}},
                  grpc::StatusCode::UNAVAILABLE,
                  "UPSTREAM_TLS_ERROR",
                  "certificate has expired",
                  {{"drgate_commserv_requests_total{code=\"error\",endpoint=\"login\"}", 1},
                   {"drgate_commserv_retries_total{endpoint=\"login\"}", 0},
                   {"drgate_backup_trigger_failures_total{reason=\"tls\"}", 1}},
                  Registry::kNothingStarted,
                  0,
                  {},
                  std::nullopt,
                  "false"}),
    [](const ::testing::TestParamInfo<FaultCase>& info) { return info.param.name; });

// Reads are retried: two 503s on the DR job list cost the tracker nothing but two retries.
TEST_F(FaultMatrixTest, ReadsAreRetriedWithBackoff) {
  Start();
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger("read-retry", &resp).ok());
  sim_->Fault({{"endpoint", "JobList"}, {"action", "status"}, {"http_status", 503}, {"count", 2}});
  ASSERT_TRUE(Eventually(
      [&] {
        v1::Job job;
        return GetJob(resp.job().job_id(), &job).ok() && job.state() == v1::JOB_STATE_SUCCEEDED;
      },
      10s));
  EXPECT_EQ(Metric("drgate_commserv_retries_total", {{"endpoint", "job_list"}}), 2);
  EXPECT_EQ(Metric("drgate_commserv_requests_total", {{"endpoint", "job_list"}, {"code", "503"}}),
            2);
  EXPECT_EQ(Metric("drgate_commserv_up", {}), 1);
}

// A write that never left drgate (the TLS handshake failed) is retried, and succeeds.
TEST_F(FaultMatrixTest, OneFailedTlsHandshakeIsRetriedTransparently) {
  Start();
  sim_->Fault({{"action", "tls_handshake_failure"}, {"count", 1}});
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger("tls-once", &resp);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(Metric("drgate_commserv_retries_total", {{"endpoint", "login"}}), 1);
  EXPECT_EQ(sim_->admin().Json("GET", "/_sim/stats").at("faults_applied"), 1);
  EXPECT_EQ(Posts(), 1);
}

// A 401 storm shorter than renew + login is absorbed; the POST it met never acted.
TEST_F(FaultMatrixTest, ShortUnauthorizedStormIsAbsorbed) {
  Start();
  sim_->Fault({{"endpoint", "DRBackup"}, {"action", "unauthorized"}, {"count", 2}});
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger("storm-short", &resp);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(Posts(), 3);
  EXPECT_EQ(SimJobIds(), std::vector<std::string>{resp.job().job_id()});
}

// Consecutive failures open the circuit: calls fail fast with UNAVAILABLE + RetryInfo, nothing
// is sent, reads of the registry keep working, and a probe closes it again by itself.
TEST_F(FaultMatrixTest, CircuitBreakerOpensFailsFastAndRecovers) {
  Settings s;
  s.retry = "{max_attempts: 1}";
  s.extra = "    circuit_breaker: {failure_threshold: 2, open_for: 1s}\n";
  // Nothing active, no probes: no tracker request can reset the failure count in between.
  Start(s);
  sim_->Fault({{"endpoint", "DRBackup"},
               {"action", "status"},
               {"http_status", 503},
               {"content_type", "text/html"},
               {"body", "<title>Maintenance</title>"},
               {"count", 2}});
  v1::TriggerBackupResponse resp;
  EXPECT_EQ(ErrorInfoOf(Trigger("b1", &resp)).reason(), "UPSTREAM_HTTP_5XX");
  EXPECT_EQ(Metric("drgate_commserv_circuit_open", {}), 0);
  EXPECT_EQ(ErrorInfoOf(Trigger("b2", &resp)).reason(), "UPSTREAM_HTTP_5XX");
  EXPECT_EQ(Metric("drgate_commserv_circuit_open", {}), 1);

  grpc::Status open = Trigger("b3", &resp);
  ASSERT_EQ(open.error_code(), grpc::StatusCode::UNAVAILABLE) << Describe(open);
  EXPECT_EQ(ErrorInfoOf(open).reason(), "CIRCUIT_OPEN");
  auto retry = RetryInfoOf(open);
  ASSERT_TRUE(retry.has_value());
  const auto delay_ms =
      retry->retry_delay().seconds() * 1000 + retry->retry_delay().nanos() / 1000000;
  EXPECT_GT(delay_ms, 0);
  EXPECT_LE(delay_ms, 1000);
  EXPECT_EQ(Posts(), 2) << "no POST while the circuit is open";
  EXPECT_EQ(Metric("drgate_commserv_rejected_total", {{"reason", "circuit_open"}}), 1);
  EXPECT_EQ(Metric("drgate_backup_trigger_failures_total", {{"reason", "unreachable"}}), 1);
  EXPECT_TRUE(JobsFor("b3").empty()) << "registry reads keep working, and show no half job";

  // After the open period the next call is the probe; its success closes the circuit.
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms + 50));
  grpc::Status probe = Trigger("b3", &resp);
  ASSERT_TRUE(probe.ok()) << Describe(probe);
  EXPECT_EQ(Metric("drgate_commserv_circuit_open", {}), 0);
  EXPECT_EQ(Posts(), 3);
  EXPECT_EQ(SimJobIds(), std::vector<std::string>{resp.job().job_id()});
}

// The bounded queue: more calls in progress than max_pending_requests fail fast.
TEST_F(FaultMatrixTest, FullQueueIsResourceExhausted) {
  Settings s;
  s.extra = "    max_pending_requests: 1\n";
  // No tracker traffic in this window: the one slot belongs to the hanging trigger.
  s.tracking =
      "tracking: {history: false, poll_interval: 60s, max_backoff: 120s, intent_grace: 3s, "
      "intent_give_up: 3500ms, probe_interval: 0s}\n";
  Start(s);
  sim_->Fault({{"endpoint", "DRBackup"}, {"action", "hang"}, {"delay_ms", 3000}});
  grpc::Status first;
  std::thread hanging([&] {
    v1::TriggerBackupResponse r;
    first = Trigger("q1", &r);
  });
  ASSERT_TRUE(Eventually([&] { return Posts() == 1; }, 5s));
  v1::TriggerBackupResponse resp;
  grpc::Status full = Trigger("q2", &resp, BACKUP_TYPE_DIFFERENTIAL);
  hanging.join();
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << Describe(full);
  EXPECT_EQ(ErrorInfoOf(full).reason(), "UPSTREAM_QUEUE_FULL");
  EXPECT_EQ(first.error_code(), grpc::StatusCode::UNAVAILABLE) << Describe(first);
  EXPECT_EQ(ErrorInfoOf(first).reason(), "UPSTREAM_TIMEOUT");
  EXPECT_EQ(Metric("drgate_commserv_rejected_total", {{"reason", "queue_full"}}), 1);
  EXPECT_EQ(Metric("drgate_backup_trigger_failures_total", {{"reason", "overloaded"}}), 1);
  EXPECT_EQ(Posts(), 1);
  EXPECT_TRUE(JobsFor("q2").empty());
  // Nothing was sent for q2: the same request id triggers now that the slot is free.
  grpc::Status next = Trigger("q2", &resp, BACKUP_TYPE_DIFFERENTIAL);
  EXPECT_TRUE(next.ok()) << Describe(next);
  EXPECT_EQ(Posts(), 2);
}

// The upstream call ends at the caller's deadline, not after request_timeout (10 s here).
TEST_F(FaultMatrixTest, CallersDeadlineBoundsTheUpstreamCall) {
  Settings s;
  s.request_timeout = "10s";
  s.tracking =
      "tracking: {history: false, poll_interval: 200ms, intent_grace: 25s, intent_give_up: 30s, "
      "probe_interval: 0s}\n";
  Start(s);
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger("warm", &resp).ok());
  sim_->Fault({{"endpoint", "DRBackup"}, {"action", "hang"}, {"delay_ms", 8000}});
  const auto started = std::chrono::steady_clock::now();
  grpc::Status s1 = Trigger("deadline", &resp, BACKUP_TYPE_DIFFERENTIAL, 600ms);
  EXPECT_EQ(s1.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << Describe(s1);
  // drgate gave up upstream at the caller's deadline: counted as a timeout well before 10 s.
  ASSERT_TRUE(Eventually(
      [&] {
        return Metric("drgate_backup_trigger_failures_total", {{"reason", "timeout"}}) == 1;
      },
      3s));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_EQ(Metric("drgate_commserv_requests_total", {{"endpoint", "drbackup"}, {"code", "error"}}),
            1);
  EXPECT_EQ(Metric("drgate_commserv_circuit_open", {}), 0);
}

}  // namespace
}  // namespace drgate::testing
