#include "plugin/service.h"

#include "core/jobs/watch_stream.h"
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

Gate DrBackupServiceImpl::CurrentGate() const {
  std::lock_guard lock(gate_mu_);
  return gate_;
}

Status DrBackupServiceImpl::Admit(const grpc::CallbackServerContext& context, Method method,
                                  std::string_view commcell, Principal* principal) const {
  const Gate gate = CurrentGate();
  refusals_.Flush();
  Status s = gate.Admit(context, method, commcell, principal);
  if (!s.ok() && IsWriteMethod(method)) {
    // PERMISSION_DENIED and RATE_LIMITED name the identity; UNAUTHENTICATED has none.
    const auto identity = s.metadata().find("identity");
    return Refused(context, method, commcell,
                   identity == s.metadata().end() ? "" : identity->second, std::move(s));
  }
  return s;
}

Status DrBackupServiceImpl::Refused(const grpc::CallbackServerContext& context, Method method,
                                    std::string_view commcell, const std::string& caller,
                                    Status why) const {
  refusals_.Refused(method, commcell, caller, CurrentGate().PeerOf(context), why);
  return why;
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::TriggerBackup(
    grpc::CallbackServerContext* context, const v1::TriggerBackupRequest* request,
    v1::TriggerBackupResponse* response) {
  Principal caller;
  if (Status s = Admit(*context, Method::kTriggerBackup, request->commcell(), &caller); !s.ok()) {
    return Finish(context, s);
  }
  auto type = FromProto(request->backup_type());
  if (!type.ok()) {
    return Finish(context, Refused(*context, Method::kTriggerBackup, request->commcell(),
                                   caller.identity, type.status()));
  }

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
  auto* reactor = context->DefaultReactor();
  orchestrator_.GetJob(request->commcell(), request->job_id(),
                       [reactor, response](StatusOr<Job> job) {
                         if (job.ok()) ToProto(*job, response);
                         reactor->Finish(ToGrpcStatus(job.status()));
                       });
  return reactor;
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                        const v1::ListJobsRequest* request,
                                                        v1::ListJobsResponse* response) {
  Principal caller;
  if (Status s = Admit(*context, Method::kListJobs, request->commcell(), &caller); !s.ok()) {
    return Finish(context, s);
  }
  if (request->page_size() < 0) {
    return Finish(context,
                  InvalidArgument("page_size must not be negative", Reason::kInvalidPageSize));
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
  if (request->has_created_after()) {
    auto after = FromProto(request->created_after(), "created_after");
    if (!after.ok()) return Finish(context, after.status());
    filter.created_after = *after;
  }
  if (request->has_created_before()) {
    auto before = FromProto(request->created_before(), "created_before");
    if (!before.ok()) return Finish(context, before.status());
    filter.created_before = *before;
  }
  auto origin = FilterFromProto(request->origin());
  if (!origin.ok()) return Finish(context, origin.status());
  filter.origin = *origin;
  auto* reactor = context->DefaultReactor();
  orchestrator_.ListJobs(std::move(filter), page_size, request->page_token(),
                         [reactor, response](StatusOr<JobPage> page) {
                           if (page.ok()) {
                             for (const auto& job : page->jobs) ToProto(job, response->add_jobs());
                             response->set_next_page_token(page->next_page_token);
                           }
                           reactor->Finish(ToGrpcStatus(page.status()));
                         });
  return reactor;
}

namespace {

// One WatchJob stream: gRPC's side of a jobs::WatchStream, which decides what to write and when
// (current state first, every change, the newest pending state only, the end after a final state).
// The reactor only writes, finishes and reports back.
class WatchReactor final : public grpc::ServerWriteReactor<v1::Job>, public jobs::WatchSink {
 public:
  WatchReactor(jobs::Orchestrator& orchestrator, jobs::WatchHub& hub, std::string commcell,
               std::string job_id, EdgeMetrics* metrics, Protocol protocol)
      : metrics_(metrics),
        protocol_(protocol),
        stream_(jobs::WatchStream::Create(
            hub, this,
            [&orchestrator, commcell = std::move(commcell),
             job_id = std::move(job_id)](std::function<void(StatusOr<Job>)> done) {
              orchestrator.GetJob(commcell, job_id, std::move(done));
            })) {
    if (metrics_ != nullptr) metrics_->WatchOpened(protocol_);
  }

  // Reads the job on the read pool; the stream writes from there. gRPC keeps what a reactor
  // starts before the method returned it, so the order does not matter.
  void Start() { stream_->Start(); }

  // jobs::WatchSink. The stream makes one write at a time, so one message suffices; it lives
  // until OnWriteDone.
  void Write(const Job& job) override {
    message_.Clear();
    ToProto(job, &message_);
    StartWrite(&message_);
  }
  void Finish(const Status& status) override {
    grpc::ServerWriteReactor<v1::Job>::Finish(ToGrpcStatus(status));
  }

  // A local reference keeps the stream alive should its Finish run OnDone (and delete this)
  // inline.
  void OnWriteDone(bool ok) override {
    auto stream = stream_;
    stream->WriteDone(ok);
  }
  void OnCancel() override {
    auto stream = stream_;
    stream->Cancel();
  }
  // After Finish: the stream calls the reactor no more (read callbacks still under way hold the
  // stream, not the reactor).
  void OnDone() override {
    if (metrics_ != nullptr) metrics_->WatchClosed(protocol_);
    delete this;
  }

 private:
  EdgeMetrics* const metrics_;
  const Protocol protocol_;
  std::shared_ptr<jobs::WatchStream> stream_;
  v1::Job message_;
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
  const Protocol protocol = CurrentGate().Forwarded(*context) ? Protocol::kHttp : Protocol::kGrpc;
  auto* reactor = new WatchReactor(orchestrator_, hub_, request->commcell(), request->job_id(),
                                   edge_metrics_, protocol);
  reactor->Start();
  return reactor;
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
  if (!type.ok()) {
    return Finish(context, Refused(*context, Method::kEnsureRecentBackup, request->commcell(),
                                   caller.identity, type.status()));
  }
  // Checked: out-of-range seconds or nanos are refused, never wrapped (the orchestrator's
  // "now - max_age" saturates in turn).
  auto max_age = request->has_max_age()
                     ? FromProto(request->max_age(), "max_age", Reason::kInvalidMaxAge)
                     : StatusOr<std::chrono::milliseconds>(std::chrono::milliseconds(0));
  if (!max_age.ok()) {
    return Finish(context, Refused(*context, Method::kEnsureRecentBackup, request->commcell(),
                                   caller.identity, max_age.status()));
  }
  if (max_age->count() <= 0) {
    return Finish(
        context,
        Refused(*context, Method::kEnsureRecentBackup, request->commcell(), caller.identity,
                InvalidArgument("max_age must be a positive duration", Reason::kInvalidMaxAge)));
  }

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
  orchestrator_.EnsureRecentBackup(std::move(r), *max_age, AnswerTrigger(reactor, response),
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
