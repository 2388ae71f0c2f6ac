#pragma once

// The drgate process without its main(): builds every component from a ServerConfig, serves gRPC
// and /metrics, and shuts down in order. Separate from main() so tests can run a whole server in
// process.

#include <chrono>
#include <memory>

#include "core/common/status.h"
#include "plugin/server_config.h"

namespace prometheus {
class Registry;
}

namespace drgate::plugin {

class Server {
 public:
  // Opens the registry, builds the CommServe clients, binds both listeners (port 0 picks one).
  // Errors name what failed (registry path, listen address, CA file).
  static StatusOr<std::unique_ptr<Server>> Start(const ServerConfig& config);

  // Every check Start and Reload make of a configuration before they bind or connect anything:
  // the registry DSN's syntax, the TLS files of both ports, each CommCell's URL and TLS files as
  // its transport loads them. `drgate --check-config` runs it, so a configuration it accepts is
  // one startup accepts. INVALID_ARGUMENT (reason CONFIG_INVALID) whose message starts with the
  // key.
  static Status Check(const ServerConfig& config);

  virtual ~Server() = default;

  virtual int grpc_port() const = 0;
  virtual int metrics_port() const = 0;
  // The HTTP/JSON port (http.listen); 0 when http is not configured.
  virtual int http_port() const = 0;
  // What /metrics serves: other components (the config watcher) add their metrics here.
  virtual prometheus::Registry& metrics_registry() = 0;

  // Applies a new configuration without a restart: CommCells added, removed or changed (a
  // changed one gets a new client; calls in flight finish on the old one). When any CommCell
  // cannot be built the old configuration stays in force and the error names the key. Listen
  // addresses and the registry path need a restart (logged).
  virtual Status Reload(const ServerConfig& config) = 0;

  // Stops accepting calls, lets calls in flight finish for up to `grace`, cancels the rest, then
  // stops the CommServe clients and closes the registry. Idempotent.
  virtual void Shutdown(std::chrono::milliseconds grace) = 0;
};

}  // namespace drgate::plugin
