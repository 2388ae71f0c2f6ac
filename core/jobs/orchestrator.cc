#include "core/jobs/orchestrator.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "core/common/audit.h"
#include "core/common/time_range.h"
#include "core/registry/fenced_job_store.h"

namespace drgate::jobs {
namespace {

// An audit record's fields, plus the error's code, reason and text when `s` is one.
AuditFields WithError(AuditFields fields, const Status& s) {
  if (!s.ok()) {
    fields.emplace_back("code", StatusCodeName(s.code()));
    if (s.reason() != Reason::kNone) fields.emplace_back("reason", ReasonName(s.reason()));
    fields.emplace_back("error", s.message());
  }
  return fields;
}

Status ValidateRequestId(const std::string& id) {
  if (id.size() > kMaxRequestIdLength) {
    return InvalidArgument(
        "request_id is " + std::to_string(id.size()) + " characters long; at most 36 are allowed",
        Reason::kInvalidRequestId);
  }
  for (unsigned char c : id) {
    if (c < 0x21 || c > 0x7e) {
      return InvalidArgument("request_id must be printable ASCII without spaces",
                             Reason::kInvalidRequestId);
    }
  }
  return Status::Ok();
}

// OK when a request id's first request (what was recorded for it: a job or an open intent)
// asked for what `request` asks; else INVALID_ARGUMENT (reason REQUEST_ID_REUSED) naming the
// first difference. A request id stands for one request: answering a differential for a full
// would leave the caller with a backup it did not ask for, and never telling it.
Status SameParameters(const TriggerRequest& request, BackupType first_type,
                      bool first_compression) {
  std::string field;
  std::string first;
  std::string now;
  if (first_type != request.backup_type) {
    field = "backup_type";
    first = BackupTypeName(first_type);
    now = BackupTypeName(request.backup_type);
  } else if (first_compression != request.compression) {
    field = "compression";
    first = first_compression ? "true" : "false";
    now = request.compression ? "true" : "false";
  } else {
    return Status::Ok();
  }
  return InvalidArgument("request_id \"" + request.request_id + "\" was first used with " + field +
                             " " + first + ", this request has " + field + " " + now +
                             "; a request_id stands for one request: use a new one for other "
                             "parameters",
                         Reason::kRequestIdReused)
      .With("field", field)
      .With("request_id", request.request_id);
}

bool OutcomeUnknown(const Status& s) {
  auto it = s.metadata().find("request_sent");
  return it != s.metadata().end() && it->second == "true";
}

bool IsRefusal(const Status& s) {
  return IsRefusedByCommServe(s.reason());
}

// A job just accepted by the CommServe for `request`, as first recorded.
Job SubmittedJob(const std::string& commcell, const std::string& job_id,
                 const TriggerRequest& request, TimePoint now) {
  Job job;
  job.commcell = commcell;
  job.job_id = job_id;
  job.backup_type = request.backup_type;
  job.compression = request.compression;
  job.state = JobState::kSubmitted;
  job.request_id = request.request_id;
  job.requested_by = request.requested_by;
  job.create_time = now;
  job.update_time = now;
  return job;
}

}  // namespace

Orchestrator::Orchestrator(std::vector<CommCell> commcells, JobStore& store, Metrics& metrics,
                           const Clock& clock, Executor& blocking, KeyedExecutor& reads,
                           Tracker& tracker, OrchestratorOptions options)
    : store_(store),
      metrics_(metrics),
      clock_(clock),
      blocking_(blocking),
      reads_(reads),
      tracker_(tracker),
      options_(options) {
  SetCommCells(std::move(commcells));
}

Orchestrator::~Orchestrator() {
  StopWaiting();
}

void Orchestrator::StopWaiting() {
  std::vector<Adoption> left;
  {
    std::lock_guard lock(adopt_mu_);
    adopt_stopping_ = true;
  }
  adopt_cv_.notify_all();
  if (adopter_.joinable()) adopter_.join();
  {
    std::lock_guard lock(adopt_mu_);
    left.swap(adoptions_);
  }
  for (Adoption& a : left) {
    Complete(a.cell->name, a.request,
             Annotate(Unavailable("drgate is shutting down while waiting for another replica's "
                                  "trigger with request_id \"" +
                                      a.request.request_id + "\"; retry with the same request_id",
                                  Reason::kTriggerOutcomePending),
                      a.cell->name),
             std::move(a.done));
  }
}

void Orchestrator::SetCommCells(std::vector<CommCell> commcells) {
  for (const auto& c : commcells) metrics_.RegisterCommCell(c.name);
  auto snapshot = std::make_shared<const std::vector<CommCell>>(std::move(commcells));
  std::lock_guard lock(cells_mu_);
  commcells_ = std::move(snapshot);
}

Status Orchestrator::Annotate(Status status, const std::string& commcell) const {
  if (!commcell.empty()) status.With("commcell", commcell);
  return status;
}

StatusOr<Orchestrator::CellPtr> Orchestrator::Resolve(const std::string& name) const {
  std::shared_ptr<const std::vector<CommCell>> cells;
  {
    std::lock_guard lock(cells_mu_);
    cells = commcells_;
  }
  if (name.empty()) {
    if (cells->size() == 1) return CellPtr(cells, &cells->front());
    return InvalidArgument(
        "commcell is required: " + std::to_string(cells->size()) + " CommCells are configured",
        Reason::kCommCellRequired);
  }
  for (const auto& c : *cells) {
    if (c.name == name) return CellPtr(cells, &c);
  }
  return NotFound("CommCell \"" + name + "\" is not configured", Reason::kCommCellNotFound)
      .With("commcell", name);
}

std::string Orchestrator::CoalesceKey(const TriggerRequest& request) {
  if (!request.request_id.empty()) return request.request_id;
  return std::string(BackupTypeName(request.backup_type)) + (request.compression ? "/c1" : "/c0");
}

void Orchestrator::TriggerBackup(TriggerRequest request, TriggerCallback done) {
  auto cell = Resolve(request.commcell);
  if (!cell.ok()) {
    blocking_.Post([done = std::move(done), s = cell.status()] { done(s); });
    return;
  }
  const CommCell& cc = **cell;
  request.commcell = cc.name;
  if (Status s = ValidateRequestId(request.request_id); !s.ok()) {
    blocking_.Post([done = std::move(done), s = Annotate(s, cc.name)] { done(s); });
    return;
  }

  const std::string name = cc.name;
  const bool keyed = !request.request_id.empty();
  {
    // Bookkeeping only: no registry call under mu_.
    std::lock_guard lock(mu_);
    // Keys of triggers without a request id live in a map of their own (coalesced_), so a caller
    // cannot join them by sending a request id that looks like such a key.
    auto& in_flight = keyed ? in_flight_ : coalesced_;
    auto [it, first] = in_flight.try_emplace(Key{name, CoalesceKey(request)});
    if (!first) {
      // Answered with the first one's outcome (when it asked for the same).
      it->second.push_back(Waiter{request, std::move(done)});
      return;
    }
  }
  if (!keyed) {
    Start(*cell, std::move(request), std::move(done));
    return;
  }
  // The request id is this trigger's in this process now; whether the registry knows it is read
  // on the read pool.
  auto shared = std::make_shared<std::pair<TriggerRequest, TriggerCallback>>(std::move(request),
                                                                             std::move(done));
  Read(
      name,
      [this, c = *cell, shared] { Lookup(c, std::move(shared->first), std::move(shared->second)); },
      [this, name, shared](Status s) {
        Complete(name, shared->first, Annotate(s, name), std::move(shared->second));
      });
}

void Orchestrator::Read(const std::string& commcell, std::function<void()> task,
                        std::function<void(Status)> refused) {
  if (!reads_.Post(commcell, std::move(task))) {
    refused(Unavailable(
        "too many registry reads for CommCell \"" + commcell + "\" are waiting; retry later",
        Reason::kRegistryUnavailable));
  }
}

void Orchestrator::Lookup(CellPtr cell, TriggerRequest request, TriggerCallback done) {
  const CommCell& cc = *cell;
  auto existing = store_.FindByRequestId(cc.name, request.request_id);
  if (!existing.ok()) {
    Complete(cc.name, request, Annotate(existing.status(), cc.name), std::move(done));
    return;
  }
  if (existing->has_value()) {
    if (Status s = SameParameters(request, (*existing)->backup_type, (*existing)->compression);
        !s.ok()) {
      Complete(cc.name, request, Annotate(s, cc.name), std::move(done));
      return;
    }
    metrics_.CountTrigger(cc.name, (*existing)->backup_type, TriggerResult::kDeduplicated);
    spdlog::info(AuditMessage("trigger", {{"commcell", cc.name},
                                          {"type", BackupTypeName(request.backup_type)},
                                          {"request_id", request.request_id},
                                          {"caller", request.requested_by},
                                          {"job", (*existing)->job_id},
                                          {"outcome", "deduplicated"}}));
    Complete(cc.name, request, TriggerOutcome{std::move(**existing), true}, std::move(done));
    return;
  }
  // An open intent with this request id is a trigger whose outcome is not known yet (a timeout
  // after sending, a crash, or another replica sending it now): triggering again could start a
  // second backup.
  auto intent = store_.FindOpenIntent(cc.name, request.request_id);
  if (!intent.ok()) {
    Complete(cc.name, request, Annotate(intent.status(), cc.name), std::move(done));
    return;
  }
  if (intent->has_value()) {
    if (Status s = SameParameters(request, (*intent)->backup_type, (*intent)->compression);
        !s.ok()) {
      Complete(cc.name, request, Annotate(s, cc.name), std::move(done));
      return;
    }
    const auto age = clock_.Now() - (*intent)->create_time;
    if (options_.shared_wait.count() > 0 && age < options_.shared_wait) {
      // Probably in flight on another replica: wait for its outcome.
      AwaitOtherReplica(std::move(cell), std::move(request),
                        clock_.Monotonic() + std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 options_.shared_wait - age),
                        std::move(done));
      return;
    }
    Complete(cc.name, request,
             Annotate(Unavailable("an earlier trigger with request_id \"" + request.request_id +
                                      "\" may have reached the CommServe and is being "
                                      "reconciled; retry later with the same request_id",
                                  Reason::kTriggerOutcomePending),
                      cc.name),
             std::move(done));
    return;
  }
  Start(std::move(cell), std::move(request), std::move(done));
}

