// Several drgate replicas on one PostgreSQL registry (README, "Several replicas on PostgreSQL"):
// a real PostgreSQL server (tests/fakes/postgres_server.h), a real commserv-sim and two real
// drgate processes, all on loopback ports chosen at run time.
//
// - One request_id sent to both replicas at once: one upstream POST, one job for every caller.
// - A job triggered on one replica is visible and watchable on the other.
// - Killing the leader: the other replica takes tracking over within the lease, and the job that
//   was running reaches its terminal state in the registry.

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "tests/fakes/postgres_server.h"
#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using namespace std::chrono_literals;

constexpr auto kLease = 2s;

::testing::AssertionResult Ok(const grpc::Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "code " << s.error_code() << " reason "
                                       << ErrorInfoOf(s).reason() << ": " << s.error_message();
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override { pg_.Exec("CREATE DATABASE drgate"); }

  void StartSim(int job_duration_ms) {
    sim_ = std::make_unique<Sim>(
        dir_, std::vector<std::string>{"--job-duration-ms", std::to_string(job_duration_ms)});
  }
  std::unique_ptr<Drgate> StartReplica() {
    dir_.Write("password", "s3cret\n");
    const std::string yaml =
        "auth: {mode: insecure}\n"
        "registry:\n"
        "  postgres:\n"
        "    dsn: \"" +
        pg_.Dsn("drgate") +
        "\"\n"
        "    password_file: " +
        pg_.password_file() +
        "\n"
        "    pool_size: 8\n"
        "    leader_lease: 2s\n"
        "    watch_interval: 100ms\n"
        "shutdown_grace: 2s\n"
        "tracking: {poll_interval: 200ms, intent_grace: 31s, intent_give_up: 60s, "
        "probe_interval: 1h}\n"
        "commcells:\n" +
        sim_->CommCellYaml("cs1", "    request_timeout: 10s\n");
    return std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml));
  }

  static double Leader(Drgate& d) { return MetricValue(d.Metrics(), "drgate_registry_leader"); }

  static grpc::Status Trigger(Drgate& d, const std::string& request_id,
                              v1::TriggerBackupResponse* out) {
    return d.Trigger("cs1", v1::BACKUP_TYPE_FULL, request_id, out);
  }
  static grpc::Status GetJob(Drgate& d, const std::string& job_id, v1::Job* out) {
    return d.GetJob("cs1", job_id, out);
  }
  static std::vector<v1::Job> Watch(Drgate& d, const std::string& job_id, grpc::Status* end) {
    v1::WatchJobRequest req;
    req.set_commcell("cs1");
    req.set_job_id(job_id);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(30s));
    auto reader = d.stub().WatchJob(&ctx, req);
    std::vector<v1::Job> messages;
    v1::Job job;
    while (reader->Read(&job)) messages.push_back(job);
    *end = reader->Finish();
    return messages;
  }

  PostgresServer pg_;
  TempDir dir_;
  std::unique_ptr<Sim> sim_;
};

TEST_F(ReplicasTest, OneRequestIdOnTwoReplicasAtOnceSendsOnePostAndAnswersOneJob) {
  StartSim(1500);
  auto a = StartReplica();
  auto b = StartReplica();
  constexpr int kCalls = 500;

  // All 500 in flight at once, alternating between the replicas.
  struct Call {
    grpc::ClientContext ctx;
    v1::TriggerBackupRequest req;
    v1::TriggerBackupResponse resp;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Call>> calls;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<Call>();
    call->req.set_commcell("cs1");
    call->req.set_backup_type(v1::BACKUP_TYPE_FULL);
    call->req.set_request_id("upgrade-2026-11-27");
    call->ctx.set_deadline(Deadline(60s));
    Call* c = call.get();
    calls.push_back(std::move(call));
    Drgate& replica = i % 2 == 0 ? *a : *b;
    replica.stub().async()->TriggerBackup(&c->ctx, &c->req, &c->resp,
                                          [c, &mu, &cv, &done](grpc::Status s) {
                                            std::lock_guard lock(mu);
                                            c->status = std::move(s);
                                            ++done;
                                            cv.notify_all();
                                          });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 90s, [&] { return done == kCalls; })) << done << " answered";
  }

  std::set<std::string> job_ids;
  int submitted = 0;
  for (const auto& c : calls) {
    ASSERT_TRUE(Ok(c->status));
    job_ids.insert(c->resp.job().job_id());
    submitted += c->resp.deduplicated() ? 0 : 1;
  }
  EXPECT_EQ(job_ids.size(), 1u);
  EXPECT_EQ(submitted, 1);
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), 1);
  const std::string job_id = *job_ids.begin();

  // Visible and watchable on both replicas, whichever leads.
  v1::Job on_a, on_b;
  ASSERT_TRUE(Ok(GetJob(*a, job_id, &on_a)));
  ASSERT_TRUE(Ok(GetJob(*b, job_id, &on_b)));
  EXPECT_EQ(on_a.request_id(), "upgrade-2026-11-27");
  EXPECT_EQ(on_b.request_id(), "upgrade-2026-11-27");
  EXPECT_EQ(Leader(*a) + Leader(*b), 1);
  Drgate& follower = Leader(*a) == 1 ? *b : *a;
  grpc::Status end;
  std::vector<v1::Job> seen = Watch(follower, job_id, &end);
  ASSERT_TRUE(Ok(end));
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(seen.back().job_id(), job_id);
}

