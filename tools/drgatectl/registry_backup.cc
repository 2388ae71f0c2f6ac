#include "tools/drgatectl/registry_backup.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>

namespace drgate::cli {
namespace {

using Db = std::unique_ptr<sqlite3, int (*)(sqlite3*)>;

Db Open(const std::string& path, int flags, std::string* error) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  Db owned(db, sqlite3_close_v2);
  if (rc != SQLITE_OK) {
    *error = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return Db(nullptr, sqlite3_close_v2);
  }
  // drgate holds the write lock for a commit at a time: wait for it rather than fail.
  sqlite3_busy_timeout(db, 10000);
  return owned;
}

// The text of a one-row, one-column query; empty when it fails.
std::string Scalar(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  std::string value;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    if (const unsigned char* text = sqlite3_column_text(stmt, 0)) {
      value = reinterpret_cast<const char*>(text);
    }
  }
  sqlite3_finalize(stmt);
  return value;
}

}  // namespace

int BackupRegistry(const std::string& registry, const std::string& file, std::ostream& out,
                   std::ostream& err) {
  struct stat st {};
  if (stat(file.c_str(), &st) == 0) {
    err << "drgatectl: " << file << " exists; choose a new file (a backup never overwrites one)\n";
    return 2;
  }
  if (stat(registry.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    err << "drgatectl: " << registry
        << " is not a registry file (a SQLite registry.path; a PostgreSQL registry is backed up "
           "with pg_dump)\n";
    return 2;
  }
  std::string error;
  Db source = Open(registry, SQLITE_OPEN_READONLY, &error);
  if (!source) {
    err << "drgatectl: cannot open " << registry << ": " << error << "\n";
    return 2;
  }
  const std::string partial = file + ".partial";
  std::remove(partial.c_str());
  Db target = Open(partial, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &error);
  if (!target) {
    err << "drgatectl: cannot write " << partial << ": " << error << "\n";
    return 2;
  }
  // All pages in one step: one read transaction, so the copy is one consistent snapshot even
  // while drgate writes (WAL readers do not block the writer).
  sqlite3_backup* backup = sqlite3_backup_init(target.get(), "main", source.get(), "main");
  int rc = SQLITE_ERROR;
  if (backup != nullptr) {
    do {
      rc = sqlite3_backup_step(backup, -1);
      if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) sqlite3_sleep(100);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    sqlite3_backup_finish(backup);
  }
  if (rc != SQLITE_DONE) {
    err << "drgatectl: copying " << registry << " failed: " << sqlite3_errmsg(target.get()) << "\n";
    target.reset();
    std::remove(partial.c_str());
    return 4;
  }
  const std::string check = Scalar(target.get(), "PRAGMA integrity_check");
  const std::string jobs = Scalar(target.get(), "SELECT count(*) FROM jobs");
  target.reset();
  if (check != "ok") {
    err << "drgatectl: the copy of " << registry << " fails its integrity check: " << check << "\n";
    std::remove(partial.c_str());
    return 4;
  }
  if (std::rename(partial.c_str(), file.c_str()) != 0) {
    err << "drgatectl: cannot rename " << partial << " to " << file << "\n";
    std::remove(partial.c_str());
    return 4;
  }
  out << "backed up " << registry << " to " << file << " (" << (jobs.empty() ? "?" : jobs)
      << " jobs, integrity ok)\n";
  return 0;
}

}  // namespace drgate::cli
