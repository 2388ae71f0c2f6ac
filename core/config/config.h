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

#include "core/common/on_active.h"
#include "core/common/secret.h"
#include "core/common/status.h"
#include "core/commserv/codec.h"
#include "core/commserv/policy.h"

namespace drgate {

// A CommCell as configured. The reference (docs/configuration-reference.md) documents every key;
// defaults are these initialisers. Comparable: a reload rebuilds the client of a CommCell whose
// settings changed in any way (no hand-kept list of "connection" fields to forget one from).
struct CommCellConfig {
  std::string name;  // [a-zA-Z0-9._-]{1,63}, unique
  std::string url;   // webservice root, e.g. https://cs.example.com/commandcenter/api
  commserv::WireFormat format = commserv::WireFormat::kJson;  // the DR backup call's wire format
  std::string username;                                       // with password_file
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
  // The answer to a trigger the CommServe refuses because a DR job is running.
  jobs::OnActive on_active = jobs::OnActive::kReject;
  // Upstream fault policies: request_timeout, retry, circuit_breaker, max_response_bytes and
  // max_pending_requests, exactly as the session client takes them.
  commserv::ClientPolicy policy;
  bool operator==(const CommCellConfig&) const = default;
};

// How drgate follows jobs to their end (tracking.*); jobs::TrackerOptions extends it.
struct TrackingConfig {
  std::chrono::milliseconds poll_interval{10000};
  std::chrono::milliseconds max_backoff{300000};
  // A job the CommServe has not shown for this long after its creation becomes UNKNOWN.
  std::chrono::milliseconds unseen_grace{1800000};
  // Open intents younger than this belong to triggers still in flight: left alone.
  std::chrono::milliseconds intent_grace{300000};
  // An open intent with no matching upstream job after this long gets an UNKNOWN placeholder.
  std::chrono::milliseconds intent_give_up{900000};
  // A CommCell with nothing to follow is still asked for its DR job list this often, so
  // drgate_commserv_up and ListCommCells tell the truth and the session token stays alive
  // (0: never).
  std::chrono::milliseconds probe_interval{60000};
  // Terminal jobs that ended longer ago than this are pruned (0: never), hourly or every tenth of
  // the retention, whichever is more often.
  std::chrono::milliseconds retention{std::chrono::hours(24 * 90)};
  // At most this many CommCells have a poll or probe under way at once (docs/tracking.md).
  int max_concurrent_polls = 16;
  // Whether drgate reads the CommServe's DR job history and DR backup options (docs/dr-history.md);
  // false: it knows only the DR backups it started, and sends nothing it was not asked for.
  bool history = true;
  // The CommServe's own DR backups (core/jobs/dr_history.h): how far back the first read of a
  // CommCell's DR job history goes, how often an idle CommCell's DR job list is read, and how
  // often its DR backup options are read again.
  std::chrono::milliseconds history_lookback{std::chrono::hours(24 * 7)};
  std::chrono::milliseconds history_interval{std::chrono::minutes(5)};
  std::chrono::milliseconds options_interval{std::chrono::hours(1)};
  bool operator==(const TrackingConfig&) const = default;
};

enum class Role { kViewer, kOperator };

// One caller in auth.tokens_file: known either by a bearer token (its SHA-256; the token itself
// is never stored) or, with mutual TLS, by the identity of its verified client certificate.
// Exactly one of the two is set.
struct AuthTokenEntry {
  std::string sha256;                  // 64 lowercase hex digits
  std::string certificate;             // URI SAN, else DNS SAN, else subject CN of the client cert
  std::string identity;                // recorded as requested_by; unique
  std::vector<Role> roles;             // at least one
  std::vector<std::string> commcells;  // empty: every CommCell
  bool operator==(const AuthTokenEntry&) const = default;
};

// Per-identity token bucket on TriggerBackup, EnsureRecentBackup and CancelJob.
struct RateLimitConfig {
  int triggers_per_minute = 6;
  int burst = 3;
  bool operator==(const RateLimitConfig&) const = default;
};

enum class AuthMode {
  // Every call needs a bearer token, or a client certificate, listed in tokens_file.
  kTokens,
  // No caller authentication (every caller is an operator on every CommCell); it has to be
  // written out, and drgate warns loudly at startup.
  kInsecure,
};

struct AuthConfig {
  AuthMode mode = AuthMode::kInsecure;  // the `auth` section itself is required
  std::string tokens_file;
  std::vector<AuthTokenEntry> tokens;  // read from tokens_file
  RateLimitConfig rate_limit;
  bool operator==(const AuthConfig&) const = default;
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
  bool operator==(const GrpcTlsConfig&) const = default;
};

// registry.postgres: the job registry in a shared PostgreSQL database, for several replicas.
// Absent: the embedded SQLite file registry.path.
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
  bool operator==(const PostgresRegistryConfig&) const = default;
};

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
enum class LogFormat { kAuto, kJson, kText };  // auto: text on a terminal, else JSON

