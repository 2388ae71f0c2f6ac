#include "plugin/status_mapping.h"

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
  return grpc::Status(code, status.message(), rich.SerializeAsString());
}

}  // namespace drgate::plugin
