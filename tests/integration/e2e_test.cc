// End to end over TLS: drgate + commserv-sim as real processes on loopback.

#include <gtest/gtest.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

#include <fstream>

#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using v1::BACKUP_TYPE_DIFFERENTIAL;
using v1::BACKUP_TYPE_FULL;

struct ConfigOptions {
  std::string format = "json";
  std::string password = "s3cret";
  bool trust_sim = true;
  std::string base_path = "/commandcenter/api";
};

class EndToEndTest : public ::testing::Test {
 protected:
  void StartSim(std::vector<std::string> args = {}) {
    sim_ = std::make_unique<Sim>(dir_, std::move(args));
  }
  std::string WriteConfig(const ConfigOptions& o = {}) {
    dir_.Write("password", o.password + "\n");
    std::string yaml =
        "registry: {path: state/drgate.db}\n"
        "shutdown_grace: 5s\n"
        "auth: {mode: insecure}\n"
        "commcells:\n"
        "  - name: cs1\n"
        "    url: " +
        sim_->base_url() + o.base_path +
        "\n"
        "    format: " +
        o.format +
        "\n"
        "    username: admin\n"
        "    password_file: password\n"
        "    request_timeout: 10s\n";
    if (o.trust_sim) yaml += "    ca_file: " + sim_->cert_path() + "\n";
    return dir_.Write("drgate.yaml", yaml);
  }
  void StartDrgate(const ConfigOptions& o = {}) {
    drgate_.reset();
    drgate_ = std::make_unique<Drgate>(WriteConfig(o));
  }
  grpc::Status Trigger(v1::BackupType type, bool compression, v1::TriggerBackupResponse* out,
                       const std::string& commcell = "cs1", const std::string& request_id = "") {
    v1::TriggerBackupRequest req;
    req.set_commcell(commcell);
    req.set_backup_type(type);
    req.set_compression(compression);
    req.set_request_id(request_id);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return drgate_->stub().TriggerBackup(&ctx, req, out);
  }
  // The ids the simulator issued, in order.
  std::vector<std::string> SimJobIds() {
    std::vector<std::string> ids;
    for (const auto& j : sim_->admin().Json("GET", "/_sim/jobs")) {
      ids.push_back(j["id"].is_string() ? j["id"].get<std::string>()
                                        : std::to_string(j["id"].get<long long>()));
    }
    return ids;
  }

  TempDir dir_;
  std::unique_ptr<Sim> sim_;
  std::unique_ptr<Drgate> drgate_;
};

struct BodyCase {
  std::string format;
  v1::BackupType type;
  bool compression;
  std::string expected_body;
};

void PrintTo(const BodyCase& c, std::ostream* os) {
  *os << c.format << " " << v1::BackupType_Name(c.type) << " compression=" << c.compression;
}

class DocumentedBodiesTest : public EndToEndTest, public ::testing::WithParamInterface<BodyCase> {};

TEST_P(DocumentedBodiesTest, SimulatorSeesTheDocumentedBodyAndTheJobIdRoundTrips) {
  const BodyCase& c = GetParam();
  StartSim();
  ConfigOptions o;
  o.format = c.format;
  StartDrgate(o);
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger(c.type, c.compression, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();

  auto posts = sim_->Requests("/CommServ/DRBackup");
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0]["body"].get<std::string>(), c.expected_body);
  EXPECT_EQ(posts[0]["content_type"].get<std::string>(), "application/" + c.format);

  auto ids = SimJobIds();
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(resp.job().job_id(), ids[0]);
  EXPECT_EQ(resp.job().commcell(), "cs1");
  EXPECT_EQ(resp.job().backup_type(), c.type);
  EXPECT_EQ(resp.job().compression(), c.compression);
  EXPECT_EQ(resp.job().state(), v1::JOB_STATE_SUBMITTED);
  EXPECT_GT(resp.job().task_id(), 0);
  EXPECT_FALSE(resp.deduplicated());
}

