#include "core/commserv/beast_transport.h"

#include "core/common/file.h"
#include "core/commserv/name_resolver.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#ifndef DRGATE_VERSION
#define DRGATE_VERSION "dev"
#endif

namespace drgate::commserv {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Steady = std::chrono::steady_clock;
// Every time the transport reads (deadlines, idle ages) comes from the injected clock
// (TransportOptions::clock), the one the session made the deadlines with.
const SystemClock kSystemClock;
using ErrorCode = boost::system::error_code;

constexpr char kUserAgent[] = "drgate/" DRGATE_VERSION;
// Commvault answers carry a handful of headers; 64 KiB leaves room for large cookies while still
// bounding memory. Exceeding it is reported like an oversized body.
constexpr std::uint32_t kHeaderLimit = 64 * 1024;

enum class Phase { kResolve, kConnect, kHandshake, kWrite, kRead };

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kResolve: return "resolve";
    case Phase::kConnect: return "connect";
    case Phase::kHandshake: return "handshake";
    case Phase::kWrite: return "write";
    case Phase::kRead: return "read";
  }
  return "unknown";
}

// Every transport error: UNAVAILABLE, "<phase>: <detail>", metadata phase and request_sent.
// request_sent is "true" from the write phase on: any byte may have reached the server.
Status PhaseError(Phase phase, Reason reason, const std::string& detail) {
  const bool sent = phase == Phase::kWrite || phase == Phase::kRead;
  return Status(StatusCode::kUnavailable, std::string(PhaseName(phase)) + ": " + detail, reason)
      .With("phase", PhaseName(phase))
      .With("request_sent", sent ? "true" : "false");
}

Status TimeoutError(Phase phase, std::chrono::milliseconds timeout) {
  return PhaseError(phase, Reason::kUpstreamTimeout,
                    "timed out after " + std::to_string(timeout.count()) + " ms");
}

bool IsIpLiteral(const std::string& host) {
  ErrorCode ec;
  net::ip::make_address(host, ec);
  return !ec;
}

bool HasControlChars(const std::string& s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// One TCP (optionally TLS) connection to the endpoint. All I/O on it runs on its own strand
// (`executor()`), so exchanges on different connections proceed in parallel on several io
// threads. A connection is used by at most one exchange at a time. While idle in the pool it has
// no pending socket operation; the pool's strand then only reads idle_since() and calls
// PeerStillOpen(), and hands it to an exchange or closes it by posting to executor().
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using TlsStream = beast::ssl_stream<beast::tcp_stream>;

  // `tls_ctx` null means plain HTTP.
  Connection(net::io_context& io, const std::shared_ptr<ssl::context>& tls_ctx)
      : tls_ctx_(tls_ctx) {
    auto strand = net::make_strand(io);
    if (tls_ctx_) {
      tls_.emplace(strand, *tls_ctx_);
    } else {
      plain_.emplace(strand);
    }
  }

  net::any_io_executor executor() { return Tcp().get_executor(); }
  beast::tcp_stream& Tcp() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  TlsStream* Tls() { return tls_ ? &*tls_ : nullptr; }
  // Kept across responses: bytes read past one response belong to the next (keep the buffer
  // alive between reads, as Beast requires).
  beast::flat_buffer& buffer() { return buffer_; }

  // Runs `f` with the concrete stream (TLS or plain) so one code path serves both.
  template <typename F>
  void WithStream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }

  Steady::time_point idle_since() const { return idle_since_; }
  // On executor(), before the connection is handed to the pool.
  void MarkIdle(Steady::time_point now) {
    Tcp().expires_never();
    idle_since_ = now;
  }

  // Non-blocking check before reuse: false when the peer has closed (FIN or RST), or sent
  // bytes we did not ask for (for TLS typically a close_notify alert). Both mean the
  // connection must not carry another request.
  bool PeerStillOpen() {
    auto& sock = Tcp().socket();
    if (!sock.is_open()) return false;
    ErrorCode ec;
    sock.non_blocking(true, ec);
    if (ec) return false;
    char byte = 0;
    const std::size_t n = sock.receive(net::buffer(&byte, 1), tcp::socket::message_peek, ec);
    ErrorCode ignored;
    sock.non_blocking(false, ignored);
    return n == 0 && ec == net::error::would_block;
  }

  // Closes the socket now. For a connection that failed or whose peer is gone.
  void CloseNow() {
    ErrorCode ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Tcp().close();
  }

  // Closes a healthy connection politely: TLS close_notify (bounded by `timeout`), then the
  // socket. Must run on executor(). The peer closing without its own close_notify
  // (stream_truncated) is the common outcome and harmless, like every other error here: the
  // connection is being discarded anyway.
  void CloseGracefully(std::chrono::milliseconds timeout) {
    if (!tls_) {
      CloseNow();
      return;
    }
    Tcp().expires_after(timeout);
    tls_->async_shutdown([self = shared_from_this()](ErrorCode) { self->CloseNow(); });
  }

 private:
  std::shared_ptr<ssl::context> tls_ctx_;  // outlives tls_, which was built from it
  std::optional<TlsStream> tls_;
  std::optional<beast::tcp_stream> plain_;
  beast::flat_buffer buffer_;
  Steady::time_point idle_since_{};
};

