#include "plugin/http_request_checks.h"

#include <cctype>
#include <cstdint>

namespace drgate::plugin {
namespace {

constexpr std::size_t kMaxIdempotencyKeyLength = 36;  // the request_id rule

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

bool IsLegalMetadataValue(std::string_view value) {
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte > 0x7e) return false;
  }
  return true;
}

std::string EscapeMetadataValue(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if (byte < 0x20 || byte > 0x7e) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

StatusOr<ForwardedHeaders> CheckForwardedHeaders(const ForwardedHeaderValues& headers) {
  ForwardedHeaders out;
  // Authorization: judged like a token that matches none (the caller learns nothing about which
  // byte was wrong, and the value, possibly a real token, is echoed nowhere).
  if (headers.authorization.size() > 1) {
    return Status(StatusCode::kUnauthenticated,
                  "the Authorization header is given more than once; send one",
                  Reason::kInvalidToken);
  }
  if (headers.authorization.size() == 1) {
    if (!IsLegalMetadataValue(headers.authorization[0])) {
      return Status(StatusCode::kUnauthenticated,
                    "the Authorization header has a byte that is not printable ASCII (a tab, a "
                    "control character or a byte of 0x80 and above); send \"Bearer <token>\"",
                    Reason::kInvalidToken);
    }
    out.authorization = std::string(headers.authorization[0]);
  }

  if (headers.idempotency_key.size() > 1) {
    return InvalidArgument("Idempotency-Key: the header is given more than once; send one",
                           Reason::kInvalidRequestId);
  }
  if (headers.idempotency_key.size() == 1) {
    const std::string_view key = headers.idempotency_key[0];
    if (key.empty() || key.size() > kMaxIdempotencyKeyLength) {
      return InvalidArgument(
          "Idempotency-Key: must be 1 to 36 characters long, got " + std::to_string(key.size()),
          Reason::kInvalidRequestId);
    }
    for (char c : key) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte <= 0x20 || byte > 0x7e) {
        return InvalidArgument(
            "Idempotency-Key: must be printable ASCII without spaces (it becomes the request_id)",
            Reason::kInvalidRequestId);
      }
    }
    out.idempotency_key = std::string(key);
  }

  if (headers.grpc_timeout.size() > 1) {
    return InvalidArgument("grpc-timeout: the header is given more than once; send one",
                           Reason::kInvalidHeader);
  }
  if (headers.grpc_timeout.size() == 1) {
    out.timeout = ParseGrpcTimeout(headers.grpc_timeout[0]);
    if (!out.timeout) {
      return InvalidArgument("grpc-timeout: must be 1 to 8 digits and a unit (H, M, S, m, u, n)",
                             Reason::kInvalidHeader);
    }
  }
  return out;
}

std::optional<FramingRefusal> CheckFraming(const RequestFraming& framing) {
  if (!framing.transfer_encoding.empty()) {
    if (framing.version < 11) {
      return FramingRefusal{400, "Transfer-Encoding is not allowed in an HTTP/1.0 request"};
    }
    if (framing.has_content_length) {
      return FramingRefusal{400,
                            "a request must not carry both Transfer-Encoding and "
                            "Content-Length"};
    }
    if (framing.transfer_encoding.size() != 1 ||
        !EqualsIgnoreCase(Trim(framing.transfer_encoding[0]), "chunked")) {
      return FramingRefusal{501, "Transfer-Encoding: only \"chunked\" is implemented"};
    }
  }
  if (framing.version >= 11) {
    if (framing.host.empty()) {
      return FramingRefusal{400, "an HTTP/1.1 request must carry a Host header"};
    }
    if (framing.host.size() > 1) {
      return FramingRefusal{400, "the Host header is given more than once"};
    }
  }
  return std::nullopt;
}

std::optional<std::chrono::nanoseconds> ParseGrpcTimeout(std::string_view text) {
  // gRPC's TimeoutValue: 1-8 digits, then the unit.
  if (text.size() < 2 || text.size() > 9) return std::nullopt;
  int64_t n = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  // 99999999H does not fit in int64 nanoseconds: longer timeouts are cut to kMaxGrpcTimeout
  // (compared in the unit given, before any conversion can overflow).
  auto capped = [](auto d) -> std::chrono::nanoseconds {
    using D = decltype(d);
    if (d >= std::chrono::duration_cast<D>(kMaxGrpcTimeout)) return kMaxGrpcTimeout;
    return d;
  };
  switch (text.back()) {
    case 'H': return capped(std::chrono::hours(n));
    case 'M': return capped(std::chrono::minutes(n));
    case 'S': return capped(std::chrono::seconds(n));
    case 'm': return capped(std::chrono::milliseconds(n));
    case 'u': return capped(std::chrono::microseconds(n));
    case 'n': return capped(std::chrono::nanoseconds(n));
    default: return std::nullopt;
  }
}

}  // namespace drgate::plugin