void Orchestrator::Start(CellPtr cell, TriggerRequest request, TriggerCallback done) {
  blocking_.Post([this, cell, request = std::move(request), done = std::move(done)]() mutable {
    const CommCell& cc = *cell;
    TriggerIntent intent;
    intent.commcell = cc.name;
    intent.backup_type = request.backup_type;
    intent.compression = request.compression;
    intent.request_id = request.request_id;
    intent.requested_by = request.requested_by;
    intent.create_time = clock_.Now();
    auto intent_id = store_.AddIntent(intent);
    if (!intent_id.ok() && intent_id.status().reason() == Reason::kRequestIdInFlight) {
      // Another replica took this request id's intent first: its POST is the only one.
      if (options_.shared_wait.count() > 0) {
        AwaitOtherReplica(cell, std::move(request), clock_.Monotonic() + options_.shared_wait,
                          std::move(done));
        return;
      }
      Complete(cc.name, request,
               Annotate(Unavailable("an earlier trigger with request_id \"" + request.request_id +
                                        "\" has not finished yet; retry later with the same "
                                        "request_id",
                                    Reason::kTriggerOutcomePending),
                        cc.name),
               std::move(done));
      return;
    }
    if (!intent_id.ok()) {
      // Nothing was sent upstream: a clean failure the caller may retry (a full or read-only
      // registry is UNAVAILABLE, reason REGISTRY_UNWRITABLE).
      Status s = Annotate(
          intent_id.status().WithContext("trigger not sent to the CommServe, its intent could "
                                         "not be recorded"),
          cc.name);
      metrics_.CountTrigger(cc.name, request.backup_type, TriggerResult::kFailed);
      metrics_.CountTriggerFailure(cc.name, s);
      Complete(cc.name, request, s, std::move(done));
      return;
    }
    const auto started = clock_.Monotonic();
    commserv::DrBackupRequest upstream{request.backup_type, request.compression, request.deadline};
    cc.client->TriggerDrBackup(
        upstream,
        [this, cell, request, intent_id = *intent_id, intent_time = intent.create_time, started,
         done = std::move(done)](StatusOr<commserv::DrBackupResult> result) mutable {
          metrics_.ObserveTriggerDuration(
              cell->name, std::chrono::duration<double>(clock_.Monotonic() - started).count());
          // Back to the blocking pool: the registry write fsyncs.
          blocking_.Post([this, cell, request = std::move(request), intent_id, intent_time,
                          result = std::move(result), done = std::move(done)]() mutable {
            Finish(cell, request, intent_id, intent_time, std::move(result), std::move(done));
          });
        });
  });
}

