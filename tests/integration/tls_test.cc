// TLS on drgate's gRPC port, end to end: drgate + commserv-sim as real processes on loopback, with
// certificates made in the test (OpenSSL), so no key material is committed.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "tests/fakes/test_pki.h"
#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using namespace std::chrono_literals;

// ---- test fixture ----------------------------------------------------------------------------

struct TlsOptions {
  bool mutual = false;
  std::string require_client_cert;  // "", "true" or "false"
  std::string tokens;               // non-empty: auth.mode tokens with this tokens file
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca1_ = Issue("drgate test CA 1", nullptr);
    ca2_ = Issue("drgate test CA 2", nullptr);
    server1_ = ServerCert("drgate-1", ca1_);
    dir_.Write("tls/tls.crt", server1_.cert_pem);
    dir_.Write("tls/tls.key", server1_.key_pem);
    dir_.Write("tls/client-ca.crt", ca1_.cert_pem);
    dir_.Write("password", "s3cret\n");
  }

  void Start(const TlsOptions& o, std::vector<std::string> sim_args = {}) {
    sim_ = std::make_unique<Sim>(dir_, std::move(sim_args));
    // Relative paths: resolved against the config's folder.
    std::string yaml =
        "registry: {path: state/drgate.db}\n"
        "shutdown_grace: 2s\n"
        "tracking: {poll_interval: 300ms, max_backoff: 1s}\n"
        "grpc:\n"
        "  tls:\n"
        "    cert_file: tls/tls.crt\n"
        "    key_file: tls/tls.key\n"
        "    reload_interval: 1s\n";
    if (o.mutual) yaml += "    client_ca_file: tls/client-ca.crt\n";
    if (!o.require_client_cert.empty()) {
      yaml += "    require_client_cert: " + o.require_client_cert + "\n";
    }
    if (o.tokens.empty()) {
      yaml += "auth: {mode: insecure}\n";
    } else {
      dir_.Write("tokens.yaml", o.tokens);
      yaml += "auth: {mode: tokens, tokens_file: tokens.yaml}\n";
    }
    yaml += "commcells:\n" + sim_->CommCellYaml("cs1", "    request_timeout: 10s\n");
    drgate_ = std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml));
  }

  // A channel of its own (local subchannel pool: never shares a connection with another one).
  std::shared_ptr<grpc::Channel> Channel(std::shared_ptr<grpc::ChannelCredentials> creds) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(drgate_->grpc_address(), creds, args);
  }
  std::shared_ptr<grpc::Channel> TlsChannel(const Issued& trusted, const Issued* client = nullptr) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = trusted.cert_pem;
    if (client != nullptr) {
      o.pem_cert_chain = client->cert_pem;
      o.pem_private_key = client->key_pem;
    }
    return Channel(grpc::SslCredentials(o));
  }

  static grpc::Status ListCommCells(const std::shared_ptr<grpc::Channel>& channel,
                                    v1::ListCommCellsResponse* out = nullptr) {
    v1::ListCommCellsResponse ignored;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    return v1::DrBackupService::NewStub(channel)->ListCommCells(&ctx, v1::ListCommCellsRequest(),
                                                                out ? out : &ignored);
  }

  // Replaces a file the way a Kubernetes secret update does: never a half-written file.
  void Replace(const std::string& name, const std::string& content) {
    const std::string tmp = dir_.Write(name + ".new", content);
    std::filesystem::rename(tmp, dir_.File(name));
  }

  TempDir dir_;
  Issued ca1_, ca2_, server1_;
  std::unique_ptr<Sim> sim_;
  std::unique_ptr<Drgate> drgate_;
};

// (a) TLS only.
TEST_F(TlsTest, TlsClientTrustingTheCaCanCall) {
  Start({});
  v1::ListCommCellsResponse resp;
  grpc::Status s = ListCommCells(TlsChannel(ca1_), &resp);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  ASSERT_EQ(resp.commcells_size(), 1);
  // A client certificate is not asked for, and not needed.
  EXPECT_TRUE(ListCommCells(TlsChannel(ca1_, nullptr)).ok());
}

