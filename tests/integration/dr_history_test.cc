// A real drgate and commserv-sim: drgate records the CommServe's own DR backups (a seeded history,
// the simulator's DR schedule), answers EnsureRecentBackup from them, follows and counts them once,
// reads the DR backup options into ListCommCells, /metrics and `drgatectl status`, and still asks
// for one DR job list per CommCell per interval.
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class DrHistoryProcessTest : public ::testing::Test {
 protected:
  void StartSim(std::vector<std::string> args = {}) {
    sim_ = std::make_unique<Sim>(dir_, std::move(args));
  }
  // `tracking`: the body of the tracking: block, in flow style; `cell`: the CommCell's own keys.
  void StartDrgate(const std::string& tracking = "{}",
                   const std::string& cell = "    request_timeout: 10s\n") {
    drgate_.reset();
    dir_.Write("password", "s3cret\n");
    const std::string yaml =
        "registry: {path: state/drgate.db}\n"
        "shutdown_grace: 2s\n"
        "auth: {mode: insecure}\n"
        "tracking: " +
        tracking +
        "\n"
        "commcells:\n" +
        sim_->CommCellYaml("cs1", cell);
    drgate_ = std::make_unique<Drgate>(dir_.Write("drgate.yaml", yaml));
  }
  void SetOptions(const json& body) {
    const auto answer = sim_->admin().Call("POST", "/_sim/dr-options", body.dump());
    ASSERT_EQ(answer.status, 200) << answer.body;
  }
  grpc::Status List(v1::JobOrigin origin, v1::ListJobsResponse* out) {
    v1::ListJobsRequest req;
    req.set_origin(origin);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    return drgate_->stub().ListJobs(&ctx, req, out);
  }
  // The CommServe's own jobs drgate has recorded, once there are at least `count`.
  v1::ListJobsResponse WaitForCommservJobs(int count) {
    v1::ListJobsResponse out;
    Eventually(
        [&] {
          out.Clear();
          return List(v1::JOB_ORIGIN_COMMSERV, &out).ok() && out.jobs_size() >= count;
        },
        30s);
    return out;
  }
  grpc::Status Ensure(v1::JobOrigin origin, v1::TriggerBackupResponse* out) {
    v1::EnsureRecentBackupRequest req;
    req.set_commcell("cs1");
    req.set_backup_type(v1::BACKUP_TYPE_FULL);
    req.mutable_max_age()->set_seconds(7200);
    req.set_origin(origin);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    return drgate_->stub().EnsureRecentBackup(&ctx, req, out);
  }
  v1::CommCell CommCell() {
    v1::ListCommCellsResponse cells;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    EXPECT_TRUE(drgate_->stub().ListCommCells(&ctx, {}, &cells).ok());
    return cells.commcells_size() == 1 ? cells.commcells(0) : v1::CommCell();
  }
  int64_t Posts() { return static_cast<int64_t>(sim_->Requests("/CommServ/DRBackup").size()); }

  TempDir dir_;
  std::unique_ptr<Sim> sim_;
  std::unique_ptr<Drgate> drgate_;
};

const v1::Job* Find(const v1::ListJobsResponse& list, v1::BackupType type) {
  for (const v1::Job& j : list.jobs()) {
    if (j.backup_type() == type) return &j;
  }
  return nullptr;
}