void Orchestrator::Finish(const CellPtr& cell, const TriggerRequest& request, int64_t intent_id,
                          TimePoint intent_time, StatusOr<commserv::DrBackupResult> result,
                          TriggerCallback done) {
  const CommCell& cc = *cell;
  if (!result.ok()) {
    Status s = Annotate(result.status(), cc.name);
    if (OutcomeUnknown(s)) {
      // The CommServe may have started a job: keep the intent open for the tracker to
      // reconcile, and say so.
      Status unknown(s.code(),
                     s.message() +
                         " (the request may have reached the CommServe; drgate will reconcile "
                         "it: retry with the same request_id, never without one)",
                     s.reason());
      for (const auto& [k, v] : s.metadata()) unknown.With(k, v);
      s = unknown;
    } else {
      // A known outcome: nothing started upstream. An intent left open would only be
      // reconciled (and found empty) later, so a failure to close it loses nothing.
      if (Status r = store_.ResolveIntent(intent_id, "failed: " + s.ToString()); !r.ok()) {
        spdlog::warn("cannot close trigger intent {}: {}", intent_id, r.ToString());
      }
      if (s.reason() == Reason::kDrJobAlreadyRunning && cc.on_active == OnActive::kReuse) {
        ReuseActive(cc, request, s, std::move(done));
        return;
      }
    }
    metrics_.CountTrigger(cc.name, request.backup_type,
                          IsRefusal(s) ? TriggerResult::kRejected : TriggerResult::kFailed);
    metrics_.CountTriggerFailure(cc.name, s);
    spdlog::info(
        AuditMessage("trigger", WithError({{"commcell", cc.name},
                                           {"type", BackupTypeName(request.backup_type)},
                                           {"request_id", request.request_id},
                                           {"caller", request.requested_by},
                                           {"outcome", IsRefusal(s) ? "rejected" : "failed"}},
                                          s)));
    Complete(cc.name, request, s, std::move(done));
    return;
  }
  const TimePoint now = clock_.Now();
  std::vector<Job> jobs;
  for (const auto& id : result->job_ids) {
    Job job = SubmittedJob(cc.name, id, request, now);
    job.task_id = result->task_id;
    // The tracker may have adopted this job for this very trigger (an answer slower than
    // intent_grace): keep what it recorded rather than moving the job back to SUBMITTED. A record
    // older than the intent is someone else's and is replaced.
    if (auto known = store_.GetJob(cc.name, id); known.ok() && known->create_time >= intent_time) {
      job = std::move(*known);
    }
    jobs.push_back(std::move(job));
  }
  if (Status s = store_.PutJobs(jobs, intent_id); !s.ok()) {
    // The intent stays open: the tracker adopts the job once the registry works again.
    Status err = Status(s.code(),
                        "the CommServe started job " + jobs.front().job_id +
                            " but drgate could not record it yet: " + s.message(),
                        s.reason())
                     .With("commcell", cc.name)
                     .With("job_id", jobs.front().job_id);
    metrics_.CountTrigger(cc.name, request.backup_type, TriggerResult::kFailed);
    metrics_.CountTriggerFailure(cc.name, err);
    Complete(cc.name, request, err, std::move(done));
    return;
  }
  metrics_.CountTrigger(cc.name, request.backup_type, TriggerResult::kSubmitted);
  spdlog::info(AuditMessage("trigger", {{"commcell", cc.name},
                                        {"type", BackupTypeName(request.backup_type)},
                                        {"request_id", request.request_id},
                                        {"caller", request.requested_by},
                                        {"job", jobs.front().job_id},
                                        {"task", std::to_string(jobs.front().task_id)},
                                        {"outcome", "submitted"}}));
  tracker_.Poke();
  Complete(cc.name, request, TriggerOutcome{std::move(jobs.front()), false}, std::move(done));
}

