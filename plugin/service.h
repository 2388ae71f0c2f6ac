#pragma once

// DrBackupService on gRPC's callback API. Thin: it validates the shape of requests, translates
// to core types, lets core/jobs decide, and maps the answer back. No gRPC thread waits on the
// CommServe: TriggerBackup finishes its reactor from the orchestrator's callback.

#include <grpcpp/grpcpp.h>

#include "core/jobs/orchestrator.h"
#include "core/jobs/watch_hub.h"
#include "drgate/v1/drgate.grpc.pb.h"

namespace drgate::plugin {

// The class is thread-safe. `orchestrator` must outlive the service and every call in flight.
class DrBackupServiceImpl final : public v1::DrBackupService::CallbackService {
 public:
  DrBackupServiceImpl(jobs::Orchestrator& orchestrator, jobs::WatchHub& hub)
      : orchestrator_(orchestrator), hub_(hub) {}

  grpc::ServerUnaryReactor* TriggerBackup(grpc::CallbackServerContext* context,
                                          const v1::TriggerBackupRequest* request,
                                          v1::TriggerBackupResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerWriteReactor<v1::Job>* WatchJob(grpc::CallbackServerContext* context,
                                              const v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* EnsureRecentBackup(grpc::CallbackServerContext* context,
                                               const v1::EnsureRecentBackupRequest* request,
                                               v1::TriggerBackupResponse* response) override;
  grpc::ServerUnaryReactor* ListCommCells(grpc::CallbackServerContext* context,
                                          const v1::ListCommCellsRequest* request,
                                          v1::ListCommCellsResponse* response) override;

  // Default page size of ListJobs, and the largest one honoured (larger ones are coerced, as
  // AIP-158 asks).
  static constexpr int kDefaultPageSize = 50;
  static constexpr int kMaxPageSize = 1000;

 private:
  jobs::Orchestrator& orchestrator_;
  jobs::WatchHub& hub_;
};

// The caller identity recorded on a job. Until caller authentication lands this is the
// authenticated peer identity when the transport has one, else "anonymous".
std::string CallerIdentity(const grpc::CallbackServerContext& context);

}  // namespace drgate::plugin
