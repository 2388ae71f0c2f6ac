#include "plugin/http_admin.h"

#include "core/metrics/text_format.h"
#include "plugin/http_listener.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <optional>

namespace drgate::plugin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

struct Handlers {
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables;
  std::function<Readiness()> readiness;
  std::string expected_authorization;  // "Basic <base64(user:password)>", empty: no auth
  // Limits (HttpAdminOptions).
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 1024;
  std::chrono::milliseconds request_timeout{10000};
};

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

bool Authorized(const Handlers& h, const http::request<http::string_body>& req) {
  if (h.expected_authorization.empty()) return true;
  const auto it = req.find(http::field::authorization);
  if (it == req.end()) return false;
  const std::string given(it->value());
  return given.size() == h.expected_authorization.size() &&
         CRYPTO_memcmp(given.data(), h.expected_authorization.data(), given.size()) == 0;
}

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
  } else if (path == "/metrics" && !Authorized(h, req)) {
    res.result(http::status::unauthorized);
    res.set(http::field::www_authenticate, "Basic realm=\"drgate metrics\"");
    res.set(http::field::content_type, "text/plain");
    res.body() = "credentials required\n";
  } else if (path == "/metrics") {
    res.result(http::status::ok);
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    std::vector<prometheus::MetricFamily> families;
    for (const auto& c : h.collectables) {
      auto collected = c->Collect();
      std::move(collected.begin(), collected.end(), std::back_inserter(families));
    }
    res.body() = SerializeTextFormat(families);
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

// One connection: (TLS handshake,) read a request, answer, repeat while keep-alive. `Stream` is
// beast::tcp_stream or ssl::stream<beast::tcp_stream>.
template <typename Stream>
class Connection : public std::enable_shared_from_this<Connection<Stream>> {
 public:
  Connection(Stream stream, std::shared_ptr<Handlers> handlers,
             std::shared_ptr<ConnectionTable::Entry> entry)
      : stream_(std::move(stream)), handlers_(std::move(handlers)), entry_(std::move(entry)) {}

  void Start() {
    Idle();
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      Read();
    } else {
      beast::get_lowest_layer(stream_).expires_after(handlers_->request_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->Read();
                              });
    }
  }

 private:
  // Waiting for a request: the connection may be closed to make room for a new one.
  void Idle() {
    entry_->Idle([weak = this->weak_from_this(), executor = stream_.get_executor()] {
      boost::asio::post(executor, [weak] {
        if (auto self = weak.lock()) self->Close();
      });
    });
  }

  void Read() {
    Idle();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(handlers_->max_header_bytes));
    parser_->body_limit(handlers_->max_body_bytes);
    // Idle and slow clients are cut off: the whole request must arrive within the timeout.
    beast::get_lowest_layer(stream_).expires_after(handlers_->request_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec == http::error::header_limit || ec == http::error::body_limit) {
                         return self->TooLarge(ec == http::error::header_limit);
                       }
                       if (ec) return self->Close();
                       self->entry_->Busy();
                       self->req_ = self->parser_->release();
                       self->Write();
                     });
  }
  // 431 or 413, then the connection closes (the rest of the request is not read).
  void TooLarge(bool header) {
    res_ = {};
    res_.version(11);
    res_.result(header ? http::status::request_header_fields_too_large
                       : http::status::payload_too_large);
    res_.set(http::field::server, "drgate");
    res_.set(http::field::content_type, "text/plain");
    res_.body() = header ? "request header too large\n" : "request body too large\n";
    res_.keep_alive(false);
    res_.prepare_payload();
    Send();
  }
  void Write() {
    res_ = Answer(*handlers_, req_);
    Send();
  }
  void Send() {
    // A client too slow to take the answer is cut off too.
    beast::get_lowest_layer(stream_).expires_after(handlers_->request_timeout);
    http::async_write(stream_, res_,
                      [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec || !self->res_.keep_alive()) return self->Close();
                        self->Read();
                      });
  }
  void Close() {
    beast::error_code ec;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
    beast::get_lowest_layer(stream_).cancel();  // a pending read ends now
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  std::shared_ptr<Handlers> handlers_;
  std::shared_ptr<ConnectionTable::Entry> entry_;
};

// Stops the listener when destroyed.
class HttpAdminHandle final : public HttpAdmin {
 public:
  explicit HttpAdminHandle(std::shared_ptr<HttpListener> listener)
      : listener_(std::move(listener)) {}
  ~HttpAdminHandle() override { listener_->Stop(); }
  int port() const override { return listener_->port(); }
  void Stop() override { listener_->Stop(); }

 private:
  std::shared_ptr<HttpListener> listener_;
};

}  // namespace

// The metrics port's TLS context from metrics.tls's files.
static StatusOr<std::shared_ptr<ssl::context>> MakeTlsContext(const HttpAdminOptions& options) {
  return MakeServerTlsContext("metrics.tls", options.cert_file, options.key_file);
}

Status HttpAdmin::CheckTls(const HttpAdminOptions& options) {
  if (options.cert_file.empty()) return Status::Ok();
  return MakeTlsContext(options).status();
}

StatusOr<std::unique_ptr<HttpAdmin>> HttpAdmin::Start(
    asio::io_context& io, const HttpAdminOptions& options,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
    std::function<Readiness()> readiness) {
  auto handlers = std::make_shared<Handlers>();
  handlers->collectables = std::move(collectables);
  handlers->readiness = std::move(readiness);
  handlers->max_header_bytes = options.max_header_bytes;
  handlers->max_body_bytes = options.max_body_bytes;
  handlers->request_timeout = options.request_timeout;
  if (!options.username.empty()) {
    handlers->expected_authorization = "Basic " + Base64(options.username + ":" + options.password);
  }
  std::shared_ptr<ssl::context> tls;
  if (!options.cert_file.empty()) {
    auto ctx = MakeTlsContext(options);
    if (!ctx.ok()) return ctx.status();
    tls = std::move(*ctx);
  }
  auto listener = HttpListener::Bind(io, "metrics.listen", options.listen);
  if (!listener.ok()) return listener.status();
  (*listener)->Accept(
      std::make_shared<ConnectionTable>(options.max_connections,
                                        options.max_connections_per_client),
      [handlers, tls](tcp::socket socket, std::shared_ptr<ConnectionTable::Entry> entry) {
        StartConnection<Connection>(std::move(socket), tls.get(), handlers, std::move(entry));
      });
  return std::unique_ptr<HttpAdmin>(std::make_unique<HttpAdminHandle>(std::move(*listener)));
}

}  // namespace drgate::plugin
