#include "core/common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace drgate {
namespace {

Status Refused(const std::string& what) {
  return Status(StatusCode::kInvalidArgument, what, Reason::kFileRefused);
}

}  // namespace

StatusOr<std::string> ReadRegularFile(const std::string& path, std::size_t max_bytes) {
  if (path.find('\0') != std::string::npos) return Refused("file name holds a NUL byte");
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return Refused("cannot read file " + path + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return Refused("cannot read file " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return Refused(path + " is not a regular file (a FIFO, device or directory is refused)");
  }
  const std::string cap = std::to_string(max_bytes) + " bytes";
  if (static_cast<std::size_t>(st.st_size) > max_bytes) {
    return Refused("file " + path + " is larger than " + cap);
  }
  std::string content;
  content.resize(max_bytes + 1);
  std::size_t used = 0;
  // Read to the end, but never past the cap: the file may grow after fstat.
  while (used < content.size()) {
    const ssize_t n = ::read(fd, content.data() + used, content.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Refused("cannot read file " + path + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  if (used > max_bytes) return Refused("file " + path + " is larger than " + cap);
  content.resize(used);
  return content;
}

}  // namespace drgate