struct Config {
  std::string grpc_listen = "127.0.0.1:50051";
  std::optional<GrpcTlsConfig> grpc_tls;  // unset: plaintext gRPC
  // Largest request message drgate accepts (grpc.max_message_bytes); larger ones are refused with
  // RESOURCE_EXHAUSTED before they are parsed. drgate's requests are a few hundred bytes.
  int grpc_max_message_bytes = 64 * 1024;
  // Memory gRPC may hold for all connections together (grpc.memory_limit_bytes, a gRPC
  // ResourceQuota): past it gRPC cancels streams (RST_STREAM ENHANCE_YOUR_CALM) and closes idle
  // connections. gRPC 1.51 reads a whole request before it checks max_message_bytes, so this is
  // what bounds memory before authentication (docs/hostile-input.md).
  int64_t grpc_memory_limit_bytes = 64 << 20;
  // Concurrent calls (HTTP/2 streams) per connection (grpc.max_concurrent_streams). WatchJob
  // streams are long-lived: a dashboard may follow thousands of jobs over a few channels.
  int grpc_max_concurrent_streams = 4096;
  // Request metadata limit passed to gRPC as grpc.max_metadata_size (grpc.max_metadata_bytes);
  // gRPC 1.51 was measured serving larger metadata anyway: the quota is what bounds its cost.
  int grpc_max_metadata_bytes = 8 * 1024;
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
  LogLevel log_level = LogLevel::kInfo;
  LogFormat log_format = LogFormat::kAuto;
  std::chrono::milliseconds shutdown_grace{10000};
  TrackingConfig tracking;
  AuthConfig auth;
  std::vector<CommCellConfig> commcells;
  bool operator==(const Config&) const = default;
};

// Parses the content of an auth tokens file (see README, "Security"). `key` prefixes errors
// ("auth.tokens_file: tokens[0].sha256: ..."); `commcells` are the configured CommCell names an
// entry may be limited to.
StatusOr<std::vector<AuthTokenEntry>> ParseTokensFile(const std::string& yaml_text,
                                                      const std::string& key,
                                                      const std::vector<std::string>& commcells);

// A value given on the command line in place of the file's, e.g. {"grpc.listen", "127.0.0.1:0"}:
// set in the YAML tree before it is parsed, so it is validated, and named in errors, exactly as
// the key in the file would be.
struct Override {
  std::string key;  // dotted path of a scalar key
  std::string value;
};

// Parses and validates `yaml_text`. Relative file paths (password_file, token_file, ca_file,
// grpc.tls.*_file, registry.path) are resolved against `base_dir`. Secret files are read here.
// Errors are INVALID_ARGUMENT (reason CONFIG_INVALID) whose message starts with the key path.
StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& base_dir,
                             const std::vector<Override>& overrides = {});

// Reads `path` (a regular file of at most kMaxConfigFileBytes) and calls ParseConfig with the
// file's folder as base_dir.
StatusOr<Config> LoadConfig(const std::string& path, const std::vector<Override>& overrides = {});

// The configuration reference in Markdown, generated from the key declarations
// (docs/configuration-reference.md holds its output; a test keeps the two equal).
std::string ConfigurationReference();

// The configured value's name as written in the file ("json", "reuse", "info", ...).
const char* NameOf(LogLevel level);
const char* NameOf(LogFormat format);
const char* NameOf(AuthMode mode);

// "30s", "500ms", "5m", "2h", "1h30m", "90d". INVALID_ARGUMENT on anything else.
StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);

}  // namespace drgate
