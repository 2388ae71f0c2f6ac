#pragma once

// HttpTransport on Boost.Beast + OpenSSL: asynchronous, a pool of keep-alive connections to one
// endpoint, a timeout on every phase (resolve, connect, handshake, write, read), peer and host
// name verification against the system store plus an optional CA file, SNI.
//
// Thread-safety: Send() may be called from any thread. Callbacks run on the io_context's threads.
// The transport must outlive every pending Send (destroy it after the io_context has stopped, or
// after every callback ran).

#include <memory>

#include <boost/asio/io_context.hpp>

#include "core/commserv/transport.h"

namespace drgate::commserv {

// INVALID_ARGUMENT when the CA file cannot be read or the TLS context cannot be built, naming
// the file.
StatusOr<std::unique_ptr<HttpTransport>> MakeBeastTransport(boost::asio::io_context& io,
                                                            Endpoint endpoint,
                                                            TransportOptions options);

}  // namespace drgate::commserv
