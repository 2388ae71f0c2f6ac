// Several drgate replicas on one PostgreSQL registry (README, "Several replicas on PostgreSQL"):
// a real PostgreSQL server (tests/fakes/postgres_server.h), a real commserv-sim and two real
// drgate processes, all on loopback ports chosen at run time.
//
// - One request_id sent to both replicas at once: one upstream POST, one job for every caller.
// - A job triggered on one replica is visible and watchable on the other.
// - Killing the leader: the other replica takes tracking over within the lease, and the job that
//   was running reaches its terminal state in the registry.
// - Pausing the leader (SIGSTOP) past its lease: the other takes over; the paused one, resumed,
//   writes nothing (its writes are fenced by the lease) and rejoins as a follower.

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include <signal.h>

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

  void StartSim(int job_duration_ms, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"--job-duration-ms", std::to_string(job_duration_ms)};
    args.insert(args.end(), more.begin(), more.end());
    sim_ = std::make_unique<Sim>(dir_, std::move(args));
  }
  // `stderr_path`: where the replica logs (at info level); empty: inherited, warnings only.
  // `tracking`: more tracking.* keys, "key: value, " each.
  // Replicas here share one lease for all tracking (registry.postgres.tracking: leader), unless
  // `cells` > 0: then that many CommCells c0, c1, ... (each under its own path prefix at the
  // simulator, which counts requests per prefix) shared by per-CommCell leases.
  std::unique_ptr<Drgate> StartReplica(const std::string& stderr_path = "",
                                       const std::string& tracking = "", int cells = 0) {
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
        "    watch_interval: 100ms\n" +
        (cells > 0 ? "    tracking: per_commcell\n" : "    tracking: leader\n") +
        "shutdown_grace: 2s\n"
        "tracking: {" +
        tracking +
        "poll_interval: 200ms, intent_grace: 31s, intent_give_up: 60s, "
        "probe_interval: 1h}\n"
        "commcells:\n" +
        (cells > 0 ? SharedCells(cells) : sim_->CommCellYaml("cs1", "    request_timeout: 10s\n"));
    const std::string config = dir_.Write("drgate.yaml", yaml);
    if (stderr_path.empty()) return std::make_unique<Drgate>(config);
    return std::make_unique<Drgate>(config, "info", stderr_path);
  }

  // CommCell i is served by simulator i % sims (sim_, then more_sims_) under the path prefix
  // "c<i>", so that each simulator counts its CommCells' requests apart.
  std::string SharedCells(int cells) const {
    std::string yaml;
    for (int i = 0; i < cells; ++i) {
      const std::string name = "c" + std::to_string(i);
      const Sim& sim = SimOf(i);
      yaml += "  - name: " + name + "\n    url: " + sim.base_url() + "/" + name +
              "/commandcenter/api\n    username: admin\n    password_file: password\n"
              "    ca_file: " +
              sim.cert_path() + "\n    request_timeout: 10s\n";
    }
    return yaml;
  }
  Sim& SimOf(int cell) const {
    const size_t n = 1 + more_sims_.size();
    const size_t k = static_cast<size_t>(cell) % n;
    return k == 0 ? *sim_ : *more_sims_[k - 1];
  }
  // Job-list requests CommCell c<cell> sent to its simulator (its path prefix).
  int64_t JobLists(int cell) {
    const std::string name = "c" + std::to_string(cell);
    const auto stats = SimOf(cell).admin().Json("GET", "/_sim/stats");
    const auto& by_prefix = stats.at("requests_by_prefix");
    auto it = by_prefix.find(name);
    return it == by_prefix.end() ? 0 : it->value("JobList", int64_t{0});
  }
  static double Tracking(Drgate& d) {
    return MetricValue(d.Metrics(), "drgate_tracking_commcells");
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
  std::vector<std::unique_ptr<TempDir>> sim_dirs_;
  std::vector<std::unique_ptr<Sim>> more_sims_;
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

// The CommServe's own DR schedule: the leader records the job (origin COMMSERV) and follows it;
// both replicas answer it from the shared registry, and it is recorded once.
TEST_F(ReplicasTest, AScheduledJobObservedByTheLeaderIsVisibleOnBothReplicas) {
  StartSim(1500, {"--dr-schedule", "2s"});
  auto a = StartReplica("", "history_interval: 1s, ");
  auto b = StartReplica("", "history_interval: 1s, ");
  std::string job_id;
  ASSERT_TRUE(Eventually(
      [&] {
        v1::ListJobsRequest req;
        req.set_origin(v1::JOB_ORIGIN_COMMSERV);
        req.set_state(v1::JOB_STATE_SUCCEEDED);
        v1::ListJobsResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(Deadline(5s));
        if (!b->stub().ListJobs(&ctx, req, &resp).ok() || resp.jobs_size() == 0) return false;
        job_id = resp.jobs(resp.jobs_size() - 1).job_id();
        return true;
      },
      30s));
  EXPECT_EQ(Leader(*a) + Leader(*b), 1);
  for (Drgate* replica : {a.get(), b.get()}) {
    v1::Job job;
    ASSERT_TRUE(Ok(GetJob(*replica, job_id, &job)));
    EXPECT_EQ(job.origin(), v1::JOB_ORIGIN_COMMSERV);
    EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_EQ(job.request_id(), "");
  }
  // drgate sent nothing: the schedule started every job.
  EXPECT_EQ(sim_->Requests("/CommServ/DRBackup").size(), 0u);
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

// Fencing (docs/replicas-fencing.md): the leader is paused (SIGSTOP) while its tracker waits for a
// DR job list, past its lease; the other replica takes over and records a change of the job; the
// paused one resumes (SIGCONT) and applies the job list it was waiting for, now stale. Without
// fencing that write would land and put the job back to RUNNING. With it: refused (counted,
// logged), the registry keeps the new leader's record unchanged, and the old leader rejoins as a
// follower.
TEST_F(ReplicasTest, ALeaderPausedPastItsLeaseWritesNothingOnceResumed) {
  StartSim(600000);  // the job runs for ten minutes: it stays active throughout
  const std::string a_log = dir_.File("a.log");
  const std::string b_log = dir_.File("b.log");
  auto a = StartReplica(a_log);
  auto b = StartReplica(b_log);
  ASSERT_EQ(Leader(*a), 1);
  ASSERT_EQ(Leader(*b), 0);
  v1::TriggerBackupResponse triggered;
  ASSERT_TRUE(Ok(Trigger(*b, "fenced-leader", &triggered)));
  const std::string job_id = triggered.job().job_id();
  v1::Job job;
  ASSERT_TRUE(Eventually(
      [&] { return GetJob(*b, job_id, &job).ok() && job.state() == v1::JOB_STATE_RUNNING; }, 10s))
      << "state " << v1::JobState_Name(job.state());

  // Hold the leader's next job-list answer back for 2 s (the simulator computes it at the end of
  // the delay) and pause the leader as soon as its request arrived: it stops with that round in
  // flight. Only the leader asks for job lists (the follower probed once, at its start). The
  // pause lasts about 4 s, well within the request timeout (10 s): the held answer is applied
  // when the leader resumes, not timed out.
  constexpr auto kHeld = 2000ms;
  sim_->Fault({{"endpoint", "JobList"},
               {"action", "delay"},
               {"delay_ms", std::chrono::milliseconds(kHeld).count()},
               {"count", 1}});
  ASSERT_TRUE(Eventually(
      [&] { return sim_->admin().Json("GET", "/_sim/stats").at("faults_applied") == 1; }, 10s));
  a->Signal(SIGSTOP);
  const auto paused = std::chrono::steady_clock::now();

  // The other replica takes over once the lease ran out in the registry.
  ASSERT_TRUE(Eventually([&] { return Leader(*b) == 1; }, 3 * kLease));
  // The held answer (RUNNING) has been computed and sent to the paused leader by now; then the
  // job changes on the CommServe, and the new leader records the change.
  ASSERT_TRUE(
      Eventually([&] { return std::chrono::steady_clock::now() - paused > kHeld + 500ms; }, 10s));
  sim_->ForceJob(job_id, {{"status", "Suspended"}});
  ASSERT_TRUE(Eventually(
      [&] { return GetJob(*b, job_id, &job).ok() && job.state() == v1::JOB_STATE_SUSPENDED; }, 10s))
      << "state " << v1::JobState_Name(job.state());
  const v1::Job recorded = job;
  const double b_fenced = MetricValue(b->Metrics(), "drgate_leader_fenced_writes_total");

  a->Signal(SIGCONT);
  // The resumed replica applies the stale answer: its write is refused, and it follows.
  ASSERT_TRUE(Eventually(
      [&] { return MetricValue(a->Metrics(), "drgate_leader_fenced_writes_total") >= 1; }, 15s))
      << ReadAll(a_log);
  ASSERT_TRUE(Eventually([&] { return Leader(*a) == 0; }, 3 * kLease));
  EXPECT_EQ(Leader(*b), 1);
  EXPECT_EQ(b_fenced, 0);
  EXPECT_EQ(MetricValue(b->Metrics(), "drgate_leader_fenced_writes_total"), 0);

  // The registry keeps the new leader's record, untouched (same state, progress and update time),
  // as both replicas read it.
  for (Drgate* replica : {a.get(), b.get()}) {
    v1::Job now;
    ASSERT_TRUE(Ok(GetJob(*replica, job_id, &now)));
    EXPECT_EQ(now.state(), v1::JOB_STATE_SUSPENDED);
    EXPECT_EQ(now.percent_complete(), recorded.percent_complete());
    EXPECT_EQ(now.update_time().seconds(), recorded.update_time().seconds());
    EXPECT_EQ(now.update_time().nanos(), recorded.update_time().nanos());
  }
  // One trigger, one job, one upstream POST.
  v1::ListJobsRequest list;
  list.set_commcell("cs1");
  list.set_page_size(100);
  v1::ListJobsResponse listed;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(10s));
  ASSERT_TRUE(Ok(b->stub().ListJobs(&ctx, list, &listed)));
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).job_id(), job_id);
  EXPECT_EQ(listed.jobs(0).request_id(), "fenced-leader");
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), 1);

  // What the operator sees in the old leader's log.
  ASSERT_TRUE(Eventually(
      [&] {
        return ReadAll(a_log).find("this replica is no longer the leader") != std::string::npos;
      },
      5s));
  const std::string log = ReadAll(a_log);
  EXPECT_NE(log.find("registry: refused a leader write of this replica (record jobs): ABORTED "
                     "[LEASE_LOST]"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("ran out"), std::string::npos) << log;
  EXPECT_NE(log.find("without a renewal (the process was paused or the registry was slow)"),
            std::string::npos)
      << log;
  EXPECT_EQ(ReadAll(b_log).find("refused a leader write"), std::string::npos);

  // The new leader still follows the job: the old one did not take anything back.
  sim_->ForceJob(job_id, {{"status", "Completed"}});
  ASSERT_TRUE(Eventually(
      [&] { return GetJob(*a, job_id, &job).ok() && job.state() == v1::JOB_STATE_SUCCEEDED; }, 15s))
      << "state " << v1::JobState_Name(job.state());
  EXPECT_EQ(Leader(*a) + Leader(*b), 1);
}

}  // namespace
}  // namespace drgate::testing

