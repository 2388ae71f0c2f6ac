#include "core/jobs/orchestrator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <future>
#include <set>
#include <thread>

#include "core/registry/sqlite_job_store.h"
#include "tests/fakes/blocking_job_store.h"
#include "tests/fakes/fake_commserv_client.h"
#include "tests/fakes/manual_clock.h"
#include "tests/fakes/metric_value.h"

namespace drgate::jobs {
namespace {

using drgate::testing::BlockingJobStore;
using drgate::testing::FakeCommServClient;

using drgate::testing::MetricValue;

class OrchestratorTest : public ::testing::Test {
 protected:
  ~OrchestratorTest() override { client_->WaitIdle(); }
  void SetUp() override {
    store_ = std::move(*SqliteJobStore::Open(":memory:"));
    Build({"cs1"});
  }
  void Build(const std::vector<std::string>& names) {
    orchestrator_.reset();
    tracker_.reset();
    std::vector<CommCell> cells;
    for (const auto& n : names) cells.push_back(CommCell{n, "https://" + n + "/api", client_});
    tracker_ = std::make_unique<Tracker>(cells, *store_, metrics_, clock_, hub_, TrackerOptions{});
    orchestrator_ = std::make_unique<Orchestrator>(std::move(cells), *store_, metrics_, clock_,
                                                   pool_, reads_, *tracker_);
  }
  StatusOr<Job> GetJob(const std::string& commcell, const std::string& job_id) {
    std::promise<StatusOr<Job>> p;
    orchestrator_->GetJob(commcell, job_id, [&p](StatusOr<Job> j) { p.set_value(std::move(j)); });
    return p.get_future().get();
  }
  StatusOr<JobPage> ListJobs(const JobFilter& filter, int page_size) {
    std::promise<StatusOr<JobPage>> p;
    orchestrator_->ListJobs(filter, page_size, "",
                            [&p](StatusOr<JobPage> page) { p.set_value(std::move(page)); });
    return p.get_future().get();
  }
  StatusOr<TriggerOutcome> Trigger(TriggerRequest r) {
    std::promise<StatusOr<TriggerOutcome>> p;
    orchestrator_->TriggerBackup(std::move(r),
                                 [&p](StatusOr<TriggerOutcome> o) { p.set_value(std::move(o)); });
    return p.get_future().get();
  }
  static TriggerRequest Request(std::string commcell = "cs1", std::string request_id = "") {
    TriggerRequest r;
    r.commcell = std::move(commcell);
    r.backup_type = BackupType::kFull;
    r.request_id = std::move(request_id);
    r.requested_by = "alice";
    return r;
  }

  std::shared_ptr<FakeCommServClient> client_ = std::make_shared<FakeCommServClient>();
  std::unique_ptr<JobStore> store_;
  prometheus::Registry registry_;
  Metrics metrics_{registry_};
  drgate::testing::ManualClock clock_;
  ThreadPool pool_{2};
  KeyedThreadPool reads_{KeyedPoolOptions{}};
  WatchHub hub_;
  std::unique_ptr<Tracker> tracker_;
  std::unique_ptr<Orchestrator> orchestrator_;
};

TEST_F(OrchestratorTest, TriggerRecordsTheJobBeforeAnswering) {
  auto out = Trigger(Request());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_FALSE(out->deduplicated);
  EXPECT_EQ(out->job.job_id, "2141");
  EXPECT_EQ(out->job.task_id, 433);
  EXPECT_EQ(out->job.state, JobState::kSubmitted);
  EXPECT_EQ(out->job.requested_by, "alice");
  EXPECT_EQ(out->job.create_time, clock_.Now());
  auto stored = store_->GetJob("cs1", "2141");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, out->job);
  auto open = store_->ListOpenIntents();
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->empty());
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_triggers_total",
                        {{"commcell", "cs1"}, {"backup_type", "full"}, {"result", "submitted"}}),
            1);
}

TEST_F(OrchestratorTest, UnknownCommCellIsNotFound) {
  auto out = Trigger(Request("nope"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(out.status().reason(), "COMMCELL_NOT_FOUND");
  EXPECT_EQ(out.status().metadata().at("commcell"), "nope");
  EXPECT_EQ(client_->calls(), 0);
}

TEST_F(OrchestratorTest, EmptyCommCellMeansTheOnlyOne) {
  auto out = Trigger(Request(""));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->job.commcell, "cs1");
}

TEST_F(OrchestratorTest, EmptyCommCellWithSeveralIsInvalid) {
  Build({"cs1", "cs2"});
  auto out = Trigger(Request(""));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().reason(), "COMMCELL_REQUIRED");
}

TEST_F(OrchestratorTest, RequestIdLongerThan36IsInvalid) {
  auto out = Trigger(Request("cs1", std::string(37, 'a')));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().reason(), "INVALID_REQUEST_ID");
  EXPECT_TRUE(Trigger(Request("cs1", std::string(36, 'a'))).ok());
  auto spaces = Trigger(Request("cs1", "a b"));
  EXPECT_EQ(spaces.status().reason(), "INVALID_REQUEST_ID");
}

TEST_F(OrchestratorTest, SameRequestIdReturnsTheSameJob) {
  auto first = Trigger(Request("cs1", "upgrade-42"));
  ASSERT_TRUE(first.ok());
  auto second = Trigger(Request("cs1", "upgrade-42"));
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->deduplicated);
  EXPECT_EQ(second->job.job_id, first->job.job_id);
  EXPECT_EQ(client_->calls(), 1);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_triggers_total",
                        {{"commcell", "cs1"}, {"backup_type", "full"}, {"result", "deduplicated"}}),
            1);
}

