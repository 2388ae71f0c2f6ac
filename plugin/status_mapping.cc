#include "plugin/status_mapping.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/common/echo.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace drgate::plugin {
namespace {

// The message with every long metadata value it repeats abbreviated in place (so "job '<60,000
// characters>' was not started ..." keeps its end), then cut to kMaxErrorMessageBytes.
std::string BoundedMessage(const Status& status) {
  std::string message = status.message();
  std::vector<const std::string*> long_values;
  for (const auto& [key, value] : status.metadata()) {
    if (value.size() > kMaxEchoBytes) long_values.push_back(&value);
  }
  // Longest first, so a value that contains another is replaced whole.
  std::sort(long_values.begin(), long_values.end(),
            [](const std::string* a, const std::string* b) { return a->size() > b->size(); });
  for (const std::string* value : long_values) {
    const std::string shorter = Abbreviate(*value);
    for (auto at = message.find(*value); at != std::string::npos;
         at = message.find(*value, at + shorter.size())) {
      message.replace(at, value->size(), shorter);
    }
  }
  return Abbreviate(message, kMaxErrorMessageBytes);
}

}  // namespace

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // drgate's StatusCode values are the canonical codes, as grpc::StatusCode's are.
  const auto code = static_cast<grpc::StatusCode>(static_cast<int>(status.code()));
  google::rpc::ErrorInfo info;
  info.set_reason(status.reason() == Reason::kNone ? StatusCodeName(status.code())
                                                   : ReasonName(status.reason()));
  info.set_domain(kErrorDomain);
  // Values may echo what the caller sent (a 60,000-character job id): abbreviated, so the whole
  // status stays far below the 8 KiB of metadata a default gRPC client accepts.
  for (const auto& [key, value] : status.metadata()) {
    (*info.mutable_metadata())[Abbreviate(key)] = Abbreviate(value);
  }
  const std::string message = BoundedMessage(status);

  google::rpc::Status rich;
  rich.set_code(static_cast<int>(code));
  rich.set_message(message);
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
  return grpc::Status(code, message, rich.SerializeAsString());
}

}  // namespace drgate::plugin
