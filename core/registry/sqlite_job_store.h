#pragma once

// The embedded job registry: a JobStore on one SQLite database file.
//
// Durability: the file runs in WAL mode with synchronous=FULL, so every write has reached the disk
// when its method returns. Schema: the versioned migrations of core/registry/migrations.h, applied
// by Open (PRAGMA user_version).

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "core/common/clock.h"
#include "core/common/job.h"
#include "core/common/status.h"
#include "core/registry/job_store.h"
#include "core/registry/writer_lock.h"

namespace drgate {

// The class is thread-safe. Writes go through one connection under a mutex (SQLite allows one
// writer at a time anyway); reads use a small pool of their own connections, so a read never waits
// behind a write's fsync. The object must outlive every call made on it.
class SqliteJobStore final : public JobStore {
 public:
  // The schema version this build creates and understands.
  static constexpr int kSchemaVersion = 4;

  // Opens or creates the database at `path` and migrates it to kSchemaVersion. The parent folder
  // must exist (creating it is the deployment's job): FAILED_PRECONDITION, reason
  // REGISTRY_PATH_INVALID, naming the path, when it does not (or when `path` is empty). A database
  // written by a newer drgate (user_version > kSchemaVersion) is refused with FAILED_PRECONDITION,
  // reason REGISTRY_SCHEMA_TOO_NEW, and left untouched. ":memory:" opens a private in-memory
  // database (for tests: not durable, and reads share the write connection).
  //
  // One store per file: the store holds an exclusive lock on "<path>.lock" (the holder's pid in
  // it) for its life, taken before SQLite opens the file (core/registry/writer_lock.h). While
  // another process or another store holds it, Open fails with FAILED_PRECONDITION, reason
  // REGISTRY_IN_USE, naming the path and the holder's pid, and leaves the database untouched. A
  // lock file left by a process that died does not block: the kernel released its lock.
  // `clock` (null: the system clock) stamps what the store records itself (an intent's
  // resolution time); it must outlive the store.
  static StatusOr<std::unique_ptr<SqliteJobStore>> Open(const std::string& path,
                                                        const Clock* clock = nullptr);

  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

