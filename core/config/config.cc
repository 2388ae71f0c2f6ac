#include "core/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>

#include "core/common/file.h"
#include "core/commserv/http.h"
#include "core/config/schema.h"

namespace drgate {
namespace {

namespace fs = std::filesystem;
using config::Error;
using config::Resolve;
using config::Section;
using config::Type;
using std::chrono::milliseconds;

Status ConfigError(const std::string& key, const std::string& what) {
  return Error(key, what);
}

// Reads a secret file: the whole content with surrounding white space removed. Only a regular
// file of at most kMaxSecretFileBytes is read (never a FIFO or a device).
StatusOr<Secret> ReadSecretFile(const std::string& key, const std::string& path) {
  auto content = ReadRegularFile(path, kMaxSecretFileBytes);
  if (!content.ok()) return ConfigError(key, content.status().message());
  std::string s = std::move(*content);
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  if (s.empty()) return ConfigError(key, "file " + path + " is empty");
  return Secret{std::move(s)};
}

// A certificate, key or CA bundle named by the configuration: it must be a readable regular file
// of at most kMaxPemFileBytes. Its content is checked where it is loaded.
Status CheckPemFile(const std::string& key, const std::string& path) {
  auto content = ReadRegularFile(path, kMaxPemFileBytes);
  if (!content.ok()) return ConfigError(key, content.status().message());
  return Status::Ok();
}

// Limits on the parsed YAML tree, counted with aliases expanded (yaml-cpp shares an aliased
// node; every use of it is walked, and read, again): a small file must not turn into gigabytes.
constexpr std::size_t kMaxYamlNodes = 100000;
constexpr std::size_t kMaxYamlScalarBytes = 4 << 20;
constexpr int kMaxYamlDepth = 64;

struct YamlBudget {
  std::size_t nodes = 0;
  std::size_t scalar_bytes = 0;
};

std::string Line(const YAML::Node& n) {
  return std::to_string(n.Mark().line + 1);
}

// Refuses what yaml-cpp accepts silently: a key repeated in one mapping (the first would win,
// so `auth: {mode: insecure}` before `auth: {mode: tokens}` would turn authentication off),
// non-scalar keys, and trees that aliases blow up past the limits above.
Status CheckYamlTree(const YAML::Node& node, const std::string& path, int depth,
                     YamlBudget& budget) {
  // `path` is "" at the top of the configuration, "auth.tokens_file: " at the top of another file.
  const bool top = path.empty() || path.back() == ' ';
  const std::string where =
      path.empty() ? "(top level)" : (top ? path.substr(0, path.size() - 2) : path);
  if (++budget.nodes > kMaxYamlNodes) {
    return ConfigError(where, "line " + Line(node) + ": more than " +
                                  std::to_string(kMaxYamlNodes) +
                                  " values once aliases are expanded; refused");
  }
  if (depth > kMaxYamlDepth) {
    return ConfigError(where, "line " + Line(node) + ": nested deeper than " +
                                  std::to_string(kMaxYamlDepth) + " levels; refused");
  }
  auto count = [&](const YAML::Node& scalar) -> Status {
    budget.scalar_bytes += scalar.Scalar().size();
    if (budget.scalar_bytes > kMaxYamlScalarBytes) {
      return ConfigError(where, "more than " + std::to_string(kMaxYamlScalarBytes) +
                                    " bytes of values once aliases are expanded (this value is "
                                    "defined on line " +
                                    Line(scalar) + "); refused");
    }
    return Status::Ok();
  };
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return count(node);
    case YAML::NodeType::Sequence: {
      std::size_t i = 0;
      for (const auto& item : node) {
        const std::string k = path + "[" + std::to_string(i) + "]";
        if (Status s = CheckYamlTree(item, k, depth + 1, budget); !s.ok()) return s;
        ++i;
      }
      return Status::Ok();
    }
    case YAML::NodeType::Map: {
      std::map<std::string, std::string> first_line;
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return ConfigError(where, "line " + Line(kv.first) + ": keys must be plain names");
        }
        if (Status s = count(kv.first); !s.ok()) return s;
        const std::string& name = kv.first.Scalar();
        const std::string k = top ? path + name : path + "." + name;
        auto [it, inserted] = first_line.emplace(name, Line(kv.first));
        if (!inserted) {
          return ConfigError(k, "duplicate key: first on line " + it->second + ", again on line " +
                                    Line(kv.first));
        }
        if (Status s = CheckYamlTree(kv.second, k, depth + 1, budget); !s.ok()) return s;
      }
      return Status::Ok();
    }
    default: return Status::Ok();
  }
}

