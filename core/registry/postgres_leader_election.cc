#include "core/registry/postgres_leader_election.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <random>

namespace drgate {
namespace {

int64_t Ticks(std::chrono::steady_clock::time_point t) {
  return t.time_since_epoch().count();
}

}  // namespace

std::string DefaultLeaseHolder() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return std::string(host[0] != '\0' ? host : "drgate") + "/" + std::to_string(getpid()) + "/" +
         std::to_string(rd());
}

PostgresLeaderElection::PostgresLeaderElection(PostgresLeaderOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  if (options_.holder.empty()) options_.holder = DefaultLeaseHolder();
  if (options_.safety_margin.count() <= 0) options_.safety_margin = options_.lease / 5;
  options_.safety_margin = std::min(options_.safety_margin, options_.lease / 3);
}

Status PostgresLeaderElection::EnsureLeaseGeneration(registry::PgConnection& conn) {
  static const std::string kOperation = "add the leader lease generation";
  auto r = conn.Exec(
      "SELECT 1 FROM pg_attribute WHERE attrelid = 'leader_leases'::regclass "
      "AND attname = 'generation' AND NOT attisdropped",
      {}, kOperation);
  if (!r.ok()) return r.status();
  if (r->rows() > 0) return Status::Ok();
  // Replicas doing this together: the ALTER takes the table's lock first, so the later ones
  // find the column there and do nothing.
  return conn
      .Exec(
          "ALTER TABLE leader_leases ADD COLUMN IF NOT EXISTS generation BIGINT NOT NULL "
          "DEFAULT 0",
          {}, kOperation)
      .status();
}

PostgresLeaderElection::Held PostgresLeaderElection::held() const {
  std::lock_guard lock(held_mu_);
  return held_;
}

PostgresLeaderElection::~PostgresLeaderElection() {
  Stop();
}

bool PostgresLeaderElection::IsLeader() const {
  return Ticks(clock_.Monotonic()) < held().until;
}

std::optional<LeaseFence> PostgresLeaderElection::CurrentFence() const {
  const Held h = held();
  if (Ticks(clock_.Monotonic()) >= h.until) return std::nullopt;
  return LeaseFence{options_.role, h.generation, options_.holder};
}

void PostgresLeaderElection::Start(std::function<void(bool)> on_change) {
  {
    std::lock_guard lock(mu_);
    if (thread_.joinable() || stopping_) return;
  }
  on_change_ = std::move(on_change);
  Attempt();
  if (on_change_) on_change_(IsLeader());
  last_notified_ = IsLeader();
  std::lock_guard lock(mu_);
  thread_ = std::thread([this] { Loop(); });
}

void PostgresLeaderElection::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  const bool was_leader = IsLeader();
  const Held last = held();
  {
    std::lock_guard lock(held_mu_);
    held_ = Held{};
  }
  if (was_leader && conn_ != nullptr && !conn_->broken()) {
    // Hand over now rather than after the lease: the next replica's attempt takes the row. The
    // row stays (expired), so the generation keeps growing and is never handed out twice.
    Status s = conn_
                   ->Exec(
                       "UPDATE leader_leases "
                       "SET expires_at = clock_timestamp() - interval '1 millisecond' "
                       "WHERE name = $1 AND holder = $2 AND generation = $3::bigint",
                       {options_.role, options_.holder, std::to_string(last.generation)},
                       "give up the leader lease")
                   .status();
    if (!s.ok()) spdlog::warn("registry: {}", s.ToString());
  }
  if (was_leader) spdlog::info("registry: this replica stopped leading ({})", options_.role);
  conn_.reset();
  if (on_change_ && last_notified_) on_change_(false);
  last_notified_ = false;
}

void PostgresLeaderElection::Loop() {
  const auto period =
      std::max<std::chrono::milliseconds>(options_.lease / 3, std::chrono::milliseconds(50));
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, period, [this] { return stopping_; })) return;
    }
    Attempt();
    Notify();
  }
}

void PostgresLeaderElection::Notify() {
  const bool now = IsLeader();
  if (now == last_notified_) return;
  last_notified_ = now;
  if (now) {
    spdlog::info("registry: this replica is now the leader ({}, holder {}, lease generation {})",
                 options_.role, options_.holder, held().generation);
  } else {
    spdlog::info("registry: this replica is no longer the leader ({}, holder {})", options_.role,
                 options_.holder);
  }
  if (on_change_) on_change_(now);
}

void PostgresLeaderElection::Attempt() {
  const auto sent = clock_.Monotonic();
  Held before = held();
  const bool leading = Ticks(sent) < before.until;
  if (!leading && before.until != 0) {
    // It led, and its lease ran out here before a renewal came back: the process was paused
    // (a freeze, SIGSTOP) or the registry was slow. Its leader writes have stopped already
    // (CurrentFence); it rejoins as a follower and acquires the lease anew, under a new
    // generation, only when no other replica holds it.
    spdlog::warn(
        "registry: the {} leader lease (generation {}) ran out {} ms ago without a renewal "
        "(the process was paused or the registry was slow): leader writes stopped; rejoining as "
        "a follower",
        options_.role, before.generation,
        std::chrono::duration_cast<std::chrono::milliseconds>(
            sent - std::chrono::steady_clock::time_point(
                       std::chrono::steady_clock::duration(before.until)))
            .count());
    std::lock_guard lock(held_mu_);
    held_ = Held{};
    before = Held{};
  }
  if (conn_ == nullptr || conn_->broken()) {
    conn_.reset();
    auto conn = registry::PgConnection::Connect(options_.endpoint);
    if (!conn.ok()) {
      spdlog::warn("registry: leader election: {}", conn.status().ToString());
      return;  // the lease runs out by itself
    }
    if (Status s = EnsureLeaseGeneration(**conn); !s.ok()) {
      spdlog::warn("registry: leader election: {}", s.ToString());
      return;
    }
    conn_ = std::move(*conn);
  }
  // Insert, renew (we hold it) or take over (it ran out); no row back means another holds it.
  // The generation stays only for a renewal of the lease this process leads under now (same
  // holder, same generation, not run out); any acquisition counts one up.
  auto r = conn_->Exec(
      "INSERT INTO leader_leases (name, holder, expires_at, generation) "
      "VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond', 1) "
      "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, "
      "expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond', "
      "generation = CASE WHEN leader_leases.holder = EXCLUDED.holder "
      "AND leader_leases.generation = $4::bigint "
      "AND leader_leases.expires_at >= clock_timestamp() "
      "THEN leader_leases.generation ELSE leader_leases.generation + 1 END "
      "WHERE leader_leases.holder = EXCLUDED.holder "
      "OR leader_leases.expires_at < clock_timestamp() "
      "RETURNING generation",
      {options_.role, options_.holder, std::to_string(options_.lease.count()),
       std::to_string(leading ? before.generation : -1)},
      "renew the leader lease");
  if (!r.ok()) {
    spdlog::warn("registry: leader election: {}", r.status().ToString());
    return;
  }
  std::lock_guard lock(held_mu_);
  if (r->rows() == 1) {
    held_ = Held{Ticks(sent + options_.lease - options_.safety_margin), r->Int(0, 0)};
  } else {
    held_ = Held{};
  }
}

}  // namespace drgate
