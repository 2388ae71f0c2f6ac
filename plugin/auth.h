#pragma once

// Caller authentication, authorisation and rate limiting for the gRPC API. The decisions live
// here, pure and unit-testable; the service only asks the Gate whether a call may proceed.
//
// Tokens: a caller sends `authorization: Bearer <token>`. drgate knows only the SHA-256 of each
// token (auth.tokens_file), compares digests in constant time, and never logs, stores or echoes
// the token.

#include <grpcpp/grpcpp.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/common/clock.h"
#include "core/common/status.h"
#include "plugin/gateway_mark.h"
#include "plugin/server_config.h"

namespace drgate::plugin {

// The RPCs of DrBackupService, as far as authorisation is concerned.
enum class Method {
  kGetJob,
  kListJobs,
  kWatchJob,
  kListCommCells,
  kTriggerBackup,
  kCancelJob,
  kEnsureRecentBackup,
};

// True for the methods that start or stop work on a CommServe (operator only, rate-limited).
bool IsWriteMethod(Method method);

// The RPC's name ("TriggerBackup").
const char* MethodName(Method method);

// An authenticated caller.
struct Principal {
  std::string identity;
  bool viewer = false;
  bool operator_role = false;          // implies viewer
  std::vector<std::string> commcells;  // empty: every CommCell
  // Whether the caller may act on `commcell` at all (empty list: every CommCell).
  bool MayUse(std::string_view commcell) const;
};

// The caller of a call that came over drgate's unix socket (grpc.unix_socket): the local
// operator, with every right on every CommCell, in every auth mode. Access to the socket file is
// its authentication, as with a container engine's socket.
inline constexpr char kLocalSocketIdentity[] = "local-socket";

// Whether gRPC's peer string names a unix socket connection ("unix:/run/drgate/drgate.sock").
// The peer is written by gRPC's transport from the connection itself, never from anything the
// caller sends, so a TCP caller (ipv4:/ipv6:) or an HTTP gateway call (in process) cannot claim it.
bool IsUnixSocketPeer(std::string_view peer);

// The local operator (kLocalSocketIdentity, viewer and operator, every CommCell).
Principal LocalSocketPrincipal();

// Lowercase hex SHA-256 of `data` (OpenSSL EVP).
std::string Sha256Hex(std::string_view data);

// Compares two byte strings in time that depends only on their lengths.
bool ConstantTimeEqual(std::string_view a, std::string_view b);

class Authenticator {
 public:
  // No authentication: every caller is an operator on every CommCell.
  static std::shared_ptr<const Authenticator> Insecure();
  // Tokens mode, from validated entries (see ParseTokensFile).
  static std::shared_ptr<const Authenticator> FromTokens(
      const std::vector<AuthTokenEntry>& entries);

  bool insecure() const { return insecure_; }

  // `authorization` is the value of the `authorization` metadata, if sent; `certificate` the
  // identity of the caller's verified client certificate (mutual TLS), empty without one.
  // A bearer token, when sent, decides alone (a wrong token fails even with a good
  // certificate); else a certificate listed in the tokens file authenticates its entry.
  // UNAUTHENTICATED with reason MISSING_CREDENTIALS, INVALID_TOKEN or UNKNOWN_CERTIFICATE;
  // messages never contain the token. In insecure mode returns an operator named after the
  // certificate, or "anonymous".
  StatusOr<Principal> Authenticate(std::optional<std::string_view> authorization,
                                   const std::string& certificate = "") const;

  // PERMISSION_DENIED with reason PERMISSION_DENIED (role) or COMMCELL_NOT_ALLOWED. A caller
  // limited to some CommCells must name one (`commcell` empty is not allowed for it).
  static Status Authorize(const Principal& principal, Method method, std::string_view commcell);

 private:
  struct Entry {
    std::array<unsigned char, 32> digest;
    Principal principal;
  };
  bool insecure_ = true;
  std::vector<Entry> entries_;
  std::map<std::string, Principal, std::less<>> certificates_;  // certificate identity -> caller
};

// A token bucket per identity: `burst` calls at once, refilled at `per_minute` per minute.
// Thread-safe. Time comes from the injected clock; a clock going backwards refills nothing.
class RateLimiter {
 public:
  RateLimiter(const RateLimitConfig& config, const Clock& clock);

  // OK and one token taken, or RESOURCE_EXHAUSTED (reason RATE_LIMITED) with status metadata
  // "retry_after_ms": when the next token is available.
  Status Acquire(const std::string& identity);

  const RateLimitConfig& config() const { return config_; }

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point last;
  };
  const RateLimitConfig config_;
  const Clock& clock_;
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;  // guarded by mu_
};

// Audit lines for refused write calls, one per refusal in core/common/audit.h's format, as the
// orchestrator writes for the calls it handles:
//
//   audit: trigger method=TriggerBackup commcell=prod caller=unauthenticated
//     peer=ipv4:10.0.0.7:50122 outcome=refused code=UNAUTHENTICATED reason=MISSING_CREDENTIALS
//     error="this call needs 'authorization: Bearer <token>' metadata"
//
// (action "cancel" for CancelJob). Echoed values are abbreviated (core/common/echo.h). A token
// bucket lets `per_second` lines through a second (bursts of as many); refusals past it are only
// counted, and "audit: refusals outcome=suppressed count=K" is written once the bucket has a token
// again (on the next refusal, or on the next call that calls Flush). Thread-safe.
class RefusalAudit {
 public:
  using Sink = std::function<void(const std::string& line)>;
  RefusalAudit(const Clock& clock, Sink sink, int per_second = 20);

  // `caller` is the identity, or empty when the caller did not authenticate (written as
  // "unauthenticated"); `peer` is gRPC's peer address; `why` the refusal.
  void Refused(Method method, std::string_view commcell, const std::string& caller,
               const std::string& peer, const Status& why);
  // Writes the suppressed count, if any and if the bucket allows.
  void Flush();

 private:
  // Requires mu_. Refills, then takes a token if there is one.
  bool TakeLocked();
  // Requires mu_.
  void FlushLocked();

  const Clock& clock_;
  const Sink sink_;
  const double per_second_;
  std::atomic<int64_t> suppressed_{0};  // written under mu_, read without it by Flush
  std::mutex mu_;
  double tokens_;                                 // guarded by mu_
  std::chrono::steady_clock::time_point last_{};  // guarded by mu_
  bool started_ = false;                          // guarded by mu_
};

// What the service asks per call. `limiter` may be null (no rate limit, as in insecure mode).
struct Gate {
  std::shared_ptr<const Authenticator> authenticator;
  std::shared_ptr<RateLimiter> limiter;
  // Believes the HTTP gateway's forwarded client certificate and address; null: no gateway.
  std::shared_ptr<const GatewayMark> gateway;
  // grpc.unix_socket is served: a call whose gRPC peer is a unix socket is the local operator
  // (LocalSocketPrincipal), whatever credentials it sends.
  bool local_socket = false;

  // What the HTTP gateway forwarded for this call; nullopt for a gRPC caller.
  std::optional<ForwardedCaller> Forwarded(const grpc::CallbackServerContext& context) const;
  // The caller's address: the HTTP client's for a gateway call, else gRPC's peer.
  std::string PeerOf(const grpc::CallbackServerContext& context) const;

  // Authenticates the call (the local operator on the unix socket, else from its metadata and
  // client certificate), authorises `method` on `commcell`, and for write
  // methods takes a rate-limit token. On success fills `principal`.
  Status Admit(const grpc::CallbackServerContext& context, Method method, std::string_view commcell,
               Principal* principal) const;
};

}  // namespace drgate::plugin
