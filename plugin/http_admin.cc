#include "plugin/http_admin.h"

#include <prometheus/text_serializer.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

namespace drgate::plugin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Handlers {
  std::shared_ptr<prometheus::Registry> registry;
  std::function<Readiness()> readiness;
};

http::response<http::string_body> Answer(const Handlers& h,
                                         const http::request<http::string_body>& req) {
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(req.keep_alive());
  res.set(http::field::server, "drgate");
  const std::string target(req.target());
  const std::string path = target.substr(0, target.find('?'));
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::content_type, "text/plain");
    res.body() = "only GET\n";
  } else if (path == "/metrics") {
    res.result(http::status::ok);
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = prometheus::TextSerializer().Serialize(h.registry->Collect());
  } else if (path == "/healthz") {
    res.result(http::status::ok);
    res.set(http::field::content_type, "text/plain");
    res.body() = "ok\n";
  } else if (path == "/readyz") {
    const Readiness r = h.readiness();
    res.result(r.ready ? http::status::ok : http::status::service_unavailable);
    res.set(http::field::content_type, "text/plain");
    res.body() = r.ready ? "ready\n" : "not ready: " + r.reason + "\n";
  } else {
    res.result(http::status::not_found);
    res.set(http::field::content_type, "text/plain");
    res.body() = "not found: try /metrics, /healthz or /readyz\n";
  }
  if (req.method() == http::verb::head) res.body().clear();
  res.prepare_payload();
  return res;
}

// One connection: read a request, answer, repeat while keep-alive.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::shared_ptr<Handlers> handlers)
      : stream_(std::move(socket)), handlers_(std::move(handlers)) {}

  void Read() {
    req_ = {};
    stream_.expires_after(std::chrono::seconds(30));  // idle and slow clients are cut off
    http::async_read(stream_, buffer_, req_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->Close();
                       self->Write();
                     });
  }

 private:
  void Write() {
    res_ = Answer(*handlers_, req_);
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
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  std::shared_ptr<Handlers> handlers_;
};

class HttpAdminImpl final : public HttpAdmin, public std::enable_shared_from_this<HttpAdminImpl> {
 public:
  HttpAdminImpl(asio::io_context& io, std::shared_ptr<Handlers> handlers)
      : io_(io), acceptor_(asio::make_strand(io)), handlers_(std::move(handlers)) {}

  Status Listen(const std::string& listen) {
    const auto colon = listen.rfind(':');
    std::string host = listen.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    beast::error_code ec;
    const std::string port = listen.substr(colon + 1);
    tcp::resolver resolver(acceptor_.get_executor());
    auto results = resolver.resolve(host, port, tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return Status(StatusCode::kFailedPrecondition,
                    "metrics.listen: cannot resolve \"" + host + "\": " + ec.message(),
                    "LISTEN_FAILED");
    }
    const tcp::endpoint endpoint = results.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(StatusCode::kFailedPrecondition,
                    "metrics.listen: cannot listen on " + listen + ": " + ec.message(),
                    "LISTEN_FAILED");
    }
    port_ = acceptor_.local_endpoint().port();
    return Status::Ok();
  }

  void Accept() {
    acceptor_.async_accept(asio::make_strand(io_), [self = shared_from_this()](beast::error_code ec,
                                                                               tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) {
        return;
      }
      if (!ec) {
        std::make_shared<Connection>(std::move(socket), self->handlers_)->Read();
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
  std::shared_ptr<Handlers> handlers_;
  int port_ = 0;
};

// Owns the shared implementation; stopping on destruction.
class HttpAdminHandle final : public HttpAdmin {
 public:
  explicit HttpAdminHandle(std::shared_ptr<HttpAdminImpl> impl) : impl_(std::move(impl)) {}
  ~HttpAdminHandle() override { impl_->Stop(); }
  int port() const override { return impl_->port(); }
  void Stop() override { impl_->Stop(); }

 private:
  std::shared_ptr<HttpAdminImpl> impl_;
};

}  // namespace

StatusOr<std::unique_ptr<HttpAdmin>> HttpAdmin::Start(
    asio::io_context& io, const std::string& listen, std::shared_ptr<prometheus::Registry> registry,
    std::function<Readiness()> readiness) {
  auto handlers = std::make_shared<Handlers>(Handlers{std::move(registry), std::move(readiness)});
  auto impl = std::make_shared<HttpAdminImpl>(io, std::move(handlers));
  if (Status s = impl->Listen(listen); !s.ok()) return s;
  impl->Accept();
  return std::unique_ptr<HttpAdmin>(std::make_unique<HttpAdminHandle>(std::move(impl)));
}

}  // namespace drgate::plugin
