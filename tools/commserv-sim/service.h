// The simulated CommServe's HTTP face: routes API requests to a CommservState, and serves the
// test-only admin API under /_sim/ (request log, job control, token expiry, fault injection).
#ifndef DRGATE_TOOLS_COMMSERV_SIM_SERVICE_H_
#define DRGATE_TOOLS_COMMSERV_SIM_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tools/commserv-sim/commserv_state.h"
#include "tools/commserv-sim/server.h"

namespace commserv_sim {

struct ServiceOptions {
  unsigned login_failure_status = 200;  // 200 (errList body) or 401 (Access denied).
  bool job_ids_as_numbers = false;      // jobIds as JSON numbers instead of strings.
};

// Serves the API under /commandcenter/api, /webconsole/api and /SearchSvc/CVWebService.svc
// (a doubled slash after the base is tolerated) plus the admin API under /_sim/.
//
// Faults apply before the request's side effect unless the rule says `after_side_effect`.
// Each API request is recorded (never with its Authtoken value) before faults are applied.
// Fault rules (POST /_sim/faults, or --faults FILE at startup) are described by
// `commserv-sim --help` and README.md ("Fault injection"); the first rule that matches a request
// (endpoint, count left, skip used up) decides. Connection-level rules (tls_handshake_failure,
// expired_cert) apply to the next TLS connections instead of requests.
//
// The class is thread-safe; `state` must outlive it.
class Service {
 public:
  Service(CommservState& state, ServiceOptions options);

  Reply Handle(const HttpRequest& request);
  // Asked for every new TLS connection: the connection-level fault to apply, if any.
  ConnectionFault OnConnection();
  // Adds fault rules (an array of rule objects, or one object). Throws std::invalid_argument
  // naming the first invalid rule.
  void AddFaults(const nlohmann::json& rules);

 private:
  enum class Endpoint {
    kLogin,
    kRenewLoginToken,
    kLogout,
    kDrBackup,
    kJob,
    kJobList,
    kKill,
    kPause,
    kResume,
    kJobDetails,
    kDrOptions,
    kNotFound,
  };

  struct Route {
    Endpoint endpoint = Endpoint::kNotFound;
    std::string_view name = "NotFound";  // Used by fault rules and stats.
    boost::beast::http::verb method = boost::beast::http::verb::get;
    int64_t job_id = 0;
  };

  struct Fault {
    enum class Action {
      kStatus,
      kErrorCode,
      kUnauthorized,
      kDelay,
      kClose,
      kHang,
      kReset,
      kMalformed,
      kTruncate,
      kWrongContentType,
      kOversized,
      kTlsHandshakeFailure,
      kExpiredCert,
    };
    std::string endpoint;   // A route name or "*".
    int64_t remaining = 1;  // Matching requests still affected; -1 means forever.
    int64_t skip = 0;       // Matching requests to let through before the rule applies.
    Action action = Action::kStatus;
    unsigned http_status = 500;
    std::string content_type = "text/plain";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    int error_code = 1;
    std::string message = "Simulated error";
    std::chrono::milliseconds delay{0};
    bool after_side_effect = false;
    int64_t size_bytes = 16 * 1024 * 1024;  // kOversized: body size.
    int64_t missing_bytes = 16;             // kTruncate: promised but never sent.
    bool connection_level() const {
      return action == Action::kTlsHandshakeFailure || action == Action::kExpiredCert;
    }
  };

  struct RecordedRequest {
    std::string method;
    std::string target;
    std::string content_type;
    std::string accept;
    bool has_authtoken = false;
    std::string body;
    std::string endpoint;
  };

  // `prefix`, when given, receives the one path segment before the base path
  // ("/cc17/commandcenter/api/...", as a reverse proxy serving several CommServes under one host
  // forwards it); left empty without one.
  static Route MatchRoute(std::string_view path, std::string_view* prefix = nullptr);
  static Route MatchBaseRoute(std::string_view path);
  // Throws std::invalid_argument when `rule` is not a valid fault rule.
  static Fault ParseFault(const nlohmann::json& rule);

  HttpResponse Respond(const Route& route, const HttpRequest& request, std::string_view query);
  HttpResponse HandleLogin(const HttpRequest& request);
  HttpResponse HandleRenew(const HttpRequest& request);
  HttpResponse HandleDrBackup(const HttpRequest& request);
  HttpResponse HandleJobList(const HttpRequest& request, std::string_view query);
  HttpResponse HandleJobAction(const Route& route);
  HttpResponse HandleJobDetails(const HttpRequest& request);
  HttpResponse HandleDrOptions();
  // `real` is the endpoint's own answer when its side effect already ran (after_side_effect,
  // wrong_content_type), else nullopt.
  Reply FaultReply(const Fault& fault, const HttpRequest& request,
                   std::optional<HttpResponse> real) const;

  HttpResponse HandleAdmin(const HttpRequest& request, std::string_view path,
                           std::string_view query);
  HttpResponse AdminRequests();
  HttpResponse AdminReset(std::string_view query);
  HttpResponse AdminJobs();
  HttpResponse AdminForceJob(int64_t job_id, const HttpRequest& request);
  HttpResponse AdminAddFaults(const HttpRequest& request);
  HttpResponse AdminFaults();
  HttpResponse AdminStats();
  HttpResponse AdminSeedHistory(const HttpRequest& request);
  HttpResponse AdminSetDrOptions(const HttpRequest& request);
  HttpResponse AdminDrOptions();

  CommservState& state_;
  const ServiceOptions options_;

  std::mutex mu_;
  std::vector<RecordedRequest> requests_;                        // Guarded by mu_.
  std::vector<Fault> faults_;                                    // Guarded by mu_.
  std::map<std::string, int64_t, std::less<>> endpoint_counts_;  // Guarded by mu_.
  // Requests under a path prefix, by prefix and endpoint (GET /_sim/stats
  // "requests_by_prefix"). Guarded by mu_.
  std::map<std::string, std::map<std::string, int64_t, std::less<>>, std::less<>> prefix_counts_;
  int64_t drbackup_posts_ = 0;  // Guarded by mu_.
  int64_t logins_ = 0;          // Guarded by mu_.
  int64_t faults_applied_ = 0;  // Guarded by mu_.
  // What Commcell/DRBackup/Options answers: the HTTP status and, for 200, the JSON body sent
  // as is (so tests can play every quirk). Guarded by mu_.
  unsigned dr_options_status_ = 200;
  std::string dr_options_body_;
};

}  // namespace commserv_sim

#endif  // DRGATE_TOOLS_COMMSERV_SIM_SERVICE_H_
