// The JobStore contract, run against every implementation (a factory per implementation): SQLite
// and PostgreSQL (a real server from Debian's postgresql package, started by the test on a
// loopback port, tests/fakes/postgres_server.h). Then what is specific to each: SQLite's pragmas,
// schema versions and file errors; PostgreSQL's errors when the server is away, concurrent
// migrations, and leader election.
//
// The PostgreSQL tests (names starting with "Postgres") share one server per process, so CTest
// runs them as one test (registry_postgres_test) rather than one process each.

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/job.h"
#include "core/common/status.h"
#include "core/registry/fenced_job_store.h"
#include "core/registry/job_store.h"
#include "core/registry/leader_election.h"
#include "core/registry/migrations.h"
#include "core/registry/postgres_job_store.h"
#include "core/registry/postgres_leader_election.h"
#include "core/registry/postgres_tracking_leases.h"
#include "core/registry/sqlite_job_store.h"
#include "tests/fakes/postgres_server.h"

namespace drgate {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Optional;

// Opens a store at `location` (for SQLite a file path; every call with the same location reaches
// the same data). Returns nullptr, after recording a test failure, when it cannot.
using JobStoreFactory = std::function<std::unique_ptr<JobStore>(const std::string& location)>;

struct JobStoreImpl {
  std::string name;
  JobStoreFactory open;
};

std::unique_ptr<JobStore> OpenSqlite(const std::string& location) {
  StatusOr<std::unique_ptr<SqliteJobStore>> store = SqliteJobStore::Open(location);
  if (!store.ok()) {
    ADD_FAILURE() << "SqliteJobStore::Open(" << location << "): " << store.status().ToString();
    return nullptr;
  }
  return std::move(*store);
}

// One PostgreSQL server for every test of the process, started at first use.
testing::PostgresServer& SharedPostgres() {
  static auto* server = new testing::PostgresServer();
  static const bool stop_at_exit = [] {
    std::atexit([] { delete server; });
    return true;
  }();
  (void)stop_at_exit;
  return *server;
}

PostgresStoreOptions PostgresOptions(const std::string& dbname) {
  PostgresStoreOptions options;
  options.endpoint.dsn = SharedPostgres().Dsn(dbname);
  options.endpoint.password = SharedPostgres().password();
  return options;
}

// Each location is one schema of one database, created at its first open (a schema costs far
// less than a database; the store finds its tables through search_path).
std::unique_ptr<JobStore> OpenPostgres(const std::string& location) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : location) hash = (hash ^ c) * 1099511628211ull;
  const std::string schema = "t" + std::to_string(hash);
  static std::mutex mu;
  static std::set<std::string> created;
  {
    std::lock_guard lock(mu);
    if (created.empty()) SharedPostgres().Exec("CREATE DATABASE contract");
    if (created.insert(schema).second) {
      SharedPostgres().Exec("CREATE SCHEMA " + schema, "contract");
    }
  }
  PostgresStoreOptions options = PostgresOptions("contract");
  options.endpoint.dsn += " options='-c search_path=" + schema + "'";
  StatusOr<std::unique_ptr<PostgresJobStore>> store = PostgresJobStore::Open(options);
  if (!store.ok()) {
    ADD_FAILURE() << "PostgresJobStore::Open(" << schema << "): " << store.status().ToString();
    return nullptr;
  }
  return std::move(*store);
}

// A fresh folder per test, removed with everything in it afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "drgate-registry-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TimePoint Ms(int64_t ms) {
  return TimePoint(std::chrono::milliseconds(ms));
}

constexpr int64_t kT0 = 1'700'000'000'123;  // a millisecond-precise time in 2023

// A job with every field set to something other than its default.
Job MakeJob(const std::string& commcell, const std::string& job_id, int64_t create_ms = kT0) {
  Job job;
  job.commcell = commcell;
  job.job_id = job_id;
  job.task_id = 4711;
  job.backup_type = BackupType::kDifferential;
  job.compression = true;
  job.state = JobState::kRunning;
  job.commserv_status = "Running";
  job.percent_complete = 42;
  job.failure_reason = "none yet";
  job.request_id = "req-" + job_id;
  job.requested_by = "spiffe://cluster/ns/ops/sa/upgrader";
  job.create_time = Ms(create_ms);
  job.start_time = Ms(create_ms + 1'000);
  job.end_time = Ms(create_ms + 60'000);
  job.update_time = Ms(create_ms + 61'000);
  return job;
}

TriggerIntent MakeIntent(const std::string& commcell, const std::string& request_id) {
  TriggerIntent intent;
  intent.commcell = commcell;
  intent.backup_type = BackupType::kDifferential;
  intent.compression = true;
  intent.request_id = request_id;
  intent.requested_by = "runbook";
  intent.create_time = Ms(kT0);
  return intent;
}

JobFilter Filter(std::string commcell, std::optional<JobState> state = std::nullopt) {
  JobFilter filter;
  filter.commcell = std::move(commcell);
  filter.state = state;
  return filter;
}

JobFilter StateFilter(JobState state) {
  return Filter("", state);
}

JobFilter TypeFilter(std::string commcell, BackupType type) {
  JobFilter filter = Filter(std::move(commcell));
  filter.backup_type = type;
  return filter;
}

JobFilter TimeFilter(std::optional<TimePoint> created_after,
                     std::optional<TimePoint> created_before) {
  JobFilter filter;
  filter.created_after = created_after;
  filter.created_before = created_before;
  return filter;
}

std::vector<std::string> Ids(const std::vector<Job>& jobs) {
  std::vector<std::string> ids;
  for (const Job& job : jobs) ids.push_back(job.job_id);
  return ids;
}

class JobStoreContractTest : public ::testing::TestWithParam<JobStoreImpl> {
 protected:
  void SetUp() override {
    location_ = (dir_.path() / "registry.db").string();
    store_ = GetParam().open(location_);
    ASSERT_NE(store_, nullptr);
  }

  // Closes the store and opens the same location again.
  void Reopen() {
    store_.reset();
    store_ = GetParam().open(location_);
    ASSERT_NE(store_, nullptr);
  }

  void Put(const std::vector<Job>& jobs) {
    Status s = store_->PutJobs(jobs);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Every job matching `filter`, following next_page_token to the end.
  std::vector<Job> ListAll(const JobFilter& filter, int page_size) {
    std::vector<Job> all;
    std::string token;
    do {
      StatusOr<JobPage> page = store_->ListJobs(filter, page_size, token);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      EXPECT_LE(static_cast<int>(page->jobs.size()), page_size);
      if (!page->next_page_token.empty()) {
        EXPECT_EQ(static_cast<int>(page->jobs.size()), page_size) << "short page with a token";
      }
      all.insert(all.end(), page->jobs.begin(), page->jobs.end());
      token = page->next_page_token;
    } while (!token.empty());
    return all;
  }

  TempDir dir_;
  std::string location_;
  std::unique_ptr<JobStore> store_;
};

// ---- PutJobs / GetJob -----------------------------------------------------------------------

TEST_P(JobStoreContractTest, GetReturnsEveryFieldOfAPutJob) {
  Job job = MakeJob("cc1", "1001");
  Put({job});

  StatusOr<Job> got = store_->GetJob("cc1", "1001");

  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, job);
}

TEST_P(JobStoreContractTest, GetReturnsUnsetOptionalTimesAsUnset) {
  Job job = MakeJob("cc1", "1001");
  job.start_time.reset();
  job.end_time.reset();
  job.state = JobState::kSubmitted;
  job.request_id.clear();
  job.compression = false;
  job.backup_type = BackupType::kFull;
  Put({job});

  StatusOr<Job> got = store_->GetJob("cc1", "1001");

  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->start_time, std::nullopt);
  EXPECT_EQ(got->end_time, std::nullopt);
  EXPECT_EQ(*got, job);
}

TEST_P(JobStoreContractTest, PutOnAnExistingKeyUpdatesTheJob) {
  Job job = MakeJob("cc1", "1001");
  job.end_time.reset();
  Put({job});
  job.state = JobState::kFailed;
  job.commserv_status = "Failed";
  job.percent_complete = 100;
  job.failure_reason = "media agent offline";
  job.end_time = Ms(kT0 + 90'000);
  job.update_time = Ms(kT0 + 91'000);

  Put({job});

  StatusOr<Job> got = store_->GetJob("cc1", "1001");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, job);
  EXPECT_EQ(ListAll({}, 10).size(), 1u);
}

TEST_P(JobStoreContractTest, SameJobIdOnTwoCommCellsIsTwoJobs) {
  Job a = MakeJob("cc1", "1001");
  Job b = MakeJob("cc2", "1001");
  b.state = JobState::kQueued;
  Put({a, b});

  EXPECT_EQ(store_->GetJob("cc1", "1001")->state, JobState::kRunning);
  EXPECT_EQ(store_->GetJob("cc2", "1001")->state, JobState::kQueued);
}

TEST_P(JobStoreContractTest, GetOfAnUnknownJobIsNotFoundNamingCommCellAndJob) {
  Put({MakeJob("cc1", "1001")});

  StatusOr<Job> got = store_->GetJob("cc2", "1001");

  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(got.status().reason(), "JOB_NOT_FOUND");
  EXPECT_THAT(got.status().message(), HasSubstr("'cc2'"));
  EXPECT_THAT(got.status().message(), HasSubstr("'1001'"));
}

TEST_P(JobStoreContractTest, PutOfAJobWithoutIdIsInvalidAndWritesNothing) {
  Job no_id = MakeJob("cc1", "");

  Status s = store_->PutJobs({MakeJob("cc1", "1001"), no_id});

  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetJob("cc1", "1001").status().code(), StatusCode::kNotFound);
}

// ---- FindByRequestId ------------------------------------------------------------------------

TEST_P(JobStoreContractTest, FindByRequestIdOfAnUnknownKeyFindsNothing) {
  Put({MakeJob("cc1", "1001")});

  StatusOr<std::optional<Job>> found = store_->FindByRequestId("cc1", "no-such-request");

  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, std::nullopt);
}

TEST_P(JobStoreContractTest, FindByRequestIdFindsTheJob) {
  Job job = MakeJob("cc1", "1001");
  Put({MakeJob("cc1", "1000"), job});

  StatusOr<std::optional<Job>> found = store_->FindByRequestId("cc1", "req-1001");

  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_THAT(*found, Optional(job));
}

TEST_P(JobStoreContractTest, FindByRequestIdOfSeveralJobsReturnsTheFirstRecorded) {
  // One trigger, several job ids: the CommServe's order, not the ids' order, decides.
  Job first = MakeJob("cc1", "2002");
  Job second = MakeJob("cc1", "1001");
  first.request_id = second.request_id = "req-x";
  Put({first, second});
  Job later = MakeJob("cc1", "0999");
  later.request_id = "req-x";
  Put({later});

  StatusOr<std::optional<Job>> found = store_->FindByRequestId("cc1", "req-x");

  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->job_id, "2002");
}

TEST_P(JobStoreContractTest, FindByRequestIdIsPerCommCell) {
  Job a = MakeJob("cc1", "1001");
  Job b = MakeJob("cc2", "5005");
  a.request_id = b.request_id = "req-x";
  Put({a, b});

  EXPECT_EQ(store_->FindByRequestId("cc1", "req-x")->value().job_id, "1001");
  EXPECT_EQ(store_->FindByRequestId("cc2", "req-x")->value().job_id, "5005");
  EXPECT_EQ(*store_->FindByRequestId("cc3", "req-x"), std::nullopt);
}

TEST_P(JobStoreContractTest, FindByEmptyRequestIdFindsNothing) {
  Job job = MakeJob("cc1", "1001");
  job.request_id.clear();
  Put({job});

  StatusOr<std::optional<Job>> found = store_->FindByRequestId("cc1", "");

  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, std::nullopt);
}

// ---- ListJobs -------------------------------------------------------------------------------

TEST_P(JobStoreContractTest, ListJobsIsNewestFirst) {
  Put({MakeJob("cc1", "1", kT0 + 10), MakeJob("cc1", "3", kT0 + 30),
       MakeJob("cc2", "2", kT0 + 20)});

  StatusOr<JobPage> page = store_->ListJobs({}, 10, "");

  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_THAT(Ids(page->jobs), ElementsAre("3", "2", "1"));
  EXPECT_EQ(page->next_page_token, "");
}

TEST_P(JobStoreContractTest, ListJobsOfAnEmptyRegistryIsOneEmptyPage) {
  StatusOr<JobPage> page = store_->ListJobs({}, 10, "");

  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_THAT(page->jobs, IsEmpty());
  EXPECT_EQ(page->next_page_token, "");
}

class ListJobsFilterTest : public JobStoreContractTest {
 protected:
  void SetUp() override {
    JobStoreContractTest::SetUp();
    Job a = MakeJob("cc1", "a", kT0 + 1);
    Job b = MakeJob("cc1", "b", kT0 + 2);
    Job c = MakeJob("cc2", "c", kT0 + 3);
    Job d = MakeJob("cc2", "d", kT0 + 4);
    a.state = JobState::kFailed;
    c.state = JobState::kFailed;
    Put({a, b, c, d});
  }
};

TEST_P(ListJobsFilterTest, ByCommCell) {
  EXPECT_THAT(Ids(ListAll(Filter("cc1"), 10)), ElementsAre("b", "a"));
  EXPECT_THAT(Ids(ListAll(Filter("cc3"), 10)), IsEmpty());
}

