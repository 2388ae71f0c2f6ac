#include "core/registry/sqlite_job_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "core/registry/migrations.h"
#include "core/registry/store_util.h"
#include "core/registry/writer_lock.h"

namespace drgate {
namespace {

using registry::CeilMillis;
using registry::CreateTimeRange;
using registry::Cursor;
using registry::DecodePageToken;
using registry::EncodePageToken;
using registry::FilterFingerprint;
using registry::FromMillis;
using registry::MillisRange;
using registry::ToMillis;

// How long a connection waits for a lock held by another connection (or process) before the call
// fails with UNAVAILABLE.
constexpr int kBusyTimeoutMs = 5000;
// Read connections per store. Each one keeps its own page cache; beyond this many concurrent
// readers, callers wait for an idle connection rather than open more file handles.
constexpr int kMaxReadConnections = 8;
constexpr int kMaxPageSize = 1000;
// Read connections map the file (up to 1 GiB, about 3M jobs) instead of copying pages with
// pread(): a filtered ListJobs page visits up to 1000 scattered table pages, and mapping halves
// its time at 1M jobs. The cost: a disk I/O error while reading surfaces as SIGBUS rather than as
// an UNAVAILABLE status. Writes never go through the mapping.
constexpr char kReadConnectionPragmas[] = "PRAGMA query_only=ON; PRAGMA mmap_size=1073741824;";

constexpr char kProblemKey[] = "registry_error";

static_assert(registry::kSchemaVersion == SqliteJobStore::kSchemaVersion);

// All statements the store runs. Built once; Connection caches prepared statements keyed by the
// address of these strings, so they must live as long as the process.
struct Sql {
  std::string upsert_job;
  std::string get_job;
  std::string find_by_request_id;
  std::string list_active;
  // Indexed by ListVariant().
  std::array<std::string, 32> list_jobs;
  std::string latest_job;
  std::string latest_job_of_origin;
  std::string prune_jobs;
  std::string prune_intents;
  std::string add_intent;
  std::string resolve_intent;
  std::string intent_exists;
  std::string request_id_taken;
  std::string list_open_intents;
  std::string find_open_intent;
};

constexpr char kJobColumns[] =
    "commcell, job_id, task_id, backup_type, compression, state, commserv_status, "
    "percent_complete, failure_reason, request_id, requested_by, create_time_ms, start_time_ms, "
    "end_time_ms, update_time_ms, origin";

// LatestJob binds one parameter per distinct state; unused ones stay NULL and match nothing.
constexpr const char* kLatestJobStateParams[] = {":state1", ":state2", ":state3",
                                                 ":state4", ":state5", ":state6",
                                                 ":state7", ":state8", ":state9"};

int ListVariant(bool by_commcell, bool by_state, bool by_type, bool after_cursor, bool by_origin) {
  return (by_commcell ? 1 : 0) | (by_state ? 2 : 0) | (by_type ? 4 : 0) | (after_cursor ? 8 : 0) |
         (by_origin ? 16 : 0);
}

// Keyset pagination over (create_time_ms, commcell, job_id) descending. INDEXED BY pins the plan
// to a range scan on the index that matches the filter (an error, not a silent full scan, if the
// index were ever missing). The create_time range is always bound (to the whole int64 range when
// the filter has none), so it narrows that same scan. After a cursor, the cursor is the scan's
// upper end: ListJobs has checked that it lies inside the range.
std::string ListJobsSql(bool by_commcell, bool by_state, bool by_type, bool after_cursor,
                        bool by_origin) {
  // Only CommCell + type has an index of its own; otherwise a type filter is checked on the rows
  // of the index of the other criteria.
  const char* index = by_commcell ? (by_state  ? "jobs_by_commcell_state_time"
                                     : by_type ? "jobs_by_commcell_type_time"
                                               : "jobs_by_commcell_time")
                                  : (by_state ? "jobs_by_state_time" : "jobs_by_time");
  std::vector<std::string> terms;
  if (by_commcell) terms.push_back("commcell = :filter_commcell");
  if (by_state) terms.push_back("state = :filter_state");
  if (by_type) terms.push_back("backup_type = :filter_type");
  // Like the type filter, an origin filter is checked on the rows of the chosen index.
  if (by_origin) terms.push_back("origin = :filter_origin");
  terms.push_back("create_time_ms >= :created_from_ms");
  if (!after_cursor) terms.push_back("create_time_ms <= :created_until_ms");
  if (after_cursor) {
    // With commcell fixed by the filter, leaving it out of the row value keeps the comparison a
    // prefix of the index after the equality columns.
    terms.push_back(by_commcell ? "(create_time_ms, job_id) < (:cursor_time, :cursor_job_id)"
                                : "(create_time_ms, commcell, job_id) < "
                                  "(:cursor_time, :cursor_commcell, :cursor_job_id)");
  }
  std::string sql = std::string("SELECT ") + kJobColumns + " FROM jobs INDEXED BY " + index;
  for (size_t i = 0; i < terms.size(); ++i) sql += (i == 0 ? " WHERE " : " AND ") + terms[i];
  sql += " ORDER BY create_time_ms DESC, commcell DESC, job_id DESC LIMIT :limit";
  return sql;
}

const Sql& Statements() {
  static const Sql* const sql = [] {
    auto* s = new Sql;
    s->upsert_job = std::string("INSERT INTO jobs (") + kJobColumns +
                    ") VALUES (:commcell, :job_id, :task_id, :backup_type, :compression, :state, "
                    ":commserv_status, :percent_complete, :failure_reason, :request_id, "
                    ":requested_by, :create_time_ms, :start_time_ms, :end_time_ms, "
                    ":update_time_ms, :origin) "
                    "ON CONFLICT (commcell, job_id) DO UPDATE SET "
                    "task_id = excluded.task_id, backup_type = excluded.backup_type, "
                    "compression = excluded.compression, state = excluded.state, "
                    "commserv_status = excluded.commserv_status, "
                    "percent_complete = excluded.percent_complete, "
                    "failure_reason = excluded.failure_reason, request_id = excluded.request_id, "
                    "requested_by = excluded.requested_by, "
                    "create_time_ms = excluded.create_time_ms, "
                    "start_time_ms = excluded.start_time_ms, end_time_ms = excluded.end_time_ms, "
                    "update_time_ms = excluded.update_time_ms, origin = excluded.origin";
    s->get_job = std::string("SELECT ") + kJobColumns +
                 " FROM jobs WHERE commcell = :commcell AND job_id = :job_id";
    s->find_by_request_id = std::string("SELECT ") + kJobColumns +
                            " FROM jobs INDEXED BY jobs_by_request "
                            "WHERE commcell = :commcell AND request_id = :request_id "
                            "AND request_id <> '' ORDER BY rowid LIMIT 1";
    // The WHERE clause repeats the partial index's condition verbatim so that it applies.
    s->list_active = std::string("SELECT ") + kJobColumns +
                     " FROM jobs INDEXED BY jobs_active "
                     "WHERE state IN ('submitted', 'queued', 'running', 'suspended', 'unknown') "
                     "ORDER BY create_time_ms, commcell, job_id";
    for (int v = 0; v < 32; ++v) {
      s->list_jobs[v] = ListJobsSql(v & 1, v & 2, v & 4, v & 8, v & 16);
    }
    // For each requested state, a correlated subquery seeks that state's most recent job in
    // jobs_latest (its ORDER BY is the index order, so LIMIT 1 stops at the first entry); the
    // outer query picks the most recent of those at most nine rows.
    s->latest_job = std::string(
                        "WITH wanted(state) AS (VALUES (:state1), (:state2), (:state3), "
                        "(:state4), (:state5), (:state6), (:state7), (:state8), "
                        "(:state9)) SELECT ") +
                    kJobColumns +
                    " FROM jobs WHERE rowid IN (SELECT (SELECT j.rowid FROM jobs AS j "
                    "INDEXED BY jobs_latest WHERE j.commcell = :commcell AND "
                    "j.backup_type = :backup_type AND j.state = wanted.state "
                    "ORDER BY coalesce(j.end_time_ms, j.create_time_ms) DESC, j.job_id DESC "
                    "LIMIT 1) FROM wanted) "
                    "ORDER BY coalesce(end_time_ms, create_time_ms) DESC, job_id DESC LIMIT 1";
    // The same, for one origin, on jobs_latest_origin.
    s->latest_job_of_origin =
        std::string(
            "WITH wanted(state) AS (VALUES (:state1), (:state2), (:state3), "
            "(:state4), (:state5), (:state6), (:state7), (:state8), "
            "(:state9)) SELECT ") +
        kJobColumns +
        " FROM jobs WHERE rowid IN (SELECT (SELECT j.rowid FROM jobs AS j "
        "INDEXED BY jobs_latest_origin WHERE j.commcell = :commcell AND "
        "j.backup_type = :backup_type AND j.origin = :origin AND j.state = wanted.state "
        "ORDER BY coalesce(j.end_time_ms, j.create_time_ms) DESC, j.job_id DESC "
        "LIMIT 1) FROM wanted) "
        "ORDER BY coalesce(end_time_ms, create_time_ms) DESC, job_id DESC LIMIT 1";
    // The WHERE clauses repeat the partial indexes' conditions verbatim so that they apply.
    s->prune_jobs =
        "DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs INDEXED BY jobs_prunable "
        "WHERE state IN ('succeeded', 'succeeded_with_errors', 'failed', 'killed') "
        "AND coalesce(end_time_ms, update_time_ms) < :before_ms "
        "ORDER BY coalesce(end_time_ms, update_time_ms) LIMIT :limit)";
    s->prune_intents =
        "DELETE FROM intents WHERE id IN (SELECT id FROM intents INDEXED BY intents_resolved "
        "WHERE resolved = 1 AND create_time_ms < :before_ms ORDER BY create_time_ms "
        "LIMIT :limit)";
    s->add_intent =
        "INSERT INTO intents (commcell, backup_type, compression, request_id, requested_by, "
        "create_time_ms) VALUES (:commcell, :backup_type, :compression, :request_id, "
        ":requested_by, :create_time_ms)";
    s->resolve_intent =
        "UPDATE intents SET resolved = 1, outcome = :outcome, resolved_time_ms = :time "
        "WHERE id = :id AND resolved = 0";
    s->intent_exists = "SELECT 1 FROM intents WHERE id = :id";
    s->request_id_taken =
        "SELECT 1 FROM jobs INDEXED BY jobs_by_request WHERE commcell = :commcell AND "
        "request_id = :request_id AND request_id <> '' LIMIT 1";
    s->list_open_intents =
        "SELECT id, commcell, backup_type, compression, request_id, requested_by, create_time_ms "
        "FROM intents INDEXED BY intents_open WHERE resolved = 0 ORDER BY id";
    // The WHERE clause repeats the partial unique index's condition verbatim so that it applies.
    s->find_open_intent =
        "SELECT id, commcell, backup_type, compression, request_id, requested_by, create_time_ms "
        "FROM intents INDEXED BY intents_open_request WHERE commcell = :commcell AND "
        "request_id = :request_id AND resolved = 0 AND request_id <> '' LIMIT 1";
    return s;
  }();
  return *sql;
}

// The problem class of an SQLite result code: the metadata "registry_error" of every SQLite error
// and the reason label of drgate_registry_write_failures_total.
const char* ProblemOf(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL: return "disk_full";
    case SQLITE_READONLY: return "read_only";
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL: return "io_error";
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return "busy";
    case SQLITE_NOMEM: return "out_of_memory";
    default: return "other";
  }
}

// UNAVAILABLE where trying again later may succeed, INTERNAL for everything else (a bug, a corrupt
// file). `operation` says what drgate was doing.
Status SqliteError(sqlite3* db, int rc, std::string_view operation) {
  std::string message = std::string(operation) + ": " +
                        (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)) +
                        " (SQLite code " + std::to_string(rc) + ")";
  const char* problem = ProblemOf(rc);
  if (std::string_view(problem) == "other") {
    return Status(StatusCode::kInternal, std::move(message), Reason::kRegistryError)
        .With(kProblemKey, problem);
  }
  return Status(StatusCode::kUnavailable, std::move(message), Reason::kRegistryUnavailable)
      .With(kProblemKey, problem);
}