class Pool;

// One request/response on one connection: (resolve, connect, handshake when the connection is
// new), write, read. Runs entirely on the connection's strand and keeps itself, the connection
// and the pool alive through the shared_ptrs its pending handlers hold. Calls `done` exactly once.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<Pool> pool, std::shared_ptr<Connection> conn, bool fresh,
           http::request<http::string_body> request, std::optional<Steady::time_point> deadline,
           HttpTransport::Callback done)
      : pool_(std::move(pool)),
        conn_(std::move(conn)),
        fresh_(fresh),
        request_(std::move(request)),
        deadline_(deadline),
        done_(std::move(done)),
        resolve_timer_(conn_->executor()) {}

  // Must run on the connection's strand.
  void Start() {
    if (fresh_) {
      Resolve();
    } else {
      Write();
    }
  }

 private:
  const TransportOptions& options() const;
  const Endpoint& endpoint() const;
  Steady::time_point Now() const;  // the transport's clock

  // getaddrinfo cannot be interrupted, so the timer does not wait for the lookup: whichever of
  // the timer and the resolver completes first decides, the other is ignored (both run on the
  // strand, so `resolve_settled_` needs no lock).
  void Resolve();
  void OnResolve(const ErrorCode& ec, const NameResolver::Endpoints& results) {
    if (resolve_settled_) return;
    resolve_settled_ = true;
    resolve_timer_.cancel();
    if (ec) return Fail(Phase::kResolve, ec);
    conn_->Tcp().expires_after(TimeoutFor(Phase::kConnect));
    conn_->Tcp().async_connect(
        results, [self = shared_from_this()](const ErrorCode& ec, const tcp::endpoint&) {
          self->OnConnect(ec);
        });
  }

  void OnConnect(const ErrorCode& ec) {
    if (ec) return Fail(Phase::kConnect, ec);
    if (conn_->Tls() == nullptr) return Write();
    conn_->Tcp().expires_after(TimeoutFor(Phase::kHandshake));
    conn_->Tls()->async_handshake(
        ssl::stream_base::client,
        [self = shared_from_this()](const ErrorCode& ec) { self->OnHandshake(ec); });
  }

  void OnHandshake(const ErrorCode& ec) {
    if (!ec) return Write();
    if (ec == beast::error::timeout) return Fail(Phase::kHandshake, ec);
    // The handshake error alone says "certificate verify failed"; OpenSSL's verify result says
    // why (self-signed, expired, host name mismatch...).
    std::string detail = ec.message();
    Reason reason = Reason::kUpstreamTlsError;
    const long verify = SSL_get_verify_result(conn_->Tls()->native_handle());
    if (verify != X509_V_OK) {
      detail =
          "certificate verify failed (" + std::string(X509_verify_cert_error_string(verify)) + ")";
      reason = Reason::kUpstreamCertificateRejected;  // the same certificate next time: no retry
    }
    Finish(PhaseError(Phase::kHandshake, reason, detail));
  }

  void Write() {
    conn_->Tcp().expires_after(TimeoutFor(Phase::kWrite));
    conn_->WithStream([this](auto& stream) {
      http::async_write(
          stream, request_,
          [self = shared_from_this()](const ErrorCode& ec, std::size_t) { self->OnWrite(ec); });
    });
  }

  void OnWrite(const ErrorCode& ec) {
    if (ec) return Fail(Phase::kWrite, ec);
    parser_.emplace();
    parser_->body_limit(options().max_response_bytes);
    parser_->header_limit(kHeaderLimit);
    // One deadline for the whole response, however many reads it takes.
    conn_->Tcp().expires_after(TimeoutFor(Phase::kRead));
    // The header is read on its own first: Beast 1.74's eager parse (async_read) loses the
    // body_limit error for a Content-Length over the limit when header and body arrive in one
    // read. async_read_header parses non-eagerly and reports it.
    conn_->WithStream([this](auto& stream) {
      http::async_read_header(stream, conn_->buffer(), *parser_,
                              [self = shared_from_this()](const ErrorCode& ec, std::size_t) {
                                self->OnReadHeader(ec);
                              });
    });
  }

  void OnReadHeader(const ErrorCode& ec) {
    if (ec || parser_->is_done()) return OnRead(ec);
    conn_->WithStream([this](auto& stream) {
      http::async_read(
          stream, conn_->buffer(), *parser_,
          [self = shared_from_this()](const ErrorCode& ec, std::size_t) { self->OnRead(ec); });
    });
  }

  void OnRead(const ErrorCode& ec) {
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      return Finish(PhaseError(
          Phase::kRead, Reason::kUpstreamResponseTooLarge,
          "response exceeds " + std::to_string(options().max_response_bytes) + " bytes"));
    }
    if (ec) return Fail(Phase::kRead, ec);

    http::response<http::string_body> message = parser_->release();
    HttpResponse response;
    response.status = static_cast<int>(message.result_int());
    for (const auto& field : message) {
      std::string name = Lower(std::string(field.name_string()));
      std::string& value = response.headers[name];
      // Repeated fields are folded into one, comma-separated (RFC 9110, 5.3).
      if (!value.empty()) value += ", ";
      value += std::string(field.value());
    }
    if (auto it = response.headers.find("content-type"); it != response.headers.end()) {
      response.content_type = it->second;
    }
    response.body = std::move(message.body());
    // Reusable only when the server keeps the connection open (no "Connection: close", not
    // delimited by EOF) and sent nothing beyond this response.
    reusable_ = parser_->keep_alive() && conn_->buffer().size() == 0;
    Finish(std::move(response));
  }

  void Fail(Phase phase, const ErrorCode& ec) {
    if (ec == beast::error::timeout) return Finish(TimeoutError(phase, phase_timeout_));
    Finish(PhaseError(phase, Reason::kUpstreamUnreachable, ec.message()));
  }

  // The phase's configured timeout, cut to the time left before the request's deadline (at
  // least 1 ms, so an expired deadline still fails through the ordinary timeout path). Computed
  // when the phase starts; Fail() reports the same figure.
  std::chrono::milliseconds TimeoutFor(Phase phase) {
    std::chrono::milliseconds t{0};
    switch (phase) {
      case Phase::kResolve: t = options().resolve_timeout; break;
      case Phase::kConnect: t = options().connect_timeout; break;
      case Phase::kHandshake: t = options().handshake_timeout; break;
      case Phase::kWrite: t = options().write_timeout; break;
      case Phase::kRead: t = options().read_timeout; break;
    }
    if (deadline_) {
      // Rounded up: the timer must not fire before the deadline, so whoever set it can tell
      // "the deadline ended this" from "the phase timed out".
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline_ - Now());
      t = std::max(std::chrono::milliseconds(1), std::min(t, left));
    }
    phase_timeout_ = t;
    return t;
  }

  // Hands the connection back (or closes it) before calling `done_`, so that a Send() issued
  // from the callback already finds it idle.
  void Finish(StatusOr<HttpResponse> result);

  std::shared_ptr<Pool> pool_;
  std::shared_ptr<Connection> conn_;
  const bool fresh_;
  http::request<http::string_body> request_;
  const std::optional<Steady::time_point> deadline_;
  std::chrono::milliseconds phase_timeout_{0};  // of the phase under way, for its timeout error
  HttpTransport::Callback done_;
  net::steady_timer resolve_timer_;
  bool resolve_settled_ = false;
  std::optional<http::response_parser<http::string_body>> parser_;
  bool reusable_ = false;
};

