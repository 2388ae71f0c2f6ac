#pragma once

// Reloads drgate's configuration while it runs: on request (SIGHUP) or when the configuration
// file, or a file it names (passwords, tokens, certificates, the tokens file), changes on disk
// (a Kubernetes ConfigMap or Secret update). Reloads run on the watcher's own thread, so the
// signal loop never waits for one: SIGTERM is handled even while a reload is in progress.
//
// A reload that cannot be read, does not validate or is refused by the server leaves the
// previous configuration in force; the error is logged and counted, never fatal.
//
// The class is thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/common/status.h"
#include "plugin/server_config.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
}  // namespace prometheus

namespace drgate::plugin {

struct ConfigWatcherOptions {
  std::string config_path;
  // How often the watched files' modification times are compared.
  std::chrono::milliseconds poll_interval{2000};
};

class ConfigWatcher {
 public:
  // Reads and validates the configuration (errors name the key).
  using Loader = std::function<StatusOr<ServerConfig>()>;
  // Applies a validated configuration (Server::Reload).
  using Applier = std::function<Status(const ServerConfig&)>;

  // `current` is the configuration in force. With `registry`, counts reloads in
  // drgate_config_reloads_total{result="success"|"failure"}.
  ConfigWatcher(ConfigWatcherOptions options, ServerConfig current, Loader load, Applier apply,
                prometheus::Registry* registry);
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  // Asks for a reload and returns at once; requests made while one runs fold into one more.
  void RequestReload(const std::string& why);
  // Stops the thread after the reload in progress, if any. Idempotent.
  void Stop();

  std::uint64_t successes() const;
  std::uint64_t failures() const;
  // Blocks until successes() + failures() >= `attempts` or `timeout` passes; true if reached.
  bool WaitForAttempts(std::uint64_t attempts, std::chrono::milliseconds timeout) const;

 private:
  using Stamps = std::map<std::string, std::int64_t>;
  Stamps WatchedFiles(const ServerConfig& config) const;
  void Run();
  void Reload(const std::string& why);

  const ConfigWatcherOptions options_;
  const Loader load_;
  const Applier apply_;
  ServerConfig current_;  // only the watcher thread touches it after construction
  Stamps seen_;           // likewise
  prometheus::Counter* success_counter_ = nullptr;
  prometheus::Counter* failure_counter_ = nullptr;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stop_ = false;            // guarded by mu_
  std::string pending_;          // guarded by mu_; non-empty: a reload was requested
  std::uint64_t successes_ = 0;  // guarded by mu_
  std::uint64_t failures_ = 0;   // guarded by mu_
  std::thread thread_;
};

}  // namespace drgate::plugin
