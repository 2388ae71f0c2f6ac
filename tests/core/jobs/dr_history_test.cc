// DrHistory against the fake CommServe client and an in-memory SQLite registry: the first read of
// a CommCell's DR history, later observations, the intent rule shared with the tracker, and the
// DR backup options.
#include "core/jobs/dr_history.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "core/registry/sqlite_job_store.h"
#include "tests/fakes/fake_commserv_client.h"
#include "tests/fakes/manual_clock.h"
#include "tests/fakes/metric_value.h"

namespace drgate::jobs {
namespace {

using commserv::JobSummary;
using drgate::testing::MetricValue;

constexpr int64_t kNow = 1790000000;  // ManualClock's start, in epoch seconds

JobSummary Finished(const std::string& id, int64_t start, int64_t end, const std::string& status,
                    const std::string& level = "Full", const std::string& reason = "") {
  JobSummary s;
  s.job_id = id;
  s.status = status;
  s.percent_complete = 100;
  s.start_time = start;
  s.end_time = end;
  s.last_update_time = end;
  s.pending_reason = reason;
  s.backup_level = level;
  return s;
}

class DrHistoryTest : public ::testing::Test {
 protected:
  DrHistoryTest() {
    store_ = std::move(*SqliteJobStore::Open(":memory:"));
    DrHistoryOptions config;
    config.page_size = 2;  // several pages from a few jobs
    history_ = std::make_unique<DrHistory>(*store_, metrics_, holder_, clock_, config);
  }
  ~DrHistoryTest() override { client_.WaitIdle(); }

  double FinishedCount(const std::string& origin, const std::string& state) {
    return MetricValue(registry_, "drgate_backup_jobs_finished_total",
                       {{"commcell", "cs1"}, {"origin", origin}, {"state", state}});
  }
  double LastFullSuccess() {
    return MetricValue(registry_, "drgate_backup_last_success_timestamp_seconds",
                       {{"commcell", "cs1"}, {"backup_type", "full"}});
  }

  prometheus::Registry registry_;
  Metrics metrics_{registry_};
  drgate::testing::ManualClock clock_;
  std::unique_ptr<JobStore> store_;
  DrOptionsHolder holder_;
  drgate::testing::FakeCommServClient client_;
  std::unique_ptr<DrHistory> history_;
};

TEST_F(DrHistoryTest, FirstReadPagesThroughTheHistoryAndRecordsItAsCommservUncounted) {
  metrics_.RegisterCommCell("cs1");
  client_.SetJob(Finished("101", kNow - 3 * 86400, kNow - 3 * 86400 + 600, "Completed"));
  client_.SetJob(Finished("102", kNow - 2 * 86400, kNow - 2 * 86400 + 700, "Failed", "Full",
                          "Error Code: [19:857] disk full"));
  client_.SetJob(Finished("103", kNow - 86400, kNow - 86400 + 300, "Completed", "Differential"));
  client_.SetJob(Finished("104", kNow - 3600, kNow - 3000, "Completed w/ one or more errors"));
  JobSummary running = Finished("105", kNow - 60, 0, "Running");
  running.percent_complete = 30;
  client_.SetJob(running);

  ASSERT_TRUE(history_->ReadHistory("cs1", client_).ok());

  EXPECT_EQ(client_.page_calls(), 3);  // 5 jobs, 2 per page
  EXPECT_EQ(client_.last_lookback(), std::chrono::seconds(7 * 86400));
  const Job failed = *store_->GetJob("cs1", "102");
  EXPECT_EQ(failed.origin, JobOrigin::kCommserv);
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_EQ(failed.backup_type, BackupType::kFull);
  EXPECT_EQ(failed.failure_reason, "Error Code: [19:857] disk full");
  EXPECT_EQ(failed.start_time, TimePoint(std::chrono::seconds(kNow - 2 * 86400)));
  EXPECT_EQ(failed.end_time, TimePoint(std::chrono::seconds(kNow - 2 * 86400 + 700)));
  EXPECT_EQ(failed.request_id, "");
  EXPECT_EQ(store_->GetJob("cs1", "103")->backup_type, BackupType::kDifferential);
  EXPECT_EQ(store_->GetJob("cs1", "104")->state, JobState::kSucceededWithErrors);
  const Job active = *store_->GetJob("cs1", "105");
  EXPECT_EQ(active.state, JobState::kRunning);
  EXPECT_EQ(active.end_time, std::nullopt);

  // History is not "finished while drgate runs"; the last success is the newest one.
  EXPECT_EQ(FinishedCount("commserv", "succeeded"), -1);
  EXPECT_EQ(FinishedCount("commserv", "failed"), 0);  // exists from registration, not counted
  EXPECT_EQ(FinishedCount("drgate", "succeeded"), 0);
  EXPECT_EQ(LastFullSuccess(), kNow - 3000);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_last_success_timestamp_seconds",
                        {{"commcell", "cs1"}, {"backup_type", "differential"}}),
            kNow - 86400 + 300);

