#include "plugin/allocator.h"

#include <malloc.h>

#include <cstdlib>
#include <string>

namespace drgate::plugin {

int LimitMallocArenas(int max_arenas) {
  if (const char* env = std::getenv("MALLOC_ARENA_MAX"); env != nullptr && *env != '\0') {
    return std::atoi(env);
  }
  if (max_arenas <= 0) return 0;
  return mallopt(M_ARENA_MAX, max_arenas) == 1 ? max_arenas : 0;
}

bool AllocatorTrimmer::MaybeTrim(std::chrono::steady_clock::time_point now) {
  if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < interval_) return false;
  last_ = now;
  malloc_trim(0);
  return true;
}

}  // namespace drgate::plugin
