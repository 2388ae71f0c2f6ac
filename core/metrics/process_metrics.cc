#include "core/metrics/process_metrics.h"

#include <malloc.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

namespace drgate {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

void Add(std::vector<MetricFamily>& out, const char* name, const char* help, MetricType type,
         double value) {
  ClientMetric metric;
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  out.push_back(MetricFamily{name, help, type, {std::move(metric)}});
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The fields of /proc/<pid>/stat after the command name, which is in parentheses and may hold
// spaces: fields()[0] is field 3 of proc(5) (the state).
std::vector<std::string> StatFields(const std::string& stat) {
  std::vector<std::string> fields;
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream in(stat.substr(close + 1));
  for (std::string f; in >> f;) fields.push_back(f);
  return fields;
}

std::optional<double> Number(const std::string& text) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used != text.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The value after `key` on the line that starts with it, e.g. "btime 1764222000".
std::optional<double> KeyedValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) != 0) continue;
    std::istringstream rest(line.substr(key.size()));
    std::string value;
    rest >> value;
    if (value == "unlimited") return std::nullopt;
    return Number(value);
  }
  return std::nullopt;
}

}  // namespace

ProcessMetrics::ProcessMetrics(std::string proc_self, std::string proc_root, bool malloc_stats)
    : self_(std::move(proc_self)), root_(std::move(proc_root)), malloc_stats_(malloc_stats) {}

std::vector<MetricFamily> ProcessMetrics::Collect() const {
  std::vector<MetricFamily> out;
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  static const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // proc(5): 14 utime, 15 stime, 20 num_threads, 22 starttime, 23 vsize, 24 rss (pages).
  constexpr std::size_t kUtime = 14 - 3, kStime = 15 - 3, kThreads = 20 - 3, kStart = 22 - 3,
                        kVsize = 23 - 3, kRss = 24 - 3;
  if (auto stat = ReadFile(self_ + "/stat")) {
    const auto f = StatFields(*stat);
    if (f.size() > kRss) {
      const auto utime = Number(f[kUtime]), stime = Number(f[kStime]);
      if (utime && stime) {
        Add(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
            MetricType::Counter, (*utime + *stime) / ticks);
      }
      if (auto rss = Number(f[kRss])) {
        Add(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
            MetricType::Gauge, *rss * page);
      }
      if (auto vsize = Number(f[kVsize])) {
        Add(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
            *vsize);
      }
      if (auto threads = Number(f[kThreads])) {
        Add(out, "process_threads", "Number of OS threads in the process.", MetricType::Gauge,
            *threads);
      }
      const auto boot = ReadFile(root_ + "/stat");
      const auto btime = boot ? KeyedValue(*boot, "btime") : std::nullopt;
      if (auto start = Number(f[kStart]); start && btime) {
        Add(out, "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
            *btime + *start / ticks);
      }
    }
  }
  std::error_code ec;
  std::filesystem::directory_iterator fds(self_ + "/fd", ec);
  if (!ec) {
    double open = 0;
    for (const auto& entry : fds) {
      (void)entry;
      ++open;
    }
    Add(out, "process_open_fds", "Number of open file descriptors.", MetricType::Gauge, open);
  }
  if (auto limits = ReadFile(self_ + "/limits")) {
    if (auto max = KeyedValue(*limits, "Max open files")) {
      Add(out, "process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
          *max);
    }
  }
  if (malloc_stats_) {
    const struct mallinfo2 m = mallinfo2();
    Add(out, "drgate_malloc_in_use_bytes",
        "Bytes allocated with malloc and not yet freed (the live heap).", MetricType::Gauge,
        static_cast<double>(m.uordblks + m.hblkhd));
    Add(out, "drgate_malloc_free_bytes",
        "Bytes the allocator holds free in its arenas, not returned to the OS.", MetricType::Gauge,
        static_cast<double>(m.fordblks));
    // Part of the live heap: SQLite's page caches and statements, process-wide. Each registry
    // connection caches up to its cache_size, so this grows with the registry up to that cap.
    sqlite3_int64 used = 0, highwater = 0;
    if (sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &used, &highwater, 0) == SQLITE_OK) {
      Add(out, "drgate_sqlite_memory_bytes",
          "Heap bytes held by SQLite (registry page caches and prepared statements).",
          MetricType::Gauge, static_cast<double>(used));
    }
  }
  return out;
}

}  // namespace drgate
