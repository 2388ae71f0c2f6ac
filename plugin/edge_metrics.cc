#include "plugin/edge_metrics.h"

namespace drgate::plugin {
namespace {

const prometheus::Histogram::BucketBoundaries kBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

prometheus::Family<prometheus::Gauge>& WatchFamily(prometheus::Registry& registry) {
  return prometheus::BuildGauge()
      .Name("drgate_watch_streams")
      .Help("WatchJob streams open now, by protocol (grpc, or http for the HTTP/JSON face)")
      .Register(registry);
}

}  // namespace

EdgeMetrics::EdgeMetrics(prometheus::Registry& registry, const std::vector<std::string>& routes)
    : grpc_watches_(WatchFamily(registry).Add({{"protocol", ProtocolName(Protocol::kGrpc)}})),
      http_watches_(WatchFamily(registry).Add({{"protocol", ProtocolName(Protocol::kHttp)}})),
      http_requests_(prometheus::BuildCounter()
                         .Name("drgate_http_requests_total")
                         .Help("HTTP/JSON requests answered, by route and HTTP status")
                         .Register(registry)),
      http_duration_(prometheus::BuildHistogram()
                         .Name("drgate_http_request_duration_seconds")
                         .Help("Time to answer a unary HTTP/JSON request, by route")
                         .Register(registry)) {
  for (const std::string& route : routes) {
    http_requests_.Add({{"route", route}, {"code", "200"}});
    http_duration_.Add({{"route", route}}, kBuckets);
  }
}

void EdgeMetrics::WatchOpened(Protocol protocol) {
  (protocol == Protocol::kHttp ? http_watches_ : grpc_watches_).Increment();
}

void EdgeMetrics::WatchClosed(Protocol protocol) {
  (protocol == Protocol::kHttp ? http_watches_ : grpc_watches_).Decrement();
}

void EdgeMetrics::CountHttpRequest(const std::string& route, int status, double seconds) {
  http_requests_.Add({{"route", route}, {"code", std::to_string(status)}}).Increment();
  if (seconds >= 0) http_duration_.Add({{"route", route}}, kBuckets).Observe(seconds);
}

}  // namespace drgate::plugin