INSTANTIATE_TEST_SUITE_P(
    AllFormatsTypesAndCompression, DocumentedBodiesTest,
    ::testing::Values(
        BodyCase{"json", BACKUP_TYPE_FULL, false,
                 R"({"isCompressionEnabled":false,"jobType":1,"backupType":1})"},
        BodyCase{"json", BACKUP_TYPE_FULL, true,
                 R"({"isCompressionEnabled":true,"jobType":1,"backupType":1})"},
        BodyCase{"json", BACKUP_TYPE_DIFFERENTIAL, false,
                 R"({"isCompressionEnabled":false,"jobType":1,"backupType":3})"},
        BodyCase{"json", BACKUP_TYPE_DIFFERENTIAL, true,
                 R"({"isCompressionEnabled":true,"jobType":1,"backupType":3})"},
        BodyCase{
            "xml", BACKUP_TYPE_FULL, false,
            R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="false" jobType="IMMEDIATE" backupType="full"/>)"},
        BodyCase{
            "xml", BACKUP_TYPE_FULL, true,
            R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="true" jobType="IMMEDIATE" backupType="full"/>)"},
        BodyCase{
            "xml", BACKUP_TYPE_DIFFERENTIAL, false,
            R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="false" jobType="IMMEDIATE" backupType="differential"/>)"},
        BodyCase{
            "xml", BACKUP_TYPE_DIFFERENTIAL, true,
            R"(<TMMsg_CommcellDRBackupReq isCompressionEnabled="true" jobType="IMMEDIATE" backupType="differential"/>)"}),
    [](const auto& info) {
      return info.param.format + (info.param.type == BACKUP_TYPE_FULL ? "_full" : "_differential") +
             (info.param.compression ? "_compressed" : "_uncompressed");
    });

TEST_F(EndToEndTest, LoginBodyIsDocumentedAndTheTokenIsReused) {
  StartSim();
  StartDrgate();
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, false, &resp).ok());
  ASSERT_TRUE(Trigger(BACKUP_TYPE_DIFFERENTIAL, false, &resp).ok());
  auto logins = sim_->Requests("/Login");
  ASSERT_EQ(logins.size(), 1u);
  auto body = nlohmann::json::parse(logins[0]["body"].get<std::string>());
  EXPECT_EQ(body["username"], "admin");
  EXPECT_EQ(body["password"], "czNjcmV0");  // base64("s3cret")
  EXPECT_EQ(body["deviceId"], "drgate-cs1");
  for (const auto& post : sim_->Requests("/CommServ/DRBackup")) {
    EXPECT_TRUE(post["has_authtoken"].get<bool>());
  }
}

// Requests are a few hundred bytes; anything above grpc.max_message_bytes (64 KiB by default) is
// refused before it is parsed, and never reaches the CommServe.
TEST_F(EndToEndTest, OversizedRequestIsResourceExhausted) {
  StartSim();
  StartDrgate();
  v1::TriggerBackupResponse resp;
  grpc::Status big = Trigger(BACKUP_TYPE_FULL, false, &resp, "cs1", std::string(70 * 1024, 'x'));
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << big.error_message();
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), 0);
  // The server goes on serving.
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, false, &resp).ok());
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), 1);
}

TEST_F(EndToEndTest, GetJobFindsTheJobAfterARestart) {
  StartSim();
  StartDrgate();
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, true, &resp, "cs1", "restart-check").ok());
  EXPECT_EQ(drgate_->Terminate(), 0);

  StartDrgate();
  v1::GetJobRequest req;
  req.set_commcell("cs1");
  req.set_job_id(resp.job().job_id());
  v1::Job job;
  grpc::ClientContext ctx;
  grpc::Status s = drgate_->stub().GetJob(&ctx, req, &job);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(job.job_id(), resp.job().job_id());
  EXPECT_EQ(job.request_id(), "restart-check");
  EXPECT_TRUE(job.compression());

  // The same request id after the restart answers the recorded job: no second backup.
  v1::TriggerBackupResponse again;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, true, &again, "cs1", "restart-check").ok());
  EXPECT_TRUE(again.deduplicated());
  EXPECT_EQ(again.job().job_id(), resp.job().job_id());
  EXPECT_EQ(sim_->Requests("/CommServ/DRBackup").size(), 1u);
}

