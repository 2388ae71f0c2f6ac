#include "plugin/status_mapping.h"

#include <cstdlib>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace drgate::plugin {

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // drgate's StatusCode values are the canonical codes, as grpc::StatusCode's are.
  const auto code = static_cast<grpc::StatusCode>(static_cast<int>(status.code()));
  google::rpc::ErrorInfo info;
  info.set_reason(status.reason().empty() ? StatusCodeName(status.code()) : status.reason());
  info.set_domain(kErrorDomain);
  for (const auto& [key, value] : status.metadata()) (*info.mutable_metadata())[key] = value;

  google::rpc::Status rich;
  rich.set_code(static_cast<int>(code));
  rich.set_message(status.message());
  rich.add_details()->PackFrom(info);
  // "retry_after_ms" (e.g. RATE_LIMITED) also becomes a google.rpc.RetryInfo, which gRPC
  // clients and retry policies understand.
  if (auto it = status.metadata().find("retry_after_ms"); it != status.metadata().end()) {
    char* end = nullptr;
    const long long ms = std::strtoll(it->second.c_str(), &end, 10);
    if (end != it->second.c_str() && *end == '\0' && ms >= 0) {
      google::rpc::RetryInfo retry;
      retry.mutable_retry_delay()->set_seconds(ms / 1000);
      retry.mutable_retry_delay()->set_nanos(static_cast<int>((ms % 1000) * 1000000));
      rich.add_details()->PackFrom(retry);
    }
  }
  return grpc::Status(code, status.message(), rich.SerializeAsString());
}

}  // namespace drgate::plugin
