#pragma once

// A CommServClient that answers TriggerDrBackup from a script, counts calls, and can hold
// answers until released (to line up concurrent duplicates).

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/common/executor.h"
#include "core/commserv/client.h"

namespace drgate::testing {

class FakeCommServClient final : public commserv::CommServClient {
 public:
  using Script =
      std::function<StatusOr<commserv::DrBackupResult>(const commserv::DrBackupRequest&)>;

  explicit FakeCommServClient(Script script = nullptr) : script_(std::move(script)) {}
  ~FakeCommServClient() override { Release(); }

  void TriggerDrBackup(const commserv::DrBackupRequest& request,
                       Callback<commserv::DrBackupResult> done) override {
    const int n = ++calls_;
    pool_.Post([this, request, n, done = std::move(done)] {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return !held_; });
      }
      if (script_) {
        done(script_(request));
      } else {
        done(commserv::DrBackupResult{433, {std::to_string(2140 + n)}});
      }
    });
  }
  void ListDrJobs(std::chrono::seconds, Callback<std::vector<commserv::JobSummary>> done) override {
    pool_.Post([done = std::move(done)] { done(std::vector<commserv::JobSummary>{}); });
  }
  void GetJob(const std::string&, Callback<std::optional<commserv::JobSummary>> done) override {
    pool_.Post([done = std::move(done)] { done(std::optional<commserv::JobSummary>()); });
  }
  void KillJob(const std::string&, std::function<void(Status)> done) override {
    pool_.Post([done = std::move(done)] { done(Status::Ok()); });
  }
  commserv::Reachability reachability() const override { return {}; }

  int calls() const { return calls_; }
  // While held, answers wait.
  void Hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }

 private:
  Script script_;
  std::atomic<int> calls_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;  // guarded by mu_
  ThreadPool pool_{2};
};

}  // namespace drgate::testing
