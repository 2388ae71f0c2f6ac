#include "core/jobs/watch_refresher.h"

namespace drgate::jobs {

WatchRefresher::WatchRefresher(JobStore& store, WatchHub& hub, std::chrono::milliseconds interval)
    : store_(store), hub_(hub), interval_(interval) {}

WatchRefresher::~WatchRefresher() {
  Stop();
}

void WatchRefresher::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] {
    for (;;) {
      {
        std::unique_lock lock(mu_);
        if (cv_.wait_for(lock, interval_, [this] { return stopping_; })) return;
      }
      RefreshOnce();
    }
  });
}

void WatchRefresher::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WatchRefresher::RefreshOnce() {
  for (const auto& [commcell, job_id] : hub_.WatchedJobs()) {
    // A failed read (registry away) is retried on the next pass; the stream stays open.
    if (auto job = store_.GetJob(commcell, job_id); job.ok()) hub_.Publish(*job);
  }
}

}  // namespace drgate::jobs
