#include "core/jobs/watch_hub.h"

#include <vector>

namespace drgate::jobs {

uint64_t WatchHub::Subscribe(const std::string& commcell, const std::string& job_id,
                             Listener listener) {
  std::lock_guard lock(mu_);
  const uint64_t handle = next_handle_++;
  Key key{commcell, job_id};
  listeners_[key].emplace(handle, std::move(listener));
  keys_.emplace(handle, std::move(key));
  return handle;
}

void WatchHub::Unsubscribe(uint64_t handle) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(handle);
  if (it == keys_.end()) return;
  auto l = listeners_.find(it->second);
  if (l != listeners_.end()) {
    l->second.erase(handle);
    if (l->second.empty()) listeners_.erase(l);
  }
  keys_.erase(it);
}

void WatchHub::Publish(const Job& job) {
  std::vector<Listener> targets;
  {
    std::lock_guard lock(mu_);
    auto it = listeners_.find({job.commcell, job.job_id});
    if (it == listeners_.end()) return;
    targets.reserve(it->second.size());
    for (const auto& [handle, listener] : it->second) targets.push_back(listener);
  }
  for (const auto& listener : targets) listener(job);
}

std::size_t WatchHub::watcher_count() const {
  std::lock_guard lock(mu_);
  return keys_.size();
}

std::vector<std::pair<std::string, std::string>> WatchHub::WatchedJobs() const {
  std::lock_guard lock(mu_);
  std::vector<Key> keys;
  keys.reserve(listeners_.size());
  for (const auto& [key, listeners] : listeners_) {
    if (!listeners.empty()) keys.push_back(key);
  }
  return keys;
}

}  // namespace drgate::jobs
