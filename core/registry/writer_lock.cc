#include "core/registry/writer_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace drgate::registry {
namespace {

// The pid the holder wrote, or "unknown" (it may not have written it yet).
std::string HolderPid(int fd) {
  char buf[32] = {};
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  std::string pid;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid += buf[i];
  return pid.empty() ? "unknown" : pid;
}

}  // namespace

std::string WriterLock::LockPathFor(const std::string& database) {
  return database + ".lock";
}

StatusOr<WriterLock> WriterLock::Acquire(const std::string& database) {
  const std::string path = LockPathFor(database);
  // O_CLOEXEC: a child process must not inherit (and so keep) the lock.
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    return FailedPrecondition("registry database '" + database + "': cannot open its lock file '" +
                                  path + "': " + std::strerror(err),
                              Reason::kRegistryPathInvalid)
        .With("path", path);
  }
  WriterLock lock(fd);  // closes fd on every return below
  int rc;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      return FailedPrecondition(
                 "registry database '" + database + "' is in use by another drgate (pid " +
                     HolderPid(fd) + ", lock file '" + path +
                     "'); one drgate per SQLite registry: stop the other one, or give this one "
                     "its own registry.path (replicas share registry.postgres)",
                 Reason::kRegistryInUse)
          .With("path", database);
    }
    return FailedPrecondition("registry database '" + database + "': cannot lock '" + path +
                                  "': " + std::strerror(err),
                              Reason::kRegistryPathInvalid)
        .With("path", path);
  }
  // Ours now: record who holds it. Best effort: the lock itself is what excludes.
  const std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) == 0) {
    (void)!pwrite(fd, pid.data(), pid.size(), 0);
  }
  return lock;
}

WriterLock::WriterLock(WriterLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

WriterLock& WriterLock::operator=(WriterLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

WriterLock::~WriterLock() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace drgate::registry
