#include "core/jobs/tracker.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <functional>
#include <thread>

#include "core/registry/sqlite_job_store.h"
#include "tests/fakes/blocking_job_store.h"
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
  // A tracker of several CommCells, each on its own client.
  void MakeTracker(
      const std::vector<std::pair<std::string, std::shared_ptr<FakeCommServClient>>>& cells,
      const Clock& clock) {
    std::vector<CommCell> commcells;
    for (const auto& [name, client] : cells) {
      metrics_.RegisterCommCell(name);
      commcells.push_back(CommCell{name, "u", client});
    }
    tracker_ = std::make_unique<Tracker>(commcells, *store_, metrics_, clock, hub_, options_);
  }
  Job AddJob(const std::string& id, BackupType type = BackupType::kFull) {
    return AddJobOn("cs1", id, type);
  }
  Job AddJobOn(const std::string& commcell, const std::string& id,
               BackupType type = BackupType::kFull) {
    Job j;
    j.commcell = commcell;
    j.job_id = id;
    j.backup_type = type;
    j.create_time = clock_.Now();
    j.update_time = clock_.Now();
    EXPECT_TRUE(store_->PutJobs({j}).ok());
    return j;
  }
  Job Stored(const std::string& id) { return *store_->GetJob("cs1", id); }
  JobState StateOf(const std::string& commcell, const std::string& id) {
    return store_->GetJob(commcell, id)->state;
  }
  // Waits (real time, generously for a loaded machine) until `condition` holds.
  static bool WaitFor(const std::function<bool()>& condition) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

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
  client_->SetListError(Unavailable("connect: refused", Reason::kUpstreamUnreachable));
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

// Per-CommCell isolation (docs/tracking.md): a CommServe whose job list hangs holds up its own
// CommCell only.
TEST_F(TrackerTest, AHungCommCellDoesNotDelayAnother) {
  auto hung = std::make_shared<FakeCommServClient>();
  MakeTracker({{"cs1", client_}, {"cs2", hung}}, clock_);
  AddJob("100");
  AddJobOn("cs2", "200");
  client_->SetJob(Summary("100", "Running", 10));
  hung->SetJob(Summary("200", "Running", 10));
  hung->HoldLists();

  // A round waits for every poll it started: this one waits for cs2, on a thread of its own.
  std::thread stuck([this] { tracker_->RunRound(); });
  ASSERT_TRUE(WaitFor([&] { return StateOf("cs1", "100") == JobState::kRunning; }));
  ASSERT_TRUE(WaitFor([&] { return tracker_->polls_under_way() == 1; }));  // cs1's poll ended
  EXPECT_EQ(hung->list_calls(), 1);

  // cs1's next poll interval comes while cs2's answer is still outstanding: cs1 is polled.
  client_->SetJob(Summary("100", "Completed", 100, 1790000010, 1790000012));
  clock_.Advance(options_.poll_interval);
  tracker_->RunRound(/*force=*/false);  // returns without cs2: its poll is not part of it
  EXPECT_EQ(StateOf("cs1", "100"), JobState::kSucceeded);
  EXPECT_EQ(client_->list_calls(), 2);
  EXPECT_EQ(hung->list_calls(), 1);  // a poll under way is never doubled
  EXPECT_EQ(StateOf("cs2", "200"), JobState::kSubmitted);

  hung->Release();
  stuck.join();
  EXPECT_EQ(StateOf("cs2", "200"), JobState::kRunning);
  hung->WaitIdle();
}