// What an operator reads first when a write fails because of the file system.
const char* UnwritableText(std::string_view problem) {
  if (problem == "disk_full") return "the disk is full";
  if (problem == "read_only") return "the file or its file system is read-only";
  if (problem == "io_error") return "the file system reports an I/O error";
  return nullptr;
}

// One use of a cached prepared statement. Resets it on destruction so that the connection's read
// snapshot ends with the call and the statement is ready for the next one.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt, const char* operation)
      : db_(db), stmt_(stmt), operation_(operation) {}
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters absent from the statement are ignored (the list queries share one binding code
  // path). A failing bind is reported by the next Step().
  void Bind(const char* name, int64_t value) {
    if (int i = sqlite3_bind_parameter_index(stmt_, name); i > 0) {
      Check(sqlite3_bind_int64(stmt_, i, value));
    }
  }
  void Bind(const char* name, std::string_view value) {
    if (int i = sqlite3_bind_parameter_index(stmt_, name); i > 0) {
      Check(sqlite3_bind_text(stmt_, i, value.data(), static_cast<int>(value.size()),
                              SQLITE_TRANSIENT));
    }
  }
  void Bind(const char* name, std::optional<TimePoint> value) {
    if (int i = sqlite3_bind_parameter_index(stmt_, name); i > 0) {
      Check(value ? sqlite3_bind_int64(stmt_, i, ToMillis(*value)) : sqlite3_bind_null(stmt_, i));
    }
  }

  // true: a row is available; false: done.
  StatusOr<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteError(db_, bind_rc_, operation_);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, rc, operation_);
  }
  // Steps a statement that returns no rows.
  Status Run() {
    StatusOr<bool> row = Step();
    return row.ok() ? Status() : row.status();
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
  }
  std::optional<TimePoint> OptionalTime(int col) const {
    if (IsNull(col)) return std::nullopt;
    return FromMillis(Int(col));
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  const char* operation_;
  int bind_rc_ = SQLITE_OK;
};

