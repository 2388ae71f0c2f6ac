#include "core/registry/migrations.h"

#include <iterator>

namespace drgate::registry {
namespace {

// Columns hold the same values on both backends: times in whole milliseconds since the epoch,
// booleans as 0/1, enums as their lower-case names. On PostgreSQL, text that is compared or
// ordered uses the "C" collation, so keyset paging and "greatest job_id" compare bytewise as
// SQLite does, whatever the database's default collation. `seq` stands in for SQLite's rowid:
// the order in which jobs were first recorded.
constexpr MigrationStep kSteps[] = {
    {1, "jobs and intents",
     R"sql(
CREATE TABLE jobs (
  commcell TEXT NOT NULL,
  job_id TEXT NOT NULL,
  task_id INTEGER NOT NULL,
  backup_type TEXT NOT NULL,
  compression INTEGER NOT NULL,
  state TEXT NOT NULL,
  commserv_status TEXT NOT NULL,
  percent_complete INTEGER NOT NULL,
  failure_reason TEXT NOT NULL,
  request_id TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL,
  start_time_ms INTEGER,
  end_time_ms INTEGER,
  update_time_ms INTEGER NOT NULL,
  PRIMARY KEY (commcell, job_id)
);
-- FindByRequestId. The implicit rowid at the end of each entry orders one key's jobs by insertion.
CREATE INDEX jobs_by_request ON jobs (commcell, request_id) WHERE request_id <> '';
-- ListJobs: one index per filter combination, so that every page is one range scan.
CREATE INDEX jobs_by_time ON jobs (create_time_ms, commcell, job_id);
CREATE INDEX jobs_by_commcell_time ON jobs (commcell, create_time_ms, job_id);
CREATE INDEX jobs_by_state_time ON jobs (state, create_time_ms, commcell, job_id);
CREATE INDEX jobs_by_commcell_state_time ON jobs (commcell, state, create_time_ms, job_id);
-- ListActiveJobs: the states for which IsTerminal() is false; few rows at any time.
CREATE INDEX jobs_active ON jobs (create_time_ms, commcell, job_id)
  WHERE state IN ('submitted', 'queued', 'running', 'suspended', 'unknown');

CREATE TABLE intents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  commcell TEXT NOT NULL,
  backup_type TEXT NOT NULL,
  compression INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL,
  resolved INTEGER NOT NULL DEFAULT 0,
  outcome TEXT,
  resolved_time_ms INTEGER
);
-- ListOpenIntents at startup stays cheap however many intents were resolved.
CREATE INDEX intents_open ON intents (id) WHERE resolved = 0;
)sql",
     R"sql(
CREATE TABLE jobs (
  seq BIGINT GENERATED ALWAYS AS IDENTITY,
  commcell TEXT COLLATE "C" NOT NULL,
  job_id TEXT COLLATE "C" NOT NULL,
  task_id BIGINT NOT NULL,
  backup_type TEXT COLLATE "C" NOT NULL,
  compression INTEGER NOT NULL,
  state TEXT COLLATE "C" NOT NULL,
  commserv_status TEXT NOT NULL,
  percent_complete INTEGER NOT NULL,
  failure_reason TEXT NOT NULL,
  request_id TEXT COLLATE "C" NOT NULL,
  requested_by TEXT NOT NULL,
  create_time_ms BIGINT NOT NULL,
  start_time_ms BIGINT,
  end_time_ms BIGINT,
  update_time_ms BIGINT NOT NULL,
  PRIMARY KEY (commcell, job_id)
);
CREATE INDEX jobs_by_request ON jobs (commcell, request_id, seq) WHERE request_id <> '';
CREATE INDEX jobs_by_time ON jobs (create_time_ms, commcell, job_id);
CREATE INDEX jobs_by_commcell_time ON jobs (commcell, create_time_ms, job_id);
CREATE INDEX jobs_by_state_time ON jobs (state, create_time_ms, commcell, job_id);
CREATE INDEX jobs_by_commcell_state_time ON jobs (commcell, state, create_time_ms, job_id);
CREATE INDEX jobs_active ON jobs (create_time_ms, commcell, job_id)
  WHERE state IN ('submitted', 'queued', 'running', 'suspended', 'unknown');

CREATE TABLE intents (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  commcell TEXT COLLATE "C" NOT NULL,
  backup_type TEXT COLLATE "C" NOT NULL,
  compression INTEGER NOT NULL,
  request_id TEXT COLLATE "C" NOT NULL,
  requested_by TEXT NOT NULL,
  create_time_ms BIGINT NOT NULL,
  resolved INTEGER NOT NULL DEFAULT 0,
  outcome TEXT,
  resolved_time_ms BIGINT
);
CREATE INDEX intents_open ON intents (id) WHERE resolved = 0;
)sql"},
    {2, "indexes for backup type filter, latest job and pruning",
     R"sql(
-- ListJobs filtered by CommCell and backup type (the other combinations with a type filter scan
-- an index of version 1 and skip the jobs of the other type).
CREATE INDEX jobs_by_commcell_type_time ON jobs (commcell, backup_type, create_time_ms, job_id);
-- LatestJob: one seek per requested state to that state's most recent job.
CREATE INDEX jobs_latest
  ON jobs (commcell, backup_type, state, coalesce(end_time_ms, create_time_ms), job_id);
-- PruneTerminalJobs: the terminal states (IsTerminal() true; 'unknown' is not one), oldest
-- finished first.
CREATE INDEX jobs_prunable ON jobs (coalesce(end_time_ms, update_time_ms))
  WHERE state IN ('succeeded', 'succeeded_with_errors', 'failed', 'killed');
CREATE INDEX intents_resolved ON intents (create_time_ms) WHERE resolved = 1;
)sql",
     R"sql(
CREATE INDEX jobs_by_commcell_type_time ON jobs (commcell, backup_type, create_time_ms, job_id);
CREATE INDEX jobs_latest
  ON jobs (commcell, backup_type, state, coalesce(end_time_ms, create_time_ms), job_id);
CREATE INDEX jobs_prunable ON jobs (coalesce(end_time_ms, update_time_ms))
  WHERE state IN ('succeeded', 'succeeded_with_errors', 'failed', 'killed');
CREATE INDEX intents_resolved ON intents (create_time_ms) WHERE resolved = 1;
)sql"},
    {3, "one open intent per request id; leader lease",
     R"sql(
-- AddIntent: at most one open trigger per (CommCell, request id), enforced by the database, so
-- two callers racing with one request id cause one upstream POST (see JobStore::AddIntent).
-- drgate never opened two such intents, but should a database hold them, the oldest stays open
-- (for reconciliation) and the others are closed, rather than the migration failing.
UPDATE intents SET resolved = 1, outcome = 'closed by schema version 3: duplicate open intent'
  WHERE resolved = 0 AND request_id <> '' AND id NOT IN
    (SELECT min(id) FROM intents WHERE resolved = 0 AND request_id <> ''
     GROUP BY commcell, request_id);
CREATE UNIQUE INDEX intents_open_request ON intents (commcell, request_id)
  WHERE resolved = 0 AND request_id <> '';
)sql",
     R"sql(