// The same on the tracker's own thread and a real clock; and a request still out at Stop() is
// abandoned: its answer, arriving later, is dropped.
TEST_F(TrackerTest, TheTrackersThreadKeepsPollingTheOthersWhileOneHangs) {
  SystemClock real;
  options_.poll_interval = std::chrono::milliseconds(20);
  auto hung = std::make_shared<FakeCommServClient>();
  MakeTracker({{"cs1", client_}, {"cs2", hung}}, real);
  AddJob("100");
  AddJob("101");  // keeps cs1 busy after 100 ends
  AddJobOn("cs2", "200");
  client_->SetJob(Summary("100", "Running", 10));
  client_->SetJob(Summary("101", "Running", 10));
  hung->SetJob(Summary("200", "Running", 10));
  hung->HoldLists();
  tracker_->Start();

  ASSERT_TRUE(WaitFor([&] { return StateOf("cs1", "100") == JobState::kRunning; }));
  client_->SetJob(Summary("100", "Completed", 100, 1790000010, 1790000012));
  ASSERT_TRUE(WaitFor([&] { return StateOf("cs1", "100") == JobState::kSucceeded; }));
  ASSERT_TRUE(WaitFor([&] { return client_->list_calls() >= 5; }));
  EXPECT_EQ(hung->list_calls(), 1);
  EXPECT_EQ(StateOf("cs2", "200"), JobState::kSubmitted);

  tracker_->Stop();
  const int lists = client_->list_calls();
  hung->Release();
  hung->WaitIdle();  // cs2's answer has been delivered, after Stop
  EXPECT_EQ(StateOf("cs2", "200"), JobState::kSubmitted);
  EXPECT_EQ(client_->list_calls(), lists);
}

TEST_F(TrackerTest, BackoffIsPerCommCell) {
  auto failing = std::make_shared<FakeCommServClient>();
  failing->SetListError(Unavailable("connect: refused", Reason::kUpstreamUnreachable));
  MakeTracker({{"cs1", client_}, {"cs2", failing}}, clock_);
  AddJob("100");
  AddJobOn("cs2", "200");
  client_->SetJob(Summary("100", "Running", 10));
  std::vector<int> healthy;
  std::vector<int> failed;
  for (int i = 0; i < 7; ++i) {
    tracker_->RunRound(/*force=*/false);
    healthy.push_back(client_->list_calls());
    failed.push_back(failing->list_calls());
    clock_.Advance(options_.poll_interval);
  }
  // cs1 every interval; cs2 after 2, then 4 intervals.
  EXPECT_EQ(healthy, (std::vector<int>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(failed, (std::vector<int>{1, 1, 2, 2, 2, 2, 3}));
  failing->WaitIdle();
}

TEST_F(TrackerTest, OneListRequestPerCommCellPerPollInterval) {
  std::vector<std::pair<std::string, std::shared_ptr<FakeCommServClient>>> cells;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "c" + std::to_string(i);
    cells.emplace_back(name, std::make_shared<FakeCommServClient>());
    for (int j = 0; j < 5; ++j) {
      const std::string id = std::to_string(100 * i + j);
      AddJobOn(name, id);
      cells.back().second->SetJob(Summary(id, "Running", j));
    }
  }
  MakeTracker(cells, clock_);
  auto lists = [&] {
    std::vector<int> n;
    for (const auto& [name, client] : cells) n.push_back(client->list_calls());
    return n;
  };
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(lists(), (std::vector<int>{1, 1, 1}));
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(options_.poll_interval / 4);
    tracker_->RunRound(/*force=*/false);
  }
  EXPECT_EQ(lists(), (std::vector<int>{1, 1, 1}));
  clock_.Advance(options_.poll_interval / 4);
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(lists(), (std::vector<int>{2, 2, 2}));
  EXPECT_EQ(tracker_->upstream_requests(), 6);  // no Job/{id}: every job was in its list
  for (const auto& [name, client] : cells) client->WaitIdle();
}

// With B slots and B CommCells hung, the others wait for a slot: the bound itself.
TEST_F(TrackerTest, NoMorePollsUnderWayThanTheBound) {
  options_.max_concurrent_polls = 2;
  auto hung1 = std::make_shared<FakeCommServClient>();
  auto hung2 = std::make_shared<FakeCommServClient>();
  MakeTracker({{"a1", hung1}, {"a2", hung2}, {"c", client_}}, clock_);
  AddJobOn("a1", "1");
  AddJobOn("a2", "2");
  AddJobOn("c", "3");
  client_->SetJob(Summary("3", "Running", 10));
  hung1->HoldLists();
  hung2->HoldLists();

  std::thread round([this] { tracker_->RunRound(); });
  ASSERT_TRUE(WaitFor([&] { return hung1->list_calls() == 1 && hung2->list_calls() == 1; }));
  EXPECT_EQ(client_->list_calls(), 0);  // no free slot (a1 and a2 came first)
  EXPECT_EQ(tracker_->polls_under_way(), 2);

  hung1->Release();  // a1's poll ends: its slot goes to c
  ASSERT_TRUE(WaitFor([&] { return StateOf("c", "3") == JobState::kRunning; }));
  EXPECT_EQ(client_->list_calls(), 1);
  EXPECT_EQ(hung2->list_calls(), 1);

  hung2->Release();
  round.join();
  hung1->WaitIdle();
  hung2->WaitIdle();
}

