#include "core/jobs/tracker.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <functional>

#include "core/registry/sqlite_job_store.h"
#include "tests/fakes/fake_commserv_client.h"
#include "tests/fakes/manual_clock.h"
#include "tests/fakes/metric_value.h"

namespace drgate::jobs {
namespace {

using drgate::testing::FakeCommServClient;

using drgate::testing::MetricValue;

commserv::JobSummary Summary(const std::string& id, const std::string& status, int percent = 0,
                             int64_t start = 0, int64_t end = 0, std::string reason = "") {
  commserv::JobSummary s;
  s.job_id = id;
  s.status = status;
  s.percent_complete = percent;
  s.start_time = start;
  s.end_time = end;
  s.pending_reason = std::move(reason);
  return s;
}

class TrackerTest : public ::testing::Test {
 protected:
  ~TrackerTest() override { client_->WaitIdle(); }
  void SetUp() override {
    store_ = std::move(*SqliteJobStore::Open(":memory:"));
    metrics_.RegisterCommCell("cs1");
    options_.probe_interval = std::chrono::milliseconds(0);  // probing has a test of its own
  }
  void MakeTracker() {
    tracker_ = std::make_unique<Tracker>(std::vector<CommCell>{CommCell{"cs1", "u", client_}},
                                         *store_, metrics_, clock_, hub_, options_);
  }
  Job AddJob(const std::string& id, BackupType type = BackupType::kFull) {
    Job j;
    j.commcell = "cs1";
    j.job_id = id;
    j.backup_type = type;
    j.create_time = clock_.Now();
    j.update_time = clock_.Now();
    EXPECT_TRUE(store_->PutJobs({j}).ok());
    return j;
  }
  Job Stored(const std::string& id) { return *store_->GetJob("cs1", id); }

  std::shared_ptr<FakeCommServClient> client_ = std::make_shared<FakeCommServClient>();
  std::unique_ptr<JobStore> store_;
  prometheus::Registry registry_;
  Metrics metrics_{registry_};
  drgate::testing::ManualClock clock_;
  WatchHub hub_;
  TrackerOptions options_;
  std::unique_ptr<Tracker> tracker_;
};

TEST_F(TrackerTest, FollowsAJobFromWaitingThroughRunningToSucceeded) {
  MakeTracker();
  AddJob("2141");
  std::vector<JobState> seen;
  hub_.Subscribe("cs1", "2141", [&seen](const Job& j) { seen.push_back(j.state); });

  client_->SetJob(Summary("2141", "Waiting"));
  tracker_->RunRound();
  EXPECT_EQ(Stored("2141").state, JobState::kQueued);

  client_->SetJob(Summary("2141", "Running", 40, 1790000010));
  tracker_->RunRound();
  Job running = Stored("2141");
  EXPECT_EQ(running.state, JobState::kRunning);
  EXPECT_EQ(running.percent_complete, 40);
  EXPECT_EQ(running.start_time, TimePoint(std::chrono::seconds(1790000010)));

  client_->SetJob(Summary("2141", "Completed", 100, 1790000010, 1790000130));
  tracker_->RunRound();
  Job done = Stored("2141");
  EXPECT_EQ(done.state, JobState::kSucceeded);
  EXPECT_EQ(done.end_time, TimePoint(std::chrono::seconds(1790000130)));
  EXPECT_EQ(seen,
            (std::vector<JobState>{JobState::kQueued, JobState::kRunning, JobState::kSucceeded}));
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_jobs_finished_total",
                        {{"commcell", "cs1"}, {"backup_type", "full"}, {"state", "succeeded"}}),
            1);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_last_success_timestamp_seconds",
                        {{"commcell", "cs1"}, {"backup_type", "full"}}),
            1790000130);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_jobs_active", {{"commcell", "cs1"}}), 0);

  // A finished job is not asked about again.
  const int lists = client_->list_calls();
  tracker_->RunRound();
  EXPECT_EQ(client_->list_calls(), lists);
}