  // A second read records nothing new.
  ASSERT_TRUE(history_->ReadHistory("cs1", client_).ok());
  JobFilter commserv;
  commserv.origin = JobOrigin::kCommserv;
  EXPECT_EQ(store_->ListJobs(commserv, 100, "")->jobs.size(), 5u);
}

TEST_F(DrHistoryTest, ObserveCountsNewJobsThatFinishWhileDrgateRuns) {
  const std::vector<JobSummary> list = {
      Finished("201", kNow - 86400, kNow - 86000, "Completed"),  // ended before drgate started
      Finished("202", kNow + 10, kNow + 400, "Completed"),
      Finished("203", kNow + 20, kNow + 500, "Killed", "Differential"),
  };
  clock_.Advance(std::chrono::seconds(600));
  StatusOr<int> recorded = history_->Observe("cs1", list);
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
  EXPECT_EQ(*recorded, 3);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_jobs_finished_total",
                        {{"commcell", "cs1"}, {"origin", "commserv"}, {"state", "succeeded"}}),
            1);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_jobs_finished_total",
                        {{"commcell", "cs1"}, {"origin", "commserv"}, {"state", "killed"}}),
            1);
  EXPECT_EQ(LastFullSuccess(), kNow + 400);
  EXPECT_EQ(store_->GetJob("cs1", "203")->failure_reason, "the CommServe reports \"Killed\"");
  // Seen again: already known, nothing recorded or counted twice.
  EXPECT_EQ(*history_->Observe("cs1", list), 0);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_jobs_finished_total",
                        {{"commcell", "cs1"}, {"origin", "commserv"}, {"state", "succeeded"}}),
            1);
}