void Orchestrator::ReuseActive(const CommCell& cc, const TriggerRequest& request,
                               const Status& refusal, TriggerCallback done) {
  auto it = refusal.metadata().find("active_job_id");
  if (it == refusal.metadata().end()) {
    // The CommServe did not name the job: nothing to reuse.
    metrics_.CountTrigger(cc.name, request.backup_type, TriggerResult::kRejected);
    metrics_.CountTriggerFailure(cc.name, refusal);
    Complete(cc.name, request, refusal, std::move(done));
    return;
  }
  auto known = store_.GetJob(cc.name, it->second);
  if (known.ok()) {
    metrics_.CountTrigger(cc.name, request.backup_type, TriggerResult::kDeduplicated);
    Complete(cc.name, request, TriggerOutcome{std::move(*known), true}, std::move(done));
    return;
  }
  // A DR job drgate did not start (a schedule, another tool): record it so the caller can
  // follow it, with this request's id so a retry finds it.
  Job job = SubmittedJob(cc.name, it->second, request, clock_.Now());
  if (Status s = store_.PutJobs({job}); !s.ok()) {
    Complete(cc.name, request, Annotate(s, cc.name), std::move(done));
    return;
  }
  metrics_.CountTrigger(cc.name, request.backup_type, TriggerResult::kDeduplicated);
  tracker_.Poke();
  Complete(cc.name, request, TriggerOutcome{std::move(job), true}, std::move(done));
}