// The shared state of one transport: endpoint, options, TLS context and the idle connections.
// Owned jointly by the BeastTransport facade and every pending exchange, so destroying the facade
// never leaves a handler with a dangling pointer. `idle_` and `shut_down_` are touched only on
// `strand_`.
class Pool : public std::enable_shared_from_this<Pool> {
 public:
  Pool(net::io_context& io, Endpoint endpoint, TransportOptions options,
       std::shared_ptr<ssl::context> tls_ctx)
      : io_(io),
        strand_(net::make_strand(io)),
        endpoint_(std::move(endpoint)),
        options_(std::move(options)),
        tls_ctx_(std::move(tls_ctx)),
        resolver_(options_.resolver ? options_.resolver : NameResolver::Shared()),
        clock_(options_.clock != nullptr ? *options_.clock : kSystemClock) {
    // Brackets belong to the URL (and the Host header), not to the resolver or the certificate.
    host_ = endpoint_.host;
    if (host_.size() > 2 && host_.front() == '[' && host_.back() == ']') {
      host_ = host_.substr(1, host_.size() - 2);
    }
    if (endpoint_.port.empty()) endpoint_.port = endpoint_.tls ? "443" : "80";
    host_header_ = host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
    const char* default_port = endpoint_.tls ? "443" : "80";
    if (endpoint_.port != default_port) host_header_ += ":" + endpoint_.port;
  }

