// ProcessMetrics reads /proc: a fake tree pins the arithmetic (ticks, pages, boot time), the real
// one shows the series exist with sane values for this very process.
#include "core/metrics/process_metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <vector>

#include "tests/fakes/temp_dir.h"

namespace drgate {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

// name -> (type, value) of single-series families.
std::map<std::string, std::pair<MetricType, double>> ByName(const std::vector<MetricFamily>& fs) {
  std::map<std::string, std::pair<MetricType, double>> out;
  for (const auto& f : fs) {
    EXPECT_EQ(f.metric.size(), 1u) << f.name;
    if (f.metric.empty()) continue;
    const double v =
        f.type == MetricType::Counter ? f.metric[0].counter.value : f.metric[0].gauge.value;
    out[f.name] = {f.type, v};
  }
  return out;
}

TEST(ProcessMetricsTest, ComputesStandardSeriesFromAFakeProcTree) {
  testing::TempDir proc;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // The command name holds a space and a ')' to show the parser splits after the last ')'.
  // Fields from 3: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  // utime(14) stime(15) cutime cstime priority nice num_threads(20) itrealvalue starttime(22)
  // vsize(23) rss(24) ...
  const std::string stat = "4242 (dr gate) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 " +
                           std::to_string(static_cast<long>(3 * ticks)) + " " +
                           std::to_string(static_cast<long>(ticks / 2)) + " 0 0 20 0 7 0 " +
                           std::to_string(static_cast<long>(10 * ticks)) +
                           " 123456789 2500 18446744073709551615\n";
  proc.Write("self/stat", stat);
  proc.Write("stat", "cpu  1 2 3\nbtime 1764222000\nprocesses 9\n");
  proc.Write("self/limits",
             "Limit                     Soft Limit           Hard Limit           Units\n"
             "Max open files            1024                 524288               files\n");
  proc.Write("self/fd/0", "");
  proc.Write("self/fd/1", "");
  proc.Write("self/fd/2", "");

  ProcessMetrics collector(proc.File("self"), proc.path().string(), /*malloc_stats=*/false);
  const auto got = ByName(collector.Collect());

  ASSERT_EQ(got.size(), 7u);
  EXPECT_EQ(got.at("process_cpu_seconds_total"), std::make_pair(MetricType::Counter, 3.5));
  EXPECT_EQ(got.at("process_resident_memory_bytes"),
            std::make_pair(MetricType::Gauge, 2500 * page));
  EXPECT_EQ(got.at("process_virtual_memory_bytes"), std::make_pair(MetricType::Gauge, 123456789.0));
  EXPECT_EQ(got.at("process_threads"), std::make_pair(MetricType::Gauge, 7.0));
  EXPECT_EQ(got.at("process_start_time_seconds"),
            std::make_pair(MetricType::Gauge, 1764222000.0 + 10));
  EXPECT_EQ(got.at("process_open_fds"), std::make_pair(MetricType::Gauge, 3.0));
  EXPECT_EQ(got.at("process_max_fds"), std::make_pair(MetricType::Gauge, 1024.0));
}

TEST(ProcessMetricsTest, LeavesOutWhatCannotBeReadInsteadOfReportingZero) {
  testing::TempDir proc;
  proc.Write("self/stat", "garbage without the parenthesis\n");
  proc.Write("self/limits", "Max open files            unlimited            unlimited     files\n");
  ProcessMetrics collector(proc.File("self"), proc.path().string(), /*malloc_stats=*/false);
  EXPECT_TRUE(collector.Collect().empty());
}

TEST(ProcessMetricsTest, ReportsThisProcessAndTheLiveHeap) {
  ProcessMetrics collector;
  auto before = ByName(collector.Collect());
  for (const char* name :
       {"process_cpu_seconds_total", "process_resident_memory_bytes",
        "process_virtual_memory_bytes", "process_threads", "process_start_time_seconds",
        "process_open_fds", "process_max_fds", "drgate_malloc_in_use_bytes",
        "drgate_malloc_free_bytes", "drgate_sqlite_memory_bytes"}) {
    EXPECT_TRUE(before.count(name)) << name;
  }
  EXPECT_GT(before["process_resident_memory_bytes"].second, 1 << 20);
  EXPECT_GE(before["process_threads"].second, 1);
  EXPECT_GE(before["process_open_fds"].second, 3);
  EXPECT_GT(before["process_start_time_seconds"].second, 1.7e9);
  // 8 MiB held (and written, so it is resident) shows in the live heap. Sanitizers replace
  // malloc and glibc's counters then stay at their own level: skip that part under them.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  constexpr std::size_t kBlock = 8 << 20;
  std::unique_ptr<char[]> block(new char[kBlock]);
  for (std::size_t i = 0; i < kBlock; i += 4096) block[i] = static_cast<char>(i);
  const auto during = ByName(collector.Collect());
  EXPECT_GE(during.at("drgate_malloc_in_use_bytes").second -
                before.at("drgate_malloc_in_use_bytes").second,
            kBlock);
  block.reset();
  const auto after = ByName(collector.Collect());
  EXPECT_LT(after.at("drgate_malloc_in_use_bytes").second,
            during.at("drgate_malloc_in_use_bytes").second - kBlock / 2);
#endif
}

}  // namespace
}  // namespace drgate
