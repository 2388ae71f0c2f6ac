// The CommServe's memory as the simulator models it: session tokens and DR backup jobs.
#ifndef DRGATE_TOOLS_COMMSERV_SIM_COMMSERV_STATE_H_
#define DRGATE_TOOLS_COMMSERV_SIM_COMMSERV_STATE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/commserv-sim/wire.h"

namespace commserv_sim {

using TimePoint = std::chrono::system_clock::time_point;

// Source of wall-clock time; injected so that tests can drive jobs and token expiry by hand.
// Implementations must be thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
};

// True when a job status text means the job is over: it contains "completed", "committed",
// "killed" or "failed" (case-insensitive), or is "Abnormal Terminated Cleanup".
bool IsFinishedStatus(std::string_view status);

struct StateOptions {
  std::string username = "admin";
  std::string password = "admin";        // Plain text, compared with the decoded Login password.
  std::chrono::seconds token_ttl{1800};  // Inactivity timeout of a session token.
  std::chrono::hours renew_grace{24};    // How long after expiry RenewLoginToken still works.
  std::chrono::milliseconds job_duration{2000};   // Running time from start to the outcome.
  std::string outcome = "Completed";              // Terminal status a job reaches by default.
  std::chrono::milliseconds visibility_delay{0};  // New jobs are hidden from queries this long.
  int64_t first_job_id = 2100;
  int64_t first_task_id = 400;
  // Pre-issued API access tokens (as a CommServe administrator creates them): valid without a
  // Login and without the inactivity timeout, until the admin API expires or clears tokens.
  std::vector<std::string> api_tokens;
  // When positive, the CommServe starts a full DR backup on its own every `dr_schedule`, the
  // first one `dr_schedule` after the state is created (like Commvault's own DR schedule).
  std::chrono::milliseconds dr_schedule{0};
};

// A finished DR backup to put into the job history (admin API), as if it had run earlier.
struct HistoryEntry {
  TimePoint start;
  TimePoint end;
  BackupLevel level = BackupLevel::kFull;
  std::string status = "Completed";  // Must be a finished status.
  std::string reason;                // pendingReason (the failure reason of failed jobs).
};

// Result of a DR backup submission: `job_id` and `task_id` when the job was created, else
// `running_job_id` names the active job of the same level that blocks it.
struct Submission {
  bool accepted = false;
  int64_t task_id = 0;
  int64_t job_id = 0;
  int64_t running_job_id = 0;
};

enum class JobAction { kKill, kPause, kResume };

// errorCode 0 on success; otherwise errorCode 1 and the message to send.
struct ActionResult {
  int error_code = 0;
  std::string message;
};

enum class JobCategory { kActive, kFinished, kAll };

// Everything the admin API shows about a job, visible or not.
struct JobRecord {
  JobSummary summary;
  int64_t task_id = 0;
  bool compression = false;
  bool visible = false;
};

// Tokens and jobs of one simulated CommServe.
//
// Job model: a job runs for `job_duration` of running time. Its first half is phase 1
// ("Database Backup"); at most one job is in phase 1 at a time, later ones wait ("Waiting") in id
// order and start the instant phase 1 frees up. At most 2 full and 1 differential jobs may be
// active at once. The state advances lazily, on each call, from the injected clock.
//
// Tokens: valid while used at least every `token_ttl`; renewable up to `renew_grace` after that.
//
// The class is thread-safe.
class CommservState {
 public:
  CommservState(StateOptions options, std::unique_ptr<Clock> clock);

  const std::string& username() const { return options_.username; }

  // Issues a new token ("QSDK <hex>") when the credentials match, else nullopt.
  std::optional<std::string> Login(std::string_view username, std::string_view password);
  // Replaces a known token that is valid or expired within the grace period by a new one.
  std::optional<std::string> RenewToken(std::string_view old_token);
  // Forgets `token`; unknown tokens are ignored.
  void Logout(std::string_view token);
  // True when `token` is valid; a valid token's inactivity timer restarts.
  bool Authenticate(std::string_view token);
  // Expires every issued token now; they stay renewable.
  void ExpireAllTokens();
  void ClearTokens();

  Submission SubmitDrBackup(const DrBackupRequest& request);
  // The job as Job/{id} shows it; nullopt when unknown or not visible yet.
  std::optional<JobSummary> FindJob(int64_t job_id);
  // Visible jobs of `category`, latest start first (then highest id). Finished jobs only when they
  // ended within `completed_lookup` of now.
  std::vector<JobSummary> ListJobs(JobCategory category, std::chrono::seconds completed_lookup);
  ActionResult ApplyAction(int64_t job_id, JobAction action);
  // The delay/failure reason JobDetails reports; nullopt when the job is unknown or not visible.
  std::optional<std::string> DelayReason(int64_t job_id);