// A poll under way for a whole poll interval stops counting against the bound: with B slots and
// B CommCells hung, the others wait one interval at most, not until the hung requests time out.
TEST_F(TrackerTest, HungPollsFreeTheirSlotsAfterOnePollInterval) {
  options_.max_concurrent_polls = 2;
  options_.poll_interval = std::chrono::seconds(10);
  auto hung1 = std::make_shared<FakeCommServClient>();
  auto hung2 = std::make_shared<FakeCommServClient>();
  MakeTracker({{"a1", hung1}, {"a2", hung2}, {"c", client_}}, clock_);
  AddJobOn("a1", "1");
  AddJobOn("a2", "2");
  AddJobOn("c", "3");
  client_->SetJob(Summary("3", "Running", 10));
  hung1->HoldLists();
  hung2->HoldLists();

  std::thread round([this] { tracker_->RunRound(); });
  ASSERT_TRUE(WaitFor([&] { return hung1->list_calls() == 1 && hung2->list_calls() == 1; }));
  clock_.Advance(std::chrono::seconds(9));
  tracker_->RunRound(/*force=*/false);  // what the tracker's thread does when it wakes
  EXPECT_EQ(client_->list_calls(), 0);  // within the interval: the bound holds
  clock_.Advance(std::chrono::seconds(1));
  tracker_->RunRound(/*force=*/false);
  ASSERT_TRUE(WaitFor([&] { return StateOf("c", "3") == JobState::kRunning; }));
  EXPECT_EQ(client_->list_calls(), 1);
  EXPECT_EQ(tracker_->polls_under_way(), 2);  // the hung ones, still waiting for their answers

  hung1->Release();
  hung2->Release();
  round.join();
  hung1->WaitIdle();
  hung2->WaitIdle();
}

// With fewer CommCells hung than the bound, the others all get polled while they hang.
TEST_F(TrackerTest, FewerHungCommCellsThanTheBoundLeaveTheOthersPolled) {
  options_.max_concurrent_polls = 3;
  std::vector<std::pair<std::string, std::shared_ptr<FakeCommServClient>>> cells;
  for (int i = 0; i < 7; ++i) {
    const std::string name = (i < 2 ? "hung" : "ok") + std::to_string(i);
    cells.emplace_back(name, std::make_shared<FakeCommServClient>());
    AddJobOn(name, "1");
    cells.back().second->SetJob(Summary("1", "Running", 10));
    if (i < 2) cells.back().second->HoldLists();
  }
  MakeTracker(cells, clock_);

  std::thread round([this] { tracker_->RunRound(); });
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& [name, client] : cells) {
      if (name.rfind("ok", 0) == 0 && StateOf(name, "1") != JobState::kRunning) return false;
    }
    return true;
  }));
  ASSERT_TRUE(WaitFor([&] { return tracker_->polls_under_way() == 2; }));  // the hung ones
  for (const auto& [name, client] : cells) {
    EXPECT_EQ(client->list_calls(), 1) << name;
    if (name.rfind("hung", 0) == 0) {
      EXPECT_EQ(StateOf(name, "1"), JobState::kSubmitted) << name;
    }
  }
  for (const auto& [name, client] : cells) client->Release();
  round.join();
  for (const auto& [name, client] : cells) client->WaitIdle();
}