TEST_P(ListJobsFilterTest, ByState) {
  EXPECT_THAT(Ids(ListAll(StateFilter(JobState::kFailed), 10)), ElementsAre("c", "a"));
  EXPECT_THAT(Ids(ListAll(StateFilter(JobState::kKilled), 10)), IsEmpty());
}

TEST_P(ListJobsFilterTest, ByCommCellAndState) {
  EXPECT_THAT(Ids(ListAll(Filter("cc2", JobState::kRunning), 10)), ElementsAre("d"));
}

// Six jobs, one per millisecond, over two CommCells, both types and three states:
//   id  commcell  type          state      create_time
//   a   cc1       full          succeeded  kT0 + 1
//   b   cc1       differential  succeeded  kT0 + 2
//   c   cc1       full          running    kT0 + 3
//   d   cc2       full          succeeded  kT0 + 4
//   e   cc2       differential  running    kT0 + 5
//   f   cc1       differential  failed     kT0 + 6
class ListJobsTypeAndTimeFilterTest : public JobStoreContractTest {
 protected:
  void SetUp() override {
    JobStoreContractTest::SetUp();
    struct Row {
      const char* commcell;
      const char* id;
      BackupType type;
      JobState state;
    };
    const Row rows[] = {
        {"cc1", "a", BackupType::kFull, JobState::kSucceeded},
        {"cc1", "b", BackupType::kDifferential, JobState::kSucceeded},
        {"cc1", "c", BackupType::kFull, JobState::kRunning},
        {"cc2", "d", BackupType::kFull, JobState::kSucceeded},
        {"cc2", "e", BackupType::kDifferential, JobState::kRunning},
        {"cc1", "f", BackupType::kDifferential, JobState::kFailed},
    };
    for (size_t i = 0; i < std::size(rows); ++i) {
      Job job = MakeJob(rows[i].commcell, rows[i].id, kT0 + 1 + static_cast<int64_t>(i));
      job.backup_type = rows[i].type;
      job.state = rows[i].state;
      jobs_.push_back(job);
    }
    Put(jobs_);
  }

  // The ids `filter` should list, newest first, computed from the JobFilter contract.
  std::vector<std::string> Expected(const JobFilter& filter) const {
    std::vector<std::string> ids;
    for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) {
      const Job& job = *it;
      if (!filter.commcell.empty() && job.commcell != filter.commcell) continue;
      if (filter.state && job.state != *filter.state) continue;
      if (filter.backup_type && job.backup_type != *filter.backup_type) continue;
      if (filter.created_after && job.create_time < *filter.created_after) continue;
      if (filter.created_before && !(job.create_time < *filter.created_before)) continue;
      ids.push_back(job.job_id);
    }
    return ids;
  }

  std::vector<Job> jobs_;
};

TEST_P(ListJobsTypeAndTimeFilterTest, ByBackupType) {
  EXPECT_THAT(Ids(ListAll(TypeFilter("", BackupType::kFull), 10)), ElementsAre("d", "c", "a"));
  EXPECT_THAT(Ids(ListAll(TypeFilter("", BackupType::kDifferential), 10)),
              ElementsAre("f", "e", "b"));
}

TEST_P(ListJobsTypeAndTimeFilterTest, ByCommCellAndBackupType) {
  EXPECT_THAT(Ids(ListAll(TypeFilter("cc1", BackupType::kFull), 10)), ElementsAre("c", "a"));
  EXPECT_THAT(Ids(ListAll(TypeFilter("cc1", BackupType::kDifferential), 10)),
              ElementsAre("f", "b"));
  EXPECT_THAT(Ids(ListAll(TypeFilter("cc3", BackupType::kFull), 10)), IsEmpty());
}

TEST_P(ListJobsTypeAndTimeFilterTest, ByStateAndBackupType) {
  JobFilter filter = TypeFilter("", BackupType::kFull);
  filter.state = JobState::kSucceeded;
  EXPECT_THAT(Ids(ListAll(filter, 10)), ElementsAre("d", "a"));
  filter.commcell = "cc1";
  EXPECT_THAT(Ids(ListAll(filter, 10)), ElementsAre("a"));
  filter.state = JobState::kFailed;
  EXPECT_THAT(Ids(ListAll(filter, 10)), IsEmpty());
}

TEST_P(ListJobsTypeAndTimeFilterTest, TimeRangeIncludesItsStartAndExcludesItsEnd) {
  EXPECT_THAT(Ids(ListAll(TimeFilter(Ms(kT0 + 2), Ms(kT0 + 5)), 10)), ElementsAre("d", "c", "b"));
  EXPECT_THAT(Ids(ListAll(TimeFilter(Ms(kT0 + 5), std::nullopt), 10)), ElementsAre("f", "e"));
  EXPECT_THAT(Ids(ListAll(TimeFilter(std::nullopt, Ms(kT0 + 2)), 10)), ElementsAre("a"));
}

TEST_P(ListJobsTypeAndTimeFilterTest, TimeRangeBetweenMillisecondsIsExact) {
  // Stored times are whole milliseconds; a bound 1 ns past kT0 + 2 excludes the job at kT0 + 2
  // from below, and a bound 1 ns past kT0 + 4 includes the job at kT0 + 4 from above.
  const auto ns = std::chrono::nanoseconds(1);
  EXPECT_THAT(Ids(ListAll(TimeFilter(Ms(kT0 + 2) + ns, Ms(kT0 + 4) + ns), 10)),
              ElementsAre("d", "c"));
  EXPECT_THAT(Ids(ListAll(TimeFilter(Ms(kT0 + 2) - ns, Ms(kT0 + 4) - ns), 10)),
              ElementsAre("c", "b"));
}

TEST_P(ListJobsTypeAndTimeFilterTest, EmptyTimeRangeListsNothing) {
  EXPECT_THAT(Ids(ListAll(TimeFilter(Ms(kT0 + 3), Ms(kT0 + 3)), 10)), IsEmpty());
  EXPECT_THAT(Ids(ListAll(TimeFilter(Ms(kT0 + 5), Ms(kT0 + 2)), 10)), IsEmpty());
}

TEST_P(ListJobsTypeAndTimeFilterTest, EveryCombinationOfCriteriaInPagesOfOneAndOfTen) {
  const std::vector<std::string> commcells = {"", "cc1", "cc2"};
  const std::vector<std::optional<JobState>> states = {std::nullopt, JobState::kSucceeded,
                                                       JobState::kRunning};
  const std::vector<std::optional<BackupType>> types = {std::nullopt, BackupType::kFull,
                                                        BackupType::kDifferential};
  const std::vector<std::optional<TimePoint>> afters = {std::nullopt, Ms(kT0 + 2)};
  const std::vector<std::optional<TimePoint>> befores = {std::nullopt, Ms(kT0 + 6)};
  int combinations = 0;
  for (const std::string& commcell : commcells) {
    for (const std::optional<JobState>& state : states) {
      for (const std::optional<BackupType>& type : types) {
        for (const std::optional<TimePoint>& after : afters) {
          for (const std::optional<TimePoint>& before : befores) {
            JobFilter filter = TimeFilter(after, before);
            filter.commcell = commcell;
            filter.state = state;
            filter.backup_type = type;
            SCOPED_TRACE("commcell '" + commcell + "' state " +
                         (state ? JobStateName(*state) : "*") + " type " +
                         (type ? BackupTypeName(*type) : "*") + " after " + (after ? "+2" : "*") +
                         " before " + (before ? "+6" : "*"));
            EXPECT_EQ(Ids(ListAll(filter, 1)), Expected(filter));
            EXPECT_EQ(Ids(ListAll(filter, 10)), Expected(filter));
            ++combinations;
          }
        }
      }
    }
  }
  EXPECT_EQ(combinations, 108);
  // The oracle itself, on one combination worked out by hand.
  JobFilter filter = TimeFilter(Ms(kT0 + 2), Ms(kT0 + 6));
  filter.commcell = "cc1";
  EXPECT_THAT(Expected(filter), ElementsAre("c", "b"));
}

// 2,500 jobs on two CommCells, with several jobs per millisecond so that ties are broken by the
// cursor's commcell and job id.
class ListJobsPagingTest : public JobStoreContractTest {
 protected:
  static constexpr int kJobs = 2500;

  void SetUp() override {
    JobStoreContractTest::SetUp();
    std::vector<Job> jobs;
    for (int i = 0; i < kJobs; ++i) {
      Job job = MakeJob(i % 2 == 0 ? "cc1" : "cc2", std::to_string(100000 + i), kT0 + i / 5);
      job.state = i % 3 == 0 ? JobState::kSucceeded : JobState::kRunning;
      job.backup_type = i % 4 < 2 ? BackupType::kFull : BackupType::kDifferential;
      jobs.push_back(job);
    }
    Put(jobs);
  }

  // Each job exactly once, newest first.
  static void ExpectEachOnceNewestFirst(const std::vector<Job>& jobs, size_t expected_count) {
    std::set<std::pair<std::string, std::string>> seen;
    for (size_t i = 0; i < jobs.size(); ++i) {
      EXPECT_TRUE(seen.emplace(jobs[i].commcell, jobs[i].job_id).second)
          << "visited twice: " << jobs[i].commcell << "/" << jobs[i].job_id;
      if (i > 0) {
        EXPECT_GE(jobs[i - 1].create_time, jobs[i].create_time) << "at " << i;
      }
    }
    EXPECT_EQ(seen.size(), expected_count);
  }
};

TEST_P(ListJobsPagingTest, PagesOf1000VisitEachJobOnce) {
  StatusOr<JobPage> first = store_->ListJobs({}, 1000, "");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->jobs.size(), 1000u);
  EXPECT_NE(first->next_page_token, "");

  ExpectEachOnceNewestFirst(ListAll({}, 1000), kJobs);
}

TEST_P(ListJobsPagingTest, PagesOf7VisitEachJobOnce) {
  ExpectEachOnceNewestFirst(ListAll({}, 7), kJobs);
}

TEST_P(ListJobsPagingTest, FilteredPagesVisitEachMatchingJobOnce) {
  ExpectEachOnceNewestFirst(ListAll(Filter("cc2"), 7), kJobs / 2);
  // i % 3 == 0 among i in [0, 2500): 834 jobs; of those on cc1 (i even): i % 6 == 0, 417.
  ExpectEachOnceNewestFirst(ListAll(StateFilter(JobState::kSucceeded), 7), 834);
  ExpectEachOnceNewestFirst(ListAll(Filter("cc1", JobState::kSucceeded), 7), 417);
  // Full: i % 4 < 2, 1250 jobs; of those on cc1: i % 4 == 0, 625.
  ExpectEachOnceNewestFirst(ListAll(TypeFilter("", BackupType::kFull), 7), 1250);
  ExpectEachOnceNewestFirst(ListAll(TypeFilter("cc1", BackupType::kFull), 7), 625);
}

TEST_P(ListJobsPagingTest, TimeRangedPagesVisitEachJobInTheRangeOnce) {
  // create_time is kT0 + i / 5: [kT0 + 100, kT0 + 300) holds i in [500, 1500).
  std::vector<Job> all = ListAll(TimeFilter(Ms(kT0 + 100), Ms(kT0 + 300)), 7);
  ExpectEachOnceNewestFirst(all, 1000);
  ASSERT_EQ(all.size(), 1000u);
  EXPECT_EQ(all.front().job_id, "101499");
  EXPECT_EQ(all.back().job_id, "100500");
  // Of those, on cc2 (i odd) and full (i % 4 == 1): 250.
  JobFilter filter = TypeFilter("cc2", BackupType::kFull);
  filter.created_after = Ms(kT0 + 100);
  filter.created_before = Ms(kT0 + 300);
  ExpectEachOnceNewestFirst(ListAll(filter, 7), 250);
  filter.state = JobState::kSucceeded;  // and i % 3 == 0: i % 12 == 9, 501 to 1497, 84
  ExpectEachOnceNewestFirst(ListAll(filter, 7), 84);
}

TEST_P(ListJobsPagingTest, LastPageHasNoToken) {
  StatusOr<JobPage> page = store_->ListJobs({}, 1000, "");
  ASSERT_TRUE(page.ok());
  page = store_->ListJobs({}, 1000, page->next_page_token);
  ASSERT_TRUE(page.ok());
  page = store_->ListJobs({}, 1000, page->next_page_token);
  ASSERT_TRUE(page.ok());

  EXPECT_EQ(page->jobs.size(), 500u);
  EXPECT_EQ(page->next_page_token, "");
}

TEST_P(ListJobsPagingTest, ExactlyFullLastPageHasNoToken) {
  StatusOr<JobPage> page = store_->ListJobs({}, 500, "");
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(page.ok());
    page = store_->ListJobs({}, 500, page->next_page_token);
  }
  ASSERT_TRUE(page.ok());

  EXPECT_EQ(page->jobs.size(), 500u);
  EXPECT_EQ(page->next_page_token, "");
}

TEST_P(ListJobsPagingTest, MalformedTokenIsInvalidPageToken) {
  StatusOr<JobPage> first = store_->ListJobs({}, 10, "");
  ASSERT_TRUE(first.ok());
  std::string token = first->next_page_token;
  std::string flipped = token;
  flipped[token.size() / 2] = flipped[token.size() / 2] == 'A' ? 'B' : 'A';

  for (const std::string& bad : {std::string("garbage"), std::string("!!!!"), std::string("A"),
                                 token.substr(0, token.size() - 3), flipped, token + "AAAA"}) {
    StatusOr<JobPage> page = store_->ListJobs({}, 10, bad);
    ASSERT_FALSE(page.ok()) << "accepted token " << bad;
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(page.status().reason(), "INVALID_PAGE_TOKEN") << bad;
  }
}