void Orchestrator::AwaitOtherReplica(CellPtr cell, TriggerRequest request,
                                     std::chrono::steady_clock::time_point deadline,
                                     TriggerCallback done) {
  spdlog::debug("trigger commcell={} request_id=\"{}\": in flight on another replica, waiting",
                cell->name, request.request_id);
  {
    std::lock_guard lock(adopt_mu_);
    if (!adopt_stopping_) {
      adoptions_.push_back(
          Adoption{std::move(cell), std::move(request), deadline, std::move(done)});
      if (!adopter_.joinable()) adopter_ = std::thread([this] { AdoptLoop(); });
      adopt_cv_.notify_all();
      return;
    }
  }
  Complete(
      cell->name, request,
      Annotate(Unavailable("drgate is shutting down", Reason::kTriggerOutcomePending), cell->name),
      std::move(done));
}

void Orchestrator::AdoptLoop() {
  std::unique_lock lock(adopt_mu_);
  for (;;) {
    adopt_cv_.wait_for(lock, options_.shared_poll, [this] { return adopt_stopping_; });
    if (adopt_stopping_) return;
    std::vector<Adoption> waiting;
    waiting.swap(adoptions_);
    lock.unlock();
    std::vector<Adoption> still;
    for (Adoption& a : waiting) {
      const std::string& name = a.cell->name;
      const std::string& rid = a.request.request_id;
      // Intents first, then the job: the other replica records its job and closes its intent in
      // one transaction, so an intent seen closed with no job seen afterwards means that trigger
      // failed (nothing was started).
      auto intents = store_.FindOpenIntent(name, rid);
      const bool open = intents.ok() && intents->has_value();
      auto job = store_.FindByRequestId(name, rid);
      StatusOr<TriggerOutcome> outcome = Status();
      bool answered = true;
      if (job.ok() && job->has_value() &&
          !SameParameters(a.request, (*job)->backup_type, (*job)->compression).ok()) {
        outcome =
            Annotate(SameParameters(a.request, (*job)->backup_type, (*job)->compression), name);
      } else if (job.ok() && job->has_value()) {
        metrics_.CountTrigger(name, (*job)->backup_type, TriggerResult::kDeduplicated);
        spdlog::info(AuditMessage("trigger", {{"commcell", name},
                                              {"type", BackupTypeName(a.request.backup_type)},
                                              {"request_id", rid},
                                              {"caller", a.request.requested_by},
                                              {"job", (*job)->job_id},
                                              {"outcome", "deduplicated"},
                                              {"note", "triggered by another replica"}}));
        outcome = TriggerOutcome{std::move(**job), true};
      } else if (intents.ok() && job.ok() && !open) {
        outcome = Annotate(Unavailable("a concurrent trigger with request_id \"" + rid +
                                           "\" on another drgate replica failed before starting "
                                           "a job; retry with the same request_id",
                                       Reason::kConcurrentTriggerFailed),
                           name);
      } else if (clock_.Monotonic() >= a.deadline) {
        outcome = Annotate(
            Unavailable("an earlier trigger with request_id \"" + rid +
                            "\" may have reached the CommServe and is being reconciled; retry "
                            "later with the same request_id",
                        Reason::kTriggerOutcomePending),
            name);
      } else {
        answered = false;
      }
      if (!answered) {
        still.push_back(std::move(a));
        continue;
      }
      blocking_.Post([this, a = std::move(a), outcome = std::move(outcome)]() mutable {
        Complete(a.cell->name, a.request, std::move(outcome), std::move(a.done));
      });
    }
    lock.lock();
    for (Adoption& a : still) adoptions_.push_back(std::move(a));
  }
}

