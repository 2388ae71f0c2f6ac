#include "core/registry/postgres_job_store.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <utility>

#include "core/registry/migrations.h"
#include "core/registry/store_util.h"

namespace drgate {
namespace {

using registry::CeilMillis;
using registry::CreateTimeRange;
using registry::Cursor;
using registry::FromMillis;
using registry::MillisRange;
using registry::PgConnection;
using registry::PgResult;
using registry::ToMillis;
using Params = PgConnection::Params;

constexpr int kMaxPageSize = 1000;

constexpr char kJobColumns[] =
    "commcell, job_id, task_id, backup_type, compression, state, commserv_status, "
    "percent_complete, failure_reason, request_id, requested_by, create_time_ms, start_time_ms, "
    "end_time_ms, update_time_ms, origin";

// A transaction lock per (commcell, request_id), released at COMMIT or ROLLBACK.
constexpr char kLockRequestIdSql[] =
    "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(1) || $2, 0))";

// The states for which IsTerminal() is false, and those it is true for, as stored.
constexpr char kActiveStates[] = "('submitted', 'queued', 'running', 'suspended', 'unknown')";
constexpr char kPrunableStates[] = "('succeeded', 'succeeded_with_errors', 'failed', 'killed')";

std::string Int(int64_t v) {
  return std::to_string(v);
}

std::optional<std::string> OptionalMillis(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return Int(ToMillis(*t));
}

StatusOr<Job> ReadJob(const PgResult& r, int row) {
  Job job;
  job.commcell = r.Text(row, 0);
  job.job_id = r.Text(row, 1);
  job.task_id = r.Int(row, 2);
  const std::string backup_type = r.Text(row, 3);
  const std::string state = r.Text(row, 5);
  const std::string origin = r.Text(row, 15);
  std::optional<BackupType> parsed_type = ParseBackupType(backup_type);
  std::optional<JobState> parsed_state = ParseJobState(state);
  std::optional<JobOrigin> parsed_origin = ParseJobOrigin(origin);
  if (!parsed_type || !parsed_state || !parsed_origin) {
    return Internal("registry row for job '" + job.job_id + "' on CommCell '" + job.commcell +
                        "' has an unknown backup_type '" + backup_type + "', state '" + state +
                        "' or origin '" + origin + "'",
                    Reason::kRegistryError);
  }
  job.origin = *parsed_origin;
  job.backup_type = *parsed_type;
  job.compression = r.Int(row, 4) != 0;
  job.state = *parsed_state;
  job.commserv_status = r.Text(row, 6);
  job.percent_complete = static_cast<int32_t>(r.Int(row, 7));
  job.failure_reason = r.Text(row, 8);
  job.request_id = r.Text(row, 9);
  job.requested_by = r.Text(row, 10);
  job.create_time = FromMillis(r.Int(row, 11));
  if (!r.IsNull(row, 12)) job.start_time = FromMillis(r.Int(row, 12));
  if (!r.IsNull(row, 13)) job.end_time = FromMillis(r.Int(row, 13));
  job.update_time = FromMillis(r.Int(row, 14));
  return job;
}

StatusOr<std::vector<Job>> ReadJobs(const PgResult& r) {
  std::vector<Job> jobs;
  jobs.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    StatusOr<Job> job = ReadJob(r, i);
    if (!job.ok()) return job.status();
    jobs.push_back(std::move(*job));
  }
  return jobs;
}

// An upsert of `rows` jobs in one statement: 16 parameters per row.
std::string UpsertSql(std::size_t rows) {
  std::string sql = std::string("INSERT INTO jobs (") + kJobColumns + ") VALUES ";
  for (std::size_t r = 0; r < rows; ++r) {
    auto p = [r](int i) { return "$" + std::to_string(r * 16 + i); };
    sql += (r == 0 ? "(" : ", (") + p(1) + ", " + p(2) + ", " + p(3) + "::bigint, " + p(4) + ", " +
           p(5) + "::integer, " + p(6) + ", " + p(7) + ", " + p(8) + "::integer, " + p(9) + ", " +
           p(10) + ", " + p(11) + ", " + p(12) + "::bigint, " + p(13) + "::bigint, " + p(14) +
           "::bigint, " + p(15) + "::bigint, " + p(16) + ")";
  }
  sql +=
      " ON CONFLICT (commcell, job_id) DO UPDATE SET "
      "task_id = EXCLUDED.task_id, backup_type = EXCLUDED.backup_type, "
      "compression = EXCLUDED.compression, state = EXCLUDED.state, "
      "commserv_status = EXCLUDED.commserv_status, percent_complete = EXCLUDED.percent_complete, "
      "failure_reason = EXCLUDED.failure_reason, request_id = EXCLUDED.request_id, "
      "requested_by = EXCLUDED.requested_by, create_time_ms = EXCLUDED.create_time_ms, "
      "start_time_ms = EXCLUDED.start_time_ms, end_time_ms = EXCLUDED.end_time_ms, "
      "update_time_ms = EXCLUDED.update_time_ms, origin = EXCLUDED.origin";
  return sql;
}

void AppendJobParams(const Job& job, Params& params) {
  params.insert(
      params.end(),
      {job.commcell, job.job_id, Int(job.task_id), std::string(BackupTypeName(job.backup_type)),
       Int(job.compression ? 1 : 0), std::string(JobStateName(job.state)), job.commserv_status,
       Int(job.percent_complete), job.failure_reason, job.request_id, job.requested_by,
       Int(ToMillis(job.create_time)), OptionalMillis(job.start_time), OptionalMillis(job.end_time),
       Int(ToMillis(job.update_time)), std::string(JobOriginName(job.origin))});
}

// Closes an open intent; a no-op for a resolved one; NOT_FOUND for an unknown one. Runs inside
// the caller's transaction.
Status ResolveIntentIn(PgConnection& conn, int64_t intent_id, const std::string& outcome,
                       TimePoint now, const std::string& operation) {
  // The time is diagnostic only (not part of the JobStore contract).
  StatusOr<PgResult> updated = conn.Exec(
      "UPDATE intents SET resolved = 1, outcome = $1, resolved_time_ms = $2::bigint "
      "WHERE id = $3::bigint AND resolved = 0",
      {outcome, Int(ToMillis(now)), Int(intent_id)}, operation);
  if (!updated.ok()) return updated.status();
  if (updated->Affected() > 0) return Status::Ok();
  StatusOr<PgResult> exists =
      conn.Exec("SELECT 1 FROM intents WHERE id = $1::bigint", {Int(intent_id)}, operation);
  if (!exists.ok()) return exists.status();
  if (exists->rows() == 0) {
    return NotFound("trigger intent " + std::to_string(intent_id) + " does not exist",
                    Reason::kIntentNotFound);
  }
  return Status::Ok();
}

// Fencing: the first statement of a leader write's transaction. Holds the lease row FOR SHARE
// until COMMIT or ROLLBACK, so a takeover (an UPDATE of that row) waits for the write; the write
// goes ahead only when the row still carries the fence's generation and has not run out by the
// database's clock (clock_timestamp(): now, not the transaction's start).
Status CheckFenceIn(PgConnection& conn, const LeaseFence& fence, const std::string& operation) {
  StatusOr<PgResult> r = conn.Exec(
      "SELECT generation, holder, expires_at > clock_timestamp() FROM leader_leases "
      "WHERE name = $1 FOR SHARE",
      {fence.role}, operation);
  if (!r.ok()) return r.status();
  std::string why;
  if (r->rows() == 0) {
    why = "no replica holds the lease";
  } else if (r->Int(0, 0) != fence.generation || r->Text(0, 1) != fence.holder) {
    why = "the lease is at generation " + r->Text(0, 0) + " (holder " + r->Text(0, 1) + ")";
  } else if (r->Text(0, 2) != "t") {
    why = "the lease ran out without a renewal";
  } else {
    return Status::Ok();
  }
  // "commcell/<name>": a CommCell's tracking lease (postgres_tracking_leases.h).
  const std::string lease = fence.role.rfind("commcell/", 0) == 0 ? "lease of " + fence.role
                                                                  : fence.role + " leader lease";
  return Status(StatusCode::kAborted,
                operation + ": refused: this replica's " + lease + " " + "(generation " +
                    std::to_string(fence.generation) + ") is no longer current: " + why,
                Reason::kLeaseLost)
      .With("lease_generation", std::to_string(fence.generation));
}

}  // namespace