// A reload adds and removes CommCells' schedules; an unchanged one keeps its back-off.
// A reload's tracking.poll_interval: a shorter one brings the next poll forward, then holds.
TEST_F(TrackerTest, SetTrackingAppliesANewPollInterval) {
  options_.poll_interval = std::chrono::hours(1);
  options_.max_backoff = std::chrono::hours(1);
  AddJob("2100");
  client_->SetJob(Summary("2100", "Running", 10));
  MakeTracker();
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 1);
  clock_.Advance(std::chrono::seconds(10));
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 1);  // the hour is not over

  TrackingConfig faster = options_;
  faster.poll_interval = std::chrono::seconds(5);
  tracker_->SetTracking(faster);
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 1);  // due 5 s after the reload, not at once
  clock_.Advance(std::chrono::seconds(5));
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 2);
  clock_.Advance(std::chrono::seconds(5));
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 3);
  clock_.Advance(std::chrono::seconds(4));
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 3);
}

TEST_F(TrackerTest, SetCommCellsAddsAndRemovesSchedules) {
  auto failing = std::make_shared<FakeCommServClient>();
  failing->SetListError(Unavailable("connect: refused", Reason::kUpstreamUnreachable));
  auto added = std::make_shared<FakeCommServClient>();
  MakeTracker({{"cs1", client_}, {"cs2", failing}}, clock_);
  metrics_.RegisterCommCell("cs3");
  AddJob("100");
  AddJobOn("cs2", "200");
  AddJobOn("cs3", "300");
  added->SetJob(Summary("300", "Running", 1));
  tracker_->RunRound();
  EXPECT_EQ(client_->list_calls(), 1);
  EXPECT_EQ(failing->list_calls(), 1);

  tracker_->SetCommCells({CommCell{"cs2", "u", failing}, CommCell{"cs3", "u", added}});
  tracker_->RunRound();
  EXPECT_EQ(client_->list_calls(), 1);  // removed
  EXPECT_EQ(failing->list_calls(), 1);  // still inside its back-off
  EXPECT_EQ(added->list_calls(), 1);    // new: polled at once
  EXPECT_EQ(StateOf("cs3", "300"), JobState::kRunning);
  failing->WaitIdle();
  added->WaitIdle();
}

// The tracker with the DR history on (what drgate runs): first contact, observation of the
// CommServe's own DR jobs, idle listing, options, and intents that keep their jobs.
class TrackerHistoryTest : public TrackerTest {
 protected:
  ~TrackerHistoryTest() override {
    client_->WaitIdle();
    tracker_.reset();  // before the history it uses
  }
  static constexpr int64_t kNow = 1790000000;  // ManualClock's start, in epoch seconds

  void MakeHistoryTracker() {
    history_ = std::make_unique<DrHistory>(*store_, metrics_, holder_, clock_, DrHistoryOptions{});
    tracker_ =
        std::make_unique<Tracker>(std::vector<CommCell>{CommCell{"cs1", "u", client_}}, *store_,
                                  metrics_, clock_, hub_, options_, nullptr, history_.get());
  }
  static commserv::JobSummary Dr(const std::string& id, const std::string& status,
                                 const std::string& level, int64_t start, int64_t end = 0,
                                 const std::string& reason = "") {
    commserv::JobSummary s = Summary(id, status, end > 0 ? 100 : 10, start, end, reason);
    s.backup_level = level;
    return s;
  }
  double Finished(const std::string& origin, const std::string& state) {
    return MetricValue(registry_, "drgate_backup_jobs_finished_total",
                       {{"commcell", "cs1"}, {"origin", origin}, {"state", state}});
  }

  DrOptionsHolder holder_;
  std::unique_ptr<DrHistory> history_;
};