// Parses YAML text and checks the tree (CheckYamlTree). `key` names the file in errors; empty for
// the configuration itself.
StatusOr<YAML::Node> LoadYaml(const std::string& text, const std::string& key) {
  if (text.size() > kMaxConfigFileBytes) {
    return ConfigError(key.empty() ? "(top level)" : key,
                       "larger than " + std::to_string(kMaxConfigFileBytes) + " bytes; refused");
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return ConfigError(key.empty() ? "(syntax)" : key,
                       "line " + std::to_string(e.mark.line + 1) + ", column " +
                           std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  YamlBudget budget;
  if (Status s = CheckYamlTree(root, key.empty() ? "" : key + ": ", 0, budget); !s.ok()) return s;
  return root;
}

Status ValidateListen(const std::string& key, const std::string& value) {
  auto colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == value.size()) {
    return ConfigError(key, "must be HOST:PORT, got \"" + value + "\"");
  }
  const std::string port = value.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoi(port) > 65535) {
    return ConfigError(key, "port must be 0-65535, got \"" + port + "\"");
  }
  return Status::Ok();
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (unsigned char c : name) {
    if (!std::isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool IsLowerHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The value types drgate's keys use, beyond the generic ones in schema.h.

Type<std::string> Listen() {
  return config::String("HOST:PORT", ValidateListen);
}

Type<std::string> Name() {
  return config::String("name", [](const std::string& key, const std::string& v) {
    if (ValidName(v)) return Status::Ok();
    return ConfigError(
        key, "must be 1-63 characters of letters, digits, '.', '_' or '-', got \"" + v + "\"");
  });
}

// A secret file: `path(s)` gets the resolved name and `secret(s)` the trimmed content.
template <typename S, typename PathField, typename SecretField>
Type<S> SecretFile(PathField path, SecretField secret) {
  return Type<S>{"file (secret)",
                 [path, secret](const YAML::Node& n, const std::string& key,
                                const config::Context& ctx, S& out) {
                   if (!n.IsScalar()) return ConfigError(key, "must be a string");
                   path(out) = Resolve(ctx.base_dir, n.Scalar());
                   if (path(out).empty()) return ConfigError(key, "must not be empty");
                   auto s = ReadSecretFile(key, path(out));
                   if (!s.ok()) return s.status();
                   secret(out) = std::move(*s);
                   return Status::Ok();
                 },
                 nullptr, nullptr};
}

template <typename S>
auto Self() {
  return [](S& s) -> S& { return s; };
}

// ---- The declarations: one table per section. ----

Section<commserv::RetryPolicy> RetrySection() {
  using P = commserv::RetryPolicy;
  Section<P> s;
  s.Add(
       "max_attempts", config::Integer<int>(1, 10, " (1 = no retries)"),
       [](P& p) -> int& { return p.max_attempts; },
       "Attempts per CommServe request, the first included.")
      .Add(
          "initial_backoff", config::Duration(milliseconds(1)),
          [](P& p) -> milliseconds& { return p.initial_backoff; },
          "Wait before the first retry; doubles per retry, with jitter.")
      .Add(
          "max_backoff", config::Duration(milliseconds(1)),
          [](P& p) -> milliseconds& { return p.max_backoff; }, "Longest wait between retries.")
      .Rule("max_backoff is at least initial_backoff.",
            [](P& p, const std::string& prefix, const config::Context&) {
              if (p.max_backoff < p.initial_backoff) {
                return ConfigError(prefix + ".max_backoff",
                                   "must be at least " + prefix + ".initial_backoff");
              }
              return Status::Ok();
            });
  return s;
}

Section<commserv::CircuitBreakerPolicy> BreakerSection() {
  using P = commserv::CircuitBreakerPolicy;
  Section<P> s;
  s.Add(
       "failure_threshold", config::Integer<int>(1, 1000),
       [](P& p) -> int& { return p.failure_threshold; },
       "Consecutive upstream failures that open the circuit.")
      .Add(
          "open_for", config::Duration(milliseconds(100)),
          [](P& p) -> milliseconds& { return p.open_for; },
          "How long an open circuit refuses calls before one is let through.");
  return s;
}

Section<CommCellConfig> CommCellSection() {
  using C = CommCellConfig;
  Section<C> s;
  s.Require(
       "name", Name(), [](C& c) -> std::string& { return c.name; },
       "Unique name callers use for this CommCell: letters, digits, '.', '_', '-'.")
      .Require(
          "url",
          config::String("URL",
                         [](const std::string& key, const std::string& v) {
                           if (v.rfind("https://", 0) != 0 && v.rfind("http://", 0) != 0) {
                             return ConfigError(key, "must start with https:// or http://");
                           }
                           // Parsed exactly as the transport parses it, so --check-config refuses
                           // what startup would (credentials, a bad port, a query, a NUL...). Never
                           // echoes the URL.
                           if (auto endpoint = commserv::ParseEndpoint(v); !endpoint.ok()) {
                             return ConfigError(key, endpoint.status().message());
                           }
                           return Status::Ok();
                         }),
          [](C& c) -> std::string& { return c.url; },
          "Web service root, e.g. `https://cs.example.com/commandcenter/api`; no "
          "credentials, query or fragment.")
      .Add(
          "format",
          config::Choice<commserv::WireFormat>(
              {{"json", commserv::WireFormat::kJson}, {"xml", commserv::WireFormat::kXml}}),
          [](C& c) -> commserv::WireFormat& { return c.format; },
          "Wire format of the DR backup call.")
      .Add(
          "username", config::String(), [](C& c) -> std::string& { return c.username; },
          "CommServe user, with password_file.")
      .Add("password_file",
           SecretFile<C>([](C& c) -> std::string& { return c.password_file; },
                         [](C& c) -> Secret& { return c.password; }),
           Self<C>(), "File holding the CommServe password (with username).")
      .Add("token_file",
           SecretFile<C>([](C& c) -> std::string& { return c.token_file; },
                         [](C& c) -> Secret& { return c.token; }),
           Self<C>(), "File holding a CommServe API token, instead of username + password_file.")
      .Add(
          "ca_file", config::FilePath(true), [](C& c) -> std::string& { return c.ca_file; },
          "Extra trust anchors for the CommServe's certificate, added to the system store.")
      .Add(
          "insecure_skip_verify", config::Bool(),
          [](C& c) -> bool& { return c.insecure_skip_verify; },
          "Do not verify the CommServe's certificate (logged as a warning; testing only).")
      .Add(
          "client_cert_file", config::FilePath(true),
          [](C& c) -> std::string& { return c.client_cert_file; },
          "Client certificate presented to the CommServe, with client_key_file.")
      .Add(
          "client_key_file", config::FilePath(true),
          [](C& c) -> std::string& { return c.client_key_file; },
          "Private key of client_cert_file.")
      .Add(
          "device_id", config::String(), [](C& c) -> std::string& { return c.device_id; },
          "Device id sent with Login; empty: `drgate-<name>`.")
      .Add(
          "connect_timeout", config::Duration(milliseconds(1)),
          [](C& c) -> milliseconds& { return c.connect_timeout; },
          "TCP connect and TLS handshake timeout.")
      .Add(
          "request_timeout", config::Duration(milliseconds(1)),
          [](C& c) -> milliseconds& { return c.policy.request_timeout; },
          "Longest one CommServe call may take, retries included.")
      .Add(
          "on_active",
          config::Choice<jobs::OnActive>(
              {{"reject", jobs::OnActive::kReject}, {"reuse", jobs::OnActive::kReuse}}),
          [](C& c) -> jobs::OnActive& { return c.on_active; },
          "Answer to a trigger refused because a DR job is running: reject (ABORTED) or reuse "
          "(answer the running job).")
      .Add(
          "retry", RetrySection().AsType(),
          [](C& c) -> commserv::RetryPolicy& { return c.policy.retry; },
          "Retries of failed CommServe requests.")
      .Add(
          "circuit_breaker", BreakerSection().AsType(),
          [](C& c) -> commserv::CircuitBreakerPolicy& { return c.policy.circuit_breaker; },
          "Stops calling a failing CommServe for a while.")
      .Add(
          "max_response_bytes", config::Integer<std::size_t>(1024, std::size_t{1} << 30),
          [](C& c) -> std::size_t& { return c.policy.max_response_bytes; },
          "Largest CommServe response drgate reads.")
      .Add(
          "max_pending_requests", config::Integer<std::size_t>(1, 100000),
          [](C& c) -> std::size_t& { return c.policy.max_pending_requests; },
          "CommServe calls in progress at once for this CommCell; more are refused.")
      .Rule("Exactly one of username + password_file or token_file.",
            [](C& c, const std::string& key, const config::Context&) {
              const bool has_password = !c.password_file.empty();
              if (has_password == !c.token_file.empty()) {
                return ConfigError(key, "set either username + password_file or token_file");
              }
              if (has_password && c.username.empty()) {
                return ConfigError(key + ".username", "is required with password_file");
              }
              return Status::Ok();
            })
      .Rule("client_cert_file and client_key_file go together.",
            [](C& c, const std::string& key, const config::Context&) {
              if (c.client_cert_file.empty() != c.client_key_file.empty()) {
                const bool cert = c.client_cert_file.empty();
                return ConfigError(key + (cert ? ".client_cert_file" : ".client_key_file"),
                                   std::string("is required with ") +
                                       (cert ? "client_key_file" : "client_cert_file"));
              }
              if (c.device_id.empty()) c.device_id = "drgate-" + c.name;
              return Status::Ok();
            });
  return s;
}

Section<TrackingConfig> TrackingSection() {
  using T = TrackingConfig;
  Section<T> s;
  s.Add(
       "poll_interval", config::Duration(milliseconds(1)),
       [](T& t) -> milliseconds& { return t.poll_interval; },
       "How often the jobs drgate follows are polled.")
      .Add(
          "max_backoff", config::Duration(milliseconds(0)),
          [](T& t) -> milliseconds& { return t.max_backoff; },
          "Longest poll interval of a CommCell that keeps failing.")
      .Add(
          "unseen_grace", config::Duration(milliseconds(0)),
          [](T& t) -> milliseconds& { return t.unseen_grace; },
          "A job the CommServe has not shown for this long after its creation becomes UNKNOWN.")
      .Add(
          "intent_grace", config::Duration(milliseconds(0)),
          [](T& t) -> milliseconds& { return t.intent_grace; },
          "Open trigger intents younger than this are left alone (their trigger is in flight).")
      .Add(
          "intent_give_up", config::Duration(milliseconds(0)),
          [](T& t) -> milliseconds& { return t.intent_give_up; },
          "An open intent with no matching CommServe job after this long gets an UNKNOWN "
          "placeholder.")
      .Add(
          "retention", config::Duration(milliseconds(0)),
          [](T& t) -> milliseconds& { return t.retention; },
          "Finished jobs older than this are pruned from the registry; 0s: keep forever.")
      .Add(
          "probe_interval", config::Duration(milliseconds(0)),
          [](T& t) -> milliseconds& { return t.probe_interval; },
          "How often an idle CommCell is asked for its DR jobs (reachability, session "
          "keep-alive); 0s: never.")
      .Add(
          "max_concurrent_polls", config::Integer<int>(1, 1000),
          [](T& t) -> int& { return t.max_concurrent_polls; },
          "At most this many CommCells have a job-list request under way at once; the others "
          "wait for a slot. Set it above the number of CommServes that may hang at once.")
      .Add(
          "history", config::Bool(), [](T& t) -> bool& { return t.history; },
          "Read each CommCell's DR job history and DR backup options, so that DR backups drgate "
          "did not start count too (docs/dr-history.md); false: only drgate's own.")
      .Add(
          "history_lookback", config::Duration(std::chrono::seconds(1)),
          [](T& t) -> milliseconds& { return t.history_lookback; },
          "How far back the first read of a CommCell's DR job history goes (docs/dr-history.md).")
      .Add(
          "history_interval", config::Duration(std::chrono::seconds(1)),
          [](T& t) -> milliseconds& { return t.history_interval; },
          "How often an idle CommCell's DR job list is read, so that DR backups drgate did not "
          "start are seen.")
      .Add(
          "options_interval", config::Duration(std::chrono::seconds(1)),
          [](T& t) -> milliseconds& { return t.options_interval; },
          "How often a CommCell's DR backup options (where DR backups go) are read again.")
      .Rule("max_backoff is at least poll_interval; intent_give_up is at least intent_grace.",
            [](T& t, const std::string& prefix, const config::Context&) {
              if (t.max_backoff < t.poll_interval) {
                return ConfigError(prefix + ".max_backoff",
                                   "must be at least " + prefix + ".poll_interval");
              }
              if (t.intent_give_up < t.intent_grace) {
                return ConfigError(prefix + ".intent_give_up",
                                   "must be at least " + prefix + ".intent_grace");
              }
              return Status::Ok();
            });
  return s;
}

// grpc.tls.require_client_cert: a boolean that, written as true, needs client_ca_file (declared
// before it, so already read). The default (true) only matters once client_ca_file is set.
Type<GrpcTlsConfig> RequireClientCert() {
  auto flag = std::make_shared<Type<bool>>(config::Bool());
  return Type<GrpcTlsConfig>{
      "boolean",
      [flag](const YAML::Node& n, const std::string& key, const config::Context& ctx,
             GrpcTlsConfig& g) {
        if (Status s = flag->parse(n, key, ctx, g.require_client_cert); !s.ok()) return s;
        if (g.require_client_cert && g.client_ca_file.empty()) {
          return ConfigError(key, "needs grpc.tls.client_ca_file");
        }
        return Status::Ok();
      },
      [](const GrpcTlsConfig& g) { return std::string(g.require_client_cert ? "true" : "false"); },
      nullptr};
}

Section<GrpcTlsConfig> GrpcTlsSection() {
  using G = GrpcTlsConfig;
  Section<G> s;
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
      .Add("require_client_cert", RequireClientCert(), Self<G>(),
           "With client_ca_file: refuse callers without a certificate (false: verify one if "
           "sent). Written as true, it needs client_ca_file.")
      .Add(
          "reload_interval", config::Duration(std::chrono::seconds(1)),
          [](G& g) -> milliseconds& { return g.reload_interval; },
          "How often the files are re-read, so rotated certificates apply without a restart.");
  return s;
}

Section<PostgresRegistryConfig> PostgresSection() {
  using P = PostgresRegistryConfig;
  Section<P> s;
  s.Require(
       "dsn", config::String("libpq DSN"), [](P& p) -> std::string& { return p.dsn; },
       "libpq connection string (`host=... port=... dbname=... user=...`), without a "
       "password; its syntax is checked where the store is built (also by --check-config).")
      .Add("password_file",
           SecretFile<P>([](P& p) -> std::string& { return p.password_file; },
                         [](P& p) -> Secret& { return p.password; }),
           Self<P>(), "File holding the database password (none with trust or certificates).")
      .Add(
          "pool_size", config::Integer<int>(1, 100), [](P& p) -> int& { return p.pool_size; },
          "Connections per replica.")
      .Add(
          "leader_lease", config::Duration(std::chrono::seconds(1)),
          [](P& p) -> milliseconds& { return p.leader_lease; },
          "Leader lease: a dead leader is replaced within about 4/3 of this.")
      .Add(
          "watch_interval", config::Duration(milliseconds(50)),
          [](P& p) -> milliseconds& { return p.watch_interval; },
          "How often a replica re-reads the jobs its WatchJob streams follow.");
  return s;
}

Section<RateLimitConfig> RateLimitSection() {
  using R = RateLimitConfig;
  Section<R> s;
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
  Section<A> s;
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
                return ConfigError(prefix + ".tokens_file", "is only used with auth.mode: tokens");
              }
              if (a.mode == AuthMode::kTokens && a.tokens_file.empty()) {
                return ConfigError(prefix + ".tokens_file", "is required with auth.mode: tokens");
              }
              return Status::Ok();
            });
  return s;
}