// Reads a row selected with kJobColumns.
StatusOr<Job> ReadJob(const Statement& row) {
  Job job;
  job.commcell = row.Text(0);
  job.job_id = row.Text(1);
  job.task_id = row.Int(2);
  std::string backup_type = row.Text(3);
  std::string state = row.Text(5);
  std::string origin = row.Text(15);
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
  job.compression = row.Int(4) != 0;
  job.state = *parsed_state;
  job.commserv_status = row.Text(6);
  job.percent_complete = static_cast<int32_t>(row.Int(7));
  job.failure_reason = row.Text(8);
  job.request_id = row.Text(9);
  job.requested_by = row.Text(10);
  job.create_time = FromMillis(row.Int(11));
  job.start_time = row.OptionalTime(12);
  job.end_time = row.OptionalTime(13);
  job.update_time = FromMillis(row.Int(14));
  return job;
}

// Every remaining row of `select`, read with ReadJob.
StatusOr<std::vector<Job>> ReadJobs(Statement& select) {
  std::vector<Job> jobs;
  while (true) {
    StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) return jobs;
    StatusOr<Job> job = ReadJob(select);
    if (!job.ok()) return job.status();
    jobs.push_back(std::move(*job));
  }
}

// The first row of `select`, if any.
StatusOr<std::optional<Job>> ReadFirstJob(Statement& select) {
  StatusOr<bool> row = select.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Job>();
  StatusOr<Job> job = ReadJob(select);
  if (!job.ok()) return job.status();
  return std::optional<Job>(std::move(*job));
}