  const TransportOptions& options() const { return options_; }
  const std::string& host() const { return host_; }
  NameResolver& resolver() const { return *resolver_; }
  Steady::time_point Now() const { return clock_.Monotonic(); }
  const Endpoint& endpoint() const { return endpoint_; }

  // Thread-safe. Builds the request on the caller's thread, then continues on the strand.
  void Send(HttpRequest request, HttpTransport::Callback done) {
    const std::optional<Steady::time_point> deadline = request.deadline;
    StatusOr<http::request<http::string_body>> built = Build(std::move(request));
    net::post(strand_, [self = shared_from_this(), built = std::move(built), deadline,
                        done = std::move(done)]() mutable {
      if (!built.ok()) {
        done(built.status());
        return;
      }
      self->Dispatch(std::move(built).value(), deadline, std::move(done));
    });
  }

  // Thread-safe. Closes the idle connections; connections of exchanges still in flight are
  // closed when those finish instead of returning to the pool.
  void Shutdown() {
    net::post(strand_, [self = shared_from_this()] {
      self->shut_down_ = true;
      for (auto& conn : self->idle_) self->CloseOnItsStrand(conn);
      self->idle_.clear();
    });
  }

  // Thread-safe. `conn` finished an exchange and may carry another one.
  void Release(std::shared_ptr<Connection> conn) {
    net::post(strand_, [self = shared_from_this(), conn = std::move(conn)]() mutable {
      if (self->shut_down_ || self->options_.max_idle_connections == 0) {
        self->CloseOnItsStrand(conn);
        return;
      }
      self->idle_.push_back(std::move(conn));
      while (self->idle_.size() > self->options_.max_idle_connections) {
        self->CloseOnItsStrand(self->idle_.front());
        self->idle_.pop_front();
      }
    });
  }

