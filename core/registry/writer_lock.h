#pragma once

// One writing process per SQLite registry file: an exclusive flock(2) on "<database>.lock", next
// to the database, held for the owner's life. The kernel releases the lock when the process ends
// however it ends (SIGKILL, a crash), so a lock file left behind never blocks the next start; the
// file holds the holder's pid only so the refusal can name it.

#include <string>

#include "core/common/status.h"

namespace drgate::registry {

class WriterLock {
 public:
  // Takes the lock of `database` without waiting. Held by another open (another process, or
  // another WriterLock in this one): FAILED_PRECONDITION, reason REGISTRY_IN_USE, with a message
  // naming the database, the lock file and the holder's pid as the file records it. The lock file
  // cannot be created or locked (a read-only folder, no permission): FAILED_PRECONDITION, reason
  // REGISTRY_PATH_INVALID, naming the lock file and the system's error.
  static StatusOr<WriterLock> Acquire(const std::string& database);

  // The lock file's path for `database`: "<database>.lock".
  static std::string LockPathFor(const std::string& database);

  WriterLock() = default;  // holds nothing
  WriterLock(WriterLock&& other) noexcept;
  WriterLock& operator=(WriterLock&& other) noexcept;
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;
  // Releases the lock (closes the file; the file itself stays, harmless without a holder).
  ~WriterLock();

  bool held() const { return fd_ >= 0; }

 private:
  explicit WriterLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace drgate::registry
