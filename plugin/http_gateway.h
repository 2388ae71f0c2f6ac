#pragma once

// The HTTP/JSON face of DrBackupService (http.listen): each request is decoded by the routes of
// drgate.proto's google.api.http annotations (plugin/http_routes.h) and sent as a gRPC call over
// an in-process channel to the same grpc::Server, so authentication, roles, CommCell limits,
// rate limits, audit lines, metrics and deadlines are exactly those of a gRPC call. Answers are
// proto3 JSON; errors are a google.rpc.Status JSON body with the HTTP status of its code
// (plugin/http_errors.h).
//
// Headers: `Authorization: Bearer <token>` as on gRPC; `Idempotency-Key` becomes the request_id
// of the trigger calls; `grpc-timeout` (gRPC's format, e.g. "30S", "500m") sets the deadline,
// else default_deadline applies.
//
// WatchJob answers with a stream of newline-delimited JSON ({"result": <Job>} per change,
// {"error": <google.rpc.Status>} if it fails after its first message), without a deadline unless
// grpc-timeout sets one; the client closing the connection ends the watch. GET /v1/openapi.json
// serves the routes' OpenAPI document (plugin/openapi.h) without credentials.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "core/common/clock.h"
#include "core/common/status.h"
#include "plugin/edge_metrics.h"
#include "plugin/gateway_mark.h"
#include "plugin/http_request_checks.h"
#include "plugin/server_config.h"

namespace drgate::plugin {

struct HttpGatewayOptions {
  std::string listen;  // HOST:PORT, port 0 picks one
  // Bounds for hostile or broken clients, as on the metrics port: a client address holds at most
  // max_connections_per_client connections, and with max_connections open the one idle longest
  // is closed to make room (plugin/http_listener.h, ConnectionTable). A caller (bearer token,
  // client certificate, else address) holds at most max_watch_streams_per_caller watch streams;
  // one more is answered 429 (RESOURCE_EXHAUSTED, reason TOO_MANY_STREAMS).
  int max_connections = 256;
  int max_connections_per_client = 128;
  int max_watch_streams_per_caller = 32;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 64 * 1024;
  std::chrono::milliseconds request_timeout{10000};   // to read one request
  std::chrono::milliseconds default_deadline{60000};  // of a call without grpc-timeout
  // HTTPS (http.tls); unset: plain HTTP, with a warning unless `listen` is loopback.
  std::optional<GrpcTlsConfig> tls;
  // Proves the gateway's calls to the service (forwarded peer and certificate); required.
  std::shared_ptr<const GatewayMark> mark;
  EdgeMetrics* metrics = nullptr;  // drgate_http_*; optional, must outlive the gateway
  // Deadlines handed to the in-process gRPC calls (wall time) and request latency (monotonic);
  // null: the system clock. Must outlive the gateway.
  const Clock* clock = nullptr;
};

class HttpGateway {
 public:
  // Binds the listener; calls go to `channel` (the server's in-process channel). Errors name
  // http.listen.
  static StatusOr<std::unique_ptr<HttpGateway>> Start(boost::asio::io_context& io,
                                                      const HttpGatewayOptions& options,
                                                      std::shared_ptr<grpc::Channel> channel);
  virtual ~HttpGateway() = default;
  virtual int port() const = 0;
  // Closes the listener; requests in progress finish.
  virtual void Stop() = 0;
};

// Where the OpenAPI document of the routes is served (GET, no credentials needed).
inline constexpr char kOpenApiPath[] = "/v1/openapi.json";

}  // namespace drgate::plugin
