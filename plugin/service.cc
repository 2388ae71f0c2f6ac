#include "plugin/service.h"

#include "plugin/convert.h"
#include "plugin/status_mapping.h"
#include "plugin/tls.h"

namespace drgate::plugin {
namespace {

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// The orchestrator's answer to a trigger, written into `response` and finishing `reactor`.
jobs::Orchestrator::TriggerCallback AnswerTrigger(grpc::ServerUnaryReactor* reactor,
                                                  v1::TriggerBackupResponse* response) {
  return [reactor, response](StatusOr<jobs::TriggerOutcome> outcome) {
    if (!outcome.ok()) {
      reactor->Finish(ToGrpcStatus(outcome.status()));
      return;
    }
    ToProto(outcome->job, response->mutable_job());
    response->set_deduplicated(outcome->deduplicated);
    reactor->Finish(grpc::Status::OK);
  };
}

// The caller's gRPC deadline; nullopt when it set none (grpc reports that as the far future).
std::optional<TimePoint> CallerDeadline(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return std::nullopt;
  }
  return deadline;
}

}  // namespace

std::string VerifiedCertificateIdentity(const grpc::CallbackServerContext& context) {
  auto* auth = context.auth_context().get();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    // A verified client certificate (mutual TLS): its URI or DNS name, else its CN.
    if (auto id = PeerCertificateIdentity(*auth); !id.empty()) return id;
    auto ids = auth->GetPeerIdentity();
    if (!ids.empty()) return std::string(ids.front().data(), ids.front().size());
  }
  return "";
}