// ---- Connections --------------------------------------------------------------------------------

class PostgresJobStore::Lease {
 public:
  Lease(PostgresJobStore* store, std::unique_ptr<PgConnection> conn)
      : store_(store), conn_(std::move(conn)) {}
  Lease(Lease&&) = default;
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (conn_ != nullptr) store_->Release(std::move(conn_));
  }
  PgConnection& operator*() const { return *conn_; }
  // True when the connection was opened for this lease (nothing to retry on a new one).
  bool fresh = false;

 private:
  PostgresJobStore* store_;
  std::unique_ptr<PgConnection> conn_;
};

TimePoint PostgresJobStore::Now() const {
  static const SystemClock system_clock;
  return (options_.clock != nullptr ? *options_.clock : system_clock).Now();
}

PostgresJobStore::PostgresJobStore(PostgresStoreOptions options)
    : options_(std::move(options)), description_(options_.endpoint.Describe()) {}

PostgresJobStore::~PostgresJobStore() = default;

StatusOr<PostgresJobStore::Lease> PostgresJobStore::Acquire(const std::string& operation) {
  {
    std::unique_lock lock(mu_);
    const bool available = cv_.wait_for(lock, options_.acquire_timeout, [this] {
      return !idle_.empty() || open_ < std::max(1, options_.pool_size);
    });
    if (!available) {
      return Status(StatusCode::kUnavailable,
                    description_ + ": " + operation + ": all " +
                        std::to_string(options_.pool_size) + " connections stayed busy for " +
                        std::to_string(options_.acquire_timeout.count()) + " ms",
                    Reason::kRegistryUnavailable);
    }
    if (!idle_.empty()) {
      std::unique_ptr<PgConnection> conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
    ++open_;
  }
  StatusOr<std::unique_ptr<PgConnection>> conn = PgConnection::Connect(options_.endpoint);
  if (!conn.ok()) {
    {
      std::lock_guard lock(mu_);
      --open_;
    }
    cv_.notify_one();
    return conn.status().WithContext(operation);
  }
  Lease lease(this, std::move(*conn));
  lease.fresh = true;
  return lease;
}

void PostgresJobStore::Release(std::unique_ptr<PgConnection> conn) {
  {
    std::lock_guard lock(mu_);
    if (conn->broken()) {
      --open_;
      conn.reset();
    } else {
      idle_.push_back(std::move(conn));
    }
  }
  cv_.notify_one();
}

template <typename Body>
Status PostgresJobStore::Run(const std::string& operation, bool transaction, Body body) {
  for (int attempt = 0;; ++attempt) {
    StatusOr<Lease> lease = Acquire(operation);
    if (!lease.ok()) return lease.status();
    PgConnection& conn = **lease;
    bool committing = false;
    Status s;
    if (transaction) s = conn.Exec("BEGIN", {}, operation).status();
    if (s.ok()) s = body(conn);
    if (s.ok() && transaction) {
      committing = true;
      s = conn.Exec("COMMIT", {}, operation).status();
    }
    if (s.ok()) return s;
    if (transaction && !committing && !conn.broken()) {
      (void)conn.Exec("ROLLBACK", {}, operation);
    }
    // A pooled connection the server dropped (a restart, an idle timeout) fails its first use:
    // nothing reached the database, so one more try on a new connection is safe. A COMMIT that
    // lost its connection may or may not have committed: never retried.
    if (conn.broken() && !committing && !lease->fresh && attempt == 0) continue;
    return s;
  }
}

// ---- Open and migrate ---------------------------------------------------------------------------

StatusOr<std::unique_ptr<PostgresJobStore>> PostgresJobStore::Open(PostgresStoreOptions options) {
  if (Status s = registry::PostgresEndpoint::Validate(options.endpoint.dsn); !s.ok()) {
    return Status(StatusCode::kFailedPrecondition, "registry.postgres.dsn " + s.message(),
                  Reason::kRegistryConfigInvalid);
  }
  std::unique_ptr<PostgresJobStore> store(new PostgresJobStore(std::move(options)));
  const std::string& where = store->description_;
  StatusOr<std::unique_ptr<PgConnection>> opened = PgConnection::Connect(store->options_.endpoint);
  if (!opened.ok()) return opened.status();
  PgConnection& conn = **opened;

  // Held until the end of this block (or the connection's end): replicas starting together
  // migrate one after the other, and the second finds nothing left to do.
  const std::string lock_key = std::to_string(registry::kPostgresMigrationLockKey);
  if (Status s = conn.Exec("SELECT pg_advisory_lock($1::bigint)", {lock_key},
                           "lock the schema for migration")
                     .status();
      !s.ok()) {
    return s;
  }
  if (Status s = conn.ExecScript(
          "CREATE TABLE IF NOT EXISTS drgate_schema_version (version INTEGER NOT NULL)",
          "create the schema version table");
      !s.ok()) {
    return s;
  }
  StatusOr<PgResult> version = conn.Exec(
      "SELECT coalesce(max(version), 0) FROM drgate_schema_version", {}, "read schema version");
  if (!version.ok()) return version.status();
  const int64_t current = version->Int(0, 0);
  if (current > registry::kSchemaVersion) {
    return FailedPrecondition(where + " has schema version " + std::to_string(current) +
                                  ", newer than version " +
                                  std::to_string(registry::kSchemaVersion) +
                                  " known to this drgate; refusing to use it (upgrade drgate)",
                              Reason::kRegistrySchemaTooNew);
  }
  for (const registry::MigrationStep& m : registry::Migrations()) {
    if (m.version <= current) continue;
    const std::string operation =
        "migrate schema to version " + std::to_string(m.version) + " (" + m.description + ")";
    Status s = conn.ExecScript("BEGIN", operation);
    if (s.ok()) s = conn.ExecScript(m.postgres_sql, operation);
    if (s.ok()) s = conn.ExecScript("DELETE FROM drgate_schema_version", operation);
    if (s.ok()) {
      s = conn.Exec("INSERT INTO drgate_schema_version (version) VALUES ($1::integer)",
                    {std::to_string(m.version)}, operation)
              .status();
    }
    if (s.ok()) s = conn.ExecScript("COMMIT", operation);
    if (!s.ok()) {
      if (!conn.broken()) (void)conn.ExecScript("ROLLBACK", operation);
      return s;
    }
  }
  if (Status s = conn.Exec("SELECT pg_advisory_unlock($1::bigint)", {lock_key},
                           "unlock the schema after migration")
                     .status();
      !s.ok()) {
    return s;
  }
  {
    std::lock_guard lock(store->mu_);
    store->open_ = 1;  // the migration's connection joins the pool
  }
  store->Release(std::move(*opened));
  return store;
}

// ---- Writes -------------------------------------------------------------------------------------

Status PostgresJobStore::PutJobs(const std::vector<Job>& jobs,
                                 std::optional<int64_t> resolved_intent) {
  return WriteJobs(nullptr, jobs, resolved_intent);
}

Status PostgresJobStore::WriteJobs(const LeaseFence* fence, const std::vector<Job>& jobs,
                                   std::optional<int64_t> resolved_intent) {
  for (const Job& job : jobs) {
    if (job.commcell.empty() || job.job_id.empty()) {
      return InvalidArgument("a job needs a commcell and a job_id (got commcell '" + job.commcell +
                             "', job_id '" + job.job_id + "')");
    }
  }
  static const std::string kOperation = "record jobs";
  // One statement cannot upsert a key twice: of repeated keys the last one wins, as if written
  // one after the other. Rows keep their order (their `seq`, for FindByRequestId).
  std::vector<const Job*> rows;
  {
    std::set<std::pair<std::string, std::string>> seen;
    for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) {
      if (seen.emplace(it->commcell, it->job_id).second) rows.push_back(&*it);
    }
    std::reverse(rows.begin(), rows.end());
  }
  std::string ids;
  for (const Job& job : jobs) ids += (ids.empty() ? "" : ",") + job.job_id;
  constexpr std::size_t kRowsPerStatement = 500;
  // A single statement commits atomically by itself: no BEGIN/COMMIT round trips.
  const bool transaction =
      rows.size() > kRowsPerStatement || resolved_intent.has_value() || fence != nullptr;
  return Run(kOperation, transaction, [&](PgConnection& conn) -> Status {
    if (fence != nullptr) {
      if (Status s = CheckFenceIn(conn, *fence, kOperation); !s.ok()) return s;
    }
    if (resolved_intent) {
      // Closing a trigger's intent: exclusive with AddIntent of the same request id, so a racing
      // replica sees either this intent open or this job recorded, never neither.
      if (Status lock = conn.Exec("SELECT pg_advisory_xact_lock(hashtextextended(commcell || "
                                  "chr(1) || request_id, 0)) FROM intents WHERE id = $1::bigint "
                                  "AND request_id <> ''",
                                  {Int(*resolved_intent)}, kOperation)
                            .status();
          !lock.ok()) {
        return lock;
      }
    }
    for (std::size_t start = 0; start < rows.size(); start += kRowsPerStatement) {
      const std::size_t n = std::min(kRowsPerStatement, rows.size() - start);
      Params params;
      params.reserve(n * 15);
      for (std::size_t i = 0; i < n; ++i) AppendJobParams(*rows[start + i], params);
      if (Status s = conn.Exec(UpsertSql(n), params, kOperation).status(); !s.ok()) {
        if (n == 1) {
          return s.WithContext("job '" + rows[start]->job_id + "' on CommCell '" +
                               rows[start]->commcell + "'");
        }
        return s;
      }
    }
    if (!resolved_intent) return Status::Ok();
    return ResolveIntentIn(conn, *resolved_intent, "jobs:" + ids, Now(), kOperation);
  });
}

