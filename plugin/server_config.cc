#include "plugin/server_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/common/file.h"
#include "core/config/schema.h"

namespace drgate::plugin {
namespace {

using config::Apply;
using config::Error;
using config::Listen;
using config::SecretFile;
using config::Section;
using config::Self;
using config::Type;
using std::chrono::milliseconds;

bool IsLowerHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// ---- The declarations of the edge's keys: one table per section. ----

// <prefix>.require_client_cert: a boolean that, written as true, needs client_ca_file (declared
// before it, so already read). The default (true) only matters once client_ca_file is set.
Type<GrpcTlsConfig> RequireClientCert(const std::string& prefix) {
  auto flag = std::make_shared<Type<bool>>(config::Bool());
  return Type<GrpcTlsConfig>{
      "boolean",
      [flag, prefix](const YAML::Node& n, const std::string& key, const config::Context& ctx,
                     GrpcTlsConfig& g) {
        if (Status s = flag->parse(n, key, ctx, g.require_client_cert); !s.ok()) return s;
        if (g.require_client_cert && g.client_ca_file.empty()) {
          return Error(key, "needs " + prefix + ".client_ca_file");
        }
        return Status::Ok();
      },
      [](const GrpcTlsConfig& g) { return std::string(g.require_client_cert ? "true" : "false"); },
      nullptr,
      [](const GrpcTlsConfig& a, const GrpcTlsConfig& b, const std::string& key, Apply apply,
         std::vector<config::Change>& out) {
        if (a.require_client_cert != b.require_client_cert) out.push_back({key, apply});
      }};
}

// grpc.unix_socket: a path resolved against the configuration's folder; empty: no socket. A
// unix socket's address holds at most 107 bytes (sockaddr_un.sun_path).
Type<std::string> UnixSocketPath() {
  return Type<std::string>{
      "file (unix socket)",
      [](const YAML::Node& n, const std::string& key, const config::Context& ctx,
         std::string& out) {
        if (!n.IsScalar()) return Error(key, "must be a string");
        out = n.Scalar().empty() ? std::string() : config::Resolve(ctx.base_dir, n.Scalar());
        if (out.size() > 107) {
          return Error(key,
                       "must be at most 107 bytes once resolved (a unix socket address), "
                       "got " +
                           std::to_string(out.size()));
        }
        if (out.find('\0') != std::string::npos) return Error(key, "must not hold a NUL byte");
        return Status::Ok();
      },
      nullptr, nullptr};
}

// grpc.tls or http.tls: `prefix` names the section in errors.
Section<GrpcTlsConfig> ServerTlsSection(const std::string& prefix) {
  using G = GrpcTlsConfig;
  Section<G> s(Apply::kRestart);
  s.Require(
       "cert_file", config::FilePath(true), [](G& g) -> std::string& { return g.cert_file; },
       "Server certificate chain (PEM).")
      .Require(
          "key_file", config::FilePath(true), [](G& g) -> std::string& { return g.key_file; },
          "Its private key (PEM).")
      .Add(
          "client_ca_file", config::FilePath(true),
          [](G& g) -> std::string& { return g.client_ca_file; },
          "Trust anchors for client certificates: turns on mutual TLS.")
      .Add("require_client_cert", RequireClientCert(prefix), Self<G>(),
           "With client_ca_file: refuse callers without a certificate (false: verify one if "
           "sent). Written as true, it needs client_ca_file.")
      .Add(
          "reload_interval", config::Duration(std::chrono::seconds(1)),
          [](G& g) -> milliseconds& { return g.reload_interval; },
          "How often the files are re-read, so rotated certificates apply without a restart.");
  return s;
}

Section<RateLimitConfig> RateLimitSection() {
  using R = RateLimitConfig;
  Section<R> s(Apply::kLive);
  s.Add(
       "triggers_per_minute", config::Integer<int>(1, 60000),
       [](R& r) -> int& { return r.triggers_per_minute; },
       "Sustained write calls (TriggerBackup, EnsureRecentBackup, CancelJob) per caller.")
      .Add(
          "burst", config::Integer<int>(1, 10000), [](R& r) -> int& { return r.burst; },
          "Write calls a caller may make at once before the rate applies.");
  return s;
}

Section<AuthConfig> AuthSection() {
  using A = AuthConfig;
  Section<A> s(Apply::kLive);
  s.Require(
       "mode",
       config::Choice<AuthMode>({{"tokens", AuthMode::kTokens}, {"insecure", AuthMode::kInsecure}}),
       [](A& a) -> AuthMode& { return a.mode; },
       "tokens: every call needs a bearer token or client certificate listed in "
       "tokens_file; insecure: no caller authentication (logged loudly).",
       "tokens or insecure")
      .Add(
          "tokens_file", config::FilePath(false),
          [](A& a) -> std::string& { return a.tokens_file; },
          "The callers (token hashes or certificate identities, roles, CommCells), with mode: "
          "tokens. Read with the rest of the configuration, and again on every reload.")
      .Add(
          "rate_limit", RateLimitSection().AsType(),
          [](A& a) -> RateLimitConfig& { return a.rate_limit; },
          "Per-caller token bucket on write calls (tokens mode).")
      .Rule("tokens_file is required with mode: tokens and refused with mode: insecure.",
            [](A& a, const std::string& prefix, const config::Context&) {
              if (a.mode == AuthMode::kInsecure && !a.tokens_file.empty()) {
                return Error(prefix + ".tokens_file", "is only used with auth.mode: tokens");
              }
              if (a.mode == AuthMode::kTokens && a.tokens_file.empty()) {
                return Error(prefix + ".tokens_file", "is required with auth.mode: tokens");
              }
              return Status::Ok();
            });
  return s;
}

Section<MetricsConfig> MetricsTlsSection() {
  Section<MetricsConfig> s(Apply::kRestart);
  s.Require(
       "cert_file", config::FilePath(true),
       [](MetricsConfig& c) -> std::string& { return c.cert_file; },
       "Certificate chain of the metrics port (PEM).")
      .Require(
          "key_file", config::FilePath(true),
          [](MetricsConfig& c) -> std::string& { return c.key_file; }, "Its private key (PEM).");
  return s;
}

Section<MetricsConfig> MetricsAuthSection() {
  Section<MetricsConfig> s(Apply::kRestart);
  s.Require(
       "username",
       config::String("string",
                      [](const std::string& key, const std::string& v) {
                        if (v.empty() || v.find(':') != std::string::npos) {
                          return Error(key, "must be non-empty and without ':'");
                        }
                        return Status::Ok();
                      }),
       [](MetricsConfig& c) -> std::string& { return c.username; },
       "User name Prometheus sends (basic auth) for /metrics.")
      .Require("password_file",
               SecretFile<MetricsConfig>(
                   [](MetricsConfig& c) -> std::string& { return c.password_file; },
                   [](MetricsConfig& c) -> Secret& { return c.password; }),
               Self<MetricsConfig>(), "File holding its password.");
  return s;
}

Section<GrpcConfig> GrpcSection() {
  Section<GrpcConfig> s(Apply::kRestart);
  s.Add(
       "listen", Listen(), [](GrpcConfig& c) -> std::string& { return c.listen; },
       "Address of the gRPC API (port 0 picks a free port).")
      .Add(
          "unix_socket", UnixSocketPath(),
          [](GrpcConfig& c) -> std::string& { return c.unix_socket; },
          "Also serve the gRPC API on this unix socket (mode 0660; a stale socket is replaced, "
          "any other file refused). Calls on it need no token: they act as `local-socket` with "
          "every right, so whoever may open the file administers drgate (docs/security.md). "
          "Empty: none.")
      .Add(
          "tls", config::Optional(ServerTlsSection("grpc.tls").AsType()),
          [](GrpcConfig& c) -> std::optional<GrpcTlsConfig>& { return c.tls; },
          "TLS on the gRPC port; absent: plaintext (warned about unless on loopback).")
      .Add(
          "max_message_bytes", config::Integer<int>(1024, 16 << 20),
          [](GrpcConfig& c) -> int& { return c.max_message_bytes; },
          "Largest request message accepted; larger ones get RESOURCE_EXHAUSTED.")
      .Add(
          "memory_limit_bytes",
          config::Integer<int64_t>(int64_t{4} << 20, int64_t{64} << 30, " (4 MiB-64 GiB)"),
          [](GrpcConfig& c) -> int64_t& { return c.memory_limit_bytes; },
          "Memory gRPC may hold for all connections together (a ResourceQuota); past it gRPC "
          "cancels streams and closes idle connections. This bounds memory before "
          "authentication (docs/hostile-input.md).")
      .Add(
          "max_concurrent_streams", config::Integer<int>(1, 100000),
          [](GrpcConfig& c) -> int& { return c.max_concurrent_streams; },
          "Concurrent calls (HTTP/2 streams) per connection; WatchJob streams are long-lived.")
      .Add(
          "max_metadata_bytes", config::Integer<int>(1024, 1 << 20),
          [](GrpcConfig& c) -> int& { return c.max_metadata_bytes; },
          "Request metadata limit handed to gRPC (gRPC 1.51 does not enforce it; the memory "
          "limit bounds its cost).");
  return s;
}

Section<HttpConfig> HttpSection() {
  using H = HttpConfig;
  Section<H> s(Apply::kRestart);
  s.Add(
       "listen", Listen(), [](H& h) -> std::string& { return h.listen; },
       "Address of the HTTP/JSON API (port 0 picks a free port).")
      .Add(
          "default_deadline", config::Duration(milliseconds(100)),
          [](H& h) -> milliseconds& { return h.default_deadline; },
          "Deadline of a call that sends no grpc-timeout header.")
      .Add(
          "max_body_bytes", config::Integer<int>(1024, 16 << 20),
          [](H& h) -> int& { return h.max_body_bytes; },
          "Largest request body; a larger one gets 413 before it is parsed.")
      .Add(
          "max_connections", config::Integer<int>(1, 65536),
          [](H& h) -> int& { return h.max_connections; },
          "Open connections at most; when all are open, the one idle longest is closed to make "
          "room for a new one, and without an idle one the new one is closed.")
      .Add(
          "max_connections_per_client", config::Integer<int>(1, 65536),
          [](H& h) -> int& { return h.max_connections_per_client; },
          "Open connections of one client address at most; more are closed when accepted.")
      .Add(
          "max_watch_streams_per_caller", config::Integer<int>(1, 65536),
          [](H& h) -> int& { return h.max_watch_streams_per_caller; },
          "Open WatchJob streams of one caller (bearer token or client certificate, else client "
          "address) at most; one more is answered 429 (TOO_MANY_STREAMS).")
      .Add(
          "tls", config::Optional(ServerTlsSection("http.tls").AsType()),
          [](H& h) -> std::optional<GrpcTlsConfig>& { return h.tls; },
          "HTTPS, and client certificates, like grpc.tls (files re-read every reload_interval); "
          "absent: plain HTTP.");
  return s;
}

Section<MetricsConfig> MetricsSection() {
  Section<MetricsConfig> s(Apply::kRestart);
  s.Add(
       "listen", Listen(), [](MetricsConfig& c) -> std::string& { return c.listen; },
       "Address of /metrics, /healthz and /readyz (port 0 picks a free port).")
      .Add("tls", MetricsTlsSection().AsType(), Self<MetricsConfig>(), "TLS on the metrics port.")
      .Add("basic_auth", MetricsAuthSection().AsType(), Self<MetricsConfig>(),
           "Basic auth on /metrics (the probes stay open).")
      .Add(
          "max_connections", config::Integer<int>(1, 65536),
          [](MetricsConfig& c) -> int& { return c.max_connections; },
          "Open connections at most; when all are open, the one idle longest is closed to make "
          "room for a new one, and without an idle one the new one is closed.")
      .Add(
          "max_connections_per_client", config::Integer<int>(1, 65536),
          [](MetricsConfig& c) -> int& { return c.max_connections_per_client; },
          "Open connections of one client address at most (a scraper and a probe need one "
          "each); more are closed when accepted.")
      .Add(
          "per_commcell_histograms", config::Bool(),
          [](MetricsConfig& c) -> bool& { return c.per_commcell_histograms; },
          "Latency histograms per CommCell (true) or estate-wide, without the commcell label, "
          "with only the series alerts read created up front (false: for hundreds of "
          "CommCells, docs/sizing.md). Counters and gauges stay per CommCell. Read at start.");
  return s;
}

// The whole file. Keys are read in this order, so an error names the first problem in it.
const Section<ServerConfig>& Root() {
  static const Section<ServerConfig> root = [] {
    using C = ServerConfig;
    Section<C> s(Apply::kLive);
    s.Add(
         "grpc", GrpcSection().AsType(), [](C& c) -> GrpcConfig& { return c.grpc; },
         "The gRPC API.")
        .Restart()
        .Add(
            "http", config::Optional(HttpSection().AsType()),
            [](C& c) -> std::optional<HttpConfig>& { return c.http; },
            "The HTTP/JSON API, the same calls as gRPC (docs/http.md); absent: off.")
        .Restart()
        .Add(
            "metrics", MetricsSection().AsType(), [](C& c) -> MetricsConfig& { return c.metrics; },
            "Prometheus metrics and HTTP probes.")
        .Restart()
        .Embed(ConfigSection(), [](C& c) -> Config& { return c.core; })
        .Require(
            "auth", AuthSection().AsType(), [](C& c) -> AuthConfig& { return c.auth; },
            "Who may call drgate: who may start a DR backup is never a silent default.",
            "`auth: {mode: tokens, tokens_file: ...}`, or `auth: {mode: insecure}` to let "
            "every caller do everything")
        .Rule(
            "With auth.mode: tokens, auth.tokens_file is read (at most 1 MiB) and each entry "
            "checked; an entry naming a client certificate needs grpc.tls.client_ca_file.",
            [](C& c, const std::string&, const config::Context&) {
              if (c.auth.mode != AuthMode::kTokens) return Status::Ok();
              auto text = ReadRegularFile(c.auth.tokens_file, kMaxTokensFileBytes);
              if (!text.ok()) return Error("auth.tokens_file", text.status().message());
              std::vector<std::string> names;
              for (const auto& cell : c.core.commcells) names.push_back(cell.name);
              auto tokens = ParseTokensFile(*text, "auth.tokens_file", names);
              if (!tokens.ok()) return tokens.status();
              c.auth.tokens = std::move(*tokens);
              for (std::size_t i = 0; i < c.auth.tokens.size(); ++i) {
                const auto mutual = [](const std::optional<GrpcTlsConfig>& tls) {
                  return tls && !tls->client_ca_file.empty();
                };
                if (!c.auth.tokens[i].certificate.empty() && !mutual(c.grpc.tls) &&
                    !(c.http && mutual(c.http->tls))) {
                  return Error("auth.tokens_file: tokens[" + std::to_string(i) + "].certificate",
                               "needs mutual TLS (grpc.tls.client_ca_file or "
                               "http.tls.client_ca_file), or no client certificate can ever "
                               "match");
                }
              }
              return Status::Ok();
            });
    return s;
  }();
  return root;
}

// One entry of auth.tokens_file.
const Section<AuthTokenEntry>& TokenEntrySection() {
  static const Section<AuthTokenEntry> section = [] {
    using E = AuthTokenEntry;
    Section<E> s(Apply::kLive);
    s.Add(
         "sha256", config::String(), [](E& e) -> std::string& { return e.sha256; },
         "SHA-256 of the caller's bearer token (drgatectl token hash).")
        .Add(
            "certificate", config::String(), [](E& e) -> std::string& { return e.certificate; },
            "Identity of the caller's client certificate (URI SAN, else DNS SAN, else CN).")
        .Add(
            "identity", config::String(), [](E& e) -> std::string& { return e.identity; },
            "Name recorded as requested_by.")
        .Add(
            "roles",
            config::List(
                config::Choice<Role>({{"viewer", Role::kViewer}, {"operator", Role::kOperator}}), 0,
                "at least one role is required"),
            [](E& e) -> std::vector<Role>& { return e.roles; }, "viewer and/or operator.")
        .Add(
            "commcells", config::List(config::String(), 0, ""),
            [](E& e) -> std::vector<std::string>& { return e.commcells; },
            "CommCells this caller may use; empty: all.");
    return s;
  }();
  return section;
}

}  // namespace

StatusOr<std::vector<AuthTokenEntry>> ParseTokensFile(const std::string& yaml_text,
                                                      const std::string& key,
                                                      const std::vector<std::string>& commcells) {
  auto loaded = config::LoadYaml(yaml_text, key);
  if (!loaded.ok()) return loaded.status();
  const YAML::Node root = *loaded;
  std::vector<AuthTokenEntry> out;
  try {
    if (!root || root.IsNull()) return Error(key, "the file is empty");
    if (!root.IsMap()) return Error(key, "must be a map");
    for (const auto& kv : root) {
      if (kv.first.Scalar() != "tokens")
        return Error(key + ": " + kv.first.Scalar(), "unknown key");
    }
    const YAML::Node list = root["tokens"];
    if (!list || !list.IsSequence() || list.size() == 0) {
      return Error(key + ": tokens", "at least one entry is required");
    }
    std::set<std::string> hashes, certificates, identities;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string k = key + ": tokens[" + std::to_string(i) + "]";
      AuthTokenEntry e;
      if (Status s = TokenEntrySection().Parse(list[i], k, config::Context{}, e); !s.ok()) {
        return s;
      }
      if (e.sha256.empty() == e.certificate.empty()) {
        return Error(k,
                     "needs exactly one of sha256 (a bearer token) or certificate (a "
                     "client certificate identity)");
      }
      if (!e.sha256.empty()) {
        if (!IsLowerHex64(e.sha256)) {
          return Error(k + ".sha256",
                       "must be the 64 lowercase hex digits of the token's SHA-256 (see "
                       "drgatectl token hash)");
        }
        if (!hashes.insert(e.sha256).second) return Error(k + ".sha256", "duplicate hash");
      } else {
        const bool printable = std::all_of(e.certificate.begin(), e.certificate.end(),
                                           [](char c) { return c > ' ' && c < 0x7f; });
        if (!printable || e.certificate.size() > 1024) {
          return Error(k + ".certificate",
                       "must be the certificate's URI or DNS name or CN: 1-1024 printable "
                       "characters without spaces");
        }
        if (!certificates.insert(e.certificate).second) {
          return Error(k + ".certificate", "duplicate certificate identity");
        }
      }
      if (!config::ValidName(e.identity)) {
        return Error(k + ".identity",
                     "must be 1-63 characters of letters, digits, '.', '_' or '-'");
      }
      if (!identities.insert(e.identity).second) {
        return Error(k + ".identity", "duplicate identity \"" + e.identity + "\"");
      }
      if (e.roles.empty()) return Error(k + ".roles", "at least one role is required");
      for (std::size_t j = 0; j < e.commcells.size(); ++j) {
        if (std::find(commcells.begin(), commcells.end(), e.commcells[j]) == commcells.end()) {
          return Error(k + ".commcells[" + std::to_string(j) + "]",
                       "no CommCell named \"" + e.commcells[j] + "\" is configured");
        }
      }
      out.push_back(std::move(e));
    }
  } catch (const YAML::Exception& e) {
    return Error(key, e.msg);
  }
  return out;
}