TEST_F(DrHistoryTest, JobsAnOpenIntentMayClaimAreLeftForTheTracker) {
  TriggerIntent intent;
  intent.commcell = "cs1";
  intent.backup_type = BackupType::kFull;
  intent.request_id = "req-1";
  intent.create_time = clock_.Now();
  ASSERT_TRUE(store_->AddIntent(intent).ok());
  // Another CommCell's intent claims nothing here.
  TriggerIntent elsewhere = intent;
  elsewhere.commcell = "cs2";
  elsewhere.backup_type = BackupType::kDifferential;
  elsewhere.request_id = "req-2";
  ASSERT_TRUE(store_->AddIntent(elsewhere).ok());

  JobSummary claimable = Finished("301", kNow + 5, 0, "Running");  // full, after the intent
  JobSummary skewed = Finished("302", kNow - 90, 0, "Running");    // within the 2 min of skew
  JobSummary unnamed = Finished("303", kNow + 5, 0, "Running", "");
  JobSummary older = Finished("304", kNow - 3600, kNow - 3000, "Completed");  // before it
  JobSummary differential = Finished("305", kNow + 5, 0, "Running", "Differential");
  StatusOr<int> recorded =
      history_->Observe("cs1", {claimable, skewed, unnamed, older, differential});
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
  EXPECT_EQ(*recorded, 2);
  for (const char* id : {"301", "302", "303"}) {
    EXPECT_EQ(store_->GetJob("cs1", id).status().code(), StatusCode::kNotFound) << id;
  }
  EXPECT_EQ(store_->GetJob("cs1", "304")->origin, JobOrigin::kCommserv);
  EXPECT_EQ(store_->GetJob("cs1", "305")->origin, JobOrigin::kCommserv);

  // A job drgate recorded (the tracker adopted it) stays drgate's.
  Job ours;
  ours.commcell = "cs1";
  ours.job_id = "301";
  ours.request_id = "req-1";
  ours.create_time = clock_.Now();
  ours.update_time = clock_.Now();
  ASSERT_TRUE(store_->PutJobs({ours}, store_->ListOpenIntents()->front().id).ok());
  EXPECT_EQ(*history_->Observe("cs1", {claimable}), 0);
  EXPECT_EQ(store_->GetJob("cs1", "301")->origin, JobOrigin::kDrgate);
  // With the intent closed, the others are the CommServe's.
  EXPECT_EQ(*history_->Observe("cs1", {skewed, unnamed}), 2);
}

TEST_F(DrHistoryTest, OptionsAreReadOnFirstContactThenEveryIntervalAndUnknownStaysAbsent) {
  commserv::DrBackupOptions local;
  local.destination = "C:\\DR";
  local.retained_fulls = 5;
  local.local_drive = true;
  local.network_share = false;
  local.cloud_upload = false;
  client_.SetOptions(local);
  ASSERT_TRUE(history_->RefreshOptions("cs1", client_).ok());
  EXPECT_EQ(client_.options_calls(), 1);
  ASSERT_TRUE(holder_.Get("cs1").has_value());
  EXPECT_EQ(holder_.Get("cs1")->options, local);
  EXPECT_EQ(holder_.Get("cs1")->fetch_time, clock_.Now());
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_retained_fulls", {{"commcell", "cs1"}}), 5);
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_offsite", {{"commcell", "cs1"}}), 0);

  // Within the hour: no call.
  commserv::DrBackupOptions share = local;
  share.network_share = true;
  client_.SetOptions(share);
  clock_.Advance(std::chrono::minutes(59));
  ASSERT_TRUE(history_->RefreshOptions("cs1", client_).ok());
  EXPECT_EQ(client_.options_calls(), 1);
  clock_.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(history_->RefreshOptions("cs1", client_).ok());
  EXPECT_EQ(client_.options_calls(), 2);
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_offsite", {{"commcell", "cs1"}}), 1);

  // The CommServe stops telling (404): unknown, the series disappear.
  client_.SetOptions(Status(StatusCode::kNotFound, "HTTP 404", Reason::kDrOptionsUnavailable));
  clock_.Advance(std::chrono::hours(1));
  ASSERT_TRUE(history_->RefreshOptions("cs1", client_).ok());
  EXPECT_FALSE(holder_.Get("cs1").has_value());
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_offsite", {{"commcell", "cs1"}}), -1);
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_retained_fulls", {{"commcell", "cs1"}}), -1);

  // Other failures are returned and keep what was known.
  client_.SetOptions(share);
  clock_.Advance(std::chrono::hours(1));
  ASSERT_TRUE(history_->RefreshOptions("cs1", client_).ok());
  client_.SetOptions(Status(StatusCode::kUnavailable, "down", Reason::kUpstreamHttp5xx));
  clock_.Advance(std::chrono::hours(1));
  EXPECT_EQ(history_->RefreshOptions("cs1", client_).reason(), "UPSTREAM_HTTP_5XX");
  EXPECT_EQ(holder_.Get("cs1")->options, share);
  // Offsite unknown when neither flag is known.
  commserv::DrBackupOptions partial;
  partial.retained_fulls = 3;
  client_.SetOptions(partial);
  clock_.Advance(std::chrono::hours(1));
  ASSERT_TRUE(history_->RefreshOptions("cs1", client_).ok());
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_retained_fulls", {{"commcell", "cs1"}}), 3);
  EXPECT_EQ(MetricValue(registry_, "drgate_dr_backup_offsite", {{"commcell", "cs1"}}), -1);
}