Section<Config> MetricsTlsSection() {
  Section<Config> s;
  s.Require(
       "cert_file", config::FilePath(true),
       [](Config& c) -> std::string& { return c.metrics_cert_file; },
       "Certificate chain of the metrics port (PEM).")
      .Require(
          "key_file", config::FilePath(true),
          [](Config& c) -> std::string& { return c.metrics_key_file; }, "Its private key (PEM).");
  return s;
}

Section<Config> MetricsAuthSection() {
  Section<Config> s;
  s.Require(
       "username",
       config::String("string",
                      [](const std::string& key, const std::string& v) {
                        if (v.empty() || v.find(':') != std::string::npos) {
                          return ConfigError(key, "must be non-empty and without ':'");
                        }
                        return Status::Ok();
                      }),
       [](Config& c) -> std::string& { return c.metrics_username; },
       "User name Prometheus sends (basic auth) for /metrics.")
      .Require("password_file",
               SecretFile<Config>([](Config& c) -> std::string& { return c.metrics_password_file; },
                                  [](Config& c) -> Secret& { return c.metrics_password; }),
               Self<Config>(), "File holding its password.");
  return s;
}

Section<Config> GrpcSection() {
  Section<Config> s;
  s.Add(
       "listen", Listen(), [](Config& c) -> std::string& { return c.grpc_listen; },
       "Address of the gRPC API (port 0 picks a free port).")
      .Add(
          "tls", config::Optional(GrpcTlsSection().AsType()),
          [](Config& c) -> std::optional<GrpcTlsConfig>& { return c.grpc_tls; },
          "TLS on the gRPC port; absent: plaintext (warned about unless on loopback).")
      .Add(
          "max_message_bytes", config::Integer<int>(1024, 16 << 20),
          [](Config& c) -> int& { return c.grpc_max_message_bytes; },
          "Largest request message accepted; larger ones get RESOURCE_EXHAUSTED.")
      .Add(
          "memory_limit_bytes",
          config::Integer<int64_t>(int64_t{4} << 20, int64_t{64} << 30, " (4 MiB-64 GiB)"),
          [](Config& c) -> int64_t& { return c.grpc_memory_limit_bytes; },
          "Memory gRPC may hold for all connections together (a ResourceQuota); past it gRPC "
          "cancels streams and closes idle connections. This bounds memory before "
          "authentication (docs/hostile-input.md).")
      .Add(
          "max_concurrent_streams", config::Integer<int>(1, 100000),
          [](Config& c) -> int& { return c.grpc_max_concurrent_streams; },
          "Concurrent calls (HTTP/2 streams) per connection; WatchJob streams are long-lived.")
      .Add(
          "max_metadata_bytes", config::Integer<int>(1024, 1 << 20),
          [](Config& c) -> int& { return c.grpc_max_metadata_bytes; },
          "Request metadata limit handed to gRPC (gRPC 1.51 does not enforce it; the memory "
          "limit bounds its cost).");
  return s;
}