void Orchestrator::Complete(const std::string& commcell, const TriggerRequest& request,
                            StatusOr<TriggerOutcome> outcome, TriggerCallback first) {
  std::vector<Waiter> duplicates;
  {
    std::lock_guard lock(mu_);
    auto& in_flight = request.request_id.empty() ? coalesced_ : in_flight_;
    auto it = in_flight.find({commcell, CoalesceKey(request)});
    if (it != in_flight.end()) {
      duplicates = std::move(it->second);
      in_flight.erase(it);
    }
  }
  for (auto& dup : duplicates) {
    if (!outcome.ok()) {
      dup.done(outcome.status());
      continue;
    }
    if (Status s = SameParameters(dup.request, outcome->job.backup_type, outcome->job.compression);
        !s.ok()) {
      dup.done(Annotate(s, commcell));
      continue;
    }
    metrics_.CountTrigger(commcell, outcome->job.backup_type, TriggerResult::kDeduplicated);
    dup.done(TriggerOutcome{outcome->job, true});
  }
  first(std::move(outcome));
}

void Orchestrator::EnsureRecentBackup(TriggerRequest request, std::chrono::milliseconds max_age,
                                      TriggerCallback done, std::optional<JobOrigin> origin) {
  auto cell = Resolve(request.commcell);
  if (!cell.ok()) {
    blocking_.Post([done = std::move(done), s = cell.status()] { done(s); });
    return;
  }
  const std::string name = (*cell)->name;
  if (max_age.count() <= 0) {
    blocking_.Post([done = std::move(done), s = Annotate(InvalidArgument("max_age must be positive",
                                                                         Reason::kInvalidMaxAge),
                                                         name)] { done(s); });
    return;
  }
  request.commcell = name;
  auto shared = std::make_shared<std::pair<TriggerRequest, TriggerCallback>>(std::move(request),
                                                                             std::move(done));
  Read(
      name,
      [this, name, max_age, origin, shared] {
        TriggerRequest& request = shared->first;
        TriggerCallback& done = shared->second;
        // "Completed w/ one or more errors" is a success with errors (the CommServe's own
        // reading), as for drgate_backup_last_success_timestamp_seconds.
        auto recent =
            store_.LatestJob(name, request.backup_type,
                             {JobState::kSucceeded, JobState::kSucceededWithErrors}, origin);
        if (recent.ok() && recent->has_value()) {
          const Job& job = **recent;
          const TimePoint finished = job.end_time.value_or(job.create_time);  // as LatestJob
          // Saturating: a max_age reaching before the clock's range accepts any success (plain
          // subtraction overflowed there and refused them).
          if (finished >= SaturatingSub(clock_.Now(), max_age)) {
            metrics_.CountTrigger(name, request.backup_type, TriggerResult::kDeduplicated);
            done(TriggerOutcome{std::move(**recent), true});
            return;
          }
        }
        auto running = store_.LatestJob(
            name, request.backup_type,
            {JobState::kSubmitted, JobState::kQueued, JobState::kRunning, JobState::kSuspended},
            origin);
        if (!recent.ok() || !running.ok()) {
          done(Annotate(!recent.ok() ? recent.status() : running.status(), name));
          return;
        }
        if (running->has_value()) {
          metrics_.CountTrigger(name, request.backup_type, TriggerResult::kDeduplicated);
          done(TriggerOutcome{std::move(**running), true});
          return;
        }
        TriggerBackup(std::move(request), std::move(done));
      },
      [this, name, shared](Status s) { shared->second(Annotate(s, name)); });
}