TEST_F(OrchestratorTest, ConcurrentDuplicatesCauseOneUpstreamCall) {
  client_->Hold();
  constexpr int kCalls = 1000;
  std::vector<std::promise<StatusOr<TriggerOutcome>>> ps(kCalls);
  for (auto& p : ps) {
    orchestrator_->TriggerBackup(Request("cs1", "same-key"),
                                 [&p](StatusOr<TriggerOutcome> o) { p.set_value(std::move(o)); });
  }
  client_->Release();
  int deduplicated = 0;
  for (auto& p : ps) {
    auto o = p.get_future().get();
    ASSERT_TRUE(o.ok()) << o.status().ToString();
    EXPECT_EQ(o->job.job_id, "2141");
    deduplicated += o->deduplicated;
  }
  EXPECT_EQ(client_->calls(), 1);
  EXPECT_EQ(deduplicated, kCalls - 1);
}

// A request id stands for one request: the same key with other parameters is refused, naming the
// first request's differing field, and never answered with a job of another kind.
TEST_F(OrchestratorTest, ARequestIdReusedWithOtherParametersIsRefusedNamingTheField) {
  ASSERT_TRUE(Trigger(Request("cs1", "nightly")).ok());
  TriggerRequest differential = Request("cs1", "nightly");
  differential.backup_type = BackupType::kDifferential;
  auto out = Trigger(differential);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().reason(), "REQUEST_ID_REUSED");
  EXPECT_EQ(out.status().message(),
            "request_id \"nightly\" was first used with backup_type full, this request has "
            "backup_type differential; a request_id stands for one request: use a new one for "
            "other parameters");
  EXPECT_EQ(out.status().metadata().at("field"), "backup_type");
  EXPECT_EQ(out.status().metadata().at("commcell"), "cs1");

  TriggerRequest compressed = Request("cs1", "nightly");
  compressed.compression = true;
  auto again = Trigger(compressed);
  EXPECT_EQ(again.status().reason(), "REQUEST_ID_REUSED");
  EXPECT_EQ(again.status().metadata().at("field"), "compression");
  EXPECT_EQ(client_->calls(), 1);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_triggers_total",
                        {{"commcell", "cs1"}, {"backup_type", "full"}, {"result", "deduplicated"}}),
            0);
}

TEST_F(OrchestratorTest, AConcurrentDuplicateWithOtherParametersIsRefused) {
  client_->Hold();
  std::promise<StatusOr<TriggerOutcome>> full;
  std::promise<StatusOr<TriggerOutcome>> same;
  std::promise<StatusOr<TriggerOutcome>> differential;
  orchestrator_->TriggerBackup(
      Request("cs1", "k"), [&full](StatusOr<TriggerOutcome> o) { full.set_value(std::move(o)); });
  orchestrator_->TriggerBackup(
      Request("cs1", "k"), [&same](StatusOr<TriggerOutcome> o) { same.set_value(std::move(o)); });
  TriggerRequest other = Request("cs1", "k");
  other.backup_type = BackupType::kDifferential;
  orchestrator_->TriggerBackup(
      other, [&differential](StatusOr<TriggerOutcome> o) { differential.set_value(std::move(o)); });
  client_->Release();
  auto first = full.get_future().get();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto joined = same.get_future().get();
  ASSERT_TRUE(joined.ok());
  EXPECT_TRUE(joined->deduplicated);
  EXPECT_EQ(joined->job.job_id, first->job.job_id);
  auto refused = differential.get_future().get();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().reason(), "REQUEST_ID_REUSED");
  EXPECT_EQ(refused.status().metadata().at("field"), "backup_type");
  EXPECT_EQ(client_->calls(), 1);
}

TEST_F(OrchestratorTest, AnOpenIntentOfOtherParametersRefusesTheReusedRequestId) {
  TriggerIntent intent;
  intent.commcell = "cs1";
  intent.request_id = "in-doubt";
  intent.backup_type = BackupType::kDifferential;
  intent.create_time = clock_.Now();
  ASSERT_TRUE(store_->AddIntent(intent).ok());
  auto out = Trigger(Request("cs1", "in-doubt"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().reason(), "REQUEST_ID_REUSED");
  EXPECT_EQ(client_->calls(), 0);
}

TEST_F(OrchestratorTest, UpstreamRefusalIsCountedAndTheIntentClosed) {
  client_ = std::make_shared<FakeCommServClient>([](const commserv::DrBackupRequest&) {
    return StatusOr<commserv::DrBackupResult>(Status(StatusCode::kAborted,
                                                     "DR backup job [2100] is already running.",
                                                     Reason::kDrJobAlreadyRunning));
  });
  Build({"cs1"});
  auto out = Trigger(Request());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kAborted);
  EXPECT_EQ(out.status().metadata().at("commcell"), "cs1");
  EXPECT_TRUE(store_->ListOpenIntents()->empty());
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_triggers_total",
                        {{"commcell", "cs1"}, {"backup_type", "full"}, {"result", "rejected"}}),
            1);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_trigger_failures_total",
                        {{"commcell", "cs1"}, {"reason", "already_running"}}),
            1);
}

