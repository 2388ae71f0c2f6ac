#pragma once

// A JobStore decorator whose calls for a chosen CommCell (and, optionally, one request id or job
// id) block until released: a registry path that stalls (a PostgreSQL connection that hangs, a
// lock held elsewhere) for some requests and not for others. Every other call goes to the inner
// store at once.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/registry/job_store.h"

namespace drgate::testing {

class BlockingJobStore final : public JobStore {
 public:
  explicit BlockingJobStore(std::unique_ptr<JobStore> inner) : inner_(std::move(inner)) {}
  ~BlockingJobStore() override { Release(); }

  // From now on, calls naming `commcell` block; with `key` set, only those naming that request
  // id (FindByRequestId, FindOpenIntent, AddIntent, PutJobs) or job id (GetJob). Calls without a
  // CommCell (ListJobs of every CommCell, ListOpenIntents, ResolveIntent...) never block.
  void Stall(std::string commcell, std::string key = "") {
    std::lock_guard lock(mu_);
    stalls_.emplace_back(std::move(commcell), std::move(key));
  }
  // Lets every blocked call go on, and later ones pass.
  void Release() {
    std::lock_guard lock(mu_);
    stalls_.clear();
    cv_.notify_all();
  }
  // Waits until at least `n` calls are blocked; false after `timeout`.
  bool WaitBlocked(int n, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return blocked_ >= n; });
  }
  int blocked() const {
    std::lock_guard lock(mu_);
    return blocked_;
  }
  // Waits until `method` ("FindOpenIntent"...) has returned `n` times in all; false after
  // `timeout`.
  bool WaitReturned(const std::string& method, int n,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return returned_[method] >= n; });
  }
  // How many times `method` has returned so far.
  int returned(const std::string& method) const {
    std::lock_guard lock(mu_);
    auto it = returned_.find(method);
    return it == returned_.end() ? 0 : it->second;
  }
  // The most calls blocked at once so far.
  int max_blocked() const {
    std::lock_guard lock(mu_);
    return max_blocked_;
  }

  Status PutJobs(const std::vector<Job>& jobs,
                 std::optional<int64_t> resolved_intent = std::nullopt) override {
    if (!jobs.empty()) Gate(jobs.front().commcell, jobs.front().request_id);
    return Counted("PutJobs", inner_->PutJobs(jobs, resolved_intent));
  }
  StatusOr<Job> GetJob(const std::string& commcell, const std::string& job_id) override {
    Gate(commcell, job_id);
    return Counted("GetJob", inner_->GetJob(commcell, job_id));
  }
  StatusOr<std::optional<Job>> FindByRequestId(const std::string& commcell,
                                               const std::string& request_id) override {
    Gate(commcell, request_id);
    return Counted("FindByRequestId", inner_->FindByRequestId(commcell, request_id));
  }
  StatusOr<JobPage> ListJobs(const JobFilter& filter, int page_size,
                             const std::string& page_token) override {
    Gate(filter.commcell, "");
    return Counted("ListJobs", inner_->ListJobs(filter, page_size, page_token));
  }
  StatusOr<std::vector<Job>> ListActiveJobs() override {
    return Counted("ListActiveJobs", inner_->ListActiveJobs());
  }
  StatusOr<std::optional<Job>> LatestJob(const std::string& commcell, BackupType type,
                                         const std::vector<JobState>& states,
                                         std::optional<JobOrigin> origin = std::nullopt) override {
    Gate(commcell, "");
    return Counted("LatestJob", inner_->LatestJob(commcell, type, states, origin));
  }
  StatusOr<int64_t> PruneTerminalJobs(TimePoint finished_before, int max_rows) override {
    return Counted("PruneTerminalJobs", inner_->PruneTerminalJobs(finished_before, max_rows));
  }
  StatusOr<int64_t> AddIntent(const TriggerIntent& intent) override {
    Gate(intent.commcell, intent.request_id);
    return Counted("AddIntent", inner_->AddIntent(intent));
  }
  Status ResolveIntent(int64_t intent_id, const std::string& outcome) override {
    return Counted("ResolveIntent", inner_->ResolveIntent(intent_id, outcome));
  }
  StatusOr<std::vector<TriggerIntent>> ListOpenIntents() override {
    return Counted("ListOpenIntents", inner_->ListOpenIntents());
  }
  StatusOr<std::optional<TriggerIntent>> FindOpenIntent(const std::string& commcell,
                                                        const std::string& request_id) override {
    Gate(commcell, request_id);
    return Counted("FindOpenIntent", inner_->FindOpenIntent(commcell, request_id));
  }
  Status PutJobsFenced(const LeaseFence& fence, const std::vector<Job>& jobs,
                       std::optional<int64_t> resolved_intent = std::nullopt) override {
    if (!jobs.empty()) Gate(jobs.front().commcell, jobs.front().request_id);
    return Counted("PutJobsFenced", inner_->PutJobsFenced(fence, jobs, resolved_intent));
  }
  Status ResolveIntentFenced(const LeaseFence& fence, int64_t intent_id,
                             const std::string& outcome) override {
    return Counted("ResolveIntentFenced", inner_->ResolveIntentFenced(fence, intent_id, outcome));
  }
  StatusOr<int64_t> PruneTerminalJobsFenced(const LeaseFence& fence, TimePoint finished_before,
                                            int max_rows) override {
    return Counted("PruneTerminalJobsFenced",
                   inner_->PruneTerminalJobsFenced(fence, finished_before, max_rows));
  }

 private:
  template <typename T>
  T Counted(const std::string& method, T result) {
    std::lock_guard lock(mu_);
    ++returned_[method];
    cv_.notify_all();
    return result;
  }
  // Requires mu_.
  bool Stalled(const std::string& commcell, const std::string& key) const {
    if (commcell.empty()) return false;
    for (const auto& [c, k] : stalls_) {
      if (c == commcell && (k.empty() || k == key)) return true;
    }
    return false;
  }
  void Gate(const std::string& commcell, const std::string& key) {
    std::unique_lock lock(mu_);
    if (!Stalled(commcell, key)) return;
    ++blocked_;
    max_blocked_ = std::max(max_blocked_, blocked_);
    cv_.notify_all();
    cv_.wait(lock, [&] { return !Stalled(commcell, key); });
    --blocked_;
  }

  std::unique_ptr<JobStore> inner_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, std::string>> stalls_;  // guarded by mu_
  int blocked_ = 0;                                          // guarded by mu_
  int max_blocked_ = 0;                                      // guarded by mu_
  std::map<std::string, int> returned_;                      // guarded by mu_
};

}  // namespace drgate::testing