Status DrBackupServiceImpl::Admit(const grpc::CallbackServerContext& context, Method method,
                                  std::string_view commcell, Principal* principal) const {
  Gate gate;
  {
    std::lock_guard lock(gate_mu_);
    gate = gate_;
  }
  return gate.Admit(context, method, commcell, principal);
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::TriggerBackup(
    grpc::CallbackServerContext* context, const v1::TriggerBackupRequest* request,
    v1::TriggerBackupResponse* response) {
  Principal caller;
  if (Status s = Admit(*context, Method::kTriggerBackup, request->commcell(), &caller); !s.ok()) {
    return Finish(context, s);
  }
  auto type = FromProto(request->backup_type());
  if (!type.ok()) return Finish(context, type.status());

  jobs::TriggerRequest r;
  r.commcell = request->commcell();
  r.backup_type = *type;
  r.compression = request->compression();
  r.request_id = request->request_id();
  r.requested_by = caller.identity;
  r.deadline = CallerDeadline(*context);

  auto* reactor = context->DefaultReactor();
  orchestrator_.TriggerBackup(std::move(r), AnswerTrigger(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                      const v1::GetJobRequest* request,
                                                      v1::Job* response) {
  Principal caller;
  if (Status s = Admit(*context, Method::kGetJob, request->commcell(), &caller); !s.ok()) {
    return Finish(context, s);
  }
  auto job = orchestrator_.GetJob(request->commcell(), request->job_id());
  if (job.ok()) ToProto(*job, response);
  return Finish(context, job.status());
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                        const v1::ListJobsRequest* request,
                                                        v1::ListJobsResponse* response) {
  Principal caller;
  if (Status s = Admit(*context, Method::kListJobs, request->commcell(), &caller); !s.ok()) {
    return Finish(context, s);
  }
  if (request->page_size() < 0) {
    return Finish(context, InvalidArgument("page_size must not be negative", "INVALID_PAGE_SIZE"));
  }
  auto state = FilterFromProto(request->state());
  if (!state.ok()) return Finish(context, state.status());
  int page_size = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  if (page_size > kMaxPageSize) page_size = kMaxPageSize;

  JobFilter filter;
  filter.commcell = request->commcell();
  filter.state = *state;
  if (request->backup_type() != v1::BACKUP_TYPE_UNSPECIFIED) {
    auto type = FromProto(request->backup_type());
    if (!type.ok()) return Finish(context, type.status());
    filter.backup_type = *type;
  }
  if (request->has_created_after()) filter.created_after = FromProto(request->created_after());
  if (request->has_created_before()) filter.created_before = FromProto(request->created_before());
  auto origin = FilterFromProto(request->origin());
  if (!origin.ok()) return Finish(context, origin.status());
  filter.origin = *origin;
  auto page = orchestrator_.ListJobs(filter, page_size, request->page_token());
  if (page.ok()) {
    for (const auto& job : page->jobs) ToProto(job, response->add_jobs());
    response->set_next_page_token(page->next_page_token);
  }
  return Finish(context, page.status());
}

namespace {

// One WatchJob stream: the current state first, then every change the tracker publishes, until
// a state that will not change any more. Subscribes before reading the current state so no change
// falls between the two; writes one message at a time and keeps only the newest pending one (a
// slow reader sees the latest state, never a backlog).
class WatchReactor final : public grpc::ServerWriteReactor<v1::Job> {
 public:
  WatchReactor(jobs::Orchestrator& orchestrator, jobs::WatchHub& hub, std::string commcell,
               std::string job_id)
      : hub_(hub) {
    auto first = orchestrator.GetJob(commcell, job_id);
    if (!first.ok()) {
      Finish(ToGrpcStatus(first.status()));
      return;
    }
    // The hub keeps a shared reference to the state, not to the reactor, which may be gone.
    handle_ = hub_.Subscribe(first->commcell, first->job_id,
                             [state = state_](const Job& job) { state->Offer(job); });
    state_->reactor = this;
    // Re-read after subscribing: a change between GetJob and Subscribe is not lost.
    auto current = orchestrator.GetJob(commcell, job_id);
    state_->Offer(current.ok() ? *current : *first);
  }

  // A local reference keeps the state alive should Finish run OnDone (and delete this) inline.
  void OnWriteDone(bool ok) override {
    auto state = state_;
    state->WriteDone(ok);
  }
  void OnCancel() override {
    auto state = state_;
    state->Cancel();
  }
  void OnDone() override {
    hub_.Unsubscribe(handle_);
    {
      std::lock_guard lock(state_->mu);
      state_->reactor = nullptr;
    }
    delete this;
  }

 private:
  struct State {
    // Recursive: gRPC may run a reaction inline from StartWrite/Finish on this thread.
    std::recursive_mutex mu;
    WatchReactor* reactor = nullptr;  // guarded by mu; null once the stream is done
    bool writing = false;             // guarded by mu
    bool finished = false;            // guarded by mu
    std::optional<Job> pending;       // guarded by mu
    std::optional<Job> last;          // guarded by mu: the last job written
    v1::Job message;                  // guarded by mu: must live until OnWriteDone

    static bool Final(const Job& job) {
      return IsTerminal(job.state) || job.state == JobState::kUnknown;
    }
    static bool Same(const Job& a, const Job& b) {
      return a.state == b.state && a.percent_complete == b.percent_complete &&
             a.commserv_status == b.commserv_status && a.failure_reason == b.failure_reason &&
             a.start_time == b.start_time && a.end_time == b.end_time;
    }
    void Offer(const Job& job) {
      std::lock_guard lock(mu);
      if (reactor == nullptr || finished) return;
      if (last && (Same(*last, job) || Final(*last))) return;
      pending = job;
      if (!writing) WriteNext();
    }
    // Requires mu.
    void WriteNext() {
      if (!pending) return;
      last = std::move(*pending);
      pending.reset();
      message.Clear();
      ToProto(*last, &message);
      writing = true;
      reactor->StartWrite(&message);
    }
    void WriteDone(bool ok) {
      std::lock_guard lock(mu);
      writing = false;
      if (!ok) {
        Close(grpc::Status(grpc::StatusCode::CANCELLED, "the watcher went away"));
        return;
      }
      if (last && Final(*last)) {
        Close(grpc::Status::OK);
        return;
      }
      WriteNext();
    }
    void Cancel() {
      std::lock_guard lock(mu);
      if (!writing) Close(grpc::Status(grpc::StatusCode::CANCELLED, "the watch was cancelled"));
      // With a write outstanding, OnWriteDone(false) follows and closes.
    }
    // Requires mu.
    void Close(const grpc::Status& status) {
      if (finished || reactor == nullptr) return;
      finished = true;
      reactor->Finish(status);
    }
  };

  jobs::WatchHub& hub_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
  uint64_t handle_ = 0;
};

}  // namespace

namespace {

// A stream that ends at once with `status` (a refused WatchJob).
class RefusedStream final : public grpc::ServerWriteReactor<v1::Job> {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<v1::Job>* DrBackupServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  Principal caller;
  if (Status s = Admit(*context, Method::kWatchJob, request->commcell(), &caller); !s.ok()) {
    return new RefusedStream(ToGrpcStatus(s));
  }
  return new WatchReactor(orchestrator_, hub_, request->commcell(), request->job_id());
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                         const v1::CancelJobRequest* request,
                                                         v1::Job* response) {
  Principal caller;
  if (Status s = Admit(*context, Method::kCancelJob, request->commcell(), &caller); !s.ok()) {
    return Finish(context, s);
  }
  auto* reactor = context->DefaultReactor();
  orchestrator_.CancelJob(request->commcell(), request->job_id(), caller.identity,
                          [reactor, response](StatusOr<Job> job) {
                            if (job.ok()) ToProto(*job, response);
                            reactor->Finish(ToGrpcStatus(job.status()));
                          });
  return reactor;
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::EnsureRecentBackup(
    grpc::CallbackServerContext* context, const v1::EnsureRecentBackupRequest* request,
    v1::TriggerBackupResponse* response) {
  Principal caller;
  if (Status s = Admit(*context, Method::kEnsureRecentBackup, request->commcell(), &caller);
      !s.ok()) {
    return Finish(context, s);
  }
  auto type = FromProto(request->backup_type());
  if (!type.ok()) return Finish(context, type.status());
  if (!request->has_max_age() || request->max_age().seconds() < 0 ||
      (request->max_age().seconds() == 0 && request->max_age().nanos() <= 0)) {
    return Finish(context,
                  InvalidArgument("max_age must be a positive duration", "INVALID_MAX_AGE"));
  }
  const auto max_age = std::chrono::seconds(request->max_age().seconds()) +
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::nanoseconds(request->max_age().nanos()));

  // JOB_ORIGIN_UNSPECIFIED: a DR backup of any origin counts; JOB_ORIGIN_DRGATE: only drgate's.
  auto origin = FilterFromProto(request->origin());
  if (!origin.ok()) return Finish(context, origin.status());

  jobs::TriggerRequest r;
  r.commcell = request->commcell();
  r.backup_type = *type;
  r.request_id = request->request_id();
  r.requested_by = caller.identity;
  r.deadline = CallerDeadline(*context);

  auto* reactor = context->DefaultReactor();
  orchestrator_.EnsureRecentBackup(std::move(r), max_age, AnswerTrigger(reactor, response),
                                   *origin);
  return reactor;
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::ListCommCells(
    grpc::CallbackServerContext* context, const v1::ListCommCellsRequest* /*request*/,
    v1::ListCommCellsResponse* response) {
  Principal caller;
  if (Status s = Admit(*context, Method::kListCommCells, "", &caller); !s.ok()) {
    return Finish(context, s);
  }
  for (const auto& info : orchestrator_.ListCommCells()) {
    if (!caller.MayUse(info.name)) continue;  // a caller sees only the CommCells it may use
    auto* cell = response->add_commcells();
    cell->set_name(info.name);
    cell->set_url(info.url);
    cell->set_reachable(info.reachability.reachable);
    cell->set_last_error(info.reachability.last_error);
    if (info.dr_backup_options) {
      const commserv::DrBackupOptions& o = info.dr_backup_options->options;
      v1::DrBackupOptions* out = cell->mutable_dr_backup_options();
      out->set_destination(o.destination.value_or(""));
      out->set_retained_fulls(o.retained_fulls.value_or(0));
      out->set_network_share(o.network_share.value_or(false));
      out->set_cloud_upload(o.cloud_upload.value_or(false));
      ToProto(info.dr_backup_options->fetch_time, out->mutable_fetch_time());
    }
    if (info.reachability.contacted) {
      ToProto(info.reachability.last_contact, cell->mutable_last_contact_time());
    }
  }
  return Finish(context, Status::Ok());
}

}  // namespace drgate::plugin
