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

}  // namespace
}  // namespace commserv_sim
