// The series budget: what one more CommCell adds to /metrics, counted as Prometheus counts series
// (one per histogram bucket, plus _sum and _count), must stay at most 120. Measured as the
// difference between a registry with one CommCell and one with two, each CommCell in its steady
// state: registered, every CommServe endpoint called and answered, jobs of both origins finished,
// DR backup options known.
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "core/metrics/metrics.h"
#include "tests/fakes/metric_value.h"

namespace drgate {
namespace {

constexpr int kBudgetPerCommCell = 120;

// Lines of the text exposition that are samples (not # HELP / # TYPE).
int Series(prometheus::Registry& registry) {
  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  int lines = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start && text[start] != '#') ++lines;
    start = end + 1;
  }
  return lines;
}

void SteadyState(Metrics& metrics, const std::string& commcell) {
  metrics.RegisterCommCell(commcell);
  for (CommServEndpoint e :
       {CommServEndpoint::kLogin, CommServEndpoint::kRenew, CommServEndpoint::kLogout,
        CommServEndpoint::kDrBackup, CommServEndpoint::kJob, CommServEndpoint::kJobList,
        CommServEndpoint::kKill, CommServEndpoint::kJobDetails, CommServEndpoint::kDrOptions}) {
    metrics.CountCommServRequest(commcell, e, 200);
    metrics.ObserveCommServRequest(commcell, e, 0.1);
  }
  for (JobOrigin origin : {JobOrigin::kDrgate, JobOrigin::kCommserv}) {
    for (BackupType type : {BackupType::kFull, BackupType::kDifferential}) {
      for (JobState state : {JobState::kSucceeded, JobState::kFailed}) {
        Job job;
        job.commcell = commcell;
        job.job_id = "1";
        job.origin = origin;
        job.backup_type = type;
        job.state = state;
        job.start_time = TimePoint(std::chrono::seconds(1000));
        job.end_time = TimePoint(std::chrono::seconds(2000));
        metrics.RecordJobFinished(job);
      }
    }
  }
  metrics.ObserveTriggerDuration(commcell, 0.3);
  metrics.SetDrBackupOptions(commcell, 5, false);
}

TEST(SeriesBudgetTest, OneMoreCommCellAddsAtMost120Series) {
  prometheus::Registry one_registry;
  Metrics one(one_registry);
  SteadyState(one, "cs1");
  prometheus::Registry two_registry;
  Metrics two(two_registry);
  SteadyState(two, "cs1");
  SteadyState(two, "cs2");

  const int per_commcell = Series(two_registry) - Series(one_registry);
  std::printf("series per CommCell: %d (budget %d)\n", per_commcell, kBudgetPerCommCell);
  EXPECT_LE(per_commcell, kBudgetPerCommCell);
  EXPECT_GT(per_commcell, 50);  // the counting works: a CommCell has dozens of series
}

TEST(SeriesBudgetTest, FailuresOfBothOriginsExistFromTheStart) {
  prometheus::Registry registry;
  Metrics metrics(registry);
  metrics.RegisterCommCell("cs1");
  for (const char* state : {"failed", "killed"}) {
    for (const char* origin : {"drgate", "commserv"}) {
      for (const char* type : {"full", "differential"}) {
        EXPECT_EQ(
            testing::MetricValue(
                registry, "drgate_backup_jobs_finished_total",
                {{"commcell", "cs1"}, {"backup_type", type}, {"state", state}, {"origin", origin}}),
            0)
            << state << " " << origin << " " << type;
      }
    }
  }
}

TEST(SeriesBudgetTest, UnknownOptionsAreAbsentAndComeBack) {
  prometheus::Registry registry;
  Metrics metrics(registry);
  metrics.SetDrBackupOptions("cs1", 5, true);
  const int known = Series(registry);
  metrics.SetDrBackupOptions("cs1", std::nullopt, std::nullopt);
  EXPECT_EQ(Series(registry), known - 2);
  metrics.SetDrBackupOptions("cs1", std::nullopt, false);
  EXPECT_EQ(Series(registry), known - 1);
}

}  // namespace
}  // namespace drgate