// Every remaining row of `select`, read as a trigger intent.
StatusOr<std::vector<TriggerIntent>> ReadIntents(Statement& select) {
  std::vector<TriggerIntent> intents;
  while (true) {
    StatusOr<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    TriggerIntent intent;
    intent.id = select.Int(0);
    intent.commcell = select.Text(1);
    StatusOr<BackupType> backup_type = registry::IntentBackupType(intent.id, select.Text(2));
    if (!backup_type.ok()) return backup_type.status();
    intent.backup_type = *backup_type;
    intent.compression = select.Int(3) != 0;
    intent.request_id = select.Text(4);
    intent.requested_by = select.Text(5);
    intent.create_time = FromMillis(select.Int(6));
    intents.push_back(std::move(intent));
  }
  return intents;
}

// Prepares `sql` on the read connection leased for this one call and answers what `body` makes
// of the statement. The statement is reset before the lease hands the connection back.
template <typename Lease, typename Body>
auto OnReader(StatusOr<Lease> lease, const std::string& sql, const char* operation, Body body)
    -> decltype(body(std::declval<Statement&>())) {
  if (!lease.ok()) return lease.status();
  auto& conn = **lease;
  StatusOr<sqlite3_stmt*> stmt = conn.Prepare(sql.c_str(), operation);
  if (!stmt.ok()) return stmt.status();
  Statement select(conn.db(), *stmt, operation);
  return body(select);
}

}  // namespace

// ---- Connection ---------------------------------------------------------------------------------

// One sqlite3 handle and its prepared-statement cache. Not thread-safe: the store hands each
// Connection to one thread at a time (write_mu_ or the read pool), which is also why the handle
// is opened with SQLITE_OPEN_NOMUTEX.
class SqliteJobStore::Connection {
 public:
  static StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, int flags) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      Status s = SqliteError(db, rc, "open registry database '" + path + "'");
      sqlite3_close_v2(db);
      return s;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    return std::unique_ptr<Connection>(new Connection(db));
  }

  ~Connection() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }

  // A cached prepared statement for `sql`, which must have static storage duration (the cache is
  // keyed by its address).
  StatusOr<sqlite3_stmt*> Prepare(const char* sql, const char* operation) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return SqliteError(db_, rc, operation);
    }
    statements_.emplace(sql, stmt);
    return stmt;
  }

  // Runs one cached statement that returns no rows.
  Status Run(const char* sql, const char* operation) {
    StatusOr<sqlite3_stmt*> stmt = Prepare(sql, operation);
    if (!stmt.ok()) return stmt.status();
    return Statement(db_, *stmt, operation).Run();
  }

  // Runs a one-off script (migrations, pragmas), uncached.
  Status Exec(const char* sql, const std::string& operation) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? Status() : SqliteError(db_, rc, operation);
  }

  // The first column of the first row of a one-off query (a pragma), as text.
  StatusOr<std::string> QueryText(const char* sql, const std::string& operation) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return SqliteError(db_, rc, operation);
    }
    rc = sqlite3_step(stmt);
    std::string value;
    if (rc == SQLITE_ROW) {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      if (p != nullptr) value = p;
    }
    Status s = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? Status() : SqliteError(db_, rc, operation);
    sqlite3_finalize(stmt);
    if (!s.ok()) return s;
    return value;
  }

  StatusOr<int> QueryInt(const char* sql, const std::string& operation) {
    StatusOr<std::string> text = QueryText(sql, operation);
    if (!text.ok()) return text.status();
    return std::atoi(text->c_str());
  }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* const db_;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

// A read connection for the duration of one call: a pooled connection returned to the pool on
// destruction, or (":memory:") the write connection with write_mu_ held.
class SqliteJobStore::ReadLease {
 public:
  ReadLease(SqliteJobStore* store, std::unique_ptr<Connection> conn)
      : store_(store), owned_(std::move(conn)), conn_(owned_.get()) {}
  ReadLease(std::unique_lock<std::mutex> lock, Connection* conn)
      : lock_(std::move(lock)), conn_(conn) {}
  ReadLease(ReadLease&&) = default;
  ReadLease& operator=(ReadLease&&) = delete;
  ~ReadLease() {
    if (owned_ != nullptr) store_->ReleaseReader(std::move(owned_));
  }

  Connection& operator*() const { return *conn_; }

 private:
  SqliteJobStore* store_ = nullptr;
  std::unique_ptr<Connection> owned_;
  std::unique_lock<std::mutex> lock_;
  Connection* conn_;
};

// ---- Open and migrate ---------------------------------------------------------------------------

