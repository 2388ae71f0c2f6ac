#pragma once

// The metrics port: /metrics (Prometheus text format), /healthz and /readyz for tools that
// cannot speak gRPC health checking. Plain HTTP/1.1 on Boost.Beast, on the server's io_context.
//
// The class is thread-safe. Stop() closes the listener; connections in progress finish their
// request. Connections, request sizes and slow clients are bounded (HttpAdminOptions).

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>

#include "core/common/status.h"

namespace drgate::plugin {

struct Readiness {
  bool ready = false;
  std::string reason;  // why not, for the /readyz body and logs
};

struct HttpAdminOptions {
  std::string listen;  // HOST:PORT, port 0 picks one
  // TLS when both are set (PEM files; TLS 1.2 or newer).
  std::string cert_file;
  std::string key_file;
  // Basic auth on /metrics when username is set. /healthz and /readyz stay open for probes.
  std::string username;
  std::string password;
  // Bounds for hostile or broken clients. A client address holds at most
  // max_connections_per_client connections; with max_connections open, the one idle longest is
  // closed to make room, and without an idle one a new connection is closed as soon as it is
  // accepted (plugin/http_listener.h, ConnectionTable); a request whose header exceeds
  // max_header_bytes, or whose body exceeds max_body_bytes, is answered 431 or 413 and its
  // connection closed; a request not read whole within request_timeout (also the idle time
  // allowed between keep-alive requests), or a TLS handshake not done within it, closes the
  // connection.
  int max_connections = 64;
  int max_connections_per_client = 16;
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 1024;
  std::chrono::milliseconds request_timeout{10000};
};

class HttpAdmin {
 public:
  // Binds the listener. /metrics serves what `collectables` collect, in that order; `readiness`
  // is called per /readyz request. Errors name the setting.
  static StatusOr<std::unique_ptr<HttpAdmin>> Start(
      boost::asio::io_context& io, const HttpAdminOptions& options,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
      std::function<Readiness()> readiness);
  // Loads the TLS certificate and key as Start would, without binding anything.
  static Status CheckTls(const HttpAdminOptions& options);
  virtual ~HttpAdmin() = default;
  virtual int port() const = 0;
  virtual void Stop() = 0;
};

}  // namespace drgate::plugin