TEST_P(ListJobsPagingTest, TokenFromAnotherFilterIsInvalidPageToken) {
  StatusOr<JobPage> first = store_->ListJobs(Filter("cc1"), 10, "");
  ASSERT_TRUE(first.ok());

  JobFilter with_after = Filter("cc1");
  with_after.created_after = Ms(kT0);
  JobFilter with_before = Filter("cc1");
  with_before.created_before = Ms(kT0 + 1000);
  for (const JobFilter& other :
       {JobFilter{}, Filter("cc2"), Filter("cc1", JobState::kRunning),
        TypeFilter("cc1", BackupType::kFull), TypeFilter("cc1", BackupType::kDifferential),
        with_after, with_before}) {
    StatusOr<JobPage> page = store_->ListJobs(other, 10, first->next_page_token);
    ASSERT_FALSE(page.ok());
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(page.status().reason(), "INVALID_PAGE_TOKEN");
  }
}

TEST_P(ListJobsPagingTest, TokenFromAnotherTypeOrTimeRangeIsInvalidPageToken) {
  JobFilter filter = TypeFilter("cc1", BackupType::kFull);
  filter.created_after = Ms(kT0 + 10);
  filter.created_before = Ms(kT0 + 400);
  StatusOr<JobPage> first = store_->ListJobs(filter, 10, "");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_NE(first->next_page_token, "");
  ASSERT_TRUE(store_->ListJobs(filter, 10, first->next_page_token).ok());

  JobFilter no_type = filter;
  no_type.backup_type.reset();
  JobFilter other_type = filter;
  other_type.backup_type = BackupType::kDifferential;
  JobFilter other_after = filter;
  other_after.created_after = Ms(kT0 + 11);
  JobFilter no_after = filter;
  no_after.created_after.reset();
  JobFilter other_before = filter;
  other_before.created_before = Ms(kT0 + 399);
  JobFilter no_before = filter;
  no_before.created_before.reset();
  for (const JobFilter& other :
       {no_type, other_type, other_after, no_after, other_before, no_before}) {
    StatusOr<JobPage> page = store_->ListJobs(other, 10, first->next_page_token);
    ASSERT_FALSE(page.ok());
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(page.status().reason(), "INVALID_PAGE_TOKEN");
  }
}

TEST_P(ListJobsPagingTest, PageSizeOutsideOneToThousandIsInvalidPageSize) {
  for (int size : {0, -1, 1001}) {
    StatusOr<JobPage> page = store_->ListJobs({}, size, "");
    ASSERT_FALSE(page.ok()) << size;
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument) << size;
    EXPECT_EQ(page.status().reason(), "INVALID_PAGE_SIZE") << size;
  }
  EXPECT_EQ(store_->ListJobs({}, 1, "")->jobs.size(), 1u);
  EXPECT_EQ(store_->ListJobs({}, 1000, "")->jobs.size(), 1000u);
}

// ---- ListActiveJobs -------------------------------------------------------------------------

TEST_P(JobStoreContractTest, ListActiveJobsReturnsExactlyTheNonTerminalJobs) {
  std::vector<Job> jobs;
  std::set<std::string> active;
  for (int s = 1; s <= 9; ++s) {
    Job job = MakeJob("cc1", std::to_string(s), kT0 + s);
    job.state = static_cast<JobState>(s);
    if (!IsTerminal(job.state)) active.insert(job.job_id);
    jobs.push_back(job);
  }
  Put(jobs);

  StatusOr<std::vector<Job>> listed = store_->ListActiveJobs();

  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  std::vector<std::string> ids = Ids(*listed);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), active);
  EXPECT_EQ(ids.size(), active.size());
}

TEST_P(JobStoreContractTest, AJobThatFinishesLeavesTheActiveList) {
  Job job = MakeJob("cc1", "1001");
  Put({job});
  job.state = JobState::kSucceeded;
  Put({job});

  EXPECT_THAT(*store_->ListActiveJobs(), IsEmpty());
}

// ---- LatestJob ------------------------------------------------------------------------------

// A job of cc1, full, with the given state and times (end_time unset when `end_ms` is 0).
Job TimedJob(const std::string& job_id, JobState state, int64_t create_ms, int64_t end_ms) {
  Job job = MakeJob("cc1", job_id, create_ms);
  job.backup_type = BackupType::kFull;
  job.state = state;
  job.end_time = end_ms == 0 ? std::nullopt : std::optional<TimePoint>(Ms(end_ms));
  job.update_time = Ms(std::max(create_ms, end_ms) + 1);
  return job;
}

const std::vector<JobState> kNonTerminalStates = {JobState::kSubmitted, JobState::kQueued,
                                                  JobState::kRunning, JobState::kSuspended,
                                                  JobState::kUnknown};

TEST_P(JobStoreContractTest, LatestJobIsTheLatestToEndNotToStart) {
  Job early_end = TimedJob("1", JobState::kSucceeded, kT0 + 10, kT0 + 50);
  Job late_end = TimedJob("2", JobState::kSucceeded, kT0, kT0 + 100);
  Put({early_end, late_end});

  StatusOr<std::optional<Job>> latest =
      store_->LatestJob("cc1", BackupType::kFull, {JobState::kSucceeded});

  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_THAT(*latest, Optional(late_end));
}

TEST_P(JobStoreContractTest, LatestJobMatchesOnlyItsCommCellTypeAndStates) {
  Job wanted = TimedJob("1", JobState::kSucceeded, kT0, kT0 + 100);
  Job other_state = TimedJob("2", JobState::kSucceededWithErrors, kT0, kT0 + 900);
  Job other_type = TimedJob("3", JobState::kSucceeded, kT0, kT0 + 900);
  other_type.backup_type = BackupType::kDifferential;
  Job other_commcell = TimedJob("4", JobState::kSucceeded, kT0, kT0 + 900);
  other_commcell.commcell = "cc2";
  Put({wanted, other_state, other_type, other_commcell});

  EXPECT_THAT(*store_->LatestJob("cc1", BackupType::kFull, {JobState::kSucceeded}),
              Optional(wanted));
  EXPECT_THAT(*store_->LatestJob("cc1", BackupType::kFull,
                                 {JobState::kSucceeded, JobState::kSucceededWithErrors}),
              Optional(other_state));
  EXPECT_THAT(*store_->LatestJob("cc1", BackupType::kDifferential, {JobState::kSucceeded}),
              Optional(other_type));
  EXPECT_THAT(*store_->LatestJob("cc2", BackupType::kFull, {JobState::kSucceeded}),
              Optional(other_commcell));
  EXPECT_EQ(*store_->LatestJob("cc1", BackupType::kFull, {JobState::kFailed}), std::nullopt);
  EXPECT_EQ(*store_->LatestJob("cc3", BackupType::kFull, {JobState::kSucceeded}), std::nullopt);
}

TEST_P(JobStoreContractTest, OriginIsStoredAndLatestJobAnswersAnyOriginOrOne) {
  Job ours = TimedJob("1", JobState::kSucceeded, kT0, kT0 + 100);
  Job scheduled = TimedJob("2", JobState::kSucceeded, kT0 + 200, kT0 + 300);
  scheduled.origin = JobOrigin::kCommserv;
  scheduled.request_id.clear();
  scheduled.requested_by.clear();
  Put({ours, scheduled});

  EXPECT_EQ(store_->GetJob("cc1", "2")->origin, JobOrigin::kCommserv);
  EXPECT_EQ(store_->GetJob("cc1", "1")->origin, JobOrigin::kDrgate);
  EXPECT_THAT(*store_->LatestJob("cc1", BackupType::kFull, {JobState::kSucceeded}),
              Optional(scheduled));
  EXPECT_THAT(
      *store_->LatestJob("cc1", BackupType::kFull, {JobState::kSucceeded}, JobOrigin::kDrgate),
      Optional(ours));
  EXPECT_THAT(
      *store_->LatestJob("cc1", BackupType::kFull, {JobState::kSucceeded}, JobOrigin::kCommserv),
      Optional(scheduled));
  EXPECT_EQ(*store_->LatestJob("cc1", BackupType::kFull, {JobState::kFailed}, JobOrigin::kDrgate),
            std::nullopt);

  // An upsert may change the origin (the writer knows best).
  scheduled.origin = JobOrigin::kDrgate;
  Put({scheduled});
  EXPECT_EQ(store_->GetJob("cc1", "2")->origin, JobOrigin::kDrgate);
}

TEST_P(JobStoreContractTest, ListJobsFiltersByOriginAndPagesWithinIt) {
  std::vector<Job> jobs;
  for (int i = 0; i < 6; ++i) {
    Job job = MakeJob("cc1", std::to_string(i), kT0 + i);
    job.origin = i % 2 == 0 ? JobOrigin::kCommserv : JobOrigin::kDrgate;
    jobs.push_back(job);
  }
  Put(jobs);
  JobFilter commserv = Filter("cc1");
  commserv.origin = JobOrigin::kCommserv;
  EXPECT_THAT(Ids(ListAll(commserv, 2)), ElementsAre("4", "2", "0"));
  JobFilter drgate;
  drgate.origin = JobOrigin::kDrgate;
  EXPECT_THAT(Ids(ListAll(drgate, 1)), ElementsAre("5", "3", "1"));
  EXPECT_THAT(Ids(ListAll(Filter("cc1"), 10)), ElementsAre("5", "4", "3", "2", "1", "0"));
  // A page token of one origin filter does not fit another.
  StatusOr<JobPage> first = store_->ListJobs(commserv, 1, "");
  ASSERT_TRUE(first.ok());
  StatusOr<JobPage> mixed = store_->ListJobs(drgate, 1, first->next_page_token);
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.status().code(), StatusCode::kInvalidArgument);
}

TEST_P(JobStoreContractTest, LatestJobWithoutEndTimeCountsFromCreateTime) {
  // coalesce(end_time, create_time): running (no end) at +50 beats queued (no end) at +30 and a
  // suspended job that started earlier but has an end_time of +40.
  Job queued = TimedJob("1", JobState::kQueued, kT0 + 30, 0);
  Job running = TimedJob("2", JobState::kRunning, kT0 + 50, 0);
  Job suspended = TimedJob("3", JobState::kSuspended, kT0, kT0 + 40);
  Job succeeded = TimedJob("4", JobState::kSucceeded, kT0 + 60, kT0 + 70);
  Put({queued, running, suspended, succeeded});

  EXPECT_THAT(*store_->LatestJob("cc1", BackupType::kFull, kNonTerminalStates), Optional(running));
  EXPECT_THAT(
      *store_->LatestJob("cc1", BackupType::kFull, {JobState::kQueued, JobState::kSuspended}),
      Optional(suspended));
  EXPECT_THAT(*store_->LatestJob("cc1", BackupType::kFull, {JobState::kQueued}), Optional(queued));
}

TEST_P(JobStoreContractTest, LatestJobAfterAnUpdateUsesTheNewState) {
  Job job = TimedJob("1", JobState::kRunning, kT0, 0);
  Put({job});
  ASSERT_THAT(*store_->LatestJob("cc1", BackupType::kFull, kNonTerminalStates), Optional(job));
  job.state = JobState::kSucceeded;
  job.end_time = Ms(kT0 + 500);
  Put({job});

  EXPECT_EQ(*store_->LatestJob("cc1", BackupType::kFull, kNonTerminalStates), std::nullopt);
  EXPECT_THAT(*store_->LatestJob("cc1", BackupType::kFull, {JobState::kSucceeded}), Optional(job));
}

TEST_P(JobStoreContractTest, LatestJobOfEquallyRecentJobsIsTheGreatestJobId) {
  Job a = TimedJob("1001", JobState::kSucceeded, kT0, kT0 + 100);
  Job b = TimedJob("1002", JobState::kFailed, kT0 + 100, 0);  // coalesce: create_time, +100
  Job c = TimedJob("0999", JobState::kSucceeded, kT0 + 10, kT0 + 100);
  Put({a, b, c});

  EXPECT_THAT(*store_->LatestJob("cc1", BackupType::kFull, {JobState::kSucceeded}), Optional(a));
  EXPECT_THAT(
      *store_->LatestJob("cc1", BackupType::kFull, {JobState::kSucceeded, JobState::kFailed}),
      Optional(b));
}

TEST_P(JobStoreContractTest, LatestJobOfNoStatesIsNothing) {
  Put({TimedJob("1", JobState::kSucceeded, kT0, kT0 + 100)});

  StatusOr<std::optional<Job>> latest = store_->LatestJob("cc1", BackupType::kFull, {});

  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(*latest, std::nullopt);
}

TEST_P(JobStoreContractTest, LatestJobAcceptsEveryStateAndRepeatedStates) {
  std::vector<Job> jobs;
  std::vector<JobState> all_twice;
  for (int s = 1; s <= 9; ++s) {
    jobs.push_back(TimedJob(std::to_string(s), static_cast<JobState>(s), kT0, kT0 + 100 * s));
    all_twice.push_back(static_cast<JobState>(s));
    all_twice.push_back(static_cast<JobState>(s));
  }
  Put(jobs);

  StatusOr<std::optional<Job>> latest = store_->LatestJob("cc1", BackupType::kFull, all_twice);

  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_THAT(*latest, Optional(jobs.back()));  // unknown, ended at +900
}

// ---- PruneTerminalJobs ----------------------------------------------------------------------