  // Admin: every job, including hidden ones, in id order.
  std::vector<JobRecord> AllJobs();
  // Admin: sets a job's status now (a finished status ends it, "Running"/"Waiting" resume it,
  // anything else holds it). Returns false for unknown jobs.
  bool ForceStatus(int64_t job_id, std::string_view status,
                   const std::optional<std::string>& pending_reason);
  // Admin: the terminal status this job will reach. Returns false for unknown jobs.
  bool SetOutcome(int64_t job_id, std::string_view outcome);
  // Admin: forgets every job. Ids keep increasing.
  void ClearJobs();
  // Admin: adds a finished job with the next id. Returns its id, or nullopt (with `error` set)
  // when the entry is not history: end before start, end in the future, or a status that does
  // not finish a job.
  std::optional<int64_t> SeedHistory(const HistoryEntry& entry, std::string* error);
  // Admin: how many DR backups the schedule started so far.
  int64_t ScheduledStarts();

 private:
  enum class Stage { kWaiting, kRunning, kHeld, kFinished };

  struct Job {
    int64_t id = 0;
    int64_t task_id = 0;
    DrBackupRequest request;
    TimePoint submitted;
    TimePoint visible_at;
    Stage stage = Stage::kWaiting;
    std::string status;  // Shown for kHeld and kFinished; derived for the other stages.
    std::chrono::milliseconds run_before{0};  // Running time before `run_since`.
    TimePoint run_since;     // Start of the current running stretch (kRunning only).
    TimePoint queued_since;  // When the job last entered kWaiting.
    TimePoint end_time;
    TimePoint last_update;
    int frozen_percent = 0;  // Progress shown for kHeld and kFinished.
    std::string pending_reason;
    std::optional<std::string> outcome;
  };

  struct Token {
    TimePoint last_used;
    bool force_expired = false;
    bool api = false;  // from StateOptions::api_tokens: no inactivity timeout
  };

  std::chrono::milliseconds PhaseOneLength() const { return options_.job_duration / 2; }
  std::chrono::milliseconds RunTime(const Job& job, TimePoint now) const;
  // When a running job leaves (or left) phase 1.
  TimePoint PhaseOneEnd(const Job& job) const;
  int Percent(const Job& job, TimePoint now) const;
  JobSummary Summarize(const Job& job, TimePoint now) const;
  std::string NewToken() const;

  // Starts the waiting jobs whose turn came by `now`. Requires mu_.
  void StartWaitingJobs(TimePoint now);
  // Brings every job up to `now`: starts waiting jobs whose turn came, ends jobs that ran long
  // enough. Requires mu_.
  void Advance(TimePoint now);
  // Starts and ends jobs up to `now` (Advance without the schedule). Requires mu_.
  void AdvanceJobs(TimePoint now);
  // Creates a job submitted at `at` unless the level's active-job limit is reached. Requires mu_.
  Submission CreateJob(const DrBackupRequest& request, TimePoint at);
  // Stops the running clock of a job, keeping its progress; the job is kHeld afterwards.
  // Requires mu_.
  void Freeze(Job& job, TimePoint now);
  // Puts a stopped job back in line: waiting when it still has phase-1 work, else running.
  void Requeue(Job& job, TimePoint now);
  void Finish(Job& job, std::string status, TimePoint at);
  Job* FindVisible(int64_t job_id, TimePoint now);

  const StateOptions options_;
  const std::unique_ptr<Clock> clock_;

  std::mutex mu_;
  std::map<std::string, Token, std::less<>> tokens_;  // Guarded by mu_.
  std::map<int64_t, Job> jobs_;                       // Guarded by mu_.
  int64_t next_job_id_;                               // Guarded by mu_.
  int64_t next_task_id_;                              // Guarded by mu_.
  // Last time a job left phase 1 early (killed, paused, held). Guarded by mu_.
  TimePoint phase_one_freed_at_;
  TimePoint next_scheduled_;      // Guarded by mu_; meaningful when options_.dr_schedule > 0.
  int64_t scheduled_starts_ = 0;  // Guarded by mu_.
};

}  // namespace commserv_sim

#endif  // DRGATE_TOOLS_COMMSERV_SIM_COMMSERV_STATE_H_
