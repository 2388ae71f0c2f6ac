#pragma once

// Metrics of drgate's two faces, gRPC and HTTP/JSON, told apart (grpc_server_* count only calls
// that came over gRPC; see plugin/grpc_metrics.h):
//   drgate_watch_streams{protocol}                 WatchJob streams open now ("grpc", "http")
//   drgate_http_requests_total{route,code}         HTTP requests answered, by route and status
//   drgate_http_request_duration_seconds{route}    time to answer a unary HTTP request
// `route` is a route of the proto's annotations ("POST /v1/commcells/{commcell}/backups"), or
// "none" when no route matched: a client cannot grow the label set.
//
// The class is thread-safe.

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>
#include <vector>

#include "plugin/gateway_mark.h"

namespace drgate::plugin {

class EdgeMetrics {
 public:
  // `routes`: every route label; their series exist from the start (code "200" at 0).
  EdgeMetrics(prometheus::Registry& registry, const std::vector<std::string>& routes);

  void WatchOpened(Protocol protocol);
  void WatchClosed(Protocol protocol);
  // `seconds` < 0: not observed (a stream, whose length is the job's, not drgate's latency).
  void CountHttpRequest(const std::string& route, int status, double seconds);

 private:
  prometheus::Gauge& grpc_watches_;
  prometheus::Gauge& http_watches_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_duration_;
};

}  // namespace drgate::plugin
