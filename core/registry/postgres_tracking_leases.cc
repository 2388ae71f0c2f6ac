#include "core/registry/postgres_tracking_leases.h"

#include <spdlog/spdlog.h>
#include <algorithm>

#include "core/registry/migrations.h"

namespace drgate {
namespace {

using registry::PgConnection;

constexpr char kPrefix[] = "commcell/";

int64_t Ticks(std::chrono::steady_clock::time_point t) {
  return t.time_since_epoch().count();
}

uint64_t Score(const std::string& replica, const std::string& commcell) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a over "replica\0commcell"
  auto feed = [&](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  feed(replica);
  h *= 1099511628211ULL;  // the separator: a zero byte
  feed(commcell);
  // splitmix64's finaliser: FNV alone leaves the high bits of similar names correlated.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

// A PostgreSQL array literal of text: {"a","b\"c"}.
std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string IntArray(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(values[i]);
  }
  return out + "}";
}

}  // namespace

std::string CommCellLeaseName(const std::string& commcell) {
  return kPrefix + commcell;
}

const std::string& PreferredReplica(const std::vector<std::string>& replicas,
                                    const std::string& commcell) {
  const std::string* best = &replicas.front();
  uint64_t best_score = Score(*best, commcell);
  for (const std::string& r : replicas) {
    const uint64_t s = Score(r, commcell);
    if (s > best_score || (s == best_score && r < *best)) {
      best = &r;
      best_score = s;
    }
  }
  return *best;
}

namespace {

PostgresLeaderOptions LeaderOptions(const PostgresTrackingOptions& o) {
  PostgresLeaderOptions leader;
  leader.endpoint = o.endpoint;
  leader.lease = o.lease;
  leader.safety_margin = o.safety_margin;
  leader.role = "tracker";
  leader.holder = o.holder;
  return leader;
}

PostgresTrackingOptions WithDefaults(PostgresTrackingOptions o) {
  if (o.holder.empty()) o.holder = DefaultLeaseHolder();
  if (o.safety_margin.count() <= 0) o.safety_margin = o.lease / 5;
  o.safety_margin = std::min(o.safety_margin, o.lease / 3);
  return o;
}

}  // namespace

PostgresTrackingLeases::PostgresTrackingLeases(PostgresTrackingOptions options, const Clock& clock,
                                               std::vector<std::string> commcells)
    : options_(WithDefaults(std::move(options))),
      clock_(clock),
      leader_(LeaderOptions(options_), clock),
      commcells_(std::move(commcells)) {}

PostgresTrackingLeases::~PostgresTrackingLeases() {
  Stop();
}

Status PostgresTrackingLeases::EnsureSchema(PgConnection& conn) {
  static const std::string kOperation = "prepare the per-CommCell tracking leases";
  if (Status s = PostgresLeaderElection::EnsureLeaseGeneration(conn); !s.ok()) return s;
  auto r = conn.Exec(
      "SELECT to_regclass('tracker_replicas') IS NOT NULL AND EXISTS (SELECT 1 FROM pg_attribute "
      "WHERE attrelid = 'leader_leases'::regclass AND attname = 'wanted_by' AND NOT attisdropped)",
      {}, kOperation);
  if (!r.ok()) return r.status();
  if (r->Text(0, 0) == "t") return Status::Ok();
  // Not a schema version of its own: a drgate that does not share tracking ignores both, so a
  // rollback needs no migration. Replicas doing this at once queue on the migration lock.
  return conn.ExecScript(
      "BEGIN;"
      "SELECT pg_advisory_xact_lock(" +
          std::to_string(registry::kPostgresMigrationLockKey) +
          ");"
          // One row per replica taking part, renewed with its leases (docs/replicas.md).
          "CREATE TABLE IF NOT EXISTS tracker_replicas (holder TEXT PRIMARY KEY, "
          "expires_at TIMESTAMPTZ NOT NULL);"
          // The replica that asks for a CommCell's lease from its holder.
          "ALTER TABLE leader_leases ADD COLUMN IF NOT EXISTS wanted_by TEXT NOT NULL DEFAULT '';"
          "COMMIT;",
      kOperation);
}

bool PostgresTrackingLeases::IsLeader() const {
  return leader_.IsLeader();
}

std::optional<LeaseFence> PostgresTrackingLeases::CurrentFence() const {
  return leader_.CurrentFence();
}

bool PostgresTrackingLeases::Tracks(const std::string& commcell) const {
  const int64_t now = Ticks(clock_.Monotonic());
  std::lock_guard lock(mu_);
  auto it = held_.find(commcell);
  return it != held_.end() && now < it->second.until;
}

std::optional<LeaseFence> PostgresTrackingLeases::FenceFor(const std::string& commcell) const {
  const int64_t now = Ticks(clock_.Monotonic());
  std::lock_guard lock(mu_);
  auto it = held_.find(commcell);
  if (it == held_.end() || now >= it->second.until) return std::nullopt;
  return LeaseFence{CommCellLeaseName(commcell), it->second.generation, options_.holder};
}

int PostgresTrackingLeases::TrackedCount() const {
  const int64_t now = Ticks(clock_.Monotonic());
  std::lock_guard lock(mu_);
  return static_cast<int>(std::count_if(held_.begin(), held_.end(),
                                        [&](const auto& h) { return now < h.second.until; }));
}

std::map<std::string, PostgresTrackingLeases::Held> PostgresTrackingLeases::HeldNow() const {
  std::lock_guard lock(mu_);
  return held_;
}

void PostgresTrackingLeases::SetCommCells(std::vector<std::string> names) {
  {
    std::lock_guard lock(mu_);
    commcells_ = std::move(names);
    wake_ = true;
  }
  cv_.notify_all();
}

void PostgresTrackingLeases::Start(std::function<void(bool)> on_change) {
  {
    std::lock_guard lock(mu_);
    if (thread_.joinable() || stopping_) return;
  }
  on_change_ = std::move(on_change);
  leader_.Start(on_change_);
  Attempt();
  NotifyIfChanged();
  std::lock_guard lock(mu_);
  thread_ = std::thread([this] { Loop(); });
}

void PostgresTrackingLeases::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::vector<std::pair<std::string, int64_t>> given_up;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, h] : held_) given_up.emplace_back(name, h.generation);
    held_.clear();
  }
  if (conn_ != nullptr && !conn_->broken()) {
    // Hand the CommCells over now rather than after their leases: the others claim them at
    // their next attempt.
    Release(given_up);
    auto left = conn_->Exec("DELETE FROM tracker_replicas WHERE holder = $1", {options_.holder},
                            "leave the tracking replicas");
    if (!left.ok()) spdlog::warn("registry: {}", left.status().ToString());
  }
  if (!given_up.empty()) {
    spdlog::info("registry: this replica stopped tracking {} CommCell(s)", given_up.size());
  }
  conn_.reset();
  leader_.Stop();  // notifies on_change_(false) when it led
  if (on_change_ && !last_notified_.empty()) on_change_(false);
  last_notified_.clear();
}

