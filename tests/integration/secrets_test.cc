// Canary secrets: a CommServe password, a pre-issued CommServe API token and caller bearer tokens
// with unmistakable values go through drgate and drgatectl under success and under every error
// path the caller can provoke (caller auth errors, upstream errors of each kind, a 401 storm, a
// rejected API token, a wrong password after a reload, an unreachable CommServe). None of them,
// nor the base64 form in which the password travels to the CommServe, may appear in drgate's log
// (at trace level), /metrics, gRPC error messages and details, the registry files, or drgatectl's
// stdout and stderr.

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kPassword[] = "CANARY-pw-9c1f4e7a2b";
constexpr char kWrongPassword[] = "CANARY-wrongpw-6e2d8b0f";
constexpr char kApiToken[] = "QSDK CANARY-apitok-5d8e2a1f7c";
constexpr char kOperatorToken[] = "CANARY-caller-op-3b6f9e1d4a8c";
constexpr char kViewerToken[] = "CANARY-caller-view-0a7c5e3b1d";
constexpr char kWrongToken[] = "CANARY-caller-bad-8f2b4d6a0c";

std::string Base64(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = std::make_unique<Sim>(
        dir_, std::vector<std::string>{"--api-token", kApiToken, "--job-duration-ms", "300"},
        /*tls=*/true, kPassword);
    dir_.Write("password", std::string(kPassword) + "\n");
    dir_.Write("api-token", std::string(kApiToken) + "\n");
    dir_.Write("operator.token", std::string(kOperatorToken) + "\n");
    dir_.Write("viewer.token", std::string(kViewerToken) + "\n");
    dir_.Write("wrong.token", std::string(kWrongToken) + "\n");
    dir_.Write("tokens.yaml",
               "tokens:\n  - {sha256: " + Sha256Hex(kOperatorToken) +
                   ", identity: ci, roles: [operator]}\n  - {sha256: " + Sha256Hex(kViewerToken) +
                   ", identity: grafana, roles: [viewer]}\n");
    const std::string cell_common =
        "    request_timeout: 3s\n    connect_timeout: 1s\n"
        "    ca_file: " +
        sim_->cert_path() + "\n";
    const std::string yaml =
        "registry: {path: state/drgate.db}\n"
        "shutdown_grace: 2s\n"
        "tracking: {poll_interval: 200ms, max_backoff: 1s}\n"
        "auth: {mode: tokens, tokens_file: tokens.yaml, rate_limit: {triggers_per_minute: 600, "
        "burst: 100}}\n"
        "commcells:\n"
        "  - name: cs-pw\n    url: " +
        sim_->base_url() +
        "/commandcenter/api\n    username: admin\n    password_file: password\n" + cell_common +
        "  - name: cs-tok\n    url: " + sim_->base_url() +
        "/commandcenter/api\n    token_file: api-token\n" + cell_common;
    log_path_ = dir_.File("drgate.stderr");
    drgate_ = std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml), "trace", log_path_);
  }

  grpc::Status Trigger(const std::string& token, const std::string& commcell,
                       v1::TriggerBackupResponse* out = nullptr) {
    v1::TriggerBackupRequest req;
    req.set_commcell(commcell);
    req.set_backup_type(v1::BACKUP_TYPE_FULL);
    v1::TriggerBackupResponse ignored;
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    grpc::Status s = drgate_->stub().TriggerBackup(&ctx, req, out ? out : &ignored);
    Remember(s);
    return s;
  }
  void Remember(const grpc::Status& s) {
    seen_ += s.error_message() + "\n" + s.error_details() + "\n";
  }
  // drgatectl with stdout and stderr together, as a runbook's log would show them.
  CommandResult Ctl(const std::string& args) {
    auto r = RunCommand({"/bin/sh", "-c",
                         std::string(DRGATE_BIN_DIR) + "/drgatectl --server " +
                             drgate_->grpc_address() + " " + args + " 2>&1"},
                        60s);
    ctl_output_ += r.out + "\n";
    return r;
  }
  void ExpectNoJobActive() {
    // The simulator's jobs take 300 ms; the next trigger must not be refused as a duplicate.
    std::this_thread::sleep_for(500ms);
  }

  TempDir dir_;
  std::unique_ptr<Sim> sim_;
  std::unique_ptr<Drgate> drgate_;
  std::string log_path_;
  std::string seen_;        // every gRPC error message and details
  std::string ctl_output_;  // everything drgatectl printed
};

