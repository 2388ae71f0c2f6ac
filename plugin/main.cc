// drgate: the gRPC gateway for Commvault CommServe DR backups.
//
// Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 1 start-up failure (registry, listen address,
// TLS files), 2 usage or configuration error (the message names the key).

#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>

#include "core/config/config.h"
#include "plugin/allocator.h"
#include "plugin/logging.h"
#include "plugin/server.h"

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
  app.add_option("-c,--config", config_path, "YAML configuration file (see docs/config.md)")
      ->required();
  app.add_option("--grpc-listen", grpc_listen,
                 "HOST:PORT for gRPC, overrides grpc.listen (port 0 picks a free port)");
  app.add_option("--metrics-listen", metrics_listen,
                 "HOST:PORT for /metrics, overrides metrics.listen (port 0 picks a free port)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error, overrides log.level");
  app.add_option("--log-format", log_format,
                 "json|text|auto, overrides log.format (auto: text on a terminal, else JSON)");
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  app.set_version_flag("--version", "drgate " DRGATE_VERSION_TEXT,
                       "print version, git revision and build type, then exit");
  app.footer(
      "Exit codes: 0 clean shutdown, 1 start-up failure, 2 usage or configuration error.\n"
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

  auto config = drgate::LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << "drgate: configuration error in " << config_path << ": "
              << config.status().message() << "\n";
    return 2;
  }
  if (!grpc_listen.empty()) config->grpc_listen = grpc_listen;
  if (!metrics_listen.empty()) config->metrics_listen = metrics_listen;
  if (!log_level.empty()) config->log_level = log_level;
  if (!log_format.empty()) config->log_format = log_format;
  if (config->log_format != "json" && config->log_format != "text" &&
      config->log_format != "auto") {
    std::cerr << "drgate: --log-format must be json, text or auto\n";
    return 2;
  }
  if (check_only) {
    std::cout << "drgate: " << config_path << " is valid (" << config->commcells.size()
              << " CommCell(s))\n";
    return 0;
  }
  drgate::plugin::ConfigureLogging(config->log_format, config->log_level);
  // Before any thread starts: threads pick their arena on their first allocation.
  const int arenas = drgate::plugin::LimitMallocArenas();

  // Signals are taken by sigwait() below, not by handlers: block them before any thread starts
  // so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = drgate::plugin::Server::Start(*config);
  if (!server.ok()) {
    std::cerr << "drgate: cannot start: " << server.status().message() << "\n";
    return 1;
  }
  std::cout << "drgate: gRPC listening on " << HostOf(config->grpc_listen) << ":"
            << (*server)->grpc_port() << "\n"
            << "drgate: metrics listening on " << HostOf(config->metrics_listen) << ":"
            << (*server)->metrics_port() << std::endl;
  spdlog::info(
      "drgate started with {} CommCell(s), registry {}", config->commcells.size(),
      config->registry_postgres ? "PostgreSQL (registry.postgres)" : config->registry_path);
  spdlog::debug("malloc: {} arena(s), free memory returned to the OS every 30 s", arenas);
  drgate::plugin::AllocatorTrimmer trimmer(std::chrono::seconds(30));

  // SIGHUP, or a change of the configuration file (a Kubernetes ConfigMap update swaps the
  // mounted file), reloads the configuration; SIGTERM/SIGINT stop.
  auto apply_overrides = [&](drgate::Config& c) {
    if (!grpc_listen.empty()) c.grpc_listen = grpc_listen;
    if (!metrics_listen.empty()) c.metrics_listen = metrics_listen;
    if (!log_level.empty()) c.log_level = log_level;
    if (!log_format.empty()) c.log_format = log_format;
  };
  auto reload = [&](const char* why) {
    auto next = drgate::LoadConfig(config_path);
    if (!next.ok()) {
      spdlog::error("reload ({}): {} rejected, the previous configuration stays in force: {}", why,
                    config_path, next.status().message());
      return;
    }
    apply_overrides(*next);
    if (drgate::Status s = (*server)->Reload(*next); !s.ok()) {
      spdlog::error("reload ({}): rejected, the previous configuration stays in force: {}", why,
                    s.message());
      return;
    }
    spdlog::info("reload ({}): configuration from {} applied", why, config_path);
  };
  // The files whose change triggers a reload: the configuration and every file it names
  // (CommServe passwords and tokens, CA and client certificates, the caller tokens file), so a
  // rotated Kubernetes Secret takes effect without a signal.
  auto watched_files = [&](const drgate::Config& c) {
    std::vector<std::string> files = {config_path, c.auth.tokens_file};
    for (const auto& cell : c.commcells) {
      for (const std::string* f : {&cell.password_file, &cell.token_file, &cell.ca_file,
                                   &cell.client_cert_file, &cell.client_key_file}) {
        files.push_back(*f);
      }
    }
    std::map<std::string, std::filesystem::file_time_type> stamps;
    for (const auto& f : files) {
      std::error_code ec;
      if (f.empty()) continue;
      auto t = std::filesystem::last_write_time(f, ec);
      stamps[f] = ec ? std::filesystem::file_time_type::min() : t;
    }
    return stamps;
  };
  drgate::Config current = *config;
  auto seen = watched_files(current);
  auto reload_and_rescan = [&](const char* why) {
    reload(why);
    if (auto c = drgate::LoadConfig(config_path); c.ok()) current = std::move(*c);
    seen = watched_files(current);
  };
  int sig = 0;
  for (;;) {
    const timespec poll{2, 0};
    sig = sigtimedwait(&signals, nullptr, &poll);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (sig == SIGHUP) {
      reload_and_rescan("SIGHUP");
      continue;
    }
    if (watched_files(current) != seen) reload_and_rescan("a watched file changed");
    trimmer.MaybeTrim(std::chrono::steady_clock::now());
  }
  spdlog::info("received {}, draining calls in flight (up to {} ms)",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", config->shutdown_grace.count());
  (*server)->Shutdown(config->shutdown_grace);
  spdlog::info("drgate stopped");
  return 0;
}
