#pragma once

// gRPC server metrics with the names and labels of go-grpc-prometheus, so existing dashboards
// work: grpc_server_started_total, grpc_server_handled_total, grpc_server_handling_seconds.
// Recorded by a server interceptor; method labels come from a fixed list of served methods
// (anything else is "unknown"), so a client cannot grow the label set. Calls of the HTTP gateway
// (a valid GatewayMark) are not counted here: they are HTTP requests (drgate_http_*).
//
// The class is thread-safe.

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

#include "plugin/gateway_mark.h"

namespace drgate::plugin {

class GrpcServerMetrics {
 public:
  // `methods`: the full names ("/drgate.v1.DrBackupService/TriggerBackup") and their types;
  // their series exist at 0 from construction.
  struct Method {
    std::string full_name;
    grpc::experimental::ServerRpcInfo::Type type;
  };
  GrpcServerMetrics(prometheus::Registry& registry, const std::vector<Method>& methods,
                    std::shared_ptr<const GatewayMark> gateway_mark = nullptr);
  const GatewayMark* gateway_mark() const { return gateway_mark_.get(); }

  // The interceptor factory to hand to ServerBuilder::experimental().SetInterceptorCreators.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeFactory();

  // Called by the interceptor.
  void Started(const char* method, grpc::experimental::ServerRpcInfo::Type type);
  void Handled(const char* method, grpc::experimental::ServerRpcInfo::Type type,
               grpc::StatusCode code, double seconds);

 private:
  struct Labels {
    std::string service;
    std::string method;
    const char* type;
  };
  Labels LabelsOf(const char* full_name, grpc::experimental::ServerRpcInfo::Type type) const;

  std::vector<Method> methods_;
  std::shared_ptr<const GatewayMark> gateway_mark_;
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_;
};

// The methods drgate serves: DrBackupService's (from its descriptor) plus health.
std::vector<GrpcServerMetrics::Method> ServedMethods();

}  // namespace drgate::plugin
