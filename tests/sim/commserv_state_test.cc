// CommservState with a hand-driven clock: the timing rules that are too slow or too racy to pin
// down through the real process.
#include "tools/commserv-sim/commserv_state.h"

#include <atomic>
#include <memory>

#include <gtest/gtest.h>

namespace commserv_sim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A clock that only moves when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  TimePoint Now() const override { return TimePoint(milliseconds(now_ms_.load())); }
  void Advance(milliseconds step) { now_ms_ += step.count(); }

 private:
  std::atomic<int64_t> now_ms_{1'700'000'000'000};
};

class SimStateTest : public ::testing::Test {
 protected:
  explicit SimStateTest() {
    StateOptions options;
    options.token_ttl = seconds(60);
    options.job_duration = milliseconds(1000);  // Phase 1 is the first 500 ms of running time.
    auto clock = std::make_unique<ManualClock>();
    clock_ = clock.get();
    state_ = std::make_unique<CommservState>(options, std::move(clock));
  }

  std::string StatusOf(int64_t job_id) { return state_->FindJob(job_id).value().status; }

  ManualClock* clock_;
  std::unique_ptr<CommservState> state_;
};

TEST_F(SimStateTest, WaitingJobStartsTheInstantPhaseOneEnds) {
  const Submission full = state_->SubmitDrBackup({BackupLevel::kFull, false});
  clock_->Advance(milliseconds(100));
  const Submission differential = state_->SubmitDrBackup({BackupLevel::kDifferential, true});
  ASSERT_TRUE(full.accepted && differential.accepted);
  EXPECT_EQ(StatusOf(full.job_id), "Running");
  EXPECT_EQ(StatusOf(differential.job_id), "Waiting");

  // Nobody looks until 900 ms: the differential job started at 500 ms and has run 400 ms.
  clock_->Advance(milliseconds(800));
  const JobSummary second = state_->FindJob(differential.job_id).value();
  EXPECT_EQ(second.status, "Running");
  EXPECT_EQ(second.percent_complete, 40);
  EXPECT_EQ(second.current_phase_name, "Database Backup");

  clock_->Advance(milliseconds(100));
  const JobSummary first = state_->FindJob(full.job_id).value();
  EXPECT_EQ(first.status, "Completed");
  EXPECT_EQ(first.percent_complete, 100);
  EXPECT_GT(first.job_end_time, 0);
  clock_->Advance(milliseconds(500));
  EXPECT_EQ(StatusOf(differential.job_id), "Completed");
}

TEST_F(SimStateTest, KillingThePhaseOneJobReleasesTheWaitingJobAtOnce) {
  const Submission first = state_->SubmitDrBackup({BackupLevel::kFull, false});
  const Submission second = state_->SubmitDrBackup({BackupLevel::kFull, false});
  clock_->Advance(milliseconds(200));
  EXPECT_EQ(state_->ApplyAction(first.job_id, JobAction::kKill).error_code, 0);
  EXPECT_EQ(StatusOf(first.job_id), "Killed");
  // The waiting job gets no credit for the time it waited.
  clock_->Advance(milliseconds(100));
  EXPECT_EQ(state_->FindJob(second.job_id).value().percent_complete, 10);
  EXPECT_EQ(state_->ApplyAction(first.job_id, JobAction::kKill).message,
            "Job [2100] is not active");
}

TEST_F(SimStateTest, TokenExpiresAfterInactivityButRenewsWithinGrace) {
  const std::string token = state_->Login("admin", "admin").value();
  EXPECT_FALSE(state_->Login("admin", "wrong").has_value());
  clock_->Advance(seconds(59));
  EXPECT_TRUE(state_->Authenticate(token));  // Restarts the inactivity timer.
  clock_->Advance(seconds(59));
  EXPECT_TRUE(state_->Authenticate(token));
  clock_->Advance(seconds(60));
  EXPECT_FALSE(state_->Authenticate(token));

  const std::string renewed = state_->RenewToken(token).value();
  EXPECT_NE(renewed, token);
  EXPECT_TRUE(state_->Authenticate(renewed));
  EXPECT_FALSE(state_->RenewToken(token).has_value());  // The old token is gone.

  clock_->Advance(std::chrono::hours(25));
  EXPECT_FALSE(state_->RenewToken(renewed).has_value());  // Past the grace period.
}