TEST_F(TrackerHistoryTest, FirstContactReadsTheHistoryAsTheJobListAndRecordsItAsCommserv) {
  client_->SetJob(Dr("101", "Completed", "Full", kNow - 3000, kNow - 2900));
  client_->SetJob(
      Dr("102", "Failed", "Differential", kNow - 1800, kNow - 1700, "Error Code: [19:857]"));
  MakeHistoryTracker();
  tracker_->RunRound();

  EXPECT_EQ(client_->page_calls(), 1);
  EXPECT_EQ(client_->list_calls(), 0);  // the history read is this poll's job list
  EXPECT_EQ(client_->last_lookback(), std::chrono::seconds(7 * 86400));
  const Job full = Stored("101");
  EXPECT_EQ(full.origin, JobOrigin::kCommserv);
  EXPECT_EQ(full.state, JobState::kSucceeded);
  EXPECT_EQ(full.end_time, TimePoint(std::chrono::seconds(kNow - 2900)));
  const Job diff = Stored("102");
  EXPECT_EQ(diff.state, JobState::kFailed);
  EXPECT_EQ(diff.backup_type, BackupType::kDifferential);
  EXPECT_EQ(diff.failure_reason, "Error Code: [19:857]");
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_last_success_timestamp_seconds",
                        {{"commcell", "cs1"}, {"backup_type", "full"}}),
            kNow - 2900);
  EXPECT_EQ(Finished("commserv", "failed"), 0);  // history is not counted

  // Read once: the next forced round of an idle CommCell asks for nothing.
  tracker_->RunRound();
  EXPECT_EQ(client_->page_calls(), 1);
  EXPECT_EQ(client_->list_calls(), 0);
}

TEST_F(TrackerHistoryTest, AScheduledJobIsFollowedAndCountedOnceEvenAfterARestart) {
  MakeHistoryTracker();
  tracker_->RunRound();  // first contact: nothing yet
  clock_.Advance(std::chrono::seconds(10));
  client_->SetJob(Dr("201", "Running", "Full", kNow + 5));

  // Idle: listed again once history_interval has passed, not before.
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 0);
  clock_.Advance(options_.history_interval);
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 1);
  EXPECT_EQ(Stored("201").origin, JobOrigin::kCommserv);
  EXPECT_EQ(Stored("201").state, JobState::kRunning);

  // Now followed like drgate's own, at the poll interval.
  client_->SetJob(Dr("201", "Failed", "Full", kNow + 5, kNow + 400, "media error"));
  clock_.Advance(options_.poll_interval);
  tracker_->RunRound(/*force=*/false);
  EXPECT_EQ(client_->list_calls(), 2);
  EXPECT_EQ(Stored("201").state, JobState::kFailed);
  EXPECT_EQ(Stored("201").failure_reason, "media error");
  EXPECT_EQ(Finished("commserv", "failed"), 1);
  EXPECT_EQ(Finished("drgate", "failed"), 0);
  tracker_->RunRound();
  EXPECT_EQ(Finished("commserv", "failed"), 1);

  // A new process reads the history again: the job is known, counted nowhere a second time.
  tracker_.reset();
  MakeHistoryTracker();
  tracker_->RunRound();
  EXPECT_EQ(client_->page_calls(), 2);
  EXPECT_EQ(Finished("commserv", "failed"), 1);
}

TEST_F(TrackerHistoryTest, ALostAnswerIsStillAdoptedForItsIntentNeverRecordedAsCommserv) {
  TriggerIntent intent;
  intent.commcell = "cs1";
  intent.backup_type = BackupType::kFull;
  intent.request_id = "lost-answer";
  intent.create_time = clock_.Now();
  ASSERT_TRUE(store_->AddIntent(intent).ok());
  clock_.Advance(std::chrono::seconds(5));
  // The trigger's job, and a scheduled differential no intent may claim.
  client_->SetJob(Dr("5000", "Running", "Full", kNow + 1));
  client_->SetJob(Dr("5001", "Running", "Differential", kNow + 2));
  MakeHistoryTracker();  // a new process: the intent is from before it started
  tracker_->RunRound();

  const Job adopted = Stored("5000");
  EXPECT_EQ(adopted.origin, JobOrigin::kDrgate);
  EXPECT_EQ(adopted.request_id, "lost-answer");
  EXPECT_TRUE(store_->ListOpenIntents()->empty());
  EXPECT_EQ(Stored("5001").origin, JobOrigin::kCommserv);

  clock_.Advance(options_.history_interval);
  tracker_->RunRound();
  EXPECT_EQ(Stored("5000").origin, JobOrigin::kDrgate);
  JobFilter all;
  EXPECT_EQ(store_->ListJobs(all, 100, "")->jobs.size(), 2u);
}

