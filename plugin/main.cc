// drgate: the gRPC gateway for Commvault CommServe DR backups.
//
// Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 1 start-up failure (registry, listen address),
// 2 usage or configuration error, including files the configuration names that cannot be used
// (the message names the key), and a SQLite registry another drgate holds (the message names the
// file and that drgate's pid); --check-config runs the same checks, except the registry's lock,
// which it neither takes nor waits for (it does not open the registry).

#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <utility>
#include <vector>

#include "core/config/config.h"
#include "plugin/allocator.h"
#include "plugin/config_watcher.h"
#include "plugin/logging.h"
#include "plugin/server.h"
#include "plugin/server_config.h"

#ifndef DRGATE_VERSION_TEXT
#define DRGATE_VERSION_TEXT "unknown"
#endif

namespace {

std::string HostOf(const std::string& listen) {
  auto colon = listen.rfind(':');
  return colon == std::string::npos ? listen : listen.substr(0, colon);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "drgate: start and follow Commvault CommServe disaster-recovery backups over gRPC.\n"
      "Serves drgate.v1.DrBackupService, grpc.health.v1.Health and server reflection on the\n"
      "gRPC port, and Prometheus metrics at /metrics on the metrics port.",
      "drgate"};
  std::string config_path;
  std::string grpc_listen;
  std::string metrics_listen;
  std::string log_level;
  std::string log_format;
  bool check_only = false;
  bool reference = false;
  app.add_option("-c,--config", config_path,
                 "YAML configuration file (see docs/configuration-reference.md)");
  app.add_option("--grpc-listen", grpc_listen,
                 "HOST:PORT for gRPC, overrides grpc.listen (port 0 picks a free port)");
  app.add_option("--metrics-listen", metrics_listen,
                 "HOST:PORT for /metrics, overrides metrics.listen (port 0 picks a free port)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error, overrides log.level");
  app.add_option("--log-format", log_format,
                 "json|text|auto, overrides log.format (auto: text on a terminal, else JSON)");
  app.add_flag("--check-config", check_only,
               "validate the configuration as startup does (files, URLs, TLS, DSN) and exit");
  app.add_flag("--config-reference", reference,
               "print the configuration reference (Markdown) and exit");
  app.set_version_flag("--version", "drgate " DRGATE_VERSION_TEXT,
                       "print version, git revision and build type, then exit");
  app.footer(
      "Exit codes: 0 clean shutdown, 1 start-up failure, 2 usage or configuration error\n"
      "(also: another drgate holds the SQLite registry, its pid is named).\n"
      "Signals: SIGTERM/SIGINT drain calls in flight (up to shutdown_grace) and exit 0;\n"
      "SIGHUP (or a change of the --config file or a file it names, such as a password_file)\n"
      "reloads the configuration; an invalid one is\n"
      "logged and the previous one stays in force.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (reference) {
    std::cout << drgate::plugin::ConfigurationReference();
    return 0;
  }
  if (config_path.empty()) {
    std::cerr << "drgate: --config is required\n";
    return 2;
  }

  // Command-line values replace the file's before validation, so they are checked (and named in
  // errors) as the keys they stand for.
  std::vector<drgate::Override> overrides;
  for (const auto& [key, value] :
       {std::pair{"grpc.listen", &grpc_listen}, std::pair{"metrics.listen", &metrics_listen},
        std::pair{"log.level", &log_level}, std::pair{"log.format", &log_format}}) {
    if (!value->empty()) overrides.push_back({key, *value});
  }
  auto load = [&]() -> drgate::StatusOr<drgate::plugin::ServerConfig> {
    auto c = drgate::plugin::LoadServerConfig(config_path, overrides);
    if (!c.ok()) return c.status();
    // Everything startup checks before it binds or connects.
    if (drgate::Status s = drgate::plugin::Server::Check(*c); !s.ok()) return s;
    return c;
  };
  auto config = load();
  if (!config.ok()) {
    std::cerr << "drgate: configuration error in " << config_path << ": "
              << config.status().message() << "\n";
    return 2;
  }
  if (check_only) {
    std::cout << "drgate: " << config_path << " is valid (" << config->core.commcells.size()
              << " CommCell(s))\n";
    return 0;
  }
  drgate::plugin::ConfigureLogging(config->core.log_format, config->core.log_level);
  // Before any thread starts: threads pick their arena on their first allocation.
  const int arenas = drgate::plugin::LimitMallocArenas();

  // Signals are taken by sigtimedwait() below, not by handlers: block them before any thread
  // starts so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = drgate::plugin::Server::Start(*config);
  if (!server.ok()) {
    std::cerr << "drgate: cannot start: " << server.status().message() << "\n";
    // Another drgate on the same SQLite file is a deployment mistake like a bad key, not a
    // passing failure a restart loop should retry.
    const drgate::Reason reason = server.status().reason();
    if (reason == drgate::Reason::kConfigInvalid || reason == drgate::Reason::kRegistryInUse) {
      return 2;
    }
    return 1;
  }
  std::cout << "drgate: gRPC listening on " << HostOf(config->grpc.listen) << ":"
            << (*server)->grpc_port() << "\n"
            << "drgate: metrics listening on " << HostOf(config->metrics.listen) << ":"
            << (*server)->metrics_port() << std::endl;
  if (!config->grpc.unix_socket.empty()) {
    std::cout << "drgate: gRPC also on unix:" << config->grpc.unix_socket
              << " (local operator, no token)" << std::endl;
  }
  if (config->http) {
    std::cout << "drgate: HTTP listening on " << HostOf(config->http->listen) << ":"
              << (*server)->http_port() << std::endl;
  }
  spdlog::info("drgate started with {} CommCell(s), registry {}", config->core.commcells.size(),
               config->core.registry_postgres ? "PostgreSQL (registry.postgres)"
                                              : config->core.registry_path);
  spdlog::debug("malloc: {} arena(s), free memory returned to the OS every 30 s", arenas);
  drgate::plugin::AllocatorTrimmer trimmer(std::chrono::seconds(30));

  // SIGHUP, or a change of the configuration or a file it names, reloads on the watcher's
  // thread; this loop only hands requests over, so SIGTERM is taken even during a reload.
  // shutdown_grace applies on reload too: the watcher's thread writes it, SIGTERM reads it.
  std::atomic<std::chrono::milliseconds::rep> grace_ms{config->core.shutdown_grace.count()};
  drgate::plugin::ConfigWatcher watcher(
      {config_path}, *config, load,
      [&](const drgate::plugin::ServerConfig& next) {
        drgate::Status s = (*server)->Reload(next);
        if (s.ok()) grace_ms = next.core.shutdown_grace.count();
        return s;
      },
      &(*server)->metrics_registry());
  int sig = 0;
  for (;;) {
    const timespec poll{1, 0};
    sig = sigtimedwait(&signals, nullptr, &poll);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (sig == SIGHUP) watcher.RequestReload("SIGHUP");
    trimmer.MaybeTrim(std::chrono::steady_clock::now());
  }
  watcher.Stop();
  const std::chrono::milliseconds grace(grace_ms.load());
  spdlog::info("received {}, draining calls in flight (up to {} ms)",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", grace.count());
  (*server)->Shutdown(grace);
  spdlog::info("drgate stopped");
  return 0;
}