StatusOr<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(const std::string& path,
                                                               const Clock* clock) {
  const bool in_memory = path == ":memory:";
  if (path.empty()) {
    // SQLite would open a private temporary database per connection: readers would not see
    // writes, and nothing would survive a restart.
    return FailedPrecondition("registry database path is empty", Reason::kRegistryPathInvalid);
  }
  if (!in_memory) {
    std::filesystem::path folder = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!folder.empty() && !std::filesystem::is_directory(folder, ec)) {
      return FailedPrecondition("registry database '" + path + "': folder '" + folder.string() +
                                    "' does not exist; create it before starting drgate",
                                Reason::kRegistryPathInvalid)
          .With("path", path);
    }
  }

  // Before SQLite touches the file: a second drgate on it is refused here, and so never migrates
  // or writes it.
  registry::WriterLock lock;
  if (!in_memory) {
    StatusOr<registry::WriterLock> taken = registry::WriterLock::Acquire(path);
    if (!taken.ok()) return taken.status();
    lock = std::move(*taken);
  }

  StatusOr<std::unique_ptr<Connection>> opened =
      Connection::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!opened.ok()) return opened.status();
  Connection& conn = **opened;
  const std::string where = " (registry database '" + path + "')";

  // Checked before anything writes to the file, so a newer drgate's database stays as it was.
  StatusOr<int> version = conn.QueryInt("PRAGMA user_version", "read schema version" + where);
  if (!version.ok()) return version.status();
  if (*version > kSchemaVersion) {
    return FailedPrecondition("registry database '" + path + "' has schema version " +
                                  std::to_string(*version) + ", newer than version " +
                                  std::to_string(kSchemaVersion) +
                                  " known to this drgate; refusing to open it (upgrade drgate)",
                              Reason::kRegistrySchemaTooNew)
        .With("path", path);
  }

  StatusOr<std::string> mode = conn.QueryText("PRAGMA journal_mode=WAL", "enable WAL" + where);
  if (!mode.ok()) return mode.status();
  if (!in_memory && *mode != "wal") {
    return Internal("registry database '" + path + "': cannot enable WAL (journal_mode is '" +
                        *mode + "'); the file system must support shared memory",
                    Reason::kRegistryError);
  }
  if (Status s =
          conn.Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", "set pragmas" + where);
      !s.ok()) {
    return s;
  }

  for (const registry::MigrationStep& m : registry::Migrations()) {
    if (m.version <= *version) continue;
    const std::string operation = "migrate schema to version " + std::to_string(m.version) + " (" +
                                  m.description + ")" + where;
    if (Status s = conn.Exec("BEGIN IMMEDIATE", operation); !s.ok()) return s;
    // Another process may have migrated between our read and our lock.
    StatusOr<int> current = conn.QueryInt("PRAGMA user_version", operation);
    Status s = current.status();
    if (s.ok() && *current < m.version) {
      s = conn.Exec(m.sqlite_sql, operation);
      if (s.ok()) {
        const std::string set_version = "PRAGMA user_version=" + std::to_string(m.version);
        s = conn.Exec(set_version.c_str(), operation);
      }
    }
    if (s.ok()) s = conn.Exec("COMMIT", operation);
    if (!s.ok()) {
      if (sqlite3_get_autocommit(conn.db()) == 0) (void)conn.Exec("ROLLBACK", operation);
      return s;
    }
  }

  static const SystemClock system_clock;
  return std::unique_ptr<SqliteJobStore>(new SqliteJobStore(
      path, std::move(lock), std::move(*opened), clock != nullptr ? *clock : system_clock));
}

SqliteJobStore::SqliteJobStore(std::string path, registry::WriterLock lock,
                               std::unique_ptr<Connection> writer, const Clock& clock)
    : path_(std::move(path)),
      in_memory_(path_ == ":memory:"),
      lock_(std::move(lock)),
      writer_(std::move(writer)),
      clock_(clock) {}

// Members are destroyed readers first, writer next: closing the last connection checkpoints the
// WAL into the database file. The writer lock goes last, after that checkpoint.
SqliteJobStore::~SqliteJobStore() = default;

// ---- Connections --------------------------------------------------------------------------------

StatusOr<SqliteJobStore::ReadLease> SqliteJobStore::AcquireReader() {
  if (in_memory_) {
    // A ":memory:" database exists only on its one connection.
    std::unique_lock<std::mutex> lock(write_mu_);
    Connection* conn = writer_.get();
    return ReadLease(std::move(lock), conn);
  }
  {
    std::unique_lock<std::mutex> lock(pool_mu_);
    pool_cv_.wait(lock,
                  [this] { return !idle_readers_.empty() || open_readers_ < kMaxReadConnections; });
    if (!idle_readers_.empty()) {
      std::unique_ptr<Connection> conn = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return ReadLease(this, std::move(conn));
    }
    ++open_readers_;
  }
  StatusOr<std::unique_ptr<Connection>> conn = Connection::Open(path_, SQLITE_OPEN_READWRITE);
  Status s = conn.status();
  if (s.ok())
    s = (*conn)->Exec(kReadConnectionPragmas,
                      "configure read connection to registry database '" + path_ + "'");
  if (!s.ok()) {
    std::lock_guard<std::mutex> lock(pool_mu_);
    --open_readers_;
    pool_cv_.notify_one();
    return s;
  }
  return ReadLease(this, std::move(*conn));
}

void SqliteJobStore::ReleaseReader(std::unique_ptr<Connection> conn) {
  std::lock_guard<std::mutex> lock(pool_mu_);
  idle_readers_.push_back(std::move(conn));
  pool_cv_.notify_one();
}

