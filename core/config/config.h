#pragma once

// drgate's configuration: YAML in, a validated Config out. Every error names the key that is
// wrong ("commcells[1].url: must start with https:// or http://"), so an operator can fix the file
// without reading code. Secrets are read from the files the config names; they never appear in
// errors or logs.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/common/status.h"

namespace drgate {

// A secret held in memory only. Deliberately has no printing or streaming operators.
struct Secret {
  std::string value;
  bool empty() const { return value.empty(); }
};

struct CommCellConfig {
  std::string name;             // [a-zA-Z0-9._-]{1,63}, unique
  std::string url;              // webservice root, e.g. https://cs.example.com/commandcenter/api
  std::string format = "json";  // "json" | "xml": the DR backup call's wire format
  std::string username;         // with password_file
  std::string password_file;
  std::string token_file;  // instead of username + password_file
  Secret password;         // read from password_file
  Secret token;            // read from token_file
  std::string ca_file;     // optional extra trust anchors (PEM)
  bool insecure_skip_verify = false;
  // Sent with Login and RenewLoginToken; stable per CommCell so the CommServe sees one client.
  // Default: "drgate-<name>".
  std::string device_id;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{60000};
  // "reject" | "reuse": answer to a trigger the CommServe refuses because a DR job is running.
  std::string on_active = "reject";
};

// How drgate follows jobs to their end (see core/jobs/tracker.h).
struct TrackingConfig {
  std::chrono::milliseconds poll_interval{10000};
  std::chrono::milliseconds max_backoff{300000};
  std::chrono::milliseconds unseen_grace{1800000};
  std::chrono::milliseconds intent_grace{300000};
  std::chrono::milliseconds intent_give_up{900000};
  std::chrono::milliseconds probe_interval{60000};  // 0: never probe idle CommCells
  std::chrono::milliseconds retention{std::chrono::hours(24 * 90)};  // 0: keep forever
};

struct Config {
  std::string grpc_listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";
  std::string registry_path = "drgate.db";
  std::string log_level = "info";   // trace|debug|info|warn|error
  std::string log_format = "auto";  // json|text|auto (text on a terminal, else JSON)
  std::chrono::milliseconds shutdown_grace{10000};
  TrackingConfig tracking;
  std::vector<CommCellConfig> commcells;
};

// Parses and validates `yaml_text`. Relative file paths (password_file, token_file, ca_file,
// registry.path) are resolved against `base_dir`. Secret files are read here. Errors are
// INVALID_ARGUMENT (reason CONFIG_INVALID) whose message starts with the key path.
StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& base_dir);

// Reads `path` and calls ParseConfig with the file's folder as base_dir.
StatusOr<Config> LoadConfig(const std::string& path);

// "30s", "500ms", "5m", "2h", "1h30m", "90d". INVALID_ARGUMENT on anything else.
StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);

}  // namespace drgate
