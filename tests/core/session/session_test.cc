#include "core/commserv/session.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <future>

#include "tests/fakes/fake_scheduler.h"
#include "tests/fakes/fake_transport.h"
#include "tests/fakes/manual_clock.h"

namespace drgate::commserv {
namespace {

using drgate::testing::EndsWith;
using drgate::testing::FakeTransport;
using drgate::testing::JsonResponse;

// A scripted CommServe: tokens, a 401 for stale ones, a DR backup answer.
struct ScriptedCommServ {
  std::mutex mu;
  std::string valid_token = "QSDK first";
  int logins = 0;
  int renewals = 0;
  bool renew_works = true;
  bool login_works = true;
  int next_token = 2;

  StatusOr<HttpResponse> Handle(const HttpRequest& r) {
    std::lock_guard lock(mu);
    if (EndsWith(r.target, "/Login")) {
      ++logins;
      if (!login_works) {
        return JsonResponse(
            200, R"({"errList":[{"errLogMessage":"Invalid credentials","errorCode":5}]})");
      }
      valid_token = "QSDK t" + std::to_string(next_token++);
      return JsonResponse(200, R"({"token":")" + valid_token + R"(","userName":"admin"})");
    }
    if (EndsWith(r.target, "/RenewLoginToken")) {
      ++renewals;
      if (!renew_works) return JsonResponse(200, R"({"error":{"errorCode":5}})");
      valid_token = "QSDK r" + std::to_string(next_token++);
      return JsonResponse(200, R"({"token":")" + valid_token + R"("})");
    }
    auto it = r.headers.find("Authtoken");
    if (it == r.headers.end() || it->second != valid_token) {
      return JsonResponse(401, R"({"errorCode":5,"errorMessage":"Access denied"})");
    }
    return JsonResponse(200, R"({"taskId":433,"jobIds":["2141"]})");
  }
};

class SessionTest : public ::testing::Test {
 protected:
  std::shared_ptr<SessionClient> MakeClient(SessionOptions opts) {
    auto transport = std::make_unique<FakeTransport>(
        pool_, [this](const HttpRequest& r) { return cs_.Handle(r); });
    transport_ = transport.get();
    opts.commcell = "cs1";
    opts.endpoint = *ParseEndpoint("https://cs1.example.com/commandcenter/api");
    if (opts.device_id.empty()) opts.device_id = "drgate-cs1";
    return SessionClient::Create(std::move(opts), std::move(transport), metrics_, clock_,
                                 scheduler_);
  }
  std::shared_ptr<SessionClient> PasswordClient() {
    SessionOptions o;
    o.username = "admin";
    o.password = Secret{"pw"};
    return MakeClient(std::move(o));
  }
  StatusOr<DrBackupResult> Trigger(SessionClient& c) {
    std::promise<StatusOr<DrBackupResult>> p;
    c.TriggerDrBackup(DrBackupRequest{BackupType::kFull, false},
                      [&p](StatusOr<DrBackupResult> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
  std::vector<std::string> Targets() {
    std::vector<std::string> out;
    for (const auto& r : transport_->requests()) {
      out.push_back(r.target.substr(r.target.rfind('/') + 1));
    }
    return out;
  }

  // Declared first so it is destroyed last: answers in flight still reach live objects.
  ThreadPool pool_{2};
  std::shared_ptr<drgate::testing::FakeScheduler> scheduler_ =
      std::make_shared<drgate::testing::FakeScheduler>(pool_);
  ScriptedCommServ cs_;
  prometheus::Registry registry_;
  Metrics metrics_{registry_};
  drgate::testing::ManualClock clock_;
  FakeTransport* transport_ = nullptr;
};

TEST_F(SessionTest, LogsInOnceThenReusesTheToken) {
  auto c = PasswordClient();
  auto r1 = Trigger(*c);
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_EQ(r1->job_ids, std::vector<std::string>{"2141"});
  ASSERT_TRUE(Trigger(*c).ok());
  EXPECT_EQ(Targets(), (std::vector<std::string>{"Login", "DRBackup", "DRBackup"}));
  const auto reqs = transport_->requests();
  EXPECT_EQ(reqs[0].target, "/commandcenter/api/Login");
  // base64("pw") = "cHc=", the device id is stable.
  EXPECT_NE(reqs[0].body.find("\"cHc=\""), std::string::npos) << reqs[0].body;
  EXPECT_NE(reqs[0].body.find("drgate-cs1"), std::string::npos);
  EXPECT_EQ(reqs[1].headers.at("Authtoken"), "QSDK t2");
  EXPECT_EQ(reqs[1].target, "/commandcenter/api/CommServ/DRBackup");
  EXPECT_TRUE(c->reachability().reachable);
}

TEST_F(SessionTest, ExpiredTokenIsRenewedTransparently) {
  auto c = PasswordClient();
  ASSERT_TRUE(Trigger(*c).ok());
  {
    std::lock_guard lock(cs_.mu);
    cs_.valid_token = "QSDK rotated-elsewhere";  // ours is now stale: 401
  }
  // Renewal gives a fresh token the script accepts.
  auto r = Trigger(*c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Targets(), (std::vector<std::string>{"Login", "DRBackup", "DRBackup", "RenewLoginToken",
                                                 "DRBackup"}));
  EXPECT_EQ(cs_.renewals, 1);
}

TEST_F(SessionTest, FailedRenewalFallsBackToLogin) {
  auto c = PasswordClient();
  ASSERT_TRUE(Trigger(*c).ok());
  {
    std::lock_guard lock(cs_.mu);
    cs_.valid_token = "QSDK rotated-elsewhere";
    cs_.renew_works = false;
  }
  auto r = Trigger(*c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Targets(), (std::vector<std::string>{"Login", "DRBackup", "DRBackup", "RenewLoginToken",
                                                 "Login", "DRBackup"}));
}

TEST_F(SessionTest, WrongCredentialsAreFailedPrecondition) {
  cs_.login_works = false;
  auto c = PasswordClient();
  auto r = Trigger(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().reason(), "UPSTREAM_LOGIN_FAILED");
  EXPECT_NE(r.status().message().find("Invalid credentials"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(r.status().message().find("pw"), std::string::npos) << "no password in errors";
  EXPECT_FALSE(c->reachability().reachable);
  EXPECT_EQ(Targets(), (std::vector<std::string>{"Login"}));
}

TEST_F(SessionTest, GivenTokenGetsPrefixAndIsUsedWithoutLogin) {
  cs_.valid_token = "QSDK given";
  SessionOptions o;
  o.token = Secret{"given"};
  auto c = MakeClient(std::move(o));
  ASSERT_TRUE(Trigger(*c).ok());
  EXPECT_EQ(Targets(), (std::vector<std::string>{"DRBackup"}));
  EXPECT_EQ(transport_->requests()[0].headers.at("Authtoken"), "QSDK given");
}

TEST_F(SessionTest, RejectedGivenTokenIsFailedPrecondition) {
  cs_.valid_token = "QSDK other";
  cs_.renew_works = false;
  SessionOptions o;
  o.token = Secret{"QSDK given"};
  auto c = MakeClient(std::move(o));
  auto r = Trigger(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().reason(), "UPSTREAM_AUTH_FAILED");
  EXPECT_NE(r.status().message().find("token_file"), std::string::npos);
}

TEST_F(SessionTest, ConcurrentCallsShareOneLogin) {
  auto c = PasswordClient();
  std::vector<std::promise<StatusOr<DrBackupResult>>> ps(20);
  for (auto& p : ps) {
    c->TriggerDrBackup(DrBackupRequest{},
                       [&p](StatusOr<DrBackupResult> r) { p.set_value(std::move(r)); });
  }
  for (auto& p : ps) ASSERT_TRUE(p.get_future().get().ok());
  EXPECT_EQ(cs_.logins, 1);
}

// A transport whose requests are never answered: their callbacks wait in `held`, as they wait in
// the io_context of a drgate stopped before the CommServe answered.
class UnansweredTransport final : public HttpTransport {
 public:
  explicit UnansweredTransport(std::vector<Callback>& held) : held_(held) {}
  void Send(HttpRequest, Callback done) override { held_.push_back(std::move(done)); }

 private:
  std::vector<Callback>& held_;
};

TEST_F(SessionTest, CallsWaitingForALoginAbandonedAtShutdownDoNotKeepTheClientAlive) {
  std::vector<HttpTransport::Callback> held;
  SessionOptions o;
  o.commcell = "cs1";
  o.endpoint = *ParseEndpoint("https://cs1.example.com/commandcenter/api");
  o.device_id = "drgate-cs1";
  o.username = "admin";
  o.password = Secret{"pw"};
  auto client = SessionClient::Create(std::move(o), std::make_unique<UnansweredTransport>(held),
                                      metrics_, clock_, scheduler_);
  bool answered = false;
  // Callers hold the client in their callbacks (the orchestrator holds the CommCell, which holds
  // it): waiting for the login must not make that a cycle.
  client->TriggerDrBackup(DrBackupRequest{}, [&answered, holder = client](
                                                 StatusOr<DrBackupResult>) { answered = true; });
  client->ListDrJobs(std::chrono::hours(1),
                     [&answered](StatusOr<std::vector<JobSummary>>) { answered = true; });
  ASSERT_EQ(held.size(), 1u);  // one login, two calls waiting for its token
  std::weak_ptr<SessionClient> weak = client;
  client.reset();
  EXPECT_FALSE(weak.expired());  // the login under way holds it
  held.clear();                  // shutdown: the login is dropped unanswered
  EXPECT_TRUE(weak.expired());
  EXPECT_FALSE(answered);
}

TEST_F(SessionTest, XmlFormatSendsXml) {
  SessionOptions o;
  o.username = "admin";
  o.password = Secret{"pw"};
  o.format = WireFormat::kXml;
  auto c = MakeClient(std::move(o));
  auto r = Trigger(*c);  // the script answers JSON; content type decides the decoder
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto req = transport_->requests()[1];
  EXPECT_EQ(req.headers.at("Content-Type"), "application/xml");
  EXPECT_EQ(req.body.rfind("<TMMsg_CommcellDRBackupReq", 0), 0u) << req.body;
}

}  // namespace
}  // namespace drgate::commserv