TEST_P(JobStoreContractTest, PruneDeletesExactlyTheTerminalJobsFinishedBeforeTheCutoff) {
  std::vector<Job> jobs;
  std::set<std::string> kept;
  for (int s = 1; s <= 9; ++s) {
    Job job = TimedJob(std::to_string(s), static_cast<JobState>(s), kT0, kT0 + 100);
    if (!IsTerminal(job.state)) kept.insert(job.job_id);
    jobs.push_back(job);
  }
  Job finished_later = TimedJob("late", JobState::kSucceeded, kT0, kT0 + 1000);
  Job finished_at_cutoff = TimedJob("at", JobState::kFailed, kT0, kT0 + 500);
  kept.insert({"late", "at"});
  jobs.push_back(finished_later);
  jobs.push_back(finished_at_cutoff);
  Put(jobs);

  StatusOr<int64_t> deleted = store_->PruneTerminalJobs(Ms(kT0 + 500), 100);

  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 4);  // succeeded, succeeded_with_errors, failed, killed
  std::vector<std::string> ids = Ids(ListAll({}, 100));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), kept);
  EXPECT_EQ(ids.size(), kept.size());
  EXPECT_EQ(store_->GetJob("cc1", "5").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->FindByRequestId("cc1", "req-5"), std::nullopt);
  EXPECT_EQ(*store_->LatestJob("cc1", BackupType::kFull, {JobState::kKilled}), std::nullopt);
}

TEST_P(JobStoreContractTest, PruneNeverDeletesANonTerminalJobHoweverOld) {
  std::vector<Job> jobs;
  for (JobState state : kNonTerminalStates) {
    jobs.push_back(TimedJob(JobStateName(state), state, kT0, kT0 + 1));
    jobs.back().update_time = Ms(kT0 + 2);
  }
  Put(jobs);

  StatusOr<int64_t> deleted = store_->PruneTerminalJobs(Ms(kT0 + 1'000'000'000), 1000);

  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 0);
  EXPECT_EQ(ListAll({}, 100).size(), kNonTerminalStates.size());
  EXPECT_EQ(store_->ListActiveJobs()->size(), kNonTerminalStates.size());
}

TEST_P(JobStoreContractTest, PruneOfAJobWithoutEndTimeUsesItsUpdateTime) {
  Job old_update = TimedJob("1", JobState::kKilled, kT0, 0);
  old_update.update_time = Ms(kT0 + 100);
  Job new_update = TimedJob("2", JobState::kKilled, kT0, 0);
  new_update.update_time = Ms(kT0 + 300);
  // end_time wins over update_time when set.
  Job late_end = TimedJob("3", JobState::kSucceeded, kT0, kT0 + 300);
  late_end.update_time = Ms(kT0 + 100);
  Put({old_update, new_update, late_end});

  StatusOr<int64_t> deleted = store_->PruneTerminalJobs(Ms(kT0 + 200), 100);

  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 1);
  EXPECT_THAT(Ids(ListAll({}, 100)), ElementsAre("3", "2"));
}

TEST_P(JobStoreContractTest, PruneDeletesAtMostMaxRowsOldestFirst) {
  std::vector<Job> jobs;
  for (int i = 1; i <= 5; ++i) {
    jobs.push_back(TimedJob(std::to_string(i), JobState::kSucceeded, kT0 + i, kT0 + 100 - i));
  }
  Put(jobs);  // job 5 finished first, job 1 last

  EXPECT_EQ(*store_->PruneTerminalJobs(Ms(kT0 + 1000), 2), 2);
  EXPECT_THAT(Ids(ListAll({}, 100)), ElementsAre("3", "2", "1"));
  EXPECT_EQ(*store_->PruneTerminalJobs(Ms(kT0 + 1000), 2), 2);
  EXPECT_THAT(Ids(ListAll({}, 100)), ElementsAre("1"));
  EXPECT_EQ(*store_->PruneTerminalJobs(Ms(kT0 + 1000), 2), 1);
  EXPECT_EQ(*store_->PruneTerminalJobs(Ms(kT0 + 1000), 2), 0);
  EXPECT_THAT(ListAll({}, 100), IsEmpty());
}

TEST_P(JobStoreContractTest, PruneWithMaxRowsBelowOneIsInvalidAndDeletesNothing) {
  Put({TimedJob("1", JobState::kSucceeded, kT0, kT0 + 1)});

  for (int max_rows : {0, -1}) {
    StatusOr<int64_t> deleted = store_->PruneTerminalJobs(Ms(kT0 + 1000), max_rows);
    ASSERT_FALSE(deleted.ok()) << max_rows;
    EXPECT_EQ(deleted.status().code(), StatusCode::kInvalidArgument) << max_rows;
    EXPECT_EQ(deleted.status().reason(), "INVALID_MAX_ROWS") << max_rows;
  }
  EXPECT_TRUE(store_->GetJob("cc1", "1").ok());
}

TEST_P(JobStoreContractTest, PruneDeletesOldResolvedIntentsAndNeverAnOpenOne) {
  TriggerIntent old_intent = MakeIntent("cc1", "req-old");  // created at kT0
  TriggerIntent new_intent = MakeIntent("cc1", "req-new");
  new_intent.create_time = Ms(kT0 + 1000);
  // One open intent per request id (AddIntent's contract): three request ids of the same age.
  int64_t old_open = *store_->AddIntent(old_intent);
  old_intent.request_id = "req-old-2";
  int64_t old_resolved = *store_->AddIntent(old_intent);
  old_intent.request_id = "req-old-3";
  int64_t old_resolved_by_jobs = *store_->AddIntent(old_intent);
  int64_t new_resolved = *store_->AddIntent(new_intent);
  ASSERT_TRUE(store_->ResolveIntent(old_resolved, "failed").ok());
  ASSERT_TRUE(
      store_->PutJobs({TimedJob("1", JobState::kRunning, kT0, 0)}, old_resolved_by_jobs).ok());
  ASSERT_TRUE(store_->ResolveIntent(new_resolved, "failed").ok());

  StatusOr<int64_t> deleted = store_->PruneTerminalJobs(Ms(kT0 + 500), 100);

  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 0);  // jobs only; the running job stays
  StatusOr<std::vector<TriggerIntent>> open = store_->ListOpenIntents();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].id, old_open);
  // A deleted intent is unknown; a kept resolved one resolves again as a no-op.
  EXPECT_EQ(store_->ResolveIntent(old_resolved, "again").reason(), "INTENT_NOT_FOUND");
  EXPECT_EQ(store_->ResolveIntent(old_resolved_by_jobs, "again").reason(), "INTENT_NOT_FOUND");
  EXPECT_TRUE(store_->ResolveIntent(new_resolved, "again").ok());
  EXPECT_TRUE(store_->GetJob("cc1", "1").ok());
}

TEST_P(JobStoreContractTest, PruneDeletesAtMostMaxRowsResolvedIntents) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 3; ++i) {
    TriggerIntent intent = MakeIntent("cc1", "req-" + std::to_string(i));
    intent.create_time = Ms(kT0 + i);
    ids.push_back(*store_->AddIntent(intent));
    ASSERT_TRUE(store_->ResolveIntent(ids.back(), "failed").ok());
  }

  EXPECT_EQ(*store_->PruneTerminalJobs(Ms(kT0 + 1000), 2), 0);

  EXPECT_EQ(store_->ResolveIntent(ids[0], "again").reason(), "INTENT_NOT_FOUND");
  EXPECT_EQ(store_->ResolveIntent(ids[1], "again").reason(), "INTENT_NOT_FOUND");
  EXPECT_TRUE(store_->ResolveIntent(ids[2], "again").ok());
}

// ---- Intents --------------------------------------------------------------------------------

TEST_P(JobStoreContractTest, AddedIntentsAreOpenWithTheirFields) {
  StatusOr<int64_t> first = store_->AddIntent(MakeIntent("cc1", "req-1"));
  StatusOr<int64_t> second = store_->AddIntent(MakeIntent("cc2", "req-2"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_NE(*first, *second);

  StatusOr<std::vector<TriggerIntent>> open = store_->ListOpenIntents();

  ASSERT_TRUE(open.ok()) << open.status().ToString();
  ASSERT_EQ(open->size(), 2u);
  const TriggerIntent& got = (*open)[0];
  TriggerIntent want = MakeIntent("cc1", "req-1");
  EXPECT_EQ(got.id, *first);
  EXPECT_EQ(got.commcell, want.commcell);
  EXPECT_EQ(got.backup_type, want.backup_type);
  EXPECT_EQ(got.compression, want.compression);
  EXPECT_EQ(got.request_id, want.request_id);
  EXPECT_EQ(got.requested_by, want.requested_by);
  EXPECT_EQ(got.create_time, want.create_time);
  EXPECT_EQ((*open)[1].id, *second);
}

TEST_P(JobStoreContractTest, SecondOpenIntentWithTheSameRequestIdIsAlreadyExists) {
  int64_t first = *store_->AddIntent(MakeIntent("cc1", "req-1"));

  StatusOr<int64_t> again = store_->AddIntent(MakeIntent("cc1", "req-1"));

  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().reason(), "REQUEST_ID_IN_FLIGHT");
  EXPECT_EQ(again.status().metadata().at("request_id"), "req-1");
  // Other CommCells and intents without a request id never conflict.
  EXPECT_TRUE(store_->AddIntent(MakeIntent("cc2", "req-1")).ok());
  EXPECT_TRUE(store_->AddIntent(MakeIntent("cc1", "")).ok());
  EXPECT_TRUE(store_->AddIntent(MakeIntent("cc1", "")).ok());
  StatusOr<std::vector<TriggerIntent>> open = store_->ListOpenIntents();
  ASSERT_TRUE(open.ok());
  EXPECT_EQ(open->size(), 4u);
  // Once the first is resolved, the request id may be tried again (its trigger failed).
  ASSERT_TRUE(store_->ResolveIntent(first, "failed: before send").ok());
  EXPECT_TRUE(store_->AddIntent(MakeIntent("cc1", "req-1")).ok());
}

TEST_P(JobStoreContractTest, IntentForARequestIdWithARecordedJobIsAlreadyExists) {
  int64_t first = *store_->AddIntent(MakeIntent("cc1", "req-1001"));
  ASSERT_TRUE(store_->PutJobs({MakeJob("cc1", "1001")}, first).ok());  // request_id "req-1001"

  StatusOr<int64_t> again = store_->AddIntent(MakeIntent("cc1", "req-1001"));

  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().reason(), "REQUEST_ID_IN_FLIGHT");
  EXPECT_THAT(*store_->ListOpenIntents(), IsEmpty());
  EXPECT_TRUE(store_->AddIntent(MakeIntent("cc2", "req-1001")).ok());
}

TEST_P(JobStoreContractTest, ConcurrentIntentsWithOneRequestIdLeaveExactlyOneOpen) {
  constexpr int kThreads = 8;
  std::atomic<int> added{0};
  std::atomic<int> conflicts{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      StatusOr<int64_t> id = store_->AddIntent(MakeIntent("cc1", "req-race"));
      if (id.ok()) {
        ++added;
      } else if (id.status().code() == StatusCode::kAlreadyExists) {
        ++conflicts;
      } else {
        ++errors;
      }
    });
  }
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(added.load(), 1);
  EXPECT_EQ(conflicts.load(), kThreads - 1);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(store_->ListOpenIntents()->size(), 1u);
}

TEST_P(JobStoreContractTest, ResolvedIntentIsNoLongerOpen) {
  int64_t id = *store_->AddIntent(MakeIntent("cc1", "req-1"));
  int64_t other = *store_->AddIntent(MakeIntent("cc1", "req-2"));

  Status s = store_->ResolveIntent(id, "failed: UNAVAILABLE before send");

  ASSERT_TRUE(s.ok()) << s.ToString();
  StatusOr<std::vector<TriggerIntent>> open = store_->ListOpenIntents();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].id, other);
}

TEST_P(JobStoreContractTest, FindOpenIntentFindsTheOpenIntentOfItsCommCellAndRequestId) {
  const int64_t id = *store_->AddIntent(MakeIntent("cc1", "req-1"));
  ASSERT_TRUE(store_->AddIntent(MakeIntent("cc2", "req-1")).ok());
  ASSERT_TRUE(store_->AddIntent(MakeIntent("cc1", "req-2")).ok());

  StatusOr<std::optional<TriggerIntent>> found = store_->FindOpenIntent("cc1", "req-1");

  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_TRUE(found->has_value());
  const TriggerIntent want = MakeIntent("cc1", "req-1");
  EXPECT_EQ((*found)->id, id);
  EXPECT_EQ((*found)->commcell, "cc1");
  EXPECT_EQ((*found)->request_id, "req-1");
  EXPECT_EQ((*found)->backup_type, want.backup_type);
  EXPECT_EQ((*found)->compression, want.compression);
  EXPECT_EQ((*found)->requested_by, want.requested_by);
  EXPECT_EQ((*found)->create_time, want.create_time);
}

TEST_P(JobStoreContractTest, FindOpenIntentFindsNoResolvedUnknownOrEmptyRequestId) {
  const int64_t id = *store_->AddIntent(MakeIntent("cc1", "req-1"));
  ASSERT_TRUE(store_->AddIntent(MakeIntent("cc1", "")).ok());
  ASSERT_TRUE(store_->ResolveIntent(id, "failed: UNAVAILABLE before send").ok());

  for (const auto& [commcell, request_id] : {std::pair<std::string, std::string>{"cc1", "req-1"},
                                             {"cc1", "req-9"},
                                             {"cc2", "req-1"},
                                             {"cc1", ""}}) {
    StatusOr<std::optional<TriggerIntent>> found = store_->FindOpenIntent(commcell, request_id);
    ASSERT_TRUE(found.ok()) << found.status().ToString();
    EXPECT_FALSE(found->has_value()) << commcell << "/" << request_id;
  }
  // The request id tried again: its new intent is found.
  const int64_t again = *store_->AddIntent(MakeIntent("cc1", "req-1"));
  EXPECT_EQ((*store_->FindOpenIntent("cc1", "req-1"))->id, again);
}

