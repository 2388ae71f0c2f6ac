#include "tools/commserv-sim/server.h"

#include <openssl/ssl.h>

#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace commserv_sim {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr auto kIdleTimeout = std::chrono::seconds(120);  // Keep-alive wait for the next request.
constexpr auto kIoTimeout = std::chrono::seconds(30);     // Handshake, write and shutdown.
constexpr size_t kBodyLimit = 1 << 20;

// What every session of one server shares. Immutable after construction.
struct SessionContext {
  Handler handler;
  bool log_requests = true;
  ConnectionHook connection_hook;
};

constexpr std::string_view kNotTls =
    "commserv-sim: this is not TLS (simulated handshake failure)\r\n";

// Answers a TLS ClientHello with bytes that are not TLS, then closes: the client's handshake
// fails ("wrong version number" or similar), before any request byte was sent.
void FailHandshake(tcp::socket socket) {
  auto shared = std::make_shared<tcp::socket>(std::move(socket));
  asio::async_write(*shared, asio::buffer(kNotTls.data(), kNotTls.size()),
                    [shared](beast::error_code, size_t) {
                      beast::error_code ignored;
                      shared->shutdown(tcp::socket::shutdown_both, ignored);
                      shared->close(ignored);
                    });
}

std::string EndpointText(const tcp::endpoint& endpoint) {
  std::ostringstream out;
  out << endpoint;
  return out.str();
}

// One connection. Every step runs on the socket's strand, so members need no lock.
template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  // `stream_args` construct the Stream: a socket, plus the ssl::context for TLS.
  template <typename... StreamArgs>
  Session(std::shared_ptr<const SessionContext> context, std::string peer,
          StreamArgs&&... stream_args)
      : context_(std::move(context)),
        peer_(std::move(peer)),
        stream_(std::forward<StreamArgs>(stream_args)...),
        delay_timer_(stream_.get_executor()) {}

  void Run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::Begin, this->shared_from_this()));
  }

 private:
  auto& Socket() { return beast::get_lowest_layer(stream_); }

  void Begin() {
    if constexpr (kTls) {
      Socket().expires_after(kIoTimeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->ReadRequest();
                              });
    } else {
      ReadRequest();
    }
  }

  void ReadRequest() {
    parser_.emplace();
    parser_->body_limit(kBodyLimit);
    Socket().expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, this->shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t /*bytes*/) {
    if (ec == http::error::end_of_stream) return ShutDown();
    if (ec) return;  // Reset, timeout or unparsable request: drop the connection.
    request_ = parser_->release();
    started_ = std::chrono::steady_clock::now();
    Process(context_->handler(request_));
  }

  void Process(Reply reply) {
    if (reply.deferred) {
      delay_timer_.expires_after(reply.delay);
      delay_timer_.async_wait([self = this->shared_from_this(),
                               deferred = std::move(reply.deferred)](beast::error_code ec) {
        if (!ec) self->Process(deferred());
      });
      return;
    }
    if (reply.raw) {
      Log("raw bytes, then closed");
      raw_ = std::move(*reply.raw);
      Socket().expires_after(kIoTimeout);
      // Through the stream (inside TLS when there is one), with no HTTP framing added.
      asio::async_write(stream_, asio::buffer(raw_),
                        [self = this->shared_from_this()](beast::error_code, size_t) {
                          beast::error_code ignored;
                          self->Socket().socket().shutdown(tcp::socket::shutdown_both, ignored);
                          self->Socket().close();
                        });
      return;
    }
    if (!reply.response) {
      beast::error_code ignored;
      if (reply.reset) {
        Log("reset");
        Socket().socket().set_option(asio::socket_base::linger(true, 0), ignored);
      } else {
        Log("closed without answer");
        Socket().socket().shutdown(tcp::socket::shutdown_both, ignored);
      }
      Socket().close();
      return;
    }
    response_ = std::move(*reply.response);
    const bool keep_alive =
        request_.keep_alive() && !beast::iequals(response_[http::field::connection], "close");
    response_.version(request_.version());
    response_.keep_alive(keep_alive);
    response_.prepare_payload();
    Log(std::to_string(response_.result_int()));
    Socket().expires_after(kIoTimeout);
    http::async_write(stream_, response_,
                      [self = this->shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        if (ec) return;
                        if (keep_alive) {
                          self->ReadRequest();
                        } else {
                          self->ShutDown();
                        }
                      });
  }

  void ShutDown() {
    if constexpr (kTls) {
      Socket().expires_after(kIoTimeout);
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ignored;
      Socket().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  // One line per request; the target carries no secrets, headers and bodies are never logged.
  void Log(const std::string& outcome) const {
    if (!context_->log_requests) return;
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started_);
    std::ostringstream line;
    line << "commserv-sim: " << peer_ << ' ' << request_.method_string() << ' ' << request_.target()
         << " -> " << outcome << " (" << elapsed.count() << " ms)\n";
    std::cerr << line.str() << std::flush;
  }

  const std::shared_ptr<const SessionContext> context_;
  const std::string peer_;
  Stream stream_;
  asio::steady_timer delay_timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  HttpResponse response_;
  std::string raw_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

std::shared_ptr<ssl::context> MakeServerTlsContext(const std::filesystem::path& cert_file,
                                                   const std::filesystem::path& key_file) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  context->use_certificate_chain_file(cert_file.string());
  context->use_private_key_file(key_file.string(), ssl::context::pem);
  return context;
}