Section<Config> MetricsSection() {
  Section<Config> s;
  s.Add(
       "listen", Listen(), [](Config& c) -> std::string& { return c.metrics_listen; },
       "Address of /metrics, /healthz and /readyz (port 0 picks a free port).")
      .Add("tls", MetricsTlsSection().AsType(), Self<Config>(), "TLS on the metrics port.")
      .Add("basic_auth", MetricsAuthSection().AsType(), Self<Config>(),
           "Basic auth on /metrics (the probes stay open).");
  return s;
}

Section<Config> RegistrySection() {
  Section<Config> s;
  s.Add(
       "path", config::String("file"), [](Config& c) -> std::string& { return c.registry_path; },
       "SQLite job registry, relative to the configuration's folder; `:memory:` for tests.")
      .Add(
          "postgres", config::Optional(PostgresSection().AsType()),
          [](Config& c) -> std::optional<PostgresRegistryConfig>& { return c.registry_postgres; },
          "Shared PostgreSQL registry for several replicas, instead of path.")
      .Rule(
          "path and postgres are exclusive; path is resolved against the configuration's "
          "folder.",
          [](Config& c, const std::string& prefix, const config::Context&) {
            if (c.registry_postgres && c.registry_path != Config{}.registry_path) {
              return ConfigError(prefix + ".postgres",
                                 "cannot be combined with registry.path (one registry per "
                                 "drgate)");
            }
            if (c.registry_path.empty()) {
              return ConfigError(prefix + ".path", "must not be empty");
            }
            return Status::Ok();
          });
  return s;
}