namespace drgate::testing {
namespace {

// registry.postgres.tracking: per_commcell. Three replicas share nine CommCells, each followed by
// exactly one of them (counted at the simulator and in each replica's own request counter); a
// replica killed with SIGKILL has its CommCells taken over by the others within the lease plus one
// renewal, and no job is recorded twice.
TEST_F(ReplicasTest, PerCommCellLeasesSpreadTheCommCellsAndAKilledReplicasShareIsTakenOver) {
  constexpr int kCells = 9;
  // Three CommServes of three CommCells each (one CommServe runs two full DR backups and one
  // differential at a time); the jobs run for the whole test. Without the DR history, each
  // CommCell follows only its own job, not its neighbours' on the same simulator.
  StartSim(600000);
  for (int i = 0; i < 2; ++i) {
    sim_dirs_.push_back(std::make_unique<TempDir>());  // a certificate folder of its own
    more_sims_.push_back(std::make_unique<Sim>(
        *sim_dirs_.back(), std::vector<std::string>{"--job-duration-ms", "600000"}));
  }
  std::vector<std::unique_ptr<Drgate>> replicas;
  for (int i = 0; i < 3; ++i) replicas.push_back(StartReplica("", "history: false, ", kCells));
  auto tracked = [&] {
    double sum = 0;
    for (auto& r : replicas) sum += r ? Tracking(*r) : 0;
    return sum;
  };
  ASSERT_TRUE(Eventually([&] { return tracked() == kCells; }, 4 * kLease)) << tracked();
  // Something to follow on every CommCell: one running job each, triggered on the first replica.
  std::map<std::string, std::string> job_of;
  for (int i = 0; i < kCells; ++i) {
    const std::string cell = "c" + std::to_string(i);
    v1::TriggerBackupResponse out;
    const auto type = i / 3 == 2 ? v1::BACKUP_TYPE_DIFFERENTIAL : v1::BACKUP_TYPE_FULL;
    ASSERT_TRUE(Ok(replicas[0]->Trigger(cell, type, "spread-" + cell, &out))) << cell;
    job_of[cell] = out.job().job_id();
  }
  // Who polls whom: over two seconds, exactly one replica's job-list counter grows per CommCell.
  auto lists_by_replica = [&](const std::string& cell) {
    std::vector<double> out;
    for (auto& r : replicas) {
      out.push_back(r ? MetricValue(r->Metrics(),
                                    "drgate_commserv_requests_total{code=\"200\","
                                    "commcell=\"" +
                                        cell + "\",endpoint=\"job_list\"}")
                      : 0);
    }
    return out;
  };
  std::this_thread::sleep_for(1s);  // the triggers' own polls settle
  std::map<std::string, std::vector<double>> before;
  std::map<std::string, int64_t> sim_before;
  for (int i = 0; i < kCells; ++i) {
    const std::string cell = "c" + std::to_string(i);
    before[cell] = lists_by_replica(cell);
    sim_before[cell] = JobLists(i);
  }
  std::this_thread::sleep_for(2s);
  std::map<std::string, int> owner;
  for (int c = 0; c < kCells; ++c) {
    const std::string cell = "c" + std::to_string(c);
    const std::vector<double> after = lists_by_replica(cell);
    int growing = 0;
    for (int i = 0; i < 3; ++i) {
      if (after[i] > before[cell][i]) {
        ++growing;
        owner[cell] = i;
      }
    }
    EXPECT_EQ(growing, 1) << cell;
    // One list per poll interval (200 ms): about ten in two seconds, from the one replica.
    const int64_t lists = JobLists(c) - sim_before[cell];
    EXPECT_GE(lists, 5) << cell;
    EXPECT_LE(lists, 14) << cell;
  }
  ASSERT_EQ(owner.size(), static_cast<size_t>(kCells));

  // SIGKILL the replica that follows c0; its CommCells go to the others.
  const int victim = owner["c0"];
  std::vector<int> orphaned;
  for (const auto& [cell, i] : owner) {
    if (i == victim) orphaned.push_back(std::stoi(cell.substr(1)));
  }
  const auto killed = std::chrono::steady_clock::now();
  replicas[victim]->Kill();
  replicas[victim].reset();
  std::map<int, int64_t> at_kill;
  for (int cell : orphaned) at_kill[cell] = JobLists(cell);
  ASSERT_TRUE(Eventually(
      [&] {
        for (int cell : orphaned) {
          if (JobLists(cell) <= at_kill[cell]) return false;
        }
        return tracked() == kCells;
      },
      4 * kLease));
  const auto takeover = std::chrono::steady_clock::now() - killed;
  std::printf("%zu CommCell(s) of a SIGKILLed replica polled again after %lld ms (lease %lld ms)\n",
              orphaned.size(),
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(takeover).count()),
              static_cast<long long>(std::chrono::milliseconds(kLease).count()));
  // The lease, one renewal period, one poll interval, and a margin for a loaded machine.
  EXPECT_LE(takeover, kLease + kLease / 3 + 200ms + 1s);

  // No job recorded twice: each CommCell holds exactly its one job, still followed.
  Drgate& survivor = *replicas[victim == 0 ? 1 : 0];
  for (const auto& [cell, job_id] : job_of) {
    v1::ListJobsRequest req;
    req.set_commcell(cell);
    v1::ListJobsResponse listed;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(10s));
    ASSERT_TRUE(Ok(survivor.stub().ListJobs(&ctx, req, &listed))) << cell;
    ASSERT_EQ(listed.jobs_size(), 1) << cell;
    EXPECT_EQ(listed.jobs(0).job_id(), job_id);
    EXPECT_EQ(listed.jobs(0).request_id(), "spread-" + cell);
  }
}

}  // namespace
}  // namespace drgate::testing