TEST(SimScheduleTest, TheScheduleStartsFullBackupsOnItsOwnEvenWhenNobodyLooks) {
  StateOptions options;
  options.job_duration = milliseconds(1000);
  options.dr_schedule = std::chrono::hours(24);
  auto clock = std::make_unique<ManualClock>();
  ManualClock* manual = clock.get();
  CommservState state(options, std::move(clock));
  manual->Advance(std::chrono::hours(23));
  EXPECT_TRUE(state.ListJobs(JobCategory::kAll, seconds(7 * 86400)).empty());
  // Nobody looks for three days: three scheduled fulls ran and finished at their own times.
  manual->Advance(std::chrono::hours(49) + std::chrono::minutes(1));
  const auto jobs = state.ListJobs(JobCategory::kAll, seconds(7 * 86400));
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(state.ScheduledStarts(), 3);
  const int64_t origin = 1'700'000'000;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const int64_t day = static_cast<int64_t>(3 - i);  // Newest first.
    EXPECT_EQ(jobs[i].status, "Completed");
    EXPECT_EQ(jobs[i].level, BackupLevel::kFull);
    EXPECT_EQ(jobs[i].job_start_time, origin + day * 86400);
    EXPECT_EQ(jobs[i].job_end_time, origin + day * 86400 + 1);
  }
  // completedJobLookupTime bounds the history: only the last day's job ended within 2 hours.
  EXPECT_EQ(state.ListJobs(JobCategory::kFinished, seconds(7200)).size(), 1u);
}

TEST_F(SimStateTest, SeededHistoryIsListedByStartTimeAndRejectsWhatIsNotHistory) {
  const TimePoint now = clock_->Now();
  std::string error;
  const auto old_full =
      state_->SeedHistory({.start = now - std::chrono::hours(50),
                           .end = now - std::chrono::hours(49),
                           .level = BackupLevel::kFull,
                           .status = "Failed",
                           .reason = "Error Code: [19:857] Description: disk full"},
                          &error);
  ASSERT_TRUE(old_full.has_value()) << error;
  const Submission live = state_->SubmitDrBackup({BackupLevel::kFull, false});
  const auto differential = state_->SeedHistory({.start = now - std::chrono::hours(2),
                                                 .end = now - std::chrono::hours(1),
                                                 .level = BackupLevel::kDifferential,
                                                 .status = "Completed",
                                                 .reason = ""},
                                                &error);
  ASSERT_TRUE(differential.has_value()) << error;
  EXPECT_EQ(*old_full, 2100);
  EXPECT_EQ(live.job_id, 2101);
  EXPECT_EQ(*differential, 2102);

  const auto jobs = state_->ListJobs(JobCategory::kAll, seconds(3 * 86400));
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].job_id, 2101);  // Started now.
  EXPECT_EQ(jobs[1].job_id, 2102);
  EXPECT_EQ(jobs[1].status, "Completed");
  EXPECT_EQ(jobs[1].level, BackupLevel::kDifferential);
  EXPECT_EQ(jobs[1].percent_complete, 100);
  EXPECT_EQ(jobs[2].job_id, 2100);
  EXPECT_EQ(jobs[2].status, "Failed");
  EXPECT_EQ(jobs[2].pending_reason, "Error Code: [19:857] Description: disk full");
  EXPECT_EQ(jobs[2].job_end_time,
            std::chrono::duration_cast<seconds>((now - std::chrono::hours(49)).time_since_epoch())
                .count());
  EXPECT_EQ(state_->ListJobs(JobCategory::kFinished, seconds(7200)).size(), 1u);

  EXPECT_FALSE(
      state_->SeedHistory({now, now + seconds(5), BackupLevel::kFull, "Completed", ""}, &error));
  EXPECT_EQ(error, "end lies in the future");
  EXPECT_FALSE(
      state_->SeedHistory({now, now - seconds(5), BackupLevel::kFull, "Completed", ""}, &error));
  EXPECT_EQ(error, "end before start");
  EXPECT_FALSE(
      state_->SeedHistory({now - seconds(9), now, BackupLevel::kFull, "Running", ""}, &error));
  EXPECT_EQ(error, "status does not finish a job: Running");
}

}  // namespace
}  // namespace commserv_sim
