#include "plugin/http_errors.h"

#include <google/protobuf/util/json_util.h>
#include <google/rpc/error_details.pb.h>
#include <google/rpc/status.pb.h>

namespace drgate::plugin {
namespace {

google::rpc::Status RichStatus(const grpc::Status& status) {
  google::rpc::Status rich;
  if (!status.error_details().empty() && rich.ParseFromString(status.error_details())) {
    return rich;
  }
  rich.Clear();
  rich.set_code(static_cast<int>(status.error_code()));
  rich.set_message(status.error_message());
  return rich;
}

}  // namespace

int HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::CANCELLED: return 499;
    case grpc::StatusCode::UNKNOWN: return 500;
    case grpc::StatusCode::INVALID_ARGUMENT: return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::ALREADY_EXISTS: return 409;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::FAILED_PRECONDITION: return 400;
    case grpc::StatusCode::ABORTED: return 409;
    case grpc::StatusCode::OUT_OF_RANGE: return 400;
    case grpc::StatusCode::UNIMPLEMENTED: return 501;
    case grpc::StatusCode::INTERNAL: return 500;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    case grpc::StatusCode::DATA_LOSS: return 500;
    default: return 500;
  }
}

std::string ErrorBody(const grpc::Status& status) {
  const google::rpc::Status rich = RichStatus(status);
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = false;
  if (!google::protobuf::util::MessageToJsonString(rich, &json, options).ok()) {
    // A detail of a type this process does not know: the code and message alone.
    google::rpc::Status plain;
    plain.set_code(rich.code());
    plain.set_message(rich.message());
    json.clear();
    (void)google::protobuf::util::MessageToJsonString(plain, &json, options);
  }
  return json;
}

std::optional<int64_t> RetryAfterSeconds(const grpc::Status& status) {
  const google::rpc::Status rich = RichStatus(status);
  for (const auto& detail : rich.details()) {
    google::rpc::RetryInfo retry;
    if (detail.UnpackTo(&retry)) {
      const auto& d = retry.retry_delay();
      const int64_t seconds = d.seconds() + (d.nanos() > 0 ? 1 : 0);
      return seconds < 1 ? 1 : seconds;
    }
  }
  return std::nullopt;
}

}  // namespace drgate::plugin