TEST_F(DrHistoryTest, AHistoryReadFailureIsReturned) {
  client_.SetListError(Status(StatusCode::kUnavailable, "down", Reason::kUpstreamHttp5xx));
  EXPECT_EQ(history_->ReadHistory("cs1", client_).reason(), "UPSTREAM_HTTP_5XX");
}

// A client that keeps every callback it is given and never answers, as a CommServe client does
// with a request in flight when drgate shuts down.
class SilentClient final : public commserv::CommServClient {
 public:
  void TriggerDrBackup(const commserv::DrBackupRequest&,
                       Callback<commserv::DrBackupResult> done) override {
    trigger_.push_back(std::move(done));
  }
  void ListDrJobs(std::chrono::seconds, Callback<std::vector<JobSummary>> done) override {
    lists_.push_back(std::move(done));
  }
  void ListDrJobPage(std::chrono::seconds, int64_t, int64_t,
                     Callback<commserv::JobListPage> done) override {
    pages_.push_back(std::move(done));
  }
  void GetDrBackupOptions(Callback<commserv::DrBackupOptions> done) override {
    options_.push_back(std::move(done));
  }
  void GetJob(const std::string&, Callback<std::optional<JobSummary>> done) override {
    jobs_.push_back(std::move(done));
  }
  void KillJob(const std::string&, std::function<void(Status)> done) override {
    kills_.push_back(std::move(done));
  }
  commserv::Reachability reachability() const override { return {}; }

  std::vector<Callback<commserv::JobListPage>> pages_;

 private:
  std::vector<Callback<commserv::DrBackupResult>> trigger_;
  std::vector<Callback<std::vector<JobSummary>>> lists_;
  std::vector<Callback<commserv::DrBackupOptions>> options_;
  std::vector<Callback<std::optional<JobSummary>>> jobs_;
  std::vector<std::function<void(Status)>> kills_;
};

TEST_F(DrHistoryTest, AReadWithAPageInFlightDoesNotKeepItsClientAlive) {
  auto client = std::make_shared<SilentClient>();
  bool called = false;
  history_->FetchHistory("cs1", client, std::chrono::hours(24),
                         [&called](StatusOr<std::vector<JobSummary>>) { called = true; });
  ASSERT_EQ(client->pages_.size(), 1u);
  // The client holds the read (its callback); the read must not hold the client back.
  std::weak_ptr<SilentClient> watch = client;
  client.reset();
  EXPECT_TRUE(watch.expired());
  EXPECT_FALSE(called);  // a request never answered: `done` is dropped unrun
}

TEST_F(DrHistoryTest, AClientReleasedBetweenPagesEndsTheReadWithCancelled) {
  auto client = std::make_shared<SilentClient>();
  std::optional<Status> result;
  history_->FetchHistory(
      "cs1", client, std::chrono::hours(24),
      [&result](StatusOr<std::vector<JobSummary>> got) { result = got.status(); });
  ASSERT_EQ(client->pages_.size(), 1u);
  auto page = std::move(client->pages_.front());
  client.reset();  // released while the first page's answer is on its way
  commserv::JobListPage first;
  first.total = 3;
  first.jobs.push_back(Finished("101", kNow - 600, kNow - 60, "Completed"));
  page(first);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->code(), StatusCode::kCancelled);
  EXPECT_EQ(result->reason(), "SHUTTING_DOWN");
}

}  // namespace
}  // namespace drgate::jobs
