#pragma once

// Fans job changes out to watchers (WatchJob streams). Watchers cost nothing upstream: the
// tracker publishes what it learnt from its one poll per CommCell, however many watch.
//
// The class is thread-safe. Listeners run on the publisher's thread, outside the hub's lock,
// and may be called once more after Unsubscribe returns (a publish already under way): they
// must tolerate that.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/common/job.h"

namespace drgate::jobs {

class WatchHub {
 public:
  using Listener = std::function<void(const Job&)>;

  // Returns a handle for Unsubscribe.
  uint64_t Subscribe(const std::string& commcell, const std::string& job_id, Listener listener);
  void Unsubscribe(uint64_t handle);
  void Publish(const Job& job);
  std::size_t watcher_count() const;
  // The (commcell, job_id) of every job with at least one watcher.
  std::vector<std::pair<std::string, std::string>> WatchedJobs() const;

 private:
  using Key = std::pair<std::string, std::string>;  // (commcell, job_id)
  mutable std::mutex mu_;
  uint64_t next_handle_ = 1;                               // guarded by mu_
  std::map<Key, std::map<uint64_t, Listener>> listeners_;  // guarded by mu_
  std::map<uint64_t, Key> keys_;                           // guarded by mu_
};

}  // namespace drgate::jobs
