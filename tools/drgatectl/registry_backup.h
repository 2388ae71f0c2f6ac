#pragma once

// drgatectl registry backup: a consistent copy of drgate's SQLite registry while drgate runs,
// through SQLite's online backup API (what the sqlite3 shell's .backup does), so an operator
// needs neither the sqlite3 shell nor to stop drgate. Reads the registry file only; no server
// is contacted.

#include <ostream>
#include <string>

namespace drgate::cli {

// Copies the SQLite database at `registry` to `file` (written as `file`.partial, checked with
// PRAGMA integrity_check, then renamed; an existing `file` is never overwritten). Prints what
// was copied on `out`, errors naming the file on `err`. Returns the exit code: 0 copied, 2 usage
// (an existing `file`, an unreadable registry, a target folder that cannot be written), 4 the
// copy failed (the registry stayed busy, a disk error).
int BackupRegistry(const std::string& registry, const std::string& file, std::ostream& out,
                   std::ostream& err);

}  // namespace drgate::cli