TEST_F(EndToEndTest, ListJobsPagesThroughEveryJob) {
  StartSim();
  StartDrgate();
  std::set<std::string> triggered;
  for (int i = 0; i < 3; ++i) {
    v1::TriggerBackupResponse resp;
    // Full and differential alternate so the CommServe's concurrency limit is not hit.
    ASSERT_TRUE(Trigger(i % 2 ? BACKUP_TYPE_DIFFERENTIAL : BACKUP_TYPE_FULL, false, &resp).ok());
    triggered.insert(resp.job().job_id());
  }
  std::set<std::string> listed;
  std::string token;
  int pages = 0;
  do {
    v1::ListJobsRequest req;
    req.set_page_size(2);
    req.set_page_token(token);
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(drgate_->stub().ListJobs(&ctx, req, &resp).ok());
    for (const auto& j : resp.jobs()) listed.insert(j.job_id());
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(listed, triggered);
  EXPECT_EQ(pages, 2);
}

TEST_F(EndToEndTest, JobsCarryTheirOriginAndListJobsAndEnsureRecentBackupFilterByIt) {
  StartSim({"--job-duration-ms", "600000"});  // the job stays running for the whole test
  StartDrgate();
  v1::TriggerBackupResponse triggered;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, false, &triggered).ok());
  EXPECT_EQ(triggered.job().origin(), v1::JOB_ORIGIN_DRGATE);

  auto list = [&](v1::JobOrigin origin, v1::ListJobsResponse* out) {
    v1::ListJobsRequest req;
    req.set_origin(origin);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return drgate_->stub().ListJobs(&ctx, req, out);
  };
  v1::ListJobsResponse ours;
  ASSERT_TRUE(list(v1::JOB_ORIGIN_DRGATE, &ours).ok());
  ASSERT_EQ(ours.jobs_size(), 1);
  EXPECT_EQ(ours.jobs(0).job_id(), triggered.job().job_id());
  EXPECT_EQ(ours.jobs(0).origin(), v1::JOB_ORIGIN_DRGATE);
  v1::ListJobsResponse theirs;
  ASSERT_TRUE(list(v1::JOB_ORIGIN_COMMSERV, &theirs).ok());
  EXPECT_EQ(theirs.jobs_size(), 0);
  v1::ListJobsResponse bad;
  const grpc::Status invalid = list(static_cast<v1::JobOrigin>(7), &bad);
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ErrorInfoOf(invalid).reason(), "INVALID_ORIGIN_FILTER");

  // EnsureRecentBackup counting only drgate's own answers the running drgate job, no new POST.
  auto ensure = [&](v1::JobOrigin origin, v1::TriggerBackupResponse* out) {
    v1::EnsureRecentBackupRequest req;
    req.set_commcell("cs1");
    req.set_backup_type(BACKUP_TYPE_FULL);
    req.mutable_max_age()->set_seconds(7200);
    req.set_origin(origin);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return drgate_->stub().EnsureRecentBackup(&ctx, req, out);
  };
  v1::TriggerBackupResponse ensured;
  const grpc::Status own = ensure(v1::JOB_ORIGIN_DRGATE, &ensured);
  ASSERT_TRUE(own.ok()) << own.error_message();
  EXPECT_TRUE(ensured.deduplicated());
  EXPECT_EQ(ensured.job().job_id(), triggered.job().job_id());
  EXPECT_EQ(sim_->Requests("/CommServ/DRBackup").size(), 1u);
  v1::TriggerBackupResponse unused;
  const grpc::Status wrong = ensure(static_cast<v1::JobOrigin>(9), &unused);
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ErrorInfoOf(wrong).reason(), "INVALID_ORIGIN_FILTER");
}