TEST_F(DrHistoryProcessTest, ASeededHistoryIsListedAtStartupAndAnswersEnsureRecentBackup) {
  StartSim();
  const int64_t now = UnixNow();
  const json history = json::array(
      {{{"start", now - 3000}, {"end", now - 2900}, {"level", "Full"}, {"status", "Completed"}},
       {{"start", now - 1800},
        {"end", now - 1700},
        {"level", "Differential"},
        {"status", "Failed"},
        {"reason", "Error Code: [19:857] no space left"}}});
  ASSERT_EQ(sim_->admin().Call("POST", "/_sim/history", history.dump()).status, 200);
  StartDrgate();

  const v1::ListJobsResponse recorded = WaitForCommservJobs(2);
  ASSERT_EQ(recorded.jobs_size(), 2);
  const v1::Job* full = Find(recorded, v1::BACKUP_TYPE_FULL);
  const v1::Job* diff = Find(recorded, v1::BACKUP_TYPE_DIFFERENTIAL);
  ASSERT_NE(full, nullptr);
  ASSERT_NE(diff, nullptr);
  EXPECT_EQ(full->origin(), v1::JOB_ORIGIN_COMMSERV);
  EXPECT_EQ(full->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(full->start_time().seconds(), now - 3000);
  EXPECT_EQ(full->end_time().seconds(), now - 2900);
  EXPECT_EQ(full->request_id(), "");
  EXPECT_EQ(diff->state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(diff->failure_reason(), "Error Code: [19:857] no space left");
  EXPECT_EQ(diff->end_time().seconds(), now - 1700);
  const std::string metrics = drgate_->Metrics();
  EXPECT_EQ(MetricValue(metrics,
                        "drgate_backup_last_success_timestamp_seconds{backup_type=\"full\","
                        "commcell=\"cs1\"}"),
            static_cast<double>(now - 2900))
      << metrics;

  // "A full within 2 h": the CommServe's own full answers, nothing is sent upstream.
  v1::TriggerBackupResponse ensured;
  const grpc::Status any = Ensure(v1::JOB_ORIGIN_UNSPECIFIED, &ensured);
  ASSERT_TRUE(any.ok()) << any.error_message();
  EXPECT_TRUE(ensured.deduplicated());
  EXPECT_EQ(ensured.job().job_id(), full->job_id());
  EXPECT_EQ(ensured.job().origin(), v1::JOB_ORIGIN_COMMSERV);
  EXPECT_EQ(Posts(), 0);

  // Counting only drgate's own: there is none, so it triggers.
  v1::TriggerBackupResponse own;
  const grpc::Status drgate_only = Ensure(v1::JOB_ORIGIN_DRGATE, &own);
  ASSERT_TRUE(drgate_only.ok()) << drgate_only.error_message();
  EXPECT_FALSE(own.deduplicated());
  EXPECT_EQ(own.job().origin(), v1::JOB_ORIGIN_DRGATE);
  EXPECT_NE(own.job().job_id(), full->job_id());
  EXPECT_EQ(Posts(), 1);
}

TEST_F(DrHistoryProcessTest, AScheduledJobThatFailsIsFollowedAndCountedOnceAcrossARestart) {
  // The CommServe's schedule starts a full every 3 s; each would run for 10 minutes.
  StartSim({"--dr-schedule", "3s", "--job-duration-ms", "600000"});
  const std::string tracking = "{poll_interval: 500ms, history_interval: 1s}";
  StartDrgate(tracking);

  const v1::ListJobsResponse seen = WaitForCommservJobs(1);
  ASSERT_GE(seen.jobs_size(), 1);
  const std::string job_id = seen.jobs(seen.jobs_size() - 1).job_id();  // the oldest
  sim_->ForceJob(job_id, {{"status", "Failed"}, {"pendingReason", "Error Code: [19:1] media"}});

  v1::Job failed;
  ASSERT_TRUE(Eventually(
      [&] {
        return drgate_->GetJob("cs1", job_id, &failed).ok() &&
               failed.state() == v1::JOB_STATE_FAILED;
      },
      30s))
      << failed.DebugString();
  EXPECT_EQ(failed.origin(), v1::JOB_ORIGIN_COMMSERV);
  EXPECT_EQ(failed.failure_reason(), "Error Code: [19:1] media");
  const std::string failed_series =
      "drgate_backup_jobs_finished_total{backup_type=\"full\",commcell=\"cs1\",origin=\"commserv\","
      "state=\"failed\"}";
  EXPECT_EQ(MetricValue(drgate_->Metrics(), failed_series), 1) << drgate_->Metrics();
  EXPECT_EQ(MetricValue(drgate_->Metrics(),
                        "drgate_backup_jobs_finished_total{backup_type=\"full\",commcell=\"cs1\","
                        "origin=\"drgate\",state=\"failed\"}"),
            0);

  // A new process on the same registry reads the history again: counted nowhere a second time.
  ASSERT_EQ(drgate_->Terminate(), 0);
  const int64_t lists_before = sim_->EndpointCount("JobList");
  StartDrgate(tracking);
  ASSERT_TRUE(Eventually([&] { return sim_->EndpointCount("JobList") >= lists_before + 3; }, 30s));
  EXPECT_EQ(MetricValue(drgate_->Metrics(), failed_series), 0);
  v1::Job again;
  ASSERT_TRUE(drgate_->GetJob("cs1", job_id, &again).ok());
  EXPECT_EQ(again.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(again.origin(), v1::JOB_ORIGIN_COMMSERV);
}

TEST_F(DrHistoryProcessTest, OptionsReachListCommCellsMetricsAndStatusAndA404LeavesThemUnknown) {
  StartSim();
  SetOptions({{"body",
               {{"properties",
                 {{"DRDumpLocation", "\\\\backup01\\dr"},
                  {"UseNetworkShare", 1},
                  {"UseLocalDrive", 0},
                  {"DRNumFulls", "7"},
                  {"uploadBackupMetadataToCloud", false}}}}}});
  StartDrgate();

  v1::CommCell cell;
  ASSERT_TRUE(Eventually(
      [&] {
        cell = CommCell();
        return cell.has_dr_backup_options();
      },
      30s));
  const v1::DrBackupOptions& options = cell.dr_backup_options();
  EXPECT_EQ(options.destination(), "\\\\backup01\\dr");
  EXPECT_EQ(options.retained_fulls(), 7);
  EXPECT_TRUE(options.network_share());
  EXPECT_FALSE(options.cloud_upload());
  EXPECT_GT(options.fetch_time().seconds(), UnixNow() - 60);
  const std::string metrics = drgate_->Metrics();
  EXPECT_EQ(MetricValue(metrics, "drgate_dr_backup_offsite{commcell=\"cs1\"}"), 1) << metrics;
  EXPECT_EQ(MetricValue(metrics, "drgate_dr_backup_retained_fulls{commcell=\"cs1\"}"), 7);

  const CommandResult status = RunCommand({DRGATE_BIN_DIR "/drgatectl", "--server",
                                           drgate_->grpc_address(), "status", "--output", "json"},
                                          30s);
  ASSERT_EQ(status.exit_code, 0) << status.out;
  const json parsed = json::parse(status.out);
  ASSERT_EQ(parsed.size(), 1u) << status.out;
  EXPECT_EQ(parsed[0]["commcell"], "cs1");
  EXPECT_EQ(parsed[0]["retained_fulls"], 7);
  EXPECT_EQ(parsed[0]["offsite"], true);

  // A CommServe without the call: the options stay unknown, everything else works.
  SetOptions({{"http_status", 404}, {"body", "Not Found"}});
  const int64_t asked = sim_->EndpointCount("DROptions");
  StartDrgate();
  ASSERT_TRUE(Eventually([&] { return sim_->EndpointCount("DROptions") > asked; }, 30s));
  std::this_thread::sleep_for(500ms);  // the answer reaches the tracker
  EXPECT_FALSE(CommCell().has_dr_backup_options());
  const std::string unknown = drgate_->Metrics();
  EXPECT_EQ(MetricValue(unknown, "drgate_dr_backup_offsite{commcell=\"cs1\"}"), -1) << unknown;
  EXPECT_EQ(MetricValue(unknown, "drgate_dr_backup_retained_fulls{commcell=\"cs1\"}"), -1);
  v1::TriggerBackupResponse triggered;
  const grpc::Status s = drgate_->Trigger("cs1", v1::BACKUP_TYPE_FULL, "after-404", &triggered);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(triggered.job().origin(), v1::JOB_ORIGIN_DRGATE);
  const CommandResult text =
      RunCommand({DRGATE_BIN_DIR "/drgatectl", "--server", drgate_->grpc_address(), "status"}, 30s);
  ASSERT_EQ(text.exit_code, 0) << text.out;
  EXPECT_NE(text.out.find("unknown"), std::string::npos) << text.out;
}

TEST_F(DrHistoryProcessTest, ALostAnswerIsAdoptedForItsIntentAndNeverRecordedAsCommserv) {
  StartSim();
  StartDrgate(
      "{poll_interval: 200ms, history_interval: 1s, intent_grace: 3s, "
      "intent_give_up: 3500ms}",
      "    connect_timeout: 400ms\n    request_timeout: 1s\n"
      "    retry: {max_attempts: 1}\n");
  ASSERT_TRUE(Eventually([&] { return sim_->EndpointCount("JobList") >= 1; }, 30s));
  // The CommServe starts the job, but its answer never reaches drgate.
  sim_->Fault({{"endpoint", "DRBackup"},
               {"action", "hang"},
               {"delay_ms", 3000},
               {"after_side_effect", true},
               {"count", 1}});
  v1::TriggerBackupResponse lost;
  const grpc::Status timed_out = drgate_->Trigger("cs1", v1::BACKUP_TYPE_FULL, "lost", &lost);
  EXPECT_EQ(timed_out.error_code(), grpc::StatusCode::UNAVAILABLE) << timed_out.error_message();
  const auto upstream = sim_->admin().Json("GET", "/_sim/jobs");
  ASSERT_EQ(upstream.size(), 1u);
  const std::string job_id = upstream[0]["id"].is_string()
                                 ? upstream[0]["id"].get<std::string>()
                                 : std::to_string(upstream[0]["id"].get<long long>());

  // Listed every second while the intent waits out its grace: left to the intent, then adopted.
  v1::Job adopted;
  ASSERT_TRUE(Eventually([&] { return drgate_->GetJob("cs1", job_id, &adopted).ok(); }, 20s));
  EXPECT_EQ(adopted.origin(), v1::JOB_ORIGIN_DRGATE);
  EXPECT_EQ(adopted.request_id(), "lost");
  std::this_thread::sleep_for(2s);  // two more observations
  v1::ListJobsResponse all;
  ASSERT_TRUE(List(v1::JOB_ORIGIN_UNSPECIFIED, &all).ok());
  ASSERT_EQ(all.jobs_size(), 1);
  EXPECT_EQ(all.jobs(0).origin(), v1::JOB_ORIGIN_DRGATE);
  v1::TriggerBackupResponse again;
  ASSERT_TRUE(drgate_->Trigger("cs1", v1::BACKUP_TYPE_FULL, "lost", &again).ok());
  EXPECT_TRUE(again.deduplicated());
  EXPECT_EQ(again.job().job_id(), job_id);
  EXPECT_EQ(Posts(), 1);
}

TEST_F(DrHistoryProcessTest, ObservationKeepsOneJobListRequestPerCommCellPerInterval) {
  // A job to follow and the CommServe's schedule running alongside it.
  StartSim({"--dr-schedule", "2s", "--job-duration-ms", "600000"});
  StartDrgate("{poll_interval: 1s, history_interval: 1s}");
  v1::TriggerBackupResponse triggered;
  ASSERT_TRUE(drgate_->Trigger("cs1", v1::BACKUP_TYPE_DIFFERENTIAL, "followed", &triggered).ok());
  WaitForCommservJobs(1);

  const int64_t before = sim_->EndpointCount("JobList");
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(6s);
  const int64_t lists = sim_->EndpointCount("JobList") - before;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // One list a second; the margin is for the poll under way at each end of the window.
  EXPECT_LE(lists, static_cast<int64_t>(seconds) + 2) << lists << " lists in " << seconds << " s";
  EXPECT_GE(lists, 3) << lists << " lists in " << seconds << " s";
  // Jobs were followed from those lists alone: no Job/{id} for a job the list shows.
  EXPECT_EQ(sim_->EndpointCount("Job"), 0);
}

}  // namespace
}  // namespace drgate::testing
