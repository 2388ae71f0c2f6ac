#pragma once

// The shared job registry: a JobStore on a PostgreSQL database, for several drgate replicas.
//
// Same contract as SqliteJobStore (job_store.h): the same schema versions (migrations.h), the
// same order and page tokens, the same errors. What differs:
// - Durability is PostgreSQL's: a write returns once its transaction committed.
// - Several processes write at once. (commcell, request_id) of an open intent is a unique key, so
//   replicas racing with one request id get one intent (AddIntent: ALREADY_EXISTS for the others).
// - The database may be away: every call then fails with UNAVAILABLE, reason
//   REGISTRY_UNAVAILABLE, and a message naming the registry (host, port, database, user; never
//   the password). A write either committed or left nothing behind (one transaction per call).

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "core/common/clock.h"
#include "core/registry/job_store.h"
#include "core/registry/postgres_connection.h"

namespace drgate {

struct PostgresStoreOptions {
  registry::PostgresEndpoint endpoint;
  // At most this many connections, opened on demand and kept; a call waits up to
  // `acquire_timeout` for one (then UNAVAILABLE).
  int pool_size = 8;
  std::chrono::milliseconds acquire_timeout{10000};
  // Stamps what the store records itself (an intent's resolution time); null: the system clock.
  // Must outlive the store.
  const Clock* clock = nullptr;
};

// The class is thread-safe. Each call borrows one pooled connection for its duration. A
// connection found broken is dropped; a call that lost its connection before anything was
// committed is tried once more on a new one (so a database restart costs no failed call when it
// is back by then).
class PostgresJobStore final : public JobStore {
 public:
  // Connects, then migrates the database to registry::kSchemaVersion under pg_advisory_lock
  // (replicas starting together migrate once). UNAVAILABLE (REGISTRY_UNAVAILABLE) when the server
  // cannot be reached; FAILED_PRECONDITION (REGISTRY_SCHEMA_TOO_NEW) for a database of a newer
  // drgate, left untouched.
  static StatusOr<std::unique_ptr<PostgresJobStore>> Open(PostgresStoreOptions options);

  ~PostgresJobStore() override;
  PostgresJobStore(const PostgresJobStore&) = delete;
  PostgresJobStore& operator=(const PostgresJobStore&) = delete;

  Status PutJobs(const std::vector<Job>& jobs,
                 std::optional<int64_t> resolved_intent = std::nullopt) override;
  StatusOr<Job> GetJob(const std::string& commcell, const std::string& job_id) override;
  StatusOr<std::optional<Job>> FindByRequestId(const std::string& commcell,
                                               const std::string& request_id) override;
  StatusOr<JobPage> ListJobs(const JobFilter& filter, int page_size,
                             const std::string& page_token) override;
  StatusOr<std::vector<Job>> ListActiveJobs() override;
  StatusOr<std::optional<Job>> LatestJob(const std::string& commcell, BackupType type,
                                         const std::vector<JobState>& states,
                                         std::optional<JobOrigin> origin = std::nullopt) override;
  StatusOr<int64_t> PruneTerminalJobs(TimePoint finished_before, int max_rows) override;
  StatusOr<int64_t> AddIntent(const TriggerIntent& intent) override;
  Status ResolveIntent(int64_t intent_id, const std::string& outcome) override;
  StatusOr<std::vector<TriggerIntent>> ListOpenIntents() override;
  StatusOr<std::optional<TriggerIntent>> FindOpenIntent(const std::string& commcell,
                                                        const std::string& request_id) override;

  // Fenced leader writes: the first statement of the write's transaction reads the lease row of
  // `fence.role` FOR SHARE (a takeover waits for the write to commit) and compares its generation,
  // holder and expiry (database clock) with the fence; LEASE_LOST (ABORTED) and a rollback
  // otherwise.
  Status PutJobsFenced(const LeaseFence& fence, const std::vector<Job>& jobs,
                       std::optional<int64_t> resolved_intent = std::nullopt) override;
  Status ResolveIntentFenced(const LeaseFence& fence, int64_t intent_id,
                             const std::string& outcome) override;
  StatusOr<int64_t> PruneTerminalJobsFenced(const LeaseFence& fence, TimePoint finished_before,
                                            int max_rows) override;

  // "PostgreSQL registry host=... port=... dbname=... user=..." (no password).
  const std::string& description() const { return description_; }

 private:
  class Lease;  // a pooled connection borrowed for one call

  explicit PostgresJobStore(PostgresStoreOptions options);
  StatusOr<Lease> Acquire(const std::string& operation);
  void Release(std::unique_ptr<registry::PgConnection> conn);

  // Runs `body(conn)` on a borrowed connection; with `transaction`, inside BEGIN ... COMMIT
  // (rolled back when `body` fails). Tried once more on a new connection when the first one
  // turned out to be lost before COMMIT was sent.
  template <typename Body>
  Status Run(const std::string& operation, bool transaction, Body body);

  // The writes, fenced when `fence` is set (see PutJobsFenced).
  Status WriteJobs(const LeaseFence* fence, const std::vector<Job>& jobs,
                   std::optional<int64_t> resolved_intent);
  Status WriteResolveIntent(const LeaseFence* fence, int64_t intent_id, const std::string& outcome);
  StatusOr<int64_t> WritePrune(const LeaseFence* fence, TimePoint finished_before, int max_rows);

  const PostgresStoreOptions options_;
  const std::string description_;
  TimePoint Now() const;  // options_.clock, or the system clock

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<registry::PgConnection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle + lent out + being opened
};

}  // namespace drgate
