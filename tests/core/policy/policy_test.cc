// Upstream fault policies of the CommServe client: back-off, circuit breaker, retries, deadline,
// bounded queue, response size. Deterministic: ManualClock, FixedRandom, and a scheduler that
// records back-offs and runs them at once.

#include "core/commserv/policy.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <future>
#include <thread>

#include "core/commserv/session.h"
#include "tests/fakes/fake_scheduler.h"
#include "tests/fakes/fake_transport.h"
#include "tests/fakes/manual_clock.h"
#include "tests/fakes/metric_value.h"

namespace drgate::commserv {
namespace {

using drgate::testing::EndsWith;
using drgate::testing::FakeScheduler;
using drgate::testing::FakeTransport;
using drgate::testing::FixedRandom;
using drgate::testing::JsonResponse;
using drgate::testing::ManualClock;
using std::chrono::milliseconds;

// ---- FullJitterBackoff ----

TEST(FullJitterBackoffTest, DrawsBelowADoublingCeilingCappedByMaxBackoff) {
  RetryPolicy p{5, milliseconds(100), milliseconds(1000)};
  FixedRandom half({0.5});
  EXPECT_EQ(FullJitterBackoff(p, 1, half), milliseconds(50));
  EXPECT_EQ(FullJitterBackoff(p, 2, half), milliseconds(100));
  EXPECT_EQ(FullJitterBackoff(p, 3, half), milliseconds(200));
  EXPECT_EQ(FullJitterBackoff(p, 4, half), milliseconds(400));
  EXPECT_EQ(FullJitterBackoff(p, 5, half), milliseconds(500));   // ceiling 1000 (capped)
  EXPECT_EQ(FullJitterBackoff(p, 60, half), milliseconds(500));  // no overflow
}

TEST(FullJitterBackoffTest, FullRangeFromZeroToTheCeiling) {
  RetryPolicy p{5, milliseconds(100), milliseconds(1000)};
  FixedRandom low({0.0});
  FixedRandom high({0.999});
  EXPECT_EQ(FullJitterBackoff(p, 3, low), milliseconds(0));
  EXPECT_EQ(FullJitterBackoff(p, 3, high), milliseconds(399));
}

TEST(FullJitterBackoffTest, SeededDefaultRandomRepeatsItself) {
  RetryPolicy p{5, milliseconds(100), milliseconds(10000)};
  DefaultRandom a(42), b(42);
  for (int retry = 1; retry <= 5; ++retry) {
    EXPECT_EQ(FullJitterBackoff(p, retry, a), FullJitterBackoff(p, retry, b));
  }
}

// ---- CircuitBreaker ----

class CircuitBreakerTest : public ::testing::Test {
 protected:
  CircuitBreakerTest() {
    breaker_.set_observer([this](bool open) { transitions_.push_back(open); });
  }
  CircuitBreaker::Ticket Admit() {
    auto t = breaker_.Admit("cs1");
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : CircuitBreaker::Ticket{};
  }
  void Fail(int n) {
    for (int i = 0; i < n; ++i) breaker_.OnFailure(Admit());
  }

  ManualClock clock_;
  CircuitBreaker breaker_{CircuitBreakerPolicy{3, milliseconds(10000)}, clock_};
  std::vector<bool> transitions_;
};

TEST_F(CircuitBreakerTest, OpensAfterThresholdConsecutiveFailures) {
  Fail(2);
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kClosed);
  Fail(1);
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kOpen);
  EXPECT_EQ(transitions_, std::vector<bool>{true});
}

TEST_F(CircuitBreakerTest, ASuccessResetsTheCount) {
  Fail(2);
  breaker_.OnSuccess(Admit());
  Fail(2);
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kClosed);
}

TEST_F(CircuitBreakerTest, OpenFailsFastWithTheRemainingOpenTime) {
  Fail(3);
  clock_.Advance(std::chrono::milliseconds(2500));
  auto t = breaker_.Admit("cs1");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(t.status().reason(), "CIRCUIT_OPEN");
  EXPECT_EQ(t.status().metadata().at("retry_after_ms"), "7500");
  EXPECT_EQ(t.status().metadata().at("request_sent"), "false");
  EXPECT_NE(t.status().message().find("cs1"), std::string::npos);
}

TEST_F(CircuitBreakerTest, HalfOpenLetsOneProbeThroughAndItsSuccessCloses) {
  Fail(3);
  clock_.Advance(std::chrono::seconds(10));
  auto probe = Admit();
  EXPECT_TRUE(probe.probe);
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kHalfOpen);
  auto second = breaker_.Admit("cs1");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().reason(), "CIRCUIT_OPEN");
  breaker_.OnSuccess(probe);
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(transitions_, (std::vector<bool>{true, false}));
  EXPECT_TRUE(breaker_.Admit("cs1").ok());
}

