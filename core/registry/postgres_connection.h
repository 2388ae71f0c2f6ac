#pragma once

// One libpq connection, shared by PostgresJobStore and PostgresLeaderElection: connect with the
// password kept out of the DSN, run parameterised statements, and turn libpq's errors into
// drgate's Status (UNAVAILABLE, reason REGISTRY_UNAVAILABLE, when trying again may help). Every
// message names the registry by host, port, database and user, never by its password.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/common/status.h"

struct pg_conn;
struct pg_result;

namespace drgate::registry {

// Where the shared registry lives. `dsn` is libpq's "key=value ..." form without a password.
struct PostgresEndpoint {
  std::string dsn;
  std::string password;  // from registry.postgres.password_file; may be empty (trust, .pgpass)
  int connect_timeout_seconds = 5;  // used when the DSN sets no connect_timeout

  // Checks the DSN: it must parse and must not carry a password (it belongs in the password
  // file, so that it never shows in a config map, a log or an error). INVALID_ARGUMENT naming
  // the problem, never echoing the DSN.
  static Status Validate(const std::string& dsn);
  // "PostgreSQL registry host=db port=5432 dbname=drgate user=drgate", for messages.
  std::string Describe() const;
};

// A query's rows, owned; text format.
class PgResult {
 public:
  explicit PgResult(pg_result* result);
  ~PgResult();
  PgResult(PgResult&& other) noexcept;
  PgResult& operator=(PgResult&&) = delete;
  PgResult(const PgResult&) = delete;

  int rows() const;
  bool IsNull(int row, int col) const;
  std::string Text(int row, int col) const;
  int64_t Int(int row, int col) const;
  // Rows a command changed (UPDATE, DELETE).
  int64_t Affected() const;

 private:
  pg_result* result_;
};

// Not thread-safe: one user at a time (the store's pool and the election hand it out so).
class PgConnection {
 public:
  using Params = std::vector<std::optional<std::string>>;  // nullopt: SQL NULL

  // UNAVAILABLE (REGISTRY_UNAVAILABLE) when the server cannot be reached or refuses the login.
  static StatusOr<std::unique_ptr<PgConnection>> Connect(const PostgresEndpoint& endpoint);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement with text parameters ($1, $2, ...). Errors: UNAVAILABLE
  // (REGISTRY_UNAVAILABLE) for a lost connection, a server shutting down, too many connections,
  // serialization failures and deadlocks; ALREADY_EXISTS for a unique violation (reason
  // REGISTRY_UNIQUE_VIOLATION, metadata "constraint"); INTERNAL (REGISTRY_ERROR) otherwise.
  StatusOr<PgResult> Exec(const std::string& sql, const Params& params,
                          const std::string& operation);
  // Runs a script of several statements without parameters (migrations).
  Status ExecScript(const std::string& sql, const std::string& operation);

  // The connection was lost (it is dropped rather than reused).
  bool broken() const;

 private:
  PgConnection(pg_conn* conn, const PostgresEndpoint& endpoint);
  Status Error(pg_result* result, const std::string& operation) const;

  pg_conn* conn_;
  std::string description_;
  std::string password_;  // only to scrub it from messages, should a server ever echo it
};

}  // namespace drgate::registry
