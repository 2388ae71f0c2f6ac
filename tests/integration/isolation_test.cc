// Per-CommCell isolation of the tracker (docs/tracking.md), end to end: drgate serves two
// CommCells, each on its own commserv-sim, and polls every second. The second CommServe's DR job
// list hangs (sim fault "hang" for 60 s, longer than the whole test); a 2-second DR backup on the
// first must still be seen SUCCEEDED within a few poll intervals, by GetJob and by a WatchJob
// stream, while the first CommCell stays up and drgate stays ready.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
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

namespace drgate::testing {
namespace {

// A DNS server on loopback that never answers: a UDP socket on 127.0.0.153:53 that nobody reads
// (queries queue in the kernel and are counted at the end).
class SilentDns {
 public:
  SilentDns() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(53);
    inet_pton(AF_INET, "127.0.0.153", &addr.sin_addr);
    ok_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~SilentDns() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return ok_; }
  int Queries() {
    int n = 0;
    char buf[2048];
    while (recv(fd_, buf, sizeof buf, 0) > 0) ++n;
    return n;
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

// One drgate, 100 CommCells: 60 healthy ones on one simulator, 20 whose DR job list hangs (a
// second simulator, fault "hang"), and 20 whose host names never resolve (drgate runs in a mount
// namespace whose /etc/resolv.conf names a loopback DNS server that never answers). Every healthy
// CommCell is still listed once per poll interval (counted at its simulator, per path prefix),
// and a job change on one of them reaches a WatchJob stream within two intervals.
TEST(EstateIsolationTest, SixtyHealthyCommCellsKeepTheirIntervalWhileFortyHang) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root: drgate runs in a mount namespace with its own /etc/resolv.conf "
                    "(CI runs as root)";
  }
  SilentDns dns;
  ASSERT_TRUE(dns.ok()) << "cannot bind 127.0.0.153:53";
  constexpr auto kInterval = 2s;
  TempDir dir, healthy_dir, hung_dir;
  Sim healthy(healthy_dir, {"--job-duration-ms", "600000"});
  Sim hung(hung_dir);
  hung.Fault({{"endpoint", "JobList"}, {"action", "hang"}, {"count", -1}, {"delay_ms", 600000}});
  dir.Write("password", "s3cret\n");
  const std::string resolv =
      dir.Write("resolv.conf", "nameserver 127.0.0.153\noptions timeout:30 attempts:1\n");
  std::string cells;
  auto cell = [&](const std::string& name, const std::string& url, const std::string& ca) {
    cells += "  - name: " + name + "\n    url: " + url +
             "/commandcenter/api\n    username: admin\n    password_file: password\n"
             "    ca_file: " +
             ca + "\n";
  };
  for (int i = 0; i < 60; ++i) {
    cell("h" + std::to_string(i), healthy.base_url() + "/h" + std::to_string(i),
         healthy.cert_path());
  }
  for (int i = 0; i < 20; ++i) {
    cell("j" + std::to_string(i), hung.base_url() + "/j" + std::to_string(i), hung.cert_path());
  }
  const std::string port = healthy.base_url().substr(healthy.base_url().rfind(':') + 1);
  for (int i = 0; i < 20; ++i) {
    cell("d" + std::to_string(i),
         "https://cs-" + std::to_string(i) + ".drgate-test.invalid:" + port, healthy.cert_path());
  }
  // Every CommCell is listed each interval (its DR history), probes off: every job list at the
  // healthy simulator is a poll. The default bound of 16 polls is smaller than the 40 that hang.
  const std::string config =
      dir.Write("drgate.yaml",
                "registry: {path: state/drgate.db}\n"
                "shutdown_grace: 2s\n"
                "auth: {mode: insecure}\n"
                "tracking: {poll_interval: 2s, history_interval: 2s, probe_interval: 0s}\n"
                "commcells:\n" +
                    cells);
  Drgate drgate(config, "warn", "", true,
                {"/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                 "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"", resolv});

  auto lists = [&](int i) {
    const auto stats = healthy.admin().Json("GET", "/_sim/stats");
    const auto& by_prefix = stats.at("requests_by_prefix");
    auto it = by_prefix.find("h" + std::to_string(i));
    return it == by_prefix.end() ? int64_t{0} : it->value("JobList", int64_t{0});
  };
  // Every healthy CommCell's history read, then four intervals counted.
  ASSERT_TRUE(Eventually(
      [&] {
        for (int i = 0; i < 60; ++i) {
          if (lists(i) == 0) return false;
        }
        return true;
      },
      30s));
  std::this_thread::sleep_for(kInterval);
  std::vector<int64_t> before(60);
  for (int i = 0; i < 60; ++i) before[i] = lists(i);
  std::this_thread::sleep_for(4 * kInterval);
  int slow = 0;
  std::string counts;
  for (int i = 0; i < 60; ++i) {
    const int64_t n = lists(i) - before[i];
    counts += " h" + std::to_string(i) + "=" + std::to_string(n);
    if (n < 3 || n > 5) ++slow;  // one per interval, give or take the window's edges
  }
  EXPECT_EQ(slow, 0) << "job lists per healthy CommCell over 4 intervals:" << counts;
  EXPECT_GT(dns.Queries(), 0) << "the hung host names never reached the silent DNS server";
  EXPECT_GE(hung.EndpointCount("JobList"), 1);

  // A job on a healthy CommCell: its end reaches a WatchJob stream within two intervals.
  v1::TriggerBackupResponse resp;
  grpc::Status s = drgate.Trigger("h7", v1::BACKUP_TYPE_FULL, "estate-isolation", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const std::string id = resp.job().job_id();
  std::atomic<bool> ended{false};
  std::chrono::steady_clock::time_point ended_at;
  std::thread watcher([&] {
    v1::WatchJobRequest req;
    req.set_commcell("h7");
    req.set_job_id(id);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(30s));
    auto reader = drgate.stub().WatchJob(&ctx, req);
    v1::Job job;
    while (reader->Read(&job)) {
      if (job.state() == v1::JOB_STATE_SUCCEEDED && !ended) {
        ended_at = std::chrono::steady_clock::now();
        ended = true;
      }
    }
    reader->Finish();
  });
  std::this_thread::sleep_for(kInterval);  // the stream is open and has seen the job running
  const auto forced = std::chrono::steady_clock::now();
  healthy.ForceJob(id, {{"status", "Completed"}});
  watcher.join();
  ASSERT_TRUE(ended.load()) << "the stream never saw SUCCEEDED";
  const auto took = ended_at - forced;
  std::cout << "estate isolation: job end seen on WatchJob after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms (interval 2000 ms), with 40 of 100 CommCells hung\n";
  EXPECT_LE(took, 2 * kInterval);
}

}  // namespace
}  // namespace drgate::testing
