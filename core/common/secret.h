#pragma once

// A secret (password, token) held in memory only.

#include <string>

namespace drgate {

// Deliberately has no printing or streaming operator, so it cannot reach a log line by accident.
// Compared by value: a rotated password is a changed configuration.
struct Secret {
  std::string value;
  bool empty() const { return value.empty(); }
  bool operator==(const Secret&) const = default;
};

}  // namespace drgate
