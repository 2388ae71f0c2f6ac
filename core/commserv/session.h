#pragma once

// SessionClient: a CommServClient that holds one CommServe session (token) and speaks the REST
// API through an HttpTransport.
//
// Token life cycle (../shared/commserv-api.md): log in with username + base64 password (or use a
// configured token), send it verbatim as `Authtoken`; on HTTP 401 renew once with
// RenewLoginToken, and if that fails log in again; a call that still gets 401 fails with
// FAILED_PRECONDITION (reason UPSTREAM_AUTH_FAILED): drgate's credentials are a configuration
// problem, not the caller's. Concurrent calls that need a token share one login.
//
// Resending after a 401 is safe for a POST: the CommServe answered, so it did not act on it.
//
// The class is thread-safe. Callbacks run on transport threads.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/common/clock.h"
#include "core/commserv/client.h"
#include "core/commserv/transport.h"
#include "core/config/config.h"
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
};

class SessionClient final : public CommServClient,
                            public std::enable_shared_from_this<SessionClient> {
 public:
  // `metrics` must outlive the client.
  static std::shared_ptr<SessionClient> Create(SessionOptions options,
                                               std::unique_ptr<HttpTransport> transport,
                                               Metrics& metrics, const Clock& clock);

  void TriggerDrBackup(const DrBackupRequest& request, Callback<DrBackupResult> done) override;
  void ListDrJobs(std::chrono::seconds lookback, Callback<std::vector<JobSummary>> done) override;
  void GetJob(const std::string& job_id, Callback<std::optional<JobSummary>> done) override;
  void KillJob(const std::string& job_id, std::function<void(Status)> done) override;
  Reachability reachability() const override;

 private:
  SessionClient(SessionOptions options, std::unique_ptr<HttpTransport> transport, Metrics& metrics,
                const Clock& clock);

  using TokenCallback = std::function<void(StatusOr<std::string>)>;
  using ResponseCallback = std::function<void(StatusOr<HttpResponse>)>;

  // An authenticated call whose answer is decoded by `decode`; records reachability.
  template <typename T>
  void Authenticated(CommServEndpoint endpoint, HttpRequest request,
                     std::function<StatusOr<T>(const HttpResponse&)> decode, Callback<T> done);
  HttpRequest JsonRequest(const std::string& method, const std::string& path) const;

  // An authenticated call: attempt 0 uses the current token; after a 401, attempt 1 renews,
  // attempt 2 logs in again.
  void Call(CommServEndpoint endpoint, HttpRequest request, int attempt, ResponseCallback done);
  // Gets a token: the cached one, or one from a (shared) login.
  void WithToken(TokenCallback done);
  // Replaces `stale` (if still current) by a renewed token, or a new login when renewal fails.
  void Refresh(const std::string& stale, bool renew, TokenCallback done);
  void Login(TokenCallback done);
  void FinishRefresh(StatusOr<std::string> token);
  void Send(CommServEndpoint endpoint, HttpRequest request, ResponseCallback done);
  void Record(const Status& status);

  const SessionOptions options_;
  const std::unique_ptr<HttpTransport> transport_;
  Metrics& metrics_;
  const Clock& clock_;

  mutable std::mutex mu_;
  std::string token_;                   // guarded by mu_; empty when none
  bool refreshing_ = false;             // guarded by mu_
  std::vector<TokenCallback> waiters_;  // guarded by mu_: calls waiting for the refresh
  Reachability reachability_;           // guarded by mu_
};

}  // namespace drgate::commserv
