#pragma once

// SessionClient: a CommServClient that holds one CommServe session (token) and speaks the REST
// API through an HttpTransport.
//
// Token life cycle (docs/commserv-api.md): log in with username + base64 password (or use a
// configured token), send it verbatim as `Authtoken`; on HTTP 401 renew once with
// RenewLoginToken, and if that fails log in again; a call that still gets 401 fails with
// FAILED_PRECONDITION (reason UPSTREAM_AUTH_FAILED): drgate's credentials are a configuration
// problem, not the caller's. Concurrent calls that need a token share one login.
//
// Resending after a 401 is safe for a POST: the CommServe answered, so it did not act on it.
//
// Policies (ClientPolicy, per CommCell; README "Upstream faults"):
//   - Deadline: one call (retries and back-off included) ends by the caller's deadline
//     (DrBackupRequest::deadline) or request_timeout after it started, whichever comes first.
//     Each HTTP exchange carries that deadline to the transport. A login or renewal the call
//     waits for is shared with other calls and bounded by its own request_timeout. When the
//     caller's deadline is what ends it, the error is DEADLINE_EXCEEDED (reason DEADLINE_EXCEEDED),
//     keeping the transport's "phase" and "request_sent"; a call whose deadline has passed is not
//     sent at all.
//   - Retries, with exponential back-off and full jitter (FullJitterBackoff), only where a
//     second request cannot start a second job: reads (GET job list, GET job) after a transport
//     failure, a 5xx or a 429 (waiting at least Retry-After); any request after a failure that
//     happened before its bytes could reach the server (metadata request_sent = "false":
//     resolve, connect, TLS handshake). Never a write whose bytes may have been sent, never a
//     write the CommServe answered (5xx, 429 included), never an oversized answer, never a
//     certificate the CommServe's chain fails verification with (retrying cannot fix it). A
//     retry is only sent when its back-off ends before the deadline.
//   - Circuit breaker (CircuitBreaker): consecutive transport failures, timeouts and 5xx
//     answers open it; while open every call fails fast with UNAVAILABLE, reason CIRCUIT_OPEN,
//     metadata retry_after_ms (a google.rpc.RetryInfo at the gRPC edge). A call ended by its
//     caller's deadline counts neither way.
//   - Bounded queue: at most max_pending_requests calls per CommCell are in progress; more fail
//     fast with RESOURCE_EXHAUSTED, reason UPSTREAM_QUEUE_FULL.
//   - Response size: the transport refuses bodies over max_response_bytes
//     (UPSTREAM_RESPONSE_TOO_LARGE).
//   - A 2xx answer to DRBackup that cannot be read (malformed, oversized, wrong content type)
//     carries request_sent = "true": the CommServe may have started a job, so the orchestrator
//     keeps the intent open for reconciliation instead of calling the trigger failed.
// Fast failures (queue full, circuit open, deadline passed) call back on the Scheduler, never
// inline. A Retry-After in seconds also becomes metadata retry_after_ms.
//
// The class is thread-safe. Callbacks run on transport threads.

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/common/clock.h"
#include "core/common/secret.h"
#include "core/commserv/client.h"
#include "core/commserv/policy.h"
#include "core/commserv/transport.h"
#include "core/metrics/metrics.h"

