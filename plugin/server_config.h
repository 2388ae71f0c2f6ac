#pragma once

// The drgate process's configuration file: the core's keys (core/config/config.h: commcells,
// tracking, registry, log, shutdown_grace) and the settings only the edge uses, declared here
// beside the code that uses them: the gRPC port (grpc.*), the metrics port (metrics.*) and who
// may call drgate (auth.*). One file, one reference (drgate --config-reference), one parse.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/common/secret.h"
#include "core/common/status.h"
#include "core/config/config.h"
#include "core/config/schema.h"

namespace drgate::plugin {

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

// The gRPC port (grpc.*).
struct GrpcConfig {
  std::string listen = "127.0.0.1:50051";
  // A unix socket drgate also serves the API on (empty: none), resolved against the
  // configuration's folder. Who can open it is the local operator (docs/security.md): calls on it
  // need no token and act as kLocalSocketIdentity with every right.
  std::string unix_socket;
  std::optional<GrpcTlsConfig> tls;  // unset: plaintext gRPC
  // Largest request message drgate accepts; larger ones are refused with RESOURCE_EXHAUSTED
  // before they are parsed. drgate's requests are a few hundred bytes.
  int max_message_bytes = 64 * 1024;
  // Memory gRPC may hold for all connections together (a gRPC ResourceQuota): past it gRPC
  // cancels streams (RST_STREAM ENHANCE_YOUR_CALM) and closes idle connections. gRPC 1.51 reads a
  // whole request before it checks max_message_bytes, so this is what bounds memory before
  // authentication (docs/hostile-input.md).
  int64_t memory_limit_bytes = 64 << 20;
  // Concurrent calls (HTTP/2 streams) per connection. WatchJob streams are long-lived: a
  // dashboard may follow thousands of jobs over a few channels.
  int max_concurrent_streams = 4096;
  // Request metadata limit passed to gRPC as grpc.max_metadata_size; gRPC 1.51 was measured
  // serving larger metadata anyway: the quota is what bounds its cost.
  int max_metadata_bytes = 8 * 1024;
  bool operator==(const GrpcConfig&) const = default;
};

// The metrics port (metrics.*): /metrics, /healthz, /readyz. Optional TLS (certificate and key,
// PEM) and basic auth for /metrics; the probes stay open so they need no credentials.
struct MetricsConfig {
  std::string listen = "127.0.0.1:9464";
  std::string cert_file;
  std::string key_file;
  std::string username;
  std::string password_file;
  Secret password;  // read from password_file
  // Connection bounds of the port (plugin/http_admin.h).
  int max_connections = 64;
  int max_connections_per_client = 16;
  // false: estate mode (MetricsOptions in core/metrics/metrics.h, docs/sizing.md).
  bool per_commcell_histograms = true;
  bool operator==(const MetricsConfig&) const = default;
};

// The HTTP/JSON port (http.*, docs/http.md): off unless the section is present.
struct HttpConfig {
  std::string listen = "127.0.0.1:8080";
  // Deadline of a call that sends no grpc-timeout header.
  std::chrono::milliseconds default_deadline{60000};
  // Largest request body; larger ones get 413 before they are parsed.
  int max_body_bytes = 64 * 1024;
  // HTTPS, client certificates as on gRPC; files re-read every reload_interval.
  std::optional<GrpcTlsConfig> tls;
  // Connection and stream bounds (plugin/http_gateway.h).
  int max_connections = 256;
  int max_connections_per_client = 128;
  int max_watch_streams_per_caller = 32;
  bool operator==(const HttpConfig&) const = default;
};

// The whole file. Comparable: the config watcher applies a reload only when something changed.
struct ServerConfig {
  Config core;
  GrpcConfig grpc;
  std::optional<HttpConfig> http;  // unset: no HTTP/JSON port
  MetricsConfig metrics;
  AuthConfig auth;
  bool operator==(const ServerConfig&) const = default;
};

// Parses and validates the file's text. Relative file paths (grpc.tls.*_file, metrics.*_file,
// auth.tokens_file and the core's) are resolved against `base_dir`; secret files and the tokens
// file are read here. Errors are INVALID_ARGUMENT (reason CONFIG_INVALID) whose message starts
// with the key path.
StatusOr<ServerConfig> ParseServerConfig(const std::string& yaml_text, const std::string& base_dir,
                                         const std::vector<Override>& overrides = {});

// Reads `path` (a regular file of at most kMaxConfigFileBytes) and calls ParseServerConfig with
// the file's folder as base_dir.
StatusOr<ServerConfig> LoadServerConfig(const std::string& path,
                                        const std::vector<Override>& overrides = {});

// Parses the content of an auth tokens file (docs/security.md). `key` prefixes errors
// ("auth.tokens_file: tokens[0].sha256: ..."); `commcells` are the configured CommCell names an
// entry may be limited to.
StatusOr<std::vector<AuthTokenEntry>> ParseTokensFile(const std::string& yaml_text,
                                                      const std::string& key,
                                                      const std::vector<std::string>& commcells);

// The configuration reference in Markdown, generated from the key declarations here and in
// core/config/config.cc (docs/configuration-reference.md holds its output; a test keeps the two
// equal).
std::string ConfigurationReference();

// The keys whose values differ between `before` and `after`, each with when its change takes
// effect (config::Apply), in the reference's order.
std::vector<config::Change> ConfigChanges(const ServerConfig& before, const ServerConfig& after);

// "tokens" or "insecure", as written in the file.
const char* NameOf(AuthMode mode);

}  // namespace drgate::plugin