TEST_F(TrackerTest, PrunesFinishedJobsPastTheRetentionEveryTenthOfIt) {
  options_.retention = std::chrono::minutes(10);  // pruned every minute
  MakeTracker();
  auto finished = [this](const std::string& id, std::chrono::minutes ago) {
    Job j = AddJob(id);
    j.state = JobState::kSucceeded;
    j.end_time = clock_.Now() - ago;
    ASSERT_TRUE(store_->PutJobs({j}).ok());
  };
  finished("1", std::chrono::minutes(9));
  finished("2", std::chrono::minutes(11));
  AddJob("3");  // still running: never pruned
  tracker_->RunRound();
  EXPECT_TRUE(store_->GetJob("cs1", "1").ok());
  EXPECT_EQ(store_->GetJob("cs1", "2").status().code(), StatusCode::kNotFound);

  // Less than a tenth of the retention later nothing is pruned, even what has become too old.
  clock_.Advance(std::chrono::seconds(59));
  finished("4", std::chrono::minutes(30));
  tracker_->RunRound();
  EXPECT_TRUE(store_->GetJob("cs1", "4").ok());

  clock_.Advance(std::chrono::seconds(2));
  tracker_->RunRound();
  EXPECT_EQ(store_->GetJob("cs1", "1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetJob("cs1", "4").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetJob("cs1", "3").ok());
}

TEST_F(TrackerTest, FailedJobCarriesTheCommServesReason) {
  MakeTracker();
  AddJob("7");
  client_->SetJob(
      Summary("7", "Failed", 10, 1790000001, 1790000002, "Disk full on the DR destination"));
  tracker_->RunRound();
  EXPECT_EQ(Stored("7").state, JobState::kFailed);
  EXPECT_EQ(Stored("7").failure_reason, "Disk full on the DR destination");
}

TEST_F(TrackerTest, CompletedWithErrorsIsSucceededWithErrors) {
  MakeTracker();
  AddJob("8");
  client_->SetJob(Summary("8", "Completed w/ one or more errors", 100, 1790000001, 1790000002));
  tracker_->RunRound();
  EXPECT_EQ(Stored("8").state, JobState::kSucceededWithErrors);
  EXPECT_EQ(Stored("8").commserv_status, "Completed w/ one or more errors");
}

TEST_F(TrackerTest, AJobNotShownYetIsRetriedNotFailed) {
  MakeTracker();
  AddJob("9");
  tracker_->RunRound();
  EXPECT_EQ(Stored("9").state, JobState::kSubmitted);
  EXPECT_EQ(client_->get_calls(), 1);  // asked individually, once
  clock_.Advance(options_.unseen_grace + std::chrono::seconds(1));
  tracker_->RunRound();
  EXPECT_EQ(Stored("9").state, JobState::kUnknown);
  EXPECT_NE(Stored("9").failure_reason.find("has not shown job 9"), std::string::npos);
}

TEST_F(TrackerTest, OneListRequestPerCommCellWhateverTheJobsAndWatchers) {
  MakeTracker();
  for (int i = 0; i < 50; ++i) {
    AddJob(std::to_string(3000 + i));
    client_->SetJob(Summary(std::to_string(3000 + i), "Running", i));
  }
  for (int i = 0; i < 1000; ++i) hub_.Subscribe("cs1", "3000", [](const Job&) {});
  tracker_->RunRound();
  EXPECT_EQ(client_->list_calls(), 1);
  EXPECT_EQ(client_->get_calls(), 0);
  EXPECT_EQ(tracker_->upstream_requests(), 1);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_jobs_active", {{"commcell", "cs1"}}), 50);
}

TEST_F(TrackerTest, AnUnreachableCommCellIsPolledWithBackoff) {
  MakeTracker();
  AddJob("10");
  client_->SetListError(Unavailable("connect: refused", "UPSTREAM_UNREACHABLE"));
  tracker_->RunRound(/*force=*/false);
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 1);  // the second round is inside the back-off
  clock_.Advance(options_.poll_interval * 2 + std::chrono::milliseconds(1));
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 2);
}

TEST_F(TrackerTest, AnIntentLeftByACrashIsAdopted) {
  TriggerIntent intent;
  intent.commcell = "cs1";
  intent.backup_type = BackupType::kFull;
  intent.request_id = "lost-answer";
  intent.requested_by = "alice";
  intent.create_time = clock_.Now();
  ASSERT_TRUE(store_->AddIntent(intent).ok());
  clock_.Advance(std::chrono::seconds(5));
  MakeTracker();  // a new process: the intent is from before it started
  client_->SetJob(Summary("5000", "Running", 5, 1790000001));
  tracker_->RunRound();
  Job adopted = Stored("5000");
  EXPECT_EQ(adopted.request_id, "lost-answer");
  EXPECT_EQ(adopted.requested_by, "alice");
  EXPECT_EQ(adopted.state, JobState::kRunning);
  EXPECT_TRUE(store_->ListOpenIntents()->empty());
  auto by_request = store_->FindByRequestId("cs1", "lost-answer");
  ASSERT_TRUE(by_request.ok() && by_request->has_value());
  EXPECT_EQ((*by_request)->job_id, "5000");
}

TEST_F(TrackerTest, AnIntentWithNoUpstreamJobBecomesUnknownAfterGivingUp) {
  TriggerIntent intent;
  intent.commcell = "cs1";
  intent.request_id = "nothing-upstream";
  intent.create_time = clock_.Now();
  auto id = store_->AddIntent(intent);
  ASSERT_TRUE(id.ok());
  clock_.Advance(std::chrono::seconds(1));
  MakeTracker();
  tracker_->RunRound();
  EXPECT_EQ(store_->ListOpenIntents()->size(), 1u);  // still waiting for the job to show up
  clock_.Advance(options_.intent_give_up);
  tracker_->RunRound();
  EXPECT_TRUE(store_->ListOpenIntents()->empty());
  Job unknown = Stored("unknown-" + std::to_string(*id));
  EXPECT_EQ(unknown.state, JobState::kUnknown);
  EXPECT_EQ(unknown.request_id, "nothing-upstream");
}