StatusOr<ServerConfig> ParseServerConfig(const std::string& yaml_text, const std::string& base_dir,
                                         const std::vector<Override>& overrides) {
  return config::ParseDocument(Root(), yaml_text, base_dir, overrides);
}

StatusOr<ServerConfig> LoadServerConfig(const std::string& path,
                                        const std::vector<Override>& overrides) {
  auto text = ReadRegularFile(path, kMaxConfigFileBytes);
  if (!text.ok()) return Error("--config", text.status().message());
  return ParseServerConfig(*text, std::filesystem::path(path).parent_path().string(), overrides);
}

std::string ConfigurationReference() {
  std::vector<config::DocRow> rows;
  std::vector<std::string> rules;
  Root().Document("", rows, rules);
  std::vector<config::DocRow> token_rows;
  std::vector<std::string> token_rules;
  TokenEntrySection().Document("tokens[]", token_rows, token_rules);
  return "# Configuration reference\n\n"
         "Generated by `drgate --config-reference` from the key declarations in "
         "core/config/config.cc and plugin/server_config.cc; do not edit by hand (a test compares "
         "this file with the "
         "generated text). Durations are written like `500ms`, `30s`, `5m`, `1h30m`, `90d`; "
         "relative file names are resolved against the configuration file's folder. See "
         "[config.md](config.md#what-the-loader-refuses) for what the loader refuses. Applied: "
         "`live` keys take effect on a reload (SIGHUP, a change of the file), `restart` keys only "
         "after a restart (a reload logs the changed ones and sets "
         "drgate_config_restart_required to 1; [config.md](config.md#reloading)).\n\n"
         "## drgate.yaml\n\n" +
         config::RenderReference(rows, rules) +
         "\n## auth.tokens_file\n\n"
         "A YAML file with one key, `tokens`: a list of callers. Each needs exactly one of "
         "`sha256` or `certificate`, an `identity` (letters, digits, '.', '_', '-'; unique) and "
         "at least one role.\n\n" +
         config::RenderReference(token_rows, token_rules);
}

std::vector<config::Change> ConfigChanges(const ServerConfig& before, const ServerConfig& after) {
  std::vector<config::Change> out;
  Root().Diff(before, after, "", out);
  return out;
}

const char* NameOf(AuthMode mode) {
  return mode == AuthMode::kTokens ? "tokens" : "insecure";
}

}  // namespace drgate::plugin