// Owns the acceptor. Shared with its pending accept so that the handler never outlives it.
// The acceptor lives on its own strand; Close() may be called from any thread.
class Server::Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& io_context, const tcp::endpoint& endpoint,
           std::shared_ptr<ssl::context> tls, std::shared_ptr<ssl::context> expired_tls,
           std::shared_ptr<const SessionContext> context)
      : io_context_(io_context),
        acceptor_(asio::make_strand(io_context)),
        tls_(std::move(tls)),
        expired_tls_(std::move(expired_tls)),
        context_(std::move(context)) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  tcp::endpoint LocalEndpoint() const { return acceptor_.local_endpoint(); }
  tcp::acceptor::executor_type Executor() { return acceptor_.get_executor(); }

  void Accept() {
    acceptor_.async_accept(asio::make_strand(io_context_),
                           beast::bind_front_handler(&Listener::OnAccept, shared_from_this()));
  }

  void Close(std::function<void()> on_closed) {
    asio::post(acceptor_.get_executor(),
               [self = shared_from_this(), on_closed = std::move(on_closed)] {
                 beast::error_code ignored;
                 self->acceptor_.close(ignored);
                 on_closed();
               });
  }

 private:
  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;  // Closed by Close().
    if (!ec) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      const std::string peer = EndpointText(socket.remote_endpoint(ignored));
      const ConnectionFault fault =
          tls_ && context_->connection_hook ? context_->connection_hook() : ConnectionFault::kNone;
      if (fault == ConnectionFault::kHandshakeFailure ||
          (fault == ConnectionFault::kExpiredCertificate && !expired_tls_)) {
        if (context_->log_requests) {
          std::cerr << "commserv-sim: " << peer << " TLS handshake failure (fault)\n" << std::flush;
        }
        FailHandshake(std::move(socket));
      } else if (tls_) {
        auto& ctx = fault == ConnectionFault::kExpiredCertificate ? *expired_tls_ : *tls_;
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(context_, peer,
                                                                        std::move(socket), ctx)
            ->Run();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(context_, peer, std::move(socket))->Run();
      }
    }
    if (acceptor_.is_open()) Accept();
  }

  asio::io_context& io_context_;
  tcp::acceptor acceptor_;
  const std::shared_ptr<ssl::context> tls_;
  const std::shared_ptr<ssl::context> expired_tls_;  // may be null
  const std::shared_ptr<const SessionContext> context_;
};

Server::Server(asio::io_context& io_context, const tcp::endpoint& endpoint,
               std::shared_ptr<ssl::context> tls, Handler handler, bool log_requests,
               ConnectionHook connection_hook, std::shared_ptr<ssl::context> expired_tls)
    : listener_(std::make_shared<Listener>(
          io_context, endpoint, std::move(tls), std::move(expired_tls),
          std::make_shared<const SessionContext>(
              SessionContext{std::move(handler), log_requests, std::move(connection_hook)}))) {}

Server::~Server() = default;

tcp::endpoint Server::LocalEndpoint() const {
  return listener_->LocalEndpoint();
}

void Server::Start() {
  asio::dispatch(listener_->Executor(), [listener = listener_] { listener->Accept(); });
}

void Server::Stop(std::function<void()> on_closed) {
  listener_->Close(std::move(on_closed));
}

}  // namespace commserv_sim