Section<Config> LogSection() {
  Section<Config> s;
  s.Add(
       "level",
       config::Choice<LogLevel>({{"trace", LogLevel::kTrace},
                                 {"debug", LogLevel::kDebug},
                                 {"info", LogLevel::kInfo},
                                 {"warn", LogLevel::kWarn},
                                 {"error", LogLevel::kError}}),
       [](Config& c) -> LogLevel& { return c.log_level; }, "Least severe level logged.")
      .Add(
          "format",
          config::Choice<LogFormat>(
              {{"auto", LogFormat::kAuto}, {"json", LogFormat::kJson}, {"text", LogFormat::kText}}),
          [](Config& c) -> LogFormat& { return c.log_format; },
          "Log line format; auto: text on a terminal, else JSON.");
  return s;
}

// The CommCell list, whose names must be unique.
Type<std::vector<CommCellConfig>> UniqueNames(Type<std::vector<CommCellConfig>> list) {
  auto inner = std::make_shared<Type<std::vector<CommCellConfig>>>(std::move(list));
  Type<std::vector<CommCellConfig>> t = *inner;
  t.name += " (unique names)";
  t.parse = [inner](const YAML::Node& n, const std::string& key, const config::Context& ctx,
                    std::vector<CommCellConfig>& out) {
    if (Status s = inner->parse(n, key, ctx, out); !s.ok()) return s;
    std::set<std::string> names;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (!names.insert(out[i].name).second) {
        return ConfigError(key + "[" + std::to_string(i) + "].name",
                           "duplicate CommCell name \"" + out[i].name + "\"");
      }
    }
    return Status::Ok();
  };
  return t;
}

