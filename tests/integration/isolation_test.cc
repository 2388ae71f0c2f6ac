// Per-CommCell isolation of the tracker (docs/tracking.md), end to end: drgate serves two
// CommCells, each on its own commserv-sim, and polls every second. The second CommServe's DR job
// list hangs (sim fault "hang" for 60 s, longer than the whole test); a 2-second DR backup on the
// first must still be seen SUCCEEDED within a few poll intervals, by GetJob and by a WatchJob
// stream, while the first CommCell stays up and drgate stays ready.

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using namespace std::chrono_literals;

class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Each simulator writes its certificate into a folder of its own.
    first_ =
        std::make_unique<Sim>(first_dir_, std::vector<std::string>{"--job-duration-ms", "2000"});
    // The second CommCell's job runs for the whole test: drgate keeps polling its job list.
    second_ =
        std::make_unique<Sim>(second_dir_, std::vector<std::string>{"--job-duration-ms", "600000"});
    dir_.Write("password", "s3cret\n");
    const std::string config =
        dir_.Write("drgate.yaml",
                   "registry: {path: state/drgate.db}\n"
                   "shutdown_grace: 2s\n"
                   "auth: {mode: insecure}\n"
                   "tracking: {poll_interval: 1s}\n"
                   "commcells:\n" +
                       first_->CommCellYaml("first") + second_->CommCellYaml("second"));
    drgate_ = std::make_unique<Drgate>(config);
  }

  v1::Job WaitForState(const std::string& commcell, const std::string& job_id, v1::JobState state,
                       std::chrono::milliseconds timeout) {
    v1::Job job;
    const bool ok = Eventually(
        [&] {
          job.Clear();
          return drgate_->GetJob(commcell, job_id, &job).ok() && job.state() == state;
        },
        timeout);
    EXPECT_TRUE(ok) << commcell << " job " << job_id << " last seen as " << job.ShortDebugString();
    return job;
  }

  TempDir dir_;
  TempDir first_dir_;
  TempDir second_dir_;
  std::unique_ptr<Sim> first_;
  std::unique_ptr<Sim> second_;
  std::unique_ptr<Drgate> drgate_;
};

TEST_F(IsolationTest, AHungCommServeDelaysNoOtherCommCell) {
  // The second CommCell has a job to follow, so its job list is polled every second.
  v1::TriggerBackupResponse other;
  grpc::Status s = drgate_->Trigger("second", v1::BACKUP_TYPE_FULL, "other", &other);
  ASSERT_TRUE(s.ok()) << s.error_message();
  WaitForState("second", other.job().job_id(), v1::JOB_STATE_RUNNING, 20s);

  // From now on its job list hangs: the next poll waits for an answer that does not come.
  second_->Fault({{"endpoint", "JobList"}, {"action", "hang"}, {"count", -1}, {"delay_ms", 60000}});
  ASSERT_TRUE(Eventually(
      [&] { return second_->admin().Json("GET", "/_sim/stats").value("faults_applied", 0) >= 1; },
      10s));
  const int64_t hung_lists = second_->EndpointCount("JobList");

  // A 2-second DR backup on the first CommCell, watched from the start.
  const auto triggered = std::chrono::steady_clock::now();
  v1::TriggerBackupResponse resp;
  s = drgate_->Trigger("first", v1::BACKUP_TYPE_FULL, "isolated", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const std::string id = resp.job().job_id();
  struct Seen {
    v1::JobState state;
    std::chrono::steady_clock::duration at;
  };
  std::vector<Seen> seen;
  grpc::Status watch_end;
  std::thread watcher([&] {
    v1::WatchJobRequest req;
    req.set_commcell("first");
    req.set_job_id(id);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(30s));
    auto reader = drgate_->stub().WatchJob(&ctx, req);
    v1::Job job;
    while (reader->Read(&job)) {
      seen.push_back({job.state(), std::chrono::steady_clock::now() - triggered});
    }
    watch_end = reader->Finish();
  });

  // Until the job is seen SUCCEEDED: the first CommCell stays up and drgate stays ready.
  HttpClient admin(drgate_->metrics_url());
  int checks = 0;
  std::string problem;
  v1::Job job;
  const bool succeeded = Eventually(
      [&] {
        ++checks;
        const auto ready = admin.Call("GET", "/readyz");
        if (ready.status != 200 && problem.empty()) problem = "/readyz: " + ready.body;
        const double up = MetricValue(admin.Call("GET", "/metrics").body,
                                      "drgate_commserv_up{commcell=\"first\"}");
        if (up != 1 && problem.empty())
          problem = "drgate_commserv_up{first} = " + std::to_string(up);
        job.Clear();
        return drgate_->GetJob("first", id, &job).ok() && job.state() == v1::JOB_STATE_SUCCEEDED;
      },
      30s);
  const auto took = std::chrono::steady_clock::now() - triggered;
  watcher.join();
  std::cout << "isolation: job on the healthy CommCell seen SUCCEEDED after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms, with the other CommServe's job list hung\n";

  ASSERT_TRUE(succeeded) << "last seen as " << job.ShortDebugString();
  EXPECT_LE(took, 6s) << "seen SUCCEEDED after "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
  EXPECT_EQ(problem, "") << "after " << checks << " checks";
  EXPECT_EQ(job.commserv_status(), "Completed");

  // The stream got every change in time and ended with SUCCEEDED.
  EXPECT_TRUE(watch_end.ok()) << watch_end.error_code() << " " << watch_end.error_message();
  ASSERT_FALSE(seen.empty());
  std::vector<v1::JobState> distinct;
  std::string trace;
  for (const Seen& m : seen) {
    if (distinct.empty() || distinct.back() != m.state) distinct.push_back(m.state);
    trace += v1::JobState_Name(m.state) + " at " +
             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(m.at).count()) +
             " ms; ";
  }
  SCOPED_TRACE("stream: " + trace);
  if (distinct.front() == v1::JOB_STATE_SUBMITTED) distinct.erase(distinct.begin());
  EXPECT_EQ(distinct, (std::vector<v1::JobState>{v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED}));
  EXPECT_EQ(seen.back().state, v1::JOB_STATE_SUCCEEDED);
  EXPECT_LE(seen.back().at, 6s);

  // Meanwhile the second CommCell's one poll was still waiting: not repeated, not answered.
  EXPECT_EQ(second_->EndpointCount("JobList"), hung_lists);
  v1::Job stuck;
  ASSERT_TRUE(drgate_->GetJob("second", other.job().job_id(), &stuck).ok());
  EXPECT_EQ(stuck.state(), v1::JOB_STATE_RUNNING);
}

}  // namespace
}  // namespace drgate::testing