  // JobStore. Errors from SQLite are UNAVAILABLE (reason REGISTRY_UNAVAILABLE) when retrying may
  // help (busy, locked, disk full, read-only, I/O error), INTERNAL (reason REGISTRY_ERROR)
  // otherwise; the message names the operation and carries SQLite's own text, and the metadata
  // "registry_error" classifies the problem: disk_full, read_only, io_error, busy, out_of_memory
  // or other. A write that fails because the disk is full, the file system is read-only or
  // reports an I/O error is UNAVAILABLE with reason REGISTRY_UNWRITABLE, and its message starts
  // with "registry database '<path>' cannot be written (<the problem>)". Nothing of a failed
  // write is kept, and writes succeed again once the file system does (no reopen needed).
  //
  // PutJobs: INVALID_ARGUMENT when a job has an empty commcell or job_id. `resolved_intent` gets
  // the outcome "jobs:<id>,<id>..."; NOT_FOUND (reason INTENT_NOT_FOUND) and nothing written when
  // there is no such intent. Resolving an intent that is already resolved keeps its first outcome.
  Status PutJobs(const std::vector<Job>& jobs,
                 std::optional<int64_t> resolved_intent = std::nullopt) override;
  StatusOr<Job> GetJob(const std::string& commcell, const std::string& job_id) override;
  // An empty request_id never matches.
  StatusOr<std::optional<Job>> FindByRequestId(const std::string& commcell,
                                               const std::string& request_id) override;
  // Order: create_time descending, then commcell and job_id descending (a total order, so paging
  // is stable). Tokens are keyset cursors, and the create_time range bounds the same index scan:
  // with no filter, or a filter on CommCell, state, CommCell and state, or CommCell and backup
  // type (each with or without a time range), a page costs O(page_size) whatever the table size.
  // The other combinations with a backup type (type alone, type and state, all three) scan the
  // index of the other criteria and skip the jobs of the other type, so a page costs
  // O(page_size / share of matching jobs of that type).
  StatusOr<JobPage> ListJobs(const JobFilter& filter, int page_size,
                             const std::string& page_token) override;
  // Oldest first.
  StatusOr<std::vector<Job>> ListActiveJobs() override;
  // One index seek per distinct state in `states`: O(|states| log n).
  StatusOr<std::optional<Job>> LatestJob(const std::string& commcell, BackupType type,
                                         const std::vector<JobState>& states,
                                         std::optional<JobOrigin> origin = std::nullopt) override;
  // O(deleted rows * log n): the candidates come from partial indexes, oldest first.
  StatusOr<int64_t> PruneTerminalJobs(TimePoint finished_before, int max_rows) override;
  // One process, which always leads: there is no lease to check, the fence is ignored and these
  // are the plain writes.
  Status PutJobsFenced(const LeaseFence& fence, const std::vector<Job>& jobs,
                       std::optional<int64_t> resolved_intent = std::nullopt) override;
  Status ResolveIntentFenced(const LeaseFence& fence, int64_t intent_id,
                             const std::string& outcome) override;
  StatusOr<int64_t> PruneTerminalJobsFenced(const LeaseFence& fence, TimePoint finished_before,
                                            int max_rows) override;
  StatusOr<int64_t> AddIntent(const TriggerIntent& intent) override;
  // NOT_FOUND (reason INTENT_NOT_FOUND) for an unknown id; a no-op for a resolved one.
  Status ResolveIntent(int64_t intent_id, const std::string& outcome) override;
  // Oldest first.
  StatusOr<std::vector<TriggerIntent>> ListOpenIntents() override;
  // One seek in the unique index of open intents by (commcell, request_id).
  StatusOr<std::optional<TriggerIntent>> FindOpenIntent(const std::string& commcell,
                                                        const std::string& request_id) override;

  // Called (on the writing thread, after the rollback) with the "registry_error" class of every
  // write that SQLite failed, e.g. to count it in a metric. Set it before the store is shared.
  void SetWriteFailureObserver(std::function<void(const std::string& problem)> observer);

  // Runs `sql` on the write connection, e.g. "PRAGMA max_page_count=..." to make the database
  // full or "PRAGMA query_only=ON" to make it refuse writes as a read-only file would. Tests only.
  Status ExecOnWriterForTesting(const std::string& sql);

  // PRAGMA synchronous of the write connection (2 = FULL). Tests only.
  StatusOr<int> SynchronousForTesting();

 private:
  class Connection;  // one sqlite3 handle and its prepared statements; defined in the .cc
  class ReadLease;   // a read connection borrowed from the pool for one call

  SqliteJobStore(std::string path, registry::WriterLock lock, std::unique_ptr<Connection> writer,
                 const Clock& clock);

  // Borrows a read connection (opening one when none is idle and the pool is not full, waiting
  // otherwise). For ":memory:" it is the write connection, held under write_mu_.
  StatusOr<ReadLease> AcquireReader();
  void ReleaseReader(std::unique_ptr<Connection> conn);

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT on the write connection, rolling back when
  // `body` or the commit fails.
  template <typename Body>
  Status WriteTransaction(const char* operation, Body body);

  const std::string path_;
  const bool in_memory_;
  // Declared before the connections, so it is released after they close. Holds nothing for
  // ":memory:".
  registry::WriterLock lock_;

  std::mutex write_mu_;
  // Also serves reads when in_memory_.
  std::unique_ptr<Connection> writer_ ABSL_GUARDED_BY(write_mu_);
  const Clock& clock_;  // stamps an intent's resolution time

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<Connection>> idle_readers_ ABSL_GUARDED_BY(pool_mu_);
  int open_readers_ ABSL_GUARDED_BY(pool_mu_) = 0;  // idle + lent out

  std::function<void(const std::string&)> write_failure_observer_;  // set before use
};

}  // namespace drgate
