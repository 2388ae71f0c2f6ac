#include "core/registry/postgres_connection.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace drgate::registry {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  // libpq prefixes server messages with the severity on the first line; keep one line.
  for (char& c : s) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  return s;
}

std::string Scrub(std::string message, const std::string& secret) {
  if (secret.empty()) return message;
  for (auto pos = message.find(secret); pos != std::string::npos; pos = message.find(secret)) {
    message.replace(pos, secret.size(), "***");
  }
  return message;
}

// The options of a DSN, freed on destruction; nullptr when it does not parse.
struct ConnInfo {
  explicit ConnInfo(const std::string& dsn) {
    char* error = nullptr;
    options = PQconninfoParse(dsn.c_str(), &error);
    if (error != nullptr) {
      // libpq's message names the faulty keyword or syntax, not the values.
      this->error = Trim(error);
      PQfreemem(error);
    }
  }
  ~ConnInfo() {
    if (options != nullptr) PQconninfoFree(options);
  }
  const char* Get(const char* keyword) const {
    for (PQconninfoOption* o = options; o != nullptr && o->keyword != nullptr; ++o) {
      if (std::strcmp(o->keyword, keyword) == 0) return o->val;
    }
    return nullptr;
  }
  PQconninfoOption* options = nullptr;
  std::string error;
};

}  // namespace

Status PostgresEndpoint::Validate(const std::string& dsn) {
  if (dsn.empty()) return InvalidArgument("must not be empty", Reason::kConfigInvalid);
  ConnInfo info(dsn);
  if (info.options == nullptr) {
    return InvalidArgument("is not a libpq connection string: " + info.error,
                           Reason::kConfigInvalid);
  }
  if (const char* p = info.Get("password"); p != nullptr && *p != '\0') {
    return InvalidArgument("must not contain a password; put it in registry.postgres.password_file",
                           Reason::kConfigInvalid);
  }
  return Status::Ok();
}

std::string PostgresEndpoint::Describe() const {
  ConnInfo info(dsn);
  std::string out = "PostgreSQL registry";
  for (const char* key : {"host", "hostaddr", "port", "dbname", "user"}) {
    if (const char* v = info.Get(key); v != nullptr && *v != '\0') {
      out += std::string(" ") + key + "=" + v;
    }
  }
  return out;
}

PgResult::PgResult(pg_result* result) : result_(result) {}
PgResult::~PgResult() {
  if (result_ != nullptr) PQclear(result_);
}
PgResult::PgResult(PgResult&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
int PgResult::rows() const {
  return PQntuples(result_);
}
bool PgResult::IsNull(int row, int col) const {
  return PQgetisnull(result_, row, col) != 0;
}
std::string PgResult::Text(int row, int col) const {
  return std::string(PQgetvalue(result_, row, col),
                     static_cast<std::size_t>(PQgetlength(result_, row, col)));
}
int64_t PgResult::Int(int row, int col) const {
  return std::strtoll(PQgetvalue(result_, row, col), nullptr, 10);
}
int64_t PgResult::Affected() const {
  return std::strtoll(PQcmdTuples(result_), nullptr, 10);
}

StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(const PostgresEndpoint& endpoint) {
  // Later entries override earlier ones: the DSN (expanded from "dbname") overrides the
  // defaults before it, and the password file overrides the DSN (which has none).
  const std::string timeout = std::to_string(endpoint.connect_timeout_seconds);
  std::vector<const char*> keys = {"connect_timeout", "application_name", "dbname"};
  std::vector<const char*> values = {timeout.c_str(), "drgate", endpoint.dsn.c_str()};
  if (!endpoint.password.empty()) {
    keys.push_back("password");
    values.push_back(endpoint.password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  pg_conn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) {
    return Status(StatusCode::kUnavailable, endpoint.Describe() + ": connect: out of memory",
                  Reason::kRegistryUnavailable);
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = Scrub(Trim(PQerrorMessage(conn)), endpoint.password);
    PQfinish(conn);
    return Status(StatusCode::kUnavailable, endpoint.Describe() + ": connect: " + message,
                  Reason::kRegistryUnavailable);
  }
  // Server notices ("relation ... already exists, skipping") are not errors: libpq would print
  // them to stderr, outside drgate's log format.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<PgConnection>(new PgConnection(conn, endpoint));
}

PgConnection::PgConnection(pg_conn* conn, const PostgresEndpoint& endpoint)
    : conn_(conn), description_(endpoint.Describe()), password_(endpoint.password) {}

PgConnection::~PgConnection() {
  PQfinish(conn_);
}

bool PgConnection::broken() const {
  return PQstatus(conn_) != CONNECTION_OK;
}

Status PgConnection::Error(pg_result* result, const std::string& operation) const {
  std::string message = Scrub(Trim(result != nullptr && PQresultErrorMessage(result)[0] != '\0'
                                       ? PQresultErrorMessage(result)
                                       : PQerrorMessage(conn_)),
                              password_);
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state != nullptr ? state : "";
  std::string text = description_ + ": " + operation + ": " + message;
  if (!sqlstate.empty()) text += " (SQLSTATE " + sqlstate + ")";
  if (broken() || sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("53", 0) == 0 ||
      sqlstate.rfind("57P", 0) == 0 || sqlstate == "40001" || sqlstate == "40P01") {
    return Status(StatusCode::kUnavailable, std::move(text), Reason::kRegistryUnavailable);
  }
  if (sqlstate == "23505") {
    const char* constraint = PQresultErrorField(result, PG_DIAG_CONSTRAINT_NAME);
    return Status(StatusCode::kAlreadyExists, std::move(text), Reason::kRegistryUniqueViolation)
        .With("constraint", constraint != nullptr ? constraint : "");
  }
  return Status(StatusCode::kInternal, std::move(text), Reason::kRegistryError);
}

StatusOr<PgResult> PgConnection::Exec(const std::string& sql, const Params& params,
                                      const std::string& operation) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  pg_result* result = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                   values.data(), nullptr, nullptr, /*resultFormat=*/0);
  const ExecStatusType status = result != nullptr ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return PgResult(result);
  Status s = Error(result, operation);
  if (result != nullptr) PQclear(result);
  return s;
}

Status PgConnection::ExecScript(const std::string& sql, const std::string& operation) {
  pg_result* result = PQexec(conn_, sql.c_str());
  const ExecStatusType status = result != nullptr ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  Status s = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ? Status::Ok()
                                                                     : Error(result, operation);
  if (result != nullptr) PQclear(result);
  return s;
}

}  // namespace drgate::registry