TEST_F(TlsTest, PlaintextClientCannotCall) {
  Start({});
  grpc::Status s = ListCommCells(Channel(grpc::InsecureChannelCredentials()));
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(TlsTest, ClientTrustingAnotherCaCannotCall) {
  Start({});
  grpc::Status s = ListCommCells(TlsChannel(ca2_));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

// (b) Mutual TLS.
TEST_F(TlsTest, MutualTlsRequiresACertificateFromTheClientCa) {
  Start({.mutual = true, .require_client_cert = "", .tokens = ""});
  const Issued permitted = ClientCert("ops-cli", ca1_, "DNS:ops.example.com");
  const Issued foreign = ClientCert("intruder", ca2_, "DNS:ops.example.com");

  grpc::Status none = ListCommCells(TlsChannel(ca1_));
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAVAILABLE) << none.error_message();
  grpc::Status other = ListCommCells(TlsChannel(ca1_, &foreign));
  EXPECT_EQ(other.error_code(), grpc::StatusCode::UNAVAILABLE) << other.error_message();
  grpc::Status plain = ListCommCells(Channel(grpc::InsecureChannelCredentials()));
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE) << plain.error_message();

  grpc::Status ok = ListCommCells(TlsChannel(ca1_, &permitted));
  EXPECT_TRUE(ok.ok()) << ok.error_code() << " " << ok.error_message();
}

TEST_F(TlsTest, MutualTlsCallerIdentityComesFromTheCertificate) {
  // Short jobs: each trigger below starts a new one.
  Start({.mutual = true, .require_client_cert = "", .tokens = ""}, {"--job-duration-ms", "50"});
  const Issued uri = ClientCert("cn-only-fallback", ca1_,
                                "DNS:backup-cron.example.com,URI:spiffe://example.com/backup-cron");
  const Issued dns = ClientCert("cn-only-fallback", ca1_, "DNS:ops.example.com");
  const Issued cn = ClientCert("ops-cli", ca1_);
  for (const auto& [client, want] :
       {std::pair{&uri, "spiffe://example.com/backup-cron"}, std::pair{&dns, "ops.example.com"},
        std::pair{&cn, "ops-cli"}}) {
    v1::TriggerBackupRequest req;
    req.set_commcell("cs1");
    req.set_backup_type(v1::BACKUP_TYPE_FULL);
    v1::TriggerBackupResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    grpc::Status s =
        v1::DrBackupService::NewStub(TlsChannel(ca1_, client))->TriggerBackup(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.job().requested_by(), want);
    std::this_thread::sleep_for(300ms);  // the job ends before the next trigger
  }
}