TEST_F(EndToEndTest, ListCommCellsShowsTheUrlWithoutSecretsAndReachability) {
  StartSim();
  StartDrgate();
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, false, &resp).ok());
  v1::ListCommCellsResponse cells;
  grpc::ClientContext ctx;
  ASSERT_TRUE(drgate_->stub().ListCommCells(&ctx, {}, &cells).ok());
  ASSERT_EQ(cells.commcells_size(), 1);
  EXPECT_EQ(cells.commcells(0).name(), "cs1");
  EXPECT_EQ(cells.commcells(0).url(), sim_->base_url() + "/commandcenter/api");
  EXPECT_TRUE(cells.commcells(0).reachable());
}

TEST_F(EndToEndTest, EveryBasePathWorks) {
  StartSim();
  for (std::string base : {"/webconsole/api", "/SearchSvc/CVWebService.svc"}) {
    ConfigOptions o;
    o.base_path = base;
    StartDrgate(o);
    v1::TriggerBackupResponse resp;
    grpc::Status s = Trigger(BACKUP_TYPE_FULL, false, &resp, "cs1");
    ASSERT_TRUE(s.ok()) << base << ": " << s.error_message();
    auto posts = sim_->Requests(base + "/CommServ/DRBackup");
    EXPECT_EQ(posts.size(), 1u) << base;
    sim_->admin().Call("POST", "/_sim/reset");
  }
}

TEST_F(EndToEndTest, UnknownCommCellIsNotFound) {
  StartSim();
  StartDrgate();
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, false, &resp, "nope");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  auto info = ErrorInfoOf(s);
  EXPECT_EQ(info.reason(), "COMMCELL_NOT_FOUND");
  EXPECT_EQ(info.domain(), "drgate");
  EXPECT_EQ(info.metadata().at("commcell"), "nope");
  EXPECT_TRUE(sim_->Requests("/CommServ/DRBackup").empty());
}

TEST_F(EndToEndTest, UnspecifiedBackupTypeIsInvalidArgument) {
  StartSim();
  StartDrgate();
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger(v1::BACKUP_TYPE_UNSPECIFIED, false, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ErrorInfoOf(s).reason(), "INVALID_BACKUP_TYPE");
  EXPECT_TRUE(sim_->Requests("/CommServ/DRBackup").empty());
}

TEST_F(EndToEndTest, UpstreamErrorCodeIn200CarriesTheUpstreamMessage) {
  StartSim();
  StartDrgate();
  sim_->Fault(nlohmann::json::array({{{"endpoint", "DRBackup"},
                                      {"action", "error_code"},
                                      {"error_code", 2},
                                      {"message", "DR backup destination is not configured"}}}));
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, false, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("DR backup destination is not configured"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(ErrorInfoOf(s).reason(), "UPSTREAM_REJECTED");
  EXPECT_EQ(ErrorInfoOf(s).metadata().at("commcell"), "cs1");
}

TEST_F(EndToEndTest, AlreadyRunningIsAborted) {
  StartSim({"--job-duration-ms", "60000"});
  StartDrgate();
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_DIFFERENTIAL, false, &resp).ok());
  grpc::Status s = Trigger(BACKUP_TYPE_DIFFERENTIAL, false, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  EXPECT_EQ(ErrorInfoOf(s).reason(), "DR_JOB_ALREADY_RUNNING");
}

TEST_F(EndToEndTest, Html500IsUnavailable) {
  StartSim();
  StartDrgate();
  sim_->Fault(nlohmann::json::array(
      {{{"endpoint", "DRBackup"},
        {"action", "status"},
        {"http_status", 500},
        {"content_type", "text/html"},
        {"body",
         "<html><head><title>Service Temporarily Down</title></head><body>x</body></html>"}}}));
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, false, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find("Service Temporarily Down"), std::string::npos)
      << s.error_message();
  // The server keeps serving: the next trigger works.
  EXPECT_TRUE(Trigger(BACKUP_TYPE_FULL, false, &resp).ok());
}

TEST_F(EndToEndTest, MalformedBodyIsInternal) {
  StartSim();
  StartDrgate();
  sim_->Fault(nlohmann::json::array({{{"endpoint", "DRBackup"},
                                      {"action", "status"},
                                      {"http_status", 200},
                                      {"content_type", "application/json"},
                                      {"body", "{\"taskId\": 12, \"jobIds\": [\"21"}}}));
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, false, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(ErrorInfoOf(s).reason(), "MALFORMED_UPSTREAM_RESPONSE");
}

