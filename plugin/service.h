#pragma once

// DrBackupService on gRPC's callback API. Thin: it validates the shape of requests, translates
// to core types, lets core/jobs decide, and maps the answer back. No gRPC thread waits on the
// CommServe or the registry: every method that needs either hands the work to the orchestrator
// and finishes its reactor from the orchestrator's callback, on a core pool (docs/architecture.md,
// "Threads, blocking and locks").

#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/message_allocator.h>

#include <spdlog/spdlog.h>

#include <mutex>

#include "core/common/clock.h"
#include "core/jobs/orchestrator.h"
#include "core/jobs/watch_hub.h"
#include "drgate/v1/drgate.grpc.pb.h"
#include "plugin/auth.h"
#include "plugin/edge_metrics.h"

namespace drgate::plugin {

// Gives each call's request and response one protobuf arena, freed in one go when the call ends.
// A ListJobs page is a few hundred small messages (each job with four timestamps); on the heap
// they cost as much to build and free as to read from the registry (bench/README.md).
// The class is thread-safe (every call gets its own holder).
template <typename Request, typename Response>
class ArenaMessageAllocator final : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder; }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(Options()) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions Options() {
      google::protobuf::ArenaOptions options;
      options.start_block_size = 8192;  // a page of 50 jobs fits in a few blocks
      options.max_block_size = 65536;
      return options;
    }
    google::protobuf::Arena arena_;
  };
};

// The class is thread-safe. `orchestrator` must outlive the service and every call in flight.
// Every call passes the Gate (authentication, authorisation, rate limit; see plugin/auth.h)
// before anything else; the default Gate is insecure (no authentication, no rate limit).
class DrBackupServiceImpl final : public v1::DrBackupService::CallbackService {
 public:
  // `edge_metrics` (optional) counts the open WatchJob streams by protocol; it must outlive the
  // service.
  DrBackupServiceImpl(jobs::Orchestrator& orchestrator, jobs::WatchHub& hub,
                      Gate gate = {Authenticator::Insecure(), nullptr},
                      EdgeMetrics* edge_metrics = nullptr)
      : orchestrator_(orchestrator),
        hub_(hub),
        edge_metrics_(edge_metrics),
        gate_(std::move(gate)) {
    SetMessageAllocatorFor_ListJobs(&list_jobs_allocator_);
  }

  // Replaces the Gate for calls that start from now on (configuration reload).
  void SetGate(Gate gate) {
    std::lock_guard lock(gate_mu_);
    gate_ = std::move(gate);
  }

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
  // Refused write calls are audited (RefusalAudit).
  Status Admit(const grpc::CallbackServerContext& context, Method method, std::string_view commcell,
               Principal* principal) const;
  // Writes the audit line of a write call refused with `why` (`caller` empty: unauthenticated)
  // and returns `why`.
  Status Refused(const grpc::CallbackServerContext& context, Method method,
                 std::string_view commcell, const std::string& caller, Status why) const;

  Gate CurrentGate() const;

  jobs::Orchestrator& orchestrator_;
  jobs::WatchHub& hub_;
  EdgeMetrics* const edge_metrics_;
  mutable std::mutex gate_mu_;
  Gate gate_;  // guarded by gate_mu_
  ArenaMessageAllocator<v1::ListJobsRequest, v1::ListJobsResponse> list_jobs_allocator_;
  SystemClock clock_;
  mutable RefusalAudit refusals_{clock_, [](const std::string& line) { spdlog::info(line); }};
};

// The identity of the caller's verified client certificate (its first URI SAN, else DNS SAN,
// else CN), or empty when the caller presented none.
std::string VerifiedCertificateIdentity(const grpc::CallbackServerContext& context);

}  // namespace drgate::plugin
