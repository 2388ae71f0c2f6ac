#include "core/registry/postgres_leader_election.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <random>

namespace drgate {
namespace {

int64_t Ticks(std::chrono::steady_clock::time_point t) {
  return t.time_since_epoch().count();
}

std::string DefaultHolder() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return std::string(host[0] != '\0' ? host : "drgate") + "/" + std::to_string(getpid()) + "/" +
         std::to_string(rd());
}

}  // namespace

PostgresLeaderElection::PostgresLeaderElection(PostgresLeaderOptions options)
    : options_(std::move(options)) {
  if (options_.holder.empty()) options_.holder = DefaultHolder();
}

PostgresLeaderElection::~PostgresLeaderElection() {
  Stop();
}

bool PostgresLeaderElection::IsLeader() const {
  return Ticks(std::chrono::steady_clock::now()) < leader_until_.load();
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
  leader_until_ = 0;
  if (was_leader && conn_ != nullptr && !conn_->broken()) {
    // Hand over now rather than after the lease: the next replica's attempt takes the row.
    Status s = conn_
                   ->Exec("DELETE FROM leader_leases WHERE name = $1 AND holder = $2",
                          {options_.role, options_.holder}, "give up the leader lease")
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
  spdlog::info("registry: this replica {} ({}, holder {})",
               now ? "is now the leader" : "is no longer the leader", options_.role,
               options_.holder);
  if (on_change_) on_change_(now);
}

void PostgresLeaderElection::Attempt() {
  if (conn_ == nullptr || conn_->broken()) {
    conn_.reset();
    auto conn = registry::PgConnection::Connect(options_.endpoint);
    if (!conn.ok()) {
      spdlog::warn("registry: leader election: {}", conn.status().ToString());
      return;  // leader_until_ runs out by itself
    }
    conn_ = std::move(*conn);
  }
  const auto sent = std::chrono::steady_clock::now();
  // Insert, renew (we hold it) or take over (it ran out); no row back means another holds it.
  auto r = conn_->Exec(
      "INSERT INTO leader_leases (name, holder, expires_at) "
      "VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond') "
      "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at "
      "WHERE leader_leases.holder = EXCLUDED.holder OR leader_leases.expires_at < now() "
      "RETURNING holder",
      {options_.role, options_.holder, std::to_string(options_.lease.count())},
      "renew the leader lease");
  if (!r.ok()) {
    spdlog::warn("registry: leader election: {}", r.status().ToString());
    return;
  }
  if (r->rows() == 1) {
    leader_until_ = Ticks(sent + options_.lease);
  } else {
    leader_until_ = 0;
  }
}

}  // namespace drgate
