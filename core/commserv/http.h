#pragma once

// Plain HTTP request/response values shared by the codec, the transport and the session.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "core/common/status.h"

namespace drgate::commserv {

// A parsed webservice root, e.g. https://cs.example.com:443/commandcenter/api
struct Endpoint {
  bool tls = true;
  std::string host;
  std::string port;       // "443" / "80" when the URL has none
  std::string base_path;  // "/commandcenter/api", never ending in '/'

  // "https://host:port/base" without credentials; for logs and ListCommCells.
  std::string ToString() const;
  // Joins base_path and `path` with exactly one '/'.
  std::string Target(const std::string& path) const;
};

// Parses "https://host[:port]/path". INVALID_ARGUMENT naming what is wrong (scheme, host, port,
// credentials in the URL).
StatusOr<Endpoint> ParseEndpoint(const std::string& url);

struct HttpRequest {
  std::string method = "POST";  // "GET" / "POST"
  std::string target;           // path + query, e.g. "/commandcenter/api/CommServ/DRBackup"
  // Lower-case names are not required; the transport sends them as given. Secrets (Authtoken)
  // travel here and nowhere else: the transport never logs headers.
  std::map<std::string, std::string> headers;
  std::string body;
  // When set, no phase of the exchange runs past this instant: each phase's timeout is cut to
  // the time left (the failure then reads "<phase>: timed out after <N> ms", N being that cut).
  std::optional<std::chrono::steady_clock::time_point> deadline;
};

struct HttpResponse {
  int status = 0;
  std::string content_type;                    // as sent, may include "; charset=..."
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

}  // namespace drgate::commserv