StatusOr<int64_t> PostgresJobStore::AddIntent(const TriggerIntent& intent) {
  static const std::string kOperation = "record trigger intent";
  int64_t id = 0;
  // With a request id: under the request id's transaction lock (which PutJobs closing such an
  // intent takes too), no job recorded for it and no open intent (unique key) -> insert. Without
  // one: a single insert.
  const bool keyed = !intent.request_id.empty();
  Status s = Run(kOperation, keyed, [&](PgConnection& conn) -> Status {
    if (keyed) {
      if (Status lock =
              conn.Exec(kLockRequestIdSql, {intent.commcell, intent.request_id}, kOperation)
                  .status();
          !lock.ok()) {
        return lock;
      }
      StatusOr<PgResult> taken = conn.Exec(
          "SELECT 1 FROM jobs WHERE commcell = $1 AND request_id = $2 AND request_id <> '' "
          "LIMIT 1",
          {intent.commcell, intent.request_id}, kOperation);
      if (!taken.ok()) return taken.status();
      if (taken->rows() > 0) return registry::RequestIdInFlight(intent);
    }
    StatusOr<PgResult> r = conn.Exec(
        "INSERT INTO intents (commcell, backup_type, compression, request_id, requested_by, "
        "create_time_ms) VALUES ($1, $2, $3::integer, $4, $5, $6::bigint) RETURNING id",
        {intent.commcell, std::string(BackupTypeName(intent.backup_type)),
         Int(intent.compression ? 1 : 0), intent.request_id, intent.requested_by,
         Int(ToMillis(intent.create_time))},
        kOperation);
    if (!r.ok()) {
      auto it = r.status().metadata().find("constraint");
      if (r.status().code() == StatusCode::kAlreadyExists && it != r.status().metadata().end() &&
          it->second == "intents_open_request") {
        return registry::RequestIdInFlight(intent);
      }
      return r.status();
    }
    id = r->Int(0, 0);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return id;
}

Status PostgresJobStore::ResolveIntent(int64_t intent_id, const std::string& outcome) {
  return WriteResolveIntent(nullptr, intent_id, outcome);
}

Status PostgresJobStore::WriteResolveIntent(const LeaseFence* fence, int64_t intent_id,
                                            const std::string& outcome) {
  static const std::string kOperation = "resolve trigger intent";
  return Run(kOperation, true, [&](PgConnection& conn) {
    if (fence != nullptr) {
      if (Status s = CheckFenceIn(conn, *fence, kOperation); !s.ok()) return s;
    }
    return ResolveIntentIn(conn, intent_id, outcome, Now(), kOperation);
  });
}

StatusOr<int64_t> PostgresJobStore::PruneTerminalJobs(TimePoint finished_before, int max_rows) {
  return WritePrune(nullptr, finished_before, max_rows);
}

StatusOr<int64_t> PostgresJobStore::WritePrune(const LeaseFence* fence, TimePoint finished_before,
                                               int max_rows) {
  static const std::string kOperation = "prune finished jobs";
  if (max_rows < 1) {
    return InvalidArgument("max_rows must be at least 1, got " + std::to_string(max_rows),
                           Reason::kInvalidMaxRows);
  }
  const std::string before_ms = Int(CeilMillis(finished_before));
  int64_t deleted = 0;
  Status s = Run(kOperation, true, [&](PgConnection& conn) -> Status {
    if (fence != nullptr) {
      if (Status f = CheckFenceIn(conn, *fence, kOperation); !f.ok()) return f;
    }
    StatusOr<PgResult> jobs = conn.Exec(
        std::string("DELETE FROM jobs WHERE (commcell, job_id) IN (SELECT commcell, job_id FROM "
                    "jobs WHERE state IN ") +
            kPrunableStates +
            " AND coalesce(end_time_ms, update_time_ms) < $1::bigint "
            "ORDER BY coalesce(end_time_ms, update_time_ms) LIMIT $2::integer)",
        {before_ms, Int(max_rows)}, kOperation);
    if (!jobs.ok()) return jobs.status();
    deleted = jobs->Affected();
    return conn
        .Exec(
            "DELETE FROM intents WHERE id IN (SELECT id FROM intents WHERE resolved = 1 AND "
            "create_time_ms < $1::bigint ORDER BY create_time_ms LIMIT $2::integer)",
            {before_ms, Int(max_rows)}, kOperation)
        .status();
  });
  if (!s.ok()) return s;
  return deleted;
}

// ---- Reads --------------------------------------------------------------------------------------

StatusOr<Job> PostgresJobStore::GetJob(const std::string& commcell, const std::string& job_id) {
  static const std::string kOperation = "get job";
  std::optional<Job> found;
  Status s = Run(kOperation, false, [&](PgConnection& conn) -> Status {
    StatusOr<PgResult> r = conn.Exec(
        std::string("SELECT ") + kJobColumns + " FROM jobs WHERE commcell = $1 AND job_id = $2",
        {commcell, job_id}, kOperation);
    if (!r.ok()) return r.status();
    if (r->rows() == 0) return Status::Ok();
    StatusOr<Job> job = ReadJob(*r, 0);
    if (!job.ok()) return job.status();
    found = std::move(*job);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!found) {
    return NotFound("job '" + job_id + "' was not started by drgate on CommCell '" + commcell + "'",
                    Reason::kJobNotFound)
        .With("commcell", commcell)
        .With("job_id", job_id);
  }
  return std::move(*found);
}

StatusOr<std::optional<Job>> PostgresJobStore::FindByRequestId(const std::string& commcell,
                                                               const std::string& request_id) {
  static const std::string kOperation = "find job by request_id";
  if (request_id.empty()) return std::optional<Job>();
  std::optional<Job> found;
  Status s = Run(kOperation, false, [&](PgConnection& conn) -> Status {
    StatusOr<PgResult> r = conn.Exec(std::string("SELECT ") + kJobColumns +
                                         " FROM jobs WHERE commcell = $1 AND request_id = $2 "
                                         "AND request_id <> '' ORDER BY seq LIMIT 1",
                                     {commcell, request_id}, kOperation);
    if (!r.ok()) return r.status();
    if (r->rows() == 0) return Status::Ok();
    StatusOr<Job> job = ReadJob(*r, 0);
    if (!job.ok()) return job.status();
    found = std::move(*job);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return found;
}

StatusOr<JobPage> PostgresJobStore::ListJobs(const JobFilter& filter, int page_size,
                                             const std::string& page_token) {
  static const std::string kOperation = "list jobs";
  if (page_size < 1 || page_size > kMaxPageSize) {
    return InvalidArgument("page_size must be between 1 and " + std::to_string(kMaxPageSize) +
                               ", got " + std::to_string(page_size),
                           Reason::kInvalidPageSize);
  }
  std::optional<Cursor> cursor;
  if (!page_token.empty()) {
    StatusOr<Cursor> decoded = registry::DecodePageToken(page_token, filter);
    if (!decoded.ok()) return decoded.status();
    cursor = std::move(*decoded);
  }
  const MillisRange range = CreateTimeRange(filter);
  if (cursor && cursor->create_time_ms > range.until) {
    return InvalidArgument(
        "page_token is malformed; pass the next_page_token of the previous page unchanged",
        Reason::kInvalidPageToken);
  }
  // Keyset pagination over (create_time_ms, commcell, job_id) descending, the order of the
  // indexes of migrations.h; the cursor is the scan's upper end.
  Params params;
  auto param = [&params](std::string value) {
    params.push_back(std::move(value));
    return "$" + std::to_string(params.size());
  };
  std::string sql = std::string("SELECT ") + kJobColumns +
                    " FROM jobs WHERE create_time_ms >= " + param(Int(range.from)) + "::bigint";
  if (!filter.commcell.empty()) sql += " AND commcell = " + param(filter.commcell);
  if (filter.state) sql += " AND state = " + param(JobStateName(*filter.state));
  if (filter.backup_type) sql += " AND backup_type = " + param(BackupTypeName(*filter.backup_type));
  if (filter.origin) sql += " AND origin = " + param(JobOriginName(*filter.origin));
  if (cursor) {
    sql += " AND (create_time_ms, commcell, job_id) < (" + param(Int(cursor->create_time_ms)) +
           "::bigint, " + param(cursor->commcell) + ", " + param(cursor->job_id) + ")";
  } else {
    sql += " AND create_time_ms <= " + param(Int(range.until)) + "::bigint";
  }
  sql += " ORDER BY create_time_ms DESC, commcell DESC, job_id DESC LIMIT " +
         param(Int(page_size + 1)) + "::integer";

  JobPage page;
  Status s = Run(kOperation, false, [&](PgConnection& conn) -> Status {
    StatusOr<PgResult> r = conn.Exec(sql, params, kOperation);
    if (!r.ok()) return r.status();
    StatusOr<std::vector<Job>> jobs = ReadJobs(*r);
    if (!jobs.ok()) return jobs.status();
    page.jobs = std::move(*jobs);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  // One row more than asked tells whether a next page exists, so the last page has no token.
  if (static_cast<int>(page.jobs.size()) > page_size) {
    page.jobs.resize(page_size);
    const Job& last = page.jobs.back();
    page.next_page_token =
        registry::EncodePageToken(Cursor{registry::FilterFingerprint(filter),
                                         ToMillis(last.create_time), last.commcell, last.job_id});
  }
  return page;
}

StatusOr<std::vector<Job>> PostgresJobStore::ListActiveJobs() {
  static const std::string kOperation = "list active jobs";
  std::vector<Job> jobs;
  Status s = Run(kOperation, false, [&](PgConnection& conn) -> Status {
    StatusOr<PgResult> r =
        conn.Exec(std::string("SELECT ") + kJobColumns + " FROM jobs WHERE state IN " +
                      kActiveStates + " ORDER BY create_time_ms, commcell, job_id",
                  {}, kOperation);
    if (!r.ok()) return r.status();
    StatusOr<std::vector<Job>> read = ReadJobs(*r);
    if (!read.ok()) return read.status();
    jobs = std::move(*read);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return jobs;
}

StatusOr<std::optional<Job>> PostgresJobStore::LatestJob(const std::string& commcell,
                                                         BackupType type,
                                                         const std::vector<JobState>& states,
                                                         std::optional<JobOrigin> origin) {
  static const std::string kOperation = "find latest job";
  if (states.empty()) return std::optional<Job>();
  // A text[] literal: state names are lower-case words, nothing to quote.
  std::string array = "{";
  for (std::size_t i = 0; i < states.size(); ++i) {
    array += (i == 0 ? "" : ",") + std::string(JobStateName(states[i]));
  }
  array += "}";
  std::optional<Job> found;
  Params params = {commcell, std::string(BackupTypeName(type)), array};
  if (origin) params.push_back(std::string(JobOriginName(*origin)));
  Status s = Run(kOperation, false, [&](PgConnection& conn) -> Status {
    StatusOr<PgResult> r = conn.Exec(
        std::string("SELECT ") + kJobColumns +
            " FROM jobs WHERE commcell = $1 AND backup_type = $2 AND state = ANY($3::text[]) " +
            (origin ? "AND origin = $4 " : "") +
            "ORDER BY coalesce(end_time_ms, create_time_ms) DESC, job_id DESC LIMIT 1",
        params, kOperation);
    if (!r.ok()) return r.status();
    if (r->rows() == 0) return Status::Ok();
    StatusOr<Job> job = ReadJob(*r, 0);
    if (!job.ok()) return job.status();
    found = std::move(*job);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return found;
}

namespace {

// The rows of a query selecting id, commcell, backup_type, compression, request_id, requested_by
// and create_time_ms of intents, appended to `intents`.
Status ReadIntents(const PgResult& r, std::vector<TriggerIntent>& intents) {
  for (int i = 0; i < r.rows(); ++i) {
    TriggerIntent intent;
    intent.id = r.Int(i, 0);
    intent.commcell = r.Text(i, 1);
    StatusOr<BackupType> backup_type = registry::IntentBackupType(intent.id, r.Text(i, 2));
    if (!backup_type.ok()) return backup_type.status();
    intent.backup_type = *backup_type;
    intent.compression = r.Int(i, 3) != 0;
    intent.request_id = r.Text(i, 4);
    intent.requested_by = r.Text(i, 5);
    intent.create_time = FromMillis(r.Int(i, 6));
    intents.push_back(std::move(intent));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<TriggerIntent>> PostgresJobStore::ListOpenIntents() {
  static const std::string kOperation = "list open trigger intents";
  std::vector<TriggerIntent> intents;
  Status s = Run(kOperation, false, [&](PgConnection& conn) -> Status {
    StatusOr<PgResult> r = conn.Exec(
        "SELECT id, commcell, backup_type, compression, request_id, requested_by, create_time_ms "
        "FROM intents WHERE resolved = 0 ORDER BY id",
        {}, kOperation);
    if (!r.ok()) return r.status();
    intents.clear();
    return ReadIntents(*r, intents);
  });
  if (!s.ok()) return s;
  return intents;
}

StatusOr<std::optional<TriggerIntent>> PostgresJobStore::FindOpenIntent(
    const std::string& commcell, const std::string& request_id) {
  static const std::string kOperation = "find open trigger intent by request_id";
  if (request_id.empty()) return std::optional<TriggerIntent>();
  std::vector<TriggerIntent> intents;
  Status s = Run(kOperation, false, [&](PgConnection& conn) -> Status {
    // The conditions of the partial unique index intents_open_request, so that it applies.
    StatusOr<PgResult> r = conn.Exec(
        "SELECT id, commcell, backup_type, compression, request_id, requested_by, create_time_ms "
        "FROM intents WHERE commcell = $1 AND request_id = $2 AND resolved = 0 "
        "AND request_id <> '' LIMIT 1",
        {commcell, request_id}, kOperation);
    if (!r.ok()) return r.status();
    intents.clear();
    return ReadIntents(*r, intents);
  });
  if (!s.ok()) return s;
  if (intents.empty()) return std::optional<TriggerIntent>();
  return std::optional<TriggerIntent>(std::move(intents.front()));
}

// ---- Leader writes (fencing) ------------------------------------------------------------------

Status PostgresJobStore::PutJobsFenced(const LeaseFence& fence, const std::vector<Job>& jobs,
                                       std::optional<int64_t> resolved_intent) {
  return WriteJobs(&fence, jobs, resolved_intent);
}

Status PostgresJobStore::ResolveIntentFenced(const LeaseFence& fence, int64_t intent_id,
                                             const std::string& outcome) {
  return WriteResolveIntent(&fence, intent_id, outcome);
}

StatusOr<int64_t> PostgresJobStore::PruneTerminalJobsFenced(const LeaseFence& fence,
                                                            TimePoint finished_before,
                                                            int max_rows) {
  return WritePrune(&fence, finished_before, max_rows);
}

}  // namespace drgate
