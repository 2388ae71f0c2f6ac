#pragma once

// The registry's schema history, one list for both backends: step N brings a database from
// version N-1 to N. Where the dialects differ, a step carries one script per backend; the two
// scripts of a step describe the same logical change (tables, columns, keys, indexes), so a
// database of version N means the same thing whichever backend holds it. A script may be empty
// where a backend does not need the change (only replicas sharing PostgreSQL elect a leader, so
// the lease table exists there alone).
//
// A released step is never edited: a schema change is a new step at the end. Each store applies
// the steps above its database's version, each in its own transaction, under the backend's lock
// (SQLite: BEGIN IMMEDIATE; PostgreSQL: pg_advisory_lock), so replicas starting together migrate
// once.

#include <span>

namespace drgate::registry {

struct MigrationStep {
  int version;              // 1, 2, ...: the version the database has after this step
  const char* description;  // for errors and logs
  const char* sqlite_sql;   // one script (several statements)
  const char* postgres_sql;
};

// Every step in order; the last one's version is kSchemaVersion.
std::span<const MigrationStep> Migrations();

// The schema version this build creates and understands.
inline constexpr int kSchemaVersion = 4;

// pg_advisory_lock key that serialises migrations of one PostgreSQL database ("drgate-m").
inline constexpr long long kPostgresMigrationLockKey = 0x647267617465'2d6dLL;

}  // namespace drgate::registry
