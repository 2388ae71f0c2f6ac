#pragma once

// A tiny scripted HTTP/HTTPS server for transport tests: binds 127.0.0.1:0, serves each accepted
// connection on its own thread with blocking Beast calls, and answers every request as the
// test's handler says (respond, hang, or close). Blocking is fine here: this is the far end of
// the wire, not the code under test.
//
// Thread-safety: the accessors may be called from any thread while the server runs.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "tests/fakes/test_pki.h"

namespace drgate::commserv::testing {

struct ReceivedRequest {
  int connection = 0;  // 1-based accept order
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct Reply {
  enum class Kind {
    kRespond,  // write the response below
    kHang,     // never answer; the connection stays open until Stop()
    kClose,    // close the connection without answering
  };
  Kind kind = Kind::kRespond;
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body = "{}";
  bool connection_close = false;  // send "Connection: close", then close
  bool close_after = false;       // answer as keep-alive, then close anyway (a stale idle peer)
  std::string raw;                // when set, written verbatim instead of the fields above
};

using Handler = std::function<Reply(const ReceivedRequest&)>;

class TestServer {
 public:
  // HTTPS when `cert` is given, plain HTTP otherwise.
  explicit TestServer(Handler handler, const drgate::testing::Issued* cert = nullptr);
  ~TestServer();  // Stop()
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  unsigned short port() const { return port_; }
  int accepts() const { return accepts_.load(); }
  std::vector<ReceivedRequest> requests() const;
  // SNI the last TLS client sent, empty when none.
  std::string last_sni() const;
  // Waits until `n` connections have been closed by the server side.
  bool WaitForClosed(int n, std::chrono::milliseconds timeout);

  // Unblocks and joins every thread; idempotent.
  void Stop();

 private:
  void AcceptLoop();
  void Serve(boost::asio::ip::tcp::socket socket, int index);
  template <typename Stream>
  void Exchange(Stream& stream, int index);

  Handler handler_;
  bool tls_ = false;
  boost::asio::io_context io_;  // never run: only owns the blocking sockets
  boost::asio::ssl::context ssl_ctx_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<int> accepts_{0};
  std::thread accept_thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                  // guarded by mu_
  int closed_ = 0;                         // guarded by mu_
  std::set<int> open_fds_;                 // guarded by mu_: shut down by Stop() to unblock reads
  std::vector<std::thread> conn_threads_;  // guarded by mu_
  std::vector<ReceivedRequest> requests_;  // guarded by mu_
  std::string last_sni_;                   // guarded by mu_
};

}  // namespace drgate::commserv::testing
