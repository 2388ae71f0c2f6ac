// Job lifecycle end to end: drgate follows the jobs it started (WatchJob, GetJob), survives a
// crash between POST and reply, deduplicates under load, and drgatectl maps outcomes to exit
// codes. Real commserv-sim and drgate processes on loopback; a fast tracker (200 ms polls).

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <map>
#include <set>

#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using namespace std::chrono_literals;
using v1::BACKUP_TYPE_DIFFERENTIAL;
using v1::BACKUP_TYPE_FULL;

constexpr char kTracking[] =
    "tracking: {poll_interval: 200ms, intent_grace: 31s, intent_give_up: 60s}\n";

// A call's status as an assertion: failures show the code, reason and message.
::testing::AssertionResult Ok(const grpc::Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "code " << s.error_code() << " reason "
                                       << ErrorInfoOf(s).reason() << ": " << s.error_message();
}

std::string StateName(v1::JobState s) {
  return v1::JobState_Name(s);
}

std::chrono::system_clock::time_point FromProto(const google::protobuf::Timestamp& t) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(t.seconds()) +
                                               std::chrono::nanoseconds(t.nanos()));
}

class LifecycleTest : public ::testing::Test {
 protected:
  void StartSim(int job_duration_ms, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--job-duration-ms", std::to_string(job_duration_ms)};
    for (auto& a : extra) args.push_back(std::move(a));
    sim_ = std::make_unique<Sim>(dir_, std::move(args));
  }
  std::string WriteConfig(const std::string& on_active) {
    dir_.Write("password", "s3cret\n");
    std::string yaml =
        "registry: {path: state/drgate.db}\n"
        "shutdown_grace: 5s\n"
        "auth: {mode: insecure}\n" +
        std::string(kTracking) + "commcells:\n" +
        sim_->CommCellYaml("cs1", "    request_timeout: 10s\n");
    if (!on_active.empty()) yaml += "    on_active: " + on_active + "\n";
    return dir_.Write("drgate.yaml", yaml);
  }
  // (Re)starts drgate on the same registry.
  void StartDrgate(const std::string& on_active = "") {
    drgate_.reset();
    drgate_ = std::make_unique<Drgate>(WriteConfig(on_active));
  }

  grpc::Status Trigger(v1::BackupType type, v1::TriggerBackupResponse* out,
                       const std::string& request_id = "") {
    return drgate_->Trigger("cs1", type, request_id, out);
  }
  grpc::Status GetJob(const std::string& job_id, v1::Job* out) {
    return drgate_->GetJob("cs1", job_id, out);
  }
  grpc::Status Cancel(const std::string& job_id, v1::Job* out) {
    v1::CancelJobRequest req;
    req.set_commcell("cs1");
    req.set_job_id(job_id);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(10s));
    return drgate_->stub().CancelJob(&ctx, req, out);
  }
  grpc::Status Ensure(std::chrono::milliseconds max_age, v1::TriggerBackupResponse* out) {
    v1::EnsureRecentBackupRequest req;
    req.set_commcell("cs1");
    req.set_backup_type(BACKUP_TYPE_FULL);
    req.mutable_max_age()->set_seconds(max_age.count() / 1000);
    req.mutable_max_age()->set_nanos(static_cast<int>(max_age.count() % 1000) * 1000000);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(20s));
    return drgate_->stub().EnsureRecentBackup(&ctx, req, out);
  }
  // Every message of a WatchJob stream until it ends; `end` gets the stream's status.
  std::vector<v1::Job> Watch(const std::string& job_id, grpc::Status* end,
                             std::chrono::milliseconds timeout = 30s) {
    v1::WatchJobRequest req;
    req.set_commcell("cs1");
    req.set_job_id(job_id);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(timeout));
    auto reader = drgate_->stub().WatchJob(&ctx, req);
    std::vector<v1::Job> messages;
    v1::Job job;
    while (reader->Read(&job)) messages.push_back(job);
    *end = reader->Finish();
    return messages;
  }
  // Polls GetJob until `pred` holds; the last job read (fails the test on timeout).
  v1::Job WaitForJob(const std::string& job_id, const std::function<bool(const v1::Job&)>& pred,
                     std::chrono::milliseconds timeout = 15s) {
    v1::Job job;
    const bool ok = Eventually(
        [&] {
          job.Clear();
          return GetJob(job_id, &job).ok() && pred(job);
        },
        timeout);
    EXPECT_TRUE(ok) << "job " << job_id << " last seen as " << job.ShortDebugString();
    return job;
  }
  // The ids the simulator issued, in order.
  std::vector<std::string> SimJobIds() {
    std::vector<std::string> ids;
    for (const auto& j : sim_->admin().Json("GET", "/_sim/jobs")) {
      ids.push_back(j["id"].is_string() ? j["id"].get<std::string>()
                                        : std::to_string(j["id"].get<long long>()));
    }
    return ids;
  }
  int64_t Posts() { return sim_->admin().Json("GET", "/_sim/stats")["drbackup_posts"]; }
  // Upstream job queries the tracker sends: the DR job list and Job/{id}.
  int64_t JobQueries() { return sim_->EndpointCount("JobList") + sim_->EndpointCount("Job"); }

  TempDir dir_;
  std::unique_ptr<Sim> sim_;
  std::unique_ptr<Drgate> drgate_;
};

