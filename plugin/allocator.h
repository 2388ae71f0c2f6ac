#pragma once

// glibc allocator settings for a long-running server with many short-lived threads (gRPC's
// executor grows and shrinks its pool; each new thread may take a malloc arena of its own).
//
// Without them the heap a soak shows is mostly memory glibc keeps: freed chunks spread over up to
// 8 arenas per core, returned to the OS only when the top of an arena is free. With them the
// resident heap follows the live heap (bench/README.md, "Soak").

#include <chrono>

namespace drgate::plugin {

// Caps malloc arenas at `max_arenas` unless the operator set MALLOC_ARENA_MAX in the environment
// (glibc's own knob, which then wins). Call before any thread starts. Returns the cap in force,
// 0 when glibc's default applies.
int LimitMallocArenas(int max_arenas = 2);

// Hands free pages in every arena back to the OS (malloc_trim(0)) at most once per `interval`:
// call it from a loop that wakes up regularly. Returns true when it trimmed. Not thread-safe:
// one caller (drgate's main thread).
class AllocatorTrimmer {
 public:
  explicit AllocatorTrimmer(std::chrono::steady_clock::duration interval) : interval_(interval) {}
  bool MaybeTrim(std::chrono::steady_clock::time_point now);

 private:
  std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace drgate::plugin
