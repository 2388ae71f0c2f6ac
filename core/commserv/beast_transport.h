#pragma once

// HttpTransport on Boost.Beast + OpenSSL: asynchronous, a pool of keep-alive connections to one
// endpoint, a timeout on every phase (resolve, connect, handshake, write, read), peer and host
// name verification against the system store plus an optional CA file, SNI.
//
// Connections: idle keep-alive connections are reused (most recently used first) after a
// non-blocking check that the peer has not closed them; at most max_idle_connections are kept and
// none older than idle_timeout. A Send that finds no idle connection opens a new one: the number
// of open connections is bounded only by the caller's concurrency.
//
// Errors, beyond HttpTransport's: a timeout is UNAVAILABLE with reason UPSTREAM_TIMEOUT and the
// message "<phase>: timed out after <N> ms"; a response larger than max_response_bytes (or with
// more than 64 KiB of headers) is UNAVAILABLE with reason UPSTREAM_RESPONSE_TOO_LARGE, phase
// "read"; a malformed request (method, target, header with CR/LF) is INVALID_ARGUMENT.
//
// Thread-safety: the class is thread-safe; Send() may be called from any thread. Callbacks run on
// the io_context's threads, never inside Send(). Every pending operation holds the transport's
// shared state, so destroying the transport is safe at any time: idle connections are closed,
// pending Sends still complete and call back. The io_context must outlive the transport; to shut
// down, either let every callback run, or stop the io_context, join its threads and then destroy
// the transport before the io_context (pending callbacks are then dropped, never called).

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/io_context.hpp>

#include "core/commserv/policy.h"
#include "core/commserv/transport.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace drgate::commserv {

// TLS client contexts shared between transports with the same trust settings. Building a context
// loads the whole system certificate store (tens of milliseconds of CPU and about a megabyte per
// context); with one context per CommCell that is what an estate of a thousand CommCells paid at
// start. The cache keys a context by a SHA-256 digest of the CA file's, the client certificate's
// and the client key's contents and the verification option, so every CommCell with the same
// settings shares one context (and its certificate store), and a CA file whose contents changed
// gives a new context (the transports built before keep the one they hold).
//
// A context lives as long as a transport holds it: the cache keeps weak references, so a context
// no CommCell uses any more is freed. Thread-safe.
class TlsContextCache {
 public:
  TlsContextCache() = default;
  TlsContextCache(const TlsContextCache&) = delete;
  TlsContextCache& operator=(const TlsContextCache&) = delete;

  // The context for `options` (ca_file, client_cert_file, client_key_file, insecure_skip_verify).
  // Errors are MakeBeastTransport's: INVALID_ARGUMENT naming the file that cannot be read or
  // loaded. Never puts file contents in a message.
  StatusOr<std::shared_ptr<boost::asio::ssl::context>> Get(const TransportOptions& options);

  // The digest Get() keys on (hex), e.g. to tell whether a CA file changed since a transport was
  // built. Errors when one of the files cannot be read.
  static StatusOr<std::string> KeyOf(const TransportOptions& options);

  // Contexts alive now (held by at least one transport or caller).
  std::size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::weak_ptr<boost::asio::ssl::context>> contexts_;  // guarded by mu_
};

// INVALID_ARGUMENT when the CA file cannot be read or the TLS context cannot be built, naming
// the file. Builds a TLS context of its own for an https endpoint.
StatusOr<std::unique_ptr<HttpTransport>> MakeBeastTransport(boost::asio::io_context& io,
                                                            Endpoint endpoint,
                                                            TransportOptions options);

// The same, with the TLS context taken from `contexts` (shared with every transport of the same
// trust settings). `contexts` need not outlive the transport.
StatusOr<std::unique_ptr<HttpTransport>> MakeBeastTransport(boost::asio::io_context& io,
                                                            Endpoint endpoint,
                                                            TransportOptions options,
                                                            TlsContextCache& contexts);

// A Scheduler on `io`'s threads (one steady_timer per task). Tasks still waiting when the
// io_context stops are dropped, never run. The io_context must outlive every task.
std::shared_ptr<Scheduler> MakeAsioScheduler(boost::asio::io_context& io);

}  // namespace drgate::commserv