TEST_P(JobStoreContractTest, ResolvingTwiceIsANoOp) {
  int64_t id = *store_->AddIntent(MakeIntent("cc1", "req-1"));
  ASSERT_TRUE(store_->ResolveIntent(id, "first").ok());

  Status s = store_->ResolveIntent(id, "second");

  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_THAT(*store_->ListOpenIntents(), IsEmpty());
}

TEST_P(JobStoreContractTest, ResolvingAnUnknownIntentIsNotFound) {
  Status s = store_->ResolveIntent(12345, "whatever");

  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.reason(), "INTENT_NOT_FOUND");
}

TEST_P(JobStoreContractTest, PutJobsResolvesTheIntent) {
  int64_t id = *store_->AddIntent(MakeIntent("cc1", "req-1"));

  Status s = store_->PutJobs({MakeJob("cc1", "1001"), MakeJob("cc1", "1002")}, id);

  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_THAT(*store_->ListOpenIntents(), IsEmpty());
  EXPECT_TRUE(store_->GetJob("cc1", "1002").ok());
}

TEST_P(JobStoreContractTest, PutJobsWithAnUnknownIntentWritesNothing) {
  Status s = store_->PutJobs({MakeJob("cc1", "1001")}, 12345);

  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.reason(), "INTENT_NOT_FOUND");
  EXPECT_EQ(store_->GetJob("cc1", "1001").status().code(), StatusCode::kNotFound);
}

// ---- Durability and concurrency -------------------------------------------------------------

TEST_P(JobStoreContractTest, DataSurvivesReopening) {
  Job job = MakeJob("cc1", "1001");
  int64_t open_intent = *store_->AddIntent(MakeIntent("cc1", "req-open"));
  int64_t resolved_intent = *store_->AddIntent(MakeIntent("cc1", "req-1001"));
  ASSERT_TRUE(store_->PutJobs({job}, resolved_intent).ok());

  Reopen();

  StatusOr<Job> got = store_->GetJob("cc1", "1001");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, job);
  EXPECT_THAT(*store_->FindByRequestId("cc1", "req-1001"), Optional(job));
  StatusOr<std::vector<TriggerIntent>> open = store_->ListOpenIntents();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].id, open_intent);
  // Ids keep growing across restarts.
  EXPECT_GT(*store_->AddIntent(MakeIntent("cc1", "req-new")), resolved_intent);
}

TEST_P(JobStoreContractTest, ConcurrentWritersAndReadersSeeNoErrors) {
  constexpr int kWriters = 4;
  constexpr int kReaders = 4;
  constexpr int kJobsPerWriter = 40;
  Put({MakeJob("seed", "0")});
  std::atomic<int> writers_left{kWriters};
  std::atomic<int> errors{0};
  std::atomic<int> reads{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kJobsPerWriter; ++i) {
        Job job = MakeJob("cc" + std::to_string(w), std::to_string(i), kT0 + i);
        if (!store_->PutJobs({job}).ok()) ++errors;
        job.state = JobState::kSucceeded;  // and an update of the row just written
        if (!store_->PutJobs({job}).ok()) ++errors;
      }
      --writers_left;
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      while (writers_left > 0) {
        if (!store_->GetJob("seed", "0").ok()) ++errors;
        if (!store_->FindByRequestId("seed", "req-0").ok()) ++errors;
        StatusOr<JobPage> page = store_->ListJobs({}, 50, "");
        if (!page.ok() || page->jobs.empty()) ++errors;
        if (!store_->ListActiveJobs().ok()) ++errors;
        ++reads;
      }
    });
  }
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(ListAll({}, 1000).size(), 1u + kWriters * kJobsPerWriter);
  EXPECT_EQ(ListAll(StateFilter(JobState::kSucceeded), 1000).size(),
            1u * kWriters * kJobsPerWriter);
}

// ---- Fenced leader writes (FencedJobStore): the local half, on both backends --------------------

// A LeaderElection the test flips by hand; its fence names a lease no store holds.
class ManualLeader final : public LeaderElection {
 public:
  bool IsLeader() const override { return leading; }
  void Start(std::function<void(bool)>) override {}
  void Stop() override {}
  std::atomic<bool> leading{false};
};

// A replica that does not lead (its lease ran out by its own clock, e.g. after a pause) has its
// leader writes refused before they reach the registry; nothing changes; reads, AddIntent and a
// caller's writes (CallerWrites) go through.
TEST_P(JobStoreContractTest, FencedViewRefusesLeaderWritesOfAReplicaThatDoesNotLead) {
  Job running = MakeJob("cc1", "1001");
  Job done = MakeJob("cc1", "1002", kT0 - 100'000);
  done.state = JobState::kSucceeded;
  Put({running, done});
  StatusOr<int64_t> intent = store_->AddIntent(MakeIntent("cc1", "req-open"));
  ASSERT_TRUE(intent.ok()) << intent.status().ToString();
  ManualLeader leader;
  std::vector<std::string> refused;
  FencedJobStore view(*store_, leader, [&](const std::string& op) { refused.push_back(op); });
  Job updated = running;
  updated.percent_complete = 99;

  const Status put = view.PutJobs({updated});
  const Status adopt = view.PutJobs({MakeJob("cc1", "1003")}, *intent);
  const Status resolve = view.ResolveIntent(*intent, "gave up");
  const StatusOr<int64_t> prune = view.PruneTerminalJobs(Ms(kT0 + 1'000'000), 100);

  for (const Status& st : {put, adopt, resolve, prune.status()}) {
    EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
    EXPECT_EQ(st.reason(), "LEASE_LOST") << st.ToString();
    EXPECT_THAT(st.message(), HasSubstr("does not hold the leader lease"));
  }
  EXPECT_THAT(refused, ElementsAre("record jobs", "record jobs", "resolve trigger intent",
                                   "prune finished jobs"));
  EXPECT_EQ(store_->GetJob("cc1", "1001")->percent_complete, 42);
  EXPECT_EQ(store_->GetJob("cc1", "1003").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetJob("cc1", "1002").ok());
  ASSERT_EQ(store_->ListOpenIntents()->size(), 1u);

  // Reads and a trigger's intent pass through.
  EXPECT_EQ(view.GetJob("cc1", "1001")->percent_complete, 42);
  EXPECT_TRUE(view.AddIntent(MakeIntent("cc1", "req-other")).ok());
  // A caller's write (CancelJob through Tracker::Apply) is not the leader's: not fenced.
  {
    FencedJobStore::CallerWrites for_caller;
    Status s = view.PutJobs({updated});
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_EQ(store_->GetJob("cc1", "1001")->percent_complete, 99);
  EXPECT_EQ(refused.size(), 4u);
  // Outside the scope, fenced again.
  EXPECT_EQ(view.PutJobs({updated}).reason(), "LEASE_LOST");
}

INSTANTIATE_TEST_SUITE_P(Sqlite, JobStoreContractTest,
                         ::testing::Values(JobStoreImpl{"Sqlite", OpenSqlite}),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Sqlite, ListJobsFilterTest,
                         ::testing::Values(JobStoreImpl{"Sqlite", OpenSqlite}),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Sqlite, ListJobsTypeAndTimeFilterTest,
                         ::testing::Values(JobStoreImpl{"Sqlite", OpenSqlite}),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Sqlite, ListJobsPagingTest,
                         ::testing::Values(JobStoreImpl{"Sqlite", OpenSqlite}),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Postgres, JobStoreContractTest,
                         ::testing::Values(JobStoreImpl{"Postgres", OpenPostgres}),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Postgres, ListJobsFilterTest,
                         ::testing::Values(JobStoreImpl{"Postgres", OpenPostgres}),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Postgres, ListJobsTypeAndTimeFilterTest,
                         ::testing::Values(JobStoreImpl{"Postgres", OpenPostgres}),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Postgres, ListJobsPagingTest,
                         ::testing::Values(JobStoreImpl{"Postgres", OpenPostgres}),
                         [](const auto& info) { return info.param.name; });

// ---- SQLite only ----------------------------------------------------------------------------

// A plain sqlite3 connection to inspect or prepare the file behind the store's back.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) ADD_FAILURE() << sqlite3_errmsg(db_);
  }
  ~RawDb() { sqlite3_close(db_); }

  // Runs a script of statements that return no rows.
  void Exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (error != nullptr ? error : "?");
    }
    sqlite3_free(error);
  }

  std::string Query(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string value;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return value;
    }
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return value;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteJobStoreTest : public ::testing::Test {
 protected:
  std::string DbPath() const { return (dir_.path() / "registry.db").string(); }

  TempDir dir_;
};

TEST_F(SqliteJobStoreTest, FileIsInWalMode) {
  auto store = SqliteJobStore::Open(DbPath());
  ASSERT_TRUE(store.ok()) << store.status().ToString();

  EXPECT_EQ(RawDb(DbPath()).Query("PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteJobStoreTest, WritesUseSynchronousFull) {
  auto store = SqliteJobStore::Open(DbPath());
  ASSERT_TRUE(store.ok()) << store.status().ToString();

  StatusOr<int> synchronous = (*store)->SynchronousForTesting();

  ASSERT_TRUE(synchronous.ok()) << synchronous.status().ToString();
  EXPECT_EQ(*synchronous, 2);  // FULL
}

TEST_F(SqliteJobStoreTest, NewDatabaseHasTheCurrentSchemaVersion) {
  ASSERT_TRUE(SqliteJobStore::Open(DbPath()).ok());
  auto reopened = SqliteJobStore::Open(DbPath());  // migrations are not re-applied
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();

  EXPECT_EQ(RawDb(DbPath()).Query("PRAGMA user_version"),
            std::to_string(SqliteJobStore::kSchemaVersion));
}

// The schema of version 1 exactly as released (migration 1 of the first drgate with a registry):
// a database of that drgate, to migrate.
constexpr char kSchemaVersion1[] = R"sql(
CREATE TABLE jobs (
  commcell TEXT NOT NULL,
  job_id TEXT NOT NULL,
  task_id INTEGER NOT NULL,
  backup_type TEXT NOT NULL,
  compression INTEGER NOT NULL,
  state TEXT NOT NULL,
  commserv_status TEXT NOT NULL,
  percent_complete INTEGER NOT NULL,
  failure_reason TEXT NOT NULL,
  request_id TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL,
  start_time_ms INTEGER,
  end_time_ms INTEGER,
  update_time_ms INTEGER NOT NULL,
  PRIMARY KEY (commcell, job_id)
);
CREATE INDEX jobs_by_request ON jobs (commcell, request_id) WHERE request_id <> '';
CREATE INDEX jobs_by_time ON jobs (create_time_ms, commcell, job_id);
CREATE INDEX jobs_by_commcell_time ON jobs (commcell, create_time_ms, job_id);
CREATE INDEX jobs_by_state_time ON jobs (state, create_time_ms, commcell, job_id);
CREATE INDEX jobs_by_commcell_state_time ON jobs (commcell, state, create_time_ms, job_id);
CREATE INDEX jobs_active ON jobs (create_time_ms, commcell, job_id)
  WHERE state IN ('submitted', 'queued', 'running', 'suspended', 'unknown');
CREATE TABLE intents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  commcell TEXT NOT NULL,
  backup_type TEXT NOT NULL,
  compression INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL,
  resolved INTEGER NOT NULL DEFAULT 0,
  outcome TEXT,
  resolved_time_ms INTEGER
);
CREATE INDEX intents_open ON intents (id) WHERE resolved = 0;
PRAGMA user_version = 1;
)sql";