// The whole file. Keys are read in this order, so an error names the first problem in it.
const Section<Config>& Root() {
  static const Section<Config> root = [] {
    Section<Config> s;
    s.Add("grpc", GrpcSection().AsType(), Self<Config>(), "The gRPC API.")
        .Add("metrics", MetricsSection().AsType(), Self<Config>(),
             "Prometheus metrics and HTTP probes.")
        .Add("registry", RegistrySection().AsType(), Self<Config>(), "The job registry.")
        .Add("log", LogSection().AsType(), Self<Config>(), "Logging.")
        .Add(
            "shutdown_grace", config::Duration(milliseconds(0)),
            [](Config& c) -> milliseconds& { return c.shutdown_grace; },
            "On SIGTERM, how long calls in flight may finish before they are cancelled.")
        .Add(
            "tracking", TrackingSection().AsType(),
            [](Config& c) -> TrackingConfig& { return c.tracking; },
            "How drgate follows jobs to their end.")
        .Require(
            "commcells",
            UniqueNames(
                config::List(CommCellSection().AsType(), 1, "at least one CommCell is required")),
            [](Config& c) -> std::vector<CommCellConfig>& { return c.commcells; },
            "The CommCells drgate triggers DR backups on.", "at least one CommCell is required")
        .Require(
            "auth", AuthSection().AsType(), [](Config& c) -> AuthConfig& { return c.auth; },
            "Who may call drgate: who may start a DR backup is never a silent default.",
            "`auth: {mode: tokens, tokens_file: ...}`, or `auth: {mode: insecure}` to let "
            "every caller do everything")
        .Rule("registry.path is resolved against the configuration's folder (except `:memory:`).",
              [](Config& c, const std::string&, const config::Context& ctx) {
                if (c.registry_path != ":memory:") {
                  c.registry_path = Resolve(ctx.base_dir, c.registry_path);
                }
                return Status::Ok();
              })
        .Rule(
            "With auth.mode: tokens, auth.tokens_file is read (at most 1 MiB) and each entry "
            "checked; an entry naming a client certificate needs grpc.tls.client_ca_file.",
            [](Config& c, const std::string&, const config::Context&) {
              if (c.auth.mode != AuthMode::kTokens) return Status::Ok();
              auto text = ReadRegularFile(c.auth.tokens_file, kMaxTokensFileBytes);
              if (!text.ok()) return ConfigError("auth.tokens_file", text.status().message());
              std::vector<std::string> names;
              for (const auto& cell : c.commcells) names.push_back(cell.name);
              auto tokens = ParseTokensFile(*text, "auth.tokens_file", names);
              if (!tokens.ok()) return tokens.status();
              c.auth.tokens = std::move(*tokens);
              for (std::size_t i = 0; i < c.auth.tokens.size(); ++i) {
                if (!c.auth.tokens[i].certificate.empty() &&
                    (!c.grpc_tls || c.grpc_tls->client_ca_file.empty())) {
                  return ConfigError(
                      "auth.tokens_file: tokens[" + std::to_string(i) + "].certificate",
                      "needs mutual TLS (grpc.tls.client_ca_file), or no client "
                      "certificate can ever match");
                }
              }
              return Status::Ok();
            })
        .Rule(
            "tracking.intent_grace is longer than 2 x connect_timeout + 2 x request_timeout of "
            "every CommCell (an intent younger than that may belong to a trigger still "
            "waiting for its answer).",
            [](Config& c, const std::string&, const config::Context&) {
              for (std::size_t i = 0; i < c.commcells.size(); ++i) {
                const auto& cell = c.commcells[i];
                const milliseconds slowest =
                    cell.connect_timeout * 2 + cell.policy.request_timeout * 2;
                if (c.tracking.intent_grace <= slowest) {
                  return ConfigError("tracking.intent_grace",
                                     "must be longer than the slowest trigger of commcells[" +
                                         std::to_string(i) +
                                         "] (2 x connect_timeout + 2 x request_timeout = " +
                                         std::to_string(slowest.count() / 1000) + " s)");
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
    Section<E> s;
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

// Sets each override's dotted key in the YAML tree (creating maps on the way).
Status ApplyOverrides(YAML::Node& root, const std::vector<Override>& overrides) {
  for (const auto& o : overrides) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
      const std::size_t dot = o.key.find('.', start);
      parts.push_back(o.key.substr(start, dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    std::vector<YAML::Node> path = {root};
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      YAML::Node next = path.back()[parts[i]];
      if (!next.IsMap()) {
        path.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
        next = path.back()[parts[i]];
      }
      path.push_back(next);
    }
    path.back()[parts.back()] = o.value;
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<AuthTokenEntry>> ParseTokensFile(const std::string& yaml_text,
                                                      const std::string& key,
                                                      const std::vector<std::string>& commcells) {
  auto loaded = LoadYaml(yaml_text, key);
  if (!loaded.ok()) return loaded.status();
  const YAML::Node root = *loaded;
  std::vector<AuthTokenEntry> out;
  try {
    if (!root || root.IsNull()) return ConfigError(key, "the file is empty");
    if (!root.IsMap()) return ConfigError(key, "must be a map");
    for (const auto& kv : root) {
      if (kv.first.Scalar() != "tokens")
        return ConfigError(key + ": " + kv.first.Scalar(), "unknown key");
    }
    const YAML::Node list = root["tokens"];
    if (!list || !list.IsSequence() || list.size() == 0) {
      return ConfigError(key + ": tokens", "at least one entry is required");
    }
    std::set<std::string> hashes, certificates, identities;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string k = key + ": tokens[" + std::to_string(i) + "]";
      AuthTokenEntry e;
      if (Status s = TokenEntrySection().Parse(list[i], k, config::Context{}, e); !s.ok()) {
        return s;
      }
      if (e.sha256.empty() == e.certificate.empty()) {
        return ConfigError(k,
                           "needs exactly one of sha256 (a bearer token) or certificate (a "
                           "client certificate identity)");
      }
      if (!e.sha256.empty()) {
        if (!IsLowerHex64(e.sha256)) {
          return ConfigError(k + ".sha256",
                             "must be the 64 lowercase hex digits of the token's SHA-256 (see "
                             "drgatectl token hash)");
        }
        if (!hashes.insert(e.sha256).second) return ConfigError(k + ".sha256", "duplicate hash");
      } else {
        const bool printable = std::all_of(e.certificate.begin(), e.certificate.end(),
                                           [](char c) { return c > ' ' && c < 0x7f; });
        if (!printable || e.certificate.size() > 1024) {
          return ConfigError(k + ".certificate",
                             "must be the certificate's URI or DNS name or CN: 1-1024 printable "
                             "characters without spaces");
        }
        if (!certificates.insert(e.certificate).second) {
          return ConfigError(k + ".certificate", "duplicate certificate identity");
        }
      }
      if (!ValidName(e.identity)) {
        return ConfigError(k + ".identity",
                           "must be 1-63 characters of letters, digits, '.', '_' or '-'");
      }
      if (!identities.insert(e.identity).second) {
        return ConfigError(k + ".identity", "duplicate identity \"" + e.identity + "\"");
      }
      if (e.roles.empty()) return ConfigError(k + ".roles", "at least one role is required");
      for (std::size_t j = 0; j < e.commcells.size(); ++j) {
        if (std::find(commcells.begin(), commcells.end(), e.commcells[j]) == commcells.end()) {
          return ConfigError(k + ".commcells[" + std::to_string(j) + "]",
                             "no CommCell named \"" + e.commcells[j] + "\" is configured");
        }
      }
      out.push_back(std::move(e));
    }
  } catch (const YAML::Exception& e) {
    return ConfigError(key, e.msg);
  }
  return out;
}

StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  if (text.empty()) return InvalidArgument("empty duration", Reason::kInvalidDuration);
  std::chrono::milliseconds total{0};
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (start == i || i - start > 9) {
      return InvalidArgument(
          "invalid duration \"" + text + "\" (examples: 500ms, 30s, 5m, 2h, 90d)",
          Reason::kInvalidDuration);
    }
    const long long n = std::stoll(text.substr(start, i - start));
    std::size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    const std::string unit = text.substr(unit_start, i - unit_start);
    if (unit == "ms")
      total += std::chrono::milliseconds(n);
    else if (unit == "s")
      total += std::chrono::seconds(n);
    else if (unit == "m")
      total += std::chrono::minutes(n);
    else if (unit == "h")
      total += std::chrono::hours(n);
    else if (unit == "d")
      total += std::chrono::hours(24 * n);
    else {
      return InvalidArgument("invalid duration \"" + text + "\": unit must be ms, s, m, h or d",
                             Reason::kInvalidDuration);
    }
  }
  return total;
}

StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& base_dir,
                             const std::vector<Override>& overrides) {
  auto loaded = LoadYaml(yaml_text, "");
  if (!loaded.ok()) return loaded.status();
  YAML::Node root = *loaded;
  if (!root || root.IsNull()) return ConfigError("(top level)", "the configuration is empty");
  Config config;
  try {
    if (!root.IsMap()) return ConfigError("(top level)", "must be a map");
    if (Status s = ApplyOverrides(root, overrides); !s.ok()) return s;
    if (Status s = Root().Parse(root, "", config::Context{base_dir}, config); !s.ok()) return s;
  } catch (const YAML::Exception& e) {
    return ConfigError("(structure)", e.msg);
  }
  return config;
}

StatusOr<Config> LoadConfig(const std::string& path, const std::vector<Override>& overrides) {
  auto text = ReadRegularFile(path, kMaxConfigFileBytes);
  if (!text.ok()) return ConfigError("--config", text.status().message());
  return ParseConfig(*text, fs::path(path).parent_path().string(), overrides);
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
         "core/config/config.cc; do not edit by hand (a test compares this file with the "
         "generated text). Durations are written like `500ms`, `30s`, `5m`, `1h30m`, `90d`; "
         "relative file names are resolved against the configuration file's folder. See "
         "[config.md](config.md#what-the-loader-refuses) for what the loader refuses.\n\n"
         "## drgate.yaml\n\n" +
         config::RenderReference(rows, rules) +
         "\n## auth.tokens_file\n\n"
         "A YAML file with one key, `tokens`: a list of callers. Each needs exactly one of "
         "`sha256` or `certificate`, an `identity` (letters, digits, '.', '_', '-'; unique) and "
         "at least one role.\n\n" +
         config::RenderReference(token_rows, token_rules);
}

const char* NameOf(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

const char* NameOf(LogFormat format) {
  switch (format) {
    case LogFormat::kJson: return "json";
    case LogFormat::kText: return "text";
    case LogFormat::kAuto: return "auto";
  }
  return "auto";
}

const char* NameOf(AuthMode mode) {
  return mode == AuthMode::kTokens ? "tokens" : "insecure";
}

}  // namespace drgate
