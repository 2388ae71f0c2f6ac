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

#include <memory>

#include <boost/asio/io_context.hpp>

#include "core/commserv/policy.h"
#include "core/commserv/transport.h"

namespace drgate::commserv {

// INVALID_ARGUMENT when the CA file cannot be read or the TLS context cannot be built, naming
// the file.
StatusOr<std::unique_ptr<HttpTransport>> MakeBeastTransport(boost::asio::io_context& io,
                                                            Endpoint endpoint,
                                                            TransportOptions options);

// A Scheduler on `io`'s threads (one steady_timer per task). Tasks still waiting when the
// io_context stops are dropped, never run. The io_context must outlive every task.
std::shared_ptr<Scheduler> MakeAsioScheduler(boost::asio::io_context& io);

}  // namespace drgate::commserv
