#pragma once

// The core's configuration: the CommCells, tracking, the registry, logging and shutdown; YAML in,
// a validated Config out. The edge's settings (grpc, metrics, auth) are declared by the edge
// (plugin/server_config.h), which embeds these keys in the one file drgate reads. Every error
// names the key that is wrong ("commcells[1].url: must start with https:// or http://"), so an
// operator can fix the file without reading code. Secrets are read from the files the config
// names; they never appear in errors or logs.

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
#include "core/config/schema.h"

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
  // How often a replica re-reads the jobs its WatchJob streams follow (the tracker writes them).
  std::chrono::milliseconds watch_interval{500};
  // Who follows the CommCells' jobs: each CommCell by the replica holding its own lease, the
  // CommCells spread over the live replicas (kPerCommCell), or all of them by the leader.
  enum class Tracking { kPerCommCell, kLeader };
  Tracking tracking = Tracking::kPerCommCell;
  bool operator==(const PostgresRegistryConfig&) const = default;
};

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
enum class LogFormat { kAuto, kJson, kText };  // auto: text on a terminal, else JSON

struct Config {
  std::string registry_path = "drgate.db";
  std::optional<PostgresRegistryConfig> registry_postgres;  // set: PostgreSQL instead of SQLite
  LogLevel log_level = LogLevel::kInfo;
  LogFormat log_format = LogFormat::kAuto;
  std::chrono::milliseconds shutdown_grace{10000};
  TrackingConfig tracking;
  std::vector<CommCellConfig> commcells;
  bool operator==(const Config&) const = default;
};

// The keys above, as the configuration file declares them (commcells, tracking, registry, log,
// shutdown_grace), in the order they are read. The process that owns the file declares its own
// keys around these (plugin/server_config.h: grpc, metrics, auth) and embeds this section.
const config::Section<Config>& ConfigSection();

using Override = config::Override;

// Parses and validates a document holding only the keys above (tools and tests; drgate itself
// reads its file with plugin/server_config.h). Relative file paths (password_file, token_file,
// ca_file, registry.path) are resolved against `base_dir`; secret files are read here. Errors are
// INVALID_ARGUMENT (reason CONFIG_INVALID) whose message starts with the key path.
StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& base_dir,
                             const std::vector<Override>& overrides = {});

// The configured value's name as written in the file ("json", "reuse", "info", ...).
const char* NameOf(LogLevel level);
const char* NameOf(LogFormat format);

// "30s", "500ms", "5m", "2h", "1h30m", "90d". INVALID_ARGUMENT on anything else.
StatusOr<std::chrono::milliseconds> ParseDuration(const std::string& text);

}  // namespace drgate
