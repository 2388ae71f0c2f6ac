#include "plugin/service.h"

#include "plugin/convert.h"
#include "plugin/status_mapping.h"

namespace drgate::plugin {
namespace {

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

std::string CallerIdentity(const grpc::CallbackServerContext& context) {
  auto* auth = context.auth_context().get();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    auto ids = auth->GetPeerIdentity();
    if (!ids.empty()) return std::string(ids.front().data(), ids.front().size());
  }
  return "anonymous";
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::TriggerBackup(
    grpc::CallbackServerContext* context, const v1::TriggerBackupRequest* request,
    v1::TriggerBackupResponse* response) {
  auto type = FromProto(request->backup_type());
  if (!type.ok()) return Finish(context, type.status());

  jobs::TriggerRequest r;
  r.commcell = request->commcell();
  r.backup_type = *type;
  r.compression = request->compression();
  r.request_id = request->request_id();
  r.requested_by = CallerIdentity(*context);

  auto* reactor = context->DefaultReactor();
  orchestrator_.TriggerBackup(std::move(r),
                              [reactor, response](StatusOr<jobs::TriggerOutcome> outcome) {
                                if (!outcome.ok()) {
                                  reactor->Finish(ToGrpcStatus(outcome.status()));
                                  return;
                                }
                                ToProto(outcome->job, response->mutable_job());
                                response->set_deduplicated(outcome->deduplicated);
                                reactor->Finish(grpc::Status::OK);
                              });
  return reactor;
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                      const v1::GetJobRequest* request,
                                                      v1::Job* response) {
  auto job = orchestrator_.GetJob(request->commcell(), request->job_id());
  if (job.ok()) ToProto(*job, response);
  return Finish(context, job.status());
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                        const v1::ListJobsRequest* request,
                                                        v1::ListJobsResponse* response) {
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
  auto page = orchestrator_.ListJobs(filter, page_size, request->page_token());
  if (page.ok()) {
    for (const auto& job : page->jobs) ToProto(job, response->add_jobs());
    response->set_next_page_token(page->next_page_token);
  }
  return Finish(context, page.status());
}

grpc::ServerUnaryReactor* DrBackupServiceImpl::ListCommCells(
    grpc::CallbackServerContext* context, const v1::ListCommCellsRequest* /*request*/,
    v1::ListCommCellsResponse* response) {
  for (const auto& info : orchestrator_.ListCommCells()) {
    auto* cell = response->add_commcells();
    cell->set_name(info.name);
    cell->set_url(info.url);
    cell->set_reachable(info.reachability.reachable);
    cell->set_last_error(info.reachability.last_error);
    if (info.reachability.contacted) {
      ToProto(info.reachability.last_contact, cell->mutable_last_contact_time());
    }
  }
  return Finish(context, Status::Ok());
}

}  // namespace drgate::plugin