// With mutual TLS and auth.mode tokens, a client certificate listed in the tokens file stands
// for its entry: identity, roles and CommCells, as a bearer token would.
TEST_F(TlsTest, ClientCertificateIdentityMapsToRolesThroughTheTokensFile) {
  const std::string token = "cert-test-operator-token-0123456789";
  Start({.mutual = true,
         .require_client_cert = "",
         .tokens = "tokens:\n"
                   "  - certificate: spiffe://example.com/upgrader\n"
                   "    identity: upgrader\n"
                   "    roles: [operator]\n"
                   "  - certificate: dashboards.example.com\n"
                   "    identity: dashboards\n"
                   "    roles: [viewer]\n"
                   "  - sha256: " +
                   Sha256Hex(token) +
                   "\n"
                   "    identity: runbook\n"
                   "    roles: [operator]\n"},
        {"--job-duration-ms", "50"});
  const Issued op = ClientCert("x", ca1_, "URI:spiffe://example.com/upgrader");
  const Issued viewer = ClientCert("x", ca1_, "DNS:dashboards.example.com");
  const Issued unknown = ClientCert("stranger", ca1_);

  auto trigger = [&](const Issued& client, const std::string& bearer,
                     v1::TriggerBackupResponse* resp) {
    v1::TriggerBackupRequest req;
    req.set_commcell("cs1");
    req.set_backup_type(v1::BACKUP_TYPE_FULL);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    if (!bearer.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer);
    return v1::DrBackupService::NewStub(TlsChannel(ca1_, &client))->TriggerBackup(&ctx, req, resp);
  };

  v1::TriggerBackupResponse resp;
  grpc::Status s = trigger(op, "", &resp);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(resp.job().requested_by(), "upgrader");
  std::this_thread::sleep_for(300ms);  // the job ends before the next trigger

  // The viewer's certificate may read but not trigger.
  EXPECT_TRUE(ListCommCells(TlsChannel(ca1_, &viewer)).ok());
  s = trigger(viewer, "", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_EQ(ErrorInfoOf(s).reason(), "PERMISSION_DENIED");

  // A certificate from the trusted CA that the tokens file does not list is not a caller.
  s = ListCommCells(TlsChannel(ca1_, &unknown));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_EQ(ErrorInfoOf(s).reason(), "UNKNOWN_CERTIFICATE");
  EXPECT_NE(s.error_message().find("\"stranger\""), std::string::npos) << s.error_message();

  // A bearer token decides when sent: a valid one works over any permitted certificate, a wrong
  // one fails even with the operator's certificate.
  s = trigger(unknown, token, &resp);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(resp.job().requested_by(), "runbook");
  s = trigger(op, "not-the-token", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_EQ(ErrorInfoOf(s).reason(), "INVALID_TOKEN");
}

TEST_F(TlsTest, OptionalClientCertificate) {
  Start({.mutual = true, .require_client_cert = "false", .tokens = ""});
  const Issued permitted = ClientCert("ops-cli", ca1_);
  const Issued foreign = ClientCert("intruder", ca2_);
  EXPECT_TRUE(ListCommCells(TlsChannel(ca1_)).ok());
  EXPECT_TRUE(ListCommCells(TlsChannel(ca1_, &permitted)).ok());
  // A certificate that is sent is verified.
  EXPECT_EQ(ListCommCells(TlsChannel(ca1_, &foreign)).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// (c) Rotation: new connections get the new certificate; open ones stay up.
TEST_F(TlsTest, RotatedCertificateIsUsedWithoutDroppingOpenConnections) {
  Start({}, {"--job-duration-ms", "120000"});
  auto old_channel = TlsChannel(ca1_);
  ASSERT_TRUE(ListCommCells(old_channel).ok());

  // An open WatchJob stream on that connection, started before the rotation.
  auto stub = v1::DrBackupService::NewStub(old_channel);
  v1::TriggerBackupResponse trigger;
  {
    v1::TriggerBackupRequest req;
    req.set_commcell("cs1");
    req.set_backup_type(v1::BACKUP_TYPE_FULL);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    grpc::Status s = stub->TriggerBackup(&ctx, req, &trigger);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  const std::string job_id = trigger.job().job_id();
  grpc::ClientContext watch_ctx;
  watch_ctx.set_deadline(std::chrono::system_clock::now() + 60s);
  v1::WatchJobRequest watch_req;
  watch_req.set_commcell("cs1");
  watch_req.set_job_id(job_id);
  auto watch = stub->WatchJob(&watch_ctx, watch_req);
  v1::Job first;
  ASSERT_TRUE(watch->Read(&first));

  // Rotate to a certificate from another CA, with a new serial and CN.
  const Issued server2 = ServerCert("drgate-2", ca2_);
  Replace("tls/tls.key", server2.key_pem);
  Replace("tls/tls.crt", server2.cert_pem);

  // A new connection trusting only CA 2 gets through once drgate re-read the files (1 s).
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  grpc::Status s;
  for (;;) {
    std::this_thread::sleep_for(500ms);
    s = ListCommCells(TlsChannel(ca2_));
    if (s.ok() || std::chrono::steady_clock::now() > deadline) break;
  }
  ASSERT_TRUE(s.ok()) << "the rotated certificate was not picked up: " << s.error_message();
  // ... and one trusting only CA 1 no longer does.
  EXPECT_EQ(ListCommCells(TlsChannel(ca1_)).error_code(), grpc::StatusCode::UNAVAILABLE);

  // The connection made before the rotation is still up: it cannot have reconnected, since
  // it trusts only CA 1.
  grpc::Status old = ListCommCells(old_channel);
  EXPECT_TRUE(old.ok()) << old.error_message();
  EXPECT_EQ(old_channel->GetState(false), GRPC_CHANNEL_READY);

  // The stream opened before the rotation still delivers the job's end.
  sim_->ForceJob(job_id, {{"status", "Failed"}, {"pendingReason", "disk quota exceeded"}});
  v1::Job last = first;
  v1::Job job;
  while (watch->Read(&job)) last = job;
  grpc::Status end = watch->Finish();
  EXPECT_TRUE(end.ok()) << end.error_code() << " " << end.error_message();
  EXPECT_EQ(last.state(), v1::JOB_STATE_FAILED);
}

}  // namespace
}  // namespace drgate::testing
