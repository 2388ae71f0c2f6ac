#pragma once

// The edge of the error model: drgate::Status -> grpc::Status with a google.rpc.Status in the
// binary error details, carrying a google.rpc.ErrorInfo (domain "drgate", the UPPER_SNAKE reason,
// the status metadata: commcell, phase, http_status, ...). Metadata "retry_after_ms" is also sent
// as a google.rpc.RetryInfo. Echoed values are bounded (core/common/echo.h): metadata values over
// 128 bytes are abbreviated ("…(N bytes)"), in the message too, and the message is cut at 1 KiB.

#include <grpcpp/support/status.h>

#include "core/common/status.h"

namespace drgate::plugin {

inline constexpr char kErrorDomain[] = "drgate";

grpc::Status ToGrpcStatus(const Status& status);

}  // namespace drgate::plugin
