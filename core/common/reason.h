#pragma once

// Every machine-readable reason drgate gives an error: one list, and what the code asks of a
// reason. On the wire a reason is its name (google.rpc.ErrorInfo.reason, UPPER_SNAKE); inside
// drgate it is this enum, so code branches on a type, never on text.
//
// docs/api.md lists the reasons a caller can see, with their gRPC codes.

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

namespace drgate {

enum class Reason : uint8_t {
  kNone,  // OK, or an error that needs no reason of its own
  // Generic, named like the gRPC code they go with.
  kInvalidArgument,
  kNotFound,
  kInternal,
  kPermissionDenied,
  kDeadlineExceeded,  // the caller's deadline passed (also one that cut a request short)
  // Startup and configuration.
  kConfigInvalid,
  kTlsConfigInvalid,
  kListenFailed,
  kFileRefused,
  // Callers and their requests.
  kMissingCredentials,
  kInvalidToken,
  kUnknownCertificate,
  kCommCellNotAllowed,
  kRateLimited,
  kCommCellRequired,
  kCommCellNotFound,
  kJobIdRequired,
  kJobNotFound,
  kJobAlreadyFinished,
  kInvalidBackupType,
  kInvalidRequestId,
  kRequestIdReused,  // a request id answered for other parameters (backup type, compression)
  kInvalidHeader,    // an HTTP header the gateway forwards has bytes or a form it cannot carry
  kTooManyStreams,   // a caller's concurrent WatchJob streams over HTTP are at their bound
  kInvalidMaxAge,
  kInvalidDuration,
  kInvalidTime,
  kInvalidPageSize,
  kInvalidPageToken,
  kInvalidStateFilter,
  kInvalidOriginFilter,
  kInvalidMaxRows,
  kShuttingDown,
  // Triggers.
  kTriggerOutcomePending,
  kConcurrentTriggerFailed,
  kRequestIdInFlight,
  kDrJobAlreadyRunning,
  // The CommServe and the way to it.
  kUpstreamUnreachable,
  kUpstreamTimeout,
  kUpstreamTlsError,
  // The CommServe's certificate was refused (expired, untrusted, wrong name). On the wire it is
  // UPSTREAM_TLS_ERROR like any TLS failure; inside, it is never retried.
  kUpstreamCertificateRejected,
  kUpstreamUnavailable,
  kUpstreamRedirected,
  kUpstreamHttp4xx,
  kUpstreamHttp5xx,
  kUpstreamRateLimited,
  kUpstreamResponseTooLarge,
  kUpstreamRejected,
  kUpstreamUnauthenticated,
  kUpstreamLoginFailed,
  kUpstreamAuthFailed,
  kUpstreamRenewFailed,
  kMalformedUpstreamResponse,
  kUpstreamQueueFull,
  kCircuitOpen,
  kDrOptionsUnavailable,
  // The registry.
  kRegistryUnavailable,
  kRegistryError,
  kRegistryUnwritable,
  kRegistryUniqueViolation,
  kRegistrySchemaTooNew,
  kRegistryPathInvalid,
  kRegistryConfigInvalid,
  // Another drgate holds the SQLite registry's lock file (core/registry/writer_lock.h).
  kRegistryInUse,
  kIntentNotFound,
  kLeaseLost,  // Keep kLastReason below pointing at the last one.
};
inline constexpr Reason kLastReason = Reason::kLeaseLost;

// The wire name: "UPSTREAM_TIMEOUT"; "" for kNone.
const std::string& ReasonName(Reason reason);

// The CommServe failed to answer usefully (unreachable, timed out, TLS): what opens the circuit
// breaker and marks a CommCell unreachable.
bool IsUpstreamFailure(Reason reason);
// drgate decided without an answer from the CommServe about this call (circuit open, queue full,
// the caller's deadline): says nothing new about the CommServe's reachability.
bool IsLocalFastFailure(Reason reason);
// The CommServe refused drgate's credentials or session.
bool IsAuthFailure(Reason reason);
// A failed request that must not be sent again, even a read or one whose bytes never left
// drgate (an answer too large, a certificate refused): the same request would fail the same way.
bool IsNeverRetried(Reason reason);
// The CommServe answered and refused the DR backup itself.
bool IsRefusedByCommServe(Reason reason);
// The `reason` label of drgate_backup_trigger_failures_total for a trigger failing with it
// ("unreachable", "timeout", "tls", "authentication", "rejected", "already_running",
// "upstream_error", "malformed_response", "registry", "overloaded", "other").
const char* TriggerFailureLabel(Reason reason);

// Compares with a wire name: tests and tools read reasons as text.
inline bool operator==(Reason reason, std::string_view name) {
  return ReasonName(reason) == name;
}
inline std::ostream& operator<<(std::ostream& out, Reason reason) {
  return out << (reason == Reason::kNone ? "(no reason)" : ReasonName(reason));
}

}  // namespace drgate