TEST_F(CircuitBreakerTest, AFailedProbeOpensForAnotherFullPeriod) {
  Fail(3);
  clock_.Advance(std::chrono::seconds(10));
  breaker_.OnFailure(Admit());
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kOpen);
  auto t = breaker_.Admit("cs1");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().metadata().at("retry_after_ms"), "10000");
  EXPECT_EQ(transitions_, std::vector<bool>{true});  // still open: no second "opened"
}

TEST_F(CircuitBreakerTest, AProbeCutShortByItsCallerMakesRoomForTheNext) {
  Fail(3);
  clock_.Advance(std::chrono::seconds(10));
  breaker_.OnNeutral(Admit());
  auto next = Admit();
  EXPECT_TRUE(next.probe);
}

TEST_F(CircuitBreakerTest, LateAnswersFromBeforeTheOpeningChangeNothing) {
  auto early = Admit();
  Fail(3);
  clock_.Advance(std::chrono::seconds(10));
  auto probe = Admit();
  breaker_.OnSuccess(early);  // admitted while closed: stale
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kHalfOpen);
  breaker_.OnFailure(probe);
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kOpen);
}

// ---- SessionClient policies ----

// Scripted answers per request: login always works; other requests take the next scripted
// answer for their endpoint suffix ("DRBackup", "Job?...", "Job/2141").
class PolicySessionTest : public ::testing::Test {
 protected:
  using Answer = std::function<StatusOr<HttpResponse>(const HttpRequest&)>;

  void Script(const std::string& suffix, std::vector<Answer> answers) {
    std::lock_guard lock(mu_);
    for (auto& a : answers) script_[suffix].push_back(std::move(a));
  }
  StatusOr<HttpResponse> Handle(const HttpRequest& r) {
    if (EndsWith(r.target, "/Login")) {
      return JsonResponse(200, R"({"token":"QSDK t1","userName":"admin"})");
    }
    Answer next;
    {
      std::lock_guard lock(mu_);
      for (auto& [suffix, answers] : script_) {
        if (r.target.find(suffix) != std::string::npos && !answers.empty()) {
          next = std::move(answers.front());
          answers.pop_front();
          break;
        }
      }
    }
    if (next) return next(r);
    if (r.target.find("DRBackup") != std::string::npos) {
      return JsonResponse(200, R"({"taskId":433,"jobIds":["2141"]})");
    }
    return JsonResponse(200, R"({"totalRecordsWithoutPaging":0,"jobs":[]})");
  }

  std::shared_ptr<SessionClient> Client(ClientPolicy policy = {}) {
    auto transport =
        std::make_unique<FakeTransport>(pool_, [this](const HttpRequest& r) { return Handle(r); });
    transport_ = transport.get();
    SessionOptions o;
    o.commcell = "cs1";
    o.endpoint = *ParseEndpoint("https://cs1.example.com/commandcenter/api");
    o.username = "admin";
    o.password = Secret{"pw"};
    o.device_id = "drgate-cs1";
    o.policy = policy;
    metrics_.RegisterCommCell("cs1");
    return SessionClient::Create(std::move(o), std::move(transport), metrics_, clock_, scheduler_,
                                 random_);
  }
  static ClientPolicy Policy(int max_attempts, int failure_threshold = 100) {
    ClientPolicy p;
    p.retry = {max_attempts, milliseconds(100), milliseconds(1000)};
    p.circuit_breaker = {failure_threshold, milliseconds(30000)};
    return p;
  }

  StatusOr<DrBackupResult> Trigger(SessionClient& c, std::optional<TimePoint> deadline = {}) {
    std::promise<StatusOr<DrBackupResult>> p;
    DrBackupRequest r;
    r.deadline = deadline;
    c.TriggerDrBackup(r, [&p](StatusOr<DrBackupResult> res) { p.set_value(std::move(res)); });
    return p.get_future().get();
  }
  StatusOr<std::vector<JobSummary>> List(SessionClient& c) {
    std::promise<StatusOr<std::vector<JobSummary>>> p;
    c.ListDrJobs(std::chrono::hours(1),
                 [&p](StatusOr<std::vector<JobSummary>> res) { p.set_value(std::move(res)); });
    return p.get_future().get();
  }
  // Requests whose target contains `part`.
  int Count(const std::string& part) {
    int n = 0;
    for (const auto& r : transport_->requests()) n += r.target.find(part) != std::string::npos;
    return n;
  }
  double Metric(const std::string& name, const std::map<std::string, std::string>& labels) {
    return drgate::testing::MetricValue(registry_, name, labels);
  }

