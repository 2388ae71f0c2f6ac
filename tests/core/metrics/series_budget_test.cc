// The series budget: what one more CommCell adds to /metrics, counted as Prometheus counts series
// (one per histogram bucket, plus _sum and _count), must stay at most 120. Measured as the
// difference between a registry with one CommCell and one with two, each CommCell in its steady
// state: registered, every CommServe endpoint called and answered, jobs of both origins finished,
// DR backup options known.
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
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

// Estate mode (metrics.per_commcell_histograms: false), docs/sizing.md.
constexpr int kEstateBudgetPerCommCell = 40;

// "name{k=v,...}" of every series (a histogram counts once here) the registry collects, of the
// families whose name is in `names` (all when empty).
std::set<std::string> Collected(prometheus::Registry& registry,
                                const std::set<std::string>& names = {}) {
  std::set<std::string> out;
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (!names.empty() && names.count(family.name) == 0) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::vector<std::string> labels;
      for (const auto& label : metric.label) labels.push_back(label.name + "=" + label.value);
      std::sort(labels.begin(), labels.end());
      std::string key = family.name + "{";
      for (size_t i = 0; i < labels.size(); ++i) key += (i ? "," : "") + labels[i];
      out.insert(key + "}");
    }
  }
  return out;
}

// Observations of the histogram `name` whose labels include `labels`; -1 when absent.
double HistogramCount(prometheus::Registry& registry, const std::string& name,
                      const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> got;
      for (const auto& label : metric.label) got[label.name] = label.value;
      bool match = true;
      for (const auto& [k, v] : labels) match = match && got[k] == v;
      if (match) return static_cast<double>(metric.histogram.sample_count);
    }
  }
  return -1;
}

std::set<std::string> WithCommCell(const std::set<std::string>& series) {
  std::set<std::string> out;
  for (const std::string& s : series) {
    if (s.find("commcell=") != std::string::npos) out.insert(s);
  }
  return out;
}

TEST(EstateModeTest, ARegisteredCommCellHasExactlyTheSeriesTheAlertsRead) {
  prometheus::Registry registry;
  Metrics metrics(registry, MetricsOptions{/*per_commcell_histograms=*/false});
  EXPECT_FALSE(metrics.per_commcell_histograms());

  metrics.RegisterCommCell("cs1");

  EXPECT_THAT(
      WithCommCell(Collected(registry)),
      ::testing::ElementsAre(
          "drgate_backup_jobs_active{commcell=cs1}",
          "drgate_backup_jobs_finished_total{backup_type=differential,commcell=cs1,origin=commserv,"
          "state=failed}",
          "drgate_backup_jobs_finished_total{backup_type=differential,commcell=cs1,origin=commserv,"
          "state=killed}",
          "drgate_backup_jobs_finished_total{backup_type=differential,commcell=cs1,origin=drgate,"
          "state=failed}",
          "drgate_backup_jobs_finished_total{backup_type=differential,commcell=cs1,origin=drgate,"
          "state=killed}",
          "drgate_backup_jobs_finished_total{backup_type=full,commcell=cs1,origin=commserv,"
          "state=failed}",
          "drgate_backup_jobs_finished_total{backup_type=full,commcell=cs1,origin=commserv,"
          "state=killed}",
          "drgate_backup_jobs_finished_total{backup_type=full,commcell=cs1,origin=drgate,"
          "state=failed}",
          "drgate_backup_jobs_finished_total{backup_type=full,commcell=cs1,origin=drgate,"
          "state=killed}",
          "drgate_backup_last_success_timestamp_seconds{backup_type=differential,commcell=cs1}",
          "drgate_backup_last_success_timestamp_seconds{backup_type=full,commcell=cs1}",
          "drgate_backup_triggers_total{backup_type=differential,commcell=cs1,result=failed}",
          "drgate_backup_triggers_total{backup_type=differential,commcell=cs1,result=rejected}",
          "drgate_backup_triggers_total{backup_type=full,commcell=cs1,result=failed}",
          "drgate_backup_triggers_total{backup_type=full,commcell=cs1,result=rejected}",
          "drgate_commserv_circuit_open{commcell=cs1}",
          "drgate_commserv_logins_total{commcell=cs1,result=failure}",
          "drgate_commserv_logins_total{commcell=cs1,result=success}",
          "drgate_commserv_up{commcell=cs1}"));
}

TEST(EstateModeTest, LatencyHistogramsAreEstateWideWithoutTheCommCellLabel) {
  prometheus::Registry registry;
  Metrics metrics(registry, MetricsOptions{/*per_commcell_histograms=*/false});
  const std::set<std::string> histograms = {"drgate_backup_trigger_duration_seconds",
                                            "drgate_backup_job_duration_seconds",
                                            "drgate_commserv_request_duration_seconds"};
  const std::set<std::string> expected = {
      "drgate_backup_job_duration_seconds{backup_type=differential}",
      "drgate_backup_job_duration_seconds{backup_type=full}",
      "drgate_backup_trigger_duration_seconds{}",
      "drgate_commserv_request_duration_seconds{endpoint=drbackup}",
      "drgate_commserv_request_duration_seconds{endpoint=job_list}",
      "drgate_commserv_request_duration_seconds{endpoint=other}"};
  // There from the start, before any CommCell.
  EXPECT_EQ(Collected(registry, histograms), expected);

  SteadyState(metrics, "cs1");
  SteadyState(metrics, "cs2");

  EXPECT_EQ(Collected(registry, histograms), expected);
  EXPECT_EQ(HistogramCount(registry, "drgate_backup_trigger_duration_seconds", {}), 2);
  // 9 endpoints per CommCell: drbackup and job_list apart, the other 7 together.
  EXPECT_EQ(
      HistogramCount(registry, "drgate_commserv_request_duration_seconds", {{"endpoint", "other"}}),
      14);
  EXPECT_EQ(
      HistogramCount(registry, "drgate_backup_job_duration_seconds", {{"backup_type", "full"}}), 8);
  // Counters and gauges keep their CommCell.
  EXPECT_EQ(testing::MetricValue(registry, "drgate_commserv_requests_total",
                                 {{"commcell", "cs2"}, {"endpoint", "job_list"}, {"code", "200"}}),
            1);
}

TEST(EstateModeTest, OneMoreCommCellAddsFewerThan40Series) {
  prometheus::Registry one_registry;
  Metrics one(one_registry, MetricsOptions{false});
  SteadyState(one, "cs1");
  prometheus::Registry two_registry;
  Metrics two(two_registry, MetricsOptions{false});
  SteadyState(two, "cs1");
  SteadyState(two, "cs2");

  const int per_commcell = Series(two_registry) - Series(one_registry);
  std::printf("estate mode: series per CommCell: %d (budget %d)\n", per_commcell,
              kEstateBudgetPerCommCell);
  EXPECT_LT(per_commcell, kEstateBudgetPerCommCell);
  EXPECT_GT(per_commcell, 20);
}

}  // namespace
}  // namespace drgate