namespace drgate::commserv {

struct SessionOptions {
  std::string commcell;  // name, for metrics and messages
  Endpoint endpoint;
  WireFormat format = WireFormat::kJson;
  std::string username;
  Secret password;  // login with username + password, or
  Secret token;     // a given token ("QSDK " is prepended when it has no prefix)
  std::string device_id;
  ClientPolicy policy;
};

class SessionClient final : public CommServClient,
                            public std::enable_shared_from_this<SessionClient> {
 public:
  // `metrics` and `clock` must outlive the client. `scheduler` runs back-offs and fast
  // failures; `random` draws the jitter (nullptr: a DefaultRandom).
  static std::shared_ptr<SessionClient> Create(SessionOptions options,
                                               std::unique_ptr<HttpTransport> transport,
                                               Metrics& metrics, const Clock& clock,
                                               std::shared_ptr<Scheduler> scheduler,
                                               std::shared_ptr<Random> random = nullptr);

  void TriggerDrBackup(const DrBackupRequest& request, Callback<DrBackupResult> done) override;
  void ListDrJobs(std::chrono::seconds lookback, Callback<std::vector<JobSummary>> done) override;
  void ListDrJobPage(std::chrono::seconds lookback, int64_t offset, int64_t limit,
                     Callback<JobListPage> done) override;
  void GetDrBackupOptions(Callback<DrBackupOptions> done) override;
  void GetJob(const std::string& job_id, Callback<std::optional<JobSummary>> done) override;
  void KillJob(const std::string& job_id, std::function<void(Status)> done) override;
  Reachability reachability() const override;

  CircuitBreaker::State circuit_state() const { return breaker_.state(); }

 private:
  SessionClient(SessionOptions options, std::unique_ptr<HttpTransport> transport, Metrics& metrics,
                const Clock& clock, std::shared_ptr<Scheduler> scheduler,
                std::shared_ptr<Random> random);

  using TokenCallback = std::function<void(StatusOr<std::string>)>;
  using ResponseCallback = std::function<void(StatusOr<HttpResponse>)>;

  // When one call must end (steady clock, as the transport measures), and whether that instant
  // is the caller's deadline rather than request_timeout.
  struct Budget {
    std::chrono::steady_clock::time_point deadline;
    bool from_caller = false;
  };
  Budget MakeBudget(std::optional<TimePoint> caller_deadline) const;

  // An authenticated call whose answer is decoded by `decode`; records reachability. Admits the
  // call against max_pending_requests first.
  template <typename T>
  void Authenticated(CommServEndpoint endpoint, HttpRequest request,
                     std::function<StatusOr<T>(const HttpResponse&)> decode, Callback<T> done,
                     std::optional<TimePoint> caller_deadline = std::nullopt);
  HttpRequest JsonRequest(const std::string& method, const std::string& path) const;

  // An authenticated call: attempt 0 uses the current token; after a 401, attempt 1 renews,
  // attempt 2 logs in again.
  void Call(CommServEndpoint endpoint, HttpRequest request, Budget budget, int attempt,
            ResponseCallback done);
  // Gets a token: the cached one, or one from a (shared) login.
  void WithToken(TokenCallback done);
  // Replaces `stale` (if still current) by a renewed token, or a new login when renewal fails.
  void Refresh(const std::string& stale, bool renew, TokenCallback done);
  void Login(TokenCallback done);
  // The calls waiting for one token refresh. It is owned by the refresh's own request (its
  // callback), not by the client: the waiting callbacks may hold the client, and a refresh
  // abandoned at shutdown must take them with it instead of making the client own itself.
  struct PendingRefresh {
    std::vector<TokenCallback> waiters;  // guarded by the client's mu_
  };
  void FinishRefresh(const std::shared_ptr<PendingRefresh>& refresh, StatusOr<std::string> token);
  // One HTTP request through the breaker, retried per the retry policy within `budget`.
  void Send(CommServEndpoint endpoint, HttpRequest request, Budget budget, ResponseCallback done);
  void Attempt(CommServEndpoint endpoint, HttpRequest request, Budget budget, int attempt,
               ResponseCallback done);
  // Calls `done(status)` on the scheduler (never inline).
  void FailLater(Status status, ResponseCallback done);
  void Record(const Status& status);

  const SessionOptions options_;
  const std::unique_ptr<HttpTransport> transport_;
  Metrics& metrics_;
  const Clock& clock_;
  const std::shared_ptr<Scheduler> scheduler_;
  const std::shared_ptr<Random> random_;
  CircuitBreaker breaker_;
  std::atomic<std::size_t> pending_{0};  // calls in progress (Authenticated)

  mutable std::mutex mu_;
  std::string token_;                      // guarded by mu_; empty when none
  std::weak_ptr<PendingRefresh> refresh_;  // guarded by mu_: the refresh under way, if any
  Reachability reachability_;              // guarded by mu_
};

}  // namespace drgate::commserv
