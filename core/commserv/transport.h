#pragma once

// The HTTP(S) transport towards one CommServe: an interface so the session and the orchestration
// are tested without sockets.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "core/common/clock.h"
#include "core/common/status.h"
#include "core/commserv/http.h"

namespace drgate::commserv {

class NameResolver;

struct TransportOptions {
  std::chrono::milliseconds resolve_timeout{5000};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds read_timeout{60000};  // until the whole response is read
  std::size_t max_idle_connections = 4;           // kept alive per transport
  std::chrono::seconds idle_timeout{50};          // an idle connection older than this is closed
  std::size_t max_response_bytes = 8 * 1024 * 1024;
  // TLS. Verification is on unless insecure_skip_verify is set explicitly.
  std::string ca_file;  // optional, added to the system store
  bool insecure_skip_verify = false;
  // Optional client certificate (PEM chain) and its key, presented to the CommServe.
  std::string client_cert_file;
  std::string client_key_file;
  // Host name lookups (name_resolver.h); null: the process's shared resolver.
  std::shared_ptr<NameResolver> resolver;
  // The clock request deadlines (HttpRequest::deadline) were made with, which the transport
  // measures them and connection idle times by; null: the system clock. Must outlive the
  // transport.
  const Clock* clock = nullptr;
};

class HttpTransport {
 public:
  using Callback = std::function<void(StatusOr<HttpResponse>)>;
  virtual ~HttpTransport() = default;

  // Sends `request` and calls `done` exactly once, from a transport thread, never inline.
  // Errors are UNAVAILABLE with reason UPSTREAM_UNREACHABLE, UPSTREAM_TIMEOUT,
  // UPSTREAM_TLS_ERROR or UPSTREAM_RESPONSE_TOO_LARGE, a message naming the failed phase ("connect:
  // ...", "handshake: certificate verify failed ..."), and metadata "phase" plus "request_sent"
  // ("true" when any byte of the request may have reached the server: a POST must then not be
  // retried blindly). Before an idle keep-alive connection is reused, the transport checks that
  // the peer has not closed it; the transport itself never resends a request. With
  // `request.deadline` set, every phase's timeout is cut to the time left before it.
  // `max_response_bytes` bounds the body (UPSTREAM_RESPONSE_TOO_LARGE).
  virtual void Send(HttpRequest request, Callback done) = 0;
};

}  // namespace drgate::commserv
