#pragma once

// The process's own health, collected at scrape time: the standard process_* series that
// Prometheus client libraries export (so stock dashboards and alerts on memory, CPU and file
// descriptors work unchanged), plus what glibc's allocator holds, which tells a leak (in-use bytes
// grow) from allocator retention (free bytes grow, RSS follows).
//
//   process_cpu_seconds_total        user + system CPU time
//   process_resident_memory_bytes    RSS
//   process_virtual_memory_bytes     address space size
//   process_open_fds                 open file descriptors
//   process_max_fds                  the soft RLIMIT_NOFILE
//   process_start_time_seconds       since the Unix epoch
//   process_threads                  OS threads
//   drgate_malloc_in_use_bytes       bytes handed out by malloc and not freed (the live heap)
//   drgate_malloc_free_bytes         bytes malloc holds free in its arenas (not returned to the OS)
//   drgate_sqlite_memory_bytes       the part of the live heap SQLite holds (registry caches)
//
// Reads /proc under a root given at construction ("/proc/self" in production; tests pass a fake
// tree). A file that cannot be read leaves its series out of that scrape rather than report a
// wrong 0. Thread-safe: Collect() keeps no state.

#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace drgate {

class ProcessMetrics : public prometheus::Collectable {
 public:
  // `proc_self`: the process's /proc folder. `proc_root`: where "stat" (boot time) is.
  explicit ProcessMetrics(std::string proc_self = "/proc/self", std::string proc_root = "/proc",
                          bool malloc_stats = true);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::string self_;
  std::string root_;
  bool malloc_stats_;
};

}  // namespace drgate
