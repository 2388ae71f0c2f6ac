#include "plugin/grpc_metrics.h"

#include <chrono>

#include <google/protobuf/descriptor.h>

#include "drgate/v1/drgate.pb.h"

namespace drgate::plugin {
namespace {

using Type = grpc::experimental::ServerRpcInfo::Type;
using grpc::experimental::InterceptionHookPoints;

const char* TypeName(Type type) {
  switch (type) {
    case Type::UNARY: return "unary";
    case Type::CLIENT_STREAMING: return "client_stream";
    case Type::SERVER_STREAMING: return "server_stream";
    case Type::BIDI_STREAMING: return "bidi_stream";
  }
  return "unary";
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "Canceled";
    case grpc::StatusCode::UNKNOWN: return "Unknown";
    case grpc::StatusCode::INVALID_ARGUMENT: return "InvalidArgument";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DeadlineExceeded";
    case grpc::StatusCode::NOT_FOUND: return "NotFound";
    case grpc::StatusCode::ALREADY_EXISTS: return "AlreadyExists";
    case grpc::StatusCode::PERMISSION_DENIED: return "PermissionDenied";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "ResourceExhausted";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FailedPrecondition";
    case grpc::StatusCode::ABORTED: return "Aborted";
    case grpc::StatusCode::OUT_OF_RANGE: return "OutOfRange";
    case grpc::StatusCode::UNIMPLEMENTED: return "Unimplemented";
    case grpc::StatusCode::INTERNAL: return "Internal";
    case grpc::StatusCode::UNAVAILABLE: return "Unavailable";
    case grpc::StatusCode::DATA_LOSS: return "DataLoss";
    case grpc::StatusCode::UNAUTHENTICATED: return "Unauthenticated";
    default: return "Unknown";
  }
}

// gRPC's latency spans microseconds (reads) to a minute (a slow CommServe).
const prometheus::Histogram::BucketBoundaries kBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  // The server makes interceptors once a call's initial metadata has arrived (the method is
  // known), so the call's metadata can be read here; hooking POST_RECV_INITIAL_METADATA instead
  // made gRPC's memory quota reset ordinary calls more often under a flood
  // (hostile_input_test).
  MetricsInterceptor(GrpcServerMetrics& metrics, grpc::experimental::ServerRpcInfo* info)
      : metrics_(metrics), info_(info), start_(std::chrono::steady_clock::now()) {
    // The HTTP gateway's calls are counted as HTTP requests (drgate_http_*), not here.
    const GatewayMark* mark = metrics_.gateway_mark();
    counted_ = mark == nullptr || info_->server_context() == nullptr ||
               !mark->Verify(info_->server_context()->client_metadata());
    if (counted_) metrics_.Started(info_->method(), info_->type());
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (counted_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_.Handled(info_->method(), info_->type(), methods->GetSendStatus().error_code(),
                       seconds);
    }
    methods->Proceed();
  }

 private:
  GrpcServerMetrics& metrics_;
  grpc::experimental::ServerRpcInfo* info_;
  std::chrono::steady_clock::time_point start_;
  bool counted_ = false;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(GrpcServerMetrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(metrics_, info);
  }

 private:
  GrpcServerMetrics& metrics_;
};

}  // namespace

std::vector<GrpcServerMetrics::Method> ServedMethods() {
  std::vector<GrpcServerMetrics::Method> out;
  const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      "drgate.v1.DrBackupService");
  for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
    const auto* m = service->method(i);
    const Type type = m->client_streaming()
                          ? (m->server_streaming() ? Type::BIDI_STREAMING : Type::CLIENT_STREAMING)
                          : (m->server_streaming() ? Type::SERVER_STREAMING : Type::UNARY);
    out.push_back({"/" + service->full_name() + "/" + m->name(), type});
  }
  out.push_back({"/grpc.health.v1.Health/Check", Type::UNARY});
  out.push_back({"/grpc.health.v1.Health/Watch", Type::SERVER_STREAMING});
  out.push_back(
      {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Type::BIDI_STREAMING});
  return out;
}

GrpcServerMetrics::GrpcServerMetrics(prometheus::Registry& registry,
                                     const std::vector<Method>& methods,
                                     std::shared_ptr<const GatewayMark> gateway_mark)
    : methods_(methods),
      gateway_mark_(std::move(gateway_mark)),
      started_(prometheus::BuildCounter()
                   .Name("grpc_server_started_total")
                   .Help("RPCs started on the server.")
                   .Register(registry)),
      handled_(prometheus::BuildCounter()
                   .Name("grpc_server_handled_total")
                   .Help("RPCs completed on the server, whatever their status code.")
                   .Register(registry)),
      handling_(prometheus::BuildHistogram()
                    .Name("grpc_server_handling_seconds")
                    .Help("Time from the start of an RPC to its status, on the server.")
                    .Register(registry)) {
  for (const Method& m : methods_) {
    Labels l = LabelsOf(m.full_name.c_str(), m.type);
    started_.Add({{"grpc_service", l.service}, {"grpc_method", l.method}, {"grpc_type", l.type}});
    handled_.Add({{"grpc_service", l.service},
                  {"grpc_method", l.method},
                  {"grpc_type", l.type},
                  {"grpc_code", "OK"}});
    handling_.Add({{"grpc_service", l.service}, {"grpc_method", l.method}, {"grpc_type", l.type}},
                  kBuckets);
  }
}

GrpcServerMetrics::Labels GrpcServerMetrics::LabelsOf(const char* full_name, Type type) const {
  for (const Method& m : methods_) {
    if (m.full_name == full_name) {
      // "/pkg.Service/Method"
      const auto slash = m.full_name.rfind('/');
      return Labels{m.full_name.substr(1, slash - 1), m.full_name.substr(slash + 1),
                    TypeName(type)};
    }
  }
  return Labels{"unknown", "unknown", TypeName(type)};
}

void GrpcServerMetrics::Started(const char* method, Type type) {
  Labels l = LabelsOf(method, type);
  started_.Add({{"grpc_service", l.service}, {"grpc_method", l.method}, {"grpc_type", l.type}})
      .Increment();
}

void GrpcServerMetrics::Handled(const char* method, Type type, grpc::StatusCode code,
                                double seconds) {
  Labels l = LabelsOf(method, type);
  handled_
      .Add({{"grpc_service", l.service},
            {"grpc_method", l.method},
            {"grpc_type", l.type},
            {"grpc_code", CodeName(code)}})
      .Increment();
  handling_
      .Add({{"grpc_service", l.service}, {"grpc_method", l.method}, {"grpc_type", l.type}},
           kBuckets)
      .Observe(seconds);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcServerMetrics::MakeFactory() {
  return std::make_unique<Factory>(*this);
}

}  // namespace drgate::plugin