TEST_F(EndToEndTest, WrongCredentialsAreFailedPrecondition) {
  StartSim();
  ConfigOptions o;
  o.password = "wrong";
  StartDrgate(o);
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, false, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ErrorInfoOf(s).reason(), "UPSTREAM_LOGIN_FAILED");
  EXPECT_EQ(s.error_message().find("wrong"), std::string::npos) << "password leaked";
  EXPECT_TRUE(sim_->Requests("/CommServ/DRBackup").empty());
}

TEST_F(EndToEndTest, ExpiredTokenIsRenewedTransparently) {
  StartSim();
  StartDrgate();
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, false, &resp).ok());
  sim_->admin().Call("POST", "/_sim/expire-tokens");
  grpc::Status s = Trigger(BACKUP_TYPE_DIFFERENTIAL, false, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(sim_->Requests("/RenewLoginToken").size(), 1u);
  EXPECT_EQ(sim_->Requests("/Login").size(), 1u);
}

TEST_F(EndToEndTest, UntrustedCertificateIsUnavailableNamingVerification) {
  StartSim();
  ConfigOptions o;
  o.trust_sim = false;
  StartDrgate(o);
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, false, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ErrorInfoOf(s).reason(), "UPSTREAM_TLS_ERROR");
  EXPECT_NE(s.error_message().find("certificate verif"), std::string::npos) << s.error_message();
  EXPECT_TRUE(sim_->Requests("/Login").empty());
}

TEST_F(EndToEndTest, MetricsCountTriggersAndUpstreamRequests) {
  StartSim();
  StartDrgate();
  const std::string before = drgate_->Metrics();
  EXPECT_EQ(
      MetricValue(
          before,
          R"(drgate_backup_triggers_total{backup_type="full",commcell="cs1",result="submitted"})"),
      0);
  EXPECT_EQ(
      MetricValue(before,
                  R"(drgate_backup_trigger_failures_total{commcell="cs1",reason="unreachable"})"),
      0);
  EXPECT_NE(before.find("drgate_build_info{"), std::string::npos);

  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, false, &resp).ok());
  ASSERT_EQ(Trigger(BACKUP_TYPE_FULL, false, &resp, "nope").error_code(),
            grpc::StatusCode::NOT_FOUND);
  const std::string after = drgate_->Metrics();
  EXPECT_EQ(
      MetricValue(
          after,
          R"(drgate_backup_triggers_total{backup_type="full",commcell="cs1",result="submitted"})"),
      1);
  EXPECT_EQ(MetricValue(
                after,
                R"(drgate_commserv_requests_total{code="200",commcell="cs1",endpoint="drbackup"})"),
            1);
  EXPECT_EQ(
      MetricValue(after,
                  R"(drgate_commserv_requests_total{code="200",commcell="cs1",endpoint="login"})"),
      1);
  EXPECT_EQ(MetricValue(after, R"(drgate_backup_trigger_duration_seconds_count{commcell="cs1"})"),
            1);
  // An unknown CommCell never becomes a label value.
  EXPECT_EQ(after.find("commcell=\"nope\""), std::string::npos);
  // No secret reaches the metrics.
  EXPECT_EQ(after.find("s3cret"), std::string::npos);
  EXPECT_EQ(after.find("QSDK"), std::string::npos);
}

