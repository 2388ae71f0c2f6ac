#pragma once

// A CommServClient that answers TriggerDrBackup from a script, counts calls, and can hold
// answers until released (to line up concurrent duplicates).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
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
    Answer([this, request, n, done = std::move(done)] {
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
  // The CommServe's view of jobs, as ListDrJobs and GetJob report it. A job absent from
  // `jobs` is not shown (yet). `list_error`, when set, fails ListDrJobs.
  void SetJob(const commserv::JobSummary& summary) {
    std::lock_guard lock(mu_);
    jobs_[summary.job_id] = summary;
  }
  void SetListError(std::optional<Status> error) {
    std::lock_guard lock(mu_);
    list_error_ = std::move(error);
  }
  // Ids hidden from the list but answered by GetJob (the list lags behind).
  void HideFromList(const std::string& id) {
    std::lock_guard lock(mu_);
    hidden_.insert(id);
  }
  int list_calls() const { return list_calls_; }
  int get_calls() const { return get_calls_; }
  int kill_calls() const { return kill_calls_; }

  void ListDrJobs(std::chrono::seconds, Callback<std::vector<commserv::JobSummary>> done) override {
    ++list_calls_;
    StatusOr<std::vector<commserv::JobSummary>> result = std::vector<commserv::JobSummary>{};
    {
      std::lock_guard lock(mu_);
      if (list_error_) {
        result = *list_error_;
      } else {
        for (const auto& [id, s] : jobs_) {
          if (!hidden_.count(id)) result->push_back(s);
        }
      }
    }
    Answer([this, done = std::move(done), result = std::move(result)] {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return !lists_held_; });
      }
      done(result);
    });
  }
  // Pages of the list as ListDrJobs shows it, newest start first (then highest id). Records the
  // lookback asked.
  void ListDrJobPage(std::chrono::seconds lookback, int64_t offset, int64_t limit,
                     Callback<commserv::JobListPage> done) override {
    ++page_calls_;
    last_lookback_ = lookback;
    StatusOr<commserv::JobListPage> result = commserv::JobListPage{};
    {
      std::lock_guard lock(mu_);
      if (list_error_) {
        result = *list_error_;
      } else {
        std::vector<commserv::JobSummary> all;
        for (const auto& [id, s] : jobs_) {
          if (!hidden_.count(id)) all.push_back(s);
        }
        std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
          return a.start_time != b.start_time ? a.start_time > b.start_time
                                              : std::stoll(a.job_id) > std::stoll(b.job_id);
        });
        result->total = static_cast<int64_t>(all.size());
        for (int64_t i = offset; i < std::min<int64_t>(offset + limit, result->total); ++i) {
          result->jobs.push_back(all[i]);
        }
      }
    }
    Answer([done = std::move(done), result = std::move(result)] { done(result); });
  }
  // What GetDrBackupOptions answers (default: a 404, reason DR_OPTIONS_UNAVAILABLE).
  void SetOptions(StatusOr<commserv::DrBackupOptions> options) {
    std::lock_guard lock(mu_);
    options_ = std::move(options);
  }
  void GetDrBackupOptions(Callback<commserv::DrBackupOptions> done) override {
    ++options_calls_;
    StatusOr<commserv::DrBackupOptions> result = commserv::DrBackupOptions{};
    {
      std::lock_guard lock(mu_);
      result = options_;
    }
    Answer([done = std::move(done), result = std::move(result)] { done(result); });
  }
  int page_calls() const { return page_calls_; }
  int options_calls() const { return options_calls_; }
  std::chrono::seconds last_lookback() const { return last_lookback_; }

  void GetJob(const std::string& id, Callback<std::optional<commserv::JobSummary>> done) override {
    ++get_calls_;
    std::optional<commserv::JobSummary> found;
    {
      std::lock_guard lock(mu_);
      if (auto it = jobs_.find(id); it != jobs_.end()) found = it->second;
    }
    Answer([done = std::move(done), found] { done(found); });
  }
  void KillJob(const std::string& id, std::function<void(Status)> done) override {
    ++kill_calls_;
    {
      std::lock_guard lock(mu_);
      if (auto it = jobs_.find(id); it != jobs_.end()) it->second.status = "Killed";
    }
    Answer([done = std::move(done)] { done(Status::Ok()); });
  }
  commserv::Reachability reachability() const override { return {}; }

  int calls() const { return calls_; }
  // Returns once every answer has been delivered and its callback destroyed. A fixture calls it
  // before it goes away: a callback may hold the last reference to the CommCell list that owns
  // this client, and the client must not be destroyed on its own thread (joining itself).
  // Held answers are released first.
  void WaitIdle() {
    Release();
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [this] { return pending_ == 0; });
  }
  // While held, answers wait.
  void Hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  // While held, ListDrJobs answers wait (a CommServe whose job list hangs). Each held answer
  // takes one of the client's two answering threads.
  void HoldLists() {
    std::lock_guard lock(mu_);
    lists_held_ = true;
  }
  // Releases held answers of both kinds.
  void Release() {
    {
      std::lock_guard lock(mu_);
      held_ = false;
      lists_held_ = false;
    }
    cv_.notify_all();
  }

 private:
  // Runs `answer` on the pool; its captures (the caller's callback) are destroyed before the
  // answer counts as delivered.
  void Answer(std::function<void()> answer) {
    {
      std::lock_guard lock(mu_);
      ++pending_;
    }
    pool_.Post([this, answer = std::move(answer)]() mutable {
      answer();
      answer = nullptr;
      std::lock_guard lock(mu_);
      if (--pending_ == 0) idle_cv_.notify_all();
    });
  }

  Script script_;
  std::atomic<int> calls_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;        // guarded by mu_
  bool lists_held_ = false;  // guarded by mu_
  int pending_ = 0;          // guarded by mu_: answers not delivered
  std::condition_variable idle_cv_;
  std::map<std::string, commserv::JobSummary> jobs_;  // guarded by mu_
  std::set<std::string> hidden_;                      // guarded by mu_
  std::optional<Status> list_error_;                  // guarded by mu_
  StatusOr<commserv::DrBackupOptions> options_ =      // guarded by mu_
      Status(StatusCode::kNotFound, "no options endpoint", Reason::kDrOptionsUnavailable);
  std::atomic<int> page_calls_{0};
  std::atomic<int> options_calls_{0};
  std::atomic<std::chrono::seconds> last_lookback_{std::chrono::seconds(0)};
  std::atomic<int> list_calls_{0};
  std::atomic<int> get_calls_{0};
  std::atomic<int> kill_calls_{0};
  ThreadPool pool_{2};
};

}  // namespace drgate::testing
