#include "core/common/reason.h"

#include <array>
#include <cstddef>
#include <string>

namespace drgate {
namespace {

enum Trait : uint8_t {
  kUpstreamFailure = 1,
  kLocalFastFailure = 2,
  kAuthFailure = 4,
  kNeverRetried = 8,
  kRefusedByCommServe = 16,
};

struct Traits {
  Reason reason;
  const char* name;
  const char* trigger_failure;  // label of drgate_backup_trigger_failures_total
  uint8_t traits;
};

// In the enum's order (checked below).
constexpr std::array kTable = {
    Traits{Reason::kNone, "", "other", 0},
    Traits{Reason::kInvalidArgument, "INVALID_ARGUMENT", "other", 0},
    Traits{Reason::kNotFound, "NOT_FOUND", "other", 0},
    Traits{Reason::kInternal, "INTERNAL", "other", 0},
    Traits{Reason::kPermissionDenied, "PERMISSION_DENIED", "other", 0},
    Traits{Reason::kDeadlineExceeded, "DEADLINE_EXCEEDED", "timeout", kLocalFastFailure},
    Traits{Reason::kConfigInvalid, "CONFIG_INVALID", "other", 0},
    Traits{Reason::kTlsConfigInvalid, "TLS_CONFIG_INVALID", "other", 0},
    Traits{Reason::kListenFailed, "LISTEN_FAILED", "other", 0},
    Traits{Reason::kFileRefused, "FILE_REFUSED", "other", 0},
    Traits{Reason::kMissingCredentials, "MISSING_CREDENTIALS", "other", 0},
    Traits{Reason::kInvalidToken, "INVALID_TOKEN", "other", 0},
    Traits{Reason::kUnknownCertificate, "UNKNOWN_CERTIFICATE", "other", 0},
    Traits{Reason::kCommCellNotAllowed, "COMMCELL_NOT_ALLOWED", "other", 0},
    Traits{Reason::kRateLimited, "RATE_LIMITED", "other", 0},
    Traits{Reason::kCommCellRequired, "COMMCELL_REQUIRED", "other", 0},
    Traits{Reason::kCommCellNotFound, "COMMCELL_NOT_FOUND", "other", 0},
    Traits{Reason::kJobIdRequired, "JOB_ID_REQUIRED", "other", 0},
    Traits{Reason::kJobNotFound, "JOB_NOT_FOUND", "other", 0},
    Traits{Reason::kJobAlreadyFinished, "JOB_ALREADY_FINISHED", "other", 0},
    Traits{Reason::kInvalidBackupType, "INVALID_BACKUP_TYPE", "other", 0},
    Traits{Reason::kInvalidRequestId, "INVALID_REQUEST_ID", "other", 0},
    Traits{Reason::kRequestIdReused, "REQUEST_ID_REUSED", "other", 0},
    Traits{Reason::kInvalidHeader, "INVALID_HEADER", "other", 0},
    Traits{Reason::kTooManyStreams, "TOO_MANY_STREAMS", "other", 0},
    Traits{Reason::kInvalidMaxAge, "INVALID_MAX_AGE", "other", 0},
    Traits{Reason::kInvalidDuration, "INVALID_DURATION", "other", 0},
    Traits{Reason::kInvalidTime, "INVALID_TIME", "other", 0},
    Traits{Reason::kInvalidPageSize, "INVALID_PAGE_SIZE", "other", 0},
    Traits{Reason::kInvalidPageToken, "INVALID_PAGE_TOKEN", "other", 0},
    Traits{Reason::kInvalidStateFilter, "INVALID_STATE_FILTER", "other", 0},
    Traits{Reason::kInvalidOriginFilter, "INVALID_ORIGIN_FILTER", "other", 0},
    Traits{Reason::kInvalidMaxRows, "INVALID_MAX_ROWS", "other", 0},
    Traits{Reason::kShuttingDown, "SHUTTING_DOWN", "other", 0},
    Traits{Reason::kTriggerOutcomePending, "TRIGGER_OUTCOME_PENDING", "other", 0},
    Traits{Reason::kConcurrentTriggerFailed, "CONCURRENT_TRIGGER_FAILED", "other", 0},
    Traits{Reason::kRequestIdInFlight, "REQUEST_ID_IN_FLIGHT", "other", 0},
    Traits{Reason::kDrJobAlreadyRunning, "DR_JOB_ALREADY_RUNNING", "already_running",
           kRefusedByCommServe},
    Traits{Reason::kUpstreamUnreachable, "UPSTREAM_UNREACHABLE", "unreachable", kUpstreamFailure},
    Traits{Reason::kUpstreamTimeout, "UPSTREAM_TIMEOUT", "timeout", kUpstreamFailure},
    Traits{Reason::kUpstreamTlsError, "UPSTREAM_TLS_ERROR", "tls", kUpstreamFailure},
    Traits{Reason::kUpstreamCertificateRejected, "UPSTREAM_TLS_ERROR", "tls",
           kUpstreamFailure | kNeverRetried},
    Traits{Reason::kUpstreamUnavailable, "UPSTREAM_UNAVAILABLE", "other", 0},
    Traits{Reason::kUpstreamRedirected, "UPSTREAM_REDIRECTED", "other", 0},
    Traits{Reason::kUpstreamHttp4xx, "UPSTREAM_HTTP_4XX", "upstream_error", 0},
    Traits{Reason::kUpstreamHttp5xx, "UPSTREAM_HTTP_5XX", "upstream_error", 0},
    Traits{Reason::kUpstreamRateLimited, "UPSTREAM_RATE_LIMITED", "upstream_error", 0},
    Traits{Reason::kUpstreamResponseTooLarge, "UPSTREAM_RESPONSE_TOO_LARGE", "upstream_error",
           kNeverRetried},
    Traits{Reason::kUpstreamRejected, "UPSTREAM_REJECTED", "rejected", kRefusedByCommServe},
    Traits{Reason::kUpstreamUnauthenticated, "UPSTREAM_UNAUTHENTICATED", "authentication", 0},
    Traits{Reason::kUpstreamLoginFailed, "UPSTREAM_LOGIN_FAILED", "authentication", kAuthFailure},
    Traits{Reason::kUpstreamAuthFailed, "UPSTREAM_AUTH_FAILED", "authentication", kAuthFailure},
    Traits{Reason::kUpstreamRenewFailed, "UPSTREAM_RENEW_FAILED", "authentication", 0},
    Traits{Reason::kMalformedUpstreamResponse, "MALFORMED_UPSTREAM_RESPONSE", "malformed_response",
           0},
    Traits{Reason::kUpstreamQueueFull, "UPSTREAM_QUEUE_FULL", "overloaded", kLocalFastFailure},
    Traits{Reason::kCircuitOpen, "CIRCUIT_OPEN", "unreachable", kLocalFastFailure},
    Traits{Reason::kDrOptionsUnavailable, "DR_OPTIONS_UNAVAILABLE", "other", 0},
    Traits{Reason::kRegistryUnavailable, "REGISTRY_UNAVAILABLE", "registry", 0},
    Traits{Reason::kRegistryError, "REGISTRY_ERROR", "registry", 0},
    Traits{Reason::kRegistryUnwritable, "REGISTRY_UNWRITABLE", "registry", 0},
    Traits{Reason::kRegistryUniqueViolation, "REGISTRY_UNIQUE_VIOLATION", "registry", 0},
    Traits{Reason::kRegistrySchemaTooNew, "REGISTRY_SCHEMA_TOO_NEW", "registry", 0},
    Traits{Reason::kRegistryPathInvalid, "REGISTRY_PATH_INVALID", "registry", 0},
    Traits{Reason::kRegistryConfigInvalid, "REGISTRY_CONFIG_INVALID", "registry", 0},
    Traits{Reason::kRegistryInUse, "REGISTRY_IN_USE", "registry", 0},
    Traits{Reason::kIntentNotFound, "INTENT_NOT_FOUND", "other", 0},
    Traits{Reason::kLeaseLost, "LEASE_LOST", "other", 0},
};
static_assert(kTable.size() == static_cast<std::size_t>(kLastReason) + 1,
              "every Reason has one row in kTable");

constexpr bool InEnumOrder() {
  for (std::size_t i = 0; i < kTable.size(); ++i) {
    if (static_cast<std::size_t>(kTable[i].reason) != i) return false;
  }
  return true;
}
static_assert(InEnumOrder(), "kTable's rows are in the order of enum Reason");

const Traits& Of(Reason reason) {
  const auto i = static_cast<std::size_t>(reason);
  return i < kTable.size() ? kTable[i] : kTable[0];
}

}  // namespace

const std::string& ReasonName(Reason reason) {
  static const auto* const kNames = [] {
    auto* names = new std::array<std::string, kTable.size()>();
    for (std::size_t i = 0; i < kTable.size(); ++i) (*names)[i] = kTable[i].name;
    return names;
  }();
  return (*kNames)[static_cast<std::size_t>(&Of(reason) - kTable.data())];
}
bool IsUpstreamFailure(Reason reason) {
  return Of(reason).traits & kUpstreamFailure;
}
bool IsLocalFastFailure(Reason reason) {
  return Of(reason).traits & kLocalFastFailure;
}
bool IsAuthFailure(Reason reason) {
  return Of(reason).traits & kAuthFailure;
}
bool IsNeverRetried(Reason reason) {
  return Of(reason).traits & kNeverRetried;
}
bool IsRefusedByCommServe(Reason reason) {
  return Of(reason).traits & kRefusedByCommServe;
}
const char* TriggerFailureLabel(Reason reason) {
  return Of(reason).trigger_failure;
}

}  // namespace drgate
