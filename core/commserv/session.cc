#include "core/commserv/session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

namespace drgate::commserv {
namespace {

constexpr int kMaxAttempts = 3;  // the call, after a renewal, after a new login

bool MetadataIs(const Status& s, const std::string& key, const std::string& value) {
  auto it = s.metadata().find(key);
  return it != s.metadata().end() && it->second == value;
}

// Whether the CommServe failed to answer usefully: what opens the circuit breaker.
bool FailedUpstream(const StatusOr<HttpResponse>& response) {
  if (response.ok()) return response->status >= 500;
  return IsUpstreamFailure(response.status().reason());
}

// The retry rule of session.h: reads, and requests that never left drgate.
bool Retryable(const std::string& method, const StatusOr<HttpResponse>& response) {
  const bool read = method == "GET";
  if (response.ok()) return read && (response->status >= 500 || response->status == 429);
  const Status& s = response.status();
  if (s.code() != StatusCode::kUnavailable || IsNeverRetried(s.reason())) return false;
  return read || MetadataIs(s, "request_sent", "false");
}

// Retry-After in seconds (RFC 9110 also allows an HTTP date: not used by the CommServe).
std::chrono::milliseconds RetryAfter(const StatusOr<HttpResponse>& response) {
  if (!response.ok()) return std::chrono::milliseconds(0);
  auto it = response->headers.find("retry-after");
  if (it == response->headers.end() || it->second.empty() || it->second.size() > 6 ||
      it->second.find_first_not_of("0123456789") != std::string::npos) {
    return std::chrono::milliseconds(0);
  }
  return std::chrono::seconds(std::stoll(it->second));
}

// The same failure, told as what it is for the caller: their deadline ran out.
Status CallerDeadline(const Status& s) {
  Status out(StatusCode::kDeadlineExceeded, s.message() + " (the caller's deadline ran out)",
             Reason::kDeadlineExceeded);
  for (const auto& [k, v] : s.metadata()) out.With(k, v);
  return out;
}

// Retry-After as milliseconds too: the gRPC edge turns retry_after_ms into a RetryInfo.
Status WithRetryAfterMs(Status s) {
  auto it = s.metadata().find("retry_after_seconds");
  if (it != s.metadata().end() && s.metadata().count("retry_after_ms") == 0) {
    s.With("retry_after_ms", std::to_string(std::stoll(it->second) * 1000));
  }
  return s;
}

}  // namespace

std::shared_ptr<SessionClient> SessionClient::Create(SessionOptions options,
                                                     std::unique_ptr<HttpTransport> transport,
                                                     Metrics& metrics, const Clock& clock,
                                                     std::shared_ptr<Scheduler> scheduler,
                                                     std::shared_ptr<Random> random) {
  if (!random) random = std::make_shared<DefaultRandom>();
  return std::shared_ptr<SessionClient>(new SessionClient(std::move(options), std::move(transport),
                                                          metrics, clock, std::move(scheduler),
                                                          std::move(random)));
}

SessionClient::SessionClient(SessionOptions options, std::unique_ptr<HttpTransport> transport,
                             Metrics& metrics, const Clock& clock,
                             std::shared_ptr<Scheduler> scheduler, std::shared_ptr<Random> random)
    : options_(std::move(options)),
      transport_(std::move(transport)),
      metrics_(metrics),
      clock_(clock),
      scheduler_(std::move(scheduler)),
      random_(std::move(random)),
      breaker_(options_.policy.circuit_breaker, clock) {
  if (!options_.token.empty()) token_ = NormalizeToken(options_.token.value);
  breaker_.set_observer([&metrics = metrics_, commcell = options_.commcell](bool open) {
    metrics.SetCircuitOpen(commcell, open);
    if (open) {
      spdlog::warn(
          "commcell {}: circuit breaker open: the CommServe keeps failing; calls fail "
          "fast until a probe succeeds",
          commcell);
    } else {
      spdlog::info("commcell {}: circuit breaker closed: the CommServe answers again", commcell);
    }
  });
}

SessionClient::Budget SessionClient::MakeBudget(std::optional<TimePoint> caller_deadline) const {
  std::chrono::milliseconds limit = options_.policy.request_timeout;
  bool from_caller = false;
  if (caller_deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(*caller_deadline - clock_.Now());
    if (left < limit) {
      limit = std::max(left, std::chrono::milliseconds(0));
      from_caller = true;
    }
  }
  return Budget{clock_.Monotonic() + limit, from_caller};
}

Reachability SessionClient::reachability() const {
  std::lock_guard lock(mu_);
  return reachability_;
}

void SessionClient::Record(const Status& status) {
  // Reachable means the CommServe answered and accepted our session: a refusal of the request
  // itself (errorCode in a 200) still counts as reachable.
  const bool reachable = status.ok() || !(status.code() == StatusCode::kUnavailable ||
                                          status.code() == StatusCode::kDeadlineExceeded ||
                                          IsAuthFailure(status.reason()));
  metrics_.SetCommServUp(options_.commcell, reachable);
  std::lock_guard lock(mu_);
  reachability_.contacted = true;
  reachability_.reachable = reachable;
  reachability_.last_error = reachable ? std::string() : status.message();
  reachability_.last_contact = clock_.Now();
}

template <typename T>
void SessionClient::Authenticated(CommServEndpoint endpoint, HttpRequest request,
                                  std::function<StatusOr<T>(const HttpResponse&)> decode,
                                  Callback<T> done, std::optional<TimePoint> caller_deadline) {
  auto finish = [self = shared_from_this(), decode = std::move(decode),
                 done = std::move(done)](StatusOr<HttpResponse> response) {
    StatusOr<T> result = response.ok() ? decode(*response) : StatusOr<T>(response.status());
    if (!result.ok() && !IsLocalFastFailure(result.status().reason()))
      self->Record(result.status());
    if (result.ok()) self->Record(Status::Ok());
    self->pending_.fetch_sub(1);
    if (!result.ok()) {
      done(WithRetryAfterMs(result.status()));
      return;
    }
    done(std::move(result));
  };
  const std::size_t limit = options_.policy.max_pending_requests;
  if (pending_.fetch_add(1) >= limit) {
    metrics_.CountCommServRejected(options_.commcell, "queue_full");
    FailLater(Status(StatusCode::kResourceExhausted,
                     std::to_string(limit) + " calls to the CommServe of CommCell \"" +
                         options_.commcell +
                         "\" are already in progress (max_pending_requests); retry later",
                     Reason::kUpstreamQueueFull)
                  .With("request_sent", "false"),
              std::move(finish));
    return;
  }
  const Budget budget = MakeBudget(caller_deadline);
  if (budget.from_caller && clock_.Monotonic() >= budget.deadline) {
    metrics_.CountCommServRejected(options_.commcell, "deadline_exceeded");
    FailLater(Status(StatusCode::kDeadlineExceeded,
                     "the caller's deadline ran out before the CommServe was called",
                     Reason::kDeadlineExceeded)
                  .With("request_sent", "false"),
              std::move(finish));
    return;
  }
  Call(endpoint, std::move(request), budget, 0, std::move(finish));
}

void SessionClient::FailLater(Status status, ResponseCallback done) {
  scheduler_->RunAfter(std::chrono::milliseconds(0),
                       [status = std::move(status), done = std::move(done)] { done(status); });
}

HttpRequest SessionClient::JsonRequest(const std::string& method, const std::string& path) const {
  HttpRequest http;
  http.method = method;
  http.target = options_.endpoint.Target(path);
  http.headers["Accept"] = "application/json";
  if (method == "POST") http.headers["Content-Type"] = "application/json";
  return http;
}

void SessionClient::TriggerDrBackup(const DrBackupRequest& request, Callback<DrBackupResult> done) {
  HttpRequest http;
  http.method = "POST";
  http.target = options_.endpoint.Target("CommServ/DRBackup");
  http.headers["Accept"] = ContentTypeOf(options_.format);
  http.headers["Content-Type"] = ContentTypeOf(options_.format);
  http.body = EncodeDrBackupRequest(request, options_.format);
  const WireFormat format = options_.format;
  Authenticated<DrBackupResult>(
      CommServEndpoint::kDrBackup, std::move(http),
      [format](const HttpResponse& r) -> StatusOr<DrBackupResult> {
        StatusOr<DrBackupResult> result = DecodeDrBackupResponse(r, format);
        if (!result.ok() && r.status >= 200 && r.status <= 299 &&
            result.status().reason() == Reason::kMalformedUpstreamResponse) {
          // A 2xx we cannot read may still be "job started": let reconciliation find out.
          Status s = result.status();
          return s.With("request_sent", "true");
        }
        return result;
      },
      std::move(done), request.deadline);
}

void SessionClient::ListDrJobs(std::chrono::seconds lookback,
                               Callback<std::vector<JobSummary>> done) {
  HttpRequest http =
      JsonRequest("GET", "Job?jobCategory=All&jobFilter=CSDRBKP&completedJobLookupTime=" +
                             std::to_string(lookback.count()));
  // The list is paged by headers; a CommCell has a few DR jobs a day, so one page of 1000 covers
  // any sensible lookback.
  http.headers["limit"] = "1000";
  http.headers["offset"] = "0";
  Authenticated<std::vector<JobSummary>>(CommServEndpoint::kJobList, std::move(http),
                                         &DecodeJobList, std::move(done));
}

void SessionClient::ListDrJobPage(std::chrono::seconds lookback, int64_t offset, int64_t limit,
                                  Callback<JobListPage> done) {
  HttpRequest http =
      JsonRequest("GET", "Job?jobCategory=All&jobFilter=CSDRBKP&completedJobLookupTime=" +
                             std::to_string(lookback.count()));
  http.headers["limit"] = std::to_string(limit);
  http.headers["offset"] = std::to_string(offset);
  Authenticated<JobListPage>(CommServEndpoint::kJobList, std::move(http), &DecodeJobListPage,
                             std::move(done));
}

void SessionClient::GetDrBackupOptions(Callback<DrBackupOptions> done) {
  Authenticated<DrBackupOptions>(CommServEndpoint::kDrOptions,
                                 JsonRequest("GET", "Commcell/DRBackup/Options"),
                                 &DecodeDrBackupOptions, std::move(done));
}

void SessionClient::GetJob(const std::string& job_id, Callback<std::optional<JobSummary>> done) {
  Authenticated<std::optional<JobSummary>>(
      CommServEndpoint::kJob, JsonRequest("GET", "Job/" + job_id),
      [job_id](const HttpResponse& r) -> StatusOr<std::optional<JobSummary>> {
        auto jobs = DecodeJobList(r);
        if (!jobs.ok()) return jobs.status();
        for (auto& j : *jobs) {
          if (j.job_id == job_id) return std::optional<JobSummary>(std::move(j));
        }
        return std::optional<JobSummary>();
      },
      std::move(done));
}

void SessionClient::KillJob(const std::string& job_id, std::function<void(Status)> done) {
  Authenticated<bool>(
      CommServEndpoint::kKill, JsonRequest("POST", "Job/" + job_id + "/action/kill"),
      [](const HttpResponse& r) -> StatusOr<bool> {
        Status s = DecodeGenericResponse(r);
        if (!s.ok()) return s;
        return true;
      },
      [done = std::move(done)](StatusOr<bool> r) { done(r.status()); });
}

void SessionClient::Call(CommServEndpoint endpoint, HttpRequest request, Budget budget, int attempt,
                         ResponseCallback done) {
  // The closure that waits for a token holds the client weakly: waiting in a refresh must not
  // keep the client alive by itself (the refresh's own request does while it can still answer).
  WithToken([weak = weak_from_this(), endpoint, request = std::move(request), budget, attempt,
             done = std::move(done)](StatusOr<std::string> token) mutable {
    const std::shared_ptr<SessionClient> self = weak.lock();
    if (self == nullptr) return;  // abandoned at shutdown: nobody waits for the answer
    if (!token.ok()) {
      done(token.status());
      return;
    }
    request.headers["Authtoken"] = *token;
    HttpRequest copy = request;
    self->Send(
        endpoint, std::move(copy), budget,
        [self, endpoint, request = std::move(request), budget, attempt, stale = *token,
         done = std::move(done)](StatusOr<HttpResponse> response) mutable {
          if (!response.ok() || response->status != 401) {
            done(std::move(response));
            return;
          }
          if (attempt + 1 >= kMaxAttempts) {
            done(FailedPrecondition(
                     "the CommServe rejected drgate's session (HTTP 401) after a token "
                     "renewal and a new login; check the CommCell's credentials",
                     Reason::kUpstreamAuthFailed)
                     .With("http_status", "401"));
            return;
          }
          // First 401: renew the token; second: log in again.
          const bool renew = attempt == 0;
          self->Refresh(
              stale, renew,
              [weak = std::weak_ptr<SessionClient>(self), endpoint, request = std::move(request),
               budget, attempt, done = std::move(done)](StatusOr<std::string> fresh) mutable {
                const std::shared_ptr<SessionClient> self = weak.lock();
                if (self == nullptr) return;  // abandoned at shutdown
                if (!fresh.ok()) {
                  done(fresh.status());
                  return;
                }
                self->Call(endpoint, std::move(request), budget, attempt + 1, std::move(done));
              });
        });
  });
}

void SessionClient::WithToken(TokenCallback done) {
  std::string token;
  {
    std::lock_guard lock(mu_);
    token = token_;
  }
  if (!token.empty()) {
    done(std::move(token));
    return;
  }
  Refresh(std::string(), /*renew=*/false, std::move(done));
}

void SessionClient::Refresh(const std::string& stale, bool renew, TokenCallback done) {
  std::shared_ptr<PendingRefresh> refresh;
  {
    std::unique_lock lock(mu_);
    if (!token_.empty() && token_ != stale) {
      // Someone else refreshed while this call was in flight: use their token.
      std::string fresh = token_;
      lock.unlock();
      done(std::move(fresh));
      return;
    }
    if (auto under_way = refresh_.lock()) {
      under_way->waiters.push_back(std::move(done));
      return;
    }
    refresh = std::make_shared<PendingRefresh>();
    refresh->waiters.push_back(std::move(done));
    refresh_ = refresh;
  }
  if (!renew || stale.empty()) {
    Login([self = shared_from_this(), refresh](StatusOr<std::string> t) {
      self->FinishRefresh(refresh, std::move(t));
    });
    return;
  }
  HttpRequest http;
  http.method = "POST";
  http.target = options_.endpoint.Target("RenewLoginToken");
  http.headers["Accept"] = "application/json";
  http.headers["Content-Type"] = "application/json";
  http.body = EncodeRenewRequest(stale, options_.device_id);
  Send(CommServEndpoint::kRenew, std::move(http), MakeBudget(std::nullopt),
       [self = shared_from_this(), refresh](StatusOr<HttpResponse> response) {
         StatusOr<std::string> token = response.ok() ? DecodeRenewResponse(*response)
                                                     : StatusOr<std::string>(response.status());
         if (token.ok()) {
           self->FinishRefresh(refresh, NormalizeToken(*token));
           return;
         }
         if (token.status().code() == StatusCode::kUnavailable) {
           self->FinishRefresh(refresh, token.status().WithContext("renew session token"));
           return;
         }
         // Renewal refused: fall back to a new login.
         self->Login([self, refresh](StatusOr<std::string> t) {
           self->FinishRefresh(refresh, std::move(t));
         });
       });
}

void SessionClient::Login(TokenCallback done) {
  if (options_.password.empty()) {
    done(
        FailedPrecondition("the CommServe rejected the configured token and it could not be "
                           "renewed; update the CommCell's token_file",
                           Reason::kUpstreamAuthFailed));
    return;
  }
  HttpRequest http;
  http.method = "POST";
  http.target = options_.endpoint.Target("Login");
  http.headers["Accept"] = "application/json";
  http.headers["Content-Type"] = "application/json";
  http.body = EncodeLoginRequest(options_.username, options_.password.value, options_.device_id);
  Send(CommServEndpoint::kLogin, std::move(http), MakeBudget(std::nullopt),
       [self = shared_from_this(), done = std::move(done)](StatusOr<HttpResponse> response) {
         if (!response.ok()) {
           if (!IsLocalFastFailure(response.status().reason())) {
             self->Record(response.status());
             self->metrics_.CountLogin(self->options_.commcell, false);
           }
           done(response.status().WithContext("login"));
           return;
         }
         StatusOr<std::string> token = DecodeLoginResponse(*response);
         if (!token.ok()) {
           Status s = token.status();
           if (s.code() == StatusCode::kUnauthenticated) {
             // Wrong credentials are drgate's configuration problem, not the caller's.
             s = Status(StatusCode::kFailedPrecondition,
                        "the CommServe refused drgate's login as \"" + self->options_.username +
                            "\": " + s.message(),
                        s.reason() == Reason::kNone ? Reason::kUpstreamLoginFailed : s.reason());
             for (const auto& [k, v] : token.status().metadata()) s.With(k, v);
           } else {
             s = s.WithContext("login");
           }
           self->Record(s);
           self->metrics_.CountLogin(self->options_.commcell, false);
           done(std::move(s));
           return;
         }
         self->metrics_.CountLogin(self->options_.commcell, true);
         done(NormalizeToken(*token));
       });
}

void SessionClient::FinishRefresh(const std::shared_ptr<PendingRefresh>& refresh,
                                  StatusOr<std::string> token) {
  std::vector<TokenCallback> waiters;
  {
    std::lock_guard lock(mu_);
    if (token.ok()) token_ = *token;
    if (refresh_.lock() == refresh) refresh_.reset();
    waiters.swap(refresh->waiters);
  }
  for (auto& w : waiters) w(token);
}

void SessionClient::Send(CommServEndpoint endpoint, HttpRequest request, Budget budget,
                         ResponseCallback done) {
  Attempt(endpoint, std::move(request), budget, 1, std::move(done));
}

void SessionClient::Attempt(CommServEndpoint endpoint, HttpRequest request, Budget budget,
                            int attempt, ResponseCallback done) {
  if (clock_.Monotonic() >= budget.deadline) {
    // Only reachable after a token refresh used up the time: nothing of this request was sent.
    metrics_.CountCommServRejected(options_.commcell, "deadline_exceeded");
    Status s = budget.from_caller
                   ? Status(StatusCode::kDeadlineExceeded,
                            "the caller's deadline ran out before the CommServe was called",
                            Reason::kDeadlineExceeded)
                   : Unavailable("request_timeout (" +
                                     std::to_string(options_.policy.request_timeout.count()) +
                                     " ms) ran out before the request was sent",
                                 Reason::kUpstreamTimeout);
    FailLater(s.With("request_sent", "false"), std::move(done));
    return;
  }
  StatusOr<CircuitBreaker::Ticket> ticket = breaker_.Admit(options_.commcell);
  if (!ticket.ok()) {
    metrics_.CountCommServRejected(options_.commcell, "circuit_open");
    FailLater(ticket.status(), std::move(done));
    return;
  }
  HttpRequest copy = request;
  copy.deadline = budget.deadline;
  const auto started = clock_.Monotonic();
  transport_->Send(std::move(copy), [self = shared_from_this(), endpoint,
                                     request = std::move(request), budget, attempt,
                                     ticket = *ticket, started, done = std::move(done)](
                                        StatusOr<HttpResponse> response) mutable {
    const std::string& commcell = self->options_.commcell;
    self->metrics_.CountCommServRequest(commcell, endpoint, response.ok() ? response->status : 0);
    const auto now = self->clock_.Monotonic();
    self->metrics_.ObserveCommServRequest(commcell, endpoint,
                                          std::chrono::duration<double>(now - started).count());
    // A timeout at the caller's deadline is the caller's impatience, not the CommServe's fault.
    const bool cut_by_caller = !response.ok() && budget.from_caller && now >= budget.deadline &&
                               response.status().reason() == Reason::kUpstreamTimeout;
    if (cut_by_caller) {
      self->breaker_.OnNeutral(ticket);
    } else if (FailedUpstream(response)) {
      self->breaker_.OnFailure(ticket);
    } else if (response.ok() || response.status().reason() == Reason::kUpstreamResponseTooLarge) {
      self->breaker_.OnSuccess(ticket);
    } else {
      self->breaker_.OnNeutral(ticket);
    }
    const RetryPolicy& retry = self->options_.policy.retry;
    if (!cut_by_caller && attempt < retry.max_attempts && Retryable(request.method, response)) {
      const auto delay =
          std::max(FullJitterBackoff(retry, attempt, *self->random_), RetryAfter(response));
      if (now + delay < budget.deadline) {
        self->metrics_.CountCommServRetry(commcell, endpoint);
        spdlog::debug("commcell {}: {} attempt {} failed ({}); retrying in {} ms", commcell,
                      CommServEndpointName(endpoint), attempt,
                      response.ok() ? "HTTP " + std::to_string(response->status)
                                    : response.status().ToString(),
                      delay.count());
        self->scheduler_->RunAfter(delay, [self, endpoint, request = std::move(request), budget,
                                           attempt, done = std::move(done)]() mutable {
          self->Attempt(endpoint, std::move(request), budget, attempt + 1, std::move(done));
        });
        return;
      }
    }
    if (cut_by_caller) {
      done(CallerDeadline(response.status()));
      return;
    }
    done(std::move(response));
  });
}

}  // namespace drgate::commserv
