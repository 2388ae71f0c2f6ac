#pragma once

// How the gRPC service tells the HTTP gateway's calls from gRPC callers. The gateway calls the
// server over an in-process channel, so the service cannot see the HTTP client from the call
// itself: the gateway forwards what it verified (the client's address, the identity of its
// verified TLS client certificate) as metadata, together with a secret drawn when the process
// starts. Only a call carrying that secret is believed: a network caller cannot know it, so
// cannot claim a certificate it does not hold or pass for an HTTP call. The secret never leaves
// the process (it is not logged and not part of any answer).
//
// The class is immutable after construction, so thread-safe.

#include <grpcpp/grpcpp.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace drgate::plugin {

enum class Protocol { kGrpc, kHttp };

// "grpc" or "http": the `protocol` label of drgate's metrics.
const char* ProtocolName(Protocol protocol);

// What the gateway verified about an HTTP request.
struct ForwardedCaller {
  std::string peer;         // "ipv4:127.0.0.1:51234", as gRPC writes peers
  std::string certificate;  // identity of the verified client certificate; empty without one
};

class GatewayMark {
 public:
  // Draws a fresh 256-bit secret.
  GatewayMark();

  // Adds the secret and `caller` to an in-process call's metadata.
  void Apply(grpc::ClientContext& context, const ForwardedCaller& caller) const;
  // The metadata Apply adds.
  std::vector<std::pair<std::string, std::string>> Metadata(const ForwardedCaller& caller) const;

  // The forwarded caller when `metadata` carries this process's secret; nullopt otherwise (a
  // gRPC caller, whatever it sent).
  std::optional<ForwardedCaller> Verify(
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

 private:
  std::string secret_;
};

}  // namespace drgate::plugin
