#pragma once

// Reading files an operator names (configuration, secrets, certificates) without trusting them:
// only regular files, never more than a stated number of bytes.

#include <cstddef>
#include <string>

#include "core/common/status.h"

namespace drgate {

// Caps drgate applies to the files its configuration names (documented in
// docs/config.md, "What the loader refuses").
inline constexpr std::size_t kMaxConfigFileBytes = 1 << 20;   // the YAML configuration
inline constexpr std::size_t kMaxSecretFileBytes = 64 << 10;  // password_file, token_file, ...
inline constexpr std::size_t kMaxPemFileBytes = 1 << 20;      // certificates, keys, CA bundles
inline constexpr std::size_t kMaxTokensFileBytes = 1 << 20;   // auth.tokens_file

// The whole content of `path` when it is a regular file of at most `max_bytes` bytes. The file is
// opened with O_NONBLOCK and checked with fstat before any read, so a FIFO, a device (/dev/zero)
// or a directory is refused at once instead of blocking or growing without bound. Errors are
// INVALID_ARGUMENT (reason FILE_REFUSED) whose message names the path and the problem; the
// caller prefixes the configuration key. Never returns the content in an error.
StatusOr<std::string> ReadRegularFile(const std::string& path, std::size_t max_bytes);

}  // namespace drgate