template <typename Body>
Status SqliteJobStore::WriteTransaction(const char* operation, Body body) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& conn = *writer_;
  Status s = conn.Run("BEGIN IMMEDIATE", operation);
  if (s.ok()) s = body(conn);
  if (s.ok()) s = conn.Run("COMMIT", operation);
  if (!s.ok() && sqlite3_get_autocommit(conn.db()) == 0) {
    (void)conn.Run("ROLLBACK", operation);
  }
  if (s.ok()) return s;
  auto problem = s.metadata().find(kProblemKey);
  if (problem == s.metadata().end()) return s;  // not SQLite's (a bad argument, no such intent)
  if (write_failure_observer_) write_failure_observer_(problem->second);
  if (const char* text = UnwritableText(problem->second); text != nullptr) {
    // The file system, not drgate, must be fixed: say so first, with the path (never a secret).
    Status unwritable(
        StatusCode::kUnavailable,
        "registry database '" + path_ + "' cannot be written (" + text + "): " + s.message(),
        Reason::kRegistryUnwritable);
    for (const auto& [k, v] : s.metadata()) unwritable.With(k, v);
    return unwritable;
  }
  return s;
}

void SqliteJobStore::SetWriteFailureObserver(
    std::function<void(const std::string& problem)> observer) {
  write_failure_observer_ = std::move(observer);
}

Status SqliteJobStore::ExecOnWriterForTesting(const std::string& sql) {
  std::lock_guard<std::mutex> lock(write_mu_);
  return writer_->Exec(sql.c_str(), "test statement");
}

// ---- Writes -------------------------------------------------------------------------------------

namespace {

// Closes an open intent; a no-op for a resolved one. Runs inside the caller's transaction.
template <typename Conn>
Status ResolveIntentIn(Conn& conn, int64_t intent_id, const std::string& outcome, TimePoint now,
                       const char* operation) {
  const Sql& sql = Statements();
  {
    StatusOr<sqlite3_stmt*> stmt = conn.Prepare(sql.resolve_intent.c_str(), operation);
    if (!stmt.ok()) return stmt.status();
    Statement update(conn.db(), *stmt, operation);
    update.Bind(":outcome", outcome);
    update.Bind(":time", ToMillis(now));  // diagnostic only (not part of the JobStore contract)
    update.Bind(":id", intent_id);
    if (Status s = update.Run(); !s.ok()) return s;
  }
  if (sqlite3_changes(conn.db()) > 0) return Status();
  StatusOr<sqlite3_stmt*> stmt = conn.Prepare(sql.intent_exists.c_str(), operation);
  if (!stmt.ok()) return stmt.status();
  Statement exists(conn.db(), *stmt, operation);
  exists.Bind(":id", intent_id);
  StatusOr<bool> row = exists.Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return NotFound("trigger intent " + std::to_string(intent_id) + " does not exist",
                    Reason::kIntentNotFound);
  }
  return Status();
}

}  // namespace

Status SqliteJobStore::PutJobs(const std::vector<Job>& jobs,
                               std::optional<int64_t> resolved_intent) {
  for (const Job& job : jobs) {
    if (job.commcell.empty() || job.job_id.empty()) {
      return InvalidArgument("a job needs a commcell and a job_id (got commcell '" + job.commcell +
                             "', job_id '" + job.job_id + "')");
    }
  }
  static constexpr char kOperation[] = "record jobs";
  return WriteTransaction(kOperation, [&](Connection& conn) -> Status {
    StatusOr<sqlite3_stmt*> stmt = conn.Prepare(Statements().upsert_job.c_str(), kOperation);
    if (!stmt.ok()) return stmt.status();
    std::string ids;
    for (const Job& job : jobs) {
      Statement upsert(conn.db(), *stmt, kOperation);
      upsert.Bind(":commcell", job.commcell);
      upsert.Bind(":job_id", job.job_id);
      upsert.Bind(":task_id", job.task_id);
      upsert.Bind(":backup_type", BackupTypeName(job.backup_type));
      upsert.Bind(":compression", int64_t{job.compression ? 1 : 0});
      upsert.Bind(":state", JobStateName(job.state));
      upsert.Bind(":commserv_status", job.commserv_status);
      upsert.Bind(":percent_complete", int64_t{job.percent_complete});
      upsert.Bind(":failure_reason", job.failure_reason);
      upsert.Bind(":request_id", job.request_id);
      upsert.Bind(":requested_by", job.requested_by);
      upsert.Bind(":create_time_ms", ToMillis(job.create_time));
      upsert.Bind(":start_time_ms", job.start_time);
      upsert.Bind(":end_time_ms", job.end_time);
      upsert.Bind(":update_time_ms", ToMillis(job.update_time));
      upsert.Bind(":origin", JobOriginName(job.origin));
      if (Status s = upsert.Run(); !s.ok()) {
        return s.WithContext("job '" + job.job_id + "' on CommCell '" + job.commcell + "'");
      }
      ids += (ids.empty() ? "" : ",") + job.job_id;
    }
    if (!resolved_intent) return Status();
    return ResolveIntentIn(conn, *resolved_intent, "jobs:" + ids, clock_.Now(), kOperation);
  });
}