void PostgresTrackingLeases::Loop() {
  const auto period =
      std::max<std::chrono::milliseconds>(options_.lease / 3, std::chrono::milliseconds(50));
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, period, [this] { return stopping_ || wake_; }) && stopping_) return;
      wake_ = false;
    }
    Attempt();
    NotifyIfChanged();
  }
}

void PostgresTrackingLeases::NotifyIfChanged() {
  std::set<std::string> now;
  const int64_t t = Ticks(clock_.Monotonic());
  for (const auto& [name, h] : HeldNow()) {
    if (t < h.until) now.insert(name);
  }
  if (now == last_notified_) return;
  size_t gained = 0;
  for (const std::string& n : now) gained += last_notified_.count(n) == 0 ? 1 : 0;
  const size_t lost = last_notified_.size() + gained - now.size();
  spdlog::info("registry: this replica tracks {} CommCell(s) ({} taken over, {} handed on)",
               now.size(), gained, lost);
  last_notified_ = std::move(now);
  if (on_change_) on_change_(leader_.IsLeader());
}

bool PostgresTrackingLeases::EnsureConnection() {
  if (conn_ != nullptr && !conn_->broken()) return true;
  conn_.reset();
  auto conn = PgConnection::Connect(options_.endpoint);
  if (!conn.ok()) {
    spdlog::warn("registry: tracking leases: {}", conn.status().ToString());
    return false;  // the leases run out by themselves
  }
  if (Status s = EnsureSchema(**conn); !s.ok()) {
    spdlog::warn("registry: tracking leases: {}", s.ToString());
    return false;
  }
  conn_ = std::move(*conn);
  return true;
}

void PostgresTrackingLeases::Release(const std::vector<std::pair<std::string, int64_t>>& names) {
  if (names.empty() || conn_ == nullptr) return;
  std::vector<std::string> rows;
  std::vector<int64_t> generations;
  for (const auto& [name, generation] : names) {
    rows.push_back(CommCellLeaseName(name));
    generations.push_back(generation);
  }
  // Rows are locked in name order by every statement here that locks several: no deadlock
  // between replicas. A write under way under this lease (it holds the row FOR SHARE, see
  // PostgresJobStore) commits before the lease is given up.
  auto r = conn_->Exec(
      "UPDATE leader_leases l SET expires_at = clock_timestamp() - interval '1 millisecond' "
      "FROM (SELECT l2.name FROM leader_leases l2 "
      "JOIN unnest($2::text[], $3::bigint[]) AS t(n, g) ON l2.name = t.n AND l2.generation = t.g "
      "WHERE l2.holder = $1 ORDER BY l2.name FOR UPDATE OF l2) x WHERE l.name = x.name",
      {options_.holder, TextArray(rows), IntArray(generations)}, "give up CommCell leases");
  if (!r.ok()) spdlog::warn("registry: tracking leases: {}", r.status().ToString());
}

