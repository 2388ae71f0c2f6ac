#include "plugin/http_gateway.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <map>
#include <optional>

#include "drgate/v1/drgate.pb.h"
#include "plugin/http_errors.h"
#include "plugin/http_routes.h"
#include "plugin/status_mapping.h"

namespace drgate::plugin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Shared {
  HttpGatewayOptions options;
  std::vector<Route> routes;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
  std::atomic<int> connections{0};
};

// Counts one open connection for as long as it lives.
class ConnectionSlot {
 public:
  explicit ConnectionSlot(std::shared_ptr<Shared> s) : s_(std::move(s)) { ++s_->connections; }
  ~ConnectionSlot() { --s_->connections; }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;

 private:
  std::shared_ptr<Shared> s_;
};

// One gRPC call on behalf of an HTTP request.
struct Call {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  const google::protobuf::MethodDescriptor* method = nullptr;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::shared_ptr<Shared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)), slot_(shared_) {}

  void Start() { Read(); }

 private:
  void Read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->options.max_header_bytes));
    parser_->body_limit(shared_->options.max_body_bytes);
    stream_.expires_after(shared_->options.request_timeout);
    http::async_read(
        stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec == http::error::header_limit || ec == http::error::body_limit) {
            return self->Refuse(
                ec == http::error::header_limit ? 431 : 413,
                grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, ec == http::error::header_limit
                                                                     ? "request header too large"
                                                                     : "request body too large"),
                /*close=*/true);
          }
          if (ec) return self->Close();
          self->req_ = self->parser_->release();
          self->Handle();
        });
  }

  void Handle() {
    // No read deadline while the call runs: the call's own deadline bounds it.
    stream_.expires_never();
    const std::string target(req_.target());
    const std::size_t q = target.find('?');
    const std::string path = target.substr(0, q);
    const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    std::map<std::string, std::string> variables;
    bool other_method = false;
    const Route* route = FindRoute(shared_->routes, std::string(req_.method_string()), path,
                                   variables, &other_method);
    if (route == nullptr) {
      if (other_method) {
        return Refuse(
            405, grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                              std::string(req_.method_string()) + " is not served on " + path));
      }
      return Refuse(404, grpc::Status(grpc::StatusCode::NOT_FOUND, "no route for " + path));
    }
    if (route->method->server_streaming()) {
      return Refuse(501, grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                      route->method->name() + " over HTTP is not served yet"));
    }
    std::unique_ptr<google::protobuf::Message> request(
        google::protobuf::MessageFactory::generated_factory()
            ->GetPrototype(route->method->input_type())
            ->New());
    if (Status s = FillRequest(*route, variables, query, req_.body(), *request); !s.ok()) {
      return Refuse(400, ToGrpcStatus(s));
    }
    if (auto key = req_.find("Idempotency-Key"); key != req_.end()) {
      const auto* field = request->GetDescriptor()->FindFieldByName("request_id");
      if (field != nullptr) {
        const auto* reflection = request->GetReflection();
        const std::string given = reflection->GetString(*request, field);
        const std::string header(key->value());
        if (!given.empty() && given != header) {
          return Refuse(400, ToGrpcStatus(InvalidArgument("requestId: the body says \"" + given +
                                                          "\", the Idempotency-Key header \"" +
                                                          header + "\"")));
        }
        reflection->SetString(request.get(), field, header);
      }
    }

    auto call = std::make_shared<Call>();
    call->method = route->method;
    std::string bytes;
    request->SerializeToString(&bytes);
    grpc::Slice slice(bytes);
    call->request = grpc::ByteBuffer(&slice, 1);
    if (auto auth = req_.find(http::field::authorization); auth != req_.end()) {
      call->context.AddMetadata("authorization", std::string(auth->value()));
    }
    std::chrono::nanoseconds deadline = shared_->options.default_deadline;
    if (auto t = req_.find("grpc-timeout"); t != req_.end()) {
      auto parsed = ParseGrpcTimeout(std::string(t->value()));
      if (!parsed) {
        return Refuse(400, ToGrpcStatus(InvalidArgument(
                               "grpc-timeout: must be digits and a unit (H, M, S, m, u, n)")));
      }
      deadline = *parsed;
    }
    call->context.set_deadline(std::chrono::system_clock::now() + deadline);
    const std::string name =
        "/" + route->method->service()->full_name() + "/" + route->method->name();
    shared_->stub->UnaryCall(&call->context, name, grpc::StubOptions(), &call->request,
                             &call->response,
                             [self = shared_from_this(), call](grpc::Status status) {
                               // On a gRPC thread: the answer is written on the connection's.
                               asio::post(self->stream_.get_executor(),
                                          [self, call, status] { self->Answered(*call, status); });
                             });
  }

  void Answered(Call& call, const grpc::Status& status) {
    if (!status.ok()) return Refuse(HttpStatusOf(status.error_code()), status);
    std::unique_ptr<google::protobuf::Message> response(
        google::protobuf::MessageFactory::generated_factory()
            ->GetPrototype(call.method->output_type())
            ->New());
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (call.response.Dump(&slices).ok()) {
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    if (!response->ParseFromString(bytes) ||
        !google::protobuf::util::MessageToJsonString(*response, &json, options).ok()) {
      return Refuse(500, grpc::Status(grpc::StatusCode::INTERNAL, "cannot encode the answer"));
    }
    Respond(200, std::move(json), std::nullopt, /*close=*/false);
  }

  void Refuse(int code, const grpc::Status& status, bool close = false) {
    Respond(code, ErrorBody(status), RetryAfterSeconds(status), close);
  }

  void Respond(int code, std::string body, std::optional<int64_t> retry_after, bool close) {
    res_ = {};
    res_.version(req_.version() == 0 ? 11 : req_.version());
    res_.result(static_cast<unsigned>(code));
    res_.set(http::field::server, "drgate");
    res_.set(http::field::content_type, "application/json");
    if (retry_after) res_.set(http::field::retry_after, std::to_string(*retry_after));
    res_.keep_alive(!close && req_.keep_alive());
    res_.body() = std::move(body);
    res_.body() += '\n';
    res_.prepare_payload();
    stream_.expires_after(shared_->options.request_timeout);
    http::async_write(stream_, res_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec || !self->res_.keep_alive()) return self->Close();
                        self->Read();
                      });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  std::shared_ptr<Shared> shared_;
  ConnectionSlot slot_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

