#pragma once

// WatchJob on replicas sharing a registry: only the leader's tracker learns of job changes, so
// every replica re-reads the jobs its watchers follow from the registry every `interval` and
// publishes them to its WatchHub. Streams skip a job that did not change, so a re-read that finds
// nothing new sends nothing; the cost is one indexed read per watched job (not per watcher) per
// interval, and nothing upstream.
//
// The class is thread-safe. Reads run on the refresher's own thread.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/jobs/watch_hub.h"
#include "core/registry/job_store.h"

namespace drgate::jobs {

class WatchRefresher {
 public:
  // The references must outlive the refresher.
  WatchRefresher(JobStore& store, WatchHub& hub, std::chrono::milliseconds interval);
  ~WatchRefresher();
  WatchRefresher(const WatchRefresher&) = delete;
  WatchRefresher& operator=(const WatchRefresher&) = delete;

  void Start();
  void Stop();  // idempotent; waits for a refresh under way

  // One pass over the watched jobs (for tests).
  void RefreshOnce();

 private:
  JobStore& store_;
  WatchHub& hub_;
  const std::chrono::milliseconds interval_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace drgate::jobs