void Orchestrator::CancelJob(const std::string& commcell, const std::string& job_id,
                             const std::string& requested_by,
                             std::function<void(StatusOr<Job>)> done) {
  auto cell = Resolve(commcell);
  if (!cell.ok()) {
    blocking_.Post([done = std::move(done), s = cell.status()] { done(s); });
    return;
  }
  auto shared = std::make_shared<std::function<void(StatusOr<Job>)>>(std::move(done));
  const std::string name = (*cell)->name;
  Read(
      name,
      [this, cell_ptr = *cell, job_id, requested_by, shared] {
        KillJob(cell_ptr, job_id, requested_by, std::move(*shared));
      },
      [this, name, shared](Status s) { (*shared)(Annotate(s, name)); });
}

void Orchestrator::KillJob(CellPtr cell_ptr, const std::string& job_id,
                           const std::string& requested_by,
                           std::function<void(StatusOr<Job>)> done) {
  const CommCell& cc = *cell_ptr;
  auto job = ReadJob(cc, job_id);
  if (!job.ok()) {
    done(job.status());
    return;
  }
  if (IsTerminal(job->state) || job->state == JobState::kUnknown) {
    done(Annotate(FailedPrecondition(
                      "job " + job_id + " has already finished (" + JobStateName(job->state) + ")",
                      Reason::kJobAlreadyFinished),
                  cc.name));
    return;
  }
  cc.client->KillJob(job_id, [this, cell_ptr, job = *job, requested_by,
                              done = std::move(done)](Status s) mutable {
    const CommCell& cc = *cell_ptr;
    spdlog::info(AuditMessage("cancel", WithError({{"commcell", cc.name},
                                                   {"job", job.job_id},
                                                   {"caller", requested_by},
                                                   {"outcome", s.ok() ? "cancelled" : "failed"}},
                                                  s)));
    if (!s.ok()) {
      blocking_.Post([done = std::move(done), s = Annotate(s, cc.name)] { done(s); });
      return;
    }
    // Reflect the kill: read the job back from the CommServe.
    cc.client->GetJob(
        job.job_id, [this, job, done = std::move(done)](
                        StatusOr<std::optional<commserv::JobSummary>> summary) mutable {
          blocking_.Post(
              [this, job, summary = std::move(summary), done = std::move(done)]() mutable {
                if (summary.ok() && summary->has_value()) {
                  // Written for this caller, not as leader: not fenced by the lease, so a
                  // follower replica records the kill it was asked for.
                  StatusOr<Job> applied = [&] {
                    FencedJobStore::CallerWrites for_caller;
                    return tracker_.Apply(job, **summary);
                  }();
                  done(std::move(applied));
                  return;
                }
                tracker_.Poke();
                done(job);
              });
        });
  });
}