TEST_F(OrchestratorTest, UnknownOutcomeKeepsTheIntentOpen) {
  client_ = std::make_shared<FakeCommServClient>([](const commserv::DrBackupRequest&) {
    return StatusOr<commserv::DrBackupResult>(
        Unavailable("read: timed out after 60000 ms", Reason::kUpstreamTimeout)
            .With("phase", "read")
            .With("request_sent", "true"));
  });
  Build({"cs1"});
  auto out = Trigger(Request("cs1", "k1"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(out.status().message().find("may have reached the CommServe"), std::string::npos);
  auto open = store_->ListOpenIntents();
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].request_id, "k1");
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_trigger_failures_total",
                        {{"commcell", "cs1"}, {"reason", "timeout"}}),
            1);
}

TEST_F(OrchestratorTest, GetJobErrorsCarryTheCommCell) {
  auto missing = GetJob("cs1", "999");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().reason(), "JOB_NOT_FOUND");
  EXPECT_EQ(missing.status().metadata().at("commcell"), "cs1");
  auto unknown_cell = GetJob("cs9", "1");
  EXPECT_EQ(unknown_cell.status().reason(), "COMMCELL_NOT_FOUND");
}

TEST_F(OrchestratorTest, KnownSeriesExistAtZeroFromStartup) {
  EXPECT_EQ(
      MetricValue(registry_, "drgate_backup_triggers_total",
                  {{"commcell", "cs1"}, {"backup_type", "differential"}, {"result", "failed"}}),
      0);
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_trigger_failures_total",
                        {{"commcell", "cs1"}, {"reason", "unreachable"}}),
            0);
  EXPECT_EQ(MetricValue(registry_, "drgate_commserv_requests_total",
                        {{"commcell", "cs1"}, {"endpoint", "drbackup"}, {"code", "200"}}),
            0);
}

TEST_F(OrchestratorTest, ConcurrentTriggersWithoutRequestIdShareOneUpstreamCall) {
  client_->Hold();
  std::vector<std::promise<StatusOr<TriggerOutcome>>> ps(10);
  for (auto& p : ps) {
    orchestrator_->TriggerBackup(Request(),
                                 [&p](StatusOr<TriggerOutcome> o) { p.set_value(std::move(o)); });
  }
  client_->Release();
  std::set<std::string> ids;
  for (auto& p : ps) {
    auto o = p.get_future().get();
    ASSERT_TRUE(o.ok());
    ids.insert(o->job.job_id);
  }
  EXPECT_EQ(client_->calls(), 1);
  EXPECT_EQ(ids, std::set<std::string>{"2141"});
  // Once answered, the next trigger is a new one.
  EXPECT_EQ(Trigger(Request())->job.job_id, "2142");
}

TEST_F(OrchestratorTest, AnOpenIntentBlocksARetryWithTheSameRequestId) {
  TriggerIntent intent;
  intent.commcell = "cs1";
  intent.request_id = "in-doubt";
  intent.create_time = clock_.Now();
  ASSERT_TRUE(store_->AddIntent(intent).ok());
  auto out = Trigger(Request("cs1", "in-doubt"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(out.status().reason(), "TRIGGER_OUTCOME_PENDING");
  EXPECT_EQ(client_->calls(), 0);
}

// Graceful degradation: a registry that cannot take the intent fails the trigger before anything
// reaches the CommServe, reads keep working, and triggers work again once writes do. The real
// SQLite error paths: max_page_count makes the database full (SQLITE_FULL, as a full disk), and
// query_only makes it refuse writes (SQLITE_READONLY, as a read-only file system).
class UnwritableRegistryTest
    : public OrchestratorTest,
      public ::testing::WithParamInterface<std::pair<const char*, const char*>> {};

TEST_P(UnwritableRegistryTest, TriggerFailsBeforeAnythingIsSentAndRecovers) {
  auto* sqlite = static_cast<SqliteJobStore*>(store_.get());
  auto first = Trigger(Request("cs1", "before"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const int calls_before = client_->calls();
  const auto [problem, break_sql] = GetParam();
  ASSERT_TRUE(sqlite->ExecOnWriterForTesting(break_sql).ok());
  // An intent larger than a page (a long caller identity): its row needs a new page, so the
  // database capped at its current size cannot take it, whatever free space its pages have.
  TriggerRequest request = Request("cs1", "while-broken");
  request.requested_by = std::string(5000, 'a');

  auto out = Trigger(request);

  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(out.status().reason(), "REGISTRY_UNWRITABLE");
  EXPECT_EQ(out.status().metadata().at("registry_error"), problem);
  EXPECT_EQ(out.status().metadata().at("commcell"), "cs1");
  EXPECT_THAT(out.status().message(),
              ::testing::StartsWith("trigger not sent to the CommServe, its intent could not be "
                                    "recorded: registry database ':memory:' cannot be written"));
  EXPECT_EQ(client_->calls(), calls_before);  // nothing went upstream
  EXPECT_EQ(MetricValue(registry_, "drgate_backup_trigger_failures_total",
                        {{"commcell", "cs1"}, {"reason", "registry"}}),
            1);
  // Reads keep working.
  auto job = GetJob("cs1", first->job.job_id);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->request_id, "before");
  auto page = ListJobs({}, 10);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->jobs.size(), 1u);

  // Space returns (or the file system is writable again): the same request id works, once.
  ASSERT_TRUE(
      sqlite->ExecOnWriterForTesting("PRAGMA max_page_count=1073741823; PRAGMA query_only=OFF")
          .ok());
  auto retried = Trigger(request);
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_FALSE(retried->deduplicated);
  EXPECT_EQ(client_->calls(), calls_before + 1);
  auto open = store_->ListOpenIntents();
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->empty());
}

INSTANTIATE_TEST_SUITE_P(
    Problems, UnwritableRegistryTest,
    ::testing::Values(
        // max_page_count below the current size is raised to it: the next new page fails.
        std::pair<const char*, const char*>{"disk_full", "PRAGMA max_page_count=1"},
        std::pair<const char*, const char*>{"read_only", "PRAGMA query_only=ON"}),
    [](const auto& info) { return std::string(info.param.first); });

TEST_F(OrchestratorTest, EnsureRecentBackupAnswersARecentSuccessWithoutTriggering) {
  Job done;
  done.commcell = "cs1";
  done.job_id = "100";
  done.state = JobState::kSucceeded;
  done.create_time = clock_.Now() - std::chrono::hours(2);
  done.end_time = clock_.Now() - std::chrono::hours(1);
  done.update_time = *done.end_time;
  ASSERT_TRUE(store_->PutJobs({done}).ok());

  std::promise<StatusOr<TriggerOutcome>> p;
  orchestrator_->EnsureRecentBackup(Request(), std::chrono::hours(6),
                                    [&p](StatusOr<TriggerOutcome> o) { p.set_value(o); });
  auto out = p.get_future().get();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->job.job_id, "100");
  EXPECT_TRUE(out->deduplicated);
  EXPECT_EQ(client_->calls(), 0);

  // Too old for a 30-minute window: a new backup.
  std::promise<StatusOr<TriggerOutcome>> q;
  orchestrator_->EnsureRecentBackup(Request(), std::chrono::minutes(30),
                                    [&q](StatusOr<TriggerOutcome> o) { q.set_value(o); });
  auto fresh = q.get_future().get();
  ASSERT_TRUE(fresh.ok());
  EXPECT_FALSE(fresh->deduplicated);
  EXPECT_EQ(fresh->job.job_id, "2141");

  // While that one runs, it is the answer.
  std::promise<StatusOr<TriggerOutcome>> r;
  orchestrator_->EnsureRecentBackup(Request(), std::chrono::minutes(30),
                                    [&r](StatusOr<TriggerOutcome> o) { r.set_value(o); });
  auto running = r.get_future().get();
  ASSERT_TRUE(running.ok());
  EXPECT_TRUE(running->deduplicated);
  EXPECT_EQ(running->job.job_id, "2141");
  EXPECT_EQ(client_->calls(), 1);
}