// 1. Full B waits while full A is in its first phase: WatchJob on B sees it queue, run and end.
TEST_F(LifecycleTest, WatchJobFollowsWaitingRunningCompleted) {
  StartSim(3000);
  StartDrgate();
  v1::TriggerBackupResponse a, b;
  ASSERT_TRUE(Ok(Trigger(BACKUP_TYPE_FULL, &a)));
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, &b);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_NE(a.job().job_id(), b.job().job_id());

  grpc::Status end;
  auto messages = Watch(b.job().job_id(), &end);
  EXPECT_TRUE(end.ok()) << end.error_code() << " " << end.error_message();
  ASSERT_FALSE(messages.empty());

  std::vector<v1::JobState> distinct;
  for (const auto& m : messages) {
    EXPECT_EQ(m.job_id(), b.job().job_id());
    if (distinct.empty() || distinct.back() != m.state()) distinct.push_back(m.state());
  }
  std::string trace;
  for (auto st : distinct) trace += StateName(st) + " ";
  SCOPED_TRACE("states: " + trace);
  // SUBMITTED may come first (the registry's state before the tracker's first poll).
  std::vector<v1::JobState> expected = {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING,
                                        v1::JOB_STATE_SUCCEEDED};
  if (distinct.front() == v1::JOB_STATE_SUBMITTED) distinct.erase(distinct.begin());
  EXPECT_EQ(distinct, expected);
  const v1::Job& last = messages.back();
  EXPECT_EQ(last.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(last.has_end_time());
  EXPECT_TRUE(last.has_start_time());
  EXPECT_EQ(last.commserv_status(), "Completed");
  EXPECT_EQ(last.percent_complete(), 100);
}

// 2. A job the CommServe fails ends FAILED with the CommServe's reason.
TEST_F(LifecycleTest, FailedJobCarriesTheSimulatorsReason) {
  StartSim(3000);
  StartDrgate();
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Ok(Trigger(BACKUP_TYPE_FULL, &resp)));
  const std::string id = resp.job().job_id();
  const std::string reason = "Failed to write to the DR backup share: disk quota exceeded";
  sim_->ForceJob(id, {{"status", "Failed"}, {"pendingReason", reason}});

  grpc::Status end;
  auto messages = Watch(id, &end);
  EXPECT_TRUE(end.ok()) << end.error_message();
  ASSERT_FALSE(messages.empty());
  EXPECT_EQ(messages.back().state(), v1::JOB_STATE_FAILED);

  v1::Job job;
  ASSERT_TRUE(Ok(GetJob(id, &job)));
  EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(job.failure_reason(), reason);
  EXPECT_EQ(job.commserv_status(), "Failed");
  EXPECT_TRUE(job.has_end_time());
}

// 3. "Completed w/ one or more errors" is a success with errors.
TEST_F(LifecycleTest, CompletedWithErrorsIsSucceededWithErrors) {
  StartSim(1500);
  StartDrgate();
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Ok(Trigger(BACKUP_TYPE_DIFFERENTIAL, &resp)));
  const std::string id = resp.job().job_id();
  sim_->ForceJob(id, {{"outcome", "Completed w/ one or more errors"}});

  grpc::Status end;
  auto messages = Watch(id, &end);
  EXPECT_TRUE(end.ok()) << end.error_message();
  ASSERT_FALSE(messages.empty());
  EXPECT_EQ(messages.back().state(), v1::JOB_STATE_SUCCEEDED_WITH_ERRORS);
  v1::Job job;
  ASSERT_TRUE(Ok(GetJob(id, &job)));
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED_WITH_ERRORS);
  EXPECT_EQ(job.commserv_status(), "Completed w/ one or more errors");
  EXPECT_TRUE(job.failure_reason().empty()) << job.failure_reason();
}

