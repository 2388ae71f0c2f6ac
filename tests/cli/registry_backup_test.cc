// drgatectl registry backup: a consistent copy of a SQLite registry in WAL mode that another
// connection (drgate) holds open and writes, never over an existing file.

#include "tools/drgatectl/registry_backup.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <sstream>

#include "tests/fakes/temp_dir.h"

namespace drgate::cli {
namespace {

sqlite3* OpenDb(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  return db;
}

void Exec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
      << (error != nullptr ? error : "");
  sqlite3_free(error);
}

int CountJobs(const std::string& path) {
  sqlite3* db = OpenDb(path);
  sqlite3_stmt* stmt = nullptr;
  int n = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM jobs", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    n = sqlite3_column_int(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return n;
}

TEST(RegistryBackupTest, CopiesWhatAWriterInWalModeCommittedAndNeverOverwrites) {
  drgate::testing::TempDir dir;
  const std::string registry = dir.File("drgate.db");
  sqlite3* writer = OpenDb(registry);  // drgate: open for the whole test, WAL not checkpointed
  Exec(writer,
       "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
       "CREATE TABLE jobs (id TEXT PRIMARY KEY);"
       "INSERT INTO jobs VALUES ('2100'), ('2101'), ('2102');");

  std::ostringstream out;
  std::ostringstream err;
  const std::string file = dir.File("backup.db");
  EXPECT_EQ(BackupRegistry(registry, file, out, err), 0) << err.str();
  EXPECT_EQ(out.str(), "backed up " + registry + " to " + file + " (3 jobs, integrity ok)\n");
  EXPECT_EQ(CountJobs(file), 3);

  Exec(writer, "INSERT INTO jobs VALUES ('2103')");
  std::ostringstream again_out;
  std::ostringstream again_err;
  EXPECT_EQ(BackupRegistry(registry, file, again_out, again_err), 2);
  EXPECT_NE(again_err.str().find(file + " exists"), std::string::npos) << again_err.str();
  EXPECT_EQ(CountJobs(file), 3);  // untouched

  std::ostringstream missing_err;
  EXPECT_EQ(BackupRegistry(dir.File("nope.db"), dir.File("other.db"), out, missing_err), 2);
  EXPECT_NE(missing_err.str().find("nope.db is not a registry file"), std::string::npos);
  sqlite3_close(writer);
}

}  // namespace
}  // namespace drgate::cli
