// Graceful degradation with a real full disk: drgate's registry on a small tmpfs that a filler
// file fills up. Triggers then fail with UNAVAILABLE / REGISTRY_UNWRITABLE before anything is sent
// to the CommServe, reads keep working, the failure is counted, and the server recovers as soon as
// space returns. Mounting needs root (CI runs as root); elsewhere the test is skipped, and the
// same SQLite error paths are covered by the registry and orchestrator unit tests
// (max_page_count and query_only).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "tests/integration/harness.h"

namespace drgate::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mount_point_ = dir_.File("registry");
    std::filesystem::create_directories(mount_point_);
    // 4 MiB: room for the database, its WAL and shared memory, then the filler takes the rest.
    if (mount("drgate-test", mount_point_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
              "size=4m,mode=0700") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs (" << std::strerror(errno)
                   << "): needs root; the unit tests cover the same SQLite errors";
    }
    mounted_ = true;
    sim_ = std::make_unique<Sim>(dir_, std::vector<std::string>{"--job-duration-ms", "0"});
    dir_.Write("password", "s3cret\n");
    const std::string config = dir_.Write("drgate.yaml",
                                          "auth: {mode: insecure}\n"
                                          "registry: {path: registry/drgate.db}\n"
                                          "shutdown_grace: 2s\n"
                                          "tracking: {poll_interval: 200ms, probe_interval: 0s}\n"
                                          "commcells:\n" +
                                              sim_->CommCellYaml());
    drgate_ = std::make_unique<Drgate>(config);
  }
  void TearDown() override {
    drgate_.reset();  // SIGKILL: the files on the tmpfs are closed before it goes
    if (mounted_ && umount2(mount_point_.c_str(), MNT_DETACH) != 0) {
      ADD_FAILURE() << "umount " << mount_point_ << ": " << std::strerror(errno);
    }
  }

  grpc::Status Trigger(const std::string& request_id, v1::TriggerBackupResponse* out) {
    return drgate_->Trigger("cs1", v1::BACKUP_TYPE_FULL, request_id, out);
  }
  grpc::Status GetJob(const std::string& job_id, v1::Job* out) {
    return drgate_->GetJob("cs1", job_id, out);
  }
  // Writes zeros into a filler file on the tmpfs until the file system refuses (ENOSPC).
  void FillDisk() {
    filler_ = mount_point_ + "/filler";
    std::ofstream out(filler_, std::ios::binary);
    const std::string block(4096, '\0');
    for (int i = 0; i < 4096 && out.write(block.data(), block.size()); ++i) {
    }
    out.flush();
    ASSERT_TRUE(out.fail()) << "the tmpfs did not fill up";
  }

  TempDir dir_;
  std::string mount_point_;
  std::string filler_;
  bool mounted_ = false;
  std::unique_ptr<Sim> sim_;
  std::unique_ptr<Drgate> drgate_;
};

TEST_F(FullDiskTest, TriggerFailsBeforeTheCommServeReadsKeepWorkingAndSpaceReturning) {
  v1::TriggerBackupResponse first;
  ASSERT_TRUE(Trigger("before-full", &first).ok());
  // Wait until the tracker has recorded the job's end: afterwards nothing writes but triggers,
  // so the failure count below is exactly the one trigger's.
  v1::Job job;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!(GetJob(first.job().job_id(), &job).ok() && job.state() == v1::JOB_STATE_SUCCEEDED)) {
    ASSERT_LT(std::chrono::steady_clock::now(), until) << "job did not finish";
    std::this_thread::sleep_for(50ms);
  }
  const int64_t posts = sim_->EndpointCount("DRBackup");
  FillDisk();

  v1::TriggerBackupResponse refused;
  grpc::Status s = Trigger("while-full", &refused);

  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  const auto info = ErrorInfoOf(s);
  EXPECT_EQ(info.reason(), "REGISTRY_UNWRITABLE");
  EXPECT_EQ(info.metadata().at("registry_error"), "disk_full");
  EXPECT_EQ(info.metadata().at("commcell"), "cs1");
  EXPECT_THAT(s.error_message(), HasSubstr("trigger not sent to the CommServe"));
  EXPECT_THAT(s.error_message(), HasSubstr("registry database '" + mount_point_ +
                                           "/drgate.db' cannot be written (the disk is full)"));
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), posts);  // nothing went upstream

  // Reads keep working.
  v1::Job again;
  ASSERT_TRUE(GetJob(first.job().job_id(), &again).ok());
  EXPECT_EQ(again.request_id(), "before-full");
  v1::ListJobsRequest list_req;
  v1::ListJobsResponse list;
  grpc::ClientContext list_ctx;
  list_ctx.set_deadline(Deadline(10s));
  ASSERT_TRUE(drgate_->stub().ListJobs(&list_ctx, list_req, &list).ok());
  EXPECT_EQ(list.jobs_size(), 1);
  const std::string metrics = drgate_->Metrics();
  EXPECT_EQ(MetricValue(metrics, "drgate_registry_write_failures_total{reason=\"disk_full\"}"), 1);
  EXPECT_EQ(
      MetricValue(metrics,
                  "drgate_backup_trigger_failures_total{commcell=\"cs1\",reason=\"registry\"}"),
      1);

  // Space returns: the same request id triggers once, with no restart.
  std::filesystem::remove(filler_);
  v1::TriggerBackupResponse after;
  grpc::Status ok = Trigger("while-full", &after);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_FALSE(after.deduplicated());
  EXPECT_EQ(after.job().request_id(), "while-full");
  EXPECT_EQ(sim_->EndpointCount("DRBackup"), posts + 1);
}

}  // namespace
}  // namespace drgate::testing