 private:
  StatusOr<http::request<http::string_body>> Build(HttpRequest in) const {
    // Header injection guard: nothing the caller passes may end a line. Error messages name the
    // header, never its value (it may be the Authtoken).
    if (in.method.empty() || HasControlChars(in.method) ||
        in.method.find(' ') != std::string::npos) {
      return InvalidArgument("request method is empty or malformed");
    }
    if (in.target.empty() || in.target.front() != '/' || HasControlChars(in.target) ||
        in.target.find(' ') != std::string::npos) {
      return InvalidArgument("request target must start with '/' and contain no spaces");
    }
    http::request<http::string_body> out;
    out.version(11);
    const http::verb verb = http::string_to_verb(in.method);
    if (verb == http::verb::unknown) {
      out.method_string(in.method);
    } else {
      out.method(verb);
    }
    out.target(in.target);
    out.set(http::field::host, host_header_);
    out.set(http::field::user_agent, kUserAgent);
    for (const auto& [name, value] : in.headers) {
      if (name.empty() || HasControlChars(name) || HasControlChars(value) ||
          name.find_first_of(" :") != std::string::npos) {
        return InvalidArgument("request header \"" + (HasControlChars(name) ? "?" : name) +
                               "\" has an invalid name or value");
      }
      out.set(name, value);
    }
    out.set(http::field::connection, "keep-alive");
    out.body() = std::move(in.body);
    out.prepare_payload();
    return out;
  }

  // On strand_. Picks the most recently used idle connection that is still usable (LIFO keeps
  // the warmest connections and lets the others age out), or opens a new one. There is no cap
  // on open connections beyond the number of concurrent Sends: callers bound their concurrency.
  void Dispatch(http::request<http::string_body> request,
                std::optional<Steady::time_point> deadline, HttpTransport::Callback done) {
    std::shared_ptr<Connection> conn;
    const auto now = Now();
    while (!idle_.empty() && conn == nullptr) {
      std::shared_ptr<Connection> candidate = std::move(idle_.back());
      idle_.pop_back();
      if (now - candidate->idle_since() > options_.idle_timeout) {
        CloseOnItsStrand(candidate);
      } else if (!candidate->PeerStillOpen()) {
        net::post(candidate->executor(), [candidate] { candidate->CloseNow(); });
      } else {
        conn = std::move(candidate);
      }
    }
    // Connections older than the one taken are older still: drop the expired ones now rather
    // than on some later Send.
    while (!idle_.empty() && now - idle_.front()->idle_since() > options_.idle_timeout) {
      CloseOnItsStrand(idle_.front());
      idle_.pop_front();
    }
    const bool fresh = conn == nullptr;
    if (fresh) conn = NewConnection();
    auto exchange = std::make_shared<Exchange>(shared_from_this(), conn, fresh, std::move(request),
                                               deadline, std::move(done));
    net::post(conn->executor(), [exchange] { exchange->Start(); });
  }

  std::shared_ptr<Connection> NewConnection() {
    auto conn = std::make_shared<Connection>(io_, tls_ctx_);
    if (Connection::TlsStream* tls = conn->Tls()) {
      SSL* ssl = tls->native_handle();
      const bool ip_literal = IsIpLiteral(host_);
      // SNI is defined for host names only (RFC 6066, 3).
      if (!ip_literal) SSL_set_tlsext_host_name(ssl, host_.c_str());
      if (!options_.insecure_skip_verify) {
        // Checked by OpenSSL as part of chain verification, so a mismatch shows up in
        // SSL_get_verify_result ("hostname mismatch", "IP address mismatch").
        if (ip_literal) {
          X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host_.c_str());
        } else {
          SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          SSL_set1_host(ssl, host_.c_str());
        }
      }
    }
    return conn;
  }

  void CloseOnItsStrand(std::shared_ptr<Connection> conn) {
    const auto timeout = options_.write_timeout;
    net::post(conn->executor(), [conn, timeout] { conn->CloseGracefully(timeout); });
  }

  net::io_context& io_;
  net::strand<net::io_context::executor_type> strand_;
  Endpoint endpoint_;
  const TransportOptions options_;
  const std::shared_ptr<ssl::context> tls_ctx_;  // null for plain HTTP
  const std::shared_ptr<NameResolver> resolver_;
  const drgate::Clock& clock_;
  std::string host_;         // without brackets: for the resolver, SNI and verification
  std::string host_header_;  // "host[:port]", the port only when not the scheme's default
  std::deque<std::shared_ptr<Connection>> idle_;  // on strand_; back = most recently used
  bool shut_down_ = false;                        // on strand_
};