void PostgresTrackingLeases::Attempt() {
  const auto sent = clock_.Monotonic();
  const int64_t sent_ticks = Ticks(sent);
  std::vector<std::string> names;
  std::map<std::string, Held> held;
  {
    std::lock_guard lock(mu_);
    names = commcells_;
    for (auto it = held_.begin(); it != held_.end();) {
      if (it->second.until <= sent_ticks) {
        // Ran out here before a renewal came back: the process was paused or the registry slow.
        // Its writes for that CommCell have stopped (FenceFor); it claims it anew, under a new
        // generation, only once no other replica holds it.
        spdlog::warn(
            "registry: the lease of commcell {} (generation {}) ran out without a renewal: this "
            "replica stopped tracking it",
            it->first, it->second.generation);
        it = held_.erase(it);
      } else {
        ++it;
      }
    }
    held = held_;
  }
  if (!EnsureConnection()) return;
  const std::string& me = options_.holder;
  const std::string lease_ms = std::to_string(options_.lease.count());

  // 1. Heartbeat, the live replicas, and who holds the leader lease.
  auto beat = conn_->Exec(
      "WITH beat AS (INSERT INTO tracker_replicas (holder, expires_at) "
      "VALUES ($1, clock_timestamp() + $2::bigint * interval '1 millisecond') "
      "ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at RETURNING holder) "
      "SELECT holder, 0 FROM tracker_replicas WHERE expires_at > clock_timestamp() "
      "AND holder <> $1 "
      "UNION ALL SELECT holder, 0 FROM beat "
      "UNION ALL SELECT holder, 1 FROM leader_leases "
      "WHERE name = 'tracker' AND expires_at > clock_timestamp()",
      {me, lease_ms}, "renew this replica's tracking heartbeat");
  if (!beat.ok()) {
    spdlog::warn("registry: tracking leases: {}", beat.status().ToString());
    return;
  }
  std::vector<std::string> live;
  std::string leader;
  for (int i = 0; i < beat->rows(); ++i) {
    if (beat->Int(i, 1) == 1) {
      leader = beat->Text(i, 0);
    } else {
      live.push_back(beat->Text(i, 0));
    }
  }
  std::sort(live.begin(), live.end());
  const std::set<std::string> live_set(live.begin(), live.end());
  const std::set<std::string> configured(names.begin(), names.end());

  std::vector<std::pair<std::string, int64_t>> give_up;
  for (const auto& [name, h] : held) {
    if (!configured.count(name)) give_up.emplace_back(name, h.generation);
  }
  if (!leader.empty() && !live_set.count(leader)) {
    // The leader follows every CommCell itself (an older drgate, or one set to tracking: leader):
    // hold no CommCell lease while it leads.
    for (const auto& [name, h] : held) {
      if (configured.count(name)) give_up.emplace_back(name, h.generation);
    }
    names.clear();
  }

  // 2. The configured CommCells' lease rows.
  std::vector<std::string> rows;
  for (const std::string& n : names) rows.push_back(CommCellLeaseName(n));
  std::vector<std::string> missing, ask;
  std::vector<std::string> claim_names;
  std::vector<int64_t> claim_generations;
  if (!rows.empty()) {
    auto leases = conn_->Exec(
        "SELECT t.n, l.name IS NULL, coalesce(l.holder, ''), coalesce(l.generation, 0), "
        "coalesce(l.expires_at > clock_timestamp(), false), "
        "coalesce(l.expires_at < clock_timestamp() - $2::bigint * interval '1 millisecond', "
        "false), coalesce(l.wanted_by, '') "
        "FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i) "
        "LEFT JOIN leader_leases l ON l.name = t.n ORDER BY t.i",
        {TextArray(rows), lease_ms}, "read the CommCell leases");
    if (!leases.ok()) {
      spdlog::warn("registry: tracking leases: {}", leases.status().ToString());
      return;
    }
    for (int i = 0; i < leases->rows(); ++i) {
      const std::string& name = names[static_cast<size_t>(i)];
      const bool absent = leases->Text(i, 1) == "t";
      const std::string holder = leases->Text(i, 2);
      const int64_t generation = leases->Int(i, 3);
      const bool running = leases->Text(i, 4) == "t";
      const bool orphan = leases->Text(i, 5) == "t";
      const std::string wanted_by = leases->Text(i, 6);
      const bool preferred = PreferredReplica(live, name) == me;
      auto mine = held.find(name);
      if (absent) {
        missing.push_back(rows[static_cast<size_t>(i)]);
        if (preferred) {
          claim_names.push_back(rows[static_cast<size_t>(i)]);
          claim_generations.push_back(-1);
        }
      } else if (running && holder == me) {
        const bool asked = !wanted_by.empty() && wanted_by != me && live_set.count(wanted_by);
        if (mine != held.end() && mine->second.generation == generation && asked) {
          give_up.emplace_back(name, generation);
        } else {
          // Renewed under the same generation when this process holds it; acquired anew (the
          // next generation) when its own hold lapsed here.
          claim_names.push_back(rows[static_cast<size_t>(i)]);
          claim_generations.push_back(mine != held.end() ? mine->second.generation : -1);
        }
      } else if (!running) {
        if (preferred || orphan) {
          claim_names.push_back(rows[static_cast<size_t>(i)]);
          claim_generations.push_back(-1);
        }
      } else if (preferred && wanted_by != me) {
        ask.push_back(rows[static_cast<size_t>(i)]);
      }
    }
  }

  // 3. Give up first: the local hold goes before the registry's, so this process never writes
  // for a CommCell another may hold.
  if (!give_up.empty()) {
    {
      std::lock_guard lock(mu_);
      for (const auto& [name, generation] : give_up) held_.erase(name);
    }
    Release(give_up);
  }
  if (!missing.empty()) {
    // Created run out, so that a CommCell whose preferred replica cannot take it is claimed by
    // another once it has been free for a lease.
    auto r = conn_->Exec(
        "INSERT INTO leader_leases (name, holder, expires_at, generation) "
        "SELECT n, '', clock_timestamp() - interval '1 millisecond', 0 FROM unnest($1::text[]) AS "
        "n "
        "ON CONFLICT (name) DO NOTHING",
        {TextArray(missing)}, "create CommCell leases");
    if (!r.ok()) {
      spdlog::warn("registry: tracking leases: {}", r.status().ToString());
      return;
    }
  }
  // 4. Renew and claim, in one statement.
  if (!claim_names.empty()) {
    auto r = conn_->Exec(
        "WITH t AS (SELECT * FROM unnest($2::text[], $3::bigint[]) AS t(n, g)), "
        "locked AS (SELECT l.name, t.g FROM leader_leases l JOIN t ON l.name = t.n "
        "WHERE l.holder = $1 OR l.expires_at < clock_timestamp() ORDER BY l.name FOR UPDATE OF l) "
        "UPDATE leader_leases l SET holder = $1, "
        "expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond', "
        "wanted_by = CASE WHEN l.holder = $1 THEN l.wanted_by ELSE '' END, "
        "generation = CASE WHEN l.holder = $1 AND l.generation = locked.g "
        "AND l.expires_at >= clock_timestamp() THEN l.generation ELSE l.generation + 1 END "
        "FROM locked WHERE l.name = locked.name "
        "AND (l.holder = $1 OR l.expires_at < clock_timestamp()) "
        "RETURNING l.name, l.generation",
        {me, TextArray(claim_names), IntArray(claim_generations), lease_ms},
        "renew and claim CommCell leases");
    if (!r.ok()) {
      spdlog::warn("registry: tracking leases: {}", r.status().ToString());
      return;  // the holds run out by themselves unless the next attempt renews them
    }
    std::map<std::string, Held> renewed;
    const int64_t until = Ticks(sent + options_.lease - options_.safety_margin);
    for (int i = 0; i < r->rows(); ++i) {
      renewed[r->Text(i, 0).substr(sizeof kPrefix - 1)] = Held{until, r->Int(i, 1)};
    }
    std::lock_guard lock(mu_);
    for (const std::string& row : claim_names) {
      const std::string name = row.substr(sizeof kPrefix - 1);
      auto it = renewed.find(name);
      if (it == renewed.end()) {
        held_.erase(name);  // another replica took it first
      } else if (std::find(commcells_.begin(), commcells_.end(), name) != commcells_.end()) {
        held_[name] = it->second;
      }
    }
  }
  // 5. Ask the holders for the CommCells this replica prefers.
  if (!ask.empty()) {
    auto r = conn_->Exec(
        "UPDATE leader_leases SET wanted_by = $1 WHERE name IN (SELECT name FROM leader_leases "
        "WHERE name = ANY($2::text[]) AND holder <> $1 AND wanted_by <> $1 "
        "AND expires_at >= clock_timestamp() ORDER BY name FOR UPDATE)",
        {me, TextArray(ask)}, "ask for CommCell leases");
    if (!r.ok()) spdlog::warn("registry: tracking leases: {}", r.status().ToString());
  }
}

}  // namespace drgate
