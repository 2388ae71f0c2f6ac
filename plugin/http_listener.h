#pragma once

// What drgate's two HTTP ports (the metrics port, plugin/http_admin.h, and the HTTP/JSON port,
// plugin/http_gateway.h) share: a listener that binds HOST:PORT and accepts connections on their
// own strands, closing those over a cap before anything is read; and a server TLS context made
// from PEM files. Each port brings its own connection type.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <functional>
#include <memory>
#include <string>

#include "core/common/status.h"

namespace drgate::plugin {

// The class is thread-safe: Accept, port and Stop may be called from any thread.
class HttpListener : public std::enable_shared_from_this<HttpListener> {
 public:
  // Takes an accepted socket (on its own strand) and serves it.
  using Serve = std::function<void(boost::asio::ip::tcp::socket socket)>;

  // Binds `listen` (HOST:PORT, [v6]:PORT; port 0 picks one). FAILED_PRECONDITION (reason
  // LISTEN_FAILED) naming `key` ("http.listen") when it cannot.
  static StatusOr<std::shared_ptr<HttpListener>> Bind(boost::asio::io_context& io,
                                                      const std::string& key,
                                                      const std::string& listen);

  // Accepts until Stop: a socket is closed at once while `full()` holds, else given to `serve`.
  void Accept(std::function<bool()> full, Serve serve);
  int port() const { return port_; }
  // Closes the listening socket; connections already accepted carry on.
  void Stop();

  explicit HttpListener(boost::asio::io_context& io);

 private:
  void AcceptNext();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::function<bool()> full_;
  Serve serve_;
  int port_ = 0;
};

// Counts one open connection in `owner->connections` (a std::atomic<int>, which the port's
// Accept `full` test reads) for as long as the slot lives: a member of the connection.
template <typename Owner>
class ConnectionSlot {
 public:
  explicit ConnectionSlot(std::shared_ptr<Owner> owner) : owner_(std::move(owner)) {
    ++owner_->connections;
  }
  ~ConnectionSlot() { --owner_->connections; }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;

 private:
  std::shared_ptr<Owner> owner_;
};

// Serves an accepted socket with the port's connection type `Conn<Stream>` (constructed from the
// stream and `arg`, then Start()ed): over TLS with `tls`, plain without.
template <template <typename> class Conn, typename Arg>
void StartConnection(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context* tls, Arg arg) {
  using Plain = boost::beast::tcp_stream;
  using Tls = boost::asio::ssl::stream<Plain>;
  if (tls != nullptr) {
    std::make_shared<Conn<Tls>>(Tls(Plain(std::move(socket)), *tls), std::move(arg))->Start();
  } else {
    std::make_shared<Conn<Plain>>(Plain(std::move(socket)), std::move(arg))->Start();
  }
}

// A server TLS context, TLS 1.2 or later, from PEM files; with `client_ca_file`, client
// certificates are verified against it (required when `require_client_cert`). Errors are
// FAILED_PRECONDITION naming `<key>.cert_file`, `<key>.key_file` or `<key>.client_ca_file`.
StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const std::string& key, const std::string& cert_file, const std::string& key_file,
    const std::string& client_ca_file = "", bool require_client_cert = false);

}  // namespace drgate::plugin