// The largest max_age a Duration allows (about 10,000 years, in milliseconds) reaches before the
// clock's range: "now - max_age" saturates, so any success qualifies. It overflowed before (a
// new backup started seconds after one succeeded); UBSan flags such an overflow.
TEST_F(OrchestratorTest, EnsureRecentBackupWithAHugeMaxAgeAnswersTheLastSuccess) {
  Job done;
  done.commcell = "cs1";
  done.job_id = "100";
  done.state = JobState::kSucceeded;
  done.create_time = clock_.Now() - std::chrono::seconds(20);
  done.end_time = clock_.Now() - std::chrono::seconds(10);
  done.update_time = *done.end_time;
  ASSERT_TRUE(store_->PutJobs({done}).ok());
  for (const auto max_age :
       {std::chrono::milliseconds(std::chrono::seconds(30000000000LL)),
        std::chrono::milliseconds(315576000000LL * 1000 + 999), std::chrono::milliseconds::max()}) {
    std::promise<StatusOr<TriggerOutcome>> p;
    orchestrator_->EnsureRecentBackup(Request(), max_age,
                                      [&p](StatusOr<TriggerOutcome> o) { p.set_value(o); });
    auto out = p.get_future().get();
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(out->job.job_id, "100") << max_age.count();
    EXPECT_TRUE(out->deduplicated);
  }
  EXPECT_EQ(client_->calls(), 0);
}

