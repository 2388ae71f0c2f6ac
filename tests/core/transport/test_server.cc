#include "tests/core/transport/test_server.h"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace drgate::commserv::testing {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

TestServer::TestServer(Handler handler, const drgate::testing::Issued* cert)
    : handler_(std::move(handler)),
      tls_(cert != nullptr),
      ssl_ctx_(ssl::context::tls_server),
      acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
  if (cert != nullptr) {
    ssl_ctx_.use_certificate_chain(net::buffer(cert->cert_pem));
    ssl_ctx_.use_private_key(net::buffer(cert->key_pem), ssl::context::pem);
  }
  port_ = acceptor_.local_endpoint().port();
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TestServer::~TestServer() {
  Stop();
}

void TestServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    // shutdown() on a listening socket wakes a blocked accept() (Linux); on a connected one it
    // wakes a blocked read.
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  cv_.notify_all();
  accept_thread_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(conn_threads_);
  }
  for (auto& t : threads) t.join();
}

std::vector<ReceivedRequest> TestServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::string TestServer::last_sni() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_sni_;
}

bool TestServer::WaitForClosed(int n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return closed_ >= n; });
}

void TestServer::AcceptLoop() {
  for (;;) {
    tcp::socket socket(io_);
    boost::system::error_code ec;
    acceptor_.accept(socket, ec);
    std::lock_guard<std::mutex> lock(mu_);
    if (ec || stopping_) return;
    const int index = ++accepts_;
    open_fds_.insert(socket.native_handle());
    conn_threads_.emplace_back(
        [this, s = std::move(socket), index]() mutable { Serve(std::move(s), index); });
  }
}

void TestServer::Serve(tcp::socket socket, int index) {
  if (tls_) {
    ssl::stream<tcp::socket&> stream(socket, ssl_ctx_);
    boost::system::error_code ec;
    stream.handshake(ssl::stream_base::server, ec);
    if (!ec) {
      const char* sni = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_sni_ = sni != nullptr ? sni : "";
      }
      Exchange(stream, index);
    }
  } else {
    Exchange(socket, index);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.erase(socket.native_handle());
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    ++closed_;
  }
  cv_.notify_all();
}

template <typename Stream>
void TestServer::Exchange(Stream& stream, int index) {
  boost::beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> request;
    boost::system::error_code ec;
    http::read(stream, buffer, request, ec);
    if (ec) return;
    ReceivedRequest received;
    received.connection = index;
    received.method = std::string(request.method_string());
    received.target = std::string(request.target());
    for (const auto& field : request) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      received.headers[name] = std::string(field.value());
    }
    received.body = request.body();
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(received);
    }
    const Reply reply = handler_(received);
    switch (reply.kind) {
      case Reply::Kind::kHang: {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_; });
        return;
      }
      case Reply::Kind::kClose: return;
      case Reply::Kind::kRespond: break;
    }
    if (!reply.raw.empty()) {
      net::write(stream, net::buffer(reply.raw), ec);
      if (ec || reply.close_after) return;
      continue;
    }
    http::response<http::string_body> response(static_cast<http::status>(reply.status), 11);
    response.set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) response.insert(name, value);
    response.keep_alive(!reply.connection_close);
    response.body() = reply.body;
    response.prepare_payload();
    http::write(stream, response, ec);
    if (ec || reply.connection_close || reply.close_after) return;
  }
}

}  // namespace drgate::commserv::testing