// 4. 1,000 concurrent triggers with one request id: one POST, one job, 999 deduplicated; the
// request id still answers that job after a restart.
TEST_F(LifecycleTest, ThousandConcurrentTriggersWithOneRequestIdPostOnce) {
  StartSim(2000);
  StartDrgate();
  constexpr int kCalls = 1000;
  const std::string request_id = "9b2f6a34-storm-0001";
  struct Call {
    grpc::ClientContext ctx;
    v1::TriggerBackupResponse resp;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::TriggerBackupResponse>> rpc;
  };
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<Call>> calls;
  v1::TriggerBackupRequest req;
  req.set_commcell("cs1");
  req.set_backup_type(BACKUP_TYPE_FULL);
  req.set_request_id(request_id);
  for (int i = 0; i < kCalls; ++i) {
    auto c = std::make_unique<Call>();
    c->ctx.set_deadline(Deadline(30s));
    c->rpc = drgate_->stub().PrepareAsyncTriggerBackup(&c->ctx, req, &cq);
    c->rpc->StartCall();
    c->rpc->Finish(&c->resp, &c->status, reinterpret_cast<void*>(static_cast<intptr_t>(i)));
    calls.push_back(std::move(c));
  }
  for (int done = 0; done < kCalls; ++done) {
    void* tag = nullptr;
    bool ok = false;
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_TRUE(ok);
  }
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }

  std::set<std::string> job_ids;
  int deduplicated = 0;
  std::map<std::string, int> errors;
  for (const auto& c : calls) {
    if (!c->status.ok()) {
      ++errors[c->status.error_message()];
      continue;
    }
    job_ids.insert(c->resp.job().job_id());
    if (c->resp.deduplicated()) ++deduplicated;
  }
  EXPECT_TRUE(errors.empty()) << errors.size() << " distinct errors, e.g. "
                              << (errors.empty() ? "" : errors.begin()->first);
  EXPECT_EQ(Posts(), 1);
  const auto sim_ids = SimJobIds();
  ASSERT_EQ(sim_ids.size(), 1u);
  ASSERT_EQ(job_ids.size(), 1u);
  EXPECT_EQ(*job_ids.begin(), sim_ids[0]);
  EXPECT_EQ(deduplicated, kCalls - 1);

  ASSERT_EQ(drgate_->Terminate(), 0);
  StartDrgate();
  v1::TriggerBackupResponse again;
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, &again, request_id);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(again.deduplicated());
  EXPECT_EQ(again.job().job_id(), sim_ids[0]);
  EXPECT_EQ(again.job().request_id(), request_id);
  EXPECT_EQ(Posts(), 1);
}

// 5. The CommServe allows two fulls: the third is ABORTED naming a running job, or (on_active:
// reuse) answers that job.
TEST_F(LifecycleTest, ThirdConcurrentFullIsAbortedNamingTheRunningJob) {
  StartSim(60000);
  StartDrgate();
  v1::TriggerBackupResponse a, b, c;
  ASSERT_TRUE(Ok(Trigger(BACKUP_TYPE_FULL, &a)));
  ASSERT_TRUE(Ok(Trigger(BACKUP_TYPE_FULL, &b)));
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, &c);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  const auto info = ErrorInfoOf(s);
  EXPECT_EQ(info.reason(), "DR_JOB_ALREADY_RUNNING");
  EXPECT_EQ(info.domain(), "drgate");
  ASSERT_TRUE(info.metadata().contains("active_job_id")) << info.DebugString();
  const std::string active = info.metadata().at("active_job_id");
  EXPECT_TRUE(active == a.job().job_id() || active == b.job().job_id()) << active;
  EXPECT_EQ(active, a.job().job_id());  // the simulator names the oldest active job
  EXPECT_NE(s.error_message().find(active), std::string::npos) << s.error_message();
  EXPECT_EQ(info.metadata().at("commcell"), "cs1");
  EXPECT_EQ(Posts(), 3);
  EXPECT_EQ(SimJobIds().size(), 2u);
}