TEST_F(SqliteJobStoreTest, VersionOneDatabaseIsMigratedKeepingItsRows) {
  // Two jobs and two intents written the way version 1 writes them (MakeJob's fields).
  Job full = MakeJob("cc1", "1001");
  full.backup_type = BackupType::kFull;
  full.state = JobState::kSucceeded;
  Job differential = MakeJob("cc1", "1002", kT0 + 5);
  differential.compression = false;
  differential.start_time.reset();
  differential.end_time.reset();
  const std::string t = std::to_string(kT0);
  {
    RawDb raw(DbPath());
    raw.Exec(kSchemaVersion1);
    raw.Exec(
        "INSERT INTO jobs VALUES ('cc1', '1001', 4711, 'full', 1, 'succeeded', 'Running', 42, "
        "'none yet', 'req-1001', 'spiffe://cluster/ns/ops/sa/upgrader', " +
        t + ", " + t + " + 1000, " + t + " + 60000, " + t + " + 61000);" +
        "INSERT INTO jobs VALUES ('cc1', '1002', 4711, 'differential', 0, 'running', 'Running', "
        "42, 'none yet', 'req-1002', 'spiffe://cluster/ns/ops/sa/upgrader', " +
        t + " + 5, NULL, NULL, " + t + " + 61005);" +
        "INSERT INTO intents (commcell, backup_type, compression, request_id, requested_by, "
        "create_time_ms) VALUES ('cc1', 'differential', 1, 'req-1', 'runbook', " +
        t + ");" +
        "INSERT INTO intents (commcell, backup_type, compression, request_id, requested_by, "
        "create_time_ms, resolved, outcome, resolved_time_ms) VALUES ('cc1', 'full', 0, "
        "'req-2', 'runbook', " +
        t + ", 1, 'jobs:1001', " + t + ");");
    ASSERT_EQ(raw.Query("PRAGMA user_version"), "1");
  }

  auto store = SqliteJobStore::Open(DbPath());

  ASSERT_TRUE(store.ok()) << store.status().ToString();
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("PRAGMA user_version"), std::to_string(SqliteJobStore::kSchemaVersion));
  EXPECT_EQ(raw.Query("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                      "('jobs_by_commcell_type_time', 'jobs_latest', 'jobs_prunable', "
                      "'intents_resolved')"),
            "4");
  EXPECT_EQ(raw.Query("PRAGMA integrity_check"), "ok");
  JobStore& s = **store;
  EXPECT_EQ(*s.GetJob("cc1", "1001"), full);
  EXPECT_EQ(*s.GetJob("cc1", "1002"), differential);
  // The new indexes hold the old rows.
  StatusOr<JobPage> page = s.ListJobs(TypeFilter("cc1", BackupType::kFull), 10, "");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_THAT(page->jobs, ElementsAre(full));
  EXPECT_THAT(*s.LatestJob("cc1", BackupType::kFull, {JobState::kSucceeded}), Optional(full));
  EXPECT_THAT(*s.LatestJob("cc1", BackupType::kDifferential, kNonTerminalStates),
              Optional(differential));
  // Jobs recorded before origins existed are drgate's own.
  EXPECT_EQ(raw.Query("SELECT group_concat(origin) FROM jobs"), "drgate,drgate");
  EXPECT_THAT(*s.LatestJob("cc1", BackupType::kFull, {JobState::kSucceeded}, JobOrigin::kDrgate),
              Optional(full));
  StatusOr<std::vector<TriggerIntent>> open = s.ListOpenIntents();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].request_id, "req-1");
  EXPECT_EQ(*s.PruneTerminalJobs(Ms(kT0 + 60'001), 10), 1);
  EXPECT_EQ(s.GetJob("cc1", "1001").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ResolveIntent(2, "again").reason(), "INTENT_NOT_FOUND");
}

TEST_F(SqliteJobStoreTest, MigrationToVersion3KeepsTheOldestOfDuplicateOpenIntentsOpen) {
  {
    RawDb raw(DbPath());
    raw.Exec(kSchemaVersion1);
    for (int i = 0; i < 3; ++i) {
      raw.Exec(
          "INSERT INTO intents (commcell, backup_type, compression, request_id, requested_by, "
          "create_time_ms) VALUES ('cc1', 'full', 0, 'req-dup', 'runbook', 1)");
    }
  }

  auto store = SqliteJobStore::Open(DbPath());

  ASSERT_TRUE(store.ok()) << store.status().ToString();
  StatusOr<std::vector<TriggerIntent>> open = (*store)->ListOpenIntents();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].id, 1);
  EXPECT_EQ((*store)->AddIntent(MakeIntent("cc1", "req-dup")).status().reason(),
            "REQUEST_ID_IN_FLIGHT");
}

TEST_F(SqliteJobStoreTest, DatabaseOfANewerVersionIsRefusedAndLeftAlone) {
  const int newer = SqliteJobStore::kSchemaVersion + 1;
  RawDb(DbPath()).Query("PRAGMA user_version = " + std::to_string(newer));

  auto store = SqliteJobStore::Open(DbPath());

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().reason(), "REGISTRY_SCHEMA_TOO_NEW");
  EXPECT_EQ(store.status().message(),
            "registry database '" + DbPath() + "' has schema version " + std::to_string(newer) +
                ", newer than version " + std::to_string(SqliteJobStore::kSchemaVersion) +
                " known to this drgate; refusing to open it (upgrade drgate)");
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("PRAGMA user_version"), std::to_string(newer));
  EXPECT_EQ(raw.Query("PRAGMA journal_mode"), "delete");
}

TEST_F(SqliteJobStoreTest, MissingFolderIsAnErrorNamingThePath) {
  std::string path = (dir_.path() / "missing" / "registry.db").string();

  auto store = SqliteJobStore::Open(path);

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().reason(), "REGISTRY_PATH_INVALID");
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "missing"));
}

TEST_F(SqliteJobStoreTest, EmptyPathIsRefused) {
  auto store = SqliteJobStore::Open("");

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().reason(), "REGISTRY_PATH_INVALID");
}

TEST_F(SqliteJobStoreTest, FileThatIsNotADatabaseIsAnInternalErrorNamingThePath) {
  std::ofstream(DbPath()) << "this is not an SQLite database, just some text long enough";

  auto store = SqliteJobStore::Open(DbPath());

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInternal);
  EXPECT_EQ(store.status().reason(), "REGISTRY_ERROR");
  EXPECT_THAT(store.status().message(), HasSubstr(DbPath()));
}

// One drgate per SQLite file (core/registry/writer_lock.h): a second store on the same file is
// refused before SQLite opens it, naming the file and the holder's pid.
TEST_F(SqliteJobStoreTest, SecondStoreOnTheSameFileIsRefusedNamingThePathAndHolder) {
  auto first = SqliteJobStore::Open(DbPath());
  ASSERT_TRUE(first.ok()) << first.status().ToString();

  auto second = SqliteJobStore::Open(DbPath());

  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().reason(), "REGISTRY_IN_USE");
  EXPECT_THAT(second.status().message(), HasSubstr("'" + DbPath() + "'"));
  EXPECT_THAT(second.status().message(), HasSubstr("pid " + std::to_string(getpid()) + ","));
  EXPECT_THAT(second.status().message(), HasSubstr(DbPath() + ".lock"));
  // The first store still writes.
  EXPECT_TRUE((*first)->PutJobs({MakeJob("cc1", "1001")}).ok());
}

TEST_F(SqliteJobStoreTest, FileCanBeOpenedAgainOnceItsStoreIsClosed) {
  auto first = SqliteJobStore::Open(DbPath());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE((*first)->PutJobs({MakeJob("cc1", "1001")}).ok());
  first->reset();

  auto again = SqliteJobStore::Open(DbPath());

  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE((*again)->GetJob("cc1", "1001").ok());
}

// A lock file left behind by a drgate that died (its pid in it) holds no lock: the kernel dropped
// it with the process.
TEST_F(SqliteJobStoreTest, LockFileLeftBehindDoesNotBlockAndGetsThisPid) {
  std::ofstream(DbPath() + ".lock") << "999999999\n";

  auto store = SqliteJobStore::Open(DbPath());

  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::ifstream in(DbPath() + ".lock");
  std::string pid;
  std::getline(in, pid);
  EXPECT_EQ(pid, std::to_string(getpid()));
}

TEST_F(SqliteJobStoreTest, LockFileThatCannotBeOpenedIsAPathErrorAndTheDatabaseIsNotCreated) {
  std::filesystem::create_directory(DbPath() + ".lock");  // open(2) of a folder for writing fails

  auto store = SqliteJobStore::Open(DbPath());

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().reason(), "REGISTRY_PATH_INVALID");
  EXPECT_THAT(store.status().message(), HasSubstr("'" + DbPath() + ".lock'"));
  EXPECT_FALSE(std::filesystem::exists(DbPath()));
}

TEST_F(SqliteJobStoreTest, InMemoryStoresTakeNoLock) {
  auto first = SqliteJobStore::Open(":memory:");
  auto second = SqliteJobStore::Open(":memory:");

  EXPECT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(":memory:.lock"));
}

TEST_F(SqliteJobStoreTest, InMemoryDatabaseWorks) {
  auto store = SqliteJobStore::Open(":memory:");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Job job = MakeJob("cc1", "1001");

  ASSERT_TRUE((*store)->PutJobs({job}).ok());

  StatusOr<Job> got = (*store)->GetJob("cc1", "1001");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, job);
  EXPECT_EQ((*store)->ListJobs({}, 10, "")->jobs.size(), 1u);
}

// ---- PostgreSQL only --------------------------------------------------------------------------

class PostgresJobStoreTest : public ::testing::Test {
 protected:
  // A new, empty database.
  std::string NewDatabase() {
    static int n = 0;
    const std::string name = "pg_only_" + std::to_string(getpid()) + "_" + std::to_string(++n);
    SharedPostgres().Exec("CREATE DATABASE " + name);
    return name;
  }
  std::string QueryOne(const std::string& dbname, const std::string& sql) {
    registry::PostgresEndpoint endpoint{SharedPostgres().Dsn(dbname), SharedPostgres().password()};
    auto conn = registry::PgConnection::Connect(endpoint);
    if (!conn.ok()) return "connect failed: " + conn.status().ToString();
    auto r = (*conn)->Exec(sql, {}, "test query");
    if (!r.ok()) return "query failed: " + r.status().ToString();
    return r->rows() > 0 ? r->Text(0, 0) : "(no row)";
  }
};

TEST_F(PostgresJobStoreTest, UnreachableServerIsUnavailableNamingTheRegistryNotThePassword) {
  PostgresStoreOptions options;
  options.endpoint.dsn = "host=127.0.0.1 port=1 dbname=drgate user=drgate";
  options.endpoint.password = "never-shown-secret";

  auto store = PostgresJobStore::Open(options);

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.status().reason(), "REGISTRY_UNAVAILABLE");
  EXPECT_THAT(store.status().message(),
              HasSubstr("PostgreSQL registry host=127.0.0.1 port=1 dbname=drgate user=drgate"));
  EXPECT_THAT(store.status().message(), ::testing::Not(HasSubstr("never-shown-secret")));
}

TEST_F(PostgresJobStoreTest, WrongPasswordIsUnavailableWithoutThePassword) {
  PostgresStoreOptions options = PostgresOptions("postgres");
  options.endpoint.password = "wrong-secret-4711";

  auto store = PostgresJobStore::Open(options);

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.status().reason(), "REGISTRY_UNAVAILABLE");
  EXPECT_THAT(store.status().message(), HasSubstr("password authentication failed"));
  EXPECT_THAT(store.status().message(), ::testing::Not(HasSubstr("wrong-secret-4711")));
}

TEST_F(PostgresJobStoreTest, PasswordInTheDsnIsRefusedWithoutEchoingIt) {
  PostgresStoreOptions options = PostgresOptions("postgres");
  options.endpoint.dsn += " password=dsn-secret-99";

  auto store = PostgresJobStore::Open(options);

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("password_file"));
  EXPECT_THAT(store.status().message(), ::testing::Not(HasSubstr("dsn-secret-99")));
}

TEST_F(PostgresJobStoreTest, CallsAreUnavailableWhileTheServerIsDownAndWorkOnceItIsBack) {
  auto store = PostgresJobStore::Open(PostgresOptions(NewDatabase()));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  JobStore& s = **store;
  ASSERT_TRUE(s.PutJobs({MakeJob("cc1", "1001")}).ok());

  SharedPostgres().Stop();
  StatusOr<Job> read = s.GetJob("cc1", "1001");
  StatusOr<int64_t> intent = s.AddIntent(MakeIntent("cc1", "req-down"));
  Status write = s.PutJobs({MakeJob("cc1", "1002")});
  SharedPostgres().Start();

  for (const Status& st : {read.status(), intent.status(), write}) {
    EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
    EXPECT_EQ(st.reason(), "REGISTRY_UNAVAILABLE") << st.ToString();
    EXPECT_THAT(st.message(), HasSubstr("PostgreSQL registry host=127.0.0.1"));
    EXPECT_THAT(st.message(), ::testing::Not(HasSubstr(SharedPostgres().password())));
  }
  // Back: the pool replaces its dead connections; nothing of the failed calls was written.
  StatusOr<Job> again = s.GetJob("cc1", "1001");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(s.GetJob("cc1", "1002").status().code(), StatusCode::kNotFound);
  EXPECT_THAT(*s.ListOpenIntents(), IsEmpty());
}

TEST_F(PostgresJobStoreTest, ReplicasOpeningTogetherMigrateOnce) {
  const std::string db = NewDatabase();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (!PostgresJobStore::Open(PostgresOptions(db)).ok()) ++failures;
    });
  }
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(QueryOne(db, "SELECT string_agg(version::text, ',') FROM drgate_schema_version"),
            std::to_string(registry::kSchemaVersion));
}

TEST_F(PostgresJobStoreTest, DatabaseOfANewerVersionIsRefusedAndLeftAlone) {
  const std::string db = NewDatabase();
  ASSERT_TRUE(PostgresJobStore::Open(PostgresOptions(db)).ok());
  SharedPostgres().Exec("UPDATE drgate_schema_version SET version = 99", db);

  auto store = PostgresJobStore::Open(PostgresOptions(db));

  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().reason(), "REGISTRY_SCHEMA_TOO_NEW");
  EXPECT_EQ(QueryOne(db, "SELECT version FROM drgate_schema_version"), "99");
}

// Waits up to `timeout` for `condition`; true when it held.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

class PostgresLeaderElectionTest : public PostgresJobStoreTest {
 protected:
  void SetUp() override {
    db_ = NewDatabase();
    ASSERT_TRUE(PostgresJobStore::Open(PostgresOptions(db_)).ok());  // creates the lease table
  }
  std::unique_ptr<PostgresLeaderElection> Election(const std::string& holder) {
    PostgresLeaderOptions options;
    options.endpoint = PostgresOptions(db_).endpoint;
    options.lease = kLease;
    options.holder = holder;
    return std::make_unique<PostgresLeaderElection>(options, system_clock_);
  }
  static constexpr std::chrono::milliseconds kLease{1000};
  SystemClock system_clock_;  // leases are measured in real time here
  std::string db_;
};

