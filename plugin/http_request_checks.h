#pragma once

// What the HTTP/JSON gateway (plugin/http_gateway.h) checks of a request before any of it reaches
// gRPC: the framing RFC 9112 requires of a server, and every header whose value the gateway
// forwards into a gRPC call. This is the one place a peer's header bytes are judged: gRPC asserts
// (and ends the process) on a metadata value it cannot carry, and logs the value when it does, so
// nothing from a header is handed to gRPC before it passed here.
//
// Pure functions: no I/O, no state; safe from any thread.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/common/status.h"

namespace drgate::plugin {

// Whether gRPC can carry `value` as the value of an ASCII (non "-bin") metadata key: every byte
// printable ASCII, 0x20 to 0x7E (gRPC's own rule for such values; a tab, a control byte or any
// byte of 0x80 and above is not).
bool IsLegalMetadataValue(std::string_view value);

// `value` with every byte IsLegalMetadataValue refuses written as \xNN, and backslashes as \\:
// for text of our own making (a client certificate's identity) that goes into metadata.
std::string EscapeMetadataValue(std::string_view value);

// The headers of one request that the gateway forwards, as the client sent them: each vector
// holds every value of that header name (HTTP allows a name to repeat).
struct ForwardedHeaderValues {
  std::vector<std::string_view> authorization;
  std::vector<std::string_view> idempotency_key;
  std::vector<std::string_view> grpc_timeout;
};

// What the gateway may forward, once checked.
struct ForwardedHeaders {
  std::optional<std::string> authorization;  // the whole value, "Bearer <token>"
  std::optional<std::string> idempotency_key;
  std::optional<std::chrono::nanoseconds> timeout;  // from grpc-timeout
};

// Checks every forwarded header. Errors (never echoing a value, which may be a secret):
// - Authorization given twice, or with a byte gRPC cannot carry: UNAUTHENTICATED, reason
//   INVALID_TOKEN (HTTP 401), as a token that matches none would be;
// - Idempotency-Key given twice, empty, or not 1-36 printable ASCII characters without spaces
//   (the request_id rule): INVALID_ARGUMENT, reason INVALID_REQUEST_ID, naming the header;
// - grpc-timeout given twice or not gRPC's form (1-8 digits and one of H M S m u n):
//   INVALID_ARGUMENT, reason INVALID_HEADER, naming the header.
StatusOr<ForwardedHeaders> CheckForwardedHeaders(const ForwardedHeaderValues& headers);

// The framing facts of a parsed request head that RFC 9112 makes a server refuse.
struct RequestFraming {
  unsigned version = 11;                            // 10 or 11
  std::vector<std::string_view> host;               // every Host value
  std::vector<std::string_view> transfer_encoding;  // every Transfer-Encoding value
  bool has_content_length = false;
};

// A refusal of the framing: the HTTP status (400, or 501 for a transfer coding drgate does not
// implement) and why.
struct FramingRefusal {
  int http_status;
  std::string message;
};

// nullopt when the request may be served. Refused: HTTP/1.1 without exactly one Host (400); both
// Transfer-Encoding and Content-Length (400, a request smuggling vector); a Transfer-Encoding
// other than exactly "chunked" (501, as RFC 9112 section 6.1 asks of a server that does not
// understand a coding); Transfer-Encoding on HTTP/1.0 (400).
std::optional<FramingRefusal> CheckFraming(const RequestFraming& framing);

// gRPC's timeout header format: 1-8 digits and a unit (H, M, S, m, u, n), at most
// kMaxGrpcTimeout; nullopt otherwise.
std::optional<std::chrono::nanoseconds> ParseGrpcTimeout(std::string_view text);

// The longest deadline a grpc-timeout header sets; longer ones are cut to it.
inline constexpr std::chrono::nanoseconds kMaxGrpcTimeout = std::chrono::hours(24 * 365);

}  // namespace drgate::plugin