TEST_F(LifecycleTest, ThirdConcurrentFullWithOnActiveReuseAnswersTheRunningJob) {
  StartSim(60000);
  StartDrgate("reuse");
  v1::TriggerBackupResponse a, b, c;
  ASSERT_TRUE(Ok(Trigger(BACKUP_TYPE_FULL, &a)));
  ASSERT_TRUE(Ok(Trigger(BACKUP_TYPE_FULL, &b)));
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, &c);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_TRUE(c.deduplicated());
  EXPECT_EQ(c.job().job_id(), a.job().job_id());
  EXPECT_EQ(Posts(), 3);
  EXPECT_EQ(SimJobIds().size(), 2u);
}

// 6. drgate dies after POST, before the answer: the restarted drgate adopts the job the
// CommServe created, under the trigger's request id, without a second POST.
TEST_F(LifecycleTest, CrashBetweenPostAndReplyAdoptsTheUpstreamJob) {
  StartSim(3000);
  StartDrgate();
  // The simulator creates the job when the delay ends (service.cc runs Respond after it), even
  // though drgate is gone by then.
  sim_->Fault({{"endpoint", "DRBackup"}, {"action", "delay"}, {"delay_ms", 2500}});
  const std::string request_id = "crash-between-post-and-reply";
  grpc::Status trigger_status;
  std::thread trigger([&] {
    v1::TriggerBackupResponse resp;
    trigger_status = Trigger(BACKUP_TYPE_FULL, &resp, request_id);
  });
  const bool posted = Eventually([&] { return Posts() == 1; }, 10s);
  if (posted) {
    EXPECT_TRUE(SimJobIds().empty()) << "the job must not exist before the delay ends";
  }
  drgate_->Kill();
  trigger.join();
  ASSERT_TRUE(posted);
  EXPECT_EQ(trigger_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << trigger_status.error_message();

  StartDrgate();
  // Until the job is adopted the request id is pending, never triggered again.
  v1::Job adopted;
  const bool found = Eventually(
      [&] {
        v1::ListJobsRequest req;
        req.set_commcell("cs1");
        v1::ListJobsResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(Deadline(5s));
        if (!drgate_->stub().ListJobs(&ctx, req, &resp).ok()) return false;
        for (const auto& j : resp.jobs()) {
          if (j.request_id() == request_id) {
            adopted = j;
            return true;
          }
        }
        return false;
      },
      12s);
  ASSERT_TRUE(found) << "no job recorded for the lost trigger";
  const auto sim_ids = SimJobIds();
  ASSERT_EQ(sim_ids.size(), 1u);
  EXPECT_EQ(adopted.job_id(), sim_ids[0]) << adopted.ShortDebugString();
  EXPECT_NE(adopted.state(), v1::JOB_STATE_UNKNOWN) << adopted.ShortDebugString();

  v1::TriggerBackupResponse again;
  grpc::Status s = Trigger(BACKUP_TYPE_FULL, &again, request_id);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(again.deduplicated());
  EXPECT_EQ(again.job().job_id(), sim_ids[0]);
  EXPECT_EQ(Posts(), 1);
  // The adopted job is followed to its end like any other.
  v1::Job done =
      WaitForJob(sim_ids[0], [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; });
  EXPECT_EQ(done.request_id(), request_id);
}

// 7. Watchers cost nothing upstream: 1,000 WatchJob streams leave the tracker's poll rate alone.
TEST_F(LifecycleTest, ThousandWatchersDoNotChangeUpstreamPolling) {
  StartSim(60000);
  StartDrgate();
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Ok(Trigger(BACKUP_TYPE_FULL, &resp)));
  const std::string id = resp.job().job_id();
  WaitForJob(id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });

  auto rate = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t n0 = JobQueries();
    std::this_thread::sleep_for(2s);  // a measurement window, not a wait for something
    const int64_t n1 = JobQueries();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<double>(n1 - n0) / secs;
  };
  const double before = rate();

  constexpr int kStreams = 1000;
  struct Stream {
    grpc::ClientContext ctx;
    v1::Job first;
    std::unique_ptr<grpc::ClientAsyncReader<v1::Job>> reader;
    grpc::Status status;
    bool got_first = false;
  };
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<Stream>> streams;
  v1::WatchJobRequest req;
  req.set_commcell("cs1");
  req.set_job_id(id);
  // Tags: 3*i start, 3*i+1 first read, 3*i+2 finish.
  auto tag = [](int i, int kind) {
    return reinterpret_cast<void*>(static_cast<intptr_t>(3 * i + kind));
  };
  for (int i = 0; i < kStreams; ++i) {
    auto s = std::make_unique<Stream>();
    s->ctx.set_deadline(Deadline(60s));
    s->reader = drgate_->stub().PrepareAsyncWatchJob(&s->ctx, req, &cq);
    s->reader->StartCall(tag(i, 0));
    streams.push_back(std::move(s));
  }
  int first_messages = 0;
  int pending = 2 * kStreams;  // start + first read per stream
  const auto deadline = std::chrono::system_clock::now() + 30s;
  while (pending > 0) {
    void* t = nullptr;
    bool ok = false;
    if (cq.AsyncNext(&t, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) break;
    --pending;
    const auto v = reinterpret_cast<intptr_t>(t);
    const int i = static_cast<int>(v / 3);
    if (v % 3 == 0) {
      if (ok) {
        streams[i]->reader->Read(&streams[i]->first, tag(i, 1));
      } else {
        --pending;  // no read follows a failed start
      }
    } else if (v % 3 == 1 && ok) {
      streams[i]->got_first = true;
      ++first_messages;
    }
  }
  EXPECT_EQ(first_messages, kStreams);
  int right_job = 0;
  for (const auto& s : streams) {
    if (s->got_first && s->first.job_id() == id && s->first.state() == v1::JOB_STATE_RUNNING) {
      ++right_job;
    }
  }
  EXPECT_EQ(right_job, kStreams);

  const double during = rate();
  EXPECT_GT(before, 0);
  EXPECT_LE(during, before * 1.3) << "before " << before << "/s, with watchers " << during << "/s";
  EXPECT_GE(during, before * 0.7) << "before " << before << "/s, with watchers " << during << "/s";

  // Close every stream and wait for all of them.
  for (auto& s : streams) s->ctx.TryCancel();
  int finishing = 0;
  for (int i = 0; i < kStreams; ++i) {
    if (!streams[i]->got_first) continue;
    streams[i]->reader->Finish(&streams[i]->status, tag(i, 2));
    ++finishing;
  }
  for (; finishing > 0; --finishing) {
    void* t = nullptr;
    bool ok = false;
    if (cq.AsyncNext(&t, &ok, std::chrono::system_clock::now() + 30s) !=
        grpc::CompletionQueue::GOT_EVENT) {
      ADD_FAILURE() << finishing << " streams did not finish";
      break;
    }
  }
  cq.Shutdown();
  void* t;
  bool ok;
  while (cq.Next(&t, &ok)) {
  }
}

