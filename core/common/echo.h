#pragma once

// Values a caller sent, as drgate repeats them in error messages, error metadata and log lines:
// cut to a size every gRPC client accepts in trailers (gRPC's default limit on received metadata
// is 8 KiB), with a marker that says how long the value was.

#include <cstddef>
#include <string>
#include <string_view>

namespace drgate {

// The most bytes of one echoed value (a CommCell name, a job id, an identity) that are repeated.
inline constexpr std::size_t kMaxEchoBytes = 128;
// The most bytes of an error message sent to a caller.
inline constexpr std::size_t kMaxErrorMessageBytes = 1024;

// `value` unchanged when it has at most `limit` bytes; else its first `limit` bytes or fewer (never
// splitting a UTF-8 sequence) followed by "…(N bytes)", N being the size of the whole value.
inline std::string Abbreviate(std::string_view value, std::size_t limit = kMaxEchoBytes) {
  if (value.size() <= limit) return std::string(value);
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
  return std::string(value.substr(0, cut)) + "\u2026(" + std::to_string(value.size()) + " bytes)";
}

}  // namespace drgate
