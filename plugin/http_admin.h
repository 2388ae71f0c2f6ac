#pragma once

// The metrics port: /metrics (Prometheus text format), /healthz and /readyz for tools that
// cannot speak gRPC health checking. Plain HTTP/1.1 on Boost.Beast, on the server's io_context.
//
// The class is thread-safe. Stop() closes the listener; connections in progress finish their
// request.

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include <prometheus/registry.h>

#include "core/common/status.h"

namespace drgate::plugin {

struct Readiness {
  bool ready = false;
  std::string reason;  // why not, for the /readyz body and logs
};

class HttpAdmin {
 public:
  // Binds `listen` (HOST:PORT, port 0 picks one). `readiness` is called per /readyz request.
  static StatusOr<std::unique_ptr<HttpAdmin>> Start(boost::asio::io_context& io,
                                                    const std::string& listen,
                                                    std::shared_ptr<prometheus::Registry> registry,
                                                    std::function<Readiness()> readiness);
  virtual ~HttpAdmin() = default;
  virtual int port() const = 0;
  virtual void Stop() = 0;
};

}  // namespace drgate::plugin
