// HTTP/1.1 server plumbing (plain or TLS) on Boost.Beast: accepts connections, reads requests,
// hands each to a Handler and writes back its Reply, honouring keep-alive.
#ifndef DRGATE_TOOLS_COMMSERV_SIM_SERVER_H_
#define DRGATE_TOOLS_COMMSERV_SIM_SERVER_H_

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace commserv_sim {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

// What to do with one request: answer it, close the connection without answering (politely, or
// with a TCP reset), write raw bytes and close, or wait and then ask `deferred` for the real
// Reply.
struct Reply {
  std::optional<HttpResponse> response;  // nullopt (and no `deferred`, no `raw`): close.
  std::chrono::milliseconds delay{0};
  std::function<Reply()> deferred;  // When set, called after `delay` on the connection's strand.
  bool reset = false;               // Close with a TCP RST (SO_LINGER 0) instead of a FIN.
  std::optional<std::string>
      raw{};  // Written as is (no framing added), then the connection closes.

  static Reply Answer(HttpResponse response) { return Reply{std::move(response), {}, {}}; }
  static Reply Close() { return Reply{}; }
  static Reply Reset() {
    Reply r;
    r.reset = true;
    return r;
  }
  static Reply Raw(std::string bytes) {
    Reply r;
    r.raw = std::move(bytes);
    return r;
  }
  static Reply After(std::chrono::milliseconds delay, std::function<Reply()> deferred) {
    return Reply{std::nullopt, delay, std::move(deferred)};
  }
};

// What happens to a new TLS connection before any request (connection-level faults).
enum class ConnectionFault {
  kNone,
  kHandshakeFailure,    // Bytes that are not TLS, then close: the client's handshake fails.
  kExpiredCertificate,  // The handshake serves the expired certificate.
};
// Asked once per accepted TLS connection. Must be thread-safe.
using ConnectionHook = std::function<ConnectionFault()>;

// Turns a request into a Reply. Called concurrently from several connections: must be
// thread-safe. The server sets the version, keep-alive and Content-Length of the answer.
using Handler = std::function<Reply(const HttpRequest&)>;

// A TLS 1.2+ server context serving the PEM certificate chain and key in the given files.
// Throws boost::system::system_error when the files cannot be used.
std::shared_ptr<boost::asio::ssl::context> MakeServerTlsContext(
    const std::filesystem::path& cert_file, const std::filesystem::path& key_file);

// Listens on one endpoint and serves every connection on its own strand of `io_context`, so
// any number of threads may run the io_context. Each request is logged to stderr as one line
// (method, target, status, time; never headers or bodies) unless `log_requests` is false.
//
// Not copyable. Start() and Stop() may be called from any thread; each at most once.
class Server {
 public:
  // Binds and listens at once (so LocalEndpoint() knows the port when port 0 was asked).
  // `tls` may be null for plain HTTP. Throws boost::system::system_error when binding fails.
  // `connection_hook` (optional, TLS only) picks a connection-level fault per connection;
  // `expired_tls` is the context served for kExpiredCertificate (without it, that fault is
  // served as kHandshakeFailure).
  Server(boost::asio::io_context& io_context, const boost::asio::ip::tcp::endpoint& endpoint,
         std::shared_ptr<boost::asio::ssl::context> tls, Handler handler, bool log_requests,
         ConnectionHook connection_hook = nullptr,
         std::shared_ptr<boost::asio::ssl::context> expired_tls = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  boost::asio::ip::tcp::endpoint LocalEndpoint() const;
  void Start();
  // Closes the listener, then calls `on_closed` (on the listener's strand). Connections already
  // open keep being served until the io_context stops.
  void Stop(std::function<void()> on_closed);

 private:
  class Listener;
  std::shared_ptr<Listener> listener_;
};

}  // namespace commserv_sim

#endif  // DRGATE_TOOLS_COMMSERV_SIM_SERVER_H_
