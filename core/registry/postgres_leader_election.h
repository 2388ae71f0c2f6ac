#pragma once

// Leader election through the shared PostgreSQL registry: a lease row (table leader_leases,
// migrations.h) that one replica holds and renews.
//
// Every `lease / 3` each replica runs one statement on its own dedicated connection: the holder
// extends its lease to now + lease; any other replica takes the row over only when the lease
// has run out. Expiry uses the database's clock (clock_timestamp(): when the statement runs, also
// after it waited for a lock), so replicas' clocks need not agree.
//
// Safety: a leader counts its lease from the moment it *sent* the renewal, less a safety margin,
// so it considers itself leader for less time than the database does, and stops leading
// (IsLeader() false, CurrentFence() nullopt) when renewals fail or stall for
// `lease - safety_margin`, before any other replica can take over. That is a clock reading, not
// the renewal thread's doing: a process paused past its lease (a freeze, SIGSTOP) sees it ran out
// the moment it resumes, and rejoins as a follower.
// Fencing: the lease row carries a generation that grows every time any replica acquires the
// lease (a renewal of a lease still held keeps it; a holder whose lease ran out acquires it anew).
// CurrentFence() hands it to the leader's writes, which the store checks in their own
// transaction (JobStore::PutJobsFenced), so a write of a leader that lost its lease after the
// local check is refused by the database (docs/replicas-fencing.md).
// Takeover: after the leader dies, another replica leads within lease + lease / 3. A replica that
// stops cleanly (Stop) gives the lease up (expires it, keeping the row and its generation), so
// another takes over within lease / 3.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/common/clock.h"
#include "core/registry/leader_election.h"
#include "core/registry/postgres_connection.h"

namespace drgate {

// A lease holder's name unique per process: host name, pid and a random number.
std::string DefaultLeaseHolder();

struct PostgresLeaderOptions {
  registry::PostgresEndpoint endpoint;
  std::chrono::milliseconds lease{15000};
  // How much earlier than the lease this process stops leading; 0: lease / 5. At most lease / 3
  // (more would make a leader that renews on time drop out between renewals).
  std::chrono::milliseconds safety_margin{0};
  std::string role = "tracker";  // one lease row per role
  // Unique per process; default: host name, pid and a random number.
  std::string holder;
};

// The class is thread-safe.
class PostgresLeaderElection final : public LeaderElection {
 public:
  // `clock` (its monotonic time measures the lease) must outlive the election.
  PostgresLeaderElection(PostgresLeaderOptions options, const Clock& clock);
  ~PostgresLeaderElection() override;
  PostgresLeaderElection(const PostgresLeaderElection&) = delete;
  PostgresLeaderElection& operator=(const PostgresLeaderElection&) = delete;

  bool IsLeader() const override;
  std::optional<LeaseFence> CurrentFence() const override;
  // The first attempt runs before Start returns, so a replica that can lead does from the start.
  void Start(std::function<void(bool)> on_change) override;
  void Stop() override;

  const std::string& holder() const { return options_.holder; }
  std::chrono::milliseconds safety_margin() const { return options_.safety_margin; }

  // Adds the lease's generation column to a lease table created without it (schema step 3 of
  // migrations.h); a no-op when it is there. Run by the election on each new connection.
  static Status EnsureLeaseGeneration(registry::PgConnection& conn);

 private:
  void Loop();
  // One renewal or takeover attempt; updates the lease state.
  void Attempt();
  void Notify();
  // The lease as this process sees it: monotonic ticks (Clock::Monotonic) until which it leads
  // (0: not leading)
  // and the generation it leads under.
  struct Held {
    int64_t until = 0;
    int64_t generation = 0;
  };
  Held held() const;

  PostgresLeaderOptions options_;
  const Clock& clock_;                   // monotonic time measures the lease
  std::function<void(bool)> on_change_;  // set by Start, then only read by the election thread
  std::unique_ptr<registry::PgConnection> conn_;  // used by Attempt only (one thread at a time)
  mutable std::mutex held_mu_;
  Held held_;                   // guarded by held_mu_
  bool last_notified_ = false;  // used by Notify only

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace drgate