TEST_F(EndToEndTest, HealthAndReflectionAreServed) {
  StartSim();
  StartDrgate();
  auto health = grpc::health::v1::Health::NewStub(drgate_->channel());
  grpc::health::v1::HealthCheckRequest hreq;
  grpc::health::v1::HealthCheckResponse hresp;
  grpc::ClientContext hctx;
  ASSERT_TRUE(health->Check(&hctx, hreq, &hresp).ok());
  EXPECT_EQ(hresp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(drgate_->channel());
  grpc::ClientContext rctx;
  auto stream = reflection->ServerReflectionInfo(&rctx);
  grpc::reflection::v1alpha::ServerReflectionRequest rreq;
  rreq.set_list_services("");
  ASSERT_TRUE(stream->Write(rreq));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse rresp;
  ASSERT_TRUE(stream->Read(&rresp));
  std::set<std::string> services;
  for (const auto& svc : rresp.list_services_response().service()) services.insert(svc.name());
  EXPECT_TRUE(services.count("drgate.v1.DrBackupService")) << rresp.DebugString();
  EXPECT_TRUE(services.count("grpc.health.v1.Health")) << rresp.DebugString();
  while (stream->Read(&rresp)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

// Polls the gRPC health status of `service` until it is `want` or 10 s pass.
grpc::health::v1::HealthCheckResponse::ServingStatus WaitForHealth(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
    grpc::health::v1::HealthCheckResponse::ServingStatus want) {
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckResponse::ServingStatus got =
      grpc::health::v1::HealthCheckResponse::UNKNOWN;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    if (health->Check(&ctx, req, &resp).ok()) got = resp.status();
    if (got == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return got;
}

TEST_F(EndToEndTest, LivenessAndReadinessOverGrpcAndHttp) {
  StartSim();
  StartDrgate();
  EXPECT_EQ(
      WaitForHealth(drgate_->channel(), "liveness", grpc::health::v1::HealthCheckResponse::SERVING),
      grpc::health::v1::HealthCheckResponse::SERVING);
  // Ready once the startup probe logged in to the CommCell.
  EXPECT_EQ(WaitForHealth(drgate_->channel(), "readiness",
                          grpc::health::v1::HealthCheckResponse::SERVING),
            grpc::health::v1::HealthCheckResponse::SERVING);
  HttpClient http(drgate_->metrics_url());
  EXPECT_EQ(http.Call("GET", "/healthz").status, 200);
  auto ready = http.Call("GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(http.Call("GET", "/nope").status, 404);
}

TEST_F(EndToEndTest, NotReadyWhileNoCommCellAcceptsTheLogin) {
  StartSim();
  ConfigOptions o;
  o.password = "wrong";
  StartDrgate(o);
  EXPECT_EQ(
      WaitForHealth(drgate_->channel(), "liveness", grpc::health::v1::HealthCheckResponse::SERVING),
      grpc::health::v1::HealthCheckResponse::SERVING);
  HttpClient http(drgate_->metrics_url());
  commserv::HttpResponse ready;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    ready = http.Call("GET", "/readyz");
    if (ready.body.find("Login failed") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("not ready"), std::string::npos) << ready.body;
  EXPECT_EQ(ready.body.find("wrong"), std::string::npos) << "the password leaked: " << ready.body;
  EXPECT_EQ(WaitForHealth(drgate_->channel(), "readiness",
                          grpc::health::v1::HealthCheckResponse::NOT_SERVING),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

std::vector<std::string> CommCellNames(Drgate& drgate) {
  v1::ListCommCellsResponse cells;
  grpc::ClientContext ctx;
  std::vector<std::string> names;
  if (!drgate.stub().ListCommCells(&ctx, {}, &cells).ok()) return names;
  for (const auto& c : cells.commcells()) names.push_back(c.name());
  return names;
}

TEST_F(EndToEndTest, SighupReloadAddsACommCellAndABrokenFileKeepsTheOldOne) {
  StartSim();
  StartDrgate();
  const std::string path = dir_.File("drgate.yaml");
  std::string yaml;
  {
    std::ifstream in(path);
    yaml.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // A second CommCell (the same simulator under another name).
  std::string second = yaml.substr(yaml.find("  - name: cs1"));
  second.replace(second.find("cs1"), 3, "cs2");
  dir_.Write("drgate.yaml", yaml + second);
  drgate_->Signal(SIGHUP);
  std::vector<std::string> names;
  for (int i = 0; i < 100 && names.size() != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    names = CommCellNames(*drgate_);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"cs1", "cs2"}));
  v1::TriggerBackupResponse resp;
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, false, &resp, "cs2");
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.job().commcell(), "cs2");

  // A broken file: rejected, both CommCells keep serving.
  dir_.Write("drgate.yaml", "commcells: [ {name: broken\n");
  drgate_->Signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(CommCellNames(*drgate_), (std::vector<std::string>{"cs1", "cs2"}));
  EXPECT_TRUE(Trigger(BACKUP_TYPE_DIFFERENTIAL, false, &resp, "cs1").ok());
}

// A reload applies every key marked live (here tracking.poll_interval and log.level) and says
// which changed keys wait for a restart (grpc.listen): logged, and the gauge is 1.
TEST_F(EndToEndTest, ReloadAppliesLiveKeysAndFlagsRestartOnlyOnes) {
  StartSim({"--job-duration-ms", "600000"});  // the job stays running: it is polled
  const auto yaml = [&](const std::string& listen, const std::string& poll,
                        const std::string& level) {
    return "grpc: {listen: '" + listen +
           "'}\n"
           "metrics: {listen: '127.0.0.1:0'}\n"
           "log: {level: " +
           level +
           "}\n"
           "tracking: {poll_interval: " +
           poll +
           ", max_backoff: 1h, probe_interval: 0s, history: false}\n"
           "registry: {path: state/drgate.db}\n"
           "shutdown_grace: 5s\n"
           "auth: {mode: insecure}\n"
           "commcells:\n" +
           sim_->CommCellYaml("cs1", "    request_timeout: 10s\n");
  };
  dir_.Write("password", "s3cret\n");
  const std::string log = dir_.File("drgate.log");
  drgate_ = std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml("127.0.0.1:0", "1h", "info")),
                                     "", log, /*listen_overrides=*/false);
  EXPECT_EQ(MetricValue(drgate_->Metrics(), "drgate_config_restart_required"), 0);
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, false, &resp, "cs1", "before-reload").ok());
  // The trigger's poke polls once; the next poll is an hour away.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const int64_t before = sim_->EndpointCount("JobList");
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(sim_->EndpointCount("JobList"), before);

  dir_.Write("drgate.yaml", yaml("127.0.0.1:1", "100ms", "warn"));
  drgate_->Signal(SIGHUP);
  int64_t after = before;
  for (int i = 0; i < 100 && after < before + 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    after = sim_->EndpointCount("JobList");
  }
  EXPECT_GE(after, before + 5) << "the new poll_interval (100ms) was not applied";
  const std::string metrics = drgate_->Metrics();
  EXPECT_EQ(MetricValue(metrics, "drgate_config_restart_required"), 1) << metrics;
  // SIGHUP, and maybe the file watcher before it: one or two reloads, both applied.
  EXPECT_GE(MetricValue(metrics, "drgate_config_reloads_total{result=\"success\"}"), 1) << metrics;
  EXPECT_EQ(MetricValue(metrics, "drgate_config_reloads_total{result=\"failure\"}"), 0) << metrics;
  // Still served on the address it started with.
  // The same request id again: answered from the registry (deduplicated), its audit line is info.
  v1::TriggerBackupResponse again;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, false, &again, "cs1", "before-reload").ok());
  EXPECT_TRUE(again.deduplicated());
  EXPECT_EQ(again.job().job_id(), resp.job().job_id());
  EXPECT_EQ(drgate_->Terminate(), 0);
  const std::string logs = ReadAll(log);
  EXPECT_NE(logs.find("reload: grpc.listen changed; in force only after a restart"),
            std::string::npos)
      << logs;
  EXPECT_NE(logs.find("reload: applied log.level, tracking.poll_interval"), std::string::npos)
      << logs;
  // log.level warn is in force: the audit line (info) of the call after the reload is not
  // written, the one before it is.
  std::size_t audit_lines = 0;
  for (std::size_t at = logs.find(R"("request_id":"before-reload")"); at != std::string::npos;
       at = logs.find(R"("request_id":"before-reload")", at + 1)) {
    ++audit_lines;
  }
  EXPECT_EQ(audit_lines, 1u) << logs;  // "submitted" at info; "deduplicated" not, at warn
}