TEST_F(OrchestratorTest, ReusePolicyAnswersTheRunningJob) {
  client_ = std::make_shared<FakeCommServClient>([](const commserv::DrBackupRequest&) {
    return StatusOr<commserv::DrBackupResult>(Status(StatusCode::kAborted,
                                                     "DR backup job [2100] is already running.",
                                                     Reason::kDrJobAlreadyRunning)
                                                  .With("active_job_id", "2100"));
  });
  orchestrator_.reset();
  tracker_.reset();
  std::vector<CommCell> cells{CommCell{"cs1", "https://cs1/api", client_, OnActive::kReuse}};
  tracker_ = std::make_unique<Tracker>(cells, *store_, metrics_, clock_, hub_, TrackerOptions{});
  orchestrator_ = std::make_unique<Orchestrator>(std::move(cells), *store_, metrics_, clock_, pool_,
                                                 reads_, *tracker_);
  auto out = Trigger(Request("cs1", "reuse-me"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(out->deduplicated);
  EXPECT_EQ(out->job.job_id, "2100");
  EXPECT_EQ((*store_->FindByRequestId("cs1", "reuse-me"))->job_id, "2100");
}

TEST_F(OrchestratorTest, EnsureRecentBackupCountsTheCommServesOwnBackupUnlessAskedForDrgates) {
  Job scheduled;
  scheduled.commcell = "cs1";
  scheduled.job_id = "90";
  scheduled.origin = JobOrigin::kCommserv;
  scheduled.state = JobState::kSucceeded;
  scheduled.create_time = clock_.Now() - std::chrono::minutes(50);
  scheduled.end_time = clock_.Now() - std::chrono::minutes(30);
  scheduled.update_time = *scheduled.end_time;
  ASSERT_TRUE(store_->PutJobs({scheduled}).ok());

  std::promise<StatusOr<TriggerOutcome>> any;
  orchestrator_->EnsureRecentBackup(Request(), std::chrono::hours(2),
                                    [&any](StatusOr<TriggerOutcome> o) { any.set_value(o); });
  auto out = any.get_future().get();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(out->deduplicated);
  EXPECT_EQ(out->job.job_id, "90");
  EXPECT_EQ(out->job.origin, JobOrigin::kCommserv);
  EXPECT_EQ(client_->calls(), 0);

  // Only drgate's own count: the scheduled one does not, so drgate triggers (origin drgate).
  std::promise<StatusOr<TriggerOutcome>> own;
  orchestrator_->EnsureRecentBackup(
      Request(), std::chrono::hours(2), [&own](StatusOr<TriggerOutcome> o) { own.set_value(o); },
      JobOrigin::kDrgate);
  auto fresh = own.get_future().get();
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_FALSE(fresh->deduplicated);
  EXPECT_EQ(fresh->job.job_id, "2141");
  EXPECT_EQ(fresh->job.origin, JobOrigin::kDrgate);
  EXPECT_EQ(client_->calls(), 1);
}

TEST_F(OrchestratorTest, ListCommCellsCarriesTheDrBackupOptionsWhenKnown) {
  DrOptionsHolder holder;
  OrchestratorOptions options;
  options.dr_options = &holder;
  orchestrator_.reset();
  std::vector<CommCell> cells{CommCell{"cs1", "https://cs1/api", client_},
                              CommCell{"cs2", "https://cs2/api", client_}};
  orchestrator_ = std::make_unique<Orchestrator>(std::move(cells), *store_, metrics_, clock_, pool_,
                                                 reads_, *tracker_, options);
  commserv::DrBackupOptions known;
  known.retained_fulls = 5;
  known.network_share = true;
  holder.Set("cs1", DrOptionsHolder::Entry{known, clock_.Now()});

  const std::vector<CommCellInfo> cells_info = orchestrator_->ListCommCells();
  ASSERT_EQ(cells_info.size(), 2u);
  ASSERT_TRUE(cells_info[0].dr_backup_options.has_value());
  EXPECT_EQ(cells_info[0].dr_backup_options->options, known);
  EXPECT_EQ(cells_info[0].dr_backup_options->fetch_time, clock_.Now());
  EXPECT_FALSE(cells_info[1].dr_backup_options.has_value());
}

TEST_F(OrchestratorTest, CancelKillsUpstreamAndReflectsTheState) {
  auto out = Trigger(Request());
  ASSERT_TRUE(out.ok());
  commserv::JobSummary s;
  s.job_id = "2141";
  s.status = "Running";
  client_->SetJob(s);
  std::promise<StatusOr<Job>> p;
  orchestrator_->CancelJob("cs1", "2141", "ops", [&p](StatusOr<Job> j) { p.set_value(j); });
  auto killed = p.get_future().get();
  ASSERT_TRUE(killed.ok()) << killed.status().ToString();
  EXPECT_EQ(killed->state, JobState::kKilled);
  EXPECT_EQ(store_->GetJob("cs1", "2141")->state, JobState::kKilled);
  EXPECT_EQ(client_->kill_calls(), 1);

  std::promise<StatusOr<Job>> again;
  orchestrator_->CancelJob("cs1", "2141", "ops", [&again](StatusOr<Job> j) { again.set_value(j); });
  auto finished = again.get_future().get();
  EXPECT_EQ(finished.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(finished.status().reason(), "JOB_ALREADY_FINISHED");

  std::promise<StatusOr<Job>> missing;
  orchestrator_->CancelJob("cs1", "404", "ops",
                           [&missing](StatusOr<Job> j) { missing.set_value(j); });
  EXPECT_EQ(missing.get_future().get().status().reason(), "JOB_NOT_FOUND");
}

TEST_F(OrchestratorTest, AnOlderRecordWithTheSameJobIdIsReplaced) {
  Job old;
  old.commcell = "cs1";
  old.job_id = "2141";
  old.state = JobState::kUnknown;
  old.request_id = "someone-else";
  old.create_time = clock_.Now() - std::chrono::hours(1);
  old.update_time = old.create_time;
  ASSERT_TRUE(store_->PutJobs({old}).ok());
  auto out = Trigger(Request("cs1", "mine"));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->job.state, JobState::kSubmitted);
  EXPECT_EQ(out->job.request_id, "mine");
  EXPECT_EQ(store_->GetJob("cs1", "2141")->request_id, "mine");
}

// ---- A registry that stalls for some requests
// ----------------------------------------------------

// The registry stalls for chosen (CommCell, request id or job id) pairs: whatever waits on those
// calls, everything else keeps going.
class StalledRegistryTest : public OrchestratorTest {
 protected:
  void SetUp() override {
    store_ = std::make_unique<BlockingJobStore>(std::move(*SqliteJobStore::Open(":memory:")));
    Build({"cs1", "cs2"});
  }
  void TearDown() override { registry().Release(); }
  BlockingJobStore& registry() { return static_cast<BlockingJobStore&>(*store_); }
  std::future<StatusOr<TriggerOutcome>> TriggerAsync(TriggerRequest r) {
    auto p = std::make_shared<std::promise<StatusOr<TriggerOutcome>>>();
    auto f = p->get_future();
    orchestrator_->TriggerBackup(std::move(r),
                                 [p](StatusOr<TriggerOutcome> o) { p->set_value(std::move(o)); });
    return f;
  }
  std::future<StatusOr<Job>> GetJobAsync(const std::string& commcell, const std::string& job_id) {
    auto p = std::make_shared<std::promise<StatusOr<Job>>>();
    auto f = p->get_future();
    orchestrator_->GetJob(commcell, job_id, [p](StatusOr<Job> j) { p->set_value(std::move(j)); });
    return f;
  }
};

TEST_F(StalledRegistryTest, AStalledRequestIdHoldsBackNoOtherRequestIdOrCommCell) {
  registry().Stall("cs1", "stuck");
  auto stuck = TriggerAsync(Request("cs1", "stuck"));
  ASSERT_TRUE(registry().WaitBlocked(1)) << "the lookup of \"stuck\" never reached the registry";
  auto duplicate = TriggerAsync(Request("cs1", "stuck"));

  // While the registry call of "stuck" hangs: other request ids of its CommCell, triggers
  // without a request id, other CommCells and reads all complete.
  auto other = Trigger(Request("cs1", "other"));
  auto elsewhere = Trigger(Request("cs2", "stuck"));
  auto anonymous = Trigger(Request("cs1"));
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status().ToString();
  ASSERT_TRUE(anonymous.ok()) << anonymous.status().ToString();
  EXPECT_EQ(other->job.commcell, "cs1");
  EXPECT_EQ(elsewhere->job.commcell, "cs2");
  EXPECT_FALSE(elsewhere->deduplicated);
  auto read = GetJob("cs1", other->job.job_id);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->request_id, "other");
  EXPECT_EQ(client_->calls(), 3);
  // The stalled request id (and its duplicate, which joined it) waits; nothing went upstream.
  EXPECT_EQ(registry().blocked(), 1);
  EXPECT_EQ(stuck.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  EXPECT_EQ(duplicate.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);

  registry().Release();
  auto first = stuck.get();
  auto second = duplicate.get();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(first->deduplicated);
  EXPECT_TRUE(second->deduplicated);
  EXPECT_EQ(second->job.job_id, first->job.job_id);
  EXPECT_EQ(client_->calls(), 4);  // one POST for "stuck", however many asked
}

TEST_F(StalledRegistryTest, AStalledCommCellHoldsAtMostItsShareOfTheReadPool) {
  auto known = Trigger(Request("cs2", "known"));
  ASSERT_TRUE(known.ok()) << known.status().ToString();
  registry().Stall("cs1");
  constexpr int kReads = 20;
  std::vector<std::future<StatusOr<Job>>> stalled;
  for (int i = 0; i < kReads; ++i) stalled.push_back(GetJobAsync("cs1", std::to_string(i)));
  const int per_key = KeyedPoolOptions{}.per_key;
  ASSERT_TRUE(registry().WaitBlocked(per_key));

  // Reads of the other CommCell answer while cs1's hang.
  auto job = GetJob("cs2", known->job.job_id);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->request_id, "known");
  JobFilter filter;
  filter.commcell = "cs2";
  auto page = ListJobs(filter, 10);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->jobs.size(), 1u);
  EXPECT_EQ(page->jobs[0].job_id, known->job.job_id);
  EXPECT_EQ(registry().max_blocked(), per_key);

  registry().Release();
  for (auto& f : stalled) {
    auto r = f.get();
    EXPECT_EQ(r.status().reason(), "JOB_NOT_FOUND");
    EXPECT_EQ(r.status().metadata().at("commcell"), "cs1");
  }
  EXPECT_EQ(registry().max_blocked(), per_key);
}