class GatewayImpl final : public HttpGateway, public std::enable_shared_from_this<GatewayImpl> {
 public:
  GatewayImpl(asio::io_context& io, std::shared_ptr<Shared> shared)
      : io_(io), acceptor_(asio::make_strand(io)), shared_(std::move(shared)) {}

  Status Listen(const std::string& listen) {
    const auto colon = listen.rfind(':');
    std::string host = listen.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    beast::error_code ec;
    tcp::resolver resolver(acceptor_.get_executor());
    auto results = resolver.resolve(host, listen.substr(colon + 1), tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return Status(StatusCode::kFailedPrecondition,
                    "http.listen: cannot resolve \"" + host + "\": " + ec.message(),
                    Reason::kListenFailed);
    }
    const tcp::endpoint endpoint = results.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(StatusCode::kFailedPrecondition,
                    "http.listen: cannot listen on " + listen + ": " + ec.message(),
                    Reason::kListenFailed);
    }
    port_ = acceptor_.local_endpoint().port();
    return Status::Ok();
  }

  void Accept() {
    acceptor_.async_accept(asio::make_strand(io_), [self = shared_from_this()](beast::error_code ec,
                                                                               tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
      if (!ec && self->shared_->connections.load() >= self->shared_->options.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);  // over the cap: closed before anything is read
      } else if (!ec) {
        std::make_shared<Connection>(std::move(socket), self->shared_)->Start();
      }
      self->Accept();
    });
  }

  int port() const override { return port_; }
  void Stop() override {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
    });
  }

 private:
  asio::io_context& io_;
  tcp::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
  int port_ = 0;
};

// Owns the shared implementation and stops it when destroyed.
class GatewayHandle final : public HttpGateway {
 public:
  explicit GatewayHandle(std::shared_ptr<GatewayImpl> impl) : impl_(std::move(impl)) {}
  ~GatewayHandle() override { impl_->Stop(); }
  int port() const override { return impl_->port(); }
  void Stop() override { impl_->Stop(); }

 private:
  std::shared_ptr<GatewayImpl> impl_;
};

}  // namespace

std::optional<std::chrono::nanoseconds> ParseGrpcTimeout(std::string_view text) {
  // gRPC's TimeoutValue: 1-8 digits, then the unit.
  if (text.size() < 2 || text.size() > 9) return std::nullopt;
  int64_t n = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  // 99999999H does not fit in int64 nanoseconds: longer timeouts are cut to kMaxGrpcTimeout
  // (compared in the unit given, before any conversion can overflow).
  auto capped = [](auto d) -> std::chrono::nanoseconds {
    using D = decltype(d);
    if (d >= std::chrono::duration_cast<D>(kMaxGrpcTimeout)) return kMaxGrpcTimeout;
    return d;
  };
  switch (text.back()) {
    case 'H': return capped(std::chrono::hours(n));
    case 'M': return capped(std::chrono::minutes(n));
    case 'S': return capped(std::chrono::seconds(n));
    case 'm': return capped(std::chrono::milliseconds(n));
    case 'u': return capped(std::chrono::microseconds(n));
    case 'n': return capped(std::chrono::nanoseconds(n));
    default: return std::nullopt;
  }
}

StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(boost::asio::io_context& io,
                                                          const HttpGatewayOptions& options,
                                                          std::shared_ptr<grpc::Channel> channel) {
  auto shared = std::make_shared<Shared>();
  shared->options = options;
  auto routes =
      RoutesOf(*v1::GetJobRequest::descriptor()->file()->FindServiceByName("DrBackupService"));
  if (!routes.ok()) return routes.status();
  shared->routes = std::move(*routes);
  shared->channel = std::move(channel);
  shared->stub = std::make_unique<grpc::GenericStub>(shared->channel);
  auto impl = std::make_shared<GatewayImpl>(io, shared);
  if (Status s = impl->Listen(options.listen); !s.ok()) return s;
  impl->Accept();
  return std::unique_ptr<HttpGateway>(std::make_unique<GatewayHandle>(std::move(impl)));
}

}  // namespace drgate::plugin
