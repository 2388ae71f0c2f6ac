#include "core/config/config.h"

#include "core/registry/postgres_connection.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

namespace drgate {
namespace {

namespace fs = std::filesystem;

Status ConfigError(const std::string& key, const std::string& what) {
  return Status(StatusCode::kInvalidArgument, key + ": " + what, "CONFIG_INVALID");
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute() || base_dir.empty()) return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

// Reads a secret file: the whole content with surrounding white space removed.
StatusOr<Secret> ReadSecretFile(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ConfigError(key, "cannot read file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  if (s.empty()) return ConfigError(key, "file " + path + " is empty");
  return Secret{std::move(s)};
}

// Typed accessors that name the key on a type mismatch. yaml-cpp throws on conversion errors;
// they are caught here and never leave this file.
template <typename T>
Status Get(const YAML::Node& node, const std::string& key, T& out) {
  if (!node) return Status::Ok();
  try {
    out = node.as<T>();
  } catch (const YAML::Exception&) {
    if constexpr (std::is_same_v<T, bool>) return ConfigError(key, "must be true or false");
    if constexpr (std::is_same_v<T, std::string>) return ConfigError(key, "must be a string");
    return ConfigError(key, "has the wrong type");
  }
  return Status::Ok();
}

Status GetDuration(const YAML::Node& node, const std::string& key, std::chrono::milliseconds& out) {
  if (!node) return Status::Ok();
  std::string text;
  if (Status s = Get(node, key, text); !s.ok()) return s;
  auto d = ParseDuration(text);
  if (!d.ok()) return ConfigError(key, d.status().message());
  out = *d;
  return Status::Ok();
}

// Rejects keys the schema does not know: a typo must not silently fall back to a default.
Status CheckKeys(const YAML::Node& map, const std::string& prefix,
                 std::initializer_list<const char*> known) {
  if (!map.IsMap()) return ConfigError(prefix.empty() ? "(top level)" : prefix, "must be a map");
  for (const auto& kv : map) {
    std::string k = kv.first.as<std::string>();
    bool ok = false;
    for (const char* n : known) ok = ok || k == n;
    if (!ok) return ConfigError(prefix.empty() ? k : prefix + "." + k, "unknown key");
  }
  return Status::Ok();
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

// retry, circuit_breaker, max_response_bytes, max_pending_requests of one CommCell.
Status ParsePolicies(const YAML::Node& node, const std::string& key, CommCellConfig& c) {
  if (auto r = node["retry"]) {
    const std::string k = key + ".retry";
    if (Status s = CheckKeys(r, k, {"max_attempts", "initial_backoff", "max_backoff"}); !s.ok()) {
      return s;
    }
    for (Status s :
         {Get(r["max_attempts"], k + ".max_attempts", c.retry_max_attempts),
          GetDuration(r["initial_backoff"], k + ".initial_backoff", c.retry_initial_backoff),
          GetDuration(r["max_backoff"], k + ".max_backoff", c.retry_max_backoff)}) {
      if (!s.ok()) return s;
    }
    if (c.retry_max_attempts < 1 || c.retry_max_attempts > 10) {
      return ConfigError(k + ".max_attempts", "must be 1-10 (1 = no retries), got " +
                                                  std::to_string(c.retry_max_attempts));
    }
    if (c.retry_initial_backoff.count() <= 0) {
      return ConfigError(k + ".initial_backoff", "must be > 0");
    }
    if (c.retry_max_backoff < c.retry_initial_backoff) {
      return ConfigError(k + ".max_backoff", "must be at least " + k + ".initial_backoff");
    }
  }
  if (auto b = node["circuit_breaker"]) {
    const std::string k = key + ".circuit_breaker";
    if (Status s = CheckKeys(b, k, {"failure_threshold", "open_for"}); !s.ok()) return s;
    for (Status s :
         {Get(b["failure_threshold"], k + ".failure_threshold", c.breaker_failure_threshold),
          GetDuration(b["open_for"], k + ".open_for", c.breaker_open_for)}) {
      if (!s.ok()) return s;
    }
    if (c.breaker_failure_threshold < 1 || c.breaker_failure_threshold > 1000) {
      return ConfigError(k + ".failure_threshold",
                         "must be 1-1000, got " + std::to_string(c.breaker_failure_threshold));
    }
    if (c.breaker_open_for < std::chrono::milliseconds(100)) {
      return ConfigError(k + ".open_for", "must be at least 100ms");
    }
  }
  for (Status s :
       {Get(node["max_response_bytes"], key + ".max_response_bytes", c.max_response_bytes),
        Get(node["max_pending_requests"], key + ".max_pending_requests", c.max_pending_requests)}) {
    if (!s.ok()) return s;
  }
  if (c.max_response_bytes < 1024 || c.max_response_bytes > (std::int64_t{1} << 30)) {
    return ConfigError(key + ".max_response_bytes", "must be 1024-1073741824 (bytes), got " +
                                                        std::to_string(c.max_response_bytes));
  }
  if (c.max_pending_requests < 1 || c.max_pending_requests > 100000) {
    return ConfigError(key + ".max_pending_requests",
                       "must be 1-100000, got " + std::to_string(c.max_pending_requests));
  }
  return Status::Ok();
}

StatusOr<CommCellConfig> ParseCommCell(const YAML::Node& node, const std::string& key,
                                       const std::string& base_dir) {
  if (Status s =
          CheckKeys(node, key,
                    {"name", "url", "format", "username", "password_file", "token_file", "ca_file",
                     "insecure_skip_verify", "device_id", "connect_timeout", "request_timeout",
                     "on_active", "client_cert_file", "client_key_file", "retry", "circuit_breaker",
                     "max_response_bytes", "max_pending_requests"});
      !s.ok()) {
    return s;
  }
  CommCellConfig c;
  for (Status s :
       {Get(node["name"], key + ".name", c.name), Get(node["url"], key + ".url", c.url),
        Get(node["format"], key + ".format", c.format),
        Get(node["username"], key + ".username", c.username),
        Get(node["password_file"], key + ".password_file", c.password_file),
        Get(node["token_file"], key + ".token_file", c.token_file),
        Get(node["ca_file"], key + ".ca_file", c.ca_file),
        Get(node["insecure_skip_verify"], key + ".insecure_skip_verify", c.insecure_skip_verify),
        Get(node["device_id"], key + ".device_id", c.device_id),
        Get(node["on_active"], key + ".on_active", c.on_active),
        Get(node["client_cert_file"], key + ".client_cert_file", c.client_cert_file),
        Get(node["client_key_file"], key + ".client_key_file", c.client_key_file),
        GetDuration(node["connect_timeout"], key + ".connect_timeout", c.connect_timeout),
        GetDuration(node["request_timeout"], key + ".request_timeout", c.request_timeout)}) {
    if (!s.ok()) return s;
  }
  if (c.name.empty()) return ConfigError(key + ".name", "is required");
  if (!ValidName(c.name)) {
    return ConfigError(key + ".name",
                       "must be 1-63 characters of letters, digits, '.', '_' or "
                       "'-', got \"" +
                           c.name + "\"");
  }
  if (c.url.empty()) return ConfigError(key + ".url", "is required");
  if (c.url.rfind("https://", 0) != 0 && c.url.rfind("http://", 0) != 0) {
    return ConfigError(key + ".url", "must start with https:// or http://");
  }
  if (c.format != "json" && c.format != "xml") {
    return ConfigError(key + ".format", "must be json or xml, got \"" + c.format + "\"");
  }
  const bool has_password = !c.password_file.empty();
  const bool has_token = !c.token_file.empty();
  if (has_password == has_token) {
    return ConfigError(key, "set either username + password_file or token_file");
  }
  if (has_password && c.username.empty()) {
    return ConfigError(key + ".username", "is required with password_file");
  }
  if (has_password) {
    c.password_file = Resolve(base_dir, c.password_file);
    auto secret = ReadSecretFile(key + ".password_file", c.password_file);
    if (!secret.ok()) return secret.status();
    c.password = std::move(*secret);
  } else {
    c.token_file = Resolve(base_dir, c.token_file);
    auto secret = ReadSecretFile(key + ".token_file", c.token_file);
    if (!secret.ok()) return secret.status();
    c.token = std::move(*secret);
  }
  if (!c.ca_file.empty()) {
    c.ca_file = Resolve(base_dir, c.ca_file);
    if (!std::ifstream(c.ca_file)) return ConfigError(key + ".ca_file", "cannot read " + c.ca_file);
  }
  if (c.client_cert_file.empty() != c.client_key_file.empty()) {
    return ConfigError(
        key + (c.client_cert_file.empty() ? ".client_cert_file" : ".client_key_file"),
        "is required with " +
            std::string(c.client_cert_file.empty() ? "client_key_file" : "client_cert_file"));
  }
  for (auto [field, path] : {std::pair{"client_cert_file", &c.client_cert_file},
                             std::pair{"client_key_file", &c.client_key_file}}) {
    if (path->empty()) continue;
    *path = Resolve(base_dir, *path);
    if (!std::ifstream(*path)) {
      return ConfigError(key + "." + field, "cannot read " + *path);
    }
  }
  if (c.device_id.empty()) c.device_id = "drgate-" + c.name;
  if (c.on_active != "reject" && c.on_active != "reuse") {
    return ConfigError(key + ".on_active", "must be reject or reuse, got \"" + c.on_active + "\"");
  }
  if (c.connect_timeout.count() <= 0) return ConfigError(key + ".connect_timeout", "must be > 0");
  if (c.request_timeout.count() <= 0) return ConfigError(key + ".request_timeout", "must be > 0");
  if (Status s = ParsePolicies(node, key, c); !s.ok()) return s;
  return c;
}

// grpc.tls: the files must exist and be readable now; their content is checked when the server
// loads them (and again on every reload).
StatusOr<GrpcTlsConfig> ParseGrpcTls(const YAML::Node& node, const std::string& base_dir) {
  if (Status s = CheckKeys(
          node, "grpc.tls",
          {"cert_file", "key_file", "client_ca_file", "require_client_cert", "reload_interval"});
      !s.ok()) {
    return s;
  }
  GrpcTlsConfig t;
  for (Status s :
       {Get(node["cert_file"], "grpc.tls.cert_file", t.cert_file),
        Get(node["key_file"], "grpc.tls.key_file", t.key_file),
        Get(node["client_ca_file"], "grpc.tls.client_ca_file", t.client_ca_file),
        Get(node["require_client_cert"], "grpc.tls.require_client_cert", t.require_client_cert),
        GetDuration(node["reload_interval"], "grpc.tls.reload_interval", t.reload_interval)}) {
    if (!s.ok()) return s;
  }
  if (t.client_ca_file.empty() && node["require_client_cert"] && t.require_client_cert) {
    return ConfigError("grpc.tls.require_client_cert", "needs grpc.tls.client_ca_file");
  }
  if (t.reload_interval < std::chrono::seconds(1)) {
    return ConfigError("grpc.tls.reload_interval", "must be at least 1s");
  }
  for (auto [key, path, required] :
       {std::tuple{"grpc.tls.cert_file", &t.cert_file, true},
        std::tuple{"grpc.tls.key_file", &t.key_file, true},
        std::tuple{"grpc.tls.client_ca_file", &t.client_ca_file, false}}) {
    if (path->empty()) {
      if (required) return ConfigError(key, "is required");
      continue;
    }
    *path = Resolve(base_dir, *path);
    std::error_code ec;
    if (!fs::is_regular_file(*path, ec)) return ConfigError(key, "no such file " + *path);
    if (!std::ifstream(*path)) return ConfigError(key, "cannot read " + *path);
  }
  return t;
}

bool IsLowerHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Status GetStringList(const YAML::Node& node, const std::string& key,
                     std::vector<std::string>& out) {
  if (!node) return Status::Ok();
  if (!node.IsSequence()) return ConfigError(key, "must be a list of strings");
  for (std::size_t i = 0; i < node.size(); ++i) {
    std::string v;
    if (Status s = Get(node[i], key + "[" + std::to_string(i) + "]", v); !s.ok()) return s;
    out.push_back(std::move(v));
  }
  return Status::Ok();
}

Status ParseAuth(const YAML::Node& a, const std::string& base_dir, Config& config) {
  if (Status s = CheckKeys(a, "auth", {"mode", "tokens_file", "rate_limit"}); !s.ok()) return s;
  AuthConfig& auth = config.auth;
  if (!a["mode"]) return ConfigError("auth.mode", "is required: tokens or insecure");
  if (Status s = Get(a["mode"], "auth.mode", auth.mode); !s.ok()) return s;
  if (auth.mode != "tokens" && auth.mode != "insecure") {
    return ConfigError("auth.mode", "must be tokens or insecure, got \"" + auth.mode + "\"");
  }
  if (Status s = Get(a["tokens_file"], "auth.tokens_file", auth.tokens_file); !s.ok()) return s;
  if (auto r = a["rate_limit"]) {
    if (Status s = CheckKeys(r, "auth.rate_limit", {"triggers_per_minute", "burst"}); !s.ok()) {
      return s;
    }
    RateLimitConfig& rl = auth.rate_limit;
    if (Status s = Get(r["triggers_per_minute"], "auth.rate_limit.triggers_per_minute",
                       rl.triggers_per_minute);
        !s.ok()) {
      return s;
    }
    if (Status s = Get(r["burst"], "auth.rate_limit.burst", rl.burst); !s.ok()) return s;
    if (rl.triggers_per_minute <= 0 || rl.triggers_per_minute > 60000) {
      return ConfigError("auth.rate_limit.triggers_per_minute", "must be 1-60000");
    }
    if (rl.burst <= 0 || rl.burst > 10000) {
      return ConfigError("auth.rate_limit.burst", "must be 1-10000");
    }
  }
  if (auth.mode == "insecure") {
    if (!auth.tokens_file.empty()) {
      return ConfigError("auth.tokens_file", "is only used with auth.mode: tokens");
    }
    return Status::Ok();
  }
  if (auth.tokens_file.empty()) {
    return ConfigError("auth.tokens_file", "is required with auth.mode: tokens");
  }
  auth.tokens_file = Resolve(base_dir, auth.tokens_file);
  std::ifstream in(auth.tokens_file, std::ios::binary);
  if (!in) return ConfigError("auth.tokens_file", "cannot read file " + auth.tokens_file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<std::string> names;
  for (const auto& c : config.commcells) names.push_back(c.name);
  auto tokens = ParseTokensFile(ss.str(), "auth.tokens_file", names);
  if (!tokens.ok()) return tokens.status();
  auth.tokens = std::move(*tokens);
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<AuthTokenEntry>> ParseTokensFile(const std::string& yaml_text,
                                                      const std::string& key,
                                                      const std::vector<std::string>& commcells) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    return ConfigError(key, "line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  std::vector<AuthTokenEntry> out;
  try {
    if (!root || root.IsNull()) return ConfigError(key, "the file is empty");
    if (Status s = CheckKeys(root, key, {"tokens"}); !s.ok()) return s;
    auto list = root["tokens"];
    if (!list || !list.IsSequence() || list.size() == 0) {
      return ConfigError(key + ": tokens", "at least one entry is required");
    }
    std::set<std::string> hashes, certificates, identities;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string k = key + ": tokens[" + std::to_string(i) + "]";
      const YAML::Node& n = list[i];
      if (Status s = CheckKeys(n, k, {"sha256", "certificate", "identity", "roles", "commcells"});
          !s.ok()) {
        return s;
      }
      AuthTokenEntry e;
      for (Status s : {Get(n["sha256"], k + ".sha256", e.sha256),
                       Get(n["certificate"], k + ".certificate", e.certificate),
                       Get(n["identity"], k + ".identity", e.identity),
                       GetStringList(n["roles"], k + ".roles", e.roles),
                       GetStringList(n["commcells"], k + ".commcells", e.commcells)}) {
        if (!s.ok()) return s;
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
      for (std::size_t j = 0; j < e.roles.size(); ++j) {
        if (e.roles[j] != "viewer" && e.roles[j] != "operator") {
          return ConfigError(k + ".roles[" + std::to_string(j) + "]",
                             "must be viewer or operator, got \"" + e.roles[j] + "\"");
        }
      }
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
  if (text.empty()) return InvalidArgument("empty duration", "INVALID_DURATION");
  std::chrono::milliseconds total{0};
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (start == i || i - start > 9) {
      return InvalidArgument(
          "invalid duration \"" + text + "\" (examples: 500ms, 30s, 5m, 2h, 90d)",
          "INVALID_DURATION");
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
                             "INVALID_DURATION");
    }
  }
  return total;
}

namespace {

StatusOr<PostgresRegistryConfig> ParsePostgresRegistry(const YAML::Node& p,
                                                       const std::string& base_dir) {
  if (Status s = CheckKeys(p, "registry.postgres",
                           {"dsn", "password_file", "pool_size", "leader_lease", "watch_interval"});
      !s.ok()) {
    return s;
  }
  PostgresRegistryConfig pg;
  for (Status s :
       {Get(p["dsn"], "registry.postgres.dsn", pg.dsn),
        Get(p["password_file"], "registry.postgres.password_file", pg.password_file),
        Get(p["pool_size"], "registry.postgres.pool_size", pg.pool_size),
        GetDuration(p["leader_lease"], "registry.postgres.leader_lease", pg.leader_lease),
        GetDuration(p["watch_interval"], "registry.postgres.watch_interval", pg.watch_interval)}) {
    if (!s.ok()) return s;
  }
  if (pg.dsn.empty()) return ConfigError("registry.postgres.dsn", "is required");
  // The message never echoes the DSN: it might hold a password by mistake.
  if (Status s = registry::PostgresEndpoint::Validate(pg.dsn); !s.ok()) {
    return ConfigError("registry.postgres.dsn", s.message());
  }
  if (pg.pool_size < 1 || pg.pool_size > 100) {
    return ConfigError("registry.postgres.pool_size", "must be between 1 and 100");
  }
  if (pg.leader_lease < std::chrono::seconds(1)) {
    return ConfigError("registry.postgres.leader_lease", "must be at least 1s");
  }
  if (pg.watch_interval < std::chrono::milliseconds(50)) {
    return ConfigError("registry.postgres.watch_interval", "must be at least 50ms");
  }
  if (!pg.password_file.empty()) {
    pg.password_file = Resolve(base_dir, pg.password_file);
    auto secret = ReadSecretFile("registry.postgres.password_file", pg.password_file);
    if (!secret.ok()) return secret.status();
    pg.password = std::move(*secret);
  }
  return pg;
}

}  // namespace

StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    return ConfigError("(syntax)", "line " + std::to_string(e.mark.line + 1) + ", column " +
                                       std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  Config config;
  if (!root || root.IsNull()) return ConfigError("(top level)", "the configuration is empty");
  try {
    if (Status s = CheckKeys(root, "",
                             {"grpc", "metrics", "registry", "log", "commcells", "shutdown_grace",
                              "tracking", "auth"});
        !s.ok()) {
      return s;
    }
    if (auto g = root["grpc"]) {
      if (Status s = CheckKeys(g, "grpc", {"listen", "tls", "max_message_bytes"}); !s.ok()) {
        return s;
      }
      if (Status s = Get(g["listen"], "grpc.listen", config.grpc_listen); !s.ok()) return s;
      if (Status s =
              Get(g["max_message_bytes"], "grpc.max_message_bytes", config.grpc_max_message_bytes);
          !s.ok()) {
        return s;
      }
      if (config.grpc_max_message_bytes < 1024 || config.grpc_max_message_bytes > 16 << 20) {
        return ConfigError("grpc.max_message_bytes", "must be 1024-16777216");
      }
      if (auto t = g["tls"]) {
        auto tls = ParseGrpcTls(t, base_dir);
        if (!tls.ok()) return tls.status();
        config.grpc_tls = std::move(*tls);
      }
    }
    if (auto m = root["metrics"]) {
      if (Status s = CheckKeys(m, "metrics", {"listen", "tls", "basic_auth"}); !s.ok()) return s;
      if (Status s = Get(m["listen"], "metrics.listen", config.metrics_listen); !s.ok()) return s;
      if (auto t = m["tls"]) {
        if (Status s = CheckKeys(t, "metrics.tls", {"cert_file", "key_file"}); !s.ok()) return s;
        for (Status s : {Get(t["cert_file"], "metrics.tls.cert_file", config.metrics_cert_file),
                         Get(t["key_file"], "metrics.tls.key_file", config.metrics_key_file)}) {
          if (!s.ok()) return s;
        }
        for (auto [key, path] : {std::pair{"metrics.tls.cert_file", &config.metrics_cert_file},
                                 std::pair{"metrics.tls.key_file", &config.metrics_key_file}}) {
          if (path->empty()) return ConfigError(key, "is required");
          *path = Resolve(base_dir, *path);
          if (!std::ifstream(*path)) return ConfigError(key, "cannot read " + *path);
        }
      }
      if (auto a = m["basic_auth"]) {
        if (Status s = CheckKeys(a, "metrics.basic_auth", {"username", "password_file"}); !s.ok()) {
          return s;
        }
        for (Status s : {Get(a["username"], "metrics.basic_auth.username", config.metrics_username),
                         Get(a["password_file"], "metrics.basic_auth.password_file",
                             config.metrics_password_file)}) {
          if (!s.ok()) return s;
        }
        if (config.metrics_username.empty() ||
            config.metrics_username.find(':') != std::string::npos) {
          return ConfigError("metrics.basic_auth.username", "must be non-empty and without ':'");
        }
        if (config.metrics_password_file.empty()) {
          return ConfigError("metrics.basic_auth.password_file", "is required");
        }
        config.metrics_password_file = Resolve(base_dir, config.metrics_password_file);
        auto secret =
            ReadSecretFile("metrics.basic_auth.password_file", config.metrics_password_file);
        if (!secret.ok()) return secret.status();
        config.metrics_password = std::move(*secret);
      }
    }
    if (auto r = root["registry"]) {
      if (Status s = CheckKeys(r, "registry", {"path", "postgres"}); !s.ok()) return s;
      if (Status s = Get(r["path"], "registry.path", config.registry_path); !s.ok()) return s;
      if (auto p = r["postgres"]) {
        if (r["path"]) {
          return ConfigError("registry.postgres",
                             "cannot be combined with registry.path (one registry per drgate)");
        }
        auto pg = ParsePostgresRegistry(p, base_dir);
        if (!pg.ok()) return pg.status();
        config.registry_postgres = std::move(*pg);
      }
    }
    if (auto l = root["log"]) {
      if (Status s = CheckKeys(l, "log", {"level", "format"}); !s.ok()) return s;
      if (Status s = Get(l["level"], "log.level", config.log_level); !s.ok()) return s;
      if (Status s = Get(l["format"], "log.format", config.log_format); !s.ok()) return s;
      if (config.log_format != "json" && config.log_format != "text" &&
          config.log_format != "auto") {
        return ConfigError("log.format", "must be json, text or auto");
      }
    }
    if (Status s = GetDuration(root["shutdown_grace"], "shutdown_grace", config.shutdown_grace);
        !s.ok()) {
      return s;
    }
    if (auto t = root["tracking"]) {
      if (Status s = CheckKeys(t, "tracking",
                               {"poll_interval", "max_backoff", "unseen_grace", "intent_grace",
                                "intent_give_up", "retention", "probe_interval", "history_lookback",
                                "history_interval", "options_interval"});
          !s.ok()) {
        return s;
      }
      TrackingConfig& tc = config.tracking;
      for (Status s :
           {GetDuration(t["poll_interval"], "tracking.poll_interval", tc.poll_interval),
            GetDuration(t["max_backoff"], "tracking.max_backoff", tc.max_backoff),
            GetDuration(t["unseen_grace"], "tracking.unseen_grace", tc.unseen_grace),
            GetDuration(t["intent_grace"], "tracking.intent_grace", tc.intent_grace),
            GetDuration(t["intent_give_up"], "tracking.intent_give_up", tc.intent_give_up),
            GetDuration(t["retention"], "tracking.retention", tc.retention),
            GetDuration(t["probe_interval"], "tracking.probe_interval", tc.probe_interval),
            GetDuration(t["history_lookback"], "tracking.history_lookback", tc.history_lookback),
            GetDuration(t["history_interval"], "tracking.history_interval", tc.history_interval),
            GetDuration(t["options_interval"], "tracking.options_interval", tc.options_interval)}) {
        if (!s.ok()) return s;
      }
      for (const auto& [key, value] :
           {std::pair{"tracking.history_lookback", tc.history_lookback},
            std::pair{"tracking.history_interval", tc.history_interval},
            std::pair{"tracking.options_interval", tc.options_interval}}) {
        if (value < std::chrono::seconds(1)) return ConfigError(key, "must be at least 1s");
      }
      if (tc.poll_interval.count() <= 0) {
        return ConfigError("tracking.poll_interval", "must be > 0");
      }
      if (tc.max_backoff < tc.poll_interval) {
        return ConfigError("tracking.max_backoff", "must be at least tracking.poll_interval");
      }
      if (tc.intent_give_up < tc.intent_grace) {
        return ConfigError("tracking.intent_give_up", "must be at least tracking.intent_grace");
      }
    }
    if (Status s = ValidateListen("grpc.listen", config.grpc_listen); !s.ok()) return s;
    if (Status s = ValidateListen("metrics.listen", config.metrics_listen); !s.ok()) return s;
    static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
    if (!kLevels.count(config.log_level)) {
      return ConfigError("log.level", "must be one of trace, debug, info, warn, error");
    }
    if (config.registry_path.empty()) return ConfigError("registry.path", "must not be empty");
    if (config.registry_path != ":memory:") {
      config.registry_path = Resolve(base_dir, config.registry_path);
    }

    auto cells = root["commcells"];
    if (!cells || !cells.IsSequence() || cells.size() == 0) {
      return ConfigError("commcells", "at least one CommCell is required");
    }
    std::set<std::string> names;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const std::string key = "commcells[" + std::to_string(i) + "]";
      auto cell = ParseCommCell(cells[i], key, base_dir);
      if (!cell.ok()) return cell.status();
      if (!names.insert(cell->name).second) {
        return ConfigError(key + ".name", "duplicate CommCell name \"" + cell->name + "\"");
      }
      config.commcells.push_back(std::move(*cell));
    }
    // No silent default: who may start a DR backup is a decision the configuration must state.
    auto a = root["auth"];
    if (!a) {
      return ConfigError("auth",
                         "is required: `auth: {mode: tokens, tokens_file: ...}`, or "
                         "`auth: {mode: insecure}` to let every caller do everything");
    }
    if (Status s = ParseAuth(a, base_dir, config); !s.ok()) return s;
    for (std::size_t i = 0; i < config.auth.tokens.size(); ++i) {
      if (!config.auth.tokens[i].certificate.empty() &&
          (!config.grpc_tls || config.grpc_tls->client_ca_file.empty())) {
        return ConfigError("auth.tokens_file: tokens[" + std::to_string(i) + "].certificate",
                           "needs mutual TLS (grpc.tls.client_ca_file), or no client "
                           "certificate can ever match");
      }
    }
    // An intent younger than intent_grace belongs to a trigger still waiting for its answer;
    // reconciling it earlier could adopt the wrong job.
    for (std::size_t i = 0; i < config.commcells.size(); ++i) {
      const auto& c = config.commcells[i];
      if (config.tracking.intent_grace <= c.connect_timeout * 2 + c.request_timeout * 2) {
        return ConfigError(
            "tracking.intent_grace",
            "must be longer than the slowest trigger of commcells[" + std::to_string(i) +
                "] (2 x connect_timeout + 2 x request_timeout = " +
                std::to_string((c.connect_timeout * 2 + c.request_timeout * 2).count() / 1000) +
                " s)");
      }
    }
  } catch (const YAML::Exception& e) {
    return ConfigError("(structure)", e.msg);
  }
  return config;
}

StatusOr<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ConfigError("--config", "cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), fs::path(path).parent_path().string());
}

}  // namespace drgate
