#include "plugin/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/common/audit.h"
#include "core/common/echo.h"
#include "plugin/service.h"

namespace drgate::plugin {
namespace {

constexpr std::string_view kBearer = "bearer ";

std::array<unsigned char, 32> Sha256(std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size()) {
    // Cannot happen with a working libcrypto; an all-zero digest matches no configured hash
    // because configured hashes are compared together with a success flag below.
    out.fill(0);
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

const char* MethodName(Method method) {
  switch (method) {
    case Method::kGetJob: return "GetJob";
    case Method::kListJobs: return "ListJobs";
    case Method::kWatchJob: return "WatchJob";
    case Method::kListCommCells: return "ListCommCells";
    case Method::kTriggerBackup: return "TriggerBackup";
    case Method::kCancelJob: return "CancelJob";
    case Method::kEnsureRecentBackup: return "EnsureRecentBackup";
  }
  return "?";
}

bool IsWriteMethod(Method method) {
  return method == Method::kTriggerBackup || method == Method::kCancelJob ||
         method == Method::kEnsureRecentBackup;
}

bool Principal::MayUse(std::string_view commcell) const {
  if (commcells.empty()) return true;
  return std::find(commcells.begin(), commcells.end(), commcell) != commcells.end();
}

bool IsUnixSocketPeer(std::string_view peer) {
  return peer.substr(0, 5) == "unix:";
}

Principal LocalSocketPrincipal() {
  Principal p;
  p.identity = kLocalSocketIdentity;
  p.viewer = p.operator_role = true;
  return p;
}

std::string Sha256Hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : Sha256(data)) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::shared_ptr<const Authenticator> Authenticator::Insecure() {
  return std::make_shared<const Authenticator>();
}

std::shared_ptr<const Authenticator> Authenticator::FromTokens(
    const std::vector<AuthTokenEntry>& entries) {
  auto a = std::make_shared<Authenticator>();
  a->insecure_ = false;
  for (const auto& e : entries) {
    Principal principal;
    principal.identity = e.identity;
    for (const Role r : e.roles) {
      if (r == Role::kViewer) principal.viewer = true;
      if (r == Role::kOperator) principal.operator_role = principal.viewer = true;
    }
    principal.commcells = e.commcells;
    if (!e.certificate.empty()) {
      a->certificates_.emplace(e.certificate, std::move(principal));
      continue;
    }
    Entry entry{};
    // Entries come validated (64 hex digits); anything else is skipped, never matched.
    if (e.sha256.size() != 64) continue;
    bool ok = true;
    for (std::size_t i = 0; i < 32; ++i) {
      const int hi = HexValue(e.sha256[2 * i]);
      const int lo = HexValue(e.sha256[2 * i + 1]);
      ok = ok && hi >= 0 && lo >= 0;
      entry.digest[i] = static_cast<unsigned char>((hi << 4) | (lo & 0xf));
    }
    if (!ok) continue;
    entry.principal = std::move(principal);
    a->entries_.push_back(std::move(entry));
  }
  return a;
}

StatusOr<Principal> Authenticator::Authenticate(std::optional<std::string_view> authorization,
                                                const std::string& certificate) const {
  if (insecure_) {
    Principal p;
    p.identity = certificate.empty() ? "anonymous" : certificate;
    p.viewer = p.operator_role = true;
    return p;
  }
  if ((!authorization || authorization->empty()) && !certificate.empty()) {
    if (auto it = certificates_.find(certificate); it != certificates_.end()) return it->second;
    // The certificate identity is public information (it was sent in the handshake).
    return Status(StatusCode::kUnauthenticated,
                  "client certificate \"" + certificate +
                      "\" is not listed in auth.tokens_file; send a bearer token or add it",
                  Reason::kUnknownCertificate);
  }
  if (!authorization || authorization->empty()) {
    return Status(StatusCode::kUnauthenticated,
                  "this call needs 'authorization: Bearer <token>' metadata",
                  Reason::kMissingCredentials);
  }
  std::string_view value = *authorization;
  bool bearer = value.size() > kBearer.size();
  for (std::size_t i = 0; bearer && i < kBearer.size(); ++i) {
    bearer = std::tolower(static_cast<unsigned char>(value[i])) == kBearer[i];
  }
  if (!bearer) {
    return Status(StatusCode::kUnauthenticated,
                  "the authorization metadata must be 'Bearer <token>'",
                  Reason::kMissingCredentials);
  }
  std::string_view token = value.substr(kBearer.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) {
    return Status(StatusCode::kUnauthenticated,
                  "the authorization metadata must be 'Bearer <token>'",
                  Reason::kMissingCredentials);
  }
  const auto digest = Sha256(token);
  // Every entry is compared, so the time taken does not tell which (or whether one) matched.
  const Entry* match = nullptr;
  for (const auto& e : entries_) {
    const bool equal = CRYPTO_memcmp(digest.data(), e.digest.data(), digest.size()) == 0;
    if (equal && match == nullptr) match = &e;
  }
  if (match == nullptr) {
    return Status(StatusCode::kUnauthenticated, "the bearer token is not valid",
                  Reason::kInvalidToken);
  }
  return match->principal;
}

Status Authenticator::Authorize(const Principal& principal, Method method,
                                std::string_view commcell) {
  const bool allowed = IsWriteMethod(method) ? principal.operator_role : principal.viewer;
  if (!allowed) {
    return Status(StatusCode::kPermissionDenied,
                  std::string("identity ") + principal.identity + " may not call " +
                      MethodName(method) + " (needs role " +
                      (IsWriteMethod(method) ? "operator" : "viewer") + ")",
                  Reason::kPermissionDenied)
        .With("identity", principal.identity);
  }
  // ListCommCells names no CommCell; the service shows only the allowed ones.
  if (method == Method::kListCommCells || principal.commcells.empty()) return Status::Ok();
  if (commcell.empty()) {
    return Status(StatusCode::kPermissionDenied,
                  "identity " + principal.identity +
                      " is limited to some CommCells: name the commcell in the request",
                  Reason::kCommCellNotAllowed)
        .With("identity", principal.identity);
  }
  if (!principal.MayUse(commcell)) {
    return Status(StatusCode::kPermissionDenied,
                  "identity " + principal.identity + " may not act on CommCell " +
                      std::string(commcell),
                  Reason::kCommCellNotAllowed)
        .With("identity", principal.identity)
        .With("commcell", std::string(commcell));
  }
  return Status::Ok();
}

RateLimiter::RateLimiter(const RateLimitConfig& config, const Clock& clock)
    : config_(config), clock_(clock) {}

Status RateLimiter::Acquire(const std::string& identity) {
  const auto now = clock_.Monotonic();
  const double per_ms = config_.triggers_per_minute / 60000.0;
  std::lock_guard lock(mu_);
  auto [it, inserted] = buckets_.try_emplace(identity);
  Bucket& b = it->second;
  if (inserted) {
    b.tokens = config_.burst;
    b.last = now;
  } else if (now > b.last) {
    const double elapsed_ms = std::chrono::duration<double, std::milli>(now - b.last).count();
    b.tokens = std::min<double>(config_.burst, b.tokens + elapsed_ms * per_ms);
    b.last = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return Status::Ok();
  }
  const auto retry_ms = static_cast<long long>(std::ceil((1.0 - b.tokens) / per_ms));
  return Status(StatusCode::kResourceExhausted,
                "identity " + identity + " exceeded " +
                    std::to_string(config_.triggers_per_minute) +
                    " write calls per minute (burst " + std::to_string(config_.burst) + ")",
                Reason::kRateLimited)
      .With("identity", identity)
      .With("retry_after_ms", std::to_string(std::max(1LL, retry_ms)));
}

RefusalAudit::RefusalAudit(const Clock& clock, Sink sink, int per_second)
    : clock_(clock),
      sink_(std::move(sink)),
      per_second_(std::max(1, per_second)),
      tokens_(per_second_) {}

bool RefusalAudit::TakeLocked() {
  const auto now = clock_.Monotonic();
  if (!started_) {
    started_ = true;
    last_ = now;
  } else if (now > last_) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(per_second_, tokens_ + elapsed * per_second_);
    last_ = now;
  }
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

void RefusalAudit::FlushLocked() {
  const int64_t count = suppressed_.exchange(0);
  if (count > 0) {
    sink_(AuditMessage("refusals", {{"outcome", "suppressed"}, {"count", std::to_string(count)}}));
  }
}

void RefusalAudit::Flush() {
  if (suppressed_.load() == 0) return;
  std::lock_guard lock(mu_);
  if (suppressed_.load() == 0 || !TakeLocked()) return;
  FlushLocked();
}

void RefusalAudit::Refused(Method method, std::string_view commcell, const std::string& caller,
                           const std::string& peer, const Status& why) {
  std::lock_guard lock(mu_);
  if (!TakeLocked()) {
    ++suppressed_;
    return;
  }
  FlushLocked();  // the count of what came before, first
  AuditFields fields = {{"method", MethodName(method)},
                        {"commcell", Abbreviate(commcell)},
                        {"caller", caller.empty() ? "unauthenticated" : Abbreviate(caller)},
                        {"peer", Abbreviate(peer)},
                        {"outcome", "refused"},
                        {"code", StatusCodeName(why.code())}};
  if (why.reason() != Reason::kNone) fields.emplace_back("reason", ReasonName(why.reason()));
  fields.emplace_back("error", Abbreviate(why.message(), 256));
  sink_(AuditMessage(method == Method::kCancelJob ? "cancel" : "trigger", fields));
}

std::optional<ForwardedCaller> Gate::Forwarded(const grpc::CallbackServerContext& context) const {
  if (gateway == nullptr) return std::nullopt;
  return gateway->Verify(context.client_metadata());
}

std::string Gate::PeerOf(const grpc::CallbackServerContext& context) const {
  if (auto forwarded = Forwarded(context)) return forwarded->peer;
  return context.peer();
}

Status Gate::Admit(const grpc::CallbackServerContext& context, Method method,
                   std::string_view commcell, Principal* principal) const {
  // Decided by the transport's own peer (never PeerOf, which believes the gateway's forwarded
  // address): a gateway call runs in process, a TCP caller is ipv4:/ipv6:.
  if (local_socket && IsUnixSocketPeer(context.peer())) {
    Principal local = LocalSocketPrincipal();
    if (IsWriteMethod(method) && limiter != nullptr) {
      if (Status s = limiter->Acquire(local.identity); !s.ok()) return s;
    }
    *principal = std::move(local);
    return Status::Ok();
  }
  std::optional<std::string_view> authorization;
  const auto& md = context.client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    authorization = std::string_view(it->second.data(), it->second.size());
  }
  // A gateway call's own TLS is in-process (none): the HTTP client's verified certificate is the
  // one the gateway forwarded.
  const std::optional<ForwardedCaller> forwarded = Forwarded(context);
  auto p = authenticator->Authenticate(
      authorization, forwarded ? forwarded->certificate : VerifiedCertificateIdentity(context));
  if (!p.ok()) return p.status();
  if (Status s = Authenticator::Authorize(*p, method, commcell); !s.ok()) return s;
  if (IsWriteMethod(method) && limiter != nullptr) {
    if (Status s = limiter->Acquire(p->identity); !s.ok()) return s;
  }
  *principal = std::move(*p);
  return Status::Ok();
}

}  // namespace drgate::plugin
