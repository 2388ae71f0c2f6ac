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

using config::Error;
using config::Resolve;
using config::Section;
using config::Type;
using std::chrono::milliseconds;

Status ConfigError(const std::string& key, const std::string& what) {
  return Error(key, what);
}

using config::Apply;
using config::Name;
using config::SecretFile;
using config::Self;

// ---- The declarations: one table per section. ----

Section<commserv::RetryPolicy> RetrySection() {
  using P = commserv::RetryPolicy;
  Section<P> s(Apply::kLive);
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
  Section<P> s(Apply::kLive);
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
  Section<C> s(Apply::kLive);
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
  Section<T> s(Apply::kLive);
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
          "wait for a slot; a poll under way for a whole poll_interval (a hung CommServe) stops "
          "counting.")
      .Add(
          "history", config::Bool(), [](T& t) -> bool& { return t.history; },
          "Read each CommCell's DR job history and DR backup options, so that DR backups drgate "
          "did not start count too (docs/dr-history.md); false: only drgate's own.")
      .Restart()
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

Section<PostgresRegistryConfig> PostgresSection() {
  using P = PostgresRegistryConfig;
  Section<P> s(Apply::kRestart);
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
          "How often a replica re-reads the jobs its WatchJob streams follow.")
      .Add(
          "tracking",
          config::Choice<P::Tracking>(
              {{"per_commcell", P::Tracking::kPerCommCell}, {"leader", P::Tracking::kLeader}}),
          [](P& p) -> P::Tracking& { return p.tracking; },
          "Who follows the CommCells' jobs: per_commcell spreads them over the live replicas, "
          "one lease per CommCell (docs/replicas.md); leader: one replica follows them all.");
  return s;
}

Section<Config> RegistrySection() {
  Section<Config> s(Apply::kRestart);
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
  Section<Config> s(Apply::kLive);
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
          "Log line format; auto: text on a terminal, else JSON.")
      .Restart();
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

}  // namespace

// Keys are read in this order, so an error names the first problem in the file.
const Section<Config>& ConfigSection() {
  static const Section<Config> root = [] {
    Section<Config> s(Apply::kLive);
    s.Add("registry", RegistrySection().AsType(), Self<Config>(), "The job registry.")
        .Restart()
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
        .Rule("registry.path is resolved against the configuration's folder (except `:memory:`).",
              [](Config& c, const std::string&, const config::Context& ctx) {
                if (c.registry_path != ":memory:") {
                  c.registry_path = Resolve(ctx.base_dir, c.registry_path);
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
  return config::ParseDocument(ConfigSection(), yaml_text, base_dir, overrides);
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

}  // namespace drgate