// 8. drgatectl backup --wait: one exit code per outcome.
struct CtlCase {
  std::string name;
  int job_duration_ms;
  std::string outcome;  // the simulator's --outcome; empty: none
  std::vector<std::string> extra_args;
  bool closed_port;
  int expected_exit;
};

void PrintTo(const CtlCase& c, std::ostream* os) {
  *os << c.name;
}

class DrgatectlExitCodeTest : public LifecycleTest,
                              public ::testing::WithParamInterface<CtlCase> {};

// A loopback port nothing listens on (bound, then released).
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST_P(DrgatectlExitCodeTest, BackupWaitExitsWithTheOutcome) {
  const CtlCase& c = GetParam();
  std::string server;
  if (c.closed_port) {
    server = "127.0.0.1:" + std::to_string(ClosedPort());
  } else {
    std::vector<std::string> sim_args;
    if (!c.outcome.empty()) sim_args = {"--outcome", c.outcome};
    StartSim(c.job_duration_ms, sim_args);
    StartDrgate();
    server = drgate_->grpc_address();
  }
  std::vector<std::string> argv = {DRGATE_BIN_DIR "/drgatectl",
                                   "--server",
                                   server,
                                   "--timeout",
                                   "5s",
                                   "backup",
                                   "--commcell",
                                   "cs1",
                                   "--type",
                                   "full",
                                   "--wait"};
  for (const auto& a : c.extra_args) argv.push_back(a);
  const CommandResult r = RunCommand(argv, 30s);
  EXPECT_EQ(r.exit_code, c.expected_exit) << "stdout:\n" << r.out;
  if (!c.closed_port) {
    EXPECT_EQ(Posts(), 1);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Outcomes, DrgatectlExitCodeTest,
    ::testing::Values(
        CtlCase{"Completed", 1500, "Completed", {}, false, 0},
        CtlCase{"CompletedWithErrors", 1500, "Completed w/ one or more errors", {}, false, 6},
        CtlCase{"Failed", 1500, "Failed", {}, false, 1},
        CtlCase{"Killed", 1500, "Killed", {}, false, 7},
        CtlCase{"WaitTimeout", 60000, "", {"--wait-timeout", "1s"}, false, 5},
        CtlCase{"ClosedPort", 0, "", {}, true, 4}),
    [](const auto& info) { return info.param.name; });

// 9. EnsureRecentBackup answers a recent success, triggers when it is too old, and answers the
// job it triggered while that runs.
TEST_F(LifecycleTest, EnsureRecentBackupReusesRecentAndRunningJobs) {
  StartSim(2000);
  StartDrgate();
  v1::TriggerBackupResponse first;
  ASSERT_TRUE(Ok(Trigger(BACKUP_TYPE_FULL, &first)));
  grpc::Status end;
  auto messages = Watch(first.job().job_id(), &end);
  ASSERT_TRUE(end.ok()) << end.error_message();
  ASSERT_FALSE(messages.empty());
  ASSERT_EQ(messages.back().state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_TRUE(messages.back().has_end_time());
  const auto ended = FromProto(messages.back().end_time());

  v1::TriggerBackupResponse recent;
  grpc::Status s = Ensure(std::chrono::hours(1), &recent);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(recent.deduplicated());
  EXPECT_EQ(recent.job().job_id(), first.job().job_id());
  EXPECT_EQ(recent.job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Posts(), 1);

  // Let the success become older than one second.
  while (std::chrono::system_clock::now() < ended + 1500ms) std::this_thread::sleep_for(50ms);
  v1::TriggerBackupResponse fresh;
  s = Ensure(1s, &fresh);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(fresh.deduplicated());
  EXPECT_NE(fresh.job().job_id(), first.job().job_id());
  EXPECT_EQ(Posts(), 2);
  const auto sim_ids = SimJobIds();
  ASSERT_EQ(sim_ids.size(), 2u);
  EXPECT_EQ(fresh.job().job_id(), sim_ids[1]);

  v1::TriggerBackupResponse running;
  s = Ensure(1s, &running);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(running.deduplicated());
  EXPECT_EQ(running.job().job_id(), fresh.job().job_id());
  EXPECT_EQ(Posts(), 2);
}

// 10. CancelJob kills a running job; a finished job cannot be cancelled.
TEST_F(LifecycleTest, CancelJobKillsARunningJobAndRefusesAFinishedOne) {
  StartSim(30000);
  StartDrgate();
  v1::TriggerBackupResponse resp;
  ASSERT_TRUE(Ok(Trigger(BACKUP_TYPE_FULL, &resp)));
  const std::string id = resp.job().job_id();
  WaitForJob(id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; });

  v1::Job cancelled;
  grpc::Status s = Cancel(id, &cancelled);
  ASSERT_TRUE(s.ok()) << s.error_message();
  // The simulator kills at once: its job reads "Killed" right after the kill request.
  EXPECT_EQ(cancelled.state(), v1::JOB_STATE_KILLED) << cancelled.ShortDebugString();
  EXPECT_EQ(cancelled.commserv_status(), "Killed");
  EXPECT_EQ(cancelled.job_id(), id);
  EXPECT_TRUE(cancelled.has_end_time());
  EXPECT_EQ(sim_->EndpointCount("Kill"), 1);
  auto kills = sim_->Requests("/Job/" + id + "/action/kill");
  ASSERT_EQ(kills.size(), 1u);
  EXPECT_EQ(kills[0]["method"], "POST");

  v1::Job job;
  ASSERT_TRUE(Ok(GetJob(id, &job)));
  EXPECT_EQ(job.state(), v1::JOB_STATE_KILLED);

  v1::Job again;
  s = Cancel(id, &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_EQ(ErrorInfoOf(s).reason(), "JOB_ALREADY_FINISHED");
  EXPECT_EQ(ErrorInfoOf(s).metadata().at("commcell"), "cs1");
  EXPECT_EQ(sim_->EndpointCount("Kill"), 1);
}

}  // namespace
}  // namespace drgate::testing
