#pragma once

// drgate's configuration: YAML in, a validated Config out. Every error names the key that is
// wrong ("commcells[1].url: must start with https:// or http://"), so an operator can fix the file
// without reading code. Secrets are read from the files the config names; they never appear in
// errors or logs.

#include <chrono>
#include <cstdint>
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
  // Optional client certificate and key (PEM) presented to the CommServe; both or neither.
  std::string client_cert_file;
  std::string client_key_file;
  // Sent with Login and RenewLoginToken; stable per CommCell so the CommServe sees one client.
  // Default: "drgate-<name>".
  std::string device_id;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{60000};
  // "reject" | "reuse": answer to a trigger the CommServe refuses because a DR job is running.
  std::string on_active = "reject";
  // Upstream fault policies (README, "Upstream faults"). retry.max_attempts counts the first
  // attempt; circuit_breaker opens after failure_threshold consecutive failures for open_for.
  int retry_max_attempts = 3;
  std::chrono::milliseconds retry_initial_backoff{200};
  std::chrono::milliseconds retry_max_backoff{2000};
  int breaker_failure_threshold = 5;
  std::chrono::milliseconds breaker_open_for{30000};
  std::int64_t max_response_bytes = 4 * 1024 * 1024;
  std::int64_t max_pending_requests = 64;
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
  // The CommServe's own DR backups (core/jobs/dr_history.h): how far back the first read of a
  // CommCell's DR job history goes, how often an idle CommCell's DR job list is read, and how
  // often its DR backup options are read again.
  std::chrono::milliseconds history_lookback{std::chrono::hours(24 * 7)};
  std::chrono::milliseconds history_interval{std::chrono::minutes(5)};
  std::chrono::milliseconds options_interval{std::chrono::hours(1)};
};

// One caller of the gRPC API, from auth.tokens_file. Only the SHA-256 of the bearer token is
// known to drgate; the token itself is never stored.
// One caller in auth.tokens_file: known either by a bearer token (its SHA-256) or, with mutual
// TLS, by the identity of its verified client certificate. Exactly one of the two is set.
struct AuthTokenEntry {
  std::string sha256;                  // 64 lowercase hex digits
  std::string certificate;             // URI SAN, else DNS SAN, else subject CN of the client cert
  std::string identity;                // recorded as requested_by; unique
  std::vector<std::string> roles;      // "viewer" | "operator"
  std::vector<std::string> commcells;  // empty: every CommCell
};

// Per-identity token bucket on TriggerBackup, EnsureRecentBackup and CancelJob.
struct RateLimitConfig {
  int triggers_per_minute = 6;
  int burst = 3;
  bool operator==(const RateLimitConfig&) const = default;
};

struct AuthConfig {
  // "tokens": every call needs a bearer token, or a client certificate, listed in tokens_file.
  // "insecure": no caller authentication (every caller is an operator on every CommCell); it has
  // to be written out, and drgate warns loudly at startup. The `auth` section is required.
  std::string mode = "insecure";
  std::string tokens_file;
  std::vector<AuthTokenEntry> tokens;  // read from tokens_file
  RateLimitConfig rate_limit;
};

// TLS on drgate's gRPC port (grpc.tls). The files are watched: certificates rotated on disk
// (e.g. a Kubernetes secret update) are used for new connections without a restart.
struct GrpcTlsConfig {
  std::string cert_file;       // server certificate chain (PEM)
  std::string key_file;        // its private key (PEM)
  std::string client_ca_file;  // optional: trust anchors for client certificates (mutual TLS)
  // With client_ca_file: true rejects callers without a certificate; false verifies one if sent.
  bool require_client_cert = true;
  std::chrono::milliseconds reload_interval{60000};  // how often the files are re-read, >= 1s
};

// registry.postgres: the job registry in a shared PostgreSQL database, for several replicas
// (README, "Several replicas on PostgreSQL"). Absent: the embedded SQLite file registry.path.
struct PostgresRegistryConfig {
  std::string dsn;            // libpq "host=... port=... dbname=... user=...", no password
  std::string password_file;  // optional (trust or client certificates need none)
  Secret password;            // read from password_file
  int pool_size = 8;          // connections per replica, 1..100
  // Leader election (one tracker at a time): a replica that died is replaced as leader within
  // about 4/3 of this.
  std::chrono::milliseconds leader_lease{15000};
  // How often a replica re-reads the jobs its WatchJob streams follow (the leader writes them).
  std::chrono::milliseconds watch_interval{500};
};

struct Config {
  std::string grpc_listen = "127.0.0.1:50051";
  std::optional<GrpcTlsConfig> grpc_tls;  // unset: plaintext gRPC
  // Largest request message drgate accepts (grpc.max_message_bytes); larger ones are refused with
  // RESOURCE_EXHAUSTED before they are parsed. drgate's requests are a few hundred bytes.
  int grpc_max_message_bytes = 64 * 1024;
  std::string metrics_listen = "127.0.0.1:9464";
  // Optional TLS (certificate and key, PEM) and basic auth for /metrics. /healthz and /readyz
  // stay open so probes need no credentials.
  std::string metrics_cert_file;
  std::string metrics_key_file;
  std::string metrics_username;
  std::string metrics_password_file;
  Secret metrics_password;  // read from metrics_password_file
  std::string registry_path = "drgate.db";
  std::optional<PostgresRegistryConfig> registry_postgres;  // set: PostgreSQL instead of SQLite
  std::string log_level = "info";                           // trace|debug|info|warn|error
  std::string log_format = "auto";  // json|text|auto (text on a terminal, else JSON)
  std::chrono::milliseconds shutdown_grace{10000};
  TrackingConfig tracking;
  AuthConfig auth;
  std::vector<CommCellConfig> commcells;
};

// Parses the content of an auth tokens file (see README, "Security"). `key` prefixes errors
// ("auth.tokens_file: tokens[0].sha256: ..."); `commcells` are the configured CommCell names an
// entry may be limited to.
StatusOr<std::vector<AuthTokenEntry>> ParseTokensFile(const std::string& yaml_text,
                                                      const std::string& key,
                                                      const std::vector<std::string>& commcells);

// Parses and validates `yaml_text`. Relative file paths (password_file, token_file, ca_file,
// grpc.tls.*_file, registry.path) are resolved against `base_dir`. Secret files are read here.
// Errors are INVALID_ARGUMENT (reason CONFIG_INVALID) whose message starts with the key path.
StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& base_dir);

// Reads `path` and calls ParseConfig with the file's folder as base_dir.
StatusOr<Config> LoadConfig(const std::string& path);

// "30s", "500ms", "5m", "2h", "1h30m", "90d". INVALID_ARGUMENT on anything else.
StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);

}  // namespace drgate