TEST_F(EndToEndTest, NoSecretReachesTheLogsOrTheMetrics) {
  StartSim();
  const std::string log = dir_.File("drgate.log");
  drgate_ = std::make_unique<Drgate>(WriteConfig(), "trace", log);
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger(BACKUP_TYPE_FULL, false, &resp, "cs1", "secret-scan").ok());
  sim_->admin().Call("POST", "/_sim/expire-tokens");  // a renewal and its token travel too
  ASSERT_TRUE(Trigger(BACKUP_TYPE_DIFFERENTIAL, false, &resp).ok());
  // A failing login with another known password, through a reload.
  dir_.Write("password", "An0ther-S3cret\n");
  drgate_->Signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string metrics = drgate_->Metrics();
  EXPECT_EQ(drgate_->Terminate(), 0);

  std::string logs;
  {
    std::ifstream in(log);
    logs.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_FALSE(logs.empty()) << "expected trace logs in " << log;
  // The tokens the simulator issued, as recorded by its admin API (never the values: the sim
  // does not expose them), so scan for their shape and for the known passwords.
  for (const std::string secret : {"s3cret", "czNjcmV0", "An0ther-S3cret", "QSDK "}) {
    EXPECT_EQ(logs.find(secret), std::string::npos) << "\"" << secret << "\" in the logs";
    EXPECT_EQ(metrics.find(secret), std::string::npos) << "\"" << secret << "\" in /metrics";
  }
}