TEST_F(PostgresLeaderElectionTest, ExactlyOneLeadsAndAnotherTakesOverAtOnceWhenItStops) {
  auto a = Election("a");
  auto b = Election("b");
  std::atomic<int> a_changes{0};
  a->Start([&](bool) { ++a_changes; });
  b->Start(nullptr);

  EXPECT_TRUE(a->IsLeader());
  EXPECT_FALSE(b->IsLeader());
  EXPECT_EQ(QueryOne(db_, "SELECT holder FROM leader_leases WHERE name = 'tracker'"), "a");

  const auto stopped = std::chrono::steady_clock::now();
  a->Stop();
  EXPECT_FALSE(a->IsLeader());
  EXPECT_EQ(a_changes.load(), 2);  // true at start, false at stop
  // A clean stop gives the lease up: the next attempt (every lease / 3) takes it.
  ASSERT_TRUE(WaitFor([&] { return b->IsLeader(); }, kLease));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, kLease);
}

TEST_F(PostgresLeaderElectionTest, ALeaseOfAVanishedLeaderIsTakenOverOnlyOnceItRunsOut) {
  // A leader that died without a word: its lease row stays until it expires.
  SharedPostgres().Exec(
      "INSERT INTO leader_leases (name, holder, expires_at) "
      "VALUES ('tracker', 'ghost', now() + interval '800 milliseconds')",
      db_);
  const auto start = std::chrono::steady_clock::now();
  auto b = Election("b");
  b->Start(nullptr);

  EXPECT_FALSE(b->IsLeader());
  ASSERT_TRUE(WaitFor([&] { return b->IsLeader(); }, 3 * kLease));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(700));
  EXPECT_LE(took, std::chrono::milliseconds(800) + kLease / 3 + std::chrono::milliseconds(300));
}

// ---- PostgreSQL only: fencing of the leader's writes -----------------------------------------

// The lease row's generation, as the registry has it.
class PostgresFencingTest : public PostgresLeaderElectionTest {
 protected:
  void SetUp() override {
    PostgresLeaderElectionTest::SetUp();
    auto store = PostgresJobStore::Open(PostgresOptions(db_));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }
  std::string Generation() {
    return QueryOne(db_, "SELECT generation FROM leader_leases WHERE name = 'tracker'");
  }
  std::unique_ptr<PostgresJobStore> store_;
};