const TransportOptions& Exchange::options() const {
  return pool_->options();
}
const Endpoint& Exchange::endpoint() const {
  return pool_->endpoint();
}
Steady::time_point Exchange::Now() const {
  return pool_->Now();
}

void Exchange::Resolve() {
  resolve_timer_.expires_after(TimeoutFor(Phase::kResolve));
  resolve_timer_.async_wait([self = shared_from_this()](const ErrorCode& ec) {
    if (ec || self->resolve_settled_) return;
    self->resolve_settled_ = true;
    self->Finish(TimeoutError(Phase::kResolve, self->phase_timeout_));
  });
  // Off the I/O threads, one lookup per host (name_resolver.h); the answer comes back to this
  // exchange's strand.
  pool_->resolver().Resolve(
      pool_->host(), endpoint().port,
      [self = shared_from_this()](ErrorCode ec, NameResolver::Endpoints results) {
        net::post(self->conn_->executor(),
                  [self, ec, results = std::move(results)] { self->OnResolve(ec, results); });
      });
}

void Exchange::Finish(StatusOr<HttpResponse> result) {
  if (!done_) return;
  if (result.ok() && reusable_) {
    conn_->MarkIdle(Now());
    pool_->Release(conn_);
  } else if (result.ok()) {
    conn_->CloseGracefully(options().write_timeout);  // on our strand already
  } else {
    conn_->CloseNow();  // state unknown after a failure: never reuse, never linger
  }
  HttpTransport::Callback done = std::move(done_);
  done_ = nullptr;
  done(std::move(result));
}

// The public face: owns a reference to the shared Pool and shuts it down when destroyed.
class BeastTransport final : public HttpTransport {
 public:
  explicit BeastTransport(std::shared_ptr<Pool> pool) : pool_(std::move(pool)) {}
  ~BeastTransport() override { pool_->Shutdown(); }

  void Send(HttpRequest request, Callback done) override {
    pool_->Send(std::move(request), std::move(done));
  }

 private:
  std::shared_ptr<Pool> pool_;
};

StatusOr<std::shared_ptr<ssl::context>> MakeTlsContext(const TransportOptions& options) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1) {
    return InvalidArgument("TLS context: cannot require TLS 1.2 or newer");
  }
  ErrorCode ec;
  ctx->set_default_verify_paths(ec);
  if (ec) {
    return InvalidArgument("TLS context: cannot load the system certificate store: " +
                           ec.message());
  }
  // Loaded even with insecure_skip_verify, so a wrong path is reported before it matters.
  if (!options.ca_file.empty()) {
    ctx->load_verify_file(options.ca_file, ec);
    if (ec) {
      return InvalidArgument("ca_file \"" + options.ca_file +
                             "\": cannot load CA certificates: " + ec.message());
    }
  }
  // A client certificate, for CommServes (or proxies in front of them) that require one.
  if (!options.client_cert_file.empty()) {
    ctx->use_certificate_chain_file(options.client_cert_file, ec);
    if (ec) {
      return InvalidArgument("client_cert_file \"" + options.client_cert_file +
                             "\": cannot load the certificate: " + ec.message());
    }
    ctx->use_private_key_file(options.client_key_file, ssl::context::pem, ec);
    if (ec) {
      // The message names the files, never their content. OpenSSL also refuses a key that does
      // not belong to the certificate here ("key values mismatch").
      return InvalidArgument("client_key_file \"" + options.client_key_file +
                             "\": cannot load the private key for client_cert_file \"" +
                             options.client_cert_file + "\": " + ec.message());
    }
  }
  ctx->set_verify_mode(options.insecure_skip_verify ? ssl::verify_none : ssl::verify_peer, ec);
  if (ec) return InvalidArgument("TLS context: cannot set the verify mode: " + ec.message());
  return ctx;
}

class AsioScheduler final : public Scheduler {
 public:
  explicit AsioScheduler(net::io_context& io) : io_(io) {}
  void RunAfter(std::chrono::milliseconds delay, std::function<void()> task) override {
    if (delay.count() <= 0) {
      net::post(io_, std::move(task));
      return;
    }
    auto timer = std::make_shared<net::steady_timer>(io_, delay);
    timer->async_wait([timer, task = std::move(task)](const ErrorCode&) { task(); });
  }