TEST_F(ReplicasTest, KillingTheLeaderHandsTrackingToTheOtherWithinTheLease) {
  StartSim(5000);
  auto a = StartReplica();  // the first to start takes the lease
  auto b = StartReplica();
  ASSERT_EQ(Leader(*a), 1);
  ASSERT_EQ(Leader(*b), 0);
  // Triggered on the follower, followed by the leader.
  v1::TriggerBackupResponse triggered;
  ASSERT_TRUE(Ok(Trigger(*b, "before-the-crash", &triggered)));
  const std::string job_id = triggered.job().job_id();
  v1::Job job;
  ASSERT_TRUE(Eventually(
      [&] { return GetJob(*b, job_id, &job).ok() && job.state() == v1::JOB_STATE_RUNNING; }, 10s))
      << "state " << v1::JobState_Name(job.state());
  const double follower_lists_before = MetricValue(
      b->Metrics(),
      R"(drgate_commserv_requests_total{code="200",commcell="cs1",endpoint="job_list"})");

  const auto killed = std::chrono::steady_clock::now();
  a->Kill();
  ASSERT_TRUE(Eventually([&] { return Leader(*b) == 1; }, 3 * kLease));
  const auto takeover = std::chrono::steady_clock::now() - killed;
  std::printf("takeover after SIGKILL of the leader: %lld ms (lease %lld ms)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(takeover).count()),
              static_cast<long long>(std::chrono::milliseconds(kLease).count()));
  // The lease, plus one renewal period, plus a margin for a loaded machine.
  EXPECT_LE(takeover, kLease + kLease / 3 + 1s);

  // The new leader follows the job that was running to its end.
  ASSERT_TRUE(Eventually(
      [&] { return GetJob(*b, job_id, &job).ok() && job.state() == v1::JOB_STATE_SUCCEEDED; }, 15s))
      << "state " << v1::JobState_Name(job.state());
  EXPECT_EQ(job.percent_complete(), 100);
  EXPECT_GT(MetricValue(
                b->Metrics(),
                R"(drgate_commserv_requests_total{code="200",commcell="cs1",endpoint="job_list"})"),
            follower_lists_before);
}

TEST_F(ReplicasTest, WhileTheDatabaseIsAwayCallsAreUnavailableAndNothingIsSentUpstream) {
  StartSim(60000);
  auto a = StartReplica();
  v1::TriggerBackupResponse before;
  ASSERT_TRUE(Ok(Trigger(*a, "", &before)));
  const std::string job_id = before.job().job_id();

  pg_.Stop();
  v1::TriggerBackupResponse resp;
  const grpc::Status with_id = Trigger(*a, "during-the-outage", &resp);
  const grpc::Status without_id = Trigger(*a, "", &resp);
  v1::Job job;
  const grpc::Status read = GetJob(*a, job_id, &job);
  pg_.Start();

  for (const grpc::Status& s : {with_id, without_id, read}) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_EQ(ErrorInfoOf(s).reason(), "REGISTRY_UNAVAILABLE") << s.error_message();
    EXPECT_NE(s.error_message().find("PostgreSQL registry host=127.0.0.1"), std::string::npos)
        << s.error_message();
    EXPECT_EQ(s.error_message().find(pg_.password()), std::string::npos);
  }
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), 1);  // only the trigger before the outage
  // The database is back: the same replica serves again, without a restart.
  ASSERT_TRUE(Eventually([&] { return GetJob(*a, job_id, &job).ok(); }, 10s));
  EXPECT_EQ(job.job_id(), job_id);
}

}  // namespace
}  // namespace drgate::testing