// Found by tests/crash: after a restart, an intent the killed process never sent must not adopt
// the job of a trigger this process has in flight (about to record it under its own request id):
// one job would belong to two request ids. The job waits; the old intent gives up only once no
// such job is left unrecorded.
TEST_F(TrackerTest, AnOldIntentDoesNotAdoptTheJobOfATriggerInFlight) {
  TriggerIntent never_sent;
  never_sent.commcell = "cs1";
  never_sent.request_id = "never-sent";
  never_sent.create_time = clock_.Now();
  ASSERT_TRUE(store_->AddIntent(never_sent).ok());
  clock_.Advance(options_.intent_give_up);
  MakeTracker();  // restarted after the kill
  clock_.Advance(std::chrono::seconds(1));
  TriggerIntent in_flight;
  in_flight.commcell = "cs1";
  in_flight.request_id = "in-flight";
  in_flight.create_time = clock_.Now();
  auto in_flight_id = store_->AddIntent(in_flight);
  ASSERT_TRUE(in_flight_id.ok());
  const auto started =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch()).count();
  client_->SetJob(Summary("6000", "Running", 5, started));  // the POST of "in-flight" answered

  tracker_->RunRound();

  EXPECT_EQ(store_->GetJob("cs1", "6000").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ListOpenIntents()->size(), 2u);  // not adopted, not given up

  // The trigger records its answer; the old intent then finds nothing and gives up.
  Job job;
  job.commcell = "cs1";
  job.job_id = "6000";
  job.request_id = "in-flight";
  job.create_time = in_flight.create_time;
  job.update_time = in_flight.create_time;
  ASSERT_TRUE(store_->PutJobs({job}, *in_flight_id).ok());
  clock_.Advance(options_.poll_interval);
  tracker_->RunRound();

  EXPECT_EQ(Stored("6000").request_id, "in-flight");
  EXPECT_TRUE(store_->ListOpenIntents()->empty());
  auto settled = store_->FindByRequestId("cs1", "never-sent");
  ASSERT_TRUE(settled.ok() && settled->has_value());
  EXPECT_EQ((*settled)->state, JobState::kUnknown);
}

TEST_F(TrackerTest, AnIdleCommCellIsProbedAtTheProbeInterval) {
  options_.probe_interval = std::chrono::minutes(1);
  MakeTracker();
  tracker_->RunRound();
  tracker_->RunRound();
  EXPECT_EQ(client_->list_calls(), 1);
  clock_.Advance(std::chrono::minutes(1));
  tracker_->RunRound();
  EXPECT_EQ(client_->list_calls(), 2);
}

// A LeaderElection the test flips by hand.
class ManualLeader final : public LeaderElection {
 public:
  bool IsLeader() const override { return leading; }
  void Start(std::function<void(bool)>) override {}
  void Stop() override {}
  std::atomic<bool> leading{false};
};

TEST_F(TrackerTest, AFollowerLeavesJobsToTheLeaderAndFollowsThemOnceItLeads) {
  ManualLeader leader;
  tracker_ = std::make_unique<Tracker>(std::vector<CommCell>{CommCell{"cs1", "u", client_}},
                                       *store_, metrics_, clock_, hub_, options_, &leader);
  AddJob("2141");
  client_->SetJob(Summary("2141", "Running", 40));

  tracker_->RunRound();

  EXPECT_EQ(client_->list_calls(), 0);
  EXPECT_EQ(client_->get_calls(), 0);
  EXPECT_EQ(Stored("2141").state, JobState::kSubmitted);

  leader.leading = true;
  tracker_->RunRound();

  EXPECT_EQ(client_->list_calls(), 1);
  EXPECT_EQ(Stored("2141").state, JobState::kRunning);
}

TEST_F(TrackerTest, AFollowerStillProbesItsCommCells) {
  options_.probe_interval = std::chrono::minutes(1);
  ManualLeader leader;
  tracker_ = std::make_unique<Tracker>(std::vector<CommCell>{CommCell{"cs1", "u", client_}},
                                       *store_, metrics_, clock_, hub_, options_, &leader);
  AddJob("2141");

  tracker_->RunRound();
  tracker_->RunRound();  // not due again within the probe interval

  EXPECT_EQ(client_->list_calls(), 1);
  EXPECT_EQ(Stored("2141").state, JobState::kSubmitted);
}

}  // namespace
}  // namespace drgate::jobs