  static StatusOr<HttpResponse> TransportError(const std::string& phase, bool sent,
                                               Reason reason = Reason::kUpstreamUnreachable,
                                               const std::string& detail = "Connection reset") {
    return Status(StatusCode::kUnavailable, phase + ": " + detail, reason)
        .With("phase", phase)
        .With("request_sent", sent ? "true" : "false");
  }
  static Answer Fails(const std::string& phase, bool sent,
                      Reason reason = Reason::kUpstreamUnreachable) {
    return [=](const HttpRequest&) { return TransportError(phase, sent, reason); };
  }
  static Answer Http(int status, std::string body,
                     std::map<std::string, std::string> headers = {}) {
    return [=](const HttpRequest&) {
      HttpResponse r = JsonResponse(status, body);
      r.headers = headers;
      return StatusOr<HttpResponse>(r);
    };
  }

  ThreadPool pool_{2};
  std::shared_ptr<FakeScheduler> scheduler_ = std::make_shared<FakeScheduler>(pool_);
  std::shared_ptr<FixedRandom> random_ = std::make_shared<FixedRandom>(std::vector<double>{0.5});
  prometheus::Registry registry_;
  Metrics metrics_{registry_};
  ManualClock clock_;
  FakeTransport* transport_ = nullptr;
  std::mutex mu_;
  std::map<std::string, std::deque<Answer>> script_;  // guarded by mu_
};

TEST_F(PolicySessionTest, ReadIsRetriedAfterA5xxWithJitteredBackoff) {
  auto c = Client(Policy(3));
  Script("Job?", {Http(503, "<title>busy</title>"), Http(502, "<title>busy</title>")});
  auto r = List(*c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Count("Job?"), 3);
  // Full jitter with draw 0.5: 0.5 x 100 ms, then 0.5 x 200 ms.
  EXPECT_EQ(scheduler_->backoffs(),
            (std::vector<milliseconds>{milliseconds(50), milliseconds(100)}));
  EXPECT_EQ(
      Metric("drgate_commserv_retries_total", {{"commcell", "cs1"}, {"endpoint", "job_list"}}), 2);
}

TEST_F(PolicySessionTest, ReadIsRetriedAfterAResetWhileReading) {
  auto c = Client(Policy(3));
  Script("Job?", {Fails("read", /*sent=*/true)});
  ASSERT_TRUE(List(*c).ok());
  EXPECT_EQ(Count("Job?"), 2);
}

TEST_F(PolicySessionTest, ReadGivesUpAfterMaxAttemptsWithTheLastError) {
  auto c = Client(Policy(3));
  Script("Job?", {Http(500, "<title>a</title>"), Http(500, "<title>b</title>"),
                  Http(500, "<title>c</title>"), Http(500, "<title>d</title>")});
  auto r = List(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().reason(), "UPSTREAM_HTTP_5XX");
  EXPECT_NE(r.status().message().find("c"), std::string::npos);
  EXPECT_EQ(Count("Job?"), 3);
}

TEST_F(PolicySessionTest, ReadWaitsAtLeastRetryAfterOn429) {
  auto c = Client(Policy(3));
  Script("Job?", {Http(429, "slow down", {{"retry-after", "2"}})});
  ASSERT_TRUE(List(*c).ok());
  EXPECT_EQ(scheduler_->backoffs(), std::vector<milliseconds>{milliseconds(2000)});
}

TEST_F(PolicySessionTest, WriteThatNeverLeftIsRetried) {
  auto c = Client(Policy(3));
  Script("DRBackup",
         {Fails("connect", false), Fails("handshake", false, Reason::kUpstreamTlsError)});
  auto r = Trigger(*c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->job_ids, std::vector<std::string>{"2141"});
  EXPECT_EQ(Count("DRBackup"), 3);
  EXPECT_EQ(
      Metric("drgate_commserv_retries_total", {{"commcell", "cs1"}, {"endpoint", "drbackup"}}), 2);
}

TEST_F(PolicySessionTest, WriteWhoseBytesMayHaveBeenSentIsNeverRetried) {
  auto c = Client(Policy(3));
  Script("DRBackup", {Fails("read", true)});
  auto r = Trigger(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "UPSTREAM_UNREACHABLE");
  EXPECT_EQ(r.status().metadata().at("request_sent"), "true");
  EXPECT_EQ(Count("DRBackup"), 1);
  EXPECT_EQ(
      Metric("drgate_commserv_retries_total", {{"commcell", "cs1"}, {"endpoint", "drbackup"}}), 0);
}