// A leader that lost its lease to another replica writes nothing through the registry's check,
// whatever it believes locally: every fenced write under the older generation is ABORTED
// (LEASE_LOST) and changes nothing; the same writes under the current generation land.
TEST_F(PostgresFencingTest, WritesOfAnOlderGenerationAreRefusedAndChangeNothing) {
  Job running = MakeJob("cc1", "1001");
  Job done = MakeJob("cc1", "1002", kT0 - 100'000);
  done.state = JobState::kSucceeded;
  ASSERT_TRUE(store_->PutJobs({running, done}).ok());
  StatusOr<int64_t> adopt_intent = store_->AddIntent(MakeIntent("cc1", "req-adopt"));
  StatusOr<int64_t> settle_intent = store_->AddIntent(MakeIntent("cc1", "req-settle"));
  ASSERT_TRUE(adopt_intent.ok() && settle_intent.ok());

  auto a = Election("a");
  a->Start(nullptr);
  const std::optional<LeaseFence> old_fence = a->CurrentFence();
  ASSERT_TRUE(old_fence.has_value());
  EXPECT_EQ(old_fence->role, "tracker");
  a->Stop();
  auto b = Election("b");
  b->Start(nullptr);
  ASSERT_TRUE(WaitFor([&] { return b->IsLeader(); }, 3 * kLease));
  const std::optional<LeaseFence> fence = b->CurrentFence();
  ASSERT_TRUE(fence.has_value());
  EXPECT_EQ(fence->generation, old_fence->generation + 1);
  EXPECT_EQ(Generation(), std::to_string(fence->generation));

  Job updated = running;
  updated.percent_complete = 77;
  const Status put = store_->PutJobsFenced(*old_fence, {updated});
  const Status adopt = store_->PutJobsFenced(*old_fence, {MakeJob("cc1", "1003")}, *adopt_intent);
  const Status settle = store_->ResolveIntentFenced(*old_fence, *settle_intent, "gave up");
  const StatusOr<int64_t> prune = store_->PruneTerminalJobsFenced(*old_fence, Ms(kT0), 100);

  for (const Status& st : {put, adopt, settle, prune.status()}) {
    EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
    EXPECT_EQ(st.reason(), "LEASE_LOST") << st.ToString();
    EXPECT_THAT(st.message(),
                HasSubstr("leader lease (generation " + std::to_string(old_fence->generation) +
                          ") is no longer current: the lease is at generation " +
                          std::to_string(fence->generation) + " (holder b)"));
  }
  EXPECT_EQ(store_->GetJob("cc1", "1001")->percent_complete, 42);
  EXPECT_EQ(store_->GetJob("cc1", "1003").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetJob("cc1", "1002").ok());
  EXPECT_EQ(store_->ListOpenIntents()->size(), 2u);

  // The current generation's writes land.
  ASSERT_TRUE(store_->PutJobsFenced(*fence, {updated}).ok());
  ASSERT_TRUE(store_->PutJobsFenced(*fence, {MakeJob("cc1", "1003")}, *adopt_intent).ok());
  ASSERT_TRUE(store_->ResolveIntentFenced(*fence, *settle_intent, "gave up").ok());
  StatusOr<int64_t> pruned = store_->PruneTerminalJobsFenced(*fence, Ms(kT0), 100);
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  EXPECT_EQ(*pruned, 1);
  EXPECT_EQ(store_->GetJob("cc1", "1001")->percent_complete, 77);
  EXPECT_TRUE(store_->GetJob("cc1", "1003").ok());
  EXPECT_EQ(store_->GetJob("cc1", "1002").status().code(), StatusCode::kNotFound);
  EXPECT_THAT(*store_->ListOpenIntents(), IsEmpty());

  // Through the fenced view: the old leader is refused locally, the new one writes.
  FencedJobStore old_view(*store_, *a);
  FencedJobStore view(*store_, *b);
  updated.percent_complete = 88;
  EXPECT_EQ(old_view.PutJobs({updated}).reason(), "LEASE_LOST");
  EXPECT_TRUE(view.PutJobs({updated}).ok());
  EXPECT_EQ(store_->GetJob("cc1", "1001")->percent_complete, 88);
}

// The holder is checked with the generation: a lease row of the same generation held by another
// replica (one that does not count generations, e.g. an older drgate during a rolling upgrade)
// refuses the write.
TEST_F(PostgresFencingTest, WritesOfTheRightGenerationButAnotherHolderAreRefused) {
  auto a = Election("a");
  a->Start(nullptr);
  LeaseFence other = *a->CurrentFence();
  other.holder = "someone-else";

  const Status put = store_->PutJobsFenced(other, {MakeJob("cc1", "1001")});

  EXPECT_EQ(put.code(), StatusCode::kAborted) << put.ToString();
  EXPECT_EQ(put.reason(), "LEASE_LOST");
  EXPECT_THAT(put.message(), HasSubstr("(holder a)"));
  EXPECT_EQ(store_->GetJob("cc1", "1001").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->PutJobsFenced(*a->CurrentFence(), {MakeJob("cc1", "1001")}).ok());
  a->Stop();
}

// A lease that ran out (here: given up) with no replica taking it over still refuses the writes
// of its generation: they wait for nobody, but they would race the next acquisition.
TEST_F(PostgresFencingTest, WritesUnderALeaseThatRanOutAreRefusedWithoutATakeover) {
  auto a = Election("a");
  a->Start(nullptr);
  const std::optional<LeaseFence> fence = a->CurrentFence();
  ASSERT_TRUE(fence.has_value());
  ASSERT_TRUE(store_->PutJobsFenced(*fence, {MakeJob("cc1", "1001")}).ok());
  a->Stop();
  EXPECT_EQ(Generation(), std::to_string(fence->generation));  // nobody took it over

  const Status put = store_->PutJobsFenced(*fence, {MakeJob("cc1", "1002")});

  EXPECT_EQ(put.code(), StatusCode::kAborted) << put.ToString();
  EXPECT_EQ(put.reason(), "LEASE_LOST");
  EXPECT_THAT(put.message(), HasSubstr("the lease ran out without a renewal"));
  EXPECT_EQ(store_->GetJob("cc1", "1002").status().code(), StatusCode::kNotFound);
}

// Renewals keep the generation; every acquisition counts one up, also by a holder of the same
// name whose lease ran out.
TEST_F(PostgresFencingTest, TheGenerationStaysAcrossRenewalsAndGrowsAtEveryAcquisition) {
  auto a = Election("a");
  a->Start(nullptr);
  const int64_t first = a->CurrentFence()->generation;
  EXPECT_GE(first, 1);
  // Three renewal periods: the lease was renewed at least twice.
  std::this_thread::sleep_for(kLease);
  ASSERT_TRUE(a->IsLeader());
  EXPECT_EQ(a->CurrentFence()->generation, first);
  EXPECT_EQ(Generation(), std::to_string(first));
  a->Stop();

  auto again = Election("a");
  again->Start(nullptr);
  ASSERT_TRUE(again->IsLeader());
  EXPECT_EQ(again->CurrentFence()->generation, first + 1);
  EXPECT_EQ(Generation(), std::to_string(first + 1));
}

// A leader whose renewal is stuck (here: the lease row is locked, so its renewal waits) stops
// leading by its own clock before its lease ends in the registry, and its fenced view refuses
// writes without waiting for the registry. Once the renewal gets through, late, it leads again
// under a new generation: its writes of the old one stay refused.
TEST_F(PostgresFencingTest, ALeaderWithAStuckRenewalStopsWritingBeforeItsLeaseEnds) {
  auto a = Election("a");
  a->Start(nullptr);
  const LeaseFence held = *a->CurrentFence();
  const int64_t first = held.generation;
  EXPECT_EQ(held.holder, "a");
  FencedJobStore view(*store_, *a);
  ASSERT_TRUE(view.PutJobs({MakeJob("cc1", "1001")}).ok());

  registry::PostgresEndpoint endpoint{SharedPostgres().Dsn(db_), SharedPostgres().password()};
  auto blocker = registry::PgConnection::Connect(endpoint);
  ASSERT_TRUE(blocker.ok()) << blocker.status().ToString();
  ASSERT_TRUE((*blocker)->Exec("BEGIN", {}, "test").ok());
  ASSERT_TRUE((*blocker)->Exec("SELECT 1 FROM leader_leases FOR UPDATE", {}, "test").ok());
  const auto locked = std::chrono::steady_clock::now();

  ASSERT_TRUE(WaitFor([&] { return !a->IsLeader(); }, 2 * kLease));
  const auto stopped = std::chrono::steady_clock::now() - locked;
  // The registry still counts the lease as running: the leader stopped first.
  EXPECT_EQ(QueryOne(db_,
                     "SELECT expires_at > clock_timestamp() FROM leader_leases "
                     "WHERE name = 'tracker'"),
            "t");
  // Its last renewal was sent before the row was locked (plus this loop's polling).
  EXPECT_LE(stopped, kLease - a->safety_margin() + std::chrono::milliseconds(50));
  EXPECT_FALSE(a->CurrentFence().has_value());
  // Refused here: a write that reached the registry would wait for the locked row.
  const auto before_write = std::chrono::steady_clock::now();
  const Status refused = view.PutJobs({MakeJob("cc1", "1002")});
  EXPECT_EQ(refused.reason(), "LEASE_LOST") << refused.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - before_write, kLease / 4);
  // A fenced write of its generation that reaches the registry now waits for the lock.
  std::thread late([&] {
    const Status s = store_->PutJobsFenced(held, {MakeJob("cc1", "1003")});
    EXPECT_EQ(s.reason(), "LEASE_LOST") << s.ToString();
  });
  // Let the lease run out in the registry, then release the row.
  ASSERT_TRUE(WaitFor(
      [&] {
        return QueryOne(db_,
                        "SELECT expires_at < clock_timestamp() FROM leader_leases "
                        "WHERE name = 'tracker'") == "t";
      },
      3 * kLease));
  ASSERT_TRUE((*blocker)->Exec("ROLLBACK", {}, "test").ok());
  late.join();

  ASSERT_TRUE(WaitFor([&] { return a->IsLeader(); }, 3 * kLease));
  EXPECT_GT(a->CurrentFence()->generation, first);
  EXPECT_EQ(store_->GetJob("cc1", "1002").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetJob("cc1", "1003").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(view.PutJobs({MakeJob("cc1", "1004")}).ok());
  a->Stop();
}

// ---- SQLite only: fencing ----------------------------------------------------------------------

// One process, which always leads (AlwaysLeader): no lease to check, the fenced view's writes are
// the plain writes.
TEST_F(SqliteJobStoreTest, FencedViewOfTheOnlyProcessWritesPlainly) {
  auto store = SqliteJobStore::Open(DbPath());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  AlwaysLeader leader;
  FencedJobStore view(**store, leader);
  StatusOr<int64_t> intent = (*store)->AddIntent(MakeIntent("cc1", "req-1"));
  ASSERT_TRUE(intent.ok());
  Job old = MakeJob("cc1", "0999", kT0 - 100'000);
  old.state = JobState::kFailed;

  ASSERT_TRUE(view.PutJobs({MakeJob("cc1", "1001"), old}, *intent).ok());
  EXPECT_THAT(*(*store)->ListOpenIntents(), IsEmpty());
  EXPECT_TRUE((*store)->GetJob("cc1", "1001").ok());
  StatusOr<int64_t> pruned = view.PruneTerminalJobs(Ms(kT0), 100);
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  EXPECT_EQ(*pruned, 1);
  Status fenced =
      (*store)->PutJobsFenced(LeaseFence{"tracker", 7, "elsewhere"}, {MakeJob("cc1", "1002")});
  EXPECT_TRUE(fenced.ok()) << fenced.ToString();
}

// ---- SQLite only: a registry that cannot be written -------------------------------------------

// A database that cannot grow (max_page_count, SQLite's own SQLITE_FULL path, as on a full disk)
// fails writes with REGISTRY_UNWRITABLE naming the file, tells the observer, keeps serving reads,
// and takes writes again once it may grow.
TEST_F(SqliteJobStoreTest, FullDatabaseFailsWritesClearlyKeepsReadsAndRecovers) {
  auto store = SqliteJobStore::Open(DbPath());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<std::string> observed;
  (*store)->SetWriteFailureObserver([&](const std::string& p) { observed.push_back(p); });
  ASSERT_TRUE((*store)->PutJobs({MakeJob("cc1", "1001")}).ok());
  ASSERT_TRUE((*store)->ExecOnWriterForTesting("PRAGMA max_page_count=1").ok());
  TriggerIntent big = MakeIntent("cc1", "req-big");
  big.requested_by = std::string(5000, 'a');  // more than a page: needs a new one

  StatusOr<int64_t> added = (*store)->AddIntent(big);

  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(added.status().reason(), "REGISTRY_UNWRITABLE");
  EXPECT_EQ(added.status().metadata().at("registry_error"), "disk_full");
  EXPECT_THAT(added.status().message(),
              ::testing::StartsWith("registry database '" + DbPath() +
                                    "' cannot be written (the disk is full): "));
  EXPECT_THAT(observed, ElementsAre("disk_full"));
  EXPECT_TRUE((*store)->GetJob("cc1", "1001").ok());
  EXPECT_THAT(*(*store)->ListOpenIntents(), IsEmpty());

  ASSERT_TRUE((*store)->ExecOnWriterForTesting("PRAGMA max_page_count=1073741823").ok());
  EXPECT_TRUE((*store)->AddIntent(big).ok());
  EXPECT_EQ((*store)->ListOpenIntents()->size(), 1u);
}

TEST_F(SqliteJobStoreTest, ReadOnlyDatabaseFailsWritesClearlyAndRecovers) {
  auto store = SqliteJobStore::Open(DbPath());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<std::string> observed;
  (*store)->SetWriteFailureObserver([&](const std::string& p) { observed.push_back(p); });
  ASSERT_TRUE((*store)->ExecOnWriterForTesting("PRAGMA query_only=ON").ok());

  Status put = (*store)->PutJobs({MakeJob("cc1", "1001")});

  EXPECT_EQ(put.code(), StatusCode::kUnavailable);
  EXPECT_EQ(put.reason(), "REGISTRY_UNWRITABLE");
  EXPECT_EQ(put.metadata().at("registry_error"), "read_only");
  EXPECT_THAT(put.message(), HasSubstr("cannot be written (the file or its file system is "
                                       "read-only)"));
  EXPECT_THAT(observed, ElementsAre("read_only"));
  ASSERT_TRUE((*store)->ExecOnWriterForTesting("PRAGMA query_only=OFF").ok());
  EXPECT_TRUE((*store)->PutJobs({MakeJob("cc1", "1001")}).ok());
  EXPECT_TRUE((*store)->GetJob("cc1", "1001").ok());
}

TEST_F(SqliteJobStoreTest, FailuresThatAreNotSqlitesAreNotObserved) {
  auto store = SqliteJobStore::Open(DbPath());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<std::string> observed;
  (*store)->SetWriteFailureObserver([&](const std::string& p) { observed.push_back(p); });

  EXPECT_EQ((*store)->ResolveIntent(42, "failed").reason(), "INTENT_NOT_FOUND");

  EXPECT_THAT(observed, IsEmpty());
}

// ---- PostgreSQL only: per-CommCell tracking leases shared by replicas ------------------------

// Rendezvous hashing spreads CommCells evenly, and a replica that leaves moves only its own.
TEST(PostgresTrackingHashTest, SharesAreEvenAndOnlyTheLeaversCommCellsMove) {
  const std::vector<std::string> three = {"drgate-0/7/1", "drgate-1/7/2", "drgate-2/7/3"};
  const std::vector<std::string> two = {"drgate-0/7/1", "drgate-1/7/2"};
  std::map<std::string, int> share;
  int moved = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string cell = "cc" + std::to_string(i);
    const std::string& before = PreferredReplica(three, cell);
    ++share[before];
    const std::string& after = PreferredReplica(two, cell);
    if (before != three[2]) {
      EXPECT_EQ(after, before) << cell;  // stays where it was
    } else {
      ++moved;
    }
  }
  ASSERT_EQ(share.size(), 3u);
  for (const auto& [replica, n] : share) {
    EXPECT_GT(n, 290) << replica;
    EXPECT_LT(n, 380) << replica;
  }
  EXPECT_EQ(moved, share[three[2]]);
  // Stable: every process computes the same answer whatever the order it lists replicas in.
  const std::vector<std::string> reversed(three.rbegin(), three.rend());
  for (int i = 0; i < 50; ++i) {
    const std::string cell = "cc" + std::to_string(i);
    EXPECT_EQ(PreferredReplica(reversed, cell), PreferredReplica(three, cell));
  }
}

class PostgresTrackingLeasesTest : public PostgresFencingTest {
 protected:
  std::unique_ptr<PostgresTrackingLeases> Leases(const std::string& holder) {
    PostgresTrackingOptions options;
    options.endpoint = PostgresOptions(db_).endpoint;
    options.lease = kLease;
    options.holder = holder;
    return std::make_unique<PostgresTrackingLeases>(options, system_clock_, Cells());
  }
  static std::vector<std::string> Cells() {
    std::vector<std::string> cells;
    for (int i = 0; i < 20; ++i) cells.push_back("cc" + std::to_string(i));
    return cells;
  }
  static std::set<std::string> TrackedBy(const PostgresTrackingLeases& r) {
    std::set<std::string> out;
    for (const std::string& c : Cells()) {
      if (r.Tracks(c)) out.insert(c);
    }
    return out;
  }
  // The CommCells `holder` prefers among `replicas`.
  static std::set<std::string> Share(const std::vector<std::string>& replicas,
                                     const std::string& holder) {
    std::set<std::string> out;
    for (const std::string& c : Cells()) {
      if (PreferredReplica(replicas, c) == holder) out.insert(c);
    }
    return out;
  }
};

// One replica tracks every CommCell from its first attempt; a second one that joins takes its
// share (the hash's), handed over by the first, and no CommCell is ever tracked by both at once.
// A fence taken before the hand-over is refused by the registry afterwards.
TEST_F(PostgresTrackingLeasesTest, AReplicaThatJoinsTakesItsShareWithoutDoubleTracking) {
  auto a = Leases("a");
  a->Start(nullptr);
  EXPECT_EQ(TrackedBy(*a).size(), 20u);
  EXPECT_EQ(a->TrackedCount(), 20);
  EXPECT_TRUE(a->IsLeader());  // the leader lease for the estate-wide chores
  const std::set<std::string> b_share = Share({"a", "b"}, "b");
  ASSERT_FALSE(b_share.empty());
  ASSERT_LT(b_share.size(), 20u);
  const std::string moved = *b_share.begin();
  const std::optional<LeaseFence> old_fence = a->FenceFor(moved);
  ASSERT_TRUE(old_fence.has_value());
  EXPECT_EQ(old_fence->role, "commcell/" + moved);
  ASSERT_TRUE(store_->PutJobsFenced(*old_fence, {MakeJob(moved, "1001")}).ok());

  auto b = Leases("b");  // started once the watcher runs
  std::atomic<bool> done{false};
  std::atomic<int> both{0};
  std::atomic<int> samples{0};
  std::thread watcher([&] {
    while (!done) {
      for (const std::string& c : Cells()) {
        if (a->Tracks(c) && b->Tracks(c)) ++both;
      }
      ++samples;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  b->Start(nullptr);
  const bool settled = WaitFor(
      [&] { return TrackedBy(*b) == b_share && TrackedBy(*a).size() + b_share.size() == 20; },
      3 * kLease);
  done = true;
  watcher.join();
  ASSERT_TRUE(settled) << "b tracks " << TrackedBy(*b).size() << " of its " << b_share.size();
  EXPECT_EQ(both.load(), 0) << "over " << samples.load() << " samples";
  EXPECT_EQ(TrackedBy(*a), Share({"a", "b"}, "a"));
  EXPECT_FALSE(b->IsLeader());

  // The registry refuses a's writes about the CommCell it handed over, and takes b's.
  Job update = MakeJob(moved, "1001");
  update.percent_complete = 90;
  const Status refused = store_->PutJobsFenced(*old_fence, {update});
  EXPECT_EQ(refused.code(), StatusCode::kAborted) << refused.ToString();
  EXPECT_EQ(refused.reason(), "LEASE_LOST");
  EXPECT_THAT(refused.message(), HasSubstr("lease of commcell/" + moved + " (generation " +
                                           std::to_string(old_fence->generation) + ")"));
  const std::optional<LeaseFence> fence = b->FenceFor(moved);
  ASSERT_TRUE(fence.has_value());
  EXPECT_GT(fence->generation, old_fence->generation);
  EXPECT_TRUE(store_->PutJobsFenced(*fence, {update}).ok());
  EXPECT_EQ(store_->GetJob(moved, "1001")->percent_complete, 90);

  // Through the fenced view: a write about a CommCell this replica does not track is refused
  // before the registry, naming the CommCell.
  FencedJobStore view(*store_, *a);
  const Status local = view.PutJobs({update});
  EXPECT_EQ(local.reason(), "LEASE_LOST");
  EXPECT_THAT(local.message(), HasSubstr("does not track commcell " + moved));
  b->Stop();
  a->Stop();
}

// A replica that stops cleanly gives its leases up: the other claims them at its next attempt.
TEST_F(PostgresTrackingLeasesTest, AReplicaThatStopsHandsItsCommCellsOverAtOnce) {
  auto a = Leases("a");
  a->Start(nullptr);
  auto b = Leases("b");
  b->Start(nullptr);
  ASSERT_TRUE(WaitFor([&] { return TrackedBy(*b) == Share({"a", "b"}, "b"); }, 3 * kLease));
  const auto stopped = std::chrono::steady_clock::now();
  a->Stop();
  EXPECT_EQ(a->TrackedCount(), 0);
  ASSERT_TRUE(WaitFor([&] { return b->TrackedCount() == 20; }, kLease));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, kLease);
  EXPECT_EQ(QueryOne(db_, "SELECT count(*) FROM tracker_replicas"), "1");
  b->Stop();
}

// A replica that vanished without a word (killed): its CommCells are claimed once its leases run
// out, not before.
TEST_F(PostgresTrackingLeasesTest, CommCellsOfAVanishedReplicaAreClaimedOnceItsLeasesRunOut) {
  {
    auto ghost = Leases("ghost");
    ghost->Start(nullptr);
    ASSERT_EQ(ghost->TrackedCount(), 20);
  }
  // Stop gave everything up: make the rows look like a process killed mid-lease instead.
  SharedPostgres().Exec(
      "UPDATE leader_leases SET holder = 'ghost', expires_at = now() + interval '800 "
      "milliseconds'; INSERT INTO tracker_replicas VALUES ('ghost', now() + interval '800 "
      "milliseconds')",
      db_);
  const auto start = std::chrono::steady_clock::now();
  auto b = Leases("b");
  b->Start(nullptr);
  EXPECT_EQ(b->TrackedCount(), 0);
  EXPECT_FALSE(b->IsLeader());
  ASSERT_TRUE(WaitFor([&] { return b->TrackedCount() == 20; }, 3 * kLease));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(700));
  EXPECT_LE(took,
            std::chrono::milliseconds(800) + 2 * (kLease / 3) + std::chrono::milliseconds(400));
  EXPECT_TRUE(WaitFor([&] { return b->IsLeader(); }, kLease));
  b->Stop();
}

// During a rolling upgrade from a drgate that tracks everything as leader (it holds the "tracker"
// lease and does not heartbeat tracker_replicas), no CommCell lease is taken: that leader keeps
// following every CommCell alone until it goes.
TEST_F(PostgresTrackingLeasesTest, NoCommCellIsTakenWhileALeaderThatTracksEverythingLeads) {
  SharedPostgres().Exec(
      "INSERT INTO leader_leases (name, holder, expires_at) "
      "VALUES ('tracker', 'older-drgate', now() + interval '1 hour')",
      db_);
  auto b = Leases("b");
  b->Start(nullptr);
  std::this_thread::sleep_for(kLease / 2);
  EXPECT_EQ(b->TrackedCount(), 0);
  EXPECT_FALSE(b->IsLeader());
  SharedPostgres().Exec("UPDATE leader_leases SET expires_at = now() WHERE name = 'tracker'", db_);
  ASSERT_TRUE(WaitFor([&] { return b->TrackedCount() == 20 && b->IsLeader(); }, 3 * kLease));
  b->Stop();
}

}  // namespace
}  // namespace drgate
