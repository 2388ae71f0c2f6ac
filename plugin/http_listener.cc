#include "plugin/http_listener.h"

#include <openssl/ssl.h>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/error.hpp>

namespace drgate::plugin {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

HttpListener::HttpListener(asio::io_context& io) : io_(io), acceptor_(asio::make_strand(io)) {}

StatusOr<std::shared_ptr<HttpListener>> HttpListener::Bind(asio::io_context& io,
                                                           const std::string& key,
                                                           const std::string& listen) {
  auto self = std::make_shared<HttpListener>(io);
  const auto colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::beast::error_code ec;
  tcp::resolver resolver(self->acceptor_.get_executor());
  auto results = resolver.resolve(host, listen.substr(colon + 1), tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return Status(StatusCode::kFailedPrecondition,
                  key + ": cannot resolve \"" + host + "\": " + ec.message(),
                  Reason::kListenFailed);
  }
  const tcp::endpoint endpoint = results.begin()->endpoint();
  auto& acceptor = self->acceptor_;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(StatusCode::kFailedPrecondition,
                  key + ": cannot listen on " + listen + ": " + ec.message(),
                  Reason::kListenFailed);
  }
  self->port_ = acceptor.local_endpoint().port();
  return self;
}

void HttpListener::Accept(std::shared_ptr<ConnectionTable> table, Serve serve) {
  table_ = std::move(table);
  serve_ = std::move(serve);
  AcceptNext();
}

void HttpListener::AcceptNext() {
  acceptor_.async_accept(
      asio::make_strand(io_),
      [self = shared_from_this()](boost::beast::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
        if (!ec) {
          boost::beast::error_code peer_ec;
          const tcp::endpoint peer = socket.remote_endpoint(peer_ec);
          std::shared_ptr<ConnectionTable::Entry> entry;
          if (!peer_ec) entry = self->table_->Admit(peer.address().to_string());
          if (entry) {
            self->serve_(std::move(socket), std::move(entry));
          } else {
            boost::beast::error_code ignored;
            socket.close(ignored);  // refused: closed before anything is read
          }
        }
        self->AcceptNext();
      });
}

ConnectionTable::ConnectionTable(int max_connections, int max_per_client)
    : max_connections_(max_connections), max_per_client_(max_per_client) {}

std::shared_ptr<ConnectionTable::Entry> ConnectionTable::Admit(const std::string& client) {
  std::function<void()> make_room;
  {
    std::lock_guard lock(mu_);
    int& mine = per_client_[client];
    if (mine >= max_per_client_) {
      if (mine == 0) per_client_.erase(client);
      return nullptr;
    }
    if (open_ >= max_connections_) {
      if (idle_.empty()) {
        if (mine == 0) per_client_.erase(client);
        return nullptr;
      }
      // The longest idle makes room; it stops counting as idle at once, so one idle connection
      // makes room for one new one only.
      Entry* oldest = idle_.front();
      idle_.pop_front();
      oldest->idle_ = false;
      make_room = std::move(oldest->close_);
      oldest->close_ = nullptr;
    }
    ++mine;
    ++open_;
  }
  if (make_room) make_room();
  return std::shared_ptr<Entry>(new Entry(shared_from_this(), client));
}

int ConnectionTable::open() const {
  std::lock_guard lock(mu_);
  return open_;
}

ConnectionTable::Entry::Entry(std::shared_ptr<ConnectionTable> table, std::string client)
    : table_(std::move(table)), client_(std::move(client)) {}

ConnectionTable::Entry::~Entry() {
  std::lock_guard lock(table_->mu_);
  if (idle_) table_->idle_.erase(idle_at_);
  --table_->open_;
  auto it = table_->per_client_.find(client_);
  if (it != table_->per_client_.end() && --it->second <= 0) table_->per_client_.erase(it);
}

void ConnectionTable::Entry::Idle(std::function<void()> close) {
  std::lock_guard lock(table_->mu_);
  if (idle_) table_->idle_.erase(idle_at_);
  idle_at_ = table_->idle_.insert(table_->idle_.end(), this);
  idle_ = true;
  close_ = std::move(close);
}

void ConnectionTable::Entry::Busy() {
  std::lock_guard lock(table_->mu_);
  if (idle_) table_->idle_.erase(idle_at_);
  idle_ = false;
  close_ = nullptr;
}

void HttpListener::Stop() {
  asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
    boost::beast::error_code ec;
    self->acceptor_.close(ec);
  });
}

StatusOr<std::shared_ptr<ssl::context>> MakeServerTlsContext(const std::string& key,
                                                             const std::string& cert_file,
                                                             const std::string& key_file,
                                                             const std::string& client_ca_file,
                                                             bool require_client_cert) {
  auto tls = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
  auto failed = [&key](const std::string& field, const std::string& file,
                       boost::beast::error_code ec) {
    return Status(StatusCode::kFailedPrecondition,
                  key + "." + field + " \"" + file + "\": " + ec.message(), Reason::kListenFailed);
  };
  boost::beast::error_code ec;
  tls->use_certificate_chain_file(cert_file, ec);
  if (ec) return failed("cert_file", cert_file, ec);
  tls->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) return failed("key_file", key_file, ec);
  if (!client_ca_file.empty()) {
    tls->load_verify_file(client_ca_file, ec);
    if (ec) return failed("client_ca_file", client_ca_file, ec);
    tls->set_verify_mode(ssl::verify_peer |
                         (require_client_cert ? ssl::verify_fail_if_no_peer_cert : 0));
  }
  return tls;
}

}  // namespace drgate::plugin
