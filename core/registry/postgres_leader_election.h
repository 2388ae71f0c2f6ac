#pragma once

// Leader election through the shared PostgreSQL registry: a lease row (table leader_leases,
// migrations.h) that one replica holds and renews.
//
// Every `lease / 3` each replica runs one statement on its own dedicated connection: the holder
// extends its lease to now() + lease; any other replica takes the row over only when the lease
// has run out. Expiry uses the database's clock, so replicas' clocks need not agree.
//
// Safety: a leader counts its lease from the moment it *sent* the renewal, so it considers itself
// leader no longer than the database does, and stops leading (IsLeader() false) when renewals
// fail for a whole lease, before any other replica can take over.
// Takeover: after the leader dies, another replica leads within lease + lease / 3. A replica that
// stops cleanly (Stop) gives the lease up, so another takes over within lease / 3.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/registry/leader_election.h"
#include "core/registry/postgres_connection.h"

namespace drgate {

struct PostgresLeaderOptions {
  registry::PostgresEndpoint endpoint;
  std::chrono::milliseconds lease{15000};
  std::string role = "tracker";  // one lease row per role
  // Unique per process; default: host name, pid and a random number.
  std::string holder;
};

// The class is thread-safe.
class PostgresLeaderElection final : public LeaderElection {
 public:
  explicit PostgresLeaderElection(PostgresLeaderOptions options);
  ~PostgresLeaderElection() override;
  PostgresLeaderElection(const PostgresLeaderElection&) = delete;
  PostgresLeaderElection& operator=(const PostgresLeaderElection&) = delete;

  bool IsLeader() const override;
  // The first attempt runs before Start returns, so a replica that can lead does from the start.
  void Start(std::function<void(bool)> on_change) override;
  void Stop() override;

  const std::string& holder() const { return options_.holder; }

 private:
  void Loop();
  // One renewal or takeover attempt; updates leader_until_.
  void Attempt();
  void Notify();

  PostgresLeaderOptions options_;
  std::function<void(bool)> on_change_;  // set by Start, then only read by the election thread
  std::unique_ptr<registry::PgConnection> conn_;  // used by Attempt only (one thread at a time)
  // steady_clock ticks until which this process leads; 0: not leading.
  std::atomic<int64_t> leader_until_{0};
  bool last_notified_ = false;  // used by Notify only

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace drgate