StatusOr<Job> Orchestrator::ReadJob(const CommCell& cell, const std::string& job_id) {
  if (job_id.empty()) {
    return Annotate(InvalidArgument("job_id is required", Reason::kJobIdRequired), cell.name);
  }
  auto job = store_.GetJob(cell.name, job_id);
  if (!job.ok()) return Annotate(job.status(), cell.name);
  return job;
}

void Orchestrator::GetJob(const std::string& commcell, const std::string& job_id,
                          std::function<void(StatusOr<Job>)> done) {
  auto cell = Resolve(commcell);
  if (!cell.ok()) {
    // An unknown CommCell is answered from the read pool too, never on the caller's thread,
    // under the key of reads across CommCells (no CommCell is named ""), so unknown names make
    // no keys.
    auto shared = std::make_shared<std::function<void(StatusOr<Job>)>>(std::move(done));
    Read(
        "", [status = cell.status(), shared] { (*shared)(status); },
        [this, shared](Status s) { (*shared)(Annotate(s, "")); });
    return;
  }
  const Key key{(*cell)->name, job_id};
  {
    std::lock_guard lock(job_reads_mu_);
    auto [it, first] = queued_job_reads_.try_emplace(key);
    it->second.push_back(std::move(done));
    if (!first) return;  // joins the read queued for this job
  }
  // Every caller waiting when the read starts gets its answer; later ones queue a read of their
  // own.
  auto take = [this, key] {
    std::lock_guard lock(job_reads_mu_);
    auto node = queued_job_reads_.extract(key);
    return node ? std::move(node.mapped()) : std::vector<std::function<void(StatusOr<Job>)>>{};
  };
  Read(
      key.first,
      [this, cell = *cell, job_id, take] {
        const auto waiters = take();
        const StatusOr<Job> job = ReadJob(*cell, job_id);
        for (const auto& w : waiters) w(job);
      },
      [this, key, take](Status s) {
        const Status refused = Annotate(s, key.first);
        for (const auto& w : take()) w(refused);
      });
}

void Orchestrator::ListJobs(JobFilter filter, int page_size, std::string page_token,
                            std::function<void(StatusOr<JobPage>)> done) {
  auto shared = std::make_shared<std::function<void(StatusOr<JobPage>)>>(std::move(done));
  Status resolved;
  if (!filter.commcell.empty()) {
    if (auto cell = Resolve(filter.commcell); !cell.ok()) resolved = cell.status();
  }
  // Pages of every CommCell (and answers about unknown ones) take their turns under the empty
  // key (no CommCell is named "").
  const std::string key = resolved.ok() ? filter.commcell : "";
  Read(
      key,
      [this, resolved, filter = std::move(filter), page_size, page_token = std::move(page_token),
       shared] {
        if (!resolved.ok()) {
          (*shared)(resolved);
          return;
        }
        auto page = store_.ListJobs(filter, page_size, page_token);
        if (!page.ok()) {
          (*shared)(Annotate(page.status(), filter.commcell));
          return;
        }
        (*shared)(std::move(page));
      },
      [this, key, shared](Status s) { (*shared)(Annotate(s, key)); });
}

std::vector<CommCellInfo> Orchestrator::ListCommCells() const {
  std::vector<CommCellInfo> out;
  std::shared_ptr<const std::vector<CommCell>> cells;
  {
    std::lock_guard lock(cells_mu_);
    cells = commcells_;
  }
  for (const auto& c : *cells) {
    CommCellInfo info{c.name, c.url, c.client->reachability(), std::nullopt};
    if (options_.dr_options != nullptr) info.dr_backup_options = options_.dr_options->Get(c.name);
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace drgate::jobs
