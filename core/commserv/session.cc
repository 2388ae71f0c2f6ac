#include "core/commserv/session.h"

#include <chrono>
#include <utility>

namespace drgate::commserv {
namespace {

constexpr int kMaxAttempts = 3;  // the call, after a renewal, after a new login

bool IsAuthFailure(const Status& s) {
  return s.reason() == "UPSTREAM_AUTH_FAILED" || s.reason() == "UPSTREAM_LOGIN_FAILED";
}

}  // namespace

std::shared_ptr<SessionClient> SessionClient::Create(SessionOptions options,
                                                     std::unique_ptr<HttpTransport> transport,
                                                     Metrics& metrics, const Clock& clock) {
  return std::shared_ptr<SessionClient>(
      new SessionClient(std::move(options), std::move(transport), metrics, clock));
}

SessionClient::SessionClient(SessionOptions options, std::unique_ptr<HttpTransport> transport,
                             Metrics& metrics, const Clock& clock)
    : options_(std::move(options)),
      transport_(std::move(transport)),
      metrics_(metrics),
      clock_(clock) {
  if (!options_.token.empty()) token_ = NormalizeToken(options_.token.value);
}

Reachability SessionClient::reachability() const {
  std::lock_guard lock(mu_);
  return reachability_;
}

void SessionClient::Record(const Status& status) {
  // Reachable means the CommServe answered and accepted our session: a refusal of the request
  // itself (errorCode in a 200) still counts as reachable.
  const bool reachable =
      status.ok() || !(status.code() == StatusCode::kUnavailable ||
                       status.code() == StatusCode::kDeadlineExceeded || IsAuthFailure(status));
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
                                  Callback<T> done) {
  Call(endpoint, std::move(request), 0,
       [self = shared_from_this(), decode = std::move(decode),
        done = std::move(done)](StatusOr<HttpResponse> response) {
         if (!response.ok()) {
           self->Record(response.status());
           done(response.status());
           return;
         }
         StatusOr<T> result = decode(*response);
         self->Record(result.status());
         done(std::move(result));
       });
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
      [format](const HttpResponse& r) { return DecodeDrBackupResponse(r, format); },
      std::move(done));
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

void SessionClient::Call(CommServEndpoint endpoint, HttpRequest request, int attempt,
                         ResponseCallback done) {
  WithToken([self = shared_from_this(), endpoint, request = std::move(request), attempt,
             done = std::move(done)](StatusOr<std::string> token) mutable {
    if (!token.ok()) {
      done(token.status());
      return;
    }
    request.headers["Authtoken"] = *token;
    HttpRequest copy = request;
    self->Send(endpoint, std::move(copy),
               [self, endpoint, request = std::move(request), attempt, stale = *token,
                done = std::move(done)](StatusOr<HttpResponse> response) mutable {
                 if (!response.ok() || response->status != 401) {
                   done(std::move(response));
                   return;
                 }
                 if (attempt + 1 >= kMaxAttempts) {
                   done(FailedPrecondition(
                            "the CommServe rejected drgate's session (HTTP 401) after a token "
                            "renewal and a new login; check the CommCell's credentials",
                            "UPSTREAM_AUTH_FAILED")
                            .With("http_status", "401"));
                   return;
                 }
                 // First 401: renew the token; second: log in again.
                 const bool renew = attempt == 0;
                 self->Refresh(stale, renew,
                               [self, endpoint, request = std::move(request), attempt,
                                done = std::move(done)](StatusOr<std::string> fresh) mutable {
                                 if (!fresh.ok()) {
                                   done(fresh.status());
                                   return;
                                 }
                                 self->Call(endpoint, std::move(request), attempt + 1,
                                            std::move(done));
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
  {
    std::unique_lock lock(mu_);
    if (!token_.empty() && token_ != stale) {
      // Someone else refreshed while this call was in flight: use their token.
      std::string fresh = token_;
      lock.unlock();
      done(std::move(fresh));
      return;
    }
    waiters_.push_back(std::move(done));
    if (refreshing_) return;
    refreshing_ = true;
  }
  if (!renew || stale.empty()) {
    Login([self = shared_from_this()](StatusOr<std::string> t) {
      self->FinishRefresh(std::move(t));
    });
    return;
  }
  HttpRequest http;
  http.method = "POST";
  http.target = options_.endpoint.Target("RenewLoginToken");
  http.headers["Accept"] = "application/json";
  http.headers["Content-Type"] = "application/json";
  http.body = EncodeRenewRequest(stale, options_.device_id);
  Send(CommServEndpoint::kRenew, std::move(http),
       [self = shared_from_this()](StatusOr<HttpResponse> response) {
         StatusOr<std::string> token = response.ok() ? DecodeRenewResponse(*response)
                                                     : StatusOr<std::string>(response.status());
         if (token.ok()) {
           self->FinishRefresh(NormalizeToken(*token));
           return;
         }
         if (token.status().code() == StatusCode::kUnavailable) {
           self->FinishRefresh(token.status().WithContext("renew session token"));
           return;
         }
         // Renewal refused: fall back to a new login.
         self->Login([self](StatusOr<std::string> t) { self->FinishRefresh(std::move(t)); });
       });
}

void SessionClient::Login(TokenCallback done) {
  if (options_.password.empty()) {
    done(
        FailedPrecondition("the CommServe rejected the configured token and it could not be "
                           "renewed; update the CommCell's token_file",
                           "UPSTREAM_AUTH_FAILED"));
    return;
  }
  HttpRequest http;
  http.method = "POST";
  http.target = options_.endpoint.Target("Login");
  http.headers["Accept"] = "application/json";
  http.headers["Content-Type"] = "application/json";
  http.body = EncodeLoginRequest(options_.username, options_.password.value, options_.device_id);
  Send(CommServEndpoint::kLogin, std::move(http),
       [self = shared_from_this(), done = std::move(done)](StatusOr<HttpResponse> response) {
         if (!response.ok()) {
           self->Record(response.status());
           self->metrics_.CountLogin(self->options_.commcell, false);
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
                        s.reason().empty() ? "UPSTREAM_LOGIN_FAILED" : s.reason());
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

void SessionClient::FinishRefresh(StatusOr<std::string> token) {
  std::vector<TokenCallback> waiters;
  {
    std::lock_guard lock(mu_);
    if (token.ok()) token_ = *token;
    refreshing_ = false;
    waiters.swap(waiters_);
  }
  for (auto& w : waiters) w(token);
}

void SessionClient::Send(CommServEndpoint endpoint, HttpRequest request, ResponseCallback done) {
  const auto started = std::chrono::steady_clock::now();
  transport_->Send(std::move(request), [self = shared_from_this(), endpoint, started,
                                        done = std::move(done)](StatusOr<HttpResponse> response) {
    self->metrics_.CountCommServRequest(self->options_.commcell, endpoint,
                                        response.ok() ? response->status : 0);
    self->metrics_.ObserveCommServRequest(
        self->options_.commcell, endpoint,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    done(std::move(response));
  });
}

}  // namespace drgate::commserv