TEST_F(SecretsTest, CanariesNeverLeakUnderSuccessOrAnyErrorPath) {
  // Success, on both ways of authenticating to the CommServe.
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Trigger(kOperatorToken, "cs-pw", &resp).ok()) << seen_;
  ASSERT_TRUE(Trigger(kOperatorToken, "cs-tok").ok()) << seen_;
  const std::string job_id = resp.job().job_id();
  ExpectNoJobActive();
  auto ok = Ctl("--token-file " + dir_.File("operator.token") +
                " backup --commcell cs-pw --type full --wait --wait-timeout 30s");
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_EQ(
      Ctl("--token-file " + dir_.File("viewer.token") + " --output json jobs list --all").exit_code,
      0);
  EXPECT_EQ(
      Ctl("--token-file " + dir_.File("viewer.token") + " jobs get --commcell cs-pw " + job_id)
          .exit_code,
      0);

  // Caller errors.
  EXPECT_EQ(Trigger("", "cs-pw").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Trigger(kWrongToken, "cs-pw").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Trigger(kViewerToken, "cs-pw").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Ctl("--token-file " + dir_.File("wrong.token") + " backup --commcell cs-pw --type full")
                .exit_code,
            3);
  EXPECT_EQ(Ctl("--token-file " + dir_.File("viewer.token") +
                " --output json backup --commcell cs-pw --type full")
                .exit_code,
            3);

  // Upstream errors of each kind, on the trigger.
  const std::vector<nlohmann::json> faults = {
      {{"endpoint", "DRBackup"},
       {"action", "status"},
       {"http_status", 500},
       {"content_type", "text/html"},
       {"body", "<html><body>Internal error</body></html>"}},
      {{"endpoint", "DRBackup"},
       {"action", "error_code"},
       {"error_code", 2},
       {"message", "Simulated DR backup refusal"}},
      {{"endpoint", "DRBackup"},
       {"action", "status"},
       {"http_status", 200},
       {"content_type", "application/json"},
       {"body", "{not json"}},
      {{"endpoint", "DRBackup"}, {"action", "close"}},
  };
  for (const auto& fault : faults) {
    ExpectNoJobActive();
    sim_->Fault(nlohmann::json::array({fault}));
    grpc::Status s = Trigger(kOperatorToken, "cs-pw");
    EXPECT_FALSE(s.ok()) << fault.dump();
  }
  ExpectNoJobActive();
  sim_->Fault(nlohmann::json::array({{{"endpoint", "DRBackup"}, {"action", "error_code"}}}));
  auto failed = Ctl("--token-file " + dir_.File("operator.token") +
                    " --output json backup --commcell cs-pw --type full");
  EXPECT_NE(failed.exit_code, 0) << failed.out;

  // A 401 storm: the password is sent again (a new login) and must still not leak.
  ExpectNoJobActive();
  sim_->Fault(
      nlohmann::json::array({{{"endpoint", "*"}, {"action", "unauthorized"}, {"count", 4}}}));
  Trigger(kOperatorToken, "cs-pw");
  // An expired pre-issued token is renewed; a revoked one is rejected: FAILED_PRECONDITION
  // naming the token_file only.
  sim_->admin().Call("POST", "/_sim/expire-tokens", "");
  ExpectNoJobActive();
  EXPECT_TRUE(Trigger(kOperatorToken, "cs-tok").ok()) << seen_;
  sim_->admin().Call("POST", "/_sim/reset?tokens=1", "");
  ExpectNoJobActive();
  grpc::Status rejected = Trigger(kOperatorToken, "cs-tok");
  EXPECT_EQ(rejected.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << rejected.error_message();

  // A wrong password after a reload: login refused.
  dir_.Write("password", std::string(kWrongPassword) + "\n");
  drgate_->Signal(SIGHUP);
  std::this_thread::sleep_for(1s);
  sim_->admin().Call("POST", "/_sim/reset?tokens=1", "");
  ExpectNoJobActive();
  grpc::Status login = Trigger(kOperatorToken, "cs-pw");
  EXPECT_FALSE(login.ok());
  auto login_ctl =
      Ctl("--token-file " + dir_.File("operator.token") + " backup --commcell cs-pw --type full");
  EXPECT_NE(login_ctl.exit_code, 0) << login_ctl.out;

  // The CommServe unreachable.
  const std::string metrics = drgate_->Metrics();
  sim_.reset();
  grpc::Status down = Trigger(kOperatorToken, "cs-pw");
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  Ctl("--token-file " + dir_.File("operator.token") + " backup --commcell cs-tok --type full");
  Ctl("--token-file " + dir_.File("operator.token") + " commcells");

  EXPECT_EQ(drgate_->Terminate(), 0);
  std::string registry;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.File("state"))) {
    registry += ReadAll(entry.path().string());
  }
  ASSERT_NE(registry.find(job_id), std::string::npos);  // the registry is really being read
  const std::string log = ReadAll(log_path_);
  ASSERT_NE(log.find("audit: trigger commcell=cs-tok"), std::string::npos);  // and the log
  ASSERT_NE(ctl_output_.find(job_id), std::string::npos);

  const std::string token_value = std::string(kApiToken).substr(std::string("QSDK ").size());
  for (const std::string& secret :
       {std::string(kPassword), Base64(kPassword), std::string(kWrongPassword),
        Base64(kWrongPassword), token_value, std::string(kOperatorToken), std::string(kViewerToken),
        std::string(kWrongToken)}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " in the log";
    EXPECT_EQ(metrics.find(secret), std::string::npos) << secret << " in /metrics";
    EXPECT_EQ(seen_.find(secret), std::string::npos) << secret << " in a gRPC error";
    EXPECT_EQ(registry.find(secret), std::string::npos) << secret << " in the registry";
    EXPECT_EQ(ctl_output_.find(secret), std::string::npos) << secret << " in drgatectl output";
  }
  // Nor a telling part of one.
  for (const char* part : {"CANARY-pw", "CANARY-wrongpw", "CANARY-apitok", "CANARY-caller"}) {
    EXPECT_EQ(log.find(part), std::string::npos) << part;
    EXPECT_EQ(seen_.find(part), std::string::npos) << part;
    EXPECT_EQ(ctl_output_.find(part), std::string::npos) << part;
  }
}

}  // namespace
}  // namespace drgate::testing