 private:
  net::io_context& io_;
};

}  // namespace

std::shared_ptr<Scheduler> MakeAsioScheduler(boost::asio::io_context& io) {
  return std::make_shared<AsioScheduler>(io);
}

StatusOr<std::string> TlsContextCache::KeyOf(const TransportOptions& options) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) {
    return Internal("TLS context: cannot compute SHA-256");
  }
  auto add = [&md](const std::string& part) {
    // Length-prefixed, so that no two different inputs give the same byte sequence.
    const std::string length = std::to_string(part.size()) + ":";
    EVP_DigestUpdate(md.get(), length.data(), length.size());
    EVP_DigestUpdate(md.get(), part.data(), part.size());
  };
  add(options.insecure_skip_verify ? "verify=none" : "verify=peer");
  for (const std::string* file :
       {&options.ca_file, &options.client_cert_file, &options.client_key_file}) {
    if (file->empty()) {
      add("-");
      continue;
    }
    StatusOr<std::string> content = ReadRegularFile(*file, kMaxPemFileBytes);
    if (!content.ok()) return content.status();
    add("+" + *content);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(md.get(), digest, &size) != 1) {
    return Internal("TLS context: cannot compute SHA-256");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

StatusOr<std::shared_ptr<ssl::context>> TlsContextCache::Get(const TransportOptions& options) {
  StatusOr<std::string> key = KeyOf(options);
  // A file that cannot be read: MakeTlsContext reports it exactly as without a cache.
  if (!key.ok()) return MakeTlsContext(options);
  // Held while building, so that concurrent callers with one key build one context.
  std::lock_guard lock(mu_);
  if (auto it = contexts_.find(*key); it != contexts_.end()) {
    if (std::shared_ptr<ssl::context> ctx = it->second.lock()) return ctx;
  }
  StatusOr<std::shared_ptr<ssl::context>> ctx = MakeTlsContext(options);
  if (!ctx.ok()) return ctx.status();
  // Entries whose contexts no transport holds any more go now (a rotated CA file's old one).
  std::erase_if(contexts_, [](const auto& entry) { return entry.second.expired(); });
  contexts_[*key] = *ctx;
  return ctx;
}

std::size_t TlsContextCache::size() const {
  std::lock_guard lock(mu_);
  return static_cast<std::size_t>(std::count_if(contexts_.begin(), contexts_.end(),
                                                [](const auto& e) { return !e.second.expired(); }));
}

namespace {

StatusOr<std::unique_ptr<HttpTransport>> MakeTransport(boost::asio::io_context& io,
                                                       Endpoint endpoint, TransportOptions options,
                                                       TlsContextCache* contexts) {
  if (endpoint.host.empty()) return InvalidArgument("endpoint has no host");
  std::shared_ptr<ssl::context> tls_ctx;
  if (endpoint.tls) {
    StatusOr<std::shared_ptr<ssl::context>> ctx =
        contexts != nullptr ? contexts->Get(options) : MakeTlsContext(options);
    if (!ctx.ok()) return ctx.status();
    tls_ctx = std::move(ctx).value();
  }
  auto pool =
      std::make_shared<Pool>(io, std::move(endpoint), std::move(options), std::move(tls_ctx));
  return std::unique_ptr<HttpTransport>(std::make_unique<BeastTransport>(std::move(pool)));
}

}  // namespace

StatusOr<std::unique_ptr<HttpTransport>> MakeBeastTransport(boost::asio::io_context& io,
                                                            Endpoint endpoint,
                                                            TransportOptions options) {
  return MakeTransport(io, std::move(endpoint), std::move(options), nullptr);
}

StatusOr<std::unique_ptr<HttpTransport>> MakeBeastTransport(boost::asio::io_context& io,
                                                            Endpoint endpoint,
                                                            TransportOptions options,
                                                            TlsContextCache& contexts) {
  return MakeTransport(io, std::move(endpoint), std::move(options), &contexts);
}

}  // namespace drgate::commserv
