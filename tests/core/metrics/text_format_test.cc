// SerializeTextFormat must write exactly what prometheus::TextSerializer writes (Prometheus, the
// alert tests and the dashboards read this text), only faster.
#include "core/metrics/text_format.h"

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/summary.h>
#include <prometheus/text_serializer.h>

#include <cmath>
#include <limits>

#include "core/metrics/metrics.h"

namespace drgate {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::string Reference(const std::vector<MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

TEST(TextFormatTest, MatchesPrometheusCppForDrgateMetricsWithTraffic) {
  prometheus::Registry registry;
  Metrics metrics(registry);
  for (const char* cell : {"prod", "dr-site.2"}) {
    metrics.RegisterCommCell(cell);
    metrics.ObserveTriggerDuration(cell, 0.0042);
    metrics.ObserveCommServRequest(cell, CommServEndpoint::kJobList, 0.00071);
    metrics.CountCommServRequest(cell, CommServEndpoint::kDrBackup, 200);
    metrics.SetLastSuccess(cell, BackupType::kFull,
                           TimePoint(std::chrono::milliseconds(1764222000123)));
    metrics.SetActiveJobs(cell, 3);
  }
  const auto families = registry.Collect();
  const std::string text = SerializeTextFormat(families);
  EXPECT_EQ(text, Reference(families));
  EXPECT_NE(text.find("drgate_backup_jobs_active{commcell=\"prod\"} 3\n"), std::string::npos);
}

TEST(TextFormatTest, MatchesPrometheusCppForEveryTypeAndAwkwardValue) {
  prometheus::Registry registry;
  auto& counter =
      prometheus::BuildCounter().Name("c_total").Help("a \"help\" text").Register(registry);
  counter.Add({{"path", "a\\b\"c\nd"}}).Increment(1.5);
  counter.Add({}).Increment(12345678901234.0);
  auto& gauge = prometheus::BuildGauge().Name("g").Register(registry);
  for (double v :
       {0.1, -2.5, 1e-7, 6.02e23, 123456789012345678.0, -0.0, 1.0 / 3,
        std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity()}) {
    gauge.Add({{"v", std::to_string(v)}}).Set(v);
  }
  auto& histogram = prometheus::BuildHistogram().Name("h_seconds").Help("h").Register(registry);
  histogram.Add({{"x", "1"}}, prometheus::Histogram::BucketBoundaries{0.005, 0.1, 2.5, 60})
      .Observe(0.05);
  auto& summary = prometheus::BuildSummary().Name("s").Help("s").Register(registry);
  summary.Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.99, 0.001}}).Observe(3);
  auto families = registry.Collect();

  // Untyped and a timestamp cannot be made through the builders.
  MetricFamily untyped;
  untyped.name = "u";
  untyped.type = MetricType::Untyped;
  ClientMetric sample;
  sample.untyped.value = 42.25;
  sample.timestamp_ms = 1764222000123;
  untyped.metric.push_back(sample);
  families.push_back(untyped);

  EXPECT_EQ(SerializeTextFormat(families), Reference(families));
}

TEST(TextFormatTest, EmptyInputIsEmptyText) {
  EXPECT_EQ(SerializeTextFormat({}), "");
}

}  // namespace
}  // namespace drgate