TEST_F(StalledRegistryTest, ReadsBeyondACommCellsQueueAreRefusedAtOnceAndTheKeyIsFreed) {
  // A read pool with room for one running and one waiting read per CommCell.
  KeyedThreadPool small({/*threads=*/2, /*per_key=*/1, /*max_queued=*/1});
  std::vector<CommCell> cells{CommCell{"cs1", "https://cs1/api", client_},
                              CommCell{"cs2", "https://cs2/api", client_}};
  Orchestrator orchestrator(cells, *store_, metrics_, clock_, pool_, small, *tracker_);
  registry().Stall("cs1");
  std::promise<StatusOr<Job>> running;
  std::promise<StatusOr<Job>> waiting;
  orchestrator.GetJob("cs1", "1", [&](StatusOr<Job> j) { running.set_value(std::move(j)); });
  ASSERT_TRUE(registry().WaitBlocked(1));
  orchestrator.GetJob("cs1", "2", [&](StatusOr<Job> j) { waiting.set_value(std::move(j)); });

  std::promise<StatusOr<TriggerOutcome>> refused;
  orchestrator.TriggerBackup(Request("cs1", "too-many"),
                             [&](StatusOr<TriggerOutcome> o) { refused.set_value(std::move(o)); });
  auto out = refused.get_future().get();

  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(out.status().reason(), "REGISTRY_UNAVAILABLE");
  EXPECT_EQ(out.status().metadata().at("commcell"), "cs1");
  EXPECT_EQ(client_->calls(), 0);
  registry().Release();
  EXPECT_EQ(running.get_future().get().status().reason(), "JOB_NOT_FOUND");
  EXPECT_EQ(waiting.get_future().get().status().reason(), "JOB_NOT_FOUND");
  // The refused trigger left nothing in flight: the same request id is triggered now.
  std::promise<StatusOr<TriggerOutcome>> retried;
  orchestrator.TriggerBackup(Request("cs1", "too-many"),
                             [&](StatusOr<TriggerOutcome> o) { retried.set_value(std::move(o)); });
  auto again = retried.get_future().get();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->deduplicated);
  EXPECT_EQ(client_->calls(), 1);
}

