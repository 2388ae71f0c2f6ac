#pragma once

// Tracking shared by the replicas of one PostgreSQL registry: every CommCell has a lease row of
// its own (table leader_leases, name "commcell/<name>"), and only its holder follows that
// CommCell's jobs and intents (core/jobs/tracker.h). docs/replicas.md tells the operator's side.
//
// Who should hold what: rendezvous hashing (highest random weight) over the live replicas. Each
// replica heartbeats a row of tracker_replicas; a replica is live while its row has not run out
// (one lease). For every CommCell each replica scores hash(replica, CommCell) for every live
// replica and prefers the highest. Every replica computes the same answer from the same list
// without talking to the others; a replica that joins or leaves moves only its own share (about
// 1/N of the CommCells), and the shares are even within a few percent at estate sizes.
// (A balanced claim, replicas taking free CommCells until they hold their quota, needs a count
// of everyone's holdings and settles by contention; hashing settles in one round.)
//
// The lease decides, the hash only asks: every attempt (lease / 3) a replica
// - renews the leases it holds, in one statement;
// - claims a free CommCell (lease run out) that it prefers, or any CommCell whose lease has been
//   free for a whole lease (its preferred replica cannot take it: not configured there, or
//   failing), so nothing stays untracked;
// - asks for a CommCell it prefers that a live replica holds (wanted_by), and that holder gives it
//   up at its next attempt (expires it: no double tracking), after which the asker claims it.
// A replica joining takes its share within about two attempts, with no CommCell followed by two
// replicas at once. A replica that dies stops renewing; its leases run out within one lease and
// the preferred replicas among the rest claim them at their next attempt: within lease + lease/3.
//
// Safety and fencing as for the leader lease (postgres_leader_election.h): a replica counts each
// lease from the moment it sent the renewal, less a safety margin, so it stops tracking before
// the database would let another take over; each lease row has a generation that grows at every
// acquisition, and FenceFor(commcell) hands it to the CommCell's writes, which the registry
// checks in their own transaction (PostgresJobStore::PutJobsFenced).
//
// Estate-wide chores (pruning finished jobs) stay with the leader lease "tracker", held by one
// replica (IsLeader(), CurrentFence()). That lease also keeps a rolling upgrade from a drgate that
// tracks everything as leader safe: while the "tracker" lease is held by a replica that does not
// heartbeat tracker_replicas (an older drgate, or one set to registry.postgres.tracking: leader),
// no replica holds a CommCell lease; that leader follows every CommCell alone.
//
// The class is thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/common/clock.h"
#include "core/registry/leader_election.h"
#include "core/registry/postgres_connection.h"
#include "core/registry/postgres_leader_election.h"

namespace drgate {

struct PostgresTrackingOptions {
  registry::PostgresEndpoint endpoint;
  std::chrono::milliseconds lease{15000};
  // How much earlier than the lease this process stops tracking; 0: lease / 5. At most lease / 3.
  std::chrono::milliseconds safety_margin{0};
  // Unique per process; default: host name, pid and a random number.
  std::string holder;
};

// The lease row name of a CommCell ("commcell/<name>").
std::string CommCellLeaseName(const std::string& commcell);

// Rendezvous hashing: the one of `replicas` (not empty) that prefers `commcell`. Stable across
// processes and builds (FNV-1a and a 64-bit finaliser, not std::hash).
const std::string& PreferredReplica(const std::vector<std::string>& replicas,
                                    const std::string& commcell);

class PostgresTrackingLeases final : public LeaderElection {
 public:
  // `clock` (its monotonic time measures the leases) must outlive this.
  PostgresTrackingLeases(PostgresTrackingOptions options, const Clock& clock,
                         std::vector<std::string> commcells);
  ~PostgresTrackingLeases() override;
  PostgresTrackingLeases(const PostgresTrackingLeases&) = delete;
  PostgresTrackingLeases& operator=(const PostgresTrackingLeases&) = delete;

  // The "tracker" leader lease: estate-wide chores.
  bool IsLeader() const override;
  std::optional<LeaseFence> CurrentFence() const override;
  bool Tracks(const std::string& commcell) const override;
  std::optional<LeaseFence> FenceFor(const std::string& commcell) const override;
  void SetCommCells(std::vector<std::string> names) override;
  // The first attempt runs before Start returns. `on_change` (IsLeader()) is called when the
  // leader lease changes hands and whenever this replica's set of tracked CommCells changes.
  void Start(std::function<void(bool)> on_change) override;
  // Gives every CommCell lease up (and leaves tracker_replicas), so the others claim them at
  // their next attempt; then the leader lease.
  void Stop() override;

  const std::string& holder() const { return options_.holder; }
  // CommCells this replica tracks now.
  int TrackedCount() const;

  // Creates tracker_replicas and the wanted_by column when missing (an older schema); a no-op
  // when they are there. Run on each new connection.
  static Status EnsureSchema(registry::PgConnection& conn);

 private:
  struct Held {
    int64_t until = 0;  // monotonic ticks; tracking while now < until
    int64_t generation = 0;
  };
  void Loop();
  // One round: heartbeat, read the CommCells' lease rows, then renew, claim, ask and give up.
  void Attempt();
  // Gives up the leases of `names` in the registry (their local holds are gone already).
  void Release(const std::vector<std::pair<std::string, int64_t>>& names);
  std::map<std::string, Held> HeldNow() const;
  bool EnsureConnection();
  void NotifyIfChanged();

  PostgresTrackingOptions options_;
  const Clock& clock_;
  PostgresLeaderElection leader_;  // role "tracker", same holder
  std::function<void(bool)> on_change_;
  std::unique_ptr<registry::PgConnection> conn_;  // used by Attempt/Stop only

  mutable std::mutex mu_;
  std::vector<std::string> commcells_;  // guarded by mu_
  std::map<std::string, Held> held_;    // guarded by mu_
  bool stopping_ = false;               // guarded by mu_
  bool wake_ = false;                   // guarded by mu_: SetCommCells asks for an attempt now
  std::condition_variable cv_;
  std::set<std::string> last_notified_;  // Attempt's thread only
  bool last_leader_ = false;             // Attempt's thread only
  std::thread thread_;
};

}  // namespace drgate