StatusOr<int64_t> SqliteJobStore::AddIntent(const TriggerIntent& intent) {
  static constexpr char kOperation[] = "record trigger intent";
  int64_t id = 0;
  Status s = WriteTransaction(kOperation, [&](Connection& conn) -> Status {
    if (!intent.request_id.empty()) {
      // A job already recorded for this request id: its trigger is over (see JobStore).
      StatusOr<sqlite3_stmt*> taken =
          conn.Prepare(Statements().request_id_taken.c_str(), kOperation);
      if (!taken.ok()) return taken.status();
      Statement select(conn.db(), *taken, kOperation);
      select.Bind(":commcell", intent.commcell);
      select.Bind(":request_id", intent.request_id);
      StatusOr<bool> row = select.Step();
      if (!row.ok()) return row.status();
      if (*row) return registry::RequestIdInFlight(intent);
    }
    StatusOr<sqlite3_stmt*> stmt = conn.Prepare(Statements().add_intent.c_str(), kOperation);
    if (!stmt.ok()) return stmt.status();
    Statement insert(conn.db(), *stmt, kOperation);
    insert.Bind(":commcell", intent.commcell);
    insert.Bind(":backup_type", BackupTypeName(intent.backup_type));
    insert.Bind(":compression", int64_t{intent.compression ? 1 : 0});
    insert.Bind(":request_id", intent.request_id);
    insert.Bind(":requested_by", intent.requested_by);
    insert.Bind(":create_time_ms", ToMillis(intent.create_time));
    if (Status s = insert.Run(); !s.ok()) {
      if (sqlite3_extended_errcode(conn.db()) == SQLITE_CONSTRAINT_UNIQUE) {
        return registry::RequestIdInFlight(intent);
      }
      return s;
    }
    id = sqlite3_last_insert_rowid(conn.db());
    return Status();
  });
  if (!s.ok()) return s;
  return id;
}

Status SqliteJobStore::ResolveIntent(int64_t intent_id, const std::string& outcome) {
  static constexpr char kOperation[] = "resolve trigger intent";
  return WriteTransaction(kOperation, [&](Connection& conn) {
    return ResolveIntentIn(conn, intent_id, outcome, clock_.Now(), kOperation);
  });
}

StatusOr<int64_t> SqliteJobStore::PruneTerminalJobs(TimePoint finished_before, int max_rows) {
  static constexpr char kOperation[] = "prune finished jobs";
  if (max_rows < 1) {
    return InvalidArgument("max_rows must be at least 1, got " + std::to_string(max_rows),
                           Reason::kInvalidMaxRows);
  }
  const int64_t before_ms = CeilMillis(finished_before);
  int64_t deleted = 0;
  Status s = WriteTransaction(kOperation, [&](Connection& conn) -> Status {
    const Sql& sql = Statements();
    {
      StatusOr<sqlite3_stmt*> stmt = conn.Prepare(sql.prune_jobs.c_str(), kOperation);
      if (!stmt.ok()) return stmt.status();
      Statement remove(conn.db(), *stmt, kOperation);
      remove.Bind(":before_ms", before_ms);
      remove.Bind(":limit", int64_t{max_rows});
      if (Status run = remove.Run(); !run.ok()) return run;
      deleted = sqlite3_changes(conn.db());
    }
    StatusOr<sqlite3_stmt*> stmt = conn.Prepare(sql.prune_intents.c_str(), kOperation);
    if (!stmt.ok()) return stmt.status();
    Statement remove(conn.db(), *stmt, kOperation);
    remove.Bind(":before_ms", before_ms);
    remove.Bind(":limit", int64_t{max_rows});
    return remove.Run();
  });
  if (!s.ok()) return s;
  return deleted;
}

// ---- Reads --------------------------------------------------------------------------------------

StatusOr<Job> SqliteJobStore::GetJob(const std::string& commcell, const std::string& job_id) {
  auto job = OnReader(AcquireReader(), Statements().get_job, "get job", [&](Statement& select) {
    select.Bind(":commcell", commcell);
    select.Bind(":job_id", job_id);
    return ReadFirstJob(select);
  });
  if (!job.ok()) return job.status();
  if (!job->has_value()) {
    return NotFound("job '" + job_id + "' was not started by drgate on CommCell '" + commcell + "'",
                    Reason::kJobNotFound)
        .With("commcell", commcell)
        .With("job_id", job_id);
  }
  return std::move(**job);
}

StatusOr<std::optional<Job>> SqliteJobStore::FindByRequestId(const std::string& commcell,
                                                             const std::string& request_id) {
  if (request_id.empty()) return std::optional<Job>();
  return OnReader(AcquireReader(), Statements().find_by_request_id, "find job by request_id",
                  [&](Statement& select) {
                    select.Bind(":commcell", commcell);
                    select.Bind(":request_id", request_id);
                    return ReadFirstJob(select);
                  });
}