TEST_F(StalledRegistryTest, ReadsOfOneJobWaitingInTheQueueShareOneRegistryRead) {
  auto known = Trigger(Request("cs1", "watched"));
  ASSERT_TRUE(known.ok()) << known.status().ToString();
  const std::string id = known->job.job_id;
  // One read runs per CommCell and one may wait: the CommCell's queue holds a single read.
  KeyedThreadPool small({/*threads=*/2, /*per_key=*/1, /*max_queued=*/1});
  std::vector<CommCell> cells{CommCell{"cs1", "https://cs1/api", client_}};
  Orchestrator orchestrator(cells, *store_, metrics_, clock_, pool_, small, *tracker_);
  registry().Stall("cs1", "blocker");
  std::promise<StatusOr<Job>> blocker;
  orchestrator.GetJob("cs1", "blocker", [&](StatusOr<Job> j) { blocker.set_value(std::move(j)); });
  ASSERT_TRUE(registry().WaitBlocked(1));
  const int before = registry().returned("GetJob");

  // A thousand watchers of one job while the CommCell's reads are held up: they take the one
  // place in the queue together instead of being refused.
  constexpr int kWatchers = 1000;
  std::vector<std::promise<StatusOr<Job>>> answers(kWatchers);
  for (auto& a : answers) {
    orchestrator.GetJob("cs1", id, [&a](StatusOr<Job> j) { a.set_value(std::move(j)); });
  }
  // The queue is full now: a read of another job is refused at once.
  std::promise<StatusOr<Job>> other;
  orchestrator.GetJob("cs1", "9999", [&](StatusOr<Job> j) { other.set_value(std::move(j)); });
  EXPECT_EQ(other.get_future().get().status().reason(), "REGISTRY_UNAVAILABLE");

  registry().Release();
  EXPECT_EQ(blocker.get_future().get().status().reason(), "JOB_NOT_FOUND");
  for (auto& a : answers) {
    auto job = a.get_future().get();
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    EXPECT_EQ(job->job_id, id);
    EXPECT_EQ(job->request_id, "watched");
  }
  ASSERT_TRUE(registry().WaitReturned("GetJob", before + 2));
  EXPECT_EQ(registry().returned("GetJob"), before + 2);  // the blocker's, and one for all 1000
}

TEST_F(StalledRegistryTest, AReadAlreadyUnderWayIsNotJoined) {
  auto known = Trigger(Request("cs1", "watched"));
  ASSERT_TRUE(known.ok()) << known.status().ToString();
  const std::string id = known->job.job_id;
  registry().Stall("cs1", id);
  auto first = GetJobAsync("cs1", id);
  ASSERT_TRUE(registry().WaitBlocked(1));
  // The first read has begun (it may have begun before a caller's own write): a later caller
  // gets a read of its own.
  auto second = GetJobAsync("cs1", id);
  ASSERT_TRUE(registry().WaitBlocked(2));
  registry().Release();
  EXPECT_EQ(first.get()->request_id, "watched");
  EXPECT_EQ(second.get()->request_id, "watched");
}

// ---- Replicas sharing one registry --------------------------------------------------------------

// Two orchestrators ("replicas"), each with its own CommServe client, tracker and threads, on one
// registry, as drgate replicas on one PostgreSQL database (the registry's unique key on open
// intents is the same on SQLite, so the race is decided the same way).
class SharedRegistryTest : public OrchestratorTest {
 protected:
  void SetUp() override {
    // Counts the registry calls, so a test can wait until a replica has looked at an intent.
    store_ = std::make_unique<BlockingJobStore>(std::move(*SqliteJobStore::Open(":memory:")));
    Build({"cs1"});
    OrchestratorOptions options;
    options.shared_wait = std::chrono::seconds(10);
    options.shared_poll = std::chrono::milliseconds(5);
    BuildShared(options);
  }
  void BuildShared(OrchestratorOptions options) {
    orchestrator_.reset();
    orchestrator_b_.reset();
    std::vector<CommCell> a = {CommCell{"cs1", "https://cs1/api", client_}};
    std::vector<CommCell> b = {CommCell{"cs1", "https://cs1/api", client_b_}};
    tracker_b_ = std::make_unique<Tracker>(b, *store_, metrics_b_, clock_, hub_, TrackerOptions{});
    orchestrator_ = std::make_unique<Orchestrator>(a, *store_, metrics_, clock_, pool_, reads_,
                                                   *tracker_, options);
    orchestrator_b_ = std::make_unique<Orchestrator>(b, *store_, metrics_b_, clock_, pool_b_,
                                                     reads_b_, *tracker_b_, options);
  }
  StatusOr<TriggerOutcome> TriggerOnB(TriggerRequest r) {
    std::promise<StatusOr<TriggerOutcome>> p;
    orchestrator_b_->TriggerBackup(std::move(r),
                                   [&p](StatusOr<TriggerOutcome> o) { p.set_value(std::move(o)); });
    return p.get_future().get();
  }
  // An intent as replica A writes it before its POST.
  int64_t OpenIntentOfA(const std::string& request_id) {
    TriggerIntent intent;
    intent.commcell = "cs1";
    intent.request_id = request_id;
    intent.create_time = clock_.Now();
    return *store_->AddIntent(intent);
  }

