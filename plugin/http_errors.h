#pragma once

// How a gRPC outcome reads over HTTP/JSON: the HTTP status of each gRPC code (the table
// grpc-gateway uses, so clients written for other gRPC-gateway services read drgate's alike), the
// google.rpc.Status body with its details (ErrorInfo, RetryInfo) as JSON with "@type", and the
// Retry-After header a RetryInfo implies.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <optional>
#include <string>

namespace drgate::plugin {

// 400, 401, 403, 404, 409, 429, 499, 500, 501, 503, 504; 200 for OK.
int HttpStatusOf(grpc::StatusCode code);

// {"code": 5, "message": "...", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
// ...}]}: the google.rpc.Status drgate attached to `status` (its rich error details), or one made
// of the code and message when none is attached.
std::string ErrorBody(const grpc::Status& status);

// Whole seconds to wait (rounded up, at least 1) from a google.rpc.RetryInfo detail of
// `status`; nullopt when it has none.
std::optional<int64_t> RetryAfterSeconds(const grpc::Status& status);

}  // namespace drgate::plugin
