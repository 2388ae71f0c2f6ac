#include "core/jobs/orchestrator.h"

#include <chrono>

namespace drgate::jobs {
namespace {

Status ValidateRequestId(const std::string& id) {
  if (id.size() > kMaxRequestIdLength) {
    return InvalidArgument(
        "request_id is " + std::to_string(id.size()) + " characters long; at most 36 are allowed",
        "INVALID_REQUEST_ID");
  }
  for (unsigned char c : id) {
    if (c < 0x21 || c > 0x7e) {
      return InvalidArgument("request_id must be printable ASCII without spaces",
                             "INVALID_REQUEST_ID");
    }
  }
  return Status::Ok();
}

bool OutcomeUnknown(const Status& s) {
  auto it = s.metadata().find("request_sent");
  return it != s.metadata().end() && it->second == "true";
}

bool IsRefusal(const Status& s) {
  return s.reason() == "UPSTREAM_REJECTED" || s.reason() == "DR_JOB_ALREADY_RUNNING";
}

}  // namespace

Orchestrator::Orchestrator(std::vector<CommCell> commcells, JobStore& store, Metrics& metrics,
                           const Clock& clock, Executor& blocking)
    : commcells_(std::move(commcells)),
      store_(store),
      metrics_(metrics),
      clock_(clock),
      blocking_(blocking) {
  for (const auto& c : commcells_) metrics_.RegisterCommCell(c.name);
}

Status Orchestrator::Annotate(Status status, const std::string& commcell) const {
  if (!commcell.empty()) status.With("commcell", commcell);
  return status;
}

StatusOr<const CommCell*> Orchestrator::Resolve(const std::string& name) const {
  if (name.empty()) {
    if (commcells_.size() == 1) return &commcells_.front();
    return InvalidArgument(
        "commcell is required: " + std::to_string(commcells_.size()) + " CommCells are configured",
        "COMMCELL_REQUIRED");
  }
  for (const auto& c : commcells_) {
    if (c.name == name) return &c;
  }
  return NotFound("CommCell \"" + name + "\" is not configured", "COMMCELL_NOT_FOUND")
      .With("commcell", name);
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

  if (!request.request_id.empty()) {
    std::unique_lock lock(mu_);
    const Key key{cc.name, request.request_id};
    if (auto it = in_flight_.find(key); it != in_flight_.end()) {
      it->second.push_back(std::move(done));
      return;
    }
    auto existing = store_.FindByRequestId(cc.name, request.request_id);
    if (!existing.ok()) {
      lock.unlock();
      blocking_.Post(
          [done = std::move(done), s = Annotate(existing.status(), cc.name)] { done(s); });
      return;
    }
    if (existing->has_value()) {
      lock.unlock();
      metrics_.CountTrigger(cc.name, (*existing)->backup_type, TriggerResult::kDeduplicated);
      blocking_.Post([done = std::move(done), job = std::move(**existing)]() mutable {
        done(TriggerOutcome{std::move(job), true});
      });
      return;
    }
    in_flight_[key];  // duplicates arriving from now on wait for this trigger
  }

  blocking_.Post([this, &cc, request = std::move(request), done = std::move(done)]() mutable {
    TriggerIntent intent;
    intent.commcell = cc.name;
    intent.backup_type = request.backup_type;
    intent.compression = request.compression;
    intent.request_id = request.request_id;
    intent.requested_by = request.requested_by;
    intent.create_time = clock_.Now();
    auto intent_id = store_.AddIntent(intent);
    if (!intent_id.ok()) {
      // Nothing was sent upstream: a clean failure the caller may retry.
      Status s = Annotate(intent_id.status(), cc.name);
      metrics_.CountTrigger(cc.name, request.backup_type, TriggerResult::kFailed);
      metrics_.CountTriggerFailure(cc.name, s);
      Complete(cc.name, request.request_id, s, std::move(done));
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    commserv::DrBackupRequest upstream{request.backup_type, request.compression};
    cc.client->TriggerDrBackup(upstream, [this, &cc, request, intent_id = *intent_id, started,
                                          done = std::move(done)](
                                             StatusOr<commserv::DrBackupResult> result) mutable {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      metrics_.ObserveTriggerDuration(cc.name, seconds);
      // Back to the blocking pool: the registry write fsyncs.
      blocking_.Post([this, &cc, request = std::move(request), intent_id,
                      result = std::move(result), done = std::move(done)]() mutable {
        if (!result.ok()) {
          Status s = Annotate(result.status(), cc.name);
          if (OutcomeUnknown(s)) {
            // The CommServe may have started a job: keep the intent open for
            // reconciliation and say so.
            s = Status(s.code(),
                       s.message() +
                           " (the request may have reached the CommServe; drgate "
                           "will reconcile it, do not retry without request_id)",
                       s.reason())
                    .With("commcell", cc.name)
                    .With("request_sent", "true");
          } else {
            Status resolved = store_.ResolveIntent(intent_id, "failed: " + s.ToString());
            (void)resolved;  // an open intent is reconciled later; nothing is lost
          }
          metrics_.CountTrigger(cc.name, request.backup_type,
                                IsRefusal(s) ? TriggerResult::kRejected : TriggerResult::kFailed);
          metrics_.CountTriggerFailure(cc.name, s);
          Complete(cc.name, request.request_id, s, std::move(done));
          return;
        }
        const TimePoint now = clock_.Now();
        std::vector<Job> jobs;
        for (const auto& id : result->job_ids) {
          Job job;
          job.commcell = cc.name;
          job.job_id = id;
          job.task_id = result->task_id;
          job.backup_type = request.backup_type;
          job.compression = request.compression;
          job.state = JobState::kSubmitted;
          job.request_id = request.request_id;
          job.requested_by = request.requested_by;
          job.create_time = now;
          job.update_time = now;
          jobs.push_back(std::move(job));
        }
        if (Status s = store_.PutJobs(jobs, intent_id); !s.ok()) {
          Status err = Status(s.code(),
                              "the CommServe started job " + jobs.front().job_id +
                                  " but drgate could not record it: " + s.message(),
                              s.reason())
                           .With("commcell", cc.name)
                           .With("job_id", jobs.front().job_id);
          metrics_.CountTrigger(cc.name, request.backup_type, TriggerResult::kFailed);
          metrics_.CountTriggerFailure(cc.name, err);
          Complete(cc.name, request.request_id, err, std::move(done));
          return;
        }
        metrics_.CountTrigger(cc.name, request.backup_type, TriggerResult::kSubmitted);
        Complete(cc.name, request.request_id, TriggerOutcome{std::move(jobs.front()), false},
                 std::move(done));
      });
    });
  });
}

void Orchestrator::Complete(const std::string& commcell, const std::string& request_id,
                            StatusOr<TriggerOutcome> outcome, TriggerCallback first) {
  std::vector<TriggerCallback> duplicates;
  if (!request_id.empty()) {
    std::lock_guard lock(mu_);
    auto it = in_flight_.find({commcell, request_id});
    if (it != in_flight_.end()) {
      duplicates = std::move(it->second);
      in_flight_.erase(it);
    }
  }
  for (auto& dup : duplicates) {
    if (outcome.ok()) {
      metrics_.CountTrigger(commcell, outcome->job.backup_type, TriggerResult::kDeduplicated);
      dup(TriggerOutcome{outcome->job, true});
    } else {
      dup(outcome.status());
    }
  }
  first(std::move(outcome));
}

StatusOr<Job> Orchestrator::GetJob(const std::string& commcell, const std::string& job_id) {
  auto cell = Resolve(commcell);
  if (!cell.ok()) return cell.status();
  if (job_id.empty()) {
    return Annotate(InvalidArgument("job_id is required", "JOB_ID_REQUIRED"), (*cell)->name);
  }
  auto job = store_.GetJob((*cell)->name, job_id);
  if (!job.ok()) return Annotate(job.status(), (*cell)->name);
  return job;
}

StatusOr<JobPage> Orchestrator::ListJobs(const JobFilter& filter, int page_size,
                                         const std::string& page_token) {
  JobFilter f = filter;
  if (!f.commcell.empty()) {
    auto cell = Resolve(f.commcell);
    if (!cell.ok()) return cell.status();
  }
  auto page = store_.ListJobs(f, page_size, page_token);
  if (!page.ok()) return Annotate(page.status(), f.commcell);
  return page;
}

std::vector<CommCellInfo> Orchestrator::ListCommCells() const {
  std::vector<CommCellInfo> out;
  for (const auto& c : commcells_) {
    out.push_back(CommCellInfo{c.name, c.url, c.client->reachability()});
  }
  return out;
}

}  // namespace drgate::jobs