TEST_F(TrackerHistoryTest, OptionsAreReadOnFirstContactAndOncePerOptionsInterval) {
  commserv::DrBackupOptions known;
  known.destination = "\\\\backup01\\dr";
  known.retained_fulls = 5;
  known.network_share = true;
  client_->SetOptions(known);
  MakeHistoryTracker();
  tracker_->RunRound();
  EXPECT_EQ(client_->options_calls(), 1);
  ASSERT_TRUE(holder_.Get("cs1").has_value());
  EXPECT_EQ(holder_.Get("cs1")->options, known);
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_offsite", {{"commcell", "cs1"}}), 1);
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_retained_fulls", {{"commcell", "cs1"}}), 5);

  tracker_->RunRound();
  EXPECT_EQ(client_->options_calls(), 1);

  // The CommServe stops telling (404): unknown again, the gauges go away, the rest carries on.
  client_->SetOptions(Status(StatusCode::kNotFound, "HTTP 404", Reason::kDrOptionsUnavailable));
  clock_.Advance(std::chrono::milliseconds(DrHistoryOptions{}.options_interval));
  tracker_->RunRound();
  EXPECT_EQ(client_->options_calls(), 2);
  EXPECT_FALSE(holder_.Get("cs1").has_value());
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_offsite", {{"commcell", "cs1"}}), -1);

  // A reload that gives the CommCell a new client asks again at once.
  auto replacement = std::make_shared<FakeCommServClient>();
  replacement->SetOptions(known);
  tracker_->SetCommCells({CommCell{"cs1", "u2", replacement}});
  tracker_->RunRound();
  EXPECT_EQ(replacement->options_calls(), 1);
  EXPECT_EQ(holder_.Get("cs1")->options, known);
  replacement->WaitIdle();
}

}  // namespace
}  // namespace drgate::jobs

namespace drgate::jobs {
namespace {

// No lock or thread of the tracker is shared across CommCells while a registry call is under
// way: with every registry call naming cs1 stalled (a PostgreSQL connection that hangs, say), the
// tracker still records and publishes cs2's job changes, and Apply for cs2 (what CancelJob calls,
// from another thread) returns at once. Before, one mutex and one thread served every CommCell.
TEST_F(TrackerTest, AStalledRegistryCallOfOneCommCellHoldsUpNoOtherCommCell) {
  auto stalled = std::make_unique<drgate::testing::BlockingJobStore>(
      std::move(*SqliteJobStore::Open(":memory:")));
  drgate::testing::BlockingJobStore& registry = *stalled;
  store_ = std::move(stalled);
  auto cs2 = std::make_shared<FakeCommServClient>();
  MakeTracker({{"cs1", client_}, {"cs2", cs2}}, clock_);
  AddJobOn("cs1", "101");
  AddJobOn("cs2", "201");
  client_->SetJob(Summary("101", "Running", 10));
  cs2->SetJob(Summary("201", "Running", 20));
  std::atomic<int> published{0};
  hub_.Subscribe("cs2", "201", [&](const Job&) { ++published; });

  registry.Stall("cs1");
  tracker_->Start();
  ASSERT_TRUE(registry.WaitBlocked(1));  // cs1's Apply waits in the registry
  ASSERT_TRUE(WaitFor([&] { return StateOf("cs2", "201") == JobState::kRunning; }));
  EXPECT_EQ(published.load(), 1);
  // A caller's Apply for cs2 (CancelJob reading the killed job back) does not wait either.
  std::atomic<bool> applied{false};
  std::thread caller([&] {
    Job job = *store_->GetJob("cs2", "201");
    (void)tracker_->Apply(job, Summary("201", "Running", 55));
    applied = true;
  });
  ASSERT_TRUE(WaitFor([&] { return applied.load(); }));
  caller.join();
  EXPECT_EQ(store_->GetJob("cs2", "201")->percent_complete, 55);
  EXPECT_EQ(registry.blocked(), 1);  // cs1 is still stuck all along

  registry.Release();
  ASSERT_TRUE(WaitFor([&] { return StateOf("cs1", "101") == JobState::kRunning; }));
  tracker_->Stop();
}

}  // namespace
}  // namespace drgate::jobs