UPDATE intents SET resolved = 1, outcome = 'closed by schema version 3: duplicate open intent'
  WHERE resolved = 0 AND request_id <> '' AND id NOT IN
    (SELECT min(id) FROM intents WHERE resolved = 0 AND request_id <> ''
     GROUP BY commcell, request_id);
CREATE UNIQUE INDEX intents_open_request ON intents (commcell, request_id)
  WHERE resolved = 0 AND request_id <> '';
-- Leader election of replicas sharing this database (core/registry/postgres_leader_election.h):
-- one row per role, held by `holder` until `expires_at` (the database's clock) unless renewed.
CREATE TABLE leader_leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL
);
)sql"},
    {4, "job origin",
     R"sql(
-- Who started each job: 'drgate', or 'commserv' for jobs found in the CommServe's DR job history
-- (its own schedule, an administrator). Every job recorded before this version is drgate's.
ALTER TABLE jobs ADD COLUMN origin TEXT NOT NULL DEFAULT 'drgate';
-- LatestJob restricted to one origin (LatestJob of any origin keeps using jobs_latest).
CREATE INDEX jobs_latest_origin
  ON jobs (commcell, backup_type, origin, state, coalesce(end_time_ms, create_time_ms), job_id);
)sql",
     R"sql(
ALTER TABLE jobs ADD COLUMN origin TEXT COLLATE "C" NOT NULL DEFAULT 'drgate';
CREATE INDEX jobs_latest_origin
  ON jobs (commcell, backup_type, origin, state, coalesce(end_time_ms, create_time_ms), job_id);
)sql"},
};
static_assert(std::size(kSteps) == kSchemaVersion);

}  // namespace

std::span<const MigrationStep> Migrations() {
  return kSteps;
}

}  // namespace drgate::registry