  std::shared_ptr<FakeCommServClient> client_b_ = std::make_shared<FakeCommServClient>();
  prometheus::Registry registry_b_;
  Metrics metrics_b_{registry_b_};
  ThreadPool pool_b_{2};
  KeyedThreadPool reads_b_{KeyedPoolOptions{}};
  std::unique_ptr<Tracker> tracker_b_;
  std::unique_ptr<Orchestrator> orchestrator_b_;
};

TEST_F(SharedRegistryTest, ConcurrentTriggersWithOneRequestIdOnTwoReplicasSendOnePost) {
  client_->Hold();
  client_b_->Hold();
  constexpr int kCallsEach = 100;
  std::vector<std::promise<StatusOr<TriggerOutcome>>> ps(2 * kCallsEach);
  for (int i = 0; i < kCallsEach; ++i) {
    orchestrator_->TriggerBackup(Request("cs1", "one-key"),
                                 [&p = ps[2 * i]](auto o) { p.set_value(std::move(o)); });
    orchestrator_b_->TriggerBackup(Request("cs1", "one-key"),
                                   [&p = ps[2 * i + 1]](auto o) { p.set_value(std::move(o)); });
  }
  client_->Release();
  client_b_->Release();

  std::set<std::string> ids;
  int deduplicated = 0;
  for (auto& p : ps) {
    auto o = p.get_future().get();
    ASSERT_TRUE(o.ok()) << o.status().ToString();
    ids.insert(o->job.job_id);
    deduplicated += o->deduplicated;
  }
  EXPECT_EQ(client_->calls() + client_b_->calls(), 1);
  EXPECT_EQ(ids, std::set<std::string>{"2141"});
  EXPECT_EQ(deduplicated, 2 * kCallsEach - 1);
}

TEST_F(SharedRegistryTest, ATriggerInFlightOnAnotherReplicaIsAwaitedAndItsJobAnswered) {
  const int64_t intent = OpenIntentOfA("upgrade-7");
  std::promise<StatusOr<TriggerOutcome>> p;
  orchestrator_b_->TriggerBackup(Request("cs1", "upgrade-7"),
                                 [&p](auto o) { p.set_value(std::move(o)); });
  // Replica A's answer arrives: job and intent closure in one transaction.
  Job job;
  job.commcell = "cs1";
  job.job_id = "777";
  job.request_id = "upgrade-7";
  job.create_time = clock_.Now();
  job.update_time = clock_.Now();
  ASSERT_TRUE(store_->PutJobs({job}, intent).ok());

  auto out = p.get_future().get();

  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->job.job_id, "777");
  EXPECT_TRUE(out->deduplicated);
  EXPECT_EQ(client_b_->calls(), 0);
  EXPECT_EQ(MetricValue(registry_b_, "drgate_backup_triggers_total",
                        {{"commcell", "cs1"}, {"backup_type", "full"}, {"result", "deduplicated"}}),
            1);
}

TEST_F(SharedRegistryTest, AFailedTriggerOnAnotherReplicaIsReportedNotRepeated) {
  const int64_t intent = OpenIntentOfA("upgrade-8");
  std::promise<StatusOr<TriggerOutcome>> p;
  orchestrator_b_->TriggerBackup(Request("cs1", "upgrade-8"),
                                 [&p](auto o) { p.set_value(std::move(o)); });
  // B has seen A's intent open (the request id is free again once it closes without a job).
  ASSERT_TRUE(static_cast<BlockingJobStore&>(*store_).WaitReturned("FindOpenIntent", 1));
  ASSERT_TRUE(
      store_->ResolveIntent(intent, "failed: FAILED_PRECONDITION [UPSTREAM_REJECTED]").ok());

  auto out = p.get_future().get();

  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(out.status().reason(), "CONCURRENT_TRIGGER_FAILED");
  EXPECT_EQ(out.status().metadata().at("commcell"), "cs1");
  EXPECT_EQ(client_b_->calls(), 0);
}

TEST_F(SharedRegistryTest, TheWaitForAnotherReplicaIsBounded) {
  OrchestratorOptions options;
  options.shared_wait = std::chrono::milliseconds(200);
  options.shared_poll = std::chrono::milliseconds(5);
  BuildShared(options);
  OpenIntentOfA("never-answered");
  std::promise<StatusOr<TriggerOutcome>> p;
  auto answer = p.get_future();
  orchestrator_b_->TriggerBackup(Request("cs1", "never-answered"),
                                 [&p](StatusOr<TriggerOutcome> o) { p.set_value(std::move(o)); });

  // The bound is measured on the injected clock: B keeps polling until 200 ms have passed on it.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  clock_.Advance(std::chrono::milliseconds(199));
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  clock_.Advance(std::chrono::milliseconds(1));
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto out = answer.get();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(out.status().reason(), "TRIGGER_OUTCOME_PENDING");
  EXPECT_EQ(client_b_->calls(), 0);
}

}  // namespace
}  // namespace drgate::jobs
