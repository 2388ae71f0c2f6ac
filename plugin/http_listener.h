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
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/common/status.h"

namespace drgate::plugin {

// The open connections of one port, and who may open another. One client cannot take the port
// for itself: each client address holds at most `max_per_client` connections; and when all
// `max_connections` are open, the connection idle the longest (waiting for a request, not
// answering one) is closed to make room, as nginx and Envoy's overload manager do, before a new
// connection is refused.
//
// The class is thread-safe.
class ConnectionTable : public std::enable_shared_from_this<ConnectionTable> {
 public:
  // One admitted connection: a member of it, counted until destroyed.
  class Entry {
   public:
    ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    // The connection waits for a request: `close` may be called, once, from any thread, to make
    // room for a new connection; it must hand the close to the connection's own strand.
    void Idle(std::function<void()> close);
    // The connection is answering a request (or streaming): it is not closed to make room.
    void Busy();

   private:
    friend class ConnectionTable;
    Entry(std::shared_ptr<ConnectionTable> table, std::string client);
    std::shared_ptr<ConnectionTable> table_;
    std::string client_;
    std::list<Entry*>::iterator idle_at_;  // guarded by table_->mu_
    bool idle_ = false;                    // guarded by table_->mu_
    std::function<void()> close_;          // guarded by table_->mu_
  };

  ConnectionTable(int max_connections, int max_per_client);

  // An entry for a new connection from `client` (its address), or nullptr when refused: the
  // client holds its share already, or the port is full and no connection is idle.
  std::shared_ptr<Entry> Admit(const std::string& client);
  int open() const;

 private:
  const int max_connections_;
  const int max_per_client_;
  mutable std::mutex mu_;
  int open_ = 0;                           // guarded by mu_
  std::map<std::string, int> per_client_;  // guarded by mu_
  std::list<Entry*> idle_;                 // guarded by mu_: oldest first
};

// The class is thread-safe: Accept, port and Stop may be called from any thread.
class HttpListener : public std::enable_shared_from_this<HttpListener> {
 public:
  // Takes an accepted socket (on its own strand) and its admission, and serves it.
  using Serve = std::function<void(boost::asio::ip::tcp::socket socket,
                                   std::shared_ptr<ConnectionTable::Entry> entry)>;

  // Binds `listen` (HOST:PORT, [v6]:PORT; port 0 picks one). FAILED_PRECONDITION (reason
  // LISTEN_FAILED) naming `key` ("http.listen") when it cannot.
  static StatusOr<std::shared_ptr<HttpListener>> Bind(boost::asio::io_context& io,
                                                      const std::string& key,
                                                      const std::string& listen);

  // Accepts until Stop: a socket `table` refuses is closed at once, before anything is read;
  // the others go to `serve`.
  void Accept(std::shared_ptr<ConnectionTable> table, Serve serve);
  int port() const { return port_; }
  // Closes the listening socket; connections already accepted carry on.
  void Stop();

  explicit HttpListener(boost::asio::io_context& io);

 private:
  void AcceptNext();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<ConnectionTable> table_;
  Serve serve_;
  int port_ = 0;
};

// Serves an accepted socket with the port's connection type `Conn<Stream>` (constructed from the
// stream, `arg` and `entry`, then Start()ed): over TLS with `tls`, plain without.
template <template <typename> class Conn, typename Arg>
void StartConnection(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context* tls, Arg arg,
                     std::shared_ptr<ConnectionTable::Entry> entry) {
  using Plain = boost::beast::tcp_stream;
  using Tls = boost::asio::ssl::stream<Plain>;
  if (tls != nullptr) {
    std::make_shared<Conn<Tls>>(Tls(Plain(std::move(socket)), *tls), std::move(arg),
                                std::move(entry))
        ->Start();
  } else {
    std::make_shared<Conn<Plain>>(Plain(std::move(socket)), std::move(arg), std::move(entry))
        ->Start();
  }
}

// A server TLS context, TLS 1.2 or later, from PEM files; with `client_ca_file`, client
// certificates are verified against it (required when `require_client_cert`). Errors are
// FAILED_PRECONDITION naming `<key>.cert_file`, `<key>.key_file` or `<key>.client_ca_file`.
StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const std::string& key, const std::string& cert_file, const std::string& key_file,
    const std::string& client_ca_file = "", bool require_client_cert = false);

}  // namespace drgate::plugin