TEST_F(EndToEndTest, ARotatedPasswordFileIsPickedUpWithoutASignal) {
  StartSim();
  ConfigOptions o;
  o.password = "wrong";
  StartDrgate(o);
  v1::TriggerBackupResponse resp;
  ASSERT_EQ(Trigger(BACKUP_TYPE_FULL, false, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  dir_.Write("password", "s3cret\n");  // what a Kubernetes Secret update does
  grpc::Status s;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    s = Trigger(BACKUP_TYPE_FULL, false, &resp);
  } while (!s.ok() && std::chrono::steady_clock::now() < deadline);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(EndToEndTest, MetricsOverTlsWithBasicAuthAndOpenProbes) {
  StartSim();
  const std::string cert_dir = std::filesystem::path(sim_->cert_path()).parent_path().string();
  dir_.Write("metrics-password", "scrape-pw\n");
  std::string yaml = WriteConfig();
  std::string config;
  {
    std::ifstream in(yaml);
    config.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  dir_.Write("drgate.yaml", config +
                                "metrics:\n"
                                "  tls: {cert_file: " +
                                cert_dir + "/cert.pem, key_file: " + cert_dir +
                                "/key.pem}\n"
                                "  basic_auth: {username: prometheus, password_file: "
                                "metrics-password}\n");
  drgate_ = std::make_unique<Drgate>(dir_.File("drgate.yaml"));
  const std::string url = "https://" + drgate_->metrics_url().substr(std::string("http://").size());
  HttpClient https(url, sim_->cert_path());
  EXPECT_EQ(https.Call("GET", "/metrics").status, 401);
  EXPECT_EQ(https.Call("GET", "/metrics", "", {{"Authorization", "Basic cHJvbWV0aGV1czp3cm9uZw=="}})
                .status,
            401);  // prometheus:wrong
  auto ok = https.Call("GET", "/metrics", "",
                       {{"Authorization", "Basic cHJvbWV0aGV1czpzY3JhcGUtcHc="}});  // :scrape-pw
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("drgate_build_info"), std::string::npos);
  EXPECT_EQ(https.Call("GET", "/healthz").status, 200);  // probes need no credentials
  // Plain HTTP gets no answer from a TLS port.
  EXPECT_THROW(HttpClient(drgate_->metrics_url()).Call("GET", "/healthz"), std::runtime_error);
}

TEST_F(EndToEndTest, SigtermDrainsAndExitsZero) {
  StartSim();
  StartDrgate();
  EXPECT_EQ(drgate_->Terminate(), 0);
}

}  // namespace
}  // namespace drgate::testing