StatusOr<JobPage> SqliteJobStore::ListJobs(const JobFilter& filter, int page_size,
                                           const std::string& page_token) {
  static constexpr char kOperation[] = "list jobs";
  if (page_size < 1 || page_size > kMaxPageSize) {
    return InvalidArgument("page_size must be between 1 and " + std::to_string(kMaxPageSize) +
                               ", got " + std::to_string(page_size),
                           Reason::kInvalidPageSize);
  }
  std::optional<Cursor> cursor;
  if (!page_token.empty()) {
    StatusOr<Cursor> decoded = DecodePageToken(page_token, filter);
    if (!decoded.ok()) return decoded.status();
    cursor = std::move(*decoded);
  }
  const MillisRange range = CreateTimeRange(filter);
  // A cursor replaces the range's upper end in the query (see ListJobsSql); every row this filter
  // returned is inside the range, so a cursor beyond it was not made by ListJobs.
  if (cursor && cursor->create_time_ms > range.until) {
    return InvalidArgument(
        "page_token is malformed; pass the next_page_token of the previous "
        "page unchanged",
        Reason::kInvalidPageToken);
  }

  const std::string& sql = Statements().list_jobs[ListVariant(
      !filter.commcell.empty(), filter.state.has_value(), filter.backup_type.has_value(),
      cursor.has_value(), filter.origin.has_value())];
  auto jobs = OnReader(AcquireReader(), sql, kOperation, [&](Statement& select) {
    select.Bind(":filter_commcell", filter.commcell);
    if (filter.state) select.Bind(":filter_state", JobStateName(*filter.state));
    if (filter.backup_type) select.Bind(":filter_type", BackupTypeName(*filter.backup_type));
    if (filter.origin) select.Bind(":filter_origin", JobOriginName(*filter.origin));
    select.Bind(":created_from_ms", range.from);
    select.Bind(":created_until_ms", range.until);
    if (cursor) {
      select.Bind(":cursor_time", cursor->create_time_ms);
      select.Bind(":cursor_commcell", cursor->commcell);
      select.Bind(":cursor_job_id", cursor->job_id);
    }
    // One row more than asked tells whether a next page exists, so the last page has no token.
    select.Bind(":limit", int64_t{page_size} + 1);
    return ReadJobs(select);
  });
  if (!jobs.ok()) return jobs.status();
  JobPage page;
  page.jobs = std::move(*jobs);
  if (static_cast<int>(page.jobs.size()) > page_size) {
    page.jobs.resize(page_size);
    const Job& last = page.jobs.back();
    page.next_page_token = EncodePageToken(
        Cursor{FilterFingerprint(filter), ToMillis(last.create_time), last.commcell, last.job_id});
  }
  return page;
}

StatusOr<std::vector<Job>> SqliteJobStore::ListActiveJobs() {
  return OnReader(AcquireReader(), Statements().list_active, "list active jobs", ReadJobs);
}

StatusOr<std::optional<Job>> SqliteJobStore::LatestJob(const std::string& commcell, BackupType type,
                                                       const std::vector<JobState>& states,
                                                       std::optional<JobOrigin> origin) {
  // Distinct states, at most one per JobState value, each bound to one parameter.
  std::vector<JobState> distinct;
  for (JobState state : states) {
    if (std::find(distinct.begin(), distinct.end(), state) == distinct.end()) {
      distinct.push_back(state);
    }
  }
  if (distinct.empty()) return std::optional<Job>();
  if (distinct.size() > std::size(kLatestJobStateParams)) {
    return InvalidArgument("LatestJob: " + std::to_string(distinct.size()) +
                           " distinct states, more than the " +
                           std::to_string(std::size(kLatestJobStateParams)) + " that exist");
  }
  const std::string& sql = origin ? Statements().latest_job_of_origin : Statements().latest_job;
  return OnReader(AcquireReader(), sql, "find latest job", [&](Statement& select) {
    select.Bind(":commcell", commcell);
    if (origin) select.Bind(":origin", JobOriginName(*origin));
    select.Bind(":backup_type", BackupTypeName(type));
    for (size_t i = 0; i < distinct.size(); ++i) {
      select.Bind(kLatestJobStateParams[i], JobStateName(distinct[i]));
    }
    return ReadFirstJob(select);
  });
}

StatusOr<std::vector<TriggerIntent>> SqliteJobStore::ListOpenIntents() {
  return OnReader(AcquireReader(), Statements().list_open_intents, "list open trigger intents",
                  ReadIntents);
}

StatusOr<std::optional<TriggerIntent>> SqliteJobStore::FindOpenIntent(
    const std::string& commcell, const std::string& request_id) {
  if (request_id.empty()) return std::optional<TriggerIntent>();
  auto intents = OnReader(AcquireReader(), Statements().find_open_intent,
                          "find open trigger intent by request_id", [&](Statement& select) {
                            select.Bind(":commcell", commcell);
                            select.Bind(":request_id", request_id);
                            return ReadIntents(select);
                          });
  if (!intents.ok()) return intents.status();
  if (intents->empty()) return std::optional<TriggerIntent>();
  return std::optional<TriggerIntent>(std::move(intents->front()));
}

StatusOr<int> SqliteJobStore::SynchronousForTesting() {
  std::lock_guard<std::mutex> lock(write_mu_);
  return writer_->QueryInt("PRAGMA synchronous", "read synchronous pragma");
}

// ---- Leader writes (fencing) ------------------------------------------------------------------

Status SqliteJobStore::PutJobsFenced(const LeaseFence& /*fence*/, const std::vector<Job>& jobs,
                                     std::optional<int64_t> resolved_intent) {
  return PutJobs(jobs, resolved_intent);
}

Status SqliteJobStore::ResolveIntentFenced(const LeaseFence& /*fence*/, int64_t intent_id,
                                           const std::string& outcome) {
  return ResolveIntent(intent_id, outcome);
}

StatusOr<int64_t> SqliteJobStore::PruneTerminalJobsFenced(const LeaseFence& /*fence*/,
                                                          TimePoint finished_before, int max_rows) {
  return PruneTerminalJobs(finished_before, max_rows);
}

}  // namespace drgate