TEST_F(PolicySessionTest, WriteAnsweredWith5xxIsNeverRetried) {
  auto c = Client(Policy(3));
  Script("DRBackup", {Http(500, "<html><title>Down</title></html>")});
  auto r = Trigger(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "UPSTREAM_HTTP_5XX");
  EXPECT_EQ(Count("DRBackup"), 1);
}

TEST_F(PolicySessionTest, WriteAnsweredWith429IsNotRetriedButCarriesRetryAfterMs) {
  auto c = Client(Policy(3));
  Script("DRBackup", {Http(429, "slow down", {{"retry-after", "3"}})});
  auto r = Trigger(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().reason(), "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(r.status().metadata().at("retry_after_ms"), "3000");
  EXPECT_EQ(Count("DRBackup"), 1);
}

TEST_F(PolicySessionTest, CertificateVerificationFailureIsNotRetried) {
  auto c = Client(Policy(3));
  Script("DRBackup", {[](const HttpRequest&) -> StatusOr<HttpResponse> {
           return TransportError("handshake", false, Reason::kUpstreamCertificateRejected,
                                 "certificate verify failed (certificate has expired)");
         }});
  auto r = Trigger(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "UPSTREAM_TLS_ERROR");
  EXPECT_EQ(Count("DRBackup"), 1);
}

TEST_F(PolicySessionTest, OversizedAnswerIsNotRetriedAndLeavesTheOutcomeOpen) {
  auto c = Client(Policy(3));
  Script("DRBackup", {Fails("read", true, Reason::kUpstreamResponseTooLarge)});
  auto r = Trigger(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "UPSTREAM_RESPONSE_TOO_LARGE");
  EXPECT_EQ(r.status().metadata().at("request_sent"), "true");
  EXPECT_EQ(Count("DRBackup"), 1);
}

TEST_F(PolicySessionTest, Malformed2xxToDrBackupLeavesTheOutcomeOpen) {
  auto c = Client(Policy(3));
  Script("DRBackup", {Http(200, R"({"taskId": 4, "jobIds": ["21)")});
  auto r = Trigger(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_EQ(r.status().reason(), "MALFORMED_UPSTREAM_RESPONSE");
  EXPECT_EQ(r.status().metadata().at("request_sent"), "true");
}

TEST_F(PolicySessionTest, BreakerOpensFailsFastAndRecoversThroughAProbe) {
  auto c = Client(Policy(1, /*failure_threshold=*/2));
  Script("Job?", {Http(503, "x"), Fails("connect", false)});
  EXPECT_FALSE(List(*c).ok());
  EXPECT_EQ(Metric("drgate_commserv_circuit_open", {{"commcell", "cs1"}}), 0);
  EXPECT_FALSE(List(*c).ok());
  EXPECT_EQ(c->circuit_state(), CircuitBreaker::State::kOpen);
  EXPECT_EQ(Metric("drgate_commserv_circuit_open", {{"commcell", "cs1"}}), 1);

  const int sent = static_cast<int>(transport_->requests().size());
  clock_.Advance(std::chrono::seconds(12));
  auto r = Trigger(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().reason(), "CIRCUIT_OPEN");
  EXPECT_EQ(r.status().metadata().at("retry_after_ms"), "18000");
  EXPECT_EQ(transport_->requests().size(), static_cast<size_t>(sent));  // nothing sent
  EXPECT_EQ(
      Metric("drgate_commserv_rejected_total", {{"commcell", "cs1"}, {"reason", "circuit_open"}}),
      1);

  clock_.Advance(std::chrono::seconds(18));
  ASSERT_TRUE(Trigger(*c).ok());  // the probe
  EXPECT_EQ(c->circuit_state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(Metric("drgate_commserv_circuit_open", {{"commcell", "cs1"}}), 0);
}

TEST_F(PolicySessionTest, AnswersBelow500KeepTheBreakerClosed) {
  auto c = Client(Policy(1, /*failure_threshold=*/2));
  Script("DRBackup", {Http(200, R"({"errorCode":2,"errorMessage":"no"})"), Http(404, "nope"),
                      Http(200, R"({"errorCode":2,"errorMessage":"no"})")});
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(Trigger(*c).ok());
  EXPECT_EQ(c->circuit_state(), CircuitBreaker::State::kClosed);
}

TEST_F(PolicySessionTest, FullQueueFailsFastWithResourceExhausted) {
  ClientPolicy p = Policy(1);
  p.max_pending_requests = 1;
  auto c = Client(p);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Script("Job?", {[released](const HttpRequest&) -> StatusOr<HttpResponse> {
           released.wait();
           return JsonResponse(200, R"({"totalRecordsWithoutPaging":0,"jobs":[]})");
         }});
  std::promise<StatusOr<std::vector<JobSummary>>> first;
  c->ListDrJobs(std::chrono::hours(1),
                [&first](StatusOr<std::vector<JobSummary>> r) { first.set_value(std::move(r)); });
  auto second = Trigger(*c);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(second.status().reason(), "UPSTREAM_QUEUE_FULL");
  EXPECT_EQ(Count("DRBackup"), 0);
  EXPECT_EQ(
      Metric("drgate_commserv_rejected_total", {{"commcell", "cs1"}, {"reason", "queue_full"}}), 1);
  release.set_value();
  EXPECT_TRUE(first.get_future().get().ok());
  EXPECT_TRUE(Trigger(*c).ok());  // room again
}

TEST_F(PolicySessionTest, PassedCallerDeadlineSendsNothing) {
  auto c = Client(Policy(3));
  auto r = Trigger(*c, clock_.Now() - milliseconds(1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(r.status().reason(), "DEADLINE_EXCEEDED");
  EXPECT_EQ(r.status().metadata().at("request_sent"), "false");
  EXPECT_TRUE(transport_->requests().empty());
}

TEST_F(PolicySessionTest, CallerDeadlineCapsTheRequestDeadline) {
  ClientPolicy p = Policy(1);
  p.request_timeout = std::chrono::seconds(60);
  auto c = Client(p);
  // The ManualClock stands still: the caller has exactly 2 s left when the call starts, and
  // the request's deadline is exactly 2 s ahead on the clock's monotonic time.
  ASSERT_TRUE(Trigger(*c, clock_.Now() + std::chrono::seconds(2)).ok());
  int posts = 0;
  for (const auto& req : transport_->requests()) {
    if (req.target.find("DRBackup") == std::string::npos) continue;
    ++posts;
    ASSERT_TRUE(req.deadline.has_value());
    EXPECT_EQ(*req.deadline, clock_.Monotonic() + std::chrono::seconds(2));
  }
  EXPECT_EQ(posts, 1);
}

TEST_F(PolicySessionTest, RequestTimeoutCapsTheDeadlineWithoutACaller) {
  ClientPolicy p = Policy(1);
  p.request_timeout = std::chrono::seconds(5);
  auto c = Client(p);
  ASSERT_TRUE(List(*c).ok());
  const auto req = transport_->requests().back();
  ASSERT_TRUE(req.deadline.has_value());
  EXPECT_EQ(*req.deadline, clock_.Monotonic() + std::chrono::seconds(5));
}

TEST_F(PolicySessionTest, TimeoutAtTheCallersDeadlineIsDeadlineExceededAndNotABreakerFailure) {
  auto c = Client(Policy(3, /*failure_threshold=*/1));
  ASSERT_TRUE(List(*c).ok());  // logged in
  Script("DRBackup", {[this](const HttpRequest& r) -> StatusOr<HttpResponse> {
           // As the transport does: the read phase ends at the request's deadline.
           clock_.Advance(*r.deadline - clock_.Monotonic());
           return TransportError("read", true, Reason::kUpstreamTimeout, "timed out after 200 ms");
         }});
  auto r = Trigger(*c, clock_.Now() + milliseconds(200));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(r.status().reason(), "DEADLINE_EXCEEDED");
  EXPECT_EQ(r.status().metadata().at("request_sent"), "true");
  EXPECT_EQ(r.status().metadata().at("phase"), "read");
  EXPECT_EQ(c->circuit_state(), CircuitBreaker::State::kClosed);
}

TEST_F(PolicySessionTest, RetriesStopWhenTheBackoffWouldPassTheDeadline) {
  ClientPolicy p = Policy(5);
  p.retry = {5, milliseconds(10000), milliseconds(10000)};  // 0.5 x 10 s = 5 s per back-off
  p.request_timeout = std::chrono::seconds(2);
  auto c = Client(p);
  Script("Job?", {Http(503, "x"), Http(503, "y")});
  auto r = List(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().reason(), "UPSTREAM_HTTP_5XX");
  EXPECT_EQ(Count("Job?"), 1);
  EXPECT_TRUE(scheduler_->backoffs().empty());
}

}  // namespace
}  // namespace drgate::commserv
